//! The partition-table grower against the real tools: tables made by sfdisk, sgdisk and
//! fdisk in temp image files (GPT and MBR, last and not-last partitions, 512- and
//! 4096-byte sectors), the file enlarged as `qemu-img resize` enlarges a disk, our growth
//! written, and the result read back by `sfdisk --verify`/`--dump`, `sgdisk --verify` and
//! `fdisk -l`, and compared with what sfdisk's own `, +` (growpart's way) makes of the same
//! image. Hostile tables (every byte of the metadata changed, with and without the CRCs
//! fixed up) must give an error or a valid table, never a panic.
//!
//! Tools: sfdisk and fdisk (Debian `fdisk`), sgdisk (`gdisk`).

mod common;

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::process::Command;

use ci_agent::disk::table::{self, Growth, Part, Scheme, Table};
use common::{have, tool_path};

const MIB: u64 = 1 << 20;

fn tool(name: &str) -> Command {
    let mut c = Command::new(tool_path(name));
    c.env("LC_ALL", "C");
    c
}

/// Run a tool; its stdout and stderr together, and whether it succeeded.
fn run(cmd: &mut Command, stdin: Option<&str>) -> (bool, String) {
    use std::process::Stdio;
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let mut input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).unwrap();
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn ok(cmd: &mut Command, stdin: Option<&str>) -> String {
    let desc = format!("{cmd:?}");
    let (good, text) = run(cmd, stdin);
    assert!(good, "{desc} failed:\n{text}");
    text
}

/// An image of `size` bytes partitioned by an sfdisk script.
fn sfdisk_image(dir: &Path, name: &str, size: u64, script: &str) -> PathBuf {
    let img = dir.join(name);
    File::create(&img).unwrap().set_len(size).unwrap();
    ok(tool("sfdisk").arg("-q").arg(&img), Some(script));
    img
}

fn enlarge(img: &Path, size: u64) {
    OpenOptions::new()
        .write(true)
        .open(img)
        .unwrap()
        .set_len(size)
        .unwrap();
}

fn read_table(img: &Path, sector: u64) -> Table {
    let mut f = File::open(img).unwrap();
    let len = f.metadata().unwrap().len();
    table::read(&mut f, sector, len).unwrap_or_else(|e| panic!("{}: {e}", img.display()))
}

fn grow(img: &Path, sector: u64, number: u32) -> Growth {
    let t = read_table(img, sector);
    let g = t.grow(number).unwrap();
    if let Growth::Grow { writes, .. } = &g {
        let mut f = OpenOptions::new().write(true).open(img).unwrap();
        for w in writes {
            f.seek(SeekFrom::Start(w.offset)).unwrap();
            f.write_all(&w.data).unwrap();
        }
        f.sync_all().unwrap();
    }
    g
}

