//! Key: `ntp` (`enabled`, `ntp_client`, `servers`, `pools`). cloud-init: `cc_ntp`.
//!
//! Points the time client the template has at the seed's servers and pools (default: four
//! `N.<distro>.pool.ntp.org` pools), and enables it. `enabled: false` leaves time alone.
//!
//! - Linux: `ntp_client: auto` (the default) takes the first client installed, in
//!   cloud-init's Debian order: chrony (`chronyd`), systemd-timesyncd, ntpd. A named client
//!   that is not installed, or no client at all, is an error naming what is missing — never
//!   a silent success. chrony gets `/etc/chrony/chrony.conf` (`/etc/chrony.conf` where
//!   there is no `/etc/chrony`), systemd-timesyncd the drop-in
//!   `/etc/systemd/timesyncd.conf.d/ci-agent.conf`, ntpd `/etc/ntpsec/ntp.conf` or
//!   `/etc/ntp.conf`; then `systemctl enable` and a non-blocking `systemctl restart` of its
//!   unit (under systemd; otherwise a warning).
//! - FreeBSD: base ntpd: `/etc/ntp.conf` and `ntpd_enable="YES"`, `ntpd_sync_on_start="YES"`
//!   in `/etc/rc.conf.d/ntpd`; rc starts it later in the boot (the agent's early pass runs
//!   before it).
//!
//! Early (writing configuration needs no network), once per instance.

use std::path::Path;

use anyhow::bail;

use super::{Context, Frequency, Module, Stage};
use crate::platform::OsKind;

pub struct Ntp;

const KNOWN: &[&str] = &["enabled", "ntp_client", "servers", "pools"];
const HEADER: &str = "# Written by ci-agent from the cloud-config 'ntp' key.\n";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Client {
    Chrony,
    Timesyncd,
    Ntpd,
}

impl Client {
    fn name(self) -> &'static str {
        match self {
            Client::Chrony => "chrony",
            Client::Timesyncd => "systemd-timesyncd",
            Client::Ntpd => "ntp",
        }
    }

    fn installed(self, ctx: &Context) -> bool {
        match self {
            Client::Chrony => ctx.find_tool("chronyd").is_some(),
            Client::Timesyncd => [
                "/lib/systemd/systemd-timesyncd",
                "/usr/lib/systemd/systemd-timesyncd",
            ]
            .iter()
            .any(|p| ctx.sys.exists(Path::new(p))),
            Client::Ntpd => ctx.find_tool("ntpd").is_some(),
        }
    }
}

fn lines(servers: &[String], pools: &[String]) -> String {
    let mut s = String::new();
    for x in servers {
        s.push_str(&format!("server {x} iburst\n"));
    }
    for x in pools {
        s.push_str(&format!("pool {x} iburst\n"));
    }
    s
}

