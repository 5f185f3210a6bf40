//! FreeBSD: `/etc/rc.conf.d/network` and `/etc/rc.conf.d/routing`, as nuageinit writes them
//! (rc.d/netif and rc.d/routing load them after `/etc/rc.conf`, so they win over it, and
//! `ifconfig_<if>` wins over the image's `ifconfig_DEFAULT="DHCP …"` for that NIC only).
//!
//! - `ifconfig_<if>='inet A/P [mtu M]'` (the first IPv4 address), `ifconfig_<if>_aliasN`
//!   for more addresses (nuageinit keeps only the last one), `ifconfig_<if>_ipv6='inet6 A/P'`,
//!   `ifconfig_<if>='DHCP'`; `dhcp6` and `accept-ra` → `inet6 accept_rtadv` (base has no
//!   DHCPv6 client: a warning says so).
//! - `ifconfig_<old>_name='<new>'` for `set-name` with a MAC match.
//! - vlans: `vlans_<parent>='<name>'`, `create_args_<name>='vlan <id>'`.
//! - `defaultrouter`, `ipv6_defaultrouter`, `static_routes`/`route_<n>`,
//!   `ipv6_static_routes`/`ipv6_route_<n>`; an IPv6 link-local next hop carries its
//!   interface (`fe80::1%vtnet0`), which route(8) needs to use it.
//! - DNS: `/etc/resolvconf.conf` (`name_servers`, `search_domains`), which resolvconf(8)
//!   (run by dhclient for other NICs) keeps; the module writes `/etc/resolv.conf` too.
//!
//! Every value is single-quoted with `'` escaped, and names are validated before, so
//! nothing from a seed can end a value or start an rc.conf line. Bonds (lagg) and
//! bridges are warnings: not rendered.

use std::fmt::Write as _;
use std::net::IpAddr;

use super::render_eni::real_names;
use super::{Kind, NetConfig, Nics, OutFile, Rendering};

pub const NETWORK: &str = "/etc/rc.conf.d/network";
pub const ROUTING: &str = "/etc/rc.conf.d/routing";
pub const RESOLVCONF_CONF: &str = "/etc/resolvconf.conf";

