//! The vm-bootstrap endpoint: fetch a script over HTTP and run it, with the retry semantics
//! of SlapOS's `vm-bootstrap.sh` (compat.md §5), in-process instead of from cron.
//!
//! Files (guest paths, `bootstrap.dir` defaults to `/root/bootstrap`):
//! - `<dir>/start-bootstrap`: the gate. Absent → nothing happens ([`Outcome::Disabled`]).
//!   Checked again before every attempt: a script may remove it to stop further attempts.
//! - `<dir>/bootstrap-max-retry`: the attempt limit, a decimal number, re-read before every
//!   attempt (the script may change it). Absent or empty → `bootstrap.max_retry` (10). A
//!   malformed value is logged to the bootstrap log and the configured default is used:
//!   refusing to run would turn a typo into "never bootstrap", and the default still bounds
//!   the attempts.
//! - `<dir>/retry-amount`: attempts so far, persists across boots. Incremented and written
//!   atomically (temp + fsync + rename) *before* the script runs, so a script that reboots
//!   or hangs the VM still counts. An empty file counts as 0 (what the original's
//!   truncate-then-write leaves after a crash); anything else that is not a number is an
//!   error: the counter is what bounds the attempts, so it is not guessed.
//! - `<dir>/bootstrap-done`: written when a script exits 0 (time and attempt number); from
//!   then on the bootstrap never runs again ([`Outcome::AlreadyDone`]), whatever the other
//!   files say. Delete it (and reset `retry-amount`) to bootstrap again.
//! - `<dir>/bootstrap-last-result`: one line about the last attempt, for `ci-agent status`.
//! - `<dir>/vm-bootstrap.script`: the downloaded script while it runs (0700, removed after).
//! - `bootstrap.log` (`/var/log/vm-bootstrap.log`): timestamped lines about each attempt;
//!   the script's stdout and stderr are appended to it directly by the shell (not buffered
//!   by us), so its output is there even when the script reboots the machine.
//!
//! One attempt: gate → done marker → limit (`retry-amount >= bootstrap-max-retry` → "limit
//! reached", for good) → count → fetch `bootstrap.url` (404, non-200, empty body, timeout,
//! refused connection, oversized body = a failed attempt) → run it: with the interpreter
//! of its `#!` line, else `bash` (`/bin/bash`, `/usr/local/bin/bash`, `/usr/bin/bash`), else
//! `/bin/sh`, killed after `bootstrap.script_timeout_secs` → exit 0 = done forever. After a
//! failure [`run`] sleeps `bootstrap.interval_secs` and tries again, in this boot, until the
//! limit; the next boot's [`run`] goes on counting from `retry-amount`.
//!
//! Boot integration: [`run`] must be called on *every* boot (it returns at once when the
//! gate is absent, the bootstrap is done or the limit is reached). On FreeBSD that means an
//! rc.d script *without* `# KEYWORD: firstboot`: `/etc/rc` deletes `/firstboot` at the end
//! of the first boot whatever happened (compat.md §4), so a firstboot-only script would
//! never retry. The gate is `start-bootstrap`, never `/firstboot`. The call blocks while it
//! retries (up to `max_retry × (interval + timeouts)`), so the boot integration should run
//! it after the network is up and in the background (`daemon(8)` / a systemd unit of its
//! own, `Type=simple`), not in the path of the login prompt.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;

use super::http::{self, HttpLimits};
use crate::formats::civil::rfc3339;
use crate::platform::config::BootstrapConfig;
use crate::platform::system::{Cmd, WriteOpts};
use crate::platform::System;

/// File names inside `bootstrap.dir`.
pub const GATE_FILE: &str = "start-bootstrap";
pub const MAX_RETRY_FILE: &str = "bootstrap-max-retry";
pub const COUNTER_FILE: &str = "retry-amount";
pub const DONE_FILE: &str = "bootstrap-done";
pub const LAST_RESULT_FILE: &str = "bootstrap-last-result";
pub const SCRIPT_FILE: &str = "vm-bootstrap.script";

/// Where `bash` is looked for when the script has no `#!` line.
const BASH_PATHS: [&str; 3] = ["/bin/bash", "/usr/local/bin/bash", "/usr/bin/bash"];

