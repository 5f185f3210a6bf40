//! Helpers shared by the integration test crates (`mod common;` in each): a snapshot of a
//! directory tree, the byte surgery the ISO9660 and FAT tests do on images, and the lookup
//! of the external tools the tests compare against.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Every path under a root (relative to it) with its mode and contents (a symlink's
/// target, nothing for a directory).
pub type Tree = BTreeMap<PathBuf, (u32, Vec<u8>)>;

/// The tree under `root`, symlinks not followed.
pub fn snapshot(root: &Path) -> Tree {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let data = if m.file_type().is_symlink() {
                std::fs::read_link(&p)
                    .unwrap()
                    .into_os_string()
                    .into_encoded_bytes()
            } else if m.is_dir() {
                stack.push(p.clone());
                Vec::new()
            } else {
                std::fs::read(&p).unwrap()
            };
            out.insert(
                p.strip_prefix(root).unwrap().to_path_buf(),
                (m.mode(), data),
            );
        }
    }
    out
}

/// An ISO9660 both-endian 32-bit field.
pub fn both32(v: u32) -> [u8; 8] {
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&v.to_le_bytes());
    b[4..].copy_from_slice(&v.to_be_bytes());
    b
}

/// Make the Rock Ridge continuation area of the `CE` entry at `ce` start with a `CE` that
/// points at that same area (and shrink the first `CE` to that one entry): a `CE` loop.
pub fn ce_pointing_at_itself(img: &mut [u8], ce: usize) {
    let block = u32::from_le_bytes(img[ce + 4..ce + 8].try_into().unwrap());
    let off = u32::from_le_bytes(img[ce + 12..ce + 16].try_into().unwrap());
    let area = block as usize * 2048 + off as usize;
    let mut e = b"CE\x1c\x01".to_vec();
    e.extend_from_slice(&both32(block));
    e.extend_from_slice(&both32(off));
    e.extend_from_slice(&both32(28));
    img[area..area + 28].copy_from_slice(&e);
    img[ce + 20..ce + 28].copy_from_slice(&both32(28));
}

/// Set FAT12 entry `cluster` to `value` in the FAT that starts at byte `fat_at`.
pub fn set_fat12(img: &mut [u8], fat_at: usize, cluster: usize, value: u16) {
    let off = fat_at + cluster + cluster / 2;
    let cur = u16::from_le_bytes([img[off], img[off + 1]]);
    let new = if cluster.is_multiple_of(2) {
        (cur & 0xF000) | value
    } else {
        (cur & 0x000F) | (value << 4)
    };
    img[off..off + 2].copy_from_slice(&new.to_le_bytes());
}

/// Whether the external `tool` is installed (PATH, /usr/sbin, /sbin). A missing tool skips
/// its check loudly, or fails the test when `CI` or `CI_AGENT_REQUIRE_TOOLS` is set
/// (`scripts/test.sh` sets it after checking `scripts/tools.tsv`), so a run that is meant
/// to compare against every tool never passes without one.
pub fn have(tool: &str) -> bool {
    if tool_path(tool).is_absolute() {
        return true;
    }
    if std::env::var_os("CI").is_some() || std::env::var_os("CI_AGENT_REQUIRE_TOOLS").is_some() {
        panic!("{tool} is not installed; scripts/install-deps.sh installs it (scripts/tools.tsv)");
    }
    eprintln!("\n*** SKIPPED: {tool} is not installed; this test did not run ***\n");
    false
}

/// The absolute path of `tool` (PATH, then /usr/sbin and /sbin), or the bare name when it
/// is nowhere.
pub fn tool_path(tool: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|d| d.join(tool))
        .find(|p| p.is_absolute() && p.is_file())
        .unwrap_or_else(|| PathBuf::from(tool))
}

/// The directory to put on PYTHONPATH for cloud-init's own code: Debian's `cloud-init`
/// package unpacked (never installed) by `tests/cloudinit/fetch.sh`.
pub fn cloudinit_pythonpath() -> String {
    let fetch = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cloudinit/fetch.sh");
    let out = std::process::Command::new("bash")
        .arg(fetch)
        .output()
        .expect("running fetch.sh");
    assert!(
        out.status.success(),
        "tests/cloudinit/fetch.sh failed (needs apt sources and dpkg-deb):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}
