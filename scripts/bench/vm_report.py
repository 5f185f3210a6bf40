#!/usr/bin/python3
"""Tables for scripts/bench/vm.sh: per-run figures and medians from the serial logs.

    vm_report.py RUNS-DIR WORK-DIR

Per boot (RUNS-DIR/VARIANT-I.log + .log.boot): qemu wall, host load/steal, systemd's
kernel/userspace split, guest busy CPU at ready, and per provisioning unit its active time
(ActiveEnter - InactiveExit; for the Type=exec ci-agent-late: ExecMainExit -
ExecMainStart), CPUUsageNSec and cgroup memory.peak (saved by the e2e-mempeak helper at the
unit's end). `e2e-floor` is a oneshot running /bin/true plus the same helper: its CPU and
peak are the measuring overhead included in every unit's figures.

Time to SSH (RUNS-DIR/VARIANT-I.log.ssh, from ssh_wait.py): the first successful
`ssh ... true` through the hostfwd, minus qemu's start (boot.sh's start_ns); per variant
the median and range, and the part above the floor (the `base` variant: no provisioning).
Variants: ci (cloud-init), agent (ci-agent), agentkeys (ci-agent, host keys in the seed),
base (neither).
"""
import glob
import os
import re
import statistics as st
import sys

runs_dir, work = sys.argv[1], sys.argv[2]
CI_UNITS = ["cloud-init-local", "cloud-init", "cloud-config", "cloud-final"]
AG_UNITS = ["ci-agent", "ci-agent-late"]


def dur(s):
    t = 0.0
    for n, u in re.findall(r"([\d.]+)(min|ms|s|h)\b", s):
        t += float(n) * {"h": 3600, "min": 60, "s": 1, "ms": 0.001}[u]
    return t


