//! The typed cloud-config: the keys in scope (hostname, users, keys, passwords, packages,
//! write_files, bootcmd/runcmd, final_message, power_state, host-key handling), each in
//! the shape the modules want, normalised from the several shapes cloud-init accepts
//! (`groups: "a, b"` or `[a, b]`, `sudo: "ALL=…"` or a list or `false`, …).
//!
//! # Conversion and error positions
//!
//! The conversion is hand-written over the located YAML tree ([`crate::formats::yaml::Node`]) rather
//! than derived: cloud-init accepts several shapes per key, and serde's untagged enums
//! would both lose positions and give useless "did not match any variant" errors. Every
//! node of the tree keeps its line and column, so a type error names the key path, what
//! was expected and where: `user-data:7:14: users[1].groups: expected a list of names or a
//! comma-separated string, found a mapping`.
//!
//! [`parse_seed`](super::parse_seed) converts each cloud-config part on its own first
//! (errors then name the right file and position, and unknown keys are reported once per
//! part), then converts the merged tree. [`CloudConfig::from_value`] converts a plain JSON
//! value (no positions; errors still name the key path).
//!
//! Booleans follow PyYAML: plain `yes/no/on/off/true/false` (in the three spellings PyYAML
//! knows) are booleans where a boolean is expected; where a string is expected the same
//! plain scalar keeps its spelling (`name: no` is the user `no`).
//!
//! Keys and sub-keys we do not implement are warnings ("not supported by ci-agent"), not
//! errors, like cloud-init's schema warnings: a seed written for cloud-init still applies
//! what we do support.

use std::fmt::Display;
use std::io::Read;

use super::SeedError;
use crate::formats::yaml::{python_b64decode, Key, Node, NodeValue};

use serde::Serialize;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CloudConfig {
    pub hostname: Option<String>,
    pub fqdn: Option<String>,
    pub preserve_hostname: Option<bool>,
    pub prefer_fqdn_over_hostname: Option<bool>,
    pub manage_etc_hosts: Option<ManageEtcHosts>,

    /// Top-level keys: go to the default user.
    pub ssh_authorized_keys: Vec<String>,
    /// `None`: the key was absent (cloud-init then creates the default user).
    pub users: Option<Vec<UserSpec>>,
    pub groups: Vec<GroupSpec>,
    pub disable_root: Option<bool>,

    /// Password of the default user (plain text).
    pub password: Option<String>,
    pub chpasswd: Option<Chpasswd>,
    pub ssh_pwauth: Option<bool>,
    pub ssh_deletekeys: Option<bool>,
    pub ssh_genkeytypes: Option<Vec<String>>,
    /// `ssh_keys`: host keys and certificates for the instance (secret: never shown).
    pub ssh_keys: Option<SshKeys>,
    /// `no_ssh_fingerprints: true`: do not print the host key fingerprints.
    pub no_ssh_fingerprints: Option<bool>,

    pub packages: Vec<Package>,
    pub package_update: Option<bool>,
    pub package_upgrade: Option<bool>,

    pub bootcmd: Vec<CommandSpec>,
    pub runcmd: Vec<CommandSpec>,
    pub write_files: Vec<WriteFile>,
    pub final_message: Option<String>,
    pub power_state: Option<PowerState>,

    /// Keys whose value was rejected (they keep their defaults above): the module that
    /// owns the key fails with this error; every other module still runs.
    #[serde(skip)]
    pub errors: Vec<KeyError>,
}

/// A rejected cloud-config key: which top-level key, and why (file, line:column, the key
/// path and what was expected; never the rejected value itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError {
    pub key: String,
    pub error: SeedError,
}

impl CloudConfig {
    /// The errors of the keys in `keys` (a module's keys), in document order.
    pub fn errors_for<'a>(&'a self, keys: &'a [&str]) -> impl Iterator<Item = &'a SeedError> + 'a {
        self.errors
            .iter()
            .filter(move |e| keys.contains(&e.key.as_str()))
            .map(|e| &e.error)
    }
}

/// `ssh_keys` entries (`rsa_private`, `ed25519_public`, `ecdsa_certificate`, …) in seed
/// order. The values include private keys: `Debug` and `Serialize` show only the names.
#[derive(Clone, Default, PartialEq)]
pub struct SshKeys {
    pub entries: Vec<(String, String)>,
}

impl SshKeys {
    /// The text of entry `name` (`rsa_private`).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl std::fmt::Debug for SshKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|(k, _)| k))
            .finish()
    }
}

