//! vm-bootstrap endpoint (placeholder signatures until implemented).

use crate::config::BootstrapConfig;
use crate::platform::System;

/// How a bootstrap pass ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "result")]
pub enum Outcome {
    /// No `start-bootstrap` gate file: nothing to do.
    Disabled,
    /// A previous attempt succeeded; never again.
    AlreadyDone,
    /// An attempt's script exited 0.
    Succeeded { attempt: u32 },
    /// The attempt counter reached `bootstrap-max-retry`.
    LimitReached { attempts: u32, max: u32 },
}

/// Attempt the bootstrap until success or the retry limit (placeholder).
pub fn run(_sys: &dyn System, _cfg: &BootstrapConfig) -> anyhow::Result<Outcome> {
    anyhow::bail!("bootstrap not implemented yet")
}

/// What `ci-agent status` shows about the bootstrap (placeholder).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct BootstrapStatus {
    /// The gate file exists.
    pub enabled: bool,
    pub attempts: u32,
    pub max_retry: u32,
    pub done: bool,
    pub limit_reached: bool,
    pub last_result: Option<String>,
}

/// Read the bootstrap state files (placeholder).
pub fn status(_sys: &dyn System, _cfg: &BootstrapConfig) -> anyhow::Result<BootstrapStatus> {
    anyhow::bail!("bootstrap not implemented yet")
}
