//! One module per cloud-config key, run in a fixed order.
//!
//! Each module says which key it handles (its name), how often it runs, in which stage,
//! whether the seed gives it anything to do, and does its work only through
//! [`Context::sys`] — so every module is tested against the recording fake, for both OS
//! policies.

pub mod apt;
pub mod bootcmd;
pub mod boothooks;
pub mod ca_certs;
pub mod doas;
pub mod final_message;
pub mod groups;
pub mod growpart;
pub mod hostname;
pub mod keyboard;
pub mod keys_to_console;
pub mod locale;
pub mod machine_id;
pub mod mounts;
pub mod network;
pub mod ntp;
pub mod packages;
pub mod phone_home;
pub mod power_state;
pub mod repos;
pub mod resize_rootfs;
pub mod resolv_conf;
pub mod runcmd;
pub mod scripts;
pub mod set_passwords;
pub mod ssh_authkey_fingerprints;
pub mod ssh_authorized_keys;
pub mod ssh_host_keys;
pub mod ssh_keys;
pub mod timezone;
pub mod users;
pub mod write_files;

use std::path::PathBuf;

use crate::formats::userdata::cloud_config::CommandSpec;
use crate::formats::userdata::value::KeyVal;
use crate::formats::userdata::{CloudConfig, SeedData};
use crate::platform::config::Config;
use crate::platform::policy::OsPolicy;
use crate::platform::{exec, Cmd, OsKind, System, WriteOpts};

/// How often a module runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Frequency {
    /// Once per instance-id (semaphore under the state dir).
    PerInstance,
    /// Every boot.
    PerBoot,
    /// Once for the life of the machine.
    Once,
}

/// When a module runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Before networking: hostname before DHCP, keys before sshd.
    Early,
    /// After the network is up: packages, runcmd, scripts, final_message.
    Late,
}

/// What a module gets.
pub struct Context<'a> {
    pub sys: &'a dyn System,
    pub os: OsKind,
    pub config: &'a Config,
    pub seed: &'a SeedData,
    /// Guest path of the local copy of the seed's files (exported to scripts as
    /// `CI_AGENT_SEED_DIR`).
    pub seed_dir: PathBuf,
    /// Guest path of this instance's state directory (`<state_dir>/instances/<iid>`).
    pub instance_dir: PathBuf,
    /// Non-fatal problems a module wants in `status` (never secrets).
    pub warnings: Vec<String>,
}

impl Context<'_> {
    pub fn cc(&self) -> &CloudConfig {
        &self.seed.cloud_config
    }
}

impl<'a> Context<'a> {
    /// A top-level cloud-config value read by its module (absent or null: `None`); its
    /// errors name `user-data`, line:column and the key path.
    pub fn key(&self, name: &str) -> Option<KeyVal<'a>> {
        let tree = self.seed.cloud_config_tree.as_ref()?;
        KeyVal::top(tree, "user-data", name).filter(|v| !v.is_null())
    }
}

impl Context<'_> {
    /// The guest path of tool `name` in the usual bin directories of either OS.
    pub fn find_tool(&self, name: &str) -> Option<PathBuf> {
        const DIRS: [&str; 6] = [
            "/usr/sbin",
            "/usr/bin",
            "/sbin",
            "/bin",
            "/usr/local/sbin",
            "/usr/local/bin",
        ];
        DIRS.iter()
            .map(|d| std::path::Path::new(d).join(name))
            .find(|p| self.sys.exists(p))
    }

    /// True when systemd is the running init (`/run/systemd/system`).
    pub fn systemd(&self) -> bool {
        self.sys.exists(std::path::Path::new("/run/systemd/system"))
    }

    /// Replace `path` with `data` (mode `mode`), creating missing parents 0755; the error
    /// names the file.
    pub fn write_config(&self, path: &str, data: &[u8], mode: u32) -> anyhow::Result<()> {
        use anyhow::Context as _;
        let p = std::path::Path::new(path);
        if let Some(parent) = p.parent() {
            self.sys
                .create_dir_all(parent, 0o755, None)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        self.sys
            .write_file(p, data, WriteOpts::mode(mode))
            .with_context(|| format!("writing {path}"))?;
        log::info!("wrote {path}");
        Ok(())
    }

    /// Run a system command; a failure is an error naming it ([`exec::run_ok`]).
    pub fn cmd(&self, argv: &[&str]) -> anyhow::Result<crate::platform::CmdOutput> {
        exec::run_ok(self.sys, &Cmd::new(argv.iter().copied()))
    }
}

