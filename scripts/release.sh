#!/usr/bin/env bash
# Build the release artefacts into dist/ (or --out DIR, inside the repository):
#
#   ci-agent-VERSION-x86_64-linux-musl.tar.gz    static ci-agent + ci-seed, man pages, units,
#   ci-agent_VERSION-1_amd64.deb                 OpenRC scripts, completions, notices
#   ci-agent-VERSION-aarch64-linux-musl.tar.gz   the same for arm64 (linked by rust-lld,
#                                                .cargo/config.toml)
#   ci-agent_VERSION-1_arm64.deb
#   ci-agent-VERSION-x86_64-freebsd.tar.gz       usr/local/... as packaging/freebsd/pkg-plist
#                                                lays it out (cargo zigbuild; runs on FreeBSD
#                                                14, not here)
#   SHA256SUMS                                   over every artefact above (sha256sum -c)
#
#   scripts/release.sh [--out DIR] [--only LIST] [--no-lintian]
#
#   --only LIST    comma-separated: linux-x86_64, linux-aarch64, freebsd-x86_64 (default all)
#   --no-lintian   skip lintian on the .debs (packaging/check-deb.sh checks them otherwise)
#
# Every binary is built with `cargo auditable` (the dependency list rides in a `.dep-v0`
# section that cargo audit, trivy, syft and grype read), then checked: file(1) says what it
# is (static-pie x86-64 / static aarch64 / FreeBSD ELF with /libexec/ld-elf.so.1) and
# scripts/audit-deps.py reads the section back. Tools: scripts/tools.tsv (root scope), from
# scripts/install-deps.sh; cargo-zigbuild and ziglang live in the venv of `scripts/tools.sh
# venv`. CI_AGENT_COMMIT is set from git so `--version` names the commit.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
OUT=$REPO/dist; ONLY=linux-x86_64,linux-aarch64,freebsd-x86_64; LINTIAN=1
while [ $# -gt 0 ]; do
    case "$1" in
        --out) OUT=$2; shift 2 ;;
        --only) ONLY=$2; shift 2 ;;
        --no-lintian) LINTIAN=0; shift ;;
        -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
        *) echo "release: unknown argument $1" >&2; exit 2 ;;
    esac
done
for t in ${ONLY//,/ }; do
    case $t in linux-x86_64 | linux-aarch64 | freebsd-x86_64) ;;
        *) echo "release: unknown target $t in --only" >&2; exit 2 ;; esac
