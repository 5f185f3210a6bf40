//! NoCloud seeds on local storage: probing block devices and image files for a `cidata`
//! volume (ISO9660 or vfat, label in any case), reading one, and reading seed directories.
//!
//! Probing is cheap and never trusts device names: one 2 KiB read of sector 16 (the ISO9660
//! Primary Volume Descriptor: `CD001`, volume id at byte 40) and, if that is not ISO9660,
//! one 512-byte read of the boot sector (FAT BPB: label at byte 43 on FAT12/16, 71 on
//! FAT32). Only when a FAT boot sector says `NO NAME` is the root directory's volume-label
//! entry consulted (through [`crate::formats::fat::volume_label`]). The chosen device is then opened
//! once more and its root files read by the codec ([`crate::formats::iso9660`], [`crate::formats::fat`]).
//!
//! Scanning policy per OS:
//! - Linux: every entry of `/sys/class/block` (cdroms, virtio/SCSI/NVMe disks and their
//!   partitions), probed as `/dev/<name>`. `ram*`/`zram*` are skipped, `loop*` only probed
//!   when attached (`loop/backing_file` exists), and devices whose `size` is 0 (an empty
//!   cdrom tray) are skipped without opening them.
//! - FreeBSD: GEOM label nodes `/dev/iso9660/*` and `/dev/msdosfs/*` named `cidata` (any
//!   case), then `/dev/cd*`, `/dev/vtbd*`, `/dev/ada*`, `/dev/da*`, `/dev/nvd*`, `/dev/nda*`
//!   with their partitions (`vtbd1p1`, `da0s1`, …).
//!
//! All paths are guest paths through [`System`], so tests lay out a fake `/sys` and `/dev`
//! (image files standing in for devices) under a temporary root.

use std::io;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};

use crate::formats::userdata::Seed;
use crate::platform::{FileKind, ReadSeek, System};

/// The file systems a seed volume may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsKind {
    Iso9660,
    Vfat,
}

impl FsKind {
    /// The prefix of `Seed::source` (`iso9660:/dev/sr0`).
    pub fn name(self) -> &'static str {
        match self {
            FsKind::Iso9660 => "iso9660",
            FsKind::Vfat => "vfat",
        }
    }
}

/// True for the NoCloud volume label, in any case (`cidata`, `CIDATA`, `CiData`).
pub fn is_cidata(label: &str) -> bool {
    label.trim().eq_ignore_ascii_case("cidata")
}

/// What a device or image holds: its file system and label, or `None` (neither). The
/// codecs' own probes: one 2 KiB read of the ISO volume descriptor; for FAT the boot
/// sector, and the root directory only when the boot sector is a valid FAT one (its
/// volume-label entry wins over the boot sector's, like blkid).
pub fn probe(r: &mut dyn ReadSeek) -> io::Result<Option<(FsKind, String)>> {
    match crate::formats::iso9660::volume_id(&mut &mut *r) {
        Ok(Some(label)) => return Ok(Some((FsKind::Iso9660, label))),
        Ok(None) => {}
        // A damaged descriptor set is not a seed we can read; FAT may still be there.
        Err(crate::formats::iso9660::IsoError::Io(e)) => return Err(e),
        Err(_) => {}
    }
    Ok(crate::formats::fat::volume_label(&mut &mut *r)?.map(|label| (FsKind::Vfat, label)))
}

/// How much of a seed is read: each file, and all files together (`max_seed_file_bytes`,
/// `max_seed_bytes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeedLimits {
    pub max_file: u64,
    pub max_total: u64,
}

impl SeedLimits {
    pub fn of(config: &crate::platform::config::Config) -> Self {
        SeedLimits {
            max_file: config.max_seed_file_bytes,
            max_total: config.max_seed_bytes,
        }
    }
}

/// Read the root files of a seed volume of a known kind.
pub fn read_volume(
    sys: &dyn System,
    path: &Path,
    kind: FsKind,
    limits: SeedLimits,
) -> anyhow::Result<Seed> {
    let SeedLimits {
        max_file,
        max_total,
    } = limits;
    let mut dev = sys
        .open_device(path)
        .with_context(|| format!("opening {}", path.display()))?;
    let files = match kind {
        FsKind::Iso9660 => {
            crate::formats::iso9660::read_root_files_within(&mut dev, max_file, max_total)
                .with_context(|| format!("reading the ISO9660 seed on {}", path.display()))?
        }
        FsKind::Vfat => crate::formats::fat::read_root_files_within(&mut dev, max_file, max_total)
            .with_context(|| format!("reading the vfat seed on {}", path.display()))?,
    };
    Ok(Seed {
        source: format!("{}:{}", kind.name(), path.display()),
        files: files.into_iter().collect(),
        ..Seed::default()
    })
}

