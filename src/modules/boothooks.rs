//! Key: `#cloud-boothook` user-data parts (no cloud-config key). cloud-init: the boot-hook part handler (`handlers/boot_hook.py`).
//!
//! `boothooks`: `#cloud-boothook` parts, run very early on every boot like cloud-init's
//! boothook handler. Each is written to `<instance_dir>/boothooks/<name>` (0700) and run
//! with `INSTANCE_ID` (cloud-init's variable) and `CI_AGENT_SEED_DIR` in its environment.
//! The `#cloud-boothook` line is dropped; a body without `#!` is given to `sh`.

use anyhow::bail;

use super::{scripts, Context, Frequency, Module, Stage};
use crate::platform::exec;

pub struct Boothooks;

/// The body without its `#cloud-boothook` first line.
fn strip_marker(body: &[u8]) -> &[u8] {
    const MARK: &[u8] = b"#cloud-boothook";
    if body.starts_with(MARK) {
        match body.iter().position(|&b| b == b'\n') {
            Some(i) => &body[i + 1..],
            None => &[],
        }
    } else {
        body
    }
}

impl Module for Boothooks {
    fn name(&self) -> &'static str {
        "boothooks"
    }
    fn frequency(&self) -> Frequency {
        Frequency::PerBoot
    }
    fn stage(&self) -> Stage {
        Stage::Early
    }
    fn wanted(&self, ctx: &Context) -> bool {
        !ctx.seed.boothooks.is_empty()
    }
    fn run(&self, ctx: &mut Context) -> anyhow::Result<()> {
        let hooks = ctx.seed.boothooks.clone();
        let names = scripts::unique_names(&hooks, "boothook-");
        let dir = ctx.instance_dir.join("boothooks");
        let iid = ctx.seed.instance_id.clone();
        let mut failed = Vec::new();
        for (h, name) in hooks.iter().zip(&names) {
            let body = strip_marker(&h.body);
            match scripts::install_and_run(ctx, &dir, name, body, &[("INSTANCE_ID", &iid)]) {
                Ok(out) if out.success() => {}
                Ok(out) => failed.push(format!("{name} ({})", exec::describe_exit(&out))),
                Err(e) => failed.push(format!("{name} ({e:#})")),
            }
        }
        if !failed.is_empty() {
            bail!("boothooks failed: {}", failed.join(", "));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::userdata::{Frequency as F, Script};
    use crate::modules::test_env::Env;
    use crate::platform::OsKind;

    #[test]
    fn writes_strips_marker_and_runs_with_instance_id() {
        let mut env = Env::new(OsKind::FreeBsd);
        env.seed.boothooks = vec![Script {
            name: "hook".into(),
            interpreter: "/bin/sh".into(),
            body: b"#cloud-boothook\n#!/bin/sh\necho $INSTANCE_ID\n".to_vec(),
            frequency: F::PerBoot,
        }];
        env.run_ok(&Boothooks);
        let p = "/var/db/ci-agent/instances/iid-test/boothooks/hook";
        assert_eq!(env.read(p), "#!/bin/sh\necho $INSTANCE_ID\n");
        assert_eq!(env.mode(p), 0o700);
        let c = &env.sys.commands()[0];
        assert_eq!(c.argv, [p]);
        assert!(c.env.contains(&("INSTANCE_ID".into(), "iid-test".into())));
        assert!(c.env.iter().any(|(k, _)| k == "CI_AGENT_SEED_DIR"));
        assert_eq!(strip_marker(b"#cloud-boothook"), b"");
        assert_eq!(strip_marker(b"echo x"), b"echo x");
    }
}
