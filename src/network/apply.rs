//! Write a rendering through [`System`], remembering what each file replaced, and undo it.
//!
//! The record is `<state_dir>/network/applied.json`: the instance, the renderer, and every
//! path written with where its previous content was kept (`<state_dir>/network/backup/…`)
//! and its mode, or none when the file did not exist. Undo (a later instance, `ci-agent
//! seal`) walks it backwards: a file that replaced another gets the old content back, a
//! new file is removed. So a template file we had to change (an ENI stanza commented out,
//! a resolv.conf) is restored exactly, and a clone can go back to the template's DHCP.
//!
//! The record is rewritten after every file, before the next one is touched: a run killed
//! half-way leaves a record that undoes exactly what was done.

use std::io;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::OutFile;
use crate::platform::{FileKind, System, WriteOpts};

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Record {
    pub instance_id: String,
    pub renderer: String,
    pub files: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Entry {
    pub path: PathBuf,
    /// Where the replaced file's content is kept (None: there was no file).
    pub backup: Option<PathBuf>,
    /// The replaced file's mode.
    pub mode: Option<u32>,
}

pub fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join("network")
}

pub fn record_path(state_dir: &Path) -> PathBuf {
    dir(state_dir).join("applied.json")
}

const MAX_FILE: u64 = 4 << 20;

pub fn read_record(sys: &dyn System, state_dir: &Path) -> anyhow::Result<Option<Record>> {
    let p = record_path(state_dir);
    if !sys.exists(&p) {
        return Ok(None);
    }
    let data = sys
        .read_file(&p, MAX_FILE)
        .with_context(|| format!("reading {}", p.display()))?;
    let r = serde_json::from_slice(&data).with_context(|| format!("parsing {}", p.display()))?;
    Ok(Some(r))
}

fn write_record(sys: &dyn System, state_dir: &Path, r: &Record) -> anyhow::Result<()> {
    let p = record_path(state_dir);
    sys.create_dir_all(&dir(state_dir), 0o700, None)
        .and_then(|_| {
            let json = serde_json::to_vec_pretty(r).map_err(io::Error::other)?;
            sys.write_file(&p, &json, WriteOpts::mode(0o600))
        })
        .with_context(|| format!("writing {}", p.display()))
}

fn backup_path(state_dir: &Path, path: &Path) -> PathBuf {
    let flat = path
        .to_string_lossy()
        .trim_start_matches('/')
        .replace('%', "%25")
        .replace('/', "%2F");
    dir(state_dir).join("backup").join(flat)
}

/// Undo what the record says was written; returns one line per action. Missing files are
/// not an error (an admin may have removed one).
pub fn undo(sys: &dyn System, state_dir: &Path) -> anyhow::Result<Vec<String>> {
    let Some(rec) = read_record(sys, state_dir)? else {
        return Ok(Vec::new());
    };
    let mut done = Vec::new();
    let mut rest = rec.clone();
    while let Some(e) = rest.files.pop() {
        match &e.backup {
            Some(b) => {
                let data = sys
                    .read_file(b, MAX_FILE)
                    .with_context(|| format!("reading the kept copy {}", b.display()))?;
                sys.write_file(&e.path, &data, WriteOpts::mode(e.mode.unwrap_or(0o644)))
                    .with_context(|| format!("restoring {}", e.path.display()))?;
                ignore_missing(sys.remove_file(b))
                    .with_context(|| format!("removing {}", b.display()))?;
                done.push(format!("restored {}", e.path.display()));
            }
            None => {
                ignore_missing(sys.remove_file(&e.path))
                    .with_context(|| format!("removing {}", e.path.display()))?;
                done.push(format!("removed {}", e.path.display()));
            }
        }
        write_record(sys, state_dir, &rest)?;
    }
    ignore_missing(sys.remove_file(&record_path(state_dir)))?;
    Ok(done)
}

fn ignore_missing(r: io::Result<()>) -> io::Result<()> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

/// Write `files`, keeping what each replaces; the record names `instance_id` and
/// `renderer`. A path that is a symlink or not a regular file is refused (it belongs to
/// something else: resolved's stub, a package's link).
pub fn write(
    sys: &dyn System,
    state_dir: &Path,
    instance_id: &str,
    renderer: &str,
    files: &[OutFile],
) -> anyhow::Result<()> {
    let mut rec = Record {
        instance_id: instance_id.into(),
        renderer: renderer.into(),
        files: Vec::new(),
    };
    for f in files {
        let info = sys
            .lstat(&f.path)
            .with_context(|| format!("stat {}", f.path.display()))?;
        let (backup, mode) = match info {
            None => (None, None),
            Some(i) if i.kind == FileKind::File => {
                let old = sys
                    .read_file(&f.path, MAX_FILE)
                    .with_context(|| format!("reading {}", f.path.display()))?;
                let b = backup_path(state_dir, &f.path);
                sys.create_dir_all(b.parent().unwrap_or(state_dir), 0o700, None)
                    .and_then(|_| sys.write_file(&b, &old, WriteOpts::mode(0o600)))
                    .with_context(|| format!("keeping a copy of {}", f.path.display()))?;
                (Some(b), Some(i.mode & 0o7777))
            }
            Some(_) => anyhow::bail!(
                "{} is not a regular file (a symlink?); not replacing it",
                f.path.display()
            ),
        };
        rec.files.push(Entry {
            path: f.path.clone(),
            backup,
            mode,
        });
        // Recorded before the write: undo of a file that was never written is harmless
        // (restores the same content, or removes nothing).
        write_record(sys, state_dir, &rec)?;
        if let Some(parent) = f.path.parent() {
            sys.create_dir_all(parent, 0o755, None)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        sys.write_file(&f.path, f.content.as_bytes(), WriteOpts::mode(f.mode))
            .with_context(|| format!("writing {}", f.path.display()))?;
    }
    Ok(())
}