impl Serialize for SshKeys {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.entries.iter().map(|(k, _)| k))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ManageEtcHosts {
    /// `false`: leave `/etc/hosts` alone.
    False,
    /// `true` / `template`: write the `127.0.1.1 fqdn hostname` line.
    Template,
    /// `localhost`: update only the hostname line, keep the rest.
    Localhost,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum UserSpec {
    /// The string `default`: the configured default user.
    Default,
    User(Box<User>),
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct User {
    pub name: String,
    pub gecos: Option<String>,
    pub groups: Vec<String>,
    pub primary_group: Option<String>,
    pub shell: Option<String>,
    /// sudoers rules (`ALL=(ALL) NOPASSWD:ALL`); empty = none; `sudo: false` = none.
    pub sudo: Vec<String>,
    pub homedir: Option<String>,
    /// Default true, like cloud-init.
    pub lock_passwd: Option<bool>,
    /// A crypt(3) hash (`passwd`, `hashed_passwd`).
    pub passwd: Option<String>,
    pub plain_text_passwd: Option<String>,
    pub ssh_authorized_keys: Vec<String>,
    pub no_create_home: bool,
    pub system: bool,
    pub uid: Option<u32>,
    /// Account expiry, `YYYY-MM-DD`.
    pub expiredate: Option<String>,
    /// Days after a password expires until the account is disabled (`-1`: never).
    pub inactive: Option<i64>,
    /// doas(1) rules for this user (nuageinit's and cloud-init's `doas`).
    pub doas: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupSpec {
    pub name: String,
    pub members: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Chpasswd {
    /// Default true, like cloud-init.
    pub expire: Option<bool>,
    /// From `users:` and from the legacy `list:` (`name:password` lines).
    pub users: Vec<ChpasswdUser>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChpasswdUser {
    pub name: String,
    /// Plain text or hash; `None` with `PasswordKind::Random`.
    pub password: Option<String>,
    pub kind: PasswordKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PasswordKind {
    Text,
    Hash,
    Random,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Package {
    pub name: String,
    pub version: Option<String>,
}

/// A `bootcmd`/`runcmd` item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum CommandSpec {
    /// A string: run by `sh -c`.
    Shell(String),
    /// A list: an argv, no shell.
    Argv(Vec<String>),
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WriteFile {
    pub path: String,
    /// Decoded content (after b64 / gzip).
    #[serde(skip)]
    pub content: Vec<u8>,
    /// `user:group` or `user`; default `root:root`.
    pub owner: Option<String>,
    /// Permission bits; default 0o644.
    pub permissions: Option<u32>,
    pub append: bool,
    /// Written in the late stage (after users and packages exist).
    pub defer: bool,
    /// `source: {uri, headers}`: fetched, falling back to `content` when the fetch fails.
    pub source: Option<WriteSource>,
}

/// Where a `write_files` entry's content comes from (cloud-init's `source`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WriteSource {
    pub uri: String,
    /// Request headers (values are not serialised: they may carry credentials).
    #[serde(skip)]
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PowerState {
    /// `poweroff`, `reboot` or `halt`.
    pub mode: String,
    /// `now` or `+N` minutes.
    pub delay: Option<String>,
    pub message: Option<String>,
    pub timeout_secs: Option<u64>,
    /// Only when this command succeeds (`condition: true` → always).
    pub condition: Option<CommandSpec>,
}

/// Top-level keys [`CloudConfig`] implements. Anything else is reported as not supported.
pub const KNOWN_KEYS: &[&str] = &[
    "hostname",
    "fqdn",
    "preserve_hostname",
    "prefer_fqdn_over_hostname",
    "manage_etc_hosts",
    "ssh_authorized_keys",
    "users",
    "groups",
    "disable_root",
    "password",
    "chpasswd",
    "ssh_pwauth",
    "ssh_deletekeys",
    "ssh_genkeytypes",
    "ssh_keys",
    "no_ssh_fingerprints",
    "packages",
    "package_update",
    "package_upgrade",
    // cloud-init's older spellings of package_update / package_upgrade.
    "apt_update",
    "apt_upgrade",
    "repo_update",
    "repo_upgrade",
    "bootcmd",
    "runcmd",
    "write_files",
    "final_message",
    "power_state",
    // Read by parse_seed: `vendor_data: {enabled: false}` drops vendor-data.
    "vendor_data",
    // Read by their modules from the located tree (modules::Context::key).
    "timezone",
    "locale",
    "locale_configfile",
    "ntp",
    "ca_certs",
    "ca-certs",
    "mounts",
    "mount_default_fields",
    "swap",
    "keyboard",
    "resolv_conf",
    "manage_resolv_conf",
    "no_ssh_fingerprints",
    "authkey_hash",
    "disable_root_opts",
    "apt",
    "apt_pipelining",
    "yum_repos",
    "yum_repo_dir",
    "zypper",
    "apk_repos",
    "pkg",
    "phone_home",
    // Read by the disk room (disk::grow).
    "growpart",
    "resize_rootfs",
];

/// Largest decoded `write_files` content (after base64 and gzip).
pub const MAX_WRITE_FILE_BYTES: u64 = 64 << 20;

impl CloudConfig {
    /// Convert a plain JSON cloud-config (e.g. the merged `cloud_config_json`). Errors name
    /// the key path; there are no positions in JSON.
    /// Any rejected key is an error here.
    pub fn from_value(value: &serde_json::Value) -> Result<CloudConfig, SeedError> {
        let mut warnings = Vec::new();
        let c = CloudConfig::from_node(&Node::from_json(value), "cloud-config", &mut warnings)?;
        match c.errors.first() {
            Some(k) => Err(k.error.clone()),
            None => Ok(c),
        }
    }

    /// Convert a located YAML tree (a cloud-config document or a merge of several). `file`
    /// names the document in errors and warnings; warnings (keys not supported by ci-agent,
    /// questionable values) are appended to `warnings`.
    pub fn from_node(
        node: &Node,
        file: &str,
        warnings: &mut Vec<SeedError>,
    ) -> Result<CloudConfig, SeedError> {
        let mut c = Conv {
            file,
            warnings,
            errors: Vec::new(),
        };
        c.cloud_config(node)
    }
}

/// `Deserialize` glue: any serde format → JSON value → [`CloudConfig::from_value`].
impl<'de> serde::Deserialize<'de> for CloudConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        CloudConfig::from_value(&v).map_err(serde::de::Error::custom)
    }
}

type Res<T> = Result<T, SeedError>;

/// The conversion: the file name for errors and where warnings go.
struct Conv<'a> {
    file: &'a str,
    warnings: &'a mut Vec<SeedError>,
    /// Keys rejected so far.
    errors: Vec<KeyError>,
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// The known key a typo most likely meant: at most two edits away (transpositions count
/// as one), and under a fifth of the name, so short keys of other tools (`snap`) are not
/// taken for ours (`swap`).
fn nearest_key<'k>(name: &str, known: &[&'k str]) -> Option<&'k str> {
    let name = name.to_ascii_lowercase();
    known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(&name, k), *k))
        .filter(|(d, _)| *d <= 2 && *d * 5 < name.chars().count())
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Matches cloud-init's test for a crypt(3) hash in `name:password` lines.
fn looks_like_hash(p: &str) -> bool {
    let Some(rest) = p.strip_prefix('$') else {
        return false;
    };
    let Some((id, tail)) = rest.split_once('$') else {
        return false;
    };
    matches!(id, "1" | "2a" | "2y" | "5" | "6")
        && !p.contains(':')
        && tail
            .split_once('$')
            .is_some_and(|(a, b)| !a.is_empty() && !b.is_empty())
}

impl Conv<'_> {
    fn err(&self, node: &Node, path: &str, msg: impl Display) -> SeedError {
        let known = node.pos.line > 0;
        SeedError {
            file: self.file.to_owned(),
            line: known.then_some(node.pos.line),
            column: known.then_some(node.pos.column),
            message: format!("{path}: {msg}"),
        }
    }

    fn expected(&self, node: &Node, path: &str, what: &str) -> SeedError {
        self.err(
            node,
            path,
            format!("expected {what}, found {}", node.kind()),
        )
    }

