//! GPT and MBR: read a table, plan the growth of one partition into the free space right
//! after it, and produce the new table's sectors, re-read and checked before anyone
//! writes them.
//!
//! What "grow" means is what `growpart` (cloud-utils) does with sfdisk: the partition's end
//! moves to the sector before the next partition, or to the last usable sector of the disk
//! (GPT: before the backup entries at the new end; MBR: the last sector, within the 2³²
//! sector limit of a primary entry). Less than 1 MiB of gain is no change (growpart's
//! `GROWPART_FUDGE`). On GPT the backup header and entries move to the new end of the
//! disk, and a protective MBR that covered the old disk is widened to the new one.
//! Logical partitions of an extended MBR partition are not grown.
//!
//! Every field read from the disk is checked before it is used: header sizes and CRCs,
//! entry sizes and counts (the entry array is capped at 1 MiB), LBAs inside the disk,
//! partitions inside the usable area and not overlapping. A table that fails a check is an
//! error naming the check; growing never starts from a table we could not fully validate.

use std::io::{Read, Seek, SeekFrom};

use super::DiskError;

/// Growth smaller than this is no change (growpart's `GROWPART_FUDGE`).
pub const FUDGE_BYTES: u64 = 1 << 20;

/// Largest GPT entry array we read.
const MAX_ENTRY_ARRAY: u64 = 1 << 20;

const GPT_SIGNATURE: &[u8; 8] = b"EFI PART";
const MBR_PROTECTIVE: u8 = 0xee;
const MBR_EXTENDED: [u8; 3] = [0x05, 0x0f, 0x85];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Gpt,
    Mbr,
}

impl Scheme {
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Gpt => "gpt",
            Scheme::Mbr => "dos",
        }
    }
}

/// A partition: its number (as the kernel names it: `sda2` is 2) and inclusive LBAs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    pub number: u32,
    pub first: u64,
    pub last: u64,
}

/// Bytes to write at an offset of the disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub offset: u64,
    pub data: Vec<u8>,
}

/// What growing a partition would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Growth {
    /// Nothing to do; the text says why (for the log).
    NoChange(String),
    /// The partition's new last LBA, and the sectors to write (in this order).
    Grow {
        part: Part,
        new_last: u64,
        writes: Vec<Write>,
    },
}

/// A partition table as read from a disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub scheme: Scheme,
    /// Logical sector size in bytes.
    pub sector: u64,
    /// Disk size in sectors.
    pub sectors: u64,
    /// Partitions, in entry order.
    pub parts: Vec<Part>,
    lba0: Vec<u8>,
    gpt: Option<Gpt>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Gpt {
    header: Header,
    /// The primary header's sector as read.
    header_sector: Vec<u8>,
    /// The primary entry array's sectors as read (`entry_sectors` of them).
    entries: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    size: usize,
    my_lba: u64,
    alternate: u64,
    first_usable: u64,
    last_usable: u64,
    entries_lba: u64,
    count: u32,
    entry_size: u32,
    entries_crc: u32,
}

impl Header {
    fn array_bytes(&self) -> u64 {
        u64::from(self.count) * u64::from(self.entry_size)
    }
}

fn le_u32(b: &[u8], at: usize) -> Result<u32, DiskError> {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map(u32::from_le_bytes)
        .ok_or_else(|| DiskError::new(format!("field at byte {at} is past the sector")))
}

fn le_u64(b: &[u8], at: usize) -> Result<u64, DiskError> {
    b.get(at..at + 8)
        .and_then(|s| s.try_into().ok())
        .map(u64::from_le_bytes)
        .ok_or_else(|| DiskError::new(format!("field at byte {at} is past the sector")))
}

fn put(b: &mut [u8], at: usize, v: &[u8]) {
    // Callers write fixed header/entry fields inside buffers they sized themselves.
    if let Some(dst) = b.get_mut(at..at + v.len()) {
        dst.copy_from_slice(v);
    }
}

