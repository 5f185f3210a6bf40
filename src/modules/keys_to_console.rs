//! Key: `no_ssh_fingerprints`. cloud-init: `cc_keys_to_console`.
//!
//! `keys_to_console`: at the end of the early pass, the host key fingerprints (and the
//! public keys) go to the console, framed as cloud-init frames them, so that a host can
//! check the clone's keys from its serial log before it trusts them:
//!
//! ```text
//! -----BEGIN SSH HOST KEY FINGERPRINTS-----
//! 256 SHA256:… root@vm1 (ED25519)
//! -----END SSH HOST KEY FINGERPRINTS-----
//! -----BEGIN SSH HOST KEY KEYS-----
//! ssh-ed25519 AAAA… root@vm1
//! -----END SSH HOST KEY KEYS-----
//! ```
//!
//! The lines are computed in-process from `/etc/ssh/ssh_host_*key.pub` (no `ssh-keygen
//! -l`). A host key made later (the deferred RSA key) is printed when it is made.
//! `no_ssh_fingerprints: true` turns this off. Once per instance, early (last).

use std::path::Path;

use super::{Context, Frequency, Module, Stage};
use crate::formats::hostkey;

pub struct KeysToConsole;

const SSH_DIR: &str = "/etc/ssh";

/// The console block for the public keys in `keys` (`(file name, text)`), empty when none
/// parses.
pub fn render(keys: &[(String, String)]) -> Vec<String> {
    let parsed: Vec<_> = keys
        .iter()
        .filter_map(|(_, text)| hostkey::parse_public(text).ok())
        .collect();
    if parsed.is_empty() {
        return Vec::new();
    }
    let mut out = vec!["-----BEGIN SSH HOST KEY FINGERPRINTS-----".to_string()];
    out.extend(parsed.iter().map(hostkey::fingerprint_line));
    out.push("-----END SSH HOST KEY FINGERPRINTS-----".into());
    out.push("-----BEGIN SSH HOST KEY KEYS-----".into());
    out.extend(
        parsed
            .iter()
            .map(|k| hostkey::public_line(k).trim_end().to_string()),
    );
    out.push("-----END SSH HOST KEY KEYS-----".into());
    out
}

/// The public host keys in `/etc/ssh` (`ssh_host_*key.pub`), sorted by name; `only`
/// limits them to one type's file.
pub fn read_public_keys(ctx: &Context, only: Option<&str>) -> Vec<(String, String)> {
    let dir = Path::new(SSH_DIR);
    let Ok(mut names) = ctx.sys.read_dir(dir) else {
        return Vec::new();
    };
    names.sort();
    names
        .into_iter()
        .filter(|n| n.starts_with("ssh_host_") && n.ends_with("key.pub"))
        .filter(|n| only.is_none_or(|t| *n == format!("ssh_host_{t}_key.pub")))
        .filter_map(|n| {
            let data = ctx.sys.read_file(&dir.join(&n), 64 << 10).ok()?;
            Some((n, String::from_utf8_lossy(&data).into_owned()))
        })
        .collect()
}

/// Print the block for the keys found (see the module doc), unless turned off.
pub fn print(ctx: &Context, only: Option<&str>) {
    if ctx.cc().no_ssh_fingerprints == Some(true) {
        return;
    }
    for line in render(&read_public_keys(ctx, only)) {
        log::info!("{line}");
    }
}

impl Module for KeysToConsole {
    fn name(&self) -> &'static str {
        "keys_to_console"
    }
    fn keys(&self) -> &'static [&'static str] {
        &["no_ssh_fingerprints"]
    }
    fn frequency(&self) -> Frequency {
        Frequency::PerInstance
    }
    fn stage(&self) -> Stage {
        Stage::Early
    }
    fn wanted(&self, ctx: &Context) -> bool {
        ctx.cc().no_ssh_fingerprints != Some(true) && ctx.sys.exists(Path::new(SSH_DIR))
    }
    fn run(&self, ctx: &mut Context) -> anyhow::Result<()> {
        print(ctx, None);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::test_env::Env;
    use crate::platform::OsKind;

    const ED: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPD3y/Z37C6VodeycWrc1dpvLY+3KoXRhwQOlysNqlxm demo\n";

    #[test]
    fn block_like_cloud_init() {
        let lines = render(&[
            ("ssh_host_ed25519_key.pub".into(), ED.into()),
            ("ssh_host_bad_key.pub".into(), "garbage".into()),
        ]);
        assert_eq!(
            lines,
            [
                "-----BEGIN SSH HOST KEY FINGERPRINTS-----",
                "256 SHA256:jjTu6+hLxzCOYnt7OxJU+jfuyfJXxDmoQ2NzQ+wM0IQ demo (ED25519)",
                "-----END SSH HOST KEY FINGERPRINTS-----",
                "-----BEGIN SSH HOST KEY KEYS-----",
                ED.trim_end(),
                "-----END SSH HOST KEY KEYS-----",
            ]
        );
        assert!(render(&[]).is_empty());
    }

    #[test]
    fn reads_only_public_host_keys_and_can_be_turned_off() {
        let mut env = Env::new(OsKind::Linux);
        env.sys.put("/etc/ssh/ssh_host_ed25519_key.pub", ED);
        env.sys.put("/etc/ssh/ssh_host_ed25519_key", "PRIVATE");
        env.sys.put("/etc/ssh/ssh_host_rsa_key-cert.pub", "cert");
        env.sys.put("/etc/ssh/sshd_config", "");
        let ctx = env.ctx();
        let keys = read_public_keys(&ctx, None);
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].0, "ssh_host_ed25519_key.pub");
        assert!(read_public_keys(&ctx, Some("rsa")).is_empty());
        env.run_ok(&KeysToConsole);
        env.seed.cloud_config.no_ssh_fingerprints = Some(true);
        assert!(env.run(&KeysToConsole).is_none());
    }
}
