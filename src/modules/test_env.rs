//! Unit-test scaffolding for modules: a temp root behind the recording fake, the default
//! config for an OS, a hand-built seed, and a way to run one module and get its result and
//! warnings.

use std::path::PathBuf;

use crate::config::Config;
use crate::modules::{fake_accounts, Context, Module};
use crate::platform::fake::FakeSystem;
use crate::platform::OsKind;
use crate::userdata::SeedData;

pub struct Env {
    // Kept alive for the duration of the test.
    _dir: tempfile::TempDir,
    pub sys: FakeSystem,
    pub os: OsKind,
    pub config: Config,
    pub seed: SeedData,
}

impl Env {
    /// A root with a minimal passwd/group for `os` and working account tools.
    pub fn new(os: OsKind) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let sys = FakeSystem::new(dir.path());
        let admin = match os {
            OsKind::Linux => "sudo:x:27:\nadm:x:4:\n",
            OsKind::FreeBsd => "wheel:x:0:root\noperator:x:5:root\n",
        };
        sys.put("/etc/passwd", "root:x:0:0:root:/root:/bin/sh\n");
        sys.put("/etc/group", format!("root:x:0:\n{admin}"));
        fake_accounts::install(&sys);
        Env {
            _dir: dir,
            sys,
            os,
            config: Config::defaults(os),
            seed: SeedData {
                instance_id: "iid-test".into(),
                source: "dir:/seed".into(),
                ..SeedData::default()
            },
        }
    }

    pub fn ctx(&self) -> Context<'_> {
        Context {
            sys: &self.sys,
            os: self.os,
            config: &self.config,
            seed: &self.seed,
            seed_dir: PathBuf::from("/run/ci-agent/seed"),
            instance_dir: self
                .config
                .state_dir
                .join("instances")
                .join(&self.seed.instance_id),
            warnings: Vec::new(),
        }
    }

    /// Run a module if it is wanted: `None` when not wanted, else its result and warnings.
    pub fn run(&self, m: &dyn Module) -> Option<(anyhow::Result<()>, Vec<String>)> {
        let mut ctx = self.ctx();
        if !m.wanted(&ctx) {
            return None;
        }
        let r = m.run(&mut ctx);
        Some((r, ctx.warnings))
    }

    /// Run a module that must be wanted and must succeed; returns its warnings.
    pub fn run_ok(&self, m: &dyn Module) -> Vec<String> {
        match self.run(m) {
            None => panic!("module {} not wanted", m.name()),
            Some((Err(e), _)) => panic!("module {} failed: {e:#}", m.name()),
            Some((Ok(()), w)) => w,
        }
    }

    /// Run a module that must be wanted and must fail; returns the error text.
    pub fn run_err(&self, m: &dyn Module) -> String {
        match self.run(m) {
            None => panic!("module {} not wanted", m.name()),
            Some((Ok(()), _)) => panic!("module {} succeeded", m.name()),
            Some((Err(e), _)) => format!("{e:#}"),
        }
    }

    pub fn lines(&self) -> Vec<String> {
        self.sys.command_lines()
    }

    pub fn read(&self, p: &str) -> String {
        self.sys
            .read_string(p)
            .unwrap_or_else(|| panic!("{p} missing"))
    }

    pub fn mode(&self, p: &str) -> u32 {
        use crate::platform::System;
        self.sys
            .lstat(std::path::Path::new(p))
            .unwrap()
            .unwrap_or_else(|| panic!("{p} missing"))
            .mode
    }
}
