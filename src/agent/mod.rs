//! The first-boot run: decide → discover → parse → modules → record.
//!
//! A boot has two passes: the early pass (before networking; systemd `--stage early`)
//! runs the Early modules, the late pass (after network-online; `--stage late`) runs the
//! Late modules and then the vm-bootstrap datasource; `--stage all` does both at once.
//!
//! Whether to act is decided the same way in both passes ([`decide`]): act when the
//! first-boot sentinel exists, or the seed's instance-id is not the last one applied
//! completely, or a pass already started this instance (`in-progress`); `require_firstboot`
//! narrows this to the sentinel, `rerun_on_new_instance_id: false` ignores new ids,
//! `--once` acts regardless. An instance counts as applied only after the late pass
//! finished with every module successful; until then it stays in progress, so the late
//! pass continues what the early pass began and the next boot retries what failed
//! (per-instance semaphores keep what succeeded from running twice).
//!
//! An already applied instance still gets its per-boot modules on every boot. The exit code
//! is 0 when everything due succeeded (or nothing was due), 1 when a module (or the
//! bootstrap) failed, 2 on usage or fatal errors (bad config, malformed seed).
//!
//! Beside the run: [`state`] (semaphores, status, `ci-agent status`), [`logging`],
//! [`seal`] (`ci-agent seal`), [`query`] (`ci-agent query`) and [`instance`] (the
//! instance-data files each pass writes, and `query KEY` over them).

pub mod boot;
pub mod cloudinit;
pub mod instance;
pub mod logging;
pub mod query;
pub mod seal;
pub mod state;
pub mod status;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;

use crate::agent::state::{LastCheck, ModuleOutcome, ModuleResult, RunStatus, State, StatusFile};
use crate::datasource::bootstrap::{self, BootstrapStatus, Outcome};
use crate::formats::civil::rfc3339;
use crate::formats::userdata::{Seed, SeedData, SeedError, SysInfo};
use crate::modules::{Context, Frequency, Module, Stage};
use crate::platform::cli::{self, Command, Opt, Value as CliValue};
use crate::platform::config::{absolute, load_config, BootstrapConfig, Config, DatasourceKind};
use crate::platform::dryrun::DryRunSystem;
use crate::platform::host::HostSystem;
use crate::platform::{FileLock, OsKind, System};

/// Which pass(es) this invocation runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StageSel {
    Early,
    Late,
    All,
}

impl StageSel {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "early" => Some(StageSel::Early),
            "late" => Some(StageSel::Late),
            "all" => Some(StageSel::All),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StageSel::Early => "early",
            StageSel::Late => "late",
            StageSel::All => "all",
        }
    }

    fn includes(self, stage: Stage) -> bool {
        matches!(
            (self, stage),
            (StageSel::All, _) | (StageSel::Early, Stage::Early) | (StageSel::Late, Stage::Late)
        )
    }

    /// True when this pass ends the boot's work (the late pass, or both at once).
    fn is_last(self) -> bool {
        self != StageSel::Early
    }
}

/// Options of one invocation.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Run one pass now whatever the sentinel says; never wait for a seed device (a
    /// failing bootstrap still retries as configured).
    pub once: bool,
    pub stage: StageSel,
    /// `--seed PATH`, passed to seed discovery as given.
    pub seed: Option<PathBuf>,
    /// The system is a [`DryRunSystem`]; also skip the bootstrap (network, scripts).
    pub dry_run: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            once: false,
            stage: StageSel::All,
            seed: None,
            dry_run: false,
        }
    }
}

type FindSeed = dyn Fn(&dyn System, &Config, Option<&Path>) -> anyhow::Result<Option<Seed>>;
type ParseSeed = dyn Fn(&Seed, &SysInfo) -> Result<SeedData, SeedError>;
type RunBootstrap = dyn Fn(&dyn System, &BootstrapConfig) -> anyhow::Result<Outcome>;
type StatBootstrap = dyn Fn(&dyn System, &BootstrapConfig) -> anyhow::Result<BootstrapStatus>;
type Include = dyn Fn(&Config, &Seed, SeedData) -> SeedData;

/// The pieces of a run that live elsewhere in the crate; tests substitute their own.
pub struct Parts {
    pub modules: Vec<Box<dyn Module>>,
    pub find_seed: Box<FindSeed>,
    pub parse_seed: Box<ParseSeed>,
    pub bootstrap: Box<RunBootstrap>,
    pub bootstrap_status: Box<StatBootstrap>,
    /// Fetch `#include` URLs and re-parse (only after the network is up).
    pub include: Box<Include>,
}

