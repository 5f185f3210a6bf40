#!/bin/sh
# Fuzz every parser that reads data ci-agent did not write (see docs/security.md).
#
# usage: scripts/fuzz.sh SECONDS [TARGET...]
#
# Builds the cargo-fuzz targets (nightly), then runs each TARGET (default: all of
# `cargo fuzz list`) one after the other for SECONDS with libFuzzer limits (-timeout=10 s
# per input, -rss_limit_mb=2048), on fuzz/corpus/TARGET (seeded by fuzz/seed-corpus.sh
# when empty; the corpus grows across runs). Prints one line per target: seconds run,
# execs, cov/ft from libFuzzer's final status line, crashes. Full logs go to
# $FUZZ_LOG_DIR (default /tmp/fuzz-logs). Exits 1 when any target found a crash, leak,
# timeout or OOM (the reproducer is in fuzz/artifacts/TARGET/), 2 on usage/build errors.
#
# CI runs it with SECONDS=60; a campaign by hand with SECONDS=1800 (under `nice -n 19`
# on a shared machine). Needs: rustup nightly; cargo-fuzz is installed when missing.
set -eu

usage() {
    echo "usage: $0 SECONDS [TARGET...]" >&2
    exit 2
}
[ $# -ge 1 ] || usage
secs=$1
shift
case $secs in '' | *[!0-9]*) usage ;; esac
[ "$secs" -gt 0 ] || usage

repo=$(cd "$(dirname "$0")/.." && pwd)
fuzz="$repo/fuzz"
logs=${FUZZ_LOG_DIR:-/tmp/fuzz-logs}
mkdir -p "$logs"

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    echo "fuzz.sh: no nightly toolchain (rustup toolchain install nightly)" >&2
    exit 2
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    cargo install --locked cargo-fuzz >"$logs/cargo-install.log" 2>&1 || {
        tail -20 "$logs/cargo-install.log" >&2
        echo "fuzz.sh: cargo-fuzz is missing and could not be installed" >&2
        exit 2
    }
fi

cd "$fuzz"
if [ $# -eq 0 ]; then
    # shellcheck disable=SC2046
    set -- $(cargo +nightly fuzz list)
fi
[ $# -gt 0 ] || { echo "fuzz.sh: no fuzz targets" >&2; exit 2; }

echo "fuzz.sh: building $*" >&2
cargo +nightly fuzz build >"$logs/build.log" 2>&1 || {
    tail -30 "$logs/build.log" >&2
    echo "fuzz.sh: build failed (log: $logs/build.log)" >&2
    exit 2
}

# Seed corpora come from real tools' images and the test fixtures (nothing committed).
need_seed=
for t in "$@"; do
    if [ ! -d "corpus/$t" ] || [ -z "$(ls -A "corpus/$t" 2>/dev/null)" ]; then need_seed=1; fi
done
if [ -n "$need_seed" ]; then
    sh "$fuzz/seed-corpus.sh" >"$logs/seed-corpus.log" 2>&1 ||
        echo "fuzz.sh: seed-corpus.sh failed (see $logs/seed-corpus.log); starting from empty corpora" >&2
fi

failed=0
printf '%-16s %8s %12s %8s %8s %8s  %s\n' target seconds execs cov ft crashes log
for t in "$@"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    log="$logs/$t.log"
    before=$(find "artifacts/$t" -type f | wc -l)
    start=$(date +%s)
    rc=0
    cargo +nightly fuzz run "$t" "corpus/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 \
        -print_final_stats=1 -artifact_prefix="artifacts/$t/" >"$log" 2>&1 || rc=$?
    end=$(date +%s)
    after=$(find "artifacts/$t" -type f | wc -l)
    crashes=$((after - before))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    # The last libFuzzer status line ("#N DONE cov: C ft: F corp: ...").
    status=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -1 || true)
    cov=$(echo "$status" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
    ft=$(echo "$status" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
    if [ "$rc" -ne 0 ] && [ "$crashes" -eq 0 ]; then
        # libFuzzer failed without an artifact (e.g. the target could not start).
        crashes='?'
    fi
    printf '%-16s %8s %12s %8s %8s %8s  %s\n' "$t" "$((end - start))" "${execs:--}" \
        "${cov:--}" "${ft:--}" "$crashes" "$log"
    if [ "$rc" -ne 0 ] || [ "$crashes" != 0 ]; then
        failed=1
        grep -E '^(==[0-9]+==|SUMMARY|thread .* panicked|artifact_prefix)' "$log" | head -5 >&2 || true
        find "artifacts/$t" -type f | sed "s|^|    |" >&2
    fi
done
exit "$failed"
