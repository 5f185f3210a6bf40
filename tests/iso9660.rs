//! ISO9660 codec tests: our reader on images made by genisoimage and xorriso, our writer's
//! images read by isoinfo, xorriso, bsdtar and our reader, hostile images built by
//! corrupting real ones byte-wise, and a proptest round trip.
//!
//! The external tools are Debian's genisoimage (+isoinfo), xorriso and libarchive-tools.
//! A missing tool skips its test with a loud message, except under CI (`CI` set), where
//! it fails: CI installs them.

mod common;

use common::{both32, ce_pointing_at_itself, have};
use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::Command;

use ci_agent::formats::iso9660::write::{image_bytes, write_image, WriteOptions};
use ci_agent::formats::iso9660::{self, CountingReader, EntryKind, IsoError, IsoImage, NameSource};

const MAX: u64 = 16 << 20;

type Files = Vec<(String, Vec<u8>)>;

fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Deterministic pseudo-random bytes.
fn bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

const LONG60: &str = "a-rather-long-file-name-that-does-not-fit-8.3-names-0123.txt";

/// The seed-like set every tool test uses: > 1 sector, empty, subdirectory, long name,
/// and enough files for a multi-sector root directory.
fn sample(long_rr_name: bool) -> Files {
    let mut v: Files = vec![
        (
            "user-data".into(),
            b"#cloud-config\nhostname: test\n".to_vec(),
        ),
        ("meta-data".into(), b"instance-id: i-1\n".to_vec()),
        ("big.bin".into(), bytes(1, 5000)),
        ("empty".into(), Vec::new()),
        ("sub/inner.txt".into(), b"inner\n".to_vec()),
        ("sub/deeper/leaf".into(), bytes(2, 2048)),
        (LONG60.into(), b"long\n".to_vec()),
    ];
    for i in 0..70 {
        v.push((
            format!("many-file-{i:03}-with-a-longer-name.cfg"),
            bytes(100 + i, i as usize),
        ));
    }
    if long_rr_name {
        v.push(("r".repeat(200), b"two hundred\n".to_vec()));
    }
    v
}

fn sorted(mut v: Files) -> Files {
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn assert_same(got: Files, want: &[(String, Vec<u8>)]) {
    let got = sorted(got);
    let want = sorted(want.to_vec());
    let names = |v: &Files| {
        v.iter()
            .map(|(n, d)| (n.clone(), d.len()))
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&got), names(&want), "names/sizes differ");
    for ((n, a), (_, b)) in got.iter().zip(&want) {
        assert!(a == b, "contents of {n} differ");
    }
}

fn root_only(v: &[(String, Vec<u8>)]) -> Files {
    v.iter()
        .filter(|(n, _)| !n.contains('/'))
        .cloned()
        .collect()
}

fn make_tree(dir: &Path, files: &[(String, Vec<u8>)]) {
    for (name, data) in files {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }
}

fn read_tree(dir: &Path) -> Files {
    fn walk(base: &Path, dir: &Path, out: &mut Files) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out
}

/// Build an image from `files` with `tool` and extra `args`.
fn build_with(tool: &str, args: &[&str], files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src, files);
    let out = tmp.path().join("out.iso");
    let mut cmd = Command::new(tool);
    if tool == "xorriso" {
        cmd.args(["-as", "mkisofs"]);
    }
    cmd.arg("-quiet").arg("-o").arg(&out).args(args).arg(&src);
    run(&mut cmd);
    std::fs::read(out).unwrap()
}

fn check_reader(img: &[u8], files: &[(String, Vec<u8>)], names: NameSource) {
    assert_eq!(
        iso9660::volume_id(&mut Cursor::new(img))
            .unwrap()
            .as_deref(),
        Some("cidata")
    );
    let mut iso = IsoImage::open(Cursor::new(img)).unwrap();
    assert_eq!(iso.name_source(), names);
    assert_same(iso.read_all_files(MAX).unwrap(), files);
    assert_same(
        iso9660::read_root_files(&mut Cursor::new(img), MAX).unwrap(),
        &root_only(files),
    );
    // Case-insensitive lookup, and the subdirectory is listed as one.
    let mut iso = IsoImage::open(Cursor::new(img)).unwrap();
    assert_eq!(
        iso.read_file("USER-DATA", MAX).unwrap(),
        files.iter().find(|f| f.0 == "user-data").unwrap().1
    );
    let root = iso.list_dir("/").unwrap();
    assert!(root
        .iter()
        .any(|e| e.name.eq_ignore_ascii_case("sub") && e.kind == EntryKind::Dir));
}

