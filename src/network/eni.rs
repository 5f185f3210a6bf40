//! meta-data `network-interfaces`: Debian ENI text (`auto`, `allow-hotplug`, `iface X inet
//! static|dhcp|manual`, `iface X inet6 static|dhcp|auto`, with `address`, `netmask`,
//! `gateway`, `mtu`, `hwaddress`, `dns-nameservers`, `dns-search`), converted to the model
//! as cloud-init's `convert_eni_data` does. Only used when the seed has no
//! `network-config`. Other options are warnings naming their line.

use super::{Ctx, Iface, Kind, NetConfig, Route, Warnings};
use crate::formats::yaml::Pos;
use crate::formats::SeedError;

pub fn parse(file: &str, text: &str, w: &mut Warnings) -> Result<NetConfig, SeedError> {
    let p = Ctx { file };
    let mut cfg = NetConfig::default();
    // (index of the iface, family is v6) of the stanza being read.
    let mut cur: Option<(usize, bool, bool)> = None;
    for (ln, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let col = raw.len() - raw.trim_start().len() + 1;
        let pos = Pos {
            line: ln + 1,
            column: col,
        };
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        match words[0] {
            "auto" | "allow-hotplug" | "allow-auto" => {
                cur = None;
                continue;
            }
            "iface" => {
                if words.len() < 4 {
                    return Err(p.err(pos, "iface: expected `iface NAME inet|inet6 METHOD`"));
                }
                let (name, fam, method) = (words[1], words[2], words[3]);
                if name == "lo" {
                    cur = None;
                    continue;
                }
                super::validate::ifname(&p, name, pos, "iface")?;
                let v6 = match fam {
                    "inet" => false,
                    "inet6" => true,
                    _ => {
                        return Err(p.err(
                            pos,
                            format!("iface {name}: family {fam:?} (expected inet or inet6)"),
                        ))
                    }
                };
                let idx = match cfg.ifaces.iter().position(|i| i.name == name) {
                    Some(i) => i,
                    None => {
                        cfg.ifaces.push(Iface::new(name, Kind::Ethernet, pos));
                        cfg.ifaces.len() - 1
                    }
                };
                let i = &mut cfg.ifaces[idx];
                let is_static = match (method, v6) {
                    ("static", _) => true,
                    ("dhcp", false) => {
                        i.dhcp4 = true;
                        false
                    }
                    ("dhcp", true) => {
                        i.dhcp6 = true;
                        false
                    }
                    ("auto", true) => {
                        i.accept_ra = Some(true);
                        false
                    }
                    ("manual", _) => false,
                    _ => return Err(p.err(pos, format!("iface {name}: method {method:?} not supported (static, dhcp, manual; inet6 auto)"))),
                };
                cur = Some((idx, v6, is_static));
            }
            "mapping" | "source" | "source-directory" => {
                w.push(p.at(
                    pos,
                    format!(
                        "{}: not supported in meta-data network-interfaces; ignored",
                        words[0]
                    ),
                ));
                cur = None;
            }
            opt => {
                let Some((idx, v6, is_static)) = cur else {
                    return Err(p.err(pos, format!("{opt:?} outside an iface stanza")));
                };
                let val = words.get(1..).unwrap_or(&[]).join(" ");
                let vpos = Pos {
                    line: ln + 1,
                    column: col + opt.len() + 1,
                };
                let i = &mut cfg.ifaces[idx];
                match opt {
                    "address" if is_static => {
                        let a = p.addr(&val, vpos, "address", None)?;
                        if a.ip.is_ipv6() != v6 {
                            return Err(p.err(vpos, "address: not of the stanza's family"));
                        }
                        i.addresses.push(a);
                    }
                    "netmask" if is_static => {
                        let Some(a) = i.addresses.last_mut() else {
                            return Err(p.err(pos, "netmask before address"));
                        };
                        a.prefix = match val.parse().ok().and_then(super::netmask_prefix) {
                            Some(px) if !v6 => px,
                            _ => match val.parse::<u8>() {
                                Ok(px) if px <= if v6 { 128 } else { 32 } => px,
                                _ => {
                                    return Err(
                                        p.err(vpos, format!("netmask: {val:?} is not a netmask"))
                                    )
                                }
                            },
                        };
                    }
                    "gateway" => {
                        let gw = p.ip(&val, vpos, "gateway")?;
                        i.routes.push(Route::default_via(gw, vpos));
                    }
                    "mtu" => {
                        i.mtu = match val.parse::<u32>() {
                            Ok(m) if m <= 65535 => Some(m),
                            _ => {
                                return Err(p.err(
                                    vpos,
                                    format!("mtu: {val:?} is not a number up to 65535"),
                                ))
                            }
                        }
                    }
                    "hwaddress" => {
                        let mac = val.trim_start_matches("ether").trim().to_ascii_lowercase();
                        super::validate::mac(&p, &mac, vpos, "hwaddress")?;
                        i.matcher.mac = Some(mac);
                        i.set_name = Some(i.name.clone());
                    }
                    "dns-nameservers" => {
                        for a in words[1..].iter() {
                            i.dns.addresses.push(p.ip(a, vpos, "dns-nameservers")?);
                        }
                    }
                    "dns-search" => {
                        for d in words[1..].iter() {
                            super::validate::domain(&p, d, vpos, "dns-search")?;
                            i.dns.search.push(d.to_string());
                        }
                    }
                    _ => w.push(p.at(
                        pos,
                        format!("option {opt:?}: not supported by ci-agent; ignored"),
                    )),
                }
            }
        }
    }
    super::validate::check(&p, &cfg)?;
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_and_dhcp() {
        let mut w = Vec::new();
        let c = parse(
            "meta-data",
            "auto lo\niface lo inet loopback\nauto eth0\niface eth0 inet static\n  address 10.0.0.7\n  netmask 255.255.255.0\n  gateway 10.0.0.1\n  dns-nameservers 1.1.1.1 9.9.9.9\n  dns-search lab\niface eth1 inet dhcp\n  up true\n",
            &mut w,
        )
        .unwrap();
        assert_eq!(c.ifaces.len(), 2);
        let e = &c.ifaces[0];
        assert_eq!(e.addresses[0].to_string(), "10.0.0.7/24");
        assert_eq!(e.gateway(false).unwrap().to_string(), "10.0.0.1");
        assert_eq!(e.dns.addresses.len(), 2);
        assert!(c.ifaces[1].dhcp4);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].starts_with("meta-data:11:"), "{w:?}");
    }

    #[test]
    fn errors_have_positions() {
        let mut w = Vec::new();
        let e = parse(
            "md",
            "iface eth0 inet static\n  address 10.0.0.300\n",
            &mut w,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "md:2:11: address: \"10.0.0.300\" is not an IPv4 or IPv6 address"
        );
        let e = parse(
            "md",
            "iface eth0 inet static\n address 10.0.0.7/24\n gateway 10.9.0.1\n",
            &mut w,
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("md:3:10: eth0: gateway 10.9.0.1 is outside"),
            "{e}"
        );
    }
}
