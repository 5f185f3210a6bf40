//! Key: `users[].doas`. cloud-init: `cc_users_groups` (its doas half).
//!
//! Each user's `doas` rules (`permit nopass alice as root`) go to doas.conf, as nuageinit
//! and cloud-init do: FreeBSD `/usr/local/etc/doas.conf`; on Linux `/etc/doas.conf` where
//! doas is installed (without it the module fails naming doas). The rules sit in one block
//! per user between marker comments, replaced on each run (idempotent); other lines are
//! kept. Each rule must be one line starting with `permit` or `deny` and naming its user
//! (as cloud-init checks); the new file is checked with `doas -C` before it replaces the
//! old one, so a rule that does not parse leaves the file as it was. Mode 0600.
//! Early (after `users`), once per instance.

use std::path::Path;

use anyhow::bail;

use super::{Context, Frequency, Module, Stage};
use crate::formats::userdata::cloud_config::{User, UserSpec};
use crate::platform::OsKind;

pub struct Doas;

fn users<'a>(ctx: &Context<'a>) -> Vec<&'a User> {
    let seed: &'a crate::formats::userdata::SeedData = ctx.seed;
    seed.cloud_config
        .users
        .iter()
        .flatten()
        .filter_map(|u| match u {
            UserSpec::User(u) if !u.doas.is_empty() => Some(&**u),
            _ => None,
        })
        .collect()
}

fn check_rule(user: &str, rule: &str) -> Result<(), String> {
    if rule.chars().any(|c| c.is_control()) {
        return Err("a rule must be one line".into());
    }
    let mut words = rule.split_whitespace();
    if !matches!(words.next(), Some("permit" | "deny")) {
        return Err("a rule starts with 'permit' or 'deny'".into());
    }
    if !rule.split_whitespace().any(|w| w == user) {
        return Err(format!("the rule does not name the user {user}"));
    }
    Ok(())
}

fn marker(user: &str, end: bool) -> String {
    format!(
        "# {} ci-agent doas rules for {user}",
        if end { "END" } else { "BEGIN" }
    )
}

/// `old` with `user`'s block replaced by `rules` (dropped when empty).
pub fn update(old: &str, user: &str, rules: &[String]) -> String {
    let (b, e) = (marker(user, false), marker(user, true));
    let mut out = String::new();
    let mut inside = false;
    for l in old.lines() {
        if l == b {
            inside = true;
        } else if l == e {
            inside = false;
        } else if !inside {
            out.push_str(l);
            out.push('\n');
        }
    }
    if !rules.is_empty() {
        out.push_str(&b);
        out.push('\n');
        for r in rules {
            out.push_str(r.trim());
            out.push('\n');
        }
        out.push_str(&e);
        out.push('\n');
    }
    out
}

impl Module for Doas {
    fn name(&self) -> &'static str {
        "doas"
    }
    fn frequency(&self) -> Frequency {
        Frequency::PerInstance
    }
    fn stage(&self) -> Stage {
        Stage::Early
    }
    fn wanted(&self, ctx: &Context) -> bool {
        !users(ctx).is_empty()
    }
    fn run(&self, ctx: &mut Context) -> anyhow::Result<()> {
        let list = users(ctx);
        for u in &list {
            for (i, r) in u.doas.iter().enumerate() {
                check_rule(&u.name, r)
                    .map_err(|e| anyhow::anyhow!("users {}: doas[{i}]: {e}", u.name))?;
            }
        }
        let (conf, doas) = match ctx.os {
            OsKind::FreeBsd => ("/usr/local/etc/doas.conf", ctx.find_tool("doas")),
            OsKind::Linux => match ctx.find_tool("doas") {
                Some(t) => ("/etc/doas.conf", Some(t)),
                None => bail!("doas: rules given but doas is not installed in the template"),
            },
        };
        let path = Path::new(conf);
        let old = if ctx.sys.exists(path) {
            String::from_utf8_lossy(&ctx.sys.read_file(path, 1 << 20)?).into_owned()
        } else {
            String::new()
        };
        let mut text = old.clone();
        for u in &list {
            text = update(&text, &u.name, &u.doas);
        }
        if text == old {
            return Ok(());
        }
        if let Some(tool) = doas {
            let candidate = ctx.write_instance_file("doas.conf.new", text.as_bytes(), 0o600)?;
            let checked = ctx.cmd(&[&tool.to_string_lossy(), "-C", &candidate.to_string_lossy()]);
            let _ = ctx.sys.remove_file(&candidate);
            if let Err(e) = checked {
                bail!("doas: the new rules do not parse, {conf} left as it was: {e:#}");
            }
        } else {
            ctx.warn("doas is not installed yet: rules written unchecked (pkg install doas)");
        }
        ctx.write_config(conf, text.as_bytes(), 0o600)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::test_env::Env;
    use crate::platform::{CmdOutput, System};

    const SEED: &str =
        "users:\n- default\n- name: alice\n  doas: ['permit nopass alice as root']\n";

    #[test]
    fn freebsd_writes_checked_rules_once() {
        let mut env = Env::new(OsKind::FreeBsd);
        env.sys.put("/usr/local/bin/doas", "");
        env.sys.put("/usr/local/etc/doas.conf", "permit :wheel\n");
        env.yaml(SEED);
        env.run_ok(&Doas);
        env.run_ok(&Doas);
        assert_eq!(
            env.read("/usr/local/etc/doas.conf"),
            "permit :wheel\n# BEGIN ci-agent doas rules for alice\npermit nopass alice as root\n# END ci-agent doas rules for alice\n"
        );
        assert_eq!(env.mode("/usr/local/etc/doas.conf"), 0o600);
        assert_eq!(
            env.lines(),
            ["/usr/local/bin/doas -C /var/db/ci-agent/instances/iid-test/doas.conf.new"]
        );
    }

    #[test]
    fn linux_needs_doas_and_bad_rules_change_nothing() {
        let mut env = Env::new(OsKind::Linux);
        env.yaml(SEED);
        assert!(env.run_err(&Doas).contains("doas is not installed"));
        env.sys.put("/usr/bin/doas", "");
        env.sys.on_command(
            &["/usr/bin/doas"],
            CmdOutput {
                code: Some(1),
                ..CmdOutput::default()
            },
        );
        assert!(env.run_err(&Doas).contains("do not parse"));
        assert!(!env.sys.exists(Path::new("/etc/doas.conf")));
        env.yaml("users:\n- name: bob\n  doas: ['permit nopass alice']\n");
        assert!(env.run_err(&Doas).contains("does not name the user bob"));
    }
}