def parse(path):
    txt = open(path, errors="replace").read().replace("\r", "")
    boot = open(path + ".boot").read()
    name = os.path.basename(path)[:-4]
    r = {"name": name, "variant": name.split("-")[0]}
    m = re.search(r"wall_ms=(\d+)", boot)
    r["wall"] = int(m.group(1)) / 1000 if m else None
    m = re.search(r"^load (\S+)", boot, re.M)
    r["load"] = m.group(1) if m else "?"
    m = re.search(r"^load1 (\S+)", boot, re.M)
    r["load_after"] = m.group(1) if m else "?"
    m = re.search(r"start_ns=(\d+)", boot)
    start_ns = int(m.group(1)) if m else None
    r["tts"] = None
    if os.path.exists(path + ".ssh"):
        m = re.search(r"ssh_ok_ns=(\d+)", open(path + ".ssh").read())
        if m and start_ns:
            r["tts"] = (int(m.group(1)) - start_ns) / 1e9
    m = re.search(r"E2E: ssh-login accepted=(\d+)", txt)
    r["logins"] = int(m.group(1)) if m else None
    m = re.search(r"qemu_cpu user=([\d.]+) sys=([\d.]+)", boot)
    r["qemu_cpu"] = float(m.group(1)) + float(m.group(2)) if m else None
    h0 = re.search(r"hoststat0 cpu\s+(.*)", boot)
    h1 = re.search(r"hoststat1 cpu\s+(.*)", boot)
    r["steal"] = (int(h1.group(1).split()[7]) - int(h0.group(1).split()[7])) / 100.0 if h0 and h1 else None
    m = re.search(r"E2E: ready uptime=([\d.]+) state=(\S+)", txt)
    if not m:
        r["bad"] = True
        return r
    r["ready"], r["state"] = float(m.group(1)), m.group(2)
    m = re.search(r"E2E: DONE uptime=([\d.]+)", txt)
    r["done"] = float(m.group(1)) if m else None
    m = re.search(r"Startup finished in (.*?) \(kernel\) \+ (.*?) \(userspace\)", txt)
    r["kernel"], r["userspace"] = (dur(m.group(1)), dur(m.group(2))) if m else (None, None)
    m = re.search(r"E2E: procstat cpu\s+(.*)", txt)
    if m:
        f = [int(x) for x in m.group(1).split()]
        r["busy"] = (f[0] + f[1] + f[2] + f[5] + f[6]) / 100.0
    m = re.search(r"cgroup system.slice usage_usec (\d+)", txt)
    r["sysslice"] = int(m.group(1)) / 1e6 if m else None
    r["units"] = {}
    for u in CI_UNITS + AG_UNITS + ["e2e-floor", "ssh"]:
        m = re.search(r"E2E: unit %s (.*)" % re.escape(u), txt)
        if not m:
            continue
        kv = dict(re.findall(r"(\w+)=(\S*)", m.group(1)))
        g = lambda k: int(kv.get(k, "0") or 0) if (kv.get(k, "0") or "0").isdigit() else 0
        s, e = g("InactiveExitTimestampMonotonic"), g("ActiveEnterTimestampMonotonic")
        if u == "ci-agent-late":
            s, e = g("ExecMainStartTimestampMonotonic"), g("ExecMainExitTimestampMonotonic")
        if not s:
            continue  # never started (disabled variant)
        cpu = kv.get("CPUUsageNSec", "")
        r["units"][u] = {
            "active": (e - s) / 1e6 if e else None,
            "start": s / 1e6,
            "end": e / 1e6 if e else None,
            "cpu": int(cpu) / 1e9 if cpu.isdigit() else None,
            "peak": int(kv["peak"]) / 2**20 if kv.get("peak", "").isdigit() else None,
            "result": kv.get("Result"),
        }
    for key, units in (("ci", CI_UNITS), ("ag", AG_UNITS)):
        us = [r["units"][u] for u in units if u in r["units"]]
        if us:
            ends = [v["end"] for v in us if v["end"]]
            r[key + "_span"] = max(ends) - min(v["start"] for v in us) if ends else None
            r[key + "_cpu"] = sum(v["cpu"] or 0 for v in us)
            r[key + "_peak"] = max(v["peak"] or 0 for v in us)
            r[key + "_active"] = sum(v["active"] or 0 for v in us)
    fl = r["units"].get("e2e-floor")
    r["floor_cpu"] = fl["cpu"] if fl else None
    r["floor_peak"] = fl["peak"] if fl else None
    ok = []
    ok.append("host" if "check hostname=anchor-vm etc_hostname=anchor-vm" in txt else "-")
    ok.append("runcmd" if "check runcmd_file=runcmd-done" in txt else "-")
    ok.append("files" if "check write_files=written-by-cloud-init" in txt else "-")
    ok.append("deploy" if re.search(r"check user deploy passwd=\[deploy:.*groups=\[deploy sudo\] authorized_keys=1", txt) else "-")
    ok.append("debian" if re.search(r"check user debian passwd=\[debian:.*authorized_keys=1", txt) else "-")
    ok.append("pwauth" if "passwordauthentication yes" in txt else "-")
    r["checks"] = ",".join(ok)
    r["failed"] = " ".join(re.findall(r"E2E: failed (\S+)", txt))
    # ci-agent's own per-module times from its console log ("module X: ok (N ms)")
    m = re.search(r"\[\s*([\d.]+)\] ci-agent\[\d+\]: ci-agent: seed ", txt)
    if m and "ci-agent" in r["units"]:
        r["seed_found"] = float(m.group(1)) - r["units"]["ci-agent"]["start"]
    r["modules"] = {m: int(ms) / 1000 for m, ms in re.findall(r"ci-agent: module (\w+): \w+ \((\d+) ms\)", txt)}
    return r


def order(p):
    b = os.path.basename(p)
    m = re.match(r"(\w+)-(\d+)\.log$", b)
    return ({"ci": 0, "agent": 1, "agentkeys": 2, "base": 3}.get(m.group(1), 9), int(m.group(2))) if m else (9, 0)


runs = [parse(p) for p in sorted(glob.glob(os.path.join(runs_dir, "*-*.log")), key=order)]
bad = [r["name"] for r in runs if r.get("bad")]
runs = [r for r in runs if not r.get("bad")]
f = lambda x, d=1: "-" if x is None else f"{x:.{d}f}"


def med(rs, k):
    v = [r[k] for r in rs if r.get(k) is not None]
    return st.median(v) if v else None


