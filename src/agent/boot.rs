//! This boot's record of passes, the disable switches, and the files tools written for
//! cloud-init poll.
//!
//! - `<run_dir>/pass.json` (`/run/ci-agent`, FreeBSD `/var/run/ci-agent`; both emptied at
//!   boot, mode 0644 so any user can read it): every pass of this boot, in order, with
//!   its start, its end (absent while it runs, or when it was killed) and its result.
//!   `status` reads it to tell "not started" (no pass this boot) from "running" and
//!   "done", without trusting the persistent `status.json`.
//! - `<run_dir>/pass.lock`: held (exclusive `flock`) by a pass from its start to its end.
//!   The kernel drops it when the process dies, so a pass killed by a unit timeout, the
//!   OOM killer or a power cut never looks alive: `status` probes it read-only.
//! - Disable switches: the marker file beside the config (`/etc/ci-agent.disabled`,
//!   FreeBSD `/usr/local/etc/ci-agent.disabled`) and `ci-agent=disabled` on the kernel
//!   command line (FreeBSD: the loader's `kernel_options`); with `cloud_init_compat`, cloud-init's own too
//!   (`/etc/cloud/cloud-init.disabled`, `cloud-init=disabled`).
//! - With `cloud_init_compat`: `/run/cloud-init/status.json` (each pass),
//!   `/run/cloud-init/result.json` and `/var/lib/cloud/instance/boot-finished` (end of the
//!   late pass), copies of both JSON files under `/var/lib/cloud/data/`, in cloud-init's
//!   shape (`v1`, stage names, `errors`, `recoverable_errors`).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::agent::state::{ModuleOutcome, RunStatus, StatusFile};
use crate::formats::civil::Civil;
use crate::platform::config::Config;
use crate::platform::{cmdline_has, kernel_cmdline, FileLock, OsKind, System, WriteOpts};

/// Version of the `pass.json`, `status --json` and `query` documents.
pub const SCHEMA_VERSION: u32 = 1;
/// Largest `pass.json` read back.
const MAX_PASS: u64 = 4 << 20;
/// Passes kept in `pass.json` (a boot has two; a loop of hand runs must not grow it).
const MAX_PASSES: usize = 32;

/// cloud-init's disable marker and the files it writes, as tools poll them.
pub const CLOUDINIT_DISABLED: &str = "/etc/cloud/cloud-init.disabled";
pub const CLOUDINIT_RUN_DIR: &str = "/run/cloud-init";
pub const CLOUDINIT_DATA_DIR: &str = "/var/lib/cloud/data";
pub const CLOUDINIT_INSTANCE: &str = "/var/lib/cloud/instance";

/// One pass of this boot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pass {
    /// `early`, `late` or `all`.
    pub stage: String,
    pub pid: u32,
    /// Unix seconds.
    pub started: u64,
    /// Unix seconds; `None` while it runs (or if it was killed).
    #[serde(default)]
    pub finished: Option<u64>,
    #[serde(default)]
    pub exit: Option<u8>,
    /// The pass's result (`running` after an early pass that left work to the late one).
    #[serde(default)]
    pub status: Option<RunStatus>,
    #[serde(default)]
    pub action: String,
    #[serde(default)]
    pub detail: String,
    #[serde(default)]
    pub instance_id: Option<String>,
    #[serde(default)]
    pub datasource: Option<String>,
    /// Failed modules (`name: error`) and fatal errors.
    #[serde(default)]
    pub errors: Vec<String>,
    /// Warnings (unknown keys, unhandled parts): cloud-init's recoverable errors.
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// `<run_dir>/pass.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BootRecord {
    #[serde(default)]
    pub schema_version: u32,
    #[serde(default)]
    pub passes: Vec<Pass>,
}

impl BootRecord {
    pub fn last(&self) -> Option<&Pass> {
        self.passes.last()
    }
}

pub fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub fn pass_path(cfg: &Config) -> PathBuf {
    cfg.run_dir.join("pass.json")
}

pub fn pass_lock_path(cfg: &Config) -> PathBuf {
    cfg.run_dir.join("pass.lock")
}

/// This boot's record; `Ok(None)` before the first pass of the boot.
pub fn read_record(sys: &dyn System, cfg: &Config) -> anyhow::Result<Option<BootRecord>> {
    let path = pass_path(cfg);
    let data = match sys.read_file(&path, MAX_PASS) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let rec = serde_json::from_slice(&data)
        .with_context(|| format!("{}: not a pass record", path.display()))?;
    Ok(Some(rec))
}

