//! The agent's own small logger on the `log` facade (no logging framework).
//!
//! At boot the agent has three audiences: the console (stderr, what systemd/rc shows),
//! syslog (the journal, `/var/log/messages`), and its own log file (`/var/log/ci-agent.log`,
//! where script and command output is kept for later). The logger starts with stderr only;
//! once the config is known the run adds the file ([`open_file`], under the root prefix)
//! and, on the live system only, syslog through a *local* socket ([`open_syslog`]; never
//! network syslog). Modules log through `log::info!` etc.; they never log secrets.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::{Mutex, OnceLock};

use log::{Level, LevelFilter, Log, Metadata, Record};

use crate::platform::{OsKind, System};

type Syslog = syslog::Logger<syslog::LoggerBackend, syslog::Formatter3164>;

struct Sinks {
    stderr_level: LevelFilter,
    file: Option<File>,
    syslog: Option<Syslog>,
    /// Prefix on stderr lines (`ci-agent`, `ci-agent[early]`).
    tag: String,
    /// stderr is systemd's journal stream: start each line with its syslog priority.
    journal: bool,
}

struct AgentLogger {
    sinks: Mutex<Sinks>,
}

static LOGGER: OnceLock<AgentLogger> = OnceLock::new();

fn logger() -> &'static AgentLogger {
    LOGGER.get_or_init(|| AgentLogger {
        sinks: Mutex::new(Sinks {
            stderr_level: LevelFilter::Info,
            file: None,
            syslog: None,
            tag: "ci-agent".into(),
            journal: false,
        }),
    })
}

fn sinks() -> std::sync::MutexGuard<'static, Sinks> {
    logger().sinks.lock().unwrap_or_else(|e| e.into_inner())
}

/// Install the logger (stderr only). Safe to call more than once; `verbose` shows debug
/// messages on stderr too.
pub fn init(tag: &str, verbose: bool) {
    let l = logger();
    // Err means a logger is already installed (ours, from an earlier call): fine.
    let _ = log::set_logger(l);
    log::set_max_level(LevelFilter::Debug);
    let mut s = sinks();
    s.stderr_level = if verbose {
        LevelFilter::Debug
    } else {
        LevelFilter::Info
    };
    s.tag = tag.to_string();
    s.journal = stderr_is_journal();
}

/// Whether stderr is the stream systemd named in `JOURNAL_STREAM` (`DEV:INODE`): then
/// journald reads a `<N>` prefix as the line's priority (sd-daemon(3)), so `journalctl -p
/// warning` shows our warnings. Compared with stderr itself, as systemd advises, so a
/// command whose stderr was redirected elsewhere does not print prefixes.
fn stderr_is_journal() -> bool {
    let Some(v) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(st) = nix::sys::stat::fstat(io::stderr()) else {
        return false;
    };
    #[allow(clippy::unnecessary_cast)] // dev_t/ino_t widths differ between targets
    stream_matches(&v.to_string_lossy(), st.st_dev as u64, st.st_ino as u64)
}

/// `JOURNAL_STREAM`'s value (`DEV:INODE`, decimal) names this device and inode.
fn stream_matches(value: &str, dev: u64, ino: u64) -> bool {
    let Some((d, i)) = value.split_once(':') else {
        return false;
    };
    d.parse::<u64>() == Ok(dev) && i.parse::<u64>() == Ok(ino)
}

/// The sd-daemon(3) priority prefix of a level: `<3>` error, `<4>` warning, `<6>` info,
/// `<7>` debug.
fn journal_prefix(level: Level) -> &'static str {
    match level {
        Level::Error => "<3>",
        Level::Warn => "<4>",
        Level::Info => "<6>",
        Level::Debug | Level::Trace => "<7>",
    }
}

/// Change what reaches stderr (tests turn it off: libtest cannot capture a logger that
/// writes to the stderr handle, and the file sink keeps everything anyway).
pub fn set_stderr_level(level: LevelFilter) {
    sinks().stderr_level = level;
}

/// Append log lines to `guest_path` under the system's root (created 0600; parent
/// directories 0755). The final component is never followed if it is a symlink.
pub fn open_file(sys: &dyn System, guest_path: &Path) -> io::Result<()> {
    if let Some(parent) = guest_path.parent() {
        // Under a root prefix, a symlinked directory (absolute links resolve on the host)
        // could take the log outside the root: refuse it. At `/` links are the system's.
        if sys.root() != Path::new("/") {
            let mut cur = std::path::PathBuf::from("/");
            for c in parent.components().skip(1) {
                cur.push(c);
                if let Some(info) = sys.lstat(&cur)? {
                    if info.kind == crate::platform::FileKind::Symlink {
                        return Err(io::Error::new(
                            io::ErrorKind::PermissionDenied,
                            format!("refusing to follow symlink {}", cur.display()),
                        ));
                    }
                }
            }
        }
        sys.create_dir_all(parent, 0o755, None)?;
    }
    let host = sys.host_path(guest_path)?;
    let f = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(host)?;
    sinks().file = Some(f);
    Ok(())
}