/// A shell single-quoted word.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// An interface name as rc.conf variables spell it (`vtnet0.100` → `vtnet0_100`).
pub fn var(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// A next hop as FreeBSD's routing takes it: an IPv6 link-local one with `%<ifname>`.
fn scoped(via: IpAddr, ifname: &str) -> String {
    match via {
        IpAddr::V6(v) if (v.segments()[0] & 0xffc0) == 0xfe80 => format!("{v}%{ifname}"),
        v => v.to_string(),
    }
}

pub fn render(cfg: &NetConfig, nics: &dyn Nics) -> Result<Rendering, String> {
    let names = real_names(cfg, nics)?;
    let n = |x: &str| names.get(x).cloned().unwrap_or_else(|| x.to_string());
    let mut out = Rendering::default();
    let head = "# ci-agent: written from the seed's network-config\n";
    let mut net = String::from(head);
    let mut rt = String::from(head);
    let mut routes4 = Vec::new();
    let mut routes6 = Vec::new();
    let mut gw4 = None;
    let mut gw6 = None;
    let set = |s: &mut String, k: &str, v: &str| {
        let _ = writeln!(s, "{k}={}", quote(v));
    };
    for i in &cfg.ifaces {
        if matches!(i.kind, Kind::Bond { .. } | Kind::Bridge { .. }) || i.master.is_some() {
            out.warnings.push(format!(
                "{}: {} is not rendered on FreeBSD (lagg/bridge need cloned_interfaces); ignored",
                i.id,
                if i.master.is_some() {
                    "a bond or bridge member"
                } else {
                    i.kind.name()
                }
            ));
            continue;
        }
        let name = n(&i.name);
        let v = var(&name);
        if let (Some(new), Some(mac)) = (&i.set_name, &i.matcher.mac) {
            // The NIC has its old name until rc.d/netif renames it.
            if let Some((old, _)) = nics.list().into_iter().find(|(_, m)| m == mac) {
                if &old != new {
                    set(&mut net, &format!("ifconfig_{}_name", var(&old)), new);
                }
            }
        }
        if let Kind::Vlan { id, link } = &i.kind {
            set(&mut net, &format!("vlans_{}", var(&n(link))), &name);
            set(&mut net, &format!("create_args_{v}"), &format!("vlan {id}"));
        }
        let mtu = i.mtu.map(|m| format!(" mtu {m}")).unwrap_or_default();
        let v4 = i.addrs(false);
        let v6 = i.addrs(true);
        let mut alias = 0;
        if i.dhcp4 {
            set(&mut net, &format!("ifconfig_{v}"), &format!("DHCP{mtu}"));
        } else if let Some(a) = v4.first() {
            set(
                &mut net,
                &format!("ifconfig_{v}"),
                &format!("inet {a}{mtu}"),
            );
        } else if !mtu.is_empty() {
            set(&mut net, &format!("ifconfig_{v}"), &format!("up{mtu}"));
        }
        let extra4 = if i.dhcp4 {
            &v4[..]
        } else {
            v4.get(1..).unwrap_or(&[])
        };
        for a in extra4 {
            set(
                &mut net,
                &format!("ifconfig_{v}_alias{alias}"),
                &format!("inet {a}"),
            );
            alias += 1;
        }
        let ra = i.accept_ra == Some(true) || i.dhcp6;
        if i.dhcp6 {
            out.warnings.push(format!(
                "{}: dhcp6: FreeBSD base has no DHCPv6 client; router advertisements (SLAAC) are accepted instead",
                i.id
            ));
        }
        if let Some(a) = v6.first() {
            let extra = if ra { " accept_rtadv" } else { "" };
            set(
                &mut net,
                &format!("ifconfig_{v}_ipv6"),
                &format!("inet6 {a}{extra}"),
            );
        } else if ra {
            set(
                &mut net,
                &format!("ifconfig_{v}_ipv6"),
                "inet6 accept_rtadv",
            );
        }
        for a in v6.iter().skip(1) {
            set(
                &mut net,
                &format!("ifconfig_{v}_alias{alias}"),
                &format!("inet6 {a}"),
            );
            alias += 1;
        }
        for r in &i.routes {
            let six = r.to.ip.is_ipv6();
            if r.metric.is_some() {
                out.warnings.push(format!(
                    "{}: route metric is not supported by FreeBSD's routing; ignored",
                    i.id
                ));
            }
            if r.on_link {
                if let Some(via) = r.via {
                    let l = if six { &mut routes6 } else { &mut routes4 };
                    l.push(format!("-host {via} -interface {name}"));
                }
            }
            // A link-local next hop names its interface (`fe80::1%vtnet0`), as route(8)
            // and rc.conf(5) want it.
            let hop = r.via.map(|v| scoped(v, &name));
            if r.is_default() {
                let slot = if six { &mut gw6 } else { &mut gw4 };
                match (slot.is_none(), hop) {
                    (true, Some(v)) => *slot = Some(v),
                    _ => out.warnings.push(format!(
                        "{}: a second default route is not supported by FreeBSD's routing; ignored",
                        i.id
                    )),
                }
                continue;
            }
            let target = match hop {
                Some(v) => v,
                None => format!("-interface {name}"),
            };
            let l = if six { &mut routes6 } else { &mut routes4 };
            l.push(format!("-net {} {target}", r.to));
        }
    }
    if let Some(g) = gw4 {
        set(&mut rt, "defaultrouter", &g);
    }
    if let Some(g) = gw6 {
        set(&mut rt, "ipv6_defaultrouter", &g);
    }
    for (list, prefix) in [(&routes4, ""), (&routes6, "ipv6_")] {
        if list.is_empty() {
            continue;
        }
        let ids: Vec<String> = (0..list.len()).map(|k| format!("ciagent{k}")).collect();
        set(&mut rt, &format!("{prefix}static_routes"), &ids.join(" "));
        for (id, r) in ids.iter().zip(list.iter()) {
            set(&mut rt, &format!("{prefix}route_{id}"), r);
        }
    }
    out.files.push(OutFile::new(NETWORK, net));
    out.files.push(OutFile::new(ROUTING, rt));
    let dns = cfg.all_dns();
    if !dns.is_empty() {
        let mut s = String::from(head);
        if !dns.addresses.is_empty() {
            let a: Vec<String> = dns.addresses.iter().map(|x| x.to_string()).collect();
            set(&mut s, "name_servers", &a.join(" "));
        }
        if !dns.search.is_empty() {
            set(&mut s, "search_domains", &dns.search.join(" "));
        }
        out.files.push(OutFile::new(RESOLVCONF_CONF, s));
    }
    Ok(out)
}
