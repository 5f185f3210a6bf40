//! ISO9660 codec (placeholder signatures until the reader and writer land).

use std::io::{Read, Seek};

#[derive(Debug, thiserror::Error)]
pub enum IsoError {
    #[error("not implemented yet")]
    Unimplemented,
}

/// Volume id from the Primary Volume Descriptor; `Ok(None)` when this is not ISO9660.
pub fn volume_id<R: Read + Seek>(_r: &mut R) -> Result<Option<String>, IsoError> {
    Err(IsoError::Unimplemented)
}

/// Regular files of the root directory (Rock Ridge, then Joliet, then plain names),
/// each at most `max_file` bytes.
pub fn read_root_files<R: Read + Seek>(
    _r: &mut R,
    _max_file: u64,
) -> Result<Vec<(String, Vec<u8>)>, IsoError> {
    Err(IsoError::Unimplemented)
}