/// Probe `path` (device or image) and, when it is ISO9660 or vfat, read it whatever its
/// label (used for `--seed`, where the user named the volume). `Ok(None)`: neither.
pub fn read_image(
    sys: &dyn System,
    path: &Path,
    limits: SeedLimits,
) -> anyhow::Result<Option<Seed>> {
    let probed = {
        let mut dev = sys
            .open_device(path)
            .with_context(|| format!("opening {}", path.display()))?;
        probe(&mut dev).with_context(|| format!("probing {}", path.display()))?
    };
    match probed {
        Some((kind, label)) => {
            if !is_cidata(&label) {
                log::warn!(
                    "{}: volume label is '{label}', not 'cidata'; reading it anyway (given with --seed)",
                    path.display()
                );
            }
            read_volume(sys, path, kind, limits).map(Some)
        }
        None => Ok(None),
    }
}

/// Probe `path` and return the kind when it is a `cidata` volume. Errors (no medium,
/// permission, unreadable) mean "not a seed" and are logged at debug level.
fn probe_cidata(sys: &dyn System, path: &Path) -> Option<FsKind> {
    let result = sys.open_device(path).and_then(|mut dev| probe(&mut dev));
    match result {
        Ok(Some((kind, label))) if is_cidata(&label) => Some(kind),
        Ok(_) => None,
        Err(e) => {
            log::debug!("probing {}: {e}", path.display());
            None
        }
    }
}

/// Most files and directory levels read from a seed directory.
const MAX_DIR_FILES: usize = 1000;
const MAX_DIR_DEPTH: usize = 8;

/// Read a seed directory: root files by name, nested files as `sub/dir/name`. Symlinks
/// are not followed; each file is at most `max_file` bytes, all together `max_total`.
pub fn read_dir(sys: &dyn System, dir: &Path, limits: SeedLimits) -> anyhow::Result<Seed> {
    let SeedLimits {
        max_file,
        max_total,
    } = limits;
    let mut budget = crate::formats::SeedBudget::new(max_total);
    let mut files = std::collections::BTreeMap::new();
    let mut stack: Vec<(PathBuf, String, usize)> = vec![(dir.to_path_buf(), String::new(), 0)];
    while let Some((path, prefix, depth)) = stack.pop() {
        let names = sys
            .read_dir(&path)
            .with_context(|| format!("reading seed directory {}", path.display()))?;
        for name in names {
            let child = path.join(&name);
            let rel = format!("{prefix}{name}");
            let Some(info) = sys
                .lstat(&child)
                .with_context(|| format!("stat {}", child.display()))?
            else {
                continue;
            };
            match info.kind {
                FileKind::File => {
                    if files.len() >= MAX_DIR_FILES {
                        bail!(
                            "{}: more than {MAX_DIR_FILES} files in the seed",
                            dir.display()
                        );
                    }
                    if info.len > max_file {
                        bail!(
                            "{}: {} bytes, more than the seed file limit of {max_file} bytes",
                            child.display(),
                            info.len
                        );
                    }
                    // The file may grow after the stat: the read itself stays in budget.
                    let left = budget.left();
                    budget.take(&child.display().to_string(), info.len)?;
                    let data = sys
                        .read_file(&child, max_file.min(left))
                        .with_context(|| format!("reading {}", child.display()))?;
                    files.insert(rel, data);
                }
                FileKind::Dir if depth < MAX_DIR_DEPTH => {
                    stack.push((child, format!("{rel}/"), depth + 1));
                }
                FileKind::Dir => {
                    log::warn!(
                        "{}: deeper than {MAX_DIR_DEPTH} levels; skipped",
                        child.display()
                    )
                }
                FileKind::Symlink | FileKind::Other => {
                    log::debug!("{}: not a regular file; skipped", child.display())
                }
            }
        }
    }
    Ok(Seed {
        source: format!("dir:{}", dir.display()),
        files,
        ..Seed::default()
    })
}

