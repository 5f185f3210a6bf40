//! vfat NoCloud seeds (`CIDATA` disks, as `cloud-localds -f vfat` makes them): the label
//! probe and root-file reader the agent uses on a raw block device, and the FAT12 writer
//! `ci-seed` uses.
//!
//! Reading and writing go through the `fatfs` crate (names, long-file-name entries, data).
//! `fatfs` needs `Read + Write + Seek`, so the reader wraps the device in [`ReadOnlyDisk`],
//! whose writes fail and whose reads are capped at a budget proportional to the image
//! size, so no bug or loop inside the crate can spin forever on a hostile image.
//!
//! Why we validate before `fatfs` sees the image: `fatfs` 0.3 does BPB arithmetic in
//! unchecked `u32` (`fats * sectors_per_fat`, `sectors_per_fat * bytes_per_sector * 8`,
//! `cluster - 2`), which panics in debug builds (and wraps in release) on crafted values,
//! and it follows FAT chains without loop detection (a directory whose chain loops is
//! iterated forever). So [`read_root_files`] first checks the boot sector with checked
//! arithmetic against the image size, then walks, with its own bounded code, the raw
//! directory entries and the FAT chain of every directory and file `fatfs` will touch
//! (cluster numbers in range, no loops, chains long enough for the size). Only then is the
//! image handed to `fatfs`. The label probe ([`volume_label`]) uses only the checked code.

use std::collections::HashSet;
use std::io::{self, Read, Seek, SeekFrom, Write};

/// What can go wrong with a FAT image. Carried inside `io::Error` (kind `InvalidData`)
/// by the `io::Result` functions, so `?` into `anyhow` keeps the message, and callers can
/// `downcast` to it.
#[derive(Debug, thiserror::Error)]
pub enum FatError {
    #[error("not a FAT file system: {0}")]
    NotFat(String),
    #[error("bad FAT boot sector: {0}")]
    BadBootSector(String),
    #[error("image truncated: {what} needs bytes up to {end}, image has {size} bytes")]
    Truncated { what: String, end: u64, size: u64 },
    #[error("bad FAT cluster chain for {name:?}: {reason}")]
    BadChain { name: String, reason: String },
    #[error("bad directory entry in {dir:?}: {reason}")]
    BadEntry { dir: String, reason: String },
    #[error("file {name:?} is {size} bytes, more than the limit of {limit} bytes")]
    FileTooLarge { name: String, size: u64, limit: u64 },
    #[error(transparent)]
    SeedTooLarge(#[from] crate::formats::SeedTooLarge),
    #[error("read budget of {0} bytes exhausted: the image makes the FAT driver loop")]
    ReadBudget(u64),
    #[error("cannot write FAT image: {0}")]
    InvalidInput(String),
}

impl From<FatError> for io::Error {
    fn from(e: FatError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }
}

/// FAT variant, decided by the cluster count as the specification says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FatKind {
    Fat12,
    Fat16,
    Fat32,
}

/// Geometry from a checked boot sector (all values in range for the image).
#[derive(Debug, Clone)]
struct Geometry {
    kind: FatKind,
    cluster_bytes: u64,
    /// Byte offset of the first FAT.
    fat_start: u64,
    /// FAT12/16: byte range of the fixed root directory.
    root_start: u64,
    root_bytes: u64,
    /// FAT32: first cluster of the root directory.
    root_cluster: u32,
    data_start: u64,
    /// Number of data clusters (valid cluster numbers are 2..clusters+2).
    clusters: u32,
    /// Label from the extended BPB (None when absent or `NO NAME`).
    bpb_label: Option<String>,
}

fn le16(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 2)
        .map_or(0, |s| u64::from(u16::from_le_bytes([s[0], s[1]])))
}

fn le32(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 4).map_or(0, |s| {
        u64::from(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    })
}

fn trim_label(raw: &[u8]) -> Option<String> {
    let end = raw.iter().rposition(|&b| b != b' ' && b != 0)? + 1;
    let s: String = raw[..end]
        .iter()
        .map(|&b| if b.is_ascii() { b as char } else { '\u{FFFD}' })
        .collect();
    Some(s)
}

