//! How much of a seed device the agent reads to find and read a seed (issue 8, item 3).
//!
//! Runs the agent's real discovery (`ci_agent::datasource::find_seed`) with `--seed IMAGE`
//! on images of the standard seed, through a [`System`] that delegates everything to a
//! recording `HostSystem` but wraps every device it opens in a counting reader. Prints the
//! read calls, bytes, seeks and distinct 2048-byte sectors touched, per image kind. The
//! counts are exact and repeatable (no timing); under `cargo test` the same run checks that
//! the seed was found and complete. `strace` on the real binary (scripts/bench.sh) gives
//! the syscall view of the same thing.

mod common;

use std::collections::BTreeSet;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use ci_agent::platform::config::Config;
use ci_agent::platform::host::HostSystem;
use ci_agent::platform::system::{
    Cmd, CmdOutput, DiskIo, FileInfo, FileLock, ReadSeek, System, WriteOpts,
};
use ci_agent::platform::OsKind;

/// What the counting readers saw, summed over every device opened.
#[derive(Debug, Default, Clone)]
struct Counts {
    opens: u64,
    read_calls: u64,
    bytes: u64,
    seeks: u64,
    /// Distinct 2048-byte sectors touched by reads (over every open).
    sectors: BTreeSet<u64>,
    /// Sectors touched, summed over the reads (a sector read twice counts twice).
    sector_reads: u64,
}

struct CountingReader {
    inner: Box<dyn ReadSeek>,
    pos: u64,
    counts: Arc<Mutex<Counts>>,
}

impl Read for CountingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        c.read_calls += 1;
        c.bytes += n as u64;
        if n > 0 {
            let (first, last) = (self.pos / 2048, (self.pos + n as u64 - 1) / 2048);
            c.sector_reads += last - first + 1;
            for s in first..=last {
                c.sectors.insert(s);
            }
        }
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for CountingReader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.pos = self.inner.seek(to)?;
        self.counts.lock().unwrap_or_else(|e| e.into_inner()).seeks += 1;
        Ok(self.pos)
    }
}

/// Delegates to `inner`; wraps opened devices.
struct CountingSystem {
    inner: HostSystem,
    counts: Arc<Mutex<Counts>>,
}

impl System for CountingSystem {
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
        self.inner.write_file(path, data, opts)
    }
    fn create_dir_all(&self, path: &Path, mode: u32, owner: Option<(u32, u32)>) -> io::Result<()> {
        self.inner.create_dir_all(path, mode, owner)
    }
    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()> {
        self.inner.symlink(target, link)
    }
    fn truncate(&self, path: &Path) -> io::Result<()> {
        self.inner.truncate(path)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.inner.remove_file(path)
    }
    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        self.inner.remove_dir_all(path)
    }
    fn set_owner(&self, path: &Path, uid: u32, gid: u32) -> io::Result<()> {
        self.inner.set_owner(path, uid, gid)
    }
    fn set_mode(&self, path: &Path, mode: u32) -> io::Result<()> {
        self.inner.set_mode(path, mode)
    }
    fn open_device(&self, path: &Path) -> io::Result<Box<dyn ReadSeek>> {
        let inner = self.inner.open_device(path)?;
        self.counts.lock().unwrap_or_else(|e| e.into_inner()).opens += 1;
        Ok(Box::new(CountingReader {
            inner,
            pos: 0,
            counts: self.counts.clone(),
        }))
    }
    fn open_disk(&self, path: &Path) -> io::Result<Box<dyn DiskIo>> {
        self.inner.open_disk(path)
    }
    fn resize_partition(&self, disk: &Path, number: u32, start: u64, len: u64) -> io::Result<()> {
        self.inner.resize_partition(disk, number, start, len)
    }
    fn lock_file(&self, path: &Path, wait: bool) -> io::Result<Option<FileLock>> {
        self.inner.lock_file(path, wait)
    }
    fn run(&self, cmd: &Cmd) -> io::Result<CmdOutput> {
        self.inner.run(cmd)
    }
    fn set_hostname(&self, name: &str) -> io::Result<()> {
        self.inner.set_hostname(name)
    }
    fn now(&self) -> SystemTime {
        self.inner.now()
    }
    fn sleep(&self, d: Duration) {
        self.inner.sleep(d)
    }
    fn random(&self, buf: &mut [u8]) -> io::Result<()> {
        self.inner.random(buf)
    }
    fn host_path(&self, path: &Path) -> io::Result<PathBuf> {
        self.inner.host_path(path)
    }
    fn exists(&self, path: &Path) -> bool {
        self.inner.exists(path)
    }
}

