//! ISO9660 reader: volume descriptors, directory records, Rock Ridge (SUSP) and Joliet,
//! over any `Read + Seek` (an image file or the cdrom block device itself, so the agent
//! never has to mount the seed).
//!
//! Name resolution is per tree, in the order cloud-init's kernels use: when the root's
//! `.` record starts with a SUSP `SP` entry the primary tree is read with Rock Ridge names
//! (`NM`; a record without `NM` falls back to its plain name); otherwise a Joliet
//! supplementary tree is read if there is one; otherwise the primary tree with plain names
//! (`;1` and a trailing `.` stripped, lowercased like Linux's default `map=normal`).
//! Lookups compare names case-insensitively.
//!
//! Hostile input: every extent is checked against the image size before it is read, every
//! directory is read at most once per walk and all directories together may not exceed the
//! image size, `CE` chains are bounded and loop-checked, names may not contain `/` or NUL
//! or be `.`/`..` (they become file names on the host), and files are read only up to the
//! caller's limit. Reads are whole sectors where the image allows, in chunks of at most
//! [`CHUNK_SECTORS`]; [`ReadStats`] counts them.

use std::collections::HashSet;
use std::io::{ErrorKind, Read, Seek, SeekFrom};

use super::{IsoError, FIRST_DESCRIPTOR, SECTOR};

/// Largest single read, in sectors (64 KiB).
pub const CHUNK_SECTORS: u64 = 32;
/// Volume descriptors looked at before giving up on finding the terminator.
const MAX_DESCRIPTORS: u64 = 64;
/// Largest directory we read (a seed's root has a handful of entries; 16 MiB is ~400k).
const MAX_DIR_BYTES: u64 = 16 << 20;
/// `CE` continuation areas followed for one directory record.
const MAX_CE_HOPS: usize = 32;
/// Largest single continuation area (SUSP keeps one inside a logical block).
const MAX_CE_BYTES: u64 = SECTOR;
/// Longest Rock Ridge name accepted (POSIX NAME_MAX is 255; leave room for odd writers).
const MAX_NAME_BYTES: usize = 1024;

const FLAG_DIR: u8 = 0x02;
const FLAG_ASSOCIATED: u8 = 0x04;
const FLAG_MULTI_EXTENT: u8 = 0x80;

const S_IFMT: u32 = 0o170_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;

/// Which names the reader uses (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameSource {
    RockRidge,
    Joliet,
    Plain,
}

/// What a directory entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    /// Devices, fifos, sockets (Rock Ridge `PX` says so).
    Other,
}

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// Resolved name (Rock Ridge, Joliet or plain; see [`NameSource`]).
    pub name: String,
    pub kind: EntryKind,
    /// Data length in bytes (for a relocated Rock Ridge directory: 0 until listed).
    pub size: u64,
    /// Rock Ridge `PX` mode, when present.
    pub mode: Option<u32>,
    /// Part of a multi-extent file (ISO9660 level 3, > 4 GiB); reading it is refused.
    pub multi_extent: bool,
    /// First sector of the data (extent + extended attribute record length).
    sector: u64,
    /// Size is known (false only for a Rock Ridge `CL` child link).
    size_known: bool,
}

impl DirEntry {
    /// First sector of the entry's data.
    pub fn sector(&self) -> u64 {
        self.sector
    }
}

/// Read counters, for the "sector reads to find and read a seed" benchmark.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Sectors touched by reads (a partial last sector counts as one).
    pub sector_reads: u64,
    /// `read` calls issued (each at most [`CHUNK_SECTORS`] sectors).
    pub read_calls: u64,
    /// Bytes read.
    pub bytes_read: u64,
}

/// Wraps any reader and counts what is read through it, for measuring a whole discovery
/// (probe + read) that goes through the free functions; [`IsoImage::stats`] counts the
/// reads of one opened image.
pub struct CountingReader<R> {
    inner: R,
    pos: u64,
    stats: ReadStats,
}

impl<R> CountingReader<R> {
    pub fn new(inner: R) -> Self {
        CountingReader {
            inner,
            pos: 0,
            stats: ReadStats::default(),
        }
    }