/// Check the boot sector. `NotFat` for what does not look like FAT at all (the probe
/// answers `None`), `BadBootSector`/`Truncated` for a FAT-looking but inconsistent one.
fn parse_boot(b: &[u8], image_size: u64) -> Result<Geometry, FatError> {
    let not = |m: &str| Err(FatError::NotFat(m.to_string()));
    if b.len() < 512 {
        return not("shorter than one sector");
    }
    if b[510] != 0x55 || b[511] != 0xAA {
        return not("no 55 AA boot signature");
    }
    if b[0] != 0xEB && b[0] != 0xE9 {
        return not("no jump instruction at byte 0");
    }
    let bps = le16(b, 11);
    let spc = u64::from(b[13]);
    let reserved = le16(b, 14);
    let fats = u64::from(b[16]);
    let root_entries = le16(b, 17);
    let total16 = le16(b, 19);
    let media = b[21];
    let fat16_size = le16(b, 22);
    let total32 = le32(b, 32);
    if !(512..=4096).contains(&bps) || !bps.is_power_of_two() {
        return not("bytes per sector not a power of two in 512..=4096");
    }
    if spc == 0 || !spc.is_power_of_two() {
        return not("sectors per cluster not a power of two");
    }
    if media != 0xF0 && media < 0xF8 {
        return not("bad media byte");
    }
    if fats == 0 || reserved == 0 {
        return not("no FATs or no reserved sectors");
    }
    let bad = |m: String| Err(FatError::BadBootSector(m));
    let is32 = fat16_size == 0;
    let fat_sectors = if is32 { le32(b, 36) } else { fat16_size };
    if fat_sectors == 0 {
        return bad("FAT size is 0".into());
    }
    if fats > 4 {
        return bad(format!("{fats} FATs"));
    }
    let total = if total16 != 0 { total16 } else { total32 };
    if total == 0 {
        return bad("total sector count is 0".into());
    }
    if is32 && root_entries != 0 {
        return bad("FAT32 with a fixed root directory".into());
    }
    if !is32 && root_entries == 0 {
        return bad("FAT12/16 without root directory entries".into());
    }
    // All in u64: no value here can overflow (each factor is at most 32 bits).
    let root_sectors = (root_entries * 32).div_ceil(bps);
    let first_data = reserved + fats * fat_sectors + root_sectors;
    if first_data >= total {
        return bad(format!(
            "data area starts at sector {first_data}, past the volume's {total} sectors"
        ));
    }
    let end = total * bps;
    if end > image_size {
        return Err(FatError::Truncated {
            what: format!("the volume ({total} sectors of {bps} bytes)"),
            end,
            size: image_size,
        });
    }
    let clusters = (total - first_data) / spc;
    let kind = if clusters < 4085 {
        FatKind::Fat12
    } else if clusters < 65525 {
        FatKind::Fat16
    } else {
        FatKind::Fat32
    };
    if is32 != (kind == FatKind::Fat32) {
        return bad(format!(
            "{clusters} clusters contradict the boot sector's {} layout",
            if is32 { "FAT32" } else { "FAT12/16" }
        ));
    }
    if clusters == 0 || clusters > 0x0FFF_FFF5 {
        return bad(format!("{clusters} clusters"));
    }
    let bits: u64 = match kind {
        FatKind::Fat12 => 12,
        FatKind::Fat16 => 16,
        FatKind::Fat32 => 32,
    };
    let fat_bytes = fat_sectors * bps;
    if (clusters + 2) * bits > fat_bytes * 8 {
        return bad(format!(
            "FAT of {fat_bytes} bytes is too small for {clusters} clusters"
        ));
    }
    // fatfs computes `sectors_per_fat * bytes_per_sector * 8` in u32.
    if fat_bytes * 8 > u64::from(u32::MAX) {
        return bad(format!("FAT of {fat_bytes} bytes is too large"));
    }
    // fatfs requires fs_version 0 and FSInfo/backup inside the reserved area.
    if is32 {
        if le16(b, 42) != 0 {
            return bad("unknown FAT32 version".into());
        }
        let fs_info = le16(b, 48);
        let backup = le16(b, 50);
        if fs_info >= reserved || backup >= reserved {
            return bad("FSInfo or backup boot sector outside the reserved area".into());
        }
    }
    let (sig_at, label_at) = if is32 { (66, 71) } else { (38, 43) };
    let bpb_label = if b[sig_at] == 0x29 || b[sig_at] == 0x28 {
        trim_label(&b[label_at..label_at + 11]).filter(|l| l != "NO NAME")
    } else {
        None
    };
    let root_cluster = if is32 { le32(b, 44) as u32 } else { 0 };
    if is32 && !(2..clusters + 2).contains(&u64::from(root_cluster)) {
        return bad(format!(
            "root directory cluster {root_cluster} out of range"
        ));
    }
    Ok(Geometry {
        kind,
        cluster_bytes: bps * spc,
        fat_start: reserved * bps,
        root_start: (reserved + fats * fat_sectors) * bps,
        root_bytes: root_sectors * bps,
        root_cluster,
        data_start: first_data * bps,
        clusters: clusters as u32,
        bpb_label,
    })
}

