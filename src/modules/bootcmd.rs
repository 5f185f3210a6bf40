//! Key: `bootcmd`. cloud-init: `cc_bootcmd`.
//!
//! `bootcmd`: commands run early on every boot (before networking), like cloud-init's
//! `cc_bootcmd`. A string item is run by `sh -c`, a list item is an argv; every item runs
//! even when an earlier one failed, and the module fails naming the failed items. Each
//! gets `INSTANCE_ID` (as cloud-init exports it) and `CI_AGENT_SEED_DIR`.

use super::{Context, Frequency, Module, Stage};

pub struct Bootcmd;

impl Module for Bootcmd {
    fn name(&self) -> &'static str {
        "bootcmd"
    }
    fn keys(&self) -> &'static [&'static str] {
        &["bootcmd"]
    }
    fn frequency(&self) -> Frequency {
        Frequency::PerBoot
    }
    fn stage(&self) -> Stage {
        Stage::Early
    }
    fn wanted(&self, ctx: &Context) -> bool {
        !ctx.cc().bootcmd.is_empty()
    }
    fn run(&self, ctx: &mut Context) -> anyhow::Result<()> {
        let items = ctx.cc().bootcmd.clone();
        let iid = ctx.seed.instance_id.clone();
        ctx.run_items("bootcmd", &items, &[("INSTANCE_ID", &iid)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::userdata::cloud_config::CommandSpec;
    use crate::modules::test_env::Env;
    use crate::platform::{CmdOutput, OsKind};

    #[test]
    fn runs_all_items_and_names_failures() {
        let mut env = Env::new(OsKind::Linux);
        assert!(env.run(&Bootcmd).is_none(), "nothing to do");
        env.seed.cloud_config.bootcmd = vec![
            CommandSpec::Shell("echo one".into()),
            CommandSpec::Argv(vec!["false".into()]),
            CommandSpec::Argv(vec!["touch".into(), "/x y".into()]),
        ];
        env.sys.on_command(
            &["false"],
            CmdOutput {
                code: Some(1),
                ..CmdOutput::default()
            },
        );
        let e = env.run_err(&Bootcmd);
        assert!(e.contains("bootcmd[1] (exit code 1)"), "{e}");
        assert!(
            !e.contains("bootcmd[0]") && !e.contains("bootcmd[2]"),
            "{e}"
        );
        assert_eq!(env.lines(), ["sh -c echo one", "false", "touch /x y"]);
        let c = &env.sys.commands()[0];
        assert!(c
            .env
            .contains(&("CI_AGENT_SEED_DIR".into(), "/run/ci-agent/seed".into())));
        assert!(c.env.contains(&("INSTANCE_ID".into(), "iid-test".into())));
    }
}
