//! Checks every network input goes through before anything is rendered, so that no value
//! from a seed can break out of the line, file or quoting it lands in.
//!
//! - Interface names (and `set-name`, vlan links, members): 1 to 15 bytes (IFNAMSIZ − 1),
//!   ASCII letters, digits and `-_.:@`, not `.` or `..`: no `/`, quotes, spaces or newlines.
//! - `match.name` globs: the same characters plus `*?[]!`; drivers: letters, digits, `-_`.
//! - MACs: six `xx` pairs separated by `:`.
//! - Search domains: letters, digits, `-_.`, at most 253 bytes.
//! - MTU: 68 to 65535 (1280 when the interface has IPv6 addresses).
//! - A gateway must be inside a subnet of its interface's addresses of that IP version
//!   (unless `on-link`, link-local, or the interface has no static address of that version).

use super::{Ctx, Iface, Kind, NetConfig};
use crate::formats::yaml::Pos;
use crate::formats::SeedError;
use crate::platform::policy::shorten;

/// Longest interface name the kernels take (Linux IFNAMSIZ 16 with the NUL, FreeBSD the same).
pub const IFNAME_MAX: usize = 15;

/// Why `name` is not a usable interface name, if it is not.
pub fn ifname_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("empty".into());
    }
    if name.len() > IFNAME_MAX {
        return Some(format!("longer than {IFNAME_MAX} bytes"));
    }
    if name == "." || name == ".." {
        return Some("not a name".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-_.:@".contains(*c)))
    {
        return Some(format!(
            "{c:?} is not allowed (letters, digits and -_.:@ only)"
        ));
    }
    None
}

pub fn ifname(p: &Ctx, name: &str, pos: Pos, what: &str) -> Result<(), SeedError> {
    match ifname_problem(name) {
        None => Ok(()),
        Some(why) => Err(p.err(
            pos,
            format!("{what}: invalid interface name {:?}: {why}", shorten(name)),
        )),
    }
}

/// Ok when `ok`, else `{what}: "value" {expected}` at `pos`.
fn expect(
    p: &Ctx,
    ok: bool,
    pos: Pos,
    what: &str,
    value: &str,
    expected: &str,
) -> Result<(), SeedError> {
    if ok {
        return Ok(());
    }
    Err(p.err(pos, format!("{what}: {:?} {expected}", shorten(value))))
}

pub fn mac(p: &Ctx, mac: &str, pos: Pos, what: &str) -> Result<(), SeedError> {
    let ok = mac.len() == 17
        && mac.split(':').count() == 6
        && mac
            .split(':')
            .all(|b| b.len() == 2 && b.chars().all(|c| c.is_ascii_hexdigit()));
    expect(
        p,
        ok,
        pos,
        what,
        mac,
        "is not a MAC address (expected aa:bb:cc:dd:ee:ff)",
    )
}

pub fn domain(p: &Ctx, d: &str, pos: Pos, what: &str) -> Result<(), SeedError> {
    let ok = !d.is_empty()
        && d.len() <= 253
        && d.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    expect(
        p,
        ok,
        pos,
        what,
        d,
        "is not a DNS domain (letters, digits, '-', '_' and '.')",
    )
}

fn pattern(p: &Ctx, s: &str, pos: Pos, what: &str, extra: &str) -> Result<(), SeedError> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:@".contains(c) || extra.contains(c));
    expect(
        p,
        ok,
        pos,
        what,
        s,
        &format!("holds characters not allowed here (letters, digits, -_.:@{extra})"),
    )
}

/// Check a whole configuration; the first problem is the error.
pub fn check(p: &Ctx, cfg: &NetConfig) -> Result<(), SeedError> {
    for i in &cfg.ifaces {
        check_iface(p, cfg, i)?;
    }
    Ok(())
}

fn check_iface(p: &Ctx, cfg: &NetConfig, i: &Iface) -> Result<(), SeedError> {
    let at = &i.id;
    // A matched entry's ID is a label (it may be long), but renderers name files after it.
    if i.matched() {
        pattern(p, &i.name, i.pos, "interface ID", "")?;
    } else {
        ifname(p, &i.name, i.pos, at)?;
    }
    if let Some(n) = &i.set_name {
        ifname(p, n, i.pos, &format!("{at}.set-name"))?;
    }
    if let Some(m) = &i.matcher.mac {
        mac(p, m, i.pos, &format!("{at}.match.macaddress"))?;
    }
    if let Some(g) = &i.matcher.name {
        pattern(p, g, i.pos, &format!("{at}.match.name"), "*?[]!")?;
    }
    if let Some(d) = &i.matcher.driver {
        pattern(p, d, i.pos, &format!("{at}.match.driver"), "*?[]!")?;
    }
    if let Kind::Vlan { link, .. } = &i.kind {
        ifname(p, link, i.pos, &format!("{at}.link"))?;
    }
    for m in &i.members {
        ifname(p, m, i.pos, &format!("{at}.interfaces"))?;
    }
    if let Kind::Bond { params } | Kind::Bridge { params } = &i.kind {
        for (k, v) in params {
            pattern(p, k, i.pos, &format!("{at}.parameters"), "")?;
            pattern(p, v, i.pos, &format!("{at}.parameters.{k}"), " ")?;
        }
    }
    if let Some(mtu) = i.mtu {
        let min = if i.has_v6() { 1280 } else { 68 };
        if mtu < min {
            return Err(p.err(i.pos, format!("{at}.mtu: {mtu} is below the minimum {min}")));
        }
    }
    for r in &i.routes {
        let Some(via) = r.via else { continue };
        let same: Vec<_> = i
            .addresses
            .iter()
            .filter(|a| a.ip.is_ipv4() == via.is_ipv4())
            .collect();
        let link_local = match via {
            std::net::IpAddr::V6(v) => (v.segments()[0] & 0xffc0) == 0xfe80,
            std::net::IpAddr::V4(v) => v.is_link_local(),
        };
        if r.on_link || link_local || same.is_empty() {
            continue;
        }
        if !same.iter().any(|a| a.contains(via)) {
            let nets: Vec<String> = same
                .iter()
                .map(|a| format!("{}/{}", a.network(), a.prefix))
                .collect();
            return Err(p.err(
                r.pos,
                format!(
                    "{at}: gateway {via} is outside every subnet of the interface ({}); add `on-link: true` if it is reachable directly",
                    nets.join(", ")
                ),
            ));
        }
    }
    let _ = cfg;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(ifname_problem("eth0").is_none());
        assert!(ifname_problem("enp0s3.100").is_none());
        assert!(ifname_problem("a/b").is_some());
        assert!(ifname_problem("a'b").is_some());
        assert!(ifname_problem("a\"b").is_some());
        assert!(ifname_problem("a\nb").is_some());
        assert!(ifname_problem("sixteen-bytes-xx").is_some());
        assert!(ifname_problem("fifteen-bytes-x").is_none());
        assert!(ifname_problem("..").is_some());
        assert!(ifname_problem("").is_some());
    }
}
