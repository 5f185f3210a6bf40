//! A recording fake `System` for tests (unit and integration).
//!
//! Files are real, under a root directory the test owns (a temp dir). Everything that would
//! act on the machine is recorded instead: commands (with their stdin, for assertions),
//! `sethostname`, ownership (kept as numbers, so tests need not run as root). Command
//! results can be scripted, time is a fake clock that `sleep` advances, random bytes are
//! deterministic, and a fault hook can fail any effect to test crash consistency.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use super::host::HostSystem;
use super::system::{Cmd, CmdOutput, DiskIo, FileInfo, FileLock, ReadSeek, System, WriteOpts};

type Responder = Box<dyn Fn(&Cmd) -> Option<CmdOutput> + Send>;
type FaultHook = Box<dyn Fn(&Effect) -> io::Result<()> + Send>;

/// An effect the fault hook is asked about before it happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Write(PathBuf),
    Mkdir(PathBuf),
    Remove(PathBuf),
    Chown(PathBuf),
    Chmod(PathBuf),
    Run(Vec<String>),
    SetHostname(String),
}

pub struct FakeSystem {
    inner: HostSystem,
    responders: Mutex<Vec<Responder>>,
    fault: Mutex<Option<FaultHook>>,
    clock: Mutex<SystemTime>,
    slept: Mutex<Vec<Duration>>,
    counter: Mutex<u64>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl FakeSystem {
    /// A fake rooted at `root` (which must exist). The clock starts at 2026-01-01T00:00:00Z.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        FakeSystem {
            inner: HostSystem::recording(root),
            responders: Mutex::new(Vec::new()),
            fault: Mutex::new(None),
            clock: Mutex::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600)),
            slept: Mutex::new(Vec::new()),
            counter: Mutex::new(0),
        }
    }

    /// Answer commands whose argv starts with `prefix` with `output` (latest rule wins).
    pub fn on_command(&self, prefix: &[&str], output: CmdOutput) {
        let prefix: Vec<String> = prefix.iter().map(|s| s.to_string()).collect();
        self.on_command_fn(move |cmd| {
            (cmd.argv.len() >= prefix.len() && cmd.argv[..prefix.len()] == prefix[..])
                .then(|| output.clone())
        });
    }

    /// Answer commands with a function; `None` falls through to older rules, then to
    /// success with empty output. The function may also act on files (e.g. a fake
    /// `ssh-keygen` that writes keys) through its own captured root.
    pub fn on_command_fn(&self, f: impl Fn(&Cmd) -> Option<CmdOutput> + Send + 'static) {
        lock(&self.responders).push(Box::new(f));
    }

    /// Called before every effect; an error fails that effect (and it does not happen).
    pub fn set_fault(&self, f: impl Fn(&Effect) -> io::Result<()> + Send + 'static) {
        *lock(&self.fault) = Some(Box::new(f));
    }

    pub fn clear_fault(&self) {
        *lock(&self.fault) = None;
    }

    /// Commands run so far, in order.
    pub fn commands(&self) -> Vec<Cmd> {
        self.inner.recorded_commands()
    }

    /// Each command as one line (`argv` joined by spaces, secrets withheld).
    pub fn command_lines(&self) -> Vec<String> {
        self.commands().iter().map(Cmd::display).collect()
    }

    pub fn hostname(&self) -> Option<String> {
        self.inner.recorded_hostname()
    }

    /// Owner recorded for a guest path by `set_owner`, `write_file` or `create_dir_all`.
    pub fn owner(&self, path: impl AsRef<Path>) -> Option<(u32, u32)> {
        self.inner.recorded_owner(path.as_ref())
    }

    /// Durations passed to `sleep`.
    pub fn slept(&self) -> Vec<Duration> {
        lock(&self.slept).clone()
    }

    /// Read a guest file as a string (test convenience; panics are fine in tests).
    pub fn read_string(&self, path: impl AsRef<Path>) -> Option<String> {
        self.inner
            .read_file(path.as_ref(), 64 << 20)
            .ok()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    }

    /// Create a guest file with parents (test setup; bypasses the fault hook).
    pub fn put(&self, path: impl AsRef<Path>, data: impl AsRef<[u8]>) {
        let path = path.as_ref();
        if let Some(parent) = path.parent() {
            self.inner
                .create_dir_all(parent, 0o755, None)
                .expect("fake setup: mkdir");
        }
        self.inner
            .write_file(path, data.as_ref(), WriteOpts::mode(0o644))
            .expect("fake setup: write");
    }

    fn check(&self, e: Effect) -> io::Result<()> {
        match &*lock(&self.fault) {
            Some(f) => f(&e),
            None => Ok(()),
        }
    }
}