impl Parts {
    /// The real modules, seed discovery, parser and bootstrap.
    pub fn real() -> Self {
        Parts {
            modules: crate::modules::all(),
            find_seed: Box::new(|sys, cfg, seed| crate::datasource::find_seed(sys, cfg, seed)),
            parse_seed: Box::new(crate::formats::userdata::parse_seed_on),
            bootstrap: Box::new(|sys, cfg| bootstrap::run(sys, cfg)),
            bootstrap_status: Box::new(|sys, cfg| bootstrap::status(sys, cfg)),
            include: Box::new(crate::datasource::resolve_includes),
        }
    }
}

/// The facts a decision is made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    pub sentinel: bool,
    pub instance_id: String,
    pub applied: Option<String>,
    pub in_progress: Option<String>,
    pub once: bool,
}

/// What a pass does with a seed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Run every due module (per-instance, once and per-boot). The string says why.
    Apply(String),
    /// The instance was applied already: only per-boot modules.
    PerBoot,
    /// Nothing from this seed (the string says why).
    NothingDue(String),
    /// `require_firstboot` and no sentinel.
    Disabled,
}

/// The decision table (identical in both passes, so they agree).
pub fn decide(cfg: &Config, f: &Facts) -> Decision {
    let iid = &f.instance_id;
    if f.once {
        return Decision::Apply("--once".into());
    }
    // An instance a pass already started (with the sentinel, or --once) is finished even
    // without it: on FreeBSD /etc/rc may delete /firstboot before the backgrounded late
    // script decides, and the late pass must still run packages and runcmd.
    if f.in_progress.as_deref() == Some(iid.as_str()) {
        return Decision::Apply(format!("continuing instance {iid}"));
    }
    if cfg.require_firstboot {
        return if f.sentinel {
            Decision::Apply(format!(
                "first boot ({} exists)",
                cfg.firstboot_sentinel.display()
            ))
        } else {
            Decision::Disabled
        };
    }
    if f.sentinel {
        return Decision::Apply(format!(
            "first boot ({} exists)",
            cfg.firstboot_sentinel.display()
        ));
    }
    if f.applied.as_deref() == Some(iid.as_str()) {
        return Decision::PerBoot;
    }
    let last = f.applied.as_deref().unwrap_or("none");
    if cfg.rerun_on_new_instance_id {
        Decision::Apply(format!("new instance-id {iid} (last applied: {last})"))
    } else {
        Decision::NothingDue(format!(
            "instance-id {iid} differs from the last applied ({last}), but rerun_on_new_instance_id is false"
        ))
    }
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct Report {
    pub exit: u8,
    pub status: StatusFile,
}

/// One pass (or both) of the agent. Never fails: fatal errors become exit 2 and an
/// `error` status (written if the state directory is writable).
pub fn run(sys: &dyn System, config: &Config, opts: &RunOptions, parts: &Parts) -> Report {
    let mut r = Runner::new(sys, config, opts, parts);
    if let Some((_, reason)) = boot::disabled(sys, config) {
        log::info!("{reason}; nothing to do");
        r.status.status = RunStatus::Disabled;
        r.status.action = "disabled".into();
        r.status.detail = reason;
        return Report {
            exit: crate::exit::OK,
            status: r.status,
        };
    }
    let outcome = r.go();
    let report = match outcome {
        Ok(exit) => Report {
            exit,
            status: r.status.clone(),
        },
        Err(e) => {
            let msg = format!("{e:#}");
            log::error!("{msg}");
            r.status.status = RunStatus::Error;
            r.status.action = "fatal".into();
            r.status.detail = "the run could not complete".into();
            r.status.error = Some(msg);
            r.status.finished = Some(rfc3339(sys.now()));
            if let Err(e) = r.state.write_status(&r.status) {
                log::error!("{e:#}");
            }
            Report {
                exit: crate::exit::USAGE,
                status: r.status.clone(),
            }
        }
    };
    // Still under both locks: the pass ends in pass.json before a waiter can see it free.
    if r._pass.is_some() {
        if let Err(e) = boot::end_pass(
            sys,
            config,
            &report.status,
            report.exit,
            opts.stage.is_last(),
        ) {
            log::warn!("{e:#}");
        }
    }
    report
}

struct Runner<'a> {
    sys: &'a dyn System,
    config: &'a Config,
    opts: &'a RunOptions,
    parts: &'a Parts,
    state: State<'a>,
    status: StatusFile,
    /// The instance whose local seed copy is this pass's seed (the seed itself is gone).
    seed_from_copy: Option<String>,
    /// The run lock, held until the runner (and with it the final status write) is done.
    _lock: Option<FileLock>,
    /// This boot's pass record (`pass.lock` held), absent in a dry run.
    _pass: Option<boot::PassGuard>,
}