// ---------------------------------------------------------------------------------------
// Reader on real tools' images.

#[test]
fn reads_genisoimage_joliet_rock() {
    if !have("genisoimage") {
        return;
    }
    let files = sample(true);
    let img = build_with("genisoimage", &["-V", "cidata", "-J", "-R"], &files);
    check_reader(&img, &files, NameSource::RockRidge);
}

#[test]
fn reads_genisoimage_rock_only() {
    if !have("genisoimage") {
        return;
    }
    let files = sample(true);
    let img = build_with("genisoimage", &["-V", "cidata", "-R"], &files);
    check_reader(&img, &files, NameSource::RockRidge);
    assert!(!IsoImage::open(Cursor::new(&img)).unwrap().has_joliet());
}

#[test]
fn reads_genisoimage_joliet_only() {
    if !have("genisoimage") {
        return;
    }
    let files = sample(false);
    let img = build_with("genisoimage", &["-V", "cidata", "-J"], &files);
    check_reader(&img, &files, NameSource::Joliet);
}

#[test]
fn reads_xorriso_rock_joliet() {
    if !have("xorriso") {
        return;
    }
    let files = sample(true);
    let img = build_with("xorriso", &["-V", "cidata", "-R", "-J"], &files);
    check_reader(&img, &files, NameSource::RockRidge);
}

#[test]
fn reads_plain_genisoimage_8_3_names() {
    if !have("genisoimage") {
        return;
    }
    let files: Files = vec![
        ("USERDATA".into(), b"#cloud-config\n".to_vec()),
        ("META.TXT".into(), b"instance-id: x\n".to_vec()),
        ("BIG.BIN".into(), bytes(3, 9000)),
        ("EMPTY".into(), Vec::new()),
        ("SUB/FILE.TXT".into(), b"f\n".to_vec()),
    ];
    let img = build_with("genisoimage", &["-V", "cidata"], &files);
    let mut iso = IsoImage::open(Cursor::new(&img)).unwrap();
    assert_eq!(iso.name_source(), NameSource::Plain);
    let lower: Files = files
        .iter()
        .map(|(n, d)| (n.to_ascii_lowercase(), d.clone()))
        .collect();
    assert_same(iso.read_all_files(MAX).unwrap(), &lower);
    assert_eq!(iso.read_file("userdata", MAX).unwrap(), b"#cloud-config\n");
    assert_eq!(iso.read_file("Sub/File.Txt", MAX).unwrap(), b"f\n");
}

#[test]
fn cloud_localds_seed_is_read() {
    if !have("cloud-localds") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let ud = tmp.path().join("ud");
    let md = tmp.path().join("md");
    std::fs::write(&ud, b"#cloud-config\npassword: x\n").unwrap();
    std::fs::write(&md, b"instance-id: iid-1\nlocal-hostname: h\n").unwrap();
    let out = tmp.path().join("seed.iso");
    run(Command::new("cloud-localds").arg(&out).arg(&ud).arg(&md));
    let img = std::fs::read(&out).unwrap();
    let files = iso9660::read_root_files(&mut Cursor::new(&img), MAX).unwrap();
    assert_same(
        files,
        &[
            ("user-data".into(), b"#cloud-config\npassword: x\n".to_vec()),
            (
                "meta-data".into(),
                b"instance-id: iid-1\nlocal-hostname: h\n".to_vec(),
            ),
        ],
    );
}

#[test]
fn sector_reads_are_counted() {
    let files: Files = vec![
        ("user-data".into(), bytes(5, 3000)),
        ("meta-data".into(), b"instance-id: a\n".to_vec()),
    ];
    let img = image_bytes(&files, &WriteOptions::default()).unwrap();
    let mut iso = IsoImage::open(Cursor::new(&img)).unwrap();
    let after_open = iso.stats();
    assert!(after_open.sector_reads >= 3, "{after_open:?}"); // PVD, SVD, terminator, root
    iso.read_root_files(MAX).unwrap();
    let s = iso.stats();
    // root directory once more, then 2 + 1 sectors of data
    assert_eq!(s.sector_reads - after_open.sector_reads, 1 + 2 + 1, "{s:?}");
    assert!(s.read_calls <= s.sector_reads);

    // The whole discovery (probe, then read) through the counting wrapper.
    let mut r = CountingReader::new(Cursor::new(&img));
    assert_eq!(
        iso9660::volume_id(&mut r).unwrap().as_deref(),
        Some("cidata")
    );
    assert_eq!(r.stats().sector_reads, 1);
    iso9660::read_root_files(&mut r, MAX).unwrap();
    assert_eq!(r.stats().sector_reads, 1 + 4 + 4);
}

