//! What the agent remembers between runs, and `ci-agent status`.
//!
//! Everything lives under the state directory (`/var/lib/ci-agent` on Linux,
//! `/var/db/ci-agent` on FreeBSD, mode 0700) and is written through [`System`]:
//!
//! - `instance-id`: the last instance whose every module succeeded ("applied");
//! - `in-progress`: the instance a pass started applying and that has not completed yet
//!   (so the late pass, and the next boot after a failure, continue it);
//! - `instances/<iid>/sem/<module>`: per-instance semaphores, written only after the
//!   module succeeded (a module that failed or was killed runs again);
//! - `sem/<module>`: semaphores of once-per-machine modules;
//! - `instances/<iid>/seed/`: the local copy of the seed's files (dir 0700, files 0600),
//!   exported to scripts as `CI_AGENT_SEED_DIR`;
//! - `status.json`: the record of the last run, replaced atomically;
//! - `commands.log`: with `--root DIR`, the commands that would have run;
//! - `run.lock`: empty; a run holds its `flock` from start to end, so a second run (by
//!   hand during a boot pass) waits instead of applying the same instance at the same time.
//!
//! Writes are ordered so that a kill at any point re-runs cleanly: a semaphore only after
//! its module succeeded, `instance-id` only after the last one, the sentinel removed last.

use std::io;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::formats::civil::rfc3339;
use crate::formats::userdata::Seed;
use crate::modules::{Frequency, Stage};
use crate::platform::{FileLock, System, WriteOpts};

/// Largest state file read back (`instance-id`, `in-progress`).
const MAX_SMALL: u64 = 4096;
/// Largest `status.json` read back.
const MAX_STATUS: u64 = 8 << 20;
/// Longest instance-id used verbatim as a directory name (longer ones are hashed).
const MAX_IID_DIR: usize = 128;

/// The overall result of a run, as `status.json` and `ci-agent status` show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// A pass is running, or the early pass finished and the late pass is due.
    Running,
    /// Everything due succeeded, no warnings (or nothing was due).
    Done,
    /// Everything due succeeded, with warnings (unknown keys, unhandled parts…).
    Degraded,
    /// A module failed, or the run could not start (bad seed, state not writable).
    Error,
    /// `require_firstboot` is set and the sentinel is absent: the agent does nothing.
    Disabled,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Done => "done",
            RunStatus::Degraded => "degraded",
            RunStatus::Error => "error",
            RunStatus::Disabled => "disabled",
        }
    }
}

/// How one module (or the bootstrap) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModuleOutcome {
    Ok,
    Failed,
    /// Due in principle, but its semaphore says it already ran (per-instance / once).
    Skipped,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModuleResult {
    pub name: String,
    #[serde(with = "stage_serde")]
    pub stage: Stage,
    #[serde(with = "frequency_serde")]
    pub frequency: Frequency,
    pub result: ModuleOutcome,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub duration_ms: u64,
}

/// `status.json`. Field names are a public interface (scripts parse them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusFile {
    /// Version of this document's shape (1); records from before it read as 1.
    #[serde(default = "schema_v1")]
    pub schema_version: u32,
    pub status: RunStatus,
    /// What the last run decided: `apply` (a first boot or a new instance), `per-boot`
    /// (an applied instance: only per-boot modules), `deferred` (the early pass left an
    /// instance with `#include` URLs to the late pass), `nothing-due`, `no-seed`,
    /// `disabled`, `fatal` (it could not start).
    #[serde(default)]
    pub action: String,
    /// One human sentence saying why.
    #[serde(default)]
    pub detail: String,
    pub instance_id: Option<String>,
    /// Where the seed came from (`dir:/mnt/seed`, `iso9660:/dev/sr0`, …).
    pub datasource: Option<String>,
    /// The stage of the last pass: `early`, `late` or `all`.
    pub stage: String,
    /// RFC 3339 UTC.
    pub started: String,
    pub finished: Option<String>,
    /// Guest path of the seed copy (`CI_AGENT_SEED_DIR`).
    #[serde(default)]
    pub seed_dir: Option<String>,
    /// The last instance applied completely (from `instance-id`).
    #[serde(default)]
    pub applied_instance_id: Option<String>,
    #[serde(default)]
    pub modules: Vec<ModuleResult>,
    #[serde(default)]
    pub warnings: Vec<String>,
    /// The fatal error, when `action` is `fatal`.
    #[serde(default)]
    pub error: Option<String>,
    /// `BootstrapStatus` after the late pass, when the bootstrap datasource is configured.
    #[serde(default)]
    pub bootstrap: Option<serde_json::Value>,
    /// A later pass that had nothing to do keeps this record and notes itself here:
    /// `{"time", "stage", "action", "detail"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_check: Option<LastCheck>,
    /// The policy in force: `linux` or `freebsd`.
    #[serde(default)]
    pub os: Option<String>,
    #[serde(default)]
    pub version: Option<String>,
}