impl<'a> Runner<'a> {
    fn new(
        sys: &'a dyn System,
        config: &'a Config,
        opts: &'a RunOptions,
        parts: &'a Parts,
    ) -> Self {
        let state = State::new(sys, &config.state_dir);
        let status = StatusFile {
            schema_version: 1,
            status: RunStatus::Running,
            action: String::new(),
            detail: String::new(),
            instance_id: None,
            datasource: None,
            stage: opts.stage.as_str().into(),
            started: rfc3339(sys.now()),
            finished: None,
            seed_dir: None,
            applied_instance_id: None,
            modules: Vec::new(),
            warnings: Vec::new(),
            error: None,
            bootstrap: None,
            last_check: None,
            os: Some(match config.os {
                OsKind::Linux => "linux".into(),
                OsKind::FreeBsd => "freebsd".into(),
            }),
            version: Some(env!("CARGO_PKG_VERSION").into()),
        };
        Runner {
            sys,
            config,
            opts,
            parts,
            state,
            status,
            seed_from_copy: None,
            _lock: None,
            _pass: None,
        }
    }

    fn go(&mut self) -> anyhow::Result<u8> {
        self.state.ensure()?;
        // Before anything is read: a run that waited sees what the other one did.
        self._lock = Some(self.state.lock_run()?);
        if let Some(w) = boot::cloud_init_conflict(self.sys, self.config.os) {
            log::warn!("{w}");
            push_unique(&mut self.status.warnings, w);
        }
        if !self.opts.dry_run {
            match boot::begin_pass(self.sys, self.config, self.opts.stage.as_str()) {
                Ok(g) => self._pass = Some(g),
                // Only `status` needs it; the run itself goes on.
                Err(e) => log::warn!("{e:#}"),
            }
        }
        self.status.applied_instance_id = self.state.applied_instance();
        let previous = match self.state.read_status() {
            Ok(p) => p,
            Err(e) => {
                log::warn!("{e:#} (ignored; it will be replaced)");
                None
            }
        };

        // Discover and parse.
        // Wait for a seed device to appear (SCSI scans are asynchronous) only when one is
        // expected: a first boot (sentinel) or a machine that never applied an instance.
        // Every later boot of a clone whose seed was detached scans once and goes on, and
        // `--once` never waits.
        let expect_seed = self.sys.exists(&self.config.firstboot_sentinel)
            || self.status.applied_instance_id.is_none()
            || self.state.in_progress().is_some();
        let cfg_once;
        let cfg: &Config = if self.opts.once || !expect_seed {
            let mut c = self.config.clone();
            c.seed_wait_secs = 0;
            cfg_once = c;
            &cfg_once
        } else {
            self.config
        };
        let seed = if self.config.datasources.contains(&DatasourceKind::Nocloud) {
            (self.parts.find_seed)(self.sys, cfg, self.opts.seed.as_deref())
                .context("seed discovery failed")?
        } else {
            log::info!("the nocloud datasource is not configured");
            None
        };
        // The seed has gone but an instance is in progress: continue from its local copy.
        let seed = match (seed, self.state.in_progress()) {
            (None, Some(iid)) => {
                let copy = self
                    .state
                    .load_seed_copy(&iid, self.config.max_seed_file_bytes)
                    .unwrap_or_else(|e| {
                        log::warn!("{e:#}");
                        None
                    });
                if copy.is_some() {
                    log::info!("no seed found; continuing instance {iid} from its local copy");
                    self.seed_from_copy = Some(iid);
                }
                copy
            }
            (seed, _) => seed,
        };
        let data = match &seed {
            Some(seed) => {
                let facts = crate::platform::sys_info(self.sys, self.config.os);
                let data = (self.parts.parse_seed)(seed, &facts)
                    .map_err(anyhow::Error::new)
                    .with_context(|| format!("malformed seed ({})", seed.source))?;
                log::info!("seed {}: instance-id {}", data.source, data.instance_id);
                Some(data)
            }
            None => None,
        };

        let sentinel = self.sys.exists(&self.config.firstboot_sentinel);
        let decision = match &data {
            None => Decision::NothingDue("no seed found".into()),
            Some(d) => decide(
                self.config,
                &Facts {
                    sentinel,
                    instance_id: d.instance_id.clone(),
                    applied: self.status.applied_instance_id.clone(),
                    in_progress: self.state.in_progress(),
                    once: self.opts.once,
                },
            ),
        };
        // #include URLs, once the network is up, and only for a seed this pass applies
        // (the decision rests on meta-data, which includes cannot change).
        let data = match (data, &seed) {
            (Some(d), Some(seed))
                if !d.includes.is_empty()
                    && self.opts.stage != StageSel::Early
                    && matches!(decision, Decision::Apply(_) | Decision::PerBoot) =>
            {
                log::info!("fetching {} #include URL(s)", d.includes.len());
                Some((self.parts.include)(self.config, seed, d))
            }
            (data, _) => data,
        };
        if let Some(d) = &data {
            self.status.instance_id = Some(d.instance_id.clone());
            self.status.datasource = Some(d.source.clone());
            // Every boot (the run dir is emptied at boot), for templates, scripts and
            // `query` as any user.
            if let Err(e) = instance::write(self.sys, self.config, d) {
                log::warn!("{e:#}");
                push_unique(&mut self.status.warnings, format!("{e:#}"));
            }
        }

        let mut exit = crate::exit::OK;
        let mut acted = false;
        match (&decision, &data, &seed) {
            (Decision::Apply(_), Some(data), Some(_))
                if self.opts.stage == StageSel::Early && !data.includes.is_empty() =>
            {
                // The included parts can only be fetched once the network is up, and they
                // may hold keys for early modules: the late pass applies the whole
                // instance (its catch-up runs the early modules).
                self.status.action = "deferred".into();
                self.status.detail = format!(
                    "user-data of instance {} has #include URLs: applied by the late pass",
                    data.instance_id
                );
            }
            (Decision::Apply(why), Some(data), Some(seed)) => {
                log::info!(
                    "{} pass: applying instance {} ({why})",
                    self.opts.stage.as_str(),
                    data.instance_id
                );
                self.status.action = "apply".into();
                self.status.detail = why.clone();
                exit = self.apply(data, seed, previous.as_ref(), false)?;
                acted = true;
            }
            (Decision::PerBoot, Some(data), Some(seed)) => {
                let wanted = self.any_wanted_per_boot(data);
                if wanted {
                    log::info!(
                        "{} pass: instance {} already applied; running per-boot modules",
                        self.opts.stage.as_str(),
                        data.instance_id
                    );
                    self.status.action = "per-boot".into();
                    self.status.detail = format!(
                        "instance {} already applied; per-boot modules only",
                        data.instance_id
                    );
                    exit = self.apply(data, seed, previous.as_ref(), true)?;
                    acted = true;
                } else {
                    self.status.action = "nothing-due".into();
                    self.status.detail = format!("instance {} already applied", data.instance_id);
                }
            }
            (Decision::Disabled, _, _) => {
                self.status.action = "disabled".into();
                self.status.detail = format!(
                    "require_firstboot is set and {} does not exist",
                    self.config.firstboot_sentinel.display()
                );
            }
            (Decision::NothingDue(why), Some(_), _) => {
                self.status.action = "nothing-due".into();
                self.status.detail = why.clone();
            }
            _ => {
                self.status.action = "no-seed".into();
                self.status.detail = "no seed found".into();
                if sentinel {
                    log::info!(
                        "no seed found; {} is kept for the next boot",
                        self.config.firstboot_sentinel.display()
                    );
                }
            }
        }
        if !acted {
            log::info!("{} pass: {}", self.opts.stage.as_str(), self.status.detail);
        }

        // The bootstrap datasource, in the late pass, whatever the seed said: it has its
        // own gate file and attempt counter.
        let mut bootstrap_acted = false;
        if self.opts.stage.is_last() && self.config.datasources.contains(&DatasourceKind::Bootstrap)
        {
            bootstrap_acted = self.run_bootstrap();
            if self
                .status
                .modules
                .iter()
                .any(|m| m.name == "bootstrap" && m.result == ModuleOutcome::Failed)
            {
                exit = exit.max(crate::exit::FAILED);
            }
        }

        self.status.finished = Some(rfc3339(self.sys.now()));
        self.status.applied_instance_id = self.state.applied_instance();
        if acted || bootstrap_acted {
            let mut st = StatusFile::summarize(&self.status.modules, &self.status.warnings);
            if acted
                && !self.opts.stage.is_last()
                && self.status.action == "apply"
                && st != RunStatus::Error
            {
                // The late pass is still due for this instance.
                st = RunStatus::Running;
            }
            self.status.status = st;
            self.state.write_status(&self.status)?;
        } else if self.status.action == "deferred" {
            // The late pass applies this instance: until then it is running, and this
            // record (not the last instance's) is what `status --wait` waits on.
            self.status.status = RunStatus::Running;
            self.state.write_status(&self.status)?;
        } else {
            self.status.status = if self.status.action == "disabled" {
                RunStatus::Disabled
            } else {
                RunStatus::Done
            };
            self.record_check(previous)?;
        }
        Ok(exit)
    }