/// `sfdisk --json`'s view: (lastlba, [(start, size)]).
fn sfdisk_json(img: &Path) -> (Option<u64>, Vec<(u64, u64)>) {
    let text = ok(tool("sfdisk").arg("--json").arg(img), None);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let pt = &v["partitiontable"];
    let parts = pt["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["start"].as_u64().unwrap(), p["size"].as_u64().unwrap()))
        .collect();
    (pt["lastlba"].as_u64(), parts)
}

/// sfdisk and sgdisk (GPT) find nothing wrong, and nothing to "correct by write".
fn verify(img: &Path, gpt: bool) {
    let text = ok(tool("sfdisk").arg("--verify").arg(img), None);
    assert!(text.contains("No errors detected"), "{text}");
    for bad in ["mismatch", "not on the end", "corrupt", "will be corrected"] {
        assert!(!text.contains(bad), "sfdisk --verify: {text}");
    }
    let dump = ok(tool("sfdisk").arg("--dump").arg(img), None);
    for bad in ["mismatch", "not on the end", "corrupt", "will be corrected"] {
        assert!(!dump.contains(bad), "sfdisk --dump: {dump}");
    }
    if gpt {
        let text = ok(tool("sgdisk").arg("--verify").arg(img), None);
        assert!(
            text.contains("No problems found"),
            "sgdisk --verify: {text}"
        );
    }
}

/// What growpart's sfdisk path makes of a copy of `img`: the backup GPT moved to the end,
/// then `, +` for partition `number`.
fn sfdisk_grown(img: &Path, gpt: bool, number: u32) -> PathBuf {
    let copy = img.with_extension("sfdisk");
    std::fs::copy(img, &copy).unwrap();
    if gpt {
        ok(
            tool("sfdisk")
                .args(["-q", "--relocate", "gpt-bak-std"])
                .arg(&copy),
            None,
        );
    }
    ok(
        tool("sfdisk")
            .args([
                "-q",
                "--no-reread",
                "--no-tell-kernel",
                "-N",
                &number.to_string(),
            ])
            .arg(&copy),
        Some(", +\n"),
    );
    copy
}

fn grown_part(g: &Growth) -> (Part, u64) {
    match g {
        Growth::Grow { part, new_last, .. } => (*part, *new_last),
        Growth::NoChange(why) => panic!("expected growth, got no change: {why}"),
    }
}

#[test]
fn gpt_last_partition_grows_like_sfdisk_and_verifies() {
    if !have("sfdisk") || !have("sgdisk") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let img = sfdisk_image(d.path(), "gpt.img", 64 * MIB, "label: gpt\n,16M\n,\n");
    let before = read_table(&img, 512);
    assert_eq!(before.scheme, Scheme::Gpt);
    assert_eq!(before.parts.len(), 2);
    enlarge(&img, 100 * MIB);
    let theirs = sfdisk_grown(&img, true, 2);

    let (part, new_last) = grown_part(&grow(&img, 512, 2));
    assert_eq!(part.number, 2);
    // The last usable LBA: before the 32 sectors of backup entries and the header.
    assert_eq!(new_last, 100 * MIB / 512 - 34);
    verify(&img, true);
    assert_eq!(sfdisk_json(&img), sfdisk_json(&theirs));

    // A second boot: nothing to do, and the table stays valid.
    match grow(&img, 512, 2) {
        Growth::NoChange(why) => assert!(why.contains("less than 1 MiB"), "{why}"),
        g => panic!("{g:?}"),
    }
    verify(&img, true);
}

#[test]
fn gpt_from_sgdisk_with_a_partition_after_the_root_is_no_change() {
    if !have("sgdisk") || !have("sfdisk") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let img = d.path().join("sg.img");
    File::create(&img).unwrap().set_len(64 * MIB).unwrap();
    ok(
        tool("sgdisk")
            .args(["-n", "1:2048:+8M", "-n", "2:0:+16M", "-n", "3:0:0"])
            .arg(&img),
        None,
    );
    enlarge(&img, 96 * MIB);
    let t = read_table(&img, 512);
    assert_eq!(t.parts.len(), 3);
    match t.grow(2).unwrap() {
        Growth::NoChange(why) => assert!(why.contains("partition 3 follows it"), "{why}"),
        g => panic!("{g:?}"),
    }
    // The last one of the same table grows, and sgdisk agrees with the result.
    let (_, new_last) = grown_part(&grow(&img, 512, 3));
    assert_eq!(new_last, 96 * MIB / 512 - 34);
    verify(&img, true);
}

#[test]
fn free_space_after_a_not_last_partition_is_used_like_growpart() {
    if !have("sfdisk") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    // A 16 MiB hole between partitions 2 and 3.
    let img = sfdisk_image(
        d.path(),
        "hole.img",
        80 * MIB,
        "label: gpt\n,8M\n,8M\nstart=40M,\n",
    );
    let theirs = sfdisk_grown(&img, true, 2);
    let (part, new_last) = grown_part(&grow(&img, 512, 2));
    assert_eq!(new_last, 40 * MIB / 512 - 1);
    assert_eq!(part.number, 2);
    verify(&img, true);
    assert_eq!(sfdisk_json(&img), sfdisk_json(&theirs));
}

#[test]
fn mbr_last_partition_grows_byte_for_byte_like_sfdisk() {
    if !have("sfdisk") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let img = sfdisk_image(d.path(), "mbr.img", 64 * MIB, "label: dos\n,16M\n,\n");
    enlarge(&img, 100 * MIB);
    let theirs = sfdisk_grown(&img, false, 2);
    let (_, new_last) = grown_part(&grow(&img, 512, 2));
    assert_eq!(new_last, 100 * MIB / 512 - 1);
    verify(&img, false);
    assert_eq!(sfdisk_json(&img), sfdisk_json(&theirs));
    let sector0 = |p: &Path| std::fs::read(p).unwrap()[..512].to_vec();
    assert_eq!(sector0(&img), sector0(&theirs));
    assert!(matches!(grow(&img, 512, 2), Growth::NoChange(_)));
}

#[test]
fn mbr_logical_and_extended_partitions_are_not_grown() {
    if !have("sfdisk") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let img = sfdisk_image(
        d.path(),
        "ext.img",
        64 * MIB,
        "label: dos\n,8M\n,,E\n,8M\n,\n",
    );
    enlarge(&img, 100 * MIB);
    let t = read_table(&img, 512);
    match t.grow(5).unwrap() {
        Growth::NoChange(why) => assert!(why.contains("logical"), "{why}"),
        g => panic!("{g:?}"),
    }
    match t.grow(2).unwrap() {
        Growth::NoChange(why) => assert!(why.contains("extended"), "{why}"),
        g => panic!("{g:?}"),
    }
    assert!(t.grow(3).is_err(), "no partition 3");
}

#[test]
fn gpt_with_4096_byte_sectors_grows_and_fdisk_reads_it_clean() {
    if !have("fdisk") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let img = d.path().join("4k.img");
    File::create(&img).unwrap().set_len(64 * MIB).unwrap();
    ok(
        tool("fdisk").args(["-b", "4096"]).arg(&img),
        Some("g\nn\n1\n\n+16M\nn\n2\n\n\nw\n"),
    );
    enlarge(&img, 100 * MIB);
    let before = read_table(&img, 4096);
    assert_eq!(before.sectors, 100 * MIB / 4096);
    let (_, new_last) = grown_part(&grow(&img, 4096, 2));
    // 128 entries of 128 bytes = 4 sectors of 4096 bytes, then the header.
    assert_eq!(new_last, 100 * MIB / 4096 - 6);
    let text = ok(tool("fdisk").args(["-b", "4096", "-l"]).arg(&img), None);
    for bad in ["mismatch", "not on the end", "corrupt", "will be corrected"] {
        assert!(!text.contains(bad), "fdisk -l: {text}");
    }
    assert!(text.contains(&format!("{new_last}")), "{text}");
}

#[test]
fn mbr_with_4096_byte_sectors_grows_and_fdisk_reads_it_clean() {
    if !have("fdisk") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let img = d.path().join("4kmbr.img");
    File::create(&img).unwrap().set_len(64 * MIB).unwrap();
    ok(
        tool("fdisk").args(["-b", "4096"]).arg(&img),
        Some("o\nn\np\n1\n\n+16M\nn\np\n2\n\n\nw\n"),
    );
    enlarge(&img, 100 * MIB);
    let (_, new_last) = grown_part(&grow(&img, 4096, 2));
    assert_eq!(new_last, 100 * MIB / 4096 - 1);
    let text = ok(tool("fdisk").args(["-b", "4096", "-l"]).arg(&img), None);
    assert!(text.contains(&format!("{new_last}")), "{text}");
    let t = read_table(&img, 4096);
    assert_eq!(t.part(2).unwrap().last, new_last);
}

#[test]
fn a_disk_that_was_not_enlarged_is_no_change() {
    if !have("sfdisk") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let img = sfdisk_image(d.path(), "full.img", 32 * MIB, "label: gpt\n,\n");
    let before = std::fs::read(&img).unwrap();
    assert!(matches!(grow(&img, 512, 1), Growth::NoChange(_)));
    assert_eq!(std::fs::read(&img).unwrap(), before);
}

/// Fix the CRCs of the primary GPT header and entries after a mutation, so the parser
/// gets past them to the field checks.
fn fix_gpt_crcs(img: &mut [u8]) {
    let entries_len = 128 * 128;
    let crc = crc32fast::hash(&img[1024..1024 + entries_len]);
    img[512 + 88..512 + 92].copy_from_slice(&crc.to_le_bytes());
    img[512 + 16..512 + 20].copy_from_slice(&[0; 4]);
    let hs = u32::from_le_bytes(img[512 + 12..512 + 16].try_into().unwrap()) as usize;
    let hs = hs.clamp(92, 512);
    let crc = crc32fast::hash(&img[512..512 + hs]);
    img[512 + 16..512 + 20].copy_from_slice(&crc.to_le_bytes());
}

/// A disk of `len` bytes whose first bytes are `head` and the rest zeros.
struct Sparse<'a> {
    head: &'a [u8],
    len: u64,
    pos: u64,
}

