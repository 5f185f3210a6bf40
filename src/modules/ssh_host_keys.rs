//! Key: `ssh_deletekeys`, `ssh_genkeytypes`. cloud-init: `cc_ssh` (its host-keys half).
//!
//! `ssh_host_keys` (keys `ssh_deletekeys`, `ssh_genkeytypes`; config
//! `identity.regenerate_ssh_host_keys`): a clone must not share the template's SSH host
//! keys. On a new instance the `/etc/ssh/ssh_host_*key*` files are deleted
//! (`ssh_deletekeys` from the seed overrides the config switch), then:
//!
//! - when the seed brings usable host keys (`ssh_keys`, see that module), none is made,
//!   as in cloud-init; when its `ssh_keys` are malformed, keys are made as below (with a
//!   warning) so that sshd never starts without one;
//! - otherwise every type of `ssh_genkeytypes` (default `rsa`, `ecdsa`, `ed25519`, what
//!   `ssh-keygen -A` makes) whose key is missing is made. Ed25519 and ECDSA (P-256) keys
//!   are generated in-process (milliseconds, where `ssh-keygen` under emulation takes
//!   seconds), with `ssh-keygen -q -t TYPE -N "" -f /etc/ssh/ssh_host_TYPE_key` as the
//!   fallback. RSA is slow (seconds to a minute under TCG) and sshd needs only one key to
//!   start: when another type is made now, the RSA key is left to the late pass
//!   (`ssh_host_keys_deferred`, after sshd has started), which makes it with
//!   `ssh-keygen` and reloads sshd. Alone in the list, RSA is made now.
//!
//! Runs once per instance, early (before sshd starts).

use std::path::Path;

use anyhow::{bail, Context as _};

use super::{Context, Frequency, Module, Stage};
use crate::formats::hostkey::{self, KeyType};
use crate::platform::exec;
use crate::platform::{Cmd, WriteOpts};

pub struct SshHostKeys;

/// The late half: the RSA key deferred by [`SshHostKeys`].
pub struct SshHostKeysDeferred;

const SSH_DIR: &str = "/etc/ssh";
const KEY_TYPES: [&str; 4] = ["rsa", "dsa", "ecdsa", "ed25519"];
/// What `ssh-keygen -A` makes with OpenSSH 9.
const DEFAULT_TYPES: [&str; 3] = ["rsa", "ecdsa", "ed25519"];
/// In the instance's state dir: the key types left to the late pass, one per line.
pub const DEFERRED_FILE: &str = "ssh-host-keys-deferred";

fn delete_enabled(ctx: &Context) -> bool {
    ctx.cc()
        .ssh_deletekeys
        .unwrap_or(ctx.config.identity.regenerate_ssh_host_keys)
}

fn key_path(t: &str) -> String {
    format!("{SSH_DIR}/ssh_host_{t}_key")
}

/// The `ssh-keygen` command making the host key of type `t`.
pub fn keygen_command(t: &str) -> Cmd {
    Cmd::new(["ssh-keygen", "-q", "-t", t, "-N", "", "-f", &key_path(t)])
}

/// Split the missing types into those made now and those left to the late pass: RSA waits
/// when another type is made now (sshd starts with that one).
pub fn plan(missing: &[&str]) -> (Vec<String>, Vec<String>) {
    let others = missing.iter().any(|t| *t != "rsa");
    let (later, now): (Vec<&str>, Vec<&str>) = missing.iter().partition(|t| **t == "rsa" && others);
    (
        now.into_iter().map(String::from).collect(),
        later.into_iter().map(String::from).collect(),
    )
}

/// `root@<hostname>` as `ssh-keygen` would write it, from what the seed names.
fn comment(ctx: &Context) -> String {
    let name = ctx
        .cc()
        .hostname
        .clone()
        .or_else(|| ctx.seed.hostname.clone())
        .unwrap_or_else(|| "localhost".into());
    let short: String = name
        .split('.')
        .next()
        .unwrap_or("localhost")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(64)
        .collect();
    format!("root@{short}")
}

