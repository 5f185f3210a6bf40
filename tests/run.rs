//! The first-boot run: the decision table, stages, semaphores, failures, idempotency,
//! sentinel handling, dry-run and crash consistency — at library level against the
//! recording fake with test modules (so these do not depend on the real modules), and
//! end-to-end through the built binary with `--root`.

mod common;

use common::snapshot;
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use ci_agent::agent::state::{ModuleOutcome, RunStatus, State};
use ci_agent::agent::{self, decide, Decision, Facts, Parts, RunOptions, StageSel};
use ci_agent::datasource::bootstrap::{BootstrapStatus, Outcome};
use ci_agent::formats::userdata::{Seed, SeedData, SeedError};
use ci_agent::modules::{Context, Frequency, Module, Stage};
use ci_agent::platform::config::{Config, DatasourceKind};
use ci_agent::platform::dryrun::DryRunSystem;
use ci_agent::platform::fake::{Effect, FakeSystem};
use ci_agent::platform::{Cmd, OsKind, System};

// ---------------------------------------------------------------------------------------
// Test modules and parts

#[derive(Default)]
struct Log {
    /// Successful runs per module.
    ok: BTreeMap<String, u32>,
    /// Every run attempt, in order.
    attempts: Vec<String>,
}

struct TestModule {
    name: &'static str,
    freq: Frequency,
    stage: Stage,
    fail: Arc<Mutex<bool>>,
    log: Arc<Mutex<Log>>,
}

impl Module for TestModule {
    fn name(&self) -> &'static str {
        self.name
    }
    fn frequency(&self) -> Frequency {
        self.freq
    }
    fn stage(&self) -> Stage {
        self.stage
    }
    fn wanted(&self, ctx: &Context) -> bool {
        // Wanted when the seed's user-data names it.
        ctx.seed.files.iter().any(|f| f == self.name)
            || ctx.seed.cloud_config_json.get(self.name).is_some()
    }
    fn run(&self, ctx: &mut Context) -> anyhow::Result<()> {
        self.log.lock().unwrap().attempts.push(self.name.into());
        // Effects go through System, so they are recorded (and can be faulted).
        ctx.sys.run(&Cmd::new(["mod", self.name]))?;
        ctx.sys.create_dir_all(Path::new("/out"), 0o755, None)?;
        ctx.sys.write_file(
            &PathBuf::from(format!("/out/{}", self.name)),
            ctx.seed_dir.display().to_string().as_bytes(),
            ci_agent::platform::WriteOpts::mode(0o644),
        )?;
        if *self.fail.lock().unwrap() {
            anyhow::bail!("{} failed on purpose", self.name);
        }
        if self.name == "warner" {
            ctx.warnings.push("something odd".into());
        }
        *self
            .log
            .lock()
            .unwrap()
            .ok
            .entry(self.name.into())
            .or_default() += 1;
        Ok(())
    }
}

struct Harness {
    _dir: tempfile::TempDir,
    sys: FakeSystem,
    cfg: Config,
    seed: Arc<Mutex<Option<Seed>>>,
    fail: BTreeMap<&'static str, Arc<Mutex<bool>>>,
    log: Arc<Mutex<Log>>,
    bootstrap: Arc<Mutex<Vec<Outcome>>>,
    bootstrap_calls: Arc<Mutex<u32>>,
}

const MODULES: &[(&str, Frequency, Stage)] = &[
    ("bootcmd", Frequency::PerBoot, Stage::Early),
    ("hostname", Frequency::PerInstance, Stage::Early),
    ("users", Frequency::PerInstance, Stage::Early),
    ("warner", Frequency::PerInstance, Stage::Early),
    ("machine_once", Frequency::Once, Stage::Early),
    ("packages", Frequency::PerInstance, Stage::Late),
    ("runcmd", Frequency::PerInstance, Stage::Late),
    ("scripts_per_boot", Frequency::PerBoot, Stage::Late),
];

/// A seed whose "cloud-config" names the modules that are wanted.
fn seed(iid: &str, keys: &[&str]) -> Seed {
    let mut s = Seed {
        source: "dir:/seed".into(),
        ..Seed::default()
    };
    s.files.insert(
        "meta-data".into(),
        format!("instance-id: {iid}\n").into_bytes(),
    );
    s.files
        .insert("user-data".into(), keys.join("\n").into_bytes());
    s.files.insert("CONFIG".into(), b"secret=1\n".to_vec());
    s
}

fn parse(seed: &Seed, _: &ci_agent::formats::userdata::SysInfo) -> Result<SeedData, SeedError> {
    let meta = String::from_utf8_lossy(
        seed.files
            .get("meta-data")
            .map(Vec::as_slice)
            .unwrap_or(b""),
    )
    .to_string();
    let Some(iid) = meta.strip_prefix("instance-id: ") else {
        return Err(SeedError {
            file: "meta-data".into(),
            line: Some(1),
            column: Some(1),
            message: "expected instance-id".into(),
        });
    };
    let ud = String::from_utf8_lossy(
        seed.files
            .get("user-data")
            .map(Vec::as_slice)
            .unwrap_or(b""),
    )
    .to_string();
    let mut cc = serde_json::Map::new();
    for k in ud.lines().filter(|l| !l.is_empty()) {
        cc.insert(k.to_string(), serde_json::Value::Bool(true));
    }
    let includes: Vec<String> = ud
        .lines()
        .filter_map(|l| l.strip_prefix("include "))
        .map(str::to_string)
        .collect();
    let mut warnings = Vec::new();
    if cc.contains_key("unknown_key") {
        warnings.push("user-data: unknown key 'unknown_key'".into());
    }
    Ok(SeedData {
        source: seed.source.clone(),
        instance_id: iid.trim().to_string(),
        cloud_config_json: serde_json::Value::Object(cc),
        files: seed.files.keys().cloned().collect(),
        warnings,
        includes,
        ..SeedData::default()
    })
}

