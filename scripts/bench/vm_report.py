#!/usr/bin/python3
"""Tables for scripts/bench/vm.sh: per-run figures and medians from the serial logs.

    vm_report.py RUNS-DIR WORK-DIR

Per boot (RUNS-DIR/VARIANT-I.log + .log.boot): qemu wall, host load/steal, systemd's
kernel/userspace split, guest busy CPU at ready, and per provisioning unit its active time
(ActiveEnter - InactiveExit; for the Type=exec ci-agent-late: ExecMainExit -
ExecMainStart), CPUUsageNSec and cgroup memory.peak (saved by the e2e-mempeak helper at the
unit's end). `e2e-floor` is a oneshot running /bin/true plus the same helper: its CPU and
peak are the measuring overhead included in every unit's figures.
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
    return ({"ci": 0, "agent": 1, "base": 2}.get(m.group(1), 9), int(m.group(2))) if m else (9, 0)


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
print("| run | load | steal s | qemu wall s | kernel s | userspace s | busy CPU at ready s | provisioning units: active s / CPU s / peak MiB | span s | Σ CPU s | max peak MiB | floor unit CPU s / peak MiB | applied | failed units |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for r in runs:
    key = {"ci": "ci", "agent": "ag"}.get(r["variant"])
    units = CI_UNITS if key == "ci" else AG_UNITS if key == "ag" else []
    cells = "; ".join(f"{u} {f(r['units'][u]['active'], 2)} / {f(r['units'][u]['cpu'], 3)} / {f(r['units'][u]['peak'])}"
                      + ("" if r["units"][u]["result"] == "success" else f" ({r['units'][u]['result']})")
                      for u in units if u in r["units"]) or "-"
    print(f"| {r['name']} | {r['load']} | {f(r['steal'])} | {f(r['wall'])} | {f(r['kernel'])} | {f(r['userspace'])} | {f(r.get('busy'))} | "
          f"{cells} | {f(r.get(key + '_span') if key else None, 2)} | {f(r.get(key + '_cpu') if key else None, 3)} | "
          f"{f(r.get(key + '_peak') if key else None)} | {f(r['floor_cpu'], 3)} / {f(r['floor_peak'])} | {r['checks']} | {r['failed']} |")
print()
by = {v: [r for r in runs if r["variant"] == v] for v in ("ci", "agent", "base")}
print(f"#### Medians (cloud-init n={len(by['ci'])}, ci-agent n={len(by['agent'])}, neither n={len(by['base'])})\n")
print("| figure | cloud-init | ci-agent | neither (baseline) | cloud-init − baseline | ci-agent − baseline |")
print("|---|---|---|---|---|---|")
for k, label in [("wall", "qemu wall to poweroff, s"), ("userspace", "systemd userspace (Startup finished), s"),
                 ("ready", "guest uptime at ready, s"), ("busy", "guest busy CPU at ready (/proc/stat), s"),
                 ("sysslice", "system.slice CPU at ready, s")]:
    a, b, c = med(by["ci"], k), med(by["agent"], k), med(by["base"], k)
    print(f"| {label} | {f(a)} | {f(b)} | {f(c)} | {f(a - c) if a is not None and c is not None else '-'} | {f(b - c) if b is not None and c is not None else '-'} |")
print(f"| provisioning span (first unit start → last unit end), s | {f(med(by['ci'], 'ci_span'), 2)} | {f(med(by['agent'], 'ag_span'), 2)} | | | |")
print(f"| Σ provisioning unit active time, s | {f(med(by['ci'], 'ci_active'), 2)} | {f(med(by['agent'], 'ag_active'), 2)} | | | |")
print(f"| Σ provisioning unit CPU (CPUUsageNSec), s | {f(med(by['ci'], 'ci_cpu'), 3)} | {f(med(by['agent'], 'ag_cpu'), 3)} | | | |")
print(f"| max unit memory.peak, MiB | {f(med(by['ci'], 'ci_peak'))} | {f(med(by['agent'], 'ag_peak'))} | | | |")
print(f"| measuring overhead per unit (e2e-floor: /bin/true + helper) CPU s / peak MiB | {f(med(by['ci'], 'floor_cpu'), 3)} / {f(med(by['ci'], 'floor_peak'))} | {f(med(by['agent'], 'floor_cpu'), 3)} / {f(med(by['agent'], 'floor_peak'))} | {f(med(by['base'], 'floor_cpu'), 3)} / {f(med(by['base'], 'floor_peak'))} | | |")
for u in CI_UNITS:
    print(f"| {u}.service active s / CPU s / peak MiB | {f(umed(by['ci'], u, 'active'), 2)} / {f(umed(by['ci'], u, 'cpu'), 3)} / {f(umed(by['ci'], u, 'peak'))} | | | | |")
for u in AG_UNITS:
    print(f"| {u}.service active s / CPU s / peak MiB | | {f(umed(by['agent'], u, 'active'), 2)} / {f(umed(by['agent'], u, 'cpu'), 3)} / {f(umed(by['agent'], u, 'peak'))} | | | |")
if med(by["agent"], "seed_found") is not None:
    v = [r["seed_found"] for r in by["agent"] if r.get("seed_found") is not None]
    print(f"\nci-agent.service start → its `seed ...: instance-id` log line (process start, seed probe "
          f"and read, parse): median {st.median(v):.2f} s ({min(v):.2f}–{max(v):.2f}; console timestamps).")
mods = sorted({m for r in by["agent"] for m in r.get("modules", {})},
              key=lambda m: -st.median([r["modules"][m] for r in by["agent"] if m in r.get("modules", {})]))
if mods:
    print("\n#### ci-agent modules (its log's `module X: ok (N ms)`), median of the agent boots\n")
    print("| module | median s | min–max s |")
    print("|---|---|---|")
    for m in mods:
        v = [r["modules"][m] for r in by["agent"] if m in r.get("modules", {})]
        print(f"| {m} | {st.median(v):.2f} | {min(v):.2f}–{max(v):.2f} |")
ci_cpu, ag_cpu = med(by["ci"], "ci_cpu"), med(by["agent"], "ag_cpu")
ci_span, ag_span = med(by["ci"], "ci_span"), med(by["agent"], "ag_span")
if ci_cpu and ag_cpu:
    print(f"\nRatios of the medians: unit CPU cloud-init / ci-agent = **{ci_cpu / ag_cpu:.1f}×**"
          + (f"; provisioning span {ci_span / ag_span:.1f}×" if ci_span and ag_span else "")
          + (f"; peak {med(by['ci'], 'ci_peak') / med(by['agent'], 'ag_peak'):.1f}×" if med(by['agent'], 'ag_peak') else "") + ".")
