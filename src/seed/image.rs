//! From a set of seed files to image bytes on disk.
//!
//! The file system is written in memory by our own codecs ([`crate::formats::iso9660`] with Rock
//! Ridge and Joliet, like `genisoimage -volid cidata -joliet -rock`; or [`crate::formats::fat`]), so a
//! seed costs no process spawn. The bytes then reach the disk atomically: a temporary file
//! in the target directory, one write, fsync, rename, fsync of the directory — an error
//! never leaves a half-written image under the final name. Disk formats other than `raw`
//! (qcow2, vmdk, …) are converted with `qemu-img convert`, as cloud-localds does.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{bail, Context, Result};

use crate::formats::fat as fatwrite;
use crate::formats::iso9660::write as isowrite;

/// Volume label of every seed (cloud-init and nuageinit look for it).
pub const LABEL: &str = "cidata";

/// The seed's file system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filesystem {
    /// ISO9660 with Rock Ridge and Joliet (cloud-localds's default).
    Iso,
    /// FAT (cloud-localds `-f vfat`).
    Vfat,
}

impl Filesystem {
    /// Parse a `-f` value: `iso`, `iso9660` or `vfat` (cloud-localds's spellings).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "iso" | "iso9660" => Some(Self::Iso),
            "vfat" => Some(Self::Vfat),
            _ => None,
        }
    }

    /// File name extension `ci-seed batch` gives this kind of image.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Iso => "iso",
            Self::Vfat => "img",
        }
    }
}

/// The `-d` disk format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskFormat {
    /// The file system image itself.
    Raw,
    /// Anything else: handed to `qemu-img convert -O <format>`.
    Qemu(String),
}

impl DiskFormat {
    /// Parse a `-d` value. cloud-localds's `tar`, `tar-seed-local` and `tar-seed-net` are
    /// not images at all and are refused with a message saying so.
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        match s {
            "raw" => Ok(Self::Raw),
            s if s.starts_with("tar") => Err(format!(
                "--disk-format {s}: tar outputs are not supported by ci-seed (use raw, or a qemu-img format such as qcow2)"
            )),
            "" => Err("--disk-format: empty value".into()),
            s if s
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
            {
                Ok(Self::Qemu(s.to_string()))
            }
            s => Err(format!("--disk-format {s:?}: not a disk format name")),
        }
    }
}

/// The timestamp recorded in images: `SOURCE_DATE_EPOCH` when set, else 0 (1970-01-01), so
/// the same inputs always give the same bytes. A set but malformed value is an error, as
/// the reproducible-builds specification asks.
pub fn source_date_epoch() -> std::result::Result<i64, String> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Err(std::env::VarError::NotPresent) => Ok(0),
        Err(std::env::VarError::NotUnicode(_)) => {
            Err("SOURCE_DATE_EPOCH is not a number of seconds".into())
        }
        Ok(s) if s.is_empty() => Ok(0),
        Ok(s) => s
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|t| (0..=5_869_583_999).contains(t))
            .ok_or_else(|| format!("SOURCE_DATE_EPOCH={s:?} is not a number of seconds from 1970 to the end of 2155 (the ISO9660 date range)")),
    }
}

/// Write `files` (name → bytes; `/` separates subdirectories) into an image of `fs`.
pub fn render(files: &BTreeMap<String, Vec<u8>>, fs: Filesystem, mtime: i64) -> Result<Vec<u8>> {
    let list: Vec<(String, Vec<u8>)> = files
        .iter()
        .map(|(name, data)| (name.clone(), data.clone()))
        .collect();
    render_list(&list, fs, mtime)
}

/// [`render`] over a list already in the writers' shape.
pub fn render_list(files: &[(String, Vec<u8>)], fs: Filesystem, mtime: i64) -> Result<Vec<u8>> {
    match fs {
        Filesystem::Iso => {
            let opts = isowrite::WriteOptions {
                volume_id: LABEL.to_string(),
                mtime,
                rock_ridge: true,
                joliet: true,
            };
            let mut out = Vec::with_capacity(64 * 1024);
            isowrite::write_image(&mut out, files, &opts).context("writing the ISO9660 image")?;
            Ok(out)
        }
        Filesystem::Vfat => fatwrite::write_image(files, LABEL).context("writing the vfat image"),
    }
}

/// Where an image goes: a file, or standard output (`-`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Stdout,
    File(PathBuf),
}

