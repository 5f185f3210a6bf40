//! ci-agent: a first-boot agent for VM templates, and ci-seed, its host-side seed tool.
//!
//! A template is built once and cloned many times; each clone must come up as its own
//! machine. The agent finds a NoCloud seed (an ISO9660 `cidata` cdrom read straight from
//! the block device, a vfat `CIDATA` disk, a directory, or an HTTP `seedfrom`), or a
//! vm-bootstrap HTTP endpoint, and applies it once per instance.
//!
//! Layout (see `docs/architecture.md`):
//! - [`iso9660`], [`fat`]: pure codecs over `Read + Seek` / `Write`, shared by both binaries.
//! - [`yaml`]: the one wrapper around the YAML parser, with budgets.
//! - [`userdata`]: classify, gunzip, split multipart, merge; typed cloud-config.
//! - [`datasource`]: find and load a seed (NoCloud device/image/dir, kernel command line,
//!   HTTP bootstrap).
//! - [`modules`]: one file per cloud-config key.
//! - [`platform`]: `System` (the only code that touches the host) and per-OS policy.
//! - [`agent`], [`state`], [`config`], [`logging`]: the first-boot run and its records.
//! - [`seed`], [`serve`]: the host side (`ci-seed`).

pub mod agent;
pub mod civil;
pub mod config;
pub mod datasource;
pub mod fat;
pub mod iso9660;
pub mod logging;
pub mod modules;
pub mod platform;
pub mod query;
pub mod seal;
pub mod seed;
pub mod serve;
pub mod state;
pub mod userdata;
pub mod yaml;

/// Exit codes shared by both binaries.
pub mod exit {
    /// Success (or nothing was due).
    pub const OK: u8 = 0;
    /// The work ran and something failed (a module, a seed that was not found for `query`).
    pub const FAILED: u8 = 1;
    /// Usage, configuration or malformed-input errors.
    pub const USAGE: u8 = 2;
}
