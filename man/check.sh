#!/bin/sh
# Lint and render the man pages (mdoc) with both formatters a system may use:
#   mandoc -T lint -W warning        (FreeBSD, Alpine and mandoc users)
#   man-db: man --warnings -l PAGE   (Debian's man, which renders through groff)
# Any message is a failure: the pages must render without warnings on both.
#   man/check.sh         prints "ok N - ..." lines, exits 1 on any failure
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
n=0; bad=0
for t in mandoc man groff; do
    command -v "$t" >/dev/null 2>&1 || { echo "man/check.sh: $t missing (scripts/tools.tsv)" >&2; exit 2; }
done
T=$(mktemp -d "${TMPDIR:-/tmp}/ci-agent-man.XXXXXX")
trap 'rm -rf "$T"' EXIT
for page in "$HERE"/*.[1-9]; do
    name=$(basename "$page")
    n=$((n+1))
    mandoc -T lint -W warning "$page" > "$T/lint" 2>&1 || true
    if [ -s "$T/lint" ]; then
        bad=$((bad+1)); echo "not ok $n - $name: mandoc -T lint"; sed 's/^/    /' "$T/lint"
    else
        echo "ok $n - $name: mandoc -T lint"
    fi
    n=$((n+1))
    LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l "$page" > "$T/out" 2> "$T/err" || true
    if [ -s "$T/err" ] || ! grep -q 'NAME' "$T/out"; then
        bad=$((bad+1)); echo "not ok $n - $name: man-db/groff render"; sed 's/^/    /' "$T/err"
    else
        echo "ok $n - $name: man-db/groff render ($(wc -l < "$T/out") lines)"
    fi
done
echo "1..$n"
[ "$bad" = 0 ] || { echo "man/check.sh: $bad of $n failed" >&2; exit 1; }
