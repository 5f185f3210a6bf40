//! Key: `ssh_keys`. cloud-init: `cc_ssh` (its `ssh_keys` half).
//!
//! `ssh_keys` (`rsa_private`, `rsa_public`, `rsa_certificate`, and the same for `ecdsa`
//! and `ed25519`): the instance's SSH host keys come from the seed (`ci-seed
//! --ssh-host-keys` puts them there). Each type's entries are checked together (the
//! private key parses, is not encrypted and is of that type; the public key and the
//! certificate belong to it; a certificate is a host certificate), then written to
//! `/etc/ssh/ssh_host_<type>_key` (0600), `.pub` (0644) and `-cert.pub` (0644). A public
//! key that is not given is derived from an OpenSSH private key in-process, or made with
//! `ssh-keygen -y` for a PEM one (as cloud-init). Each certificate gets a
//! `HostCertificate` line: in `sshd_config.d/50-ci-agent-hostcerts.conf` when
//! `sshd_config` includes that directory, otherwise in `sshd_config` itself.
//!
//! When every entry is good, `ssh_host_keys` (which runs just before) generates no key,
//! as cloud-init does when the seed has `ssh_keys`. A malformed entry fails this module
//! naming the entry (never its content), its type is not written, and `ssh_host_keys` has
//! already generated keys instead: sshd is never left without a host key. Private keys
//! never reach a log, a warning or `status`. Once per instance, early (before sshd).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};

use super::set_passwords::{dropin_include_at, read_sshd_config, sshd_keyword};
use super::{Context, Frequency, Module, Stage};
use crate::formats::hostkey::{self, KeyType, SeedKeySet};
use crate::formats::userdata::cloud_config::CloudConfig;
use crate::platform::{Cmd, WriteOpts};

pub struct SshKeys;

const DROPIN: &str = "50-ci-agent-hostcerts.conf";

/// The seed's `ssh_keys`, checked per key type (types without any entry are left out).
pub fn seed_sets(cc: &CloudConfig) -> Vec<Result<SeedKeySet, String>> {
    let Some(keys) = &cc.ssh_keys else {
        return Vec::new();
    };
    KeyType::ALL
        .iter()
        .filter_map(|&kind| {
            let get = |what: &str| keys.get(&format!("{kind}_{what}"));
            let (p, q, c) = (get("private"), get("public"), get("certificate"));
            (p.is_some() || q.is_some() || c.is_some()).then(|| hostkey::check_set(kind, p, q, c))
        })
        .collect()
}

/// `Ok(())` when the seed brings host keys sshd can start with: every entry is good and
/// there is at least one private key. Otherwise why not, for a warning.
pub fn seed_keys_usable(cc: &CloudConfig) -> Result<(), String> {
    let sets = seed_sets(cc);
    let errors: Vec<&str> = sets
        .iter()
        .filter_map(|s| s.as_ref().err().map(String::as_str))
        .collect();
    if !errors.is_empty() {
        return Err(errors.join("; "));
    }
    if !sets.iter().flatten().any(|s| s.private.is_some()) {
        return Err("ssh_keys has no private key".into());
    }
    Ok(())
}

/// `sshd_config` with `HostCertificate` lines for `certs` added where missing (before the
/// first `Match`), or `None` when the global section includes `dropin_dir` (then the
/// drop-in holds them).
pub fn plan_host_certs(main: &str, dropin_dir: &str, certs: &[String]) -> Option<String> {
    let lines: Vec<&str> = main.lines().collect();
    let match_at = lines
        .iter()
        .position(|l| sshd_keyword(l) == "match")
        .unwrap_or(lines.len());
    let global = &lines[..match_at];
    if dropin_include_at(global, dropin_dir).is_some() {
        return None;
    }
    let have = |c: &str| {
        global
            .iter()
            .any(|l| sshd_keyword(l) == "hostcertificate" && l.split_whitespace().nth(1) == Some(c))
    };
    let add: Vec<String> = certs
        .iter()
        .filter(|c| !have(c))
        .map(|c| format!("HostCertificate {c}"))
        .collect();
    let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    out.splice(match_at..match_at, add);
    let mut s = out.join("\n");
    s.push('\n');
    Some(s)
}

