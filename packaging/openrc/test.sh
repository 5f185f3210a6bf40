#!/bin/sh
# Test the OpenRC scripts on any POSIX host, the way rc.d/test.sh tests the rc.d ones:
# `sh -n`, checkbashisms (if installed), the conf.d files, the dependencies, and the
# start/stop/status logic run by a stub openrc-run that implements the subset they use
# with OpenRC's semantics (conf.d sourced first, RC_SVCNAME, start_pre before start, the
# default start/stop of command_background services with pidfile, output_log and
# error_log). The agent is a fake that records its argv.
#   packaging/openrc/test.sh    prints "ok N" / "not ok N - why" lines, exits 1 on failure
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d /tmp/ci-agent-openrc.XXXXXX)
trap 'rm -rf "$T"' EXIT
. "$HERE/../../scripts/tap.sh"

# --- static checks -------------------------------------------------------------------
for s in ci-agent ci-agent-late ci-agent.confd ci-agent-late.confd; do
    check "$s: sh -n" sh -n "$HERE/$s"
    if command -v checkbashisms >/dev/null 2>&1; then
        check "$s: checkbashisms" checkbashisms -f "$HERE/$s"
    fi
done
for s in ci-agent.confd ci-agent-late.confd; do
    check "$s: only comments (the defaults are in the init script)" \
        sh -c "! grep -qvE '^[[:space:]]*(#|\$)' '$HERE/$s'"
done
for s in ci-agent ci-agent-late; do
    check "$s: shebang /sbin/openrc-run" [ "$(head -n 1 "$HERE/$s")" = "#!/sbin/openrc-run" ]
done

# --- stub environment -----------------------------------------------------------------
mkdir -p "$T/bin" "$T/run" "$T/log" "$T/etc/conf.d" "$T/init.d"
cat > "$T/openrc-run" <<'STUB'
# stub openrc-run (test only): openrc-run SCRIPT COMMAND
_script=$1; _cmd=$2
RC_SVCNAME=$(basename "$_script")
ebegin() { echo "* $*"; }
eend() { _rc=${1:-0}; [ "$_rc" = 0 ] || { shift; echo "* ERROR: $*"; }; return "$_rc"; }
einfo() { echo "* $*"; }
ewarn() { echo "* WARNING: $*"; }
eerror() { echo "* ERROR: $*"; }
for _d in need use want after before provide keyword; do
	eval "$_d() { echo \"$_d \$*\"; }"
done
_pid() { [ -f "$pidfile" ] && read -r _p < "$pidfile" && kill -0 "$_p" 2>/dev/null; }
start() {
	# default start, as start-stop-daemon --background --make-pidfile does it
	# shellcheck disable=SC2086
	if [ "${command_background:-}" = true ]; then
		"$command" $command_args >> "$output_log" 2>> "$error_log" &
		echo $! > "$pidfile"
	else
		"$command" $command_args
	fi
}
stop() { if _pid; then kill -TERM "$_p"; while kill -0 "$_p" 2>/dev/null; do sleep 0.1; done; fi; rm -f "$pidfile"; }
status() { if _pid; then echo "status: started"; else echo "status: stopped"; return 3; fi; }
[ ! -f "$STUB_CONFD/$RC_SVCNAME" ] || . "$STUB_CONFD/$RC_SVCNAME"
. "$_script"
case $_cmd in
start)
	if command -v start_pre >/dev/null 2>&1; then start_pre || exit 1; fi
	start ;;
stop | status) $_cmd ;;
depend) depend ;;
*) echo "stub openrc-run: $_cmd not supported"; exit 1 ;;
esac
STUB
cat > "$T/bin/fake-agent" <<'FAKE'
#!/bin/sh
echo "$*" >> "$FAKE_AGENT_LOG"
[ -z "${FAKE_AGENT_SLEEP:-}" ] || sleep "$FAKE_AGENT_SLEEP"
FAKE
chmod +x "$T/bin/fake-agent"
for s in ci-agent ci-agent-late; do
    sed -e "s|/usr/bin/ci-agent|$T/bin/fake-agent|" -e "s|/run/|$T/run/|" \
        -e "s|/var/log/|$T/log/|" -e "s|/etc/ci-agent.conf|$T/etc/ci-agent.conf|" \
        "$HERE/$s" > "$T/init.d/$s"
done
export STUB_CONFD="$T/etc/conf.d" FAKE_AGENT_LOG="$T/agent.log"
rc() { sh "$T/openrc-run" "$T/init.d/$1" "$2"; }
confd() { # confd SERVICE LINES...: write /etc/conf.d/SERVICE
    f="$STUB_CONFD/$1"; shift
    printf '%s\n' "$@" > "$f"
    : > "$FAKE_AGENT_LOG"
}
calls() { cat "$FAKE_AGENT_LOG"; }

deps=$(rc ci-agent depend)
for d in "need localmount" "before hostname net networking sshd"; do
    check "ci-agent depend: $d" sh -c "printf '%s\n' \"\$1\" | grep -qx \"\$2\"" _ "$deps" "$d"
done
deps=$(rc ci-agent-late depend)
for d in "need net" "after ci-agent sshd"; do
    check "ci-agent-late depend: $d" sh -c "printf '%s\n' \"\$1\" | grep -qx \"\$2\"" _ "$deps" "$d"
done

# No config file: the agent runs on its defaults (before: --config of a missing file, exit 2).
confd ci-agent ''
rc ci-agent start > "$T/out" 2>&1
check "early without /etc/ci-agent.conf: run --stage early (no --config)" [ "$(calls)" = "run --stage early" ]

: > "$T/etc/ci-agent.conf"
confd ci-agent 'ci_agent_flags="--once --verbose"'
rc ci-agent start > "$T/out" 2>&1
check "early with the config: run --stage early --config CONF + flags" \
    [ "$(calls)" = "run --stage early --config $T/etc/ci-agent.conf --once --verbose" ]

confd ci-agent "ci_agent_config=$T/etc/other.conf"
rc ci-agent start > "$T/out" 2>&1
check "early: a configured file that does not exist is not passed" [ "$(calls)" = "run --stage early" ]

FAKE_AGENT_SLEEP=30; export FAKE_AGENT_SLEEP
confd ci-agent-late 'ci_agent_late_flags="--verbose"'
rc ci-agent-late start > "$T/out" 2>&1
i=0; while [ -z "$(calls)" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
check "late: run --stage late --config CONF + flags, in the background" \
    [ "$(calls)" = "run --stage late --config $T/etc/ci-agent.conf --verbose" ]
check "late: pidfile written" [ -s "$T/run/ci-agent-late.pid" ]
check "late: status says started" sh -c "sh '$T/openrc-run' '$T/init.d/ci-agent-late' status >/dev/null"
rc ci-agent-late stop > "$T/out" 2>&1
check "late: stop ends it and removes the pidfile" [ ! -e "$T/run/ci-agent-late.pid" ]
check "late: status says stopped" sh -c "! sh '$T/openrc-run' '$T/init.d/ci-agent-late' status >/dev/null"
unset FAKE_AGENT_SLEEP

rm -f "$T/etc/ci-agent.conf"
confd ci-agent-late ''
rc ci-agent-late start > "$T/out" 2>&1
i=0; while [ -z "$(calls)" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
check "late without the config: run --stage late" [ "$(calls | sed 's/ *$//')" = "run --stage late" ]
rc ci-agent-late stop > /dev/null 2>&1 || true

tap_end packaging/openrc/test.sh
