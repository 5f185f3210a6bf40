//! The `cloud-init` personality: the same binary, invoked through a link named
//! `cloud-init`, answers the commands that tools written for cloud-init run (Packer and
//! Terraform `cloud-init status --wait`, Ansible `cloud-init query`, image pipelines
//! `cloud-init clean --logs --machine-id`, `cloud-init schema -c FILE --annotate`).
//!
//! - `status [--wait] [--long] [--format json|yaml|tabular]`: [`crate::agent::status`],
//!   cloud-init's words, fields and exit codes (0, 1 error, 2 degraded).
//! - `query [--all | --list-keys | KEY]`: instance data from the seed of the instance in
//!   progress or last applied (its local copy), else from seed discovery: `v1.instance_id`,
//!   `v1.local_hostname`, `v1.public_ssh_keys`, `ds.meta_data…`, `userdata`, `vendordata`;
//!   as another user, from the redacted instance data any user may read
//!   ([`crate::agent::instance`]).
//! - `clean [--logs] [--machine-id] [--seed] [--reboot]`: [`crate::agent::seal`] limited
//!   to ci-agent's state and the first-boot sentinel (so the next boot applies the seed
//!   again), plus the agent's logs, the machine id, and a reboot when asked.
//! - `schema -c FILE [--annotate]`: our own parser, in cloud-init's output shape.
//! - `--version`. Anything else prints one line saying what to use instead; exit 2.
//!
//! Every command also takes `--root DIR` (ours: act on the system under DIR).

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::PathBuf;

use crate::agent::instance;
use crate::agent::seal::{self, Item, SealOptions};
use crate::agent::status::{self, Format, StatusOpts};
use crate::platform::config::Config;
use crate::platform::{Cmd, OsKind, System};

const USAGE: &str = "\
usage: cloud-init [-h] [--version] {status,query,clean,schema} ...

This is ci-agent in place of cloud-init: it answers the commands tools use to watch and
prepare an instance. The first-boot work itself runs as `ci-agent run` at boot.

  status [--wait] [--long] [--format json|yaml|tabular]
  query [--all | --list-keys | KEY]
  clean [--logs] [--machine-id] [--seed] [--reboot]
  schema -c FILE [--annotate]
  --version

exit status of status: 0 done (or running), 1 error, 2 done with warnings
";

/// What `cloud-init SUBCOMMAND` would do, and what to use instead.
fn instead(cmd: &str) -> Option<&'static str> {
    Some(match cmd {
        "init" => "the early pass runs at boot as `ci-agent run --stage early` (ci-agent.service)",
        "modules" => {
            "the late pass runs at boot as `ci-agent run --stage late` (ci-agent-late.service)"
        }
        "single" => "run the whole seed again with `ci-agent run --once`",
        "analyze" => "see timings in `ci-agent status` and /var/log/ci-agent.log",
        "collect-logs" => "collect /var/log/ci-agent.log and `ci-agent status --json`",
        "devel" => "check seeds with `ci-seed validate` or `cloud-init schema -c FILE`",
        "features" | "cloud-id" => "see `ci-agent status` (the datasource is always NoCloud)",
        _ => return None,
    })
}

/// `cloud-init ARGS…` (argv[0] is `cloud-init`).
pub fn main(args: Vec<OsString>) -> u8 {
    let mut rest = args.into_iter().peekable();
    // cloud-init's global flags come before the subcommand.
    while let Some(a) = rest.peek().and_then(|a| a.to_str()) {
        match a {
            "-d" | "--debug" | "--force" => {
                rest.next();
            }
            "-f" | "--files" => {
                rest.next();
                rest.next();
            }
            _ => break,
        }
    }
    let Some(cmd) = rest.next() else {
        eprint!("{USAGE}");
        return crate::exit::USAGE;
    };
    let rest: Vec<OsString> = rest.collect();
    match cmd.to_str().unwrap_or("") {
        "status" => cli_status(rest),
        "query" => cli_query(rest),
        "clean" => cli_clean(rest),
        "schema" => cli_schema(rest),
        "-v" | "--version" | "version" => {
            crate::outln!(
                "cloud-init: ci-agent {} in place of cloud-init",
                env!("CARGO_PKG_VERSION")
            );
            crate::exit::OK
        }
        "-h" | "--help" | "help" => {
            crate::out!("{USAGE}");
            crate::exit::OK
        }
        other => {
            let hint = instead(other).unwrap_or("see `cloud-init --help` for what is answered");
            eprintln!("cloud-init {other}: ci-agent is installed in place of cloud-init; {hint}");
            crate::exit::USAGE
        }
    }
}