fn read_at<R: Read + Seek + ?Sized>(
    dev: &mut R,
    offset: u64,
    len: u64,
) -> Result<Vec<u8>, DiskError> {
    let len = usize::try_from(len).map_err(|_| DiskError::new("read too large"))?;
    let mut buf = vec![0u8; len];
    dev.seek(SeekFrom::Start(offset))
        .and_then(|_| dev.read_exact(&mut buf))
        .map_err(|e| DiskError::new(format!("reading {len} bytes at byte {offset}: {e}")))?;
    Ok(buf)
}

fn sectors_for(bytes: u64, sector: u64) -> u64 {
    bytes.div_ceil(sector)
}

/// Read the table of a disk of `disk_bytes` bytes with `sector`-byte logical sectors.
pub fn read<R: Read + Seek + ?Sized>(
    dev: &mut R,
    sector: u64,
    disk_bytes: u64,
) -> Result<Table, DiskError> {
    if !(512..=65536).contains(&sector) || !sector.is_power_of_two() {
        return Err(DiskError::new(format!("unsupported sector size {sector}")));
    }
    let sectors = disk_bytes / sector;
    if sectors < 4 {
        return Err(DiskError::new(format!(
            "disk of {disk_bytes} bytes is too small"
        )));
    }
    let lba0 = read_at(dev, 0, sector)?;
    if lba0.get(510..512) != Some(&[0x55, 0xaa][..]) {
        return Err(DiskError::new(
            "no partition table (no MBR signature in sector 0)",
        ));
    }
    let mbr = mbr_entries(&lba0)?;
    if mbr.iter().any(|e| e.kind == MBR_PROTECTIVE) {
        let header_sector = read_at(dev, sector, sector)?;
        let header = parse_header(&header_sector, 1)
            .and_then(|h| check_primary(&h, sector, sectors).map(|_| h))
            .map_err(|e| DiskError::new(format!("primary GPT header: {e}")))?;
        let es = sectors_for(header.array_bytes(), sector);
        let entries = read_at(dev, header.entries_lba * sector, es * sector)?;
        let parts = parse_entries(&header, &entries)
            .map_err(|e| DiskError::new(format!("primary GPT entries: {e}")))?;
        return Ok(Table {
            scheme: Scheme::Gpt,
            sector,
            sectors,
            parts,
            lba0,
            gpt: Some(Gpt {
                header,
                header_sector,
                entries,
            }),
        });
    }
    let mut parts = Vec::new();
    for (i, e) in mbr.iter().enumerate() {
        if e.kind == 0 {
            continue;
        }
        if e.start == 0 || e.size == 0 {
            return Err(DiskError::new(format!(
                "MBR partition {} starts at {} with {} sectors",
                i + 1,
                e.start,
                e.size
            )));
        }
        let last = u64::from(e.start) + u64::from(e.size) - 1;
        if last >= sectors {
            return Err(DiskError::new(format!(
                "MBR partition {} ends at sector {last}, past the end of the disk ({sectors} sectors)",
                i + 1
            )));
        }
        parts.push(Part {
            number: i as u32 + 1,
            first: u64::from(e.start),
            last,
        });
    }
    check_overlaps(&parts)?;
    Ok(Table {
        scheme: Scheme::Mbr,
        sector,
        sectors,
        parts,
        lba0,
        gpt: None,
    })
}

#[derive(Debug, Clone, Copy)]
struct MbrEntry {
    kind: u8,
    start: u32,
    size: u32,
}

fn mbr_entries(lba0: &[u8]) -> Result<[MbrEntry; 4], DiskError> {
    let mut out = [MbrEntry {
        kind: 0,
        start: 0,
        size: 0,
    }; 4];
    for (i, e) in out.iter_mut().enumerate() {
        let at = 446 + 16 * i;
        e.kind = *lba0
            .get(at + 4)
            .ok_or_else(|| DiskError::new("sector 0 too short"))?;
        e.start = le_u32(lba0, at + 8)?;
        e.size = le_u32(lba0, at + 12)?;
    }
    Ok(out)
}

fn check_overlaps(parts: &[Part]) -> Result<(), DiskError> {
    let mut sorted: Vec<&Part> = parts.iter().collect();
    sorted.sort_by_key(|p| p.first);
    for w in sorted.windows(2) {
        if w[1].first <= w[0].last {
            return Err(DiskError::new(format!(
                "partitions {} and {} overlap",
                w[0].number, w[1].number
            )));
        }
    }
    Ok(())
}

