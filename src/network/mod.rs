//! NoCloud network configuration: `network-config` version 1 and 2 (bare or under
//! `network:`) and meta-data `network-interfaces` (ENI text), parsed into one model,
//! validated, and rendered for the network manager the template uses.
//!
//! - [`v1`], [`v2`], [`eni`]: the three inputs, each to a [`NetConfig`] with the source
//!   position of every item, so that errors and warnings say `file:line:column`.
//! - [`validate`]: the checks every input goes through (names, prefixes, gateways).
//! - `render_*`: the model to files, one pure function per target
//!   ([`render_networkd`], [`render_netplan`], [`render_eni`], [`render_nm`],
//!   [`render_freebsd`]).
//! - [`apply`]: write a rendering through `System`, keeping what it replaced, and undo it
//!   (a later instance, `ci-agent seal`).
//!
//! Nothing here decides *whether* to render: that is the `network` module's job.

pub mod apply;
pub mod eni;
pub mod render_eni;
pub mod render_freebsd;
pub mod render_netplan;
pub mod render_networkd;
pub mod render_nm;
pub mod v1;
pub mod v2;
pub mod validate;

use std::net::IpAddr;
use std::path::PathBuf;

use crate::formats::yaml::{self, Node, NodeValue, Pos};
use crate::formats::SeedError;

/// What a network-config said.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    /// `config: disabled`: leave the network alone.
    Disabled,
    Config(NetConfig),
}

/// The one model every input becomes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NetConfig {
    pub ifaces: Vec<Iface>,
    /// DNS not tied to an interface (v1 `nameserver` entries without `interface`).
    pub dns: Dns,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Ethernet,
    Vlan { id: u16, link: String },
    Bond { params: Vec<(String, String)> },
    Bridge { params: Vec<(String, String)> },
}

impl Kind {
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Ethernet => "ethernet",
            Kind::Vlan { .. } => "vlan",
            Kind::Bond { .. } => "bond",
            Kind::Bridge { .. } => "bridge",
        }
    }
}

/// How an interface is found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Match {
    /// Lower-case `aa:bb:cc:dd:ee:ff`.
    pub mac: Option<String>,
    /// A shell glob (`en*`).
    pub name: Option<String>,
    pub driver: Option<String>,
}

impl Match {
    pub fn is_empty(&self) -> bool {
        self.mac.is_none() && self.name.is_none() && self.driver.is_none()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addr {
    pub ip: IpAddr,
    pub prefix: u8,
}

impl std::fmt::Display for Addr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.ip, self.prefix)
    }
}

impl Addr {
    /// True when `ip` is inside this address's subnet.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.ip, ip) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                let m = mask(32, self.prefix);
                (u128::from(u32::from(a)) & m) == (u128::from(u32::from(b)) & m)
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                let m = mask(128, self.prefix);
                (u128::from(a) & m) == (u128::from(b) & m)
            }
            _ => false,
        }
    }

    /// The network address (host bits cleared).
    pub fn network(&self) -> IpAddr {
        match self.ip {
            IpAddr::V4(a) => {
                let m = mask(32, self.prefix) as u32;
                IpAddr::V4((u32::from(a) & m).into())
            }
            IpAddr::V6(a) => IpAddr::V6((u128::from(a) & mask(128, self.prefix)).into()),
        }
    }

    /// The dotted netmask of an IPv4 prefix.
    pub fn netmask_v4(&self) -> std::net::Ipv4Addr {
        (mask(32, self.prefix) as u32).into()
    }
}