    /// A pass that did nothing keeps the last meaningful record and notes the check in
    /// it; with no record yet it writes one.
    fn record_check(&mut self, previous: Option<StatusFile>) -> anyhow::Result<()> {
        match previous {
            // Only a record of applied work is worth keeping (not a fatal error that
            // has gone away, nor an earlier "nothing to do").
            Some(mut prev)
                if prev.status != RunStatus::Running
                    && matches!(prev.action.as_str(), "apply" | "per-boot") =>
            {
                prev.last_check = Some(LastCheck {
                    time: self.status.finished.clone().unwrap_or_default(),
                    stage: self.opts.stage.as_str().into(),
                    action: self.status.action.clone(),
                    detail: self.status.detail.clone(),
                });
                prev.applied_instance_id = self.status.applied_instance_id.clone();
                if self.status.bootstrap.is_some() {
                    prev.bootstrap = self.status.bootstrap.clone();
                }
                self.state.write_status(&prev)?;
                self.status = prev;
            }
            _ => self.state.write_status(&self.status)?,
        }
        Ok(())
    }

    fn any_wanted_per_boot(&self, data: &SeedData) -> bool {
        let ctx = Context {
            sys: self.sys,
            os: self.config.os,
            config: self.config,
            seed: data,
            seed_dir: self.state.seed_dir(&data.instance_id),
            instance_dir: self.state.instance_dir(&data.instance_id),
            warnings: Vec::new(),
        };
        self.parts.modules.iter().any(|m| {
            m.frequency() == Frequency::PerBoot
                && self.opts.stage.includes(m.stage())
                && m.wanted(&ctx)
        })
    }

