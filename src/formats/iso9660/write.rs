//! ISO9660 writer for NoCloud seeds: what `genisoimage -volid cidata -joliet -rock` makes
//! for cloud-localds, built in-process by `ci-seed`.
//!
//! Why hand-written rather than a crate (`hadris-iso`) or an external tool: it shares the
//! format knowledge with our reader (the round-trip tests check one against the other and
//! both against genisoimage/xorriso/isoinfo/bsdtar), it is deterministic by construction
//! (no wall clock, no randomness, no host uids: the caller passes one mtime used for every
//! timestamp), it needs no external program on the host, and a seed needs only a small,
//! fixed subset of the format (a few small files, shallow directories) that fits in a few
//! hundred lines we can audit.
//!
//! Layout, in sectors:
//! `0-15` system area (zero) · `16` PVD · `17` Joliet SVD · terminator · path tables (L
//! and M, primary then Joliet) · primary directories (breadth-first) · Rock Ridge
//! continuation areas · Joliet directories · file data (each file once, shared by both
//! trees; empty files point at the first file-data sector with length 0) · 150 zero
//! sectors of padding.
//!
//! The padding: genisoimage (and `xorriso -as mkisofs`) add 300 KiB (150 sectors) at the
//! end by default (`-pad`), because the Linux sr driver's read-ahead can fail on the last
//! sectors of a cdrom and so make the last file unreadable. We do the same and count the
//! padding in the volume space size, like genisoimage.
//!
//! Primary names are ISO9660 level 1 (8.3, `A-Z 0-9 _`, `;1` on files, unique per
//! directory, numbered on collision); Rock Ridge (RRIP 1.09: `SP`, `RR`, `PX`, `TF`, `NM`,
//! and `ER` "RRIP_1991A" through a `CE` from the root's `.` record, which FreeBSD's cd9660
//! requires) carries the real names; Joliet carries them as UCS-2 (at most 64 units, no
//! `;1` version, like genisoimage). Directory depth is limited to 8 levels (ECMA-119;
//! Rock Ridge relocation is not written).

use std::collections::{BTreeMap, HashSet};
use std::io::Write;

use super::{IsoError, SECTOR};
use crate::formats::civil::Civil;

const SECTOR_BYTES: usize = SECTOR as usize;
/// Tail padding in sectors (genisoimage's `-pad`, 300 KiB).
pub const PAD_SECTORS: u32 = 150;
/// Deepest directory level (the root is level 1).
const MAX_LEVELS: usize = 8;
/// Longest Rock Ridge name we write (POSIX NAME_MAX).
const MAX_NAME_BYTES: usize = 255;
/// Joliet identifier limit in UCS-2 units.
const JOLIET_MAX_UNITS: usize = 64;

const RRIP_ID: &[u8] = b"RRIP_1991A";
const RRIP_DESCRIPTOR: &[u8] =
    b"THE ROCK RIDGE INTERCHANGE PROTOCOL PROVIDES SUPPORT FOR POSIX FILE SYSTEM SEMANTICS";
const RRIP_SOURCE: &[u8] = b"PLEASE CONTACT DISC PUBLISHER FOR SPECIFICATION SOURCE.  SEE PUBLISHER IDENTIFIER IN PRIMARY VOLUME DESCRIPTOR FOR CONTACT INFORMATION.";

/// What to write. `Default`: volume id `cidata`, every timestamp at the Unix epoch, Rock
/// Ridge and Joliet on (what cloud-localds writes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteOptions {
    /// Volume id (PVD bytes 40-71; at most 32 bytes). cloud-init looks for `cidata`.
    pub volume_id: String,
    /// Unix seconds used for every timestamp (pass `SOURCE_DATE_EPOCH` for reproducible
    /// seeds). Must be within 1900..=2155 (the 7-byte directory date's range).
    pub mtime: i64,
    pub rock_ridge: bool,
    pub joliet: bool,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            volume_id: "cidata".to_string(),
            mtime: 0,
            rock_ridge: true,
            joliet: true,
        }
    }
}

fn invalid(msg: impl Into<String>) -> IsoError {
    IsoError::InvalidInput(msg.into())
}

/// Write an image holding `files` (paths relative to the root, `/` between components;
/// parent directories are implied) to `out`. Same input, same bytes.
pub fn write_image<W: Write>(
    out: &mut W,
    files: &[(String, Vec<u8>)],
    opts: &WriteOptions,
) -> Result<(), IsoError> {
    let tree = Tree::build(files)?;
    let image = Image::plan(&tree, opts)?;
    image.write(out, &tree)
}

/// Convenience: the image as bytes.
pub fn image_bytes(files: &[(String, Vec<u8>)], opts: &WriteOptions) -> Result<Vec<u8>, IsoError> {
    let mut v = Vec::new();
    write_image(&mut v, files, opts)?;
    Ok(v)
}

// ---------------------------------------------------------------------------------------
// The logical tree and its names.

struct DirNode {
    name: String,
    parent: usize,
    subdirs: Vec<usize>,
    files: Vec<usize>,
    iso_id: Vec<u8>,
    joliet_id: Vec<u8>,
}

struct FileNode<'a> {
    name: String,
    data: &'a [u8],
    iso_id: Vec<u8>,
    joliet_id: Vec<u8>,
}

struct Tree<'a> {
    dirs: Vec<DirNode>,
    files: Vec<FileNode<'a>>,
}

