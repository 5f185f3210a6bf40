//! Key: `mounts`, `mount_default_fields`, `swap` (`filename`, `size`, `maxsize`). cloud-init: `cc_mounts`.
//!
//! `mounts`: fstab entries `[fs_spec, fs_file, fs_vfstype, fs_mntops, fs_freq, fs_passno]`;
//! missing fields come from `mount_default_fields` (default Linux `[null, null, auto,
//! "defaults,nofail", "0", "2"]`, FreeBSD `[null, null, ufs, "rw,failok", "0", "2"]`). A
//! short device name (`vdb`) means `/dev/vdb`; `LABEL=`, `UUID=`, `host:/path` and absolute
//! paths stay as written. An entry whose `fs_file` is null is dropped (cloud-init's way of
//! removing one). An entry whose device the template's fstab already lists is left to the
//! template (warned). `ephemeral*` devices do not exist on NoCloud and are skipped (warned).
//!
//! `swap`: a swap file of `size` bytes (`512M`, `2G`, a number, or `auto` = the RAM size),
//! at most `maxsize`, at `filename` (default `/swap.img`); `size: 0` or no size: none. The
//! file is filled with zeros by `dd` (no holes, which swap refuses), mode 0600.
//! Linux: `mkswap` and `swapon` (skipped when `/proc/swaps` lists it already), fstab
//! `FILE none swap sw,nofail 0 0`. FreeBSD: the file is attached by `mdconfig` at boot through
//! fstab `md99 none swap sw,file=FILE,late 0 0` and enabled now with `swapon -aL`.
//!
//! The entries are written to `/etc/fstab` between two marker lines, replacing the block of
//! an earlier run (idempotent: a second boot writes the same file); the rest of the file is
//! the template's. Mount points are created; then `systemctl daemon-reload` (under systemd)
//! and `mount -a` (a failure fails this module). Every field is checked: whitespace,
//! control characters or `#` would corrupt the fstab, and fail the module naming
//! `mounts[i][j]` before anything is written. Early, once per instance.

use std::path::Path;

use anyhow::{bail, Context as _};

use super::{Context, Frequency, Module, Stage};
use crate::formats::userdata::value::KeyVal;
use crate::platform::{OsKind, WriteOpts};

pub struct Mounts;

const FSTAB: &str = "/etc/fstab";
const BEGIN: &str = "# BEGIN ci-agent mounts (cloud-config mounts/swap; rewritten on each run)";
const END: &str = "# END ci-agent mounts";
const DEFAULT_SWAP: &str = "/swap.img";
const MIB: u64 = 1 << 20;

fn defaults(os: OsKind) -> [Option<String>; 6] {
    let s = |x: &str| Some(x.to_owned());
    match os {
        OsKind::Linux => [None, None, s("auto"), s("defaults,nofail"), s("0"), s("2")],
        OsKind::FreeBsd => [None, None, s("ufs"), s("rw,failok"), s("0"), s("2")],
    }
}

/// One fstab field: a scalar without whitespace, control characters or `#`.
fn field(v: &KeyVal) -> anyhow::Result<Option<String>> {
    if v.is_null() {
        return Ok(None);
    }
    let s = v.line(1024)?;
    if s.is_empty() || s.chars().any(|c| c.is_whitespace() || c == '#') {
        return Err(v
            .err(format!(
                "{s:?} cannot be an fstab field (empty, whitespace or '#')"
            ))
            .into());
    }
    Ok(Some(s))
}

fn fields(v: &KeyVal) -> anyhow::Result<Vec<Option<String>>> {
    let items = v.items()?;
    if items.len() > 6 {
        return Err(v
            .err(format!("expected at most 6 fields, found {}", items.len()))
            .into());
    }
    items.iter().map(field).collect()
}

fn device(spec: &str) -> String {
    if spec.starts_with('/') || spec.contains('=') || spec.contains(':') {
        spec.to_owned()
    } else {
        format!("/dev/{spec}")
    }
}

/// The fstab without our block, and whether it had one.
fn without_block(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut inside = false;
    for l in text.lines() {
        if l == BEGIN {
            inside = true;
        } else if l == END {
            inside = false;
        } else if !inside {
            out.push(l.to_owned());
        }
    }
    out
}

struct SwapPlan {
    file: String,
    size: u64,
}

