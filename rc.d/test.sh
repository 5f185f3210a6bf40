#!/bin/sh
# Test the rc.d scripts on any POSIX host: `sh -n`, checkbashisms (if installed), the rcorder
# headers, and their start/stop/status logic run against a stub rc.subr that implements
# the subset they use with FreeBSD's semantics (rcvar gate, ${name}_flags -> rc_flags,
# ${name}_program override, load_rc_config, checkyesno, wait_for_pids). The agent and
# daemon(8) are fakes that record their argv.
#   rc.d/test.sh          prints "ok N" / "not ok N - why" lines, exits 1 on any failure
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d /tmp/ci-agent-rcd.XXXXXX)
trap 'rm -rf "$T"' EXIT
. "$HERE/../scripts/tap.sh"

# --- static checks -------------------------------------------------------------------
for s in ci_agent ci_agent_late; do
    check "$s: sh -n" sh -n "$HERE/$s"
    if command -v checkbashisms >/dev/null 2>&1; then
        check "$s: checkbashisms" checkbashisms -f "$HERE/$s"
    fi
done
hdr() { grep -E "^# $2:" "$HERE/$1" | sed "s/^# $2: *//"; }
has_word() { case " $1 " in *" $2 "*) return 0 ;; *) return 1 ;; esac; }
check "ci_agent PROVIDE" [ "$(hdr ci_agent PROVIDE)" = ci_agent ]
check "ci_agent REQUIRE FILESYSTEMS" has_word "$(hdr ci_agent REQUIRE)" FILESYSTEMS
for w in NETWORKING hostname sshd; do check "ci_agent BEFORE $w" has_word "$(hdr ci_agent BEFORE)" "$w"; done
check "ci_agent KEYWORD firstboot" has_word "$(hdr ci_agent KEYWORD)" firstboot
check "ci_agent_late PROVIDE" [ "$(hdr ci_agent_late PROVIDE)" = ci_agent_late ]
check "ci_agent_late REQUIRE LOGIN (after NETWORKING, sshd)" has_word "$(hdr ci_agent_late REQUIRE)" LOGIN
check "ci_agent_late REQUIRE ci_agent" has_word "$(hdr ci_agent_late REQUIRE)" ci_agent
check "ci_agent_late is not firstboot-only (bootstrap retries across boots)" \
    sh -c "! grep -E '^# KEYWORD:.*firstboot' '$HERE/ci_agent_late'"
for s in ci_agent ci_agent_late; do
    check "$s: rcvar=ci_agent_enable" grep -qx 'rcvar="ci_agent_enable"' "$HERE/$s"
done
for s in ci_agent ci_agent_late; do
    check "$s: paths through %%PREFIX%% (substituted by make-pkg.sh)" \
        sh -c "grep -q 'command=\"%%PREFIX%%/bin/ci-agent\"' '$HERE/$s' && ! grep -q /usr/local '$HERE/$s'"
done

# --- stub environment -----------------------------------------------------------------
mkdir -p "$T/bin" "$T/run" "$T/etc"
cat > "$T/rc.subr" <<'STUB'
# stub rc.subr (test only)
checkyesno() {
	eval _v=\$$1
	case "$_v" in
	[Yy][Ee][Ss]|[Tt][Rr][Uu][Ee]|[Oo][Nn]|1) return 0 ;;
	*) return 1 ;;
	esac
}
load_rc_config() { [ ! -f "$STUB_RCCONF" ] || . "$STUB_RCCONF"; }
wait_for_pids() { for _p in "$@"; do while kill -0 "$_p" 2>/dev/null; do sleep 0.1; done; done; }
run_rc_command() {
	_arg=$1
	eval "_prog=\${${name}_program:-}"
	[ -z "$_prog" ] || command=$_prog
	eval "rc_flags=\${${name}_flags:-}"
	case "$_arg" in
	one*) _arg=${_arg#one} ;;
	*) if ! checkyesno "$rcvar"; then echo "rcvar $rcvar is not enabled"; return 0; fi ;;
	esac
	eval "_cmd=\${${_arg}_cmd:-}"
	[ -n "$_cmd" ] || { echo "no ${_arg} method"; return 1; }
	$_cmd
}
STUB
cat > "$T/bin/fake-agent" <<'FAKE'
#!/bin/sh
echo "$*" >> "$FAKE_AGENT_LOG"
[ -z "${FAKE_AGENT_SLEEP:-}" ] || sleep "$FAKE_AGENT_SLEEP"
FAKE
cat > "$T/bin/daemon" <<'FAKE'
#!/bin/sh
# fake daemon(8): daemon -f -p PIDFILE -o OUTFILE CMD...
echo "daemon $*" >> "$FAKE_AGENT_LOG"
while [ $# -gt 0 ]; do
	case "$1" in
	-f) shift ;;
	-p) pf=$2; shift 2 ;;
	-o) of=$2; shift 2 ;;
	*) break ;;
	esac
