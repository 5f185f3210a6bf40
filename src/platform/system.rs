//! `System`: the one door to the host.
//!
//! Every file the agent reads or writes, every command it runs and every syscall that
//! changes the machine (sethostname) goes through this trait. Paths given to it are
//! *guest paths* (absolute, as seen by the machine being configured, e.g. `/etc/hostname`);
//! the implementation resolves them under its root prefix. That is what lets the same code
//! run at boot (`root = /`), under `--root DIR` in tests and by hand, and against the
//! recording fake in unit tests.

use std::io::{self, Read, Seek, Write};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime};

/// A block device or image file opened for probing.
pub trait ReadSeek: Read + Seek {}
impl<T: Read + Seek> ReadSeek for T {}

/// A disk opened for changing its partition table ([`System::open_disk`]).
pub trait DiskIo: Read + Write + Seek {
    /// Flush written sectors to the device (`fsync`).
    fn sync(&mut self) -> io::Result<()>;
}

/// What `lstat` reports about a path (the final component is never followed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    File,
    Dir,
    Symlink,
    /// Block or character device, fifo, socket.
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileInfo {
    pub kind: FileKind,
    /// Permission bits (`0o7777` mask).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub len: u64,
}

/// How a file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteOpts {
    /// Permission bits of the file.
    pub mode: u32,
    /// Owner (uid, gid); `None` keeps the writer's (root at boot).
    pub owner: Option<(u32, u32)>,
    /// Append to an existing file instead of replacing it atomically.
    pub append: bool,
    /// Refuse if any directory component below the root is a symlink (used for paths
    /// inside user-controlled trees such as a home directory). The final component is
    /// never followed in any case.
    pub no_symlink_dirs: bool,
}

impl WriteOpts {
    /// A root-owned file with the given mode, replaced atomically.
    pub const fn mode(mode: u32) -> Self {
        WriteOpts {
            mode,
            owner: None,
            append: false,
            no_symlink_dirs: false,
        }
    }
    pub const fn owner(mut self, uid: u32, gid: u32) -> Self {
        self.owner = Some((uid, gid));
        self
    }
    pub const fn append(mut self) -> Self {
        self.append = true;
        self
    }
    pub const fn strict(mut self) -> Self {
        self.no_symlink_dirs = true;
        self
    }
}

/// A command to run: an argv, never a string for a shell (callers that need `sh -c`
/// say so explicitly in argv).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cmd {
    pub argv: Vec<String>,
    /// Extra environment variables (added to a minimal, fixed environment).
    pub env: Vec<(String, String)>,
    /// Bytes fed on stdin (e.g. `chpasswd` input). Never logged.
    pub stdin: Option<Vec<u8>>,
    /// Kill the command (and its process group) after this long.
    pub timeout: Option<Duration>,
    /// argv carries a secret: logs show only argv[0] and "(arguments withheld)".
    pub secret: bool,
    /// Working directory (guest path).
    pub cwd: Option<PathBuf>,
}

impl Cmd {
    pub fn new<I, S>(argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Cmd {
            argv: argv.into_iter().map(Into::into).collect(),
            ..Cmd::default()
        }
    }
    pub fn env(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }
    pub fn stdin(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(data.into());
        self
    }
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = Some(d);
        self
    }
    pub fn secret(mut self) -> Self {
        self.secret = true;
        self
    }
    /// The argv as it may appear in a log line (secrets withheld).
    pub fn display(&self) -> String {
        if self.secret {
            format!(
                "{} (arguments withheld)",
                self.argv.first().map(String::as_str).unwrap_or("")
            )
        } else {
            self.argv.join(" ")
        }
    }
}

/// The result of a command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CmdOutput {
    /// Exit code; `None` when killed by a signal or by the timeout.
    pub code: Option<i32>,
    pub timed_out: bool,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl CmdOutput {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// An exclusive advisory lock (`flock(2)`) on an open file, released when dropped, and by
/// the kernel when the process dies however it dies (no stale lock after a crash).
pub struct FileLock {
    _held: Option<nix::fcntl::Flock<std::fs::File>>,
}

impl FileLock {
    /// A lock on `file`: `Ok(None)` when another open file holds it and `wait` is false;
    /// with `wait`, blocks until it is free. The file must be opened close-on-exec (std
    /// does), so commands the agent runs never inherit, and so never keep, the lock.
    pub fn take(file: std::fs::File, wait: bool) -> io::Result<Option<FileLock>> {
        use nix::fcntl::{Flock, FlockArg};
        let arg = if wait {
            FlockArg::LockExclusive
        } else {
            FlockArg::LockExclusiveNonblock
        };
        match Flock::lock(file, arg) {
            Ok(held) => Ok(Some(FileLock { _held: Some(held) })),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) if !wait => Ok(None),
            Err((_, e)) => Err(io::Error::from(e)),
        }
    }

    /// Whether another open file holds a lock on the file at host path `path`: probed
    /// with a shared, non-blocking lock on a read-only open, so users who cannot write
    /// the file can ask too. A missing file is not held; a symlink is refused.
    pub fn probe(path: &Path) -> io::Result<bool> {
        use nix::fcntl::{Flock, FlockArg};
        use std::os::unix::fs::OpenOptionsExt as _;
        let f = match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
            .open(path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
        };
        match Flock::lock(f, FlockArg::LockSharedNonblock) {
            Ok(_probe) => Ok(false),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(true),
            Err((_, e)) => Err(io::Error::from(e)),
        }
    }

    /// A lock that holds nothing (a dry run changes nothing, so it excludes no one).
    pub fn none() -> FileLock {
        FileLock { _held: None }
    }
}

/// The only code that touches the host.
pub trait System {
    /// The root prefix every guest path is resolved under (`/` at boot).
    fn root(&self) -> &Path;

