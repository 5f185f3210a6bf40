//! Fuzz the ISO9660 reader the agent runs on a seed device: the volume-id probe, the
//! root-file read, and a whole-tree walk, over arbitrary bytes. Any panic, hang or
//! oversized allocation is a bug.
#![no_main]

use std::io::Cursor;

use ci_agent::formats::iso9660::{self, IsoImage};
use libfuzzer_sys::fuzz_target;

const MAX_FILE: u64 = 16 << 20;

fuzz_target!(|data: &[u8]| {
    let _ = iso9660::volume_id(&mut Cursor::new(data));
    let _ = iso9660::read_root_files(&mut Cursor::new(data), MAX_FILE);
    if let Ok(mut img) = IsoImage::open(Cursor::new(data)) {
        let _ = img.read_all_files(MAX_FILE);
        let _ = img.read_file("user-data", MAX_FILE);
    }
});