impl std::io::Read for Sparse<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (buf.len() as u64).min(self.len.saturating_sub(self.pos)) as usize;
        for (i, b) in buf[..n].iter_mut().enumerate() {
            *b = usize::try_from(self.pos + i as u64)
                .ok()
                .and_then(|p| self.head.get(p))
                .copied()
                .unwrap_or(0);
        }
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for Sparse<'_> {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        match to {
            SeekFrom::Start(p) => self.pos = p,
            _ => unimplemented!("the reader seeks from the start"),
        }
        Ok(self.pos)
    }
}

#[test]
fn hostile_tables_give_errors_or_valid_growth_never_panics() {
    if !have("sfdisk") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let gpt = sfdisk_image(d.path(), "h.img", 4 * MIB, "label: gpt\n,1M\n,\n");
    let mbr = sfdisk_image(d.path(), "m.img", 4 * MIB, "label: dos\n,1M\n,\n");
    // The metadata a reader looks at: sector 0, the GPT header, the entries (34 sectors).
    let gpt = std::fs::read(gpt).unwrap()[..34 * 512].to_vec();
    let mbr = std::fs::read(mbr).unwrap()[..512].to_vec();
    let spots: Vec<usize> = (0..512).chain(512..604).chain(1024..1024 + 256).collect();
    let mut tried = 0;
    for base in [&gpt, &mbr] {
        for &at in spots.iter().filter(|&&at| at < base.len()) {
            for v in [0x00u8, 0xff, 0x80, 0x01] {
                for fix in [false, true] {
                    let mut img = base.clone();
                    img[at] = v;
                    if fix && base == &gpt {
                        fix_gpt_crcs(&mut img);
                    }
                    // Twice the size the table was made for: growth is planned.
                    let mut dev = Sparse {
                        head: &img,
                        len: 8 * MIB,
                        pos: 0,
                    };
                    tried += 1;
                    let Ok(t) = table::read(&mut dev, 512, 8 * MIB) else {
                        continue;
                    };
                    for n in 0..6 {
                        if let Ok(g) = t.grow(n) {
                            t.check(&g).expect("a planned growth passes its own check");
                        }
                    }
                }
            }
        }
        // Truncated images and odd sector sizes.
        for len in [0usize, 511, 512, 1024, 4096] {
            let mut cur = std::io::Cursor::new(&base[..len.min(base.len())]);
            let _ = table::read(&mut cur, 512, 4 * MIB);
        }
        for sector in [0u64, 1, 513, 1 << 20] {
            let mut cur = std::io::Cursor::new(base);
            assert!(table::read(&mut cur, sector, 4 * MIB).is_err());
        }
    }
    assert!(tried > 5_000, "{tried}");
}