// ---------------------------------------------------------------------------------------
// Writer, checked by the other tools.

fn write_tmp(files: &[(String, Vec<u8>)], opts: &WriteOptions) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("seed.iso");
    let mut f = std::fs::File::create(&p).unwrap();
    write_image(&mut f, files, opts).unwrap();
    (tmp, p)
}

#[test]
fn writer_round_trips_through_our_reader() {
    let files = sample(true);
    let img = image_bytes(&files, &WriteOptions::default()).unwrap();
    check_reader(&img, &files, NameSource::RockRidge);
    assert_eq!(img.len() % 2048, 0);
    let iso = IsoImage::open(Cursor::new(&img)).unwrap();
    assert!(iso.has_joliet());
    assert_eq!(u64::from(iso.volume_sectors()) * 2048, img.len() as u64);
}

#[test]
fn writer_joliet_only_and_plain_trees() {
    let files = sample(false);
    let opts = WriteOptions {
        rock_ridge: false,
        ..WriteOptions::default()
    };
    let img = image_bytes(&files, &opts).unwrap();
    check_reader(&img, &files, NameSource::Joliet);

    let opts = WriteOptions {
        rock_ridge: false,
        joliet: false,
        ..WriteOptions::default()
    };
    let img = image_bytes(&files, &opts).unwrap();
    let mut iso = IsoImage::open(Cursor::new(&img)).unwrap();
    assert_eq!(iso.name_source(), NameSource::Plain);
    assert_eq!(iso.read_file("user_dat", MAX).unwrap(), files[0].1);
    assert_eq!(iso.read_all_files(MAX).unwrap().len(), files.len());
}

#[test]
fn writer_is_deterministic_and_order_independent() {
    let files = sample(true);
    let opts = WriteOptions {
        mtime: 1_700_000_000,
        ..WriteOptions::default()
    };
    let a = image_bytes(&files, &opts).unwrap();
    let b = image_bytes(&files, &opts).unwrap();
    assert!(a == b);
    let mut rev = files.clone();
    rev.reverse();
    assert!(a == image_bytes(&rev, &opts).unwrap());
    let other = WriteOptions {
        mtime: 1_700_000_001,
        ..opts.clone()
    };
    assert!(a != image_bytes(&files, &other).unwrap());
}

#[test]
fn isoinfo_reads_our_image() {
    if !have("isoinfo") {
        return;
    }
    let files = sample(true);
    let (_t, p) = write_tmp(&files, &WriteOptions::default());
    let d = String::from_utf8(run(Command::new("isoinfo").arg("-d").arg("-i").arg(&p))).unwrap();
    assert!(d.contains("Volume id: cidata"), "{d}");
    assert!(d.contains("Rock Ridge signatures version 1 found"), "{d}");
    assert!(d.contains("Joliet with UCS level 3 found"), "{d}");
    let rl = String::from_utf8(run(Command::new("isoinfo")
        .args(["-R", "-l", "-i"])
        .arg(&p)))
    .unwrap();
    for (n, _) in &files {
        let leaf = n.rsplit('/').next().unwrap();
        assert!(
            rl.contains(&format!(" {leaf} ")),
            "isoinfo -R -l lacks {leaf}:\n{rl}"
        );
    }
    let jl = String::from_utf8(run(Command::new("isoinfo")
        .args(["-J", "-l", "-i"])
        .arg(&p)))
    .unwrap();
    for (n, _) in files.iter().filter(|f| f.0.len() <= 64) {
        let leaf = n.rsplit('/').next().unwrap();
        assert!(
            jl.contains(&format!(" {leaf} ")),
            "isoinfo -J -l lacks {leaf}:\n{jl}"
        );
    }
    for (n, data) in files.iter().filter(|f| f.0.len() <= 64) {
        let got = run(Command::new("isoinfo")
            .arg("-R")
            .arg("-x")
            .arg(format!("/{n}"))
            .arg("-i")
            .arg(&p));
        assert!(&got == data, "isoinfo -R -x /{n} differs");
        let got = run(Command::new("isoinfo")
            .arg("-J")
            .arg("-x")
            .arg(format!("/{n}"))
            .arg("-i")
            .arg(&p));
        assert!(&got == data, "isoinfo -J -x /{n} differs");
    }
}

