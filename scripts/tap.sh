# TAP-style helpers for the shell tests (rc.d/test.sh, packaging/openrc/test.sh), sourced:
#   ok DESC / nok DESC      count and print "ok N - DESC" / "not ok N - DESC"
#   check DESC COMMAND...   ok when COMMAND succeeds, else nok
#   tap_end NAME            print the plan "1..N"; exit 1 (naming NAME) on any failure
n=0; bad=0
ok() { n=$((n+1)); echo "ok $n - $1"; }
nok() { n=$((n+1)); bad=$((bad+1)); echo "not ok $n - $1"; }
check() {
    d=$1; shift
    if "$@"; then ok "$d"; else nok "$d"; fi
}
tap_end() {
    echo "1..$n"
    [ "$bad" = 0 ] || { echo "$1: $bad of $n failed" >&2; exit 1; }
}
