//! Checking seed files with the agent's own parser, before a seed is written and in
//! `ci-seed validate`.
//!
//! A seed the agent would reject at first boot is caught on the host instead: the same
//! [`crate::formats::userdata::parse_seed`] runs over the files, and a problem is reported as
//! `file:line:column: message` with the user's own path in place of the seed file name.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;

use crate::formats::userdata::SeedError;
use crate::platform::cli::{self, Opt, Value as CliValue};

/// What a file given to `ci-seed validate` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    UserData,
    VendorData,
    MetaData,
    NetworkConfig,
}

impl Kind {
    /// The name the file has on a seed.
    pub fn seed_name(self) -> &'static str {
        match self {
            Kind::UserData => "user-data",
            Kind::VendorData => "vendor-data",
            Kind::MetaData => "meta-data",
            Kind::NetworkConfig => "network-config",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "user-data" => Some(Kind::UserData),
            "vendor-data" => Some(Kind::VendorData),
            "meta-data" => Some(Kind::MetaData),
            "network-config" => Some(Kind::NetworkConfig),
            _ => None,
        }
    }
}

/// Decide what `path` holds: by its file name (`meta-data*`, `user-data*`, `vendor-data*`,
/// `network-config*`), else by content (user-data starts with `#cloud-config`, `#!`,
/// `#include`, a boothook, MIME headers or gzip; a JSON object or a first key such as
/// `instance-id:` is meta-data; anything else is taken as user-data).
pub fn detect(path: &Path, bytes: &[u8]) -> Kind {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    for (prefix, kind) in [
        ("meta-data", Kind::MetaData),
        ("meta_data", Kind::MetaData),
        ("user-data", Kind::UserData),
        ("user_data", Kind::UserData),
        ("vendor-data", Kind::VendorData),
        ("network-config", Kind::NetworkConfig),
    ] {
        if name.starts_with(prefix) {
            return kind;
        }
    }
    detect_content(bytes)
}

fn detect_content(bytes: &[u8]) -> Kind {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        return Kind::UserData;
    }
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(4096)]);
    let text = text.trim_start_matches('\u{feff}');
    let first = text.lines().next().unwrap_or("").trim_end();
    let lower = first.to_ascii_lowercase();
    let user_data_marks = [
        "#cloud-config",
        "#!",
        "#include",
        "#cloud-boothook",
        "#part-handler",
        "## template:",
        "content-type:",
        "mime-version:",
    ];
    if user_data_marks.iter().any(|m| lower.starts_with(m)) {
        return Kind::UserData;
    }
    if text.trim_start().starts_with('{') {
        return Kind::MetaData;
    }
    let meta_keys = [
        "instance-id",
        "local-hostname",
        "hostname",
        "public-keys",
        "dsmode",
        "network-interfaces",
    ];
    let first_key = text
        .lines()
        .map(str::trim_end)
        .find(|l| !l.is_empty() && !l.starts_with('#') && l != &"---")
        .and_then(|l| l.split_once(':'))
        .map(|(k, _)| k.trim().trim_matches(|c| c == '"' || c == '\''));
    match first_key {
        Some(k) if meta_keys.contains(&k) => Kind::MetaData,
        _ => Kind::UserData,
    }
}

/// Result of checking a set of seed files; every entry's `file` is the user's name.
#[derive(Debug, Default)]
pub struct Report {
    /// What ci-agent would reject.
    pub errors: Vec<SeedError>,
    /// What ci-agent would skip (keys it does not support, unhandled parts); the message
    /// starts with `warning: `.
    pub warnings: Vec<SeedError>,
}

impl Report {
    fn add(&mut self, found: Vec<SeedError>) {
        for e in found {
            if e.message.starts_with("warning: ") {
                self.warnings.push(e);
            } else {
                self.errors.push(e);
            }
        }
    }
}

/// Check one file of kind `kind`, reporting it as `shown`.
pub fn check_file(kind: Kind, shown: &str, bytes: &[u8]) -> Report {
    let mut report = Report::default();
    let found = match kind {
        Kind::UserData | Kind::VendorData => {
            crate::formats::userdata::validate_user_data(shown, bytes)
        }
        Kind::MetaData => crate::formats::userdata::validate_meta_data(shown, bytes),
        Kind::NetworkConfig => check_network_config(bytes, shown),
    };
    report.add(found);
    report
}

/// Check the files of a seed (name → bytes) like the agent would read them: user-data,
/// vendor-data, meta-data and network-config; other files (CONFIG, a directory's extra
/// files) are the user's business. `display` maps a seed file name to what the user
/// called it (`user-data` → `./my-user-data`).
pub fn check_seed(files: &BTreeMap<String, Vec<u8>>, display: &dyn Fn(&str) -> String) -> Report {
    let mut report = Report::default();
    for kind in [
        Kind::UserData,
        Kind::VendorData,
        Kind::MetaData,
        Kind::NetworkConfig,
    ] {
        if let Some(bytes) = files.get(kind.seed_name()) {
            let one = check_file(kind, &display(kind.seed_name()), bytes);
            report.errors.extend(one.errors);
            report.warnings.extend(one.warnings);
        }
    }
    report
}