/// Write `image` (raw bytes) to `output` in `format`. Files are replaced atomically.
pub fn emit(image: &[u8], output: &Output, format: &DiskFormat) -> Result<()> {
    match (format, output) {
        (DiskFormat::Raw, Output::File(path)) => {
            write_atomic(path, image).with_context(|| format!("writing {}", path.display()))
        }
        (DiskFormat::Raw, Output::Stdout) => {
            let mut out = io::stdout().lock();
            out.write_all(image)
                .and_then(|()| out.flush())
                .inspect_err(crate::exit::quiet_if_broken_pipe)
                .context("writing the image to standard output")
        }
        (DiskFormat::Qemu(fmt), output) => convert(image, output, fmt),
    }
}

/// `qemu-img convert -f raw -O fmt` from a private temporary raw file into a temporary
/// output file, then the same rename as a raw write.
fn convert(image: &[u8], output: &Output, fmt: &str) -> Result<()> {
    let dir = match output {
        Output::File(path) => parent_dir(path),
        Output::Stdout => std::env::temp_dir(),
    };
    let raw = TempFile::create(&dir).context("creating a temporary raw image")?;
    {
        let mut f = &raw.file;
        f.write_all(image)
            .and_then(|()| f.flush())
            .with_context(|| format!("writing {}", raw.path.display()))?;
    }
    let converted = TempFile::create(&dir).context("creating a temporary output file")?;
    let status = Command::new("qemu-img")
        .args(["convert", "-q", "-f", "raw", "-O", fmt])
        .arg(&raw.path)
        .arg(&converted.path)
        .status();
    match status {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            bail!("--disk-format {fmt} needs qemu-img, which is not installed (install qemu-utils, or use -d raw)")
        }
        Err(e) => return Err(e).context("running qemu-img"),
        Ok(s) if !s.success() => bail!("qemu-img convert -O {fmt} failed ({s})"),
        Ok(_) => {}
    }
    match output {
        // qemu-img writes the temporary file in place (same inode), so its data is
        // synced through our handle.
        Output::File(path) => commit(converted, path)
            .with_context(|| format!("writing the converted image {}", path.display())),
        Output::Stdout => {
            let bytes = fs::read(&converted.path).context("reading the converted image")?;
            let mut out = io::stdout().lock();
            out.write_all(&bytes)
                .and_then(|()| out.flush())
                .inspect_err(crate::exit::quiet_if_broken_pipe)
                .context("writing the image to standard output")
        }
    }
}

/// Replace `path` with `bytes` atomically: temp file beside it, one write, fsync, rename,
/// fsync of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    commit(write_temp(path, bytes)?, path)
}

/// [`write_atomic`] with the file's permission bits set to `mode` before it is renamed
/// into place.
pub fn write_atomic_mode(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let tmp = write_temp(path, bytes)?;
    tmp.file.set_permissions(fs::Permissions::from_mode(mode))?;
    commit(tmp, path)
}

/// Set once the images hold secrets (`--ssh-host-keys`): every file ci-seed creates from
/// then on is created 0600 (owner only) rather than 0666 less the umask, so a private key
/// is never readable by others, not even between creation and rename.
static PRIVATE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Make every image written from now on private (0600).
pub fn private_outputs() {
    PRIVATE.store(true, Ordering::Relaxed);
}

/// Make a finished temporary file `path`, durably: fsync it, rename it over `path`,
/// fsync the directory (without the last step the rename may not survive a crash).
fn commit(tmp: TempFile, path: &Path) -> io::Result<()> {
    tmp.file.sync_all()?;
    tmp.persist(path).map_err(io::Error::other)?;
    sync_dir(&parent_dir(path))
}

/// Write `bytes` into a fresh temporary file beside `path` (not synced, not renamed).
pub fn write_temp(path: &Path, bytes: &[u8]) -> io::Result<TempFile> {
    let tmp = TempFile::create(&parent_dir(path))?;
    write_sparse(&tmp.file, bytes)?;
    Ok(tmp)
}

/// Write `bytes` into an empty `file` with one write: from the first to the last
/// non-zero 4 KiB block. The zero head and tail (an ISO's 32 KiB system area and 300 KiB
/// of padding, a FAT image's free clusters) come from extending the file, which reads
/// back as the same zeros but costs no I/O (and no disk blocks on file systems with
/// holes). This is what keeps a 10,000-seed batch fast.
pub fn write_sparse(file: &File, bytes: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    const BLOCK: usize = 4096;
    // Whole-block scans (an OR-fold the compiler vectorises), not a byte at a time: this
    // runs once per seed of a batch over ~350 KiB that is mostly zeros.
    let nonzero = |c: &[u8]| c.iter().fold(0u8, |acc, &b| acc | b) != 0;
    let first = bytes.chunks(BLOCK).position(nonzero);
    let last = bytes.chunks(BLOCK).rposition(nonzero);
    let (start, end) = match (first, last) {
        (Some(f), Some(l)) => (f * BLOCK, ((l + 1) * BLOCK).min(bytes.len())),
        _ => (0, 0),
    };
    if start < end {
        file.write_all_at(&bytes[start..end], start as u64)?;
    }
    if end < bytes.len() || start > 0 {
        file.set_len(bytes.len() as u64)?;
    }
    Ok(())
}

