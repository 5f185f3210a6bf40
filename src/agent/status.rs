//! `ci-agent status` (and `cloud-init status` through [`crate::agent::cloudinit`]): what
//! the agent is doing in this boot, in cloud-init's words and exit codes.
//!
//! Whether a pass is alive is decided by probing its lock (`<run_dir>/pass.lock`, and the
//! state directory's `run.lock`), never by a file: a pass killed by a unit timeout, the
//! OOM killer or a power cut leaves `running` in `status.json`, but nobody holds its
//! lock. This boot's passes are in `<run_dir>/pass.json` ([`crate::agent::boot`]).
//!
//! | this boot | `status:` | `extended_status:` | exit |
//! |---|---|---|---|
//! | no pass yet | `not started` | `not started` | 0 |
//! | a pass holds its lock, or the early pass ended and the late one is due | `running` | `running` | 0 |
//! | the last pass ended without errors or warnings | `done` | `done` | 0 |
//! | … with warnings (unknown keys, unhandled parts) | `done` | `degraded done` | 2 |
//! | a module failed, or a pass was killed (no lock held, no end recorded) | `error` | `error` | 1 |
//! | a disable switch, or `require_firstboot` without the sentinel | `disabled` | `disabled` | 0 |
//!
//! `--wait` polls until the status is neither `not started` nor `running` (as cloud-init);
//! `--timeout SECS` gives up (exit 1). Usage errors exit 2, an unreadable record 1.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;

use crate::agent::boot::{self, BootRecord};
use crate::agent::state::{ModuleOutcome, RunStatus, State, StatusFile};
use crate::formats::civil::Civil;
use crate::modules::Stage;
use crate::platform::cli::{self, Opt, Value as CliValue};
use crate::platform::config::Config;
use crate::platform::{OsKind, System};

/// cloud-init's status words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Word {
    NotStarted,
    Running,
    Done,
    Error,
    Disabled,
}

impl Word {
    pub fn as_str(self) -> &'static str {
        match self {
            Word::NotStarted => "not started",
            Word::Running => "running",
            Word::Done => "done",
            Word::Error => "error",
            Word::Disabled => "disabled",
        }
    }
}

/// Exit codes of `status` (cloud-init's).
pub mod code {
    pub const OK: u8 = 0;
    pub const ERROR: u8 = 1;
    pub const DEGRADED: u8 = 2;
}

/// What `status` reports.
#[derive(Debug, Clone)]
pub struct Observed {
    pub word: Word,
    /// Done (or running) with warnings: `degraded done`.
    pub degraded: bool,
    pub boot_status_code: String,
    pub detail: String,
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
    /// The running pass's stage (`early`, `late`, `all`).
    pub stage: Option<String>,
    pub last_update: Option<u64>,
    pub datasource: Option<String>,
    pub record: Option<BootRecord>,
    /// `status.json` (the last run, kept across boots), when readable.
    pub last_run: Option<StatusFile>,
    pub state_dir: PathBuf,
}

impl Observed {
    pub fn extended(&self) -> String {
        if self.degraded {
            format!("degraded {}", self.word.as_str())
        } else {
            self.word.as_str().into()
        }
    }

    pub fn exit_code(&self) -> u8 {
        match (self.word, self.degraded) {
            (Word::Error, _) => code::ERROR,
            (Word::Done, true) => code::DEGRADED,
            _ => code::OK,
        }
    }

    /// Still to wait for (`--wait`).
    pub fn pending(&self) -> bool {
        matches!(self.word, Word::NotStarted | Word::Running)
    }
}

