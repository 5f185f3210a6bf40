//! Key: `no_ssh_fingerprints`, `authkey_hash`. cloud-init: `cc_ssh_authkey_fingerprints`.
//!
//! Prints, on the console, the fingerprint of every key in the `authorized_keys` of each
//! user the seed configures (the default user and the `users` list), as cloud-init does by
//! default, so whoever watches the console can check the keys a clone accepts:
//! `ssh key for debian: ssh-ed25519 SHA256:… comment` (OpenSSH's `ssh-keygen -l` form).
//! `no_ssh_fingerprints: true` turns it off; `authkey_hash` other than `sha256` is a
//! warning (sha256 is printed). Users without the file are skipped. Comments come from the
//! seed: control characters are escaped before they reach the console. Late, once per
//! instance.

use std::path::Path;

use base64::Engine;
use sha2::{Digest, Sha256};

use super::ssh_authorized_keys::KeyLine;
use super::users::resolve;
use super::{Context, Frequency, Module, Stage};
use crate::platform::accounts::AccountDb;

pub struct SshAuthkeyFingerprints;

/// OpenSSH's `SHA256:<base64 without padding>` of the decoded key blob; `None` when the
/// blob is not base64.
pub fn fingerprint(blob: &str) -> Option<String> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(blob.as_bytes())
        .ok()?;
    let digest = Sha256::digest(&raw);
    Some(format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest)
    ))
}

fn escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

impl Module for SshAuthkeyFingerprints {
    fn name(&self) -> &'static str {
        "ssh_authkey_fingerprints"
    }
    fn frequency(&self) -> Frequency {
        Frequency::PerInstance
    }
    fn stage(&self) -> Stage {
        Stage::Late
    }
    fn wanted(&self, ctx: &Context) -> bool {
        ctx.key("no_ssh_fingerprints")
            .and_then(|v| v.node.as_bool())
            != Some(true)
    }
    fn run(&self, ctx: &mut Context) -> anyhow::Result<()> {
        if let Some(v) = ctx.key("no_ssh_fingerprints") {
            if v.bool()? {
                return Ok(());
            }
        }
        if let Some(h) = ctx.key("authkey_hash") {
            let h = h.line(32)?;
            if !h.eq_ignore_ascii_case("sha256") {
                ctx.warn(format!(
                    "authkey_hash {h:?} is not supported by ci-agent: printing sha256"
                ));
            }
        }
        let db = AccountDb::load(ctx.sys)?;
        let mut names: Vec<String> = resolve(ctx).into_iter().map(|r| r.user.name).collect();
        names.dedup();
        for name in names {
            let Some(entry) = db.user(&name) else {
                continue;
            };
            let file = Path::new(&entry.home).join(".ssh/authorized_keys");
            let Ok(data) = ctx.sys.read_file(&file, 4 << 20) else {
                continue;
            };
            let text = String::from_utf8_lossy(&data);
            for line in text.lines() {
                let Some(k) = KeyLine::parse(line) else {
                    continue;
                };
                let Some(fp) = fingerprint(&k.blob) else {
                    continue;
                };
                let opts = if k.options.is_some() {
                    " (with options)"
                } else {
                    ""
                };
                log::warn!(
                    "ssh key for {name}: {} {fp} {}{opts}",
                    escape(&k.kind),
                    escape(&k.comment)
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::test_env::Env;
    use crate::platform::OsKind;

    // `ssh-keygen -l` prints SHA256:ybmxfoz+LEqJDFFS2J3EdTDJ5kWCGsPjF9jcvrNiKQc for this key.
    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMoSxJr8xLrNjcJ/ngrT6RCL/pCc/VTLdrFz0eLM/8oY e2e";

    #[test]
    fn fingerprints_match_openssh() {
        let k = KeyLine::parse(KEY).unwrap();
        assert_eq!(
            fingerprint(&k.blob).unwrap(),
            "SHA256:ybmxfoz+LEqJDFFS2J3EdTDJ5kWCGsPjF9jcvrNiKQc"
        );
        assert_eq!(fingerprint("!!"), None);
        assert_eq!(escape("a\nb\x1b"), "a\\nb\\u{1b}");
    }

    #[test]
    fn runs_by_default_on_both_oses_and_can_be_turned_off() {
        for os in [OsKind::Linux, OsKind::FreeBsd] {
            let mut env = Env::new(os);
            let user = env.config.default_user.name.clone();
            env.sys.put(
                "/etc/passwd",
                format!(
                    "root:x:0:0:root:/root:/bin/sh\n{user}:x:1000:1000::/home/{user}:/bin/sh\n"
                ),
            );
            env.sys.put(
                format!("/home/{user}/.ssh/authorized_keys"),
                format!("# comment\n{KEY}\nno-pty {KEY}\ngarbage\n"),
            );
            assert!(env.run_ok(&SshAuthkeyFingerprints).is_empty());
            env.yaml("authkey_hash: md5\n");
            assert!(env.run_ok(&SshAuthkeyFingerprints)[0].contains("md5"));
            env.yaml("no_ssh_fingerprints: true\n");
            assert!(env.run(&SshAuthkeyFingerprints).is_none());
        }
    }
}
