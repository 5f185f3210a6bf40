//! Running commands: `bootcmd`/`runcmd` items to one script, `power_state` conditions to argv, output logged line by line
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

/// `bootcmd`/`runcmd` items as one `#!/bin/sh` script, the way cloud-init (`shellify`)
/// and nuageinit write it: one line per item; a list item is its argv with every word in
/// single quotes (`'` written `'\''`); a string item is copied as is. No `set -e`: an item
/// after a failing one still runs, and a `cd` or a variable carries over to the next.
pub fn shellify(items: &[CommandSpec]) -> String {
    let mut out = String::from("#!/bin/sh\n");
    for item in items {
        match item {
            CommandSpec::Shell(s) => out.push_str(s),
            CommandSpec::Argv(argv) => {
                let words: Vec<String> = argv
                    .iter()
                    .map(|w| format!("'{}'", w.replace('\'', "'\\''")))
                    .collect();
                out.push_str(&words.join(" "));
            }
        }
        out.push('\n');
    }
    out
}

/// Run a seed script (`sh PATH`), its output logged under `label`; a non-zero exit (the
/// last command's, as with cloud-init) is an error naming the script.
pub fn run_script(sys: &dyn System, label: &str, cmd: &Cmd) -> anyhow::Result<()> {
    log::info!("{label}: {}", shorten(&cmd.display()));
    let out = match sys.run(cmd) {
        Ok(o) => o,
        Err(e) => bail!("{label}: could not run {}: {e}", cmd.display()),
    };
    log_output(label, &out);
    if !out.success() {
        bail!(
            "{label}: {} ended with {}",
            cmd.display(),
            describe_exit(&out)
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
