#!/bin/bash
# The project's install step, for a fresh Debian 12 machine (as root): installs every Debian
# package of scripts/tools.tsv (tests, the debootstrapped boot, benches), the Rust targets the
# tests build for, the tools installed with cargo, and the PyPI tools (into a venv of the
# project's: scripts/tools.sh venv).
#
#   scripts/install-deps.sh [--fuzz] [--no-rust]
#
#   --fuzz     also cargo-fuzz (scripts/fuzz.sh; useful only with a nightly toolchain)
#   --no-rust  Debian packages only (no rustup, no cargo or pip install): scripts/fresh-check.sh
#              runs it so in a debootstrapped root that has no Rust
#   --distro   accepted and ignored (everything is installed now)
#
# arm64: the e2e suite's arm64 boot downloads Debian's arm64 kernel and busybox-static
# (apt-get download PKG:arm64, never installed), so the arm64 architecture is added to dpkg
# before apt-get update. Nothing of arm64 gets installed on this machine.
#
# qemu catch on some Debian 12 images: a preinstalled qemu-utils from bookworm-backports
# declares "Breaks: qemu-system-common (< 1:8.0+dfsg-5~)", so apt refuses bookworm's
# qemu-system-x86 and -arm 7.2 ("held broken packages"). They then come from
# bookworm-backports through a *temporary* source list and lists dir; /etc/apt is untouched.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
here=$(cd "$(dirname "$0")" && pwd)
RUST=1; FUZZ=0
for a in "$@"; do
    case "$a" in
        --distro|--rootfs) ;;
        --no-rust) RUST=0 ;;
        --fuzz) FUZZ=1 ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "install-deps: unknown arg $a" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "install-deps: run as root" >&2; exit 1; }

QEMU_PKGS=(qemu-system-x86 qemu-system-arm)
mapfile -t PKGS < <(sh "$here/tools.sh" packages all | grep -vxE 'qemu-system-(x86|arm)')
dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64
apt-get update -q >/dev/null
# DPkg::Lock::Timeout: a fresh machine may still be running apt-daily.
apt-get install -y -q -o DPkg::Lock::Timeout=300 --no-install-recommends "${PKGS[@]}" >/dev/null

if ! command -v qemu-system-x86_64 >/dev/null || ! command -v qemu-system-aarch64 >/dev/null; then
    if apt-get install -s -q --no-install-recommends "${QEMU_PKGS[@]}" >/dev/null 2>&1; then
        apt-get install -y -q -o DPkg::Lock::Timeout=300 --no-install-recommends "${QEMU_PKGS[@]}" >/dev/null
    else
        T=$(mktemp -d /tmp/ci-agent-apt.XXXXXX); mkdir -p "$T/lists/partial"
        K=/usr/share/keyrings/debian-archive-keyring.gpg
        # Reuse the Debian mirror this machine is configured with (deb822 .sources or one-line sources.list).
        URI=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
        [ -n "$URI" ] || URI=$(awk '$1=="deb"{for(i=2;i<=NF;i++) if($i ~ /:\/\//){print $i; exit}}' /etc/apt/sources.list 2>/dev/null || true)
        [ -n "$URI" ] || { echo "install-deps: no Debian mirror configured in /etc/apt" >&2; exit 1; }
        printf 'deb [signed-by=%s] %s bookworm main\ndeb [signed-by=%s] %s bookworm-backports main\n' "$K" "$URI" "$K" "$URI" > "$T/sources.list"
        O=(-o "Dir::Etc::sourcelist=$T/sources.list" -o "Dir::Etc::sourceparts=-" -o "Dir::State::Lists=$T/lists")
        apt-get "${O[@]}" update -q >/dev/null
        apt-get "${O[@]}" install -y -q -o DPkg::Lock::Timeout=300 --no-install-recommends -t bookworm-backports "${QEMU_PKGS[@]}" >/dev/null
        rm -rf "$T"
    fi
fi
qemu-system-x86_64 --version | head -1
qemu-system-aarch64 --version | head -1
# The arm64 packages the e2e suite downloads must resolve (apt-get download needs no more).
apt-get download --print-uris -q "linux-image-arm64:arm64" busybox-static:arm64 >/dev/null \
    || { echo "install-deps: apt cannot resolve the arm64 kernel and busybox-static" >&2; exit 1; }

if [ "$RUST" = 1 ]; then
    command -v rustup >/dev/null || { echo "install-deps: rustup not found (install Rust first, or pass --no-rust)" >&2; exit 1; }
    # aarch64: static arm64 binaries, linked by rust-lld (.cargo/config.toml).
    rustup target add x86_64-unknown-linux-musl x86_64-unknown-freebsd aarch64-unknown-linux-musl >/dev/null
    scopes=(root)
    [ "$FUZZ" = 1 ] && scopes+=(fuzz)
    for c in $(sh "$here/tools.sh" crates "${scopes[@]}"); do
        command -v "${c%@*}" >/dev/null || cargo install --locked "$c"
    done
    # PyPI tools (ziglang and cargo-zigbuild: the FreeBSD cross build) at the pinned versions
    # of scripts/tools.tsv, in the project's own venv (scripts/tools.sh venv): Debian 12's pip
    # is externally managed, and nothing is installed into the system's Python.
    mapfile -t PYPI < <(sh "$here/tools.sh" pypi "${scopes[@]}")
    if [ "${#PYPI[@]}" -gt 0 ]; then
        venv=$(sh "$here/tools.sh" venv)
        [ -x "$venv/bin/pip" ] || /usr/bin/python3 -m venv "$venv"
        "$venv/bin/pip" install -q --disable-pip-version-check "${PYPI[@]}"
    fi
fi
echo "install-deps: ok"
