//! Key: `final_message`. cloud-init: `cc_final_message`.
//!
//! `final_message`: the line that tells the console the run is over, like cloud-init's
//! "Cloud-init v. … finished at …". The default is
//! `ci-agent v. $VERSION finished at $TIMESTAMP. Datasource $DATASOURCE.  Up $UPTIME seconds`;
//! a seed's `final_message` may use `$UPTIME`, `$TIMESTAMP`, `$DATASOURCE`, `$VERSION`,
//! `$INSTANCE_ID` (also as `${NAME}`). Logged at info level, which reaches the console by
//! default (it is news, not a problem: a warning on every run would teach people to
//! ignore warnings). Every boot, late.

use std::path::Path;
use std::time::UNIX_EPOCH;

use super::{Context, Frequency, Module, Stage};
use crate::platform::policy::UptimeSource;

pub struct FinalMessage;

pub const DEFAULT: &str =
    "ci-agent v. $VERSION finished at $TIMESTAMP. Datasource $DATASOURCE.  Up $UPTIME seconds";

/// `secs` since the epoch as `Sun, 22 Nov 2026 03:04:05 +0000`.
pub fn rfc2822(secs: u64) -> String {
    crate::formats::civil::Civil::from_unix(i64::try_from(secs).unwrap_or(i64::MAX / 2)).rfc2822()
}

fn uptime(ctx: &Context, now: u64) -> Option<String> {
    match ctx.policy().uptime_source() {
        UptimeSource::ProcUptime(p) => {
            let b = ctx.sys.read_file(Path::new(&p), 4096).ok()?;
            let s = String::from_utf8_lossy(&b);
            let first = s.split_whitespace().next()?;
            first.parse::<f64>().ok().map(|_| first.to_string())
        }
        UptimeSource::BootTimeCmd(cmd) => {
            let out = ctx.sys.run(&cmd).ok().filter(|o| o.success())?;
            let s = String::from_utf8_lossy(&out.stdout);
            let sec: u64 = s
                .split("sec =")
                .nth(1)?
                .trim_start()
                .split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()?;
            Some(now.saturating_sub(sec).to_string())
        }
    }
}

/// Replace `$NAME` and `${NAME}` for the known names; anything else stays as written.
/// One pass over the template: a value that itself holds `$NAME` (an instance-id from
/// meta-data, say) is printed as it is, not expanded again.
pub fn substitute(template: &str, vars: &[(&str, String)]) -> String {
    // Longest names first so `$INSTANCE_ID` is not cut by a shorter one.
    let mut sorted: Vec<&(&str, String)> = vars.iter().collect();
    sorted.sort_by_key(|(k, _)| std::cmp::Reverse(k.len()));
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let hit = sorted.iter().find_map(|(k, v)| {
            let braced = after
                .strip_prefix('{')
                .and_then(|a| a.strip_prefix(*k))
                .and_then(|a| a.strip_prefix('}'));
            braced.or_else(|| after.strip_prefix(*k)).map(|a| (v, a))
        });
        match hit {
            Some((v, a)) => {
                out.push_str(v);
                rest = a;
            }
            None => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

impl Module for FinalMessage {
    fn name(&self) -> &'static str {
        "final_message"
    }
    fn keys(&self) -> &'static [&'static str] {
        &["final_message"]
    }
    fn frequency(&self) -> Frequency {
        Frequency::PerBoot
    }
    fn stage(&self) -> Stage {
        Stage::Late
    }
    fn wanted(&self, _ctx: &Context) -> bool {
        true
    }
    fn run(&self, ctx: &mut Context) -> anyhow::Result<()> {
        let now = ctx
            .sys
            .now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let vars = [
            (
                "UPTIME",
                uptime(ctx, now).unwrap_or_else(|| "unknown".into()),
            ),
            ("TIMESTAMP", rfc2822(now)),
            ("DATASOURCE", ctx.seed.source.clone()),
            ("VERSION", env!("CARGO_PKG_VERSION").to_string()),
            ("INSTANCE_ID", ctx.seed.instance_id.clone()),
        ];
        let template = ctx
            .cc()
            .final_message
            .clone()
            .unwrap_or_else(|| DEFAULT.into());
        for line in substitute(&template, &vars).lines() {
            log::info!("{line}");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::test_env::Env;
    use crate::platform::{CmdOutput, OsKind};

    #[test]
    fn dates() {
        assert_eq!(rfc2822(0), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(rfc2822(1_767_225_600), "Thu, 01 Jan 2026 00:00:00 +0000");
        assert_eq!(rfc2822(951_782_400), "Tue, 29 Feb 2000 00:00:00 +0000");
        assert_eq!(rfc2822(1_800_000_000), "Fri, 15 Jan 2027 08:00:00 +0000");
    }

    #[test]
    fn substitutions() {
        let v = [
            ("UPTIME", "12.5".to_string()),
            ("INSTANCE_ID", "iid-1".to_string()),
        ];
        assert_eq!(
            substitute("up $UPTIME s, ${INSTANCE_ID}, $INSTANCE_IDx, $HOME", &v),
            "up 12.5 s, iid-1, iid-1x, $HOME"
        );
        // values are not expanded again, whatever they hold
        let v = [
            ("UPTIME", "12.5".to_string()),
            ("INSTANCE_ID", "$UPTIME-${UPTIME}".to_string()),
        ];
        assert_eq!(
            substitute("$INSTANCE_ID $UPTIME $$ ${UPTIME $", &v),
            "$UPTIME-${UPTIME} 12.5 $$ ${UPTIME $"
        );
    }

    #[test]
    fn uptime_sources() {
        let env = Env::new(OsKind::Linux);
        env.sys.put("/proc/uptime", "350.27 600.10\n");
        assert_eq!(uptime(&env.ctx(), 0).as_deref(), Some("350.27"));
        env.run_ok(&FinalMessage);
        let env = Env::new(OsKind::FreeBsd);
        env.sys.on_command(
            &["sysctl", "-n", "kern.boottime"],
            CmdOutput {
                code: Some(0),
                stdout: b"{ sec = 1767225500, usec = 5 } Wed Dec 31 23:58:20 2025\n".to_vec(),
                ..CmdOutput::default()
            },
        );
        assert_eq!(uptime(&env.ctx(), 1_767_225_600).as_deref(), Some("100"));
    }
}