/// The fields of a GPT header at `my_lba`, with its signature, size, CRC and field ranges
/// checked (where the header sits relative to the disk is checked by the callers).
fn parse_header(b: &[u8], my_lba: u64) -> Result<Header, DiskError> {
    if b.get(..8) != Some(&GPT_SIGNATURE[..]) {
        return Err(DiskError::new("no 'EFI PART' signature"));
    }
    let size = le_u32(b, 12)? as usize;
    if size < 92 || size > b.len() {
        return Err(DiskError::new(format!("header size {size} out of range")));
    }
    let stored = le_u32(b, 16)?;
    let mut copy = b[..size].to_vec();
    put(&mut copy, 16, &[0; 4]);
    if crc32fast::hash(&copy) != stored {
        return Err(DiskError::new("header CRC mismatch"));
    }
    let h = Header {
        size,
        my_lba: le_u64(b, 24)?,
        alternate: le_u64(b, 32)?,
        first_usable: le_u64(b, 40)?,
        last_usable: le_u64(b, 48)?,
        entries_lba: le_u64(b, 72)?,
        count: le_u32(b, 80)?,
        entry_size: le_u32(b, 84)?,
        entries_crc: le_u32(b, 88)?,
    };
    if h.my_lba != my_lba {
        return Err(DiskError::new(format!(
            "header says it is at LBA {}, read at LBA {my_lba}",
            h.my_lba
        )));
    }
    if h.entry_size < 128 || h.entry_size > 4096 || !h.entry_size.is_power_of_two() {
        return Err(DiskError::new(format!(
            "entry size {} out of range",
            h.entry_size
        )));
    }
    if h.count == 0 || h.array_bytes() > MAX_ENTRY_ARRAY {
        return Err(DiskError::new(format!(
            "{} entries of {} bytes: out of range",
            h.count, h.entry_size
        )));
    }
    if h.first_usable > h.last_usable {
        return Err(DiskError::new(format!(
            "usable LBAs {}..{} out of order",
            h.first_usable, h.last_usable
        )));
    }
    Ok(h)
}

/// The primary header at LBA 1: entries between it and the usable area, usable area
/// before the backup, backup inside the disk.
fn check_primary(h: &Header, sector: u64, sectors: u64) -> Result<(), DiskError> {
    let es = sectors_for(h.array_bytes(), sector);
    if h.entries_lba < 2
        || h.entries_lba
            .checked_add(es)
            .is_none_or(|end| end > h.first_usable)
    {
        return Err(DiskError::new(format!(
            "entries at LBA {} ({es} sectors) overlap the header or the usable area (first usable LBA {})",
            h.entries_lba, h.first_usable
        )));
    }
    if h.alternate >= sectors {
        return Err(DiskError::new(format!(
            "backup header LBA {} is past the end of the disk ({sectors} sectors; did the disk shrink?)",
            h.alternate
        )));
    }
    if h.last_usable >= h.alternate {
        return Err(DiskError::new(format!(
            "last usable LBA {} reaches the backup header at LBA {}",
            h.last_usable, h.alternate
        )));
    }
    Ok(())
}

/// A backup header at the end: entries between the usable area and it.
fn check_backup(h: &Header, sector: u64, sectors: u64) -> Result<(), DiskError> {
    let es = sectors_for(h.array_bytes(), sector);
    if h.alternate != 1 || h.my_lba >= sectors {
        return Err(DiskError::new(format!(
            "backup header at LBA {} points to LBA {} as the primary",
            h.my_lba, h.alternate
        )));
    }
    if h.entries_lba <= h.last_usable
        || h.entries_lba
            .checked_add(es)
            .is_none_or(|end| end > h.my_lba)
    {
        return Err(DiskError::new(format!(
            "backup entries at LBA {} ({es} sectors) overlap the usable area or the header",
            h.entries_lba
        )));
    }
    Ok(())
}

