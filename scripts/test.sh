#!/usr/bin/env bash
# Run every test:
#   1. cargo: unit and integration tests (seeds made at test time by the real genisoimage,
#      xorriso, mkfs.vfat/mtools and cloud-localds, and read back by isoinfo, bsdtar, mtools);
#   2. boot integration: rc.d scripts against a stub rc.subr, systemd-analyze verify of the
#      units, the FreeBSD package manifest;
#   3. real boots of a Debian kernel under qemu (tests/e2e): the initramfs matrix, and (as
#      root) a debootstrapped systemd Debian with our .deb installed, which also builds and
#      checks the package.
#
#   scripts/test.sh            everything
#   scripts/test.sh --no-e2e   skip the qemu boots
# Missing Debian packages are installed first when running as root.
set -euo pipefail
cd "$(dirname "$0")/.."
e2e=1
for a in "$@"; do
    case "$a" in
        --no-e2e) e2e=0 ;;
        *) echo "usage: scripts/test.sh [--no-e2e]" >&2; exit 2 ;;
    esac
done

need=()
for t in genisoimage xorriso isoinfo bsdtar mdir mkfs.vfat cloud-localds qemu-system-x86_64 \
         busybox cpio mkfs.ext4 debugfs systemd-analyze checkbashisms strace; do
    command -v "$t" >/dev/null || need+=("$t")
done
if [ "$(id -u)" = 0 ]; then
    command -v debootstrap >/dev/null || need+=(debootstrap)
    cargo deb --version >/dev/null 2>&1 || need+=(cargo-deb)
fi
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        echo "test.sh: installing host tools (missing: ${need[*]})"
        bash tests/e2e/install-deps.sh --distro
    else
        echo "test.sh: missing host tools: ${need[*]} (run as root, or: sudo tests/e2e/install-deps.sh --distro)" >&2
        exit 2
    fi
fi

echo "=== cargo test"
cargo test --all-targets

echo "=== rc.d scripts"
sh rc.d/test.sh
echo "=== OpenRC scripts"
sh -n packaging/openrc/ci-agent && sh -n packaging/openrc/ci-agent-late && echo "ok - sh -n"
echo "=== systemd units"
bash systemd/verify.sh
echo "=== FreeBSD package manifest"
sh packaging/freebsd/make-pkg.sh --check

if [ "$e2e" = 1 ]; then
    echo "=== qemu boots"
    if [ "$(id -u)" = 0 ]; then
        bash tests/e2e/run.sh --all
    else
        echo "test.sh: the full-distro boot needs root (debootstrap); running the initramfs matrix only"
        bash tests/e2e/run.sh
    fi
fi
