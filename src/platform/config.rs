//! The agent's own configuration file (`/etc/ci-agent.conf` on Linux,
//! `/usr/local/etc/ci-agent.conf` on FreeBSD, `--config FILE`): YAML, every key optional,
//! unknown keys are an error (a typo in a first-boot config should not pass silently).
//!
//! Keys (all optional; a missing key keeps its default from [`Config::defaults`]):
//!
//! | key | default (Linux / FreeBSD) | meaning |
//! |---|---|---|
//! | `default_user.name` | `debian` / `freebsd` | the user `users: [default]` and top-level `ssh_authorized_keys` mean |
//! | `default_user.groups` | `[adm, sudo]` / `[wheel]` | supplementary groups (list, or a comma-separated string) |
//! | `default_user.shell` | `/bin/bash` / `/bin/sh` | login shell (`null` = the system default) |
//! | `default_user.sudo` | `["ALL=(ALL) NOPASSWD:ALL"]` | sudoers rules (list, one string, or `false` for none) |
//! | `default_user.gecos` | none | full name |
//! | `default_user.lock_passwd` | `true` | lock the password (key login only) |
//! | `datasources` | `[nocloud, bootstrap]` | seed sources consulted, in order |
//! | `firstboot_sentinel` | `/firstboot` | the first-boot sentinel file |
//! | `require_firstboot` | `false` | act only while the sentinel exists |
//! | `rerun_on_new_instance_id` | `true` | a new instance-id (a clone) triggers a run |
//! | `state_dir` | `/var/lib/ci-agent` / `/var/db/ci-agent` | semaphores, seed copy, `status.json` (mode 0700) |
//! | `log_file` | `/var/log/ci-agent.log` | the agent's log file (appended, 0600) |
//! | `run_dir` | `/run/ci-agent` / `/var/run/ci-agent` | this boot's pass record `pass.json` and `pass.lock` (0755, emptied at boot) |
//! | `cloud_init_compat` | `false` | also write the files tools poll for cloud-init (`/run/cloud-init/{status,result}.json`, `/var/lib/cloud/instance/boot-finished`) and honour cloud-init's disable switches |
//! | `max_seed_file_bytes` | 16 MiB | largest file read from a seed |
//! | `max_seed_bytes` | 32 MiB | all files read from one seed together (ISO, vfat, directory) |
//! | `seed_wait_secs` | `10` | how long to wait for a seed device to appear |
//! | `bootstrap.url` | `http://10.0.2.100/vm-bootstrap` | vm-bootstrap endpoint |
//! | `bootstrap.dir` | `/root/bootstrap` | `start-bootstrap`, `bootstrap-max-retry`, `retry-amount` |
//! | `bootstrap.log` | `/var/log/vm-bootstrap.log` | script output is appended here |
//! | `bootstrap.interval_secs` | `60` | wait between failed attempts |
//! | `bootstrap.script_timeout_secs` | `3600` | kill the script after this long |
//! | `bootstrap.max_retry` | `10` | used when `bootstrap-max-retry` is absent |
//! | `bootstrap.connect_timeout_secs` | `5` | TCP connect timeout |
//! | `bootstrap.timeout_secs` | `30` | whole-request timeout |
//! | `bootstrap.max_bytes` | 16 MiB | largest script accepted |
//! | `identity.regenerate_ssh_host_keys` | `true` | new SSH host keys on a new instance |
//! | `identity.reset_machine_id` | `true` | new machine-id on a new instance |
//! | `network.config` | `enabled` | `disabled`: never touch the network configuration |
//! | `network.renderer` | `auto` | `auto`, `networkd`, `netplan`, `eni`, `network-manager`, `freebsd` |
//!
//! The file is parsed by [`crate::formats::yaml::from_str`] (same budgets and YAML 1.1 booleans as
//! seeds); every error names the file, the line/column or key, and what was expected.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::platform::host::HostSystem;
use crate::platform::{OsKind, System};