/// Options every personality command takes besides its own.
struct Common {
    root: PathBuf,
    config: Option<PathBuf>,
    os: OsKind,
}

impl Common {
    fn new() -> Self {
        Common {
            root: "/".into(),
            config: None,
            os: OsKind::host(),
        }
    }

    /// The value of `--root`, `--config` or `--os` (`name`).
    fn take(&mut self, name: &str, p: &mut lexopt::Parser) -> Result<(), lexopt::Error> {
        match name {
            "root" => self.root = p.value()?.into(),
            "config" => self.config = Some(p.value()?.into()),
            _ => self.os = OsKind::from_arg(p)?,
        }
        Ok(())
    }
}

fn usage_error(cmd: &str, e: impl std::fmt::Display) -> u8 {
    eprintln!("cloud-init {cmd}: error: {e}\n\n{USAGE}");
    crate::exit::USAGE
}

/// One command-line argument, owned (so a handler may also read the option's value).
enum Opt {
    Long(String),
    Short(char),
    Value(OsString),
}

impl Opt {
    fn unexpected(&self) -> lexopt::Error {
        let what = match self {
            Opt::Long(l) => format!("--{l}"),
            Opt::Short(c) => format!("-{c}"),
            Opt::Value(v) => v.to_string_lossy().into_owned(),
        };
        lexopt::Error::Custom(format!("unrecognized argument: {what}").into())
    }
}

/// Parse a command's arguments: `--root`, `--config`, `--os` into `c`, `-h` prints
/// `usage`, everything else goes to `each`. `Err(code)`: exit now with `code`.
fn parse_cmd(
    cmd: &str,
    args: Vec<OsString>,
    usage: &str,
    c: &mut Common,
    mut each: impl FnMut(Opt, &mut lexopt::Parser) -> Result<(), lexopt::Error>,
) -> Result<(), u8> {
    use lexopt::prelude::*;
    let mut p = lexopt::Parser::from_args(args);
    let r: Result<bool, lexopt::Error> = (|| {
        while let Some(arg) = p.next()? {
            let opt = match arg {
                Long(n @ ("root" | "config" | "os")) => {
                    let n = n.to_string();
                    c.take(&n, &mut p)?;
                    continue;
                }
                Short('h') | Long("help") => {
                    crate::outln!("{usage}");
                    return Ok(false);
                }
                Long(l) => Opt::Long(l.to_string()),
                Short(ch) => Opt::Short(ch),
                Value(v) => Opt::Value(v),
            };
            each(opt, &mut p)?;
        }
        Ok(true)
    })();
    match r {
        Ok(true) => Ok(()),
        Ok(false) => Err(crate::exit::OK),
        Err(e) => Err(usage_error(cmd, e)),
    }
}

fn cli_status(args: Vec<OsString>) -> u8 {
    use lexopt::ValueExt as _;
    let mut c = Common::new();
    let mut opts = StatusOpts {
        format: Format::Tabular,
        long: false,
        wait: false,
        timeout: None,
        ours: false,
    };
    let usage = "usage: cloud-init status [-h] [--format {json,tabular,yaml}] [-l] [-w]";
    if let Err(code) = parse_cmd("status", args, usage, &mut c, |o, p| {
        match o {
            Opt::Long(l) if l == "wait" => opts.wait = true,
            Opt::Short('w') => opts.wait = true,
            Opt::Long(l) if l == "long" => opts.long = true,
            Opt::Short('l') => opts.long = true,
            Opt::Long(l) if l == "timeout" => opts.timeout = Some(p.value()?.parse()?),
            Opt::Long(l) if l == "format" => {
                let v = p.value()?.string()?;
                opts.format = Format::parse(&v).ok_or_else(|| {
                    lexopt::Error::Custom(
                        format!("argument --format: invalid choice: {v:?} (choose from 'json', 'tabular', 'yaml')").into(),
                    )
                })?;
            }
            o => return Err(o.unexpected()),
        }
        Ok(())
    }) {
        return code;
    }
    match status::reader(&c.root, c.config.as_deref(), c.os) {
        Ok((sys, cfg)) => status::show(&sys, &cfg, &opts, "cloud-init status"),
        Err(e) => {
            eprintln!("cloud-init status: {e:#}");
            status::code::ERROR
        }
    }
}