/// fsync a directory so renames in it are durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// A temporary file removed on drop unless persisted.
#[derive(Debug)]
pub struct TempFile {
    pub path: PathBuf,
    pub file: File,
    keep: bool,
}

impl TempFile {
    /// Create `.ci-seed-<pid>-<n>.tmp` in `dir` (never an existing file).
    pub fn create(dir: &Path) -> io::Result<Self> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let pid = std::process::id();
        // Bounded: a stale name from another run is skipped, a real error is returned.
        for _ in 0..1000 {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = dir.join(format!(".ci-seed-{pid}-{n}.tmp"));
            let mode = if PRIVATE.load(Ordering::Relaxed) {
                0o600
            } else {
                0o666
            };
            let opened = {
                use std::os::unix::fs::OpenOptionsExt;
                OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(mode)
                    .open(&path)
            };
            match opened {
                Ok(file) => {
                    return Ok(Self {
                        path,
                        file,
                        keep: false,
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("creating a temporary file in {}: {e}", dir.display()),
                    ))
                }
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("no free temporary file name in {}", dir.display()),
        ))
    }

    /// Keep the file (closed) and return its path; the caller renames or removes it.
    pub fn into_kept_path(mut self) -> PathBuf {
        self.keep = true;
        std::mem::take(&mut self.path)
    }

    /// Rename onto `path` (same directory, so atomic).
    pub fn persist(mut self, path: &Path) -> Result<()> {
        fs::rename(&self.path, path)
            .with_context(|| format!("renaming {} to {}", self.path.display(), path.display()))?;
        self.keep = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filesystem_names() {
        assert_eq!(Filesystem::parse("iso"), Some(Filesystem::Iso));
        assert_eq!(Filesystem::parse("iso9660"), Some(Filesystem::Iso));
        assert_eq!(Filesystem::parse("vfat"), Some(Filesystem::Vfat));
        assert_eq!(Filesystem::parse("ext4"), None);
    }

    #[test]
    fn disk_formats() {
        assert_eq!(DiskFormat::parse("raw"), Ok(DiskFormat::Raw));
        assert_eq!(
            DiskFormat::parse("qcow2"),
            Ok(DiskFormat::Qemu("qcow2".into()))
        );
        assert!(DiskFormat::parse("tar-seed-local")
            .unwrap_err()
            .contains("not supported"));
        assert!(DiskFormat::parse("x;rm").is_err());
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seed.iso");
        fs::write(&path, b"old").unwrap();
        write_atomic(&path, b"new bytes").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new bytes");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("seed.iso")]);
    }

    #[test]
    fn failed_write_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing-dir").join("seed.iso");
        assert!(write_atomic(&path, b"x").is_err());
        assert!(!path.exists());
    }

    #[test]
    fn sparse_tail_reads_back_as_zeros() {
        let dir = tempfile::tempdir().unwrap();
        for bytes in [
            vec![],
            vec![0u8; 5],
            vec![1u8; 3],
            [vec![7u8; 4097], vec![0u8; 300 * 1024 + 3]].concat(),
            [vec![0u8; 9], vec![1], vec![0u8; 13]].concat(),
            [vec![0u8; 32 * 1024], vec![1, 2], vec![0u8; 5000], vec![3]].concat(),
            [vec![0u8; 4097], vec![1], vec![0u8; 9000]].concat(),
        ] {
            let path = dir.path().join("s");
            let tmp = write_temp(&path, &bytes).unwrap();
            tmp.persist(&path).unwrap();
            assert_eq!(fs::read(&path).unwrap(), bytes);
        }
        // The zero head and tail become a hole, not written blocks.
        let path = dir.path().join("holes");
        let bytes = [vec![0u8; 64 * 1024], vec![9u8; 10], vec![0u8; 1 << 20]].concat();
        write_temp(&path, &bytes).unwrap().persist(&path).unwrap();
        let m = fs::metadata(&path).unwrap();
        assert_eq!(m.len(), bytes.len() as u64);
        assert!(
            std::os::unix::fs::MetadataExt::blocks(&m) * 512 < 256 * 1024,
            "allocated {} blocks",
            std::os::unix::fs::MetadataExt::blocks(&m)
        );
    }

    #[test]
    fn dropped_temp_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = write_temp(&dir.path().join("x"), b"abc").unwrap();
        let p = tmp.path.clone();
        assert!(p.exists());
        drop(tmp);
        assert!(!p.exists());
    }
}
