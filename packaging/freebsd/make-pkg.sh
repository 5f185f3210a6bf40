#!/bin/sh
# Build the FreeBSD package, or check it on any OS:
#
#   packaging/freebsd/make-pkg.sh [--out DIR]      on FreeBSD: build the binaries and
#                                                  DIR/ci-agent-VERSION.pkg (default target/pkg)
#   packaging/freebsd/make-pkg.sh --bins DIR ...   use the FreeBSD binaries in DIR (ci-agent,
#                                                  ci-seed; e.g. cross-built with cargo zigbuild)
#   packaging/freebsd/make-pkg.sh --tar FILE ...   write the staged tree (usr/local/...) as a
#                                                  .tar.gz instead of a .pkg (any OS)
#   packaging/freebsd/make-pkg.sh --check          any OS: stage with placeholder binaries and
#                                                  check manifest, plist keywords and stage
#
# Stages the binaries, the rc.d scripts (%%PREFIX%% replaced), the commented config
# (@config: pkg keeps local changes), the newsyslog entry, the man pages, the bash and zsh
# completions, README, LICENSE and THIRD-PARTY-NOTICES under STAGE/usr/local, checks that pkg-plist uses only
# keywords pkg(8) knows by itself (no ports tree needed: @sample and friends are defined
# by the ports' Keywords/*.ucl, which a host without /usr/ports lacks) and that plist
# and stage agree both ways, then runs `pkg create -M +MANIFEST -p pkg-plist -r STAGE`
# (also with --check when pkg is installed).
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
PREFIX=/usr/local
OUT=$REPO/target/pkg; CHECK=0; BINS=; TAR=
while [ $# -gt 0 ]; do
	case "$1" in
	--out) OUT=$2; shift 2 ;;
	--bins) BINS=$2; shift 2 ;;
	--tar) TAR=$2; shift 2 ;;
	--check) CHECK=1; shift ;;
	-h|--help) sed -n '2,21p' "$0"; exit 0 ;;
	*) echo "make-pkg: unknown arg $1" >&2; exit 2 ;;
	esac
done
VERSION=$(sed -n 's/^version *= *"\(.*\)"/\1/p' "$REPO/Cargo.toml" | head -n 1)
[ -n "$VERSION" ] || { echo "make-pkg: no version in Cargo.toml" >&2; exit 1; }
STAGE=$(mktemp -d "${TMPDIR:-/tmp}/ci-agent-pkg.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
P=$STAGE$PREFIX
mkdir -p "$P/bin" "$P/etc/rc.d" "$P/etc/ci-agent.conf.d" "$P/etc/newsyslog.conf.d" \
    "$P/share/doc/ci-agent" "$P/share/man/man1" "$P/share/man/man5" "$P/share/man/man8" \
    "$P/share/bash-completion/completions" "$P/share/zsh/site-functions"

if [ "$CHECK" = 1 ]; then
	for b in ci-agent ci-seed; do printf '#!/bin/sh\n' > "$P/bin/$b"; done
elif [ -n "$BINS" ]; then
	for b in ci-agent ci-seed; do cp "$BINS/$b" "$P/bin/$b"; done
else
	[ "$(uname -s)" = FreeBSD ] || { echo "make-pkg: run on FreeBSD, or give --bins DIR or --check" >&2; exit 1; }
	(cd "$REPO" && cargo build --release --bins)
	for b in ci-agent ci-seed; do cp "$REPO/target/release/$b" "$P/bin/$b"; done
fi
chmod 0555 "$P/bin/ci-agent" "$P/bin/ci-seed"
for s in ci_agent ci_agent_late; do
	sed "s|%%PREFIX%%|$PREFIX|g" "$REPO/rc.d/$s" > "$P/etc/rc.d/$s"
	chmod 0555 "$P/etc/rc.d/$s"
done
install -m 0644 "$REPO/packaging/ci-agent.conf.sample" "$P/etc/ci-agent.conf"
sed "s|%%PREFIX%%|$PREFIX|g" "$HERE/newsyslog-ci-agent.conf" > "$P/etc/newsyslog.conf.d/ci-agent.conf"
for m in ci-seed.1 ci-agent.conf.5 ci-agent.8; do
	sec=${m##*.}
	gzip -n -9 -c "$REPO/man/$m" > "$P/share/man/man$sec/$m.gz"
done
for b in ci-agent ci-seed; do
	install -m 0644 "$REPO/packaging/completions/$b.bash" "$P/share/bash-completion/completions/$b"
	install -m 0644 "$REPO/packaging/completions/_$b" "$P/share/zsh/site-functions/_$b"
done
install -m 0644 "$REPO/README.md" "$REPO/LICENSE" "$REPO/packaging/notices/THIRD-PARTY-NOTICES" \
    "$P/share/doc/ci-agent/"
sed "s/%%VERSION%%/$VERSION/" "$HERE/+MANIFEST" > "$STAGE/+MANIFEST"

bad=0
# Keywords pkg(8) handles itself (libpkg's built-in table); anything else needs a
# Keywords/*.ucl file from a ports tree.
BUILTIN=" cwd ignore comment config dir dirrm dirrmtry include mode owner group exec unexec preexec postexec preunexec postunexec "
: > "$STAGE/plist-files.txt"; : > "$STAGE/plist-dirs.txt"
lineno=0
while IFS= read -r line || [ -n "$line" ]; do
	lineno=$((lineno+1))
	case "$line" in
	'') continue ;;
	@*)
		kw=${line#@}; kw=${kw%%[ (]*}
		rest=${line#@"$kw"}
		case "$rest" in
		'('*)
			attrs=${rest#(}; attrs=${attrs%%)*}
			mode=$(printf '%s' "$attrs" | cut -d, -f3)
			case "$mode" in ''|[0-7][0-7][0-7]|[0-7][0-7][0-7][0-7]) ;;
			*) echo "make-pkg: pkg-plist:$lineno: bad mode '$mode' in @$kw($attrs)" >&2; bad=1 ;;
			esac
			rest=${rest#*)} ;;
		esac
		path=$(printf '%s' "$rest" | sed 's/^ *//')
		case "$kw" in
		'') echo "$path" >> "$STAGE/plist-files.txt" ;;     # @(owner,group,mode) file
		config) echo "$path" >> "$STAGE/plist-files.txt" ;;
		dir) echo "$path" >> "$STAGE/plist-dirs.txt" ;;
		*)
			case "$BUILTIN" in
			*" $kw "*) ;;
			*) echo "make-pkg: pkg-plist:$lineno: @$kw is not a keyword pkg knows without a ports tree" >&2; bad=1 ;;
			esac ;;
		esac ;;
	*) echo "$line" >> "$STAGE/plist-files.txt" ;;
	esac