/// The partitions of an entry array, its CRC checked against the header.
fn parse_entries(h: &Header, entries: &[u8]) -> Result<Vec<Part>, DiskError> {
    let len =
        usize::try_from(h.array_bytes()).map_err(|_| DiskError::new("entry array too large"))?;
    let array = entries
        .get(..len)
        .ok_or_else(|| DiskError::new("entry array shorter than the header says"))?;
    if crc32fast::hash(array) != h.entries_crc {
        return Err(DiskError::new("entry array CRC mismatch"));
    }
    let esz = h.entry_size as usize;
    let mut parts = Vec::new();
    for (i, e) in array.chunks_exact(esz).enumerate() {
        if e.get(..16).is_none_or(|t| t.iter().all(|&b| b == 0)) {
            continue;
        }
        let first = le_u64(e, 32)?;
        let last = le_u64(e, 40)?;
        let number = u32::try_from(i + 1).map_err(|_| DiskError::new("too many entries"))?;
        if first > last || first < h.first_usable || last > h.last_usable {
            return Err(DiskError::new(format!(
                "partition {number} (LBA {first}..{last}) is outside the usable area {}..{}",
                h.first_usable, h.last_usable
            )));
        }
        parts.push(Part {
            number,
            first,
            last,
        });
    }
    check_overlaps(&parts)?;
    Ok(parts)
}

/// A header's bytes (`size` of them, in a zeroed sector) with its CRC set.
fn header_bytes(template: &[u8], h: &Header, sector: u64) -> Vec<u8> {
    let mut b = vec![0u8; sector as usize];
    put(&mut b, 0, &template[..h.size.min(template.len())]);
    put(&mut b, 24, &h.my_lba.to_le_bytes());
    put(&mut b, 32, &h.alternate.to_le_bytes());
    put(&mut b, 40, &h.first_usable.to_le_bytes());
    put(&mut b, 48, &h.last_usable.to_le_bytes());
    put(&mut b, 72, &h.entries_lba.to_le_bytes());
    put(&mut b, 88, &h.entries_crc.to_le_bytes());
    put(&mut b, 16, &[0; 4]);
    let crc = crc32fast::hash(&b[..h.size]);
    put(&mut b, 16, &crc.to_le_bytes());
    b
}

impl Table {
    /// The partition numbered `number`.
    pub fn part(&self, number: u32) -> Option<Part> {
        self.parts.iter().copied().find(|p| p.number == number)
    }

    /// Plan the growth of partition `number` into the free space right after it, with the
    /// sectors to write. The writes are checked: they re-read as a valid table of the same
    /// partitions with only this one's end moved.
    pub fn grow(&self, number: u32) -> Result<Growth, DiskError> {
        let Some(part) = self.part(number) else {
            if self.scheme == Scheme::Mbr && number > 4 {
                return Ok(Growth::NoChange(format!(
                    "partition {number} is a logical partition (inside an extended one): not grown"
                )));
            }
            return Err(DiskError::new(format!(
                "no partition {number} in the {} table",
                self.scheme.name()
            )));
        };
        match &self.gpt {
            Some(g) => self.grow_gpt(g, part),
            None => self.grow_mbr(part),
        }
    }

    /// The last LBA `part` can reach: before the next partition, or `limit`.
    fn max_end(&self, part: Part, limit: u64) -> u64 {
        self.parts
            .iter()
            .filter(|p| p.first > part.first)
            .map(|p| p.first - 1)
            .fold(limit, u64::min)
    }

    fn no_room(&self, part: Part, max_end: u64) -> Option<Growth> {
        let gain = max_end
            .saturating_sub(part.last)
            .saturating_mul(self.sector);
        if gain >= FUDGE_BYTES {
            return None;
        }
        let next = self
            .parts
            .iter()
            .filter(|p| p.first > part.first)
            .min_by_key(|p| p.first);
        Some(Growth::NoChange(match next {
            Some(n) if n.first <= part.last.saturating_add(FUDGE_BYTES / self.sector) => format!(
                "partition {} cannot be grown: partition {} follows it",
                part.number, n.number
            ),
            _ => format!(
                "partition {} cannot be grown: {gain} bytes free after it (less than 1 MiB)",
                part.number
            ),
        }))
    }