    /// Run the due modules of this pass for one instance; record and finalize.
    fn apply(
        &mut self,
        data: &SeedData,
        seed: &Seed,
        previous: Option<&StatusFile>,
        per_boot_only: bool,
    ) -> anyhow::Result<u8> {
        let iid = data.instance_id.clone();
        let mut early_pass_ran = false;
        // Carry the early pass's results into the late pass's record.
        if self.opts.stage == StageSel::Late {
            if let Some(prev) = previous {
                if prev.stage == "early"
                    && prev.action == "apply"
                    && prev.instance_id.as_deref() == Some(iid.as_str())
                {
                    early_pass_ran = true;
                    self.status.modules = prev
                        .modules
                        .iter()
                        .filter(|m| m.stage == Stage::Early)
                        .cloned()
                        .collect();
                    self.status.warnings = prev.warnings.clone();
                }
            }
        }
        // Seed warnings (unknown keys, unhandled parts, …) reach the console and the log,
        // not only status.json; once per instance (the late pass inherits the early
        // pass's list).
        for w in &data.warnings {
            if push_unique(&mut self.status.warnings, w.clone()) {
                log::warn!("{w}");
            }
        }
        if !per_boot_only {
            self.state.set_in_progress(&iid)?;
        }
        // The local copy is the only seed left when the seed has gone: it is used where it
        // is, never removed and rewritten (a power cut in between would lose it).
        let seed_dir = if self.seed_from_copy.as_deref() == Some(iid.as_str()) {
            self.state.seed_dir(&iid)
        } else {
            self.state.copy_seed(&iid, seed)?
        };
        self.status.seed_dir = Some(seed_dir.display().to_string());
        self.status.status = RunStatus::Running;
        self.state.write_status(&self.status)?;

        let mut ctx = Context {
            sys: self.sys,
            os: self.config.os,
            config: self.config,
            seed: data,
            seed_dir,
            instance_dir: self.state.instance_dir(&iid),
            warnings: Vec::new(),
        };
        let mut failed = false;
        // user-data (or vendor-data) that could not be read: recorded as a failure of its
        // own, once per instance; meta-data and whatever else could be read still apply.
        let unreadable = !data.errors.is_empty()
            && !per_boot_only
            && !self.status.modules.iter().any(|m| m.name == "user-data");
        if unreadable {
            let msg = data
                .errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ");
            log::error!("user-data: {msg}");
            self.status.modules.push(ModuleResult {
                name: "user-data".into(),
                stage: Stage::Early,
                frequency: Frequency::PerInstance,
                result: ModuleOutcome::Failed,
                error: Some(msg),
                duration_ms: 0,
            });
            failed = true;
        }
        // A late pass for an instance whose early pass did not run (FreeBSD's early rc.d
        // script is firstboot-only, so a clone with a new instance-id and no /firstboot
        // gets only the late script; or the early unit was disabled) also runs the early
        // per-instance and once modules. Their semaphores skip what is already done;
        // per-boot early modules (bootcmd) belong to the early pass alone.
        let catch_up = self.opts.stage == StageSel::Late && !per_boot_only && !early_pass_ran;
        for stage in [Stage::Early, Stage::Late] {
            let catching_up = catch_up && stage == Stage::Early;
            if !self.opts.stage.includes(stage) && !catching_up {
                continue;
            }
            let parts = self.parts;
            for m in parts.modules.iter().filter(|m| m.stage() == stage) {
                if per_boot_only && m.frequency() != Frequency::PerBoot {
                    continue;
                }
                if catching_up {
                    if m.frequency() == Frequency::PerBoot {
                        continue;
                    }
                    let done = self
                        .state
                        .semaphore(m.frequency(), &iid, m.name())
                        .is_some_and(|sem| self.state.has_semaphore(&sem));
                    if done {
                        continue;
                    }
                }
                if let Some(r) = self.run_module(m.as_ref(), &mut ctx, &iid) {
                    failed |= r.result == ModuleOutcome::Failed;
                    self.status.modules.push(r);
                }
            }
        }
        let earlier_failed = self
            .status
            .modules
            .iter()
            .any(|m| m.result == ModuleOutcome::Failed);
        if self.opts.stage.is_last() && !per_boot_only {
            if earlier_failed {
                log::warn!(
                    "instance {iid} is not complete; failed modules run again at the next boot"
                );
            } else {
                self.finalize(&iid)?;
            }
        }
        Ok(if failed {
            crate::exit::FAILED
        } else {
            crate::exit::OK
        })
    }