fn configure_certs(ctx: &mut Context, certs: &[String]) -> anyhow::Result<()> {
    let policy = ctx.policy();
    let main = policy.sshd_config();
    let Some((text, mode)) = read_sshd_config(ctx, "ssh_keys (HostCertificate)")? else {
        return Ok(());
    };
    let dir = policy.sshd_dropin_dir();
    match plan_host_certs(&text, &dir.to_string_lossy(), certs) {
        None => {
            let body: String = certs
                .iter()
                .map(|c| format!("HostCertificate {c}\n"))
                .collect();
            let content = format!("# Written by ci-agent from the seed's ssh_keys.\n{body}");
            super::hostname::write_if_changed(ctx, &dir.join(DROPIN), &content)?;
        }
        Some(new) if new == text => {}
        Some(new) => ctx
            .sys
            .write_file(&main, new.as_bytes(), WriteOpts::mode(mode))
            .with_context(|| format!("writing {}", main.display()))?,
    }
    Ok(())
}

fn write(ctx: &Context, path: &Path, data: &[u8], mode: u32) -> anyhow::Result<()> {
    ctx.sys
        .write_file(path, data, WriteOpts::mode(mode))
        .with_context(|| format!("writing {}", path.display()))
}

/// Write one type's files; returns the certificate's path when there is one.
fn install(ctx: &Context, set: &SeedKeySet) -> anyhow::Result<Option<String>> {
    let private = PathBuf::from(set.kind.private_path());
    let with = |suffix: &str| PathBuf::from(format!("{}{suffix}", private.display()));
    if let Some(p) = &set.private {
        write(ctx, &private, p.as_bytes(), 0o600)?;
        log::info!("wrote {} from the seed", private.display());
    }
    if let Some(p) = &set.public {
        write(ctx, &with(".pub"), p.as_bytes(), 0o644)?;
    } else if set.public_from_keygen {
        let priv_arg = private.to_string_lossy().into_owned();
        let out = crate::platform::exec::run_ok(
            ctx.sys,
            &Cmd::new(["ssh-keygen", "-y", "-f", &priv_arg]),
        )?;
        // Under a root prefix the command is only recorded: no output, no .pub.
        if !out.stdout.is_empty() {
            write(ctx, &with(".pub"), &out.stdout, 0o644)?;
        }
    }
    match &set.certificate {
        Some(c) => {
            let path = with("-cert.pub");
            write(ctx, &path, c.as_bytes(), 0o644)?;
            Ok(Some(path.to_string_lossy().into_owned()))
        }
        None => Ok(None),
    }
}