impl System for FakeSystem {
    fn root(&self) -> &Path {
        self.inner.root()
    }
    fn host_path(&self, path: &Path) -> io::Result<PathBuf> {
        self.inner.host_path(path)
    }
    fn read_file(&self, path: &Path, limit: u64) -> io::Result<Vec<u8>> {
        self.inner.read_file(path, limit)
    }
    fn lstat(&self, path: &Path) -> io::Result<Option<FileInfo>> {
        self.inner.lstat(path)
    }
    fn read_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        self.inner.read_dir(path)
    }
    fn read_link(&self, path: &Path) -> io::Result<PathBuf> {
        self.inner.read_link(path)
    }
    fn write_file(&self, path: &Path, data: &[u8], opts: WriteOpts) -> io::Result<()> {
        self.check(Effect::Write(path.into()))?;
        self.inner.write_file(path, data, opts)
    }
    fn create_dir_all(&self, path: &Path, mode: u32, owner: Option<(u32, u32)>) -> io::Result<()> {
        if !self.inner.exists(path) {
            self.check(Effect::Mkdir(path.into()))?;
        }
        self.inner.create_dir_all(path, mode, owner)
    }
    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()> {
        self.check(Effect::Write(link.into()))?;
        self.inner.symlink(target, link)
    }
    fn truncate(&self, path: &Path) -> io::Result<()> {
        self.check(Effect::Write(path.into()))?;
        self.inner.truncate(path)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.check(Effect::Remove(path.into()))?;
        self.inner.remove_file(path)
    }
    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        self.check(Effect::Remove(path.into()))?;
        self.inner.remove_dir_all(path)
    }
    fn set_owner(&self, path: &Path, uid: u32, gid: u32) -> io::Result<()> {
        self.check(Effect::Chown(path.into()))?;
        self.inner.set_owner(path, uid, gid)
    }
    fn set_mode(&self, path: &Path, mode: u32) -> io::Result<()> {
        self.check(Effect::Chmod(path.into()))?;
        self.inner.set_mode(path, mode)
    }
    fn open_device(&self, path: &Path) -> io::Result<Box<dyn ReadSeek>> {
        self.inner.open_device(path)
    }
    fn open_disk(&self, path: &Path) -> io::Result<Box<dyn DiskIo>> {
        // A real image file under the test's root: tests read back what was written.
        self.check(Effect::Write(path.into()))?;
        self.inner.open_disk(path)
    }
    fn resize_partition(&self, disk: &Path, number: u32, start: u64, len: u64) -> io::Result<()> {
        self.check(Effect::Run(vec![
            "blkpg-resize-partition".into(),
            disk.display().to_string(),
        ]))?;
        self.inner.resize_partition(disk, number, start, len)
    }
    fn lock_file(&self, path: &Path, wait: bool) -> io::Result<Option<FileLock>> {
        // A real flock on a file under the test's root: it excludes other opens of it,
        // in this process too, so tests can hold it.
        self.inner.lock_file(path, wait)
    }
    fn run(&self, cmd: &Cmd) -> io::Result<CmdOutput> {
        self.check(Effect::Run(cmd.argv.clone()))?;
        // Record first, like the real recording system.
        self.inner.run(cmd)?;
        let responders = lock(&self.responders);
        for r in responders.iter().rev() {
            if let Some(out) = r(cmd) {
                return Ok(out);
            }
        }
        Ok(CmdOutput {
            code: Some(0),
            ..CmdOutput::default()
        })
    }
    fn set_hostname(&self, name: &str) -> io::Result<()> {
        self.check(Effect::SetHostname(name.into()))?;
        self.inner.set_hostname(name)
    }
    fn now(&self) -> SystemTime {
        *lock(&self.clock)
    }
    fn sleep(&self, d: Duration) {
        lock(&self.slept).push(d);
        *lock(&self.clock) += d;
    }
    fn random(&self, buf: &mut [u8]) -> io::Result<()> {
        let mut c = lock(&self.counter);
        for b in buf.iter_mut() {
            *c = c
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            *b = (*c >> 56) as u8;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripted_commands_faults_and_clock() {
        let d = tempfile::tempdir().unwrap();
        let f = FakeSystem::new(d.path());
        f.on_command(
            &["getent"],
            CmdOutput {
                code: Some(2),
                ..CmdOutput::default()
            },
        );
        assert_eq!(f.run(&Cmd::new(["getent", "x"])).unwrap().code, Some(2));
        assert!(f.run(&Cmd::new(["true"])).unwrap().success());
        assert_eq!(f.command_lines(), ["getent x", "true"]);

        f.set_fault(|e| match e {
            Effect::Write(p) if p.ends_with("boom") => Err(io::Error::other("injected")),
            _ => Ok(()),
        });
        assert!(f
            .write_file(Path::new("/boom"), b"x", WriteOpts::mode(0o644))
            .is_err());
        assert!(!f.exists(Path::new("/boom")));

        let t0 = f.now();
        f.sleep(Duration::from_secs(60));
        assert_eq!(f.now().duration_since(t0).unwrap(), Duration::from_secs(60));
        assert_eq!(f.slept(), [Duration::from_secs(60)]);
    }
}
