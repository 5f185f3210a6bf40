//! The real `System`.
//!
//! File effects always happen for real, under the root prefix. What happens to effects on
//! the machine itself depends on the root:
//! - root `/` (at boot): commands run, `sethostname` is called, files are chowned;
//! - any other root (`--root DIR`, tests, the README demo): commands, `sethostname` and
//!   ownership changes are *recorded* — kept in memory and appended to a command log
//!   (`DIR/<state dir>/commands.log` once the agent names it) — so nothing outside DIR
//!   changes and a test can never rename the machine it runs on.
//!
//! The only `#[cfg(target_os)]` code of the project lives here.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use super::system::{
    Cmd, CmdOutput, DiskIo, FileInfo, FileKind, FileLock, ReadSeek, System, WriteOpts,
};

/// Output kept per stream of a command; the rest is drained and dropped.
const MAX_CAPTURE: usize = 4 << 20;

/// The environment every command starts from (plus `Cmd::env`).
const BASE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

pub struct HostSystem {
    root: PathBuf,
    live: bool,
    /// Guest path of the command log (recording mode only).
    command_log: Mutex<Option<PathBuf>>,
    recorded: Mutex<Vec<Cmd>>,
    owners: Mutex<HashMap<PathBuf, (u32, u32)>>,
    hostname: Mutex<Option<String>>,
}