/// Linux: one pass over `/sys/class/block`; the first `cidata` volume found.
pub fn scan_linux(sys: &dyn System) -> Option<(PathBuf, FsKind)> {
    let sys_block = Path::new("/sys/class/block");
    let names = sys.read_dir(sys_block).unwrap_or_default();
    for name in names {
        if name.starts_with("ram") || name.starts_with("zram") || name.contains('/') {
            continue;
        }
        let entry = sys_block.join(&name);
        if name.starts_with("loop") && !sys.exists(&entry.join("loop/backing_file")) {
            continue;
        }
        if let Ok(size) = sys.read_file(&entry.join("size"), 64) {
            if String::from_utf8_lossy(&size).trim() == "0" {
                continue;
            }
        }
        let dev = Path::new("/dev").join(&name);
        if !sys.exists(&dev) {
            continue;
        }
        if let Some(kind) = probe_cidata(sys, &dev) {
            return Some((dev, kind));
        }
    }
    None
}

/// FreeBSD device names worth probing: `cd0`, `vtbd1`, `ada0p2`, `da0s1a`, `nvd0p1`, …
fn freebsd_disk(name: &str) -> Option<usize> {
    const PREFIXES: &[&str] = &["cd", "vtbd", "ada", "da", "nvd", "nda"];
    let (rank, rest) = PREFIXES
        .iter()
        .enumerate()
        .find_map(|(i, p)| name.strip_prefix(p).map(|r| (i, r)))?;
    let unit_len = rest.bytes().take_while(u8::is_ascii_digit).count();
    if unit_len == 0 {
        return None;
    }
    let part = rest.get(unit_len..).unwrap_or_default();
    let part_ok = part.is_empty()
        || part.strip_prefix(['p', 's']).is_some_and(|p| {
            let digits = p.bytes().take_while(u8::is_ascii_digit).count();
            digits > 0
                && p.get(digits..).is_some_and(|tail| {
                    tail.is_empty()
                        || (tail.len() == 1 && tail.bytes().all(|b| (b'a'..=b'h').contains(&b)))
                })
        });
    part_ok.then_some(rank)
}

/// FreeBSD: GEOM label nodes first, then disks and their partitions.
pub fn scan_freebsd(sys: &dyn System) -> Option<(PathBuf, FsKind)> {
    for dir in ["/dev/iso9660", "/dev/msdosfs"] {
        let dir = Path::new(dir);
        for name in sys.read_dir(dir).unwrap_or_default() {
            if !is_cidata(&name) {
                continue;
            }
            let dev = dir.join(&name);
            if let Some(kind) = probe_cidata(sys, &dev) {
                return Some((dev, kind));
            }
        }
    }
    let mut disks: Vec<(usize, String)> = sys
        .read_dir(Path::new("/dev"))
        .unwrap_or_default()
        .into_iter()
        .filter_map(|n| freebsd_disk(&n).map(|rank| (rank, n)))
        .collect();
    disks.sort();
    for (_, name) in disks {
        let dev = Path::new("/dev").join(&name);
        if let Some(kind) = probe_cidata(sys, &dev) {
            return Some((dev, kind));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freebsd_names() {
        for ok in ["cd0", "vtbd1", "vtbd1p1", "ada0s1a", "da10", "nvd0p3"] {
            assert!(freebsd_disk(ok).is_some(), "{ok}");
        }
        for bad in ["cd", "vtbdx", "ada0p", "da0s1ab", "console", "null", "dax1"] {
            assert!(freebsd_disk(bad).is_none(), "{bad}");
        }
        assert!(freebsd_disk("cd0") < freebsd_disk("vtbd0"));
    }

    #[test]
    fn probes_reject_garbage() {
        let mut zeros = io::Cursor::new(vec![0u8; 40_000]);
        assert_eq!(probe(&mut zeros).unwrap(), None);
        let mut short = io::Cursor::new(vec![1u8; 10]);
        assert_eq!(probe(&mut short).unwrap(), None);
    }

    #[test]
    fn iso_pvd_label() {
        let mut img = vec![0u8; 18 * 2048];
        let pvd = &mut img[16 * 2048..17 * 2048];
        pvd[0] = 1;
        pvd[1..6].copy_from_slice(b"CD001");
        pvd[40..72].copy_from_slice(b"CIDATA                          ");
        img[17 * 2048] = 255;
        img[17 * 2048 + 1..17 * 2048 + 6].copy_from_slice(b"CD001");
        let mut c = io::Cursor::new(img);
        assert_eq!(
            probe(&mut c).unwrap(),
            Some((FsKind::Iso9660, "CIDATA".to_string()))
        );
        assert!(is_cidata("CIDATA") && is_cidata("cidata") && is_cidata("CiData"));
        assert!(!is_cidata("cidata2"));
    }
}
