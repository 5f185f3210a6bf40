//! `network-config` version 1: a `config` list of typed entries — `physical`, `vlan`,
//! `bond`, `bridge`, `nameserver`, `route` — with `subnets` of type `static`, `static6`,
//! `dhcp`/`dhcp4`, `dhcp6`, `ipv6_slaac`, `ipv6_dhcpv6-stateless`,
//! `ipv6_dhcpv6-stateful`, `manual`.
//!
//! A `physical` entry with `mac_address` renames the NIC with that MAC to `name` (as
//! cloud-init). Global `route` entries go to the interface whose subnet holds their
//! gateway; global `nameserver` entries are system DNS, those with `interface` belong to it.

use std::net::IpAddr;

use super::{Ctx, Iface, Kind, NetConfig, Route, Warnings};
use crate::formats::yaml::{Node, Pos};
use crate::formats::SeedError;

pub fn parse(p: &Ctx, root: &Node, w: &mut Warnings) -> Result<NetConfig, SeedError> {
    let mut cfg = NetConfig::default();
    let mut global_routes = Vec::new();
    let mut iface_dns: Vec<(String, super::Dns, Pos)> = Vec::new();
    let mut members: Vec<(usize, Vec<(String, Pos)>)> = Vec::new();
    let Some(list) = root.get("config") else {
        return Err(p.err(root.pos, "version 1 needs a `config` list"));
    };
    for (n, entry) in p.seq(list, "config")?.iter().enumerate() {
        let at = format!("config[{n}]");
        let ty = match entry.get("type") {
            Some(t) => p.text(t, &format!("{at}.type"))?,
            None => return Err(p.err(entry.pos, format!("{at}: no `type`"))),
        };
        match ty.as_str() {
            "nameserver" => {
                let mut dns = super::Dns::default();
                let mut iface = None;
                for (k, v) in p.map(entry, &at)? {
                    let kw = format!("{at}.{}", k.name);
                    match k.name.as_str() {
                        "type" => {}
                        "address" => {
                            for (s, pos) in p.texts(v, &kw)? {
                                dns.addresses.push(p.ip(&s, pos, &kw)?);
                            }
                        }
                        "search" => {
                            for (s, pos) in p.texts(v, &kw)? {
                                super::validate::domain(p, &s, pos, &kw)?;
                                dns.search.push(s);
                            }
                        }
                        "interface" => iface = Some(p.text(v, &kw)?),
                        _ => p.unknown(w, k, &format!("{at}.")),
                    }
                }
                match iface {
                    Some(i) => iface_dns.push((i, dns, entry.pos)),
                    None => cfg.dns.merge(&dns),
                }
                continue;
            }
            "route" => {
                global_routes.push(route(p, entry, &at, w)?);
                continue;
            }
            "physical" | "vlan" | "bond" | "bridge" => {}
            _ => {
                w.push(p.at(
                    entry.pos,
                    format!("{at}.type {ty:?}: not supported by ci-agent; ignored"),
                ));
                continue;
            }
        }
        let Some(name) = entry.get("name") else {
            return Err(p.err(entry.pos, format!("{at}: no `name`")));
        };
        let name = p.text(name, &format!("{at}.name"))?;
        let mut i = Iface::new(&name, Kind::Ethernet, entry.pos);
        let mut vlan_id = None;
        let mut vlan_link = None;
        let mut params = Vec::new();
        for (k, v) in p.map(entry, &at)? {
            let kw = format!("{at}.{}", k.name);
            match (k.name.as_str(), ty.as_str()) {
                ("type" | "name", _) => {}
                ("mac_address", _) => {
                    let mac = p.text(v, &kw)?.to_ascii_lowercase();
                    super::validate::mac(p, &mac, v.pos, &kw)?;
                    if ty == "physical" {
                        i.matcher.mac = Some(mac);
                        i.set_name = Some(name.clone());
                    } else {
                        w.push(p.at(
                            k.pos,
                            format!("{kw}: only physical interfaces are matched by MAC; ignored"),
                        ));
                    }
                }
                ("mtu", _) => i.mtu = Some(p.uint(v, &kw, 65535)? as u32),
                ("accept-ra", _) => i.accept_ra = Some(p.boolean(v, &kw)?),
                ("subnets", _) => {
                    for (sn, s) in p.seq(v, &kw)?.iter().enumerate() {
                        subnet(p, s, &format!("{kw}[{sn}]"), &mut i, w)?;
                    }
                }
                ("vlan_id", "vlan") => vlan_id = Some((p.uint(v, &kw, 4094)?, v.pos)),
                ("vlan_link", "vlan") => vlan_link = Some(p.text(v, &kw)?),
                ("bond_interfaces", "bond") | ("bridge_interfaces", "bridge") => {
                    let list = p
                        .seq(v, &kw)?
                        .iter()
                        .map(|m| Ok((p.text(m, &kw)?, m.pos)))
                        .collect::<Result<Vec<_>, SeedError>>()?;
                    members.push((cfg.ifaces.len(), list));
                }
                ("params", "bond" | "bridge") => {
                    for (pk, pv) in p.map(v, &kw)? {
                        let val = p.text(pv, &format!("{kw}.{}", pk.name))?;
                        // v1 spells them `bond-mode`, `bridge_stp`; the model uses v2's
                        // `mode`, `stp`.
                        let key = pk
                            .name
                            .trim_start_matches("bond-")
                            .trim_start_matches("bond_")
                            .trim_start_matches("bridge_")
                            .trim_start_matches("bridge-")
                            .replace('_', "-");
                        params.push((key, val));
                    }
                }
                _ => p.unknown(w, k, &format!("{at}.")),
            }
        }
        i.kind = match ty.as_str() {
            "vlan" => {
                let (Some((id, idpos)), Some(link)) = (vlan_id, vlan_link) else {
                    return Err(p.err(
                        entry.pos,
                        format!("{at}: a vlan needs `vlan_id` and `vlan_link`"),
                    ));
                };
                if id == 0 {
                    return Err(p.err(idpos, format!("{at}.vlan_id: expected 1 to 4094")));
                }
                Kind::Vlan {
                    id: id as u16,
                    link,
                }
            }
            "bond" => Kind::Bond { params },
            "bridge" => Kind::Bridge { params },
            _ => Kind::Ethernet,
        };
        if cfg.ifaces.iter().any(|o| o.name == i.name) {
            return Err(p.err(
                entry.pos,
                format!("{at}: the interface {name:?} is defined twice"),
            ));
        }
        cfg.ifaces.push(i);
    }
    for (idx, list) in members {
        let master = cfg.ifaces[idx].name.clone();
        for (m, pos) in list {
            let Some(j) = cfg.ifaces.iter().position(|i| i.name == m) else {
                return Err(p.err(pos, format!("no interface named {m:?}")));
            };
            if let Some(other) = &cfg.ifaces[j].master {
                return Err(p.err(pos, format!("{m:?} is already a member of {other}")));
            }
            cfg.ifaces[j].master = Some(master.clone());
            cfg.ifaces[idx].members.push(m);
        }
    }
    for i in &cfg.ifaces {
        if let Kind::Vlan { link, .. } = &i.kind {
            if cfg.iface(link).is_none() {
                return Err(p.err(
                    i.pos,
                    format!("{}: vlan_link {link:?} is not defined", i.name),
                ));
            }
        }
    }
    for (name, dns, pos) in iface_dns {
        match cfg.ifaces.iter_mut().find(|i| i.name == name) {
            Some(i) => i.dns.merge(&dns),
            None => {
                return Err(p.err(
                    pos,
                    format!("nameserver: interface {name:?} is not defined"),
                ))
            }
        }
    }
    // A global route belongs to the interface whose subnet holds its gateway.
    for r in global_routes {
        let owner = r.via.and_then(|via| {
            cfg.ifaces
                .iter()
                .position(|i| i.addresses.iter().any(|a| a.contains(via)))
        });
        match owner {
            Some(j) => cfg.ifaces[j].routes.push(r),
            None => {
                return Err(p.err(
                    r.pos,
                    "route: the gateway is outside every subnet of the configured interfaces",
                ))
            }
        }
    }
    Ok(cfg)
}

