#!/usr/bin/env bash
# Unpack Debian's cloud-init and the python modules it imports into a cache dir, without
# installing anything: `apt-get download` + `dpkg-deb -x` (never pip). Prints the directory
# to put on PYTHONPATH (the unpacked usr/lib/python3/dist-packages).
#
#   scripts/bench/cloudinit-env.sh [CACHE-DIR]     (default /tmp/ci-bench-cache)
#
# The package list is cloud-init's Depends, resolved recursively, restricted to python3-*
# (computed at run time with apt-cache, so it follows the archive); python3 itself is the
# host's /usr/bin/python3 (Debian 12: 3.11, which the compiled modules are built for).
# Idempotent: a cache holding the same cloud-init version is reused.
set -euo pipefail
CACHE=${1:-/tmp/ci-bench-cache}
ROOT=$CACHE/root
SITE=$ROOT/usr/lib/python3/dist-packages
want=$(apt-cache policy cloud-init 2>/dev/null | sed -n 's/^ *Candidate: //p')
if [ -z "$want" ] || [ "$want" = "(none)" ]; then
    echo "cloudinit-env: apt knows no cloud-init candidate (run apt-get update first)" >&2
    exit 1
fi
if [ -f "$CACHE/version" ] && [ "$(cat "$CACHE/version")" = "$want" ] && [ -d "$SITE/cloudinit" ]; then
    echo "$SITE"
    exit 0
fi
rm -rf "$CACHE/debs" "$ROOT"
mkdir -p "$CACHE/debs" "$ROOT"
pkgs=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
        --no-replaces --no-enhances cloud-init 2>/dev/null |
    grep -E '^(cloud-init|python3-[a-z0-9.+-]+)$' | grep -vx -e python3-minimal | sort -u)
# apt-get download runs as _apt when it can; a root-owned dir it cannot write only warns
(cd "$CACHE/debs" && apt-get download -q $pkgs >/dev/null 2>"$CACHE/download.log") || {
    cat "$CACHE/download.log" >&2
    exit 1
}
for d in "$CACHE"/debs/*.deb; do dpkg-deb -x "$d" "$ROOT"; done
[ -d "$SITE/cloudinit" ] || { echo "cloudinit-env: no cloudinit package in $SITE" >&2; exit 1; }
(cd "$CACHE/debs" && ls *.deb) > "$CACHE/packages"
echo "$want" > "$CACHE/version"
echo "$SITE"
