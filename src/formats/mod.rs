//! Pure codecs shared by both binaries: no `System`, no agent types, nothing above this
//! layer is imported here.
//!
//! - [`iso9660`], [`fat`]: read and write seed images over `Read + Seek` / `Write`.
//! - [`yaml`]: the one wrapper around the YAML parser, with budgets and YAML 1.1 rules.
//! - [`userdata`]: classify, gunzip, split multipart, merge; typed cloud-config; meta-data.
//! - [`hostkey`]: SSH host keys: generate, encode, fingerprint, known_hosts, check `ssh_keys`.
//! - [`civil`]: the calendar (UTC dates, RFC 3339) without a time-zone database.
//! - [`SeedError`]: a malformed seed file, with its position.

pub mod civil;
pub mod fat;
pub mod hostkey;
pub mod iso9660;
pub mod userdata;
pub mod yaml;

/// A malformed seed: names the file and, where known, the line and column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}{}: {message}", match (line, column) { (Some(l), Some(c)) => format!(":{l}:{c}"), (Some(l), None) => format!(":{l}"), _ => String::new() })]
pub struct SeedError {
    pub file: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}
