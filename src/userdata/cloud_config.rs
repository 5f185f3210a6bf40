//! The typed cloud-config: the keys in scope (hostname, users, keys, passwords, packages,
//! write_files, bootcmd/runcmd, final_message, power_state, host-key handling), each in
//! the shape the modules want, normalised from the several shapes cloud-init accepts
//! (`groups: "a, b"` or `[a, b]`, `sudo: "ALL=…"` or a list or `false`, …).
//!
//! Conversion from the merged JSON value lives here too (`CloudConfig::from_value`), with
//! errors that name the key path (`users[1].groups`) and what was expected.

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

    pub packages: Vec<Package>,
    pub package_update: Option<bool>,
    pub package_upgrade: Option<bool>,

    pub bootcmd: Vec<CommandSpec>,
    pub runcmd: Vec<CommandSpec>,
    pub write_files: Vec<WriteFile>,
    pub final_message: Option<String>,
    pub power_state: Option<PowerState>,
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