/// Make one key in-process: the private key (0600) then the public one (0644). On an error
/// nothing is left behind (ssh-keygen, the fallback, would refuse an existing file).
fn generate_in_process(ctx: &Context, kind: KeyType) -> anyhow::Result<()> {
    let key = hostkey::generate(kind, &comment(ctx), &mut |b| ctx.sys.random(b))
        .map_err(anyhow::Error::msg)?;
    let private = key.private_openssh().map_err(anyhow::Error::msg)?;
    let path = key_path(kind.name());
    let pub_path = format!("{path}.pub");
    let r = ctx
        .sys
        .write_file(Path::new(&path), private.as_bytes(), WriteOpts::mode(0o600))
        .with_context(|| format!("writing {path}"))
        .and_then(|_| {
            ctx.sys
                .write_file(
                    Path::new(&pub_path),
                    key.public_openssh().as_bytes(),
                    WriteOpts::mode(0o644),
                )
                .with_context(|| format!("writing {pub_path}"))
        });
    if r.is_err() {
        for p in [&path, &pub_path] {
            let _ = ctx.sys.remove_file(Path::new(p));
        }
    }
    r?;
    log::info!("made {path} ({})", key.fingerprint());
    Ok(())
}

fn generate(ctx: &mut Context, t: &str) -> anyhow::Result<()> {
    if let Some(kind) = KeyType::parse(t).filter(|k| *k != KeyType::Rsa) {
        match generate_in_process(ctx, kind) {
            Ok(()) => return Ok(()),
            Err(e) => ctx.warn(format!(
                "making the {t} host key in-process: {e:#}; using ssh-keygen"
            )),
        }
    }
    exec::run_ok(ctx.sys, &keygen_command(t)).map(|_| ())
}

fn missing_types<'a>(ctx: &Context, types: &'a [String]) -> Vec<&'a str> {
    types
        .iter()
        .map(String::as_str)
        .filter(|t| !ctx.sys.exists(Path::new(&key_path(t))))
        .collect()
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
        delete_enabled(ctx) || ctx.cc().ssh_genkeytypes.is_some() || ctx.cc().ssh_keys.is_some()
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
        if ctx.cc().ssh_keys.is_some() {
            match super::ssh_keys::seed_keys_usable(ctx.cc()) {
                Ok(()) => {
                    log::info!("host keys come from the seed (ssh_keys): none generated");
                    return Ok(());
                }
                Err(why) => ctx.warn(format!("{why}; generating host keys instead")),
            }
        }
        let types: Vec<String> =
            types.unwrap_or_else(|| DEFAULT_TYPES.iter().map(|t| t.to_string()).collect());
        let missing = missing_types(ctx, &types);
        let (now, later) = plan(&missing);
        let mut failed = Vec::new();
        for t in &now {
            if let Err(e) = generate(ctx, t) {
                failed.push(format!("{t}: {e:#}"));
            }
        }
        if !later.is_empty() {
            let text: String = later.iter().map(|t| format!("{t}\n")).collect();
            ctx.write_instance_file(DEFERRED_FILE, text.as_bytes(), 0o600)?;
            log::info!(
                "{} host key left to the late pass (sshd starts with the others)",
                later.join(", ")
            );
        }
        if !failed.is_empty() {
            bail!("{}", failed.join("; "));
        }
        Ok(())
    }
}

