//! ifupdown (Debian without netplan) and ifupdown-ng (Alpine): ENI stanzas.
//!
//! Debian: `/etc/network/interfaces.d/50-ci-agent` (read through the `source
//! /etc/network/interfaces.d/*` line of the stock file); the template's own stanzas for the
//! same interfaces, in `/etc/network/interfaces` or another `interfaces.d` file, are
//! commented out by the `network` module (ifupdown brings an interface up once, with the
//! first stanza it reads, so a template `iface eth0 inet dhcp` would otherwise win).
//! Alpine: the whole `/etc/network/interfaces` (it has no `interfaces.d`), the template's
//! copy kept aside.
//!
//! Several addresses of one family are several `iface` stanzas; routes other than the first
//! default of each family are `post-up ip route add … || true` lines (and `pre-down` dels).
//! A NIC renamed by MAC (`set-name`, v1 `mac_address`) gets a udev rule and is renamed now.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::IpAddr;

use super::{resolve_name, Iface, Kind, NetConfig, Nics, OutFile, Rendering};

pub const DEBIAN_FILE: &str = "/etc/network/interfaces.d/50-ci-agent";
pub const WHOLE_FILE: &str = "/etc/network/interfaces";
pub const UDEV_RULES: &str = "/etc/udev/rules.d/70-ci-agent-net.rules";

/// The real names of the configured interfaces (a matched v2 entry becomes the NIC it
/// matches now). An error names the entry that matches nothing.
pub fn real_names(cfg: &NetConfig, nics: &dyn Nics) -> Result<HashMap<String, String>, String> {
    let mut names = HashMap::new();
    for i in &cfg.ifaces {
        match resolve_name(i, nics) {
            Some(n) => {
                names.insert(i.name.clone(), n);
            }
            None => {
                return Err(format!(
                    "{}: no interface on this machine matches {}",
                    i.id,
                    describe_match(i)
                ))
            }
        }
    }
    Ok(names)
}

fn describe_match(i: &Iface) -> String {
    let mut v = Vec::new();
    if let Some(m) = &i.matcher.mac {
        v.push(format!("macaddress {m}"));
    }
    if let Some(n) = &i.matcher.name {
        v.push(format!("name {n}"));
    }
    if let Some(d) = &i.matcher.driver {
        v.push(format!("driver {d}"));
    }
    v.join(", ")
}

/// `whole`: write the whole `/etc/network/interfaces` (Alpine) instead of a drop-in.
pub fn render(cfg: &NetConfig, nics: &dyn Nics, whole: bool) -> Result<Rendering, String> {
    let names = real_names(cfg, nics)?;
    let mut out = Rendering::default();
    let mut s = String::from("# ci-agent: written from the seed's network-config\n");
    if whole {
        s.push_str("auto lo\niface lo inet loopback\n");
    }
    let n = |x: &str| names.get(x).cloned().unwrap_or_else(|| x.to_string());
    let mut rules = String::new();
    for i in &cfg.ifaces {
        if i.matcher.driver.is_some() {
            out.warnings.push(format!(
                "{}: match.driver is used only to pick the interface now ({}); ifupdown names interfaces, not drivers",
                i.id,
                n(&i.name)
            ));
        }
        let name = n(&i.name);
        stanzas(cfg, i, &name, &n, &mut s);
        if let (Some(new), Some(mac)) = (&i.set_name, &i.matcher.mac) {
            let _ = writeln!(
                rules,
                "SUBSYSTEM==\"net\", ACTION==\"add\", DRIVERS==\"?*\", ATTR{{address}}==\"{mac}\", NAME=\"{new}\""
            );
            out.renames.push((mac.clone(), new.clone()));
        }
        out.neutralise_eni.push(name);
    }
    out.files.push(OutFile::new(
        if whole { WHOLE_FILE } else { DEBIAN_FILE },
        s,
    ));
    if !rules.is_empty() {
        out.files.push(OutFile::new(
            UDEV_RULES,
            format!("# ci-agent: interface names from the seed's network-config\n{rules}"),
        ));
    }
    Ok(out)
}