/// A child of a directory in one tree's order.
#[derive(Clone, Copy)]
enum Child {
    Dir(usize),
    File(usize),
}

fn valid_component(c: &str, path: &str) -> Result<(), IsoError> {
    if c.is_empty() || c == "." || c == ".." {
        return Err(invalid(format!(
            "path {path:?}: empty, `.` or `..` component"
        )));
    }
    if c.contains('\0') {
        return Err(invalid(format!("path {path:?} contains NUL")));
    }
    if c.len() > MAX_NAME_BYTES {
        return Err(invalid(format!(
            "path {path:?}: component longer than {MAX_NAME_BYTES} bytes"
        )));
    }
    Ok(())
}

impl<'a> Tree<'a> {
    fn build(files: &'a [(String, Vec<u8>)]) -> Result<Self, IsoError> {
        let mut tree = Tree {
            dirs: vec![DirNode {
                name: String::new(),
                parent: 0,
                subdirs: Vec::new(),
                files: Vec::new(),
                iso_id: vec![0],
                joliet_id: vec![0],
            }],
            files: Vec::new(),
        };
        // Names taken in each directory (files and directories share the namespace).
        let mut taken: Vec<BTreeMap<String, bool>> = vec![BTreeMap::new()];
        for (path, data) in files {
            let comps: Vec<&str> = path.split('/').collect();
            for c in &comps {
                valid_component(c, path)?;
            }
            if comps.len() > MAX_LEVELS {
                return Err(invalid(format!(
                    "path {path:?} is deeper than the {MAX_LEVELS} directory levels ISO9660 allows"
                )));
            }
            if u32::try_from(data.len()).is_err() {
                return Err(invalid(format!(
                    "file {path:?} is 4 GiB or larger (multi-extent files are not written)"
                )));
            }
            let (file_name, dir_comps) = comps.split_last().unwrap_or((&"", &[]));
            let mut cur = 0usize;
            for c in dir_comps {
                match taken[cur].get(*c) {
                    Some(true) => {
                        cur = *tree.dirs[cur]
                            .subdirs
                            .iter()
                            .find(|&&d| tree.dirs[d].name == *c)
                            .unwrap_or(&0);
                    }
                    Some(false) => {
                        return Err(invalid(format!(
                            "path {path:?}: {c:?} is both a file and a directory"
                        )))
                    }
                    None => {
                        let idx = tree.dirs.len();
                        tree.dirs.push(DirNode {
                            name: (*c).to_string(),
                            parent: cur,
                            subdirs: Vec::new(),
                            files: Vec::new(),
                            iso_id: Vec::new(),
                            joliet_id: Vec::new(),
                        });
                        taken.push(BTreeMap::new());
                        taken[cur].insert((*c).to_string(), true);
                        tree.dirs[cur].subdirs.push(idx);
                        cur = idx;
                    }
                }
            }
            if taken[cur].contains_key(*file_name) {
                return Err(invalid(format!(
                    "path {path:?} given twice (or is also a directory)"
                )));
            }
            taken[cur].insert((*file_name).to_string(), false);
            let idx = tree.files.len();
            tree.files.push(FileNode {
                name: (*file_name).to_string(),
                data,
                iso_id: Vec::new(),
                joliet_id: Vec::new(),
            });
            tree.dirs[cur].files.push(idx);
        }
        tree.assign_names();
        Ok(tree)
    }

    /// Give every entry its 8.3 primary identifier and its Joliet identifier, unique per
    /// directory. Input order decides who keeps the plain name on a collision, so the
    /// caller's order (not a hash) makes the result.
    fn assign_names(&mut self) {
        for d in 0..self.dirs.len() {
            let mut iso_taken: HashSet<Vec<u8>> = HashSet::new();
            let mut joliet_taken: HashSet<Vec<u16>> = HashSet::new();
            // Sort by the original name first so the numbering does not depend on the
            // order files were given in.
            let mut children: Vec<Child> = self.dirs[d]
                .subdirs
                .iter()
                .map(|&i| Child::Dir(i))
                .chain(self.dirs[d].files.iter().map(|&i| Child::File(i)))
                .collect();
            children.sort_by(|a, b| self.child_name(*a).cmp(self.child_name(*b)));
            for c in children {
                let is_dir = matches!(c, Child::Dir(_));
                let name = self.child_name(c).to_string();
                let iso = unique_iso_id(&name, is_dir, &mut iso_taken);
                let joliet = unique_joliet_id(&name, &mut joliet_taken);
                match c {
                    Child::Dir(i) => {
                        self.dirs[i].iso_id = iso;
                        self.dirs[i].joliet_id = joliet;
                    }
                    Child::File(i) => {
                        self.files[i].iso_id = iso;
                        self.files[i].joliet_id = joliet;
                    }
                }
            }
        }
    }

    fn child_name(&self, c: Child) -> &str {
        match c {
            Child::Dir(i) => &self.dirs[i].name,
            Child::File(i) => &self.files[i].name,
        }
    }

    fn child_id(&self, c: Child, joliet: bool) -> &[u8] {
        match (c, joliet) {
            (Child::Dir(i), false) => &self.dirs[i].iso_id,
            (Child::Dir(i), true) => &self.dirs[i].joliet_id,
            (Child::File(i), false) => &self.files[i].iso_id,
            (Child::File(i), true) => &self.files[i].joliet_id,
        }
    }