fn schema_v1() -> u32 {
    1
}

/// A pass that found nothing to do (see [`StatusFile::last_check`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastCheck {
    pub time: String,
    pub stage: String,
    pub action: String,
    pub detail: String,
}

impl StatusFile {
    /// Overall result from module results and warnings.
    pub fn summarize(modules: &[ModuleResult], warnings: &[String]) -> RunStatus {
        if modules.iter().any(|m| m.result == ModuleOutcome::Failed) {
            RunStatus::Error
        } else if !warnings.is_empty() {
            RunStatus::Degraded
        } else {
            RunStatus::Done
        }
    }
}

/// (De)serialization of the enums shared with the modules, which only derive
/// `Serialize`; kept here so the module contract stays unchanged.
mod stage_serde {
    use super::*;

    pub fn serialize<S: serde::Serializer>(v: &Stage, s: S) -> Result<S::Ok, S::Error> {
        v.serialize(s)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Stage, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "early" => Ok(Stage::Early),
            "late" => Ok(Stage::Late),
            _ => Err(serde::de::Error::custom(format!("unknown stage {s:?}"))),
        }
    }
}

mod frequency_serde {
    use super::*;

    pub fn serialize<S: serde::Serializer>(v: &Frequency, s: S) -> Result<S::Ok, S::Error> {
        v.serialize(s)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Frequency, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "per-instance" => Ok(Frequency::PerInstance),
            "per-boot" => Ok(Frequency::PerBoot),
            "once" => Ok(Frequency::Once),
            _ => Err(serde::de::Error::custom(format!("unknown frequency {s:?}"))),
        }
    }
}

/// The lock file in the state directory (see [`State::lock_run`]).
pub const RUN_LOCK: &str = "run.lock";

/// The state directory of one machine.
pub struct State<'a> {
    sys: &'a dyn System,
    dir: PathBuf,
}