    fn run_module(&mut self, m: &dyn Module, ctx: &mut Context, iid: &str) -> Option<ModuleResult> {
        let name = m.name();
        // A rejected value of a key this module owns fails it (and only it), without
        // running it: nothing from the rejected entry is applied.
        let rejected: Vec<String> = ctx
            .seed
            .cloud_config
            .errors_for(m.keys())
            .map(ToString::to_string)
            .collect();
        if !rejected.is_empty() {
            let msg = rejected.join("; ");
            log::error!("module {name}: failed: {msg}");
            return Some(ModuleResult {
                name: name.into(),
                stage: m.stage(),
                frequency: m.frequency(),
                result: ModuleOutcome::Failed,
                error: Some(msg),
                duration_ms: 0,
            });
        }
        if !m.wanted(ctx) {
            log::debug!("module {name}: nothing to do");
            return None;
        }
        let sem = self.state.semaphore(m.frequency(), iid, name);
        let mut result = ModuleResult {
            name: name.into(),
            stage: m.stage(),
            frequency: m.frequency(),
            result: ModuleOutcome::Skipped,
            error: None,
            duration_ms: 0,
        };
        if let Some(sem) = &sem {
            if self.state.has_semaphore(sem) {
                log::info!("module {name}: already done ({})", sem.display());
                return Some(result);
            }
        }
        log::info!("module {name}: running");
        let t = Instant::now();
        let outcome = m.run(ctx);
        result.duration_ms = u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX);
        for w in ctx.warnings.drain(..) {
            log::warn!("module {name}: {w}");
            push_unique(&mut self.status.warnings, format!("{name}: {w}"));
        }
        match outcome {
            Ok(()) => {
                result.result = ModuleOutcome::Ok;
                log::info!("module {name}: ok ({} ms)", result.duration_ms);
                if let Some(sem) = &sem {
                    // Written only now: a module killed half-way runs again.
                    if let Err(e) = self.state.write_semaphore(sem) {
                        log::warn!("module {name}: {e:#}");
                        push_unique(
                            &mut self.status.warnings,
                            format!("{name}: {e:#} (it may run again)"),
                        );
                    }
                }
            }
            Err(e) => {
                let msg = format!("{e:#}");
                log::error!("module {name}: failed: {msg}");
                result.result = ModuleOutcome::Failed;
                result.error = Some(msg);
            }
        }
        Some(result)
    }

    /// The instance is applied: record it, end the in-progress mark, remove the sentinel
    /// (Linux; FreeBSD's `/etc/rc` removes it at the end of the boot). In this order, a kill
    /// between steps leaves a state the next run completes without redoing anything.
    fn finalize(&mut self, iid: &str) -> anyhow::Result<()> {
        self.state.set_applied_instance(iid)?;
        self.state.clear_in_progress()?;
        let sentinel = &self.config.firstboot_sentinel;
        if self.sys.exists(sentinel) {
            match self.config.os {
                OsKind::Linux => {
                    self.sys
                        .remove_file(sentinel)
                        .with_context(|| format!("cannot remove {}", sentinel.display()))?;
                    log::info!("removed {}", sentinel.display());
                }
                OsKind::FreeBsd => {
                    log::info!("{} is left for /etc/rc to remove", sentinel.display());
                }
            }
        }
        log::info!("instance {iid} applied");
        Ok(())
    }

    /// Run the vm-bootstrap datasource; returns true when it did something worth a record
    /// (an attempt, a failure).
    fn run_bootstrap(&mut self) -> bool {
        let cfg = &self.config.bootstrap;
        if self.opts.dry_run {
            log::info!(
                "dry run: the vm-bootstrap datasource ({}) is not contacted",
                cfg.url
            );
            return false;
        }
        // An attempt may retry for many minutes: record the pass as running first, so
        // `ci-agent status --wait` waits for it (go() writes the final record).
        if let Ok(b) = (self.parts.bootstrap_status)(self.sys, cfg) {
            if b.enabled && !b.done && !b.limit_reached {
                self.status.status = RunStatus::Running;
                self.status.bootstrap = serde_json::to_value(b).ok();
                if let Err(e) = self.state.write_status(&self.status) {
                    log::warn!("{e:#}");
                }
            }
        }
        let t = Instant::now();
        let outcome = (self.parts.bootstrap)(self.sys, cfg);
        let duration_ms = u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX);
        let entry = |result, error| ModuleResult {
            name: "bootstrap".into(),
            stage: Stage::Late,
            frequency: Frequency::PerBoot,
            result,
            error,
            duration_ms,
        };
        let (acted, rec) = match outcome {
            Ok(Outcome::Disabled) => {
                log::info!(
                    "bootstrap: disabled (no start-bootstrap in {})",
                    cfg.dir.display()
                );
                (false, None)
            }
            Ok(Outcome::AlreadyDone) => {
                log::info!("bootstrap: already done");
                (false, None)
            }
            Ok(Outcome::Succeeded { attempt }) => {
                log::info!("bootstrap: attempt {attempt} succeeded");
                (true, Some(entry(ModuleOutcome::Ok, None)))
            }
            Ok(Outcome::LimitReached { attempts, max }) => {
                let msg = format!("gave up after {attempts} of {max} attempts");
                log::error!("bootstrap: {msg}");
                (true, Some(entry(ModuleOutcome::Failed, Some(msg))))
            }
            Err(e) => {
                let msg = format!("{e:#}");
                log::error!("bootstrap: {msg}");
                (true, Some(entry(ModuleOutcome::Failed, Some(msg))))
            }
        };
        if let Some(r) = rec {
            self.status.modules.push(r);
        }
        match (self.parts.bootstrap_status)(self.sys, cfg) {
            Ok(b) => self.status.bootstrap = serde_json::to_value(b).ok(),
            Err(e) => log::warn!("bootstrap status: {e:#}"),
        }
        acted
    }
}

