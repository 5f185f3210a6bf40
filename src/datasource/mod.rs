//! Seed discovery (placeholder signature until implemented).

pub mod bootstrap;
pub mod http;

use std::path::Path;

use crate::config::Config;
use crate::platform::System;
use crate::userdata::Seed;

/// Find the NoCloud seed: `seed` (device, image or directory) when given, else the kernel
/// command line / SMBIOS `ds=nocloud`, else a scan of block devices for a `cidata` label.
/// `Ok(None)` when there is none.
pub fn find_seed(
    _sys: &dyn System,
    _config: &Config,
    _seed: Option<&Path>,
) -> anyhow::Result<Option<Seed>> {
    anyhow::bail!("seed discovery not implemented yet")
}