impl Harness {
    fn new(os: OsKind) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let sys = FakeSystem::new(dir.path());
        let mut cfg = Config::defaults(os);
        cfg.datasources = vec![DatasourceKind::Nocloud, DatasourceKind::Bootstrap];
        let fail = MODULES
            .iter()
            .map(|(n, _, _)| (*n, Arc::new(Mutex::new(false))))
            .collect();
        Harness {
            _dir: dir,
            sys,
            cfg,
            seed: Arc::new(Mutex::new(None)),
            fail,
            log: Arc::default(),
            bootstrap: Arc::default(),
            bootstrap_calls: Arc::default(),
        }
    }

    fn parts(&self) -> Parts {
        let modules = MODULES
            .iter()
            .map(|(name, freq, stage)| {
                Box::new(TestModule {
                    name,
                    freq: *freq,
                    stage: *stage,
                    fail: self.fail[name].clone(),
                    log: self.log.clone(),
                }) as Box<dyn Module>
            })
            .collect();
        let seed = self.seed.clone();
        let outcomes = self.bootstrap.clone();
        let calls = self.bootstrap_calls.clone();
        Parts {
            modules,
            find_seed: Box::new(move |_, _, _| Ok(seed.lock().unwrap().clone())),
            parse_seed: Box::new(parse),
            bootstrap: Box::new(move |_, _| {
                *calls.lock().unwrap() += 1;
                Ok(outcomes.lock().unwrap().pop().unwrap_or(Outcome::Disabled))
            }),
            bootstrap_status: Box::new(|_, _| {
                Ok(BootstrapStatus {
                    enabled: false,
                    ..BootstrapStatus::default()
                })
            }),
            // "Fetching" an include adds the key named after the URL's last segment.
            include: Box::new(|_, _, mut d| {
                for url in std::mem::take(&mut d.includes) {
                    let key = url.rsplit('/').next().unwrap_or("").to_string();
                    d.cloud_config_json[key] = serde_json::Value::Bool(true);
                }
                d
            }),
        }
    }

    fn set_seed(&self, s: Option<Seed>) {
        *self.seed.lock().unwrap() = s;
    }

    fn fail(&self, name: &str, on: bool) {
        *self.fail[name].lock().unwrap() = on;
    }

    fn run(&self, stage: StageSel) -> agent::Report {
        self.run_opts(&RunOptions {
            stage,
            ..RunOptions::default()
        })
    }

    fn run_opts(&self, opts: &RunOptions) -> agent::Report {
        agent::run(&self.sys, &self.cfg, opts, &self.parts())
    }

    fn mod_commands(&self) -> Vec<String> {
        self.sys
            .command_lines()
            .into_iter()
            .filter(|l| l.starts_with("mod "))
            .map(|l| l[4..].to_string())
            .collect()
    }

    fn clear_commands_marker(&self) -> usize {
        self.mod_commands().len()
    }

    fn ok_count(&self, name: &str) -> u32 {
        self.log.lock().unwrap().ok.get(name).copied().unwrap_or(0)
    }

    fn state(&self) -> State<'_> {
        State::new(&self.sys, &self.cfg.state_dir)
    }

    fn status_json(&self) -> serde_json::Value {
        let p = self.cfg.state_dir.join("status.json");
        serde_json::from_str(&self.sys.read_string(p).expect("status.json")).unwrap()
    }

    fn sentinel(&self) -> bool {
        self.sys.exists(&self.cfg.firstboot_sentinel)
    }
}

const ALL_KEYS: &[&str] = &[
    "bootcmd",
    "hostname",
    "users",
    "machine_once",
    "packages",
    "runcmd",
    "scripts_per_boot",
];

// ---------------------------------------------------------------------------------------
// The decision table

fn facts(sentinel: bool, applied: Option<&str>, in_progress: Option<&str>, once: bool) -> Facts {
    Facts {
        sentinel,
        instance_id: "iid-new".into(),
        applied: applied.map(String::from),
        in_progress: in_progress.map(String::from),
        once,
    }
}

#[test]
fn decision_table() {
    use Decision::*;
    let apply = |d: &Decision| matches!(d, Apply(_));
    let defaults = Config::defaults(OsKind::Linux);
    let mut require = defaults.clone();
    require.require_firstboot = true;
    let mut no_rerun = defaults.clone();
    no_rerun.rerun_on_new_instance_id = false;

    // (config, sentinel, applied, in_progress, once) -> expected
    type Case<'a> = (
        &'a Config,
        bool,
        Option<&'a str>,
        Option<&'a str>,
        bool,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        // defaults: sentinel OR new iid
        (&defaults, true, None, None, false, "apply"),
        (&defaults, true, Some("iid-new"), None, false, "apply"),
        (&defaults, false, None, None, false, "apply"),
        (&defaults, false, Some("iid-old"), None, false, "apply"),
        (&defaults, false, Some("iid-new"), None, false, "per-boot"),
        (
            &defaults,
            false,
            Some("iid-old"),
            Some("iid-new"),
            false,
            "apply",
        ),
        (&defaults, false, Some("iid-new"), None, true, "apply"),
        // require_firstboot: only the sentinel (or --once)
        (&require, true, Some("iid-new"), None, false, "apply"),
        (&require, false, Some("iid-old"), None, false, "disabled"),
        // ... except that an instance already in progress is finished (FreeBSD's /etc/rc
        // may remove /firstboot before the backgrounded late pass decides).
        (&require, false, None, Some("iid-new"), false, "apply"),
        (&require, false, None, Some("iid-other"), false, "disabled"),
        (&require, false, None, None, true, "apply"),
        // rerun_on_new_instance_id: false: a new id alone does nothing
        (&no_rerun, false, Some("iid-old"), None, false, "nothing"),
        (&no_rerun, false, None, None, false, "nothing"),
        (&no_rerun, true, Some("iid-old"), None, false, "apply"),
        (
            &no_rerun,
            false,
            Some("iid-old"),
            Some("iid-new"),
            false,
            "apply",
        ),
        (&no_rerun, false, Some("iid-new"), None, false, "per-boot"),
        (&no_rerun, false, Some("iid-old"), None, true, "apply"),
        // an in-progress mark for another instance does not count
        (
            &defaults,
            false,
            Some("iid-new"),
            Some("iid-other"),
            false,
            "per-boot",
        ),
    ];
    for (i, (cfg, s, a, p, once, want)) in cases.into_iter().enumerate() {
        let d = decide(cfg, &facts(s, a, p, once));
        let got = match &d {
            x if apply(x) => "apply",
            PerBoot => "per-boot",
            NothingDue(_) => "nothing",
            Disabled => "disabled",
            _ => unreachable!(),
        };
        assert_eq!(got, want, "case {i}: {d:?}");
    }
}

// ---------------------------------------------------------------------------------------
// Library-level runs