done < "$HERE/pkg-plist"
sort -o "$STAGE/plist-files.txt" "$STAGE/plist-files.txt"
(cd "$P" && find . -type f | sed 's|^\./||' | sort) > "$STAGE/staged.txt"
if ! cmp -s "$STAGE/plist-files.txt" "$STAGE/staged.txt"; then
	echo "make-pkg: pkg-plist and staged files differ (< plist, > stage):" >&2
	diff "$STAGE/plist-files.txt" "$STAGE/staged.txt" >&2 || true
	bad=1
fi
while IFS= read -r d; do
	[ -d "$P/$d" ] || { echo "make-pkg: pkg-plist: @dir $d is not staged" >&2; bad=1; }
done < "$STAGE/plist-dirs.txt"
for k in name origin version comment desc maintainer www prefix; do
	grep -q "^$k: " "$STAGE/+MANIFEST" || { echo "make-pkg: +MANIFEST lacks $k" >&2; bad=1; }
done
grep -q "^prefix: \"$PREFIX\"" "$STAGE/+MANIFEST" || { echo "make-pkg: +MANIFEST prefix is not $PREFIX" >&2; bad=1; }
grep -q '%%' "$STAGE/+MANIFEST" && { echo "make-pkg: unexpanded %%...%% in +MANIFEST" >&2; bad=1; }
if grep -rl '%%' "$P/etc" >/dev/null 2>&1; then
	echo "make-pkg: unexpanded %%...%% in $(grep -rl '%%' "$P/etc" | sed "s|$P/||")" >&2; bad=1
fi
# newsyslog.conf: logfilename [owner:group] mode count size when flags
awk '!/^#/ && NF { if (NF < 6 || $3 !~ /^[0-7]+$/ || $4 !~ /^[0-9]+$/) { print "make-pkg: newsyslog entry: " $0; bad=1 } } END { exit bad }' \
    "$P/etc/newsyslog.conf.d/ci-agent.conf" >&2 || bad=1
[ "$bad" = 0 ] || exit 1

if [ -n "$TAR" ]; then
	tar -C "$STAGE" -czf "$TAR" --owner=0 --group=0 "${PREFIX#/}" 2>/dev/null || tar -C "$STAGE" -czf "$TAR" "${PREFIX#/}"
	echo "make-pkg: $TAR ($(wc -l < "$STAGE/staged.txt") files under $PREFIX, version $VERSION)"
	exit 0
fi
if [ "$CHECK" = 1 ] && ! command -v pkg >/dev/null 2>&1; then
	echo "make-pkg: --check ok ($(wc -l < "$STAGE/staged.txt") files, version $VERSION; pkg create skipped: no pkg(8) here)"
	exit 0
fi
[ "$CHECK" = 1 ] && OUT=$STAGE/out
mkdir -p "$OUT"
pkg create -M "$STAGE/+MANIFEST" -p "$HERE/pkg-plist" -r "$STAGE" -o "$OUT"
ls -l "$OUT"/ci-agent-"$VERSION".pkg
[ "$CHECK" = 0 ] || echo "make-pkg: --check ok (pkg create ran)"
