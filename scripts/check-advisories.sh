#!/usr/bin/env bash
# cargo deny's advisories check (RustSec), as far as this machine can run it.
#
#   bash scripts/check-advisories.sh
#
# 1. The real check: fetch the RustSec database and run `cargo deny check advisories` on
#    Cargo.lock (the targets and features of deny.toml). A known vulnerability fails.
# 2. When the database cannot be fetched (it lives on GitHub; a build machine without
#    GitHub cannot reach it), say so in capitals, and prove the wiring instead: a
#    database served on the loopback by `git daemon` holds one made-up advisory against
#    a crate in Cargo.lock, and the check must fail on it; the same database with the
#    advisory moved to a crate we do not use must pass. So deny.toml and the lock file are
#    known to be scanned, and only the database is missing.
#
# Exit: 0 checked (or wiring proven), 1 an advisory applies or the wiring check failed.
set -euo pipefail
cd "$(dirname "$0")/.."

if timeout 120 cargo deny fetch db >/dev/null 2>&1; then
    cargo deny --offline check advisories
    exit
fi
echo "advisories: NOT CHECKED against RustSec: its database (github.com/RustSec/advisory-db)"
echo "advisories: could not be fetched from this machine; checking the wiring instead"

work=$(mktemp -d)
daemon=
cleanup() {
    [ -n "$daemon" ] && kill "$daemon" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

# A crate every build links (ci-agent depends on it directly), and one nobody uses.
used=lexopt
unused=ci-agent-no-such-crate
grep -q "^name = \"$used\"$" Cargo.lock || { echo "advisories: $used is not in Cargo.lock" >&2; exit 1; }

db() { # db CRATE: the fixture repository with one advisory against CRATE
    rm -rf "$work/src" "$work/adb.git"
    mkdir -p "$work/src/crates/$1"
    cat > "$work/src/crates/$1/RUSTSEC-2099-0001.md" <<EOF
\`\`\`toml
[advisory]
id = "RUSTSEC-2099-0001"
package = "$1"
date = "2099-01-01"
url = "https://example.invalid/"

[versions]
patched = [">= 9999.0.0"]
\`\`\`

# A made-up advisory

Only for checking that cargo deny reads our lock file.
EOF
    git -C "$work/src" init -q -b main
    git -C "$work/src" add -A
    git -C "$work/src" -c user.name=t -c user.email=t@localhost commit -qm fixture
    git clone -q --bare "$work/src" "$work/adb.git"
}

# cargo deny wants a URL with a host name; a free port on the loopback.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
git daemon --listen=127.0.0.1 --port="$port" --base-path="$work" --export-all --reuseaddr \
    --pid-file="$work/daemon.pid" --detach
for _ in $(seq 50); do [ -s "$work/daemon.pid" ] && break; sleep 0.1; done
daemon=$(cat "$work/daemon.pid")

# deny.toml has no [advisories] table of its own (the defaults: RustSec); the fixture's
# copy adds one that points at the loopback.
cp deny.toml "$work/deny.toml"
cat >> "$work/deny.toml" <<EOF

[advisories]
db-urls = ["git://localhost:$port/adb.git"]
db-path = "$work/dbs"
EOF

check() { # check CRATE: 0 when cargo deny passes with the advisory against CRATE
    db "$1"
    rm -rf "$work/dbs"
    cargo deny --config "$work/deny.toml" fetch db >"$work/log" 2>&1 || {
        cat "$work/log" >&2
        echo "advisories: cannot fetch the fixture database from the loopback" >&2
        exit 1
    }
    cargo deny --config "$work/deny.toml" --offline check advisories >"$work/log" 2>&1
}

if check "$used"; then
    cat "$work/log" >&2
    echo "advisories: wiring FAILED: an advisory against $used (in Cargo.lock) was not reported" >&2
    exit 1
fi
grep -q "RUSTSEC-2099-0001" "$work/log" || {
    cat "$work/log" >&2
    echo "advisories: wiring FAILED: cargo deny failed, but not on the fixture advisory" >&2
    exit 1
}
if ! check "$unused"; then
    cat "$work/log" >&2
    echo "advisories: wiring FAILED: a database without advisories for our crates did not pass" >&2
    exit 1
fi
echo "advisories: wiring ok (a fixture advisory against $used fails the check; one against an unused crate passes)"
