#!/bin/bash
# Build the Debian package with cargo-deb (static musl binaries) and check what is in it:
# files and modes (dpkg-deb -c), control fields, conffiles, maintainer scripts, that
# the binaries are static, and lintian: no error and no warning but the ones overridden
# (with the reason) in packaging/debian/lintian-overrides, which the package ships.
#
#   packaging/check-deb.sh [--no-build] [--no-lintian] [--out FILE.deb] [--target TRIPLE]
#
# --target: x86_64-unknown-linux-musl (default, Architecture amd64) or
#   aarch64-unknown-linux-musl (arm64; linked by rust-lld, see .cargo/config.toml). The
#   binaries of another architecture are checked with `file` but not run.
# Needs: cargo-deb (cargo install --locked cargo-deb), the rustup target, dpkg-deb, file,
# lintian. Prints the .deb path on the last line.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
TRIPLE=x86_64-unknown-linux-musl
OUT=""; BUILD=1; LINTIAN=1
while [ $# -gt 0 ]; do
    case "$1" in
        --no-build) BUILD=0; shift ;;
        --no-lintian) LINTIAN=0; shift ;;
        --out) OUT=$2; shift 2 ;;
        --target) TRIPLE=$2; shift 2 ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "check-deb: unknown arg $1" >&2; exit 2 ;;
    esac
done
case "$TRIPLE" in
    x86_64-unknown-linux-musl) ARCH=amd64; MACH=x86_64; FILE_ARCH=x86-64 ;;
    aarch64-unknown-linux-musl) ARCH=arm64; MACH=aarch64; FILE_ARCH='ARM aarch64' ;;
    *) echo "check-deb: --target $TRIPLE: expected x86_64-unknown-linux-musl or aarch64-unknown-linux-musl" >&2; exit 2 ;;
esac
[ -n "$OUT" ] || OUT=$REPO/target/$TRIPLE/debian/ci-agent.deb
cd "$REPO"
if [ "$BUILD" = 1 ]; then
    cargo deb --version >/dev/null 2>&1 || { echo "check-deb: cargo-deb missing (cargo install --locked cargo-deb)" >&2; exit 1; }
    mkdir -p "$(dirname "$OUT")"
    # Plain cargo build, then cargo deb --no-build: cargo-deb's own build sets profile
    # variables of its own, which would rebuild the binaries run.sh and the e2e boots use.
    cargo build --release --target "$TRIPLE" --bins >&2
    cargo deb --no-build --target "$TRIPLE" --output "$OUT" >&2
fi
[ -f "$OUT" ] || { echo "check-deb: $OUT not found" >&2; exit 1; }

bad=0
no() { echo "check-deb: $*" >&2; bad=$((bad+1)); }
LIST=$(dpkg-deb -c "$OUT")
has() { # has MODE PATH: a line of dpkg-deb -c with this mode and path
    printf '%s\n' "$LIST" | awk -v m="$1" -v p="./$2" '$1==m && $6==p {f=1} END {exit !f}' || no "missing $1 $2"
}
has -rwxr-xr-x usr/bin/ci-agent
has -rwxr-xr-x usr/bin/ci-seed
has -rw-r--r-- lib/systemd/system/ci-agent.service
has -rw-r--r-- lib/systemd/system/ci-agent-late.service
has -rw-r--r-- etc/ci-agent.conf
has -rw-r--r-- etc/logrotate.d/ci-agent
has -rw-r--r-- usr/share/doc/ci-agent/ci-agent.conf.sample
has -rw-r--r-- usr/share/doc/ci-agent/README.md
has -rw-r--r-- usr/share/doc/ci-agent/copyright
has -rw-r--r-- usr/share/doc/ci-agent/THIRD-PARTY-NOTICES
has -rw-r--r-- usr/share/man/man8/ci-agent.8.gz
has -rw-r--r-- usr/share/man/man1/ci-seed.1.gz
has -rw-r--r-- usr/share/man/man5/ci-agent.conf.5.gz
has -rw-r--r-- usr/share/bash-completion/completions/ci-agent
has -rw-r--r-- usr/share/bash-completion/completions/ci-seed
has -rw-r--r-- usr/share/zsh/vendor-completions/_ci-agent
has -rw-r--r-- usr/share/zsh/vendor-completions/_ci-seed
printf '%s\n' "$LIST" | awk '{print $2}' | grep -qvE '^(root/root|0/0)$' && no "files not owned by root"