#[test]
fn first_boot_applies_everything_then_second_run_is_idempotent() {
    let h = Harness::new(OsKind::Linux);
    h.sys.put("/firstboot", "");
    h.set_seed(Some(seed("iid-1", ALL_KEYS)));
    let r = h.run(StageSel::All);
    assert_eq!(r.exit, 0, "{:?}", r.status);
    assert_eq!(
        h.mod_commands(),
        [
            "bootcmd",
            "hostname",
            "users",
            "machine_once",
            "packages",
            "runcmd",
            "scripts_per_boot"
        ]
    );
    let st = h.status_json();
    assert_eq!(st["status"], "done");
    assert_eq!(st["action"], "apply");
    assert_eq!(st["instance_id"], "iid-1");
    assert_eq!(st["datasource"], "dir:/seed");
    assert_eq!(st["stage"], "all");
    assert_eq!(st["started"], "2026-01-01T00:00:00Z");
    assert!(st["finished"].is_string());
    assert_eq!(st["modules"].as_array().unwrap().len(), 7);
    assert_eq!(st["modules"][1]["name"], "hostname");
    assert_eq!(st["modules"][1]["stage"], "early");
    assert_eq!(st["modules"][1]["result"], "ok");
    assert!(st["modules"][1]["duration_ms"].is_u64());
    // Recorded state.
    let state = h.state();
    assert_eq!(state.applied_instance().as_deref(), Some("iid-1"));
    assert_eq!(state.in_progress(), None);
    assert!(h
        .sys
        .exists(Path::new("/var/lib/ci-agent/instances/iid-1/sem/hostname")));
    assert!(h
        .sys
        .exists(Path::new("/var/lib/ci-agent/sem/machine_once")));
    assert!(!h
        .sys
        .exists(Path::new("/var/lib/ci-agent/instances/iid-1/sem/bootcmd")));
    assert!(!h.sentinel(), "Linux removes the sentinel after success");
    let sd = h
        .sys
        .lstat(Path::new("/var/lib/ci-agent"))
        .unwrap()
        .unwrap();
    assert_eq!(sd.mode, 0o700);
    // The seed copy: modules saw it in Context.seed_dir.
    let seed_dir = "/var/lib/ci-agent/instances/iid-1/seed";
    assert_eq!(h.sys.read_string("/out/runcmd").unwrap(), seed_dir);
    assert_eq!(
        h.sys.read_string(format!("{seed_dir}/CONFIG")).unwrap(),
        "secret=1\n"
    );
    assert_eq!(
        h.sys
            .lstat(Path::new(&format!("{seed_dir}/CONFIG")))
            .unwrap()
            .unwrap()
            .mode,
        0o600
    );
    assert_eq!(st["seed_dir"], seed_dir);

    // Second boot, same instance: only per-boot modules.
    let before = h.clear_commands_marker();
    let r = h.run(StageSel::All);
    assert_eq!(r.exit, 0);
    assert_eq!(h.mod_commands()[before..], ["bootcmd", "scripts_per_boot"]);
    let st = h.status_json();
    assert_eq!(st["status"], "done");
    assert_eq!(st["action"], "per-boot");
    // And with no per-boot work, nothing at all, and the record is kept.
    h.set_seed(Some(seed("iid-1", &["hostname", "runcmd"])));
    let before = h.clear_commands_marker();
    let r = h.run(StageSel::All);
    assert_eq!(r.exit, 0);
    assert_eq!(h.mod_commands().len(), before);
    let st = h.status_json();
    assert_eq!(st["status"], "done");
    assert_eq!(st["action"], "per-boot");
    assert_eq!(st["last_check"]["action"], "nothing-due");
    assert_eq!(st["last_check"]["detail"], "instance iid-1 already applied");
    assert_eq!(st["warnings"].as_array().unwrap().len(), 0);
}

#[test]
fn freebsd_leaves_the_sentinel_to_etc_rc() {
    let h = Harness::new(OsKind::FreeBsd);
    assert_eq!(h.cfg.state_dir, Path::new("/var/db/ci-agent"));
    h.sys.put("/firstboot", "");
    h.set_seed(Some(seed("iid-1", ALL_KEYS)));
    let r = h.run(StageSel::All);
    assert_eq!(r.exit, 0);
    assert!(h.sentinel());
    assert_eq!(h.state().applied_instance().as_deref(), Some("iid-1"));
    assert!(h.sys.exists(Path::new("/var/db/ci-agent/status.json")));
    // The sentinel still exists on the next boot if rc has not run: per-instance work is
    // not repeated.
    let before = h.clear_commands_marker();
    h.run(StageSel::All);
    assert_eq!(h.mod_commands()[before..], ["bootcmd", "scripts_per_boot"]);
}

#[test]
fn a_failing_module_does_not_stop_the_rest_and_is_retried() {
    let h = Harness::new(OsKind::Linux);
    h.sys.put("/firstboot", "");
    h.set_seed(Some(seed("iid-1", ALL_KEYS)));
    h.fail("users", true);
    let r = h.run(StageSel::All);
    assert_eq!(r.exit, 1);
    assert_eq!(h.mod_commands().len(), 7, "later modules still ran");
    let st = h.status_json();
    assert_eq!(st["status"], "error");
    let users = st["modules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "users")
        .unwrap();
    assert_eq!(users["result"], "failed");
    assert_eq!(users["error"], "users failed on purpose");
    // Not applied: the sentinel stays, the instance stays in progress.
    assert!(h.sentinel());
    assert_eq!(h.state().applied_instance(), None);
    assert_eq!(h.state().in_progress().as_deref(), Some("iid-1"));
    assert!(!h
        .sys
        .exists(Path::new("/var/lib/ci-agent/instances/iid-1/sem/users")));

    // Next boot, fixed: only the failed module (and per-boot ones) run.
    h.fail("users", false);
    let before = h.clear_commands_marker();
    let r = h.run(StageSel::All);
    assert_eq!(r.exit, 0);
    assert_eq!(
        h.mod_commands()[before..],
        ["bootcmd", "users", "scripts_per_boot"]
    );
    let st = h.status_json();
    assert_eq!(st["status"], "done");
    assert!(st["modules"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["name"] == "hostname" && m["result"] == "skipped"));
    assert!(!h.sentinel());
    assert_eq!(h.state().applied_instance().as_deref(), Some("iid-1"));
    for n in ["hostname", "users", "packages", "runcmd", "machine_once"] {
        assert_eq!(h.ok_count(n), 1, "{n}");
    }
}

#[test]
fn two_stages_agree_and_the_late_pass_completes_the_instance() {
    let h = Harness::new(OsKind::Linux);
    h.sys.put("/firstboot", "");
    h.set_seed(Some(seed("iid-1", ALL_KEYS)));
    let r = h.run(StageSel::Early);
    assert_eq!(r.exit, 0);
    assert_eq!(
        h.mod_commands(),
        ["bootcmd", "hostname", "users", "machine_once"]
    );
    let st = h.status_json();
    assert_eq!(st["status"], "running", "the late pass is still due");
    assert_eq!(st["stage"], "early");
    assert!(h.sentinel(), "the sentinel stays until the late pass");
    assert_eq!(h.state().in_progress().as_deref(), Some("iid-1"));
    assert_eq!(h.state().applied_instance(), None);
    assert_eq!(
        *h.bootstrap_calls.lock().unwrap(),
        0,
        "no bootstrap before the network"
    );

    let r = h.run(StageSel::Late);
    assert_eq!(r.exit, 0);
    assert_eq!(
        h.mod_commands()[4..],
        ["packages", "runcmd", "scripts_per_boot"]
    );
    assert_eq!(*h.bootstrap_calls.lock().unwrap(), 1);
    let st = h.status_json();
    assert_eq!(st["status"], "done");
    assert_eq!(st["stage"], "late");
    let names: Vec<_> = st["modules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "bootcmd",
            "hostname",
            "users",
            "machine_once",
            "packages",
            "runcmd",
            "scripts_per_boot"
        ],
        "the late record carries the early pass's results"
    );
    assert!(!h.sentinel());
    assert_eq!(h.state().applied_instance().as_deref(), Some("iid-1"));
    assert_eq!(h.state().in_progress(), None);

    // Next boot, both passes: per-boot modules once per stage.
    let before = h.clear_commands_marker();
    h.run(StageSel::Early);
    h.run(StageSel::Late);
    assert_eq!(h.mod_commands()[before..], ["bootcmd", "scripts_per_boot"]);
    assert_eq!(h.status_json()["status"], "done");
}

