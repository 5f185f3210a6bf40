//! `growpart` and `resize_rootfs`: grow the root partition into the space a resized clone
//! gained, then the file system on it. Every boot, cheap when there is nothing to do.
//!
//! Keys and defaults are cloud-init's: `growpart: {mode: auto, devices: ['/'],
//! ignore_growroot_disabled: false}` (`mode: off` or `false` disables it, and so does the
//! file `/etc/growroot-disabled` unless `ignore_growroot_disabled`), `resize_rootfs: true`
//! (`false`, or `noblock` to grow the file system in the background).
//!
//! Linux, `mode: auto`: the device under each mount point comes from
//! `/proc/self/mountinfo` (its major:minor, so `/dev/root` needs no guessing) and sysfs
//! (`/sys/dev/block/M:m`: partition number and parent disk; a device-mapper device — LVM,
//! LUKS — is not grown). The table is read and the growth planned ([`super::table`]); then,
//! under an exclusive lock on the disk, the table is read again and must be what was
//! planned from, the new sectors are written (the backup GPT first, the primary last) and
//! read back, and the kernel is told the partition's new size (`BLKPG`). `mode: growpart`
//! runs cloud-utils' `growpart DISK N` instead (exit 1 is "no change").
//!
//! FreeBSD (`auto` or `gpart`): when the template lets base's `growfs` rc.d script do it
//! (`growfs_enable="YES"` and the `/firstboot` sentinel), it is left to base. Otherwise
//! `gpart recover DISK` and `gpart resize -i N DISK` for a UFS root, `zpool online -e`
//! for a ZFS pool's devices, as base's script does.
//!
//! The file system: ext2/3/4 `resize2fs DEV`, xfs `xfs_growfs /`, btrfs `btrfs filesystem
//! resize max /`, UFS `growfs -y /`. For ext and xfs the superblock says whether the file
//! system already fills its device; then nothing runs.

use std::io::SeekFrom;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context as _};

use super::table::{self, Growth, FUDGE_BYTES};
use crate::formats::userdata::value::KeyVal;
use crate::formats::userdata::SeedError;
use crate::platform::{Cmd, CmdOutput, OsKind, System};

/// The marker file that disables growpart (shared with initramfs `growroot`).
pub const GROWROOT_DISABLED: &str = "/etc/growroot-disabled";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Auto,
    Growpart,
    Gpart,
    Off,
}

/// `growpart:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrowConfig {
    pub mode: Mode,
    pub devices: Vec<String>,
    pub ignore_growroot_disabled: bool,
}

impl Default for GrowConfig {
    fn default() -> Self {
        GrowConfig {
            mode: Mode::Auto,
            devices: vec!["/".into()],
            ignore_growroot_disabled: false,
        }
    }
}

/// `resize_rootfs:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResizeRootfs {
    Yes,
    No,
    Noblock,
}

/// `growpart` from the seed (absent: the defaults); sub-keys we do not know are warnings.
pub fn growpart_config(v: Option<KeyVal>) -> Result<(GrowConfig, Vec<String>), SeedError> {
    let mut cfg = GrowConfig::default();
    let Some(v) = v else {
        return Ok((cfg, Vec::new()));
    };
    let warnings = v
        .unknown_keys(&["mode", "devices", "ignore_growroot_disabled"])
        .into_iter()
        .map(|k| format!("'{k}' is not supported by ci-agent (ignored)"))
        .collect();
    v.mapping()?;
    if let Some(m) = v.get("mode") {
        cfg.mode = match m.node.as_bool() {
            Some(false) => Mode::Off,
            Some(true) => Mode::Auto,
            None => match m.str()?.as_str() {
                "auto" => Mode::Auto,
                "growpart" => Mode::Growpart,
                "gpart" => Mode::Gpart,
                "off" => Mode::Off,
                other => {
                    return Err(m.err(format!(
                        "expected auto, growpart, gpart or off, found {other:?}"
                    )))
                }
            },
        };
    }
    if let Some(d) = v.get("devices") {
        cfg.devices = d.str_list()?;
        for (i, dev) in cfg.devices.iter().enumerate() {
            if !dev.starts_with('/') || dev.split('/').any(|c| c == "..") {
                return Err(d.err(format!(
                    "[{i}]: expected a mount point or a /dev path, found {dev:?}"
                )));
            }
        }
    }
    if let Some(b) = v.get("ignore_growroot_disabled") {
        cfg.ignore_growroot_disabled = b.bool()?;
    }
    Ok((cfg, warnings))
}

