//! FreeBSD policy: `pw(8)` for users and groups, `/etc/rc.conf.d/hostname` (a drop-in,
//! never an edit of rc.conf), `/etc/hostid` + `/var/db/machine-id` as `rc.d/hostid` and
//! `rc.d/hostid_save` keep them, `pkg(8)`, `/usr/local/etc/sudoers.d`.
//!
//! Plain data and argv builders, compiled on every target and unit-tested on Linux.

use std::path::{Path, PathBuf};

use crate::platform::policy::{
    check_package, IdFile, OsPolicy, PackageRequest, PowerMode, SshdReload, UptimeSource, UserPlan,
};
use crate::platform::Cmd;

/// The FreeBSD policy.
pub struct FreeBsd;

/// pkg(8) proper; its absence means pkg has not been bootstrapped yet.
pub const PKG: &str = "/usr/local/sbin/pkg";
/// The base-system bootstrap stub.
pub const PKG_BOOTSTRAP: &str = "/usr/sbin/pkg";

fn pkg_cmd<I, S>(args: I) -> Cmd
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut argv = vec!["pkg".to_string()];
    argv.extend(args.into_iter().map(Into::into));
    Cmd::new(argv).env("ASSUME_ALWAYS_YES", "yes")
}

impl OsPolicy for FreeBsd {
    fn hostname_file(&self, name: &str) -> (PathBuf, String) {
        // The name is validated (letters, digits, '-', '.') before it gets here, so it
        // needs no quoting beyond the double quotes rc.conf syntax wants.
        (
            "/etc/rc.conf.d/hostname".into(),
            format!("hostname=\"{name}\"\n"),
        )
    }
    fn hostname_max(&self) -> usize {
        255
    }
    fn prefer_fqdn(&self) -> bool {
        // rc.conf(5): hostname is the fully-qualified name.
        true
    }
    fn hosts_ip(&self) -> &'static str {
        // lo0 carries only 127.0.0.1 on FreeBSD; 127.0.1.1 would not answer.
        "127.0.0.1"
    }
    fn hosts_ip_is_hostname_only(&self) -> bool {
        false
    }

    fn machine_id_files(&self, id: &uuid::Uuid) -> Vec<IdFile> {
        // rc.d/hostid_save writes kern.hostuuid (lowercase, dashed) to /etc/hostid and
        // the same value without dashes to /var/db/machine-id, both with a newline.
        vec![
            IdFile {
                path: "/etc/hostid".into(),
                content: format!("{}\n", id.hyphenated()),
                mode: 0o644,
            },
            IdFile {
                path: "/var/db/machine-id".into(),
                content: format!("{}\n", id.simple()),
                mode: 0o644,
            },
        ]
    }
    fn machine_id_copy(&self) -> Option<PathBuf> {
        None
    }
    fn machine_id_live(&self, id: &uuid::Uuid) -> Vec<Cmd> {
        // rc.d/hostid sets kern.hostuuid from /etc/hostid at boot; set it now too so the
        // running system agrees with the files (kern.hostid follows at the next boot).
        vec![Cmd::new([
            "sysctl".to_string(),
            format!("kern.hostuuid={}", id.hyphenated()),
        ])]
    }

    fn groupadd(&self, name: &str) -> Cmd {
        Cmd::new(["pw", "groupadd", name])
    }

    fn useradd(&self, u: &UserPlan) -> Vec<Cmd> {
        let mut argv: Vec<String> =
            vec!["pw".into(), "useradd".into(), "-n".into(), u.name.clone()];
        let mut opt = |flag: &str, v: &str| {
            argv.push(flag.into());
            argv.push(v.into());
        };
        if let Some(c) = &u.gecos {
            opt("-c", c);
        }
        match (&u.homedir, u.system || u.no_create_home) {
            (Some(d), _) => opt("-d", d),
            (None, true) => opt("-d", "/nonexistent"),
            (None, false) => {}
        }
        if let Some(g) = &u.primary_group {
            opt("-g", g);
        }
        if !u.groups.is_empty() {
            opt("-G", &u.groups.join(","));
        }
        if let Some(s) = &u.shell {
            opt("-s", s);
        }
        let uid = u.uid.map(|n| n.to_string());
        if let Some(n) = &uid {
            opt("-u", n);
        }
        if !(u.system || u.no_create_home) {
            argv.push("-m".into());
        }
        vec![match &u.passwd_hash {
            // -H 0: the hash is read from stdin, never from argv.
            Some(h) => {
                argv.push("-H".into());
                argv.push("0".into());
                Cmd::new(argv).stdin(format!("{h}\n")).secret()
            }
            // -h -: password "*", no password logins until one is set.
            None => {
                argv.push("-h".into());
                argv.push("-".into());
                Cmd::new(argv)
            }
        }]
    }

    fn add_to_group(&self, user: &str, group: &str) -> Cmd {
        Cmd::new(["pw", "groupmod", group, "-m", user])
    }
    fn lock_passwd(&self, user: &str) -> Cmd {
        // Like cloud-init: password method "no" (hash "*"). `pw lock` would prefix
        // *LOCKED* and sshd would then refuse key logins too.
        Cmd::new(["pw", "usermod", user, "-w", "no"])
    }
    fn set_password_hash(&self, user: &str, hash: &str) -> Cmd {
        Cmd::new(["pw", "usermod", user, "-H", "0"])
            .stdin(format!("{hash}\n"))
            .secret()
    }
    fn set_password_text(&self, user: &str, password: &str) -> Cmd {
        Cmd::new(["pw", "usermod", user, "-h", "0"])
            .stdin(format!("{password}\n"))
            .secret()
    }
    fn expire_passwd(&self, user: &str) -> Cmd {
        // pw -p sets the password change time; 0 means "never", so use a date that is
        // in the past but not the epoch (cloud-init's 01-Jan-1970 is 0 on a UTC box).
        Cmd::new(["pw", "usermod", user, "-p", "02-Jan-1970"])
    }
    fn sudoers_file(&self) -> PathBuf {
        "/usr/local/etc/sudoers.d/90-ci-agent-users".into()
    }
    fn sudoers_main(&self) -> PathBuf {
        "/usr/local/etc/sudoers".into()
    }
    fn visudo(&self) -> PathBuf {
        "/usr/local/sbin/visudo".into()
    }

    fn sshd_reload(&self) -> SshdReload {
        // onestatus/onereload work whether or not sshd_enable is set; in the early
        // stage sshd is not running yet and nothing is reloaded.
        SshdReload {
            requires_path: None,
            check: Some(Cmd::new(["service", "sshd", "onestatus"])),
            reload: Cmd::new(["service", "sshd", "onereload"]),
        }
    }

    fn package_commands(
        &self,
        exists: &dyn Fn(&Path) -> bool,
        req: &PackageRequest,
    ) -> Result<Vec<Cmd>, String> {
        let mut names = Vec::with_capacity(req.packages.len());
        for p in &req.packages {
            check_package(p)?;
            names.push(match &p.version {
                Some(v) => format!("{}-{v}", p.name),
                None => p.name.clone(),
            });
        }
        let mut out = Vec::new();
        if !exists(Path::new(PKG)) {
            out.push(Cmd::new([PKG_BOOTSTRAP, "bootstrap", "-y"]).env("ASSUME_ALWAYS_YES", "yes"));
        }
        if req.update {
            out.push(pkg_cmd(["update"]));
        }
        if req.upgrade {
            out.push(pkg_cmd(["upgrade", "-y"]));
        }
        if !names.is_empty() {
            let mut args = vec!["install".to_string(), "-y".into()];
            args.extend(names);
            out.push(pkg_cmd(args));
        }
        Ok(out)
    }

    fn shutdown(&self, mode: PowerMode, delay: &str, message: Option<&str>) -> Cmd {
        let flag = match mode {
            PowerMode::Poweroff => "-p",
            PowerMode::Reboot => "-r",
            PowerMode::Halt => "-h",
        };
        let mut argv = vec!["shutdown".to_string(), flag.into()];
        if message.is_some_and(|m| m.starts_with('-')) {
            // The message would be read as an option (`-c` cancels a shutdown; GNU
            // getopt looks past the delay): end the options first.
            argv.push("--".into());
        }
        argv.push(delay.into());
        if let Some(m) = message {
            argv.push(m.into());
        }
        Cmd::new(argv)
    }

    fn uptime_source(&self) -> UptimeSource {
        UptimeSource::BootTimeCmd(Cmd::new(["sysctl", "-n", "kern.boottime"]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::userdata::cloud_config::Package;

    #[test]
    fn pw_useradd() {
        let u = UserPlan {
            name: "deploy".into(),
            gecos: Some("Deploy".into()),
            shell: Some("/bin/sh".into()),
            groups: vec!["wheel".into(), "operator".into()],
            uid: Some(1001),
            ..UserPlan::default()
        };
        let c = FreeBsd.useradd(&u);
        assert_eq!(c.len(), 1);
        let c = &c[0];
        assert_eq!(
            c.argv,
            [
                "pw",
                "useradd",
                "-n",
                "deploy",
                "-c",
                "Deploy",
                "-G",
                "wheel,operator",
                "-s",
                "/bin/sh",
                "-u",
                "1001",
                "-m",
                "-h",
                "-"
            ]
        );
        assert!(!c.secret && c.stdin.is_none());
        let with_hash = UserPlan {
            name: "x".into(),
            passwd_hash: Some("$6$s$h".into()),
            system: true,
            ..UserPlan::default()
        };
        let c = FreeBsd.useradd(&with_hash);
        assert_eq!(c.len(), 1, "pw takes the hash at creation");
        let c = &c[0];
        assert_eq!(
            c.argv,
            ["pw", "useradd", "-n", "x", "-d", "/nonexistent", "-H", "0"]
        );
        assert!(c.secret);
        assert_eq!(c.stdin.as_deref(), Some(&b"$6$s$h\n"[..]));
        assert!(
            !c.argv.iter().any(|a| a.contains("$6$")),
            "hash never in argv"
        );
    }

    #[test]
    fn passwords_groups_lock_expire() {
        let c = FreeBsd.set_password_text("bob", "pw");
        assert_eq!(c.argv, ["pw", "usermod", "bob", "-h", "0"]);
        assert_eq!(c.stdin.as_deref(), Some(&b"pw\n"[..]));
        assert!(c.secret);
        assert_eq!(
            FreeBsd.set_password_hash("bob", "$6$").argv,
            ["pw", "usermod", "bob", "-H", "0"]
        );
        assert_eq!(
            FreeBsd.lock_passwd("bob").argv,
            ["pw", "usermod", "bob", "-w", "no"]
        );
        assert_eq!(
            FreeBsd.expire_passwd("bob").argv,
            ["pw", "usermod", "bob", "-p", "02-Jan-1970"]
        );
        assert_eq!(
            FreeBsd.add_to_group("bob", "wheel").argv,
            ["pw", "groupmod", "wheel", "-m", "bob"]
        );
        assert_eq!(FreeBsd.groupadd("ops").argv, ["pw", "groupadd", "ops"]);
    }

    #[test]
    fn hostname_and_identity() {
        let (p, c) = FreeBsd.hostname_file("vm1.example.org");
        assert_eq!(p, PathBuf::from("/etc/rc.conf.d/hostname"));
        assert_eq!(c, "hostname=\"vm1.example.org\"\n");
        let id = uuid::Uuid::parse_str("0f8fad5b-d9cb-469f-a165-70867728950e").unwrap();
        let f = FreeBsd.machine_id_files(&id);
        assert_eq!(f[0].path, PathBuf::from("/etc/hostid"));
        assert_eq!(f[0].content, "0f8fad5b-d9cb-469f-a165-70867728950e\n");
        assert_eq!(f[1].path, PathBuf::from("/var/db/machine-id"));
        assert_eq!(f[1].content, "0f8fad5bd9cb469fa16570867728950e\n");
        assert_eq!(
            FreeBsd.machine_id_live(&id)[0].argv,
            [
                "sysctl",
                "kern.hostuuid=0f8fad5b-d9cb-469f-a165-70867728950e"
            ]
        );
    }

    #[test]
    fn pkg_bootstrap_update_install() {
        let req = PackageRequest {
            update: true,
            upgrade: true,
            packages: vec![
                Package {
                    name: "nginx".into(),
                    version: None,
                },
                Package {
                    name: "curl".into(),
                    version: Some("8.5.0".into()),
                },
            ],
        };
        let cmds = FreeBsd.package_commands(&|_| false, &req).unwrap();
        let lines: Vec<String> = cmds.iter().map(|c| c.argv.join(" ")).collect();
        assert_eq!(
            lines,
            [
                "/usr/sbin/pkg bootstrap -y",
                "pkg update",
                "pkg upgrade -y",
                "pkg install -y nginx curl-8.5.0"
            ]
        );
        assert!(cmds
            .iter()
            .all(|c| c.env.contains(&("ASSUME_ALWAYS_YES".into(), "yes".into()))));
        let cmds = FreeBsd
            .package_commands(&|p| p == Path::new(PKG), &req)
            .unwrap();
        assert_eq!(cmds.len(), 3, "no bootstrap when pkg is there");
    }

    #[test]
    fn shutdown_flags() {
        assert_eq!(
            FreeBsd.shutdown(PowerMode::Poweroff, "+1", Some("m")).argv,
            ["shutdown", "-p", "+1", "m"]
        );
        assert_eq!(FreeBsd.shutdown(PowerMode::Halt, "now", None).argv[1], "-h");
        assert_eq!(
            FreeBsd
                .shutdown(PowerMode::Poweroff, "now", Some("--- bye ---"))
                .argv,
            ["shutdown", "-p", "--", "now", "--- bye ---"]
        );
        assert_eq!(
            FreeBsd.shutdown(PowerMode::Reboot, "now", None).argv[1],
            "-r"
        );
        assert_eq!(
            FreeBsd.sshd_reload().check.unwrap().argv,
            ["service", "sshd", "onestatus"]
        );
    }
}