#[test]
fn late_pass_alone_catches_up_on_early_modules_of_a_new_instance() {
    // FreeBSD: the early rc.d script runs only with /firstboot. A clone with a new
    // instance-id and no sentinel gets only the late pass, which must still apply the
    // early per-instance modules (hostname, users), but not per-boot bootcmd, and not a
    // once module already done by the template.
    let h = Harness::new(OsKind::FreeBsd);
    h.sys.put("/firstboot", "");
    h.set_seed(Some(seed("iid-template", ALL_KEYS)));
    assert_eq!(h.run(StageSel::All).exit, 0);
    h.sys.remove_file(Path::new("/firstboot")).unwrap();
    let before = h.clear_commands_marker();

    h.set_seed(Some(seed("iid-clone", ALL_KEYS)));
    assert_eq!(h.run(StageSel::Late).exit, 0);
    assert_eq!(
        h.mod_commands()[before..],
        [
            "hostname",
            "users",
            "packages",
            "runcmd",
            "scripts_per_boot"
        ]
    );
    assert_eq!(h.status_json()["status"], "done");
    assert_eq!(h.state().applied_instance().as_deref(), Some("iid-clone"));

    // The next boot's late pass has nothing per-instance left to do.
    let before = h.clear_commands_marker();
    h.run(StageSel::Late);
    assert_eq!(h.mod_commands()[before..], ["scripts_per_boot"]);
}

#[test]
fn include_urls_defer_the_instance_to_the_late_pass() {
    // The early pass cannot fetch #include URLs (no network yet) and the included parts
    // may configure early modules: it leaves the instance alone; the late pass fetches
    // and applies everything, early modules included.
    let h = Harness::new(OsKind::Linux);
    h.sys.put("/firstboot", "");
    h.set_seed(Some(seed(
        "iid-inc",
        &["bootcmd", "packages", "include http://10.0.2.2/hostname"],
    )));
    assert_eq!(h.run(StageSel::Early).exit, 0);
    assert!(h.mod_commands().is_empty(), "{:?}", h.mod_commands());
    assert_eq!(h.state().in_progress(), None);
    assert!(h.sentinel());

    assert_eq!(h.run(StageSel::Late).exit, 0);
    assert_eq!(h.mod_commands(), ["hostname", "packages"]);
    assert_eq!(h.status_json()["status"], "done");
    assert_eq!(h.state().applied_instance().as_deref(), Some("iid-inc"));
}

#[test]
fn a_deferred_instance_is_running_until_the_late_pass() {
    // `ci-agent status --wait` between the passes must wait for the late pass that will
    // apply the instance, not report the previous instance's record as done.
    let h = Harness::new(OsKind::Linux);
    h.set_seed(Some(seed("iid-1", &["hostname"])));
    assert_eq!(h.run(StageSel::All).exit, 0);
    assert_eq!(h.status_json()["status"], "done");
    h.set_seed(Some(seed(
        "iid-2",
        &["packages", "include http://10.0.2.2/hostname"],
    )));
    assert_eq!(h.run(StageSel::Early).exit, 0);
    let st = h.status_json();
    assert_eq!(st["status"], "running", "{st}");
    assert_eq!(st["action"], "deferred");
    assert_eq!(st["instance_id"], "iid-2");
    assert_eq!(h.run(StageSel::Late).exit, 0);
    assert_eq!(h.status_json()["status"], "done");
    assert_eq!(h.state().applied_instance().as_deref(), Some("iid-2"));
}

#[test]
fn include_urls_are_fetched_only_when_the_seed_is_applied() {
    // A pass that applies nothing from the seed must not spend the boot on #include
    // downloads (each one up to bootstrap.timeout_secs when the host is down).
    let mut h = Harness::new(OsKind::Linux);
    h.cfg.require_firstboot = true;
    h.set_seed(Some(seed(
        "iid-inc",
        &["packages", "include http://10.0.2.2/hostname"],
    )));
    let fetched = Arc::new(Mutex::new(0u32));
    let run_late = || {
        let mut parts = h.parts();
        let f = fetched.clone();
        let inner = std::mem::replace(&mut parts.include, Box::new(|_, _, d| d));
        parts.include = Box::new(move |c, s, d| {
            *f.lock().unwrap() += 1;
            inner(c, s, d)
        });
        agent::run(
            &h.sys,
            &h.cfg,
            &RunOptions {
                stage: StageSel::Late,
                ..RunOptions::default()
            },
            &parts,
        )
    };
    assert_eq!(run_late().exit, 0);
    assert_eq!(h.status_json()["status"], "disabled");
    assert_eq!(*fetched.lock().unwrap(), 0, "disabled: nothing fetched");
    h.sys.put("/firstboot", "");
    assert_eq!(run_late().exit, 0);
    assert_eq!(*fetched.lock().unwrap(), 1);
    assert_eq!(h.mod_commands(), ["hostname", "packages"]);
}

#[test]
fn late_pass_continues_an_instance_the_early_pass_started_with_once() {
    // rerun_on_new_instance_id off, no sentinel: only --once starts it; the late pass
    // continues the in-progress instance.
    let mut h = Harness::new(OsKind::Linux);
    h.cfg.rerun_on_new_instance_id = false;
    h.set_seed(Some(seed("iid-1", ALL_KEYS)));
    let r = h.run(StageSel::All);
    assert_eq!(r.exit, 0);
    assert!(h.mod_commands().is_empty());
    assert_eq!(h.status_json()["action"], "nothing-due");
    h.run_opts(&RunOptions {
        once: true,
        stage: StageSel::Early,
        ..RunOptions::default()
    });
    assert_eq!(h.mod_commands().len(), 4);
    h.run(StageSel::Late);
    assert_eq!(h.mod_commands().len(), 7);
    assert_eq!(h.state().applied_instance().as_deref(), Some("iid-1"));
}

#[test]
fn late_pass_uses_the_local_copy_when_the_seed_has_gone() {
    let h = Harness::new(OsKind::Linux);
    h.sys.put("/firstboot", "");
    h.set_seed(Some(seed("iid-1", ALL_KEYS)));
    h.run(StageSel::Early);
    h.set_seed(None); // the cdrom was ejected
    let r = h.run(StageSel::Late);
    assert_eq!(r.exit, 0, "{:?}", r.status);
    assert_eq!(
        h.mod_commands()[4..],
        ["packages", "runcmd", "scripts_per_boot"]
    );
    let st = h.status_json();
    assert_eq!(st["status"], "done");
    assert!(st["datasource"]
        .as_str()
        .unwrap()
        .starts_with("dir:/seed (local copy "));
    assert_eq!(h.state().applied_instance().as_deref(), Some("iid-1"));
    // Once applied, no seed means nothing to do (the copy is not used again).
    let before = h.clear_commands_marker();
    h.run(StageSel::All);
    assert_eq!(h.mod_commands().len(), before);
}

#[test]
fn a_pass_from_the_local_copy_never_rewrites_it() {
    // The seed has gone and the instance is not complete: the local copy is the only
    // seed left. A pass that applies from it must not delete and rewrite it, or a power
    // cut in between loses the instance for good (and each pass nested its source).
    let h = Harness::new(OsKind::Linux);
    h.sys.put("/firstboot", "");
    h.set_seed(Some(seed("iid-1", ALL_KEYS)));
    h.fail("users", true);
    assert_eq!(h.run(StageSel::All).exit, 1);
    h.set_seed(None);
    // A second boot from the copy, users still failing.
    assert_eq!(h.run(StageSel::All).exit, 1);
    // Third boot: the power goes when the run touches the copy.
    h.sys.set_fault(|e: &Effect| match e {
        Effect::Remove(p) | Effect::Write(p) | Effect::Mkdir(p)
            if p.starts_with("/var/lib/ci-agent/instances/iid-1/seed") =>
        {
            Err(io::Error::other("power cut"))
        }
        _ => Ok(()),
    });
    h.fail("users", false);
    let r = h.run(StageSel::All);
    h.sys.clear_fault();
    assert_eq!(r.exit, 0, "{:?}", r.status);
    assert_eq!(h.state().applied_instance().as_deref(), Some("iid-1"));
    let ds = h.status_json()["datasource"].as_str().unwrap().to_string();
    assert_eq!(ds.matches("(local copy").count(), 1, "{ds}");
    assert_eq!(h.ok_count("users"), 1);
}