fn subnet(p: &Ctx, s: &Node, at: &str, i: &mut Iface, w: &mut Warnings) -> Result<(), SeedError> {
    let ty = match s.get("type") {
        Some(t) => p.text(t, &format!("{at}.type"))?,
        None => return Err(p.err(s.pos, format!("{at}: no `type`"))),
    };
    let is_static = match ty.as_str() {
        "static" | "static6" => true,
        "dhcp" | "dhcp4" => {
            i.dhcp4 = true;
            false
        }
        "dhcp6" | "ipv6_dhcpv6-stateful" => {
            i.dhcp6 = true;
            false
        }
        "ipv6_dhcpv6-stateless" => {
            i.dhcp6 = true;
            i.accept_ra = Some(true);
            false
        }
        "ipv6_slaac" => {
            i.accept_ra = Some(true);
            false
        }
        "manual" => false,
        _ => {
            return Err(p.err(
                s.pos,
                format!("{at}.type: {ty:?} is not a subnet type (static, static6, dhcp, dhcp4, dhcp6, ipv6_slaac, ipv6_dhcpv6-stateless, ipv6_dhcpv6-stateful, manual)"),
            ))
        }
    };
    let mut address: Option<(String, Pos)> = None;
    let mut netmask: Option<(String, Pos)> = None;
    let mut gateway: Option<(IpAddr, Pos)> = None;
    for (k, v) in p.map(s, at)? {
        let kw = format!("{at}.{}", k.name);
        match k.name.as_str() {
            "type" => {}
            "address" => address = Some((p.text(v, &kw)?, v.pos)),
            "netmask" => netmask = Some((p.text(v, &kw)?, v.pos)),
            "gateway" => gateway = Some((p.ip(&p.text(v, &kw)?, v.pos, &kw)?, v.pos)),
            "dns_nameservers" => {
                for (a, pos) in p.texts(v, &kw)? {
                    i.dns.addresses.push(p.ip(&a, pos, &kw)?);
                }
            }
            "dns_search" => {
                for (d, pos) in p.texts(v, &kw)? {
                    super::validate::domain(p, &d, pos, &kw)?;
                    i.dns.search.push(d);
                }
            }
            "routes" => {
                for (rn, r) in p.seq(v, &kw)?.iter().enumerate() {
                    i.routes.push(route(p, r, &format!("{kw}[{rn}]"), w)?);
                }
            }
            "mtu" => i.mtu = Some(p.uint(v, &kw, 65535)? as u32),
            _ => p.unknown(w, k, &format!("{at}.")),
        }
    }
    if !is_static {
        if let Some((_, pos)) = address {
            w.push(p.at(pos, format!("{at}.address: ignored on a {ty} subnet")));
        }
        return Ok(());
    }
    let Some((a, apos)) = address else {
        return Err(p.err(s.pos, format!("{at}: a static subnet needs `address`")));
    };
    let mut addr = p.addr(&a, apos, &format!("{at}.address"), None)?;
    if let Some((m, mpos)) = netmask {
        if !a.contains('/') {
            let prefix = match m
                .parse::<std::net::Ipv4Addr>()
                .ok()
                .and_then(super::netmask_prefix)
            {
                Some(px) if addr.ip.is_ipv4() => px,
                _ => match m.trim_start_matches('/').parse::<u8>() {
                    Ok(px) if px <= if addr.ip.is_ipv4() { 32 } else { 128 } => px,
                    _ => return Err(p.err(mpos, format!("{at}.netmask: {m:?} is not a netmask"))),
                },
            };
            addr.prefix = prefix;
        }
    }
    if ty == "static6" && addr.ip.is_ipv4() {
        return Err(p.err(
            apos,
            format!("{at}.address: a static6 subnet needs an IPv6 address"),
        ));
    }
    i.addresses.push(addr);
    if let Some((gw, pos)) = gateway {
        i.routes.push(Route::default_via(gw, pos));
    }
    Ok(())
}