fn swap_plan(ctx: &mut Context) -> anyhow::Result<Option<SwapPlan>> {
    let Some(v) = ctx.key("swap") else {
        return Ok(None);
    };
    v.mapping()?;
    for w in v.unknown_keys(&["filename", "size", "maxsize"]) {
        ctx.warn(w);
    }
    let file = match v.get("filename") {
        Some(f) => {
            let p = field(&f)?.unwrap_or_default();
            if !p.starts_with('/') || p.split('/').any(|c| c == "..") {
                return Err(f.err("expected an absolute path without '..'").into());
            }
            p
        }
        None => DEFAULT_SWAP.to_owned(),
    };
    let maxsize = match v.get("maxsize") {
        Some(m) => Some(m.size()?),
        None => None,
    };
    let size = match v.get("size") {
        None => 0,
        Some(s) if s.str()?.trim() == "auto" => {
            let mem = memory(ctx)?;
            mem.min(maxsize.unwrap_or(8 << 30))
        }
        Some(s) => s.size()?,
    };
    let size = maxsize.map_or(size, |m| size.min(m)) / MIB * MIB;
    if size == 0 {
        return Ok(None);
    }
    Ok(Some(SwapPlan { file, size }))
}

/// RAM in bytes: `/proc/meminfo` (Linux), `sysctl -n hw.physmem` (FreeBSD).
fn memory(ctx: &Context) -> anyhow::Result<u64> {
    match ctx.os {
        OsKind::Linux => {
            let b = ctx
                .sys
                .read_file(Path::new("/proc/meminfo"), 1 << 20)
                .context("swap size auto: reading /proc/meminfo")?;
            String::from_utf8_lossy(&b)
                .lines()
                .find_map(|l| {
                    let kb = l.strip_prefix("MemTotal:")?.trim().strip_suffix("kB")?;
                    kb.trim().parse::<u64>().ok()
                })
                .map(|kb| kb * 1024)
                .context("swap size auto: no MemTotal in /proc/meminfo")
        }
        OsKind::FreeBsd => {
            let out = ctx.cmd(&["sysctl", "-n", "hw.physmem"])?;
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse()
                .context("swap size auto: sysctl hw.physmem printed no number")
        }
    }
}

fn swap_active(ctx: &Context, file: &str) -> bool {
    ctx.sys
        .read_file(Path::new("/proc/swaps"), 1 << 20)
        .map(|b| {
            String::from_utf8_lossy(&b)
                .lines()
                .any(|l| l.split_whitespace().next() == Some(file))
        })
        .unwrap_or(false)
}

/// Make the swap file and enable it; returns its fstab line.
fn make_swap(ctx: &Context, plan: &SwapPlan) -> anyhow::Result<String> {
    let path = Path::new(&plan.file);
    let mib = (plan.size / MIB).to_string();
    let existing = ctx.sys.lstat(path)?;
    let fresh = !matches!(existing, Some(st) if st.len == plan.size);
    let active = ctx.os == OsKind::Linux && swap_active(ctx, &plan.file);
    if fresh && active {
        bail!(
            "swap: {} is in use with another size; swapoff it first",
            plan.file
        );
    }
    if fresh {
        if let Some(parent) = path.parent() {
            ctx.sys.create_dir_all(parent, 0o755, None)?;
        }
        // Created 0600 first: dd keeps the mode of the file it truncates.
        ctx.sys
            .write_file(path, b"", WriteOpts::mode(0o600))
            .with_context(|| format!("creating {}", plan.file))?;
        let of = format!("of={}", plan.file);
        let count = format!("count={mib}");
        match ctx.os {
            OsKind::Linux => {
                ctx.cmd(&["dd", "if=/dev/zero", &of, "bs=1M", &count])?;
                ctx.cmd(&["mkswap", &plan.file])?;
            }
            OsKind::FreeBsd => {
                ctx.cmd(&["dd", "if=/dev/zero", &of, "bs=1m", &count])?;
            }
        }
    }
    Ok(match ctx.os {
        OsKind::Linux => {
            if !active {
                // systemd may activate the fstab line of an earlier instance meanwhile: a
                // failure is only an error when the file is still not in use.
                if let Err(e) = ctx.cmd(&["swapon", &plan.file]) {
                    if !swap_active(ctx, &plan.file) {
                        return Err(e);
                    }
                }
            }
            format!("{} none swap sw,nofail 0 0", plan.file)
        }
        OsKind::FreeBsd => format!("md99 none swap sw,file={},late 0 0", plan.file),
    })
}