#[test]
fn early_failure_makes_the_late_record_an_error() {
    let h = Harness::new(OsKind::Linux);
    h.sys.put("/firstboot", "");
    h.set_seed(Some(seed("iid-1", ALL_KEYS)));
    h.fail("hostname", true);
    assert_eq!(h.run(StageSel::Early).exit, 1);
    assert_eq!(h.status_json()["status"], "error");
    h.fail("hostname", false);
    assert_eq!(h.run(StageSel::Late).exit, 0);
    // The early failure is part of this boot's record; the instance is not complete.
    assert_eq!(h.status_json()["status"], "error");
    assert!(h.sentinel());
    assert_eq!(h.state().applied_instance(), None);
    // Next boot retries hostname and completes.
    h.run(StageSel::Early);
    h.run(StageSel::Late);
    assert_eq!(h.status_json()["status"], "done");
    assert_eq!(h.state().applied_instance().as_deref(), Some("iid-1"));
    assert!(!h.sentinel());
    assert_eq!(h.ok_count("hostname"), 1);
}

#[test]
fn new_instance_id_reconfigures_a_clone() {
    let h = Harness::new(OsKind::Linux);
    h.set_seed(Some(seed("iid-1", ALL_KEYS)));
    assert_eq!(
        h.run(StageSel::All).exit,
        0,
        "never applied: a new instance"
    );
    let before = h.clear_commands_marker();
    h.set_seed(Some(seed("iid-2", ALL_KEYS)));
    assert_eq!(h.run(StageSel::All).exit, 0);
    // Per-instance modules again; the once module not.
    assert_eq!(
        h.mod_commands()[before..],
        [
            "bootcmd",
            "hostname",
            "users",
            "packages",
            "runcmd",
            "scripts_per_boot"
        ]
    );
    assert_eq!(h.state().applied_instance().as_deref(), Some("iid-2"));
    assert!(h
        .sys
        .exists(Path::new("/var/lib/ci-agent/instances/iid-2/sem/runcmd")));
}

#[test]
fn require_firstboot_without_sentinel_is_disabled() {
    let mut h = Harness::new(OsKind::Linux);
    h.cfg.require_firstboot = true;
    h.set_seed(Some(seed("iid-1", ALL_KEYS)));
    let r = h.run(StageSel::All);
    assert_eq!(r.exit, 0);
    assert!(h.mod_commands().is_empty());
    assert_eq!(h.status_json()["status"], "disabled");
    h.sys.put("/firstboot", "");
    assert_eq!(h.run(StageSel::All).exit, 0);
    assert_eq!(h.mod_commands().len(), 7);
    assert!(!h.sentinel());
    // --once acts without the sentinel (semaphores still hold per-instance work).
    let before = h.clear_commands_marker();
    h.run_opts(&RunOptions {
        once: true,
        ..RunOptions::default()
    });
    assert_eq!(h.mod_commands()[before..], ["bootcmd", "scripts_per_boot"]);
}