done
want() { [[ ",$ONLY," == *",$1,"* ]]; }
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd -P)
case $OUT/ in "$(pwd -P)"/*/) ;; *) echo "release: --out must be a directory inside $REPO" >&2; exit 2 ;; esac

VERSION=$(sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -n 1)
export CI_AGENT_COMMIT=${CI_AGENT_COMMIT:-$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)}
# Tar members get the commit's time, owner root: the same commit gives the same tarballs.
MTIME=$(git log -1 --format=%ct 2>/dev/null || date +%s)
log() { echo "release: $*" >&2; }
rm -f "$OUT"/ci-agent-*.tar.gz "$OUT"/ci-agent_*.deb "$OUT/SHA256SUMS"
STAGE=$(mktemp -d "${TMPDIR:-/tmp}/ci-agent-release.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT

# check_bin FILE PATTERN: file(1) must match PATTERN, and the dependency list must be there.
check_bin() {
    local what
    what=$(file -b "$1")
    grep -Eq "$2" <<<"$what" || { log "$1 is not what was expected ($2): $what"; exit 1; }
    log "$(basename "$(dirname "$(dirname "$1")")")/$(basename "$1"): $what"
    /usr/bin/python3 scripts/audit-deps.py "$1" >&2
}

# linux_tarball TRIPLE NAME: binaries and what installing by hand needs (README, Baking).
linux_tarball() {
    local bin=target/$1/release d=$STAGE/ci-agent-$VERSION-$2
    mkdir -p "$d/man" "$d/systemd" "$d/openrc" "$d/logrotate" "$d/completions"
    install -m 0755 "$bin/ci-agent" "$bin/ci-seed" "$d/"
    install -m 0644 README.md LICENSE packaging/notices/THIRD-PARTY-NOTICES packaging/ci-agent.conf.sample "$d/"
    install -m 0644 man/ci-agent.8 man/ci-seed.1 man/ci-agent.conf.5 "$d/man/"
    install -m 0644 systemd/ci-agent.service systemd/ci-agent-late.service "$d/systemd/"
    install -m 0755 packaging/openrc/ci-agent packaging/openrc/ci-agent-late "$d/openrc/"
    install -m 0644 packaging/openrc/ci-agent.confd packaging/openrc/ci-agent-late.confd "$d/openrc/"
    install -m 0644 packaging/logrotate/ci-agent "$d/logrotate/"
    install -m 0644 packaging/completions/* "$d/completions/"
    tar -C "$STAGE" --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$MTIME" \
        -cf - "ci-agent-$VERSION-$2" | gzip -n -9 > "$OUT/ci-agent-$VERSION-$2.tar.gz"
    log "$OUT/ci-agent-$VERSION-$2.tar.gz"
}

# linux_release TRIPLE NAME DEB_ARCH FILE_PATTERN: static binaries (cargo auditable), the
# tarball, and the .deb checked by packaging/check-deb.sh (lintian unless --no-lintian).
linux_release() {
    local deb=$OUT/ci-agent_$VERSION-1_$3.deb lint=()
    log "cargo auditable build --release --target $1 --bins"
    cargo auditable build --release --locked --target "$1" --bins
    for b in ci-agent ci-seed; do check_bin "target/$1/release/$b" "$4"; done
    linux_tarball "$1" "$2"
    cargo deb --target "$1" --no-build --no-strip --output "$deb" >&2
    [ "$LINTIAN" = 1 ] || lint=(--no-lintian)
    bash packaging/check-deb.sh --target "$1" --no-build "${lint[@]}" --out "$deb" >&2
}

if want linux-x86_64; then
    linux_release x86_64-unknown-linux-musl x86_64-linux-musl amd64 \
        'ELF 64-bit LSB pie executable, x86-64.*static-pie linked'
fi

if want linux-aarch64; then
    # rust-lld links against the musl crt objects and libc.a of the rustup target
    # (.cargo/config.toml): no cross C toolchain (the default build has no C code).
    linux_release aarch64-unknown-linux-musl aarch64-linux-musl arm64 \
        'ELF 64-bit LSB .*ARM aarch64.*static'
fi

if want freebsd-x86_64; then
    T=x86_64-unknown-freebsd
    VENV=$(sh scripts/tools.sh venv)
    [ -x "$VENV/bin/cargo-zigbuild" ] || { log "no cargo-zigbuild in $VENV (scripts/install-deps.sh)"; exit 1; }
    # zig links against its own FreeBSD libc stubs; cargo-zigbuild finds zig through the
    # venv's python (python -m ziglang).
    log "cargo auditable zigbuild --release --target $T --bin ci-agent --bin ci-seed"
    PATH=$VENV/bin:$PATH cargo auditable zigbuild --release --locked --target "$T" --bin ci-agent --bin ci-seed
    for b in ci-agent ci-seed; do
        check_bin "target/$T/release/$b" 'ELF 64-bit LSB .*x86-64.*interpreter /libexec/ld-elf.so.1.*FreeBSD'
    done
    sh packaging/freebsd/make-pkg.sh --bins "target/$T/release" --tar "$OUT/ci-agent-$VERSION-x86_64-freebsd.tar.gz" >&2
fi

(cd "$OUT" && sha256sum ci-agent* > SHA256SUMS && sha256sum --quiet -c SHA256SUMS)
log "artefacts in $OUT:"
(cd "$OUT" && ls -l ci-agent* SHA256SUMS >&2)