impl Module for Mounts {
    fn name(&self) -> &'static str {
        "mounts"
    }
    fn frequency(&self) -> Frequency {
        Frequency::PerInstance
    }
    fn stage(&self) -> Stage {
        Stage::Early
    }
    fn wanted(&self, ctx: &Context) -> bool {
        ctx.key("mounts").is_some() || ctx.key("swap").is_some()
    }
    fn run(&self, ctx: &mut Context) -> anyhow::Result<()> {
        let mut dflt = defaults(ctx.os);
        if let Some(d) = ctx.key("mount_default_fields") {
            for (j, f) in fields(&d)?.into_iter().enumerate() {
                dflt[j] = f;
            }
        }
        let fstab_text = match ctx.sys.exists(Path::new(FSTAB)) {
            true => {
                String::from_utf8_lossy(&ctx.sys.read_file(Path::new(FSTAB), 1 << 20)?).into_owned()
            }
            false => String::new(),
        };
        let kept = without_block(&fstab_text);
        let theirs: Vec<String> = kept
            .iter()
            .filter(|l| !l.trim_start().starts_with('#'))
            .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
            .collect();

        // Check everything before any effect.
        let mut entries: Vec<[String; 6]> = Vec::new();
        if let Some(m) = ctx.key("mounts") {
            for item in m.items()? {
                let f = fields(&item)?;
                let Some(Some(spec)) = f.first().cloned() else {
                    ctx.warn(format!("{}: no device (ignored)", item.path()));
                    continue;
                };
                if spec.starts_with("ephemeral") || spec == "swap" {
                    ctx.warn(format!(
                        "{}: {spec} does not exist on NoCloud (ignored; use the swap key for swap)",
                        item.path()
                    ));
                    continue;
                }
                if matches!(f.get(1), Some(None)) {
                    log::info!("mounts: {spec} removed (fs_file is null)");
                    continue;
                }
                let dev = device(&spec);
                if theirs.contains(&dev) || theirs.contains(&spec) {
                    ctx.warn(format!(
                        "{}: {dev} is already in the template's /etc/fstab (left as it is)",
                        item.path()
                    ));
                    continue;
                }
                let mut full: [String; 6] = Default::default();
                for (j, slot) in full.iter_mut().enumerate() {
                    *slot = match f.get(j).cloned().flatten().or_else(|| dflt[j].clone()) {
                        Some(x) => x,
                        None => bail!("{}[{j}]: missing, and no default", item.path()),
                    };
                }
                full[0] = dev;
                let mp = &full[1];
                if mp != "none" && (!mp.starts_with('/') || mp.split('/').any(|c| c == "..")) {
                    bail!(
                        "{}[1]: mount point {mp:?} must be an absolute path without '..'",
                        item.path()
                    );
                }
                entries.push(full);
            }
        }
        let swap = swap_plan(ctx)?;

        let mut block: Vec<String> = entries.iter().map(|e| e.join(" ")).collect();
        if let Some(plan) = &swap {
            block.push(make_swap(ctx, plan)?);
        }
        for e in &entries {
            if e[1].starts_with('/') && e[2] != "swap" {
                ctx.sys
                    .create_dir_all(Path::new(&e[1]), 0o755, None)
                    .with_context(|| format!("creating mount point {}", e[1]))?;
            }
        }
        let mut out = kept;
        if !block.is_empty() {
            out.push(BEGIN.to_owned());
            out.extend(block);
            out.push(END.to_owned());
        }
        let mut text = out.join("\n");
        if !text.is_empty() {
            text.push('\n');
        }
        if text != fstab_text {
            ctx.write_config(FSTAB, text.as_bytes(), 0o644)?;
        }
        if !entries.is_empty() {
            if ctx.os == OsKind::Linux && ctx.systemd() {
                ctx.cmd(&["systemctl", "daemon-reload"])?;
            }
            ctx.cmd(&["mount", "-a"])?;
        }
        if ctx.os == OsKind::FreeBsd && swap.is_some() {
            ctx.cmd(&["swapon", "-aL"])?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::test_env::Env;
    use crate::platform::System;

    const FSTAB_T: &str = "# template\nUUID=abc / ext4 errors=remount-ro 0 1\n";

    #[test]
    fn linux_mounts_and_swap_are_written_once_and_applied() {
        let mut env = Env::new(OsKind::Linux);
        env.sys.put(FSTAB, FSTAB_T);
        env.sys.put("/run/systemd/system/.keep", "");
        env.yaml(
            "mounts:\n- [vdb, /mnt/data, ext4]\n- [LABEL=logs, /var/log/app]\n- [ephemeral0, /mnt]\n- [UUID=abc, /other]\nswap: {filename: /swapfile, size: 64M}\n",
        );
        let w = env.run_ok(&Mounts);
        assert_eq!(w.len(), 2, "{w:?}");
        let want = format!(
            "{FSTAB_T}{BEGIN}\n/dev/vdb /mnt/data ext4 defaults,nofail 0 2\nLABEL=logs /var/log/app auto defaults,nofail 0 2\n/swapfile none swap sw,nofail 0 0\n{END}\n"
        );
        assert_eq!(env.read(FSTAB), want);
        assert!(env.sys.exists(Path::new("/mnt/data")));
        assert!(env.sys.exists(Path::new("/var/log/app")));
        assert_eq!(env.mode("/swapfile"), 0o600);
        assert_eq!(
            env.lines(),
            [
                "dd if=/dev/zero of=/swapfile bs=1M count=64",
                "mkswap /swapfile",
                "swapon /swapfile",
                "systemctl daemon-reload",
                "mount -a"
            ]
        );
        // Second run: the same fstab; the file is already there (the fake dd wrote nothing,
        // so pretend it did) and active.
        let host = env.sys.host_path(Path::new("/swapfile")).unwrap();
        std::fs::File::options()
            .write(true)
            .open(host)
            .unwrap()
            .set_len(64 << 20)
            .unwrap();
        env.sys
            .put("/proc/swaps", "Filename Type\n/swapfile file 65532 0 -2\n");
        env.run_ok(&Mounts);
        assert_eq!(env.read(FSTAB), want);
        assert_eq!(env.lines()[5..], ["systemctl daemon-reload", "mount -a"]);
    }

    #[test]
    fn a_swapon_race_with_systemd_is_not_an_error() {
        let mut env = Env::new(OsKind::Linux);
        let root = env.sys.root().to_path_buf();
        env.sys.on_command_fn(move |cmd| {
            (cmd.argv[0] == "swapon").then(|| {
                // Activated by someone else just before us.
                std::fs::create_dir_all(root.join("proc")).unwrap();
                std::fs::write(root.join("proc/swaps"), "Filename\n/swap.img file 1 0 -2\n")
                    .unwrap();
                crate::platform::CmdOutput {
                    code: Some(255),
                    ..Default::default()
                }
            })
        });
        env.yaml("swap: {size: 1M}\n");
        env.run_ok(&Mounts);
        std::fs::remove_file(env.sys.root().join("proc/swaps")).unwrap();
        env.sys.remove_file(Path::new("/swap.img")).unwrap();
        env.sys.on_command(
            &["swapon"],
            crate::platform::CmdOutput {
                code: Some(255),
                ..Default::default()
            },
        );
        assert!(env.run_err(&Mounts).contains("swapon /swap.img failed"));
    }

    #[test]
    fn default_fields_null_removal_and_bad_fields() {
        let mut env = Env::new(OsKind::Linux);
        env.sys.put(
            FSTAB,
            format!("{FSTAB_T}{BEGIN}\n/dev/vdc /old auto defaults 0 2\n{END}\n"),
        );
        env.yaml("mount_default_fields: [null, null, xfs, noatime, '0', '0']\nmounts:\n- [vdc, null]\n- [vdd, /srv]\n");
        env.run_ok(&Mounts);
        assert_eq!(
            env.read(FSTAB),
            format!("{FSTAB_T}{BEGIN}\n/dev/vdd /srv xfs noatime 0 0\n{END}\n")
        );
        env.yaml("mounts:\n- [vdb, \"/mnt/a b\"]\n");
        let e = env.run_err(&Mounts);
        assert!(e.contains("user-data:2:9: mounts[0][1]:"), "{e}");
        env.yaml("mounts:\n- [vdb, ../x]\n");
        assert!(env.run_err(&Mounts).contains("absolute path"));
        env.yaml("swap: {size: lots}\n");
        assert!(env.run_err(&Mounts).contains("expected a size"));
        assert!(env.read(FSTAB).contains("/dev/vdd /srv"));
    }

    #[test]
    fn swap_auto_is_the_ram_size_capped_by_maxsize() {
        let mut env = Env::new(OsKind::Linux);
        env.sys
            .put("/proc/meminfo", "MemTotal:        2048000 kB\n");
        env.yaml("swap: {size: auto, maxsize: 1G}\n");
        env.run_ok(&Mounts);
        assert_eq!(
            env.lines()[0],
            "dd if=/dev/zero of=/swap.img bs=1M count=1024"
        );
        env.yaml("swap: {size: auto}\n");
        env.sys.remove_file(Path::new("/swap.img")).unwrap();
        env.run_ok(&Mounts);
        assert!(env
            .lines()
            .contains(&"dd if=/dev/zero of=/swap.img bs=1M count=2000".to_string()));
        env.yaml("swap: {size: 0}\n");
        env.run_ok(&Mounts);
        assert!(!env.read(FSTAB).contains("swap"));
    }

    #[test]
    fn freebsd_uses_ufs_defaults_and_an_md_swap_file() {
        let mut env = Env::new(OsKind::FreeBsd);
        env.yaml("mounts:\n- [vtbd1p1, /data]\nswap: {filename: /usr/swap0, size: 128M}\n");
        env.run_ok(&Mounts);
        assert_eq!(
            env.read(FSTAB),
            format!("{BEGIN}\n/dev/vtbd1p1 /data ufs rw,failok 0 2\nmd99 none swap sw,file=/usr/swap0,late 0 0\n{END}\n")
        );
        assert_eq!(
            env.lines(),
            [
                "dd if=/dev/zero of=/usr/swap0 bs=1m count=128",
                "mount -a",
                "swapon -aL"
            ]
        );
    }
}