#[test]
fn warnings_make_a_degraded_run() {
    let h = Harness::new(OsKind::Linux);
    h.set_seed(Some(seed("iid-1", &["warner", "unknown_key"])));
    assert_eq!(h.run(StageSel::All).exit, 0);
    let st = h.status_json();
    assert_eq!(st["status"], "degraded");
    let w: Vec<_> = st["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(w.contains(&"user-data: unknown key 'unknown_key'"), "{w:?}");
    assert!(w.contains(&"warner: something odd"), "{w:?}");
}

#[test]
fn no_seed_is_nothing_to_do_but_the_bootstrap_still_runs() {
    let h = Harness::new(OsKind::Linux);
    h.sys.put("/firstboot", "");
    h.set_seed(None);
    let r = h.run(StageSel::Early);
    assert_eq!(r.exit, 0);
    assert_eq!(*h.bootstrap_calls.lock().unwrap(), 0);
    let st = h.status_json();
    assert_eq!(st["status"], "done");
    assert_eq!(st["action"], "no-seed");
    assert!(h.sentinel(), "kept: no seed was applied");

    h.bootstrap
        .lock()
        .unwrap()
        .push(Outcome::Succeeded { attempt: 1 });
    assert_eq!(h.run(StageSel::Late).exit, 0);
    assert_eq!(*h.bootstrap_calls.lock().unwrap(), 1);
    let st = h.status_json();
    assert_eq!(st["modules"][0]["name"], "bootstrap");
    assert_eq!(st["modules"][0]["result"], "ok");
    assert!(st["bootstrap"].is_object());

    h.bootstrap.lock().unwrap().push(Outcome::LimitReached {
        attempts: 10,
        max: 10,
    });
    assert_eq!(h.run(StageSel::Late).exit, 1);
    let st = h.status_json();
    assert_eq!(st["status"], "error");
    assert_eq!(st["modules"][0]["error"], "gave up after 10 of 10 attempts");
}

#[test]
fn a_pending_bootstrap_is_recorded_as_running_while_it_runs() {
    // The bootstrap may retry for many minutes: `ci-agent status --wait` must wait for
    // it, also on a boot with no seed (vm-bootstrap alone) or nothing else due.
    let h = Harness::new(OsKind::Linux);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let run_late = |enabled: bool| {
        let mut parts = h.parts();
        let s = seen.clone();
        parts.bootstrap = Box::new(move |sys, _| {
            let st = ci_agent::agent::state::read_status_at(
                sys,
                Path::new("/var/lib/ci-agent/status.json"),
            )
            .unwrap();
            s.lock()
                .unwrap()
                .push(st.map(|st| st.status.as_str().to_string()));
            Ok(Outcome::Succeeded { attempt: 1 })
        });
        parts.bootstrap_status = Box::new(move |_, _| {
            Ok(BootstrapStatus {
                enabled,
                ..BootstrapStatus::default()
            })
        });
        agent::run(
            &h.sys,
            &h.cfg,
            &RunOptions {
                stage: StageSel::Late,
                ..RunOptions::default()
            },
            &parts,
        )
    };
    assert_eq!(run_late(true).exit, 0);
    assert_eq!(*seen.lock().unwrap(), [Some("running".to_string())]);
    assert_eq!(h.status_json()["status"], "done");
    // Applied instance, nothing per-boot due: the same.
    h.set_seed(Some(seed("iid-1", &["hostname"])));
    h.run(StageSel::All);
    seen.lock().unwrap().clear();
    assert_eq!(run_late(true).exit, 0);
    assert_eq!(*seen.lock().unwrap(), [Some("running".to_string())]);
    assert_eq!(h.status_json()["status"], "done");
    // A disabled (or finished) bootstrap does not touch the record first.
    seen.lock().unwrap().clear();
    assert_eq!(run_late(false).exit, 0);
    assert_eq!(*seen.lock().unwrap(), [Some("done".to_string())]);
}

#[test]
fn bootstrap_not_configured_is_not_called() {
    let mut h = Harness::new(OsKind::Linux);
    h.cfg.datasources = vec![DatasourceKind::Nocloud];
    h.set_seed(Some(seed("iid-1", ALL_KEYS)));
    h.run(StageSel::All);
    assert_eq!(*h.bootstrap_calls.lock().unwrap(), 0);
}

#[test]
fn malformed_seed_is_fatal_exit_2() {
    let h = Harness::new(OsKind::Linux);
    let mut s = seed("x", &[]);
    s.files.insert("meta-data".into(), b"garbage".to_vec());
    h.set_seed(Some(s));
    let r = h.run(StageSel::All);
    assert_eq!(r.exit, 2);
    let st = h.status_json();
    assert_eq!(st["status"], "error");
    assert_eq!(st["action"], "fatal");
    let e = st["error"].as_str().unwrap();
    assert!(e.contains("meta-data:1:1: expected instance-id"), "{e}");
    assert!(h.mod_commands().is_empty());
    // Once the bad seed is gone, the error is not kept.
    h.set_seed(None);
    assert_eq!(h.run(StageSel::All).exit, 0);
    let st = h.status_json();
    assert_eq!(st["status"], "done");
    assert_eq!(st["action"], "no-seed");
}

/// Every file under a directory: path → (mode, contents or link target).

#[test]
fn dry_run_plans_and_changes_nothing() {
    let h = Harness::new(OsKind::Linux);
    h.sys.put("/firstboot", "");
    h.sys.put("/etc/hostname", "template\n");
    h.set_seed(Some(seed("iid-1", ALL_KEYS)));
    let before = snapshot(h.sys.root());
    let dry = DryRunSystem::new(&h.sys, false);
    let r = agent::run(
        &dry,
        &h.cfg,
        &RunOptions {
            dry_run: true,
            ..RunOptions::default()
        },
        &h.parts(),
    );
    assert_eq!(r.exit, 0, "{:?}", r.status);
    assert_eq!(snapshot(h.sys.root()), before, "the root is byte-identical");
    assert!(h.sys.commands().is_empty());
    assert_eq!(*h.bootstrap_calls.lock().unwrap(), 0);
    let plan = dry.plan();
    assert!(plan.contains(&"run mod hostname".to_string()), "{plan:?}");
    assert!(plan.contains(&"remove /firstboot".to_string()), "{plan:?}");
    assert!(plan
        .iter()
        .any(|l| l.starts_with("write /var/lib/ci-agent/status.json")));
    assert!(plan.iter().all(|l| !l.contains("secret=1")));
}

/// Kill the run at every effect in turn (the effect fails and the run stops there, as if
/// the machine lost power), then boot again: the instance always completes, per-instance
/// work ran at least once and never more than twice (a module whose semaphore write was
/// lost runs again), and nothing is left in progress.
#[test]
fn crash_at_any_effect_recovers_on_the_next_run() {
    let probe = Harness::new(OsKind::Linux);
    probe.sys.put("/firstboot", "");
    probe.set_seed(Some(seed("iid-1", ALL_KEYS)));
    let counter = Arc::new(Mutex::new(0usize));
    let c = counter.clone();
    probe.sys.set_fault(move |_| {
        *c.lock().unwrap() += 1;
        Ok(())
    });
    probe.run(StageSel::All);
    let total = *counter.lock().unwrap();
    assert!(total > 20, "{total}");

    for n in 1..=total {
        let h = Harness::new(OsKind::Linux);
        h.sys.put("/firstboot", "");
        h.set_seed(Some(seed("iid-1", ALL_KEYS)));
        let count = Arc::new(Mutex::new(0usize));
        let c = count.clone();
        // The first n-1 effects happen, the n-th and all later ones fail: a power cut.
        h.sys.set_fault(move |e: &Effect| {
            let mut c = c.lock().unwrap();
            *c += 1;
            if *c >= n {
                Err(io::Error::other(format!("power cut at {e:?}")))
            } else {
                Ok(())
            }
        });
        let _ = h.run(StageSel::All);
        h.sys.clear_fault();
        let r = h.run(StageSel::All);
        assert_eq!(r.exit, 0, "cut at effect {n}: {:?}", r.status);
        let st = h.status_json();
        assert_eq!(st["status"], "done", "cut at effect {n}");
        assert_eq!(h.state().applied_instance().as_deref(), Some("iid-1"));
        assert_eq!(h.state().in_progress(), None);
        assert!(!h.sentinel());
        for name in ["hostname", "users", "machine_once", "packages", "runcmd"] {
            let k = h.ok_count(name);
            assert!(
                (1..=2).contains(&k),
                "cut at effect {n}: {name} succeeded {k} times"
            );
        }
        let st = h.state().read_status().unwrap().unwrap();
        assert!(st.modules.iter().all(|m| m.result != ModuleOutcome::Failed));
        assert_eq!(st.status, RunStatus::Done);
    }
}

// ---------------------------------------------------------------------------------------
// End to end through the binary (needs the real seed parser and modules)

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ci-agent"))
}

struct Root {
    dir: tempfile::TempDir,
}

impl Root {
    fn new() -> Self {
        let r = Root {
            dir: tempfile::tempdir().unwrap(),
        };
        // Under --root, account tools are recorded, not run: the users the seeds use
        // exist already (the modules then only manage keys, groups and passwords).
        r.put(
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\ndebian:x:1000:1000::/home/debian:/bin/bash\nfreebsd:x:1001:1001::/home/freebsd:/bin/sh\nbob:x:1002:1002::/home/bob:/bin/sh\n",
        );
        r.put(
            "etc/group",
            "root:x:0:\nsudo:x:27:debian\nadm:x:4:debian\nwheel:x:0:root,freebsd\ndebian:x:1000:\nfreebsd:x:1001:\nbob:x:1002:\n",
        );
        r.put("etc/ssh/sshd_config", "PasswordAuthentication no\n");
        r.put(
            "etc/sudoers",
            "root ALL=(ALL) ALL\n@includedir /etc/sudoers.d\n",
        );
        r.put(
            "usr/local/etc/sudoers",
            "root ALL=(ALL) ALL\n@includedir /usr/local/etc/sudoers.d\n",
        );
        std::fs::create_dir_all(r.path().join("home/debian")).unwrap();
        std::fs::create_dir_all(r.path().join("home/bob")).unwrap();
        r.put("etc/hostname", "template\n");
        r
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
    fn put(&self, rel: &str, data: &str) {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }
    fn read(&self, rel: &str) -> Option<String> {
        std::fs::read_to_string(self.path().join(rel)).ok()
    }
    /// A NoCloud seed directory *outside* the guest tree.
    fn seed(&self, user_data: &str, meta: &str) -> PathBuf {
        let d = self.path().join("seed-dir");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("user-data"), user_data).unwrap();
        std::fs::write(d.join("meta-data"), meta).unwrap();
        d
    }
    fn run(&self, extra: &[&str]) -> std::process::Output {
        let mut c = bin();
        c.arg("run").arg("--root").arg(self.path());
        c.args(extra);
        c.env_remove("JOURNAL_STREAM");
        c.output().unwrap()
    }
    fn status(&self) -> serde_json::Value {
        serde_json::from_str(
            &self
                .read("var/lib/ci-agent/status.json")
                .expect("status.json"),
        )
        .unwrap()
    }
    fn commands(&self) -> String {
        self.read("var/lib/ci-agent/commands.log")
            .unwrap_or_default()
    }
}