impl<'a> State<'a> {
    pub fn new(sys: &'a dyn System, dir: impl Into<PathBuf>) -> Self {
        State {
            sys,
            dir: dir.into(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `<state_dir>/run.lock`.
    pub fn lock_path(&self) -> PathBuf {
        self.dir.join(RUN_LOCK)
    }

    /// Hold the run lock (the state directory must exist): at once when it is free, else
    /// after saying who waits for what and blocking until the other run ends. The kernel
    /// drops a dead process's lock, so a crashed run never blocks the next.
    pub fn lock_run(&self) -> anyhow::Result<FileLock> {
        let path = self.lock_path();
        let take = |wait| {
            self.sys
                .lock_file(&path, wait)
                .with_context(|| format!("cannot lock {}", path.display()))
        };
        if let Some(l) = take(false)? {
            return Ok(l);
        }
        log::warn!(
            "another ci-agent run holds {}; waiting for it to finish",
            path.display()
        );
        take(true)?.ok_or_else(|| anyhow::anyhow!("cannot lock {}", path.display()))
    }

    /// Create the state directory (0700) or tighten its mode.
    pub fn ensure(&self) -> anyhow::Result<()> {
        match self.sys.lstat(&self.dir)? {
            Some(info) if info.kind == crate::platform::FileKind::Dir => {
                if info.mode != 0o700 {
                    self.sys.set_mode(&self.dir, 0o700).with_context(|| {
                        format!("cannot set mode 0700 on {}", self.dir.display())
                    })?;
                }
                Ok(())
            }
            Some(_) => anyhow::bail!("{} exists and is not a directory", self.dir.display()),
            None => self
                .sys
                .create_dir_all(&self.dir, 0o700, None)
                .with_context(|| format!("cannot create {}", self.dir.display())),
        }
    }

    /// `<state_dir>/instances/<iid>`.
    pub fn instance_dir(&self, iid: &str) -> PathBuf {
        self.dir.join("instances").join(iid_dir_name(iid))
    }

    /// `<state_dir>/instances/<iid>/seed`.
    pub fn seed_dir(&self, iid: &str) -> PathBuf {
        self.instance_dir(iid).join("seed")
    }

    /// The semaphore of a module, `None` for per-boot modules (they have none).
    pub fn semaphore(&self, freq: Frequency, iid: &str, module: &str) -> Option<PathBuf> {
        let name = iid_dir_name(module);
        match freq {
            Frequency::PerInstance => Some(self.instance_dir(iid).join("sem").join(name)),
            Frequency::Once => Some(self.dir.join("sem").join(name)),
            Frequency::PerBoot => None,
        }
    }

    pub fn has_semaphore(&self, path: &Path) -> bool {
        self.sys.exists(path)
    }

    /// Record that a module succeeded (content: when).
    pub fn write_semaphore(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(parent) = path.parent() {
            self.sys
                .create_dir_all(parent, 0o700, None)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let line = format!("{}\n", rfc3339(self.sys.now()));
        self.sys
            .write_file(path, line.as_bytes(), WriteOpts::mode(0o600))
            .with_context(|| format!("cannot write semaphore {}", path.display()))
    }

    fn read_small(&self, name: &str) -> Option<String> {
        let data = self.sys.read_file(&self.dir.join(name), MAX_SMALL).ok()?;
        let s = String::from_utf8_lossy(&data).trim().to_string();
        (!s.is_empty()).then_some(s)
    }

    fn write_small(&self, name: &str, value: &str) -> anyhow::Result<()> {
        let path = self.dir.join(name);
        self.sys
            .write_file(
                &path,
                format!("{value}\n").as_bytes(),
                WriteOpts::mode(0o600),
            )
            .with_context(|| format!("cannot write {}", path.display()))
    }

    /// The last instance applied completely.
    pub fn applied_instance(&self) -> Option<String> {
        self.read_small("instance-id")
    }

    pub fn set_applied_instance(&self, iid: &str) -> anyhow::Result<()> {
        self.write_small("instance-id", iid)
    }

    /// The instance a pass started and that has not completed.
    pub fn in_progress(&self) -> Option<String> {
        self.read_small("in-progress")
    }

    pub fn set_in_progress(&self, iid: &str) -> anyhow::Result<()> {
        self.write_small("in-progress", iid)
    }

    pub fn clear_in_progress(&self) -> anyhow::Result<()> {
        let path = self.dir.join("in-progress");
        self.sys
            .remove_file(&path)
            .with_context(|| format!("cannot remove {}", path.display()))
    }

    pub fn status_path(&self) -> PathBuf {
        self.dir.join("status.json")
    }

    /// The last status, `Ok(None)` when there is none yet.
    pub fn read_status(&self) -> anyhow::Result<Option<StatusFile>> {
        read_status_at(self.sys, &self.status_path())
    }

    /// Replace `status.json` atomically.
    pub fn write_status(&self, status: &StatusFile) -> anyhow::Result<()> {
        let mut data = serde_json::to_vec_pretty(status)?;
        data.push(b'\n');
        let path = self.status_path();
        self.sys
            .write_file(&path, &data, WriteOpts::mode(0o644))
            .with_context(|| format!("cannot write {}", path.display()))
    }

    /// Copy the seed's files to `instances/<iid>/seed/` (dir 0700, files 0600), replacing
    /// an older copy. Returns the directory.
    pub fn copy_seed(&self, iid: &str, seed: &Seed) -> anyhow::Result<PathBuf> {
        let dir = self.seed_dir(iid);
        // `seed.json` marks a complete copy: removed first, written last.
        let meta = self.instance_dir(iid).join("seed.json");
        self.sys
            .remove_file(&meta)
            .with_context(|| format!("cannot remove {}", meta.display()))?;
        self.sys
            .remove_dir_all(&dir)
            .with_context(|| format!("cannot remove {}", dir.display()))?;
        self.sys
            .create_dir_all(&dir, 0o700, None)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        for (name, data) in &seed.files {
            let Some(rel) = safe_relative(name) else {
                log::warn!("seed file {name:?}: unsafe name, not copied");
                continue;
            };
            let path = dir.join(&rel);
            if let Some(parent) = path.parent() {
                self.sys
                    .create_dir_all(parent, 0o700, None)
                    .with_context(|| format!("cannot create {}", parent.display()))?;
            }
            self.sys
                .write_file(&path, data, WriteOpts::mode(0o600))
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        let m = SeedMeta {
            source: seed.source.clone(),
            hostname_override: seed.hostname_override.clone(),
            instance_id_override: seed.instance_id_override.clone(),
        };
        self.sys
            .write_file(&meta, &serde_json::to_vec(&m)?, WriteOpts::mode(0o600))
            .with_context(|| format!("cannot write {}", meta.display()))?;
        Ok(dir)
    }

    /// The complete local copy of an instance's seed, if there is one: what a later pass
    /// applies when the seed itself has gone (a cdrom ejected after the early pass, a
    /// retry after a failure on a clone whose seed was detached).
    pub fn load_seed_copy(&self, iid: &str, max_file_bytes: u64) -> anyhow::Result<Option<Seed>> {
        let meta = self.instance_dir(iid).join("seed.json");
        let data = match self.sys.read_file(&meta, MAX_SMALL) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", meta.display())),
        };
        let m: SeedMeta = serde_json::from_slice(&data)
            .with_context(|| format!("{}: not a seed record", meta.display()))?;
        let dir = self.seed_dir(iid);
        let mut seed = Seed {
            source: format!("{} (local copy {})", m.source, dir.display()),
            hostname_override: m.hostname_override,
            instance_id_override: m.instance_id_override,
            ..Seed::default()
        };
        // The copy was written by us; still, bound the walk.
        let mut stack = vec![(dir.clone(), String::new(), 0usize)];
        let mut count = 0usize;
        while let Some((d, prefix, depth)) = stack.pop() {
            for name in self
                .sys
                .read_dir(&d)
                .with_context(|| format!("cannot list {}", d.display()))?
            {
                count += 1;
                if count > 10_000 || depth > 16 {
                    anyhow::bail!("{}: too many files", dir.display());
                }
                let p = d.join(&name);
                let rel = format!("{prefix}{name}");
                match self.sys.lstat(&p)?.map(|i| i.kind) {
                    Some(crate::platform::FileKind::Dir) => {
                        stack.push((p, format!("{rel}/"), depth + 1))
                    }
                    Some(crate::platform::FileKind::File) => {
                        let data = self
                            .sys
                            .read_file(&p, max_file_bytes)
                            .with_context(|| format!("cannot read {}", p.display()))?;
                        seed.files.insert(rel, data);
                    }
                    _ => {}
                }
            }
        }
        Ok(Some(seed))
    }
}

/// Where a seed copy came from (`instances/<iid>/seed.json`).
#[derive(Debug, Serialize, Deserialize)]
struct SeedMeta {
    source: String,
    hostname_override: Option<String>,
    instance_id_override: Option<String>,
}

/// Read a `status.json` at a guest path.
pub fn read_status_at(sys: &dyn System, path: &Path) -> anyhow::Result<Option<StatusFile>> {
    let data = match sys.read_file(path, MAX_STATUS) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let st = serde_json::from_slice(&data)
        .with_context(|| format!("{}: not a status file", path.display()))?;
    Ok(Some(st))
}

/// A seed file name as a relative path of plain components, or `None`.
fn safe_relative(name: &str) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for part in name.split('/') {
        if part.is_empty() || part == "." || part == ".." || part.contains('\0') {
            return None;
        }
        out.push(part);
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

/// An instance-id (untrusted, from meta-data) as one safe directory name: bytes outside
/// `[A-Za-z0-9._:-]` (and a leading `.`) are percent-encoded, so distinct ids stay
/// distinct; very long ids become a prefix plus a hash.
pub fn iid_dir_name(iid: &str) -> String {
    let mut out = String::with_capacity(iid.len());
    for (i, b) in iid.bytes().enumerate() {
        let plain =
            b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b':') || (b == b'.' && i > 0);
        if plain {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out.is_empty() {
        return "%".into();
    }
    if out.len() > MAX_IID_DIR {
        // FNV-1a 64 over the original bytes.
        let mut h: u64 = 0xcbf29ce484222325;
        for b in iid.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x100000001b3);
        }
        let mut cut = 64;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push_str(&format!("~{h:016x}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::fake::FakeSystem;

    #[test]
    fn iid_names_are_safe_and_distinct() {
        assert_eq!(iid_dir_name("iid-local01"), "iid-local01");
        assert_eq!(iid_dir_name("i-0abc.def"), "i-0abc.def");
        assert_eq!(iid_dir_name("../etc"), "%2E.%2Fetc");
        assert_eq!(iid_dir_name(".."), "%2E.");
        assert_eq!(iid_dir_name("."), "%2E");
        assert_ne!(iid_dir_name("a/b"), iid_dir_name("a_b"));
        assert_ne!(iid_dir_name("a/b"), iid_dir_name("a%2Fb"));
        assert_eq!(iid_dir_name(""), "%");
        let long = "x".repeat(1000);
        let n = iid_dir_name(&long);
        assert!(n.len() < 100 && !n.contains('/'));
        assert_ne!(n, iid_dir_name(&"x".repeat(999)));
        let uni = "é".repeat(100);
        assert!(iid_dir_name(&uni).is_ascii());
    }

    #[test]
    fn semaphores_markers_and_status_roundtrip() {
        let d = tempfile::tempdir().unwrap();
        let sys = FakeSystem::new(d.path());
        let st = State::new(&sys, "/var/lib/ci-agent");
        st.ensure().unwrap();
        assert_eq!(
            sys.lstat(Path::new("/var/lib/ci-agent"))
                .unwrap()
                .unwrap()
                .mode,
            0o700
        );
        sys.set_mode(Path::new("/var/lib/ci-agent"), 0o755).unwrap();
        st.ensure().unwrap();
        assert_eq!(
            sys.lstat(Path::new("/var/lib/ci-agent"))
                .unwrap()
                .unwrap()
                .mode,
            0o700
        );

        let sem = st
            .semaphore(Frequency::PerInstance, "i-1", "runcmd")
            .unwrap();
        assert_eq!(sem, Path::new("/var/lib/ci-agent/instances/i-1/sem/runcmd"));
        assert_eq!(
            st.semaphore(Frequency::Once, "i-1", "x").unwrap(),
            Path::new("/var/lib/ci-agent/sem/x")
        );
        assert!(st.semaphore(Frequency::PerBoot, "i-1", "bootcmd").is_none());
        assert!(!st.has_semaphore(&sem));
        st.write_semaphore(&sem).unwrap();
        assert!(st.has_semaphore(&sem));
        assert_eq!(sys.read_string(&sem).unwrap(), "2026-01-01T00:00:00Z\n");

        assert_eq!(st.applied_instance(), None);
        st.set_applied_instance("i-1").unwrap();
        assert_eq!(st.applied_instance().as_deref(), Some("i-1"));
        st.set_in_progress("i-2").unwrap();
        assert_eq!(st.in_progress().as_deref(), Some("i-2"));
        st.clear_in_progress().unwrap();
        assert_eq!(st.in_progress(), None);

        assert!(st.read_status().unwrap().is_none());
        let s = StatusFile {
            schema_version: 1,
            status: RunStatus::Degraded,
            action: "apply".into(),
            detail: "new instance".into(),
            instance_id: Some("i-1".into()),
            datasource: Some("dir:/seed".into()),
            stage: "all".into(),
            started: rfc3339(sys.now()),
            finished: Some(rfc3339(sys.now())),
            seed_dir: None,
            applied_instance_id: Some("i-1".into()),
            modules: vec![ModuleResult {
                name: "runcmd".into(),
                stage: Stage::Late,
                frequency: Frequency::PerInstance,
                result: ModuleOutcome::Failed,
                error: Some("exit 1".into()),
                duration_ms: 3,
            }],
            warnings: vec!["user-data: unknown key foo".into()],
            error: None,
            bootstrap: None,
            last_check: None,
            os: Some("linux".into()),
            version: None,
        };
        st.write_status(&s).unwrap();
        assert_eq!(st.read_status().unwrap().unwrap(), s);
        let v: serde_json::Value =
            serde_json::from_str(&sys.read_string("/var/lib/ci-agent/status.json").unwrap())
                .unwrap();
        assert_eq!(v["status"], "degraded");
        assert_eq!(v["modules"][0]["result"], "failed");
        assert_eq!(v["modules"][0]["stage"], "late");
        assert_eq!(v["schema_version"], 1);
    }

    #[test]
    fn seed_copy_is_private_and_skips_unsafe_names() {
        let d = tempfile::tempdir().unwrap();
        let sys = FakeSystem::new(d.path());
        let st = State::new(&sys, "/var/lib/ci-agent");
        st.ensure().unwrap();
        let mut seed = Seed {
            source: "dir:/seed".into(),
            ..Seed::default()
        };
        seed.files
            .insert("user-data".into(), b"#cloud-config\n".to_vec());
        seed.files.insert("CONFIG".into(), b"k=v\n".to_vec());
        seed.files.insert("sub/dir/f".into(), b"x".to_vec());
        seed.files.insert("../escape".into(), b"x".to_vec());
        seed.files.insert("/abs".into(), b"x".to_vec());
        let dir = st.copy_seed("i-1", &seed).unwrap();
        assert_eq!(dir, Path::new("/var/lib/ci-agent/instances/i-1/seed"));
        let info = sys.lstat(&dir).unwrap().unwrap();
        assert_eq!(info.mode, 0o700);
        let f = sys.lstat(&dir.join("CONFIG")).unwrap().unwrap();
        assert_eq!(f.mode, 0o600);
        assert_eq!(sys.read_string(dir.join("sub/dir/f")).unwrap(), "x");
        assert_eq!(sys.read_dir(&dir).unwrap(), ["CONFIG", "sub", "user-data"]);
        assert!(!d
            .path()
            .join("var/lib/ci-agent/instances/i-1/escape")
            .exists());
        // A second copy replaces the first.
        seed.files.remove("CONFIG");
        seed.instance_id_override = Some("i-1".into());
        st.copy_seed("i-1", &seed).unwrap();
        assert_eq!(sys.read_dir(&dir).unwrap(), ["sub", "user-data"]);
        // And reads back.
        let back = st.load_seed_copy("i-1", 1 << 20).unwrap().unwrap();
        assert_eq!(
            back.files.keys().collect::<Vec<_>>(),
            ["sub/dir/f", "user-data"]
        );
        assert_eq!(back.instance_id_override.as_deref(), Some("i-1"));
        assert!(back.source.starts_with("dir:/seed (local copy "));
        assert!(st.load_seed_copy("i-2", 1 << 20).unwrap().is_none());
        // An incomplete copy (no seed.json) is not used.
        sys.remove_file(Path::new("/var/lib/ci-agent/instances/i-1/seed.json"))
            .unwrap();
        assert!(st.load_seed_copy("i-1", 1 << 20).unwrap().is_none());
    }
}