// ---------------------------------------------------------------------------------------
// query

fn cli_query(args: Vec<OsString>) -> u8 {
    use lexopt::ValueExt as _;
    let mut c = Common::new();
    let mut all = false;
    let mut list = false;
    let mut key: Option<String> = None;
    let usage = "usage: cloud-init query [-h] [-a] [-l] [varname]";
    if let Err(code) = parse_cmd("query", args, usage, &mut c, |o, _| {
        match o {
            Opt::Long(l) if l == "all" => all = true,
            Opt::Short('a') => all = true,
            Opt::Long(l) if l == "list-keys" => list = true,
            Opt::Short('l') => list = true,
            Opt::Value(v) if key.is_none() => key = Some(v.string()?),
            o => return Err(o.unexpected()),
        }
        Ok(())
    }) {
        return code;
    }
    if !all && !list && key.is_none() {
        return usage_error(
            "query",
            "Expected one of the options: --all, --format, --list-keys or varname",
        );
    }
    let (sys, cfg) = match status::reader(&c.root, c.config.as_deref(), c.os) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("cloud-init query: {e:#}");
            return crate::exit::FAILED;
        }
    };
    let root = instance::is_root();
    match instance::load(&sys, &cfg, root) {
        Ok(data) => instance::print(
            "cloud-init query",
            &instance::answer(&data, key.as_deref(), list, root),
        ),
        Err(e) => {
            eprintln!("cloud-init query: {e:#}");
            crate::exit::FAILED
        }
    }
}

// ---------------------------------------------------------------------------------------
// clean

fn cli_clean(args: Vec<OsString>) -> u8 {
    use lexopt::ValueExt as _;
    let mut c = Common::new();
    let (mut logs, mut machine_id, mut reboot, mut dry_run) = (false, false, false, false);
    let usage = "usage: cloud-init clean [-h] [-l] [--machine-id] [-r] [-s]";
    if let Err(code) = parse_cmd("clean", args, usage, &mut c, |o, p| {
        match o {
            Opt::Long(l) if l == "logs" => logs = true,
            Opt::Short('l') => logs = true,
            Opt::Long(l) if l == "machine-id" => machine_id = true,
            // The seed copy lives in the state directory, which clean removes anyway.
            Opt::Long(l) if l == "seed" => {}
            Opt::Short('s') => {}
            Opt::Long(l) if l == "reboot" => reboot = true,
            Opt::Short('r') => reboot = true,
            Opt::Long(l) if l == "dry-run" => dry_run = true,
            Opt::Long(l) if l == "configs" => {
                let v = p.value()?.string()?;
                return Err(lexopt::Error::Custom(
                    format!("--configs {v}: ci-agent writes no generated ssh or network configs to remove").into(),
                ));
            }
            o => return Err(o.unexpected()),
        }
        Ok(())
    }) {
        return code;
    }
    let root = match crate::platform::config::absolute(&c.root) {
        Ok(r) if r.is_dir() => r,
        Ok(r) => return usage_error("clean", format!("--root {}: not a directory", r.display())),
        Err(e) => return usage_error("clean", format!("{e:#}")),
    };
    let sys = crate::platform::host::HostSystem::new(&root);
    let cfg = match crate::platform::config::load_config(&sys, &root, c.config.as_deref(), c.os) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cloud-init clean: {e:#}");
            return crate::exit::USAGE;
        }
    };
    let code = clean(&sys, &cfg, logs, machine_id, reboot, dry_run);
    if code == crate::exit::OK {
        crate::outln!("cloud-init clean: done by ci-agent (`ci-agent seal --keep` everything but state, firstboot{}{})",
            if logs { ", the agent's logs" } else { "" },
            if machine_id { ", machine-id" } else { "" });
    }
    code
}