    fn grow_gpt(&self, g: &Gpt, part: Part) -> Result<Growth, DiskError> {
        let sector = self.sector;
        let h = g.header;
        let es = sectors_for(h.array_bytes(), sector);
        let alternate = self.sectors - 1;
        let backup_entries = alternate
            .checked_sub(es)
            .ok_or_else(|| DiskError::new("disk too small for the backup entries"))?;
        let last_usable = backup_entries - 1;
        if last_usable < h.last_usable {
            return Err(DiskError::new(format!(
                "the disk ({} sectors) is smaller than the table says",
                self.sectors
            )));
        }
        let max_end = self.max_end(part, last_usable);
        if let Some(no) = self.no_room(part, max_end) {
            return Ok(no);
        }
        let mut entries = g.entries.clone();
        let at = (part.number as usize - 1) * h.entry_size as usize + 40;
        put(&mut entries, at, &max_end.to_le_bytes());
        let array_len = h.array_bytes() as usize;
        let entries_crc = crc32fast::hash(&entries[..array_len]);
        let primary = Header {
            alternate,
            last_usable,
            entries_crc,
            ..h
        };
        let backup = Header {
            my_lba: alternate,
            alternate: 1,
            entries_lba: backup_entries,
            ..primary
        };
        let mut backup_entry_bytes = vec![0u8; (es * sector) as usize];
        put(&mut backup_entry_bytes, 0, &entries[..array_len]);
        let mut writes = vec![
            Write {
                offset: backup_entries * sector,
                data: backup_entry_bytes,
            },
            Write {
                offset: alternate * sector,
                data: header_bytes(&g.header_sector, &backup, sector),
            },
            Write {
                offset: h.entries_lba * sector,
                data: entries,
            },
            Write {
                offset: sector,
                data: header_bytes(&g.header_sector, &primary, sector),
            },
        ];
        if let Some(lba0) = self.widen_protective(h.alternate) {
            writes.push(Write {
                offset: 0,
                data: lba0,
            });
        }
        let growth = Growth::Grow {
            part,
            new_last: max_end,
            writes,
        };
        self.check(&growth)?;
        Ok(growth)
    }

    /// A protective MBR entry that covered the old disk (LBA 1 to the old backup
    /// header), widened to the new one; `None` when there is none to widen (hybrid MBRs
    /// are left alone).
    fn widen_protective(&self, old_alternate: u64) -> Option<Vec<u8>> {
        let cap = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
        let mut lba0 = self.lba0.clone();
        let entries = mbr_entries(&lba0).ok()?;
        let i = entries
            .iter()
            .position(|e| e.kind == MBR_PROTECTIVE && e.start == 1)?;
        if entries[i].size != cap(old_alternate) {
            return None;
        }
        let new = cap(self.sectors - 1);
        if new == entries[i].size {
            return None;
        }
        put(&mut lba0, 446 + 16 * i + 12, &new.to_le_bytes());
        Some(lba0)
    }

    fn grow_mbr(&self, part: Part) -> Result<Growth, DiskError> {
        let entries = mbr_entries(&self.lba0)?;
        let i = part.number as usize - 1;
        if MBR_EXTENDED.contains(&entries[i].kind) {
            return Ok(Growth::NoChange(format!(
                "partition {} is an extended partition: not grown",
                part.number
            )));
        }
        // A primary entry holds at most 2^32-1 sectors.
        let limit = (self.sectors - 1).min(part.first + u64::from(u32::MAX) - 1);
        let max_end = self.max_end(part, limit);
        if let Some(no) = self.no_room(part, max_end) {
            return Ok(no);
        }
        let mut lba0 = self.lba0.clone();
        let at = 446 + 16 * i;
        put(&mut lba0, at + 5, &chs(max_end));
        let size = u32::try_from(max_end - part.first + 1)
            .map_err(|_| DiskError::new("partition size past the MBR limit"))?;
        put(&mut lba0, at + 12, &size.to_le_bytes());
        let growth = Growth::Grow {
            part,
            new_last: max_end,
            writes: vec![Write {
                offset: 0,
                data: lba0,
            }],
        };
        self.check(&growth)?;
        Ok(growth)
    }

