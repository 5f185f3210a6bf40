//! Key: `timezone`. cloud-init: `cc_timezone`.
//!
//! `timezone: Europe/Paris`: the zone must exist in the template's zoneinfo
//! (`/usr/share/zoneinfo/<zone>`), otherwise the module fails naming the zone.
//!
//! - Linux: `/etc/localtime` becomes a symlink to the zoneinfo file (what systemd's
//!   `timedatectl` reads and writes); Debian (`/etc/debian_version`) also gets the zone name
//!   in `/etc/timezone`, as cloud-init's Debian distro writes it.
//! - FreeBSD: `/etc/localtime` is a copy of the zoneinfo file and `/var/db/zoneinfo` holds
//!   the zone name — what `tzsetup` leaves, so a later `tzsetup -r` re-installs it.
//!
//! Early (no network needed), once per instance; applying it twice gives the same files.

use std::path::Path;

use anyhow::{bail, Context as _};

use super::{Context, Frequency, Module, Stage};
use crate::platform::policy::shorten;
use crate::platform::{FileKind, OsKind};

pub struct Timezone;

const ZONEINFO: &str = "/usr/share/zoneinfo";

/// A zone name: relative, no `..`, only the characters tzdata names use.
fn check_zone(tz: &str) -> Result<(), String> {
    let ok_chars = tz
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/_-+.".contains(c));
    if tz.is_empty()
        || !ok_chars
        || tz.starts_with('/')
        || tz.split('/').any(|p| p.is_empty() || p == "." || p == "..")
    {
        return Err(format!("invalid zone name {:?}", shorten(tz)));
    }
    Ok(())
}

impl Module for Timezone {
    fn name(&self) -> &'static str {
        "timezone"
    }
    fn frequency(&self) -> Frequency {
        Frequency::PerInstance
    }
    fn stage(&self) -> Stage {
        Stage::Early
    }
    fn wanted(&self, ctx: &Context) -> bool {
        ctx.key("timezone").is_some()
    }
    fn run(&self, ctx: &mut Context) -> anyhow::Result<()> {
        let Some(v) = ctx.key("timezone") else {
            return Ok(());
        };
        let tz = v.line(255)?;
        check_zone(&tz).map_err(|e| v.err(e))?;
        let zonefile = format!("{ZONEINFO}/{tz}");
        match ctx.sys.lstat(Path::new(&zonefile))? {
            Some(st) if matches!(st.kind, FileKind::File | FileKind::Symlink) => {}
            _ => bail!(
                "timezone: unknown zone {tz:?}: {zonefile} is not in the template (is tzdata installed?)"
            ),
        }
        let localtime = Path::new("/etc/localtime");
        match ctx.os {
            OsKind::Linux => {
                if ctx.sys.exists(Path::new("/etc/debian_version")) {
                    ctx.write_config("/etc/timezone", format!("{tz}\n").as_bytes(), 0o644)?;
                }
                ctx.sys
                    .symlink(Path::new(&zonefile), localtime)
                    .context("linking /etc/localtime")?;
            }
            OsKind::FreeBsd => {
                let data = ctx
                    .sys
                    .read_file(Path::new(&zonefile), 1 << 20)
                    .with_context(|| format!("reading {zonefile}"))?;
                if ctx.sys.lstat(localtime)?.map(|s| s.kind) == Some(FileKind::Symlink) {
                    ctx.sys
                        .remove_file(localtime)
                        .context("removing the /etc/localtime symlink")?;
                }
                ctx.write_config("/etc/localtime", &data, 0o444)?;
                ctx.write_config("/var/db/zoneinfo", format!("{tz}\n").as_bytes(), 0o644)?;
            }
        }
        log::info!("time zone set to {tz}");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::test_env::Env;
    use crate::platform::System;

    #[test]
    fn linux_links_localtime_and_writes_etc_timezone_on_debian() {
        let mut env = Env::new(OsKind::Linux);
        env.sys
            .put("/usr/share/zoneinfo/Europe/Paris", "TZif-paris");
        env.sys.put("/etc/debian_version", "12.5\n");
        env.sys.put("/etc/localtime", "old");
        env.yaml("timezone: Europe/Paris\n");
        env.run_ok(&Timezone);
        env.run_ok(&Timezone);
        assert_eq!(
            env.sys.read_link(Path::new("/etc/localtime")).unwrap(),
            Path::new("/usr/share/zoneinfo/Europe/Paris")
        );
        assert_eq!(env.read("/etc/timezone"), "Europe/Paris\n");
        assert!(env.lines().is_empty());
    }

    #[test]
    fn freebsd_copies_the_zone_and_records_it_like_tzsetup() {
        let mut env = Env::new(OsKind::FreeBsd);
        env.sys
            .put("/usr/share/zoneinfo/America/New_York", "TZif-ny");
        env.yaml("timezone: America/New_York\n");
        env.run_ok(&Timezone);
        assert_eq!(env.read("/etc/localtime"), "TZif-ny");
        assert_eq!(env.read("/var/db/zoneinfo"), "America/New_York\n");
        assert!(!env.sys.exists(Path::new("/etc/timezone")));
    }

    #[test]
    fn unknown_or_hostile_zones_fail_naming_the_zone() {
        for os in [OsKind::Linux, OsKind::FreeBsd] {
            let mut env = Env::new(os);
            env.yaml("timezone: Mars/Olympus\n");
            let e = env.run_err(&Timezone);
            assert!(e.contains("unknown zone \"Mars/Olympus\""), "{e}");
            env.yaml("timezone: ../../etc/shadow\n");
            let e = env.run_err(&Timezone);
            assert!(
                e.contains("user-data:1:11: timezone: invalid zone name"),
                "{e}"
            );
            env.yaml("timezone: [a]\n");
            assert!(env.run_err(&Timezone).contains("expected a string"));
            assert!(!env.sys.exists(Path::new("/etc/localtime")));
        }
    }
}