/// Which seed sources the run consults, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DatasourceKind {
    /// A `cidata` device, image or directory, or `ds=nocloud` on the command line / SMBIOS.
    Nocloud,
    /// The vm-bootstrap HTTP endpoint.
    Bootstrap,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DefaultUser {
    /// `default_user.name`.
    pub name: String,
    /// `default_user.groups`: supplementary groups.
    pub groups: Vec<String>,
    /// `default_user.shell`: login shell (`None` = the system default).
    pub shell: Option<String>,
    /// `default_user.sudo`: sudoers rules for the default user.
    pub sudo: Vec<String>,
    /// `default_user.gecos`: full name.
    pub gecos: Option<String>,
    /// `default_user.lock_passwd`: lock the password (default true, as cloud-init).
    pub lock_passwd: bool,
}

/// vm-bootstrap compatible endpoint settings (`bootstrap.*`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BootstrapConfig {
    /// `bootstrap.url`, default `http://10.0.2.100/vm-bootstrap`.
    pub url: String,
    /// `bootstrap.dir`: holds `start-bootstrap`, `bootstrap-max-retry`, `retry-amount`.
    pub dir: PathBuf,
    /// `bootstrap.log`: script output is appended here.
    pub log: PathBuf,
    /// `bootstrap.interval_secs`: wait between failed attempts within one boot.
    pub interval_secs: u64,
    /// `bootstrap.script_timeout_secs`: kill the script after this long.
    pub script_timeout_secs: u64,
    /// `bootstrap.max_retry`: used when `bootstrap-max-retry` is absent.
    pub max_retry: u32,
    /// `bootstrap.connect_timeout_secs`: TCP connect timeout.
    pub connect_timeout_secs: u64,
    /// `bootstrap.timeout_secs`: the whole request.
    pub timeout_secs: u64,
    /// `bootstrap.max_bytes`: largest script accepted.
    pub max_bytes: u64,
}

/// Which network configuration the `network` module writes (`network.renderer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkRenderer {
    /// Pick from what the system has (NetworkManager, netplan, systemd-networkd,
    /// ifupdown; FreeBSD rc.conf).
    Auto,
    Networkd,
    Netplan,
    Eni,
    NetworkManager,
    Freebsd,
}

/// `network.*`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NetworkSettings {
    /// `network.config: disabled`: the seed's network config is never applied.
    pub disabled: bool,
    /// `network.renderer`.
    pub renderer: NetworkRenderer,
}

/// Clone identity reset on a new instance (`identity.*`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct IdentityConfig {
    /// `identity.regenerate_ssh_host_keys`: delete and regenerate SSH host keys on a new
    /// instance, so clones do not share them.
    pub regenerate_ssh_host_keys: bool,
    /// `identity.reset_machine_id`: give a new instance a new machine-id.
    pub reset_machine_id: bool,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Config {
    /// The policy in force (not a config key: the build target, or `--os`).
    pub os: OsKind,
    /// `default_user.*`.
    pub default_user: DefaultUser,
    /// `datasources`: seed sources consulted, in order (`nocloud`, `bootstrap`).
    pub datasources: Vec<DatasourceKind>,
    /// `firstboot_sentinel`: path of the sentinel (default `/firstboot`).
    pub firstboot_sentinel: PathBuf,
    /// `require_firstboot`: act only while the sentinel exists (default false).
    pub require_firstboot: bool,
    /// `rerun_on_new_instance_id`: a new instance-id triggers a run (default true).
    pub rerun_on_new_instance_id: bool,
    /// `state_dir`: semaphores, seed copy, `status.json` (mode 0700).
    pub state_dir: PathBuf,
    /// `log_file`: the agent's log file (appended).
    pub log_file: PathBuf,
    /// `run_dir`: this boot's pass record (`pass.json`, `pass.lock`), readable by every
    /// user; on a file system emptied at boot (`/run`, FreeBSD `/var/run`).
    pub run_dir: PathBuf,
    /// `cloud_init_compat`: write cloud-init's status files and honour its disable
    /// switches, for tools written for cloud-init (default false).
    pub cloud_init_compat: bool,
    /// `max_seed_file_bytes`: largest file read from a seed (default 16 MiB).
    pub max_seed_file_bytes: u64,
    /// `max_seed_bytes`: all files read from one seed together (default 32 MiB), so a
    /// hostile image cannot make the agent read and copy much more than its own size.
    pub max_seed_bytes: u64,
    /// `seed_wait_secs`: seconds to wait for a seed device to appear (SCSI scans are
    /// asynchronous).
    pub seed_wait_secs: u64,
    /// `bootstrap.*`.
    pub bootstrap: BootstrapConfig,
    /// `identity.*`.
    pub identity: IdentityConfig,
    /// `network.*`.
    pub network: NetworkSettings,
}