fn write_record(sys: &dyn System, cfg: &Config, rec: &BootRecord) -> anyhow::Result<()> {
    let path = pass_path(cfg);
    let mut data = serde_json::to_vec_pretty(rec)?;
    data.push(b'\n');
    sys.write_file(&path, &data, WriteOpts::mode(0o644))
        .with_context(|| format!("cannot write {}", path.display()))
}

/// True while a pass holds `pass.lock`.
pub fn pass_alive(sys: &dyn System, cfg: &Config) -> bool {
    sys.lock_held(&pass_lock_path(cfg)).unwrap_or(false)
}

/// A pass in progress: holds `pass.lock` until dropped.
pub struct PassGuard {
    _lock: FileLock,
}

/// Record the start of a pass (under the run lock): take `pass.lock`, append the pass to
/// `pass.json`; with `cloud_init_compat`, a new boot's first pass removes the last boot's
/// `boot-finished` and `result.json`, and every pass marks its stage as running.
pub fn begin_pass(sys: &dyn System, cfg: &Config, stage: &str) -> anyhow::Result<PassGuard> {
    sys.create_dir_all(&cfg.run_dir, 0o755, None)
        .with_context(|| format!("cannot create {}", cfg.run_dir.display()))?;
    let lock_path = pass_lock_path(cfg);
    let lock = sys
        .lock_file(&lock_path, false)
        .with_context(|| format!("cannot lock {}", lock_path.display()))?
        .unwrap_or_else(FileLock::none);
    // Readable by everyone, so `status` works for users who cannot open the state dir.
    let _ = sys.set_mode(&lock_path, 0o644);
    let mut rec = match read_record(sys, cfg) {
        Ok(r) => r.unwrap_or_default(),
        Err(e) => {
            log::warn!("{e:#} (replaced)");
            BootRecord::default()
        }
    };
    rec.schema_version = SCHEMA_VERSION;
    if rec.passes.len() >= MAX_PASSES {
        rec.passes.drain(..rec.passes.len() + 1 - MAX_PASSES);
    }
    rec.passes.push(Pass {
        stage: stage.into(),
        pid: std::process::id(),
        started: unix(sys.now()),
        finished: None,
        exit: None,
        status: Some(RunStatus::Running),
        action: String::new(),
        detail: String::new(),
        instance_id: None,
        datasource: None,
        errors: Vec::new(),
        warnings: Vec::new(),
    });
    write_record(sys, cfg, &rec)?;
    if cfg.cloud_init_compat {
        if stage != "late" {
            for p in [
                Path::new(CLOUDINIT_INSTANCE).join("boot-finished"),
                Path::new(CLOUDINIT_RUN_DIR).join("result.json"),
                Path::new(CLOUDINIT_DATA_DIR).join("result.json"),
            ] {
                if let Err(e) = sys.remove_file(&p) {
                    log::warn!("cannot remove {}: {e}", p.display());
                }
            }
        }
        if let Err(e) = write_cloudinit_files(sys, &rec, false) {
            log::warn!("cloud_init_compat: {e:#}");
        }
    }
    Ok(PassGuard { _lock: lock })
}

/// Record the end of a pass from its status; with `cloud_init_compat`, write cloud-init's
/// files (the late pass also `result.json` and `boot-finished`).
pub fn end_pass(
    sys: &dyn System,
    cfg: &Config,
    st: &StatusFile,
    exit: u8,
    last: bool,
) -> anyhow::Result<()> {
    let mut rec = read_record(sys, cfg)?.unwrap_or_default();
    rec.schema_version = SCHEMA_VERSION;
    let pid = std::process::id();
    let Some(p) = rec
        .passes
        .iter_mut()
        .rev()
        .find(|p| p.pid == pid && p.finished.is_none())
    else {
        anyhow::bail!("{}: this pass's entry is gone", pass_path(cfg).display());
    };
    p.finished = Some(unix(sys.now()));
    p.exit = Some(exit);
    p.status = Some(st.status);
    p.action = st.action.clone();
    p.detail = st.detail.clone();
    p.instance_id = st.instance_id.clone();
    p.datasource = st.datasource.clone();
    p.errors = errors_of(st);
    p.warnings = st.warnings.clone();
    write_record(sys, cfg, &rec)?;
    if cfg.cloud_init_compat {
        write_cloudinit_files(sys, &rec, last)?;
        if last {
            write_boot_finished(sys, cfg.os)?;
        }
    }
    Ok(())
}

