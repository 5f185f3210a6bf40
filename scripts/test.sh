#!/usr/bin/env bash
# Run every test: unit and integration tests (cargo; seeds made at test time by the real
# genisoimage, xorriso, mkfs.vfat/mtools, cloud-localds, and read back by isoinfo, bsdtar,
# mtools), then real boots of a Debian kernel under qemu (tests/e2e).
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
for t in genisoimage xorriso isoinfo bsdtar mdir mkfs.vfat cloud-localds qemu-system-x86_64 busybox cpio mkfs.ext4 debootstrap; do
    command -v "$t" >/dev/null || need+=("$t")
done
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        echo "test.sh: installing host tools (missing: ${need[*]})"
        bash tests/e2e/install-deps.sh --rootfs
    else
        echo "test.sh: missing host tools: ${need[*]} (run as root, or: sudo tests/e2e/install-deps.sh --rootfs)" >&2
        exit 2
    fi
fi

cargo test --all-targets
if [ "$e2e" = 1 ]; then
    bash tests/e2e/run.sh
fi