/// Look at this boot's record, the locks and the disable switches.
pub fn observe(sys: &dyn System, cfg: &Config) -> anyhow::Result<Observed> {
    let state = State::new(sys, &cfg.state_dir);
    // Unreadable (not root: the state dir is 0700) is not an error: this boot's record
    // in the run dir is what counts.
    let last_run = state.read_status().ok().flatten();
    let record = boot::read_record(sys, cfg)?;
    let enabled_code = if sys.exists(std::path::Path::new("/run/systemd/system")) {
        "enabled-by-generator"
    } else {
        "enabled-by-sysvinit"
    };
    let mut o = Observed {
        word: Word::NotStarted,
        degraded: false,
        boot_status_code: enabled_code.into(),
        detail: String::new(),
        errors: Vec::new(),
        warnings: Vec::new(),
        stage: None,
        last_update: None,
        datasource: last_run.as_ref().and_then(|s| s.datasource.clone()),
        record: record.clone(),
        last_run,
        state_dir: cfg.state_dir.clone(),
    };
    if let Some((code, reason)) = boot::disabled(sys, cfg) {
        o.word = Word::Disabled;
        o.boot_status_code = code.into();
        o.detail = reason;
        return Ok(o);
    }
    let alive = boot::pass_alive(sys, cfg) || sys.lock_held(&state.lock_path()).unwrap_or(false);
    let last = record.as_ref().and_then(BootRecord::last);
    if let Some(p) = last {
        o.last_update = Some(p.finished.unwrap_or(p.started).max(p.started));
        if p.datasource.is_some() {
            o.datasource = p.datasource.clone();
        }
        o.errors = p.errors.clone();
        o.warnings = p.warnings.clone();
    }
    match last {
        _ if alive => {
            o.word = Word::Running;
            let stage = last
                .filter(|p| p.finished.is_none())
                .map(|p| p.stage.clone())
                .unwrap_or_else(|| "starting".into());
            o.detail = format!("the {stage} pass is running");
            o.stage = Some(stage);
        }
        None => {
            o.detail = "no ci-agent pass has run in this boot yet".into();
        }
        Some(p) if p.finished.is_none() => {
            o.word = Word::Error;
            let lock = boot::pass_lock_path(cfg);
            let msg = format!(
                "the {} pass (pid {}, started {}) did not finish and nothing holds {}: it was killed (unit timeout, OOM killer or power loss)",
                p.stage,
                p.pid,
                Civil::from_unix(i64::try_from(p.started).unwrap_or(0)).rfc3339(),
                lock.display()
            );
            o.errors.push(msg.clone());
            o.detail = msg;
        }
        Some(p) if p.stage == "early" => {
            o.word = Word::Running;
            o.stage = Some("late".into());
            o.detail = "the early pass finished; the late pass is due".into();
        }
        Some(p) => {
            o.detail = p.detail.clone();
            o.word = match p.status {
                Some(RunStatus::Error) => Word::Error,
                Some(RunStatus::Disabled) => {
                    o.boot_status_code = "disabled-by-config".into();
                    Word::Disabled
                }
                _ => Word::Done,
            };
            if o.word == Word::Error && o.errors.is_empty() {
                o.errors.push(p.detail.clone());
            }
        }
    }
    o.degraded = !o.warnings.is_empty() && matches!(o.word, Word::Done | Word::Running);
    Ok(o)
}

/// One status document, in cloud-init's shape (`status --format json`), with ours under
/// `ci_agent`.
pub fn to_json(o: &Observed) -> serde_json::Value {
    let (stages, _) = o
        .record
        .as_ref()
        .map(boot::cloudinit_stage_objects)
        .unwrap_or_else(|| boot::cloudinit_stage_objects(&BootRecord::default()));
    let mut m = serde_json::Map::new();
    m.insert("_schema_version".into(), json!("1"));
    m.insert("schema_version".into(), json!(boot::SCHEMA_VERSION));
    m.insert("status".into(), json!(o.word.as_str()));
    m.insert("extended_status".into(), json!(o.extended()));
    m.insert("boot_status_code".into(), json!(o.boot_status_code));
    m.insert(
        "datasource".into(),
        json!(o.datasource.as_ref().map(|_| "nocloud")),
    );
    m.insert("detail".into(), json!(o.detail));
    m.insert("errors".into(), json!(o.errors));
    m.insert("recoverable_errors".into(), boot::recoverable(&o.warnings));
    m.insert("stage".into(), json!(o.stage));
    m.insert(
        "last_update".into(),
        json!(o
            .last_update
            .map(|t| Civil::from_unix(i64::try_from(t).unwrap_or(0)).rfc2822())
            .unwrap_or_default()),
    );
    m.extend(stages);
    // The last run's own fields (instance_id, modules, warnings, …) stay at the top level
    // where they do not clash with cloud-init's, as `status --json` printed them before.
    if let Some(serde_json::Value::Object(run)) = o
        .last_run
        .as_ref()
        .and_then(|r| serde_json::to_value(r).ok())
    {
        for (k, v) in run {
            m.entry(k).or_insert(v);
        }
    }
    m.insert(
        "ci_agent".into(),
        json!({
            "seed": o.datasource,
            "state_dir": o.state_dir.display().to_string(),
            "boot": o.record,
            "last_run": o.last_run,
        }),
    );
    serde_json::Value::Object(m)
}

