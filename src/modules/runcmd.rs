//! Key: `runcmd`. cloud-init: `cc_runcmd` (run by `cc_scripts_user`).
//!
//! `runcmd`: the user's commands, late (after the network and packages), once per
//! instance. A string item is run by `sh -c`, a list item is an argv (no shell). Every
//! item runs even when one fails, like cloud-init's single script without `set -e`; the
//! module then fails naming the failed items. Output is logged line by line, bounded.
//!
//! Unlike cloud-init, each item is its own process: a `cd` or `export` in one item does
//! not carry over to the next (put such sequences in one string item).

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

    #[test]
    fn string_is_shell_list_is_argv_and_failures_are_named() {
        let mut env = Env::new(OsKind::FreeBsd);
        env.seed.cloud_config.runcmd = vec![
            CommandSpec::Shell("echo runcmd-done > /var/tmp/anchor.txt".into()),
            CommandSpec::Argv(vec!["sh".into(), "-c".into(), "exit 4".into()]),
            CommandSpec::Argv(vec![]),
            CommandSpec::Argv(vec!["echo".into(), "$HOME; rm -rf /".into()]),
        ];
        env.sys.on_command(
            &["sh", "-c", "exit 4"],
            CmdOutput {
                code: Some(4),
                stdout: b"partial\n".to_vec(),
                ..CmdOutput::default()
            },
        );
        let e = env.run_err(&Runcmd);
        assert!(e.contains("2 of 4 runcmd items failed"), "{e}");
        assert!(e.contains("runcmd[1] (exit code 4)"), "{e}");
        assert!(e.contains("runcmd[2]: empty command"), "{e}");
        let cmds = env.sys.commands();
        assert_eq!(cmds.len(), 3);
        assert_eq!(
            cmds[0].argv,
            ["sh", "-c", "echo runcmd-done > /var/tmp/anchor.txt"]
        );
        // a list item is never given to a shell
        assert_eq!(cmds[2].argv, ["echo", "$HOME; rm -rf /"]);
        assert!(cmds[2]
            .env
            .contains(&("CI_AGENT_INSTANCE_ID".into(), "iid-test".into())));
    }

    #[test]
    fn huge_list_is_linear() {
        let mut env = Env::new(OsKind::Linux);
        env.seed.cloud_config.runcmd = (0..20_000)
            .map(|i| CommandSpec::Argv(vec!["true".into(), i.to_string()]))
            .collect();
        env.run_ok(&Runcmd);
        assert_eq!(env.sys.commands().len(), 20_000);
    }
}
