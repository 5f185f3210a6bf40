#!/bin/bash
# Check packaging/logrotate/ci-agent with logrotate itself: a forced rotation of a copy
# whose paths point into a temporary directory (never the host's logs).
#   packaging/logrotate/check.sh     prints "ok - ...", exits 1 on an error or a warning
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
command -v logrotate >/dev/null || [ -x /usr/sbin/logrotate ] || { echo "logrotate/check.sh: logrotate missing (scripts/tools.tsv)" >&2; exit 2; }
LR=$(command -v logrotate || echo /usr/sbin/logrotate)
T=$(mktemp -d /tmp/ci-agent-logrotate.XXXXXX); trap 'rm -rf "$T"' EXIT
mkdir -p "$T/log"
sed -e "s|/var/log/|$T/log/|g" -e "s|su root root|su $(id -un) $(id -gn)|" "$HERE/ci-agent" > "$T/ci-agent"
chmod 0644 "$T/ci-agent"
for f in ci-agent.log vm-bootstrap.log ci-agent.console.log; do head -c 20000 /dev/zero > "$T/log/$f"; done
if ! "$LR" -v -f -s "$T/state" "$T/ci-agent" > "$T/out" 2>&1 || grep -qiE '^(error|warning)' "$T/out"; then
    cat "$T/out" >&2; echo "not ok - logrotate rejects packaging/logrotate/ci-agent" >&2; exit 1
fi
for f in ci-agent.log vm-bootstrap.log ci-agent.console.log; do
    # copytruncate: the live file stays (empty), the copy is .1 (delaycompress)
    if [ ! -s "$T/log/$f.1" ] || [ -s "$T/log/$f" ] || [ ! -e "$T/log/$f" ]; then
        cat "$T/out" >&2; echo "not ok - $f was not rotated by copy and truncate" >&2; exit 1
    fi
done
echo "ok - logrotate rotates all 3 logs with packaging/logrotate/ci-agent (forced, in a temp dir)"
