//! Seed discovery against fake `/sys` and `/dev` trees under a temporary root (FakeSystem),
//! with seed images built at test time by the real tools (genisoimage, xorriso,
//! mkfs.vfat + mcopy): device scans on Linux and FreeBSD, label case variants, devices that
//! must be skipped, polling, `ds=nocloud` on the command line and in the SMBIOS serial,
//! `--seed` directories and images.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ci_agent::datasource::{self, discover, find_seed, Found};
use ci_agent::platform::config::Config;
use ci_agent::platform::fake::FakeSystem;
use ci_agent::platform::{CmdOutput, OsKind, System};

const UD: &[u8] = b"#cloud-config\nhostname: from-seed\n";
const MD: &[u8] = b"instance-id: iid-seed\nlocal-hostname: meta-host\n";

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn seed_dir(tmp: &Path) -> PathBuf {
    let d = tmp.join("seedsrc");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("user-data"), UD).unwrap();
    std::fs::write(d.join("meta-data"), MD).unwrap();
    d
}

/// An ISO9660 seed with Rock Ridge and Joliet (genisoimage, as cloud-localds does).
fn iso(tmp: &Path, volid: &str) -> Vec<u8> {
    let src = seed_dir(tmp);
    let out = tmp.join(format!("seed-{volid}.iso"));
    run(Command::new("genisoimage")
        .args(["-quiet", "-volid", volid, "-joliet", "-rock", "-o"])
        .arg(&out)
        .arg(&src));
    std::fs::read(out).unwrap()
}

/// The same with xorriso.
fn xorriso_iso(tmp: &Path, volid: &str) -> Vec<u8> {
    let src = seed_dir(tmp);
    let out = tmp.join(format!("seed-x-{volid}.iso"));
    run(Command::new("xorriso")
        .args(["-as", "mkisofs", "-quiet", "-V", volid, "-J", "-R", "-o"])
        .arg(&out)
        .arg(&src));
    std::fs::read(out).unwrap()
}

/// A vfat seed (mkfs.vfat -n LABEL + mcopy, as cloud-localds -f vfat does).
fn vfat(tmp: &Path, label: &str) -> Vec<u8> {
    let src = seed_dir(tmp);
    let out = tmp.join(format!("seed-{label}.img"));
    let _ = std::fs::remove_file(&out);
    run(Command::new("mkfs.vfat")
        .args(["-C", "-n", label])
        .arg(&out)
        .arg("1024"));
    for f in ["user-data", "meta-data"] {
        run(Command::new("mcopy")
            .arg("-i")
            .arg(&out)
            .arg(src.join(f))
            .arg(format!("::{f}")));
    }
    std::fs::read(out).unwrap()
}

struct Tree {
    _tmp: tempfile::TempDir,
    work: tempfile::TempDir,
    sys: FakeSystem,
}

impl Tree {
    fn new() -> Tree {
        let tmp = tempfile::tempdir().unwrap();
        let work = tempfile::tempdir().unwrap();
        let sys = FakeSystem::new(tmp.path());
        Tree {
            _tmp: tmp,
            work,
            sys,
        }
    }
    fn w(&self) -> &Path {
        self.work.path()
    }
    /// A Linux block device: `/sys/class/block/<name>` and `/dev/<name>`.
    fn block(&self, name: &str, image: &[u8]) {
        self.sys.put(
            format!("/sys/class/block/{name}/size"),
            format!("{}\n", image.len() / 512),
        );
        self.sys.put(format!("/dev/{name}"), image);
    }
}

fn linux() -> Config {
    let mut c = Config::defaults(OsKind::Linux);
    c.seed_wait_secs = 0;
    c
}

fn freebsd() -> Config {
    let mut c = Config::defaults(OsKind::FreeBsd);
    c.seed_wait_secs = 0;
    c
}

fn found(t: &Tree, c: &Config) -> ci_agent::formats::userdata::Seed {
    find_seed(&t.sys, c, None).unwrap().expect("a seed")
}

#[test]
fn linux_scan_finds_iso_on_sr0_before_vfat_on_vdb1() {
    let t = Tree::new();
    t.block("sr0", &iso(t.w(), "cidata"));
    t.block("vda", &vfat(t.w(), "DATA"));
    t.block("vdb", &vec![0u8; 1 << 20]);
    t.block("vdb1", &vfat(t.w(), "CIDATA"));
    let s = found(&t, &linux());
    assert_eq!(s.source, "iso9660:/dev/sr0");
    assert_eq!(s.files.get("user-data").map(Vec::as_slice), Some(UD));
    assert_eq!(s.files.get("meta-data").map(Vec::as_slice), Some(MD));
    assert!(t.sys.slept().is_empty());
}