    fn warn(&mut self, node: &Node, msg: impl Display) {
        let w = self.err(node, "", msg);
        self.warnings.push(SeedError {
            message: w.message.trim_start_matches(": ").to_owned(),
            ..w
        });
    }

    fn warn_key(&mut self, key: &Key, path: &str, known_keys: &[&str]) {
        let known = key.pos.line > 0;
        let hint = nearest_key(&key.name, known_keys)
            .map(|k| format!("; did you mean {}?", join(path, k)))
            .unwrap_or_default();
        self.warnings.push(SeedError {
            file: self.file.to_owned(),
            line: known.then_some(key.pos.line),
            column: known.then_some(key.pos.column),
            message: format!(
                "'{}' is not supported by ci-agent (ignored){hint}",
                join(path, &key.name)
            ),
        });
    }

    /// The entries of a mapping, warning about keys outside `known`.
    fn map<'n>(&mut self, node: &'n Node, path: &str, known: &[&str]) -> Res<&'n [(Key, Node)]> {
        match &node.value {
            NodeValue::Map(m) => {
                for (k, _) in m {
                    if !known.contains(&k.name.as_str()) {
                        self.warn_key(k, path, known);
                    }
                }
                Ok(m)
            }
            _ => Err(self.expected(node, path, "a mapping")),
        }
    }

    fn string(&self, node: &Node, path: &str) -> Res<String> {
        match &node.value {
            NodeValue::Seq(_) | NodeValue::Map(_) | NodeValue::Null => {
                Err(self.expected(node, path, "a string"))
            }
            _ => node
                .as_text()
                .ok_or_else(|| self.expected(node, path, "a string")),
        }
    }

    fn opt_string(&self, node: Option<&Node>, path: &str) -> Res<Option<String>> {
        match node {
            None => Ok(None),
            Some(n) if n.value == NodeValue::Null => Ok(None),
            Some(n) => self.string(n, path).map(Some),
        }
    }

    fn bool(&self, node: &Node, path: &str) -> Res<bool> {
        node.as_bool()
            .ok_or_else(|| self.expected(node, path, "a boolean (true/false, yes/no, on/off)"))
    }

    fn opt_bool(&self, node: Option<&Node>, path: &str) -> Res<Option<bool>> {
        match node {
            None => Ok(None),
            Some(n) if n.value == NodeValue::Null => Ok(None),
            Some(n) => self.bool(n, path).map(Some),
        }
    }

    /// A list of strings; a single string is a list of one; null is empty.
    fn string_list(&self, node: Option<&Node>, path: &str) -> Res<Vec<String>> {
        let Some(node) = node else {
            return Ok(Vec::new());
        };
        match &node.value {
            NodeValue::Null => Ok(Vec::new()),
            NodeValue::Seq(items) => items
                .iter()
                .enumerate()
                .map(|(i, n)| self.string(n, &index(path, i)))
                .collect(),
            NodeValue::Map(_) => Err(self.expected(node, path, "a list of strings")),
            _ => Ok(vec![self.string(node, path)?]),
        }
    }

    /// Names as a list or a comma-separated string (`groups: "adm, sudo"`).
    fn name_list(&self, node: Option<&Node>, path: &str) -> Res<Vec<String>> {
        let Some(node) = node else {
            return Ok(Vec::new());
        };
        match &node.value {
            NodeValue::Null => Ok(Vec::new()),
            NodeValue::Str(s) => Ok(split_commas(s)),
            NodeValue::Seq(items) => {
                let mut out = Vec::new();
                for (i, n) in items.iter().enumerate() {
                    let s = self.string(n, &index(path, i))?;
                    out.extend(split_commas(&s));
                }
                Ok(out)
            }
            _ => Err(self.expected(node, path, "a list of names or a comma-separated string")),
        }
    }

    /// Run one key's conversion; an error is recorded against `key` (the module that owns
    /// it fails; the others still run) and the key keeps its default.
    fn isolate<T: Default>(&mut self, key: &'static str, f: impl FnOnce(&mut Self) -> Res<T>) -> T {
        match f(self) {
            Ok(v) => v,
            Err(error) => {
                self.errors.push(KeyError {
                    key: key.to_owned(),
                    error,
                });
                T::default()
            }
        }
    }

    fn cloud_config(&mut self, node: &Node) -> Res<CloudConfig> {
        if node.value == NodeValue::Null {
            return Ok(CloudConfig::default());
        }
        let m = self.map(node, "", KNOWN_KEYS)?;
        let get = |k: &str| m.iter().find(|(key, _)| key.name == k).map(|(_, v)| v);
        let mut c = CloudConfig::default();
        macro_rules! simple {
            ($($field:ident: $conv:ident),* $(,)?) => {$(
                c.$field = self.isolate(stringify!($field), |s| s.$conv(get(stringify!($field)), stringify!($field)));
            )*};
        }
        simple! {
            hostname: opt_string,
            fqdn: opt_string,
            preserve_hostname: opt_bool,
            prefer_fqdn_over_hostname: opt_bool,
            ssh_authorized_keys: string_list,
            disable_root: opt_bool,
            password: opt_string,
            ssh_deletekeys: opt_bool,
            no_ssh_fingerprints: opt_bool,
            final_message: opt_string,
        }
        if let Some(n) = get("manage_etc_hosts") {
            c.manage_etc_hosts = self.isolate("manage_etc_hosts", |s| s.manage_etc_hosts(n));
        }
        if let Some(n) = get("users") {
            // A rejected `users` is an empty list, not "absent" (which means: create the
            // default user).
            c.users = Some(self.isolate("users", |s| s.users(n, "users")));
        }
        if let Some(n) = get("groups") {
            c.groups = self.isolate("groups", |s| s.groups(n, "groups"));
        }
        if let Some(n) = get("chpasswd") {
            c.chpasswd = self.isolate("chpasswd", |s| s.chpasswd(n));
        }
        if let Some(n) = get("ssh_pwauth") {
            c.ssh_pwauth = self.isolate("ssh_pwauth", |s| s.ssh_pwauth(n));
        }
        if let Some(n) = get("ssh_genkeytypes") {
            if n.value != NodeValue::Null {
                c.ssh_genkeytypes = self.isolate("ssh_genkeytypes", |s| {
                    s.string_list(Some(n), "ssh_genkeytypes").map(Some)
                });
            }
        }
        if let Some(n) = get("ssh_keys") {
            c.ssh_keys = self.isolate("ssh_keys", |s| s.ssh_keys(n));
        }
        if let Some(n) = get("packages") {
            c.packages = self.isolate("packages", |s| s.packages(n));
        }
        c.package_update = self.isolate("package_update", |s| {
            Ok(match s.opt_bool(get("package_update"), "package_update")? {
                Some(b) => Some(b),
                None => match s.opt_bool(get("apt_update"), "apt_update")? {
                    Some(b) => Some(b),
                    None => s.opt_bool(get("repo_update"), "repo_update")?,
                },
            })
        });
        c.package_upgrade = self.isolate("package_upgrade", |s| {
            Ok(
                match s.opt_bool(get("package_upgrade"), "package_upgrade")? {
                    Some(b) => Some(b),
                    None => match s.opt_bool(get("apt_upgrade"), "apt_upgrade")? {
                        Some(b) => Some(b),
                        None => s.repo_upgrade(get("repo_upgrade"))?,
                    },
                },
            )
        });
        if let Some(n) = get("bootcmd") {
            c.bootcmd = self.isolate("bootcmd", |s| s.commands(n, "bootcmd"));
        }
        if let Some(n) = get("runcmd") {
            c.runcmd = self.isolate("runcmd", |s| s.commands(n, "runcmd"));
        }
        if let Some(n) = get("write_files") {
            c.write_files = self.isolate("write_files", |s| s.write_files(n));
        }
        if let Some(n) = get("power_state") {
            c.power_state = self.isolate("power_state", |s| s.power_state(n));
        }
        c.errors = std::mem::take(&mut self.errors);
        Ok(c)
    }

    fn manage_etc_hosts(&self, n: &Node) -> Res<Option<ManageEtcHosts>> {
        if n.value == NodeValue::Null {
            return Ok(None);
        }
        if let Some(b) = n.as_bool() {
            return Ok(Some(if b {
                ManageEtcHosts::Template
            } else {
                ManageEtcHosts::False
            }));
        }
        match n.as_text().as_deref() {
            Some("template") => Ok(Some(ManageEtcHosts::Template)),
            Some("localhost") => Ok(Some(ManageEtcHosts::Localhost)),
            _ => Err(self.expected(
                n,
                "manage_etc_hosts",
                "true, false, 'template' or 'localhost'",
            )),
        }
    }

    /// `ssh_keys`: a mapping of `<type>_private|public|certificate` to text. Each entry is
    /// checked on its own here, so that `ci-seed validate` names a malformed one with its
    /// position; a bad entry is a warning (the `ssh_keys` module then fails and host keys
    /// are generated instead), never a reason to drop the whole seed.
    fn ssh_keys(&mut self, n: &Node) -> Res<Option<SshKeys>> {
        use crate::formats::hostkey::{self, KeyType};
        if n.value == NodeValue::Null {
            return Ok(None);
        }
        let NodeValue::Map(m) = &n.value else {
            return Err(self.expected(n, "ssh_keys", "a mapping"));
        };
        let mut keys = SshKeys::default();
        for (k, v) in m {
            let path = join("ssh_keys", &k.name);
            let parsed = k.name.rsplit_once('_').and_then(|(t, what)| {
                Some((KeyType::parse(t)?, what))
                    .filter(|(_, w)| matches!(*w, "private" | "public" | "certificate"))
            });
            let Some((kind, what)) = parsed else {
                if k.name.starts_with("dsa_") {
                    self.warn(v, format!("{path}: DSA host keys are not supported (OpenSSH dropped them); ignored"));
                } else {
                    self.warn_key(k, "ssh_keys", &[]);
                }
                continue;
            };
            let text = self.string(v, &path)?;
            let check = match what {
                "private" => hostkey::parse_private(kind, &text).map(|_| ()),
                "public" => hostkey::parse_public(&text).map(|_| ()),
                _ => hostkey::parse_certificate(kind, &text, None).map(|_| ()),
            };
            if let Err(e) = check {
                self.warn(v, format!("{path}: {e}"));
            }
            keys.entries.push((k.name.clone(), text));
        }
        Ok(Some(keys))
    }

    fn ssh_pwauth(&self, n: &Node) -> Res<Option<bool>> {
        if n.value == NodeValue::Null {
            return Ok(None);
        }
        if let Some(b) = n.as_bool() {
            return Ok(Some(b));
        }
        match n.as_text().as_deref() {
            Some(s) if s.eq_ignore_ascii_case("unchanged") => Ok(None),
            _ => Err(self.expected(n, "ssh_pwauth", "true, false or 'unchanged'")),
        }
    }

    fn repo_upgrade(&self, n: Option<&Node>) -> Res<Option<bool>> {
        let Some(n) = n else { return Ok(None) };
        if n.value == NodeValue::Null {
            return Ok(None);
        }
        if let Some(b) = n.as_bool() {
            return Ok(Some(b));
        }
        match n.as_text().as_deref() {
            Some("none") => Ok(Some(false)),
            Some("all" | "security" | "bugfix") => Ok(Some(true)),
            _ => Err(self.expected(
                n,
                "repo_upgrade",
                "a boolean, 'none', 'security', 'bugfix' or 'all'",
            )),
        }
    }

    fn users(&mut self, n: &Node, path: &str) -> Res<Vec<UserSpec>> {
        let mut out = Vec::new();
        match &n.value {
            NodeValue::Null => {}
            NodeValue::Str(s) => {
                for name in split_commas(s) {
                    out.push(named_user(name));
                }
            }
            NodeValue::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    let p = index(path, i);
                    match &item.value {
                        NodeValue::Map(_) => {
                            if let Some(u) = self.user(item, &p, false)? {
                                out.push(u);
                            }
                        }
                        NodeValue::Seq(names) => {
                            for (j, name) in names.iter().enumerate() {
                                let s = self.string(name, &index(&p, j))?;
                                out.extend(split_commas(&s).into_iter().map(named_user));
                            }
                        }
                        NodeValue::Null => {}
                        _ => {
                            let s = self.string(item, &p)?;
                            out.extend(split_commas(&s).into_iter().map(named_user));
                        }
                    }
                }
            }
            NodeValue::Map(m) => {
                // `users: {name: {…options…}}` or `users: {name: true}` (cloud-init accepts it).
                for (k, v) in m {
                    let p = join(path, &k.name);
                    if let Some(b) = v.as_bool() {
                        if b {
                            out.push(named_user(k.name.clone()));
                        }
                        continue;
                    }
                    match &v.value {
                        NodeValue::Null => out.push(named_user(k.name.clone())),
                        NodeValue::Map(_) => {
                            if k.name == "default" {
                                out.push(UserSpec::Default);
                            } else if let Some(UserSpec::User(mut u)) = self.user(v, &p, true)? {
                                if u.name.is_empty() {
                                    u.name = k.name.clone();
                                }
                                out.push(UserSpec::User(u));
                            }
                        }
                        _ => {
                            return Err(self.expected(
                                v,
                                &p,
                                "a mapping of user options or a boolean",
                            ))
                        }
                    }
                }
            }
            _ => return Err(self.expected(n, path, "a list of users")),
        }
        Ok(out)
    }

    /// One user mapping; `None` when it carries no name (cloud-init would apply it to the
    /// default user as overrides, which ci-agent does not support: warned). `keyed`: the
    /// mapping is the value of `users: {name: {…}}`, whose key is the name.
    fn user(&mut self, n: &Node, path: &str, keyed: bool) -> Res<Option<UserSpec>> {
        const KNOWN: &[&str] = &[
            "name",
            "gecos",
            "groups",
            "primary_group",
            "shell",
            "sudo",
            "homedir",
            "lock_passwd",
            "passwd",
            "hashed_passwd",
            "plain_text_passwd",
            "ssh_authorized_keys",
            "no_create_home",
            "system",
            "uid",
            "expiredate",
            "inactive",
            "doas",
        ];
        // cloud-init turns `-` into `_` in user keys (`ssh-authorized-keys`, `lock-passwd`).
        let normalized;
        let n = match &n.value {
            NodeValue::Map(entries) if entries.iter().any(|(k, _)| k.name.contains('-')) => {
                let mut out: Vec<(Key, Node)> = Vec::with_capacity(entries.len());
                for (k, v) in entries {
                    let name = k.name.replace('-', "_").trim().to_owned();
                    match out.iter_mut().find(|(ok, _)| ok.name == name) {
                        // A later spelling of the same key wins, as in a Python dict.
                        Some(slot) => slot.1 = v.clone(),
                        None => out.push((Key { name, pos: k.pos }, v.clone())),
                    }
                }
                normalized = Node {
                    value: NodeValue::Map(out),
                    ..n.clone()
                };
                &normalized
            }
            _ => n,
        };
        let m = self.map(n, path, KNOWN)?;
        let get = |k: &str| m.iter().find(|(key, _)| key.name == k).map(|(_, v)| v);
        let name = match get("name") {
            Some(v) => self.string(v, &join(path, "name"))?,
            None => {
                if keyed {
                    // The caller fills the name in from the key.
                    String::new()
                } else {
                    self.warn(
                        n,
                        format!("{path}: a user without 'name' (overrides for the default user) is not supported by ci-agent (ignored)"),
                    );
                    return Ok(None);
                }
            }
        };
        if name == "default" {
            return Ok(Some(UserSpec::Default));
        }
        let lock = self.opt_bool(get("lock_passwd"), &join(path, "lock_passwd"))?;
        let passwd = match self.opt_string(get("passwd"), &join(path, "passwd"))? {
            Some(p) => Some(p),
            None => self.opt_string(get("hashed_passwd"), &join(path, "hashed_passwd"))?,
        };
        let uid = match get("uid") {
            None => None,
            Some(v) if v.value == NodeValue::Null => None,
            Some(v) => {
                let p = join(path, "uid");
                let t = self.string(v, &p)?;
                Some(t.trim().parse::<u32>().map_err(|_| {
                    self.err(v, &p, format!("expected a numeric user id, found '{t}'"))
                })?)
            }
        };
        let expiredate = self.opt_string(get("expiredate"), &join(path, "expiredate"))?;
        if let (Some(d), Some(v)) = (&expiredate, get("expiredate")) {
            let b = d.as_bytes();
            let ok = b.len() == 10
                && b[4] == b'-'
                && b[7] == b'-'
                && b.iter()
                    .enumerate()
                    .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
            if !ok {
                return Err(self.err(
                    v,
                    &join(path, "expiredate"),
                    format!("expected a date YYYY-MM-DD, found '{d}'"),
                ));
            }
        }
        let inactive = match get("inactive") {
            None => None,
            Some(v) if v.value == NodeValue::Null => None,
            Some(v) => {
                let p = join(path, "inactive");
                let t = self.string(v, &p)?;
                Some(
                    t.trim()
                        .parse::<i64>()
                        .ok()
                        .filter(|d| *d >= -1)
                        .ok_or_else(|| {
                            self.err(
                                v,
                                &p,
                                format!("expected a number of days (or -1), found '{t}'"),
                            )
                        })?,
                )
            }
        };
        Ok(Some(UserSpec::User(Box::new(User {
            name,
            expiredate,
            inactive,
            doas: self.string_list(get("doas"), &join(path, "doas"))?,
            gecos: self.opt_string(get("gecos"), &join(path, "gecos"))?,
            groups: self.name_list(get("groups"), &join(path, "groups"))?,
            primary_group: self.opt_string(get("primary_group"), &join(path, "primary_group"))?,
            shell: self.opt_string(get("shell"), &join(path, "shell"))?,
            sudo: self.sudo(get("sudo"), &join(path, "sudo"))?,
            homedir: self.opt_string(get("homedir"), &join(path, "homedir"))?,
            lock_passwd: lock,
            passwd,
            plain_text_passwd: self
                .opt_string(get("plain_text_passwd"), &join(path, "plain_text_passwd"))?,
            ssh_authorized_keys: self.string_list(
                get("ssh_authorized_keys"),
                &join(path, "ssh_authorized_keys"),
            )?,
            no_create_home: self
                .opt_bool(get("no_create_home"), &join(path, "no_create_home"))?
                .unwrap_or(false),
            system: self
                .opt_bool(get("system"), &join(path, "system"))?
                .unwrap_or(false),
            uid,
        }))))
    }

    fn sudo(&self, n: Option<&Node>, path: &str) -> Res<Vec<String>> {
        let Some(n) = n else { return Ok(Vec::new()) };
        if n.as_bool() == Some(false) || n.value == NodeValue::Null {
            return Ok(Vec::new());
        }
        match &n.value {
            NodeValue::Str(s) => Ok(vec![s.clone()]),
            NodeValue::Seq(items) => {
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    if item.as_bool() == Some(false) || item.value == NodeValue::Null {
                        continue;
                    }
                    out.push(self.string(item, &index(path, i))?);
                }
                Ok(out)
            }
            _ => Err(self.expected(n, path, "a sudoers rule, a list of rules, or false")),
        }
    }

    fn groups(&mut self, n: &Node, path: &str) -> Res<Vec<GroupSpec>> {
        let mut out = Vec::new();
        let no_members = |name: String| GroupSpec {
            name,
            members: Vec::new(),
        };
        match &n.value {
            NodeValue::Null => {}
            NodeValue::Str(s) => out.extend(split_commas(s).into_iter().map(no_members)),
            NodeValue::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    let p = index(path, i);
                    match &item.value {
                        NodeValue::Map(m) => {
                            for (k, v) in m {
                                out.push(GroupSpec {
                                    name: k.name.clone(),
                                    members: self.name_list(Some(v), &join(&p, &k.name))?,
                                });
                            }
                        }
                        NodeValue::Null => {}
                        _ => {
                            let s = self.string(item, &p)?;
                            out.extend(split_commas(&s).into_iter().map(no_members));
                        }
                    }
                }
            }
            NodeValue::Map(m) => {
                for (k, v) in m {
                    out.push(GroupSpec {
                        name: k.name.clone(),
                        members: self.name_list(Some(v), &join(path, &k.name))?,
                    });
                }
            }
            _ => return Err(self.expected(n, path, "a list of groups")),
        }
        Ok(out)
    }

    fn chpasswd(&mut self, n: &Node) -> Res<Option<Chpasswd>> {
        if n.value == NodeValue::Null {
            return Ok(None);
        }
        let m = self.map(n, "chpasswd", &["expire", "users", "list"])?;
        let get = |k: &str| m.iter().find(|(key, _)| key.name == k).map(|(_, v)| v);
        let mut c = Chpasswd {
            expire: self.opt_bool(get("expire"), "chpasswd.expire")?,
            users: Vec::new(),
        };
        if let Some(list) = get("users") {
            match &list.value {
                NodeValue::Null => {}
                NodeValue::Seq(items) => {
                    for (i, item) in items.iter().enumerate() {
                        let p = index("chpasswd.users", i);
                        if let Some(u) = self.chpasswd_user(item, &p)? {
                            c.users.push(u);
                        }
                    }
                }
                _ => {
                    return Err(self.expected(
                        list,
                        "chpasswd.users",
                        "a list of {name, password, type}",
                    ))
                }
            }
        }
        if let Some(list) = get("list") {
            self.warn(
                list,
                "chpasswd.list is deprecated in cloud-init; prefer chpasswd.users (still applied)",
            );
            let lines: Vec<(String, &Node)> = match &list.value {
                NodeValue::Null => Vec::new(),
                NodeValue::Str(s) => s.lines().map(|l| (l.to_owned(), list)).collect(),
                NodeValue::Seq(items) => items
                    .iter()
                    .enumerate()
                    .map(|(i, it)| Ok((self.string(it, &index("chpasswd.list", i))?, it)))
                    .collect::<Res<_>>()?,
                _ => {
                    return Err(self.expected(
                        list,
                        "chpasswd.list",
                        "a list of 'name:password' or a multi-line string",
                    ))
                }
            };
            for (line, at) in lines {
                let line = line.trim();
                if line.is_empty() {
                    continue;
                }
                let Some((name, pw)) = line.split_once(':') else {
                    return Err(self.err(
                        at,
                        "chpasswd.list",
                        format!(
                            "expected 'name:password', found a line without ':' ({} characters)",
                            line.chars().count()
                        ),
                    ));
                };
                c.users.push(infer_password(name.trim(), pw, None));
            }
        }
        Ok(Some(c))
    }

    /// One `chpasswd.users` entry; `None` (warned) when it has no password and is not
    /// `RANDOM`: the entry is skipped and the others are set, as nuageinit does.
    fn chpasswd_user(&mut self, n: &Node, path: &str) -> Res<Option<ChpasswdUser>> {
        let m = self.map(n, path, &["name", "password", "type"])?;
        let get = |k: &str| m.iter().find(|(key, _)| key.name == k).map(|(_, v)| v);
        let name = match get("name") {
            Some(v) => self.string(v, &join(path, "name"))?,
            None => return Err(self.err(n, path, "missing 'name'")),
        };
        let kind = match get("type") {
            None => None,
            Some(v) => match self.string(v, &join(path, "type"))?.as_str() {
                "text" => Some(PasswordKind::Text),
                "hash" => Some(PasswordKind::Hash),
                "RANDOM" => Some(PasswordKind::Random),
                other => {
                    return Err(self.err(
                        v,
                        &join(path, "type"),
                        format!("expected 'text', 'hash' or 'RANDOM', found '{other}'"),
                    ))
                }
            },
        };
        let password = self.opt_string(get("password"), &join(path, "password"))?;
        match (password, kind) {
            (None, Some(PasswordKind::Random)) => Ok(Some(ChpasswdUser {
                name,
                password: None,
                kind: PasswordKind::Random,
            })),
            (None, _) => {
                self.warn(
                    n,
                    format!("{path}: no 'password' (or 'type: RANDOM'); entry skipped"),
                );
                Ok(None)
            }
            (Some(p), kind) => Ok(Some(infer_password(&name, &p, kind))),
        }
    }

    fn packages(&mut self, n: &Node) -> Res<Vec<Package>> {
        let items = match &n.value {
            NodeValue::Null => return Ok(Vec::new()),
            NodeValue::Seq(items) => items,
            _ => return Err(self.expected(n, "packages", "a list of package names")),
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let p = index("packages", i);
            match &item.value {
                NodeValue::Seq(parts) => match parts.as_slice() {
                    [name] => out.push(Package {
                        name: self.string(name, &index(&p, 0))?,
                        version: None,
                    }),
                    [name, version] => out.push(Package {
                        name: self.string(name, &index(&p, 0))?,
                        version: Some(self.string(version, &index(&p, 1))?),
                    }),
                    _ => return Err(self.expected(item, &p, "a name or [name, version]")),
                },
                NodeValue::Map(_) => {
                    // cloud-init's `{apt: [...], snap: [...]}` entries: not ours.
                    self.warn(
                        item,
                        format!("{p}: package-manager specific entries are not supported by ci-agent (ignored)"),
                    );
                }
                _ => out.push(Package {
                    name: self.string(item, &p)?,
                    version: None,
                }),
            }
        }
        Ok(out)
    }

    fn commands(&self, n: &Node, path: &str) -> Res<Vec<CommandSpec>> {
        let items = match &n.value {
            NodeValue::Null => return Ok(Vec::new()),
            NodeValue::Seq(items) => items,
            _ => return Err(self.expected(n, path, "a list of commands")),
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let p = index(path, i);
            out.push(self.command(item, &p)?);
        }
        Ok(out)
    }

    fn command(&self, item: &Node, p: &str) -> Res<CommandSpec> {
        match &item.value {
            NodeValue::Seq(argv) => Ok(CommandSpec::Argv(
                argv.iter()
                    .enumerate()
                    .map(|(j, a)| self.string(a, &index(p, j)))
                    .collect::<Res<_>>()?,
            )),
            NodeValue::Str(s) => Ok(CommandSpec::Shell(s.clone())),
            NodeValue::Map(_) | NodeValue::Null => {
                Err(self.expected(item, p, "a command string or an argv list"))
            }
            _ => Ok(CommandSpec::Shell(self.string(item, p)?)),
        }
    }

    fn write_files(&mut self, n: &Node) -> Res<Vec<WriteFile>> {
        const KNOWN: &[&str] = &[
            "path",
            "content",
            "encoding",
            "owner",
            "permissions",
            "append",
            "defer",
            "source",
        ];
        let items = match &n.value {
            NodeValue::Null => return Ok(Vec::new()),
            NodeValue::Seq(items) => items,
            _ => return Err(self.expected(n, "write_files", "a list of files")),
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let p = index("write_files", i);
            let m = self.map(item, &p, KNOWN)?;
            let get = |k: &str| m.iter().find(|(key, _)| key.name == k).map(|(_, v)| v);
            let path = match get("path") {
                Some(v) if v.value != NodeValue::Null => self.string(v, &join(&p, "path"))?,
                _ => String::new(),
            };
            if path.is_empty() {
                // cloud-init and nuageinit skip such an entry and write the others.
                self.warn(item, format!("{p}: no 'path'; entry skipped"));
                continue;
            }
            let encoding = self
                .opt_string(get("encoding"), &join(&p, "encoding"))?
                .unwrap_or_else(|| "text".into());
            let content = match get("content") {
                None => Vec::new(),
                Some(v) if v.value == NodeValue::Null => Vec::new(),
                Some(v) => {
                    // `!!binary` content is bytes already (PyYAML gives cloud-init bytes).
                    let raw = match &v.value {
                        NodeValue::Bytes(b) => b.clone(),
                        _ => self.string(v, &join(&p, "content"))?.into_bytes(),
                    };
                    decode_content(&raw, &encoding)
                        .map_err(|e| self.err(v, &join(&p, "content"), e))?
                }
            };
            let permissions = match get("permissions") {
                None => None,
                Some(v) if v.value == NodeValue::Null => None,
                Some(v) => Some(self.permissions(v, &join(&p, "permissions"))?),
            };
            let source = match get("source") {
                None => None,
                Some(v) if v.value == NodeValue::Null => None,
                Some(v) => Some(self.write_source(v, &join(&p, "source"))?),
            };
            out.push(WriteFile {
                path,
                content,
                source,
                owner: self.opt_string(get("owner"), &join(&p, "owner"))?,
                permissions,
                append: self
                    .opt_bool(get("append"), &join(&p, "append"))?
                    .unwrap_or(false),
                defer: self
                    .opt_bool(get("defer"), &join(&p, "defer"))?
                    .unwrap_or(false),
            });
        }
        Ok(out)
    }

    fn write_source(&mut self, n: &Node, path: &str) -> Res<WriteSource> {
        let m = self.map(n, path, &["uri", "headers"])?;
        let get = |k: &str| m.iter().find(|(key, _)| key.name == k).map(|(_, v)| v);
        let uri = match get("uri") {
            Some(v) => self.string(v, &join(path, "uri"))?,
            None => return Err(self.err(n, path, "missing 'uri'")),
        };
        let mut headers = Vec::new();
        if let Some(h) = get("headers") {
            if h.value != NodeValue::Null {
                let hp = join(path, "headers");
                let NodeValue::Map(entries) = &h.value else {
                    return Err(self.expected(h, &hp, "a mapping of header names to values"));
                };
                for (k, v) in entries.iter().map(|(k, v)| (k.name.clone(), v)) {
                    let value = self.string(v, &join(&hp, &k))?;
                    let bad = |s: &str| s.chars().any(|c| c.is_control());
                    if k.is_empty() || k.contains(':') || k.contains(' ') || bad(&k) || bad(&value)
                    {
                        return Err(self.err(v, &join(&hp, &k), "not a valid HTTP header"));
                    }
                    headers.push((k, value));
                }
            }
        }
        Ok(WriteSource { uri, headers })
    }

    /// `'0644'`, `'644'`, `'0o644'` (strings are octal); a plain `0644` is octal (YAML 1.1);
    /// any other integer is the mode as a number, as cloud-init's `decode_perms` does.
    fn permissions(&mut self, v: &Node, path: &str) -> Res<u32> {
        let mode = match &v.value {
            NodeValue::Int(_) | NodeValue::UInt(_) => {
                // The integer PyYAML read (`0644` is octal there, 420), as cloud-init's
                // `decode_perms` takes it.
                let t = v.as_text().unwrap_or_default();
                let n = match v.value {
                    NodeValue::Int(i) => u32::try_from(i).ok(),
                    NodeValue::UInt(u) => u32::try_from(u).ok(),
                    _ => None,
                }
                .ok_or_else(|| self.err(v, path, format!("invalid mode {t}")))?;
                if n > 7 && t.bytes().all(|b| (b'0'..=b'7').contains(&b)) && !t.starts_with('0') {
                    self.warn(
                        v,
                        format!("{path}: {t} is the decimal number {t} (mode {n:#o}), as in cloud-init; quote it ('0{t}') for an octal mode"),
                    );
                }
                n
            }
            NodeValue::Str(s) => {
                // Python's int(x, 8): `0o600`, `0600`, `600`, `0_600`, signs and
                // surrounding blanks.
                let t = s.trim();
                let digits = t.strip_prefix('+').unwrap_or(t);
                let digits = digits
                    .strip_prefix("0o")
                    .or_else(|| digits.strip_prefix("0O"))
                    .map(|d| d.strip_prefix('_').unwrap_or(d))
                    .unwrap_or(digits);
                let ok =
                    !digits.starts_with('_') && !digits.ends_with('_') && !digits.contains("__");
                let clean = digits.replace('_', "");
                ok.then_some(())
                    .and_then(|()| u32::from_str_radix(&clean, 8).ok())
                    .ok_or(())
                    .map_err(|()| {
                        self.err(
                            v,
                            path,
                            format!("expected an octal mode such as '0644', found '{t}'"),
                        )
                    })?
            }
            _ => return Err(self.expected(v, path, "an octal mode such as '0644'")),
        };
        if mode > 0o7777 {
            return Err(self.err(v, path, format!("mode {mode:#o} is larger than 0o7777")));
        }
        Ok(mode)
    }

    fn power_state(&mut self, n: &Node) -> Res<Option<PowerState>> {
        if n.value == NodeValue::Null {
            return Ok(None);
        }
        let m = self.map(
            n,
            "power_state",
            &["mode", "delay", "message", "timeout", "condition"],
        )?;
        let get = |k: &str| m.iter().find(|(key, _)| key.name == k).map(|(_, v)| v);
        let mode = match get("mode") {
            Some(v) => {
                let s = self.string(v, "power_state.mode")?;
                if !matches!(s.as_str(), "poweroff" | "reboot" | "halt") {
                    return Err(self.err(
                        v,
                        "power_state.mode",
                        format!("expected 'poweroff', 'reboot' or 'halt', found '{s}'"),
                    ));
                }
                s
            }
            None => return Err(self.err(n, "power_state", "missing 'mode'")),
        };
        let delay = match get("delay") {
            None => None,
            Some(v) if v.value == NodeValue::Null => None,
            Some(v) => {
                let s = self.string(v, "power_state.delay")?;
                let s = s.trim();
                let ok = s == "now" || s.strip_prefix('+').unwrap_or(s).parse::<u32>().is_ok();
                if !ok {
                    return Err(self.err(
                        v,
                        "power_state.delay",
                        format!("expected 'now' or '+N' minutes, found '{s}'"),
                    ));
                }
                Some(if s == "now" || s.starts_with('+') {
                    s.to_owned()
                } else {
                    format!("+{s}")
                })
            }
        };
        let timeout_secs = match get("timeout") {
            None => None,
            Some(v) if v.value == NodeValue::Null => None,
            Some(v) => {
                let s = self.string(v, "power_state.timeout")?;
                Some(s.trim().parse::<u64>().map_err(|_| {
                    self.err(
                        v,
                        "power_state.timeout",
                        format!("expected seconds, found '{s}'"),
                    )
                })?)
            }
        };
        let condition = match get("condition") {
            None => None,
            Some(v) if v.value == NodeValue::Null => None,
            Some(v) => match v.as_bool() {
                Some(true) => None,
                // Never: a condition command that always fails.
                Some(false) => Some(CommandSpec::Argv(vec!["false".into()])),
                None => Some(self.command(v, "power_state.condition")?),
            },
        };
        Ok(Some(PowerState {
            mode,
            delay,
            message: self.opt_string(get("message"), "power_state.message")?,
            timeout_secs,
            condition,
        }))
    }
}

