//! `--dry-run`: a `System` that reads the real files but changes nothing.
//!
//! Reads (files, directories, devices, the clock) pass through to the wrapped system, so
//! seed discovery and the run's decisions are the real ones. Every effect — writes, mkdir,
//! removals, ownership, modes, commands, sethostname, sleeps — becomes one line of the
//! plan (printed on stdout when asked, and kept for tests) and is reported as a success.
//! File contents and command stdin are never shown, and secret argv is withheld, so a plan
//! can be pasted into a bug report. Because the modules only act through `System`, they
//! need no plan code of their own.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use super::system::{Cmd, CmdOutput, DiskIo, FileInfo, FileLock, ReadSeek, System, WriteOpts};

pub struct DryRunSystem<'a> {
    inner: &'a dyn System,
    echo: bool,
    plan: Arc<Mutex<Vec<String>>>,
}

impl<'a> DryRunSystem<'a> {
    /// Wrap `inner`; with `echo`, each planned effect is printed on stdout as it happens.
    pub fn new(inner: &'a dyn System, echo: bool) -> Self {
        DryRunSystem {
            inner,
            echo,
            plan: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// The effects planned so far, in order.
    pub fn plan(&self) -> Vec<String> {
        self.plan.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Add a line to the plan (also used by the agent for its own notes).
    pub fn note(&self, line: String) {
        note(&self.plan, self.echo, line);
    }
}

fn note(plan: &Mutex<Vec<String>>, echo: bool, line: String) {
    if echo {
        let mut out = io::stdout().lock();
        let _ = writeln!(out, "{line}");
    }
    plan.lock().unwrap_or_else(|e| e.into_inner()).push(line);
}

impl System for DryRunSystem<'_> {
    fn root(&self) -> &Path {
        self.inner.root()
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
        self.host_path(path)?;
        let mut line = format!(
            "{} {} ({:04o}",
            if opts.append { "append" } else { "write" },
            path.display(),
            opts.mode
        );
        if let Some((u, g)) = opts.owner {
            line.push_str(&format!(", owner {u}:{g}"));
        }
        line.push_str(&format!(", {} bytes)", data.len()));
        self.note(line);
        Ok(())
    }
    fn create_dir_all(&self, path: &Path, mode: u32, owner: Option<(u32, u32)>) -> io::Result<()> {
        self.host_path(path)?;
        if matches!(self.inner.lstat(path), Ok(Some(_))) {
            return Ok(());
        }
        let mut line = format!("mkdir -p {} ({mode:04o}", path.display());
        if let Some((u, g)) = owner {
            line.push_str(&format!(", owner {u}:{g}"));
        }
        line.push(')');
        self.note(line);
        Ok(())
    }
    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()> {
        self.host_path(link)?;
        self.note(format!(
            "symlink {} -> {}",
            link.display(),
            target.display()
        ));
        Ok(())
    }
    fn truncate(&self, path: &Path) -> io::Result<()> {
        self.host_path(path)?;
        self.note(format!("truncate {}", path.display()));
        Ok(())
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.host_path(path)?;
        if matches!(self.inner.lstat(path), Ok(Some(_))) {
            self.note(format!("remove {}", path.display()));
        }
        Ok(())
    }
    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        self.host_path(path)?;
        if matches!(self.inner.lstat(path), Ok(Some(_))) {
            self.note(format!("remove -r {}", path.display()));
        }
        Ok(())
    }
    fn set_owner(&self, path: &Path, uid: u32, gid: u32) -> io::Result<()> {
        self.host_path(path)?;
        self.note(format!("chown {uid}:{gid} {}", path.display()));
        Ok(())
    }
    fn set_mode(&self, path: &Path, mode: u32) -> io::Result<()> {
        self.host_path(path)?;
        self.note(format!("chmod {mode:04o} {}", path.display()));
        Ok(())
    }
    fn open_device(&self, path: &Path) -> io::Result<Box<dyn ReadSeek>> {
        self.inner.open_device(path)
    }
    fn open_disk(&self, path: &Path) -> io::Result<Box<dyn DiskIo>> {
        // Reads see the real disk; writes become lines of the plan.
        Ok(Box::new(PlannedDisk {
            inner: self.inner.open_device(path)?,
            path: path.to_path_buf(),
            pos: 0,
            plan: self.plan.clone(),
            echo: self.echo,
        }))
    }
    fn resize_partition(&self, disk: &Path, number: u32, start: u64, len: u64) -> io::Result<()> {
        self.note(format!(
            "resize partition {number} of {} in the kernel (start {start}, {len} bytes)",
            disk.display()
        ));
        Ok(())
    }
    fn lock_file(&self, path: &Path, _wait: bool) -> io::Result<Option<FileLock>> {
        // Taking it would create the file; a dry run changes nothing, so it needs no lock.
        self.host_path(path)?;
        Ok(Some(FileLock::none()))
    }
    fn run(&self, cmd: &Cmd) -> io::Result<CmdOutput> {
        if cmd.argv.is_empty() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty command"));
        }
        self.note(format!("run {}", cmd.display()));
        Ok(CmdOutput {
            code: Some(0),
            ..CmdOutput::default()
        })
    }
    fn set_hostname(&self, name: &str) -> io::Result<()> {
        self.note(format!("sethostname {name}"));
        Ok(())
    }
    fn now(&self) -> SystemTime {
        self.inner.now()
    }
    fn sleep(&self, d: Duration) {
        self.note(format!("sleep {}s", d.as_secs()));
    }
    fn random(&self, buf: &mut [u8]) -> io::Result<()> {
        self.inner.random(buf)
    }
}

