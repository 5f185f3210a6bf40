//! Linux policy: shadow-utils (`useradd`, `usermod`, `chpasswd`, `passwd`), `/etc/hostname`,
//! systemd's `/etc/machine-id`, `/etc/sudoers.d`, the usual package managers.
//!
//! Plain data and argv builders, compiled on every target and unit-tested on Linux next
//! to the FreeBSD policy; the modules turn them into effects through `System`.

use std::path::{Path, PathBuf};

use crate::platform::policy::{
    check_package, IdFile, OsPolicy, PackageRequest, PowerMode, SshdReload, UptimeSource, UserPlan,
};
use crate::platform::Cmd;

/// The Linux policy.
pub struct Linux;

/// A Linux package manager, detected by its binary under the root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackageManager {
    AptGet,
    Dnf,
    Yum,
    Apk,
    Zypper,
    Pacman,
}

/// How long apt-get waits for the dpkg lock (seconds): longer than an unattended-upgrades
/// run usually takes, finite so a stuck lock fails the module instead of the boot.
const APT_LOCK_TIMEOUT: &str = "DPkg::Lock::Timeout=300";

impl PackageManager {
    /// Detection order (first found wins), with the binary's name.
    pub const ORDER: [(PackageManager, &'static str); 6] = [
        (PackageManager::AptGet, "apt-get"),
        (PackageManager::Dnf, "dnf"),
        (PackageManager::Yum, "yum"),
        (PackageManager::Apk, "apk"),
        (PackageManager::Zypper, "zypper"),
        (PackageManager::Pacman, "pacman"),
    ];
    const BIN_DIRS: [&'static str; 4] = ["/usr/bin", "/bin", "/usr/sbin", "/sbin"];

    pub fn detect(exists: &dyn Fn(&Path) -> bool) -> Option<Self> {
        Self::ORDER.iter().find_map(|(pm, bin)| {
            Self::BIN_DIRS
                .iter()
                .any(|d| exists(&Path::new(d).join(bin)))
                .then_some(*pm)
        })
    }

    fn base(self) -> Vec<&'static str> {
        match self {
            // DPkg::Lock::Timeout: on a first boot apt-daily and unattended-upgrades may
            // hold the dpkg lock; wait for it (as cloud-init does) instead of failing.
            PackageManager::AptGet => vec![
                "apt-get",
                "-y",
                "-q",
                "-o",
                "Dpkg::Options::=--force-confold",
                "-o",
                APT_LOCK_TIMEOUT,
            ],
            PackageManager::Dnf => vec!["dnf", "-y"],
            PackageManager::Yum => vec!["yum", "-y"],
            PackageManager::Apk => vec!["apk"],
            PackageManager::Zypper => vec!["zypper", "--non-interactive"],
            PackageManager::Pacman => vec!["pacman", "--noconfirm"],
        }
    }

    fn cmd(self, args: &[&str]) -> Cmd {
        let mut argv: Vec<String> = self.base().into_iter().map(String::from).collect();
        argv.extend(args.iter().map(|s| s.to_string()));
        let c = Cmd::new(argv);
        match self {
            PackageManager::AptGet => c.env("DEBIAN_FRONTEND", "noninteractive"),
            _ => c,
        }
    }

    pub fn update(self) -> Cmd {
        match self {
            PackageManager::AptGet => self.cmd(&["update"]),
            PackageManager::Dnf | PackageManager::Yum => self.cmd(&["makecache"]),
            PackageManager::Apk => self.cmd(&["update"]),
            PackageManager::Zypper => self.cmd(&["refresh"]),
            PackageManager::Pacman => self.cmd(&["-Sy"]),
        }
    }

    pub fn upgrade(self) -> Cmd {
        match self {
            PackageManager::AptGet => self.cmd(&["dist-upgrade"]),
            PackageManager::Dnf | PackageManager::Yum => self.cmd(&["upgrade"]),
            PackageManager::Apk => self.cmd(&["upgrade"]),
            PackageManager::Zypper => self.cmd(&["update"]),
            PackageManager::Pacman => self.cmd(&["-Syu"]),
        }
    }

    /// One install command for all packages; a version pin pacman cannot express is an
    /// error naming the package.
    pub fn install(
        self,
        pkgs: &[crate::formats::userdata::cloud_config::Package],
    ) -> Result<Cmd, String> {
        let mut names = Vec::with_capacity(pkgs.len());
        for p in pkgs {
            check_package(p)?;
            names.push(match (&p.version, self) {
                (None, _) => p.name.clone(),
                (Some(_), PackageManager::Pacman) => {
                    return Err(format!(
                        "package {}: pacman cannot install a pinned version",
                        p.name
                    ))
                }
                (Some(v), PackageManager::Dnf | PackageManager::Yum) => {
                    format!("{}-{v}", p.name)
                }
                (Some(v), _) => format!("{}={v}", p.name),
            });
        }
        let verb = match self {
            PackageManager::Apk => "add",
            PackageManager::Pacman => "-S",
            _ => "install",
        };
        let mut args = vec![verb];
        if self == PackageManager::Pacman {
            args.push("--needed");
        }
        args.extend(names.iter().map(String::as_str));
        Ok(self.cmd(&args))
    }

    /// Whether installing needs fresh package lists first (apt images ship without).
    pub fn update_before_install(self) -> bool {
        matches!(self, PackageManager::AptGet | PackageManager::Apk)
    }
}

impl OsPolicy for Linux {
    fn hostname_file(&self, name: &str) -> (PathBuf, String) {
        ("/etc/hostname".into(), format!("{name}\n"))
    }
    fn hostname_max(&self) -> usize {
        64
    }
    fn prefer_fqdn(&self) -> bool {
        false
    }
    fn hosts_ip(&self) -> &'static str {
        "127.0.1.1"
    }
    fn hosts_ip_is_hostname_only(&self) -> bool {
        true
    }