/// A raw 32-byte directory entry, parsed.
#[derive(Debug, Clone)]
struct RawEntry {
    short: [u8; 11],
    attr: u8,
    cluster: u32,
    size: u32,
}

const ATTR_VOLUME: u8 = 0x08;
const ATTR_DIR: u8 = 0x10;
const ATTR_LFN: u8 = 0x0F;

/// Largest directory walked (65536 entries, the FAT limit).
const MAX_DIR_BYTES: u64 = 65536 * 32;

/// Bounded raw access to the volume: FAT entries, directory bytes, chains.
struct Volume<'r, R> {
    r: &'r mut R,
    g: Geometry,
    /// FAT entries we may still read: twice the cluster count (plus slack) is enough for
    /// any sound image; cross-linked chains walked over and over exhaust it.
    hops_left: u64,
}

impl<'r, R> Volume<'r, R> {
    fn new(r: &'r mut R, g: Geometry) -> Self {
        let hops_left = u64::from(g.clusters) * 2 + 1024;
        Volume { r, g, hops_left }
    }
}

impl<R: Read + Seek> Volume<'_, R> {
    fn read_at(&mut self, at: u64, len: usize) -> io::Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        self.r.seek(SeekFrom::Start(at))?;
        self.r.read_exact(&mut buf)?;
        Ok(buf)
    }

    fn fat_entry(&mut self, c: u32) -> io::Result<u32> {
        if self.hops_left == 0 {
            return Err(FatError::BadChain {
                name: format!("cluster {c}"),
                reason: "cluster chains add up to more than the volume (cross-linked)".into(),
            }
            .into());
        }
        self.hops_left -= 1;
        let c = u64::from(c);
        Ok(match self.g.kind {
            FatKind::Fat12 => {
                let off = c + c / 2;
                let b = self.read_at(self.g.fat_start + off, 2)?;
                let v = u32::from(u16::from_le_bytes([b[0], b[1]]));
                if c % 2 == 0 {
                    v & 0xFFF
                } else {
                    v >> 4
                }
            }
            FatKind::Fat16 => {
                let b = self.read_at(self.g.fat_start + c * 2, 2)?;
                u32::from(u16::from_le_bytes([b[0], b[1]]))
            }
            FatKind::Fat32 => {
                let b = self.read_at(self.g.fat_start + c * 4, 4)?;
                u32::from_le_bytes([b[0], b[1], b[2], b[3]]) & 0x0FFF_FFFF
            }
        })
    }

    fn is_eoc(&self, v: u32) -> bool {
        match self.g.kind {
            FatKind::Fat12 => v >= 0xFF8,
            FatKind::Fat16 => v >= 0xFFF8,
            FatKind::Fat32 => v >= 0x0FFF_FFF8,
        }
    }

    fn in_range(&self, c: u32) -> bool {
        c >= 2 && u64::from(c) < u64::from(self.g.clusters) + 2
    }

    /// The cluster chain from `first`: every cluster in range, no repeats, at most `max`
    /// clusters (`exact`: exactly `max`, as a file of that size needs).
    fn chain(
        &mut self,
        first: u32,
        max: u64,
        exact: bool,
        name: &str,
    ) -> Result<Vec<u32>, io::Error> {
        let bad = |reason: String| -> io::Error {
            FatError::BadChain {
                name: name.to_string(),
                reason,
            }
            .into()
        };
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut c = first;
        loop {
            if !self.in_range(c) {
                return Err(bad(format!(
                    "cluster {c} out of range 2..{}",
                    u64::from(self.g.clusters) + 2
                )));
            }
            if !seen.insert(c) {
                return Err(bad(format!("cluster {c} appears twice (loop)")));
            }
            out.push(c);
            if out.len() as u64 == max && exact {
                return Ok(out);
            }
            if out.len() as u64 > max {
                return Err(bad(format!("longer than {max} clusters")));
            }
            let next = self.fat_entry(c)?;
            if self.is_eoc(next) {
                break;
            }
            c = next;
        }
        if exact && (out.len() as u64) < max {
            return Err(bad(format!("{} clusters, the size needs {max}", out.len())));
        }
        Ok(out)
    }

    /// Raw bytes of a directory: the fixed root (`None`) or a cluster chain.
    fn dir_bytes(&mut self, first: Option<u32>, name: &str) -> Result<Vec<u8>, io::Error> {
        match first {
            None if self.g.kind != FatKind::Fat32 => {
                let (s, n) = (self.g.root_start, self.g.root_bytes);
                self.read_at(s, n.min(MAX_DIR_BYTES) as usize)
            }
            _ => {
                let first = first.unwrap_or(self.g.root_cluster);
                let max = MAX_DIR_BYTES.div_ceil(self.g.cluster_bytes);
                let chain = self.chain(first, max, false, name)?;
                let mut out = Vec::new();
                for c in chain {
                    let at = self.g.data_start + u64::from(c - 2) * self.g.cluster_bytes;
                    out.extend(self.read_at(at, self.g.cluster_bytes as usize)?);
                }
                Ok(out)
            }
        }
    }

    /// Entries of a directory (no LFN parts, no deleted ones, no `.`/`..`).
    fn entries(&mut self, first: Option<u32>, name: &str) -> Result<Vec<RawEntry>, io::Error> {
        let bytes = self.dir_bytes(first, name)?;
        let mut out = Vec::new();
        for e in bytes.chunks_exact(32) {
            if e[0] == 0 {
                break;
            }
            if e[0] == 0xE5 || e[11] == ATTR_LFN {
                continue;
            }
            let mut short = [0u8; 11];
            short.copy_from_slice(&e[..11]);
            if &short == b".          " || &short == b"..         " {
                continue;
            }
            let hi = if self.g.kind == FatKind::Fat32 {
                le16(e, 20) as u32
            } else {
                0
            };
            out.push(RawEntry {
                short,
                attr: e[11],
                cluster: (hi << 16) | le16(e, 26) as u32,
                size: le32(e, 28) as u32,
            });
        }
        Ok(out)
    }

    /// Check what `fatfs` will follow for the entries of one directory: files' chains
    /// (exact length for their size) and subdirectories' first clusters.
    fn check_entries(&mut self, entries: &[RawEntry], dir: &str) -> Result<(), io::Error> {
        for e in entries {
            if e.attr & ATTR_VOLUME != 0 {
                continue;
            }
            let name = format!("{dir}/{}", String::from_utf8_lossy(&e.short).trim_end());
            if e.attr & ATTR_DIR != 0 {
                if !self.in_range(e.cluster) {
                    return Err(FatError::BadEntry {
                        dir: dir.to_string(),
                        reason: format!("directory {name:?} starts at cluster {}", e.cluster),
                    }
                    .into());
                }
            } else if e.size == 0 {
                if e.cluster != 0 && !self.in_range(e.cluster) {
                    return Err(FatError::BadEntry {
                        dir: dir.to_string(),
                        reason: format!("empty file {name:?} points at cluster {}", e.cluster),
                    }
                    .into());
                }
            } else {
                let need = u64::from(e.size).div_ceil(self.g.cluster_bytes);
                self.chain(e.cluster, need, true, &name)?;
            }
        }
        Ok(())
    }
}