impl Config {
    /// The defaults for an OS (what runs when no config file exists).
    pub fn defaults(os: OsKind) -> Self {
        let groups = match os {
            OsKind::Linux => vec!["adm".into(), "sudo".into()],
            OsKind::FreeBsd => vec!["wheel".into()],
        };
        Config {
            os,
            default_user: DefaultUser {
                name: os.default_user().into(),
                groups,
                shell: Some(match os {
                    OsKind::Linux => "/bin/bash".into(),
                    OsKind::FreeBsd => "/bin/sh".into(),
                }),
                sudo: vec!["ALL=(ALL) NOPASSWD:ALL".into()],
                gecos: None,
                lock_passwd: true,
            },
            datasources: vec![DatasourceKind::Nocloud, DatasourceKind::Bootstrap],
            firstboot_sentinel: "/firstboot".into(),
            require_firstboot: false,
            rerun_on_new_instance_id: true,
            state_dir: os.state_dir(),
            log_file: os.log_file(),
            run_dir: os.run_dir(),
            cloud_init_compat: false,
            max_seed_file_bytes: 16 << 20,
            max_seed_bytes: 32 << 20,
            seed_wait_secs: 10,
            bootstrap: BootstrapConfig {
                url: "http://10.0.2.100/vm-bootstrap".into(),
                dir: "/root/bootstrap".into(),
                log: "/var/log/vm-bootstrap.log".into(),
                interval_secs: 60,
                script_timeout_secs: 3600,
                max_retry: 10,
                connect_timeout_secs: 5,
                timeout_secs: 30,
                max_bytes: 16 << 20,
            },
            identity: IdentityConfig {
                regenerate_ssh_host_keys: true,
                reset_machine_id: true,
            },
            network: NetworkSettings {
                disabled: false,
                renderer: NetworkRenderer::Auto,
            },
        }
    }
}

/// Largest config file read.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// Load the config: `path` if given (a guest path; it must exist), else the OS default
/// path if it exists, else the defaults; then every `*.conf` in the drop-in directory
/// beside it (`<path>.d/`, e.g. `/etc/ci-agent.conf.d/`), in name order, each over the
/// result so far (as cloud-init reads `cloud.cfg.d/`). An image builder adds its settings
/// as a drop-in, so the packaged main file (a conffile, all comments) never changes and
/// upgrades never prompt.
pub fn load(
    sys: &dyn crate::platform::System,
    path: Option<&std::path::Path>,
    os: OsKind,
) -> anyhow::Result<Config> {
    let default = os.config_path();
    let (path, explicit) = match path {
        Some(p) => (p, true),
        None => (default.as_path(), false),
    };
    let mut cfg = Config::defaults(os);
    if explicit || sys.exists(path) {
        apply_file(sys, path, &mut cfg)?;
    }
    for file in drop_ins(sys, path)? {
        apply_file(sys, &file, &mut cfg)?;
    }
    Ok(cfg)
}

/// The `*.conf` files of `<main>.d/`, sorted by name (bytes, as `ls` in the C locale).
/// Hidden files and other suffixes (`.dpkg-old`, `.bak`, `~`) are ignored; no directory
/// means no drop-ins.
pub fn drop_ins(
    sys: &dyn crate::platform::System,
    main: &std::path::Path,
) -> anyhow::Result<Vec<PathBuf>> {
    let mut dir = main.as_os_str().to_owned();
    dir.push(".d");
    let dir = PathBuf::from(dir);
    match sys.lstat(&dir) {
        Ok(Some(info)) if info.kind == crate::platform::FileKind::Dir => {}
        _ => return Ok(Vec::new()),
    }
    let mut names = sys
        .read_dir(&dir)
        .with_context(|| format!("cannot list {}", dir.display()))?;
    names.retain(|n| n.ends_with(".conf") && !n.starts_with('.'));
    names.sort();
    Ok(names.into_iter().map(|n| dir.join(n)).collect())
}