    /// Children of `d` sorted by the tree's identifiers: the primary tree in ECMA-119 9.3
    /// order ([`ecma_order`]); Joliet by the UCS-2 bytes.
    fn sorted_children(&self, d: usize, joliet: bool) -> Vec<Child> {
        let mut v: Vec<Child> = self.dirs[d]
            .subdirs
            .iter()
            .map(|&i| Child::Dir(i))
            .chain(self.dirs[d].files.iter().map(|&i| Child::File(i)))
            .collect();
        if joliet {
            v.sort_by(|a, b| self.child_id(*a, true).cmp(self.child_id(*b, true)));
        } else {
            v.sort_by(|a, b| ecma_order(self.child_id(*a, false), self.child_id(*b, false)));
        }
        v
    }

    /// Directories breadth-first, children in identifier order: the path table order
    /// (level, then parent number, then identifier).
    fn bfs(&self, joliet: bool) -> Vec<usize> {
        let mut order = vec![0usize];
        let mut i = 0;
        while i < order.len() {
            let d = order[i];
            for c in self.sorted_children(d, joliet) {
                if let Child::Dir(s) = c {
                    order.push(s);
                }
            }
            i += 1;
        }
        order
    }
}

/// ECMA-119 9.3 order of two primary identifiers (`NAME.EXT;1` or a directory's `NAME`):
/// by name, then by extension, the shorter of each padded with spaces. A byte-wise
/// compare differs when one extension extends the other with a digit (`A.B;1` must come
/// before `A.B1;1`, but `;` sorts after `1`). Ties (a directory `A` and a file `A.;1`) fall
/// back to the bytes, so the order is total.
fn ecma_order(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    fn parts(id: &[u8]) -> (&[u8], &[u8]) {
        let id = id.split(|&c| c == b';').next().unwrap_or(id);
        match id.iter().position(|&c| c == b'.') {
            Some(i) => (&id[..i], &id[i + 1..]),
            None => (id, &[]),
        }
    }
    fn padded(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
        let n = a.len().max(b.len());
        let pad = |s: &[u8], i: usize| s.get(i).copied().unwrap_or(b' ');
        (0..n).map(|i| pad(a, i)).cmp((0..n).map(|i| pad(b, i)))
    }
    let ((an, ae), (bn, be)) = (parts(a), parts(b));
    padded(an, bn)
        .then_with(|| padded(ae, be))
        .then_with(|| a.cmp(b))
}

fn d_char(c: char) -> u8 {
    match c {
        'a'..='z' => c.to_ascii_uppercase() as u8,
        'A'..='Z' | '0'..='9' | '_' => c as u8,
        _ => b'_',
    }
}

/// `NAME.EXT;1` for files, `NAME` for directories; 8.3, numbered if taken.
fn unique_iso_id(name: &str, is_dir: bool, taken: &mut HashSet<Vec<u8>>) -> Vec<u8> {
    let (base, ext) = match name.rfind('.') {
        Some(i) if !is_dir && i > 0 => (&name[..i], &name[i + 1..]),
        _ => (name, ""),
    };
    let mut base: Vec<u8> = base.chars().map(d_char).take(8).collect();
    let ext: Vec<u8> = ext.chars().map(d_char).take(3).collect();
    if base.is_empty() {
        base.push(b'_');
    }
    let make = |b: &[u8]| -> Vec<u8> {
        let mut id = b.to_vec();
        if !is_dir {
            id.push(b'.');
            id.extend_from_slice(&ext);
            id.extend_from_slice(b";1");
        }
        id
    };
    let mut id = make(&base);
    let mut n = 1u32;
    while taken.contains(&id) {
        let suffix = n.to_string();
        let keep = base.len().min(8 - suffix.len());
        let mut b = base[..keep].to_vec();
        b.extend_from_slice(suffix.as_bytes());
        id = make(&b);
        n += 1;
    }
    taken.insert(id.clone());
    id
}

/// Joliet identifier as UCS-2 big-endian bytes, at most 64 units, without a version
/// (like genisoimage; Linux, libarchive and Windows accept both); characters Joliet
/// forbids become `_`.
fn unique_joliet_id(name: &str, taken: &mut HashSet<Vec<u16>>) -> Vec<u8> {
    let max = JOLIET_MAX_UNITS;
    let units: Vec<u16> = name
        .chars()
        .map(|c| match c {
            '*' | '/' | ':' | ';' | '?' | '\\' => '_',
            c if (c as u32) < 0x20 => '_',
            c => c,
        })
        .flat_map(|c| {
            let mut buf = [0u16; 2];
            c.encode_utf16(&mut buf).to_vec()
        })
        .collect();
    let mut base: Vec<u16> = units.iter().copied().take(max).collect();
    // Never end on half of a surrogate pair.
    if base.last().is_some_and(|u| (0xD800..0xDC00).contains(u)) {
        base.pop();
    }
    let mut id = base.clone();
    let mut n = 1u32;
    while taken.contains(&id) {
        let suffix: Vec<u16> = format!("~{n}").encode_utf16().collect();
        let mut keep = base.len().min(max - suffix.len());
        if keep > 0 && (0xD800..0xDC00).contains(&base[keep - 1]) {
            keep -= 1;
        }
        id = base[..keep].to_vec();
        id.extend_from_slice(&suffix);
        n += 1;
    }
    taken.insert(id.clone());
    id.iter().flat_map(|u| u.to_be_bytes()).collect()
}

