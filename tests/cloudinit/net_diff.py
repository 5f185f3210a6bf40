#!/usr/bin/python3
"""Run cloud-init's own network renderers (networkd, eni, netplan) on network-config files
and summarise what each rendering configures, with the same extractors that
tests/network_differential.rs applies to ci-agent's renderings.

    net_diff.py summarise-cloudinit CONFIG...   JSON: {config: {renderer: summary|{"error"}}}
    net_diff.py summarise-ours DIR              JSON: {config: {networkd, eni, netplan}} for
                                                DIR/<config>/networkd/*.network,
                                                DIR/<config>/eni and DIR/<config>/netplan.yaml
                                                (ci-agent's renderings)

cloud-init comes from tests/cloudinit/fetch.sh (Debian's package, unpacked, never
installed) on PYTHONPATH. A summary is what a clone ends up with, not how it is spelled:
  interfaces  sorted names configured (loopback left out)
  addresses   {name: sorted "ip/prefix"}   (ENI aliases eth0:1 count as eth0)
  dhcp        {name: sorted ["4", "6"]}
  routes      sorted "dst via gw [metric m]" over all interfaces ("default" for 0.0.0.0/0, ::/0)
  dns         sorted name servers over all interfaces and global settings
  search      sorted search domains, likewise
"""
import ipaddress
import json
import os
import re
import sys
import tempfile


def norm_dst(dst):
    if dst in ("default", "0.0.0.0/0", "::/0", "0.0.0.0", "::"):
        return "default"
    try:
        return str(ipaddress.ip_network(dst, strict=False))
    except ValueError:
        return dst


def route(dst, via, metric):
    r = "%s via %s" % (norm_dst(dst), via or "-")
    return r + (" metric %s" % metric if metric not in (None, "") else "")


def empty():
    return {"interfaces": set(), "addresses": {}, "dhcp": {}, "routes": set(),
            "dns": set(), "search": set()}


def finish(s):
    out = {"interfaces": sorted(s["interfaces"]), "routes": sorted(s["routes"]),
           "dns": sorted(s["dns"]), "search": sorted(s["search"])}
    out["addresses"] = {k: sorted(v) for k, v in sorted(s["addresses"].items()) if v}
    out["dhcp"] = {k: sorted(v) for k, v in sorted(s["dhcp"].items()) if v}
    return out


def ini_sections(text):
    """systemd ini: list of (section, [(key, value)])."""
    secs = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            secs.append((line[1:-1], []))
        elif "=" in line and secs:
            k, v = line.split("=", 1)
            secs[-1][1].append((k.strip(), v.strip()))
    return secs


def summarise_networkd(d):
    s = empty()
    for f in sorted(os.listdir(d)):
        if not f.endswith(".network"):
            continue
        name = re.sub(r"^(05-ci-agent-|10-cloud-init-)", "", f[: -len(".network")])
        s["interfaces"].add(name)
        addrs = s["addresses"].setdefault(name, set())
        dhcp = s["dhcp"].setdefault(name, set())
        for sec, kv in ini_sections(open(os.path.join(d, f)).read()):
            if sec in ("Network", "Address"):
                for k, v in kv:
                    if k == "Address":
                        addrs.add(str(ipaddress.ip_interface(v)))
                    elif k == "DHCP":
                        dhcp.update({"yes": ["4", "6"], "ipv4": ["4"], "ipv6": ["6"]}.get(v, []))
                    elif k == "DNS":
                        s["dns"].update(v.split())
                    elif k == "Domains":
                        s["search"].update(v.split())
                    elif k == "Gateway":
                        s["routes"].add(route("default", v, None))
            elif sec == "Route":
                r = dict(kv)
                if "Gateway" in r or "Destination" in r:
                    s["routes"].add(route(r.get("Destination", "default"), r.get("Gateway"), r.get("Metric")))
    return finish(s)


def summarise_eni(path):
    s = empty()
    cur = None
    fam = None
    for raw in open(path).read().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        w = line.split()
        if w[0] == "iface":
            name = w[1].split(":")[0]
            cur, fam = (None if name == "lo" else name), w[2]
            if cur is None:
                continue
            s["interfaces"].add(cur)
            s["addresses"].setdefault(cur, set())
            d = s["dhcp"].setdefault(cur, set())
            if w[3] == "dhcp":
                d.add("6" if fam == "inet6" else "4")
            continue
        if w[0] in ("auto", "allow-hotplug"):
            continue
        if w[0] in ("dns-nameservers",):
            s["dns"].update(w[1:])
            continue
        if w[0] == "dns-search":
            s["search"].update(w[1:])
            continue
        if cur is None:
            continue
        if w[0] == "address":
            a = w[1]
            s["addresses"][cur].add(a if "/" in a else a + "/?")
        elif w[0] == "netmask":
            last = sorted(x for x in s["addresses"][cur] if x.endswith("/?"))
            if last:
                s["addresses"][cur].discard(last[0])
                ip = last[0][:-2]
                s["addresses"][cur].add(str(ipaddress.ip_interface("%s/%s" % (ip, w[1]))))
        elif w[0] == "gateway":
            s["routes"].add(route("default", w[1], None))
        elif w[0] == "post-up":
            cmd = w[1:]
            if cmd[:3] == ["ip", "route", "add"] or cmd[:4] == ["ip", "-6", "route", "add"]:
                rest = cmd[3:] if cmd[1] == "route" else cmd[4:]
                via = rest[rest.index("via") + 1] if "via" in rest else None
                metric = rest[rest.index("metric") + 1] if "metric" in rest else None
                s["routes"].add(route(rest[0], via, metric))
            elif cmd[:2] == ["route", "add"]:
                # cloud-init: route add -net NET netmask MASK gw GW metric M || true
                # and route add -A inet6 NET/P gw GW
                net = mask = gw = metric = None
                for i, x in enumerate(cmd):
                    if x in ("-net", "-host"):
                        net = cmd[i + 1]
                    elif x == "netmask":
                        mask = cmd[i + 1]
                    elif x == "gw":
                        gw = cmd[i + 1]
                    elif x == "metric":
                        metric = cmd[i + 1]
                    elif x == "inet6":
                        net = cmd[i + 1]
                    elif x == "default":
                        net = "default"
                if net and net != "default" and mask:
                    net = "%s/%s" % (net, mask)
                if net:
                    s["routes"].add(route(net, gw, metric))
    for k in list(s["addresses"]):
        s["addresses"][k] = {a for a in s["addresses"][k]}
    return finish(s)


