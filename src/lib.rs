//! ci-agent: a first-boot agent for VM templates, and ci-seed, its host-side seed tool.
//!
//! A template is built once and cloned many times; each clone must come up as its own
//! machine. The agent finds a NoCloud seed (an ISO9660 `cidata` cdrom read straight from
//! the block device, a vfat `CIDATA` disk, a directory, or an HTTP `seedfrom`), or a
//! vm-bootstrap HTTP endpoint, and applies it once per instance.
//!
//! Layout (see `docs/architecture.md`); imports only go down this list:
//! - [`agent`]: the first-boot run (decide, discover, parse, modules, record), its state,
//!   logging, `seal` and `query`.
//! - [`seed`]: the host side (`ci-seed`): build, batch, validate, images, `serve`.
//! - [`modules`]: one file per cloud-config key; [`datasource`]: where a seed comes from.
//! - [`network`]: network-config v1/v2 and ENI → one model → networkd, ENI,
//!   NetworkManager and FreeBSD renderers; [`disk`]: partition tables and root growth.
//! - [`platform`]: `System` (the only code that touches the host), the per-OS policy, the
//!   agent's config, accounts and command helpers.
//! - [`formats`]: pure codecs shared by both binaries: ISO9660, FAT, YAML, user-data,
//!   calendar.

pub mod agent;
pub mod datasource;
pub mod disk;
pub mod formats;
pub mod modules;
pub mod network;
pub mod platform;
pub mod seed;

/// Exit codes shared by both binaries.
pub mod exit {
    /// Success (or nothing was due).
    pub const OK: u8 = 0;
    /// The work ran and something failed (a module, a seed that was not found for `query`).
    pub const FAILED: u8 = 1;
    /// Usage, configuration or malformed-input errors.
    pub const USAGE: u8 = 2;
    /// Standard output was closed by its reader (`ci-agent query | head`): the process
    /// ends quietly with the status a shell reports for a tool killed by SIGPIPE.
    pub const BROKEN_PIPE: u8 = 128 + 13;

    /// Write to standard output (what [`crate::out!`] and [`crate::outln!`] expand to). A
    /// reader that went away ends the process quietly with [`BROKEN_PIPE`], never a panic
    /// (`println!` panics on a closed pipe); other errors are ignored, as the output is
    /// best effort and the exit code says how the work went.
    pub fn stdout(args: std::fmt::Arguments) {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        if let Err(e) = out.write_fmt(args).and_then(|()| out.flush()) {
            quiet_if_broken_pipe(&e);
        }
    }

    /// End the process quietly when `e` says that standard output's reader went away.
    pub fn quiet_if_broken_pipe(e: &std::io::Error) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(i32::from(BROKEN_PIPE));
        }
    }
}

/// `print!` that ends quietly when standard output is closed ([`exit::stdout`]).
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::exit::stdout(format_args!($($arg)*)) };
}

/// `println!` that ends quietly when standard output is closed ([`exit::stdout`]).
#[macro_export]
macro_rules! outln {
    () => { $crate::exit::stdout(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::exit::stdout(format_args!("{}\n", format_args!($($arg)*))) };
}