/// Push `s` unless it is there already; true when it was new.
fn push_unique(v: &mut Vec<String>, s: String) -> bool {
    let new = !v.contains(&s);
    if new {
        v.push(s);
    }
    new
}

// ---------------------------------------------------------------------------------------
// ci-agent run

/// `ci-agent run`'s options (the parser below; `platform::cli`).
pub const RUN_OPTIONS: &[Opt] = &[
    Opt::flag("once", &[]),
    Opt::with("stage", &[], CliValue::Choice(&["early", "late", "all"])),
    Opt::with("root", &[], CliValue::Dir),
    Opt::with("seed", &[], CliValue::Path),
    Opt::with("config", &[], CliValue::File),
    Opt::flag("dry-run", &['n']),
    cli::OS,
    Opt::flag("verbose", &['v']),
    cli::HELP,
];

/// Every `ci-agent` command with its options, in usage order.
pub const COMMANDS: &[Command] = &[
    Command {
        name: "run",
        opts: RUN_OPTIONS,
        operands: "",
    },
    Command {
        name: "status",
        opts: status::STATUS_OPTIONS,
        operands: "",
    },
    Command {
        name: "query",
        opts: query::OPTIONS,
        operands: "[KEY]",
    },
    Command {
        name: "seal",
        opts: seal::OPTIONS,
        operands: "",
    },
];

const RUN_USAGE: &str = "\
usage: ci-agent run [--once] [--stage early|late|all] [--root DIR] [--seed PATH]
                    [--config FILE] [-n|--dry-run] [--os linux|freebsd] [-v|--verbose]