fn stanzas(cfg: &NetConfig, i: &Iface, name: &str, n: &dyn Fn(&str) -> String, s: &mut String) {
    let _ = writeln!(s, "\nauto {name}");
    // The options every first stanza carries (link-level and DNS).
    let mut common = String::new();
    if let Some(m) = i.mtu {
        let _ = writeln!(common, "    mtu {m}");
    }
    match &i.kind {
        Kind::Vlan { id, link } => {
            let _ = writeln!(common, "    vlan-raw-device {}\n    vlan-id {id}", n(link));
        }
        Kind::Bond { params } => {
            let m: Vec<String> = i.members.iter().map(|x| n(x)).collect();
            let _ = writeln!(common, "    bond-slaves {}", m.join(" "));
            for (k, v) in params {
                let _ = writeln!(common, "    bond-{k} {v}");
            }
        }
        Kind::Bridge { params } => {
            let m: Vec<String> = i.members.iter().map(|x| n(x)).collect();
            let _ = writeln!(common, "    bridge_ports {}", m.join(" "));
            for (k, v) in params {
                let _ = writeln!(common, "    bridge_{} {v}", k.replace('-', "_"));
            }
        }
        Kind::Ethernet => {}
    }
    if let Some(m) = &i.master {
        if matches!(cfg.iface(m).map(|x| &x.kind), Some(Kind::Bond { .. })) {
            let _ = writeln!(common, "    bond-master {}", n(m));
        }
    }
    if i.master.is_none() {
        let mut dns = i.dns.clone();
        dns.merge(&cfg.dns);
        if !dns.addresses.is_empty() {
            let a: Vec<String> = dns.addresses.iter().map(|x| x.to_string()).collect();
            let _ = writeln!(common, "    dns-nameservers {}", a.join(" "));
        }
        if !dns.search.is_empty() {
            let _ = writeln!(common, "    dns-search {}", dns.search.join(" "));
        }
    }
    let mut stanzas = 0;
    let mut emit = |s: &mut String, fam: &str, method: &str, body: &str| {
        let _ = writeln!(s, "iface {name} {fam} {method}");
        if stanzas == 0 {
            s.push_str(&common);
        }
        stanzas += 1;
        s.push_str(body);
    };
    for v6 in [false, true] {
        let fam = if v6 { "inet6" } else { "inet" };
        let addrs = i.addrs(v6);
        let dhcp = if v6 { i.dhcp6 } else { i.dhcp4 };
        // The first plain default route is `gateway`; the rest are post-up commands.
        let gw = i.routes.iter().position(|r| {
            r.is_default()
                && r.to.ip.is_ipv6() == v6
                && r.metric.is_none()
                && !r.on_link
                && r.via.is_some()
        });
        let mut routes = String::new();
        for (k, r) in i.routes.iter().enumerate() {
            if r.to.ip.is_ipv6() != v6 || Some(k) == gw {
                continue;
            }
            let mut spec = if r.is_default() {
                "default".to_string()
            } else {
                r.to.to_string()
            };
            if let Some(v) = r.via {
                let _ = write!(spec, " via {v}");
            }
            if let Some(m) = r.metric {
                let _ = write!(spec, " metric {m}");
            }
            if r.on_link {
                spec.push_str(" onlink");
            }
            let ipv = if v6 { "-6 " } else { "" };
            let _ = writeln!(
                routes,
                "    post-up ip {ipv}route add {spec} dev {name} || true\n    pre-down ip {ipv}route del {spec} dev {name} || true"
            );
        }
        for (k, a) in addrs.iter().enumerate() {
            let mut body = format!("    address {a}\n");
            if k == 0 {
                if let Some(g) = gw.and_then(|g| i.routes[g].via) {
                    let _ = writeln!(body, "    gateway {g}");
                }
                body.push_str(&routes);
            }
            emit(s, fam, "static", &body);
        }
        if dhcp {
            emit(s, fam, "dhcp", if addrs.is_empty() { &routes } else { "" });
        } else if v6 && addrs.is_empty() && i.accept_ra == Some(true) {
            emit(s, fam, "auto", "");
        }
    }
    let none_yet = !i.dhcp4 && !i.dhcp6 && i.addresses.is_empty() && i.accept_ra != Some(true);
    if none_yet {
        // Nothing configured on it (a bond member, a bridge port, `manual`).
        emit(s, "inet", "manual", "");
    }
}