#[test]
fn linux_scan_skips_non_seed_disks_and_finds_vfat_partition() {
    let t = Tree::new();
    t.block("vda", &vfat(t.w(), "DATA"));
    t.block("vda1", &iso(t.w(), "other"));
    t.block("vdb", &vec![0u8; 1 << 20]);
    t.block("vdb1", &vfat(t.w(), "CIDATA"));
    let s = found(&t, &linux());
    assert_eq!(s.source, "vfat:/dev/vdb1");
    let d = ci_agent::formats::userdata::parse_seed(&s).unwrap();
    assert_eq!(d.instance_id, "iid-seed");
    assert_eq!(d.cloud_config.hostname.as_deref(), Some("from-seed"));
}

#[test]
fn label_case_variants() {
    for label in ["cidata", "CIDATA", "CiData"] {
        let t = Tree::new();
        t.block("sr0", &iso(t.w(), label));
        assert_eq!(found(&t, &linux()).source, "iso9660:/dev/sr0", "{label}");
        let t = Tree::new();
        t.block("sdb", &xorriso_iso(t.w(), label));
        assert_eq!(
            found(&t, &linux()).source,
            "iso9660:/dev/sdb",
            "xorriso {label}"
        );
    }
    for label in ["cidata", "CiData"] {
        let t = Tree::new();
        t.block("vdc", &vfat(t.w(), label));
        assert_eq!(found(&t, &linux()).source, "vfat:/dev/vdc", "{label}");
    }
    // Not a seed label.
    let t = Tree::new();
    t.block("sr0", &iso(t.w(), "cidata2"));
    t.block("vdb", &vfat(t.w(), "CIDATAX"));
    assert_eq!(find_seed(&t.sys, &linux(), None).unwrap(), None);
}

#[test]
fn devices_that_are_skipped() {
    let t = Tree::new();
    let seed = iso(t.w(), "cidata");
    // ram and zram are never probed; loop only when attached; size 0 = empty tray.
    t.block("ram0", &seed);
    t.block("zram0", &seed);
    t.block("loop0", &seed);
    t.block("sr0", &seed);
    t.sys.put("/sys/class/block/sr0/size", "0\n");
    // A /sys entry without a /dev node.
    t.sys.put("/sys/class/block/nvme0n1/size", "100\n");
    assert_eq!(find_seed(&t.sys, &linux(), None).unwrap(), None);
    t.sys.put(
        "/sys/class/block/loop0/loop/backing_file",
        "/var/seed.iso\n",
    );
    assert_eq!(found(&t, &linux()).source, "iso9660:/dev/loop0");
}

#[test]
fn polls_until_seed_wait_secs() {
    let t = Tree::new();
    let mut c = linux();
    c.seed_wait_secs = 3;
    assert_eq!(find_seed(&t.sys, &c, None).unwrap(), None);
    assert_eq!(t.sys.slept(), vec![Duration::from_millis(500); 6]);
    // Found at once: no waiting.
    let t = Tree::new();
    t.block("sr0", &iso(t.w(), "cidata"));
    assert!(find_seed(&t.sys, &c, None).unwrap().is_some());
    assert!(t.sys.slept().is_empty());
}

#[test]
fn cmdline_seedfrom_directory_with_overrides() {
    let t = Tree::new();
    t.sys.put(
        "/proc/cmdline",
        "BOOT_IMAGE=/vmlinuz root=/dev/vda1 ds=nocloud;s=file:///var/seed/;h=cmdhost;i=cmd-iid quiet\n",
    );
    t.sys.put("/var/seed/user-data", UD);
    t.sys.put("/var/seed/meta-data", MD);
    t.sys.put("/var/seed/scripts/extra.sh", "#!/bin/sh\n");
    // A device seed exists too: the command line's seedfrom wins.
    t.block("sr0", &iso(t.w(), "cidata"));
    let s = found(&t, &linux());
    assert_eq!(s.source, "dir:/var/seed/");
    assert_eq!(s.hostname_override.as_deref(), Some("cmdhost"));
    assert_eq!(s.instance_id_override.as_deref(), Some("cmd-iid"));
    assert!(s.files.contains_key("scripts/extra.sh"));
    let d = ci_agent::formats::userdata::parse_seed(&s).unwrap();
    assert_eq!(d.instance_id, "cmd-iid");
    assert_eq!(d.hostname.as_deref(), Some("cmdhost"));
}