impl HostSystem {
    /// A system rooted at `root`: live when `root` is `/`, recording otherwise.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root: PathBuf = root.into();
        let live = root == Path::new("/");
        HostSystem {
            root,
            live,
            command_log: Mutex::new(None),
            recorded: Mutex::new(Vec::new()),
            owners: Mutex::new(HashMap::new()),
            hostname: Mutex::new(None),
        }
    }

    /// A recording system whatever the root (the base of the test fake).
    pub fn recording(root: impl Into<PathBuf>) -> Self {
        let mut s = HostSystem::new(root);
        s.live = false;
        s
    }

    /// True when effects reach the machine (root `/`).
    pub fn is_live(&self) -> bool {
        self.live
    }

    /// True when effects reach the machine but this process is not root, so every one of
    /// them would fail with a permission error.
    pub fn lacks_root(&self) -> bool {
        self.live && !nix::unistd::geteuid().is_root()
    }

    /// In recording mode, also append each recorded effect to this guest file.
    pub fn set_command_log(&self, guest_path: PathBuf) {
        *lock(&self.command_log) = Some(guest_path);
    }

    /// Commands recorded so far (recording mode).
    pub fn recorded_commands(&self) -> Vec<Cmd> {
        lock(&self.recorded).clone()
    }

    /// The hostname set through `set_hostname` (recording mode).
    pub fn recorded_hostname(&self) -> Option<String> {
        lock(&self.hostname).clone()
    }

    /// The owner recorded for a guest path (recording mode).
    pub fn recorded_owner(&self, path: &Path) -> Option<(u32, u32)> {
        lock(&self.owners).get(path).copied()
    }

    fn record_line(&self, line: &str) -> io::Result<()> {
        let target = lock(&self.command_log).clone();
        if let Some(log) = target {
            let mut data = line.replace('\n', "\\n");
            data.push('\n');
            if let Some(parent) = log.parent() {
                self.create_dir_all(parent, 0o700, None)?;
            }
            self.write_file(&log, data.as_bytes(), WriteOpts::mode(0o600).append())?;
        }
        Ok(())
    }

    /// Like `host_path`, but a final symlink is followed too (inside the root when not live).
    fn follow_path(&self, path: &Path) -> io::Result<PathBuf> {
        if self.live {
            super::system::resolve_under(&self.root, path)
        } else {
            resolve_in_root(&self.root, path, true)
        }
    }

    /// Open the directory `dir` (a guest path) for `*at` calls, one component at a time
    /// from the root with `O_NOFOLLOW|O_DIRECTORY`: a symlink anywhere below the root is
    /// refused by the kernel at the moment it is met, so it cannot be swapped in between a
    /// check and a use (the TOCTOU a path-based `lstat` walk leaves open).
    fn open_dir_nofollow(&self, dir: &Path) -> io::Result<OwnedFd> {
        use nix::fcntl::{open, openat, OFlag};
        use nix::sys::stat::Mode;
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let mut fd = open(&self.root, flags, Mode::empty()).map_err(io::Error::from)?;
        let mut guest = PathBuf::from("/");
        for c in dir.components() {
            let name = match c {
                Component::Normal(n) => n,
                Component::RootDir | Component::CurDir => continue,
                _ => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("path {} must not contain '..'", dir.display()),
                    ))
                }
            };
            guest.push(name);
            fd = openat(&fd, name, flags | OFlag::O_NOFOLLOW, Mode::empty()).map_err(|e| {
                match e {
                    // A symlink (ELOOP, FreeBSD EMLINK), or ENOTDIR: a symlink to a
                    // non-directory, or a plain non-directory.
                    e if is_symlink_refusal(e) || e == nix::errno::Errno::ENOTDIR => {
                        let link = nix::sys::stat::fstatat(
                            &fd,
                            name,
                            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
                        )
                        .map(|st| st.st_mode & nix::libc::S_IFMT == nix::libc::S_IFLNK)
                        .unwrap_or(true);
                        if link {
                            io::Error::new(
                                io::ErrorKind::PermissionDenied,
                                format!("refusing to follow symlink {}", guest.display()),
                            )
                        } else {
                            io::Error::new(
                                io::ErrorKind::InvalidInput,
                                format!("{} is not a directory", guest.display()),
                            )
                        }
                    }
                    e => io::Error::from(e),
                }
            })?;
        }
        Ok(fd)
    }

    /// `write_file` in strict mode: every directory is opened without following symlinks,
    /// and the file is created, changed and renamed relative to the opened directory.
    fn write_strict(
        &self,
        path: &Path,
        host: &Path,
        data: &[u8],
        opts: WriteOpts,
    ) -> io::Result<()> {
        use nix::fcntl::{openat, renameat, AtFlags, OFlag};
        use nix::sys::stat::{fstatat, Mode, SFlag};
        let name = path.file_name().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} names no file", path.display()),
            )
        })?;
        let dir = self.open_dir_nofollow(path.parent().unwrap_or(Path::new("/")))?;
        let existing = match fstatat(&dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => Some(SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits())),
            Err(nix::errno::Errno::ENOENT) => None,
            Err(e) => return Err(e.into()),
        };
        match existing {
            Some(SFlag::S_IFLNK) => {
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!("refusing to write through symlink {}", path.display()),
                ))
            }
            Some(SFlag::S_IFDIR) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{} is a directory", path.display()),
                ))
            }
            _ => {}
        }
        let mode = Mode::from_bits_truncate(opts.mode as nix::libc::mode_t);
        let owner = |f: &File| -> io::Result<()> {
            if let Some((u, g)) = opts.owner {
                if self.live {
                    nix::unistd::fchown(
                        f,
                        Some(nix::unistd::Uid::from_raw(u)),
                        Some(nix::unistd::Gid::from_raw(g)),
                    )?;
                } else {
                    self.chown_host(path, host, u, g)?;
                }
            }
            Ok(())
        };
        let base = OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        if opts.append {
            let fd = openat(&dir, name, base | OFlag::O_APPEND | OFlag::O_CREAT, mode)?;
            let mut f = File::from(fd);
            f.write_all(data)?;
            f.sync_all()?;
            if existing.is_none() {
                // chown before chmod: chown clears set-id bits, even for root.
                owner(&f)?;
                nix::sys::stat::fchmod(&f, mode)?;
            }
            return Ok(());
        }
        let mut nonce = [0u8; 8];
        self.random(&mut nonce)?;
        let tmp = temp_name(Path::new(name), u64::from_le_bytes(nonce));
        let tmp = tmp.file_name().unwrap_or(name).to_os_string();
        let result = (|| {
            let fd = openat(
                &dir,
                tmp.as_os_str(),
                base | OFlag::O_CREAT | OFlag::O_EXCL,
                Mode::from_bits_truncate(0o600),
            )?;
            let mut f = File::from(fd);
            f.write_all(data)?;
            owner(&f)?;
            nix::sys::stat::fchmod(&f, mode)?;
            f.sync_all()?;
            renameat(&dir, tmp.as_os_str(), &dir, name)?;
            File::from(dir.try_clone()?).sync_all()
        })();
        // The listing goes by path; the removals go through the directory we wrote in.
        let stale = match (&result, host.parent()) {
            (Ok(()), Some(parent)) => stale_temps(parent, name),
            _ => vec![tmp],
        };
        for n in stale {
            let _ =
                nix::unistd::unlinkat(&dir, n.as_os_str(), nix::unistd::UnlinkatFlags::NoRemoveDir);
        }
        result
    }

    fn chown_host(&self, guest: &Path, host: &Path, uid: u32, gid: u32) -> io::Result<()> {
        if self.live {
            lchown(host, uid, gid)
        } else {
            lock(&self.owners).insert(guest.to_path_buf(), (uid, gid));
            self.record_line(&format!("chown {uid}:{gid} {}", guest.display()))
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock only means another thread panicked while holding it; the data
    // (plain records) is still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// True for the errors `O_NOFOLLOW` gives on a symlink: `ELOOP` (Linux, POSIX), `EMLINK`
/// (FreeBSD).
fn is_symlink_refusal(e: nix::errno::Errno) -> bool {
    matches!(e, nix::errno::Errno::ELOOP | nix::errno::Errno::EMLINK)
}

/// Open `host` (file or directory) for `fchmod`/`fchown` without following a final
/// symlink (`O_NONBLOCK`: a FIFO does not block the open).
fn open_nofollow(host: &Path, guest: &Path, what: &str) -> io::Result<File> {
    use nix::fcntl::{open, OFlag};
    let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    match open(host, flags, nix::sys::stat::Mode::empty()) {
        Ok(fd) => Ok(File::from(fd)),
        Err(e) if is_symlink_refusal(e) => Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("refusing to {what} through symlink {}", guest.display()),
        )),
        Err(e) => Err(e.into()),
    }
}

fn lchown(path: &Path, uid: u32, gid: u32) -> io::Result<()> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))
}

fn kind_of(m: &fs::Metadata) -> FileKind {
    let t = m.file_type();
    if t.is_symlink() {
        FileKind::Symlink
    } else if t.is_dir() {
        FileKind::Dir
    } else if t.is_file() {
        FileKind::File
    } else {
        FileKind::Other
    }
}

fn temp_name(target: &Path, nonce: u64) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    target.with_file_name(format!(".{name}.ci-agent.{}.{nonce:x}", std::process::id()))
}