// ---------------------------------------------------------------------------------------
// Encoding helpers.

fn both16(v: u16) -> [u8; 4] {
    let l = v.to_le_bytes();
    let b = v.to_be_bytes();
    [l[0], l[1], b[0], b[1]]
}

fn both32(v: u32) -> [u8; 8] {
    let l = v.to_le_bytes();
    let b = v.to_be_bytes();
    [l[0], l[1], l[2], l[3], b[0], b[1], b[2], b[3]]
}

/// 7-byte directory record date (years since 1900, ..., GMT offset 0).
fn date7(c: &Civil) -> [u8; 7] {
    [
        (c.year - 1900) as u8,
        c.month,
        c.day,
        c.hour,
        c.minute,
        c.second,
        0,
    ]
}

/// 17-byte volume descriptor date (`YYYYMMDDHHMMSScc` + GMT offset 0).
fn date17(c: &Civil) -> [u8; 17] {
    let s = format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}00",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    );
    let mut out = [0u8; 17];
    out[..16].copy_from_slice(&s.as_bytes()[..16]);
    out
}

/// "Not specified" 17-byte date.
const DATE17_UNSET: [u8; 17] = *b"0000000000000000\0";

fn susp(sig: &[u8; 2], data: &[u8]) -> Vec<u8> {
    let mut e = Vec::with_capacity(4 + data.len());
    e.extend_from_slice(sig);
    e.push((4 + data.len()) as u8);
    e.push(1);
    e.extend_from_slice(data);
    e
}

fn px_entry(mode: u32, nlinks: u32) -> Vec<u8> {
    let mut d = Vec::with_capacity(32);
    d.extend_from_slice(&both32(mode));
    d.extend_from_slice(&both32(nlinks));
    d.extend_from_slice(&both32(0)); // uid
    d.extend_from_slice(&both32(0)); // gid
    susp(b"PX", &d)
}

fn tf_entry(date: &[u8; 7]) -> Vec<u8> {
    // Flags: modify (2) | access (4) | attributes (8), short form.
    let mut d = vec![0x0E];
    for _ in 0..3 {
        d.extend_from_slice(date);
    }
    susp(b"TF", &d)
}

/// Name bytes one `NM` entry can hold (its length byte counts the 5-byte header).
const NM_CHUNK: usize = 255 - 5;

/// `NM` entries for `name`: one per [`NM_CHUNK`] bytes, all but the last flagged
/// CONTINUE (RRIP 4.1.4), so names up to [`MAX_NAME_BYTES`] fit.
fn nm_entries(name: &str) -> Vec<Vec<u8>> {
    let chunks: Vec<&[u8]> = name.as_bytes().chunks(NM_CHUNK).collect();
    let last = chunks.len().saturating_sub(1);
    chunks
        .iter()
        .enumerate()
        .map(|(i, part)| {
            let mut d = vec![u8::from(i < last)];
            d.extend_from_slice(part);
            susp(b"NM", &d)
        })
        .collect()
}

fn er_entry() -> Vec<u8> {
    let mut d = vec![
        RRIP_ID.len() as u8,
        RRIP_DESCRIPTOR.len() as u8,
        RRIP_SOURCE.len() as u8,
        1,
    ];
    d.extend_from_slice(RRIP_ID);
    d.extend_from_slice(RRIP_DESCRIPTOR);
    d.extend_from_slice(RRIP_SOURCE);
    susp(b"ER", &d)
}

/// RRIP 1.09 `RR` flags: which entries follow.
fn rr_entry(has_nm: bool) -> Vec<u8> {
    let flags = 0x01 /* PX */ | 0x80 /* TF */ | if has_nm { 0x08 } else { 0 };
    susp(b"RR", &[flags])
}

const CE_LEN: usize = 28;

// ---------------------------------------------------------------------------------------
// Planning: every record's bytes and every extent.

/// What a record's extent points at.
#[derive(Clone, Copy)]
enum Target {
    PrimaryDir(usize),
    JolietDir(usize),
    File(usize),
}

struct Record {
    id: Vec<u8>,
    target: Target,
    is_dir: bool,
    /// System Use bytes kept in the record (before the `CE`, if any).
    su_inline: Vec<u8>,
    /// System Use bytes moved to a continuation area (empty: none).
    su_cont: Vec<u8>,
    /// Continuation area location (sector, byte offset), set during layout.
    ce_at: (u32, u32),
}

impl Record {
    fn len(&self) -> usize {
        let id = self.id.len();
        let ce = if self.su_cont.is_empty() { 0 } else { CE_LEN };
        let n = 33 + id + usize::from(id.is_multiple_of(2)) + self.su_inline.len() + ce;
        n + n % 2
    }
}

/// Split System Use entries between the record and a continuation area (in order, whole
/// entries), so the record stays within 255 bytes.
fn split_su(id_len: usize, entries: Vec<Vec<u8>>) -> (Vec<u8>, Vec<u8>) {
    let base = 33 + id_len + usize::from(id_len.is_multiple_of(2));
    let total: usize = entries.iter().map(Vec::len).sum();
    if base + total + (base + total) % 2 <= 255 {
        return (entries.concat(), Vec::new());
    }
    let budget = 255 - 1 - base - CE_LEN;
    let mut inline = Vec::new();
    let mut cont = Vec::new();
    for e in entries {
        if cont.is_empty() && inline.len() + e.len() <= budget {
            inline.extend_from_slice(&e);
        } else {
            cont.extend_from_slice(&e);
        }
    }
    (inline, cont)
}