#[test]
fn smbios_serial_overrides_a_device_seed() {
    let t = Tree::new();
    t.sys.put("/proc/cmdline", "ro quiet\n");
    t.sys.put(
        "/sys/class/dmi/id/product_serial",
        "ds=nocloud;i=smbios-iid\n",
    );
    t.block("sr0", &iso(t.w(), "cidata"));
    let s = found(&t, &linux());
    assert_eq!(s.source, "iso9660:/dev/sr0");
    assert_eq!(s.instance_id_override.as_deref(), Some("smbios-iid"));
    assert_eq!(s.hostname_override, None);
    // The kernel command line wins over SMBIOS field by field.
    t.sys
        .put("/proc/cmdline", "ds=nocloud;i=cmd-iid;h=cmdhost\n");
    let s = found(&t, &linux());
    assert_eq!(s.instance_id_override.as_deref(), Some("cmd-iid"));
}

#[test]
fn cmdline_alone_is_a_seed_and_http_is_remote() {
    let t = Tree::new();
    t.sys.put("/proc/cmdline", "ds=nocloud;h=only-host\n");
    let s = found(&t, &linux());
    assert_eq!(s.source, "cmdline:ds=nocloud");
    assert!(s.files.is_empty());
    assert_eq!(s.hostname_override.as_deref(), Some("only-host"));
    t.sys.put(
        "/proc/cmdline",
        "ds=nocloud-net;s=http://127.0.0.1:9/seed/;i=net-iid\n",
    );
    assert_eq!(
        discover(&t.sys, &linux(), None).unwrap(),
        Some(Found::Remote {
            url: "http://127.0.0.1:9/seed/".into(),
            hostname_override: None,
            instance_id_override: Some("net-iid".into()),
        })
    );
    // Malformed command lines are ignored (no ds=nocloud) or warned about.
    t.sys.put("/proc/cmdline", "ds=nocloudx;s=/x/ ds=\n");
    assert_eq!(find_seed(&t.sys, &linux(), None).unwrap(), None);
    t.sys.put("/proc/cmdline", "ds=nocloud;s=relative;bogus\n");
    assert_eq!(found(&t, &linux()).source, "cmdline:ds=nocloud");
}

#[test]
fn freebsd_geom_labels_then_disks() {
    let t = Tree::new();
    t.sys.put("/dev/iso9660/CIDATA", iso(t.w(), "CIDATA"));
    t.sys.put("/dev/vtbd1", vfat(t.w(), "cidata"));
    let s = found(&t, &freebsd());
    assert_eq!(s.source, "iso9660:/dev/iso9660/CIDATA");
    assert_eq!(s.files.get("user-data").map(Vec::as_slice), Some(UD));

    let t = Tree::new();
    t.sys.put("/dev/ada0", vfat(t.w(), "ROOT"));
    t.sys.put("/dev/ada0p1", vec![0u8; 4096]);
    t.sys.put("/dev/null", "");
    t.sys.put("/dev/vtbd1p1", vfat(t.w(), "cidata"));
    t.sys.on_command(
        &["kenv", "-q", "smbios.system.serial"],
        CmdOutput {
            code: Some(0),
            stdout: b"ds=nocloud;h=bsd-host\n".to_vec(),
            ..CmdOutput::default()
        },
    );
    let s = found(&t, &freebsd());
    assert_eq!(s.source, "vfat:/dev/vtbd1p1");
    assert_eq!(s.hostname_override.as_deref(), Some("bsd-host"));
    assert!(t
        .sys
        .command_lines()
        .contains(&"kenv -q smbios.system.serial".to_string()));
    // The Linux policy never looks at FreeBSD names without /sys entries.
    assert_eq!(find_seed(&t.sys, &linux(), None).unwrap(), None);
}

#[test]
fn seed_argument_directory_and_images() {
    let t = Tree::new();
    let root = t.sys.root().to_path_buf();
    // A directory under the root, with nested files and a symlink that is not followed.
    t.sys.put("/seed/user-data", UD);
    t.sys.put("/seed/CONFIG", "k=v\n");
    t.sys.put("/seed/sub/deeper/f", "x");
    std::os::unix::fs::symlink("/etc/passwd", root.join("seed/link")).unwrap();
    let s = find_seed(&t.sys, &linux(), Some(&root.join("seed")))
        .unwrap()
        .unwrap();
    assert_eq!(s.source, "dir:/seed");
    let names: Vec<_> = s.files.keys().cloned().collect();
    assert_eq!(names, ["CONFIG", "sub/deeper/f", "user-data"]);
    // Image files outside the root (read-only host view), any label.
    for (name, img) in [
        ("a.iso", iso(t.w(), "cidata")),
        ("b.img", vfat(t.w(), "CIDATA")),
        ("c.iso", iso(t.w(), "whatever")),
    ] {
        let p = t.w().join(name);
        std::fs::write(&p, img).unwrap();
        let s = find_seed(&t.sys, &linux(), Some(&p)).unwrap().unwrap();
        assert!(s.source.ends_with(name), "{}", s.source);
        assert_eq!(s.files.get("meta-data").map(Vec::as_slice), Some(MD));
    }
    // Not an image, missing path.
    let junk = t.w().join("junk");
    std::fs::write(&junk, vec![7u8; 70_000]).unwrap();
    let e = find_seed(&t.sys, &linux(), Some(&junk)).unwrap_err();
    assert!(
        format!("{e:#}").contains("neither a directory nor an ISO9660 or vfat image"),
        "{e:#}"
    );
    let e = find_seed(&t.sys, &linux(), Some(&t.w().join("nope"))).unwrap_err();
    assert!(format!("{e:#}").contains("no such file"), "{e:#}");
    // A seed file over the size limit is refused, naming it.
    let mut c = linux();
    c.max_seed_file_bytes = 4;
    let e = find_seed(&t.sys, &c, Some(&root.join("seed"))).unwrap_err();
    assert!(
        format!("{e:#}").contains("more than the seed file limit"),
        "{e:#}"
    );
    let _ = datasource::POLL_INTERVAL;
}

