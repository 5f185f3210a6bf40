//! Key: `groups`. cloud-init: `cc_users_groups`.
//!
//! `groups`: create the listed groups (before `users`, so users can join them) and add
//! their listed members. Names are validated; a member that does not exist is a warning
//! (as cloud-init). Looks groups up in the guest's `/etc/group`. Once per instance.

use anyhow::bail;

use super::{Context, Frequency, Module, Stage};
use crate::platform::accounts::{check_account_name, AccountDb};
use crate::platform::exec;

pub struct Groups;

impl Module for Groups {
    fn name(&self) -> &'static str {
        "groups"
    }
    fn keys(&self) -> &'static [&'static str] {
        &["groups"]
    }
    fn frequency(&self) -> Frequency {
        Frequency::PerInstance
    }
    fn stage(&self) -> Stage {
        Stage::Early
    }
    fn wanted(&self, ctx: &Context) -> bool {
        !ctx.cc().groups.is_empty()
    }
    fn run(&self, ctx: &mut Context) -> anyhow::Result<()> {
        let specs = ctx.cc().groups.clone();
        for (i, g) in specs.iter().enumerate() {
            check_account_name(&g.name, &format!("groups[{i}]"))?;
            for m in &g.members {
                check_account_name(m, &format!("groups[{i}] ({}) members", g.name))?;
            }
        }
        let policy = ctx.policy();
        let mut failed = Vec::new();
        for g in &specs {
            let db = AccountDb::load(ctx.sys)?;
            if db.group(&g.name).is_none() {
                if let Err(e) = exec::run_ok(ctx.sys, &policy.groupadd(&g.name)) {
                    failed.push(format!("{e:#}"));
                    continue;
                }
            }
            let db = AccountDb::load(ctx.sys)?;
            for m in &g.members {
                if db.user(m).is_none() {
                    ctx.warn(format!("not adding {m} to group {}: no such user", g.name));
                } else if !db.is_member(m, &g.name) {
                    if let Err(e) = exec::run_ok(ctx.sys, &policy.add_to_group(m, &g.name)) {
                        failed.push(format!("{e:#}"));
                    }
                }
            }
        }
        if !failed.is_empty() {
            bail!("{}", failed.join("; "));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::userdata::cloud_config::GroupSpec;
    use crate::modules::test_env::Env;
    use crate::platform::OsKind;

    #[test]
    fn creates_once_adds_members_warns_unknown() {
        let mut env = Env::new(OsKind::Linux);
        env.sys.put(
            "/etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nbob:x:1000:1000::/home/bob:/bin/sh\n",
        );
        env.seed.cloud_config.groups = vec![
            GroupSpec {
                name: "ops".into(),
                members: vec!["bob".into(), "ghost".into()],
            },
            GroupSpec {
                name: "sudo".into(),
                members: vec![],
            },
        ];
        let w = env.run_ok(&Groups);
        assert_eq!(env.lines(), ["groupadd ops", "usermod -a -G ops bob"]);
        assert!(w[0].contains("ghost"), "{w:?}");
        env.run_ok(&Groups);
        assert_eq!(env.lines().len(), 2, "second run creates nothing");

        env.seed.cloud_config.groups[0].name = "ops;rm".into();
        let e = env.run_err(&Groups);
        assert!(e.starts_with("groups[0]: invalid name"), "{e}");
    }

    #[test]
    fn freebsd_pw() {
        let mut env = Env::new(OsKind::FreeBsd);
        env.seed.cloud_config.groups = vec![GroupSpec {
            name: "ops".into(),
            members: vec!["root".into()],
        }];
        env.run_ok(&Groups);
        assert_eq!(env.lines(), ["pw groupadd ops", "pw groupmod ops -m root"]);
    }
}
