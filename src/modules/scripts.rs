//! Key: `#!` user-data parts (no cloud-config key). cloud-init: `cc_scripts_user` and the shell-script part handler.
//!
//! `scripts`: user-data scripts (`#!` parts, `text/x-shellscript`), late, in order.
//!
//! Each script is written to `<instance_dir>/scripts/<name>` (0700) and executed directly
//! (argv = [path], the kernel honours its `#!`; a body without `#!` is given to `sh`), with
//! `CI_AGENT_SEED_DIR` and `CI_AGENT_INSTANCE_ID` in its environment. The module itself
//! runs on every boot and keeps each script's frequency: per-instance scripts are marked
//! done under `<instance_dir>/sem/script-<name>`, once-scripts under
//! `<state_dir>/sem/script-<name>`, per-boot scripts always run. A semaphore is written
//! only after the script succeeded, so a failed script is retried by the next run. A
//! failure does not stop the other scripts; the module fails naming each failed script.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};

use super::{Context, Frequency, Module, Stage};
use crate::formats::userdata::{Frequency as ScriptFrequency, Script};
use crate::platform::exec;
use crate::platform::{Cmd, CmdOutput, WriteOpts};

pub struct Scripts;

/// A file name safe to use under our directories: no `/`, no NUL, not `.`/`..` or hidden,
/// at most 100 bytes; `fallback` when nothing usable is left.
pub fn sanitize_name(name: &str, fallback: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c == '/' || c == '\0' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    while s.len() > 100 {
        s.pop();
    }
    if s.is_empty() || s.starts_with('.') {
        s = format!("{fallback}{s}");
    }
    s
}

/// Sanitized, unique names for a list of scripts (a duplicate gets `-N`).
pub fn unique_names(scripts: &[Script], prefix: &str) -> Vec<String> {
    let mut seen = HashSet::new();
    scripts
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let base = sanitize_name(&s.name, &format!("{prefix}{i:03}"));
            let mut name = base.clone();
            let mut n = 1;
            while !seen.insert(name.clone()) {
                name = format!("{base}-{n}");
                n += 1;
            }
            name
        })
        .collect()
}

/// Write `body` to `dir/name` (0700, atomically) and run it with the seed environment
/// plus `extra_env`; returns the output (errors only when it could not be written or
/// started).
pub fn install_and_run(
    ctx: &Context,
    dir: &Path,
    name: &str,
    body: &[u8],
    extra_env: &[(&str, &str)],
) -> anyhow::Result<CmdOutput> {
    ctx.sys
        .create_dir_all(dir, 0o700, None)
        .with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(name);
    ctx.sys
        .write_file(&path, body, WriteOpts::mode(0o700))
        .with_context(|| format!("writing {}", path.display()))?;
    let p = path.to_string_lossy().into_owned();
    let argv = if body.starts_with(b"#!") {
        vec![p]
    } else {
        vec!["sh".to_string(), p]
    };
    let mut cmd = ctx.seed_env(Cmd::new(argv));
    for (k, v) in extra_env {
        cmd = cmd.env(*k, *v);
    }
    log::info!("running {}", cmd.display());
    let out = ctx
        .sys
        .run(&cmd)
        .with_context(|| format!("could not run {}", path.display()))?;
    exec::log_output(name, &out);
    Ok(out)
}

fn semaphore(ctx: &Context, s: &Script, name: &str) -> Option<PathBuf> {
    let file = format!("script-{name}");
    match s.frequency {
        ScriptFrequency::PerBoot => None,
        ScriptFrequency::PerInstance => Some(ctx.instance_dir.join("sem").join(file)),
        ScriptFrequency::Once => Some(ctx.config.state_dir.join("sem").join(file)),
    }
}