/// Names in the directory listed at `listing` that are temp files of earlier replacements
/// of `name` ([`temp_name`]: `.NAME.ci-agent.PID.NONCE`), which a writer killed between
/// creating and renaming them left behind. Called after a replacement of `name` has
/// landed: writers of one target are serialised (one agent run at a time holds the run
/// lock, and a run writes a file from one thread), so any such file is debris, not a
/// write in flight. A name that is not UTF-8 has none (nothing is guessed).
fn stale_temps(listing: &Path, name: &std::ffi::OsStr) -> Vec<std::ffi::OsString> {
    let Some(name) = name.to_str() else {
        return Vec::new();
    };
    let prefix = format!(".{name}.ci-agent.");
    let Ok(entries) = fs::read_dir(listing) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .filter(|n| {
            let Some(rest) = n.to_str().and_then(|n| n.strip_prefix(prefix.as_str())) else {
                return false;
            };
            rest.split_once('.').is_some_and(|(pid, nonce)| {
                !pid.is_empty()
                    && pid.bytes().all(|b| b.is_ascii_digit())
                    && !nonce.is_empty()
                    && nonce.bytes().all(|b| b.is_ascii_hexdigit())
            })
        })
        .collect()
}

fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// How long a command's output is still collected after it exited: a background process
/// it started (`mydaemon &` in runcmd) inherits the pipes and may hold them open for ever.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);

/// One output stream, read by its own thread into a shared buffer (at most
/// `MAX_CAPTURE` bytes kept, the rest drained and dropped).
struct Capture {
    buf: Arc<Mutex<Vec<u8>>>,
    eof: mpsc::Receiver<()>,
}

impl Capture {
    fn start(mut r: impl Read + Send + 'static) -> Capture {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let (tx, eof) = mpsc::channel();
        let b = buf.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            loop {
                match r.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => {
                        let mut out = lock(&b);
                        let room = MAX_CAPTURE.saturating_sub(out.len());
                        out.extend_from_slice(&chunk[..n.min(room)]);
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            let _ = tx.send(());
        });
        Capture { buf, eof }
    }

    /// The output, once the stream ended or `until` passed (the reader thread is then
    /// left to drain the pipe in the background).
    fn finish(self, until: Instant) -> Vec<u8> {
        let _ = self
            .eof
            .recv_timeout(until.saturating_duration_since(Instant::now()));
        std::mem::take(&mut *lock(&self.buf))
    }
}

/// Resolve a guest path under `root` the way a chroot would: every component but the last
/// that is a symlink is followed *inside* the root (an absolute target restarts at the
/// root, `..` stops at it), so an image's `/var/lib -> /srv/lib` link cannot lead a
/// `--root` run onto the host. The final component is never followed here; each operation
/// decides that itself (writes refuse it, reads follow it through this same function only
/// if the caller resolves again).
fn resolve_in_root(root: &Path, path: &Path, follow_last: bool) -> io::Result<PathBuf> {
    use std::collections::VecDeque;
    use std::ffi::OsString;
    use std::path::Component;

    // Validates: absolute, no `..` in the caller's path.
    super::system::resolve_under(root, path)?;
    let mut pending: VecDeque<OsString> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(p) => Some(p.to_os_string()),
            _ => None,
        })
        .collect();
    let mut resolved = root.to_path_buf();
    let mut depth = 0usize;
    let mut hops = 0u32;
    while let Some(c) = pending.pop_front() {
        if pending.is_empty() && !follow_last {
            resolved.push(&c);
            break;
        }
        if c == ".." {
            if depth > 0 {
                resolved.pop();
                depth -= 1;
            }
            continue;
        }
        if c == "." {
            continue;
        }
        let candidate = resolved.join(&c);
        match fs::symlink_metadata(&candidate) {
            Ok(m) if m.file_type().is_symlink() => {
                hops += 1;
                if hops > 40 {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("{}: too many levels of symbolic links", path.display()),
                    ));
                }
                let target = fs::read_link(&candidate)?;
                if target.is_absolute() {
                    resolved = root.to_path_buf();
                    depth = 0;
                }
                let mut front: VecDeque<OsString> = target
                    .components()
                    .filter_map(|t| match t {
                        Component::Normal(p) => Some(p.to_os_string()),
                        Component::ParentDir => Some("..".into()),
                        _ => None,
                    })
                    .collect();
                front.extend(pending);
                pending = front;
            }
            _ => {
                resolved = candidate;
                depth += 1;
            }
        }
    }
    Ok(resolved)
}

impl System for HostSystem {
    fn root(&self) -> &Path {
        &self.root
    }

    /// At `/` the kernel resolves paths as usual. Under any other root, intermediate
    /// symlinks are resolved inside the root ([`resolve_in_root`]).
    fn host_path(&self, path: &Path) -> io::Result<PathBuf> {
        if self.live {
            super::system::resolve_under(&self.root, path)
        } else {
            resolve_in_root(&self.root, path, false)
        }
    }