fn image_size<R: Seek>(r: &mut R) -> io::Result<u64> {
    r.seek(SeekFrom::End(0))
}

fn boot_sector<R: Read + Seek>(r: &mut R) -> io::Result<Option<Vec<u8>>> {
    let mut b = vec![0u8; 512];
    r.seek(SeekFrom::Start(0))?;
    match r.read_exact(&mut b) {
        Ok(()) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(e),
    }
}

/// FAT volume label (boot sector, or the root volume-label entry), trimmed; `Ok(None)`
/// when this is not a (consistent) FAT file system. The root directory entry wins over
/// the boot sector, like blkid (Windows renames only update the entry). Case is left as
/// stored: comparing case-insensitively is the caller's job.
pub fn volume_label<R: Read + Seek>(r: &mut R) -> io::Result<Option<String>> {
    let size = image_size(r)?;
    let Some(b) = boot_sector(r)? else {
        return Ok(None);
    };
    let g = match parse_boot(&b, size) {
        Ok(g) => g,
        Err(_) => return Ok(None),
    };
    let bpb_label = g.bpb_label.clone();
    let mut v = Volume::new(r, g);
    let root_label = match v.entries(None, "") {
        Ok(entries) => entries
            .iter()
            .find(|e| e.attr & ATTR_VOLUME != 0 && e.attr & ATTR_DIR == 0)
            .and_then(|e| trim_label(&e.short)),
        Err(e) if e.kind() == io::ErrorKind::InvalidData => None,
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => None,
        Err(e) => return Err(e),
    };
    Ok(root_label.or(bpb_label))
}

/// Adapter giving `fatfs` the `Read + Write + Seek` it asks for over a reader: writes
/// fail, and reads stop with [`FatError::ReadBudget`] after `budget` bytes.
pub struct ReadOnlyDisk<'r, R> {
    inner: &'r mut R,
    budget: u64,
    used: u64,
}