pub trait Module {
    /// The cloud-config key it handles (`write_files`, `runcmd`, …); also its semaphore name.
    fn name(&self) -> &'static str;
    /// The top-level cloud-config keys it owns: a rejected value of one of them fails this
    /// module (with the error naming file:line:column and the key path) and no other.
    fn keys(&self) -> &'static [&'static str] {
        &[]
    }
    fn frequency(&self) -> Frequency;
    fn stage(&self) -> Stage;
    /// True when the seed (or the config) gives it something to do.
    fn wanted(&self, ctx: &Context) -> bool;
    /// Do the work. An error is logged and recorded; later modules still run.
    fn run(&self, ctx: &mut Context) -> anyhow::Result<()>;
}

impl Context<'_> {
    /// The per-OS policy for this run.
    pub fn policy(&self) -> &'static dyn OsPolicy {
        self.os.policy()
    }

    /// `cmd` with the environment every seed-supplied command gets.
    pub fn seed_env(&self, cmd: Cmd) -> Cmd {
        cmd.env("CI_AGENT_SEED_DIR", self.seed_dir.to_string_lossy())
            .env("CI_AGENT_INSTANCE_ID", self.seed.instance_id.clone())
    }

    /// Run seed commands (`bootcmd`, `runcmd`) as one `#!/bin/sh` script, kept as `key` in
    /// the instance's state dir (0700), with the seed environment plus `extra_env`; every
    /// item runs (no `set -e`); the error names the script and its exit code.
    pub fn run_items(
        &self,
        key: &str,
        items: &[CommandSpec],
        extra_env: &[(&str, &str)],
    ) -> anyhow::Result<()> {
        // A NUL cannot be in a command: the shell would not run the one written. The
        // script is all or nothing, so no item runs.
        let nul: Vec<String> = items
            .iter()
            .enumerate()
            .filter(|(_, it)| match it {
                CommandSpec::Shell(s) => s.contains('\0'),
                CommandSpec::Argv(a) => a.iter().any(|w| w.contains('\0')),
            })
            .map(|(i, _)| format!("{key}[{i}]"))
            .collect();
        if !nul.is_empty() {
            anyhow::bail!("{}: contains a NUL byte; nothing run", nul.join(", "));
        }
        let path = self.write_instance_file(key, exec::shellify(items).as_bytes(), 0o700)?;
        let cmd = extra_env.iter().fold(
            self.seed_env(Cmd::new(["/bin/sh".to_owned(), path.display().to_string()])),
            |c, (k, v)| c.env(*k, *v),
        );
        exec::run_script(self.sys, key, &cmd)
    }

    /// Record a non-fatal problem (the run logs it with the module's name and puts it in
    /// status).
    pub fn warn(&mut self, msg: impl Into<String>) {
        self.warnings.push(msg.into());
    }

    /// Write `name` in this instance's state directory (created 0700 if missing), with
    /// `mode`; returns its guest path. The error names the file.
    pub fn write_instance_file(
        &self,
        name: &str,
        data: &[u8],
        mode: u32,
    ) -> anyhow::Result<PathBuf> {
        use anyhow::Context as _;
        let path = self.instance_dir.join(name);
        self.sys
            .create_dir_all(&self.instance_dir, 0o700, None)
            .and_then(|_| self.sys.write_file(&path, data, WriteOpts::mode(mode)))
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }
}