fn mask(bits: u8, prefix: u8) -> u128 {
    let all: u128 = if bits == 32 {
        u128::from(u32::MAX)
    } else {
        u128::MAX
    };
    if prefix == 0 {
        0
    } else {
        all & !all.checked_shr(u32::from(prefix.min(bits))).unwrap_or(0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Destination; `0.0.0.0/0` or `::/0` for a default route.
    pub to: Addr,
    pub via: Option<IpAddr>,
    pub metric: Option<u32>,
    pub on_link: bool,
    pub pos: Pos,
}

impl Route {
    /// A default route through `gw` (gateway4/6, v1 subnet `gateway`, ENI `gateway`).
    pub fn default_via(gw: IpAddr, pos: Pos) -> Route {
        let any: IpAddr = if gw.is_ipv6() {
            std::net::Ipv6Addr::UNSPECIFIED.into()
        } else {
            std::net::Ipv4Addr::UNSPECIFIED.into()
        };
        Route {
            to: Addr { ip: any, prefix: 0 },
            via: Some(gw),
            metric: None,
            on_link: false,
            pos,
        }
    }

    pub fn is_default(&self) -> bool {
        self.to.prefix == 0
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dns {
    pub addresses: Vec<IpAddr>,
    pub search: Vec<String>,
}

impl Dns {
    pub fn is_empty(&self) -> bool {
        self.addresses.is_empty() && self.search.is_empty()
    }

    fn merge(&mut self, other: &Dns) {
        for a in &other.addresses {
            if !self.addresses.contains(a) {
                self.addresses.push(*a);
            }
        }
        for s in &other.search {
            if !self.search.contains(s) {
                self.search.push(s.clone());
            }
        }
    }
}

/// One interface to configure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iface {
    /// The name it has (after `set-name`), or the v2 ID when it is found by `matcher`.
    pub name: String,
    /// v2: the ID in the file (names vlan links and bond/bridge members).
    pub id: String,
    pub kind: Kind,
    pub matcher: Match,
    /// `set-name` (with a MAC match: rename the NIC).
    pub set_name: Option<String>,
    pub mtu: Option<u32>,
    pub dhcp4: bool,
    pub dhcp6: bool,
    pub accept_ra: Option<bool>,
    pub addresses: Vec<Addr>,
    /// Routes; `gateway4`/`gateway6` and `to: default` are default routes here.
    pub routes: Vec<Route>,
    pub dns: Dns,
    /// Bond or bridge this interface is a member of.
    pub master: Option<String>,
    /// Bond/bridge members (interface names).
    pub members: Vec<String>,
    pub pos: Pos,
}

impl Iface {
    /// The static addresses of one IP version.
    pub fn addrs(&self, v6: bool) -> Vec<&Addr> {
        self.addresses
            .iter()
            .filter(|a| a.ip.is_ipv6() == v6)
            .collect()
    }

    pub fn new(id: &str, kind: Kind, pos: Pos) -> Self {
        Iface {
            name: id.into(),
            id: id.into(),
            kind,
            matcher: Match::default(),
            set_name: None,
            mtu: None,
            dhcp4: false,
            dhcp6: false,
            accept_ra: None,
            addresses: Vec::new(),
            routes: Vec::new(),
            dns: Dns::default(),
            master: None,
            members: Vec::new(),
            pos,
        }
    }

    /// Whether the interface is found by MAC/driver/glob rather than by its name.
    pub fn matched(&self) -> bool {
        self.set_name.is_none() && !self.matcher.is_empty()
    }

    /// Has any IPv4 / IPv6 static address.
    pub fn has_v4(&self) -> bool {
        self.addresses.iter().any(|a| a.ip.is_ipv4())
    }
    pub fn has_v6(&self) -> bool {
        self.addresses.iter().any(|a| a.ip.is_ipv6())
    }

    /// The first default gateway of an IP version.
    pub fn gateway(&self, v6: bool) -> Option<IpAddr> {
        self.routes
            .iter()
            .filter(|r| r.is_default() && r.to.ip.is_ipv6() == v6)
            .find_map(|r| r.via)
    }
}

impl NetConfig {
    pub fn iface(&self, name: &str) -> Option<&Iface> {
        self.ifaces.iter().find(|i| i.name == name)
    }

    /// All DNS: the global one then each interface's, without repeats.
    pub fn all_dns(&self) -> Dns {
        let mut d = self.dns.clone();
        for i in &self.ifaces {
            d.merge(&i.dns);
        }
        d
    }
}

/// What a parser or renderer found worth saying (keys it cannot express): each names the
/// file, position and key.
pub type Warnings = Vec<String>;

/// One file a renderer produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutFile {
    pub path: PathBuf,
    pub content: String,
    pub mode: u32,
}

impl OutFile {
    pub fn new(path: impl Into<PathBuf>, content: String) -> Self {
        OutFile {
            path: path.into(),
            content,
            mode: 0o644,
        }
    }
}

/// A renderer's output: files, interface renames to do now (MAC → new name), warnings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rendering {
    pub files: Vec<OutFile>,
    /// Files whose matching stanzas for these interfaces must be commented out (ENI).
    pub neutralise_eni: Vec<String>,
    pub renames: Vec<(String, String)>,
    pub warnings: Warnings,
}

/// What the renderers may ask about the machine: current interface names and MACs.
pub trait Nics {
    /// Interfaces present now, as (name, lower-case MAC or "").
    fn list(&self) -> Vec<(String, String)>;
}

impl Nics for Vec<(String, String)> {
    fn list(&self) -> Vec<(String, String)> {
        self.clone()
    }
}

/// The name of the interface an entry configures, for renderers that need a real name
/// (ENI, FreeBSD): `set-name`, else the NIC with the matched MAC, else the first NIC
/// (sorted) matching the glob/driver-free matcher, else the ID.
pub fn resolve_name(i: &Iface, nics: &dyn Nics) -> Option<String> {
    if let Some(n) = &i.set_name {
        return Some(n.clone());
    }
    if i.matcher.is_empty() {
        return Some(i.name.clone());
    }
    let mut list = nics.list();
    list.sort();
    list.into_iter()
        .find(|(name, mac)| {
            i.matcher.mac.as_ref().is_none_or(|m| m == mac)
                && i.matcher.name.as_ref().is_none_or(|g| glob(g, name))
                && name != "lo"
        })
        .map(|(n, _)| n)
}

/// A shell glob (`*`, `?`, `[abc]`, `[a-z]`, `[!x]`) over the whole of `s`.
pub fn glob(pat: &str, s: &str) -> bool {
    let p: Vec<char> = pat.chars().collect();
    let t: Vec<char> = s.chars().collect();
    // Iterative with one backtrack point: linear in |p|·|t| at worst.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi, ti));
                    pi += 1;
                    continue;
                }
                '?' => {
                    pi += 1;
                    ti += 1;
                    continue;
                }
                '[' => {
                    if let Some((ok, next)) = class(&p, pi, t[ti]) {
                        if ok {
                            pi = next;
                            ti += 1;
                            continue;
                        }
                    } else if t[ti] == '[' {
                        pi += 1;
                        ti += 1;
                        continue;
                    }
                }
                c if c == t[ti] => {
                    pi += 1;
                    ti += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, st)) => {
                pi = sp + 1;
                ti = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Match `c` against the class starting at `p[i] == '['`: (matched, index after `]`).
fn class(p: &[char], i: usize, c: char) -> Option<(bool, usize)> {
    let mut j = i + 1;
    let neg = matches!(p.get(j), Some('!' | '^'));
    if neg {
        j += 1;
    }
    let mut ok = false;
    let mut first = true;
    while j < p.len() && (first || p[j] != ']') {
        first = false;
        if p.get(j + 1) == Some(&'-') && p.get(j + 2).is_some_and(|e| *e != ']') {
            ok |= p[j] <= c && c <= p[j + 2];
            j += 3;
        } else {
            ok |= p[j] == c;
            j += 1;
        }
    }
    (j < p.len()).then_some((ok != neg, j + 1))
}

/// Parse a `network-config` file: v1 or v2, bare or under `network:`, or `config:
/// disabled`. Errors name `file:line:column` and what was expected.
pub fn parse(file: &str, data: &[u8], warnings: &mut Warnings) -> Result<Parsed, SeedError> {
    let text = std::str::from_utf8(data).map_err(|e| SeedError {
        file: file.into(),
        line: None,
        column: None,
        message: format!(
            "not valid UTF-8 (at byte {}); network-config must be YAML text",
            e.valid_up_to()
        ),
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let root = yaml::parse_node(text, file)?;
    let mut node = &root;
    if let Some(inner) = root.get("network") {
        node = inner;
    }
    let p = Ctx { file };
    if matches!(node.value, NodeValue::Null) {
        return Err(p.err(node.pos, "empty network-config (expected version: 1 or 2)"));
    }
    if !matches!(node.value, NodeValue::Map(_)) {
        return Err(p.err(
            node.pos,
            format!("expected a mapping with `version`, found {}", node.kind()),
        ));
    }
    if node.get("config").and_then(|c| c.as_text()).as_deref() == Some("disabled") {
        return Ok(Parsed::Disabled);
    }
    let cfg = match node.get("version") {
        Some(v) => match v.as_text().as_deref() {
            Some("1") => v1::parse(&p, node, warnings)?,
            Some("2") => v2::parse(&p, node, warnings)?,
            _ => return Err(p.err(v.pos, "version: expected 1 or 2")),
        },
        None => return Err(p.err(node.pos, "no `version` key (expected version: 1 or 2)")),
    };
    validate::check(&p, &cfg)?;
    Ok(Parsed::Config(cfg))
}

/// The file being parsed, for errors and warnings with positions.
pub struct Ctx<'a> {
    pub file: &'a str,
}

impl Ctx<'_> {
    pub fn err(&self, pos: Pos, msg: impl Into<String>) -> SeedError {
        SeedError {
            file: self.file.into(),
            line: (pos.line > 0).then_some(pos.line),
            column: (pos.line > 0).then_some(pos.column),
            message: msg.into(),
        }
    }

    /// `file:line:col: msg`
    pub fn at(&self, pos: Pos, msg: impl std::fmt::Display) -> String {
        if pos.line > 0 {
            format!("{}:{}:{}: {msg}", self.file, pos.line, pos.column)
        } else {
            format!("{}: {msg}", self.file)
        }
    }

    /// A mapping's entries, or an error naming `what`.
    pub fn map<'n>(&self, n: &'n Node, what: &str) -> Result<&'n [(yaml::Key, Node)], SeedError> {
        match &n.value {
            NodeValue::Map(m) => Ok(m),
            NodeValue::Null => Ok(&[]),
            _ => Err(self.err(
                n.pos,
                format!("{what}: expected a mapping, found {}", n.kind()),
            )),
        }
    }

    pub fn seq<'n>(&self, n: &'n Node, what: &str) -> Result<&'n [Node], SeedError> {
        match &n.value {
            NodeValue::Seq(s) => Ok(s),
            NodeValue::Null => Ok(&[]),
            _ => Err(self.err(
                n.pos,
                format!("{what}: expected a list, found {}", n.kind()),
            )),
        }
    }

    pub fn text(&self, n: &Node, what: &str) -> Result<String, SeedError> {
        n.as_text().ok_or_else(|| {
            self.err(
                n.pos,
                format!("{what}: expected a string, found {}", n.kind()),
            )
        })
    }

    pub fn boolean(&self, n: &Node, what: &str) -> Result<bool, SeedError> {
        n.as_bool().ok_or_else(|| {
            self.err(
                n.pos,
                format!("{what}: expected true or false, found {}", n.kind()),
            )
        })
    }

    pub fn uint(&self, n: &Node, what: &str, max: u64) -> Result<u64, SeedError> {
        let v = match &n.value {
            NodeValue::Int(i) => u64::try_from(*i).ok(),
            NodeValue::UInt(u) => Some(*u),
            NodeValue::Str(s) => s.trim().parse().ok(),
            _ => None,
        };
        match v {
            Some(v) if v <= max => Ok(v),
            _ => Err(self.err(
                n.pos,
                format!(
                    "{what}: expected a whole number up to {max}, found {}",
                    shown(n)
                ),
            )),
        }
    }

    /// A string or a list of strings (v1 `dns_nameservers` may be either).
    pub fn texts(&self, n: &Node, what: &str) -> Result<Vec<(String, Pos)>, SeedError> {
        match &n.value {
            NodeValue::Seq(s) => s.iter().map(|x| Ok((self.text(x, what)?, x.pos))).collect(),
            NodeValue::Null => Ok(Vec::new()),
            _ => Ok(self
                .text(n, what)?
                .split([' ', ','])
                .filter(|s| !s.is_empty())
                .map(|s| (s.to_string(), n.pos))
                .collect()),
        }
    }

    pub fn ip(&self, s: &str, pos: Pos, what: &str) -> Result<IpAddr, SeedError> {
        s.trim().parse().map_err(|_| {
            self.err(
                pos,
                format!(
                    "{what}: {:?} is not an IPv4 or IPv6 address",
                    crate::platform::policy::shorten(s)
                ),
            )
        })
    }

    /// `a.b.c.d[/p]` or `x::y[/p]`; without a prefix: `default` (/24 or /64 as cloud-init
    /// when `None`).
    pub fn addr(
        &self,
        s: &str,
        pos: Pos,
        what: &str,
        default: Option<u8>,
    ) -> Result<Addr, SeedError> {
        let s = s.trim();
        let (ip, prefix) = match s.split_once('/') {
            Some((ip, p)) => (ip, Some(p)),
            None => (s, None),
        };
        let ip = self.ip(ip, pos, what)?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => {
                let v: Option<u8> = p.parse().ok();
                let v = match v {
                    Some(v) => Some(v),
                    // v1 allows a dotted netmask after the slash.
                    None => p
                        .parse::<std::net::Ipv4Addr>()
                        .ok()
                        .and_then(netmask_prefix),
                };
                match v {
                    Some(v) if v <= max => v,
                    _ => {
                        return Err(self.err(
                            pos,
                            format!("{what}: prefix {p:?} out of range (expected 0 to {max})"),
                        ))
                    }
                }
            }
            None => default.unwrap_or(if ip.is_ipv4() { 24 } else { 64 }),
        };
        Ok(Addr { ip, prefix })
    }

    /// Warn about a key this input does not support.
    pub fn unknown(&self, w: &mut Warnings, key: &yaml::Key, within: &str) {
        w.push(self.at(
            key.pos,
            format!("{within}{}: not supported by ci-agent; ignored", key.name),
        ));
    }
}