/// `resize_rootfs` from the seed (absent: true).
pub fn resize_rootfs_config(v: Option<KeyVal>) -> Result<ResizeRootfs, SeedError> {
    let Some(v) = v else {
        return Ok(ResizeRootfs::Yes);
    };
    if let Some(b) = v.node.as_bool() {
        return Ok(if b {
            ResizeRootfs::Yes
        } else {
            ResizeRootfs::No
        });
    }
    match v.str().ok().as_deref() {
        Some("noblock") => Ok(ResizeRootfs::Noblock),
        _ => Err(v.expected("true, false or 'noblock'")),
    }
}

/// Whether this machine can be looked at at all: the live mount table (absent under a
/// `--root` prefix, so test roots and the demo never try).
pub fn can_look(sys: &dyn System, os: OsKind) -> bool {
    match os {
        OsKind::Linux => sys.exists(Path::new("/proc/self/mountinfo")),
        OsKind::FreeBsd => sys.exists(Path::new("/sbin/gpart")),
    }
}

/// What a step did, for the log and status: info lines and warnings.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub info: Vec<String>,
    pub warnings: Vec<String>,
    /// Partitions grown (`/dev/vda2`).
    pub grown: Vec<String>,
}

impl Report {
    fn info(&mut self, s: String) {
        log::info!("{s}");
        self.info.push(s);
    }
}

/// A mount from `/proc/self/mountinfo` (Linux) or `mount -p` (FreeBSD).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub mountpoint: String,
    pub fstype: String,
    pub source: String,
    /// major:minor (Linux).
    pub dev: Option<(u32, u32)>,
}

/// Undo the octal escapes of mountinfo (`\040` for a space).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            out.push(v as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parse `/proc/self/mountinfo`; malformed lines are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let Some(sep) = f.iter().position(|x| *x == "-") else {
            continue;
        };
        if sep < 6 || f.len() < sep + 3 {
            continue;
        }
        let dev = f[2]
            .split_once(':')
            .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)));
        out.push(Mount {
            mountpoint: unescape(f[4]),
            fstype: f[sep + 1].to_string(),
            source: unescape(f[sep + 2]),
            dev,
        });
    }
    out
}

/// Parse FreeBSD's `mount -p` (fstab format).
pub fn parse_mount_p(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 3).then(|| Mount {
                source: f[0].to_string(),
                mountpoint: f[1].to_string(),
                fstype: f[2].to_string(),
                dev: None,
            })
        })
        .collect()
}

fn mounts(sys: &dyn System, os: OsKind) -> anyhow::Result<Vec<Mount>> {
    match os {
        OsKind::Linux => {
            let p = Path::new("/proc/self/mountinfo");
            let b = sys
                .read_file(p, 4 << 20)
                .with_context(|| format!("reading {}", p.display()))?;
            Ok(parse_mountinfo(&String::from_utf8_lossy(&b)))
        }
        OsKind::FreeBsd => {
            let out = sys.run(&Cmd::new(["mount", "-p"]))?;
            if !out.success() {
                bail!("mount -p failed: {}", tail(&out));
            }
            Ok(parse_mount_p(&String::from_utf8_lossy(&out.stdout)))
        }
    }
}

/// The mount at `path` (the last one mounted there wins).
fn mount_at<'m>(mounts: &'m [Mount], path: &str) -> Option<&'m Mount> {
    mounts.iter().rev().find(|m| m.mountpoint == path)
}

