//! NetworkManager keyfiles: `/etc/NetworkManager/system-connections/ci-agent-<name>.nmconnection`
//! (mode 0600, NetworkManager ignores keyfiles others can read).
//!
//! Each profile has `autoconnect-priority=100`: among the profiles that fit a device,
//! NetworkManager activates the one with the highest priority (the template's
//! "Wired connection 1" or `ens33.nmconnection` have the default 0), so the template's
//! DHCP profile is outranked, not edited, and is back when our profile is removed.

use std::fmt::Write as _;

use super::{Iface, Kind, NetConfig, OutFile, Rendering};

pub const DIR: &str = "/etc/NetworkManager/system-connections";

/// A stable UUID for a profile name (so a re-render keeps the same connection).
fn uuid_for(name: &str) -> String {
    // Two FNV-1a 64-bit hashes with different seeds: 128 stable bits, shaped as a v4-style UUID.
    let h = |seed: u64| {
        name.bytes().fold(seed, |a, b| {
            (a ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        })
    };
    let (a, b) = (h(0xcbf2_9ce4_8422_2325), h(0x84222325_cbf29ce4));
    let v = (u128::from(a) << 64) | u128::from(b);
    let v = (v & !(0xf << 76) | (0x4 << 76)) & !(0x3 << 62) | (0x2 << 62);
    uuid::Uuid::from_u128(v).to_string()
}

pub fn render(cfg: &NetConfig) -> Rendering {
    let mut out = Rendering::default();
    for i in &cfg.ifaces {
        let mut f = OutFile::new(
            format!("{DIR}/ci-agent-{}.nmconnection", i.name),
            profile(cfg, i, &mut out.warnings),
        );
        f.mode = 0o600;
        out.files.push(f);
        if let (Some(new), Some(mac)) = (&i.set_name, &i.matcher.mac) {
            out.renames.push((mac.clone(), new.clone()));
        }
    }
    out
}

fn profile(cfg: &NetConfig, i: &Iface, w: &mut Vec<String>) -> String {
    let ty = match i.kind {
        Kind::Ethernet => "ethernet",
        Kind::Vlan { .. } => "vlan",
        Kind::Bond { .. } => "bond",
        Kind::Bridge { .. } => "bridge",
    };
    let mut s = String::from("# ci-agent: written from the seed's network-config\n[connection]\n");
    let _ = writeln!(
        s,
        "id=ci-agent-{}\nuuid={}\ntype={ty}\nautoconnect-priority=100",
        i.name,
        uuid_for(&i.name)
    );
    let by_match = matches!(i.kind, Kind::Ethernet) && i.matched();
    if !by_match {
        let _ = writeln!(s, "interface-name={}", i.name);
    }
    if let Some(m) = &i.master {
        let st = match cfg.iface(m).map(|x| &x.kind) {
            Some(Kind::Bridge { .. }) => "bridge",
            _ => "bond",
        };
        let _ = writeln!(s, "master={m}\nslave-type={st}");
    }
    if by_match && (i.matcher.name.is_some() || i.matcher.driver.is_some()) {
        s.push_str("\n[match]\n");
        if let Some(g) = &i.matcher.name {
            let _ = writeln!(s, "interface-name={g}");
        }
        if let Some(d) = &i.matcher.driver {
            let _ = writeln!(s, "driver={d}");
        }
    }
    match &i.kind {
        Kind::Ethernet => {
            if i.matcher.mac.is_some() || i.mtu.is_some() {
                s.push_str("\n[ethernet]\n");
                if let Some(m) = &i.matcher.mac {
                    let _ = writeln!(s, "mac-address={}", m.to_ascii_uppercase());
                }
                if let Some(m) = i.mtu {
                    let _ = writeln!(s, "mtu={m}");
                }
            }
        }
        Kind::Vlan { id, link } => {
            let _ = writeln!(s, "\n[vlan]\nid={id}\nparent={link}");
            if let Some(m) = i.mtu {
                let _ = writeln!(s, "mtu={m}");
            }
        }
        Kind::Bond { params } => {
            s.push_str("\n[bond]\n");
            for (k, v) in params {
                let key = match k.as_str() {
                    "mode" => "mode",
                    "mii-monitor-interval" | "miimon" => "miimon",
                    "lacp-rate" => "lacp_rate",
                    "transmit-hash-policy" | "xmit-hash-policy" => "xmit_hash_policy",
                    "up-delay" | "updelay" => "updelay",
                    "down-delay" | "downdelay" => "downdelay",
                    "primary" => "primary",
                    "ad-select" => "ad_select",
                    "min-links" => "min_links",
                    _ => {
                        w.push(format!("{}: bond parameter {k:?} cannot be expressed for NetworkManager; ignored", i.id));
                        continue;
                    }
                };
                let _ = writeln!(s, "{key}={v}");
            }
        }
        Kind::Bridge { params } => {
            s.push_str("\n[bridge]\n");
            for (k, v) in params {
                let key = match k.as_str() {
                    "stp" => "stp",
                    "priority" => "priority",
                    "forward-delay" => "forward-delay",
                    "hello-time" => "hello-time",
                    "max-age" => "max-age",
                    "ageing-time" | "aging-time" => "ageing-time",
                    _ => {
                        w.push(format!("{}: bridge parameter {k:?} cannot be expressed for NetworkManager; ignored", i.id));
                        continue;
                    }
                };
                let v = match v.as_str() {
                    "on" | "yes" => "true",
                    "off" | "no" => "false",
                    _ => v,
                };
                let _ = writeln!(s, "{key}={v}");
            }
        }
    }
    if i.master.is_some() {
        return s;
    }
    let mut dns = i.dns.clone();
    dns.merge(&cfg.dns);
    for v6 in [false, true] {
        let addrs = i.addrs(v6);
        let dhcp = if v6 { i.dhcp6 } else { i.dhcp4 };
        let method = match (dhcp, addrs.is_empty(), v6) {
            (true, _, false) => "auto",
            (true, _, true) => "dhcp",
            (false, false, _) => "manual",
            (false, true, true) if i.accept_ra == Some(true) => "auto",
            (false, true, false) => "disabled",
            (false, true, true) => "ignore",
        };
        let _ = write!(
            s,
            "\n[{}]\nmethod={method}\n",
            if v6 { "ipv6" } else { "ipv4" }
        );
        for (k, a) in addrs.iter().enumerate() {
            let _ = writeln!(s, "address{}={a}", k + 1);
        }
        if let Some(g) = i.gateway(v6) {
            let _ = writeln!(s, "gateway={g}");
        }
        let mut n = 0;
        for r in i.routes.iter().filter(|r| r.to.ip.is_ipv6() == v6) {
            if r.is_default() && r.via == i.gateway(v6) && r.metric.is_none() {
                continue;
            }
            n += 1;
            let mut spec = r.to.to_string();
            if let Some(v) = r.via {
                let _ = write!(spec, ",{v}");
            }
            if let Some(m) = r.metric {
                if r.via.is_none() {
                    spec.push(',');
                }
                let _ = write!(spec, ",{m}");
            }
            let _ = writeln!(s, "route{n}={spec}");
            if r.on_link {
                let _ = writeln!(s, "route{n}_options=onlink=true");
            }
        }
        let fam: Vec<String> = dns
            .addresses
            .iter()
            .filter(|a| a.is_ipv6() == v6)
            .map(|a| format!("{a};"))
            .collect();
        if !fam.is_empty() {
            let _ = writeln!(s, "dns={}", fam.concat());
        }
        if !v6 && !dns.search.is_empty() {
            let _ = writeln!(s, "dns-search={};", dns.search.join(";"));
        }
        if v6 && i.accept_ra == Some(false) && method == "manual" {
            // manual already ignores RAs for addressing.
        }
    }
    s
}