/// cloud-init's tabular output: `status: WORD`, and with `long` the other fields.
pub fn render_tabular(o: &Observed, long: bool) -> String {
    use std::fmt::Write as _;
    let mut s = format!("status: {}\n", o.word.as_str());
    if long {
        let _ = writeln!(s, "extended_status: {}", o.extended());
        let _ = writeln!(s, "boot_status_code: {}", o.boot_status_code);
        if let Some(t) = o.last_update {
            let _ = writeln!(
                s,
                "last_update: {}",
                Civil::from_unix(i64::try_from(t).unwrap_or(0)).rfc2822()
            );
        }
        let _ = writeln!(s, "detail: {}", o.detail);
        if o.errors.is_empty() {
            s.push_str("errors: []\n");
        } else {
            s.push_str("errors:\n");
            for e in &o.errors {
                let _ = writeln!(s, "\t- {e}");
            }
        }
        if o.warnings.is_empty() {
            s.push_str("recoverable_errors: {}\n");
        } else {
            s.push_str("recoverable_errors:\nWARNING:\n");
            for w in &o.warnings {
                let _ = writeln!(s, "\t- {w}");
            }
        }
    }
    s
}

/// Output format of `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Tabular,
    Json,
    Yaml,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "tabular" => Some(Format::Tabular),
            "json" => Some(Format::Json),
            "yaml" => Some(Format::Yaml),
            _ => None,
        }
    }
}

/// Options shared by `ci-agent status` and `cloud-init status`.
#[derive(Debug, Clone)]
pub struct StatusOpts {
    pub format: Format,
    pub long: bool,
    pub wait: bool,
    pub timeout: Option<u64>,
    /// Print the last run's details (`ci-agent status`, not `cloud-init status`).
    pub ours: bool,
}

/// Observe (waiting if asked), print, and return the exit code.
pub fn show(sys: &dyn System, cfg: &Config, opts: &StatusOpts, prog: &str) -> u8 {
    let mut waited = Duration::ZERO;
    let mut dots = false;
    let mut timed_out = false;
    let o = loop {
        let o = match observe(sys, cfg) {
            Ok(o) => o,
            Err(e) => {
                eprintln!("{prog}: {e:#}");
                return code::ERROR;
            }
        };
        if !(opts.wait && o.pending()) {
            break o;
        }
        if opts
            .timeout
            .is_some_and(|t| waited >= Duration::from_secs(t))
        {
            timed_out = true;
            break o;
        }
        if opts.format == Format::Tabular {
            use std::io::Write as _;
            crate::out!(".");
            let _ = std::io::stdout().flush();
            dots = true;
        }
        let step = Duration::from_millis(250);
        std::thread::sleep(step);
        waited += step;
    };
    match opts.format {
        Format::Tabular => {
            if dots {
                crate::outln!();
            }
            crate::out!("{}", render_tabular(&o, opts.long || opts.ours));
            if opts.ours {
                if let Some(st) = &o.last_run {
                    crate::outln!("last run ({}/status.json):", o.state_dir.display());
                    crate::out!("{}", render_run(st));
                }
            }
        }
        Format::Json => match serde_json::to_string_pretty(&to_json(&o)) {
            Ok(s) => crate::outln!("{s}"),
            Err(e) => {
                eprintln!("{prog}: {e}");
                return code::ERROR;
            }
        },
        Format::Yaml => match crate::formats::yaml::to_string(&to_json(&o)) {
            Ok(s) => crate::out!("{s}"),
            Err(e) => {
                eprintln!("{prog}: {e}");
                return code::ERROR;
            }
        },
    }
    if timed_out {
        eprintln!(
            "{prog}: still {} after {} s (--timeout)",
            o.word.as_str(),
            waited.as_secs()
        );
        return code::ERROR;
    }
    o.exit_code()
}

// ---------------------------------------------------------------------------------------
// ci-agent status

/// `ci-agent status`'s options (the parser below; `platform::cli`).
pub const STATUS_OPTIONS: &[Opt] = &[
    Opt::flag("json", &[]),
    Opt::with(
        "format",
        &[],
        CliValue::Choice(&["tabular", "json", "yaml"]),
    ),
    Opt::flag("long", &['l']),
    Opt::flag("wait", &['w']),
    Opt::with("timeout", &[], CliValue::Word("SECS")),
    Opt::with("root", &[], CliValue::Dir),
    Opt::with("config", &[], CliValue::File),
    cli::OS,
    cli::HELP,
];

const STATUS_USAGE: &str = "\
usage: ci-agent status [--json | --format tabular|json|yaml] [-l|--long] [-w|--wait [--timeout SECS]]
                       [--root DIR] [--config FILE] [--os linux|freebsd]

