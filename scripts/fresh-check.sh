#!/usr/bin/env bash
# Proves the install step on a fresh Debian 12 (as root): debootstraps a minimal bookworm root,
# runs scripts/install-deps.sh inside it (chroot, with this machine's apt sources, apt settings
# and resolv.conf), then checks that every tool of scripts/tools.tsv that comes from a Debian
# package resolves there. The cargo-installed tools (cargo-deb, cargo-fuzz) are left out: the
# fresh root has no Rust, and install-deps.sh installs them with the machine's cargo.
#
#   scripts/fresh-check.sh [--keep]     --keep: leave the root in place and print its path
#
# Prints `fresh-check: PASS (N tools, S s)` or the missing tools and exits 1.
# Downloaded packages are cached in /var/cache/ci-agent-fresh-check between runs.
set -euo pipefail
cd "$(dirname "$0")/.."
keep=0
for a in "$@"; do
    case $a in --keep) keep=1 ;; *) echo "usage: scripts/fresh-check.sh [--keep]" >&2; exit 2 ;; esac
done
[ "$(id -u)" = 0 ] || { echo "fresh-check: run as root (debootstrap, chroot)" >&2; exit 2; }
command -v debootstrap >/dev/null || { echo "fresh-check: needs debootstrap (scripts/install-deps.sh)" >&2; exit 2; }
start=$(date +%s)

# The mirror this machine uses (deb822 .sources or one-line sources.list).
URI=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
[ -n "$URI" ] || URI=$(awk '$1=="deb"{for(i=2;i<=NF;i++) if($i ~ /:\/\//){print $i; exit}}' /etc/apt/sources.list 2>/dev/null || true)
[ -n "$URI" ] || { echo "fresh-check: no Debian mirror configured in /etc/apt" >&2; exit 2; }

R=$(mktemp -d /tmp/ci-agent-fresh.XXXXXX)
chmod 755 "$R"   # apt downloads as _apt, which must reach the root
mounted=()
cleanup() {
    for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[i]}" 2>/dev/null || true; done
    if [ "$keep" = 1 ]; then echo "fresh-check: root kept in $R"; else rm -rf --one-file-system "$R"; fi
}
trap cleanup EXIT

cache=/var/cache/ci-agent-fresh-check
mkdir -p "$cache"
echo "fresh-check: debootstrap --variant=minbase bookworm from $URI"
debootstrap --variant=minbase --cache-dir="$cache" bookworm "$R" "$URI" > "$R.log" 2>&1 ||
    { tail -20 "$R.log" >&2; rm -f "$R.log"; echo "fresh-check: debootstrap failed" >&2; exit 1; }
rm -f "$R.log"

# This machine's network and apt view: sources, apt settings, resolver.
cp /etc/resolv.conf "$R/etc/resolv.conf"
rm -f "$R/etc/apt/sources.list"
[ -f /etc/apt/sources.list ] && cp /etc/apt/sources.list "$R/etc/apt/"
for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] && cp "$f" "$R/etc/apt/sources.list.d/"
done
for f in /etc/apt/apt.conf.d/*; do
    grep -qE '^\s*Acquire::' "$f" 2>/dev/null && cp "$f" "$R/etc/apt/apt.conf.d/"
done
for m in proc sys dev dev/pts; do
    mount --bind "/$m" "$R/$m" && mounted+=("$R/$m")
done

mkdir -p "$R/opt/ci-agent/scripts"
cp scripts/install-deps.sh scripts/tools.sh scripts/tools.tsv "$R/opt/ci-agent/scripts/"
echo "fresh-check: scripts/install-deps.sh --no-rust in the fresh root"
chroot "$R" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
    bash /opt/ci-agent/scripts/install-deps.sh --no-rust

n=$(grep -v '^#' scripts/tools.tsv | grep -v '^[[:space:]]*$' | grep -v '	unpack:' | grep -vc '	cargo:' || true)
if chroot "$R" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root \
    sh /opt/ci-agent/scripts/tools.sh check-debian all; then
    echo "fresh-check: PASS ($n tools, $(( $(date +%s) - start )) s)"
else
    echo "fresh-check: FAIL: the tools above are missing after the install step" >&2
    exit 1
fi
