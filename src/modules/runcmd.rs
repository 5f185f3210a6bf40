//! Key: `runcmd`. cloud-init: `cc_runcmd` (run by `cc_scripts_user`).
//!
//! `runcmd`: the user's commands, late (after the network and packages), once per
//! instance. Like cloud-init and nuageinit, all items go into one `#!/bin/sh` script, one
//! line per item (a list item is its argv, each word single-quoted; a string item is
//! copied as is), run once: `cd /opt/app` then `./install` works, and a variable set by
//! one item is seen by the next. No `set -e`: items after a failing one still run; the
//! module fails when the script's exit status (its last command's) is not 0. The script
//! stays in the instance's state dir (`instances/<iid>/runcmd`) for debugging. Output is
//! logged line by line, bounded.

use super::{Context, Frequency, Module, Stage};

pub struct Runcmd;

impl Module for Runcmd {
    fn name(&self) -> &'static str {
        "runcmd"
    }
    fn keys(&self) -> &'static [&'static str] {
        &["runcmd"]
    }
    fn frequency(&self) -> Frequency {
        Frequency::PerInstance
    }
    fn stage(&self) -> Stage {
        Stage::Late
    }
    fn wanted(&self, ctx: &Context) -> bool {
        !ctx.cc().runcmd.is_empty()
    }
    fn run(&self, ctx: &mut Context) -> anyhow::Result<()> {
        let items = ctx.cc().runcmd.clone();
        ctx.run_items("runcmd", &items, &[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::userdata::cloud_config::CommandSpec;
    use crate::modules::test_env::Env;
    use crate::platform::{CmdOutput, OsKind};

    const SCRIPT: &str = "/var/db/ci-agent/instances/iid-test/runcmd";

    #[test]
    fn one_script_strings_as_is_lists_quoted() {
        let mut env = Env::new(OsKind::FreeBsd);
        env.seed.cloud_config.runcmd = vec![
            CommandSpec::Shell("cd /opt/app".into()),
            CommandSpec::Shell("X=1; ./install \"$X\"".into()),
            CommandSpec::Argv(vec![]),
            CommandSpec::Argv(vec!["echo".into(), "$HOME; rm -rf /".into(), "it's".into()]),
        ];
        env.run_ok(&Runcmd);
        assert_eq!(
            env.read(SCRIPT),
            "#!/bin/sh\ncd /opt/app\nX=1; ./install \"$X\"\n\n'echo' '$HOME; rm -rf /' 'it'\\''s'\n"
        );
        assert_eq!(env.mode(SCRIPT) & 0o777, 0o700);
        let cmds = env.sys.commands();
        assert_eq!(cmds.len(), 1);
        assert_eq!(cmds[0].argv, ["/bin/sh", SCRIPT]);
        assert!(cmds[0]
            .env
            .contains(&("CI_AGENT_INSTANCE_ID".into(), "iid-test".into())));
    }

    #[test]
    fn a_failing_script_fails_the_module() {
        let mut env = Env::new(OsKind::FreeBsd);
        env.seed.cloud_config.runcmd = vec![CommandSpec::Shell("false".into())];
        env.sys.on_command(
            &["/bin/sh", SCRIPT],
            CmdOutput {
                code: Some(4),
                stdout: b"partial\n".to_vec(),
                ..CmdOutput::default()
            },
        );
        let e = env.run_err(&Runcmd);
        assert!(e.contains("runcmd") && e.contains("exit code 4"), "{e}");
    }

    #[test]
    fn huge_list_is_one_script() {
        let mut env = Env::new(OsKind::Linux);
        env.seed.cloud_config.runcmd = (0..20_000)
            .map(|i| CommandSpec::Argv(vec!["true".into(), i.to_string()]))
            .collect();
        env.run_ok(&Runcmd);
        assert_eq!(env.sys.commands().len(), 1);
    }
}