/// A partition of a Linux disk, from sysfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartDev {
    /// `vda2`
    pub name: String,
    /// `vda`
    pub disk: String,
    pub number: u32,
}

fn safe_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b':' | b'+'))
        && s != "."
        && s != ".."
}

fn read_trim(sys: &dyn System, p: &Path) -> anyhow::Result<String> {
    let b = sys
        .read_file(p, 4096)
        .with_context(|| format!("reading {}", p.display()))?;
    Ok(String::from_utf8_lossy(&b).trim().to_string())
}

fn read_u64(sys: &dyn System, p: &Path) -> anyhow::Result<u64> {
    let s = read_trim(sys, p)?;
    s.parse()
        .map_err(|_| anyhow!("{}: expected a number, found {s:?}", p.display()))
}

/// The partition behind a mount or a `/dev` path; `Err` says why it is not one we grow.
fn linux_partition(sys: &dyn System, m: Option<&Mount>, dev_path: &str) -> Result<PartDev, String> {
    let link = match m.and_then(|m| m.dev).filter(|(maj, _)| *maj != 0) {
        Some((maj, min)) => PathBuf::from(format!("/sys/dev/block/{maj}:{min}")),
        None => {
            let name = dev_path.rsplit('/').next().unwrap_or_default();
            if !dev_path.starts_with("/dev/") || !safe_name(name) {
                return Err(format!("{dev_path} is not a block device"));
            }
            PathBuf::from(format!("/sys/class/block/{name}"))
        }
    };
    let target = sys
        .read_link(&link)
        .map_err(|e| format!("{}: {e}", link.display()))?;
    let mut comps = target
        .components()
        .rev()
        .map(|c| c.as_os_str().to_string_lossy().into_owned());
    let name = comps.next().unwrap_or_default();
    let parent = comps.next().unwrap_or_default();
    if !safe_name(&name) || !safe_name(&parent) {
        return Err(format!("unexpected sysfs link {}", target.display()));
    }
    let class = PathBuf::from("/sys/class/block").join(&name);
    if sys.exists(&class.join("dm")) {
        return Err(format!(
            "/dev/{name} is a device-mapper device (LVM or LUKS): not grown"
        ));
    }
    let part_file = class.join("partition");
    if !sys.exists(&part_file) {
        return Err(format!(
            "/dev/{name} is a whole disk, not a partition: nothing to grow"
        ));
    }
    let number = read_trim(sys, &part_file)
        .ok()
        .and_then(|s| s.parse::<u32>().ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{}: not a partition number", part_file.display()))?;
    Ok(PartDev {
        name,
        disk: parent,
        number,
    })
}

/// Sector size and byte size of a Linux disk from sysfs.
fn linux_geometry(sys: &dyn System, disk: &str) -> anyhow::Result<(u64, u64)> {
    let base = PathBuf::from("/sys/class/block").join(disk);
    let sectors512 = read_u64(sys, &base.join("size"))?;
    let sector = read_u64(sys, &base.join("queue/logical_block_size")).unwrap_or(512);
    Ok((sector, sectors512.saturating_mul(512)))
}

/// The growpart step.
pub fn growpart(sys: &dyn System, os: OsKind, cfg: &GrowConfig) -> anyhow::Result<Report> {
    let mut r = Report::default();
    if cfg.mode == Mode::Off {
        r.info("growpart: disabled (mode: off)".into());
        return Ok(r);
    }
    if sys.exists(Path::new(GROWROOT_DISABLED)) && !cfg.ignore_growroot_disabled {
        r.info(format!("growpart: disabled by {GROWROOT_DISABLED}"));
        return Ok(r);
    }
    if os == OsKind::FreeBsd && left_to_base_growfs(sys) {
        r.info("growpart: left to base's growfs rc.d script (growfs_enable and /firstboot)".into());
        return Ok(r);
    }
    let mounts = mounts(sys, os)?;
    let mut failed = Vec::new();
    for dev in &cfg.devices {
        let res = match (os, cfg.mode) {
            (OsKind::Linux, Mode::Gpart) => Err(anyhow!("mode gpart is for FreeBSD")),
            (OsKind::FreeBsd, Mode::Growpart) => Err(anyhow!("mode growpart is for Linux")),
            (OsKind::Linux, mode) => grow_linux(sys, &mounts, dev, mode == Mode::Growpart, &mut r),
            (OsKind::FreeBsd, _) => grow_freebsd(sys, &mounts, dev, &mut r),
        };
        if let Err(e) = res {
            failed.push(format!("{dev}: {e:#}"));
        }
    }
    if !failed.is_empty() {
        bail!("growpart: {}", failed.join("; "));
    }
    Ok(r)
}

fn grow_linux(
    sys: &dyn System,
    mounts: &[Mount],
    dev: &str,
    with_tool: bool,
    r: &mut Report,
) -> anyhow::Result<()> {
    let m = if dev.starts_with("/dev/") {
        None
    } else {
        match mount_at(mounts, dev) {
            Some(m) => Some(m),
            None => {
                r.info(format!("growpart: {dev} is not a mount point; skipped"));
                return Ok(());
            }
        }
    };
    let source = m.map_or(dev, |m| m.source.as_str());
    let part = match linux_partition(sys, m, source) {
        Ok(p) => p,
        Err(why) => {
            r.info(format!("growpart: {dev}: {why}"));
            return Ok(());
        }
    };
    let disk = PathBuf::from("/dev").join(&part.disk);
    if with_tool {
        return run_growpart_tool(sys, &disk, &part, r);
    }
    let (sector, bytes) = linux_geometry(sys, &part.disk)?;
    let planned = {
        let mut d = sys
            .open_device(&disk)
            .with_context(|| format!("opening {}", disk.display()))?;
        table::read(&mut *d, sector, bytes).with_context(|| format!("{}", disk.display()))?
    };
    let growth = planned.grow(part.number)?;
    let Growth::Grow {
        part: p,
        new_last,
        writes,
    } = &growth
    else {
        if let Growth::NoChange(why) = &growth {
            r.info(format!("growpart: /dev/{}: {why}", part.name));
        }
        return Ok(());
    };
    let mut d = sys
        .open_disk(&disk)
        .with_context(|| format!("opening {} for writing", disk.display()))?;
    let now = table::read(&mut *d, sector, bytes).with_context(|| format!("{}", disk.display()))?;
    if now != planned {
        bail!(
            "the partition table of {} changed while the growth was planned; not grown",
            disk.display()
        );
    }
    for w in writes {
        d.seek(SeekFrom::Start(w.offset))
            .and_then(|_| d.write_all(&w.data))
            .with_context(|| {
                format!(
                    "writing {} bytes at byte {} of {}",
                    w.data.len(),
                    w.offset,
                    disk.display()
                )
            })?;
    }
    d.sync()
        .with_context(|| format!("syncing {}", disk.display()))?;
    let after = table::read(&mut *d, sector, bytes)
        .with_context(|| format!("{}: the written table does not read back", disk.display()))?;
    if after.part(part.number).map(|q| q.last) != Some(*new_last) && !is_dry(&after, &planned) {
        bail!(
            "{}: the written table does not read back as planned",
            disk.display()
        );
    }
    drop(d);
    let old = (p.last - p.first + 1) * sector;
    let new = (new_last - p.first + 1) * sector;
    r.info(format!(
        "growpart: grew /dev/{} (partition {} of {}, {}) from {old} to {new} bytes",
        part.name,
        part.number,
        disk.display(),
        planned.scheme.name()
    ));
    r.grown.push(format!("/dev/{}", part.name));
    if let Err(e) = sys.resize_partition(&disk, part.number, p.first * sector, new) {
        r.warnings.push(format!(
            "the kernel was not told the new size of /dev/{} ({e}); it takes effect at the next boot",
            part.name
        ));
    }
    Ok(())
}

/// A dry run writes nothing, so the table reads back unchanged: that is not a failure.
fn is_dry(after: &table::Table, planned: &table::Table) -> bool {
    after == planned
}

fn run_growpart_tool(
    sys: &dyn System,
    disk: &Path,
    part: &PartDev,
    r: &mut Report,
) -> anyhow::Result<()> {
    let out = sys.run(&Cmd::new([
        "growpart".to_string(),
        disk.display().to_string(),
        part.number.to_string(),
    ]))?;
    match out.code {
        Some(0) => {
            r.info(format!("growpart: growpart grew /dev/{}", part.name));
            r.grown.push(format!("/dev/{}", part.name));
            Ok(())
        }
        Some(1) => {
            r.info(format!(
                "growpart: /dev/{}: no change ({})",
                part.name,
                tail(&out)
            ));
            Ok(())
        }
        _ => bail!(
            "growpart {} {} failed: {}",
            disk.display(),
            part.number,
            tail(&out)
        ),
    }
}

/// The last line of a command's output, for messages.
fn tail(out: &CmdOutput) -> String {
    let text = if out.stderr.iter().any(|b| !b.is_ascii_whitespace()) {
        &out.stderr
    } else {
        &out.stdout
    };
    let s = String::from_utf8_lossy(text);
    let last = s.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
    crate::platform::policy::shorten(last.trim())
        .escape_debug()
        .to_string()
}

/// FreeBSD: base's `growfs` rc.d script runs on this boot (enabled, and the first-boot
/// sentinel is there), so it grows the root itself.
fn left_to_base_growfs(sys: &dyn System) -> bool {
    if !sys.exists(Path::new("/etc/rc.d/growfs")) || !sys.exists(Path::new("/firstboot")) {
        return false;
    }
    let rc = sys
        .read_file(Path::new("/etc/rc.conf"), 1 << 20)
        .unwrap_or_default();
    let mut enabled = false;
    for line in String::from_utf8_lossy(&rc).lines() {
        let l = line.trim();
        if let Some(v) = l.strip_prefix("growfs_enable=") {
            let v = v
                .split('#')
                .next()
                .unwrap_or("")
                .trim()
                .trim_matches(|c| c == '"' || c == '\'');
            enabled = v.eq_ignore_ascii_case("yes");
        }
    }
    enabled
}

/// `vtbd0p4` → (`vtbd0`, 4); `ada0s1` → (`ada0`, 1).
pub fn bsd_partition(name: &str) -> Option<(String, u32)> {
    let digits = name.len() - name.bytes().rev().take_while(u8::is_ascii_digit).count();
    let (head, num) = name.split_at(digits);
    let number: u32 = num.parse().ok().filter(|n| *n > 0)?;
    let disk = head.strip_suffix('p').or_else(|| head.strip_suffix('s'))?;
    (disk.bytes().last()?.is_ascii_digit() && safe_name(disk)).then(|| (disk.to_string(), number))
}

/// A FreeBSD provider behind a `/dev` name, through `glabel status -s` for labels
/// (`gpt/rootfs` → `vtbd0p4`).
fn bsd_provider(sys: &dyn System, dev: &str) -> anyhow::Result<Option<String>> {
    let name = dev.strip_prefix("/dev/").unwrap_or(dev);
    if bsd_partition(name).is_some() {
        return Ok(Some(name.to_string()));
    }
    let out = sys.run(&Cmd::new(["glabel", "status", "-s"]))?;
    Ok(String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() >= 3 && f[0] == name).then(|| f[2].to_string())
    }))
}