fn named_user(name: String) -> UserSpec {
    if name == "default" {
        UserSpec::Default
    } else {
        UserSpec::User(Box::new(User {
            name,
            ..User::default()
        }))
    }
}

fn split_commas(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A chpasswd entry: an explicit `type` wins; otherwise `R`/`RANDOM` is random, a crypt
/// hash is a hash, anything else is plain text (cloud-init's rule for `list:` lines, used
/// for `users:` entries without `type` too).
pub fn infer_password(name: &str, pw: &str, kind: Option<PasswordKind>) -> ChpasswdUser {
    let random = ChpasswdUser {
        name: name.to_owned(),
        password: None,
        kind: PasswordKind::Random,
    };
    match kind {
        Some(PasswordKind::Random) => random,
        Some(k) => ChpasswdUser {
            name: name.to_owned(),
            password: Some(pw.to_owned()),
            kind: k,
        },
        None if pw == "R" || pw == "RANDOM" => random,
        None => ChpasswdUser {
            name: name.to_owned(),
            password: Some(pw.to_owned()),
            kind: if looks_like_hash(pw) {
                PasswordKind::Hash
            } else {
                PasswordKind::Text
            },
        },
    }
}

/// Decode `write_files` content (text, or the bytes of a `!!binary` scalar) per its
/// `encoding` (cloud-init's spellings, any case). Base64 is Python's lenient decoding.
pub fn decode_content(raw: &[u8], encoding: &str) -> Result<Vec<u8>, String> {
    let b64 = python_b64decode;
    match encoding.trim().to_ascii_lowercase().as_str() {
        "" | "text" | "text/plain" => Ok(raw.to_vec()),
        "b64" | "base64" => b64(raw),
        "gz" | "gzip" => {
            // PyYAML hands cloud-init raw bytes (`!!binary`); we may get the base64 text.
            if raw.starts_with(&[0x1f, 0x8b]) {
                gunzip_limited(raw, MAX_WRITE_FILE_BYTES)
            } else {
                gunzip_limited(&b64(raw)?, MAX_WRITE_FILE_BYTES)
            }
        }
        "gz+b64" | "gzip+base64" | "gz+base64" | "gzip+b64" => {
            gunzip_limited(&b64(raw)?, MAX_WRITE_FILE_BYTES)
        }
        other => Err(format!(
            "unknown encoding '{other}' (expected text, b64, base64, gz, gzip, gz+b64, gzip+base64)"
        )),
    }
}

/// Gunzip at most `limit` bytes of output; more is an error (a gzip bomb stops there).
pub fn gunzip_limited(data: &[u8], limit: u64) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut dec = flate2::read::MultiGzDecoder::new(data).take(limit.saturating_add(1));
    dec.read_to_end(&mut out)
        .map_err(|e| format!("invalid gzip data: {e}"))?;
    if out.len() as u64 > limit {
        return Err(format!("gzip data expands to more than {limit} bytes"));
    }
    Ok(out)
}