impl Module for Ntp {
    fn name(&self) -> &'static str {
        "ntp"
    }
    fn frequency(&self) -> Frequency {
        Frequency::PerInstance
    }
    fn stage(&self) -> Stage {
        Stage::Early
    }
    fn wanted(&self, ctx: &Context) -> bool {
        ctx.key("ntp").is_some()
    }
    fn run(&self, ctx: &mut Context) -> anyhow::Result<()> {
        let Some(v) = ctx.key("ntp") else {
            return Ok(());
        };
        v.mapping()?;
        for w in v.unknown_keys(KNOWN) {
            ctx.warn(w);
        }
        if let Some(e) = v.get("enabled") {
            if !e.bool()? {
                log::info!("ntp: enabled is false, leaving time alone");
                return Ok(());
            }
        }
        let words = |key: &str| -> anyhow::Result<Vec<String>> {
            match v.get(key) {
                None => Ok(Vec::new()),
                Some(l) => Ok(l
                    .items()?
                    .iter()
                    .map(|i| i.word())
                    .collect::<Result<_, _>>()?),
            }
        };
        let servers = words("servers")?;
        let mut pools = words("pools")?;
        let debian = ctx.sys.exists(Path::new("/etc/debian_version"));
        if servers.is_empty() && pools.is_empty() {
            let distro = match ctx.os {
                OsKind::FreeBsd => "freebsd.",
                OsKind::Linux if debian => "debian.",
                OsKind::Linux => "",
            };
            pools = (0..4)
                .map(|n| format!("{n}.{distro}pool.ntp.org"))
                .collect();
        }
        let requested = match v.get("ntp_client") {
            None => "auto".to_owned(),
            Some(c) => c.word()?,
        };
        if ctx.os == OsKind::FreeBsd {
            if !matches!(requested.as_str(), "auto" | "ntp" | "ntpd") {
                bail!("ntp: ntp_client {requested:?} is not supported on FreeBSD (base ntpd is)");
            }
            if !Client::Ntpd.installed(ctx) {
                bail!("ntp: ntpd is not in the template");
            }
            let conf = format!(
                "{HEADER}driftfile /var/db/ntpd.drift\nrestrict default limited kod nomodify notrap noquery nopeer\nrestrict source limited kod nomodify notrap noquery\nrestrict 127.0.0.1\nrestrict ::1\n{}",
                lines(&servers, &pools)
            );
            ctx.write_config("/etc/ntp.conf", conf.as_bytes(), 0o644)?;
            ctx.write_config(
                "/etc/rc.conf.d/ntpd",
                b"ntpd_enable=\"YES\"\nntpd_sync_on_start=\"YES\"\n",
                0o644,
            )?;
            return Ok(());
        }
        let client = match requested.as_str() {
            "auto" => [Client::Chrony, Client::Timesyncd, Client::Ntpd]
                .into_iter()
                .find(|c| c.installed(ctx))
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "ntp: no time client in the template (looked for chronyd, systemd-timesyncd, ntpd)"
                    )
                })?,
            "chrony" => Client::Chrony,
            "systemd-timesyncd" => Client::Timesyncd,
            "ntp" | "ntpd" => Client::Ntpd,
            other => bail!(
                "ntp: ntp_client {other:?} is not supported (auto, chrony, systemd-timesyncd or ntp)"
            ),
        };
        if !client.installed(ctx) {
            bail!(
                "ntp: ntp_client {} is not installed in the template",
                client.name()
            );
        }
        let unit = match client {
            Client::Chrony => {
                let path = if ctx.sys.exists(Path::new("/etc/chrony")) {
                    "/etc/chrony/chrony.conf"
                } else {
                    "/etc/chrony.conf"
                };
                let conf = format!(
                    "{HEADER}{}driftfile /var/lib/chrony/chrony.drift\nmakestep 1.0 3\nrtcsync\n",
                    lines(&servers, &pools)
                );
                ctx.write_config(path, conf.as_bytes(), 0o644)?;
                if debian {
                    "chrony"
                } else {
                    "chronyd"
                }
            }
            Client::Timesyncd => {
                let all: Vec<&str> = servers.iter().chain(&pools).map(String::as_str).collect();
                let conf = format!("{HEADER}[Time]\nNTP={}\n", all.join(" "));
                ctx.write_config(
                    "/etc/systemd/timesyncd.conf.d/ci-agent.conf",
                    conf.as_bytes(),
                    0o644,
                )?;
                "systemd-timesyncd"
            }
            Client::Ntpd => {
                let ntpsec = ctx.sys.exists(Path::new("/etc/ntpsec"));
                let path = if ntpsec {
                    "/etc/ntpsec/ntp.conf"
                } else {
                    "/etc/ntp.conf"
                };
                let conf = format!(
                    "{HEADER}driftfile /var/lib/ntp/ntp.drift\nrestrict default kod nomodify notrap nopeer noquery limited\nrestrict 127.0.0.1\nrestrict ::1\n{}",
                    lines(&servers, &pools)
                );
                ctx.write_config(path, conf.as_bytes(), 0o644)?;
                match (ntpsec, debian) {
                    (true, _) => "ntpsec",
                    (false, true) => "ntp",
                    (false, false) => "ntpd",
                }
            }
        };
        if ctx.systemd() {
            ctx.cmd(&["systemctl", "enable", unit])?;
            ctx.cmd(&["systemctl", "restart", "--no-block", unit])?;
        } else {
            ctx.warn(format!(
                "ntp: not running under systemd: {unit} configured but not enabled"
            ));
        }
        log::info!("ntp: {} configured", client.name());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::test_env::Env;

    fn linux() -> Env {
        let env = Env::new(OsKind::Linux);
        env.sys.put("/etc/debian_version", "12\n");
        env.sys.put("/run/systemd/system/.keep", "");
        env
    }

    #[test]
    fn auto_picks_the_installed_client_and_enables_it() {
        let mut env = linux();
        env.sys.put("/lib/systemd/systemd-timesyncd", "");
        env.yaml("ntp:\n  servers: [ntp.example.org]\n  pools: [pool.example.org]\n");
        env.run_ok(&Ntp);
        assert_eq!(
            env.read("/etc/systemd/timesyncd.conf.d/ci-agent.conf"),
            format!("{HEADER}[Time]\nNTP=ntp.example.org pool.example.org\n")
        );
        assert_eq!(
            env.lines(),
            [
                "systemctl enable systemd-timesyncd",
                "systemctl restart --no-block systemd-timesyncd"
            ]
        );

        let mut env = linux();
        env.sys.put("/usr/sbin/chronyd", "");
        env.sys.put("/etc/chrony/chrony.conf", "old");
        env.sys.put("/lib/systemd/systemd-timesyncd", "");
        env.yaml("ntp: {enabled: true}\n");
        env.run_ok(&Ntp);
        let conf = env.read("/etc/chrony/chrony.conf");
        assert!(
            conf.contains("pool 0.debian.pool.ntp.org iburst\n"),
            "{conf}"
        );
        assert!(
            conf.contains("pool 3.debian.pool.ntp.org iburst\n"),
            "{conf}"
        );
        assert_eq!(env.lines()[0], "systemctl enable chrony");
    }

    #[test]
    fn a_missing_client_is_an_error_naming_it() {
        let mut env = linux();
        env.yaml("ntp: {servers: [a]}\n");
        assert!(env.run_err(&Ntp).contains("no time client in the template"));
        env.yaml("ntp: {ntp_client: chrony}\n");
        assert!(env
            .run_err(&Ntp)
            .contains("ntp_client chrony is not installed"));
        env.yaml("ntp: {ntp_client: openntpd}\n");
        assert!(env.run_err(&Ntp).contains("not supported"));
        env.yaml("ntp:\n  servers: [\"a b\"]\n");
        assert!(env
            .run_err(&Ntp)
            .contains("user-data:2:13: ntp.servers[0]: expected one word"));
        env.yaml("ntp: {enabled: false}\n");
        env.run_ok(&Ntp);
        assert!(env.lines().is_empty());
    }

    #[test]
    fn ntpsec_on_debian() {
        let mut env = linux();
        env.sys.put("/usr/sbin/ntpd", "");
        env.sys.put("/etc/ntpsec/ntp.conf", "");
        env.yaml("ntp: {ntp_client: ntp, servers: [10.0.2.2]}\n");
        env.run_ok(&Ntp);
        assert!(env
            .read("/etc/ntpsec/ntp.conf")
            .contains("server 10.0.2.2 iburst\n"));
        assert_eq!(env.lines()[0], "systemctl enable ntpsec");
    }

    #[test]
    fn freebsd_configures_base_ntpd() {
        let mut env = Env::new(OsKind::FreeBsd);
        env.yaml("ntp:\n  pools: [pool.example.org]\n");
        assert!(env.run_err(&Ntp).contains("ntpd is not in the template"));
        env.sys.put("/usr/sbin/ntpd", "");
        env.run_ok(&Ntp);
        assert!(env
            .read("/etc/ntp.conf")
            .contains("pool pool.example.org iburst\n"));
        assert_eq!(
            env.read("/etc/rc.conf.d/ntpd"),
            "ntpd_enable=\"YES\"\nntpd_sync_on_start=\"YES\"\n"
        );
        assert!(env.lines().is_empty());
        env.yaml("ntp: {ntp_client: chrony}\n");
        assert!(env.run_err(&Ntp).contains("not supported on FreeBSD"));
    }
}
