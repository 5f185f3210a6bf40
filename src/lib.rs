//! ci-agent: a first-boot agent for VM templates, and ci-seed, its host-side seed tool.
//!
//! A template is built once and cloned many times; each clone must come up as its own
//! machine. The agent finds a NoCloud seed (an ISO9660 `cidata` cdrom read straight from
//! the block device, a vfat `CIDATA` disk, a directory, or an HTTP `seedfrom`), or a
//! vm-bootstrap HTTP endpoint, and applies it once per instance.
//!
//! Layout (see `docs/architecture.md`); imports only go down this list:
//! - [`agent`]: the first-boot run (decide, discover, parse, modules, record), its state,
//!   logging, `seal` and `query`.
//! - [`seed`]: the host side (`ci-seed`): build, batch, validate, images, `serve`.
//! - [`modules`]: one file per cloud-config key; [`datasource`]: where a seed comes from;
//!   [`disk`]: partition tables and root growth.
//! - [`network`]: network-config v1/v2 and ENI → one model → networkd, ENI,
//!   NetworkManager and FreeBSD renderers.
//! - [`platform`]: `System` (the only code that touches the host), the per-OS policy, the
//!   agent's config, accounts and command helpers.
//! - [`formats`]: pure codecs shared by both binaries: ISO9660, FAT, YAML, user-data,
//!   calendar.

pub mod agent;
pub mod datasource;
pub mod disk;
pub mod formats;
pub mod modules;
pub mod network;
pub mod platform;
pub mod seed;

/// Exit codes shared by both binaries.
pub mod exit {
    /// Success (or nothing was due).
    pub const OK: u8 = 0;
    /// The work ran and something failed (a module, a seed that was not found for `query`).
    pub const FAILED: u8 = 1;
    /// Usage, configuration or malformed-input errors.
    pub const USAGE: u8 = 2;
}
