//! netplan: `/etc/netplan/50-ci-agent.yaml`, written from the model (so an address without
//! a prefix gets its /24 or /64 here too, where cloud-init's passthrough leaves it bare and
//! `netplan generate` then refuses the file).
//!
//! netplan turns each ID into `/run/systemd/network/10-netplan-<ID>.network`, and networkd
//! takes the first file in lexical order that matches a link. A template's
//! DHCP-for-everything file (Debian's `90-default.yaml`: ID `all-en`, `match: {name: en*}`)
//! would therefore shadow an ethernet whose ID sorts after `all-en`. Every ethernet here
//! has an ID starting with `0ci-` and an explicit `match` (by MAC, or by name), so ours sort
//! first; the template's file is not touched. Virtual devices (vlans, bonds, bridges) keep
//! their names as IDs, as netplan requires.
//!
//! netplan's generator ran before the agent, so the module runs `netplan generate` after
//! writing (a failure undoes the file).

use std::fmt::Write as _;

use super::{Iface, Kind, NetConfig, OutFile, Rendering};

pub const FILE: &str = "/etc/netplan/50-ci-agent.yaml";

/// The netplan ID of an interface of the model.
fn id(i: &Iface) -> String {
    match i.kind {
        Kind::Ethernet => format!("0ci-{}", i.name),
        _ => i.name.clone(),
    }
}

fn q(s: &str) -> String {
    // Values are validated (no quotes, no control characters); quoted so YAML never types them.
    format!("\"{s}\"")
}

pub fn render(cfg: &NetConfig) -> Rendering {
    let mut out = Rendering::default();
    let mut s = String::from(
        "# ci-agent: written from the seed's network-config\nnetwork:\n  version: 2\n",
    );
    let id_of = |name: &str| cfg.iface(name).map(id).unwrap_or_else(|| name.to_string());
    for (section, pick) in [("ethernets", 0), ("bonds", 1), ("bridges", 2), ("vlans", 3)] {
        let members: Vec<&Iface> = cfg
            .ifaces
            .iter()
            .filter(|i| {
                matches!(
                    (&i.kind, pick),
                    (Kind::Ethernet, 0)
                        | (Kind::Bond { .. }, 1)
                        | (Kind::Bridge { .. }, 2)
                        | (Kind::Vlan { .. }, 3)
                )
            })
            .collect();
        if members.is_empty() {
            continue;
        }
        let _ = writeln!(s, "  {section}:");
        for i in members {
            let _ = writeln!(s, "    {}:", q(&id(i)));
            entry(cfg, i, &id_of, &mut s);
        }
    }
    let mut f = OutFile::new(FILE, s);
    // netplan warns about (newer: refuses) configuration others can read.
    f.mode = 0o600;
    out.files.push(f);
    for i in &cfg.ifaces {
        if let (Some(new), Some(mac)) = (&i.set_name, &i.matcher.mac) {
            out.renames.push((mac.clone(), new.clone()));
        }
    }
    out
}

fn entry(cfg: &NetConfig, i: &Iface, id_of: &dyn Fn(&str) -> String, s: &mut String) {
    let p = "      ";
    if matches!(i.kind, Kind::Ethernet) {
        let _ = writeln!(s, "{p}match:");
        match (&i.matcher.mac, &i.matcher.name) {
            (Some(m), _) => {
                let _ = writeln!(s, "{p}  macaddress: {}", q(m));
            }
            (None, Some(g)) => {
                let _ = writeln!(s, "{p}  name: {}", q(g));
            }
            (None, None) if i.matcher.driver.is_none() => {
                let _ = writeln!(s, "{p}  name: {}", q(&i.name));
            }
            _ => {}
        }
        if let Some(d) = &i.matcher.driver {
            let _ = writeln!(s, "{p}  driver: {}", q(d));
        }
        if let Some(n) = &i.set_name {
            let _ = writeln!(s, "{p}set-name: {}", q(n));
        }
    }
    match &i.kind {
        Kind::Vlan { id, link } => {
            let _ = writeln!(s, "{p}id: {id}\n{p}link: {}", q(&id_of(link)));
        }
        Kind::Bond { params } | Kind::Bridge { params } => {
            let m: Vec<String> = i.members.iter().map(|x| q(&id_of(x))).collect();
            let _ = writeln!(s, "{p}interfaces: [{}]", m.join(", "));
            if !params.is_empty() {
                let _ = writeln!(s, "{p}parameters:");
                for (k, v) in params {
                    let v = match v.as_str() {
                        "true" | "false" => v.clone(),
                        n if n.bytes().all(|b| b.is_ascii_digit()) && !n.is_empty() => v.clone(),
                        _ => q(v),
                    };
                    let _ = writeln!(s, "{p}  {k}: {v}");
                }
            }
        }
        Kind::Ethernet => {}
    }
    if let Some(m) = i.mtu {
        let _ = writeln!(s, "{p}mtu: {m}");
    }
    if i.dhcp4 {
        let _ = writeln!(s, "{p}dhcp4: true");
    }
    if i.dhcp6 {
        let _ = writeln!(s, "{p}dhcp6: true");
    }
    if let Some(ra) = i.accept_ra {
        let _ = writeln!(s, "{p}accept-ra: {ra}");
    }
    if !i.addresses.is_empty() {
        let a: Vec<String> = i.addresses.iter().map(|a| q(&a.to_string())).collect();
        let _ = writeln!(s, "{p}addresses: [{}]", a.join(", "));
    }
    if !i.routes.is_empty() {
        let _ = writeln!(s, "{p}routes:");
        for r in &i.routes {
            let to = if r.is_default() {
                "default".to_string()
            } else {
                r.to.to_string()
            };
            let _ = write!(s, "{p}  - to: {}", q(&to));
            if let Some(v) = r.via {
                let _ = write!(s, "\n{p}    via: {}", q(&v.to_string()));
            }
            if let Some(m) = r.metric {
                let _ = write!(s, "\n{p}    metric: {m}");
            }
            if r.on_link {
                let _ = write!(s, "\n{p}    on-link: true");
            }
            s.push('\n');
        }
    }
    if i.master.is_none() {
        let mut dns = i.dns.clone();
        dns.merge(&cfg.dns);
        if !dns.is_empty() {
            let _ = writeln!(s, "{p}nameservers:");
            if !dns.addresses.is_empty() {
                let a: Vec<String> = dns.addresses.iter().map(|a| q(&a.to_string())).collect();
                let _ = writeln!(s, "{p}  addresses: [{}]", a.join(", "));
            }
            if !dns.search.is_empty() {
                let a: Vec<String> = dns.search.iter().map(|d| q(d)).collect();
                let _ = writeln!(s, "{p}  search: [{}]", a.join(", "));
            }
        }
    }
}