// ---------------------------------------------------------------------------------------
// The growpart / resize_rootfs steps on the recording fake: a made-up /proc and /sys under
// the test root, and the disk an image file at /dev/vda.

mod steps {
    use super::*;
    use ci_agent::disk::grow::{self, GrowConfig, Mode, ResizeRootfs};
    use ci_agent::formats::userdata::value::KeyVal;
    use ci_agent::formats::yaml::parse_node;
    use ci_agent::platform::dryrun::DryRunSystem;
    use ci_agent::platform::fake::{Effect, FakeSystem};
    use ci_agent::platform::OsKind;

    /// A fake root whose `/` is partition 2 of `/dev/vda` (a GPT image of 64 MiB grown to
    /// 100 MiB), mounted as `/dev/root` with major:minor 254:2.
    fn linux_root(fstype: &str) -> (tempfile::TempDir, FakeSystem) {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        std::fs::create_dir_all(root.join("dev")).unwrap();
        let img = sfdisk_image(&root.join("dev"), "vda", 64 * MIB, "label: gpt\n,16M\n,\n");
        enlarge(&img, 100 * MIB);
        let sys = FakeSystem::new(root);
        sys.put(
            "/proc/self/mountinfo",
            format!(
                "22 1 254:2 / / rw,relatime shared:1 - {fstype} /dev/root rw\n\
                 23 22 0:21 / /proc rw - proc proc rw\n"
            ),
        );
        let sysfs = root.join("sys");
        std::fs::create_dir_all(sysfs.join("dev/block")).unwrap();
        std::os::unix::fs::symlink(
            "../../devices/pci0000:00/0000:00:04.0/virtio1/block/vda/vda2",
            sysfs.join("dev/block/254:2"),
        )
        .unwrap();
        sys.put("/sys/class/block/vda2/partition", "2\n");
        sys.put("/sys/class/block/vda2/size", format!("{}\n", 94208u64));
        sys.put(
            "/sys/class/block/vda/size",
            format!("{}\n", 100 * MIB / 512),
        );
        sys.put("/sys/class/block/vda/queue/logical_block_size", "512\n");
        (d, sys)
    }