/// A v1 route: `destination`/`network` (with `netmask` or `prefix`), `gateway`, `metric`.
fn route(p: &Ctx, r: &Node, at: &str, w: &mut Warnings) -> Result<Route, SeedError> {
    let mut dest: Option<(String, Pos)> = None;
    let mut mask: Option<(String, Pos)> = None;
    let mut via = None;
    let mut metric = None;
    for (k, v) in p.map(r, at)? {
        let kw = format!("{at}.{}", k.name);
        match k.name.as_str() {
            "type" => {}
            "destination" | "network" => dest = Some((p.text(v, &kw)?, v.pos)),
            "netmask" | "prefix" => mask = Some((p.text(v, &kw)?, v.pos)),
            "gateway" => via = Some(p.ip(&p.text(v, &kw)?, v.pos, &kw)?),
            "metric" => metric = Some(p.uint(v, &kw, u64::from(u32::MAX))? as u32),
            _ => p.unknown(w, k, &format!("{at}.")),
        }
    }
    let Some((d, dpos)) = dest else {
        return Err(p.err(
            r.pos,
            format!("{at}: a route needs `destination` (or `network`)"),
        ));
    };
    let d = if d == "default" {
        if via.is_some_and(|v: IpAddr| v.is_ipv6()) {
            "::/0".to_string()
        } else {
            "0.0.0.0/0".into()
        }
    } else {
        d
    };
    let host = if d.contains(':') { 128 } else { 32 };
    let mut to = p.addr(&d, dpos, &format!("{at}.destination"), Some(host))?;
    if let Some((m, mpos)) = mask {
        let px = match m
            .parse::<std::net::Ipv4Addr>()
            .ok()
            .and_then(super::netmask_prefix)
        {
            Some(px) => Some(px),
            None => m.parse::<u8>().ok(),
        };
        match px {
            Some(px) if px <= host => to.prefix = px,
            _ => return Err(p.err(mpos, format!("{at}: {m:?} is not a netmask or prefix"))),
        }
    }
    if let Some(v) = via {
        if v.is_ipv4() != to.ip.is_ipv4() {
            return Err(p.err(
                r.pos,
                format!("{at}: destination and gateway are not the same IP version"),
            ));
        }
    }
    Ok(Route {
        to,
        via,
        metric,
        on_link: false,
        pos: r.pos,
    })
}