struct DirPlan {
    records: Vec<Record>,
    /// Record byte offsets within the directory (no record crosses a sector).
    offsets: Vec<usize>,
    sectors: u32,
    extent: u32,
}

impl DirPlan {
    fn new(records: Vec<Record>) -> Self {
        let mut offsets = Vec::with_capacity(records.len());
        let mut pos = 0usize;
        for r in &records {
            let len = r.len();
            if pos % SECTOR_BYTES + len > SECTOR_BYTES {
                pos = pos.next_multiple_of(SECTOR_BYTES);
            }
            offsets.push(pos);
            pos += len;
        }
        let sectors = pos.div_ceil(SECTOR_BYTES).max(1) as u32;
        DirPlan {
            records,
            offsets,
            sectors,
            extent: 0,
        }
    }

    fn size(&self) -> u32 {
        self.sectors * SECTOR as u32
    }
}

struct Image {
    opts: WriteOptions,
    date7: [u8; 7],
    date17: [u8; 17],
    primary_order: Vec<usize>,
    joliet_order: Vec<usize>,
    /// Indexed by directory number (not order).
    primary: Vec<DirPlan>,
    joliet: Vec<DirPlan>,
    file_extent: Vec<u32>,
    path_l: Vec<u8>,
    path_m: Vec<u8>,
    jpath_l: Vec<u8>,
    jpath_m: Vec<u8>,
    pt_sectors: u32,
    jpt_sectors: u32,
    pt_l_at: u32,
    pt_m_at: u32,
    jpt_l_at: u32,
    jpt_m_at: u32,
    ce_start: u32,
    ce_sectors: u32,
    data_start: u32,
    total_sectors: u32,
}

/// Allocate `n` sectors at `*next`.
fn add(n: u32, next: &mut u32) -> Result<u32, IsoError> {
    let at = *next;
    *next = next
        .checked_add(n)
        .ok_or_else(|| invalid("image larger than 8 TiB (32-bit sector numbers)"))?;
    Ok(at)
}

/// Copy `bytes` into `head` at sector `at`.
fn put(head: &mut [u8], at: u32, bytes: &[u8]) {
    let o = at as usize * SECTOR_BYTES;
    head[o..o + bytes.len()].copy_from_slice(bytes);
}

fn sectors_for(bytes: usize) -> u32 {
    bytes.div_ceil(SECTOR_BYTES) as u32
}

