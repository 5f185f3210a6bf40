//! The per-OS policy the modules call: which files hold what, and which commands do what.
//!
//! The trait is implemented by [`crate::platform::linux::Linux`] and
//! [`crate::platform::freebsd::FreeBsd`] as plain code compiled on every target, so both
//! policies are unit-tested on Linux. Modules pick the policy with `OsKind::policy` from
//! `ctx.os` (never from `cfg!`), and turn the data it returns into effects through
//! `ctx.sys`.

use std::path::{Path, PathBuf};

use crate::formats::userdata::cloud_config::Package;
use crate::platform::Cmd;

/// A user to create, already validated (names, paths, hash) by the `users` module.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserPlan {
    pub name: String,
    pub gecos: Option<String>,
    pub homedir: Option<String>,
    pub shell: Option<String>,
    pub primary_group: Option<String>,
    /// Supplementary groups.
    pub groups: Vec<String>,
    pub system: bool,
    pub no_create_home: bool,
    pub uid: Option<u32>,
    /// crypt(3) hash set at creation (on stdin).
    pub passwd_hash: Option<String>,
}

/// A file holding a machine identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdFile {
    pub path: PathBuf,
    pub content: String,
    pub mode: u32,
}

/// How sshd is told to re-read its configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshdReload {
    /// Reload only when this guest path exists (e.g. `/run/systemd/system`).
    pub requires_path: Option<PathBuf>,
    /// Reload only when this command succeeds (sshd is running).
    pub check: Option<Cmd>,
    pub reload: Cmd,
}

/// What the `packages` module was asked to do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackageRequest {
    pub update: bool,
    pub upgrade: bool,
    pub packages: Vec<Package>,
}

/// `power_state.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerMode {
    Poweroff,
    Reboot,
    Halt,
}

pub trait OsPolicy: Sync {
    /// The persistent hostname file and its content for `name`.
    fn hostname_file(&self, name: &str) -> (PathBuf, String);
    /// The longest name sethostname(2) takes (Linux 64, FreeBSD 255).
    fn hostname_max(&self) -> usize;
    /// Whether the persistent hostname is the FQDN when both are known (cloud-init's
    /// per-distro `prefer_fqdn`; `prefer_fqdn_over_hostname` overrides it).
    fn prefer_fqdn(&self) -> bool;
    /// The address of the hostname line in `/etc/hosts`.
    fn hosts_ip(&self) -> &'static str;
    /// Whether every other line for [`OsPolicy::hosts_ip`] is the previous hostname's
    /// (Debian's `127.0.1.1` convention) and is replaced in `template` mode.
    fn hosts_ip_is_hostname_only(&self) -> bool;

    /// Files holding a fresh machine identity made from 16 random bytes.
    fn machine_id_files(&self, id: &uuid::Uuid) -> Vec<IdFile>;
    /// A copy of the machine id to replace when it is a regular file (left alone when
    /// it is a symlink or absent).
    fn machine_id_copy(&self) -> Option<PathBuf>;
    /// Commands that make a new identity live without a reboot.
    fn machine_id_live(&self, id: &uuid::Uuid) -> Vec<Cmd>;

    fn groupadd(&self, name: &str) -> Cmd;
    /// The commands that create `user`, in order. A `passwd_hash` goes on stdin, never in
    /// argv (where any local user could read it in `/proc/PID/cmdline` or `ps`).
    fn useradd(&self, user: &UserPlan) -> Vec<Cmd>;
    fn add_to_group(&self, user: &str, group: &str) -> Cmd;
    /// Disable password logins (key logins keep working).
    fn lock_passwd(&self, user: &str) -> Cmd;
    /// Set a crypt(3) hash (secret, stdin).
    fn set_password_hash(&self, user: &str, hash: &str) -> Cmd;
    /// Set a plain-text password (secret, stdin).
    fn set_password_text(&self, user: &str, password: &str) -> Cmd;
    /// Set several passwords, `(user, password or hash, is_hash)` each (secret, stdin).
    /// Returns the commands with the indices of the items each one sets; by default one
    /// command per item.
    fn set_passwords(&self, items: &[(&str, &str, bool)]) -> Vec<(Cmd, Vec<usize>)> {
        items
            .iter()
            .enumerate()
            .map(|(i, (user, pw, hash))| {
                let c = if *hash {
                    self.set_password_hash(user, pw)
                } else {
                    self.set_password_text(user, pw)
                };
                (c, vec![i])
            })
            .collect()
    }
    /// Force a password change at the next login.
    fn expire_passwd(&self, user: &str) -> Cmd;
    /// sudoers drop-in written by the `users` module.
    fn sudoers_file(&self) -> PathBuf;
    /// The main sudoers file (checked for an include of the drop-in directory).
    fn sudoers_main(&self) -> PathBuf;
    /// visudo(8), which checks the drop-in before it is installed (a sudoers file that
    /// does not parse makes sudo refuse to run); absent when sudo is not installed.
    fn visudo(&self) -> PathBuf;

    fn sshd_config(&self) -> PathBuf {
        "/etc/ssh/sshd_config".into()
    }
    fn sshd_dropin_dir(&self) -> PathBuf {
        "/etc/ssh/sshd_config.d".into()
    }
    fn sshd_reload(&self) -> SshdReload;

    /// Commands for a package request; `exists` answers whether a guest path exists.
    /// An error names what is missing (no package manager, unsupported version pin).
    fn package_commands(
        &self,
        exists: &dyn Fn(&Path) -> bool,
        req: &PackageRequest,
    ) -> Result<Vec<Cmd>, String>;

    /// `shutdown` for a mode, a delay (`now` or `+N`) and an optional message.
    fn shutdown(&self, mode: PowerMode, delay: &str, message: Option<&str>) -> Cmd;

    /// Where the seconds since boot come from: a file (Linux `/proc/uptime`) or a
    /// command printing the boot time (FreeBSD `sysctl -n kern.boottime`).
    fn uptime_source(&self) -> UptimeSource;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UptimeSource {
    /// A file whose first number is the uptime in seconds.
    ProcUptime(PathBuf),
    /// A command printing `{ sec = N, usec = M } …`.
    BootTimeCmd(Cmd),
}

/// A package name as given, refused when it could be taken for an option or holds
/// whitespace or control characters.
pub fn check_package(p: &Package) -> Result<(), String> {
    let ok = |s: &str| {
        !s.is_empty()
            && s.len() <= 256
            && !s.starts_with('-')
            && !s.chars().any(|c| c.is_whitespace() || c.is_control())
    };
    if !ok(&p.name) {
        return Err(format!("invalid package name {:?}", shorten(&p.name)));
    }
    if let Some(v) = &p.version {
        if !ok(v) {
            return Err(format!(
                "invalid version {:?} for package {}",
                shorten(v),
                p.name
            ));
        }
    }
    Ok(())
}

/// A value cut to a size fit for an error message.
pub fn shorten(s: &str) -> String {
    crate::formats::userdata::value::short(s)
}
