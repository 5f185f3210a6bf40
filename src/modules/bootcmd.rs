//! Key: `bootcmd`. cloud-init: `cc_bootcmd`.
//!
//! `bootcmd`: commands run early on every boot (before networking), like cloud-init's
//! `cc_bootcmd`: all items in one `#!/bin/sh` script (see `runcmd` for its lines), run
//! once with `INSTANCE_ID` (as cloud-init exports it) and `CI_AGENT_SEED_DIR`; no
//! `set -e`, so every item runs; the module fails when the script's exit status is not 0.
//! The script is kept as `instances/<iid>/bootcmd` (rewritten each boot).

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
    fn one_script_with_the_instance_id() {
        let mut env = Env::new(OsKind::Linux);
        assert!(env.run(&Bootcmd).is_none(), "nothing to do");
        env.seed.cloud_config.bootcmd = vec![
            CommandSpec::Shell("echo one".into()),
            CommandSpec::Argv(vec!["false".into()]),
            CommandSpec::Argv(vec!["touch".into(), "/x y".into()]),
        ];
        let script = "/var/lib/ci-agent/instances/iid-test/bootcmd";
        env.sys.on_command(
            &["/bin/sh", script],
            CmdOutput {
                code: Some(1),
                ..CmdOutput::default()
            },
        );
        let e = env.run_err(&Bootcmd);
        assert!(e.contains("bootcmd") && e.contains("exit code 1"), "{e}");
        assert_eq!(
            env.read(script),
            "#!/bin/sh\necho one\n'false'\n'touch' '/x y'\n"
        );
        assert_eq!(env.lines(), [format!("/bin/sh {script}")]);
        let c = &env.sys.commands()[0];
        assert!(c
            .env
            .contains(&("CI_AGENT_SEED_DIR".into(), "/run/ci-agent/seed".into())));
        assert!(c.env.contains(&("INSTANCE_ID".into(), "iid-test".into())));
    }
}