/// A netmask as a prefix length (`255.255.255.0` → 24); None when not contiguous.
pub fn netmask_prefix(m: std::net::Ipv4Addr) -> Option<u8> {
    let v = u32::from(m);
    let ones = v.leading_ones();
    (v.checked_shl(ones).unwrap_or(0) == 0).then_some(ones as u8)
}

fn shown(n: &Node) -> String {
    match n.as_text() {
        Some(t) => format!("{:?}", crate::platform::policy::shorten(&t)),
        None => n.kind().into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("en*", "ens3"));
        assert!(glob("e*", "eth0"));
        assert!(!glob("en*", "eth0"));
        assert!(glob("eth?", "eth0"));
        assert!(glob("eth[0-2]", "eth1"));
        assert!(!glob("eth[!0-2]", "eth1"));
        assert!(glob("*", ""));
        assert!(glob("a*b*c", "axxbyyc"));
        assert!(!glob("a*b*c", "axxbyy"));
        assert!(glob("[", "["));
    }

    #[test]
    fn subnets() {
        let a = Addr {
            ip: "10.0.0.7".parse().unwrap(),
            prefix: 24,
        };
        assert!(a.contains("10.0.0.1".parse().unwrap()));
        assert!(!a.contains("10.0.1.1".parse().unwrap()));
        assert_eq!(a.network().to_string(), "10.0.0.0");
        assert_eq!(a.netmask_v4().to_string(), "255.255.255.0");
        let b = Addr {
            ip: "2001:db8::2".parse().unwrap(),
            prefix: 64,
        };
        assert!(b.contains("2001:db8::1".parse().unwrap()));
        assert!(!b.contains("2001:db9::1".parse().unwrap()));
        assert_eq!(netmask_prefix("255.255.252.0".parse().unwrap()), Some(22));
        assert_eq!(netmask_prefix("255.0.255.0".parse().unwrap()), None);
        assert_eq!(netmask_prefix("0.0.0.0".parse().unwrap()), Some(0));
        let z = Addr {
            ip: "0.0.0.0".parse().unwrap(),
            prefix: 0,
        };
        assert!(z.contains("1.2.3.4".parse().unwrap()));
    }
}

#[cfg(test)]
mod golden;