    fn cfg(yaml: &str) -> GrowConfig {
        let tree = parse_node(yaml, "user-data").unwrap();
        grow::growpart_config(KeyVal::top(&tree, "user-data", "growpart"))
            .unwrap()
            .0
    }

    #[test]
    fn grows_the_root_partition_tells_the_kernel_and_then_has_nothing_to_do() {
        if !have("sfdisk") || !have("sgdisk") {
            return;
        }
        let (d, sys) = linux_root("ext4");
        let r = grow::growpart(&sys, OsKind::Linux, &GrowConfig::default()).unwrap();
        assert_eq!(r.grown, ["/dev/vda2"], "{r:?}");
        let img = d.path().join("dev/vda");
        verify(&img, true);
        let new_last = 100 * MIB / 512 - 34;
        let len = (new_last - 34816 + 1) * 512;
        assert_eq!(
            sys.command_lines(),
            [format!(
                "blkpg-resize-partition /dev/vda 2 start={} length={len}",
                34816 * 512
            )]
        );
        // The next boot: nothing to do, nothing written, the kernel not bothered.
        let before = std::fs::read(&img).unwrap();
        let r = grow::growpart(&sys, OsKind::Linux, &GrowConfig::default()).unwrap();
        assert!(r.grown.is_empty());
        assert!(r.info[0].contains("less than 1 MiB"), "{r:?}");
        assert_eq!(std::fs::read(&img).unwrap(), before);
        assert_eq!(sys.command_lines().len(), 1);
    }