Apply the first-boot seed: at boot when the first-boot sentinel exists or the seed's
instance-id is new (see the config keys require_firstboot, rerun_on_new_instance_id).

  --once           run one pass now whatever the sentinel and instance-id say (state is
                   still recorded; never waits for a seed device; a failing bootstrap
                   still retries every bootstrap.interval_secs up to its limit)
  --stage STAGE    early (before networking), late (after network-online; also runs the
                   vm-bootstrap datasource) or all (default)
  --root DIR       act on the system under DIR: every file effect stays under DIR and
                   commands/sethostname/chown are recorded in DIR/<state_dir>/commands.log
  --seed PATH      use this seed (directory, ISO or vfat image, or device) instead of
                   searching; a path on the machine running ci-agent
  --config FILE    agent config (default /etc/ci-agent.conf, FreeBSD
                   /usr/local/etc/ci-agent.conf, if present)
  -n, --dry-run    print the plan (writes, commands) and change nothing
  --os OS          apply the linux or freebsd policy (default: this system's)
  -v, --verbose    debug messages on stderr
  -h, --help       this help

exit status: 0 success or nothing due, 1 a module failed, 2 usage, config or seed error
";

struct RunArgs {
    opts: RunOptions,
    root: PathBuf,
    config: Option<PathBuf>,
    os: OsKind,
    verbose: bool,
}

fn parse_run_args(args: Vec<OsString>) -> Result<Option<RunArgs>, lexopt::Error> {
    use lexopt::prelude::*;
    let mut a = RunArgs {
        opts: RunOptions::default(),
        root: "/".into(),
        config: None,
        os: OsKind::host(),
        verbose: false,
    };
    let mut p = lexopt::Parser::from_args(args);
    while let Some(arg) = p.next()? {
        match arg {
            Long("once") => a.opts.once = true,
            Long("stage") => {
                let v = p.value()?.string()?;
                a.opts.stage = StageSel::parse(&v).ok_or_else(|| {
                    lexopt::Error::Custom(
                        format!("unknown stage {v:?} (early, late or all)").into(),
                    )
                })?;
            }
            Long("root") => a.root = p.value()?.into(),
            Long("seed") => a.opts.seed = Some(p.value()?.into()),
            Long("config") => a.config = Some(p.value()?.into()),
            Long("dry-run") | Short('n') => a.opts.dry_run = true,
            Long("os") => a.os = OsKind::from_arg(&mut p)?,
            Long("verbose") | Short('v') => a.verbose = true,
            Short('h') | Long("help") => {
                crate::out!("{RUN_USAGE}");
                return Ok(None);
            }
            _ => return Err(arg.unexpected()),
        }
    }
    Ok(Some(a))
}

/// `ci-agent run`.
pub fn cli(args: Vec<OsString>) -> u8 {
    let a = match parse_run_args(args) {
        Ok(Some(a)) => a,
        Ok(None) => return crate::exit::OK,
        Err(e) => {
            eprintln!("ci-agent run: {e}\n\n{RUN_USAGE}");
            return crate::exit::USAGE;
        }
    };
    crate::agent::logging::init("ci-agent", a.verbose);
    let code = match cli_run(&a) {
        Ok(code) => code,
        Err(e) => {
            log::error!("{e:#}");
            crate::exit::USAGE
        }
    };
    crate::agent::logging::close();
    code
}

fn cli_run(a: &RunArgs) -> anyhow::Result<u8> {
    let root = absolute(&a.root)?;
    if !root.is_dir() {
        anyhow::bail!("--root {}: not a directory", root.display());
    }
    let host = HostSystem::new(&root);
    if host.lacks_root() && !a.opts.dry_run {
        anyhow::bail!(
            "ci-agent run needs root to configure this system; \
             to try it as another user, give it a directory: --root DIR"
        );
    }
    let config = load_config(&host, &root, a.config.as_deref(), a.os)?;
    let mut opts = a.opts.clone();
    if let Some(seed) = &opts.seed {
        opts.seed = Some(absolute(seed)?);
    }
    let parts = Parts::real();
    let report = if opts.dry_run {
        let sys = DryRunSystem::new(&host, true);
        log::info!("dry run: nothing under {} is changed", root.display());
        run(&sys, &config, &opts, &parts)
    } else {
        if !host.is_live() {
            host.set_command_log(config.state_dir.join("commands.log"));
        }
        if let Err(e) = crate::agent::logging::open_file(&host, &config.log_file) {
            log::warn!("cannot open log file {}: {e}", config.log_file.display());
        }
        if host.is_live() {
            crate::agent::logging::open_syslog(config.os);
        }
        run(&host, &config, &opts, &parts)
    };
    let st = &report.status;
    log::info!(
        "{} pass finished: {} ({}), exit {}",
        opts.stage.as_str(),
        st.status.as_str(),
        st.detail,
        report.exit
    );
    Ok(report.exit)
}