impl Module for SshKeys {
    fn name(&self) -> &'static str {
        "ssh_keys"
    }
    fn keys(&self) -> &'static [&'static str] {
        &["ssh_keys"]
    }
    fn frequency(&self) -> Frequency {
        Frequency::PerInstance
    }
    fn stage(&self) -> Stage {
        Stage::Early
    }
    fn wanted(&self, ctx: &Context) -> bool {
        ctx.cc().ssh_keys.is_some()
    }
    fn run(&self, ctx: &mut Context) -> anyhow::Result<()> {
        let sets = seed_sets(ctx.cc());
        if !ctx.sys.exists(Path::new("/etc/ssh")) {
            ctx.warn("ssh_keys: /etc/ssh does not exist (no OpenSSH?); host keys not written");
            return Ok(());
        }
        let mut failed = Vec::new();
        let mut certs = Vec::new();
        for set in &sets {
            match set {
                Ok(set) => match install(ctx, set) {
                    Ok(Some(c)) => certs.push(c),
                    Ok(None) => {}
                    Err(e) => failed.push(format!("ssh_keys.{}: {e:#}", set.kind)),
                },
                Err(e) => failed.push(e.clone()),
            }
        }
        if !certs.is_empty() {
            if let Err(e) = configure_certs(ctx, &certs) {
                failed.push(format!("HostCertificate: {e:#}"));
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
    use crate::formats::userdata::cloud_config::SshKeys as Keys;
    use crate::modules::test_env::Env;
    use crate::platform::OsKind;

    fn fill(seed: u8) -> impl FnMut(&mut [u8]) -> std::io::Result<()> {
        let mut n = seed;
        move |b: &mut [u8]| {
            for x in b {
                n = n.wrapping_mul(29).wrapping_add(7);
                *x = n;
            }
            Ok(())
        }
    }

    fn keys(entries: &[(&str, &str)]) -> Option<Keys> {
        Some(Keys {
            entries: entries
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        })
    }

    #[test]
    fn writes_seed_keys_with_modes_and_derived_public() {
        let ed = hostkey::generate(KeyType::Ed25519, "root@vm1", &mut fill(1)).unwrap();
        let ec = hostkey::generate(KeyType::Ecdsa, "root@vm1", &mut fill(2)).unwrap();
        let ed_priv = ed.private_openssh().unwrap();
        let ec_priv = ec.private_openssh().unwrap();
        let mut env = Env::new(OsKind::Linux);
        env.sys.put("/etc/ssh/sshd_config", "Port 22\n");
        env.seed.cloud_config.ssh_keys = keys(&[
            ("ed25519_private", &ed_priv),
            ("ed25519_public", &ed.public_openssh()),
            ("ecdsa_private", &ec_priv),
        ]);
        assert!(seed_keys_usable(env.ctx().cc()).is_ok());
        env.run_ok(&SshKeys);
        assert_eq!(env.read("/etc/ssh/ssh_host_ed25519_key"), *ed_priv);
        assert_eq!(env.mode("/etc/ssh/ssh_host_ed25519_key"), 0o600);
        assert_eq!(
            env.read("/etc/ssh/ssh_host_ed25519_key.pub"),
            ed.public_openssh()
        );
        assert_eq!(env.mode("/etc/ssh/ssh_host_ed25519_key.pub"), 0o644);
        assert_eq!(
            env.read("/etc/ssh/ssh_host_ecdsa_key.pub"),
            ec.public_openssh()
        );
        assert!(env.lines().is_empty(), "no command: {:?}", env.lines());
        assert_eq!(env.read("/etc/ssh/sshd_config"), "Port 22\n");
    }

    #[test]
    fn malformed_entry_fails_the_module_without_quoting_it() {
        let ed = hostkey::generate(KeyType::Ed25519, "x", &mut fill(3)).unwrap();
        let mut env = Env::new(OsKind::FreeBsd);
        env.sys.put("/etc/ssh/sshd_config", "");
        let secret =
            "-----BEGIN OPENSSH PRIVATE KEY-----\nU0VDUkVU\n-----END OPENSSH PRIVATE KEY-----\n";
        env.seed.cloud_config.ssh_keys = keys(&[
            ("rsa_private", secret),
            ("ed25519_private", &ed.private_openssh().unwrap()),
        ]);
        let why = seed_keys_usable(env.ctx().cc()).unwrap_err();
        assert!(
            why.starts_with("ssh_keys.rsa_private: not a valid OpenSSH private key"),
            "{why}"
        );
        let e = env.run_err(&SshKeys);
        assert!(e.starts_with("ssh_keys.rsa_private: not a valid"), "{e}");
        assert!(!e.contains("U0VDUkVU"));
        assert!(env.sys.read_string("/etc/ssh/ssh_host_rsa_key").is_none());
        // The good type is still installed.
        assert!(env
            .sys
            .read_string("/etc/ssh/ssh_host_ed25519_key")
            .is_some());
        // Only public keys: sshd could not start with them.
        env.seed.cloud_config.ssh_keys = keys(&[("ed25519_public", &ed.public_openssh())]);
        assert_eq!(
            seed_keys_usable(env.ctx().cc()).unwrap_err(),
            "ssh_keys has no private key"
        );
    }

    #[test]
    fn pem_private_key_gets_its_public_half_from_ssh_keygen() {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode([0x30u8; 48]);
        let pem =
            format!("-----BEGIN RSA PRIVATE KEY-----\n{b64}\n-----END RSA PRIVATE KEY-----\n");
        let mut env = Env::new(OsKind::Linux);
        env.sys.put("/etc/ssh/sshd_config", "");
        env.sys.on_command(
            &["ssh-keygen", "-y"],
            crate::platform::CmdOutput {
                code: Some(0),
                stdout: b"ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAAQC7\n".to_vec(),
                ..Default::default()
            },
        );
        env.seed.cloud_config.ssh_keys = keys(&[("rsa_private", &pem)]);
        env.run_ok(&SshKeys);
        assert_eq!(env.lines(), ["ssh-keygen -y -f /etc/ssh/ssh_host_rsa_key"]);
        assert!(env
            .read("/etc/ssh/ssh_host_rsa_key.pub")
            .starts_with("ssh-rsa "));
    }

    const FIX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/hostkeys/");

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!("{FIX}{name}")).unwrap()
    }

    #[test]
    fn certificate_is_written_and_configured() {
        for (main, dropin) in [
            ("Include /etc/ssh/sshd_config.d/*.conf\nPort 22\n", true),
            ("Port 22\n", false),
        ] {
            let mut env = Env::new(OsKind::Linux);
            env.sys.put("/etc/ssh/sshd_config", main);
            env.seed.cloud_config.ssh_keys = keys(&[
                ("ed25519_private", &fixture("ssh_host_ed25519_key")),
                (
                    "ed25519_certificate",
                    &fixture("ssh_host_ed25519_key-cert.pub"),
                ),
            ]);
            env.run_ok(&SshKeys);
            let cert = "/etc/ssh/ssh_host_ed25519_key-cert.pub";
            assert_eq!(env.read(cert), fixture("ssh_host_ed25519_key-cert.pub"));
            assert_eq!(env.mode(cert), 0o644);
            assert_eq!(
                env.read("/etc/ssh/ssh_host_ed25519_key.pub"),
                fixture("ssh_host_ed25519_key.pub")
            );
            let line = format!("HostCertificate {cert}\n");
            if dropin {
                assert_eq!(env.read("/etc/ssh/sshd_config"), main);
                assert!(env
                    .read("/etc/ssh/sshd_config.d/50-ci-agent-hostcerts.conf")
                    .ends_with(&line));
            } else {
                assert_eq!(env.read("/etc/ssh/sshd_config"), format!("Port 22\n{line}"));
            }
        }
        // A user certificate, or one for another key, is refused.
        let mut env = Env::new(OsKind::Linux);
        env.sys.put("/etc/ssh/sshd_config", "");
        env.seed.cloud_config.ssh_keys = keys(&[
            ("ed25519_private", &fixture("ssh_host_ed25519_key")),
            ("ed25519_certificate", &fixture("user-cert.pub")),
        ]);
        let e = env.run_err(&SshKeys);
        assert!(
            e.contains("ssh_keys.ed25519_certificate: is a user certificate"),
            "{e}"
        );
        let other = hostkey::generate(KeyType::Ed25519, "x", &mut fill(5)).unwrap();
        env.seed.cloud_config.ssh_keys = keys(&[
            ("ed25519_private", &other.private_openssh().unwrap()),
            (
                "ed25519_certificate",
                &fixture("ssh_host_ed25519_key-cert.pub"),
            ),
        ]);
        let e = env.run_err(&SshKeys);
        assert!(e.contains("certifies another key"), "{e}");
    }

    #[test]
    fn host_certificate_lines() {
        let main =
            "Port 22\nHostCertificate /etc/ssh/a-cert.pub\nMatch User x\n  X11Forwarding no\n";
        let certs = [
            "/etc/ssh/a-cert.pub".to_string(),
            "/etc/ssh/b-cert.pub".to_string(),
        ];
        assert_eq!(
            plan_host_certs(main, "/etc/ssh/sshd_config.d", &certs).unwrap(),
            "Port 22\nHostCertificate /etc/ssh/a-cert.pub\nHostCertificate /etc/ssh/b-cert.pub\nMatch User x\n  X11Forwarding no\n"
        );
        let inc = "Include /etc/ssh/sshd_config.d/*.conf\nPort 22\n";
        assert_eq!(plan_host_certs(inc, "/etc/ssh/sshd_config.d", &certs), None);
    }
}
