//! ISO9660 codec: the NoCloud `cidata` cdrom, read straight from a block device or image
//! by the agent, and written in-process by `ci-seed`.
//!
//! Both halves live together because they share the format knowledge (descriptor layout,
//! directory records, SUSP/Rock Ridge entries, Joliet names): the writer's output is
//! checked by the reader in every round-trip test, and the reader's tests use images from
//! genisoimage and xorriso.
//!
//! - [`read`]: [`IsoImage`] over any `Read + Seek`; the free functions [`volume_id`] and
//!   [`read_root_files`] are the two calls the agent needs.
//! - [`write`]: [`write::write_image`], a deterministic writer (primary tree with 8.3 names
//!   + Rock Ridge, and a Joliet tree).
//!
//! Numbers: ECMA-119 stores most numbers "both-endian" (little-endian copy, then
//! big-endian copy). The reader uses the little-endian half consistently, as the Linux and
//! FreeBSD kernels do, and ignores the big-endian half: real images with a broken
//! big-endian half exist and are read by those kernels, so rejecting them would only cost
//! seeds. The writer fills both halves.

pub mod read;
pub mod write;

use std::io::{Read, Seek};

pub use read::{CountingReader, DirEntry, EntryKind, IsoImage, NameSource, ReadStats};

/// Logical sector (block) size. ECMA-119 allows others; every cdrom image in practice and
/// everything we read or write uses 2048.
pub const SECTOR: u64 = 2048;

/// First sector of the volume descriptor set (sectors 0-15 are the system area).
pub const FIRST_DESCRIPTOR: u64 = 16;

/// Everything that can go wrong reading or writing an image. Every variant says what was
/// expected and where, so the agent's log line is enough to diagnose a bad seed.
#[derive(Debug, thiserror::Error)]
pub enum IsoError {
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("not an ISO9660 image: {0}")]
    NotIso(String),
    #[error("image truncated: needed bytes {start}..{end} for {what}, image has {size} bytes")]
    Truncated {
        what: String,
        start: u64,
        end: u64,
        size: u64,
    },
    #[error("bad volume descriptor at sector {sector}: {reason}")]
    BadDescriptor { sector: u64, reason: String },
    #[error("unsupported ISO9660 feature: {0}")]
    Unsupported(String),
    #[error("bad directory record in directory at sector {dir_sector}, byte {offset}: {reason}")]
    BadRecord {
        dir_sector: u64,
        offset: u64,
        reason: String,
    },
    #[error("bad System Use (Rock Ridge) entry for {name:?}: {reason}")]
    BadSusp { name: String, reason: String },
    #[error("directory loop: directory at sector {sector} ({path:?}) is its own ancestor or was already read")]
    DirectoryLoop { sector: u64, path: String },
    #[error("directory tree is larger than the image ({size} bytes): corrupt directory sizes")]
    DirectoryBudget { size: u64 },
    #[error("file {name:?} is {size} bytes, more than the limit of {limit} bytes")]
    FileTooLarge { name: String, size: u64, limit: u64 },
    #[error(transparent)]
    SeedTooLarge(#[from] crate::formats::SeedTooLarge),
    #[error("file {name:?} is a multi-extent file (larger than 4 GiB); not supported")]
    MultiExtent { name: String },
    #[error("no such file or directory in the image: {0:?}")]
    NotFound(String),
    #[error("not a directory in the image: {0:?}")]
    NotADirectory(String),
    #[error("not a regular file in the image: {0:?}")]
    NotAFile(String),
    #[error("cannot write image: {0}")]
    InvalidInput(String),
}

/// Volume id from the Primary Volume Descriptor (sector 16, the 32-byte field at byte 40),
/// with trailing spaces (and NULs) trimmed; `Ok(None)` when sector 16 does not hold an
/// ISO9660 descriptor (`CD001`) or the device is shorter than that.
///
/// A cheap probe: reads one sector in the usual case (a few more only when other
/// descriptors, e.g. an El Torito boot record, come before the PVD).
pub fn volume_id<R: Read + Seek>(r: &mut R) -> Result<Option<String>, IsoError> {
    read::probe_volume_id(r)
}

/// Regular files of the root directory (names from Rock Ridge, then Joliet, then plain
/// ISO names), each at most `max_file` bytes: a larger one is an error naming the file and
/// the limit. Subdirectories, symlinks and other special entries are skipped.
pub fn read_root_files<R: Read + Seek>(
    r: &mut R,
    max_file: u64,
) -> Result<Vec<(String, Vec<u8>)>, IsoError> {
    read_root_files_within(r, max_file, u64::MAX)
}

/// [`read_root_files`] with a budget for the whole seed: the files read together are at
/// most `max_total` bytes (checked before each file is read, so entries that share one
/// extent cannot multiply what is read and copied).
pub fn read_root_files_within<R: Read + Seek>(
    r: &mut R,
    max_file: u64,
    max_total: u64,
) -> Result<Vec<(String, Vec<u8>)>, IsoError> {
    let mut img = IsoImage::open(r)?;
    img.read_root_files_within(max_file, max_total)
}