    /// Re-read the table the writes make (from the writes alone, with this table's bytes
    /// for what they leave alone) and require the same partitions, the grown one ending
    /// where planned, and on GPT a valid primary and backup that agree.
    pub fn check(&self, growth: &Growth) -> Result<(), DiskError> {
        let Growth::Grow {
            part,
            new_last,
            writes,
        } = growth
        else {
            return Ok(());
        };
        let fail = |what: String| DiskError::new(format!("the new table is not valid: {what}"));
        let at = |offset: u64, len: u64| -> Option<Vec<u8>> {
            writes
                .iter()
                .rev()
                .find(|w| w.offset == offset && w.data.len() as u64 >= len)
                .map(|w| w.data[..len as usize].to_vec())
        };
        let expected: Vec<Part> = self
            .parts
            .iter()
            .map(|p| {
                if p.number == part.number {
                    Part {
                        last: *new_last,
                        ..*p
                    }
                } else {
                    *p
                }
            })
            .collect();
        let sector = self.sector;
        let lba0 = at(0, sector).unwrap_or_else(|| self.lba0.clone());
        if lba0.get(510..512) != Some(&[0x55, 0xaa][..]) {
            return Err(fail("sector 0 lost its signature".into()));
        }
        let Some(g) = &self.gpt else {
            // An MBR table is sector 0 alone.
            let mut dev = std::io::Cursor::new(lba0);
            let reread =
                read(&mut dev, sector, self.sectors * sector).map_err(|e| fail(e.to_string()))?;
            if reread.parts != expected {
                return Err(fail(format!("partitions {:?}", reread.parts)));
            }
            return Ok(());
        };
        let es = sectors_for(g.header.array_bytes(), sector);
        let primary_bytes =
            at(sector, sector).ok_or_else(|| fail("no primary header written".into()))?;
        let primary = parse_header(&primary_bytes, 1).map_err(|e| fail(format!("primary: {e}")))?;
        check_primary(&primary, sector, self.sectors).map_err(|e| fail(format!("primary: {e}")))?;
        if primary.alternate != self.sectors - 1 {
            return Err(fail(
                "the backup header is not at the end of the disk".into(),
            ));
        }
        let entries = at(primary.entries_lba * sector, es * sector)
            .ok_or_else(|| fail("no primary entries written".into()))?;
        let parts = parse_entries(&primary, &entries).map_err(|e| fail(format!("primary: {e}")))?;
        let backup_bytes = at(primary.alternate * sector, sector)
            .ok_or_else(|| fail("no backup header written".into()))?;
        let backup = parse_header(&backup_bytes, primary.alternate)
            .map_err(|e| fail(format!("backup: {e}")))?;
        check_backup(&backup, sector, self.sectors).map_err(|e| fail(format!("backup: {e}")))?;
        let backup_entries = at(backup.entries_lba * sector, es * sector)
            .ok_or_else(|| fail("no backup entries written".into()))?;
        let backup_parts =
            parse_entries(&backup, &backup_entries).map_err(|e| fail(format!("backup: {e}")))?;
        if parts != expected || backup_parts != expected {
            return Err(fail(format!("partitions {parts:?}")));
        }
        if (backup.first_usable, backup.last_usable, backup.entries_crc)
            != (
                primary.first_usable,
                primary.last_usable,
                primary.entries_crc,
            )
        {
            return Err(fail("the primary and backup headers disagree".into()));
        }
        if mbr_entries(&lba0).map_or(true, |e| !e.iter().any(|e| e.kind == MBR_PROTECTIVE)) {
            return Err(fail("the protective MBR is gone".into()));
        }
        Ok(())
    }
}

/// CHS of an LBA as fdisk writes it for a 255-head, 63-sector geometry; past cylinder
/// 1023 the "use LBA" marker (1023/254/63).
fn chs(lba: u64) -> [u8; 3] {
    let (heads, spt) = (255u64, 63u64);
    let cyl = lba / (heads * spt);
    if cyl > 1023 {
        return [0xfe, 0xff, 0xff];
    }
    let head = (lba / spt) % heads;
    let s = lba % spt + 1;
    [
        head as u8,
        (s as u8 & 0x3f) | (((cyl >> 2) & 0xc0) as u8),
        (cyl & 0xff) as u8,
    ]
}