done
"$@" >> "$of" 2>&1 &
echo $! > "$pf"
FAKE
chmod +x "$T/bin/fake-agent" "$T/bin/daemon"
for s in ci_agent ci_agent_late; do
    sed -e "s|^\. /etc/rc.subr|. $T/rc.subr|" -e "s|/var/run/|$T/run/|" -e "s|%%PREFIX%%|/usr/local|g" \
        "$HERE/$s" > "$T/$s"
done
export STUB_RCCONF="$T/etc/rc.conf" FAKE_AGENT_LOG="$T/agent.log" PATH="$T/bin:$PATH"
conf() { # conf LINES...: write the stub rc.conf
    printf '%s\n' "ci_agent_program=$T/bin/fake-agent" "ci_agent_late_program=$T/bin/fake-agent" \
        "ci_agent_late_log=$T/late.out" "$@" > "$STUB_RCCONF"
    : > "$FAKE_AGENT_LOG"
}
calls() { cat "$FAKE_AGENT_LOG"; }

conf 'ci_agent_enable="NO"'
sh "$T/ci_agent" start > "$T/out" 2>&1
check "disabled: early does not run the agent" [ -z "$(calls)" ]
sh "$T/ci_agent_late" start > "$T/out" 2>&1
check "disabled: late does not run the agent" [ -z "$(calls)" ]

: > "$T/etc/ci-agent.conf"
conf 'ci_agent_enable="YES"' "ci_agent_config=$T/etc/ci-agent.conf" 'ci_agent_flags="--once"'
sh "$T/ci_agent" start > "$T/out" 2>&1
check "early: run --stage early --config CONF --once" [ "$(calls)" = "run --stage early --config $T/etc/ci-agent.conf --once" ]

conf 'ci_agent_enable="YES"' "ci_agent_config=$T/etc/missing.conf"
sh "$T/ci_agent" start > "$T/out" 2>&1
check "early: no --config when the file is absent" [ "$(calls)" = "run --stage early" ]

conf 'ci_agent_enable="YES"' "ci_agent_config=$T/etc/ci-agent.conf" 'ci_agent_late_background="NO"' 'ci_agent_late_flags="--once"'
sh "$T/ci_agent_late" start > "$T/out" 2>&1
check "late foreground: run --stage late --config CONF --once" [ "$(calls)" = "run --stage late --config $T/etc/ci-agent.conf --once" ]

conf 'ci_agent_enable="YES"' "ci_agent_config=$T/etc/ci-agent.conf"
export FAKE_AGENT_SLEEP=30
sh "$T/ci_agent_late" start > "$T/out" 2>&1
check "late background: daemon -f -p PIDFILE -o LOG" grep -qx "daemon -f -p $T/run/ci_agent_late.pid -o $T/late.out $T/bin/fake-agent run --stage late --config $T/etc/ci-agent.conf" "$FAKE_AGENT_LOG"
i=0; while [ "$(grep -c '^run --stage late' "$FAKE_AGENT_LOG")" = 0 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
check "late background: the agent runs" grep -qx "run --stage late --config $T/etc/ci-agent.conf" "$FAKE_AGENT_LOG"
check "late background: status says running" sh "$T/ci_agent_late" status
sh "$T/ci_agent_late" stop > "$T/out" 2>&1
check "late background: stop ends it and removes the pidfile" [ ! -e "$T/run/ci_agent_late.pid" ]
check "late background: status says stopped" sh -c "! sh '$T/ci_agent_late' status >/dev/null"
unset FAKE_AGENT_SLEEP

tap_end rc.d/test.sh