/// Read one config file and apply its keys over `cfg`; errors name the file.
fn apply_file(
    sys: &dyn crate::platform::System,
    path: &std::path::Path,
    cfg: &mut Config,
) -> anyhow::Result<()> {
    let data = sys
        .read_file(path, MAX_CONFIG_BYTES)
        .with_context(|| format!("cannot read config {}", path.display()))?;
    let text = String::from_utf8(data)
        .map_err(|_| anyhow::anyhow!("{}: config is not UTF-8", path.display()))?;
    parse_over(&text, &path.display().to_string(), cfg)
}

/// Parse a config document (`file` names it in errors) over the defaults for `os`.
pub fn parse(text: &str, file: &str, os: OsKind) -> anyhow::Result<Config> {
    let mut cfg = Config::defaults(os);
    parse_over(text, file, &mut cfg)?;
    Ok(cfg)
}

/// Apply a config document's keys over `cfg` (keys it does not set keep their value) and
/// check the result; errors name `file`.
fn parse_over(text: &str, file: &str, cfg: &mut Config) -> anyhow::Result<()> {
    // An empty document (or only comments) changes nothing.
    let meaningful = text
        .lines()
        .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#') && l.trim() != "---");
    if !meaningful {
        return Ok(());
    }
    let raw: raw::File = crate::formats::yaml::from_str(text, file).map_err(anyhow::Error::new)?;
    raw.apply(cfg, file)?;
    cfg.validate(file)
}

impl Config {
    /// Check values that parse but cannot work; errors name the file and key.
    pub fn validate(&self, file: &str) -> anyhow::Result<()> {
        let abs = |key: &str, p: &std::path::Path| -> anyhow::Result<()> {
            let ok = p.is_absolute()
                && !p
                    .components()
                    .any(|c| matches!(c, std::path::Component::ParentDir));
            if !ok {
                anyhow::bail!(
                    "{file}: {key}: expected an absolute path without '..', got {:?}",
                    p.display().to_string()
                );
            }
            Ok(())
        };
        abs("firstboot_sentinel", &self.firstboot_sentinel)?;
        abs("state_dir", &self.state_dir)?;
        abs("log_file", &self.log_file)?;
        abs("run_dir", &self.run_dir)?;
        abs("bootstrap.dir", &self.bootstrap.dir)?;
        abs("bootstrap.log", &self.bootstrap.log)?;
        if self.state_dir.parent().is_none() {
            anyhow::bail!("{file}: state_dir: must not be /");
        }
        if self.run_dir.parent().is_none() {
            anyhow::bail!("{file}: run_dir: must not be /");
        }
        for (key, p) in [
            ("firstboot_sentinel", &self.firstboot_sentinel),
            ("log_file", &self.log_file),
            ("bootstrap.log", &self.bootstrap.log),
        ] {
            if p.parent().is_none() {
                anyhow::bail!("{file}: {key}: must name a file, not /");
            }
        }
        let name = &self.default_user.name;
        let name_ok = !name.is_empty()
            && name.len() <= 32
            && !name.starts_with('-')
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if !name_ok {
            anyhow::bail!(
                "{file}: default_user.name: expected a user name ([A-Za-z0-9._-], at most 32, not starting with '-'), got {name:?}"
            );
        }
        for (i, g) in self.default_user.groups.iter().enumerate() {
            let ok = !g.is_empty()
                && g.len() <= 32
                && !g.starts_with('-')
                && g.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
            if !ok {
                anyhow::bail!("{file}: default_user.groups[{i}]: expected a group name, got {g:?}");
            }
        }
        if let Some(shell) = &self.default_user.shell {
            abs("default_user.shell", std::path::Path::new(shell))?;
        }
        for (i, rule) in self.default_user.sudo.iter().enumerate() {
            if rule.contains('\n') || rule.trim().is_empty() {
                anyhow::bail!("{file}: default_user.sudo[{i}]: expected a one-line sudoers rule");
            }
        }
        if let Some(g) = &self.default_user.gecos {
            if g.contains(['\n', ':']) {
                anyhow::bail!("{file}: default_user.gecos: must not contain ':' or a newline");
            }
        }
        for (i, d) in self.datasources.iter().enumerate() {
            if self.datasources[..i].contains(d) {
                anyhow::bail!("{file}: datasources[{i}]: {d:?} is listed twice");
            }
        }
        if self.max_seed_file_bytes == 0 {
            anyhow::bail!("{file}: max_seed_file_bytes: must be greater than 0");
        }
        if self.max_seed_bytes == 0 {
            anyhow::bail!("{file}: max_seed_bytes: must be greater than 0");
        }
        let url = &self.bootstrap.url;
        if !(url.starts_with("http://") || url.starts_with("https://"))
            || url.contains(char::is_whitespace)
        {
            anyhow::bail!(
                "{file}: bootstrap.url: expected an http:// or https:// URL, got {url:?}"
            );
        }
        if self.bootstrap.max_bytes == 0 {
            anyhow::bail!("{file}: bootstrap.max_bytes: must be greater than 0");
        }
        if self.bootstrap.timeout_secs == 0 || self.bootstrap.connect_timeout_secs == 0 {
            anyhow::bail!(
                "{file}: bootstrap.timeout_secs / bootstrap.connect_timeout_secs: must be greater than 0"
            );
        }
        Ok(())
    }
}