impl Image {
    fn plan(tree: &Tree<'_>, opts: &WriteOptions) -> Result<Self, IsoError> {
        if opts.volume_id.len() > 32 {
            return Err(invalid(format!(
                "volume id {:?} is longer than 32 bytes",
                opts.volume_id
            )));
        }
        if !(-2_208_988_800..=5_869_583_999).contains(&opts.mtime) {
            return Err(invalid(format!(
                "mtime {} is outside 1900-2155, which ISO9660 dates can hold",
                opts.mtime
            )));
        }
        if tree.dirs.len() > usize::from(u16::MAX) {
            return Err(invalid(format!(
                "{} directories; path tables number at most 65535",
                tree.dirs.len()
            )));
        }
        let c = Civil::from_unix(opts.mtime);
        let d7 = date7(&c);
        let d17 = date17(&c);
        let rr = opts.rock_ridge;

        let primary_order = tree.bfs(false);
        let joliet_order = tree.bfs(true);

        // Primary directory records.
        let mut primary: Vec<DirPlan> = Vec::with_capacity(tree.dirs.len());
        for d in 0..tree.dirs.len() {
            let node = &tree.dirs[d];
            let nlinks = 2 + node.subdirs.len() as u32;
            let parent_links = 2 + tree.dirs[node.parent].subdirs.len() as u32;
            let mut recs = Vec::new();
            let dot_su = if rr {
                let mut e = Vec::new();
                if d == 0 {
                    e.push(susp(b"SP", &[0xBE, 0xEF, 0]));
                }
                e.push(rr_entry(false));
                e.push(px_entry(0o040_555, nlinks));
                e.push(tf_entry(&d7));
                if d == 0 {
                    e.push(er_entry());
                }
                e
            } else {
                Vec::new()
            };
            let (i, c) = split_su(1, dot_su);
            recs.push(Record {
                id: vec![0],
                target: Target::PrimaryDir(d),
                is_dir: true,
                su_inline: i,
                su_cont: c,
                ce_at: (0, 0),
            });
            let dotdot_su = if rr {
                vec![
                    rr_entry(false),
                    px_entry(0o040_555, parent_links),
                    tf_entry(&d7),
                ]
            } else {
                Vec::new()
            };
            let (i, c) = split_su(1, dotdot_su);
            recs.push(Record {
                id: vec![1],
                target: Target::PrimaryDir(node.parent),
                is_dir: true,
                su_inline: i,
                su_cont: c,
                ce_at: (0, 0),
            });
            for child in tree.sorted_children(d, false) {
                let id = tree.child_id(child, false).to_vec();
                let (target, is_dir, mode, links) = match child {
                    Child::Dir(s) => (
                        Target::PrimaryDir(s),
                        true,
                        0o040_555,
                        2 + tree.dirs[s].subdirs.len() as u32,
                    ),
                    Child::File(f) => (Target::File(f), false, 0o100_444, 1),
                };
                let su = if rr {
                    let mut e = vec![rr_entry(true), px_entry(mode, links), tf_entry(&d7)];
                    e.extend(nm_entries(tree.child_name(child)));
                    e
                } else {
                    Vec::new()
                };
                let (i, c) = split_su(id.len(), su);
                recs.push(Record {
                    id,
                    target,
                    is_dir,
                    su_inline: i,
                    su_cont: c,
                    ce_at: (0, 0),
                });
            }
            primary.push(DirPlan::new(recs));
        }

        // Joliet directory records.
        let mut joliet: Vec<DirPlan> = Vec::new();
        if opts.joliet {
            for d in 0..tree.dirs.len() {
                let mut recs = vec![
                    Record {
                        id: vec![0],
                        target: Target::JolietDir(d),
                        is_dir: true,
                        su_inline: Vec::new(),
                        su_cont: Vec::new(),
                        ce_at: (0, 0),
                    },
                    Record {
                        id: vec![1],
                        target: Target::JolietDir(tree.dirs[d].parent),
                        is_dir: true,
                        su_inline: Vec::new(),
                        su_cont: Vec::new(),
                        ce_at: (0, 0),
                    },
                ];
                for child in tree.sorted_children(d, true) {
                    let (target, is_dir) = match child {
                        Child::Dir(s) => (Target::JolietDir(s), true),
                        Child::File(f) => (Target::File(f), false),
                    };
                    recs.push(Record {
                        id: tree.child_id(child, true).to_vec(),
                        target,
                        is_dir,
                        su_inline: Vec::new(),
                        su_cont: Vec::new(),
                        ce_at: (0, 0),
                    });
                }
                joliet.push(DirPlan::new(recs));
            }
        }

        // Path tables (their size does not depend on extents).
        let pt_size = path_table(tree, &primary_order, &primary, false, false).len();
        let jpt_size = if opts.joliet {
            path_table(tree, &joliet_order, &joliet, true, false).len()
        } else {
            0
        };
        let pt_sectors = sectors_for(pt_size).max(1);
        let jpt_sectors = sectors_for(jpt_size);

        let mut next: u32 = 17 + u32::from(opts.joliet) + 1;
        let pt_l_at = next;
        let pt_m_at = pt_l_at + pt_sectors;
        next = pt_m_at + pt_sectors;
        let (jpt_l_at, jpt_m_at) = if opts.joliet {
            let l = next;
            let m = l + jpt_sectors;
            next = m + jpt_sectors;
            (l, m)
        } else {
            (0, 0)
        };
        for &d in &primary_order {
            primary[d].extent = add(primary[d].sectors, &mut next)?;
        }
        // Continuation areas: packed, none crossing a sector boundary.
        let ce_start = next;
        let mut ce_pos: usize = 0;
        for &d in &primary_order {
            for r in &mut primary[d].records {
                if r.su_cont.is_empty() {
                    continue;
                }
                let len = r.su_cont.len();
                if ce_pos % SECTOR_BYTES + len > SECTOR_BYTES {
                    ce_pos = ce_pos.next_multiple_of(SECTOR_BYTES);
                }
                r.ce_at = (
                    ce_start + (ce_pos / SECTOR_BYTES) as u32,
                    (ce_pos % SECTOR_BYTES) as u32,
                );
                ce_pos += len;
            }
        }
        let ce_sectors = sectors_for(ce_pos);
        next = ce_start + ce_sectors;
        for &d in &joliet_order {
            if let Some(j) = joliet.get_mut(d) {
                j.extent = add(j.sectors, &mut next)?;
            }
        }
        let data_start = next;
        let mut file_extent = vec![0u32; tree.files.len()];
        // File data in primary breadth-first order, each directory's files by identifier.
        for &d in &primary_order {
            for child in tree.sorted_children(d, false) {
                if let Child::File(f) = child {
                    let n = sectors_for(tree.files[f].data.len());
                    file_extent[f] = if n == 0 {
                        data_start
                    } else {
                        add(n, &mut next)?
                    };
                }
            }
        }
        let total_sectors = next
            .checked_add(PAD_SECTORS)
            .ok_or_else(|| invalid("image larger than 8 TiB (32-bit sector numbers)"))?;

        let mut img = Image {
            opts: opts.clone(),
            date7: d7,
            date17: d17,
            primary_order,
            joliet_order,
            primary,
            joliet,
            file_extent,
            path_l: Vec::new(),
            path_m: Vec::new(),
            jpath_l: Vec::new(),
            jpath_m: Vec::new(),
            pt_sectors,
            jpt_sectors,
            pt_l_at,
            pt_m_at,
            jpt_l_at,
            jpt_m_at,
            ce_start,
            ce_sectors,
            data_start,
            total_sectors,
        };
        img.path_l = path_table(tree, &img.primary_order, &img.primary, false, false);
        img.path_m = path_table(tree, &img.primary_order, &img.primary, false, true);
        if opts.joliet {
            img.jpath_l = path_table(tree, &img.joliet_order, &img.joliet, true, false);
            img.jpath_m = path_table(tree, &img.joliet_order, &img.joliet, true, true);
        }
        Ok(img)
    }

    fn extent_of(&self, t: Target, tree: &Tree<'_>) -> (u32, u32) {
        match t {
            Target::PrimaryDir(d) => (self.primary[d].extent, self.primary[d].size()),
            Target::JolietDir(d) => (self.joliet[d].extent, self.joliet[d].size()),
            Target::File(f) => (self.file_extent[f], tree.files[f].data.len() as u32),
        }
    }