#[test]
fn xorriso_reads_our_image() {
    if !have("xorriso") {
        return;
    }
    let files = sample(true);
    let (t, p) = write_tmp(&files, &WriteOptions::default());
    let ls = String::from_utf8(run(Command::new("xorriso")
        .args(["-abort_on", "WARNING", "-indev"])
        .arg(&p)
        .args(["-ls", "/"])))
    .unwrap();
    assert!(ls.contains("'user-data'"), "{ls}");
    assert!(ls.contains("'sub'"), "{ls}");
    let out = t.path().join("x");
    run(Command::new("xorriso")
        .args(["-abort_on", "WARNING", "-osirrox", "on", "-indev"])
        .arg(&p)
        .args(["-extract", "/"])
        .arg(&out));
    assert_same(read_tree(&out), &files);
}

#[test]
fn bsdtar_reads_our_image() {
    if !have("bsdtar") {
        return;
    }
    let files = sample(true);
    let (t, p) = write_tmp(&files, &WriteOptions::default());
    let list = String::from_utf8(run(Command::new("bsdtar").arg("-tf").arg(&p))).unwrap();
    let mut listed: Vec<&str> = list
        .lines()
        .map(|l| l.trim_end_matches('/'))
        .filter(|l| !l.is_empty() && *l != "." && !["sub", "sub/deeper"].contains(l))
        .collect();
    listed.sort_unstable();
    let mut want: Vec<&str> = files.iter().map(|f| f.0.as_str()).collect();
    want.sort_unstable();
    assert_eq!(listed, want);
    let ud = run(Command::new("bsdtar").arg("-xOf").arg(&p).arg("user-data"));
    assert_eq!(ud, files[0].1);
    let out = t.path().join("x");
    std::fs::create_dir(&out).unwrap();
    run(Command::new("bsdtar")
        .arg("-xf")
        .arg(&p)
        .arg("-C")
        .arg(&out));
    assert_same(read_tree(&out), &files);
}