/// `cloud-init clean`: the next boot applies the seed again.
pub fn clean(
    sys: &dyn System,
    cfg: &Config,
    logs: bool,
    machine_id: bool,
    reboot: bool,
    dry_run: bool,
) -> u8 {
    let mut wanted: BTreeSet<Item> = [Item::State, Item::Firstboot].into_iter().collect();
    if machine_id {
        wanted.insert(Item::MachineId);
    }
    let opts = SealOptions {
        keep: Item::ALL
            .into_iter()
            .filter(|i| !wanted.contains(i))
            .collect(),
        dry_run,
    };
    let report = seal::seal(sys, cfg, &opts);
    for line in &report.actions {
        crate::outln!("{line}");
    }
    let mut failed = !report.errors.is_empty();
    for e in &report.errors {
        eprintln!("cloud-init clean: {e}");
    }
    if logs {
        // cloud-init removes its own logs only: ours are the agent's and the bootstrap's.
        for log in [&cfg.log_file, &cfg.bootstrap.log] {
            if !sys.exists(log) {
                continue;
            }
            if dry_run {
                crate::outln!("would remove {}", log.display());
            } else if let Err(e) = sys.remove_file(log) {
                eprintln!("cloud-init clean: cannot remove {}: {e}", log.display());
                failed = true;
            } else {
                crate::outln!("removed {}", log.display());
            }
        }
    }
    if failed {
        return crate::exit::FAILED;
    }
    if reboot && !dry_run {
        match sys.run(&Cmd::new(["shutdown", "-r", "now"])) {
            Ok(o) if o.success() => {}
            Ok(_) | Err(_) => {
                eprintln!("cloud-init clean: could not reboot (shutdown -r now failed)");
                return crate::exit::FAILED;
            }
        }
    }
    crate::exit::OK
}

// ---------------------------------------------------------------------------------------
// schema

fn cli_schema(args: Vec<OsString>) -> u8 {
    let mut file: Option<PathBuf> = None;
    let mut annotate = false;
    let usage = "usage: cloud-init schema [-h] [-c CONFIG_FILE] [--annotate]";
    if let Err(code) =
        parse_cmd("schema", args, usage, &mut Common::new(), |o, p| {
            match o {
                Opt::Long(l) if l == "config-file" => file = Some(p.value()?.into()),
                Opt::Short('c') => file = Some(p.value()?.into()),
                Opt::Long(l) if l == "annotate" => annotate = true,
                Opt::Long(l) if l == "system" || l == "docs" => return Err(lexopt::Error::Custom(
                    "ci-agent answers `schema -c FILE` only (check a seed with `ci-seed validate`)"
                        .into(),
                )),
                o => return Err(o.unexpected()),
            }
            Ok(())
        })
    {
        return code;
    }
    let Some(file) = file else {
        return usage_error(
            "schema",
            "Expected one of --config-file, --system or --docs arguments",
        );
    };
    let bytes = match std::fs::read(&file) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("Error:\nConfigfile {} does not exist ({e})", file.display());
            return crate::exit::FAILED;
        }
    };
    let shown = file.display().to_string();
    let (out, err, code) = schema(&shown, &bytes, annotate);
    crate::out!("{out}");
    eprint!("{err}");
    code
}

