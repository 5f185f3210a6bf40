//! One module per cloud-config key, run in a fixed order.
//!
//! Each module says which key it handles (its name), how often it runs, in which stage,
//! whether the seed gives it anything to do, and does its work only through
//! [`Context::sys`] — so every module is tested against the recording fake, for both OS
//! policies.

use std::path::PathBuf;

use crate::config::Config;
use crate::platform::{OsKind, System};
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

/// All modules, in the order they run (placeholder: filled as modules land).
pub fn all() -> Vec<Box<dyn Module>> {
    Vec::new()
}