    #[test]
    fn the_marker_file_and_mode_off_disable_it_unless_ignored() {
        if !have("sfdisk") {
            return;
        }
        let (d, sys) = linux_root("ext4");
        let img = d.path().join("dev/vda");
        let before = std::fs::read(&img).unwrap();
        sys.put("/etc/growroot-disabled", "");
        let r = grow::growpart(&sys, OsKind::Linux, &GrowConfig::default()).unwrap();
        assert!(r.info[0].contains("/etc/growroot-disabled"), "{r:?}");
        for off in ["growpart: {mode: off}", "growpart: {mode: false}"] {
            let c = cfg(off);
            assert_eq!(c.mode, Mode::Off);
            let r = grow::growpart(&sys, OsKind::Linux, &c).unwrap();
            assert!(r.grown.is_empty());
        }
        assert_eq!(std::fs::read(&img).unwrap(), before);
        assert!(sys.command_lines().is_empty());
        let c = cfg("growpart: {ignore_growroot_disabled: true}");
        let r = grow::growpart(&sys, OsKind::Linux, &c).unwrap();
        assert_eq!(r.grown, ["/dev/vda2"]);
    }

    #[test]
    fn a_table_that_changes_between_plan_and_lock_is_not_written() {
        if !have("sfdisk") {
            return;
        }
        let (d, sys) = linux_root("ext4");
        let img = d.path().join("dev/vda");
        let other = img.clone();
        // Someone else rewrites the table right before our lock is taken.
        sys.set_fault(move |e| {
            if matches!(e, Effect::Write(p) if p == Path::new("/dev/vda")) {
                let mut b = std::fs::read(&other).unwrap();
                b[440] ^= 0xff; // the MBR disk signature
                std::fs::write(&other, b).unwrap();
            }
            Ok(())
        });
        let err = grow::growpart(&sys, OsKind::Linux, &GrowConfig::default()).unwrap_err();
        assert!(format!("{err:#}").contains("changed while"), "{err:#}");
        sys.clear_fault();
        let t = read_table(&img, 512);
        assert_eq!(t.part(2).unwrap().last, 129023, "not grown");
        assert!(sys.command_lines().is_empty());
    }

    #[test]
    fn a_dry_run_prints_the_plan_and_writes_nothing() {
        if !have("sfdisk") {
            return;
        }
        let (d, sys) = linux_root("ext4");
        let img = d.path().join("dev/vda");
        let before = std::fs::read(&img).unwrap();
        let dry = DryRunSystem::new(&sys, false);
        let r = grow::growpart(&dry, OsKind::Linux, &GrowConfig::default()).unwrap();
        assert_eq!(r.grown, ["/dev/vda2"]);
        assert_eq!(std::fs::read(&img).unwrap(), before);
        let plan = dry.plan();
        assert!(
            plan.iter()
                .any(|l| l.starts_with("write 512 bytes at byte 512 of /dev/vda")),
            "{plan:?}"
        );
        assert!(
            plan.last()
                .unwrap()
                .starts_with("resize partition 2 of /dev/vda"),
            "{plan:?}"
        );
        assert!(sys.command_lines().is_empty());
    }

    #[test]
    fn lvm_whole_disks_and_other_mount_points_are_said_once_and_left() {
        let d = tempfile::tempdir().unwrap();
        let sys = FakeSystem::new(d.path());
        sys.put(
            "/proc/self/mountinfo",
            "22 1 253:0 / / rw - ext4 /dev/mapper/vg-root rw\n\
             23 22 254:16 / /data rw - ext4 /dev/vdb rw\n",
        );
        std::fs::create_dir_all(d.path().join("sys/dev/block")).unwrap();
        std::os::unix::fs::symlink(
            "../../devices/virtual/block/dm-0",
            d.path().join("sys/dev/block/253:0"),
        )
        .unwrap();
        std::os::unix::fs::symlink(
            "../../devices/pci/virtio2/block/vdb",
            d.path().join("sys/dev/block/254:16"),
        )
        .unwrap();
        sys.put("/sys/class/block/dm-0/dm/name", "vg-root\n");
        sys.put("/sys/class/block/vdb/size", "2048\n");
        let c = cfg("growpart: {devices: [/, /data, /srv]}");
        let r = grow::growpart(&sys, OsKind::Linux, &c).unwrap();
        assert!(r.grown.is_empty());
        assert!(r.info[0].contains("device-mapper"), "{r:?}");
        assert!(r.info[1].contains("whole disk"), "{r:?}");
        assert!(r.info[2].contains("not a mount point"), "{r:?}");
        assert!(sys.command_lines().is_empty());
    }