/// `line` is an ENI line that starts a stanza for one of `names` (`auto eth0 …`,
/// `allow-hotplug eth0`, `iface eth0 inet dhcp`); returns true for `iface` lines.
pub fn stanza_start(line: &str, names: &[String]) -> Option<bool> {
    let mut w = line.split_whitespace();
    let first = w.next()?;
    match first {
        "iface" => w
            .next()
            .filter(|n| names.iter().any(|x| x == n))
            .map(|_| true),
        "auto" | "allow-hotplug" | "allow-auto" => {
            let listed: Vec<&str> = w.collect();
            listed
                .iter()
                .any(|n| names.iter().any(|x| x == n))
                .then_some(false)
        }
        _ => None,
    }
}

/// Comment out the stanzas for `names` in an ENI file (the `iface` line and its indented
/// or option lines up to the next stanza); None when nothing changes.
pub fn neutralise(text: &str, names: &[String]) -> Option<String> {
    const MARK: &str = "#ci-agent# ";
    let mut out = String::with_capacity(text.len() + 64);
    let mut in_stanza = false;
    let mut changed = false;
    for line in text.split_inclusive('\n') {
        let t = line.trim();
        let starts = matches!(
            t.split_whitespace().next(),
            Some(
                "iface"
                    | "auto"
                    | "allow-hotplug"
                    | "allow-auto"
                    | "mapping"
                    | "source"
                    | "source-directory"
            )
        ) || t.starts_with("allow-");
        if starts {
            in_stanza = false;
        }
        let hit = match stanza_start(t, names) {
            Some(true) => {
                in_stanza = true;
                true
            }
            Some(false) => {
                // `auto eth0 eth1`: keep the other interfaces on a line of their own.
                let mut w = t.split_whitespace();
                let kw = w.next().unwrap_or("auto");
                let rest: Vec<&str> = w.filter(|n| !names.iter().any(|x| x == n)).collect();
                out.push_str(MARK);
                out.push_str(line);
                if !line.ends_with('\n') {
                    out.push('\n');
                }
                if !rest.is_empty() {
                    out.push_str(&format!("{kw} {}\n", rest.join(" ")));
                }
                changed = true;
                continue;
            }
            None => in_stanza && !starts && !t.is_empty() && !t.starts_with('#'),
        };
        if hit {
            out.push_str(MARK);
            changed = true;
        }
        out.push_str(line);
    }
    changed.then_some(out)
}

/// Whether an ENI file (`/etc/network/interfaces`) reads our drop-in [`DEBIAN_FILE`]:
/// a `source` line whose glob covers it, or a `source-directory` of its directory (paths
/// relative to `/etc/network`, as ifupdown reads them). Without one, ifupdown never sees
/// the drop-in.
pub fn reads_dropin(text: &str) -> bool {
    let dir = DEBIAN_FILE.rsplit_once('/').map_or("", |(d, _)| d);
    let abs = |p: &str| {
        if p.starts_with('/') {
            p.to_string()
        } else {
            format!("/etc/network/{p}")
        }
    };
    text.lines().any(|line| {
        let mut w = line.split_whitespace();
        match (w.next(), w.next()) {
            (Some("source"), Some(p)) => super::glob(&abs(p), DEBIAN_FILE),
            // source-directory reads only names of [A-Za-z0-9_-]: ours is one.
            (Some("source-directory"), Some(p)) => abs(p).trim_end_matches('/') == dir,
            _ => false,
        }
    })
}

/// The line that makes `/etc/network/interfaces` read our drop-in when it does not already.
pub const SOURCE_LINE: &str =
    "\n# ci-agent: read the seed's network config\nsource /etc/network/interfaces.d/50-ci-agent\n";

/// The IPs of a resolv.conf for `cfg`'s DNS (for systems where `dns-*` lines do nothing).
pub fn resolv_conf(cfg: &NetConfig) -> Option<String> {
    let dns = cfg.all_dns();
    if dns.is_empty() {
        return None;
    }
    let mut s = String::from("# ci-agent: written from the seed's network-config\n");
    if !dns.search.is_empty() {
        let _ = writeln!(s, "search {}", dns.search.join(" "));
    }
    // resolv.conf(5): at most 3 nameservers are used.
    for a in dns.addresses.iter().take(3) {
        let _ = writeln!(s, "nameserver {}", shown(a));
    }
    Some(s)
}

fn shown(a: &IpAddr) -> String {
    a.to_string()
}