    fn read_file(&self, path: &Path, limit: u64) -> io::Result<Vec<u8>> {
        let host = self.follow_path(path)?;
        let f = File::open(&host)?;
        let mut data = Vec::new();
        f.take(limit.saturating_add(1)).read_to_end(&mut data)?;
        if data.len() as u64 > limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} is larger than {limit} bytes", path.display()),
            ));
        }
        Ok(data)
    }

    fn lstat(&self, path: &Path) -> io::Result<Option<FileInfo>> {
        let host = self.host_path(path)?;
        match fs::symlink_metadata(&host) {
            Ok(m) => {
                let (uid, gid) = lock(&self.owners)
                    .get(path)
                    .copied()
                    .unwrap_or((m.uid(), m.gid()));
                Ok(Some(FileInfo {
                    kind: kind_of(&m),
                    mode: m.mode() & 0o7777,
                    uid,
                    gid,
                    len: m.len(),
                }))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let host = self.follow_path(path)?;
        let mut names = Vec::new();
        for e in fs::read_dir(host)? {
            names.push(e?.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    fn read_link(&self, path: &Path) -> io::Result<PathBuf> {
        fs::read_link(self.host_path(path)?)
    }

    fn write_file(&self, path: &Path, data: &[u8], opts: WriteOpts) -> io::Result<()> {
        let host = self.host_path(path)?;
        if opts.no_symlink_dirs {
            return self.write_strict(path, &host, data, opts);
        }
        let existing = fs::symlink_metadata(&host).ok();
        if let Some(m) = &existing {
            if m.file_type().is_symlink() {
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!("refusing to write through symlink {}", path.display()),
                ));
            }
            if m.is_dir() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{} is a directory", path.display()),
                ));
            }
        }
        if opts.append {
            let mut f = OpenOptions::new()
                .append(true)
                .create(true)
                .mode(opts.mode)
                .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
                .open(&host)?;
            f.write_all(data)?;
            f.sync_all()?;
            if existing.is_none() {
                // chown before chmod: chown clears set-id bits, even for root.
                if let Some((u, g)) = opts.owner {
                    self.chown_host(path, &host, u, g)?;
                }
                f.set_permissions(fs::Permissions::from_mode(opts.mode))?;
            }
            return Ok(());
        }
        let parent = host.parent().unwrap_or(&self.root).to_path_buf();
        let mut nonce = [0u8; 8];
        self.random(&mut nonce)?;
        let tmp = temp_name(&host, u64::from_le_bytes(nonce));
        let result = (|| {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(data)?;
            // chown before chmod: chown clears set-id bits, even for root.
            if let Some((u, g)) = opts.owner {
                if self.live {
                    lchown(&tmp, u, g)?;
                } else {
                    // Recorded before the rename, as the live chown happens before it: a
                    // crash cannot leave the new content in place with its owner unrecorded.
                    self.chown_host(path, &host, u, g)?;
                }
            }
            f.set_permissions(fs::Permissions::from_mode(opts.mode))?;
            f.sync_all()?;
            fs::rename(&tmp, &host)?;
            fsync_dir(&parent)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
            return result;
        }
        if let Some(name) = host.file_name() {
            for stale in stale_temps(&parent, name) {
                log::debug!(
                    "removing {} (left by a killed write)",
                    stale.to_string_lossy()
                );
                let _ = fs::remove_file(parent.join(stale));
            }
        }
        result
    }

    fn create_dir_all(&self, path: &Path, mode: u32, owner: Option<(u32, u32)>) -> io::Result<()> {
        self.host_path(path)?;
        let mut guest = PathBuf::from("/");
        for c in path.components().skip(1) {
            guest.push(c);
            let host = self.host_path(&guest)?;
            match fs::symlink_metadata(&host) {
                Ok(m) if m.is_dir() => continue,
                Ok(m) if m.file_type().is_symlink() && guest != path => {
                    // An intermediate symlink to a directory (e.g. /var/run -> /run) is
                    // fine: later components resolve through it (inside the root when not
                    // live). Callers that want no symlinks at all lstat first.
                    if self
                        .follow_path(&guest)
                        .map(|p| p.is_dir())
                        .unwrap_or(false)
                    {
                        continue;
                    }
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("{} is not a directory", guest.display()),
                    ));
                }
                Ok(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        format!("{} exists and is not a directory", guest.display()),
                    ))
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    // mkdir with the mode itself (less the umask), then chmod for the exact
                    // bits: a crash in between must not leave a private directory (the
                    // state dir, ~/.ssh) created 0755.
                    fs::DirBuilder::new().mode(mode & 0o777).create(&host)?;
                    // chmod/chown the directory we made through a descriptor opened without
                    // following symlinks: if it was swapped for a symlink meanwhile, that is
                    // an error, not a chmod of the link's target.
                    let d = open_nofollow(&host, &guest, "chmod")?;
                    d.set_permissions(fs::Permissions::from_mode(mode))?;
                    if let Some((u, g)) = owner {
                        if self.live {
                            nix::unistd::fchown(
                                &d,
                                Some(nix::unistd::Uid::from_raw(u)),
                                Some(nix::unistd::Gid::from_raw(g)),
                            )?;
                        } else {
                            self.chown_host(&guest, &host, u, g)?;
                        }
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn truncate(&self, path: &Path) -> io::Result<()> {
        let host = self.host_path(path)?;
        let open = || {
            OpenOptions::new()
                .write(true)
                .custom_flags(
                    (nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_NONBLOCK).bits(),
                )
                .open(&host)
        };
        let f = match open() {
            // A read-only file we own (0444 machine-id, when not running as root): lend
            // ourselves write permission for the open, then put the mode back.
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                let m = fs::symlink_metadata(&host)?;
                if !m.is_file() {
                    return Err(e);
                }
                let mode = m.permissions().mode();
                fs::set_permissions(&host, fs::Permissions::from_mode(mode | 0o200))?;
                let f = open();
                fs::set_permissions(&host, fs::Permissions::from_mode(mode))?;
                f?
            }
            r => r?,
        };
        if !f.metadata()?.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a regular file", path.display()),
            ));
        }
        f.set_len(0)?;
        f.sync_all()
    }

    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()> {
        let host = self.host_path(link)?;
        if fs::symlink_metadata(&host).is_ok_and(|m| m.is_dir()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is a directory", link.display()),
            ));
        }
        let parent = host.parent().unwrap_or(&self.root).to_path_buf();
        let mut nonce = [0u8; 8];
        self.random(&mut nonce)?;
        let tmp = temp_name(&host, u64::from_le_bytes(nonce));
        let result = std::os::unix::fs::symlink(target, &tmp)
            .and_then(|_| fs::rename(&tmp, &host))
            .and_then(|_| fsync_dir(&parent));
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        match fs::remove_file(self.host_path(path)?) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            r => r,
        }
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        let host = self.host_path(path)?;
        match fs::symlink_metadata(&host) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
            Ok(m) if m.is_dir() => fs::remove_dir_all(&host),
            Ok(_) => fs::remove_file(&host),
        }
    }

    fn set_owner(&self, path: &Path, uid: u32, gid: u32) -> io::Result<()> {
        let host = self.host_path(path)?;
        fs::symlink_metadata(&host)?;
        self.chown_host(path, &host, uid, gid)
    }

    fn set_mode(&self, path: &Path, mode: u32) -> io::Result<()> {
        let host = self.host_path(path)?;
        // fchmod on what was opened without following a final symlink: a symlink swapped
        // in after any earlier check is refused, never followed.
        open_nofollow(&host, path, "chmod")?.set_permissions(fs::Permissions::from_mode(mode))
    }

    fn open_device(&self, path: &Path) -> io::Result<Box<dyn ReadSeek>> {
        Ok(Box::new(File::open(self.follow_path(path)?)?))
    }

    fn open_disk(&self, path: &Path) -> io::Result<Box<dyn DiskIo>> {
        let host = self.follow_path(path)?;
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&host)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        let held =
            nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, e)| {
                io::Error::new(
                    io::Error::from(e).kind(),
                    format!("{}: flock: {e}", path.display()),
                )
            })?;
        Ok(Box::new(LockedDisk(held)))
    }

    fn resize_partition(&self, disk: &Path, number: u32, start: u64, len: u64) -> io::Result<()> {
        if !self.live {
            let cmd = Cmd::new([
                "blkpg-resize-partition".to_string(),
                disk.display().to_string(),
                number.to_string(),
                format!("start={start}"),
                format!("length={len}"),
            ]);
            let line = cmd.display();
            lock(&self.recorded).push(cmd);
            return self.record_line(&line);
        }
        let f = File::open(self.follow_path(disk)?)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", disk.display())))?;
        blkpg_resize(&f, number, start, len).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "{}: BLKPG resize of partition {number}: {e}",
                    disk.display()
                ),
            )
        })
    }

    fn lock_file(&self, path: &Path, wait: bool) -> io::Result<Option<FileLock>> {
        let host = self.host_path(path)?;
        // Close-on-exec (std's default): a command we run must not inherit the lock.
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
            .open(&host)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        FileLock::take(f, wait)
    }

    fn run(&self, cmd: &Cmd) -> io::Result<CmdOutput> {
        if cmd.argv.is_empty() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty command"));
        }
        if !self.live {
            lock(&self.recorded).push(cmd.clone());
            self.record_line(&cmd.display())?;
            return Ok(CmdOutput {
                code: Some(0),
                ..CmdOutput::default()
            });
        }
        run_live(cmd, &self.root)
    }

    fn set_hostname(&self, name: &str) -> io::Result<()> {
        if self.live {
            nix::unistd::sethostname(name).map_err(io::Error::from)
        } else {
            *lock(&self.hostname) = Some(name.to_string());
            self.record_line(&format!("sethostname {name}"))
        }
    }

    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    fn sleep(&self, d: Duration) {
        std::thread::sleep(d)
    }

    fn random(&self, buf: &mut [u8]) -> io::Result<()> {
        getrandom::fill(buf).map_err(|e| io::Error::other(e.to_string()))
    }
}