    fn record_bytes(&self, r: &Record, tree: &Tree<'_>) -> Vec<u8> {
        let len = r.len();
        let (extent, size) = self.extent_of(r.target, tree);
        let mut b = Vec::with_capacity(len);
        b.push(len as u8);
        b.push(0);
        b.extend_from_slice(&both32(extent));
        b.extend_from_slice(&both32(size));
        b.extend_from_slice(&self.date7);
        b.push(if r.is_dir { 0x02 } else { 0 });
        b.push(0);
        b.push(0);
        b.extend_from_slice(&both16(1));
        b.push(r.id.len() as u8);
        b.extend_from_slice(&r.id);
        if r.id.len().is_multiple_of(2) {
            b.push(0);
        }
        b.extend_from_slice(&r.su_inline);
        if !r.su_cont.is_empty() {
            let mut d = Vec::with_capacity(24);
            d.extend_from_slice(&both32(r.ce_at.0));
            d.extend_from_slice(&both32(r.ce_at.1));
            d.extend_from_slice(&both32(r.su_cont.len() as u32));
            b.extend_from_slice(&susp(b"CE", &d));
        }
        b.resize(len, 0);
        b
    }

    fn dir_bytes(&self, plan: &DirPlan, tree: &Tree<'_>) -> Vec<u8> {
        let mut out = vec![0u8; plan.sectors as usize * SECTOR_BYTES];
        for (r, &off) in plan.records.iter().zip(&plan.offsets) {
            let b = self.record_bytes(r, tree);
            out[off..off + b.len()].copy_from_slice(&b);
        }
        out
    }

    fn descriptor(&self, joliet: bool, tree: &Tree<'_>) -> Vec<u8> {
        let mut v = vec![0u8; SECTOR_BYTES];
        v[0] = if joliet { 2 } else { 1 };
        v[1..6].copy_from_slice(b"CD001");
        v[6] = 1;
        let text = |v: &mut [u8], at: usize, len: usize, s: &str| {
            if joliet {
                // UCS-2 BE, padded with UCS-2 spaces.
                let units: Vec<u16> = s.encode_utf16().take(len / 2).collect();
                for k in 0..len / 2 {
                    let u = units.get(k).copied().unwrap_or(0x20);
                    v[at + 2 * k..at + 2 * k + 2].copy_from_slice(&u.to_be_bytes());
                }
            } else {
                let b = s.as_bytes();
                for k in 0..len {
                    v[at + k] = b.get(k).copied().unwrap_or(b' ');
                }
            }
        };
        text(&mut v, 8, 32, ""); // system identifier
        text(&mut v, 40, 32, &self.opts.volume_id);
        v[80..88].copy_from_slice(&both32(self.total_sectors));
        if joliet {
            v[88..91].copy_from_slice(b"%/E");
        }
        v[120..124].copy_from_slice(&both16(1));
        v[124..128].copy_from_slice(&both16(1));
        v[128..132].copy_from_slice(&both16(SECTOR as u16));
        let (pt_len, l_at, m_at) = if joliet {
            (self.jpath_l.len(), self.jpt_l_at, self.jpt_m_at)
        } else {
            (self.path_l.len(), self.pt_l_at, self.pt_m_at)
        };
        v[132..140].copy_from_slice(&both32(pt_len as u32));
        v[140..144].copy_from_slice(&l_at.to_le_bytes());
        v[148..152].copy_from_slice(&m_at.to_be_bytes());
        let root = Record {
            id: vec![0],
            target: if joliet {
                Target::JolietDir(0)
            } else {
                Target::PrimaryDir(0)
            },
            is_dir: true,
            su_inline: Vec::new(),
            su_cont: Vec::new(),
            ce_at: (0, 0),
        };
        let rb = self.record_bytes(&root, tree);
        v[156..156 + rb.len()].copy_from_slice(&rb);
        text(&mut v, 190, 128, ""); // volume set
        text(&mut v, 318, 128, ""); // publisher
        text(&mut v, 446, 128, ""); // data preparer
        text(&mut v, 574, 128, "CI-SEED"); // application
        text(&mut v, 702, 37, ""); // copyright file
        text(&mut v, 739, 37, ""); // abstract file
        text(&mut v, 776, 37, ""); // bibliographic file
        v[813..830].copy_from_slice(&self.date17);
        v[830..847].copy_from_slice(&self.date17);
        v[847..864].copy_from_slice(&DATE17_UNSET);
        v[864..881].copy_from_slice(&DATE17_UNSET);
        v[881] = 1;
        v
    }

