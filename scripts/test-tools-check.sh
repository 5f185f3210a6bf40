#!/usr/bin/env bash
# Tests of the tools table and its check (scripts/tools.tsv, scripts/tools.sh, scripts/test.sh):
#   - scripts/test.sh on a machine lacking a tool names the tool and its Debian package and
#     exits non-zero before running anything (a table with a tool no machine has stands in for
#     the missing one; CI_AGENT_NO_INSTALL keeps it from installing);
#   - tools.sh check is silent and exits 0 when everything is there;
#   - every tool a Rust test runs (Command::new / have / tool_path) is in the table, so the
#     install step and the check cover it.
set -uo pipefail
cd "$(dirname "$0")/.."
pass=0; fail=0
ok() { pass=$((pass + 1)); echo "ok - $*"; }
no() { fail=$((fail + 1)); echo "not ok - $*"; }
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT

# A table with three tools no machine has: one Debian, one cargo, one PyPI.
{ cat scripts/tools.tsv
  printf 'ci-agent-no-such-tool\tci-agent-no-such-pkg\ttest\ttest-tools-check\n'
  printf 'ci-agent-no-such-crate\tcargo:ci-agent-no-such-crate\ttest\ttest-tools-check\n'
  printf 'ci-agent-no-such-wheel\tpypi:ci-agent-no-such-wheel==1.0\ttest\ttest-tools-check\n'
} > "$T/tools.tsv"

out=$(TOOLS_TSV="$T/tools.tsv" CI_AGENT_NO_INSTALL=1 bash scripts/test.sh --no-e2e 2>&1); rc=$?
[ "$rc" = 2 ] && ok "test.sh exits 2 when a tool is missing" || no "test.sh exited $rc, want 2"
grep -qx 'missing: ci-agent-no-such-tool (Debian package ci-agent-no-such-pkg)' <<<"$out" &&
    ok "test.sh names the tool and its Debian package" || no "no missing line for the Debian tool in: $out"
grep -qx 'missing: ci-agent-no-such-crate (cargo install --locked ci-agent-no-such-crate)' <<<"$out" &&
    ok "test.sh names the cargo tool and how to install it" || no "no missing line for the cargo tool in: $out"
grep -qx "missing: ci-agent-no-such-wheel (pip install ci-agent-no-such-wheel==1.0 into $(sh scripts/tools.sh venv): scripts/install-deps.sh)" <<<"$out" &&
    ok "test.sh names the PyPI tool and where it goes" || no "no missing line for the PyPI tool in: $out"
[ "$(grep -c '^missing: ' <<<"$out")" = 3 ] && ok "only the missing tools are named" ||
    no "want exactly 3 missing lines, got: $out"
grep -q '=== cargo test' <<<"$out" && no "test.sh ran the tests anyway" || ok "test.sh stopped before the tests"

out=$(TOOLS_TSV="$T/tools.tsv" sh scripts/tools.sh check all 2>&1 >/dev/null); rc=$?
[ "$rc" = 2 ] && ok "tools.sh check exits 2" || no "tools.sh check exited $rc"

printf 'sh\tdash\ttest\tx\n' > "$T/one.tsv"
out=$(TOOLS_TSV="$T/one.tsv" sh scripts/tools.sh check test 2>&1); rc=$?
[ "$rc" = 0 ] && [ -z "$out" ] && ok "tools.sh check is silent when nothing is missing" || no "rc=$rc out=$out"

[ "$(TOOLS_TSV="$T/tools.tsv" sh scripts/tools.sh pypi test | grep -c no-such)" = 1 ] &&
    [ "$(TOOLS_TSV="$T/tools.tsv" sh scripts/tools.sh packages test | grep -c no-such-wheel)" = 0 ] &&
    ok "a pypi: row is a pip requirement, not a Debian package" || no "pypi rows leak into packages"

out=$(sh scripts/tools.sh check nosuchscope 2>&1); rc=$?
[ "$rc" = 2 ] && ok "an unknown scope is a usage error" || no "unknown scope: rc=$rc"

# An unpack: row (a package its script unpacks itself, e.g. nginx, whose install would start
# a service) is neither installed nor checked.
printf 'ci-agent-no-such-server\tunpack:ci-agent-no-such-pkg\tbench\tx\n' > "$T/unpack.tsv"
out=$(TOOLS_TSV="$T/unpack.tsv" sh scripts/tools.sh packages all; TOOLS_TSV="$T/unpack.tsv" sh scripts/tools.sh check all 2>&1); rc=$?
[ "$rc" = 0 ] && [ -z "$out" ] && ok "unpack: rows are neither installed nor checked" || no "unpack row: rc=$rc out=$out"

# Every tool a Rust test or bench runs is in the table.
tools=$(cut -f1 scripts/tools.tsv | grep -v '^#')
used=$(grep -rhoE '(Command::new|have|tool_path)\("[^"/]+"\)' tests benches | sed -E 's/.*\("([^"]+)"\)/\1/' | sort -u)
for u in $used; do
    case $u in sh | bash | cargo | env | true | false) continue ;; esac
    grep -qx -- "$u" <<<"$tools" && ok "$u is in scripts/tools.tsv" || no "$u is run by a test but is not in scripts/tools.tsv"
done

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