/// Failed modules and a fatal error, one line each.
pub fn errors_of(st: &StatusFile) -> Vec<String> {
    let mut out: Vec<String> = st
        .modules
        .iter()
        .filter(|m| m.result == ModuleOutcome::Failed)
        .map(|m| match &m.error {
            Some(e) => format!("{}: {e}", m.name),
            None => format!("{}: failed", m.name),
        })
        .collect();
    if let Some(e) = &st.error {
        out.push(e.clone());
    }
    out
}

/// Why the agent is switched off, if it is: `(boot_status_code, reason)` with
/// cloud-init's codes.
pub fn disabled(sys: &dyn System, cfg: &Config) -> Option<(&'static str, String)> {
    let marker = marker_path(cfg.os);
    if sys.exists(&marker) {
        return Some((
            "disabled-by-marker-file",
            format!("ci-agent is disabled by {}", marker.display()),
        ));
    }
    let cmdline = kernel_cmdline(sys, cfg.os);
    let has = |w: &str| cmdline_has(&cmdline, w);
    if has("ci-agent=disabled") {
        return Some((
            "disabled-by-kernel-cmdline",
            "ci-agent is disabled by ci-agent=disabled on the kernel command line".into(),
        ));
    }
    if cfg.cloud_init_compat {
        if sys.exists(Path::new(CLOUDINIT_DISABLED)) {
            return Some((
                "disabled-by-marker-file",
                format!("ci-agent is disabled by {CLOUDINIT_DISABLED} (cloud_init_compat)"),
            ));
        }
        if has("cloud-init=disabled") && !has("ci-agent=enabled") {
            return Some((
                "disabled-by-kernel-cmdline",
                "ci-agent is disabled by cloud-init=disabled on the kernel command line (cloud_init_compat)"
                    .into(),
            ));
        }
    }
    None
}

/// cloud-init installed (a `cloud-init` that is not a link to us) and not switched off:
/// it would act on the same seed. Returns the warning to log and record.
pub fn cloud_init_conflict(sys: &dyn System, os: OsKind) -> Option<String> {
    let found = ["/usr/bin/cloud-init", "/usr/local/bin/cloud-init"]
        .into_iter()
        .map(Path::new)
        .find(|p| match sys.lstat(p) {
            Ok(Some(info)) if info.kind == crate::platform::FileKind::Symlink => !sys
                .read_link(p)
                .map(|t| t.to_string_lossy().contains("ci-agent"))
                .unwrap_or(false),
            Ok(Some(_)) => true,
            _ => false,
        })?;
    if sys.exists(Path::new(CLOUDINIT_DISABLED)) {
        return None;
    }
    if cmdline_has(&kernel_cmdline(sys, os), "cloud-init=disabled") {
        return None;
    }
    Some(format!(
        "cloud-init is installed ({}) and enabled: it acts on the same seed as ci-agent; remove it, or disable it with `touch {CLOUDINIT_DISABLED}`",
        found.display()
    ))
}

/// The disable marker: beside the config file.
pub fn marker_path(os: OsKind) -> PathBuf {
    os.config_path().with_extension("disabled")
}

/// cloud-init's datasource description for our seed source.
pub fn cloudinit_datasource(ds: Option<&str>) -> Option<String> {
    ds.map(|d| {
        let seed = d.split_once(':').map(|(_, p)| p).unwrap_or(d);
        format!("DataSourceNoCloud [seed={seed}]")
    })
}

/// The cloud-init stages a pass stands for.
fn cloudinit_stages(stage: &str) -> &'static [&'static str] {
    match stage {
        "early" => &["init-local", "init"],
        "late" => &["modules-config", "modules-final"],
        _ => &["init-local", "init", "modules-config", "modules-final"],
    }
}

/// `{"WARNING": [...]}` (cloud-init groups recoverable errors by log level).
pub fn recoverable(warnings: &[String]) -> serde_json::Value {
    if warnings.is_empty() {
        json!({})
    } else {
        json!({ "WARNING": warnings })
    }
}