    /// An ext4 superblock saying the file system has `blocks` blocks of 4 KiB.
    fn ext4_superblock(blocks: u32) -> Vec<u8> {
        let mut b = vec![0u8; 2048];
        b[1024 + 4..1024 + 8].copy_from_slice(&blocks.to_le_bytes());
        b[1024 + 24..1024 + 28].copy_from_slice(&2u32.to_le_bytes());
        b[1024 + 56..1024 + 58].copy_from_slice(&[0x53, 0xef]);
        b
    }

    #[test]
    fn resize_rootfs_runs_the_fs_tool_only_when_the_fs_is_smaller() {
        let (_d, sys) = linux_root("ext4");
        // The partition: 94208 sectors = 46 MiB; the fs: 10 MiB.
        sys.put("/dev/vda2", ext4_superblock(2560));
        let r = grow::resize_rootfs(&sys, OsKind::Linux, ResizeRootfs::Yes).unwrap();
        assert_eq!(sys.command_lines(), ["resize2fs /dev/vda2"], "{r:?}");
        sys.put("/dev/vda2", ext4_superblock(94208 / 8));
        let r = grow::resize_rootfs(&sys, OsKind::Linux, ResizeRootfs::Yes).unwrap();
        assert!(
            r.info[0].contains("the ext4 file system on /dev/vda2 already fills it"),
            "{r:?}"
        );
        assert_eq!(sys.command_lines().len(), 1);
        sys.put("/dev/vda2", ext4_superblock(2560));
        grow::resize_rootfs(&sys, OsKind::Linux, ResizeRootfs::Noblock).unwrap();
        assert_eq!(
            sys.command_lines()[1],
            "sh -c \"$0\" \"$@\" </dev/null >/dev/null 2>&1 & resize2fs /dev/vda2"
        );
        grow::resize_rootfs(&sys, OsKind::Linux, ResizeRootfs::No).unwrap();
        assert_eq!(sys.command_lines().len(), 2);
    }

    #[test]
    fn resize_rootfs_uses_each_file_systems_tool() {
        for (fs, want) in [
            ("xfs", "xfs_growfs /"),
            ("btrfs", "btrfs filesystem resize max /"),
        ] {
            let (_d, sys) = linux_root(fs);
            grow::resize_rootfs(&sys, OsKind::Linux, ResizeRootfs::Yes).unwrap();
            assert_eq!(sys.command_lines(), [want]);
        }
        let (_d, sys) = linux_root("tmpfs");
        let r = grow::resize_rootfs(&sys, OsKind::Linux, ResizeRootfs::Yes).unwrap();
        assert!(sys.command_lines().is_empty());
        assert!(r.info[0].contains("not resized"), "{r:?}");
    }

    fn out(code: i32, stdout: &str, stderr: &str) -> ci_agent::platform::CmdOutput {
        ci_agent::platform::CmdOutput {
            code: Some(code),
            stdout: stdout.into(),
            stderr: stderr.into(),
            ..Default::default()
        }
    }

