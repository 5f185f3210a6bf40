//! `ds=nocloud;…` on the kernel command line or in the SMBIOS system serial
//! (`-smbios type=1,serial=ds=nocloud;s=http://10.0.2.2:8000/`), as cloud-init reads it.
//!
//! The token starts with `ds=nocloud` or `ds=nocloud-net` (double quotes around the token
//! or its value are dropped); after the first `;` come `key=value` pairs separated by `;`:
//! `s`/`seedfrom` (a directory `/path/`, `file:///path/`, or an `http(s)://` URL),
//! `h`/`local-hostname`, `i`/`instance-id`. Empty values count as absent; unknown keys and
//! pairs without `=` are reported (cloud-init keeps them as meta-data keys; we ignore
//! them). The last `ds=nocloud` token wins, like cloud-init.

use std::path::PathBuf;

/// What `ds=nocloud` asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NocloudArgs {
    /// `ds=nocloud-net` rather than `ds=nocloud`.
    pub net: bool,
    pub seedfrom: Option<SeedFrom>,
    /// `h=` / `local-hostname=`.
    pub hostname: Option<String>,
    /// `i=` / `instance-id=`.
    pub instance_id: Option<String>,
    /// Problems worth a warning: unknown keys, unusable `s=` values.
    pub warnings: Vec<String>,
}

/// Where `s=` / `seedfrom=` points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeedFrom {
    /// A local directory (`/path/` or `file:///path/`), read like `--seed DIR`.
    Dir(PathBuf),
    /// An `http://` or `https://` URL: fetched by the HTTP datasource, not here.
    Url(String),
}

/// Find and parse `ds=nocloud…` in a command line (whitespace-separated tokens).
/// `None` when there is no such token.
pub fn parse(cmdline: &str) -> Option<NocloudArgs> {
    let token = cmdline
        .split_ascii_whitespace()
        .map(|t| t.replace('"', ""))
        .rev()
        .find(|t| {
            t == "ds=nocloud"
                || t == "ds=nocloud-net"
                || t.starts_with("ds=nocloud;")
                || t.starts_with("ds=nocloud-net;")
        })?;
    let mut pairs = token.split(';');
    let head = pairs.next().unwrap_or_default();
    let mut args = NocloudArgs {
        net: head == "ds=nocloud-net",
        ..NocloudArgs::default()
    };
    for item in pairs {
        if item.is_empty() {
            continue;
        }
        let Some((key, value)) = item.split_once('=') else {
            args.warnings
                .push(format!("ds=nocloud: '{item}' has no '=value'; ignored"));
            continue;
        };
        let value = (!value.is_empty()).then(|| value.to_owned());
        match key {
            "s" | "seedfrom" => {
                args.seedfrom = match value {
                    None => None,
                    Some(v) => match seedfrom(&v) {
                        Ok(s) => Some(s),
                        Err(w) => {
                            args.warnings.push(w);
                            None
                        }
                    },
                }
            }
            "h" | "local-hostname" => args.hostname = value,
            "i" | "instance-id" => args.instance_id = value,
            other => args
                .warnings
                .push(format!("ds=nocloud: unknown key '{other}'; ignored")),
        }
    }
    Some(args)
}

fn seedfrom(v: &str) -> Result<SeedFrom, String> {
    let lower = v.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return Ok(SeedFrom::Url(v.to_owned()));
    }
    let path = if lower.starts_with("file://") {
        v.get("file://".len()..).unwrap_or_default()
    } else {
        v
    };
    if path.starts_with('/') && !path.split('/').any(|c| c == "..") {
        Ok(SeedFrom::Dir(PathBuf::from(path)))
    } else {
        Err(format!(
            "ds=nocloud: seedfrom '{v}' is neither an absolute path, a file:// URL nor an http(s):// URL; ignored"
        ))
    }
}

impl NocloudArgs {
    /// Field by field: `self` where set, else `other` (kernel command line over SMBIOS).
    pub fn or(self, other: NocloudArgs) -> NocloudArgs {
        let mut warnings = self.warnings;
        warnings.extend(other.warnings);
        NocloudArgs {
            net: self.net || other.net,
            seedfrom: self.seedfrom.or(other.seedfrom),
            hostname: self.hostname.or(other.hostname),
            instance_id: self.instance_id.or(other.instance_id),
            warnings,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_keys() {
        let a =
            parse("BOOT_IMAGE=/vmlinuz ro ds=nocloud;s=http://10.0.2.2:8000/;h=web1;i=iid-7 quiet")
                .unwrap();
        assert!(!a.net);
        assert_eq!(
            a.seedfrom,
            Some(SeedFrom::Url("http://10.0.2.2:8000/".into()))
        );
        assert_eq!(a.hostname.as_deref(), Some("web1"));
        assert_eq!(a.instance_id.as_deref(), Some("iid-7"));
        let a = parse("ds=nocloud-net;seedfrom=file:///var/seed/;local-hostname=a;instance-id=b")
            .unwrap();
        assert!(a.net);
        assert_eq!(a.seedfrom, Some(SeedFrom::Dir("/var/seed/".into())));
        assert_eq!(a.hostname.as_deref(), Some("a"));
        assert_eq!(a.instance_id.as_deref(), Some("b"));
    }

    #[test]
    fn absent_quoted_and_malformed() {
        assert_eq!(parse("ro quiet"), None);
        assert_eq!(parse(""), None);
        assert_eq!(parse("ds=nocloudy;s=/x/"), None);
        assert_eq!(parse("xds=nocloud"), None);
        let a = parse("\"ds=nocloud;s=/seed/\"").unwrap();
        assert_eq!(a.seedfrom, Some(SeedFrom::Dir("/seed/".into())));
        let a = parse("ds=nocloud").unwrap();
        assert_eq!(a, NocloudArgs::default());
        let a = parse("ds=nocloud;;h=;bogus;x=1;s=relative/;i=ok").unwrap();
        assert_eq!(a.hostname, None);
        assert_eq!(a.seedfrom, None);
        assert_eq!(a.instance_id.as_deref(), Some("ok"));
        assert_eq!(a.warnings.len(), 3, "{:?}", a.warnings);
        let a = parse("ds=nocloud;s=/a/../etc/").unwrap();
        assert_eq!(a.seedfrom, None);
        // The last token wins.
        let a = parse("ds=nocloud;h=one ds=nocloud;h=two").unwrap();
        assert_eq!(a.hostname.as_deref(), Some("two"));
    }

    #[test]
    fn cmdline_over_smbios() {
        let c = parse("ds=nocloud;h=k").unwrap();
        let s = parse("ds=nocloud;h=s;i=from-smbios").unwrap();
        let m = c.or(s);
        assert_eq!(m.hostname.as_deref(), Some("k"));
        assert_eq!(m.instance_id.as_deref(), Some("from-smbios"));
    }
}