    fn machine_id_files(&self, id: &uuid::Uuid) -> Vec<IdFile> {
        vec![IdFile {
            path: "/etc/machine-id".into(),
            content: format!("{}\n", id.simple()),
            mode: 0o444,
        }]
    }
    fn machine_id_copy(&self) -> Option<PathBuf> {
        Some("/var/lib/dbus/machine-id".into())
    }
    fn machine_id_live(&self, _id: &uuid::Uuid) -> Vec<Cmd> {
        // systemd reads /etc/machine-id at its start; services started later see the
        // new file, journald keeps the old id until the next boot.
        Vec::new()
    }

    fn groupadd(&self, name: &str) -> Cmd {
        Cmd::new(["groupadd", name])
    }

    fn useradd(&self, u: &UserPlan) -> Vec<Cmd> {
        let mut argv: Vec<String> = vec!["useradd".into()];
        let mut opt = |flag: &str, v: &str| {
            argv.push(flag.into());
            argv.push(v.into());
        };
        if let Some(c) = &u.gecos {
            opt("-c", c);
        }
        if let Some(d) = &u.homedir {
            opt("-d", d);
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
        if u.primary_group.is_none() {
            argv.push("--user-group".into());
        }
        if u.system {
            argv.push("-r".into());
        }
        argv.push(
            if u.no_create_home || u.system {
                "-M"
            } else {
                "-m"
            }
            .into(),
        );
        argv.push(u.name.clone());
        // useradd takes a hash only in argv (-p); chpasswd -e reads it from stdin.
        let mut cmds = vec![Cmd::new(argv)];
        if let Some(h) = &u.passwd_hash {
            cmds.push(self.set_password_hash(&u.name, h));
        }
        cmds
    }

    fn add_to_group(&self, user: &str, group: &str) -> Cmd {
        Cmd::new(["usermod", "-a", "-G", group, user])
    }
    fn lock_passwd(&self, user: &str) -> Cmd {
        Cmd::new(["passwd", "-l", user])
    }
    fn set_password_hash(&self, user: &str, hash: &str) -> Cmd {
        Cmd::new(["chpasswd", "-e"])
            .stdin(format!("{user}:{hash}\n"))
            .secret()
    }
    fn set_password_text(&self, user: &str, password: &str) -> Cmd {
        Cmd::new(["chpasswd"])
            .stdin(format!("{user}:{password}\n"))
            .secret()
    }
    /// One `chpasswd` for every plain-text password and one `chpasswd -e` for every hash:
    /// it reads `user:password` lines.
    fn set_passwords(&self, items: &[(&str, &str, bool)]) -> Vec<(Cmd, Vec<usize>)> {
        let mut cmds: Vec<(Cmd, Vec<usize>)> =
            [(false, vec!["chpasswd"]), (true, vec!["chpasswd", "-e"])]
                .into_iter()
                .filter_map(|(hash, argv)| {
                    let idx: Vec<usize> =
                        (0..items.len()).filter(|&i| items[i].2 == hash).collect();
                    if idx.is_empty() {
                        return None;
                    }
                    let input: String = idx
                        .iter()
                        .map(|&i| format!("{}:{}\n", items[i].0, items[i].1))
                        .collect();
                    Some((Cmd::new(argv).stdin(input).secret(), idx))
                })
                .collect();
        // In the order the seed lists the users.
        cmds.sort_by_key(|(_, idx)| idx[0]);
        cmds
    }
    fn expire_passwd(&self, user: &str) -> Cmd {
        Cmd::new(["passwd", "--expire", user])
    }
    fn sudoers_file(&self) -> PathBuf {
        "/etc/sudoers.d/90-ci-agent-users".into()
    }
    fn sudoers_main(&self) -> PathBuf {
        "/etc/sudoers".into()
    }
    fn visudo(&self) -> PathBuf {
        "/usr/sbin/visudo".into()
    }

    fn sshd_reload(&self) -> SshdReload {
        // Debian names the unit ssh.service (sshd.service an alias), Fedora/SUSE
        // sshd.service; try-reload-or-restart does nothing for a unit that is not running.
        SshdReload {
            requires_path: Some("/run/systemd/system".into()),
            check: None,
            reload: Cmd::new([
                "systemctl",
                "try-reload-or-restart",
                "ssh.service",
                "sshd.service",
            ]),
        }
    }

    fn package_commands(
        &self,
        exists: &dyn Fn(&Path) -> bool,
        req: &PackageRequest,
    ) -> Result<Vec<Cmd>, String> {
        let Some(pm) = PackageManager::detect(exists) else {
            let names: Vec<&str> = req.packages.iter().map(|p| p.name.as_str()).collect();
            return Err(format!(
                "no package manager found (looked for apt-get, dnf, yum, apk, zypper, pacman); \
                 packages not installed: [{}]",
                names.join(", ")
            ));
        };
        let mut out = Vec::new();
        if req.update || req.upgrade || (!req.packages.is_empty() && pm.update_before_install()) {
            out.push(pm.update());
        }
        if req.upgrade {
            out.push(pm.upgrade());
        }
        if !req.packages.is_empty() {
            out.push(pm.install(&req.packages)?);
        }
        Ok(out)
    }

    fn shutdown(&self, mode: PowerMode, delay: &str, message: Option<&str>) -> Cmd {
        let flag = match mode {
            PowerMode::Poweroff => "-P",
            PowerMode::Reboot => "-r",
            PowerMode::Halt => "-H",
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
        UptimeSource::ProcUptime("/proc/uptime".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::userdata::cloud_config::Package;

    fn pkg(n: &str, v: Option<&str>) -> Package {
        Package {
            name: n.into(),
            version: v.map(Into::into),
        }
    }

    #[test]
    fn useradd_full_and_minimal() {
        let u = UserPlan {
            name: "deploy".into(),
            gecos: Some("Deploy User".into()),
            homedir: Some("/srv/deploy".into()),
            shell: Some("/bin/bash".into()),
            groups: vec!["sudo".into(), "adm".into()],
            uid: Some(1500),
            passwd_hash: Some("$6$salt$hash".into()),
            ..UserPlan::default()
        };
        let cmds = Linux.useradd(&u);
        assert_eq!(cmds.len(), 2);
        let c = &cmds[0];
        assert_eq!(
            c.argv,
            [
                "useradd",
                "-c",
                "Deploy User",
                "-d",
                "/srv/deploy",
                "-G",
                "sudo,adm",
                "-s",
                "/bin/bash",
                "-u",
                "1500",
                "--user-group",
                "-m",
                "deploy"
            ]
        );
        // The hash goes on stdin, never in argv (readable by anyone in /proc).
        assert!(!c.secret && c.stdin.is_none());
        assert_eq!(cmds[1].argv, ["chpasswd", "-e"]);
        assert!(cmds[1].secret);
        assert_eq!(
            cmds[1].stdin.as_deref(),
            Some(&b"deploy:$6$salt$hash\n"[..])
        );
        assert!(!cmds.iter().flat_map(|c| &c.argv).any(|a| a.contains("$6$")));
        let sys = UserPlan {
            name: "svc".into(),
            primary_group: Some("daemon".into()),
            system: true,
            ..UserPlan::default()
        };
        let c = Linux.useradd(&sys);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].argv, ["useradd", "-g", "daemon", "-r", "-M", "svc"]);
        assert!(!c[0].secret);
    }

    #[test]
    fn one_chpasswd_for_many_users() {
        let cmds = Linux.set_passwords(&[
            ("a", "pa", false),
            ("b", "$6$x$y", true),
            ("c", "pc", false),
        ]);
        assert_eq!(cmds.len(), 2);
        assert_eq!(cmds[0].0.argv, ["chpasswd"]);
        assert_eq!(cmds[0].0.stdin.as_deref(), Some(&b"a:pa\nc:pc\n"[..]));
        assert!(cmds[0].0.secret);
        assert_eq!(cmds[0].1, [0, 2]);
        assert_eq!(cmds[1].0.argv, ["chpasswd", "-e"]);
        assert_eq!(cmds[1].1, [1]);
        assert!(Linux.set_passwords(&[]).is_empty());
    }

    #[test]
    fn password_commands_use_stdin_and_are_secret() {
        let c = Linux.set_password_text("bob", "pw");
        assert_eq!(c.argv, ["chpasswd"]);
        assert_eq!(c.stdin.as_deref(), Some(&b"bob:pw\n"[..]));
        assert!(c.secret);
        let c = Linux.set_password_hash("bob", "$6$x");
        assert_eq!(c.argv, ["chpasswd", "-e"]);
        assert!(c.secret);
        assert_eq!(
            Linux.expire_passwd("bob").argv,
            ["passwd", "--expire", "bob"]
        );
        assert_eq!(Linux.lock_passwd("bob").argv, ["passwd", "-l", "bob"]);
        assert_eq!(
            Linux.add_to_group("bob", "sudo").argv,
            ["usermod", "-a", "-G", "sudo", "bob"]
        );
    }

    #[test]
    fn identity_files() {
        let id = uuid::Uuid::from_bytes([0xab; 16]);
        let f = Linux.machine_id_files(&id);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].path, PathBuf::from("/etc/machine-id"));
        assert_eq!(f[0].content, format!("{}\n", "ab".repeat(16)));
        assert_eq!(f[0].mode, 0o444);
        assert_eq!(Linux.hostname_file("web1").1, "web1\n");
    }