    fn write<W: Write>(&self, out: &mut W, tree: &Tree<'_>) -> Result<(), IsoError> {
        let mut head = vec![0u8; self.data_start as usize * SECTOR_BYTES];
        put(&mut head, 16, &self.descriptor(false, tree));
        let mut next = 17;
        if self.opts.joliet {
            put(&mut head, 17, &self.descriptor(true, tree));
            next = 18;
        }
        let mut term = vec![0u8; SECTOR_BYTES];
        term[0] = 255;
        term[1..6].copy_from_slice(b"CD001");
        term[6] = 1;
        put(&mut head, next, &term);
        put(&mut head, self.pt_l_at, &self.path_l);
        put(&mut head, self.pt_m_at, &self.path_m);
        if self.opts.joliet {
            put(&mut head, self.jpt_l_at, &self.jpath_l);
            put(&mut head, self.jpt_m_at, &self.jpath_m);
        }
        for plan in &self.primary {
            put(&mut head, plan.extent, &self.dir_bytes(plan, tree));
            for r in &plan.records {
                if !r.su_cont.is_empty() {
                    let o = r.ce_at.0 as usize * SECTOR_BYTES + r.ce_at.1 as usize;
                    head[o..o + r.su_cont.len()].copy_from_slice(&r.su_cont);
                }
            }
        }
        for plan in &self.joliet {
            put(&mut head, plan.extent, &self.dir_bytes(plan, tree));
        }
        debug_assert!(self.ce_start + self.ce_sectors <= self.data_start);
        debug_assert!(self.pt_sectors > 0 && (self.jpt_sectors > 0) == self.opts.joliet);
        out.write_all(&head)?;
        let zeros = vec![0u8; SECTOR_BYTES];
        let mut at = self.data_start;
        for &d in &self.primary_order {
            for child in tree.sorted_children(d, false) {
                let Child::File(f) = child else { continue };
                let data = tree.files[f].data;
                if data.is_empty() {
                    continue;
                }
                debug_assert_eq!(self.file_extent[f], at);
                out.write_all(data)?;
                let pad = (SECTOR_BYTES - data.len() % SECTOR_BYTES) % SECTOR_BYTES;
                out.write_all(&zeros[..pad])?;
                at += sectors_for(data.len());
            }
        }
        for _ in 0..PAD_SECTORS {
            out.write_all(&zeros)?;
        }
        out.flush()?;
        Ok(())
    }
}

/// One path table (L: little-endian numbers, M: big-endian), directories in `order`.
fn path_table(
    tree: &Tree<'_>,
    order: &[usize],
    plans: &[DirPlan],
    joliet: bool,
    big_endian: bool,
) -> Vec<u8> {
    let mut number = vec![0u16; tree.dirs.len()];
    for (i, &d) in order.iter().enumerate() {
        number[d] = (i + 1) as u16;
    }
    let mut out = Vec::new();
    for &d in order {
        let node = &tree.dirs[d];
        let id: &[u8] = if d == 0 {
            &[0]
        } else if joliet {
            &node.joliet_id
        } else {
            &node.iso_id
        };
        let extent = plans.get(d).map_or(0, |p| p.extent);
        let parent = number[node.parent];
        out.push(id.len() as u8);
        out.push(0);
        if big_endian {
            out.extend_from_slice(&extent.to_be_bytes());
            out.extend_from_slice(&parent.to_be_bytes());
        } else {
            out.extend_from_slice(&extent.to_le_bytes());
            out.extend_from_slice(&parent.to_le_bytes());
        }
        out.extend_from_slice(id);
        if id.len() % 2 == 1 {
            out.push(0);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        let c = Civil::from_unix(0);
        assert_eq!((c.year, c.month, c.day, c.hour), (1970, 1, 1, 0));
        let c = Civil::from_unix(951_782_400); // 2000-02-29
        assert_eq!((c.year, c.month, c.day), (2000, 2, 29));
        let c = Civil::from_unix(1_700_000_000); // 2023-11-14 22:13:20
        assert_eq!(
            (c.year, c.month, c.day, c.hour, c.minute, c.second),
            (2023, 11, 14, 22, 13, 20)
        );
        let c = Civil::from_unix(-1);
        assert_eq!((c.year, c.month, c.day, c.second), (1969, 12, 31, 59));
    }

    #[test]
    fn iso_ids_are_8_3_and_unique() {
        let mut t = HashSet::new();
        assert_eq!(unique_iso_id("user-data", false, &mut t), b"USER_DAT.;1");
        assert_eq!(unique_iso_id("user-data2", false, &mut t), b"USER_DA1.;1");
        assert_eq!(
            unique_iso_id("notes.markdown", false, &mut t),
            b"NOTES.MAR;1"
        );
        assert_eq!(unique_iso_id(".hidden", false, &mut t), b"_HIDDEN.;1");
        assert_eq!(unique_iso_id("some.dir", true, &mut t), b"SOME_DIR");
    }

    #[test]
    fn joliet_ids_are_bounded_and_unique() {
        let mut t = HashSet::new();
        let long = "x".repeat(100);
        let a = unique_joliet_id(&long, &mut t);
        assert_eq!(a.len(), 64 * 2);
        let b = unique_joliet_id(&long, &mut t);
        assert_ne!(a, b);
        assert_eq!(b.len(), 64 * 2);
    }

    #[test]
    fn bad_paths_are_refused() {
        let o = WriteOptions::default();
        for p in ["", "/abs", "a//b", "a/../b", "a/./b"] {
            assert!(image_bytes(&[(p.to_string(), vec![])], &o).is_err(), "{p}");
        }
        let dup = [("a".to_string(), vec![]), ("a".to_string(), vec![1])];
        assert!(image_bytes(&dup, &o).is_err());
        let clash = [("a".to_string(), vec![]), ("a/b".to_string(), vec![1])];
        assert!(image_bytes(&clash, &o).is_err());
        let deep = [("1/2/3/4/5/6/7/8/9".to_string(), vec![])];
        assert!(image_bytes(&deep, &o).is_err());
    }
}
