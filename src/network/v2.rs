//! `network-config` version 2 (the netplan subset cloud-init reads): `ethernets`,
//! `vlans`, `bonds`, `bridges`.
//!
//! Per entry: `match` (`macaddress`, `name` glob, `driver`), `set-name`, `dhcp4`, `dhcp6`,
//! `addresses` (no prefix → /24 or /64, as cloud-init), `gateway4`/`gateway6`, `routes`
//! (`to` may be `default`; `via`, `metric`, `on-link`), `nameservers` (`addresses`,
//! `search`), `mtu`, `accept-ra`; vlans `id` and `link`; bonds and bridges `interfaces`
//! and `parameters`. Anything else is a warning naming the key. `wifis` is a warning.
//!
//! Without `match` the ID is the interface name; with `match` the ID is a label and the
//! interface is found by the match (`set-name` then names it).

use super::{Ctx, Dns, Iface, Kind, NetConfig, Route, Warnings};
use crate::formats::yaml::{Node, NodeValue};
use crate::formats::SeedError;

pub fn parse(p: &Ctx, root: &Node, w: &mut Warnings) -> Result<NetConfig, SeedError> {
    let mut cfg = NetConfig::default();
    // Bond/bridge members and vlan links are IDs; resolved to names at the end.
    let mut links: Vec<(usize, String, crate::formats::yaml::Pos)> = Vec::new();
    let mut members: Vec<(usize, Vec<(String, crate::formats::yaml::Pos)>)> = Vec::new();
    for (key, val) in p.map(root, "network-config")? {
        let kind = match key.name.as_str() {
            "version" | "renderer" => continue,
            "ethernets" => "ethernet",
            "vlans" => "vlan",
            "bonds" => "bond",
            "bridges" => "bridge",
            _ => {
                p.unknown(w, key, "");
                continue;
            }
        };
        for (id, entry) in p.map(val, &key.name)? {
            let at = format!("{}.{}", key.name, id.name);
            let mut kind = match kind {
                "vlan" => Kind::Vlan {
                    id: 0,
                    link: String::new(),
                },
                "bond" => Kind::Bond { params: Vec::new() },
                "bridge" => Kind::Bridge { params: Vec::new() },
                _ => Kind::Ethernet,
            };
            let mut i = Iface::new(&id.name, Kind::Ethernet, id.pos);
            let mut vlan_id = None;
            for (k, v) in p.map(entry, &at)? {
                let what = format!("{at}.{}", k.name);
                match (k.name.as_str(), &mut kind) {
                    ("match", Kind::Ethernet) => {
                        for (mk, mv) in p.map(v, &what)? {
                            let t = p.text(mv, &format!("{what}.{}", mk.name))?;
                            match mk.name.as_str() {
                                "macaddress" => i.matcher.mac = Some(t.to_ascii_lowercase()),
                                "name" => i.matcher.name = Some(t),
                                "driver" => i.matcher.driver = Some(t),
                                _ => p.unknown(w, mk, &format!("{what}.")),
                            }
                        }
                    }
                    ("set-name", Kind::Ethernet) => i.set_name = Some(p.text(v, &what)?),
                    ("dhcp4", _) => i.dhcp4 = p.boolean(v, &what)?,
                    ("dhcp6", _) => i.dhcp6 = p.boolean(v, &what)?,
                    ("accept-ra", _) => i.accept_ra = Some(p.boolean(v, &what)?),
                    ("mtu", _) => i.mtu = Some(p.uint(v, &what, 65535)? as u32),
                    ("addresses", _) => {
                        for a in p.seq(v, &what)? {
                            let s = match &a.value {
                                // netplan's `- 10.0.0.7/24: {label: …}` form.
                                NodeValue::Map(m) if m.len() == 1 => {
                                    w.push(p.at(
                                        a.pos,
                                        format!("{what}: address options (label, lifetime) are not supported; ignored"),
                                    ));
                                    m[0].0.name.clone()
                                }
                                _ => p.text(a, &what)?,
                            };
                            i.addresses.push(p.addr(&s, a.pos, &what, None)?);
                        }
                    }
                    ("gateway4", _) | ("gateway6", _) => {
                        let ip = p.ip(&p.text(v, &what)?, v.pos, &what)?;
                        let v6 = k.name == "gateway6";
                        if ip.is_ipv6() != v6 {
                            return Err(p.err(
                                v.pos,
                                format!(
                                    "{what}: expected an IPv{} address, got {ip}",
                                    if v6 { 6 } else { 4 }
                                ),
                            ));
                        }
                        i.routes.push(Route::default_via(ip, v.pos));
                    }
                    ("routes", _) => {
                        for r in p.seq(v, &what)? {
                            i.routes.push(route(p, r, &what, w)?);
                        }
                    }
                    ("nameservers", _) => i.dns = nameservers(p, v, &what, w)?,
                    ("id", Kind::Vlan { .. }) => vlan_id = Some((p.uint(v, &what, 4094)?, v.pos)),
                    ("link", Kind::Vlan { .. }) => {
                        links.push((cfg.ifaces.len(), p.text(v, &what)?, v.pos))
                    }
                    ("interfaces", Kind::Bond { .. } | Kind::Bridge { .. }) => {
                        let list = p
                            .seq(v, &what)?
                            .iter()
                            .map(|m| Ok((p.text(m, &what)?, m.pos)))
                            .collect::<Result<Vec<_>, SeedError>>()?;
                        members.push((cfg.ifaces.len(), list));
                    }
                    ("parameters", Kind::Bond { params } | Kind::Bridge { params }) => {
                        for (pk, pv) in p.map(v, &what)? {
                            let val = match &pv.value {
                                NodeValue::Seq(s) => s
                                    .iter()
                                    .map(|x| p.text(x, &what))
                                    .collect::<Result<Vec<_>, _>>()?
                                    .join(" "),
                                _ => p.text(pv, &format!("{what}.{}", pk.name))?,
                            };
                            params.push((pk.name.clone(), val));
                        }
                    }
                    ("renderer", _) => {}
                    _ => p.unknown(w, k, &format!("{at}.")),
                }
            }
            let entry_pos = id.pos;
            if let Kind::Vlan { id: vid, .. } = &mut kind {
                match vlan_id {
                    Some((v, _)) if v >= 1 => *vid = v as u16,
                    Some((_, pos)) => {
                        return Err(p.err(pos, format!("{at}.id: expected 1 to 4094")))
                    }
                    None => return Err(p.err(entry_pos, format!("{at}: a vlan needs `id`"))),
                }
                if !links.iter().any(|(n, _, _)| *n == cfg.ifaces.len()) {
                    return Err(p.err(entry_pos, format!("{at}: a vlan needs `link`")));
                }
            }
            i.kind = kind;
            if let Some(n) = &i.set_name {
                i.name = n.clone();
            }
            if cfg.ifaces.iter().any(|o| o.id == i.id) {
                return Err(p.err(id.pos, format!("{at}: the ID {:?} is used twice", i.id)));
            }
            cfg.ifaces.push(i);
        }
    }
    let name_of = |cfg: &NetConfig, id: &str| {
        cfg.ifaces
            .iter()
            .find(|i| i.id == id)
            .map(|i| i.name.clone())
    };
    for (idx, link, pos) in links {
        let Some(name) = name_of(&cfg, &link) else {
            return Err(p.err(pos, format!("link: no interface with the ID {link:?}")));
        };
        if let Kind::Vlan { link: l, .. } = &mut cfg.ifaces[idx].kind {
            *l = name;
        }
    }
    for (idx, list) in members {
        let master = cfg.ifaces[idx].name.clone();
        for (m, pos) in list {
            let Some(j) = cfg.ifaces.iter().position(|i| i.id == m) else {
                return Err(p.err(pos, format!("interfaces: no interface with the ID {m:?}")));
            };
            if let Some(other) = &cfg.ifaces[j].master {
                return Err(p.err(
                    pos,
                    format!("interfaces: {m:?} is already a member of {other}"),
                ));
            }
            cfg.ifaces[j].master = Some(master.clone());
            let name = cfg.ifaces[j].name.clone();
            cfg.ifaces[idx].members.push(name);
        }
    }
    Ok(cfg)
}