    #[test]
    fn package_manager_detection_and_commands() {
        let only = |bin: &'static str| move |p: &Path| p == Path::new(bin);
        assert_eq!(
            PackageManager::detect(&only("/usr/bin/apt-get")),
            Some(PackageManager::AptGet)
        );
        assert_eq!(
            PackageManager::detect(&only("/sbin/apk")),
            Some(PackageManager::Apk)
        );
        // apt-get wins over dnf when both exist
        let both = |p: &Path| p == Path::new("/usr/bin/dnf") || p == Path::new("/usr/bin/apt-get");
        assert_eq!(PackageManager::detect(&both), Some(PackageManager::AptGet));

        let req = PackageRequest {
            update: false,
            upgrade: false,
            packages: vec![pkg("nginx", None), pkg("curl", Some("7.88.1-10"))],
        };
        let cmds = Linux
            .package_commands(&only("/usr/bin/apt-get"), &req)
            .unwrap();
        assert_eq!(cmds.len(), 2, "apt-get needs lists before installing");
        assert_eq!(
            cmds[1].argv,
            [
                "apt-get",
                "-y",
                "-q",
                "-o",
                "Dpkg::Options::=--force-confold",
                "-o",
                "DPkg::Lock::Timeout=300",
                "install",
                "nginx",
                "curl=7.88.1-10"
            ]
        );
        assert!(cmds[1]
            .env
            .contains(&("DEBIAN_FRONTEND".into(), "noninteractive".into())));
        let cmds = Linux.package_commands(&only("/usr/bin/dnf"), &req).unwrap();
        assert_eq!(
            cmds.iter().map(|c| c.argv.join(" ")).collect::<Vec<_>>(),
            ["dnf -y install nginx curl-7.88.1-10"]
        );
        let cmds = Linux
            .package_commands(&only("/usr/bin/zypper"), &req)
            .unwrap();
        assert_eq!(
            cmds[0].argv.join(" "),
            "zypper --non-interactive install nginx curl=7.88.1-10"
        );
        let e = Linux
            .package_commands(&only("/usr/bin/pacman"), &req)
            .unwrap_err();
        assert!(e.contains("curl"), "{e}");
        let e = Linux.package_commands(&|_| false, &req).unwrap_err();
        assert!(e.contains("nginx, curl"), "{e}");
        let up = PackageRequest {
            update: true,
            upgrade: true,
            packages: vec![],
        };
        let cmds = Linux.package_commands(&only("/usr/bin/yum"), &up).unwrap();
        assert_eq!(
            cmds.iter().map(|c| c.argv.join(" ")).collect::<Vec<_>>(),
            ["yum -y makecache", "yum -y upgrade"]
        );
        let bad = PackageRequest {
            packages: vec![pkg("--config=/x", None)],
            ..PackageRequest::default()
        };
        assert!(Linux
            .package_commands(&only("/usr/bin/apt-get"), &bad)
            .is_err());
    }

    #[test]
    fn shutdown_and_reload() {
        assert_eq!(
            Linux.shutdown(PowerMode::Reboot, "+5", Some("bye")).argv,
            ["shutdown", "-r", "+5", "bye"]
        );
        assert_eq!(
            Linux.shutdown(PowerMode::Poweroff, "now", None).argv,
            ["shutdown", "-P", "now"]
        );
        assert_eq!(Linux.shutdown(PowerMode::Halt, "now", None).argv[1], "-H");
        assert_eq!(
            Linux.shutdown(PowerMode::Reboot, "+1", Some("-c")).argv,
            ["shutdown", "-r", "--", "+1", "-c"]
        );
        let r = Linux.sshd_reload();
        assert_eq!(r.reload.argv[1], "try-reload-or-restart");
        assert!(r.check.is_none());
    }
}
