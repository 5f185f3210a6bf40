#!/bin/sh
# Build the FreeBSD package (run on FreeBSD, amd64):
#
#   packaging/freebsd/make-pkg.sh [--out DIR]     -> DIR/ci-agent-VERSION.pkg (default target/pkg)
#   packaging/freebsd/make-pkg.sh --check         any OS: stage with placeholder binaries and
#                                                 check that manifest and plist match the stage
#
# Builds the binaries natively (`cargo build --release`; static enough: they link only
# libc, which the base system provides), stages them with the rc.d scripts, the sample
# config and the README under STAGE/usr/local, and runs
# `pkg create -M +MANIFEST -p pkg-plist -r STAGE -o DIR`.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
OUT=$REPO/target/pkg; CHECK=0
while [ $# -gt 0 ]; do
	case "$1" in
	--out) OUT=$2; shift 2 ;;
	--check) CHECK=1; shift ;;
	-h|--help) sed -n '2,11p' "$0"; exit 0 ;;
	*) echo "make-pkg: unknown arg $1" >&2; exit 2 ;;
	esac
done
VERSION=$(sed -n 's/^version *= *"\(.*\)"/\1/p' "$REPO/Cargo.toml" | head -n 1)
[ -n "$VERSION" ] || { echo "make-pkg: no version in Cargo.toml" >&2; exit 1; }
STAGE=$(mktemp -d "${TMPDIR:-/tmp}/ci-agent-pkg.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
P=$STAGE/usr/local
mkdir -p "$P/bin" "$P/etc/rc.d" "$P/share/doc/ci-agent"

if [ "$CHECK" = 1 ]; then
	for b in ci-agent ci-seed; do printf '#!/bin/sh\n' > "$P/bin/$b"; done
else
	[ "$(uname -s)" = FreeBSD ] || { echo "make-pkg: run on FreeBSD (or use --check)" >&2; exit 1; }
	(cd "$REPO" && cargo build --release --bins)
	for b in ci-agent ci-seed; do cp "$REPO/target/release/$b" "$P/bin/$b"; done
fi
chmod 0555 "$P/bin/ci-agent" "$P/bin/ci-seed"
install -m 0555 "$REPO/rc.d/ci_agent" "$REPO/rc.d/ci_agent_late" "$P/etc/rc.d/"
install -m 0644 "$REPO/packaging/ci-agent.conf.sample" "$P/etc/ci-agent.conf.sample"
install -m 0644 "$REPO/README.md" "$P/share/doc/ci-agent/README.md"
sed "s/%%VERSION%%/$VERSION/" "$HERE/+MANIFEST" > "$STAGE/+MANIFEST"

# The plist and the stage must agree, both ways.
bad=0
sed -e 's/^@([^)]*) //' -e 's/^@sample //' "$HERE/pkg-plist" | sort > "$STAGE/plist.txt"
(cd "$P" && find . -type f | sed 's|^\./||' | sort) > "$STAGE/staged.txt"
if ! cmp -s "$STAGE/plist.txt" "$STAGE/staged.txt"; then
	echo "make-pkg: pkg-plist and staged files differ:" >&2
	diff "$STAGE/plist.txt" "$STAGE/staged.txt" >&2 || true
	bad=1
fi
for k in name origin version comment desc maintainer www prefix; do
	grep -q "^$k: " "$STAGE/+MANIFEST" || { echo "make-pkg: +MANIFEST lacks $k" >&2; bad=1; }
done
grep -q '%%' "$STAGE/+MANIFEST" && { echo "make-pkg: unexpanded %%...%% in +MANIFEST" >&2; bad=1; }
[ "$bad" = 0 ] || exit 1
if [ "$CHECK" = 1 ]; then
	echo "make-pkg: --check ok ($(wc -l < "$STAGE/plist.txt") files, version $VERSION)"
	exit 0
fi
mkdir -p "$OUT"
pkg create -M "$STAGE/+MANIFEST" -p "$HERE/pkg-plist" -r "$STAGE" -o "$OUT"
ls -l "$OUT"/ci-agent-"$VERSION".pkg
