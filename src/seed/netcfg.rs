//! The network shorthand of `ci-seed` and `ci-seed batch`: `--ip 10.0.0.7/24 --gateway
//! 10.0.0.1 --dns 1.1.1.1,9.9.9.9 [--mac 52:54:…] [--search lab]` (CSV/JSON columns `ip`,
//! `gateway`, `dns`, `mac`, `search`) becomes a version 2 `network-config`, checked by the
//! agent's own parser before it is written.
//!
//! The file is the bare v2 form (nuageinit reads only that) with `gateway4`/`gateway6`
//! rather than `routes: [{to: default}]` (cloud-init before 25.3 rejects `to: default` on
//! every renderer but netplan; nuageinit has no `routes`). With `--mac` the NIC is matched
//! by MAC; without, by `match: {name: "e*"}` (Linux `eth0`, `ens3`, `enp0s3`; FreeBSD's
//! `vtnet0` needs `--mac`).

use std::fmt::Write as _;

/// The shorthand's values, as given (lists split on commas).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetArgs {
    pub ip: Vec<String>,
    pub gateway: Vec<String>,
    pub dns: Vec<String>,
    pub mac: Option<String>,
    pub search: Vec<String>,
}

/// The option and column names, in order.
pub const KEYS: [&str; 5] = ["ip", "gateway", "dns", "mac", "search"];

impl NetArgs {
    pub fn is_empty(&self) -> bool {
        self == &NetArgs::default()
    }

    /// Set one key (`ip`, `gateway`, `dns`, `mac`, `search`); false for another key.
    /// Lists accumulate and split on commas and spaces.
    pub fn set(&mut self, key: &str, value: &str) -> bool {
        let list = || {
            value
                .split([',', ' '])
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect::<Vec<_>>()
        };
        match key {
            "ip" => self.ip.extend(list()),
            "gateway" => self.gateway.extend(list()),
            "dns" => self.dns.extend(list()),
            "search" => self.search.extend(list()),
            "mac" => self.mac = Some(value.trim().to_string()).filter(|v| !v.is_empty()),
            _ => return false,
        }
        true
    }

    /// The network-config text, validated; the error names the option and the problem.
    pub fn render(&self) -> Result<String, String> {
        if self.ip.is_empty() {
            return Err("--ip is required with --gateway, --dns, --mac or --search".into());
        }
        // Everything goes into the YAML quoted; values are checked first so the YAML
        // cannot be broken by them, then the whole file by the agent's parser.
        let plain = |opt: &str, v: &str| -> Result<(), String> {
            if v.is_empty()
                || !v
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".:/-_".contains(c))
            {
                return Err(format!("--{opt} {v:?}: unexpected characters"));
            }
            Ok(())
        };
        let mut s = String::from("version: 2\nethernets:\n  id0:\n");
        match &self.mac {
            Some(m) => {
                plain("mac", m)?;
                let _ = writeln!(
                    s,
                    "    match:\n      macaddress: \"{}\"",
                    m.to_ascii_lowercase()
                );
            }
            None => s.push_str("    match:\n      name: \"e*\"\n"),
        }
        s.push_str("    addresses:\n");
        for ip in &self.ip {
            plain("ip", ip)?;
            let _ = writeln!(s, "      - \"{ip}\"");
        }
        let (mut g4, mut g6) = (None, None);
        for g in &self.gateway {
            plain("gateway", g)?;
            let slot = if g.contains(':') { &mut g6 } else { &mut g4 };
            if slot.replace(g).is_some() {
                return Err(format!(
                    "--gateway {g}: one IPv4 and one IPv6 gateway at most"
                ));
            }
        }
        if let Some(g) = g4 {
            let _ = writeln!(s, "    gateway4: \"{g}\"");
        }
        if let Some(g) = g6 {
            let _ = writeln!(s, "    gateway6: \"{g}\"");
        }
        if !self.dns.is_empty() || !self.search.is_empty() {
            s.push_str("    nameservers:\n");
            if !self.dns.is_empty() {
                for d in &self.dns {
                    plain("dns", d)?;
                }
                let q: Vec<String> = self.dns.iter().map(|d| format!("\"{d}\"")).collect();
                let _ = writeln!(s, "      addresses: [{}]", q.join(", "));
            }
            if !self.search.is_empty() {
                for d in &self.search {
                    plain("search", d)?;
                }
                let q: Vec<String> = self.search.iter().map(|d| format!("\"{d}\"")).collect();
                let _ = writeln!(s, "      search: [{}]", q.join(", "));
            }
        }
        let mut warnings = Vec::new();
        match crate::network::parse("network-config", s.as_bytes(), &mut warnings) {
            Ok(_) => Ok(s),
            // Name the option rather than a line of a file the user never wrote.
            Err(e) => Err(e
                .message
                .replace("ethernets.id0.addresses", "--ip")
                .replace("ethernets.id0.gateway4", "--gateway")
                .replace("ethernets.id0.gateway6", "--gateway")
                .replace("ethernets.id0.nameservers.addresses", "--dns")
                .replace("ethernets.id0.nameservers.search", "--search")
                .replace("id0.match.macaddress", "--mac")
                .replace("id0: gateway", "--gateway")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(pairs: &[(&str, &str)]) -> NetArgs {
        let mut a = NetArgs::default();
        for (k, v) in pairs {
            assert!(a.set(k, v));
        }
        a
    }

    #[test]
    fn shorthand_to_v2() {
        let a = args(&[
            ("ip", "10.0.0.7/24"),
            ("gateway", "10.0.0.1"),
            ("dns", "1.1.1.1,9.9.9.9"),
            ("mac", "52:54:00:AB:CD:EF"),
            ("search", "lab"),
        ]);
        assert_eq!(
            a.render().unwrap(),
            "version: 2
ethernets:
  id0:
    match:
      macaddress: \"52:54:00:ab:cd:ef\"
    addresses:
      - \"10.0.0.7/24\"
    gateway4: \"10.0.0.1\"
    nameservers:
      addresses: [\"1.1.1.1\", \"9.9.9.9\"]
      search: [\"lab\"]
"
        );
        let a = args(&[
            ("ip", "10.0.0.7/24,2001:db8::7/64"),
            ("gateway", "10.0.0.1,2001:db8::1"),
        ]);
        let t = a.render().unwrap();
        assert!(t.contains("    match:\n      name: \"e*\"\n"), "{t}");
        assert!(t.contains("gateway6: \"2001:db8::1\""), "{t}");
    }

    #[test]
    fn problems_name_the_option() {
        let e = args(&[("ip", "10.0.0.7/24"), ("gateway", "10.0.1.1")])
            .render()
            .unwrap_err();
        assert!(
            e.starts_with("--gateway 10.0.1.1 is outside every subnet"),
            "{e}"
        );
        let e = args(&[("ip", "10.0.0.300/24")]).render().unwrap_err();
        assert_eq!(e, "--ip: \"10.0.0.300\" is not an IPv4 or IPv6 address");
        let e = args(&[("ip", "10.0.0.7/24"), ("mac", "52:54")])
            .render()
            .unwrap_err();
        assert!(e.contains("--mac: \"52:54\" is not a MAC address"), "{e}");
        let e = args(&[("ip", "10.0.0.7/24\"\nx: 1")]).render().unwrap_err();
        assert!(e.contains("unexpected characters"), "{e}");
        assert!(args(&[("dns", "1.1.1.1")])
            .render()
            .unwrap_err()
            .starts_with("--ip is required"));
    }
}
