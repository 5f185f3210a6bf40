//! vfat seeds (placeholder signatures until the reader and writer land).

use std::io::{self, Read, Seek};

fn unimplemented() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "vfat support not implemented yet",
    )
}

/// FAT volume label (boot sector, or the root volume-label entry); `Ok(None)` when this is
/// not a FAT file system.
pub fn volume_label<R: Read + Seek>(_r: &mut R) -> io::Result<Option<String>> {
    Err(unimplemented())
}

/// Regular files of the root directory, each at most `max_file` bytes.
pub fn read_root_files<R: Read + Seek>(
    _r: &mut R,
    _max_file: u64,
) -> io::Result<Vec<(String, Vec<u8>)>> {
    Err(unimplemented())
}