impl Module for SshHostKeysDeferred {
    fn name(&self) -> &'static str {
        "ssh_host_keys_deferred"
    }
    fn frequency(&self) -> Frequency {
        Frequency::PerInstance
    }
    fn stage(&self) -> Stage {
        Stage::Late
    }
    fn wanted(&self, ctx: &Context) -> bool {
        ctx.sys.exists(&ctx.instance_dir.join(DEFERRED_FILE))
    }
    fn run(&self, ctx: &mut Context) -> anyhow::Result<()> {
        let marker = ctx.instance_dir.join(DEFERRED_FILE);
        let text = ctx
            .sys
            .read_file(&marker, 4096)
            .with_context(|| format!("reading {}", marker.display()))?;
        let types: Vec<String> = String::from_utf8_lossy(&text)
            .lines()
            .filter(|t| KEY_TYPES.contains(t))
            .map(String::from)
            .collect();
        let mut made = false;
        for t in missing_types(ctx, &types) {
            exec::run_ok(ctx.sys, &keygen_command(t))?;
            made = true;
        }
        ctx.sys
            .remove_file(&marker)
            .with_context(|| format!("removing {}", marker.display()))?;
        if made {
            super::keys_to_console::print(ctx, Some("rsa"));
            if let Err(e) = super::set_passwords::reload_sshd(ctx) {
                ctx.warn(format!("reloading sshd for the new host key: {e:#}"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::userdata::cloud_config::SshKeys;
    use crate::modules::test_env::Env;
    use crate::platform::fake::Effect;
    use crate::platform::OsKind;

    fn check_pair(env: &Env, t: &str, algo: &str) {
        let p = key_path(t);
        let private = env.read(&p);
        assert!(private.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
        assert_eq!(env.mode(&p), 0o600);
        let public = env.read(&format!("{p}.pub"));
        assert!(public.starts_with(&format!("{algo} AAAA")), "{public}");
        assert_eq!(env.mode(&format!("{p}.pub")), 0o644);
        // The pair belongs together.
        let kind = KeyType::parse(t).unwrap();
        let set = hostkey::check_set(kind, Some(&private), Some(&public), None).unwrap();
        assert!(set.public.is_some());
    }

    #[test]
    fn deletes_template_keys_makes_two_now_and_rsa_later() {
        let mut env = Env::new(OsKind::Linux);
        env.seed.hostname = Some("vm1".into());
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
        let w = env.run_ok(&SshHostKeys);
        assert!(w.is_empty(), "{w:?}");
        assert!(env.lines().is_empty(), "no command: {:?}", env.lines());
        check_pair(&env, "ed25519", "ssh-ed25519");
        check_pair(&env, "ecdsa", "ecdsa-sha2-nistp256");
        assert!(env
            .read("/etc/ssh/ssh_host_ed25519_key.pub")
            .ends_with(" root@vm1\n"));
        assert!(env.sys.read_string("/etc/ssh/ssh_host_rsa_key").is_none());
        assert!(env
            .sys
            .read_string("/etc/ssh/ssh_host_rsa_key-cert.pub")
            .is_none());
        let marker = "/var/lib/ci-agent/instances/iid-test/ssh-host-keys-deferred";
        assert_eq!(env.read(marker), "rsa\n");
        assert_eq!(env.mode(marker), 0o600);

        // The late pass makes it and reloads a running sshd.
        env.sys.put("/run/systemd/system/.keep", "");
        let w = env.run_ok(&SshHostKeysDeferred);
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(
            env.lines(),
            [
                "ssh-keygen -q -t rsa -N  -f /etc/ssh/ssh_host_rsa_key",
                "systemctl try-reload-or-restart ssh.service sshd.service"
            ]
        );
        assert!(env.sys.read_string(marker).is_none());
        assert!(
            env.run(&SshHostKeysDeferred).is_none(),
            "nothing left to do"
        );
    }

    #[test]
    fn rsa_alone_is_made_now_and_genkeytypes_only_missing() {
        let mut env = Env::new(OsKind::FreeBsd);
        env.seed.cloud_config.ssh_genkeytypes = Some(vec!["rsa".into()]);
        env.sys.put("/etc/ssh/sshd_config", "");
        env.run_ok(&SshHostKeys);
        assert_eq!(
            env.sys.commands()[0].argv,
            [
                "ssh-keygen",
                "-q",
                "-t",
                "rsa",
                "-N",
                "",
                "-f",
                "/etc/ssh/ssh_host_rsa_key"
            ]
        );
        assert!(env.run(&SshHostKeysDeferred).is_none());

        let mut env = Env::new(OsKind::FreeBsd);
        env.sys.put("/etc/ssh/ssh_host_rsa_key", "x");
        env.seed.cloud_config.ssh_deletekeys = Some(false);
        env.seed.cloud_config.ssh_genkeytypes = Some(vec!["rsa".into(), "ed25519".into()]);
        env.run_ok(&SshHostKeys);
        assert!(env.lines().is_empty(), "{:?}", env.lines());
        check_pair(&env, "ed25519", "ssh-ed25519");
        assert!(env.sys.read_string("/etc/ssh/ssh_host_ecdsa_key").is_none());
        assert_eq!(env.read("/etc/ssh/ssh_host_rsa_key"), "x");
        assert!(env.run(&SshHostKeysDeferred).is_none());

        env.seed.cloud_config.ssh_genkeytypes = Some(vec!["rsa; rm -rf /".into()]);
        let e = env.run_err(&SshHostKeys);
        assert!(e.contains("ssh_genkeytypes[0]: unknown key type"), "{e}");
    }

    #[test]
    fn in_process_failure_falls_back_to_ssh_keygen() {
        let mut env = Env::new(OsKind::Linux);
        env.sys.put("/etc/ssh/sshd_config", "");
        env.seed.cloud_config.ssh_genkeytypes = Some(vec!["ed25519".into()]);
        env.sys.set_fault(|e| match e {
            Effect::Write(p) if p.ends_with("ssh_host_ed25519_key.pub") => {
                Err(std::io::Error::other("disk full"))
            }
            _ => Ok(()),
        });
        let w = env.run_ok(&SshHostKeys);
        assert!(
            w[0].contains("making the ed25519 host key in-process") && w[0].contains("disk full"),
            "{w:?}"
        );
        assert_eq!(
            env.lines(),
            ["ssh-keygen -q -t ed25519 -N  -f /etc/ssh/ssh_host_ed25519_key"]
        );
        // The half-written pair was removed first (ssh-keygen refuses an existing file).
        assert!(env
            .sys
            .read_string("/etc/ssh/ssh_host_ed25519_key")
            .is_none());
    }

    #[test]
    fn seed_keys_replace_generation_unless_malformed() {
        let mut env = Env::new(OsKind::Linux);
        env.sys.put("/etc/ssh/ssh_host_rsa_key", "template");
        let k = hostkey::generate(KeyType::Ed25519, "root@vm1", &mut |b: &mut [u8]| {
            b.fill(7);
            Ok(())
        })
        .unwrap();
        env.seed.cloud_config.ssh_keys = Some(SshKeys {
            entries: vec![(
                "ed25519_private".into(),
                k.private_openssh().unwrap().to_string(),
            )],
        });
        let w = env.run_ok(&SshHostKeys);
        assert!(w.is_empty(), "{w:?}");
        let left = crate::platform::System::read_dir(&env.sys, Path::new("/etc/ssh")).unwrap();
        assert!(left.is_empty(), "{left:?}");
        assert!(env.lines().is_empty());

        env.seed.cloud_config.ssh_keys = Some(SshKeys {
            entries: vec![("ed25519_private".into(), "garbage".into())],
        });
        let w = env.run_ok(&SshHostKeys);
        assert!(
            w[0].starts_with("ssh_keys.ed25519_private: not a ed25519 private key")
                && w[0].ends_with("; generating host keys instead"),
            "{w:?}"
        );
        check_pair(&env, "ed25519", "ssh-ed25519");
        check_pair(&env, "ecdsa", "ecdsa-sha2-nistp256");
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

    #[test]
    fn plan_defers_rsa_only_with_company() {
        assert_eq!(
            plan(&["rsa", "ecdsa", "ed25519"]),
            (vec!["ecdsa".into(), "ed25519".into()], vec!["rsa".into()])
        );
        assert_eq!(plan(&["rsa"]), (vec!["rsa".into()], vec![]));
        assert_eq!(plan(&[]), (vec![], vec![]));
    }
}
