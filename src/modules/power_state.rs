//! Key: `power_state`. cloud-init: `cc_power_state_change`.
//!
//! `power_state`: power off, reboot or halt at the end of the first run, like cloud-init's
//! `cc_power_state_change`. `mode` is `poweroff|reboot|halt`, `delay` `now`, `+N` or a
//! number of minutes, `message` goes to the console, `condition` (a command: string → `sh
//! -c`, list → argv) must exit 0 for anything to happen.
//!
//! Linux `shutdown -P|-r|-H DELAY [MESSAGE]`, FreeBSD `shutdown -p|-r|-h DELAY [MESSAGE]`.
//! Because `now` may stop the machine before the run records this module, the module
//! marks itself done first (`<instance_dir>/power_state.done`) and is not wanted again
//! for that instance — a clone never reboots in a loop. Once per instance, last.

use std::path::PathBuf;

use anyhow::{bail, Context as _};

use super::{Context, Frequency, Module, Stage};
use crate::platform::exec;
use crate::platform::policy::{shorten, PowerMode};
use crate::platform::Cmd;

pub struct PowerStateModule;

/// Written in the instance dir before the shutdown command runs.
const MARKER: &str = "power_state.done";

fn marker(ctx: &Context) -> PathBuf {
    ctx.instance_dir.join(MARKER)
}

/// `delay` as shutdown(8) wants it.
pub fn parse_delay(d: Option<&str>) -> Result<String, String> {
    let d = d.unwrap_or("now").trim();
    if d == "now" {
        return Ok("now".into());
    }
    let n = d.strip_prefix('+').unwrap_or(d);
    match n.parse::<u32>() {
        Ok(0) => Ok("now".into()),
        Ok(n) => Ok(format!("+{n}")),
        Err(_) => Err(format!(
            "power_state.delay: {:?} is not 'now', '+N' or a number of minutes",
            shorten(d)
        )),
    }
}

pub fn parse_mode(m: &str) -> Result<PowerMode, String> {
    match m {
        "poweroff" => Ok(PowerMode::Poweroff),
        "reboot" => Ok(PowerMode::Reboot),
        "halt" => Ok(PowerMode::Halt),
        other => Err(format!(
            "power_state.mode: {:?} is not poweroff, reboot or halt",
            shorten(other)
        )),
    }
}

impl Module for PowerStateModule {
    fn name(&self) -> &'static str {
        "power_state"
    }
    fn keys(&self) -> &'static [&'static str] {
        &["power_state"]
    }
    fn frequency(&self) -> Frequency {
        Frequency::PerInstance
    }
    fn stage(&self) -> Stage {
        Stage::Late
    }
    fn wanted(&self, ctx: &Context) -> bool {
        ctx.cc().power_state.is_some() && !ctx.sys.exists(&marker(ctx))
    }
    fn run(&self, ctx: &mut Context) -> anyhow::Result<()> {
        let Some(ps) = ctx.cc().power_state.clone() else {
            return Ok(());
        };
        let mode = parse_mode(&ps.mode).map_err(anyhow::Error::msg)?;
        let delay = parse_delay(ps.delay.as_deref()).map_err(anyhow::Error::msg)?;
        let message = ps
            .message
            .as_deref()
            .map(|m| m.replace(['\n', '\r', '\0'], " "));
        if let Some(cond) = &ps.condition {
            let Some(argv) = exec::spec_argv(cond) else {
                bail!("power_state.condition: empty command");
            };
            let cmd = ctx.seed_env(Cmd::new(argv));
            let cmd = match ps.timeout_secs {
                Some(t) => cmd.timeout(std::time::Duration::from_secs(t)),
                None => cmd,
            };
            let out = ctx
                .sys
                .run(&cmd)
                .with_context(|| "power_state.condition: could not run")?;
            exec::log_output("power_state.condition", &out);
            if !out.success() {
                log::info!(
                    "power_state: condition not met ({}); not changing power state",
                    exec::describe_exit(&out)
                );
                return Ok(());
            }
        }
        ctx.write_instance_file(MARKER, ps.mode.as_bytes(), 0o600)?;
        let cmd = ctx.policy().shutdown(mode, &delay, message.as_deref());
        exec::run_ok(ctx.sys, &cmd)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::userdata::cloud_config::{CommandSpec, PowerState};
    use crate::modules::test_env::Env;
    use crate::platform::{CmdOutput, OsKind};

    fn ps(mode: &str, delay: Option<&str>) -> PowerState {
        PowerState {
            mode: mode.into(),
            delay: delay.map(Into::into),
            message: Some("bye\nnow".into()),
            timeout_secs: None,
            condition: None,
        }
    }

    #[test]
    fn delays_and_modes() {
        assert_eq!(parse_delay(None).unwrap(), "now");
        assert_eq!(parse_delay(Some("+5")).unwrap(), "+5");
        assert_eq!(parse_delay(Some("30")).unwrap(), "+30");
        assert!(parse_delay(Some("; reboot")).is_err());
        assert!(parse_mode("explode").is_err());
    }

    #[test]
    fn linux_reboot_once() {
        let mut env = Env::new(OsKind::Linux);
        env.seed.cloud_config.power_state = Some(ps("reboot", Some("+1")));
        env.run_ok(&PowerStateModule);
        assert_eq!(
            env.sys.commands()[0].argv,
            ["shutdown", "-r", "+1", "bye now"]
        );
        assert!(
            env.run(&PowerStateModule).is_none(),
            "marked done before shutting down"
        );
    }

    #[test]
    fn freebsd_condition() {
        let mut env = Env::new(OsKind::FreeBsd);
        let mut p = ps("poweroff", None);
        p.condition = Some(CommandSpec::Argv(vec![
            "test".into(),
            "-f".into(),
            "/x".into(),
        ]));
        env.seed.cloud_config.power_state = Some(p);
        env.sys.on_command(
            &["test"],
            CmdOutput {
                code: Some(1),
                ..CmdOutput::default()
            },
        );
        env.run_ok(&PowerStateModule);
        assert_eq!(env.lines(), ["test -f /x"], "condition false: no shutdown");
        env.sys.on_command(
            &["test"],
            CmdOutput {
                code: Some(0),
                ..CmdOutput::default()
            },
        );
        env.run_ok(&PowerStateModule);
        assert_eq!(
            env.sys.commands()[2].argv,
            ["shutdown", "-p", "now", "bye now"]
        );
        env.seed.cloud_config.power_state = Some(ps("explode", None));
    }
}
