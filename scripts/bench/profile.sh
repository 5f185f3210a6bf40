#!/usr/bin/env bash
# Where the instructions go: callgrind on the release binaries built with symbols (same
# profile otherwise: the release opt-level, LTO, panic=abort), on the standard seed. Instruction
# counts are repeatable, unlike times on a shared machine.
#
#   scripts/bench/profile.sh [--top N] [-- COMMAND ARGS...]
#
# Without a command it profiles `ci-agent query --seed ISO`, `ci-agent run --root TMP
# --seed ISO` and `ci-seed OUT.iso user-data meta-data`. Prints, per command, the total
# instruction count and the top N functions by inclusive and by self instructions.
# Builds into target/prof (a separate target dir: the stripped binaries stay as they are).
# Needs valgrind (apt-get install -y valgrind).
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
TOP=25
while [ $# -gt 0 ]; do
    case "$1" in
        --top) TOP=$2; shift 2 ;;
        --) shift; break ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "profile.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
command -v valgrind >/dev/null || { echo "profile.sh: needs valgrind (apt-get install -y valgrind)" >&2; exit 1; }
TARGET=x86_64-unknown-linux-musl
CARGO_PROFILE_RELEASE_STRIP=false CARGO_PROFILE_RELEASE_DEBUG=line-tables-only \
    cargo build -q --release --target "$TARGET" --target-dir target/prof --bins
BIN=$REPO/target/prof/$TARGET/release
W=$(mktemp -d /tmp/ci-prof.XXXXXX); trap 'rm -rf "$W"' EXIT
SEED=$REPO/benches/fixtures/standard-seed
cloud-localds "$W/seed.iso" "$SEED/user-data" "$SEED/meta-data"

# the rows after the header, without the object file and with file names reduced to their
# base name (`path/to/memcpy.s:memcpy` -> `memcpy.s:memcpy`)
tidy() {
    sed -n '/^Ir/,$p' | sed -n "3,$((TOP + 2))p" |
        sed -E -e 's/ \[[^]]*\]$//' -e 's#  (\?\?\?|/[^ ]*/|[^ /]*/[^ ]*/)([^/ ]*):#  \2:#' | cut -c1-220
}

prof() {
    local name=$1; shift
    local out=$W/callgrind.$name
    valgrind --tool=callgrind --callgrind-out-file="$out" "$@" > /dev/null 2> "$W/vg.$name" ||
        { cat "$W/vg.$name" >&2; echo "profile.sh: $name failed under valgrind" >&2; return 1; }
    echo "### $name: \`$*\`"
    echo
    echo '```'
    grep -E '^==[0-9]+== (Collected|I\s+refs)' "$W/vg.$name" | sed 's/^==[0-9]*== //'
    echo "-- inclusive (function and what it calls) --"
    callgrind_annotate --inclusive=yes --threshold=100 "$out" 2>/dev/null | tidy
    echo "-- self --"
    callgrind_annotate --inclusive=no --threshold=100 "$out" 2>/dev/null | tidy
    echo '```'
    echo
}

if [ $# -gt 0 ]; then
    prof custom "$@"
else
    prof query "$BIN/ci-agent" query --seed "$W/seed.iso"
    mkdir -p "$W/root"; scripts/bench/make-root.sh "$W/root"
    prof run "$BIN/ci-agent" run --root "$W/root" --seed "$W/seed.iso"
    prof ci-seed "$BIN/ci-seed" "$W/out.iso" "$SEED/user-data" "$SEED/meta-data"
fi
