//! Partition tables and root growth.
//!
//! - [`table`]: the GPT and MBR reader and grower. Pure code over a device opened for
//!   reading: every field is bounds-checked before use, every size is bounded, and a
//!   hostile table is an error, never a panic. Growing produces the sectors to write,
//!   already re-read and checked; nothing is written by it.
//! - [`grow`]: the `growpart` / `resize_rootfs` work on a live machine: which device is
//!   under `/`, its partition, the new table written under a lock on the disk, the kernel
//!   told, then the file system grown with its own tool. Every effect goes through
//!   [`crate::platform::System`].
//!
//! The table code was written for this project rather than taken from a crate: the GPT
//! crates we looked at index and slice input with unchecked offsets, and a seed or a disk
//! image is hostile input here.

pub mod grow;
pub mod table;

/// A table that cannot be read or grown safely: the text says what and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DiskError(pub String);

impl DiskError {
    pub fn new(msg: impl Into<String>) -> Self {
        DiskError(msg.into())
    }
}

impl From<std::io::Error> for DiskError {
    fn from(e: std::io::Error) -> Self {
        DiskError(e.to_string())
    }
}
