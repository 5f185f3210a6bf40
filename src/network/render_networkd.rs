//! systemd-networkd: one `.network` per interface (and a `.netdev` per vlan, bond or
//! bridge, a `.link` per rename) in `/etc/systemd/network/`, named `05-ci-agent-<name>`.
//!
//! networkd applies the first `.network` file, in lexical order of the file names across
//! `/etc`, `/run` and `/usr/lib`, whose `[Match]` fits a link. `05-` sorts before
//! netplan's generated `10-netplan-*` and the usual template files (`50-dhcp.network`,
//! `80-*`, `99-default`), so the seed's configuration wins for the NICs it names while
//! the template's catch-all DHCP stays in force for the others and is back in charge as
//! soon as our files are removed: it is neutralised without being touched.
//!
//! A MAC match also says `Type=ether`: a vlan or bond on that NIC has the same MAC and
//! must not pick up the NIC's configuration.

use std::fmt::Write as _;

use super::{Iface, Kind, NetConfig, OutFile, Rendering};

pub const DIR: &str = "/etc/systemd/network";
pub const PREFIX: &str = "05-ci-agent-";

pub fn render(cfg: &NetConfig) -> Rendering {
    let mut out = Rendering::default();
    for i in &cfg.ifaces {
        let base = format!("{DIR}/{PREFIX}{}", i.name);
        out.files
            .push(OutFile::new(format!("{base}.network"), network(cfg, i)));
        if let Some(nd) = netdev(i, &mut out.warnings) {
            out.files.push(OutFile::new(format!("{base}.netdev"), nd));
        }
        if let (Some(new), Some(mac)) = (&i.set_name, &i.matcher.mac) {
            out.files.push(OutFile::new(
                format!("{base}.link"),
                format!("# ci-agent: written from the seed's network-config\n[Match]\nMACAddress={mac}\n\n[Link]\nName={new}\n"),
            ));
            out.renames.push((mac.clone(), new.clone()));
        }
    }
    out
}

fn network(cfg: &NetConfig, i: &Iface) -> String {
    let mut s = String::from("# ci-agent: written from the seed's network-config\n[Match]\n");
    match (&i.kind, &i.matcher.mac) {
        (Kind::Ethernet, Some(mac)) => {
            let _ = writeln!(s, "MACAddress={mac}\nType=ether");
        }
        (Kind::Ethernet, None) if i.matcher.name.is_some() || i.matcher.driver.is_some() => {
            if let Some(g) = &i.matcher.name {
                let _ = writeln!(s, "Name={g}");
            }
        }
        _ => {
            let _ = writeln!(s, "Name={}", i.name);
        }
    }
    if let Some(d) = &i.matcher.driver {
        let _ = writeln!(s, "Driver={d}");
    }
    if let Some(m) = i.mtu {
        let _ = write!(s, "\n[Link]\nMTUBytes={m}\n");
    }
    s.push_str("\n[Network]\n");
    let dhcp = match (i.dhcp4, i.dhcp6) {
        (true, true) => Some("yes"),
        (true, false) => Some("ipv4"),
        (false, true) => Some("ipv6"),
        _ => None,
    };
    if let Some(d) = dhcp {
        let _ = writeln!(s, "DHCP={d}");
    }
    if let Some(ra) = i.accept_ra {
        let _ = writeln!(s, "IPv6AcceptRA={}", if ra { "yes" } else { "no" });
    }
    for a in &i.addresses {
        let _ = writeln!(s, "Address={a}");
    }
    if i.master.is_none() {
        let mut dns = i.dns.clone();
        dns.merge(&cfg.dns);
        for a in &dns.addresses {
            let _ = writeln!(s, "DNS={a}");
        }
        if !dns.search.is_empty() {
            let _ = writeln!(s, "Domains={}", dns.search.join(" "));
        }
    }
    for v in &cfg.ifaces {
        if matches!(&v.kind, Kind::Vlan { link, .. } if *link == i.name) {
            let _ = writeln!(s, "VLAN={}", v.name);
        }
    }
    if let Some(m) = &i.master {
        match cfg.iface(m).map(|x| &x.kind) {
            Some(Kind::Bridge { .. }) => {
                let _ = writeln!(s, "Bridge={m}");
            }
            _ => {
                let _ = writeln!(s, "Bond={m}");
            }
        }
    }
    for r in &i.routes {
        s.push_str("\n[Route]\n");
        if !r.is_default() {
            let _ = writeln!(s, "Destination={}", r.to);
        }
        if let Some(v) = r.via {
            let _ = writeln!(s, "Gateway={v}");
        }
        if let Some(m) = r.metric {
            let _ = writeln!(s, "Metric={m}");
        }
        if r.on_link {
            s.push_str("GatewayOnLink=yes\n");
        }
    }
    s
}