/// The file as written: every key optional, unknown keys rejected.
mod raw {
    use std::path::PathBuf;

    use serde::Deserialize;

    use super::{Config, DatasourceKind, NetworkRenderer};

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct File {
        default_user: Option<DefaultUser>,
        datasources: Option<Vec<DatasourceKind>>,
        firstboot_sentinel: Option<PathBuf>,
        require_firstboot: Option<bool>,
        rerun_on_new_instance_id: Option<bool>,
        state_dir: Option<PathBuf>,
        log_file: Option<PathBuf>,
        run_dir: Option<PathBuf>,
        cloud_init_compat: Option<bool>,
        max_seed_file_bytes: Option<u64>,
        max_seed_bytes: Option<u64>,
        seed_wait_secs: Option<u64>,
        bootstrap: Option<Bootstrap>,
        identity: Option<Identity>,
        network: Option<Network>,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Network {
        config: Option<NetworkSwitch>,
        renderer: Option<NetworkRenderer>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum NetworkSwitch {
        Disabled,
        Enabled,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct DefaultUser {
        name: Option<String>,
        groups: Option<Names>,
        #[serde(default, deserialize_with = "present")]
        shell: Option<Option<String>>,
        sudo: Option<Sudo>,
        #[serde(default, deserialize_with = "present")]
        gecos: Option<Option<String>>,
        lock_passwd: Option<bool>,
    }

    /// A list of names, or one comma-separated string (cloud-init accepts both).
    #[derive(Debug, Deserialize)]
    #[serde(untagged)]
    enum Names {
        List(Vec<String>),
        Csv(String),
    }

    /// sudoers rules: a list, one rule, or `false` for none.
    #[derive(Debug, Deserialize)]
    #[serde(untagged)]
    enum Sudo {
        Off(bool),
        One(String),
        List(Vec<String>),
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Bootstrap {
        url: Option<String>,
        dir: Option<PathBuf>,
        log: Option<PathBuf>,
        interval_secs: Option<u64>,
        script_timeout_secs: Option<u64>,
        max_retry: Option<u32>,
        connect_timeout_secs: Option<u64>,
        timeout_secs: Option<u64>,
        max_bytes: Option<u64>,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Identity {
        regenerate_ssh_host_keys: Option<bool>,
        reset_machine_id: Option<bool>,
    }

    /// Distinguish "key absent" (outer `None`) from "key: null" (`Some(None)`).
    fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
    where
        D: serde::Deserializer<'de>,
        T: Deserialize<'de>,
    {
        Option::<T>::deserialize(d).map(Some)
    }

    fn set<T>(slot: &mut T, v: Option<T>) {
        if let Some(v) = v {
            *slot = v;
        }
    }

    impl File {
        pub fn apply(self, cfg: &mut Config, file: &str) -> anyhow::Result<()> {
            if let Some(u) = self.default_user {
                let d = &mut cfg.default_user;
                set(&mut d.name, u.name);
                if let Some(g) = u.groups {
                    d.groups = match g {
                        Names::List(l) => l.into_iter().map(|s| s.trim().to_string()).collect(),
                        Names::Csv(s) => s
                            .split(',')
                            .map(str::trim)
                            .filter(|s| !s.is_empty())
                            .map(String::from)
                            .collect(),
                    };
                }
                set(&mut d.shell, u.shell);
                if let Some(s) = u.sudo {
                    d.sudo = match s {
                        Sudo::Off(false) => Vec::new(),
                        Sudo::Off(true) => anyhow::bail!(
                            "{file}: default_user.sudo: expected a sudoers rule, a list of rules or false, got true"
                        ),
                        Sudo::One(r) => vec![r],
                        Sudo::List(l) => l,
                    };
                }
                set(&mut d.gecos, u.gecos);
                set(&mut d.lock_passwd, u.lock_passwd);
            }
            set(&mut cfg.datasources, self.datasources);
            set(&mut cfg.firstboot_sentinel, self.firstboot_sentinel);
            set(&mut cfg.require_firstboot, self.require_firstboot);
            set(
                &mut cfg.rerun_on_new_instance_id,
                self.rerun_on_new_instance_id,
            );
            set(&mut cfg.state_dir, self.state_dir);
            set(&mut cfg.log_file, self.log_file);
            set(&mut cfg.run_dir, self.run_dir);
            set(&mut cfg.cloud_init_compat, self.cloud_init_compat);
            set(&mut cfg.max_seed_file_bytes, self.max_seed_file_bytes);
            set(&mut cfg.max_seed_bytes, self.max_seed_bytes);
            set(&mut cfg.seed_wait_secs, self.seed_wait_secs);
            if let Some(b) = self.bootstrap {
                let c = &mut cfg.bootstrap;
                set(&mut c.url, b.url);
                set(&mut c.dir, b.dir);
                set(&mut c.log, b.log);
                set(&mut c.interval_secs, b.interval_secs);
                set(&mut c.script_timeout_secs, b.script_timeout_secs);
                set(&mut c.max_retry, b.max_retry);
                set(&mut c.connect_timeout_secs, b.connect_timeout_secs);
                set(&mut c.timeout_secs, b.timeout_secs);
                set(&mut c.max_bytes, b.max_bytes);
            }
            if let Some(i) = self.identity {
                set(
                    &mut cfg.identity.regenerate_ssh_host_keys,
                    i.regenerate_ssh_host_keys,
                );
                set(&mut cfg.identity.reset_machine_id, i.reset_machine_id);
            }
            if let Some(n) = self.network {
                if let Some(c) = n.config {
                    cfg.network.disabled = matches!(c, NetworkSwitch::Disabled);
                }
                set(&mut cfg.network.renderer, n.renderer);
            }
            Ok(())
        }
    }
}

/// A command-line path made absolute against the current directory. Guest paths never
/// hold `..` (`System` refuses them), so the part up to the last `..` is resolved as the
/// kernel would (`canonicalize`); the rest is kept as given, so symlinks there are still
/// resolved inside a `--root` by `System`.
pub fn absolute(p: &Path) -> anyhow::Result<PathBuf> {
    use std::path::Component;
    let abs = std::path::absolute(p).with_context(|| format!("cannot resolve {}", p.display()))?;
    let comps: Vec<Component> = abs.components().collect();
    let Some(last) = comps.iter().rposition(|c| *c == Component::ParentDir) else {
        return Ok(abs);
    };
    let (head, rest) = comps.split_at(last + 1);
    let head: PathBuf = head.iter().collect();
    let mut out =
        std::fs::canonicalize(&head).with_context(|| format!("cannot resolve {}", p.display()))?;
    out.extend(rest);
    Ok(out)
}

/// Load the agent config for a system rooted at `root`. `--config FILE` is a path on the
/// machine running us: read through `sys` when it lies under the root, else through a
/// read-only view of `/`. Without it, the OS default path under the root, if present.
pub fn load_config(
    sys: &dyn System,
    root: &Path,
    config: Option<&Path>,
    os: OsKind,
) -> anyhow::Result<Config> {
    let Some(file) = config else {
        return load(sys, None, os);
    };
    let file = absolute(file)?;
    if root == Path::new("/") {
        return load(sys, Some(&file), os);
    }
    if let Ok(rel) = file.strip_prefix(root) {
        let guest = Path::new("/").join(rel);
        return load(sys, Some(&guest), os);
    }
    // Outside the root: only read, through a system that never acts.
    let outside = HostSystem::recording("/");
    load(&outside, Some(&file), os)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_or_comment_only_is_defaults() {
        for text in ["", "\n", "# nothing\n", "---\n# c\n"] {
            assert_eq!(
                parse(text, "c", OsKind::FreeBsd).unwrap(),
                Config::defaults(OsKind::FreeBsd)
            );
        }
    }

    #[test]
    fn validation_names_the_key() {
        let mut c = Config::defaults(OsKind::Linux);
        c.state_dir = "var/lib/x".into();
        let e = c.validate("/etc/ci-agent.conf").unwrap_err().to_string();
        assert!(e.contains("/etc/ci-agent.conf: state_dir"), "{e}");
        let mut c = Config::defaults(OsKind::Linux);
        c.default_user.name = "bad name".into();
        assert!(c
            .validate("f")
            .unwrap_err()
            .to_string()
            .contains("default_user.name"));
        let mut c = Config::defaults(OsKind::Linux);
        c.datasources = vec![DatasourceKind::Nocloud, DatasourceKind::Nocloud];
        assert!(c
            .validate("f")
            .unwrap_err()
            .to_string()
            .contains("datasources[1]"));
        let mut c = Config::defaults(OsKind::Linux);
        c.bootstrap.url = "ftp://x".into();
        assert!(c
            .validate("f")
            .unwrap_err()
            .to_string()
            .contains("bootstrap.url"));
        assert!(Config::defaults(OsKind::Linux).validate("f").is_ok());
        assert!(Config::defaults(OsKind::FreeBsd).validate("f").is_ok());
    }

    #[test]
    fn missing_default_file_gives_defaults_but_explicit_must_exist() {
        let d = tempfile::tempdir().unwrap();
        let sys = crate::platform::fake::FakeSystem::new(d.path());
        assert_eq!(
            load(&sys, None, OsKind::Linux).unwrap(),
            Config::defaults(OsKind::Linux)
        );
        let e = load(
            &sys,
            Some(std::path::Path::new("/nope.conf")),
            OsKind::Linux,
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("/nope.conf"));
    }

    #[test]
    fn the_packaged_sample_is_all_comments_and_its_commented_values_are_the_defaults() {
        let sample = include_str!("../../packaging/ci-agent.conf.sample");
        let defaults = Config::defaults(OsKind::Linux);
        assert_eq!(parse(sample, "sample", OsKind::Linux).unwrap(), defaults);
        // Uncomment the key lines ("#key:" and "#  key:"), not the prose or the example.
        let live: String = sample
            .lines()
            .filter_map(|l| {
                let rest = l.strip_prefix('#')?;
                let key = rest.strip_prefix("  ").unwrap_or(rest);
                let is_key = key.split_once(':').is_some_and(|(k, _)| {
                    !k.is_empty() && k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                });
                is_key.then(|| format!("{rest}\n"))
            })
            .collect();
        assert!(
            live.contains("identity:") && live.contains("  max_bytes:"),
            "{live}"
        );
        assert_eq!(parse(&live, "sample", OsKind::Linux).unwrap(), defaults);
    }

    #[test]
    fn drop_ins_merge_in_name_order_over_the_main_file() {
        let d = tempfile::tempdir().unwrap();
        let sys = crate::platform::fake::FakeSystem::new(d.path());
        let w = |p: &str, t: &str| {
            let host = d.path().join(p.trim_start_matches('/'));
            std::fs::create_dir_all(host.parent().unwrap()).unwrap();
            std::fs::write(host, t).unwrap();
        };
        // The packaged main file: comments only.
        w(
            "/etc/ci-agent.conf",
            "# all defaults\n#seed_wait_secs: 10\n",
        );
        w(
            "/etc/ci-agent.conf.d/50-image.conf",
            "seed_wait_secs: 3\ndefault_user:\n  name: alpine\n",
        );
        w(
            "/etc/ci-agent.conf.d/90-site.conf",
            "seed_wait_secs: 7\ndefault_user:\n  shell: /bin/sh\n",
        );
        w(
            "/etc/ci-agent.conf.d/10-ignored.conf.dpkg-old",
            "nonsense: 1\n",
        );
        w("/etc/ci-agent.conf.d/.hidden.conf", "nonsense: 1\n");
        let c = load(&sys, None, OsKind::Linux).unwrap();
        assert_eq!(c.seed_wait_secs, 7, "the later drop-in wins");
        assert_eq!(c.default_user.name, "alpine", "keys merge one by one");
        assert_eq!(c.default_user.shell.as_deref(), Some("/bin/sh"));
        assert_eq!(c.default_user.groups, ["adm", "sudo"], "defaults stay");

        // Drop-ins apply without a main file too, and a bad one is named in the error.
        std::fs::remove_file(d.path().join("etc/ci-agent.conf")).unwrap();
        assert_eq!(load(&sys, None, OsKind::Linux).unwrap().seed_wait_secs, 7);
        w("/etc/ci-agent.conf.d/60-typo.conf", "seed_wait_sec: 1\n");
        let e = format!("{:#}", load(&sys, None, OsKind::Linux).unwrap_err());
        assert!(
            e.contains("/etc/ci-agent.conf.d/60-typo.conf") && e.contains("seed_wait_sec"),
            "{e}"
        );
    }

    #[test]
    fn an_explicit_config_reads_its_own_drop_in_directory() {
        let d = tempfile::tempdir().unwrap();
        let sys = crate::platform::fake::FakeSystem::new(d.path());
        std::fs::write(d.path().join("my.conf"), "seed_wait_secs: 1\n").unwrap();
        std::fs::create_dir(d.path().join("my.conf.d")).unwrap();
        std::fs::write(d.path().join("my.conf.d/a.conf"), "seed_wait_secs: 2\n").unwrap();
        let c = load(&sys, Some(Path::new("/my.conf")), OsKind::Linux).unwrap();
        assert_eq!(c.seed_wait_secs, 2);
    }

    // These need the YAML wrapper (crate::formats::yaml::from_str).
    #[test]
    fn keys_override_defaults() {
        let text = "\
default_user:
  name: admin
  groups: wheel, operator
  sudo: false
  shell: null
datasources: [nocloud]
require_firstboot: yes
rerun_on_new_instance_id: false
state_dir: /var/db/agent
seed_wait_secs: 0
bootstrap:
  url: http://127.0.0.1:8080/vm-bootstrap
  max_retry: 3
identity:
  reset_machine_id: false
";
        let c = parse(text, "/usr/local/etc/ci-agent.conf", OsKind::FreeBsd).unwrap();
        assert_eq!(c.default_user.name, "admin");
        assert_eq!(c.default_user.groups, ["wheel", "operator"]);
        assert!(c.default_user.sudo.is_empty());
        assert_eq!(c.default_user.shell, None);
        assert!(c.default_user.lock_passwd);
        assert_eq!(c.datasources, [DatasourceKind::Nocloud]);
        assert!(c.require_firstboot && !c.rerun_on_new_instance_id);
        assert_eq!(c.state_dir, std::path::Path::new("/var/db/agent"));
        assert_eq!(c.seed_wait_secs, 0);
        assert_eq!(c.bootstrap.max_retry, 3);
        assert_eq!(c.bootstrap.interval_secs, 60);
        assert!(!c.identity.reset_machine_id && c.identity.regenerate_ssh_host_keys);
    }

    #[test]
    fn unknown_and_mistyped_keys_are_errors_naming_the_file() {
        let e = parse(
            "state_dir: /x\nfirstboot_sentinal: /fb\n",
            "/etc/ci-agent.conf",
            OsKind::Linux,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("/etc/ci-agent.conf") && e.contains("firstboot_sentinal"),
            "{e}"
        );
        let e = parse(
            "bootstrap:\n  max_retry: many\n",
            "/etc/ci-agent.conf",
            OsKind::Linux,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("/etc/ci-agent.conf:2"), "{e}");
        let e = parse("datasources: [nocloud, ec2]\n", "c.conf", OsKind::Linux)
            .unwrap_err()
            .to_string();
        assert!(e.contains("c.conf"), "{e}");
    }
}