    /// Counts so far (sectors are 2048-byte sectors touched by each read).
    pub fn stats(&self) -> ReadStats {
        self.stats
    }

    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            let first = self.pos / SECTOR;
            let last = (self.pos + n as u64 - 1) / SECTOR;
            self.stats.sector_reads += last - first + 1;
            self.stats.bytes_read += n as u64;
        }
        self.stats.read_calls += 1;
        self.pos += n as u64;
        Ok(n)
    }
}

impl<R: Seek> Seek for CountingReader<R> {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.pos = self.inner.seek(pos)?;
        Ok(self.pos)
    }
}

/// An opened image: descriptors parsed, the tree to use chosen.
pub struct IsoImage<R> {
    r: R,
    size: u64,
    stats: ReadStats,
    volume_id: String,
    volume_sectors: u32,
    names: NameSource,
    root: DirEntry,
    has_joliet: bool,
    susp_skip: usize,
    /// Directory bytes read so far by the current walk (one public call; bounded by the
    /// image size).
    dir_bytes: u64,
    /// `CE` continuation bytes read so far by the current walk (bounded by the image size
    /// plus 64 KiB: in a sound image every record has its own area, so they add up to
    /// less than the image).
    ce_bytes: u64,
}

/// A directory record, borrowed from a directory's bytes.
struct RawRecord<'a> {
    extent: u32,
    xattr_len: u8,
    data_len: u32,
    flags: u8,
    name: &'a [u8],
    system_use: &'a [u8],
}

fn le16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes([s[0], s[1]]))
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// Parse one directory record; `rec` is exactly the record's bytes (length byte first).
fn parse_record(rec: &[u8]) -> Result<RawRecord<'_>, String> {
    if rec.len() < 34 {
        return Err(format!(
            "record length {} is below the minimum 34",
            rec.len()
        ));
    }
    let name_len = rec[32] as usize;
    let name_end = 33 + name_len;
    if name_len == 0 || name_end > rec.len() {
        return Err(format!(
            "file identifier length {name_len} does not fit the record length {}",
            rec.len()
        ));
    }
    let su_start = name_end + usize::from(name_len.is_multiple_of(2));
    let system_use = rec.get(su_start..).unwrap_or(&[]);
    Ok(RawRecord {
        xattr_len: rec[1],
        extent: le32(rec, 2).unwrap_or(0),
        data_len: le32(rec, 10).unwrap_or(0),
        flags: rec[25],
        name: &rec[33..name_end],
        system_use,
    })
}

/// Reject names that would escape or confuse the directory the caller writes them to.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        Err("empty file name".into())
    } else if name == "." || name == ".." {
        Err(format!("file name {name:?} is not allowed"))
    } else if name.contains('/') || name.contains('\0') {
        Err(format!("file name {name:?} contains '/' or NUL"))
    } else {
        Ok(())
    }
}

/// Plain ISO name: version (`;1`) and a trailing `.` stripped, lowercased.
fn plain_name(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(raw);
    let s = match s.rfind(';') {
        Some(i) => &s[..i],
        None => &s[..],
    };
    let s = s.strip_suffix('.').unwrap_or(s);
    s.to_ascii_lowercase()
}

/// Joliet name: UCS-2 big-endian, version stripped.
fn joliet_name(raw: &[u8]) -> String {
    let units = raw
        .chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]));
    let s: String = char::decode_utf16(units)
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect();
    match s.rfind(';') {
        Some(i) if s[i + 1..].bytes().all(|b| b.is_ascii_digit()) => s[..i].to_string(),
        _ => s,
    }
}

fn eq_ignore_case(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b) || a.to_lowercase() == b.to_lowercase()
}

/// What the System Use entries of one record said.
#[derive(Default)]
struct Susp {
    name: Option<Vec<u8>>,
    mode: Option<u32>,
    symlink: bool,
    child_link: Option<u32>,
    relocated: bool,
}

/// Cheap probe behind [`super::volume_id`].
pub(super) fn probe_volume_id<R: Read + Seek>(r: &mut R) -> Result<Option<String>, IsoError> {
    let mut buf = vec![0u8; SECTOR as usize];
    for i in 0..MAX_DESCRIPTORS {
        r.seek(SeekFrom::Start((FIRST_DESCRIPTOR + i) * SECTOR))?;
        match r.read_exact(&mut buf) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        if &buf[1..6] != b"CD001" {
            return Ok(None);
        }
        match buf[0] {
            1 => return Ok(Some(descriptor_volume_id(&buf))),
            255 => return Ok(None),
            _ => {}
        }
    }
    Ok(None)
}