Say what ci-agent did in this boot, in cloud-init's words: status: not started, running,
done, error or disabled (extended_status adds 'degraded done' when there were warnings),
then the last run's details (modules, warnings, seed files).

  --json           the same as JSON (cloud-init's fields, ours under \"ci_agent\")
  --format F       tabular (default), json or yaml
  -l, --long       (accepted; the tabular output is always long)
  -w, --wait       wait while the status is 'not started' or 'running'
  --timeout SECS   with --wait: give up after SECS seconds (exit 1)
  --root DIR       read the state of the system under DIR
  --config FILE    agent config (state_dir, run_dir); default: the OS default path
  --os OS          policy for default paths: linux or freebsd
  -h, --help       this help

exit status (cloud-init's): 0 done, running, not started or disabled; 1 error (or an
unreadable record, or --timeout reached); 2 done with warnings ('degraded done') or usage
";

struct StatusArgs {
    opts: StatusOpts,
    root: PathBuf,
    config: Option<PathBuf>,
    os: OsKind,
}

fn parse_status_args(args: Vec<OsString>) -> Result<Option<StatusArgs>, lexopt::Error> {
    use lexopt::prelude::*;
    let mut a = StatusArgs {
        opts: StatusOpts {
            format: Format::Tabular,
            long: true,
            wait: false,
            timeout: None,
            ours: true,
        },
        root: "/".into(),
        config: None,
        os: OsKind::host(),
    };
    let mut p = lexopt::Parser::from_args(args);
    while let Some(arg) = p.next()? {
        match arg {
            Long("json") => a.opts.format = Format::Json,
            Long("format") => {
                let v = p.value()?.string()?;
                a.opts.format = Format::parse(&v).ok_or_else(|| {
                    lexopt::Error::Custom(
                        format!("unknown format {v:?} (tabular, json or yaml)").into(),
                    )
                })?;
            }
            Long("long") | Short('l') => a.opts.long = true,
            Long("wait") | Short('w') => a.opts.wait = true,
            Long("timeout") => a.opts.timeout = Some(p.value()?.parse()?),
            Long("root") => a.root = p.value()?.into(),
            Long("config") => a.config = Some(p.value()?.into()),
            Long("os") => a.os = OsKind::from_arg(&mut p)?,
            Short('h') | Long("help") => {
                crate::out!("{STATUS_USAGE}");
                return Ok(None);
            }
            _ => return Err(arg.unexpected()),
        }
    }
    Ok(Some(a))
}

/// Load the config of the system under `root` for a reading command (`status`,
/// `cloud-init query`): a recording system never acts on the host.
pub fn reader(
    root: &std::path::Path,
    config: Option<&std::path::Path>,
    os: OsKind,
) -> anyhow::Result<(crate::platform::host::HostSystem, Config)> {
    let root = crate::platform::config::absolute(root)?;
    let sys = crate::platform::host::HostSystem::recording(&root);
    let cfg = crate::platform::config::load_config(&sys, &root, config, os)?;
    Ok((sys, cfg))
}

/// `ci-agent status`.
pub fn cli_status(args: Vec<OsString>) -> u8 {
    let a = match parse_status_args(args) {
        Ok(Some(a)) => a,
        Ok(None) => return code::OK,
        Err(e) => {
            eprintln!("ci-agent status: {e}\n\n{STATUS_USAGE}");
            return crate::exit::USAGE;
        }
    };
    match reader(&a.root, a.config.as_deref(), a.os) {
        Ok((sys, cfg)) => show(&sys, &cfg, &a.opts, "ci-agent status"),
        Err(e) => {
            eprintln!("ci-agent status: {e:#}");
            crate::exit::USAGE
        }
    }
}

/// The last run's record (`status.json`), for people.
pub fn render_run(st: &StatusFile) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let _ = writeln!(o, "  result: {} ({})", st.status.as_str(), st.action);
    if !st.detail.is_empty() {
        let _ = writeln!(o, "  why: {}", st.detail);
    }
    if let Some(e) = &st.error {
        let _ = writeln!(o, "  fatal: {e}");
    }
    let _ = writeln!(
        o,
        "  instance-id: {}",
        st.instance_id.as_deref().unwrap_or("-")
    );
    if st.applied_instance_id != st.instance_id {
        let _ = writeln!(
            o,
            "  last applied instance-id: {}",
            st.applied_instance_id.as_deref().unwrap_or("-")
        );
    }
    let _ = writeln!(
        o,
        "  datasource: {}",
        st.datasource.as_deref().unwrap_or("none")
    );
    if let Some(d) = &st.seed_dir {
        let _ = writeln!(o, "  seed files (CI_AGENT_SEED_DIR): {d}");
    }
    let _ = writeln!(o, "  stage: {}", st.stage);
    let _ = writeln!(o, "  started: {}", st.started);
    let _ = writeln!(o, "  finished: {}", st.finished.as_deref().unwrap_or("-"));
    if !st.modules.is_empty() {
        let _ = writeln!(o, "  modules:");
        for m in &st.modules {
            let result = match m.result {
                ModuleOutcome::Ok => "ok",
                ModuleOutcome::Failed => "FAILED",
                ModuleOutcome::Skipped => "skipped (already done)",
            };
            let stage = match m.stage {
                Stage::Early => "early",
                Stage::Late => "late",
            };
            let _ = write!(o, "    {:<20} {stage:<5} {result}", m.name);
            if m.result != ModuleOutcome::Skipped {
                let _ = write!(o, " ({} ms)", m.duration_ms);
            }
            if let Some(e) = &m.error {
                let _ = write!(o, ": {e}");
            }
            o.push('\n');
        }
    }
    if !st.warnings.is_empty() {
        let _ = writeln!(o, "  warnings:");
        for w in &st.warnings {
            let _ = writeln!(o, "    {w}");
        }
    }
    if let Some(c) = &st.last_check {
        let _ = writeln!(
            o,
            "  last check: {} ({} pass at {}): {}",
            c.action, c.stage, c.time, c.detail
        );
    }
    if let Some(b) = &st.bootstrap {
        let _ = writeln!(o, "  bootstrap: {}", render_bootstrap(b));
    }
    o
}