/// The devices of a ZFS pool (`zpool list -vHP`).
fn zpool_devices(sys: &dyn System, pool: &str) -> anyhow::Result<Vec<String>> {
    let out = sys.run(&Cmd::new(["zpool", "list", "-v", "-H", "-P", pool]))?;
    if !out.success() {
        bail!("zpool list {pool} failed: {}", tail(&out));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.starts_with("/dev/"))
        .map(str::to_string)
        .collect())
}

fn grow_freebsd(
    sys: &dyn System,
    mounts: &[Mount],
    dev: &str,
    r: &mut Report,
) -> anyhow::Result<()> {
    let (source, zfs) = if dev.starts_with("/dev/") {
        (dev.to_string(), false)
    } else {
        match mount_at(mounts, dev) {
            Some(m) => (m.source.clone(), m.fstype == "zfs"),
            None => {
                r.info(format!("growpart: {dev} is not a mount point; skipped"));
                return Ok(());
            }
        }
    };
    let devs = if zfs {
        let pool = source.split('/').next().unwrap_or_default();
        zpool_devices(sys, pool)?
    } else {
        vec![source]
    };
    for d in devs {
        let Some(provider) = bsd_provider(sys, &d)? else {
            r.info(format!(
                "growpart: {d}: not a partition we know how to grow"
            ));
            continue;
        };
        let Some((disk, n)) = bsd_partition(&provider) else {
            r.info(format!(
                "growpart: {provider}: not a partition we know how to grow"
            ));
            continue;
        };
        // A disk that grew has its GPT backup header in the middle: recover moves it.
        let _ = sys.run(&Cmd::new(["gpart", "recover", disk.as_str()]))?;
        let out = sys.run(&Cmd::new([
            "gpart".to_string(),
            "resize".into(),
            "-i".into(),
            n.to_string(),
            disk.clone(),
        ]))?;
        if out.success() {
            r.info(format!(
                "growpart: gpart resize -i {n} {disk}: {}",
                tail(&out)
            ));
            r.grown.push(format!("/dev/{provider}"));
        } else {
            let msg = tail(&out);
            if msg.contains("No space") || msg.contains("autofill") {
                r.info(format!("growpart: {provider}: no free space after it"));
            } else {
                bail!("gpart resize -i {n} {disk} failed: {msg}");
            }
        }
        if zfs {
            let pool = mount_at(mounts, dev)
                .and_then(|m| m.source.split('/').next().map(str::to_string))
                .unwrap_or_default();
            let out = sys.run(&Cmd::new([
                "zpool",
                "online",
                "-e",
                pool.as_str(),
                d.as_str(),
            ]))?;
            if !out.success() {
                r.warnings
                    .push(format!("zpool online -e {pool} {d} failed: {}", tail(&out)));
            }
        }
    }
    Ok(())
}