/// network-config, checked by the agent's own parser and validation (v1/v2, addresses,
/// prefixes, interface names, gateways): errors and warnings with positions.
fn check_network_config(bytes: &[u8], shown: &str) -> Vec<SeedError> {
    let mut warnings = Vec::new();
    let mut out = Vec::new();
    if let Err(e) = crate::network::parse(shown, bytes, &mut warnings) {
        out.push(e);
    }
    for w in warnings {
        out.push(positioned_warning(shown, &w));
    }
    out
}

/// A `file:line:col: message` warning as a [`SeedError`] whose message starts with
/// `warning: `.
fn positioned_warning(shown: &str, w: &str) -> SeedError {
    let rest = w
        .strip_prefix(shown)
        .and_then(|r| r.strip_prefix(':'))
        .unwrap_or(w);
    let mut parts = rest.splitn(3, ':');
    let (l, c, m) = (parts.next(), parts.next(), parts.next());
    match (
        l.and_then(|x| x.parse().ok()),
        c.and_then(|x| x.parse().ok()),
        m,
    ) {
        (Some(line), Some(column), Some(m)) => SeedError {
            file: shown.into(),
            line: Some(line),
            column: Some(column),
            message: format!("warning: {}", m.trim_start()),
        },
        _ => SeedError {
            file: shown.into(),
            line: None,
            column: None,
            message: format!("warning: {}", rest.trim_start()),
        },
    }
}

/// `ci-seed validate`'s options (the parser below; `platform::cli`).
pub const OPTIONS: &[Opt] = &[
    cli::HELP,
    Opt::with(
        "type",
        &['t'],
        CliValue::Choice(&["user-data", "vendor-data", "meta-data", "network-config"]),
    ),
    Opt::flag("strict", &[]),
];

pub(super) const HELP: &str = "\
Usage: ci-seed validate [--type KIND] [--strict] FILE...

Check user-data, vendor-data, meta-data and network-config files with ci-agent's own
parser, the one that reads them at first boot. Each problem is printed on standard
output as FILE:LINE:COLUMN: MESSAGE (line/column left out when unknown); things
ci-agent would skip (unsupported keys, unhandled parts) as
FILE:LINE:COLUMN: warning: MESSAGE, which do not change the exit status unless
--strict is given.

What a file is comes from its name (meta-data*, user-data*, vendor-data*,
network-config*), else from its content (#cloud-config, #!, MIME headers, gzip →
user-data; a JSON object or a first key such as instance-id: → meta-data).
'-' reads standard input (as user-data unless --type says otherwise).

Options:
  -t, --type KIND   treat every FILE as KIND: user-data, vendor-data, meta-data,
                    network-config
      --strict      count warnings (unknown keys, unhandled parts) as problems
  -h, --help        show this help

Exit status: 0 no problem, 1 problems found (or a file could not be read),
2 usage error.
";