#[test]
fn path_tables_match_the_directories() {
    let files = sample(true);
    let img = image_bytes(&files, &WriteOptions::default()).unwrap();
    let le32 = |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
    let be32 = |b: &[u8], at: usize| u32::from_be_bytes(b[at..at + 4].try_into().unwrap());
    for (sector, joliet) in [(16usize, false), (17, true)] {
        let vd = &img[sector * 2048..(sector + 1) * 2048];
        let size = le32(vd, 132) as usize;
        let l = &img[le32(vd, 140) as usize * 2048..][..size];
        let m = &img[be32(vd, 148) as usize * 2048..][..size];
        let parse = |t: &[u8], big: bool| {
            let mut v = Vec::new();
            let mut i = 0;
            while i < t.len() {
                let n = t[i] as usize;
                let ext = if big { be32(t, i + 2) } else { le32(t, i + 2) };
                let par = if big {
                    u16::from_be_bytes([t[i + 6], t[i + 7]])
                } else {
                    u16::from_le_bytes([t[i + 6], t[i + 7]])
                };
                v.push((t[i + 8..i + 8 + n].to_vec(), ext, par));
                i += 8 + n + n % 2;
            }
            v
        };
        let lt = parse(l, false);
        assert_eq!(
            lt,
            parse(m, true),
            "L and M tables differ (joliet={joliet})"
        );
        assert_eq!(lt.len(), 3); // root, sub, sub/deeper
        assert_eq!(lt[0].0, vec![0]);
        assert_eq!(lt[0].2, 1);
        assert_eq!(lt[1].2, 1);
        assert_eq!(lt[2].2, 2);
        // Extents agree with what the directory records say.
        let mut iso = IsoImage::open(Cursor::new(&img)).unwrap();
        let root = iso.lookup("").unwrap().sector();
        let sub = iso.lookup("sub").unwrap().sector();
        let deeper = iso.lookup("sub/deeper").unwrap().sector();
        if !joliet {
            assert_eq!(
                lt.iter().map(|e| u64::from(e.1)).collect::<Vec<_>>(),
                vec![root, sub, deeper]
            );
            assert_eq!(lt[1].0, b"SUB");
        } else {
            assert_eq!(lt[1].0, b"\0s\0u\0b");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Hostile images: corrupt real ones byte-wise; every case is a typed error, no panic.

fn small_files() -> Files {
    vec![
        ("user-data".into(), b"#cloud-config\n".to_vec()),
        ("meta-data".into(), b"instance-id: a\n".to_vec()),
        ("sub/inner".into(), b"x\n".to_vec()),
        ("n".repeat(200), b"long\n".to_vec()),
    ]
}

/// Offset of the primary directory record whose identifier is `id` in the directory at
/// `dir_sector`.
fn record_offset(img: &[u8], dir_sector: u64, id: &[u8]) -> usize {
    let start = dir_sector as usize * 2048;
    let mut pos = start;
    while pos < start + 2048 {
        let len = img[pos] as usize;
        if len == 0 {
            break;
        }
        let n = img[pos + 32] as usize;
        if &img[pos + 33..pos + 33 + n] == id {
            return pos;
        }
        pos += len;
    }
    panic!("record {id:?} not found");
}

fn ours() -> (Vec<u8>, u64) {
    let img = image_bytes(&small_files(), &WriteOptions::default()).unwrap();
    let root = IsoImage::open(Cursor::new(&img))
        .unwrap()
        .lookup("")
        .unwrap()
        .sector();
    (img, root)
}

fn open_and_read_all(img: &[u8]) -> Result<Files, IsoError> {
    IsoImage::open(Cursor::new(img))?.read_all_files(MAX)
}

#[test]
fn wrong_magic_is_not_iso() {
    let (mut img, _) = ours();
    img[16 * 2048 + 1..16 * 2048 + 6].copy_from_slice(b"CD002");
    assert_eq!(iso9660::volume_id(&mut Cursor::new(&img)).unwrap(), None);
    assert!(matches!(
        iso9660::read_root_files(&mut Cursor::new(&img), MAX),
        Err(IsoError::NotIso(_))
    ));
    // A FAT image or random bytes are not ISO either.
    assert_eq!(
        iso9660::volume_id(&mut Cursor::new(vec![0u8; 100])).unwrap(),
        None
    );
}

#[test]
fn truncated_images_are_errors() {
    let (img, root) = ours();
    let ud = IsoImage::open(Cursor::new(&img))
        .unwrap()
        .lookup("user-data")
        .unwrap()
        .sector();
    for cut in [
        0,
        1000,
        16 * 2048 + 100,
        17 * 2048,
        root as usize * 2048 + 10,
        ud as usize * 2048 + 3,
    ] {
        let r = iso9660::read_root_files(&mut Cursor::new(&img[..cut]), MAX);
        assert!(
            matches!(r, Err(IsoError::NotIso(_) | IsoError::Truncated { .. })),
            "cut at {cut}: {r:?}"
        );
    }
}

#[test]
fn extent_past_end_is_an_error() {
    let (mut img, root) = ours();
    let at = record_offset(&img, root, b"USER_DAT.;1");
    img[at + 2..at + 10].copy_from_slice(&both32(0x00FF_FFF0));
    let err = iso9660::read_root_files(&mut Cursor::new(&img), MAX).unwrap_err();
    assert!(matches!(err, IsoError::Truncated { .. }), "{err}");
    assert!(err.to_string().contains("user-data"), "{err}");
}

#[test]
fn four_gib_sizes_are_refused_without_allocating() {
    let (mut img, root) = ours();
    let at = record_offset(&img, root, b"USER_DAT.;1");
    img[at + 10..at + 18].copy_from_slice(&both32(u32::MAX));
    let err = iso9660::read_root_files(&mut Cursor::new(&img), MAX).unwrap_err();
    assert!(
        matches!(&err, IsoError::FileTooLarge { name, size: 4_294_967_295, limit: MAX } if name == "user-data"),
        "{err}"
    );
    assert!(err.to_string().contains("16777216"), "{err}");
    // With no limit, the extent check still refuses before allocating 4 GiB.
    let err = iso9660::read_root_files(&mut Cursor::new(&img), u64::MAX).unwrap_err();
    assert!(matches!(err, IsoError::Truncated { .. }), "{err}");
    // A 4 GiB root directory.
    let (mut img, _) = ours();
    img[16 * 2048 + 156 + 10..16 * 2048 + 156 + 18].copy_from_slice(&both32(u32::MAX));
    let err = iso9660::read_root_files(&mut Cursor::new(&img), MAX).unwrap_err();
    assert!(
        matches!(err, IsoError::Unsupported(_) | IsoError::Truncated { .. }),
        "{err}"
    );
}

#[test]
fn max_file_limit_names_the_file() {
    let (img, _) = ours();
    let err = iso9660::read_root_files(&mut Cursor::new(&img), 10).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("limit of 10 bytes"), "{msg}");
    assert!(
        msg.contains("user-data") || msg.contains("meta-data"),
        "{msg}"
    );
}

#[test]
fn directory_loops_are_detected() {
    let (mut img, root) = ours();
    let at = record_offset(&img, root, b"SUB");
    img[at + 2..at + 10].copy_from_slice(&both32(root as u32));
    let err = open_and_read_all(&img).unwrap_err();
    assert!(matches!(err, IsoError::DirectoryLoop { .. }), "{err}");
    // The root's own files are still readable: a loop below does not matter there.
    assert_eq!(
        iso9660::read_root_files(&mut Cursor::new(&img), MAX)
            .unwrap()
            .len(),
        3
    );
}

#[test]
fn zero_and_short_record_lengths() {
    // A zero length ends the sector's records: fewer entries, no hang.
    let (mut img, root) = ours();
    let at = record_offset(&img, root, b"META_DAT.;1");
    img[at] = 0;
    let files = iso9660::read_root_files(&mut Cursor::new(&img), MAX).unwrap();
    assert!(files.len() < 3, "{files:?}");
    // A non-zero length below the minimum is an error.
    let (mut img, root) = ours();
    let at = record_offset(&img, root, b"META_DAT.;1");
    img[at] = 5;
    let err = iso9660::read_root_files(&mut Cursor::new(&img), MAX).unwrap_err();
    assert!(matches!(err, IsoError::BadRecord { .. }), "{err}");
    // A length running past the sector end.
    img[at] = 255;
    let r = iso9660::read_root_files(&mut Cursor::new(&img), MAX);
    assert!(r.is_err() || r.unwrap().len() <= 3);
}

/// The `CE` entry of the 200-character name's record: (record offset, CE entry offset).
fn long_name_ce(img: &[u8], root: u64) -> usize {
    let start = root as usize * 2048;
    let dir = &img[start..start + 2048];
    let rec = dir
        .windows(4)
        .position(|w| w == b"CE\x1c\x01")
        .expect("a CE entry in the root directory");
    // The root `.` record has one too (for ER); take the last one (the long name sorts
    // after `.`).
    let last = dir.windows(4).rposition(|w| w == b"CE\x1c\x01").unwrap();
    let _ = rec;
    start + last
}

#[test]
fn ce_loops_and_ce_past_end_are_errors() {
    let (img0, root) = ours();
    let ce = long_name_ce(&img0, root);

    // CE pointing past the end.
    let mut img = img0.clone();
    img[ce + 4..ce + 12].copy_from_slice(&both32(0x00FF_FFFF));
    let err = iso9660::read_root_files(&mut Cursor::new(&img), MAX).unwrap_err();
    assert!(matches!(err, IsoError::BadSusp { .. }), "{err}");

    // The continuation area starts with a CE pointing at itself.
    let mut img = img0.clone();
    ce_pointing_at_itself(&mut img, ce);
    let err = iso9660::read_root_files(&mut Cursor::new(&img), MAX).unwrap_err();
    assert!(matches!(err, IsoError::BadSusp { .. }), "{err}");
    assert!(err.to_string().contains("loop"), "{err}");

    // A continuation area longer than a sector.
    let mut img = img0.clone();
    img[ce + 20..ce + 28].copy_from_slice(&both32(100_000));
    let err = iso9660::read_root_files(&mut Cursor::new(&img), MAX).unwrap_err();
    assert!(matches!(err, IsoError::BadSusp { .. }), "{err}");
}

#[test]
fn continued_nm_names_are_joined() {
    // genisoimage splits a 200-character name across NM entries (record + CE area).
    if !have("genisoimage") {
        return;
    }
    let files: Files = vec![("q".repeat(230), b"z".to_vec())];
    let img = build_with("genisoimage", &["-V", "cidata", "-R"], &files);
    assert_same(
        iso9660::read_root_files(&mut Cursor::new(&img), MAX).unwrap(),
        &files,
    );
}

#[test]
fn multi_extent_files_are_refused() {
    let (mut img, root) = ours();
    let at = record_offset(&img, root, b"USER_DAT.;1");
    img[at + 25] |= 0x80;
    let err = iso9660::read_root_files(&mut Cursor::new(&img), MAX).unwrap_err();
    assert!(matches!(err, IsoError::MultiExtent { .. }), "{err}");
}

#[test]
fn hostile_rock_ridge_names_are_refused() {
    let (mut img, root) = ours();
    let start = root as usize * 2048;
    let pos = img[start..start + 2048]
        .windows(9)
        .position(|w| w == b"user-data")
        .unwrap();
    img[start + pos..start + pos + 9].copy_from_slice(b"../passwd");
    let err = iso9660::read_root_files(&mut Cursor::new(&img), MAX).unwrap_err();
    assert!(matches!(err, IsoError::BadRecord { .. }), "{err}");
}

#[test]
fn bad_block_size_is_unsupported() {
    let (mut img, _) = ours();
    img[16 * 2048 + 128..16 * 2048 + 132].copy_from_slice(&[0, 2, 2, 0]); // 512
    assert!(matches!(
        open_and_read_all(&img),
        Err(IsoError::Unsupported(_))
    ));
}

// ---------------------------------------------------------------------------------------
// Property tests.

mod props {
    use super::*;
    use proptest::prelude::*;

    fn name() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z][a-z0-9-]{0,12}",
            "[A-Za-z0-9][A-Za-z0-9._-]{0,40}",
            "[a-z]{60,120}",
        ]
        .prop_filter("not . or ..", |s| s != "." && s != "..")
    }

    fn size() -> impl Strategy<Value = usize> {
        prop_oneof![
            6 => 0usize..3000,
            1 => 0usize..(4 << 20),
        ]
    }

    fn file_set() -> impl Strategy<Value = Files> {
        proptest::collection::vec(
            (
                proptest::collection::vec(name(), 1..4),
                size(),
                any::<u64>(),
            ),
            1..8,
        )
        .prop_map(|entries| {
            let mut map: BTreeMap<String, Vec<u8>> = BTreeMap::new();
            for (comps, size, seed) in entries {
                let path = comps.join("/");
                // Skip paths clashing with an existing file/directory.
                let clash = map.keys().any(|k| {
                    k == &path
                        || k.starts_with(&format!("{path}/"))
                        || path.starts_with(&format!("{k}/"))
                });
                if !clash {
                    map.insert(path, bytes(seed, size));
                }
            }
            map.into_iter().collect()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

        #[test]
        fn writer_reader_round_trip(files in file_set(), rr in any::<bool>(), mtime in 0i64..4_000_000_000) {
            let opts = WriteOptions { mtime, rock_ridge: rr, joliet: true, ..WriteOptions::default() };
            let img = image_bytes(&files, &opts).unwrap();
            let mut iso = IsoImage::open(Cursor::new(&img)).unwrap();
            let got = iso.read_all_files(8 << 20).unwrap();
            if rr {
                assert_same(got, &files);
            } else {
                // Joliet keeps at most 64 characters of a name.
                prop_assert_eq!(got.len(), files.len());
                let total: usize = got.iter().map(|f| f.1.len()).sum();
                prop_assert_eq!(total, files.iter().map(|f| f.1.len()).sum::<usize>());
            }
        }

        #[test]
        fn corrupt_images_never_panic(flips in proptest::collection::vec((0usize..40 * 2048, any::<u8>()), 1..16)) {
            let (mut img, _) = ours();
            for (at, v) in flips {
                if at < img.len() {
                    img[at] = v;
                }
            }
            let _ = iso9660::volume_id(&mut Cursor::new(&img));
            let _ = iso9660::read_root_files(&mut Cursor::new(&img), MAX);
            let _ = open_and_read_all(&img);
        }
    }
}

#[test]
fn genisoimage_image_corruptions_are_typed_errors() {
    if !have("genisoimage") {
        return;
    }
    let img0 = build_with("genisoimage", &["-V", "cidata", "-J", "-R"], &small_files());
    let root = IsoImage::open(Cursor::new(&img0))
        .unwrap()
        .lookup("")
        .unwrap()
        .sector();
    // Extent past the end.
    let mut img = img0.clone();
    let at = record_offset(&img, root, b"USER_DAT.;1");
    img[at + 2..at + 10].copy_from_slice(&both32(0x00FF_FFF0));
    assert!(matches!(
        iso9660::read_root_files(&mut Cursor::new(&img), MAX),
        Err(IsoError::Truncated { .. })
    ));
    // 4 GiB size.
    let mut img = img0.clone();
    img[at + 10..at + 18].copy_from_slice(&both32(u32::MAX));
    assert!(matches!(
        iso9660::read_root_files(&mut Cursor::new(&img), MAX),
        Err(IsoError::FileTooLarge { .. })
    ));
    // Directory loop through SUB.
    let mut img = img0.clone();
    let at = record_offset(&img, root, b"SUB");
    img[at + 2..at + 10].copy_from_slice(&both32(root as u32));
    assert!(matches!(
        open_and_read_all(&img),
        Err(IsoError::DirectoryLoop { .. })
    ));
    // Truncated inside the root directory, and wrong magic.
    assert!(matches!(
        iso9660::read_root_files(&mut Cursor::new(&img0[..root as usize * 2048 + 100]), MAX),
        Err(IsoError::Truncated { .. })
    ));
    let mut img = img0.clone();
    img[16 * 2048 + 1] = b'X';
    assert_eq!(iso9660::volume_id(&mut Cursor::new(&img)).unwrap(), None);
    // The 200-character name lives partly in a CE area: point that CE past the end.
    let mut img = img0.clone();
    let start = root as usize * 2048;
    let dir = &img0[start..start + 2048];
    let ce = start + dir.windows(4).rposition(|w| w == b"CE\x1c\x01").unwrap();
    img[ce + 4..ce + 12].copy_from_slice(&both32(0x00FF_FFFF));
    assert!(matches!(
        iso9660::read_root_files(&mut Cursor::new(&img), MAX),
        Err(IsoError::BadSusp { .. })
    ));
}

#[test]
fn names_up_to_255_bytes_round_trip() {
    // One NM entry holds at most 250 name bytes (its length is one byte): longer names
    // must be split over NM entries joined by the CONTINUE flag.
    let files: Files = (248..=255)
        .map(|n| (format!("{}.cfg", "n".repeat(n - 4)), bytes(n as u64, n)))
        .collect();
    let img = image_bytes(&files, &WriteOptions::default()).unwrap();
    let mut iso = IsoImage::open(Cursor::new(&img)).unwrap();
    assert_same(iso.read_all_files(MAX).unwrap(), &files);
    if have("xorriso") {
        let (t, p) = write_tmp(&files, &WriteOptions::default());
        let out = t.path().join("x");
        run(Command::new("xorriso")
            .args(["-abort_on", "WARNING", "-osirrox", "on", "-indev"])
            .arg(&p)
            .args(["-extract", "/"])
            .arg(&out));
        assert_same(read_tree(&out), &files);
    }
}

#[test]
fn mtime_range_is_the_directory_dates_range() {
    // The 7-byte directory date stores years 1900..=2155 (one byte after 1900).
    let files: Files = vec![("user-data".into(), b"x".to_vec())];
    let at = |mtime: i64| {
        image_bytes(
            &files,
            &WriteOptions {
                mtime,
                ..WriteOptions::default()
            },
        )
    };
    let last = 5_869_583_999; // 2155-12-31 23:59:59
    let img = at(last).unwrap();
    // Root record in the PVD: the date's year byte is at 156 + 18.
    assert_eq!(img[16 * 2048 + 156 + 18], 255);
    assert!(matches!(at(last + 1), Err(IsoError::InvalidInput(_))));
    assert!(matches!(
        at(-2_208_988_800 - 1),
        Err(IsoError::InvalidInput(_))
    ));
    assert_eq!(at(-2_208_988_800).unwrap()[16 * 2048 + 156 + 18], 0);
}

#[test]
fn many_lookups_on_one_image_stay_within_budget() {
    // The directory budget bounds one walk; a long-lived image answering many lookups
    // (each re-reading the root) must not run out of it.
    let (img, _) = ours();
    let mut iso = IsoImage::open(Cursor::new(&img)).unwrap();
    let reads = img.len() / 2048 + 10;
    for _ in 0..reads {
        assert_eq!(iso.read_file("user-data", MAX).unwrap(), b"#cloud-config\n");
    }
    for _ in 0..reads {
        assert_eq!(iso.read_all_files(MAX).unwrap().len(), small_files().len());
    }
}

#[test]
fn primary_records_are_in_ecma_119_order() {
    // ECMA-119 9.3: by file name, then extension, the shorter padded with spaces; so
    // `A.B;1` comes before `A.B1;1` although `;` sorts after `1` byte-wise. genisoimage
    // writes this order for these names.
    let files: Files = ["a.b1", "a_b.txt", "ab", "a", "a.b", "a1", "a2/x"]
        .iter()
        .map(|n| (n.to_string(), b"x".to_vec()))
        .collect();
    let img = image_bytes(&files, &WriteOptions::default()).unwrap();
    let mut iso = IsoImage::open(Cursor::new(&img)).unwrap();
    let root = iso.lookup("").unwrap().sector() as usize * 2048;
    let mut ids = Vec::new();
    let mut pos = root;
    while img[pos] != 0 {
        let n = img[pos + 32] as usize;
        ids.push(String::from_utf8_lossy(&img[pos + 33..pos + 33 + n]).into_owned());
        pos += img[pos] as usize;
    }
    assert_eq!(
        ids[2..],
        [
            "A.;1",
            "A.B;1",
            "A.B1;1",
            "A1.;1",
            "A2",
            "AB.;1",
            "A_B.TXT;1"
        ]
    );
}