/// Check a cloud-config file; (stdout, stderr, exit code) in cloud-init's shape. Our
/// warnings (unknown keys) count as errors, as in cloud-init's schema.
pub fn schema(shown: &str, bytes: &[u8], annotate: bool) -> (String, String, u8) {
    let problems = crate::formats::userdata::validate_user_data(shown, bytes);
    if problems.is_empty() {
        return (format!("Valid cloud-config: {shown}\n"), String::new(), 0);
    }
    let msg = |e: &crate::formats::SeedError| {
        let m = e.message.strip_prefix("warning: ").unwrap_or(&e.message);
        match (e.line, e.column) {
            (Some(l), Some(c)) => format!("format-l{l}.c{c}: {m}"),
            (Some(l), None) => format!("format-l{l}.c1: {m}"),
            _ => m.to_string(),
        }
    };
    if !annotate {
        let all: Vec<String> = problems.iter().map(msg).collect();
        return (
            String::new(),
            format!("Error:\nCloud config schema errors: {}\n", all.join(", ")),
            1,
        );
    }
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.split('\n').collect();
    let mut by_line: Vec<Vec<usize>> = vec![Vec::new(); lines.len() + 1];
    let mut footer = Vec::new();
    for (i, e) in problems.iter().enumerate() {
        let at = e.line.unwrap_or(1).clamp(1, lines.len().max(1));
        by_line[at].push(i + 1);
        let m = e.message.strip_prefix("warning: ").unwrap_or(&e.message);
        footer.push(format!("# E{}: {m}", i + 1));
    }
    let mut out = String::new();
    for (n, line) in lines.iter().enumerate() {
        let labels = &by_line[n + 1];
        if labels.is_empty() {
            out.push_str(line);
        } else {
            let l: Vec<String> = labels.iter().map(|i| format!("E{i}")).collect();
            out.push_str(&format!("{line}\t\t# {}", l.join(",")));
        }
        out.push('\n');
    }
    out.push_str("# Errors: -------------\n");
    out.push_str(&footer.join("\n"));
    out.push_str("\n\n");
    (out, String::new(), 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_reboots_only_when_asked_and_after_cleaning() {
        use crate::platform::fake::FakeSystem;
        use crate::platform::system::CmdOutput;
        let d = tempfile::tempdir().unwrap();
        let sys = FakeSystem::new(d.path());
        let cfg = Config::defaults(OsKind::Linux);
        let state = cfg.state_dir.join("status.json");
        let reboots = |sys: &FakeSystem| {
            sys.command_lines()
                .iter()
                .filter(|l| l.as_str() == "shutdown -r now")
                .count()
        };
        sys.put(&state, "{}");
        assert_eq!(clean(&sys, &cfg, false, false, false, false), 0);
        assert!(!sys.exists(&state));
        assert_eq!(reboots(&sys), 0, "no --reboot, no reboot");
        sys.put(&state, "{}");
        assert_eq!(clean(&sys, &cfg, false, false, true, true), 0);
        assert!(sys.exists(&state), "--dry-run removes nothing");
        assert_eq!(reboots(&sys), 0, "--dry-run never reboots");
        assert_eq!(clean(&sys, &cfg, false, false, true, false), 0);
        assert!(!sys.exists(&state), "cleaned before the reboot");
        assert_eq!(reboots(&sys), 1);
        // A reboot that fails is an error, not a silent success.
        sys.on_command(
            &["shutdown"],
            CmdOutput {
                code: Some(1),
                timed_out: false,
                stdout: Vec::new(),
                stderr: Vec::new(),
            },
        );
        assert_eq!(clean(&sys, &cfg, false, false, true, false), 1);
    }

    #[test]
    fn schema_shapes() {
        let (out, err, code) = schema("ud", b"#cloud-config\nhostname: h\n", false);
        assert_eq!(
            (out.as_str(), err.as_str(), code),
            ("Valid cloud-config: ud\n", "", 0)
        );
        let bad = b"#cloud-config\nhostname: h\nfoo: 1\n";
        let (out, err, code) = schema("ud", bad, false);
        assert_eq!(code, 1);
        assert!(out.is_empty());
        assert!(
            err.starts_with("Error:\nCloud config schema errors: "),
            "{err}"
        );
        assert!(err.contains("foo"), "{err}");
        let (out, _, code) = schema("ud", bad, true);
        assert_eq!(code, 1);
        assert!(out.contains("foo: 1\t\t# E1\n"), "{out}");
        assert!(out.contains("# Errors: -------------\n# E1: "), "{out}");
    }
}