/// All modules, in the order they run. The run filters them by stage and frequency:
///
/// - Early: `bootcmd`, `boothooks` (every boot), `network`, `hostname`, `ssh_host_keys`,
///   `ssh_keys`, `machine_id`, `groups`, `users`, `ssh_authorized_keys`, `set_passwords`,
///   `write_files`, `timezone`, `locale`, `ntp`, `mounts`, `resolv_conf`, `doas`,
///   `keys_to_console` (last: the host key fingerprints).
/// - Late: `ssh_host_keys_deferred` (the RSA host key, then an sshd reload), `ca_certs`,
///   `keyboard`, `apt`, `repos`, `packages`, `write_files_deferred`, `runcmd`, `scripts`
///   (every boot; it keeps per-script semaphores itself), `ssh_authkey_fingerprints`,
///   `final_message` (every boot), `phone_home`, `power_state` (last).
pub fn all() -> Vec<Box<dyn Module>> {
    vec![
        Box::new(bootcmd::Bootcmd),
        Box::new(boothooks::Boothooks),
        Box::new(growpart::Growpart),
        Box::new(resize_rootfs::ResizeRootfsModule),
        Box::new(network::Network),
        Box::new(hostname::Hostname),
        Box::new(ssh_host_keys::SshHostKeys),
        Box::new(ssh_keys::SshKeys),
        Box::new(machine_id::MachineId),
        Box::new(groups::Groups),
        Box::new(users::Users),
        Box::new(ssh_authorized_keys::SshAuthorizedKeys),
        Box::new(set_passwords::SetPasswords),
        Box::new(write_files::WriteFiles { deferred: false }),
        Box::new(timezone::Timezone),
        Box::new(locale::Locale),
        Box::new(ntp::Ntp),
        Box::new(mounts::Mounts),
        Box::new(resolv_conf::ResolvConf),
        Box::new(doas::Doas),
        Box::new(keys_to_console::KeysToConsole),
        Box::new(ssh_host_keys::SshHostKeysDeferred),
        Box::new(ca_certs::CaCerts),
        Box::new(keyboard::Keyboard),
        Box::new(apt::Apt),
        Box::new(repos::Repos),
        Box::new(packages::Packages),
        Box::new(write_files::WriteFiles { deferred: true }),
        Box::new(runcmd::Runcmd),
        Box::new(scripts::Scripts),
        Box::new(ssh_authkey_fingerprints::SshAuthkeyFingerprints),
        Box::new(final_message::FinalMessage),
        Box::new(phone_home::PhoneHome),
        Box::new(power_state::PowerStateModule),
    ]
}

/// Unit-test scaffolding for modules: a temp root behind the recording fake, the default
/// config for an OS, a hand-built seed, and a way to run one module and get its result and
/// warnings.
#[cfg(test)]
pub(crate) mod test_env {
    use std::path::PathBuf;

    use crate::formats::userdata::SeedData;
    use crate::modules::{Context, Module};
    use crate::platform::accounts::fake as fake_accounts;
    use crate::platform::config::Config;
    use crate::platform::fake::FakeSystem;
    use crate::platform::OsKind;

    pub struct Env {
        // Kept alive for the duration of the test.
        _dir: tempfile::TempDir,
        pub sys: FakeSystem,
        pub os: OsKind,
        pub config: Config,
        pub seed: SeedData,
    }

    impl Env {
        /// A root with a minimal passwd/group for `os` and working account tools.
        pub fn new(os: OsKind) -> Self {
            let dir = tempfile::tempdir().expect("tempdir");
            let sys = FakeSystem::new(dir.path());
            let admin = match os {
                OsKind::Linux => "sudo:x:27:\nadm:x:4:\n",
                OsKind::FreeBsd => "wheel:x:0:root\noperator:x:5:root\n",
            };
            sys.put("/etc/passwd", "root:x:0:0:root:/root:/bin/sh\n");
            sys.put("/etc/group", format!("root:x:0:\n{admin}"));
            fake_accounts::install(&sys);
            Env {
                _dir: dir,
                sys,
                os,
                config: Config::defaults(os),
                seed: SeedData {
                    instance_id: "iid-test".into(),
                    source: "dir:/seed".into(),
                    ..SeedData::default()
                },
            }
        }