fn route(p: &Ctx, r: &Node, what: &str, w: &mut Warnings) -> Result<Route, SeedError> {
    let mut to = None;
    let mut via = None;
    let mut metric = None;
    let mut on_link = false;
    for (k, v) in p.map(r, what)? {
        let kw = format!("{what}.{}", k.name);
        match k.name.as_str() {
            "to" => to = Some((p.text(v, &kw)?, v.pos)),
            "via" => via = Some(p.ip(&p.text(v, &kw)?, v.pos, &kw)?),
            "metric" => metric = Some(p.uint(v, &kw, u64::from(u32::MAX))? as u32),
            "on-link" => on_link = p.boolean(v, &kw)?,
            _ => p.unknown(w, k, &format!("{what}.")),
        }
    }
    let Some((to, pos)) = to else {
        return Err(p.err(r.pos, format!("{what}: a route needs `to`")));
    };
    let to = if to == "default" {
        let v6 = via.is_some_and(|v: std::net::IpAddr| v.is_ipv6());
        let s = if v6 { "::/0" } else { "0.0.0.0/0" };
        p.addr(s, pos, what, None)?
    } else {
        // A destination without a prefix is one host.
        let host = if to.contains(':') { 128 } else { 32 };
        p.addr(&to, pos, &format!("{what}.to"), Some(host))?
    };
    if let Some(v) = via {
        if v.is_ipv4() != to.ip.is_ipv4() {
            return Err(p.err(
                pos,
                format!("{what}: `to` {to} and `via` {v} are not the same IP version"),
            ));
        }
    }
    Ok(Route {
        to,
        via,
        metric,
        on_link,
        pos: r.pos,
    })
}

fn nameservers(p: &Ctx, v: &Node, what: &str, w: &mut Warnings) -> Result<Dns, SeedError> {
    let mut dns = Dns::default();
    for (k, n) in p.map(v, what)? {
        let kw = format!("{what}.{}", k.name);
        match k.name.as_str() {
            "addresses" => {
                for (s, pos) in p.texts(n, &kw)? {
                    dns.addresses.push(p.ip(&s, pos, &kw)?);
                }
            }
            "search" => {
                for (s, pos) in p.texts(n, &kw)? {
                    super::validate::domain(p, &s, pos, &kw)?;
                    dns.search.push(s);
                }
            }
            _ => p.unknown(w, k, &format!("{what}.")),
        }
    }
    Ok(dns)
}