/// `ci-seed validate FILE…`.
pub fn cli(args: Vec<OsString>) -> u8 {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_args(args);
    let mut kind = None;
    let mut strict = false;
    let mut files: Vec<OsString> = Vec::new();
    let usage = |msg: String| {
        eprintln!("ci-seed validate: {msg}\nTry 'ci-seed validate --help'.");
        crate::exit::USAGE
    };
    loop {
        let arg = match parser.next() {
            Ok(Some(a)) => a,
            Ok(None) => break,
            Err(e) => return usage(e.to_string()),
        };
        match arg {
            Short('h') | Long("help") => {
                crate::out!("{HELP}");
                return crate::exit::OK;
            }
            Short('t') | Long("type") => {
                let v = match parser.value() {
                    Ok(v) => v.to_string_lossy().into_owned(),
                    Err(e) => return usage(e.to_string()),
                };
                match Kind::parse(&v) {
                    Some(k) => kind = Some(k),
                    None => {
                        return usage(format!(
                        "--type {v:?}: expected user-data, vendor-data, meta-data or network-config"
                    ))
                    }
                }
            }
            Long("strict") => strict = true,
            Value(v) => files.push(v),
            other => return usage(other.unexpected().to_string()),
        }
    }
    if files.is_empty() {
        return usage("no FILE given".into());
    }
    if files.iter().filter(|f| f.as_os_str() == "-").count() > 1 {
        return usage("'-' (standard input) given more than once".into());
    }
    let mut bad = false;
    for f in &files {
        let (shown, bytes) = if f.as_os_str() == "-" {
            let mut buf = Vec::new();
            if let Err(e) = std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut buf) {
                crate::outln!("<stdin>: cannot read: {e}");
                bad = true;
                continue;
            }
            ("<stdin>".to_string(), buf)
        } else {
            let path = Path::new(f);
            let shown = path.display().to_string();
            match std::fs::read(path) {
                Ok(b) => (shown, b),
                Err(e) => {
                    crate::outln!("{shown}: cannot read: {e}");
                    bad = true;
                    continue;
                }
            }
        };
        let k = kind.unwrap_or_else(|| {
            if f.as_os_str() == "-" {
                Kind::UserData
            } else {
                detect(Path::new(f), &bytes)
            }
        });
        let report = check_file(k, &shown, &bytes);
        for e in &report.errors {
            crate::outln!("{e}");
        }
        for w in &report.warnings {
            crate::outln!("{w}");
        }
        bad |= !report.errors.is_empty() || (strict && !report.warnings.is_empty());
    }
    if bad {
        crate::exit::FAILED
    } else {
        crate::exit::OK
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_by_name_then_content() {
        assert_eq!(
            detect(Path::new("x/meta-data.yaml"), b"#cloud-config\n"),
            Kind::MetaData
        );
        assert_eq!(
            detect(Path::new("user-data"), b"instance-id: x\n"),
            Kind::UserData
        );
        assert_eq!(
            detect(Path::new("seed/network-config"), b""),
            Kind::NetworkConfig
        );
        assert_eq!(
            detect(Path::new("a"), b"#cloud-config\nhostname: x\n"),
            Kind::UserData
        );
        assert_eq!(detect(Path::new("a"), b"#!/bin/sh\necho\n"), Kind::UserData);
        assert_eq!(
            detect(Path::new("a"), b"Content-Type: multipart/mixed\n"),
            Kind::UserData
        );
        assert_eq!(detect(Path::new("a"), b"\x1f\x8b\x08"), Kind::UserData);
        assert_eq!(
            detect(Path::new("a"), b"{\"instance-id\": \"i\"}"),
            Kind::MetaData
        );
        assert_eq!(
            detect(Path::new("a"), b"---\ninstance-id: i-1\n"),
            Kind::MetaData
        );
        assert_eq!(
            detect(Path::new("a"), b"local-hostname: h\n"),
            Kind::MetaData
        );
        assert_eq!(detect(Path::new("a"), b"something else\n"), Kind::UserData);
        assert_eq!(
            detect(Path::new("a"), b"# generated\ninstance-id: x\n"),
            Kind::MetaData
        );
    }

    #[test]
    fn user_data_problems_carry_the_users_name_and_position() {
        let r = check_file(
            Kind::UserData,
            "my/ud.yaml",
            b"#cloud-config\nusers:\n  - name: a\n    groups: [x\nruncmd: [ls]\n",
        );
        assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
        let e = &r.errors[0];
        assert_eq!(e.file, "my/ud.yaml");
        assert!(e.line.is_some() && e.column.is_some(), "{e}");
        let r = check_file(Kind::UserData, "ok", b"#cloud-config\nhostname: h\n");
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        let r = check_file(Kind::MetaData, "md", b"instance-id: [\n");
        assert_eq!(r.errors.len(), 1);
        assert_eq!(r.errors[0].file, "md");
    }

    #[test]
    fn seed_check_maps_names_and_skips_other_files() {
        let mut files = BTreeMap::new();
        files.insert(
            "user-data".to_string(),
            b"#cloud-config\nhostname: [\n".to_vec(),
        );
        files.insert("meta-data".to_string(), b"instance-id: i-1\n".to_vec());
        files.insert("CONFIG".to_string(), b"not: [yaml".to_vec());
        let r = check_seed(&files, &|n| format!("/home/u/{n}.txt"));
        assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
        assert!(r.errors[0]
            .to_string()
            .starts_with("/home/u/user-data.txt:"));
    }

    #[test]
    fn network_config_yaml_errors_have_a_position() {
        let p = check_network_config(b"version: 2\nethernets: [a\n", "nc")
            .pop()
            .expect("a problem");
        assert_eq!(p.file, "nc");
        assert!(p.line.is_some(), "{p}");
        assert!(!check_network_config(b"\xff", "nc").is_empty());
        assert!(check_network_config(b"version: 2\n", "nc").is_empty());
        let p = check_network_config(
            b"version: 2\nethernets:\n  eth0:\n    addresses: [10.0.0.7/40]\n    wakeonlan: true\n",
            "nc",
        );
        assert_eq!(
            p[0].to_string(),
            "nc:4:17: ethernets.eth0.addresses: prefix \"40\" out of range (expected 0 to 32)"
        );
        let p = check_network_config(
            b"version: 2\nethernets:\n  eth0:\n    wakeonlan: true\n",
            "nc",
        );
        assert_eq!(
            p[0].to_string(),
            "nc:4:5: warning: ethernets.eth0.wakeonlan: not supported by ci-agent; ignored"
        );
    }
}
