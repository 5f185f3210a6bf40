//! User-data and meta-data: from the raw files of a seed to what the modules apply.
//!
//! `user-data` is classified by its first bytes like cloud-init does (`#cloud-config`,
//! `#!`, MIME multipart, gzip, `#include`, `#cloud-boothook`); cloud-config parts are
//! merged (later top-level keys win), vendor-data the same at lower precedence; scripts are
//! kept in order for the `scripts` module.
//!
//! - [`mime`]: multipart splitting and part decoding.
//! - [`cloud_config`]: the typed cloud-config for the keys in scope.
//! - [`metadata`]: `meta-data` (YAML or JSON).

pub mod cloud_config;
pub mod metadata;
pub mod mime;

use std::collections::BTreeMap;

pub use cloud_config::CloudConfig;
pub use metadata::MetaData;

/// The files of a seed, as found (before parsing).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seed {
    /// Where it came from, for logs and `status`: `iso9660:/dev/sr0`, `vfat:/dev/vdb`,
    /// `dir:/mnt/seed`, `http://10.0.2.2/seed/`.
    pub source: String,
    /// Files at the seed root by name (`user-data`, `meta-data`, `vendor-data`,
    /// `network-config`, `CONFIG`, …). Files in subdirectories use `/` in the name.
    pub files: BTreeMap<String, Vec<u8>>,
    /// `h=` / `i=` from the kernel command line or SMBIOS serial; they override meta-data.
    pub hostname_override: Option<String>,
    pub instance_id_override: Option<String>,
}

/// When a script runs (cloud-init's `scripts-per-*` frequencies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Frequency {
    PerInstance,
    PerBoot,
    Once,
}

/// A user-data script (a `#!` part, or `text/x-shellscript*`), or a boothook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    /// Part file name if the MIME part had one, else `part-NNN`.
    pub name: String,
    /// The interpreter from the `#!` line (`/bin/sh`, `/usr/bin/env python3`, …).
    pub interpreter: String,
    pub body: Vec<u8>,
    pub frequency: Frequency,
}

/// A parsed seed: everything the run needs, and what `ci-agent query` prints.
#[derive(Debug, Clone, Default)]
pub struct SeedData {
    pub source: String,
    pub meta: MetaData,
    /// Instance id after overrides (`nocloud` when none is given, like cloud-init).
    pub instance_id: String,
    /// Hostname from meta-data (`local-hostname`, else `hostname`) after overrides.
    pub hostname: Option<String>,
    /// Merged cloud-config (vendor-data below user-data), typed.
    pub cloud_config: CloudConfig,
    /// The same merge as plain JSON (unknown keys included).
    pub cloud_config_json: serde_json::Value,
    /// User-data scripts in order.
    pub scripts: Vec<Script>,
    /// `#cloud-boothook` parts (run early, every boot).
    pub boothooks: Vec<Script>,
    /// `#include` URLs (fetched by the HTTP datasource, recorded here).
    pub includes: Vec<String>,
    /// Names of the files on the seed.
    pub files: Vec<String>,
    /// Non-fatal problems (unknown keys, unhandled parts), each naming the file and key.
    pub warnings: Vec<String>,
}

/// A malformed seed: names the file and, where known, the line and column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}{}: {message}", match (line, column) { (Some(l), Some(c)) => format!(":{l}:{c}"), (Some(l), None) => format!(":{l}"), _ => String::new() })]
pub struct SeedError {
    pub file: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

/// Parse a seed's files into what the run applies (placeholder until implemented).
pub fn parse_seed(seed: &Seed) -> Result<SeedData, SeedError> {
    Err(SeedError {
        file: seed.source.clone(),
        line: None,
        column: None,
        message: "user-data parsing not implemented yet".into(),
    })
}
