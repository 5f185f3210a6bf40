#!/bin/bash
# Install the host packages the e2e harness needs on a fresh Debian 12 machine (as root).
#
#   tests/e2e/install-deps.sh [--distro] [--no-rust]
#
#   default   qemu-system-x86, busybox-static, genisoimage, xorriso, cpio, mtools, dosfstools,
#             xz-utils, zstd, kmod (depmod), e2fsprogs (mkfs.ext4 -d, debugfs), the rustup
#             target x86_64-unknown-linux-musl (static build of ci-agent/ci-seed), and
#             systemd (systemd-analyze verify of systemd/*.service), python3 (JSON status
#             checks), devscripts (checkbashisms for rc.d/test.sh).
#   --distro  also debootstrap (full-distro boot: tests/e2e/run.sh --distro) and cargo-deb
#             (the .deb installed into that rootfs; packaging/check-deb.sh).
#   --no-rust skip the rustup/cargo steps.
#
# qemu catch on some Debian 12 images: a preinstalled qemu-utils from bookworm-backports
# declares "Breaks: qemu-system-common (< 1:8.0+dfsg-5~)", so apt refuses bookworm's
# qemu-system-x86 7.2 ("held broken packages"). We then install qemu-system-x86 from
# bookworm-backports through a *temporary* source list and lists dir; /etc/apt is untouched.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
DISTRO=0; RUST=1
for a in "$@"; do
    case "$a" in
        --distro|--rootfs) DISTRO=1 ;;   # --rootfs: the name the reference harness used
        --no-rust) RUST=0 ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "install-deps: unknown arg $a" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "install-deps: run as root" >&2; exit 1; }

PKGS=(busybox-static genisoimage xorriso cpio mtools dosfstools xz-utils zstd kmod e2fsprogs systemd
      ca-certificates python3 devscripts strace)   # devscripts: checkbashisms for rc.d/test.sh; strace: mkdir-mode test
[ "$DISTRO" = 1 ] && PKGS+=(debootstrap)
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends "${PKGS[@]}" >/dev/null

if ! command -v qemu-system-x86_64 >/dev/null; then
    if apt-get install -s -q --no-install-recommends qemu-system-x86 >/dev/null 2>&1; then
        apt-get install -y -q --no-install-recommends qemu-system-x86 >/dev/null
    else
        T=$(mktemp -d /tmp/e2e-apt.XXXXXX); mkdir -p "$T/lists/partial"
        K=/usr/share/keyrings/debian-archive-keyring.gpg
        # Reuse the Debian mirror this machine is configured with (deb822 .sources or one-line sources.list).
        URI=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
        [ -n "$URI" ] || URI=$(awk '$1=="deb"{for(i=2;i<=NF;i++) if($i ~ /:\/\//){print $i; exit}}' /etc/apt/sources.list 2>/dev/null || true)
        [ -n "$URI" ] || { echo "install-deps: no Debian mirror configured in /etc/apt" >&2; exit 1; }
        printf 'deb [signed-by=%s] %s bookworm main\ndeb [signed-by=%s] %s bookworm-backports main\n' "$K" "$URI" "$K" "$URI" > "$T/sources.list"
        O=(-o "Dir::Etc::sourcelist=$T/sources.list" -o "Dir::Etc::sourceparts=-" -o "Dir::State::Lists=$T/lists")
        apt-get "${O[@]}" update -q >/dev/null
        apt-get "${O[@]}" install -y -q --no-install-recommends -t bookworm-backports qemu-system-x86 >/dev/null
        rm -rf "$T"
    fi
fi
qemu-system-x86_64 --version | head -1

if [ "$RUST" = 1 ]; then
    command -v rustup >/dev/null || { echo "install-deps: rustup not found (install Rust first, or pass --no-rust)" >&2; exit 1; }
    rustup target add x86_64-unknown-linux-musl >/dev/null
    if [ "$DISTRO" = 1 ] && ! cargo deb --version >/dev/null 2>&1; then
        cargo install --locked cargo-deb
    fi
fi
echo "install-deps: ok"