/// Bytes an ext2/3/4 or xfs file system spans, from its superblock; `None` for others or
/// when it cannot be read.
fn fs_bytes(sys: &dyn System, dev: &Path, fstype: &str) -> Option<u64> {
    let mut d = sys.open_device(dev).ok()?;
    let mut sb = [0u8; 1024];
    match fstype {
        "ext2" | "ext3" | "ext4" => {
            d.seek(SeekFrom::Start(1024)).ok()?;
            d.read_exact(&mut sb).ok()?;
            if sb[56..58] != [0x53, 0xef] {
                return None;
            }
            let u32_at = |i: usize| u32::from_le_bytes([sb[i], sb[i + 1], sb[i + 2], sb[i + 3]]);
            let log = u32_at(24);
            if log > 6 {
                return None;
            }
            let block = 1024u64 << log;
            let hi = if u32_at(0x60) & 0x80 != 0 {
                u64::from(u32_at(0x150))
            } else {
                0
            };
            Some((hi << 32 | u64::from(u32_at(4))).saturating_mul(block))
        }
        "xfs" => {
            d.seek(SeekFrom::Start(0)).ok()?;
            d.read_exact(&mut sb[..16]).ok()?;
            if &sb[..4] != b"XFSB" {
                return None;
            }
            let block = u64::from(u32::from_be_bytes([sb[4], sb[5], sb[6], sb[7]]));
            let blocks = u64::from_be_bytes(sb[8..16].try_into().ok()?);
            Some(blocks.saturating_mul(block))
        }
        _ => None,
    }
}