        /// Use `text` (a cloud-config document) as the seed's cloud-config.
        pub fn yaml(&mut self, text: &str) {
            use crate::formats::userdata::CloudConfig;
            let tree = crate::formats::yaml::parse_node(text, "user-data").expect("yaml");
            let mut w = Vec::new();
            self.seed.cloud_config =
                CloudConfig::from_node(&tree, "user-data", &mut w).expect("cloud-config");
            self.seed.cloud_config_json = tree.to_json();
            self.seed.cloud_config_tree = Some(tree);
        }

        pub fn ctx(&self) -> Context<'_> {
            Context {
                sys: &self.sys,
                os: self.os,
                config: &self.config,
                seed: &self.seed,
                seed_dir: PathBuf::from("/run/ci-agent/seed"),
                instance_dir: self
                    .config
                    .state_dir
                    .join("instances")
                    .join(&self.seed.instance_id),
                warnings: Vec::new(),
            }
        }

        /// Run a module if it is wanted: `None` when not wanted, else its result and warnings.
        pub fn run(&self, m: &dyn Module) -> Option<(anyhow::Result<()>, Vec<String>)> {
            let mut ctx = self.ctx();
            if !m.wanted(&ctx) {
                return None;
            }
            let r = m.run(&mut ctx);
            Some((r, ctx.warnings))
        }

        /// Run a module that must be wanted and must succeed; returns its warnings.
        pub fn run_ok(&self, m: &dyn Module) -> Vec<String> {
            match self.run(m) {
                None => panic!("module {} not wanted", m.name()),
                Some((Err(e), _)) => panic!("module {} failed: {e:#}", m.name()),
                Some((Ok(()), w)) => w,
            }
        }

        /// Run a module that must be wanted and must fail; returns the error text.
        pub fn run_err(&self, m: &dyn Module) -> String {
            match self.run(m) {
                None => panic!("module {} not wanted", m.name()),
                Some((Ok(()), _)) => panic!("module {} succeeded", m.name()),
                Some((Err(e), _)) => format!("{e:#}"),
            }
        }

        pub fn lines(&self) -> Vec<String> {
            self.sys.command_lines()
        }

        pub fn read(&self, p: &str) -> String {
            self.sys
                .read_string(p)
                .unwrap_or_else(|| panic!("{p} missing"))
        }

        pub fn mode(&self, p: &str) -> u32 {
            use crate::platform::System;
            self.sys
                .lstat(std::path::Path::new(p))
                .unwrap()
                .unwrap_or_else(|| panic!("{p} missing"))
                .mode
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_late_follows_early() {
        let mods = all();
        let mut names: Vec<&str> = mods.iter().map(|m| m.name()).collect();
        let stages: Vec<Stage> = mods.iter().map(|m| m.stage()).collect();
        assert!(stages.windows(2).all(|w| w[0] <= w[1]), "{names:?}");
        assert_eq!(names.last(), Some(&"power_state"));
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), mods.len());
    }

    #[test]
    fn every_rejected_key_has_an_owner() {
        use crate::formats::userdata::cloud_config::KNOWN_KEYS;
        use crate::formats::userdata::CloudConfig;
        let owned: Vec<&str> = all()
            .iter()
            .flat_map(|m| m.keys().iter().copied())
            .collect();
        // Every known key with a value of the wrong shape: whatever CloudConfig rejects
        // must fail some module (keys modules read themselves are not in its errors).
        for bad in ["[[[]]]", "{bad: [[]]}", "x"] {
            let doc: String = KNOWN_KEYS.iter().map(|k| format!("{k}: {bad}\n")).collect();
            let node = crate::formats::yaml::parse_node(&doc, "t").unwrap();
            let cc = CloudConfig::from_node(&node, "t", &mut Vec::new()).unwrap();
            assert!(!cc.errors.is_empty());
            for e in &cc.errors {
                assert!(owned.contains(&e.key.as_str()), "no module owns {}", e.key);
            }
        }
    }
}