/// Send log lines to the local syslog socket (`/dev/log` on Linux, `/var/run/log` on
/// FreeBSD) if it exists. Returns whether syslog is in use. Skipped when stderr already
/// goes to the journal (`JOURNAL_STREAM` set by systemd), to avoid every line twice.
pub fn open_syslog(os: OsKind) -> bool {
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        return false;
    }
    let socket = match os {
        OsKind::Linux => "/dev/log",
        OsKind::FreeBsd => "/var/run/log",
    };
    if !Path::new(socket).exists() {
        return false;
    }
    let formatter = syslog::Formatter3164 {
        facility: syslog::Facility::LOG_DAEMON,
        hostname: None,
        process: "ci-agent".into(),
        pid: std::process::id(),
    };
    match syslog::unix_custom(formatter, socket) {
        Ok(l) => {
            sinks().syslog = Some(l);
            true
        }
        Err(_) => false,
    }
}

/// Close the file and syslog sinks (stderr stays).
pub fn close() {
    let mut s = sinks();
    if let Some(f) = s.file.as_mut() {
        let _ = f.flush();
    }
    s.file = None;
    s.syslog = None;
}

fn level_word(l: Level) -> &'static str {
    match l {
        Level::Error => "error",
        Level::Warn => "warning",
        Level::Info => "info",
        Level::Debug => "debug",
        Level::Trace => "trace",
    }
}

impl Log for AgentLogger {
    fn enabled(&self, m: &Metadata) -> bool {
        m.level() <= LevelFilter::Debug
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        // Messages quote seed data (final_message, keys, command output): no control
        // character reaches the console, the log file or syslog raw.
        let msg = record.args().to_string();
        let msg = crate::formats::escape_controls(&msg, true);
        let level = record.level();
        let mut s = sinks();
        if level <= s.stderr_level {
            let prio = if s.journal { journal_prefix(level) } else { "" };
            let prefix = match level {
                Level::Info => format!("{prio}{}: ", s.tag),
                l => format!("{prio}{}: {}: ", s.tag, level_word(l)),
            };
            let mut err = io::stderr().lock();
            for line in msg.lines() {
                let _ = writeln!(err, "{prefix}{line}");
            }
        }
        if let Some(f) = s.file.as_mut() {
            let ts = crate::formats::civil::rfc3339(std::time::SystemTime::now());
            let mut buf = String::new();
            for line in msg.lines() {
                buf.push_str(&format!("{ts} {} {line}\n", level_word(level)));
            }
            let _ = f.write_all(buf.as_bytes());
        }
        if level <= Level::Info {
            if let Some(sl) = s.syslog.as_mut() {
                // One syslog message per line keeps each under the datagram limit.
                for line in msg.lines().take(1000) {
                    let _ = match level {
                        Level::Error => sl.err(line),
                        Level::Warn => sl.warning(line),
                        _ => sl.info(line),
                    };
                }
            }
        }
    }

    fn flush(&self) {
        let mut s = sinks();
        if let Some(f) = s.file.as_mut() {
            let _ = f.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_sink_appends_under_the_root() {
        let d = tempfile::tempdir().unwrap();
        let sys = crate::platform::fake::FakeSystem::new(d.path());
        init("ci-agent-test", false);
        set_stderr_level(LevelFilter::Off);
        open_file(&sys, Path::new("/var/log/ci-agent.log")).unwrap();
        log::info!("hello\nsecond line");
        log::debug!("details");
        close();
        log::info!("not in the file");
        let text = std::fs::read_to_string(d.path().join("var/log/ci-agent.log")).unwrap();
        assert!(text.contains(" info hello\n"), "{text}");
        assert!(text.contains(" info second line\n"));
        assert!(text.contains(" debug details\n"));
        assert!(!text.contains("not in the file"));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d.path().join("var/log/ci-agent.log"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn journal_priorities_follow_sd_daemon() {
        assert_eq!(journal_prefix(Level::Error), "<3>");
        assert_eq!(journal_prefix(Level::Warn), "<4>");
        assert_eq!(journal_prefix(Level::Info), "<6>");
        assert_eq!(journal_prefix(Level::Debug), "<7>");
        assert!(stream_matches("8:12345", 8, 12345));
        assert!(!stream_matches("8:12345", 8, 12346));
        assert!(!stream_matches("8:12345", 9, 12345));
        for bad in ["", "8", "8:", ":1", "x:y", "8:12345:1"] {
            assert!(!stream_matches(bad, 8, 12345), "{bad}");
        }
    }

    #[test]
    fn file_sink_refuses_a_symlinked_directory_under_a_root() {
        let outside = tempfile::tempdir().unwrap();
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("var")).unwrap();
        std::os::unix::fs::symlink(outside.path(), d.path().join("var/log")).unwrap();
        let sys = crate::platform::fake::FakeSystem::new(d.path());
        let e = open_file(&sys, Path::new("/var/log/ci-agent.log")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
        assert!(!outside.path().join("ci-agent.log").exists());
    }
}