/// The resize_rootfs step.
pub fn resize_rootfs(sys: &dyn System, os: OsKind, mode: ResizeRootfs) -> anyhow::Result<Report> {
    let mut r = Report::default();
    if mode == ResizeRootfs::No {
        r.info("resize_rootfs: disabled".into());
        return Ok(r);
    }
    if os == OsKind::FreeBsd && left_to_base_growfs(sys) {
        r.info(
            "resize_rootfs: left to base's growfs rc.d script (growfs_enable and /firstboot)"
                .into(),
        );
        return Ok(r);
    }
    let mounts = mounts(sys, os)?;
    let Some(root) = mount_at(&mounts, "/") else {
        bail!("no mount for / in the mount table");
    };
    let cmd = match (os, root.fstype.as_str()) {
        (OsKind::Linux, fs @ ("ext2" | "ext3" | "ext4" | "xfs")) => {
            let part = match linux_partition(sys, Some(root), &root.source) {
                Ok(p) => p,
                Err(why) if why.contains("whole disk") => {
                    let name = root
                        .source
                        .rsplit('/')
                        .next()
                        .unwrap_or_default()
                        .to_string();
                    PartDev {
                        disk: name.clone(),
                        name,
                        number: 0,
                    }
                }
                Err(why) => {
                    r.info(format!("resize_rootfs: {why}"));
                    return Ok(r);
                }
            };
            let dev = PathBuf::from("/dev").join(&part.name);
            let size = read_u64(
                sys,
                &PathBuf::from("/sys/class/block")
                    .join(&part.name)
                    .join("size"),
            )
            .ok()
            .map(|s| s.saturating_mul(512));
            if let (Some(fs_len), Some(size)) = (fs_bytes(sys, &dev, fs), size) {
                if fs_len.saturating_add(FUDGE_BYTES) > size {
                    r.info(format!(
                        "resize_rootfs: the {fs} file system on {} already fills it",
                        dev.display()
                    ));
                    return Ok(r);
                }
            }
            if fs == "xfs" {
                Cmd::new(["xfs_growfs", "/"])
            } else {
                Cmd::new(["resize2fs".to_string(), dev.display().to_string()])
            }
        }
        (OsKind::Linux, "btrfs") => Cmd::new(["btrfs", "filesystem", "resize", "max", "/"]),
        (OsKind::FreeBsd, "ufs") => {
            let out = sys.run(&Cmd::new(["growfs", "-N", "/"]))?;
            if String::from_utf8_lossy(&out.stderr)
                .contains("is not larger than the current filesystem size")
            {
                r.info(
                    "resize_rootfs: the UFS file system on / already fills its partition".into(),
                );
                return Ok(r);
            }
            Cmd::new(["growfs", "-y", "/"])
        }
        (OsKind::FreeBsd, "zfs") => {
            r.info(
                "resize_rootfs: ZFS grows with its pool (zpool online -e, done by growpart)".into(),
            );
            return Ok(r);
        }
        (_, fs) => {
            r.info(format!("resize_rootfs: {fs} on / is not resized"));
            return Ok(r);
        }
    };
    let line = cmd.display();
    if mode == ResizeRootfs::Noblock {
        // In the background, like cloud-init's noblock: the boot goes on.
        let mut argv = vec![
            "sh".to_string(),
            "-c".into(),
            "\"$0\" \"$@\" </dev/null >/dev/null 2>&1 &".into(),
        ];
        argv.extend(cmd.argv);
        let out = sys.run(&Cmd::new(argv))?;
        if !out.success() {
            bail!("{line} could not be started: {}", tail(&out));
        }
        r.info(format!("resize_rootfs: {line} started in the background"));
        return Ok(r);
    }
    let out = sys.run(&cmd)?;
    if !out.success() {
        bail!("{line} failed: {}", tail(&out));
    }
    r.info(format!("resize_rootfs: {line}"));
    Ok(r)
}
