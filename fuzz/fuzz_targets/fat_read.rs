//! Fuzz the vfat reader the agent runs on a seed device: the label probe, the root-file
//! read, and a whole-tree walk (which drives the `fatfs` crate after our own checks),
//! over arbitrary bytes. Any panic, hang or oversized allocation is a bug.
#![no_main]

use std::io::Cursor;

use ci_agent::formats::fat;
use libfuzzer_sys::fuzz_target;

const MAX_FILE: u64 = 16 << 20;

fuzz_target!(|data: &[u8]| {
    let _ = fat::volume_label(&mut Cursor::new(data));
    let _ = fat::read_root_files(&mut Cursor::new(data), MAX_FILE);
    let _ = fat::read_all_files(&mut Cursor::new(data), MAX_FILE);
});