/// networkd's name for a netplan bond/bridge parameter, and a unit suffix for bare numbers.
fn param(kind: &Kind, k: &str) -> Option<(&'static str, &'static str)> {
    Some(match (kind, k) {
        (Kind::Bond { .. }, "mode") => ("Mode", ""),
        (Kind::Bond { .. }, "lacp-rate") => ("LACPTransmitRate", ""),
        (Kind::Bond { .. }, "mii-monitor-interval" | "miimon") => ("MIIMonitorSec", "ms"),
        (Kind::Bond { .. }, "transmit-hash-policy" | "xmit-hash-policy") => {
            ("TransmitHashPolicy", "")
        }
        (Kind::Bond { .. }, "ad-select") => ("AdSelect", ""),
        (Kind::Bond { .. }, "up-delay" | "updelay") => ("UpDelaySec", "ms"),
        (Kind::Bond { .. }, "down-delay" | "downdelay") => ("DownDelaySec", "ms"),
        (Kind::Bond { .. }, "min-links") => ("MinLinks", ""),
        (Kind::Bond { .. }, "arp-interval") => ("ARPIntervalSec", "ms"),
        (Kind::Bond { .. }, "primary-reselect-policy") => ("PrimaryReselectPolicy", ""),
        (Kind::Bond { .. }, "all-slaves-active") => ("AllSlavesActive", ""),
        (Kind::Bond { .. }, "gratuitous-arp") => ("GratuitousARP", ""),
        (Kind::Bridge { .. }, "stp") => ("STP", ""),
        (Kind::Bridge { .. }, "forward-delay" | "fd") => ("ForwardDelaySec", ""),
        (Kind::Bridge { .. }, "hello-time") => ("HelloTimeSec", ""),
        (Kind::Bridge { .. }, "max-age") => ("MaxAgeSec", ""),
        (Kind::Bridge { .. }, "ageing-time" | "aging-time" | "ageing") => ("AgeingTimeSec", ""),
        (Kind::Bridge { .. }, "priority") => ("Priority", ""),
        _ => return None,
    })
}

fn netdev(i: &Iface, w: &mut Vec<String>) -> Option<String> {
    let mut s = format!(
        "# ci-agent: written from the seed's network-config\n[NetDev]\nName={}\nKind={}\n",
        i.name,
        i.kind.name()
    );
    match &i.kind {
        Kind::Ethernet => return None,
        Kind::Vlan { id, .. } => {
            let _ = write!(s, "\n[VLAN]\nId={id}\n");
        }
        Kind::Bond { params } | Kind::Bridge { params } => {
            let section = if matches!(i.kind, Kind::Bond { .. }) {
                "Bond"
            } else {
                "Bridge"
            };
            let mut body = String::new();
            for (k, v) in params {
                match param(&i.kind, k) {
                    Some((key, unit)) => {
                        let v = match v.as_str() {
                            "true" | "on" => "yes",
                            "false" | "off" => "no",
                            _ => v,
                        };
                        let unit = if v.bytes().all(|b| b.is_ascii_digit()) {
                            unit
                        } else {
                            ""
                        };
                        let _ = writeln!(body, "{key}={v}{unit}");
                    }
                    None => w.push(format!(
                        "{}: parameter {k:?} cannot be expressed for systemd-networkd; ignored",
                        i.id
                    )),
                }
            }
            if !body.is_empty() {
                let _ = write!(s, "\n[{section}]\n{body}");
            }
        }
    }
    Some(s)
}