C=$(mktemp -d /tmp/ci-agent-deb.XXXXXX); trap 'rm -rf "$C"' EXIT
dpkg-deb -e "$OUT" "$C/DEBIAN"
for f in /etc/ci-agent.conf /etc/logrotate.d/ci-agent; do
    grep -qx "$f" "$C/DEBIAN/conffiles" 2>/dev/null || no "conffiles lacks $f"
done
for s in postinst prerm postrm; do
    [ -x "$C/DEBIAN/$s" ] || no "maintainer script $s missing or not executable"
    cmp -s "$C/DEBIAN/$s" "packaging/debian/$s" || no "maintainer script $s differs from packaging/debian/$s"
done
[ "$(dpkg-deb -f "$OUT" Package)" = ci-agent ] || no "Package is not ci-agent"
[ "$(dpkg-deb -f "$OUT" Architecture)" = "$ARCH" ] || no "Architecture is not $ARCH"
case ", $(dpkg-deb -f "$OUT" Conflicts), " in *", cloud-init, "*) ;; *) no "Conflicts lacks cloud-init" ;; esac
[ -z "$(dpkg-deb -f "$OUT" Provides)" ] || no "Provides should stay empty (ci-agent is not all of cloud-init)"
grep -q 'ln -s ci-agent /usr/bin/cloud-init' "$C/DEBIAN/postinst" || no "postinst does not link cloud-init"
dep=$(dpkg-deb -f "$OUT" Depends)
[ -z "$dep" ] || no "static binaries should need no Depends, got: $dep"
dpkg-deb -x "$OUT" "$C/root"
for b in ci-agent ci-seed; do
    # file: "statically linked" (arm64) or "static-pie linked" (amd64); never an interpreter.
    what=$(file -b "$C/root/usr/bin/$b")
    case "$what" in *"$FILE_ARCH"*) ;; *) no "$b is not an $FILE_ARCH binary: $what" ;; esac
    case "$what" in *"statically linked"*|*"static-pie linked"*) ;; *) no "$b is not static: $what" ;; esac
    echo "check-deb: usr/bin/$b: $what" >&2
    if [ "$(uname -m)" = "$MACH" ]; then
        "$C/root/usr/bin/$b" --version >/dev/null 2>&1 || [ "$b" = ci-seed ] || no "$b --version failed"
    fi
done
cl_version=$(dpkg-parsechangelog -l packaging/debian/changelog -S Version)
[ "$cl_version" = "$(dpkg-deb -f "$OUT" Version)" ] || no "packaging/debian/changelog names $cl_version, the package is $(dpkg-deb -f "$OUT" Version)"
syn=$(dpkg-deb -f "$OUT" Description | sed -n 1p)   # sed reads to the end: no SIGPIPE under pipefail
[ "${#syn}" -lt 80 ] || no "synopsis is ${#syn} characters (Debian: under 80): $syn"
# The conffile is all comments: image builders use /etc/ci-agent.conf.d/, and upgrades
# never stop at a dpkg prompt.
grep -qvE '^[[:space:]]*(#|$)' "$C/root/etc/ci-agent.conf" && no "/etc/ci-agent.conf has a live (uncommented) line"
grep -q 'ExecStart=/usr/bin/ci-agent run --stage early' "$C/root/lib/systemd/system/ci-agent.service" || no "early unit ExecStart"
grep -q 'ExecStart=/usr/bin/ci-agent run --stage late' "$C/root/lib/systemd/system/ci-agent-late.service" || no "late unit ExecStart"

if [ "$LINTIAN" = 1 ]; then
    command -v lintian >/dev/null || { echo "check-deb: lintian missing (apt-get install lintian)" >&2; exit 1; }
    # --fail-on error,warning: what the overrides file does not reason away fails. Info
    # and pedantic tags are printed for the record only.
    if ! lintian --fail-on error,warning --display-info "$OUT" > "$C/lintian.txt" 2>&1; then
        no "lintian: $(grep -cE '^[EW]: ' "$C/lintian.txt") error(s)/warning(s)"
    fi
    sed 's/^/lintian: /' "$C/lintian.txt" >&2
fi

printf '%s\n' "$LIST" >&2
if [ "$bad" != 0 ]; then echo "check-deb: $bad problem(s) in $OUT" >&2; exit 1; fi
echo "check-deb: ok" >&2
echo "$OUT"