    #[test]
    fn freebsd_grows_with_gpart_and_growfs_or_leaves_it_to_base() {
        let d = tempfile::tempdir().unwrap();
        let sys = FakeSystem::new(d.path());
        sys.on_command(
            &["mount", "-p"],
            out(
                0,
                "/dev/gpt/rootfs\t/\tufs\trw\t1 1\ndevfs\t/dev\tdevfs\trw\t0 0\n",
                "",
            ),
        );
        sys.on_command(
            &["glabel"],
            out(
                0,
                "gpt/rootfs     N/A  vtbd0p4\ngpt/efiboot0 N/A vtbd0p1\n",
                "",
            ),
        );
        sys.on_command(&["gpart", "resize"], out(0, "vtbd0p4 resized\n", ""));
        let r = grow::growpart(&sys, OsKind::FreeBsd, &GrowConfig::default()).unwrap();
        assert_eq!(r.grown, ["/dev/vtbd0p4"]);
        grow::resize_rootfs(&sys, OsKind::FreeBsd, ResizeRootfs::Yes).unwrap();
        assert_eq!(
            sys.command_lines(),
            [
                "mount -p",
                "glabel status -s",
                "gpart recover vtbd0",
                "gpart resize -i 4 vtbd0",
                "mount -p",
                "growfs -N /",
                "growfs -y /",
            ]
        );
        // Base's growfs runs on this boot: ours stays out of its way.
        sys.put("/etc/rc.d/growfs", "#!/bin/sh\n");
        sys.put("/firstboot", "");
        sys.put("/etc/rc.conf", "hostname=x\ngrowfs_enable=\"YES\"\n");
        let r = grow::growpart(&sys, OsKind::FreeBsd, &GrowConfig::default()).unwrap();
        assert!(r.info[0].contains("base's growfs"), "{r:?}");
        grow::resize_rootfs(&sys, OsKind::FreeBsd, ResizeRootfs::Yes).unwrap();
        assert_eq!(sys.command_lines().len(), 7);
    }

    #[test]
    fn freebsd_full_disk_and_zfs() {
        let d = tempfile::tempdir().unwrap();
        let sys = FakeSystem::new(d.path());
        sys.on_command(
            &["mount", "-p"],
            out(0, "zroot/ROOT/default / zfs rw 0 0\n", ""),
        );
        sys.on_command(
            &["zpool", "list"],
            out(0, "zroot\t9.5G\t1G\t-\n\t/dev/vtbd0p4\t9.5G\t1G\n", ""),
        );
        sys.on_command(
            &["gpart", "resize"],
            out(1, "", "gpart: autofill: No space left on device\n"),
        );
        let r = grow::growpart(&sys, OsKind::FreeBsd, &GrowConfig::default()).unwrap();
        assert!(r.grown.is_empty());
        assert!(r.info.iter().any(|l| l.contains("no free space")), "{r:?}");
        assert!(sys
            .command_lines()
            .contains(&"zpool online -e zroot /dev/vtbd0p4".to_string()));
        assert!(grow::bsd_partition("ada0s1").is_some() && grow::bsd_partition("vtbd0").is_none());
    }

    #[test]
    fn keys_parse_like_cloud_init_and_bad_values_name_the_key() {
        assert_eq!(cfg("a: 1\n"), GrowConfig::default());
        let c = cfg("growpart:\n  mode: growpart\n  devices: ['/', '/dev/vdb1']\n");
        assert_eq!((c.mode, c.devices.len()), (Mode::Growpart, 2));
        let tree = parse_node("growpart:\n  mode: sideways\n", "user-data").unwrap();
        let e = grow::growpart_config(KeyVal::top(&tree, "user-data", "growpart")).unwrap_err();
        assert!(
            e.to_string().contains("user-data:2:9: growpart.mode"),
            "{e}"
        );
        let tree = parse_node("growpart: {devices: [etc]}\n", "user-data").unwrap();
        assert!(grow::growpart_config(KeyVal::top(&tree, "user-data", "growpart")).is_err());
        let tree = parse_node("growpart: {mode: auto, x: 1}\n", "user-data").unwrap();
        let (_, w) = grow::growpart_config(KeyVal::top(&tree, "user-data", "growpart")).unwrap();
        assert_eq!(w.len(), 1);
        for (text, want) in [
            ("resize_rootfs: noblock\n", Some(ResizeRootfs::Noblock)),
            ("resize_rootfs: false\n", Some(ResizeRootfs::No)),
            ("resize_rootfs: yes\n", Some(ResizeRootfs::Yes)),
            ("x: 1\n", Some(ResizeRootfs::Yes)),
            ("resize_rootfs: later\n", None),
        ] {
            let tree = parse_node(text, "user-data").unwrap();
            let got =
                grow::resize_rootfs_config(KeyVal::top(&tree, "user-data", "resize_rootfs")).ok();
            assert_eq!(got, want, "{text}");
        }
    }
}
