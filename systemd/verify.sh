#!/bin/bash
# Check the unit files with `systemd-analyze verify`, offline, without touching the host:
# a temporary root holds the units, the host's stock units (targets we order against) and
# an executable at /usr/bin/ci-agent (the built binary when given, else a placeholder so
# that verify's "command is not executable" check has something to find).
#
#   systemd/verify.sh [CI_AGENT_BINARY]
#
# Pass 1 fails on any warning about our units (verify prints problems on stderr; any output
# is fatal). Pass 2 enables our units next to systemd-networkd and an ssh.service with
# Debian's ordering, then verifies the whole multi-user.target transaction: an ordering
# cycle through our Before=/After= lines (which pass 1 cannot see) fails it.
# Needs: systemd >= 250 (systemd-analyze verify --root), as on Debian 12.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=${1:-}
command -v systemd-analyze >/dev/null || { echo "verify.sh: systemd-analyze missing (apt-get install systemd)" >&2; exit 1; }
T=$(mktemp -d /tmp/ci-agent-verify.XXXXXX)
trap 'rm -rf "$T"' EXIT
mkdir -p "$T/usr/bin" "$T/usr/lib/systemd" "$T/etc/systemd/system"
cp -a /usr/lib/systemd/system "$T/usr/lib/systemd/"
ln -s usr/lib "$T/lib"
if [ -n "$BIN" ]; then install -m 0755 "$BIN" "$T/usr/bin/ci-agent"
else printf '#!/bin/sh\nexit 0\n' > "$T/usr/bin/ci-agent"; chmod 0755 "$T/usr/bin/ci-agent"; fi
units=()
for u in "$HERE"/*.service; do cp "$u" "$T/etc/systemd/system/"; units+=("$(basename "$u")"); done
out=$(systemd-analyze verify --root="$T" "${units[@]}" 2>&1) || { echo "$out" >&2; echo "verify.sh: FAILED" >&2; exit 1; }
if [ -n "$out" ]; then echo "$out" >&2; echo "verify.sh: FAILED (warnings)" >&2; exit 1; fi

W=$T/etc/systemd/system/multi-user.target.wants
mkdir -p "$W"
cat > "$T/etc/systemd/system/ssh.service" <<'EOF2'
# stand-in with the ordering of Debian's openssh-server unit
[Unit]
Description=OpenSSH server (ordering stand-in)
After=network.target auditd.service
[Service]
ExecStart=/usr/bin/ci-agent
[Install]
WantedBy=multi-user.target
EOF2
for u in "${units[@]}" ssh.service; do ln -s "/etc/systemd/system/$u" "$W/$u"; done
[ -f "$T/usr/lib/systemd/system/systemd-networkd.service" ] && ln -s /usr/lib/systemd/system/systemd-networkd.service "$W/"
out=$(systemd-analyze verify --root="$T" multi-user.target 2>&1) || true
if printf '%s\n' "$out" | grep -qi 'cycle'; then
    echo "$out" >&2; echo "verify.sh: FAILED (ordering cycle in multi-user.target)" >&2; exit 1
fi
echo "verify.sh: ${units[*]} ok (units, and multi-user.target without ordering cycles)"