/// A disk held under `flock` for as long as the handle lives.
struct LockedDisk(nix::fcntl::Flock<File>);

impl Read for LockedDisk {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (*self.0).read(buf)
    }
}

impl Write for LockedDisk {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (*self.0).write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        (*self.0).flush()
    }
}

impl std::io::Seek for LockedDisk {
    fn seek(&mut self, to: std::io::SeekFrom) -> io::Result<u64> {
        (*self.0).seek(to)
    }
}

impl DiskIo for LockedDisk {
    fn sync(&mut self) -> io::Result<()> {
        self.0.sync_all()
    }
}

/// `ioctl(BLKPG, BLKPG_RESIZE_PARTITION)` on an open disk: the kernel's view of a mounted
/// partition's size, changed without re-reading the whole table (which it refuses while
/// a partition is in use).
#[cfg(target_os = "linux")]
fn blkpg_resize(disk: &File, number: u32, start: u64, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // <linux/blkpg.h>
    #[repr(C)]
    struct BlkpgPartition {
        start: i64,
        length: i64,
        pno: nix::libc::c_int,
        devname: [u8; 64],
        volname: [u8; 64],
    }
    #[repr(C)]
    struct BlkpgIoctlArg {
        op: nix::libc::c_int,
        flags: nix::libc::c_int,
        datalen: nix::libc::c_int,
        data: *mut nix::libc::c_void,
    }
    const BLKPG: nix::libc::c_ulong = 0x1269; // _IO(0x12, 105)
    const BLKPG_RESIZE_PARTITION: nix::libc::c_int = 3;
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidInput, what.to_string());
    let mut part = BlkpgPartition {
        start: i64::try_from(start).map_err(|_| bad("start out of range"))?,
        length: i64::try_from(len).map_err(|_| bad("length out of range"))?,
        pno: nix::libc::c_int::try_from(number)
            .map_err(|_| bad("partition number out of range"))?,
        devname: [0; 64],
        volname: [0; 64],
    };
    let mut arg = BlkpgIoctlArg {
        op: BLKPG_RESIZE_PARTITION,
        flags: 0,
        datalen: std::mem::size_of::<BlkpgPartition>() as nix::libc::c_int,
        data: (&mut part as *mut BlkpgPartition).cast(),
    };
    // SAFETY: `disk` is an open file for the whole call; `arg` and the `part` it points to
    // are live, correctly laid out (#[repr(C)] as in <linux/blkpg.h>) and only read by
    // the kernel for BLKPG_RESIZE_PARTITION.
    let rc =
        unsafe { nix::libc::ioctl(disk.as_raw_fd(), BLKPG as _, &mut arg as *mut BlkpgIoctlArg) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Other systems change partitions with their own tools (FreeBSD: `gpart`).
#[cfg(not(target_os = "linux"))]
fn blkpg_resize(_disk: &File, _number: u32, _start: u64, _len: u64) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "BLKPG is Linux-only",
    ))
}