fn text(o: &std::process::Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn cli_usage_errors_exit_2() {
    let o = bin().args(["run", "--stage", "middle"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown stage"));
    let o = bin().args(["run", "--bogus"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let o = bin().args(["run", "--help"]).output().unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).contains("--stage"));
    let o = bin()
        .args(["run", "--root", "/nonexistent/x"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn cli_bad_config_exit_2_naming_the_file() {
    let r = Root::new();
    r.put(
        "etc/ci-agent.conf",
        "state_dir: /var/lib/x\nfirstboot_sentinal: /fb\n",
    );
    let o = r.run(&["--os", "linux"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("/etc/ci-agent.conf") && err.contains("firstboot_sentinal"),
        "{err}"
    );
    // --config outside the root.
    let cfg = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(cfg.path(), "bootstrap:\n  max_retry: lots\n").unwrap();
    let o = r.run(&["--config", cfg.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains(cfg.path().to_str().unwrap()));
    // Nothing was applied.
    assert!(r.read("var/lib/ci-agent/status.json").is_none());
}

#[test]
fn cli_applies_a_seed_under_root_and_is_idempotent() {
    let r = Root::new();
    r.put("firstboot", "");
    let seed = r.seed(
        "#cloud-config\nhostname: clone-7\nruncmd:\n  - echo hello\n",
        "instance-id: iid-e2e-1\n",
    );
    let o = r.run(&["--os", "linux", "--seed", seed.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let st = r.status();
    assert_eq!(st["status"], "done", "{st}");
    assert_eq!(st["instance_id"], "iid-e2e-1");
    assert_eq!(r.read("etc/hostname").unwrap().trim(), "clone-7");
    assert!(r.read("firstboot").is_none(), "sentinel removed on Linux");
    let cmds = r.commands();
    assert!(cmds.contains("sethostname clone-7"), "{cmds}");
    assert!(r.read("var/log/ci-agent.log").is_some());
    assert!(r
        .read("var/lib/ci-agent/instances/iid-e2e-1/seed/user-data")
        .is_some());

    // Second run: no new commands from per-instance modules.
    let o = r.run(&["--os", "linux", "--seed", seed.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(r.commands(), cmds, "nothing per-instance ran again");
}

#[test]
fn cli_two_stages_then_status() {
    let r = Root::new();
    r.put("firstboot", "");
    let seed = r.seed(
        "#cloud-config\nhostname: staged-1\nruncmd:\n  - echo late\n",
        "instance-id: iid-staged\n",
    );
    let s = seed.to_str().unwrap();
    let o = r.run(&["--os", "linux", "--stage", "early", "--seed", s]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(r.status()["status"], "running");
    assert_eq!(r.read("etc/hostname").unwrap().trim(), "staged-1");
    assert!(r.read("firstboot").is_some());
    let st = bin()
        .args(["status", "--os", "linux", "--root"])
        .arg(r.path())
        .output()
        .unwrap();
    // cloud-init's words and codes: running exits 0 (the late pass is due).
    assert_eq!(st.status.code(), Some(0), "running");
    assert!(String::from_utf8_lossy(&st.stdout).starts_with("status: running\n"));
    let o = r.run(&["--os", "linux", "--stage", "late", "--seed", s]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(r.read("firstboot").is_none());
    let st = bin()
        .args(["status", "--os", "linux", "--root"])
        .arg(r.path())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&st.stdout);
    assert_eq!(st.status.code(), Some(0), "{out}");
    assert!(out.contains("status: done"), "{out}");
    assert!(out.contains("hostname") && out.contains("runcmd"), "{out}");
    assert!(
        out.contains("seed files (CI_AGENT_SEED_DIR): /var/lib/ci-agent/instances/iid-staged/seed"),
        "{out}"
    );
}

#[test]
fn cli_freebsd_keeps_the_sentinel() {
    let r = Root::new();
    r.put("firstboot", "");
    let seed = r.seed("#cloud-config\nhostname: bsd-1\n", "instance-id: iid-bsd\n");
    let o = r.run(&["--os", "freebsd", "--seed", seed.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(r.read("firstboot").is_some());
    let st: serde_json::Value =
        serde_json::from_str(&r.read("var/db/ci-agent/status.json").unwrap()).unwrap();
    assert_eq!(st["status"], "done");
    assert_eq!(st["os"], "freebsd");
}

#[test]
fn cli_failing_module_exit_1_and_the_others_still_run() {
    let r = Root::new();
    r.put("etc/somedir/keep", "");
    // Writing a file over a directory fails: write_files fails, the rest goes on.
    let seed = r.seed(
        "#cloud-config\nhostname: clone-f\nwrite_files:\n  - path: /etc/somedir\n    content: x\nruncmd:\n  - echo after\n",
        "instance-id: iid-fail\n",
    );
    let o = r.run(&["--os", "linux", "--seed", seed.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let st = r.status();
    assert_eq!(st["status"], "error");
    let modules = st["modules"].as_array().unwrap();
    assert!(modules
        .iter()
        .any(|m| m["name"] == "write_files" && m["result"] == "failed"));
    assert!(
        modules
            .iter()
            .any(|m| m["name"] == "runcmd" && m["result"] == "ok"),
        "{st}"
    );
    assert_eq!(r.read("etc/hostname").unwrap().trim(), "clone-f");
    // Not applied: the next boot retries write_files only.
    assert!(r.read("var/lib/ci-agent/instance-id").is_none());
}

#[test]
fn cli_dry_run_leaves_the_root_byte_identical() {
    let r = Root::new();
    r.put("firstboot", "");
    let seed = r.seed(
        "#cloud-config\nhostname: dry-1\npassword: hunter2-dry\nruncmd:\n  - echo hi\n",
        "instance-id: iid-dry\n",
    );
    let before = snapshot(r.path());
    let o = r.run(&[
        "--os",
        "linux",
        "--dry-run",
        "--seed",
        seed.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(snapshot(r.path()), before);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("write /etc/hostname"), "{out}");
    assert!(out.contains("remove /firstboot"), "{out}");
    assert!(
        !out.contains("hunter2-dry") && !String::from_utf8_lossy(&o.stderr).contains("hunter2-dry")
    );
}

#[test]
fn cli_secrets_never_reach_logs() {
    let r = Root::new();
    let seed = r.seed(
        "#cloud-config\npassword: S3cret-default\nchpasswd:\n  expire: false\n  users:\n    - {name: root, password: S3cret-root, type: text}\nusers:\n  - default\n  - name: bob\n    plain_text_passwd: S3cret-bob\n",
        "instance-id: iid-secret\n",
    );
    let o = r.run(&["--os", "linux", "--seed", seed.to_str().unwrap()]);
    assert!(matches!(o.status.code(), Some(0) | Some(1)), "{}", text(&o));
    let log = r.read("var/log/ci-agent.log").unwrap();
    let cmds = r.commands();
    let all = format!("{log}\n{cmds}\n{}", text(&o));
    for s in ["S3cret-default", "S3cret-root", "S3cret-bob"] {
        assert!(!all.contains(s), "{s} leaked:\n{all}");
    }
    assert!(!log.is_empty());
}

#[test]
fn cli_no_seed_with_bootstrap_only_exits_0() {
    let r = Root::new();
    r.put("etc/ci-agent.conf", "datasources: [bootstrap]\n");
    let o = r.run(&["--os", "linux"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let st = r.status();
    assert_eq!(st["action"], "no-seed");
    assert_eq!(st["status"], "done");
}

// ---------------------------------------------------------------------------------------
// The real parser and modules, with a directory seed read by the test itself (independent
// of seed discovery), under a recording root.

fn dir_seed(dir: &Path) -> Seed {
    let mut s = Seed {
        source: format!("dir:{}", dir.display()),
        ..Seed::default()
    };
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        s.files.insert(
            e.file_name().to_string_lossy().into_owned(),
            std::fs::read(e.path()).unwrap(),
        );
    }
    s
}

#[test]
fn real_modules_apply_a_seed_and_keep_secrets_out_of_logs() {
    use ci_agent::platform::host::HostSystem;
    let r = Root::new();
    r.put("firstboot", "");
    let seed_dir = r.seed(
        "#cloud-config\nhostname: real-1\npassword: S3cret-default\nchpasswd:\n  expire: false\n  users:\n    - {name: root, password: S3cret-root, type: text}\nusers:\n  - default\n  - name: bob\n    plain_text_passwd: S3cret-bob\n    ssh_authorized_keys: [ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBob bob@x]\nruncmd:\n  - echo hello-from-runcmd\n",
        "instance-id: iid-real\n",
    );
    let sys = HostSystem::new(r.path());
    sys.set_command_log("/var/lib/ci-agent/commands.log".into());
    ci_agent::agent::logging::init("ci-agent-test", false);
    ci_agent::agent::logging::set_stderr_level(log::LevelFilter::Off);
    ci_agent::agent::logging::open_file(&sys, Path::new("/var/log/ci-agent.log")).unwrap();
    let cfg = Config::defaults(OsKind::Linux);
    let mut parts = Parts::real();
    let sd = seed_dir.clone();
    parts.find_seed = Box::new(move |_, _, _| Ok(Some(dir_seed(&sd))));
    parts.bootstrap = Box::new(|_, _| Ok(Outcome::Disabled));
    let rep = agent::run(&sys, &cfg, &RunOptions::default(), &parts);
    ci_agent::agent::logging::close();
    assert_eq!(rep.exit, 0, "{:#?}", rep.status);
    let st = r.status();
    assert_eq!(st["instance_id"], "iid-real");
    assert_eq!(r.read("etc/hostname").unwrap().trim(), "real-1");
    let cmds = r.commands();
    assert!(cmds.contains("sethostname real-1"), "{cmds}");
    let log = r.read("var/log/ci-agent.log").unwrap();
    for s in ["S3cret-default", "S3cret-root", "S3cret-bob"] {
        assert!(!log.contains(s), "{s} in the log:\n{log}");
        assert!(!cmds.contains(s), "{s} in commands.log:\n{cmds}");
        assert!(!r.read("var/lib/ci-agent/status.json").unwrap().contains(s));
    }
    assert!(cmds.contains("chpasswd (arguments withheld)"), "{cmds}");
    assert!(r
        .read("home/bob/.ssh/authorized_keys")
        .unwrap()
        .contains("bob@x"));
    let script = r
        .read("var/lib/ci-agent/instances/iid-real/runcmd")
        .unwrap_or_default();
    assert!(script.contains("hello-from-runcmd"), "{script}");
    assert!(r.read("firstboot").is_none());
    // Idempotent: a second run adds no per-instance commands.
    let rep2 = agent::run(&sys, &cfg, &RunOptions::default(), &parts);
    assert_eq!(rep2.exit, 0, "{:?}", rep2.status);
    assert_eq!(r.commands(), cmds);
}

#[test]
fn seed_devices_are_awaited_only_when_a_seed_is_expected() {
    let h = Harness::new(OsKind::Linux);
    let waits = Arc::new(Mutex::new(Vec::new()));
    let run = |h: &Harness| {
        let mut parts = h.parts();
        let (w, seed) = (waits.clone(), h.seed.clone());
        parts.find_seed = Box::new(move |_, cfg, _| {
            w.lock().unwrap().push(cfg.seed_wait_secs);
            Ok(seed.lock().unwrap().clone())
        });
        agent::run(&h.sys, &h.cfg, &RunOptions::default(), &parts)
    };
    // Nothing applied yet: wait for the device.
    run(&h);
    // First boot of a clone: wait; it applies.
    h.sys.put("/firstboot", "");
    h.set_seed(Some(seed("iid-1", ALL_KEYS)));
    assert_eq!(run(&h).exit, 0);
    // Later boots with the seed detached: one scan, no waiting.
    h.set_seed(None);
    run(&h);
    let d = h.cfg.seed_wait_secs;
    assert_eq!(*waits.lock().unwrap(), [d, d, 0]);
}

#[test]
fn cli_a_second_run_waits_for_the_lock_of_the_first() {
    use std::io::{BufRead, BufReader, Read};
    use std::os::unix::fs::PermissionsExt;
    let r = Root::new();
    r.put("firstboot", "");
    let seed = r.seed(
        "#cloud-config\nhostname: locked\nruncmd:\n  - echo once\n",
        "instance-id: iid-lock\n",
    );
    // Another run (this test) holds the lock: the state dir and its lock file exist.
    std::fs::create_dir_all(r.path().join("var/lib/ci-agent")).unwrap();
    std::fs::set_permissions(
        r.path().join("var/lib/ci-agent"),
        std::fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    let sys = ci_agent::platform::host::HostSystem::new(r.path());
    let held = sys
        .lock_file(Path::new("/var/lib/ci-agent/run.lock"), false)
        .unwrap()
        .expect("the lock is free");

    let mut child = bin()
        .arg("run")
        .arg("--root")
        .arg(r.path())
        .args(["--os", "linux", "--seed", seed.to_str().unwrap()])
        .env_remove("JOURNAL_STREAM")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        assert!(
            err.read_line(&mut line).unwrap() > 0,
            "stderr ended: {seen}"
        );
        seen.push_str(&line);
        if line.contains("waiting for it to finish") {
            break;
        }
    }
    assert!(seen.contains("run.lock"), "{seen}");
    // Blocked in flock: it has decided nothing and applied nothing.
    assert!(child.try_wait().unwrap().is_none(), "{seen}");
    assert_eq!(r.read("etc/hostname").unwrap().trim(), "template");
    assert!(r.read("var/lib/ci-agent/status.json").is_none());

    drop(held);
    err.read_to_string(&mut seen).unwrap();
    let st = child.wait().unwrap();
    assert_eq!(st.code(), Some(0), "{seen}");
    assert_eq!(r.read("etc/hostname").unwrap().trim(), "locked");
    assert_eq!(r.status()["status"], "done");
    let m = std::fs::metadata(r.path().join("var/lib/ci-agent/run.lock")).unwrap();
    assert_eq!(m.permissions().mode() & 0o777, 0o600);

    // A run whose lock is free (the first one has ended) never waits.
    let o = r.run(&["--os", "linux", "--seed", seed.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(!String::from_utf8_lossy(&o.stderr).contains("waiting"));
}
