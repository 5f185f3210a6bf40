//! vfat seed tests: our reader on images made by mkfs.vfat + mcopy (FAT12/16/32) and by
//! `cloud-localds -f vfat`; our writer's images read by our reader, mtools and
//! `fsck.vfat -n`; corrupt images give errors, never panics or hangs.
//!
//! A missing tool skips its test with a loud message, except under CI (`CI` set).

mod common;

use common::{have, set_fat12, tool_path};
use std::io::Cursor;
use std::process::Command;

use ci_agent::formats::fat::{self, FatError};

const MAX: u64 = 16 << 20;

type Files = Vec<(String, Vec<u8>)>;

fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd
        .env("MTOOLS_SKIP_CHECK", "1")
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

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

fn sample() -> Files {
    vec![
        (
            "user-data".into(),
            b"#cloud-config\nhostname: fat\n".to_vec(),
        ),
        ("meta-data".into(), b"instance-id: i-fat\n".to_vec()),
        ("big.bin".into(), bytes(7, 70_000)),
        ("empty".into(), Vec::new()),
        ("CONFIG".into(), b"K=V\n".to_vec()),
        (
            "a-long-file-name-needing-several-lfn-entries.yaml".into(),
            b"long: true\n".to_vec(),
        ),
        ("sub/inner.txt".into(), b"inner\n".to_vec()),
        ("sub/deeper/leaf".into(), bytes(8, 5000)),
    ]
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
    assert_eq!(names(&got), names(&want));
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

/// mkfs.vfat + mcopy, like cloud-localds -f vfat.
fn mkfs_image(size_kib: u64, extra: &[&str], files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("seed.img");
    run(Command::new(tool_path("mkfs.vfat"))
        .arg("-C")
        .args(extra)
        .args(["-n", "CIDATA"])
        .arg(&img)
        .arg(size_kib.to_string()));
    let mut dirs: Vec<String> = Vec::new();
    for (p, data) in files {
        let parts: Vec<&str> = p.split('/').collect();
        for i in 1..parts.len() {
            let d = parts[..i].join("/");
            if !dirs.contains(&d) {
                run(Command::new("mmd")
                    .arg("-i")
                    .arg(&img)
                    .arg(format!("::/{d}")));
                dirs.push(d);
            }
        }
        let src = tmp.path().join("src");
        std::fs::write(&src, data).unwrap();
        run(Command::new("mcopy")
            .arg("-i")
            .arg(&img)
            .arg(&src)
            .arg(format!("::/{p}")));
    }
    std::fs::read(&img).unwrap()
}

fn check(img: &[u8], files: &[(String, Vec<u8>)]) {
    assert_eq!(
        fat::volume_label(&mut Cursor::new(img)).unwrap().as_deref(),
        Some("CIDATA")
    );
    assert_same(
        fat::read_root_files(&mut Cursor::new(img), MAX).unwrap(),
        &root_only(files),
    );
    assert_same(
        fat::read_all_files(&mut Cursor::new(img), MAX).unwrap(),
        files,
    );
}

#[test]
fn reads_mkfs_vfat_fat12() {
    if !(have("mkfs.vfat") && have("mcopy")) {
        return;
    }
    let files = sample();
    check(&mkfs_image(1024, &["-F", "12"], &files), &files);
}

#[test]
fn reads_mkfs_vfat_fat16() {
    if !(have("mkfs.vfat") && have("mcopy")) {
        return;
    }
    let files = sample();
    check(&mkfs_image(16 * 1024, &["-F", "16"], &files), &files);
}

#[test]
fn reads_mkfs_vfat_fat32() {
    if !(have("mkfs.vfat") && have("mcopy")) {
        return;
    }
    let files = sample();
    check(
        &mkfs_image(40 * 1024, &["-F", "32", "-S", "512", "-s", "1"], &files),
        &files,
    );
}

#[test]
fn reads_cloud_localds_vfat() {
    if !have("cloud-localds") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let ud = tmp.path().join("ud");
    let md = tmp.path().join("md");
    std::fs::write(&ud, b"#cloud-config\n").unwrap();
    std::fs::write(&md, b"instance-id: v\n").unwrap();
    let out = tmp.path().join("seed.img");
    run(Command::new("cloud-localds")
        .args(["-f", "vfat"])
        .arg(&out)
        .arg(&ud)
        .arg(&md));
    let img = std::fs::read(&out).unwrap();
    let label = fat::volume_label(&mut Cursor::new(&img)).unwrap().unwrap();
    assert!(label.eq_ignore_ascii_case("cidata"), "{label}");
    assert_same(
        fat::read_root_files(&mut Cursor::new(&img), MAX).unwrap(),
        &[
            ("user-data".into(), b"#cloud-config\n".to_vec()),
            ("meta-data".into(), b"instance-id: v\n".to_vec()),
        ],
    );
}

#[test]
fn iso_and_junk_are_not_fat() {
    assert_eq!(
        fat::volume_label(&mut Cursor::new(vec![0u8; 4096])).unwrap(),
        None
    );
    assert_eq!(
        fat::volume_label(&mut Cursor::new(vec![0u8; 10])).unwrap(),
        None
    );
    let iso =
        ci_agent::formats::iso9660::write::image_bytes(&sample(), &Default::default()).unwrap();
    assert_eq!(fat::volume_label(&mut Cursor::new(&iso)).unwrap(), None);
    assert!(fat::read_root_files(&mut Cursor::new(&iso), MAX).is_err());
}

// ---------------------------------------------------------------------------------------
// Writer.

#[test]
fn writer_round_trips_and_is_deterministic() {
    let files = sample();
    let img = fat::write_image(&files, "CIDATA").unwrap();
    check(&img, &files);
    assert_eq!(img, fat::write_image(&files, "CIDATA").unwrap());
    let mut rev = files.clone();
    rev.reverse();
    assert_eq!(img, fat::write_image(&rev, "CIDATA").unwrap());
    // FAT12, sized to fit: 128 KiB minimum, grows with the content.
    assert_eq!(&img[54..62], b"FAT12   ");
    let big: Files = vec![("user-data".into(), bytes(9, 3 << 20))];
    let img = fat::write_image(&big, "CIDATA").unwrap();
    assert!(img.len() > 3 << 20 && img.len() < 4 << 20, "{}", img.len());
    assert_same(
        fat::read_root_files(&mut Cursor::new(&img), MAX).unwrap(),
        &big,
    );
}

#[test]
fn writer_refuses_bad_input() {
    assert!(fat::write_image(&[], "").is_err());
    assert!(fat::write_image(&[], "WAY_TOO_LONG_LABEL").is_err());
    assert!(fat::write_image(&[("a//b".into(), vec![])], "CIDATA").is_err());
    assert!(fat::write_image(&[("../x".into(), vec![])], "CIDATA").is_err());
}

#[test]
fn mtools_and_fsck_read_our_image() {
    if !(have("mdir") && have("mtype") && have("fsck.vfat") && have("mcopy")) {
        return;
    }
    let files = sample();
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("seed.img");
    std::fs::write(&p, fat::write_image(&files, "CIDATA").unwrap()).unwrap();
    let dir = String::from_utf8(run(Command::new("mdir").arg("-i").arg(&p).arg("::/"))).unwrap();
    assert!(dir.contains("Volume in drive : is CIDATA"), "{dir}");
    for name in [
        "user-data",
        "meta-data",
        "big.bin",
        "a-long-file-name-needing-several-lfn-entries.yaml",
    ] {
        assert!(dir.contains(name), "mdir lacks {name}:\n{dir}");
    }
    for (n, data) in &files {
        let got = run(Command::new("mtype")
            .arg("-i")
            .arg(&p)
            .arg(format!("::/{n}")));
        assert!(&got == data, "mtype ::/{n} differs");
    }
    let out = tmp.path().join("x");
    std::fs::create_dir(&out).unwrap();
    run(Command::new("mcopy")
        .args(["-s", "-n", "-i"])
        .arg(&p)
        .arg("::/sub")
        .arg(&out));
    assert_eq!(
        std::fs::read(out.join("sub/deeper/leaf")).unwrap(),
        files[7].1
    );
    let fsck = run(Command::new(tool_path("fsck.vfat")).arg("-n").arg(&p));
    let fsck = String::from_utf8_lossy(&fsck);
    assert!(
        !fsck.contains("differ") && !fsck.contains("Free cluster summary wrong"),
        "{fsck}"
    );
}

// ---------------------------------------------------------------------------------------
// Hostile images.

/// Byte offset of the first non-LFN root entry whose size field is `size`.
fn root_entry(img: &[u8], size: u32) -> usize {
    let bps = u16::from_le_bytes([img[11], img[12]]) as usize;
    let reserved = u16::from_le_bytes([img[14], img[15]]) as usize;
    let fats = img[16] as usize;
    let fat16 = u16::from_le_bytes([img[22], img[23]]) as usize;
    let root = (reserved + fats * fat16) * bps;
    let entries = u16::from_le_bytes([img[17], img[18]]) as usize;
    (0..entries)
        .map(|i| root + i * 32)
        .find(|&o| {
            img[o + 11] != 0x0F
                && img[o] != 0
                && u32::from_le_bytes(img[o + 28..o + 32].try_into().unwrap()) == size
        })
        .expect("entry")
}

fn ours() -> Vec<u8> {
    fat::write_image(&sample(), "CIDATA").unwrap()
}

fn kind(e: &std::io::Error) -> Option<&FatError> {
    e.get_ref().and_then(|i| i.downcast_ref::<FatError>())
}

#[test]
fn truncated_image_is_an_error() {
    let img = ours();
    for cut in [100, 600, img.len() / 2, img.len() - 1] {
        let err = fat::read_root_files(&mut Cursor::new(&img[..cut]), MAX).unwrap_err();
        assert!(
            kind(&err).is_some() || err.kind() == std::io::ErrorKind::UnexpectedEof,
            "{cut}: {err}"
        );
    }
}

#[test]
fn overflowing_boot_sector_is_an_error() {
    let mut img = ours();
    img[16] = 255; // FATs
    img[22..24].copy_from_slice(&0xFFFFu16.to_le_bytes()); // sectors per FAT
    let err = fat::read_root_files(&mut Cursor::new(&img), MAX).unwrap_err();
    assert!(
        matches!(kind(&err), Some(FatError::BadBootSector(_))),
        "{err}"
    );
    assert_eq!(fat::volume_label(&mut Cursor::new(&img)).unwrap(), None);
}

#[test]
fn fat_chain_loops_and_bad_clusters_are_errors() {
    let img0 = ours();
    let at = root_entry(&img0, 70_000);
    let first = u16::from_le_bytes([img0[at + 26], img0[at + 27]]) as usize;
    let fat_start = 512usize;
    let set12 = |img: &mut Vec<u8>, c: usize, v: u16| set_fat12(img, fat_start, c, v);
    // Loop: the file's first cluster points to itself.
    let mut img = img0.clone();
    set12(&mut img, first, first as u16);
    let err = fat::read_root_files(&mut Cursor::new(&img), MAX).unwrap_err();
    assert!(
        matches!(kind(&err), Some(FatError::BadChain { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("loop"), "{err}");
    // Chain into cluster 1 (would underflow `cluster - 2` inside fatfs).
    let mut img = img0.clone();
    set12(&mut img, first, 1);
    let err = fat::read_root_files(&mut Cursor::new(&img), MAX).unwrap_err();
    assert!(
        matches!(kind(&err), Some(FatError::BadChain { .. })),
        "{err}"
    );
    // First cluster out of range.
    let mut img = img0.clone();
    img[at + 26..at + 28].copy_from_slice(&0xFFEu16.to_le_bytes());
    let err = fat::read_root_files(&mut Cursor::new(&img), MAX).unwrap_err();
    assert!(
        matches!(kind(&err), Some(FatError::BadChain { .. })),
        "{err}"
    );
    // 4 GiB size: over the limit, and a chain far too short without a limit.
    let mut img = img0.clone();
    img[at + 28..at + 32].copy_from_slice(&u32::MAX.to_le_bytes());
    let err = fat::read_root_files(&mut Cursor::new(&img), MAX).unwrap_err();
    assert!(
        matches!(
            kind(&err),
            Some(FatError::BadChain { .. } | FatError::FileTooLarge { .. })
        ),
        "{err}"
    );
    let err = fat::read_root_files(&mut Cursor::new(&img), u64::MAX).unwrap_err();
    assert!(
        matches!(kind(&err), Some(FatError::BadChain { .. })),
        "{err}"
    );
    // Directory loop: sub's first cluster chain loops.
    let mut img = img0.clone();
    let sub = (0..512)
        .map(|i| root_entry_any(&img0, i))
        .find(|&o| &img0[o..o + 11] == b"SUB        ")
        .unwrap();
    let c = u16::from_le_bytes([img0[sub + 26], img0[sub + 27]]) as usize;
    set12(&mut img, c, c as u16);
    let err = fat::read_all_files(&mut Cursor::new(&img), MAX).unwrap_err();
    assert!(
        matches!(kind(&err), Some(FatError::BadChain { .. })),
        "{err}"
    );
    // The root files do not depend on it.
    assert_eq!(
        fat::read_root_files(&mut Cursor::new(&img), MAX)
            .unwrap()
            .len(),
        6
    );
}

fn root_entry_any(img: &[u8], i: usize) -> usize {
    let reserved = u16::from_le_bytes([img[14], img[15]]) as usize;
    let fats = img[16] as usize;
    let fat16 = u16::from_le_bytes([img[22], img[23]]) as usize;
    (reserved + fats * fat16) * 512 + i * 32
}

#[test]
fn fat32_root_chain_loop_does_not_hang() {
    if !(have("mkfs.vfat") && have("mcopy")) {
        return;
    }
    let mut img = mkfs_image(
        40 * 1024,
        &["-F", "32", "-S", "512", "-s", "1"],
        &sample()[..2],
    );
    let reserved = u16::from_le_bytes([img[14], img[15]]) as usize;
    let root = u32::from_le_bytes(img[44..48].try_into().unwrap()) as usize;
    let off = reserved * 512 + root * 4;
    img[off..off + 4].copy_from_slice(&(root as u32).to_le_bytes());
    let err = fat::read_root_files(&mut Cursor::new(&img), MAX).unwrap_err();
    assert!(
        matches!(kind(&err), Some(FatError::BadChain { .. })),
        "{err}"
    );
    // The probe still answers (label from the boot sector).
    assert_eq!(
        fat::volume_label(&mut Cursor::new(&img))
            .unwrap()
            .as_deref(),
        Some("CIDATA")
    );
}

#[test]
fn max_file_limit_names_the_file() {
    let err = fat::read_root_files(&mut Cursor::new(ours()), 1000).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("big.bin") && msg.contains("limit of 1000 bytes"),
        "{msg}"
    );
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

        #[test]
        fn corrupt_images_never_panic(flips in proptest::collection::vec((0usize..48 * 1024, any::<u8>()), 1..16)) {
            let mut img = ours();
            for (at, v) in flips {
                if at < img.len() {
                    img[at] = v;
                }
            }
            let _ = fat::volume_label(&mut Cursor::new(&img));
            let _ = fat::read_root_files(&mut Cursor::new(&img), MAX);
            let _ = fat::read_all_files(&mut Cursor::new(&img), MAX);
        }
    }
}

#[test]
fn writer_refuses_names_equal_but_for_case() {
    // FAT names are case-insensitive: writing `config` after `CONFIG` would reopen and
    // overwrite `CONFIG` (one file left, the other's content lost). Refuse instead.
    let invalid = |files: &[(&str, &[u8])]| {
        let files: Files = files
            .iter()
            .map(|(n, d)| (n.to_string(), d.to_vec()))
            .collect();
        let err = fat::write_image(&files, "cidata").unwrap_err();
        assert!(
            matches!(kind(&err), Some(FatError::InvalidInput(_))),
            "{files:?}: {err}"
        );
    };
    invalid(&[("CONFIG", b"a"), ("config", b"b")]);
    invalid(&[("user-data", b"a"), ("user-data", b"b")]);
    invalid(&[("Sub/a", b"a"), ("sub/b", b"b")]);
    invalid(&[("sub", b"a"), ("SUB/b", b"b")]);
    invalid(&[("straße", b"a"), ("STRASSE", b"b")]);
    // Different names in one directory, or the same name in two, are fine.
    let ok: Files = vec![
        ("sub/config".into(), b"1".to_vec()),
        ("config".into(), b"2".to_vec()),
        ("sub/inner/config".into(), b"3".to_vec()),
    ];
    let img = fat::write_image(&ok, "cidata").unwrap();
    assert_same(
        fat::read_all_files(&mut Cursor::new(&img), MAX).unwrap(),
        &ok,
    );
}

#[test]
fn too_many_files_says_so() {
    // Every non-empty file takes a cluster and FAT12 has about 4000: 4100 one-byte files
    // do not fit although they are tiny. The message must not blame the size alone.
    let files: Files = (0..4100)
        .map(|i| (format!("d{}/f{i}", i / 500), vec![1u8]))
        .collect();
    let err = fat::write_image(&files, "cidata").unwrap_err();
    assert!(
        matches!(kind(&err), Some(FatError::InvalidInput(_))),
        "{err}"
    );
    assert!(err.to_string().contains("files"), "{err}");
}