def umed(rs, u, k):
    v = [r["units"][u][k] for r in rs if u in r["units"] and r["units"][u].get(k) is not None]
    return st.median(v) if v else None


ver = lambda n: open(os.path.join(work, n)).read().strip() if os.path.exists(os.path.join(work, n)) else "?"
print(f"ci-agent {ver('deb-version')} (our .deb, built at commit {ver('commit')}) vs cloud-init {ver('cloud-init-version')}, one image, "
      f"variant by kernel command line.\n")
if bad:
    print(f"Boots without a report (timeout or failure, left out): {', '.join(bad)}\n")
print("#### Per boot\n")
print("| run | load before / after | steal s | time to SSH s | qemu wall s | kernel s | userspace s | busy CPU at ready s | provisioning units: active s / CPU s / peak MiB | span s | Σ CPU s | max peak MiB | floor unit CPU s / peak MiB | applied | failed units |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for r in runs:
    key = {"ci": "ci", "agent": "ag", "agentkeys": "ag"}.get(r["variant"])
    units = CI_UNITS if key == "ci" else AG_UNITS if key == "ag" else []
    cells = "; ".join(f"{u} {f(r['units'][u]['active'], 2)} / {f(r['units'][u]['cpu'], 3)} / {f(r['units'][u]['peak'])}"
                      + ("" if r["units"][u]["result"] == "success" else f" ({r['units'][u]['result']})")
                      for u in units if u in r["units"]) or "-"
    print(f"| {r['name']} | {r['load']} / {r['load_after']} | {f(r['steal'])} | {f(r['tts'])} | {f(r['wall'])} | {f(r['kernel'])} | {f(r['userspace'])} | {f(r.get('busy'))} | "
          f"{cells} | {f(r.get(key + '_span') if key else None, 2)} | {f(r.get(key + '_cpu') if key else None, 3)} | "
          f"{f(r.get(key + '_peak') if key else None)} | {f(r['floor_cpu'], 3)} / {f(r['floor_peak'])} | {r['checks']} | {r['failed']} |")
print()
by = {v: [r for r in runs if r["variant"] == v] for v in ("ci", "agent", "agentkeys", "base")}
NAMES = {"ci": "cloud-init", "agent": "ci-agent (generates keys)", "agentkeys": "ci-agent (keys from ci-seed)",
         "base": "floor (no agent, template keys)"}
if any(r["tts"] is not None for r in runs):
    floor = med(by["base"], "tts")
    print("#### Time to SSH (qemu start → first successful `ssh -i KEY USER@127.0.0.1 -p PORT true`)\n")
    print("| variant | n | median s | min–max s | median − floor s | above floor / cloud-init's above floor | load at boot start, min–max |")
    print("|---|---|---|---|---|---|---|")
    ci_above = med(by["ci"], "tts") - floor if med(by["ci"], "tts") is not None and floor is not None else None
    for v in ("ci", "agent", "agentkeys", "base"):
        v_runs = [r for r in by[v] if r["tts"] is not None]
        if not by[v]:
            continue
        t = [r["tts"] for r in v_runs]
        loads = [float(r["load"]) for r in by[v] if r["load"] not in ("?", "")]
        m_ = st.median(t) if t else None
        above = m_ - floor if m_ is not None and floor is not None else None
        ratio = "-"
        if above is not None and ci_above and v not in ("ci", "base"):
            ratio = f"1/{ci_above / above:.1f}" if above > 0 else "≤ 0: at the floor"

        print(f"| {NAMES[v]} | {len(t)} of {len(by[v])} | {f(m_)} | {f(min(t) if t else None)}–{f(max(t) if t else None)} | "
              f"{f(above) if v != 'base' else '-'} | {ratio} | "
              f"{min(loads):.2f}–{max(loads):.2f} |" if loads else "| - |")
    print()

print(f"#### Medians (cloud-init n={len(by['ci'])}, ci-agent n={len(by['agent'])}, ci-agent with seed keys n={len(by['agentkeys'])}, neither n={len(by['base'])})\n")
cols = [("ci", "ci"), ("agent", "ag"), ("agentkeys", "ag")]
print("| figure | cloud-init | ci-agent | ci-agent, seed keys | neither (baseline) | cloud-init − baseline | ci-agent − baseline | seed keys − baseline |")
print("|---|---|---|---|---|---|---|---|")
for k, label in [("wall", "qemu wall to poweroff, s"), ("userspace", "systemd userspace (Startup finished), s"),
                 ("ready", "guest uptime at ready, s"), ("busy", "guest busy CPU at ready (/proc/stat), s"),
                 ("sysslice", "system.slice CPU at ready, s")]:
    c = med(by["base"], k)
    vals = [med(by[v], k) for v, _ in cols]
    diffs = [f(a - c) if a is not None and c is not None else "-" for a in vals]
    print(f"| {label} | {' | '.join(f(a) for a in vals)} | {f(c)} | {' | '.join(diffs)} |")
for k, label, d in [("span", "provisioning span (first unit start → last unit end), s", 2),
                    ("active", "Σ provisioning unit active time, s", 2),
                    ("cpu", "Σ provisioning unit CPU (CPUUsageNSec), s", 3),
                    ("peak", "max unit memory.peak, MiB", 1)]:
    print(f"| {label} | {' | '.join(f(med(by[v], p + '_' + k), d) for v, p in cols)} | | | | |")
print(f"| measuring overhead per unit (e2e-floor: /bin/true + helper) CPU s / peak MiB | "
      + " | ".join(f"{f(med(by[v], 'floor_cpu'), 3)} / {f(med(by[v], 'floor_peak'))}" for v in ("ci", "agent", "agentkeys", "base")) + " | | | |")
for u in CI_UNITS:
    print(f"| {u}.service active s / CPU s / peak MiB | {f(umed(by['ci'], u, 'active'), 2)} / {f(umed(by['ci'], u, 'cpu'), 3)} / {f(umed(by['ci'], u, 'peak'))} | | | | | | |")
for u in AG_UNITS:
    print(f"| {u}.service active s / CPU s / peak MiB | | " + " | ".join(
        f"{f(umed(by[v], u, 'active'), 2)} / {f(umed(by[v], u, 'cpu'), 3)} / {f(umed(by[v], u, 'peak'))}" for v in ("agent", "agentkeys")) + " | | | | |")
if med(by["agent"], "seed_found") is not None:
    v = [r["seed_found"] for r in by["agent"] if r.get("seed_found") is not None]
    print(f"\nci-agent.service start → its `seed ...: instance-id` log line (process start, seed probe "
          f"and read, parse): median {st.median(v):.2f} s ({min(v):.2f}–{max(v):.2f}; console timestamps).")
ag = by["agent"] + by["agentkeys"]
mods = sorted({m for r in ag for m in r.get("modules", {})},
              key=lambda m: -st.median([r["modules"][m] for r in ag if m in r.get("modules", {})]))
if mods:
    print("\n#### ci-agent modules (its log's `module X: ok (N ms)`), median and range of the boots\n")
    print("| module | ci-agent generating keys: median s | min–max s | ci-agent, keys from the seed: median s | min–max s |")
    print("|---|---|---|---|---|")
    for m in mods:
        cells = []
        for v in ("agent", "agentkeys"):
            t = [r["modules"][m] for r in by[v] if m in r.get("modules", {})]
            cells.append(f"{st.median(t):.2f} | {min(t):.2f}–{max(t):.2f}" if t else "- | -")
        print(f"| {m} | {' | '.join(cells)} |")
ci_cpu, ci_span, ci_peak = med(by["ci"], "ci_cpu"), med(by["ci"], "ci_span"), med(by["ci"], "ci_peak")
for v in ("agent", "agentkeys"):
    ag_cpu, ag_span, ag_peak = med(by[v], "ag_cpu"), med(by[v], "ag_span"), med(by[v], "ag_peak")
    if ci_cpu and ag_cpu:
        print(f"\nRatios of the medians, cloud-init / {NAMES[v]}: unit CPU **{ci_cpu / ag_cpu:.1f}×**"
              + (f"; provisioning span {ci_span / ag_span:.1f}×" if ci_span and ag_span else "")
              + (f"; peak {ci_peak / ag_peak:.1f}×" if ci_peak and ag_peak else "") + ".")