/// cloud-init's per-stage objects from this boot's passes, and the running stage.
pub fn cloudinit_stage_objects(
    rec: &BootRecord,
) -> (serde_json::Map<String, serde_json::Value>, Option<String>) {
    let mut m = serde_json::Map::new();
    for name in ["init-local", "init", "modules-config", "modules-final"] {
        m.insert(
            name.into(),
            json!({"errors": [], "recoverable_errors": {}, "start": null, "finished": null}),
        );
    }
    let mut running = None;
    for p in &rec.passes {
        for (i, name) in cloudinit_stages(&p.stage).iter().enumerate() {
            // Errors once, on the pass's last stage.
            let last = i + 1 == cloudinit_stages(&p.stage).len();
            let (errors, warnings) = if last {
                (p.errors.clone(), p.warnings.clone())
            } else {
                (Vec::new(), Vec::new())
            };
            m.insert(
                (*name).into(),
                json!({
                    "errors": errors,
                    "recoverable_errors": recoverable(&warnings),
                    "start": p.started as f64,
                    "finished": p.finished.map(|f| f as f64),
                }),
            );
        }
        if p.finished.is_none() {
            running = cloudinit_stages(&p.stage).last().map(|s| s.to_string());
        }
    }
    (m, running)
}

/// `/run/cloud-init/status.json` (and, when `last`, `result.json`), with copies in
/// `/var/lib/cloud/data/`.
fn write_cloudinit_files(sys: &dyn System, rec: &BootRecord, last: bool) -> anyhow::Result<()> {
    let (mut v1, running) = cloudinit_stage_objects(rec);
    let ds = rec
        .passes
        .iter()
        .rev()
        .find_map(|p| cloudinit_datasource(p.datasource.as_deref()));
    v1.insert("datasource".into(), json!(ds));
    v1.insert("stage".into(), json!(running));
    let status = json!({ "v1": v1 });
    let mut files = vec![("status.json", status)];
    if last {
        let errors: Vec<String> = rec.passes.iter().flat_map(|p| p.errors.clone()).collect();
        let warnings: Vec<String> = rec.passes.iter().flat_map(|p| p.warnings.clone()).collect();
        files.push((
            "result.json",
            json!({"v1": {"datasource": ds, "errors": errors, "recoverable_errors": recoverable(&warnings)}}),
        ));
    }
    for dir in [CLOUDINIT_RUN_DIR, CLOUDINIT_DATA_DIR] {
        let dir = Path::new(dir);
        sys.create_dir_all(dir, 0o755, None)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        for (name, doc) in &files {
            let path = dir.join(name);
            let mut data = serde_json::to_vec_pretty(doc)?;
            data.push(b'\n');
            sys.write_file(&path, &data, WriteOpts::mode(0o644))
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
    }
    Ok(())
}

/// `/var/lib/cloud/instance/boot-finished`: cloud-init's line (uptime, time, version).
fn write_boot_finished(sys: &dyn System, os: OsKind) -> anyhow::Result<()> {
    let dir = Path::new(CLOUDINIT_INSTANCE);
    // cloud-init makes `instance` a link to `instances/<iid>`; a leftover link (an image
    // that had cloud-init) is replaced by a directory we own, never written through.
    if let Ok(Some(info)) = sys.lstat(dir) {
        if info.kind != crate::platform::FileKind::Dir {
            sys.remove_file(dir)
                .with_context(|| format!("cannot remove {}", dir.display()))?;
        }
    }
    sys.create_dir_all(dir, 0o755, None)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let uptime = match os {
        OsKind::Linux => sys
            .read_file(Path::new("/proc/uptime"), 256)
            .ok()
            .and_then(|b| {
                String::from_utf8_lossy(&b)
                    .split_whitespace()
                    .next()
                    .map(String::from)
            }),
        OsKind::FreeBsd => None,
    }
    .unwrap_or_else(|| "0".into());
    let line = format!(
        "{uptime} - {} - v. {} (ci-agent)\n",
        Civil::from_system_time(sys.now()).rfc2822(),
        env!("CARGO_PKG_VERSION")
    );
    let path = dir.join("boot-finished");
    sys.write_file(&path, line.as_bytes(), WriteOpts::mode(0o644))
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The cloud-init files `seal` removes (with `/var/lib/cloud/instance`).
pub fn cloudinit_files() -> Vec<PathBuf> {
    let mut v = Vec::new();
    for dir in [CLOUDINIT_RUN_DIR, CLOUDINIT_DATA_DIR] {
        for f in ["status.json", "result.json"] {
            v.push(Path::new(dir).join(f));
        }
    }
    v.push(Path::new(CLOUDINIT_INSTANCE).join("boot-finished"));
    v
}
