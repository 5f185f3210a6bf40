#!/bin/sh
# The one reader of scripts/tools.tsv (tool, package, scope, users).
#
#   scripts/tools.sh packages SCOPE...  Debian packages that provide the tools of these scopes
#                                       (not the unpack: ones: their script fetches them)
#   scripts/tools.sh crates SCOPE...    crates to `cargo install --locked` for these scopes
#                                       (NAME or NAME@VERSION)
#   scripts/tools.sh pypi SCOPE...      PyPI requirements (NAME==VERSION) for these scopes,
#                                       installed into the project's venv
#   scripts/tools.sh venv               that venv's directory (CI_AGENT_VENV, default
#                                       ~/.cache/ci-agent/venv): Debian 12's pip is
#                                       externally managed, so PyPI tools live there
#   scripts/tools.sh check SCOPE...     one line `missing: TOOL (Debian package PKG)` per tool
#                                       not found; exit 2 when any is missing
#   scripts/tools.sh check-debian SCOPE...  the same for the tools from Debian packages only
#                                       (scripts/fresh-check.sh: its root has no Rust)
#
# package column: a Debian package, cargo:CRATE[@VERSION] (`cargo install --locked`), or
# pypi:NAME==VERSION (pip, into the venv; its bin/ is searched by check).
#
# SCOPE: test, root, bench, fuzz, or all. Tools are looked up in PATH, /usr/sbin and /sbin
# (mkfs.vfat and debugfs live in sbin, which a non-root PATH may lack).
# TOOLS_TSV overrides the table (tests of this script).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
table=${TOOLS_TSV:-$here/tools.tsv}

usage() {
    echo "usage: scripts/tools.sh packages|crates|pypi|check|check-debian SCOPE... | venv" >&2
    exit 2
}
venv=${CI_AGENT_VENV:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/ci-agent/venv}
[ "${1:-}" = venv ] && { echo "$venv"; exit 0; }
[ $# -ge 2 ] || usage
cmd=$1
shift
for s in "$@"; do
    case $s in test | root | bench | fuzz | all) ;; *) usage ;; esac
done
scopes=" $* "

# rows: the table's rows of the asked scopes, as "tool package" lines.
rows() {
    grep -v '^#' "$table" | grep -v '^[[:space:]]*$' | while IFS='	' read -r tool pkg scope _users; do
        case $scopes in *" all "* | *" $scope "*) echo "$tool $pkg" ;; esac
    done
}

found() {
    command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ] || [ -x "$venv/bin/$1" ]
}

case $cmd in
packages) rows | while read -r _t p; do case $p in cargo:* | pypi:* | unpack:*) ;; *) echo "$p" ;; esac; done | sort -u ;;
crates) rows | while read -r _t p; do case $p in cargo:*) echo "${p#cargo:}" ;; esac; done | sort -u ;;
pypi) rows | while read -r _t p; do case $p in pypi:*) echo "${p#pypi:}" ;; esac; done | sort -u ;;
check | check-debian)
    missing=$(rows | while read -r t p; do
        case $cmd:$p in check-debian:cargo:* | check-debian:pypi:* | *:unpack:*) continue ;; esac
        if ! found "$t"; then
            case $p in
            cargo:*) echo "missing: $t (cargo install --locked ${p#cargo:})" ;;
            pypi:*) echo "missing: $t (pip install ${p#pypi:} into $venv: scripts/install-deps.sh)" ;;
            *) echo "missing: $t (Debian package $p)" ;;
            esac
        fi
    done)
    [ -z "$missing" ] && exit 0
    echo "$missing" >&2
    exit 2
    ;;
*) usage ;;
esac