fn main() {
    let mut h = common::Harness::from_args();
    // The images live inside the System's root: `--seed` paths outside it are read through
    // a separate host System (datasource::load_seed_arg), which would bypass the counters.
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().to_path_buf();
    let mut images: Vec<(String, PathBuf)> = Vec::new();
    for fs in ["iso9660", "vfat"] {
        match common::cloud_localds(tmp.path(), fs) {
            Some(p) => images.push((format!("cloud-localds -f {fs}"), p)),
            None => println!("{fs}: cloud-localds not installed, skipped"),
        }
    }
    // our own writer's ISO, always available
    let ours = tmp.path().join("seed-ci.iso");
    let bytes = ci_agent::formats::iso9660::write::image_bytes(
        &common::standard_seed_files(),
        &ci_agent::formats::iso9660::write::WriteOptions::default(),
    )
    .expect("write ISO");
    std::fs::write(&ours, bytes).expect("write image");
    images.push(("ci_agent::formats::iso9660::write".into(), ours));

    let config = Config::defaults(OsKind::Linux);
    println!(
        "{:<28} {:>7} {:>6} {:>6} {:>6} {:>9} {:>12} {:>12}",
        "image (made by)", "size", "opens", "reads", "seeks", "bytes", "2K-distinct", "2K-read"
    );
    for (made_by, path) in &images {
        let sys = CountingSystem {
            inner: HostSystem::recording(&root),
            counts: Arc::new(Mutex::new(Counts::default())),
        };
        let seed = ci_agent::datasource::find_seed(&sys, &config, Some(path))
            .unwrap_or_else(|e| panic!("{made_by}: find_seed: {e:#}"))
            .unwrap_or_else(|| panic!("{made_by}: no seed found"));
        for (name, data) in common::standard_seed_files() {
            assert_eq!(
                seed.files.get(&name),
                Some(&data),
                "{made_by}: {name} missing or different"
            );
        }
        let c = sys.counts.lock().unwrap_or_else(|e| e.into_inner()).clone();
        assert!(
            c.opens > 0,
            "{made_by}: find_seed opened no device through System"
        );
        let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        println!(
            "{:<28} {:>7} {:>6} {:>6} {:>6} {:>9} {:>12} {:>12}",
            made_by,
            size,
            c.opens,
            c.read_calls,
            c.seeks,
            c.bytes,
            c.sectors.len(),
            c.sector_reads
        );
    }
    // the ISO reader's own counters (IsoImage::stats) for the same images: descriptors,
    // directories and file data only, without the agent's probing around it
    for (made_by, path) in images.iter().filter(|(m, _)| !m.contains("vfat")) {
        let f = std::fs::File::open(path).expect("open image");
        let mut img = ci_agent::formats::iso9660::IsoImage::open(f).expect("IsoImage::open");
        let files = img.read_root_files(1 << 20).expect("read_root_files");
        assert_eq!(files.len(), 2, "{made_by}: {files:?}");
        let st = img.stats();
        println!(
            "{made_by}: iso9660 reader alone (IsoImage::stats): {} read calls, {} sectors, {} bytes",
            st.read_calls, st.sector_reads, st.bytes_read
        );
    }
    // and the time of the whole discovery (open + probe + read) on the ISO, for scale
    let (made_by, path) = &images[0];
    let sys = HostSystem::recording(&root);
    h.bench(
        &format!("find_seed --seed ({made_by})"),
        || ci_agent::datasource::find_seed(&sys, &config, Some(path)),
        |r| assert!(matches!(r, Ok(Some(_))), "find_seed: {r:?}"),
    );
    h.finish();
}