def summarise_netplan(path):
    import yaml
    s = empty()
    doc = yaml.safe_load(open(path)) or {}
    net = doc.get("network", doc)
    for section in ("ethernets", "vlans", "bonds", "bridges"):
        for ident, e in (net.get(section) or {}).items():
            e = e or {}
            m = (e.get("match") or {}).get("name")
            name = e.get("set-name") or (m if m and not any(c in m for c in "*?[") else ident)
            s["interfaces"].add(name)
            addrs = s["addresses"].setdefault(name, set())
            for a in e.get("addresses", []) or []:
                a = a if isinstance(a, str) else list(a)[0]
                addrs.add(str(ipaddress.ip_interface(a)) if "/" in a else a + "/?")
            d = s["dhcp"].setdefault(name, set())
            if e.get("dhcp4"):
                d.add("4")
            if e.get("dhcp6"):
                d.add("6")
            for g in ("gateway4", "gateway6"):
                if e.get(g):
                    s["routes"].add(route("default", e[g], None))
            for r in e.get("routes", []) or []:
                s["routes"].add(route(str(r.get("to")), r.get("via"), r.get("metric")))
            ns = e.get("nameservers") or {}
            s["dns"].update(str(x) for x in ns.get("addresses", []) or [])
            s["search"].update(ns.get("search", []) or [])
    return finish(s)


def stub_missing(names):
    """cloud-init imports a few modules at load time that its network renderers never use
    (HTTP, config-file helpers). Where Debian's package for one is not installed, a stub
    stands in, so the differential needs only python3 and python3-yaml."""
    import importlib
    import types

    class Anything(Exception):
        def __init__(self, *a, **k):
            pass

        def __call__(self, *a, **k):
            return Anything()

        def __getattr__(self, _):
            return Anything

    for n in names:
        try:
            importlib.import_module(n)
        except ImportError:
            m = types.ModuleType(n)
            m.__getattr__ = lambda _name: Anything
            m.__path__ = []
            sys.modules[n] = m


def cloudinit_summaries(path):
    import yaml
    stub_missing(["requests", "requests.adapters", "requests.exceptions", "urllib3",
                  "configobj", "jsonpatch", "jsonpointer", "jsonschema", "jinja2", "netifaces",
                  "serial"])
    from unittest import mock
    from cloudinit.net import eni, netplan, network_state, networkd

    cfg = yaml.safe_load(open(path))
    if isinstance(cfg, dict) and "network" in cfg:
        cfg = cfg["network"]
    out = {}
    # Renderers must not look at this machine's NICs.
    with mock.patch("cloudinit.net.get_interfaces_by_mac", return_value={}):
        for kind in ("networkd", "eni", "netplan"):
            with tempfile.TemporaryDirectory() as t:
                try:
                    # As cloud-init does: with the netplan renderer, v2 passes through.
                    r = netplan.Renderer({"features": [], "postcmds": False}) if kind == "netplan" else None
                    ns = network_state.parse_net_config_data(cfg, skip_broken=False, renderer=r)
                    if kind == "networkd":
                        networkd.Renderer({}).render_network_state(ns, target=t)
                        out[kind] = summarise_networkd(os.path.join(t, "etc/systemd/network"))
                    elif kind == "eni":
                        eni.Renderer({"eni_path": "etc/network/interfaces", "netrules_path": None}).render_network_state(ns, target=t)
                        out[kind] = summarise_eni(os.path.join(t, "etc/network/interfaces"))
                    else:
                        r.render_network_state(ns, target=t)
                        out[kind] = summarise_netplan(os.path.join(t, "etc/netplan/50-cloud-init.yaml"))
                except Exception as e:  # recorded, compared by the Rust side
                    out[kind] = {"error": "%s: %s" % (type(e).__name__, e)}
    return out


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "summarise-cloudinit":
        res = {os.path.basename(p): cloudinit_summaries(p) for p in sys.argv[2:]}
    elif len(sys.argv) == 3 and sys.argv[1] == "summarise-ours":
        top = sys.argv[2]
        res = {}
        for c in sorted(os.listdir(top)):
            res[c] = {"networkd": summarise_networkd(os.path.join(top, c, "networkd")),
                      "eni": summarise_eni(os.path.join(top, c, "eni")),
                      "netplan": summarise_netplan(os.path.join(top, c, "netplan.yaml"))}
    else:
        sys.exit(__doc__)
    json.dump(res, sys.stdout, indent=1, sort_keys=True)
    print()


if __name__ == "__main__":
    main()