/// Spawn a command in its own process group with a minimal environment, feed stdin,
/// capture output (bounded), and enforce the timeout by killing the whole group.
fn run_live(cmd: &Cmd, root: &Path) -> io::Result<CmdOutput> {
    use std::os::unix::process::CommandExt;

    let mut c = Command::new(&cmd.argv[0]);
    c.args(&cmd.argv[1..])
        .env_clear()
        .env("PATH", BASE_PATH)
        .env("HOME", "/root")
        .env("LANG", "C.UTF-8")
        .envs(cmd.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(if cmd.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if let Some(cwd) = &cmd.cwd {
        c.current_dir(super::system::resolve_under(root, cwd)?);
    }
    let mut child = c.spawn()?;
    let stdin_thread = match (child.stdin.take(), cmd.stdin.clone()) {
        (Some(mut pipe), Some(data)) => Some(std::thread::spawn(move || {
            // A child that exits without reading its stdin gives EPIPE: not our error.
            let _ = pipe.write_all(&data);
        })),
        _ => None,
    };
    let out_capture = child.stdout.take().map(Capture::start);
    let err_capture = child.stderr.take().map(Capture::start);

    let start = Instant::now();
    let mut timed_out = false;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if let Some(limit) = cmd.timeout {
            if start.elapsed() >= limit {
                timed_out = true;
                let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
                let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
                break child.wait()?;
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    if timed_out {
        // Grandchildren holding the pipes open are in the same group and were killed too.
    }
    let until = Instant::now() + DRAIN_AFTER_EXIT;
    let stdout = out_capture.map(|c| c.finish(until)).unwrap_or_default();
    let stderr = err_capture.map(|c| c.finish(until)).unwrap_or_default();
    // Not joined: the child has exited, and a background process it left holding stdin
    // could block a write larger than the pipe buffer for ever.
    drop(stdin_thread);
    Ok(CmdOutput {
        code: if timed_out { None } else { status.code() },
        timed_out,
        stdout,
        stderr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sys() -> (tempfile::TempDir, HostSystem) {
        let d = tempfile::tempdir().unwrap();
        let s = HostSystem::new(d.path());
        (d, s)
    }

    #[test]
    fn non_root_prefix_records_instead_of_acting() {
        let (_d, s) = sys();
        assert!(!s.is_live());
        s.set_hostname("clone-1").unwrap();
        let out = s.run(&Cmd::new(["useradd", "bob"])).unwrap();
        assert!(out.success());
        assert_eq!(s.recorded_hostname().as_deref(), Some("clone-1"));
        assert_eq!(s.recorded_commands()[0].argv, ["useradd", "bob"]);
    }

    #[test]
    fn command_log_gets_lines_and_withholds_secrets() {
        let (_d, s) = sys();
        s.set_command_log("/var/lib/ci-agent/commands.log".into());
        s.run(&Cmd::new(["chpasswd"]).stdin("bob:pw").secret())
            .unwrap();
        s.set_hostname("h").unwrap();
        let log = s
            .read_file(Path::new("/var/lib/ci-agent/commands.log"), 1 << 20)
            .unwrap();
        let log = String::from_utf8(log).unwrap();
        assert_eq!(log, "chpasswd (arguments withheld)\nsethostname h\n");
    }

    #[test]
    fn atomic_write_sets_mode_and_records_owner() {
        let (_d, s) = sys();
        s.create_dir_all(Path::new("/home/bob/.ssh"), 0o700, Some((1000, 1000)))
            .unwrap();
        let p = Path::new("/home/bob/.ssh/authorized_keys");
        s.write_file(p, b"k1\n", WriteOpts::mode(0o600).owner(1000, 1000))
            .unwrap();
        let st = s.lstat(p).unwrap().unwrap();
        assert_eq!((st.mode, st.uid, st.gid), (0o600, 1000, 1000));
        let dir = s.lstat(Path::new("/home/bob/.ssh")).unwrap().unwrap();
        assert_eq!((dir.mode, dir.uid), (0o700, 1000));
        s.write_file(p, b"k2\n", WriteOpts::mode(0o600).append())
            .unwrap();
        assert_eq!(s.read_file(p, 100).unwrap(), b"k1\nk2\n");
        // no temp files left behind
        assert_eq!(
            s.read_dir(Path::new("/home/bob/.ssh")).unwrap(),
            ["authorized_keys"]
        );
    }

    #[test]
    fn a_landed_write_removes_temps_that_killed_writes_left() {
        let (d, s) = sys();
        for strict in [false, true] {
            let dir = d.path().join("etc/app");
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            let debris = [".conf.ci-agent.4242.1f2e", ".conf.ci-agent.1.0"];
            let kept = [
                ".conf.ci-agent.x.1f",     // not a pid
                ".conf.ci-agent.12.",      // no nonce
                ".conf.ci-agent.12.zz",    // not hex
                ".other.ci-agent.4242.1f", // another target's
                ".conf.ci-agent",          // no pid at all
                "conf.ci-agent.1.1",       // not hidden
            ];
            for n in debris.iter().chain(&kept) {
                fs::write(dir.join(n), "old").unwrap();
            }
            let opts = WriteOpts::mode(0o644);
            let opts = if strict { opts.strict() } else { opts };
            s.write_file(Path::new("/etc/app/conf"), b"new\n", opts)
                .unwrap();
            let mut want: Vec<String> = kept.iter().map(|n| n.to_string()).collect();
            want.push("conf".into());
            want.sort();
            assert_eq!(
                s.read_dir(Path::new("/etc/app")).unwrap(),
                want,
                "strict {strict}"
            );
            // An append creates no temp file and removes nothing.
            fs::write(dir.join(debris[0]), "old").unwrap();
            s.write_file(Path::new("/etc/app/conf"), b"more\n", opts.append())
                .unwrap();
            assert!(dir.join(debris[0]).exists());
        }
    }

    #[test]
    fn strict_writes_and_chmod_never_follow_symlinks() {
        let (d, s) = sys();
        fs::create_dir_all(d.path().join("etc")).unwrap();
        fs::write(d.path().join("etc/shadow"), "s").unwrap();
        fs::set_permissions(
            d.path().join("etc/shadow"),
            fs::Permissions::from_mode(0o640),
        )
        .unwrap();
        fs::create_dir_all(d.path().join("home/bob/.ssh")).unwrap();
        std::os::unix::fs::symlink("../../../etc/shadow", d.path().join("home/bob/.ssh/k"))
            .unwrap();
        // chmod of a symlink: refused, the target keeps its mode.
        let e = s
            .set_mode(Path::new("/home/bob/.ssh/k"), 0o777)
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied, "{e}");
        let m = fs::metadata(d.path().join("etc/shadow")).unwrap().mode() & 0o777;
        assert_eq!(m, 0o640);
        // A strict write onto it, or below a plain file: refused, nothing changed.
        let e = s
            .write_file(
                Path::new("/home/bob/.ssh/k"),
                b"x",
                WriteOpts::mode(0o600).strict(),
            )
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied, "{e}");
        let e = s
            .write_file(
                Path::new("/etc/shadow/x"),
                b"x",
                WriteOpts::mode(0o600).strict(),
            )
            .unwrap_err();
        assert!(e.to_string().contains("not a directory"), "{e}");
        assert_eq!(fs::read(d.path().join("etc/shadow")).unwrap(), b"s");
        // A strict write and append through real directories work, with modes.
        let p = Path::new("/home/bob/.ssh/authorized_keys");
        s.write_file(p, b"a\n", WriteOpts::mode(0o600).strict().owner(5, 5))
            .unwrap();
        s.write_file(p, b"b\n", WriteOpts::mode(0o600).strict().append())
            .unwrap();
        assert_eq!(s.read_file(p, 10).unwrap(), b"a\nb\n");
        let st = s.lstat(p).unwrap().unwrap();
        assert_eq!((st.mode, st.uid), (0o600, 5));
        assert_eq!(
            s.read_dir(Path::new("/home/bob/.ssh")).unwrap(),
            ["authorized_keys", "k"]
        );
    }

    #[test]
    fn recorded_owner_comes_before_the_rename() {
        // Like the live lchown of the temp file: when the owner cannot be recorded, the
        // target is not replaced (so a crash never leaves new content without its owner).
        let (d, s) = sys();
        fs::create_dir_all(d.path().join("var/lib/ci-agent/commands.log")).unwrap();
        s.set_command_log("/var/lib/ci-agent/commands.log".into());
        s.write_file(Path::new("/f"), b"old", WriteOpts::mode(0o600))
            .unwrap();
        let e = s.write_file(Path::new("/f"), b"new", WriteOpts::mode(0o600).owner(7, 7));
        assert!(e.is_err());
        assert_eq!(fs::read(d.path().join("f")).unwrap(), b"old");
        assert_eq!(s.read_dir(Path::new("/")).unwrap(), ["f", "var"]);
    }

    #[test]
    fn refuses_symlinks() {
        let (d, s) = sys();
        fs::create_dir_all(d.path().join("etc")).unwrap();
        fs::create_dir_all(d.path().join("home/bob")).unwrap();
        std::os::unix::fs::symlink(d.path().join("etc"), d.path().join("home/bob/.ssh")).unwrap();
        std::os::unix::fs::symlink("/etc/shadow", d.path().join("etc/passwd")).unwrap();
        let e = s
            .write_file(Path::new("/etc/passwd"), b"x", WriteOpts::mode(0o644))
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
        let e = s
            .write_file(
                Path::new("/home/bob/.ssh/authorized_keys"),
                b"x",
                WriteOpts::mode(0o600).strict(),
            )
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
        assert!(!d.path().join("etc/authorized_keys").exists());
    }

    #[test]
    fn symlinks_in_a_prefixed_root_stay_inside_it() {
        let (d, s) = sys();
        let outside = tempfile::tempdir().unwrap();
        let r = d.path();
        fs::create_dir_all(r.join("var")).unwrap();
        fs::create_dir_all(r.join("srv/lib")).unwrap();
        // An image's absolute link, one that points at a real host directory, and a
        // relative one that climbs above the root.
        std::os::unix::fs::symlink("/srv/lib", r.join("var/lib")).unwrap();
        std::os::unix::fs::symlink(outside.path(), r.join("escape")).unwrap();
        std::os::unix::fs::symlink("../../../../..", r.join("var/up")).unwrap();

        s.create_dir_all(Path::new("/var/lib/ci-agent"), 0o700, None)
            .unwrap();
        s.write_file(
            Path::new("/var/lib/ci-agent/status.json"),
            b"{}",
            WriteOpts::mode(0o600),
        )
        .unwrap();
        assert!(r.join("srv/lib/ci-agent/status.json").is_file());

        // Dangling inside the root: refused, and nothing appears outside.
        assert!(s
            .create_dir_all(Path::new("/escape/x"), 0o755, None)
            .is_err());
        assert!(fs::read_dir(outside.path()).unwrap().next().is_none());
        let inner = r.join(outside.path().strip_prefix("/").unwrap());
        fs::create_dir_all(&inner).unwrap();
        s.create_dir_all(Path::new("/escape/x"), 0o755, None)
            .unwrap();
        assert!(fs::read_dir(outside.path()).unwrap().next().is_none());
        assert!(
            inner.join("x").is_dir(),
            "absolute link resolved inside the root"
        );
        fs::write(outside.path().join("secret"), b"host").unwrap();
        assert!(s.read_file(Path::new("/escape/secret"), 100).is_err());

        s.write_file(Path::new("/var/up/etc-file"), b"x", WriteOpts::mode(0o644))
            .unwrap();
        assert!(r.join("etc-file").is_file(), ".. stops at the root");
        // The final component is still never followed by a write.
        std::os::unix::fs::symlink("/srv/lib", r.join("link")).unwrap();
        assert!(s
            .write_file(Path::new("/link"), b"x", WriteOpts::mode(0o644))
            .is_err());
    }

    #[test]
    fn live_writes_keep_set_id_bits_of_owned_files() {
        // Live mode chowns for real; only root may chown to another user.
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root to chown");
            return;
        }
        let (_d, mut s) = sys();
        s.live = true;
        for (name, opts) in [
            ("/atomic", WriteOpts::mode(0o4755).owner(1000, 1000)),
            (
                "/appended",
                WriteOpts::mode(0o2755).owner(1000, 1000).append(),
            ),
            (
                "/strict",
                WriteOpts::mode(0o4755).owner(1000, 1000).strict(),
            ),
            (
                "/strict-appended",
                WriteOpts::mode(0o2755).owner(1000, 1000).strict().append(),
            ),
        ] {
            s.write_file(Path::new(name), b"#!/bin/sh\n", opts).unwrap();
            let st = s.lstat(Path::new(name)).unwrap().unwrap();
            assert_eq!((st.mode, st.uid, st.gid), (opts.mode, 1000, 1000), "{name}");
        }
    }

    #[test]
    fn truncate_keeps_the_file_and_refuses_links_and_fifos() {
        let (d, s) = sys();
        let p = Path::new("/var/log/syslog");
        s.create_dir_all(Path::new("/var/log"), 0o755, None)
            .unwrap();
        s.write_file(p, b"old lines\n", WriteOpts::mode(0o640))
            .unwrap();
        let ino = |p: &Path| {
            std::os::unix::fs::MetadataExt::ino(
                &fs::metadata(d.path().join(p.strip_prefix("/").unwrap())).unwrap(),
            )
        };
        let before = ino(p);
        s.truncate(p).unwrap();
        assert_eq!(s.read_file(p, 100).unwrap(), b"");
        assert_eq!(ino(p), before, "same file, not a replacement");
        assert_eq!(s.lstat(p).unwrap().unwrap().mode, 0o640);
        std::os::unix::fs::symlink("/etc/passwd", d.path().join("var/log/link")).unwrap();
        assert!(s.truncate(Path::new("/var/log/link")).is_err());
        nix::unistd::mkfifo(
            &d.path().join("var/log/fifo"),
            nix::sys::stat::Mode::S_IRWXU,
        )
        .unwrap();
        assert!(s.truncate(Path::new("/var/log/fifo")).is_err());
        assert!(s.truncate(Path::new("/var/log/missing")).is_err());
        assert!(!s.exists(Path::new("/var/log/missing")));
    }

    #[test]
    fn read_file_enforces_limit() {
        let (_d, s) = sys();
        s.write_file(Path::new("/big"), &[0u8; 100], WriteOpts::mode(0o644))
            .unwrap();
        assert!(s.read_file(Path::new("/big"), 99).is_err());
        assert_eq!(s.read_file(Path::new("/big"), 100).unwrap().len(), 100);
    }

    #[test]
    fn live_run_captures_output_and_times_out() {
        let out = run_live(
            &Cmd::new(["sh", "-c", "read x; echo out:$x; echo err >&2; exit 3"]).stdin("hi\n"),
            Path::new("/"),
        )
        .unwrap();
        assert_eq!(out.code, Some(3));
        assert_eq!(out.stdout, b"out:hi\n");
        assert_eq!(out.stderr, b"err\n");
        let t = Instant::now();
        let out = run_live(
            &Cmd::new(["sh", "-c", "sleep 30 & sleep 30"]).timeout(Duration::from_millis(200)),
            Path::new("/"),
        )
        .unwrap();
        assert!(out.timed_out && out.code.is_none());
        assert!(t.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn a_background_process_left_holding_the_pipes_does_not_hang_the_run() {
        // runcmd: `mydaemon &` keeps stdout/stderr open after the shell has exited.
        let t = Instant::now();
        let out = run_live(
            &Cmd::new(["sh", "-c", "echo before; sleep 30 & exit 4"]),
            Path::new("/"),
        )
        .unwrap();
        assert_eq!(out.code, Some(4));
        assert_eq!(out.stdout, b"before\n");
        assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());
    }
}
