//! The host boundary and per-OS policy.
//!
//! - [`system`]: the `System` trait, the only code that touches the host.
//! - [`host`]: the real `System` (live at `/`, recording commands under `--root DIR`).
//! - [`fake`]: a recording fake for tests (files under a temp root, owners and commands
//!   recorded, scripted command results, fault injection).
//! - [`linux`], [`freebsd`]: per-OS policy (paths, `useradd` vs `pw`, apt vs `pkg`,
//!   rc.conf.d) as plain code compiled on every target, so both are unit-tested on Linux.
//!   `#[cfg(target_os)]` appears only in [`host`] and in [`OsKind::host`].
//! - [`policy`]: the `OsPolicy` trait those two implement (what differs between the OSes,
//!   as data and command builders).
//! - [`config`]: the agent's configuration (per-OS defaults plus `/etc/ci-agent.conf`),
//!   read by every layer above.
//! - [`accounts`]: users and groups read from `<root>/etc/passwd` and `/etc/group` (never
//!   libc, so `--root` holds), and a fake account toolchain for tests.
//! - [`exec`]: running commands with bounded, secret-aware logging.
//! - [`build_info`]: version, target, commit and features, for `--version`.
//! - [`cli`]: the option tables of both binaries' command lines (usage, completions).

pub mod accounts;
pub mod build_info;
pub mod cli;
pub mod config;
pub mod dryrun;
pub mod exec;
pub mod fake;
pub mod freebsd;
pub mod host;
pub mod http;
pub mod linux;
pub mod policy;
pub mod system;

pub use system::{
    Cmd, CmdOutput, DiskIo, FileInfo, FileKind, FileLock, ReadSeek, System, WriteOpts,
};

use std::path::{Path, PathBuf};

/// The machine's facts for instance data (`v1.distro`, `v1.kernel_release`, …): the
/// OS from `os`, the distro from `/etc/os-release` (FreeBSD: also `/var/run/os-release`),
/// the kernel release from `/proc/sys/kernel/osrelease` on Linux (FreeBSD: os-release's
/// `VERSION` is the closest file; unknown otherwise), the architecture from this build.
pub fn sys_info(sys: &dyn System, os: OsKind) -> crate::formats::userdata::SysInfo {
    let mut info = crate::formats::userdata::SysInfo {
        system: match os {
            OsKind::Linux => "Linux".into(),
            OsKind::FreeBsd => "FreeBSD".into(),
        },
        machine: match (os, std::env::consts::ARCH) {
            (OsKind::FreeBsd, "x86_64") => "amd64".into(),
            (OsKind::FreeBsd, "aarch64") => "arm64".into(),
            (_, arch) => arch.into(),
        },
        ..Default::default()
    };
    for p in [
        "/etc/os-release",
        "/usr/lib/os-release",
        "/var/run/os-release",
    ] {
        if let Ok(b) = sys.read_file(Path::new(p), 64 << 10) {
            info.set_os_release(&String::from_utf8_lossy(&b));
            break;
        }
    }
    if info.distro.is_empty() && os == OsKind::FreeBsd {
        info.distro = "freebsd".into();
    }
    if os == OsKind::Linux {
        if let Ok(b) = sys.read_file(Path::new("/proc/sys/kernel/osrelease"), 4096) {
            info.kernel_release = String::from_utf8_lossy(&b).trim().to_owned();
        }
    }
    info
}

/// The kernel command line: Linux `/proc/cmdline`; FreeBSD the loader's `kernel_options`
/// (`kenv -q kernel_options`, where cloud-init's rc.d script looks for
/// `cloud-init=disabled`); empty when there is none. The one reader of it for
/// `ds=nocloud`, the disable switches and `network-config=disabled`.
pub fn kernel_cmdline(sys: &dyn System, os: OsKind) -> String {
    match os {
        OsKind::Linux => sys
            .read_file(Path::new("/proc/cmdline"), 64 << 10)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default(),
        OsKind::FreeBsd => sys
            .run(
                &Cmd::new(["kenv", "-q", "kernel_options"])
                    .timeout(std::time::Duration::from_secs(5)),
            )
            .ok()
            .filter(|o| o.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default(),
    }
}

/// Whether the kernel command line has the word `word` (whitespace-separated).
pub fn cmdline_has(cmdline: &str, word: &str) -> bool {
    cmdline.split_ascii_whitespace().any(|t| t == word)
}

/// Which policy applies to the machine being configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OsKind {
    Linux,
    #[serde(rename = "freebsd")]
    FreeBsd,
}

impl OsKind {
    /// The per-OS policy (paths, commands) for this OS.
    pub fn policy(self) -> &'static dyn policy::OsPolicy {
        match self {
            OsKind::Linux => &linux::Linux,
            OsKind::FreeBsd => &freebsd::FreeBsd,
        }
    }

    /// The OS this binary was built for.
    pub const fn host() -> Self {
        if cfg!(target_os = "freebsd") {
            OsKind::FreeBsd
        } else {
            OsKind::Linux
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "linux" => Some(OsKind::Linux),
            "freebsd" => Some(OsKind::FreeBsd),
            _ => None,
        }
    }

    /// The value of a `--os` option (`linux` or `freebsd`), for the CLIs.
    pub fn from_arg(p: &mut lexopt::Parser) -> Result<Self, lexopt::Error> {
        use lexopt::ValueExt as _;
        let v = p.value()?.string()?;
        OsKind::parse(&v).ok_or_else(|| {
            lexopt::Error::Custom(format!("unknown OS {v:?} (linux or freebsd)").into())
        })
    }

    /// Default config file.
    pub fn config_path(self) -> PathBuf {
        match self {
            OsKind::Linux => "/etc/ci-agent.conf".into(),
            OsKind::FreeBsd => "/usr/local/etc/ci-agent.conf".into(),
        }
    }

    /// Default state directory (mode 0700).
    pub fn state_dir(self) -> PathBuf {
        match self {
            OsKind::Linux => "/var/lib/ci-agent".into(),
            OsKind::FreeBsd => "/var/db/ci-agent".into(),
        }
    }

    /// Default run directory: this boot's records, on a file system emptied at boot.
    pub fn run_dir(self) -> PathBuf {
        match self {
            OsKind::Linux => "/run/ci-agent".into(),
            OsKind::FreeBsd => "/var/run/ci-agent".into(),
        }
    }

    /// Default log file.
    pub fn log_file(self) -> PathBuf {
        "/var/log/ci-agent.log".into()
    }

    /// Default name of the default user.
    pub fn default_user(self) -> &'static str {
        match self {
            OsKind::Linux => "debian",
            OsKind::FreeBsd => "freebsd",
        }
    }
}
