#!/usr/bin/env bash
# Build ci-agent and run its first-boot job on the bundled example seed, confined to a
# temporary root: files land under that root, and commands that would change this
# machine (useradd, package installs, sethostname, runcmd) are recorded, not run.
#
#   scripts/demo.sh [SEED]      (default: examples/seed)
set -euo pipefail
cd "$(dirname "$0")/.."
seed=${1:-examples/seed}
cargo build --release --quiet --bin ci-agent
agent=target/release/ci-agent
root=$(mktemp -d /tmp/ci-agent-demo.XXXXXX)
mkdir -p "$root/etc" "$root/usr/bin"
# A minimal template: the users and groups a Debian image has, and apt-get.
printf 'root:x:0:0:root:/root:/bin/bash\n' >"$root/etc/passwd"
printf 'root:x:0:\nadm:x:4:\nsudo:x:27:\n' >"$root/etc/group"
: >"$root/usr/bin/apt-get"
: >"$root/firstboot"

echo "== ci-agent query --seed $seed"
"$agent" query --seed "$seed" --root "$root"
echo
echo "== ci-agent run --root $root --seed $seed"
rc=0
"$agent" run --root "$root" --seed "$seed" || rc=$?
echo
echo "== ci-agent status --root $root"
"$agent" status --root "$root" || true
echo
echo "== files written under $root"
(cd "$root" && find . -type f ! -path './var/lib/ci-agent/instances/*' | sort | sed 's|^\.||')
echo
state=$root/var/lib/ci-agent
echo "== commands recorded instead of run ($state/commands.log)"
cat "$state/commands.log" 2>/dev/null || echo "(none)"
echo
echo "run exit code: $rc; inspect the result under $root"
exit "$rc"
