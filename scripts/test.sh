#!/usr/bin/env bash
# Run every test:
#   1. cargo: unit and integration tests (seeds made at test time by the real genisoimage,
#      xorriso, mkfs.vfat/mtools and cloud-localds, and read back by isoinfo, bsdtar, mtools);
#   2. boot integration: rc.d scripts against a stub rc.subr, systemd-analyze verify of the
#      units, the FreeBSD package manifest, the FreeBSD binaries cross-built (release.sh);
#   3. real boots of a Debian kernel under qemu (tests/e2e): the initramfs matrix, one arm64
#      boot (qemu-system-aarch64), and (as
#      root) a debootstrapped systemd Debian with our .deb installed, which also builds and
#      checks the package.
#
#   scripts/test.sh            everything
#   scripts/test.sh --no-e2e   skip the qemu boots
# Missing tools (scripts/tools.tsv) are installed first when running as root; any still
# missing stop the run with the tool and its Debian package.
set -euo pipefail
cd "$(dirname "$0")/.."
e2e=1
for a in "$@"; do
    case "$a" in
        --no-e2e) e2e=0 ;;
        *) echo "usage: scripts/test.sh [--no-e2e]" >&2; exit 2 ;;
    esac
done

# The tools every test needs (scripts/tools.tsv); as root also those of the debootstrapped
# boot and the .deb. Missing ones are installed when running as root, then checked again:
# what is still missing stops the run here, one line per tool with its Debian package.
scopes=(test)
[ "$(id -u)" = 0 ] && scopes+=(root)
if ! sh scripts/tools.sh check "${scopes[@]}" 2>/dev/null; then
    if [ "$(id -u)" = 0 ] && [ -z "${CI_AGENT_NO_INSTALL:-}" ]; then
        echo "test.sh: installing host tools (scripts/install-deps.sh)"
        bash scripts/install-deps.sh
    fi
    if ! sh scripts/tools.sh check "${scopes[@]}"; then
        echo "test.sh: install the packages above (as root: scripts/install-deps.sh)" >&2
        exit 2
    fi
fi
# The tests that use these tools fail instead of skipping when one is missing.
export CI_AGENT_REQUIRE_TOOLS=1

echo "=== cargo test"
cargo test --all-targets

echo "=== rc.d scripts"
sh rc.d/test.sh
echo "=== OpenRC scripts (stub openrc-run)"
sh packaging/openrc/test.sh
echo "=== log rotation rules (logrotate -d)"
bash packaging/logrotate/check.sh
echo "=== man pages (mandoc lint, man-db render)"
sh man/check.sh
echo "=== systemd units"
bash systemd/verify.sh
echo "=== the tools table and its check"
bash scripts/test-tools-check.sh
if [ "$(id -u)" = 0 ]; then
    # cargo-deny is installed by the install step (root scope of scripts/tools.tsv).
    echo "=== licenses, bans, sources (cargo deny, deny.toml)"
    cargo deny --offline check licenses bans sources
    # RustSec advisories where its database (GitHub) can be fetched; else a loud NOT
    # CHECKED and a fixture database on the loopback that proves the check's wiring.
    echo "=== advisories (cargo deny, scripts/check-advisories.sh)"
    bash scripts/check-advisories.sh
fi
if [ "$(id -u)" = 0 ]; then
    # The amd64 .deb is built and checked by the distro boot (tests/e2e/distro.sh). The
    # arm64 one: static binaries linked by rust-lld, Architecture arm64, lintian.
    echo "=== arm64 .deb (packaging/check-deb.sh --target aarch64-unknown-linux-musl)"
    bash packaging/check-deb.sh --target aarch64-unknown-linux-musl >/dev/null
fi
echo "=== FreeBSD package manifest"
sh packaging/freebsd/make-pkg.sh --check
# Release builds of ci-agent and ci-seed for FreeBSD (cargo auditable zigbuild: ~110 crates,
# about 2 CPU-minutes), checked with file(1) and for their .dep-v0 dependency list, packed
# as pkg-plist lays them out into dist/. They cannot run here.
echo "=== FreeBSD binaries (scripts/release.sh --only freebsd-x86_64)"
if [ "$(id -u)" = 0 ] || [ -x "$(sh scripts/tools.sh venv)/bin/cargo-zigbuild" ]; then
    bash scripts/release.sh --only freebsd-x86_64
else
    echo "test.sh: skipped: needs cargo-zigbuild and ziglang from scripts/install-deps.sh (as root)"
fi
if [ "$(id -u)" = 0 ]; then
    # Both size classes of the static x86_64 ci-agent (default and `tls`), reported against
    # the default one's 2.5 MiB budget (docs/benchmarks.md, "Binary size"): a report, not a
    # gate. The default build is the one the qemu boots below use; the tls one has its own
    # target dir (about 2 CPU-minutes).
    echo "=== static binary sizes (scripts/bench.sh --only size)"
    bash scripts/bench.sh --only size --runs 1 2>&1 | grep -v '^\[bench\] raw results'
fi

if [ "$e2e" = 1 ]; then
    echo "=== qemu boots"
    if [ "$(id -u)" = 0 ]; then
        bash tests/e2e/run.sh --all
    else
        echo "test.sh: the full-distro boot needs root (debootstrap); running the initramfs matrix only"
        bash tests/e2e/run.sh
    fi
fi
