//! Key: `ssh_deletekeys`, `ssh_genkeytypes`. cloud-init: `cc_ssh` (its host-keys half).
//!
//! `ssh_host_keys` (keys `ssh_deletekeys`, `ssh_genkeytypes`; config
//! `identity.regenerate_ssh_host_keys`): a clone must not share the template's SSH host
//! keys. On a new instance the `/etc/ssh/ssh_host_*key*` files are deleted and new keys
//! made: `ssh-keygen -A` (every default type), or one
//! `ssh-keygen -q -t TYPE -N "" -f /etc/ssh/ssh_host_TYPE_key` per listed type that is
//! missing. `ssh_deletekeys` from the seed overrides the config switch. Runs once per
//! instance, early (before sshd starts).

use std::path::Path;

use anyhow::{bail, Context as _};

use super::{Context, Frequency, Module, Stage};
use crate::platform::exec;
use crate::platform::Cmd;

pub struct SshHostKeys;

const SSH_DIR: &str = "/etc/ssh";
const KEY_TYPES: [&str; 4] = ["rsa", "dsa", "ecdsa", "ed25519"];

fn delete_enabled(ctx: &Context) -> bool {
    ctx.cc()
        .ssh_deletekeys
        .unwrap_or(ctx.config.identity.regenerate_ssh_host_keys)
}

/// The commands making host keys for `types` (`None`: every default type).
pub fn keygen_commands(types: Option<&[String]>, missing: impl Fn(&str) -> bool) -> Vec<Cmd> {
    match types {
        None => vec![Cmd::new(["ssh-keygen", "-A"])],
        Some(types) => types
            .iter()
            .filter(|t| missing(t))
            .map(|t| {
                let f = format!("{SSH_DIR}/ssh_host_{t}_key");
                Cmd::new(["ssh-keygen", "-q", "-t", t, "-N", "", "-f", &f])
            })
            .collect(),
    }
}

impl Module for SshHostKeys {
    fn name(&self) -> &'static str {
        "ssh_host_keys"
    }
    fn keys(&self) -> &'static [&'static str] {
        &["ssh_deletekeys", "ssh_genkeytypes"]
    }
    fn frequency(&self) -> Frequency {
        Frequency::PerInstance
    }
    fn stage(&self) -> Stage {
        Stage::Early
    }
    fn wanted(&self, ctx: &Context) -> bool {
        delete_enabled(ctx) || ctx.cc().ssh_genkeytypes.is_some()
    }
    fn run(&self, ctx: &mut Context) -> anyhow::Result<()> {
        let types = ctx.cc().ssh_genkeytypes.clone();
        if let Some(types) = &types {
            for (i, t) in types.iter().enumerate() {
                if !KEY_TYPES.contains(&t.as_str()) {
                    bail!(
                        "ssh_genkeytypes[{i}]: unknown key type {:?} (expected one of {})",
                        crate::platform::policy::shorten(t),
                        KEY_TYPES.join(", ")
                    );
                }
            }
        }
        let dir = Path::new(SSH_DIR);
        if !ctx.sys.exists(dir) {
            ctx.warn(format!(
                "{SSH_DIR} does not exist (no OpenSSH?); no host keys made"
            ));
            return Ok(());
        }
        if delete_enabled(ctx) {
            let names = ctx
                .sys
                .read_dir(dir)
                .with_context(|| format!("listing {SSH_DIR}"))?;
            for n in names
                .iter()
                .filter(|n| n.starts_with("ssh_host_") && n.contains("key"))
            {
                let p = dir.join(n);
                ctx.sys
                    .remove_file(&p)
                    .with_context(|| format!("removing {}", p.display()))?;
                log::info!("removed {}", p.display());
            }
        }
        let sys = ctx.sys;
        let missing = |t: &str| !sys.exists(&dir.join(format!("ssh_host_{t}_key")));
        for cmd in keygen_commands(types.as_deref(), missing) {
            exec::run_ok(ctx.sys, &cmd)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::test_env::Env;
    use crate::platform::OsKind;

    #[test]
    fn deletes_template_keys_and_regenerates() {
        let env = Env::new(OsKind::Linux);
        for f in [
            "ssh_host_ed25519_key",
            "ssh_host_ed25519_key.pub",
            "ssh_host_rsa_key",
            "ssh_host_rsa_key-cert.pub",
            "sshd_config",
            "moduli",
        ] {
            env.sys.put(format!("/etc/ssh/{f}"), "x");
        }
        env.run_ok(&SshHostKeys);
        let left = crate::platform::System::read_dir(&env.sys, Path::new("/etc/ssh")).unwrap();
        assert_eq!(left, ["moduli", "sshd_config"]);
        assert_eq!(env.lines(), ["ssh-keygen -A"]);
    }

    #[test]
    fn genkeytypes_only_missing_and_validated() {
        let mut env = Env::new(OsKind::FreeBsd);
        env.sys.put("/etc/ssh/ssh_host_rsa_key", "x");
        env.seed.cloud_config.ssh_deletekeys = Some(false);
        env.seed.cloud_config.ssh_genkeytypes = Some(vec!["rsa".into(), "ed25519".into()]);
        env.run_ok(&SshHostKeys);
        assert_eq!(
            env.sys.commands()[0].argv,
            [
                "ssh-keygen",
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-f",
                "/etc/ssh/ssh_host_ed25519_key"
            ]
        );
        assert_eq!(env.lines().len(), 1);
        assert!(env.sys.read_string("/etc/ssh/ssh_host_rsa_key").is_some());

        env.seed.cloud_config.ssh_genkeytypes = Some(vec!["rsa; rm -rf /".into()]);
        let e = env.run_err(&SshHostKeys);
        assert!(e.contains("ssh_genkeytypes[0]: unknown key type"), "{e}");
    }

    #[test]
    fn switches() {
        let mut env = Env::new(OsKind::Linux);
        env.config.identity.regenerate_ssh_host_keys = false;
        assert!(env.run(&SshHostKeys).is_none());
        env.seed.cloud_config.ssh_deletekeys = Some(true);
        // no /etc/ssh: a warning, no command
        let w = env.run_ok(&SshHostKeys);
        assert!(w[0].contains("/etc/ssh does not exist"), "{w:?}");
        assert!(env.lines().is_empty());
    }
}