impl<'r, R> ReadOnlyDisk<'r, R> {
    pub fn new(inner: &'r mut R, budget: u64) -> Self {
        ReadOnlyDisk {
            inner,
            budget,
            used: 0,
        }
    }

    /// Bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.used
    }
}

impl<R: Read> Read for ReadOnlyDisk<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.budget.saturating_sub(self.used);
        if left == 0 && !buf.is_empty() {
            return Err(FatError::ReadBudget(self.budget).into());
        }
        let n = (buf.len() as u64).min(left) as usize;
        let got = self.inner.read(&mut buf[..n])?;
        self.used += got as u64;
        Ok(got)
    }
}

impl<R> Write for ReadOnlyDisk<'_, R> {
    fn write(&mut self, _buf: &[u8]) -> io::Result<usize> {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "the seed device is opened read-only",
        ))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<R: Seek> Seek for ReadOnlyDisk<'_, R> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.inner.seek(pos)
    }
}

/// Regular files of the root directory, each at most `max_file` bytes (a larger one is an
/// error naming the file and the limit). Names are the long names when present.
pub fn read_root_files<R: Read + Seek>(
    r: &mut R,
    max_file: u64,
) -> io::Result<Vec<(String, Vec<u8>)>> {
    read_files(r, max_file, u64::MAX, false)
}

/// [`read_root_files`] with a budget for the whole seed: the files read together are at
/// most `max_total` bytes (checked before each file is read).
pub fn read_root_files_within<R: Read + Seek>(
    r: &mut R,
    max_file: u64,
    max_total: u64,
) -> io::Result<Vec<(String, Vec<u8>)>> {
    read_files(r, max_file, max_total, false)
}

/// Every regular file of the volume, `/`-separated paths, sorted (for round-trip tests
/// and `ci-seed` checks).
pub fn read_all_files<R: Read + Seek>(
    r: &mut R,
    max_file: u64,
) -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut v = read_files(r, max_file, u64::MAX, true)?;
    v.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(v)
}