/// Largest state file read (they hold a number or one line).
const SMALL_FILE: u64 = 4096;

/// How a bootstrap pass ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "result")]
pub enum Outcome {
    /// No `start-bootstrap` gate file: nothing to do (also when a script removed it).
    Disabled,
    /// A previous attempt succeeded; never again.
    AlreadyDone,
    /// An attempt's script exited 0.
    Succeeded { attempt: u32 },
    /// The attempt counter reached `bootstrap-max-retry`.
    LimitReached { attempts: u32, max: u32 },
}

/// The paths of the state files for a config.
struct Files {
    gate: PathBuf,
    max_retry: PathBuf,
    counter: PathBuf,
    done: PathBuf,
    last: PathBuf,
    script: PathBuf,
    log: PathBuf,
}

impl Files {
    fn new(cfg: &BootstrapConfig) -> Self {
        let d = &cfg.dir;
        Files {
            gate: d.join(GATE_FILE),
            max_retry: d.join(MAX_RETRY_FILE),
            counter: d.join(COUNTER_FILE),
            done: d.join(DONE_FILE),
            last: d.join(LAST_RESULT_FILE),
            script: d.join(SCRIPT_FILE),
            log: cfg.log.clone(),
        }
    }
}

/// Read a small state file; `Ok(None)` when absent.
fn read_small(sys: &dyn System, path: &Path) -> anyhow::Result<Option<String>> {
    match sys.read_file(path, SMALL_FILE) {
        Ok(b) => Ok(Some(String::from_utf8_lossy(&b).into_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// `bootstrap-max-retry`, or the default; a malformed value is reported through `warn`.
fn read_max_retry(
    sys: &dyn System,
    f: &Files,
    default: u32,
    warn: &mut dyn FnMut(String),
) -> anyhow::Result<u32> {
    let Some(text) = read_small(sys, &f.max_retry)? else {
        return Ok(default);
    };
    let t = text.trim();
    if t.is_empty() {
        return Ok(default);
    }
    match t.parse::<u32>() {
        Ok(n) => Ok(n),
        Err(_) => {
            warn(format!(
                "{}: expected a decimal number of attempts, found {:?}; using the default {default}",
                f.max_retry.display(),
                t.chars().take(40).collect::<String>()
            ));
            Ok(default)
        }
    }
}

/// `retry-amount` (0 when absent or empty).
fn read_counter(sys: &dyn System, f: &Files) -> anyhow::Result<u32> {
    let Some(text) = read_small(sys, &f.counter)? else {
        return Ok(0);
    };
    let t = text.trim();
    if t.is_empty() {
        return Ok(0);
    }
    t.parse::<u32>().map_err(|_| {
        anyhow::anyhow!(
            "{}: expected a decimal attempt count, found {:?} (fix or delete the file)",
            f.counter.display(),
            t.chars().take(40).collect::<String>()
        )
    })
}

/// Appends timestamped lines to the bootstrap log. A log that cannot be written is reported
/// once through the `log` facade and does not stop the bootstrap.
struct BootLog<'a> {
    sys: &'a dyn System,
    path: PathBuf,
    failed: bool,
}

impl BootLog<'_> {
    fn line(&mut self, msg: &str) {
        log::info!("vm-bootstrap: {msg}");
        let line = format!("{} ci-agent vm-bootstrap: {msg}\n", rfc3339(self.sys.now()));
        let res = (|| -> io::Result<()> {
            if let Some(parent) = self.path.parent() {
                if !self.sys.exists(parent) {
                    self.sys.create_dir_all(parent, 0o755, None)?;
                }
            }
            self.sys
                .write_file(&self.path, line.as_bytes(), WriteOpts::mode(0o600).append())
        })();
        if let Err(e) = res {
            if !self.failed {
                log::warn!("cannot write {}: {e}", self.path.display());
                self.failed = true;
            }
        }
    }

    fn raw(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let _ = self
            .sys
            .write_file(&self.path, data, WriteOpts::mode(0o600).append());
    }
}

fn record_last(sys: &dyn System, f: &Files, msg: &str) {
    let line = format!("{} {msg}\n", rfc3339(sys.now()));
    if let Err(e) = sys.write_file(&f.last, line.as_bytes(), WriteOpts::mode(0o600)) {
        log::warn!("cannot write {}: {e}", f.last.display());
    }
}

/// The argv prefix that runs `script`: its `#!` interpreter (split on whitespace, like
/// FreeBSD does; a `#!…/bash` that does not exist falls back to the bash found), else bash,
/// else `/bin/sh`.
fn interpreter(sys: &dyn System, body: &[u8]) -> Vec<String> {
    let bash = BASH_PATHS
        .iter()
        .find(|p| sys.exists(Path::new(p)))
        .map(|p| p.to_string());
    if let Some(rest) = body.strip_prefix(b"#!") {
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .unwrap_or(rest.len())
            .min(255);
        let line = String::from_utf8_lossy(&rest[..end]);
        let mut argv: Vec<String> = line.split_whitespace().map(str::to_string).collect();
        if let Some(first) = argv.first_mut() {
            let missing = first.starts_with('/') && !sys.exists(Path::new(first.as_str()));
            if missing && first.ends_with("/bash") {
                if let Some(b) = &bash {
                    *first = b.clone();
                }
            }
            return argv;
        }
    }
    vec![bash.unwrap_or_else(|| "/bin/sh".to_string())]
}

/// The argv that runs `argv` (interpreter + script) with its stdout and stderr appended to
/// `log` by the shell as they are produced (nothing buffered in the agent, nothing lost if
/// the script reboots the machine), stdin from `/dev/null`. `exec` keeps the script in the
/// process group the timeout kills.
fn script_argv(log: &Path, argv: Vec<String>) -> Vec<String> {
    let mut full = vec![
        "/bin/sh".to_string(),
        "-c".to_string(),
        "log=$1; shift; exec \"$@\" >>\"$log\" 2>&1 </dev/null".to_string(),
        "vm-bootstrap".to_string(),
        log.display().to_string(),
    ];
    full.extend(argv);
    full
}

/// What one attempt did.
enum Attempt {
    Succeeded,
    Failed(String),
}

fn attempt(
    sys: &dyn System,
    cfg: &BootstrapConfig,
    f: &Files,
    blog: &mut BootLog,
    n: u32,
) -> anyhow::Result<Attempt> {
    let limits = HttpLimits::from_bootstrap(cfg);
    let body = match http::get(&cfg.url, &limits) {
        Ok(b) if b.is_empty() => return Ok(Attempt::Failed(format!("{}: empty script", cfg.url))),
        Ok(b) => b,
        Err(e) => return Ok(Attempt::Failed(format!("download failed: {e}"))),
    };
    blog.line(&format!(
        "attempt {n}: fetched {} bytes from {}",
        body.len(),
        cfg.url
    ));
    sys.write_file(&f.script, &body, WriteOpts::mode(0o700))
        .with_context(|| format!("writing {}", f.script.display()))?;

    let mut argv = interpreter(sys, &body);
    argv.push(f.script.display().to_string());
    blog.line(&format!("attempt {n}: running {}", argv.join(" ")));
    let full = script_argv(&f.log, argv);
    let cmd = Cmd::new(full)
        .env("CI_AGENT_BOOTSTRAP_ATTEMPT", n.to_string())
        .env("CI_AGENT_BOOTSTRAP_URL", cfg.url.clone())
        .timeout(Duration::from_secs(cfg.script_timeout_secs.max(1)));
    let result = sys.run(&cmd);
    if let Err(e) = sys.remove_file(&f.script) {
        log::warn!("cannot remove {}: {e}", f.script.display());
    }
    let out = match result {
        Ok(out) => out,
        Err(e) => return Ok(Attempt::Failed(format!("cannot run the script: {e}"))),
    };
    // Anything the wrapper itself printed (e.g. the log could not be opened).
    blog.raw(&out.stdout);
    blog.raw(&out.stderr);
    if out.timed_out {
        return Ok(Attempt::Failed(format!(
            "script killed after {} s",
            cfg.script_timeout_secs.max(1)
        )));
    }
    match out.code {
        Some(0) => Ok(Attempt::Succeeded),
        Some(c) => Ok(Attempt::Failed(format!("script exited with status {c}"))),
        None => Ok(Attempt::Failed("script killed by a signal".into())),
    }
}

/// Attempt the bootstrap until success, the retry limit, or the gate disappears.
///
/// Errors are only for state that cannot be read or written (the counter above all: an
/// attempt that cannot be counted is not made). Download and script failures are failed
/// attempts, logged and retried.
pub fn run(sys: &dyn System, cfg: &BootstrapConfig) -> anyhow::Result<Outcome> {
    let f = Files::new(cfg);
    let mut blog = BootLog {
        sys,
        path: f.log.clone(),
        failed: false,
    };
    if sys.exists(&f.done) {
        return Ok(Outcome::AlreadyDone);
    }
    let mut first = true;
    loop {
        if !sys.exists(&f.gate) {
            if !first {
                blog.line(&format!("{} removed; stopping", f.gate.display()));
            }
            return Ok(Outcome::Disabled);
        }
        let mut warnings = Vec::new();
        let max = read_max_retry(sys, &f, cfg.max_retry, &mut |w| warnings.push(w))?;
        for w in warnings {
            blog.line(&w);
        }
        let count = read_counter(sys, &f)?;
        if count >= max {
            if first {
                blog.line(&format!(
                    "retry limit reached ({count} of {max} attempts); not trying again"
                ));
            }
            return Ok(Outcome::LimitReached {
                attempts: count,
                max,
            });
        }
        first = false;

        let n = count.saturating_add(1);
        sys.write_file(
            &f.counter,
            format!("{n}\n").as_bytes(),
            WriteOpts::mode(0o600),
        )
        .with_context(|| format!("counting attempt {n} in {}", f.counter.display()))?;
        blog.line(&format!("attempt {n} of {max}: fetching {}", cfg.url));

        match attempt(sys, cfg, &f, &mut blog, n)? {
            Attempt::Succeeded => {
                let stamp = format!("{} attempt {n}\n", rfc3339(sys.now()));
                sys.write_file(&f.done, stamp.as_bytes(), WriteOpts::mode(0o600))
                    .with_context(|| format!("writing {}", f.done.display()))?;
                record_last(sys, &f, &format!("attempt {n}: succeeded"));
                blog.line(&format!("attempt {n}: succeeded; bootstrap done"));
                return Ok(Outcome::Succeeded { attempt: n });
            }
            Attempt::Failed(why) => {
                record_last(sys, &f, &format!("attempt {n}: failed: {why}"));
                blog.line(&format!("attempt {n}: failed: {why}"));
            }
        }

        // Re-check before waiting: the script may have raised or lowered the limit, or
        // removed the gate.
        if !sys.exists(&f.gate) {
            blog.line(&format!("{} removed; stopping", f.gate.display()));
            return Ok(Outcome::Disabled);
        }
        let max = read_max_retry(sys, &f, cfg.max_retry, &mut |_| {})?;
        if n >= max {
            blog.line(&format!(
                "retry limit reached ({n} of {max} attempts); not trying again"
            ));
            return Ok(Outcome::LimitReached { attempts: n, max });
        }
        blog.line(&format!("next attempt in {} s", cfg.interval_secs));
        sys.sleep(Duration::from_secs(cfg.interval_secs));
    }
}

/// What `ci-agent status` shows about the bootstrap.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct BootstrapStatus {
    /// The gate file exists.
    pub enabled: bool,
    pub attempts: u32,
    pub max_retry: u32,
    pub done: bool,
    pub limit_reached: bool,
    /// The last attempt's line from `bootstrap-last-result` (time, attempt, result).
    pub last_result: Option<String>,
    /// The bootstrap URL, for the operator.
    pub url: String,
    /// Problems reading the state files (a malformed `bootstrap-max-retry`, …).
    pub warnings: Vec<String>,
}

/// Read the bootstrap state files (nothing is written).
pub fn status(sys: &dyn System, cfg: &BootstrapConfig) -> anyhow::Result<BootstrapStatus> {
    let f = Files::new(cfg);
    let mut warnings = Vec::new();
    let max_retry = read_max_retry(sys, &f, cfg.max_retry, &mut |w| warnings.push(w))?;
    let attempts = read_counter(sys, &f)?;
    let done = sys.exists(&f.done);
    let last_result = read_small(sys, &f.last)?
        .and_then(|s| s.lines().next().map(str::to_string))
        .filter(|s| !s.is_empty());
    Ok(BootstrapStatus {
        enabled: sys.exists(&f.gate),
        attempts,
        max_retry,
        done,
        limit_reached: !done && attempts >= max_retry,
        last_result,
        url: cfg.url.clone(),
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::fake::FakeSystem;

    #[test]
    fn interpreter_choice() {
        let d = tempfile::tempdir().unwrap();
        let sys = FakeSystem::new(d.path());
        assert_eq!(interpreter(&sys, b"echo hi\n"), ["/bin/sh"]);
        assert_eq!(
            interpreter(&sys, b"#!/usr/bin/env python3\nprint(1)\n"),
            ["/usr/bin/env", "python3"]
        );
        assert_eq!(interpreter(&sys, b"#!/bin/sh -eu\r\n"), ["/bin/sh", "-eu"]);
        // A bare "#!" falls back like no shebang.
        assert_eq!(interpreter(&sys, b"#!\n"), ["/bin/sh"]);
        sys.put("/usr/local/bin/bash", "");
        assert_eq!(interpreter(&sys, b"echo hi"), ["/usr/local/bin/bash"]);
        // FreeBSD: #!/bin/bash does not exist, bash lives in /usr/local/bin.
        assert_eq!(
            interpreter(&sys, b"#!/bin/bash -x\n"),
            ["/usr/local/bin/bash", "-x"]
        );
        sys.put("/bin/bash", "");
        assert_eq!(interpreter(&sys, b"echo hi"), ["/bin/bash"]);
        assert_eq!(interpreter(&sys, b"#!/bin/bash\n"), ["/bin/bash"]);
    }

    /// The wrapper really appends output and passes the exit status through (run with the
    /// host's /bin/sh on temp files only).
    #[test]
    fn script_wrapper_appends_output_and_keeps_status() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("log");
        std::fs::write(&log, "before\n").unwrap();
        let script = d.path().join("s");
        std::fs::write(
            &script,
            "echo out; echo err >&2; read x && echo stdin; exit 3\n",
        )
        .unwrap();
        let argv = script_argv(&log, vec!["/bin/sh".into(), script.display().to_string()]);
        let st = std::process::Command::new(&argv[0])
            .args(&argv[1..])
            .status()
            .unwrap();
        assert_eq!(st.code(), Some(3));
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "before\nout\nerr\n");
    }

    #[test]
    fn counter_parsing() {
        let d = tempfile::tempdir().unwrap();
        let sys = FakeSystem::new(d.path());
        let mut cfg =
            crate::platform::config::Config::defaults(crate::platform::OsKind::Linux).bootstrap;
        cfg.dir = "/b".into();
        let f = Files::new(&cfg);
        assert_eq!(read_counter(&sys, &f).unwrap(), 0);
        sys.put("/b/retry-amount", "");
        assert_eq!(read_counter(&sys, &f).unwrap(), 0);
        sys.put("/b/retry-amount", " 7\n");
        assert_eq!(read_counter(&sys, &f).unwrap(), 7);
        sys.put("/b/retry-amount", "seven");
        let e = read_counter(&sys, &f).unwrap_err().to_string();
        assert!(e.contains("/b/retry-amount") && e.contains("seven"), "{e}");
        let mut w = Vec::new();
        sys.put("/b/bootstrap-max-retry", "-3\n");
        assert_eq!(
            read_max_retry(&sys, &f, 10, &mut |m| w.push(m)).unwrap(),
            10
        );
        assert!(w[0].contains("bootstrap-max-retry") && w[0].contains("-3"));
        sys.put("/b/bootstrap-max-retry", "0\n");
        assert_eq!(read_max_retry(&sys, &f, 10, &mut |_| {}).unwrap(), 0);
    }
}