impl Module for Scripts {
    fn name(&self) -> &'static str {
        "scripts"
    }
    fn frequency(&self) -> Frequency {
        Frequency::PerBoot
    }
    fn stage(&self) -> Stage {
        Stage::Late
    }
    fn wanted(&self, ctx: &Context) -> bool {
        !ctx.seed.scripts.is_empty()
    }
    fn run(&self, ctx: &mut Context) -> anyhow::Result<()> {
        let scripts = ctx.seed.scripts.clone();
        let names = unique_names(&scripts, "part-");
        let dir = ctx.instance_dir.join("scripts");
        let mut failed = Vec::new();
        for (s, name) in scripts.iter().zip(&names) {
            let sem = semaphore(ctx, s, name);
            if let Some(sem) = &sem {
                if ctx.sys.exists(sem) {
                    log::info!("script {name}: already done ({})", sem.display());
                    continue;
                }
            }
            match install_and_run(ctx, &dir, name, &s.body, &[]) {
                Ok(out) if out.success() => {
                    if let Some(sem) = &sem {
                        let parent = sem.parent().unwrap_or(Path::new("/"));
                        let marked = ctx.sys.create_dir_all(parent, 0o700, None).and_then(|_| {
                            ctx.sys.write_file(
                                sem,
                                format!("{}\n", ctx.seed.instance_id).as_bytes(),
                                WriteOpts::mode(0o600),
                            )
                        });
                        if let Err(e) = marked {
                            failed.push(format!(
                                "{name} (ran, but marking it done in {} failed: {e})",
                                sem.display()
                            ));
                        }
                    }
                }
                Ok(out) => failed.push(format!("{name} ({})", exec::describe_exit(&out))),
                Err(e) => failed.push(format!("{name} ({e:#})")),
            }
        }
        if !failed.is_empty() {
            bail!("user-data scripts failed: {}", failed.join(", "));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::test_env::Env;
    use crate::platform::OsKind;

    fn script(name: &str, body: &str, f: ScriptFrequency) -> Script {
        Script {
            name: name.into(),
            interpreter: "/bin/sh".into(),
            body: body.as_bytes().to_vec(),
            frequency: f,
        }
    }

    #[test]
    fn names_are_sanitized_and_unique() {
        assert_eq!(
            sanitize_name("../../etc/passwd", "part-000"),
            "part-000.._.._etc_passwd"
        );
        assert_eq!(sanitize_name("..", "part-001"), "part-001..");
        assert_eq!(sanitize_name("", "part-002"), "part-002");
        assert_eq!(sanitize_name("setup.sh", "x"), "setup.sh");
        let s = vec![
            script("a", "", ScriptFrequency::PerBoot),
            script("a", "", ScriptFrequency::PerBoot),
            script("", "", ScriptFrequency::PerBoot),
        ];
        assert_eq!(unique_names(&s, "part-"), ["a", "a-1", "part-002"]);
    }

    #[test]
    fn frequencies_semaphores_and_failures() {
        let mut env = Env::new(OsKind::Linux);
        env.seed.scripts = vec![
            script(
                "inst.sh",
                "#!/bin/sh\necho i\n",
                ScriptFrequency::PerInstance,
            ),
            script("once.sh", "#!/bin/sh\necho o\n", ScriptFrequency::Once),
            script("boot", "echo no shebang\n", ScriptFrequency::PerBoot),
            script(
                "bad/../name",
                "#!/bin/sh\nexit 3\n",
                ScriptFrequency::PerInstance,
            ),
        ];
        env.sys.on_command_fn(|c| {
            c.argv[0].ends_with("bad_.._name").then(|| CmdOutput {
                code: Some(3),
                ..CmdOutput::default()
            })
        });
        let e = env.run_err(&Scripts);
        assert!(e.contains("bad_.._name (exit code 3)"), "{e}");
        let dir = "/var/lib/ci-agent/instances/iid-test/scripts";
        assert_eq!(
            env.lines(),
            [
                format!("{dir}/inst.sh"),
                format!("{dir}/once.sh"),
                format!("sh {dir}/boot"),
                format!("{dir}/bad_.._name"),
            ]
        );
        assert_eq!(env.mode(&format!("{dir}/inst.sh")), 0o700);
        assert!(env
            .sys
            .read_string("/var/lib/ci-agent/instances/iid-test/sem/script-inst.sh")
            .is_some());
        assert!(env
            .sys
            .read_string("/var/lib/ci-agent/sem/script-once.sh")
            .is_some());
        assert!(env
            .sys
            .read_string("/var/lib/ci-agent/instances/iid-test/sem/script-bad_.._name")
            .is_none());
        let cmd = &env.sys.commands()[0];
        assert!(cmd
            .env
            .contains(&("CI_AGENT_INSTANCE_ID".into(), "iid-test".into())));

        // Second boot: the per-boot script and the failed one run again, nothing else.
        let _ = env.run(&Scripts);
        let lines = env.lines();
        assert_eq!(lines.len(), 6, "{lines:?}");
        assert_eq!(lines[4], format!("sh {dir}/boot"));
        assert_eq!(lines[5], format!("{dir}/bad_.._name"));

        // A new instance: the per-instance script runs again, the once-script does not.
        env.seed.instance_id = "iid-2".into();
        let _ = env.run(&Scripts);
        let lines = env.lines();
        assert!(lines[6].ends_with("iid-2/scripts/inst.sh"), "{lines:?}");
        assert!(!lines[6..].iter().any(|l| l.ends_with("once.sh")));
    }
}