fn read_files<R: Read + Seek>(
    r: &mut R,
    max_file: u64,
    max_total: u64,
    recursive: bool,
) -> io::Result<Vec<(String, Vec<u8>)>> {
    let size = image_size(r)?;
    let Some(b) = boot_sector(r)? else {
        return Err(
            FatError::NotFat(format!("image is {size} bytes, shorter than a boot sector")).into(),
        );
    };
    let g = parse_boot(&b, size)?;
    // Validate the root (and, when walking, every directory) before fatfs sees it. The
    // walk below mirrors fatfs's: a directory is checked right before fatfs lists it.
    {
        let mut v = Volume::new(&mut *r, g.clone());
        let entries = v.entries(None, "")?;
        v.check_entries(&entries, "")?;
        if recursive {
            let mut seen: HashSet<u32> = HashSet::new();
            let mut stack: Vec<(String, Vec<RawEntry>)> = vec![(String::new(), entries)];
            while let Some((path, entries)) = stack.pop() {
                for e in entries
                    .iter()
                    .filter(|e| e.attr & ATTR_DIR != 0 && e.attr & ATTR_VOLUME == 0)
                {
                    let name = format!("{path}/{}", String::from_utf8_lossy(&e.short).trim_end());
                    if !seen.insert(e.cluster) {
                        return Err(FatError::BadChain {
                            name,
                            reason: "directory reached twice (loop)".into(),
                        }
                        .into());
                    }
                    let sub = v.entries(Some(e.cluster), &name)?;
                    v.check_entries(&sub, &name)?;
                    stack.push((name, sub));
                }
            }
        }
    }
    let budget = size.saturating_mul(4).saturating_add(1 << 20);
    r.seek(SeekFrom::Start(0))?;
    let disk = ReadOnlyDisk::new(r, budget);
    let fs = fatfs::FileSystem::new(disk, fatfs::FsOptions::new())?;
    let mut out = Vec::new();
    let mut seed_budget = crate::formats::SeedBudget::new(max_total);
    let mut stack = vec![(String::new(), fs.root_dir())];
    while let Some((path, dir)) = stack.pop() {
        for e in dir.iter() {
            let e = e?;
            let name = e.file_name();
            if name == "." || name == ".." {
                continue;
            }
            if name.contains('/') || name.contains('\0') || name.is_empty() {
                return Err(FatError::BadEntry {
                    dir: path.clone(),
                    reason: format!("file name {name:?} contains '/' or NUL"),
                }
                .into());
            }
            let full = if path.is_empty() {
                name
            } else {
                format!("{path}/{name}")
            };
            if e.attributes().contains(fatfs::FileAttributes::VOLUME_ID) {
                continue;
            }
            if e.is_dir() {
                if recursive {
                    stack.push((full, e.to_dir()));
                }
                continue;
            }
            let len = e.len();
            if len > max_file {
                return Err(FatError::FileTooLarge {
                    name: full,
                    size: len,
                    limit: max_file,
                }
                .into());
            }
            seed_budget.take(&full, len).map_err(FatError::from)?;
            let mut data = vec![0u8; len as usize];
            e.to_file().read_exact(&mut data).map_err(|err| {
                io::Error::new(
                    err.kind(),
                    format!("reading {full:?} from the FAT image: {err}"),
                )
            })?;
            out.push((full, data));
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Writer.

/// Every timestamp the writer sets: 1980-01-01 00:00:00, the FAT epoch (no wall clock, so
/// the same files give the same bytes).
#[derive(Debug)]
struct FatEpoch;

impl fatfs::TimeProvider for FatEpoch {
    fn get_current_date(&self) -> fatfs::Date {
        fatfs::Date {
            year: 1980,
            month: 1,
            day: 1,
        }
    }
    fn get_current_date_time(&self) -> fatfs::DateTime {
        fatfs::DateTime {
            date: self.get_current_date(),
            time: fatfs::Time {
                hour: 0,
                min: 0,
                sec: 0,
                millis: 0,
            },
        }
    }
}

static FAT_EPOCH: FatEpoch = FatEpoch;

/// Smallest image we make (what cloud-localds truncates its vfat seed to).
const MIN_IMAGE: u64 = 128 << 10;
/// FAT12's cluster limit, with a margin.
const FAT12_MAX_CLUSTERS: u64 = 4000;

fn fnv1a(h: u32, bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .fold(h, |h, &b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
}

fn check_label(label: &str) -> Result<[u8; 11], FatError> {
    if label.is_empty() || label.len() > 11 {
        return Err(FatError::InvalidInput(format!(
            "label {label:?} must be 1 to 11 characters"
        )));
    }
    if !label
        .bytes()
        .all(|b| b.is_ascii_graphic() && !b"\"*+,./:;<=>?[\\]|".contains(&b) || b == b' ')
    {
        return Err(FatError::InvalidInput(format!(
            "label {label:?} has characters FAT labels cannot hold"
        )));
    }
    let mut out = [b' '; 11];
    out[..label.len()].copy_from_slice(label.as_bytes());
    Ok(out)
}

/// A FAT12 image holding `files` (`/` for subdirectories, created as needed), labelled
/// `label` in the boot sector and in a root volume-label entry, as `mkfs.vfat -n LABEL` +
/// `mcopy` make; sized to fit (at least 128 KiB). Same input, same bytes: timestamps are
/// the FAT epoch and the volume serial is a hash of the content. Paths that equal another
/// but for case are refused (FAT ignores case).
pub fn write_image(files: &[(String, Vec<u8>)], label: &str) -> io::Result<Vec<u8>> {
    let label11 = check_label(label)?;
    let mut sorted: Vec<&(String, Vec<u8>)> = files.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    for (p, _) in &sorted {
        if p.split('/')
            .any(|c| c.is_empty() || c == "." || c == ".." || c.contains('\0'))
        {
            return Err(FatError::InvalidInput(format!("bad path {p:?}")).into());
        }
    }
    check_case_clashes(&sorted)?;
    let serial = sorted
        .iter()
        .fold(fnv1a(0x811C_9DC5, label.as_bytes()), |h, (p, d)| {
            fnv1a(fnv1a(h, p.as_bytes()), d)
        });

    // Estimate: data clusters for files and directories, and root entries (LFN parts).
    let mut dirs: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    let mut root_entries: u64 = 1; // the label
    for (p, _) in &sorted {
        let comps: Vec<&str> = p.split('/').collect();
        for i in 0..comps.len() {
            let parent = comps[..i].join("/");
            let entry_slots = 1 + (comps[i].encode_utf16().count() as u64).div_ceil(13);
            if i == 0 {
                if i == comps.len() - 1 || !dirs.contains_key(comps[0]) {
                    root_entries += entry_slots;
                }
            } else if i == comps.len() - 1 || !dirs.contains_key(&comps[..=i].join("/")) {
                *dirs.entry(parent).or_insert(2) += entry_slots;
            }
            if i < comps.len() - 1 {
                dirs.entry(comps[..=i].join("/")).or_insert(2);
            }
        }
    }
    let root_entries = root_entries.max(512).next_multiple_of(16);
    if root_entries > 65520 {
        return Err(FatError::InvalidInput("too many files in the root directory".into()).into());
    }
    let mut cluster = 512u64;
    let mut clusters = loop {
        let need: u64 = sorted
            .iter()
            .map(|(_, d)| (d.len() as u64).div_ceil(cluster))
            .sum::<u64>()
            + dirs
                .values()
                .map(|n| (n * 32).div_ceil(cluster))
                .sum::<u64>();
        let with_slack = need + need / 8 + 8;
        if with_slack <= FAT12_MAX_CLUSTERS {
            break with_slack;
        }
        if cluster >= 32768 {
            return Err(too_large());
        }
        cluster *= 2;
    };
    // The estimate has slack; should fatfs still run out of space, grow and try again.
    for _ in 0..8 {
        match build_fat12(&sorted, label11, serial, cluster, clusters, root_entries) {
            Err(e) if e.to_string().contains("space") => {
                clusters *= 2;
                if clusters > FAT12_MAX_CLUSTERS {
                    if cluster >= 32768 {
                        return Err(too_large());
                    }
                    cluster *= 2;
                    clusters /= 2;
                }
            }
            other => return other,
        }
    }
    Err(too_large())
}

/// FAT names are case-insensitive, and `fatfs`'s `create_file` opens an existing entry
/// whose name matches ignoring case, so a second `config` would silently overwrite
/// `CONFIG`. Refuse paths (files, and the directories they imply) that equal another but
/// for case, with the same case folding as `fatfs` (`char::to_uppercase`), and files given
/// twice.
fn check_case_clashes(sorted: &[&(String, Vec<u8>)]) -> Result<(), FatError> {
    let fold = |s: &str| s.chars().flat_map(char::to_uppercase).collect::<String>();
    // Folded path → (path as given, is a directory).
    let mut seen: std::collections::HashMap<String, (&str, bool)> =
        std::collections::HashMap::new();
    for (p, _) in sorted {
        let dirs = p.match_indices('/').map(|(i, _)| (&p[..i], true));
        for (path, is_dir) in dirs.chain([(p.as_str(), false)]) {
            match seen.get(&fold(path)) {
                None => {
                    seen.insert(fold(path), (path, is_dir));
                }
                Some(&(prev, prev_dir)) if prev == path && prev_dir && is_dir => {}
                Some(&(prev, _)) if prev == path => {
                    return Err(FatError::InvalidInput(format!(
                        "{path:?} is given twice (or is both a file and a directory)"
                    )));
                }
                Some(&(prev, _)) => {
                    return Err(FatError::InvalidInput(format!(
                        "{path:?} and {prev:?} differ only in case (FAT names ignore case)"
                    )));
                }
            }
        }
    }
    Ok(())
}

fn too_large() -> io::Error {
    FatError::InvalidInput(
        "content too large for a FAT12 seed image: about 4000 clusters, so at most about \
         128 MiB of data and fewer than 4000 non-empty files or directories"
            .into(),
    )
    .into()
}

fn build_fat12(
    sorted: &[&(String, Vec<u8>)],
    label11: [u8; 11],
    serial: u32,
    cluster: u64,
    clusters: u64,
    root_entries: u64,
) -> io::Result<Vec<u8>> {
    let fat_sectors = ((clusters + 2) * 3).div_ceil(2).div_ceil(512);
    let sectors = 1 + 2 * fat_sectors + root_entries * 32 / 512 + clusters * (cluster / 512);
    let bytes = (sectors * 512)
        .max(MIN_IMAGE)
        .next_multiple_of(cluster.max(512));

    let mut disk = io::Cursor::new(vec![0u8; bytes as usize]);
    let opts = fatfs::FormatVolumeOptions::new()
        .fat_type(fatfs::FatType::Fat12)
        .bytes_per_cluster(cluster as u32)
        .max_root_dir_entries(root_entries as u16)
        .volume_id(serial)
        .volume_label(label11);
    fatfs::format_volume(&mut disk, opts)?;
    // The root volume-label entry (fatfs writes only the boot-sector label): first slot
    // of the fixed root directory, attribute 0x08, date 1980-01-01 (0x0021).
    {
        let img = disk.get_mut();
        let g = parse_boot(img, bytes).map_err(io::Error::from)?;
        let at = g.root_start as usize;
        let e = &mut img[at..at + 32];
        e[..11].copy_from_slice(&label11);
        e[11] = ATTR_VOLUME;
        e[24..26].copy_from_slice(&0x0021u16.to_le_bytes());
    }
    disk.set_position(0);
    {
        let fs =
            fatfs::FileSystem::new(&mut disk, fatfs::FsOptions::new().time_provider(&FAT_EPOCH))?;
        let root = fs.root_dir();
        for (p, data) in sorted.iter().map(|f| (&f.0, &f.1)) {
            let ctx = |e: io::Error| {
                io::Error::new(e.kind(), format!("writing {p:?} to the FAT image: {e}"))
            };
            if let Some((parent, _)) = p.rsplit_once('/') {
                let mut cur = String::new();
                for c in parent.split('/') {
                    if !cur.is_empty() {
                        cur.push('/');
                    }
                    cur.push_str(c);
                    if root.open_dir(&cur).is_err() {
                        root.create_dir(&cur).map_err(ctx)?;
                    }
                }
            }
            let mut f = root.create_file(p).map_err(ctx)?;
            f.truncate().map_err(ctx)?;
            f.write_all(data).map_err(ctx)?;
            f.flush().map_err(ctx)?;
        }
        drop(root);
        fs.unmount()?;
    }
    let mut img = disk.into_inner();
    drop_dot_lfn_entries(&mut img)?;
    Ok(img)
}

/// fatfs 0.3 writes long-name entries in front of the `.` and `..` entries of a new
/// directory; fsck.vfat and other drivers expect `.` and `..` in the first two slots. Drop
/// those long-name entries and move the rest of each subdirectory up.
fn drop_dot_lfn_entries(img: &mut [u8]) -> io::Result<()> {
    let size = img.len() as u64;
    let g = parse_boot(img, size)?;
    // Collect every subdirectory's clusters (read-only pass).
    let mut dirs: Vec<Vec<u32>> = Vec::new();
    {
        let mut cur = io::Cursor::new(&*img);
        let mut v = Volume::new(&mut cur, g.clone());
        let mut stack = vec![v.entries(None, "")?];
        let mut seen = HashSet::new();
        while let Some(entries) = stack.pop() {
            for e in entries
                .iter()
                .filter(|e| e.attr & ATTR_DIR != 0 && e.attr & ATTR_VOLUME == 0)
            {
                if !seen.insert(e.cluster) {
                    continue;
                }
                let max = MAX_DIR_BYTES.div_ceil(g.cluster_bytes);
                dirs.push(v.chain(e.cluster, max, false, "subdirectory")?);
                stack.push(v.entries(Some(e.cluster), "subdirectory")?);
            }
        }
    }
    let cb = g.cluster_bytes as usize;
    for chain in dirs {
        let offsets: Vec<usize> = chain
            .iter()
            .map(|&c| (g.data_start + u64::from(c - 2) * g.cluster_bytes) as usize)
            .collect();
        let mut bytes: Vec<u8> = Vec::with_capacity(offsets.len() * cb);
        for &o in &offsets {
            bytes.extend_from_slice(&img[o..o + cb]);
        }
        let entries: Vec<&[u8]> = bytes.chunks_exact(32).collect();
        let mut kept: Vec<u8> = Vec::with_capacity(bytes.len());
        for (i, e) in entries.iter().enumerate() {
            let next_is_dot = entries
                .get(i + 1)
                .is_some_and(|n| n[0] == b'.' && n[11] != ATTR_LFN);
            if e[11] == ATTR_LFN && e[0] != 0xE5 && next_is_dot {
                continue;
            }
            kept.extend_from_slice(e);
        }
        kept.resize(bytes.len(), 0);
        for (k, &o) in offsets.iter().enumerate() {
            img[o..o + cb].copy_from_slice(&kept[k * cb..(k + 1) * cb]);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_checked() {
        assert!(check_label("CIDATA").is_ok());
        assert!(check_label("").is_err());
        assert!(check_label("TWELVE_CHARS").is_err());
        assert!(check_label("A/B").is_err());
    }

    #[test]
    fn boot_sector_rejects_junk_without_panicking() {
        assert!(matches!(
            parse_boot(&[0u8; 512], 1 << 20),
            Err(FatError::NotFat(_))
        ));
        let mut b = vec![0u8; 512];
        b[0] = 0xEB;
        b[510] = 0x55;
        b[511] = 0xAA;
        b[11..13].copy_from_slice(&512u16.to_le_bytes());
        b[13] = 1;
        b[14] = 1;
        b[16] = 255; // fats
        b[21] = 0xF8;
        b[36..40].copy_from_slice(&u32::MAX.to_le_bytes()); // FAT32 FAT size
        b[32..36].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(parse_boot(&b, u64::MAX).is_err());
    }
}
