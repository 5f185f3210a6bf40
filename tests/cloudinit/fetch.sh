#!/usr/bin/env bash
# Unpack Debian's cloud-init package (never installed) for the differential tests, and
# print the directory to put on PYTHONPATH (it holds the `cloudinit` package).
#
#   tests/cloudinit/fetch.sh [--cache DIR]     (default /tmp/ci-agent-cloudinit)
#
# The package comes from the machine's apt sources (`apt-get download` + `dpkg-deb -x`);
# its Python dependencies (python3-yaml, python3-jinja2, ...) are Debian packages listed in
# scripts/tools.tsv and installed by the project's install step. Run the tests with
# Debian's /usr/bin/python3, which sees those packages.
set -euo pipefail
CACHE=${CLOUDINIT_CACHE:-/tmp/ci-agent-cloudinit}
while [ $# -gt 0 ]; do
    case "$1" in
        --cache) CACHE=$2; shift 2 ;;
        *) echo "fetch.sh: unknown arg $1" >&2; exit 2 ;;
    esac
done
mkdir -p "$CACHE"
if [ ! -d "$CACHE/root/usr/lib/python3/dist-packages/cloudinit" ]; then
    ( cd "$CACHE" && rm -f cloud-init_*.deb \
        && apt-get -q -o APT::Sandbox::User=root download cloud-init >&2 )
    rm -rf "$CACHE/root.tmp"
    dpkg-deb -x "$CACHE"/cloud-init_*.deb "$CACHE/root.tmp"
    rm -rf "$CACHE/root"; mv "$CACHE/root.tmp" "$CACHE/root"
    dpkg-deb -f "$CACHE"/cloud-init_*.deb Version > "$CACHE/root/VERSION"
fi
echo "$CACHE/root/usr/lib/python3/dist-packages"