#[test]
fn seed_argument_through_relative_by_label_links() {
    // `--seed /dev/disk/by-label/cidata`, a udev link to `../../sr0`, inside the root.
    let t = Tree::new();
    let root = t.sys.root().to_path_buf();
    t.block("sr0", &iso(t.w(), "cidata"));
    t.sys.put("/dev/disk/by-label/.keep", "");
    std::os::unix::fs::symlink("../../sr0", root.join("dev/disk/by-label/cidata")).unwrap();
    // A chain: by-id -> by-label -> sr0.
    t.sys.put("/dev/disk/by-id/.keep", "");
    std::os::unix::fs::symlink("../by-label/cidata", root.join("dev/disk/by-id/cd")).unwrap();
    for link in ["dev/disk/by-label/cidata", "dev/disk/by-id/cd"] {
        let s = find_seed(&t.sys, &linux(), Some(&root.join(link)))
            .unwrap()
            .unwrap();
        assert_eq!(s.source, "iso9660:/dev/sr0", "{link}");
        assert_eq!(s.files.get("meta-data").map(Vec::as_slice), Some(MD));
    }
    // A loop is an error, not a hang.
    std::os::unix::fs::symlink("loop-b", root.join("dev/loop-a")).unwrap();
    std::os::unix::fs::symlink("loop-a", root.join("dev/loop-b")).unwrap();
    let e = find_seed(&t.sys, &linux(), Some(&root.join("dev/loop-a"))).unwrap_err();
    assert!(format!("{e:#}").contains("too many levels"), "{e:#}");
}

#[test]
fn the_seed_budget_bounds_all_files_together() {
    // user-data (35 bytes) and meta-data (50 bytes): each within a 60-byte budget, together
    // not. The budget holds for directories, ISO9660 and vfat alike.
    let t = Tree::new();
    let mut c = linux();
    c.max_seed_bytes = 60;
    let dir = seed_dir(t.w());
    for (name, img) in [
        ("a.iso", iso(t.w(), "cidata")),
        ("b.img", vfat(t.w(), "CIDATA")),
    ] {
        let p = t.w().join(name);
        std::fs::write(&p, img).unwrap();
        let e = find_seed(&t.sys, &c, Some(&p)).unwrap_err();
        assert!(
            format!("{e:#}").contains("seed budget of 60 bytes"),
            "{name}: {e:#}"
        );
    }
    let e = find_seed(&t.sys, &c, Some(&dir)).unwrap_err();
    assert!(
        format!("{e:#}").contains("seed budget of 60 bytes"),
        "{e:#}"
    );
    c.max_seed_bytes = (UD.len() + MD.len()) as u64;
    assert!(find_seed(&t.sys, &c, Some(&dir)).unwrap().is_some());

    // A hostile cdrom: 40 directory entries sharing one extent (hard links, which
    // genisoimage writes once) cannot make the agent read 40 times the image.
    let src = t.w().join("shared");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("meta-data"), MD).unwrap();
    std::fs::write(src.join("user-data"), vec![b'#'; 100_000]).unwrap();
    for i in 0..40 {
        std::fs::hard_link(src.join("user-data"), src.join(format!("f{i}"))).unwrap();
    }
    let out = t.w().join("shared.iso");
    run(Command::new("genisoimage")
        .args(["-quiet", "-volid", "cidata", "-rock", "-o"])
        .arg(&out)
        .arg(&src));
    let size = std::fs::metadata(&out).unwrap().len();
    assert!(size < 1 << 20, "the links share one extent: {size} bytes");
    let mut c = linux();
    c.max_seed_bytes = 1 << 20;
    let e = find_seed(&t.sys, &c, Some(&out)).unwrap_err();
    assert!(format!("{e:#}").contains("seed budget"), "{e:#}");
}