/// One line about the vm-bootstrap state (from `BootstrapStatus` as JSON).
fn render_bootstrap(b: &serde_json::Value) -> String {
    let flag = |k: &str| {
        b.get(k)
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false)
    };
    let num = |k: &str| b.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
    let state = if flag("done") {
        "done"
    } else if flag("limit_reached") {
        "gave up"
    } else if flag("enabled") {
        "enabled"
    } else {
        "disabled"
    };
    let mut line = format!(
        "{state}, {} of {} attempts",
        num("attempts"),
        num("max_retry")
    );
    if let Some(r) = b.get("last_result").and_then(serde_json::Value::as_str) {
        line.push_str(&format!(", last: {r}"));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::boot::Pass;
    use crate::platform::fake::FakeSystem;
    use crate::platform::WriteOpts;
    use std::path::Path;

    fn pass(stage: &str, finished: Option<u64>, status: RunStatus) -> Pass {
        Pass {
            stage: stage.into(),
            pid: 1,
            started: 1_767_225_600,
            finished,
            exit: Some(0),
            status: Some(status),
            action: "apply".into(),
            detail: "first boot".into(),
            instance_id: Some("i-1".into()),
            datasource: Some("iso9660:/dev/sr0".into()),
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    fn put(sys: &FakeSystem, cfg: &Config, passes: Vec<Pass>) {
        let rec = BootRecord {
            schema_version: 1,
            passes,
        };
        sys.create_dir_all(&cfg.run_dir, 0o755, None).unwrap();
        sys.write_file(
            &boot::pass_path(cfg),
            &serde_json::to_vec(&rec).unwrap(),
            WriteOpts::mode(0o644),
        )
        .unwrap();
    }

    #[test]
    fn words_and_codes_follow_this_boot() {
        let d = tempfile::tempdir().unwrap();
        let sys = FakeSystem::new(d.path());
        let cfg = Config::defaults(OsKind::Linux);
        let o = observe(&sys, &cfg).unwrap();
        assert_eq!((o.word, o.exit_code()), (Word::NotStarted, 0));
        assert!(o.pending());

        put(
            &sys,
            &cfg,
            vec![pass("early", Some(1_767_225_601), RunStatus::Running)],
        );
        let o = observe(&sys, &cfg).unwrap();
        assert_eq!((o.word, o.stage.as_deref()), (Word::Running, Some("late")));

        let mut late = pass("late", Some(1_767_225_700), RunStatus::Degraded);
        late.warnings = vec!["user-data: unknown key 'fo'".into()];
        put(
            &sys,
            &cfg,
            vec![pass("early", Some(1), RunStatus::Running), late.clone()],
        );
        let o = observe(&sys, &cfg).unwrap();
        assert_eq!(
            (o.word, o.extended().as_str(), o.exit_code()),
            (Word::Done, "degraded done", 2)
        );
        let text = render_tabular(&o, false);
        assert_eq!(text, "status: done\n");
        let j = to_json(&o);
        assert_eq!(j["status"], "done");
        assert_eq!(j["extended_status"], "degraded done");
        assert_eq!(
            j["recoverable_errors"]["WARNING"][0],
            "user-data: unknown key 'fo'"
        );
        assert_eq!(j["modules-final"]["finished"], 1_767_225_700.0);
        assert_eq!(j["_schema_version"], "1");

        late.status = Some(RunStatus::Error);
        late.errors = vec!["runcmd: exit 1".into()];
        put(&sys, &cfg, vec![late.clone()]);
        let o = observe(&sys, &cfg).unwrap();
        assert_eq!((o.word, o.exit_code()), (Word::Error, 1));
        assert!(!render_tabular(&o, true).contains("status: done"));

        // Killed: no end, no lock.
        put(&sys, &cfg, vec![pass("late", None, RunStatus::Running)]);
        let o = observe(&sys, &cfg).unwrap();
        assert_eq!((o.word, o.exit_code()), (Word::Error, 1));
        assert!(o.detail.contains("was killed"), "{}", o.detail);
        // The same record while the pass holds its lock: running.
        let _held = sys
            .lock_file(&boot::pass_lock_path(&cfg), false)
            .unwrap()
            .unwrap();
        let o = observe(&sys, &cfg).unwrap();
        assert_eq!((o.word, o.stage.as_deref()), (Word::Running, Some("late")));
    }

    #[test]
    fn disable_switches() {
        let d = tempfile::tempdir().unwrap();
        let sys = FakeSystem::new(d.path());
        let mut cfg = Config::defaults(OsKind::Linux);
        sys.create_dir_all(Path::new("/etc/cloud"), 0o755, None)
            .unwrap();
        sys.write_file(
            Path::new("/etc/cloud/cloud-init.disabled"),
            b"",
            WriteOpts::mode(0o644),
        )
        .unwrap();
        assert_eq!(observe(&sys, &cfg).unwrap().word, Word::NotStarted);
        cfg.cloud_init_compat = true;
        let o = observe(&sys, &cfg).unwrap();
        assert_eq!(
            (o.word, o.boot_status_code.as_str()),
            (Word::Disabled, "disabled-by-marker-file")
        );
        cfg.cloud_init_compat = false;
        sys.create_dir_all(Path::new("/proc"), 0o755, None).unwrap();
        sys.write_file(
            Path::new("/proc/cmdline"),
            b"quiet ci-agent=disabled\n",
            WriteOpts::mode(0o644),
        )
        .unwrap();
        let o = observe(&sys, &cfg).unwrap();
        assert_eq!(
            (o.word, o.boot_status_code.as_str()),
            (Word::Disabled, "disabled-by-kernel-cmdline")
        );
        assert!(o.detail.contains("ci-agent=disabled"));
        // FreeBSD: the loader's kernel_options (kenv), where cloud-init's rc.d looks too.
        let bsd = Config::defaults(OsKind::FreeBsd);
        assert_eq!(observe(&sys, &bsd).unwrap().word, Word::NotStarted);
        sys.on_command(
            &["kenv", "-q", "kernel_options"],
            crate::platform::CmdOutput {
                code: Some(0),
                stdout: b"boot_verbose ci-agent=disabled\n".to_vec(),
                ..Default::default()
            },
        );
        let o = observe(&sys, &bsd).unwrap();
        assert_eq!(
            (o.word, o.boot_status_code.as_str()),
            (Word::Disabled, "disabled-by-kernel-cmdline")
        );
        assert_eq!(
            boot::marker_path(OsKind::Linux),
            Path::new("/etc/ci-agent.disabled")
        );
        assert_eq!(
            boot::marker_path(OsKind::FreeBsd),
            Path::new("/usr/local/etc/ci-agent.disabled")
        );
    }

    #[test]
    fn bootstrap_line() {
        assert_eq!(
            render_bootstrap(
                &serde_json::json!({"enabled": true, "attempts": 2, "max_retry": 10, "done": false, "limit_reached": false, "last_result": "exit 1"})
            ),
            "enabled, 2 of 10 attempts, last: exit 1"
        );
        assert_eq!(
            render_bootstrap(&serde_json::json!({})),
            "disabled, 0 of 0 attempts"
        );
    }
}
