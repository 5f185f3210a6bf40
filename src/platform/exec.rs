//! Running commands: `bootcmd`/`runcmd` items to argv, output logged line by line
//! (bounded), and failures turned into errors that say which command and which exit code —
//! never a secret command's arguments or output. Modules reach these through
//! the modules' `Context`, which adds the environment seed commands get.

use anyhow::bail;

use crate::formats::userdata::cloud_config::CommandSpec;
use crate::platform::policy::shorten;
use crate::platform::{Cmd, CmdOutput, System};

/// Lines of each stream logged per command; the rest is counted, not logged.
const MAX_LOG_LINES: usize = 100;
/// Characters of one logged line.
const MAX_LINE_CHARS: usize = 400;

/// The argv of a `bootcmd`/`runcmd`/`power_state.condition` item: a string goes to
/// `sh -c`, a list is the argv itself (no shell).
pub fn spec_argv(spec: &CommandSpec) -> Option<Vec<String>> {
    match spec {
        CommandSpec::Shell(s) => Some(vec!["sh".into(), "-c".into(), s.clone()]),
        CommandSpec::Argv(v) if v.is_empty() => None,
        CommandSpec::Argv(v) => Some(v.clone()),
    }
}

/// Log a command's output under `label`, line by line, bounded.
pub fn log_output(label: &str, out: &CmdOutput) {
    for (stream, data) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        if data.is_empty() {
            continue;
        }
        let text = String::from_utf8_lossy(data);
        let mut n = 0usize;
        for line in text.lines() {
            if n < MAX_LOG_LINES {
                let line: String = line.chars().take(MAX_LINE_CHARS).collect();
                log::info!("{label} {stream}: {line}");
            }
            n += 1;
        }
        if n > MAX_LOG_LINES {
            log::info!(
                "{label} {stream}: ({} more lines not logged)",
                n - MAX_LOG_LINES
            );
        }
    }
}

/// How a finished command ended, for messages: `exit code 3`, `killed by a signal`,
/// `timed out`.
pub fn describe_exit(out: &CmdOutput) -> String {
    match (out.code, out.timed_out) {
        (_, true) => "timed out".into(),
        (Some(c), _) => format!("exit code {c}"),
        (None, _) => "killed by a signal".into(),
    }
}

/// Run a system command (useradd, pkg, …); a failure is an error naming the command
/// (arguments withheld when secret) with the end of its stderr (not for secret ones).
pub fn run_ok(sys: &dyn System, cmd: &Cmd) -> anyhow::Result<CmdOutput> {
    log::info!("running {}", cmd.display());
    let out = match sys.run(cmd) {
        Ok(o) => o,
        Err(e) => bail!("{}: could not run: {e}", cmd.display()),
    };
    if !out.success() {
        let detail = if cmd.secret {
            String::new()
        } else {
            let err = String::from_utf8_lossy(&out.stderr);
            let tail = err.trim().lines().last().unwrap_or("").to_string();
            if tail.is_empty() {
                String::new()
            } else {
                format!(": {}", shorten(&tail))
            }
        };
        if !cmd.secret {
            log_output(&cmd.display(), &out);
        }
        bail!("{} failed ({}){detail}", cmd.display(), describe_exit(&out));
    }
    Ok(out)
}

/// Run a list of seed commands in order, all of them even when some fail; each one's
/// output is logged; `env` gives each command its environment (the seed's, plus extras).
/// Returns an error naming every failed item (`key[i]`).
pub fn run_items(
    sys: &dyn System,
    key: &str,
    items: &[CommandSpec],
    env: &dyn Fn(Cmd) -> Cmd,
) -> anyhow::Result<()> {
    let mut failed = Vec::new();
    for (i, spec) in items.iter().enumerate() {
        let label = format!("{key}[{i}]");
        let Some(argv) = spec_argv(spec) else {
            failed.push(format!("{label}: empty command"));
            continue;
        };
        let cmd = env(Cmd::new(argv));
        log::info!("{label}: {}", shorten(&cmd.display()));
        match sys.run(&cmd) {
            Ok(out) => {
                log_output(&label, &out);
                if !out.success() {
                    failed.push(format!("{label} ({})", describe_exit(&out)));
                }
            }
            Err(e) => failed.push(format!("{label} (could not run: {e})")),
        }
    }
    if !failed.is_empty() {
        bail!(
            "{} of {} {key} items failed: {}",
            failed.len(),
            items.len(),
            failed.join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_and_exits() {
        assert_eq!(
            spec_argv(&CommandSpec::Shell("echo hi > /x".into())).unwrap(),
            ["sh", "-c", "echo hi > /x"]
        );
        assert_eq!(
            spec_argv(&CommandSpec::Argv(vec!["ls".into(), "-l".into()])).unwrap(),
            ["ls", "-l"]
        );
        assert!(spec_argv(&CommandSpec::Argv(vec![])).is_none());
        let o = CmdOutput {
            code: Some(3),
            ..CmdOutput::default()
        };
        assert_eq!(describe_exit(&o), "exit code 3");
        let o = CmdOutput {
            timed_out: true,
            ..CmdOutput::default()
        };
        assert_eq!(describe_exit(&o), "timed out");
    }
}