fn descriptor_volume_id(pvd: &[u8]) -> String {
    let raw = pvd.get(40..72).unwrap_or(&[]);
    let end = raw
        .iter()
        .rposition(|&b| b != b' ' && b != 0)
        .map_or(0, |i| i + 1);
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

impl<R: Read + Seek> IsoImage<R> {
    /// Parse the volume descriptors and pick the tree to read (see the module doc).
    pub fn open(mut r: R) -> Result<Self, IsoError> {
        let size = r.seek(SeekFrom::End(0))?;
        let mut img = IsoImage {
            r,
            size,
            stats: ReadStats::default(),
            volume_id: String::new(),
            volume_sectors: 0,
            names: NameSource::Plain,
            root: DirEntry {
                name: String::new(),
                kind: EntryKind::Dir,
                size: 0,
                mode: None,
                multi_extent: false,
                sector: 0,
                size_known: true,
            },
            has_joliet: false,
            susp_skip: 0,
            dir_bytes: 0,
            ce_bytes: 0,
        };
        let mut primary: Option<DirEntry> = None;
        let mut joliet: Option<DirEntry> = None;
        let mut terminated = false;
        for i in 0..MAX_DESCRIPTORS {
            let sector = FIRST_DESCRIPTOR + i;
            if (sector + 1) * SECTOR > size {
                if i == 0 {
                    return Err(IsoError::NotIso(format!(
                        "image is {size} bytes, too short for a volume descriptor at sector 16"
                    )));
                }
                break;
            }
            let vd = img.read_span(sector * SECTOR, SECTOR, || {
                format!("volume descriptor {sector}")
            })?;
            if &vd[1..6] != b"CD001" {
                if i == 0 {
                    return Err(IsoError::NotIso("no CD001 identifier at sector 16".into()));
                }
                break;
            }
            match vd[0] {
                1 if primary.is_none() => {
                    let block = le16(&vd, 128).unwrap_or(0);
                    if u64::from(block) != SECTOR {
                        return Err(IsoError::Unsupported(format!(
                            "logical block size {block} (only 2048 is supported)"
                        )));
                    }
                    img.volume_id = descriptor_volume_id(&vd);
                    img.volume_sectors = le32(&vd, 80).unwrap_or(0);
                    primary = Some(img.descriptor_root(&vd, sector)?);
                }
                2 if joliet.is_none() => {
                    let esc = &vd[88..91];
                    if esc == b"%/@" || esc == b"%/C" || esc == b"%/E" {
                        joliet = Some(img.descriptor_root(&vd, sector)?);
                    }
                }
                255 => {
                    terminated = true;
                    break;
                }
                _ => {}
            }
        }
        let Some(primary) = primary else {
            return Err(IsoError::BadDescriptor {
                sector: FIRST_DESCRIPTOR,
                reason: if terminated {
                    "no Primary Volume Descriptor before the set terminator".into()
                } else {
                    "no Primary Volume Descriptor found".into()
                },
            });
        };
        img.has_joliet = joliet.is_some();
        if let Some(skip) = img.rock_ridge_skip(&primary)? {
            img.names = NameSource::RockRidge;
            img.susp_skip = skip;
            img.root = primary;
        } else if let Some(j) = joliet {
            img.names = NameSource::Joliet;
            img.root = j;
        } else {
            img.root = primary;
        }
        Ok(img)
    }

    /// The root directory record of a volume descriptor (bytes 156..190).
    fn descriptor_root(&self, vd: &[u8], sector: u64) -> Result<DirEntry, IsoError> {
        let bad = |reason: String| IsoError::BadDescriptor { sector, reason };
        let raw = vd.get(156..190).unwrap_or(&[]);
        if raw.first().copied() != Some(34) {
            return Err(bad(format!(
                "root directory record length is {:?}, expected 34",
                raw.first()
            )));
        }
        let rec = parse_record(raw).map_err(bad)?;
        if rec.flags & FLAG_DIR == 0 {
            return Err(bad("root directory record is not a directory".into()));
        }
        Ok(DirEntry {
            name: String::new(),
            kind: EntryKind::Dir,
            size: u64::from(rec.data_len),
            mode: None,
            multi_extent: false,
            sector: u64::from(rec.extent) + u64::from(rec.xattr_len),
            size_known: true,
        })
    }

    /// `Some(skip)` when the root's `.` record starts with a SUSP `SP` entry.
    fn rock_ridge_skip(&mut self, root: &DirEntry) -> Result<Option<usize>, IsoError> {
        let start = root.sector * SECTOR;
        let len = SECTOR.min(root.size);
        let first = self.read_span(start, len, || "root directory".to_string())?;
        let rec_len = first.first().copied().unwrap_or(0) as usize;
        let Some(rec) = first.get(..rec_len) else {
            return Ok(None);
        };
        let Ok(rec) = parse_record(rec) else {
            return Ok(None);
        };
        let su = rec.system_use;
        if su.len() >= 7 && &su[0..2] == b"SP" && su[2] >= 7 && su[4] == 0xBE && su[5] == 0xEF {
            Ok(Some(su[6] as usize))
        } else {
            Ok(None)
        }
    }

    /// Volume id from the PVD, trimmed.
    pub fn volume_id(&self) -> &str {
        &self.volume_id
    }

    /// Volume space size from the PVD, in sectors.
    pub fn volume_sectors(&self) -> u32 {
        self.volume_sectors
    }

    /// Size of the underlying image or device in bytes.
    pub fn image_size(&self) -> u64 {
        self.size
    }

    /// Which names are in use.
    pub fn name_source(&self) -> NameSource {
        self.names
    }

    /// Whether a Joliet supplementary descriptor is present (used or not).
    pub fn has_joliet(&self) -> bool {
        self.has_joliet
    }

    /// Reads issued so far (descriptors included).
    pub fn stats(&self) -> ReadStats {
        self.stats
    }

    /// Give the reader back.
    pub fn into_inner(self) -> R {
        self.r
    }

    /// Read `len` bytes at `start`, in sector-aligned chunks, after checking the range
    /// lies inside the image.
    fn read_span(
        &mut self,
        start: u64,
        len: u64,
        what: impl FnOnce() -> String,
    ) -> Result<Vec<u8>, IsoError> {
        let end = start.saturating_add(len);
        let truncated = |what: String, size| IsoError::Truncated {
            what,
            start,
            end,
            size,
        };
        if end > self.size {
            return Err(truncated(what(), self.size));
        }
        let Ok(n) = usize::try_from(len) else {
            return Err(truncated(what(), self.size));
        };
        let mut buf = vec![0u8; n];
        self.r.seek(SeekFrom::Start(start))?;
        let mut done = 0usize;
        while done < n {
            let pos = start + done as u64;
            let room = CHUNK_SECTORS * SECTOR - pos % SECTOR;
            let chunk = room.min((n - done) as u64) as usize;
            if let Err(e) = self.r.read_exact(&mut buf[done..done + chunk]) {
                if e.kind() == ErrorKind::UnexpectedEof {
                    return Err(truncated(what(), self.size));
                }
                return Err(e.into());
            }
            let first = pos / SECTOR;
            let last = (pos + chunk as u64 - 1) / SECTOR;
            self.stats.sector_reads += last - first + 1;
            self.stats.read_calls += 1;
            self.stats.bytes_read += chunk as u64;
            done += chunk;
        }
        Ok(buf)
    }

    /// Start a walk (one public call): the directory and `CE` budgets bound each walk,
    /// not the image's lifetime, so many lookups on one image do not run out of them.
    fn start_walk(&mut self) {
        self.dir_bytes = 0;
        self.ce_bytes = 0;
    }

    /// Parse the System Use entries of one record, following `CE` continuations.
    fn parse_susp(&mut self, system_use: &[u8], display: &str) -> Result<Susp, IsoError> {
        let bad = |reason: String| IsoError::BadSusp {
            name: display.to_string(),
            reason,
        };
        let mut out = Susp::default();
        let mut area: Vec<u8> = system_use.get(self.susp_skip..).unwrap_or(&[]).to_vec();
        let mut seen: HashSet<(u32, u32)> = HashSet::new();
        loop {
            let mut next: Option<(u32, u32, u32)> = None;
            let mut pos = 0usize;
            while pos + 4 <= area.len() {
                let sig = [area[pos], area[pos + 1]];
                let len = area[pos + 2] as usize;
                if len < 4 {
                    if sig == [0, 0] {
                        break; // padding
                    }
                    return Err(bad(format!(
                        "entry {:?} has length {len}, below the minimum 4",
                        String::from_utf8_lossy(&sig)
                    )));
                }
                let Some(entry) = area.get(pos..pos + len) else {
                    return Err(bad(format!(
                        "entry {:?} of length {len} runs past the end of its area ({} bytes left)",
                        String::from_utf8_lossy(&sig),
                        area.len() - pos
                    )));
                };
                let data = &entry[4..];
                match &sig {
                    b"NM" => {
                        let flags = data.first().copied().unwrap_or(0);
                        // CURRENT (2) and PARENT (4) name `.` and `..`: nothing to add.
                        if flags & 0x06 == 0 {
                            let part = data.get(1..).unwrap_or(&[]);
                            let name = out.name.get_or_insert_with(Vec::new);
                            if name.len() + part.len() > MAX_NAME_BYTES {
                                return Err(bad(format!(
                                    "NM name longer than {MAX_NAME_BYTES} bytes"
                                )));
                            }
                            name.extend_from_slice(part);
                        }
                    }
                    b"PX" => out.mode = le32(data, 0),
                    b"SL" => out.symlink = true,
                    b"CL" => out.child_link = le32(data, 0),
                    b"RE" => out.relocated = true,
                    b"CE" => {
                        let (Some(block), Some(off), Some(clen)) =
                            (le32(data, 0), le32(data, 8), le32(data, 16))
                        else {
                            return Err(bad(format!("CE entry too short ({len} bytes)")));
                        };
                        next = Some((block, off, clen));
                    }
                    b"ST" => break,
                    _ => {}
                }
                pos += len;
            }
            let Some((block, off, clen)) = next else {
                break;
            };
            if !seen.insert((block, off)) || seen.len() > MAX_CE_HOPS {
                return Err(bad(format!(
                    "CE continuation loop or more than {MAX_CE_HOPS} continuation areas \
                     (at sector {block}, offset {off})"
                )));
            }
            if u64::from(clen) > MAX_CE_BYTES || u64::from(off) + u64::from(clen) > MAX_CE_BYTES {
                return Err(bad(format!(
                    "CE continuation area (offset {off}, length {clen}) does not fit in one sector"
                )));
            }
            self.ce_bytes += u64::from(clen);
            if self.ce_bytes > self.size + (64 << 10) {
                return Err(bad(format!(
                    "continuation areas add up to more than the image ({} bytes)",
                    self.size
                )));
            }
            let start = u64::from(block) * SECTOR + u64::from(off);
            if start + u64::from(clen) > self.size {
                return Err(bad(format!(
                    "CE continuation area at sector {block} lies past the end of the image ({} bytes)",
                    self.size
                )));
            }
            area = self.read_span(start, u64::from(clen), || {
                format!("CE continuation area of {display:?}")
            })?;
        }
        Ok(out)
    }

    /// List one directory (without `.` and `..`).
    fn list(&mut self, dir: &DirEntry, path: &str) -> Result<Vec<DirEntry>, IsoError> {
        let start = dir.sector * SECTOR;
        let size = if dir.size_known {
            dir.size
        } else {
            // A Rock Ridge child link: the size is in the directory's own `.` record.
            let first =
                self.read_span(start, SECTOR.min(self.size.saturating_sub(start)), || {
                    format!("directory {path:?}")
                })?;
            let len = first.first().copied().unwrap_or(0) as usize;
            let rec = first
                .get(..len)
                .ok_or_else(|| "truncated `.` record".to_string())
                .and_then(parse_record)
                .map_err(|reason| IsoError::BadRecord {
                    dir_sector: dir.sector,
                    offset: 0,
                    reason,
                })?;
            u64::from(rec.data_len)
        };
        if size > MAX_DIR_BYTES {
            return Err(IsoError::Unsupported(format!(
                "directory {path:?} is {size} bytes, more than the {MAX_DIR_BYTES} supported"
            )));
        }
        self.dir_bytes = self.dir_bytes.saturating_add(size);
        if self.dir_bytes > self.size {
            return Err(IsoError::DirectoryBudget { size: self.size });
        }
        let bytes = self.read_span(start, size, || format!("directory {path:?}"))?;
        let mut out: Vec<DirEntry> = Vec::new();
        let mut in_multi = false;
        for (si, sector) in bytes.chunks(SECTOR as usize).enumerate() {
            let mut pos = 0usize;
            while pos < sector.len() {
                let len = sector[pos] as usize;
                if len == 0 {
                    break; // rest of this sector is padding
                }
                let offset = si as u64 * SECTOR + pos as u64;
                let bad = |reason: String| IsoError::BadRecord {
                    dir_sector: dir.sector,
                    offset,
                    reason,
                };
                let rec = sector
                    .get(pos..pos + len)
                    .ok_or_else(|| {
                        format!(
                            "record of length {len} crosses the sector boundary ({} bytes left)",
                            sector.len() - pos
                        )
                    })
                    .and_then(parse_record)
                    .map_err(bad)?;
                pos += len;
                if rec.name == [0] || rec.name == [1] {
                    continue; // `.` and `..`
                }
                if rec.flags & FLAG_ASSOCIATED != 0 {
                    continue;
                }
                if in_multi {
                    // Later extents of a multi-extent file already listed.
                    in_multi = rec.flags & FLAG_MULTI_EXTENT != 0;
                    continue;
                }
                let plain = plain_name(rec.name);
                let mut entry = DirEntry {
                    name: String::new(),
                    kind: if rec.flags & FLAG_DIR != 0 {
                        EntryKind::Dir
                    } else {
                        EntryKind::File
                    },
                    size: u64::from(rec.data_len),
                    mode: None,
                    multi_extent: rec.flags & FLAG_MULTI_EXTENT != 0,
                    sector: u64::from(rec.extent) + u64::from(rec.xattr_len),
                    size_known: true,
                };
                in_multi = entry.multi_extent;
                entry.name = match self.names {
                    NameSource::Plain => plain,
                    NameSource::Joliet => joliet_name(rec.name),
                    NameSource::RockRidge => {
                        let display = if path.is_empty() {
                            plain.clone()
                        } else {
                            format!("{path}/{plain}")
                        };
                        let su = self.parse_susp(rec.system_use, &display)?;
                        if su.relocated {
                            continue; // shown through its `CL` link elsewhere
                        }
                        entry.mode = su.mode;
                        if let Some(cl) = su.child_link {
                            entry.kind = EntryKind::Dir;
                            entry.sector = u64::from(cl);
                            entry.size = 0;
                            entry.size_known = false;
                        } else if su.symlink {
                            entry.kind = EntryKind::Symlink;
                        } else if let Some(mode) = su.mode {
                            if entry.kind == EntryKind::File && mode & S_IFMT != S_IFREG {
                                // A `PX` directory without the ISO directory flag is
                                // inconsistent; treat it like a device: skipped.
                                entry.kind = if mode & S_IFMT == S_IFLNK {
                                    EntryKind::Symlink
                                } else {
                                    EntryKind::Other
                                };
                            }
                        }
                        match su.name {
                            Some(n) => String::from_utf8_lossy(&n).into_owned(),
                            None => plain,
                        }
                    }
                };
                check_name(&entry.name).map_err(bad)?;
                out.push(entry);
            }
        }
        Ok(out)
    }

    /// The entry at `path` (`/`-separated, case-insensitive; `""` or `/` is the root).
    pub fn lookup(&mut self, path: &str) -> Result<DirEntry, IsoError> {
        self.start_walk();
        let mut cur = self.root.clone();
        let mut walked = String::new();
        for comp in path.split('/').filter(|c| !c.is_empty()) {
            if cur.kind != EntryKind::Dir {
                return Err(IsoError::NotADirectory(walked));
            }
            let entries = self.list(&cur, &walked)?;
            if !walked.is_empty() {
                walked.push('/');
            }
            walked.push_str(comp);
            cur = entries
                .into_iter()
                .find(|e| eq_ignore_case(&e.name, comp))
                .ok_or_else(|| IsoError::NotFound(walked.clone()))?;
        }
        Ok(cur)
    }

    /// Entries of the directory at `path` (without `.` and `..`), in on-disc order.
    pub fn list_dir(&mut self, path: &str) -> Result<Vec<DirEntry>, IsoError> {
        let dir = self.lookup(path)?;
        if dir.kind != EntryKind::Dir {
            return Err(IsoError::NotADirectory(path.to_string()));
        }
        self.list(&dir, path.trim_matches('/'))
    }

    /// Contents of a regular file entry, refusing files over `max_file` bytes.
    pub fn read_entry(
        &mut self,
        entry: &DirEntry,
        display: &str,
        max_file: u64,
    ) -> Result<Vec<u8>, IsoError> {
        if entry.kind != EntryKind::File {
            return Err(IsoError::NotAFile(display.to_string()));
        }
        if entry.multi_extent {
            return Err(IsoError::MultiExtent {
                name: display.to_string(),
            });
        }
        if entry.size > max_file {
            return Err(IsoError::FileTooLarge {
                name: display.to_string(),
                size: entry.size,
                limit: max_file,
            });
        }
        if entry.size == 0 {
            return Ok(Vec::new()); // empty files may point anywhere, even sector 0
        }
        self.read_span(entry.sector * SECTOR, entry.size, || {
            format!("file {display:?}")
        })
    }

    /// Contents of the regular file at `path` (case-insensitive).
    pub fn read_file(&mut self, path: &str, max_file: u64) -> Result<Vec<u8>, IsoError> {
        let entry = self.lookup(path)?;
        self.read_entry(&entry, path, max_file)
    }

    /// Every regular file of the root directory, in on-disc order.
    pub fn read_root_files(&mut self, max_file: u64) -> Result<Vec<(String, Vec<u8>)>, IsoError> {
        self.read_root_files_within(max_file, u64::MAX)
    }

    /// [`IsoImage::read_root_files`], all files together at most `max_total` bytes.
    pub fn read_root_files_within(
        &mut self,
        max_file: u64,
        max_total: u64,
    ) -> Result<Vec<(String, Vec<u8>)>, IsoError> {
        self.start_walk();
        let root = self.root.clone();
        let entries = self.list(&root, "")?;
        let mut out = Vec::new();
        let mut budget = crate::formats::SeedBudget::new(max_total);
        for e in entries.into_iter().filter(|e| e.kind == EntryKind::File) {
            budget.take(&e.name, e.size)?;
            let data = self.read_entry(&e, &e.name, max_file)?;
            out.push((e.name, data));
        }
        Ok(out)
    }

    /// Every regular file of the whole tree, with `/`-separated paths, sorted by path.
    /// Each directory is read once; a directory reached twice is a [`IsoError::DirectoryLoop`].
    pub fn read_all_files(&mut self, max_file: u64) -> Result<Vec<(String, Vec<u8>)>, IsoError> {
        self.start_walk();
        let mut seen: HashSet<u64> = HashSet::new();
        let mut stack = vec![(String::new(), self.root.clone())];
        seen.insert(self.root.sector);
        let mut out = Vec::new();
        while let Some((path, dir)) = stack.pop() {
            for e in self.list(&dir, &path)? {
                let full = if path.is_empty() {
                    e.name.clone()
                } else {
                    format!("{path}/{}", e.name)
                };
                match e.kind {
                    EntryKind::Dir => {
                        if !seen.insert(e.sector) {
                            return Err(IsoError::DirectoryLoop {
                                sector: e.sector,
                                path: full,
                            });
                        }
                        stack.push((full, e));
                    }
                    EntryKind::File => {
                        let data = self.read_entry(&e, &full, max_file)?;
                        out.push((full, data));
                    }
                    EntryKind::Symlink | EntryKind::Other => {}
                }
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_lose_version_and_dot() {
        assert_eq!(plain_name(b"USER_DAT.;1"), "user_dat");
        assert_eq!(plain_name(b"README.TXT;1"), "readme.txt");
        assert_eq!(plain_name(b"DIR"), "dir");
    }

    #[test]
    fn joliet_names_decode_ucs2() {
        let raw: Vec<u8> = "user-data;1"
            .encode_utf16()
            .flat_map(|u| u.to_be_bytes())
            .collect();
        assert_eq!(joliet_name(&raw), "user-data");
        let raw: Vec<u8> = "a;b".encode_utf16().flat_map(|u| u.to_be_bytes()).collect();
        assert_eq!(joliet_name(&raw), "a;b");
    }

    #[test]
    fn hostile_names_are_refused() {
        assert!(check_name("..").is_err());
        assert!(check_name("a/b").is_err());
        assert!(check_name("a\0").is_err());
        assert!(check_name("").is_err());
        assert!(check_name("user-data").is_ok());
    }

    #[test]
    fn short_records_are_errors() {
        assert!(parse_record(&[0u8; 10]).is_err());
        let mut rec = [0u8; 34];
        rec[0] = 34;
        rec[32] = 5; // name longer than the record
        assert!(parse_record(&rec).is_err());
    }
}
