//! One module per cloud-config key, run in a fixed order.
//!
//! Each module says which key it handles (its name), how often it runs, in which stage,
//! whether the seed gives it anything to do, and does its work only through
//! [`Context::sys`] — so every module is tested against the recording fake, for both OS
//! policies.

pub mod bootcmd;
pub mod boothooks;
pub mod exec;
pub mod fake_accounts;
pub mod final_message;
pub mod groups;
pub mod hostname;
pub mod machine_id;
pub mod packages;
pub mod passwd_db;
pub mod policy;
pub mod power_state;
pub mod runcmd;
pub mod scripts;
pub mod set_passwords;
pub mod ssh_authorized_keys;
pub mod ssh_host_keys;
#[cfg(test)]
mod test_env;
pub mod users;
pub mod write_files;

use std::path::PathBuf;

use crate::config::Config;
use crate::platform::{OsKind, System, WriteOpts};
use crate::userdata::{CloudConfig, SeedData};

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

pub trait Module {
    /// The cloud-config key it handles (`write_files`, `runcmd`, …); also its semaphore name.
    fn name(&self) -> &'static str;
    fn frequency(&self) -> Frequency;
    fn stage(&self) -> Stage;
    /// True when the seed (or the config) gives it something to do.
    fn wanted(&self, ctx: &Context) -> bool;
    /// Do the work. An error is logged and recorded; later modules still run.
    fn run(&self, ctx: &mut Context) -> anyhow::Result<()>;
}

impl Context<'_> {
    /// The per-OS policy for this run.
    pub fn policy(&self) -> &'static dyn policy::OsPolicy {
        policy::for_os(self.os)
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
/// - Early: `bootcmd`, `boothooks` (every boot), `hostname`, `ssh_host_keys`,
///   `machine_id`, `groups`, `users`, `ssh_authorized_keys`, `set_passwords`,
///   `write_files`.
/// - Late: `packages`, `write_files_deferred`, `runcmd`, `scripts` (every boot; it keeps
///   per-script semaphores itself), `final_message` (every boot), `power_state` (last).
pub fn all() -> Vec<Box<dyn Module>> {
    vec![
        Box::new(bootcmd::Bootcmd),
        Box::new(boothooks::Boothooks),
        Box::new(hostname::Hostname),
        Box::new(ssh_host_keys::SshHostKeys),
        Box::new(machine_id::MachineId),
        Box::new(groups::Groups),
        Box::new(users::Users),
        Box::new(ssh_authorized_keys::SshAuthorizedKeys),
        Box::new(set_passwords::SetPasswords),
        Box::new(write_files::WriteFiles { deferred: false }),
        Box::new(packages::Packages),
        Box::new(write_files::WriteFiles { deferred: true }),
        Box::new(runcmd::Runcmd),
        Box::new(scripts::Scripts),
        Box::new(final_message::FinalMessage),
        Box::new(power_state::PowerStateModule),
    ]
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
}