/// A disk in a dry run: reads pass through, each write is planned and skipped.
struct PlannedDisk {
    inner: Box<dyn ReadSeek>,
    path: PathBuf,
    pos: u64,
    plan: Arc<Mutex<Vec<String>>>,
    echo: bool,
}

impl io::Read for PlannedDisk {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.seek(io::SeekFrom::Start(self.pos))?;
        let n = self.inner.read(buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl io::Seek for PlannedDisk {
    fn seek(&mut self, to: io::SeekFrom) -> io::Result<u64> {
        self.pos = self.inner.seek(to)?;
        Ok(self.pos)
    }
}

impl Write for PlannedDisk {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let line = format!(
            "write {} bytes at byte {} of {}",
            buf.len(),
            self.pos,
            self.path.display()
        );
        note(&self.plan, self.echo, line);
        self.pos += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl DiskIo for PlannedDisk {
    fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::fake::FakeSystem;

    #[test]
    fn effects_are_planned_not_done() {
        let d = tempfile::tempdir().unwrap();
        let fake = FakeSystem::new(d.path());
        fake.put("/etc/hostname", "old\n");
        let sys = DryRunSystem::new(&fake, false);
        assert_eq!(
            sys.read_file(Path::new("/etc/hostname"), 100).unwrap(),
            b"old\n"
        );
        sys.write_file(Path::new("/etc/hostname"), b"new\n", WriteOpts::mode(0o644))
            .unwrap();
        sys.create_dir_all(Path::new("/etc"), 0o755, None).unwrap();
        sys.create_dir_all(Path::new("/home/bob/.ssh"), 0o700, Some((1000, 1000)))
            .unwrap();
        sys.run(&Cmd::new(["chpasswd"]).stdin("bob:hunter2").secret())
            .unwrap();
        sys.run(&Cmd::new(["useradd", "-m", "bob"])).unwrap();
        sys.set_hostname("clone").unwrap();
        sys.remove_file(Path::new("/firstboot")).unwrap();
        sys.remove_file(Path::new("/etc/hostname")).unwrap();
        sys.sleep(Duration::from_secs(60));
        assert_eq!(
            sys.plan(),
            [
                "write /etc/hostname (0644, 4 bytes)",
                "mkdir -p /home/bob/.ssh (0700, owner 1000:1000)",
                "run chpasswd (arguments withheld)",
                "run useradd -m bob",
                "sethostname clone",
                "remove /etc/hostname",
                "sleep 60s",
            ]
        );
        assert_eq!(fake.read_string("/etc/hostname").unwrap(), "old\n");
        assert!(fake.commands().is_empty() && fake.hostname().is_none() && fake.slept().is_empty());
        assert!(!d.path().join("home").exists());
        assert!(sys
            .write_file(Path::new("/../x"), b"", WriteOpts::mode(0o644))
            .is_err());
    }
}