    /// Read a whole file, refusing more than `limit` bytes.
    fn read_file(&self, path: &Path, limit: u64) -> io::Result<Vec<u8>>;
    /// `lstat`; `Ok(None)` when the path does not exist.
    fn lstat(&self, path: &Path) -> io::Result<Option<FileInfo>>;
    /// Names in a directory (not `.`/`..`), sorted.
    fn read_dir(&self, path: &Path) -> io::Result<Vec<String>>;
    /// Target of a symlink.
    fn read_link(&self, path: &Path) -> io::Result<PathBuf>;
    /// Write a file: atomically (temp file in the same directory, fsync, rename) unless
    /// `opts.append`. Never follows a symlink in the final component.
    fn write_file(&self, path: &Path, data: &[u8], opts: WriteOpts) -> io::Result<()>;
    /// `mkdir -p`; directories it creates get `mode` and `owner`.
    fn create_dir_all(&self, path: &Path, mode: u32, owner: Option<(u32, u32)>) -> io::Result<()>;
    /// Make `link` a symlink to `target` (stored as given, not resolved), replacing a file
    /// or symlink already there atomically (temp link, rename); refuses a directory.
    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()>;
    /// Empty a regular file in place: owner, mode, hard links and labels stay as they are
    /// (a log truncated while sealing must still be writable by its daemon). Refuses a
    /// symlink or anything but a regular file; never creates the file.
    fn truncate(&self, path: &Path) -> io::Result<()>;
    /// Remove a file or symlink; `Ok(())` when it does not exist.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Remove a directory tree; `Ok(())` when it does not exist. Never follows symlinks.
    fn remove_dir_all(&self, path: &Path) -> io::Result<()>;
    /// chown without following a symlink.
    fn set_owner(&self, path: &Path, uid: u32, gid: u32) -> io::Result<()>;
    /// chmod (the path must not be a symlink).
    fn set_mode(&self, path: &Path, mode: u32) -> io::Result<()>;
    /// Open a block device or image for reading (seed probing).
    fn open_device(&self, path: &Path) -> io::Result<Box<dyn ReadSeek>>;
    /// Open a disk (a block device, or an image file under a test root) for reading and
    /// writing, holding an exclusive `flock` on it until the handle is dropped: growpart's
    /// lock, which udev also honours (it does not re-probe a disk while it is held).
    fn open_disk(&self, path: &Path) -> io::Result<Box<dyn DiskIo>>;
    /// Tell the running kernel that partition `number` of `disk` now spans `len` bytes from
    /// byte `start` (Linux `BLKPG_RESIZE_PARTITION`, what `partx --update` does for a disk
    /// in use). Recorded instead outside the live root.
    fn resize_partition(&self, disk: &Path, number: u32, start: u64, len: u64) -> io::Result<()>;
    /// Take the exclusive lock on `path` ([`FileLock::take`]), creating the file (0600,
    /// never through a symlink) when missing: `Ok(None)` when it is held and `wait` is
    /// false. Serialises agent runs (`ci-agent run` by hand during a boot pass).
    fn lock_file(&self, path: &Path, wait: bool) -> io::Result<Option<FileLock>>;
    /// True while another process (or open file) holds the lock on `path`
    /// ([`FileLock::probe`]); only reads, never creates the file.
    fn lock_held(&self, path: &Path) -> io::Result<bool> {
        FileLock::probe(&self.host_path(path)?)
    }

    /// Run a command and wait for it (bounded by `cmd.timeout`). Implementations that do
    /// not act on the live host record it instead and report success.
    fn run(&self, cmd: &Cmd) -> io::Result<CmdOutput>;
    /// sethostname(2) (or its recorded stand-in).
    fn set_hostname(&self, name: &str) -> io::Result<()>;

    /// Wall clock.
    fn now(&self) -> SystemTime;
    /// Sleep (the fake returns at once and records the duration).
    fn sleep(&self, d: Duration);
    /// Fill `buf` with random bytes (passwords, temp names).
    fn random(&self, buf: &mut [u8]) -> io::Result<()>;

    /// Where a guest path lives on the machine running us (`root` + path). Rejects
    /// relative paths and `..` components so nothing escapes the root by name.
    fn host_path(&self, path: &Path) -> io::Result<PathBuf> {
        resolve_under(self.root(), path)
    }

    /// True when `path` exists (without following a final symlink).
    fn exists(&self, path: &Path) -> bool {
        matches!(self.lstat(path), Ok(Some(_)))
    }
}

/// `root` + guest `path`, refusing relative paths and `..`.
pub fn resolve_under(root: &Path, path: &Path) -> io::Result<PathBuf> {
    let mut out = root.to_path_buf();
    let mut saw_root = false;
    for c in path.components() {
        match c {
            Component::RootDir => saw_root = true,
            Component::CurDir => {}
            Component::Normal(p) => out.push(p),
            Component::ParentDir | Component::Prefix(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("path {} must not contain '..'", path.display()),
                ))
            }
        }
    }
    if !saw_root {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("path {} must be absolute", path.display()),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_under_joins_and_refuses_escape() {
        let r = Path::new("/tmp/r");
        assert_eq!(
            resolve_under(r, Path::new("/etc/hostname")).unwrap(),
            PathBuf::from("/tmp/r/etc/hostname")
        );
        assert!(resolve_under(r, Path::new("/etc/../../x")).is_err());
        assert!(resolve_under(r, Path::new("etc/hostname")).is_err());
    }

    #[test]
    fn secret_commands_hide_arguments() {
        let c = Cmd::new(["chpasswd", "-e"]).secret();
        assert_eq!(c.display(), "chpasswd (arguments withheld)");
    }
}
