//! Key: `password`, `chpasswd`, `ssh_pwauth`. cloud-init: `cc_set_passwords`.
//!
//! `set_passwords` (keys `password`, `chpasswd`, `ssh_pwauth`), like cloud-init's
//! `cc_set_passwords`.
//!
//! - `password` sets the default user's password (`R`/`RANDOM` and crypt hashes read as
//!   in a `list` line) when `chpasswd` lists no one (cloud-init ignores it otherwise, and
//!   so do we, with a warning); `chpasswd.users` (and the legacy
//!   `list`) set text, hashed or `RANDOM` passwords. Linux: `chpasswd` (`-e` for hashes),
//!   FreeBSD: `pw usermod NAME -h 0` / `-H 0` — always on stdin, commands marked secret,
//!   so no password reaches a log, a warning, status or commands.log.
//! - `RANDOM` passwords (20 letters and digits from the system's random source) are not
//!   printed to the console as cloud-init does: they are written to
//!   `<instance_dir>/random-passwords` (0600, in the root-only state dir) and a warning
//!   names that file.
//! - `chpasswd.expire` (default true) forces a change at the next login for every
//!   password set, hashes included (cloud-init 22.3 and later; before, hashes were left
//!   unexpired, which cloud-init fixed as a bug): `passwd --expire` / `pw usermod -p`.
//! - `ssh_pwauth: true|false` sets `PasswordAuthentication yes|no`: in the drop-in
//!   `/etc/ssh/sshd_config.d/50-ci-agent.conf` when `sshd_config` includes that directory
//!   before any `PasswordAuthentication` of its own (sshd keeps the first value it reads),
//!   otherwise by editing that line of `sshd_config` in place (atomically, everything
//!   else kept). sshd is reloaded only if it runs (`systemctl try-reload-or-restart`,
//!   FreeBSD `service sshd onestatus` then `onereload`); in the early stage it does not.
//!
//! Once per instance, early (after `users`).

use std::path::Path;

use anyhow::{bail, Context as _};

use super::users::default_user_name;
use super::{Context, Frequency, Module, Stage};
use crate::formats::userdata::cloud_config::{infer_password, PasswordKind};
use crate::platform::accounts::{check_account_name, commands_recorded, AccountDb};
use crate::platform::exec;
use crate::platform::{FileKind, WriteOpts};

pub struct SetPasswords;

const DROPIN: &str = "50-ci-agent.conf";
const RANDOM_LEN: usize = 20;

/// A random password of letters and digits, without modulo bias.
pub fn random_password(ctx: &Context) -> anyhow::Result<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(RANDOM_LEN);
    let mut buf = [0u8; 64];
    // 248 = 4 * 62: bytes at or above it are dropped so each letter is equally likely.
    for _ in 0..64 {
        ctx.sys.random(&mut buf).context("reading random bytes")?;
        for b in buf {
            if b < 248 && out.len() < RANDOM_LEN {
                out.push(ALPHABET[(b % 62) as usize] as char);
            }
        }
        if out.len() == RANDOM_LEN {
            return Ok(out);
        }
    }
    bail!("the random source gave too few usable bytes")
}

/// The lower-cased first word of an `sshd_config` line.
pub fn sshd_keyword(l: &str) -> String {
    l.split_whitespace()
        .next()
        .map(|w| w.to_ascii_lowercase())
        .unwrap_or_default()
}

/// Where `lines` (the global section of `sshd_config`) include `dropin_dir/…`.
pub fn dropin_include_at(lines: &[&str], dropin_dir: &str) -> Option<usize> {
    lines.iter().position(|l| {
        sshd_keyword(l) == "include"
            && l.split_whitespace()
                .skip(1)
                .any(|p| p.starts_with(&format!("{dropin_dir}/")))
    })
}

/// `sshd_config`'s text and mode; `None` (with a warning naming `key`) when it is not a
/// regular file (no OpenSSH server).
pub fn read_sshd_config(ctx: &mut Context, key: &str) -> anyhow::Result<Option<(String, u32)>> {
    let main = ctx.policy().sshd_config();
    match ctx.sys.lstat(&main)? {
        Some(st) if st.kind == FileKind::File => {
            let data = ctx
                .sys
                .read_file(&main, 1 << 20)
                .with_context(|| format!("reading {}", main.display()))?;
            Ok(Some((String::from_utf8_lossy(&data).into_owned(), st.mode)))
        }
        _ => {
            ctx.warn(format!(
                "{key}: {} not found (no OpenSSH server?); not changed",
                main.display()
            ));
            Ok(None)
        }
    }
}

/// `sshd_config` text with `PasswordAuthentication` set: `Ok(Some(new))` for an edit of
/// the main file, `Ok(None)` when the drop-in directory is included early enough.
pub fn plan_sshd(main: &str, dropin_dir: &str, value: &str) -> Option<String> {
    let lines: Vec<&str> = main.lines().collect();
    let match_at = lines.iter().position(|l| sshd_keyword(l) == "match");
    let global = &lines[..match_at.unwrap_or(lines.len())];
    let pa_at = global
        .iter()
        .position(|l| sshd_keyword(l) == "passwordauthentication");
    if let Some(inc) = dropin_include_at(global, dropin_dir) {
        if pa_at.is_none_or(|pa| inc < pa) {
            return None;
        }
    }
    let line = format!("PasswordAuthentication {value}");
    let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    match (pa_at, match_at) {
        (Some(i), _) => out[i] = line,
        (None, Some(m)) => out.insert(m, line),
        (None, None) => out.push(line),
    }
    let mut s = out.join("\n");
    s.push('\n');
    Some(s)
}

fn set_pwauth(ctx: &mut Context, yes: bool) -> anyhow::Result<()> {
    let policy = ctx.policy();
    let main = policy.sshd_config();
    let value = if yes { "yes" } else { "no" };
    let Some((text, mode)) = read_sshd_config(ctx, "ssh_pwauth")? else {
        return Ok(());
    };
    let dir = policy.sshd_dropin_dir();
    let changed = match plan_sshd(&text, &dir.to_string_lossy(), value) {
        None => {
            let path = dir.join(DROPIN);
            let content = format!(
                "# Written by ci-agent from the seed's ssh_pwauth.\nPasswordAuthentication {value}\n"
            );
            super::hostname::write_if_changed(ctx, &path, &content)?
        }
        Some(new) if new == text => false,
        Some(new) => {
            ctx.sys
                .write_file(&main, new.as_bytes(), WriteOpts::mode(mode))
                .with_context(|| format!("writing {}", main.display()))?;
            true
        }
    };
    if changed {
        log::info!("sshd PasswordAuthentication set to {value}");
        if let Err(e) = reload_sshd(ctx) {
            ctx.warn(format!("ssh_pwauth: reloading sshd: {e:#}"));
        }
    }
    Ok(())
}

/// Tell a running sshd to re-read its configuration and host keys (nothing when it is not
/// running, as in the early stage).
pub fn reload_sshd(ctx: &Context) -> anyhow::Result<()> {
    let r = ctx.policy().sshd_reload();
    if r.requires_path
        .as_deref()
        .is_some_and(|p: &Path| !ctx.sys.exists(p))
    {
        return Ok(());
    }
    if let Some(check) = &r.check {
        match ctx.sys.run(check) {
            Ok(o) if o.success() => {}
            _ => return Ok(()),
        }
    }
    exec::run_ok(ctx.sys, &r.reload).map(|_| ())
}

impl Module for SetPasswords {
    fn name(&self) -> &'static str {
        "set_passwords"
    }
    fn keys(&self) -> &'static [&'static str] {
        &["password", "chpasswd", "ssh_pwauth"]
    }
    fn frequency(&self) -> Frequency {
        Frequency::PerInstance
    }
    fn stage(&self) -> Stage {
        Stage::Early
    }
    fn wanted(&self, ctx: &Context) -> bool {
        let cc = ctx.cc();
        cc.password.is_some()
            || cc.chpasswd.as_ref().is_some_and(|c| !c.users.is_empty())
            || cc.ssh_pwauth.is_some()
    }
    fn run(&self, ctx: &mut Context) -> anyhow::Result<()> {
        let cc = ctx.cc().clone();
        // (key, user, kind, password)
        let mut items: Vec<(String, String, PasswordKind, Option<String>)> = Vec::new();
        let listed = cc.chpasswd.as_ref().is_some_and(|c| !c.users.is_empty());
        if cc.password.is_some() && listed {
            // cloud-init's rule: `password` is only a fallback for when chpasswd lists no
            // one; the lists say exactly whose password changes.
            ctx.warn("password: ignored because chpasswd lists users (as cloud-init does)");
        } else if let Some(p) = &cc.password {
            match default_user_name(ctx) {
                // cloud-init reads `password` like a `list` line: `R`/`RANDOM` is a
                // random password and a crypt hash is a hash, not the literal text.
                Some(u) => {
                    let c = infer_password(&u, p, None);
                    items.push(("password".into(), c.name, c.kind, c.password));
                }
                None => ctx.warn("password: the seed has no default user; not set"),
            }
        }
        let expire = cc.chpasswd.as_ref().and_then(|c| c.expire).unwrap_or(true);
        if let Some(c) = &cc.chpasswd {
            for (i, u) in c.users.iter().enumerate() {
                let key = format!("chpasswd.users[{i}]");
                check_account_name(&u.name, &format!("{key}.name"))?;
                if u.kind != PasswordKind::Random && u.password.is_none() {
                    bail!("{key}: no password given for {}", u.name);
                }
                items.push((key, u.name.clone(), u.kind, u.password.clone()));
            }
        }
        for (key, _, kind, p) in &items {
            if p.as_deref().is_some_and(|p| p.contains(['\n', '\r', '\0'])) {
                bail!("{key}: a password must be one line");
            }
            if *kind == PasswordKind::Hash && p.as_deref().is_some_and(|p| p.contains(':')) {
                bail!("{key}: a password hash must not contain ':'");
            }
        }
        let policy = ctx.policy();
        let db = AccountDb::load(ctx.sys)?;
        // Under a root prefix a user may exist only as a recorded useradd: record the
        // password command anyway.
        let recorded = commands_recorded(ctx.sys);
        let mut failed = Vec::new();
        let mut randoms = Vec::new();
        // (key, user, password or hash, is_hash) of the users whose password is set.
        let mut todo: Vec<(&str, &str, String, bool)> = Vec::new();
        for (key, user, kind, pw) in &items {
            if db.user(user).is_none() && !recorded {
                failed.push(format!("{key}: user {user} does not exist"));
                continue;
            }
            match (kind, pw) {
                (PasswordKind::Hash, Some(h)) => todo.push((key, user, h.clone(), true)),
                (PasswordKind::Text, Some(p)) => todo.push((key, user, p.clone(), false)),
                _ => {
                    let p = random_password(ctx)?;
                    randoms.push((user.clone(), p.clone()));
                    todo.push((key, user, p, false));
                }
            }
        }
        // One command for many users where the OS tool takes a list (Linux chpasswd).
        let args: Vec<(&str, &str, bool)> = todo
            .iter()
            .map(|(_, u, p, h)| (*u, p.as_str(), *h))
            .collect();
        for (cmd, idx) in policy.set_passwords(&args) {
            if let Err(e) = exec::run_ok(ctx.sys, &cmd) {
                for i in idx {
                    let (key, user, _, _) = &todo[i];
                    failed.push(format!("{key}: setting the password of {user}: {e:#}"));
                }
                continue;
            }
            if expire {
                for i in idx {
                    let (key, user, _, _) = &todo[i];
                    if let Err(e) = exec::run_ok(ctx.sys, &policy.expire_passwd(user)) {
                        failed.push(format!("{key}: expiring the password of {user}: {e:#}"));
                    }
                }
            }
        }
        if !randoms.is_empty() {
            let text: String = randoms.iter().map(|(u, p)| format!("{u}:{p}\n")).collect();
            let path = ctx.write_instance_file("random-passwords", text.as_bytes(), 0o600)?;
            let names: Vec<&str> = randoms.iter().map(|(u, _)| u.as_str()).collect();
            ctx.warn(format!(
                "chpasswd: random passwords set for {}; they are in {} (root only)",
                names.join(", "),
                path.display()
            ));
        }
        if let Some(yes) = cc.ssh_pwauth {
            if let Err(e) = set_pwauth(ctx, yes) {
                failed.push(format!("ssh_pwauth: {e:#}"));
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
    use crate::formats::userdata::cloud_config::{Chpasswd, ChpasswdUser};
    use crate::modules::test_env::Env;
    use crate::platform::OsKind;

    fn env(os: OsKind) -> Env {
        let e = Env::new(os);
        e.sys.put(
            "/etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\ndebian:x:1000:1000::/home/debian:/bin/bash\nfreebsd:x:1001:1001::/home/freebsd:/bin/sh\nbob:x:1002:1002::/home/bob:/bin/sh\n",
        );
        e
    }

    #[test]
    fn password_and_chpasswd_linux() {
        let mut env = env(OsKind::Linux);
        env.seed.cloud_config.password = Some("x1".into());
        env.seed.cloud_config.chpasswd = Some(Chpasswd {
            expire: None,
            users: vec![
                ChpasswdUser {
                    name: "bob".into(),
                    password: Some("$6$abc$def".into()),
                    kind: PasswordKind::Hash,
                },
                ChpasswdUser {
                    name: "root".into(),
                    password: None,
                    kind: PasswordKind::Random,
                },
            ],
        });
        let w = env.run_ok(&SetPasswords);
        // `password` gives way to the chpasswd list, as in cloud-init.
        assert_eq!(
            env.lines(),
            [
                "chpasswd (arguments withheld)",
                "passwd --expire bob",
                "chpasswd (arguments withheld)",
                "passwd --expire root"
            ]
        );
        assert!(w.iter().any(|w| w.contains("password: ignored")), "{w:?}");
        let c = env.sys.commands();
        assert_eq!(c[0].argv, ["chpasswd", "-e"]);
        assert_eq!(c[0].stdin.as_deref(), Some(&b"bob:$6$abc$def\n"[..]));
        let rnd = String::from_utf8(c[2].stdin.clone().unwrap()).unwrap();
        let pw = rnd.trim_end().strip_prefix("root:").unwrap();
        assert_eq!(pw.len(), 20);
        assert!(pw.bytes().all(|b| b.is_ascii_alphanumeric()));
        let file = "/var/lib/ci-agent/instances/iid-test/random-passwords";
        assert_eq!(env.read(file), format!("root:{pw}\n"));
        assert_eq!(env.mode(file), 0o600);
        assert!(w[1].contains(file) && !w[1].contains(pw), "{w:?}");
    }

    #[test]
    fn expire_false_and_freebsd() {
        let mut env = env(OsKind::FreeBsd);
        env.seed.cloud_config.password = Some("x1".into());
        env.seed.cloud_config.chpasswd = Some(Chpasswd {
            expire: Some(false),
            users: vec![],
        });
        env.run_ok(&SetPasswords);
        assert_eq!(env.lines(), ["pw (arguments withheld)"]);
        let c = &env.sys.commands()[0];
        assert_eq!(c.argv, ["pw", "usermod", "freebsd", "-h", "0"]);
        assert_eq!(c.stdin.as_deref(), Some(&b"x1\n"[..]));
    }

    #[test]
    fn password_key_random_and_hash_are_not_literal() {
        let mut env = env(OsKind::Linux);
        env.seed.cloud_config.password = Some("RANDOM".into());
        env.seed.cloud_config.chpasswd = Some(Chpasswd {
            expire: Some(false),
            users: vec![],
        });
        let w = env.run_ok(&SetPasswords);
        let c = env.sys.commands();
        assert_eq!(c[0].argv, ["chpasswd"]);
        let stdin = String::from_utf8(c[0].stdin.clone().unwrap()).unwrap();
        assert_ne!(stdin, "debian:RANDOM\n", "never the literal word");
        let pw = stdin.trim_end().strip_prefix("debian:").unwrap();
        assert_eq!(pw.len(), 20);
        let file = "/var/lib/ci-agent/instances/iid-test/random-passwords";
        assert_eq!(env.read(file), format!("debian:{pw}\n"));
        assert!(w[0].contains(file), "{w:?}");

        let mut env = env_fbsd_sshd();
        env.seed.cloud_config.password = Some("$6$salt$hashhash".into());
        env.run_ok(&SetPasswords);
        let c = &env.sys.commands()[0];
        assert_eq!(c.argv, ["pw", "usermod", "freebsd", "-H", "0"]);
        assert_eq!(c.stdin.as_deref(), Some(&b"$6$salt$hashhash\n"[..]));
        // Expired like any other password (chpasswd.expire defaults to true).
        assert_eq!(
            env.lines(),
            [
                "pw (arguments withheld)",
                "pw usermod freebsd -p 02-Jan-1970"
            ],
            "a hash is expired too"
        );
    }

    #[test]
    fn bad_name_refused() {
        let mut env = env(OsKind::Linux);
        env.seed.cloud_config.chpasswd = Some(Chpasswd {
            expire: None,
            users: vec![ChpasswdUser {
                name: "ghost".into(),
                password: Some("pw".into()),
                kind: PasswordKind::Text,
            }],
        });
        env.seed.cloud_config.chpasswd.as_mut().unwrap().users[0].name = "root;rm".into();
        let e = env.run_err(&SetPasswords);
        assert!(e.contains("chpasswd.users[0].name: invalid name"), "{e}");
        assert!(env.lines().is_empty());
    }

    #[test]
    fn sshd_dropin_or_edit() {
        let debian = "Include /etc/ssh/sshd_config.d/*.conf\n#PasswordAuthentication yes\nKbdInteractiveAuthentication no\n";
        assert_eq!(plan_sshd(debian, "/etc/ssh/sshd_config.d", "yes"), None);
        let late = "PasswordAuthentication no\nInclude /etc/ssh/sshd_config.d/*.conf\n";
        assert_eq!(
            plan_sshd(late, "/etc/ssh/sshd_config.d", "yes").unwrap(),
            "PasswordAuthentication yes\nInclude /etc/ssh/sshd_config.d/*.conf\n"
        );
        let freebsd = "#PermitRootLogin no\n#PasswordAuthentication no\nSubsystem sftp /usr/libexec/sftp-server\nMatch User anoncvs\n  PasswordAuthentication no\n";
        assert_eq!(
            plan_sshd(freebsd, "/etc/ssh/sshd_config.d", "yes").unwrap(),
            "#PermitRootLogin no\n#PasswordAuthentication no\nSubsystem sftp /usr/libexec/sftp-server\nPasswordAuthentication yes\nMatch User anoncvs\n  PasswordAuthentication no\n"
        );
    }

    #[test]
    fn ssh_pwauth_writes_dropin_and_reloads_if_running() {
        let mut env = env(OsKind::Linux);
        env.sys.put(
            "/etc/ssh/sshd_config",
            "Include /etc/ssh/sshd_config.d/*.conf\n",
        );
        env.sys.put("/run/systemd/system/.keep", "");
        env.seed.cloud_config.ssh_pwauth = Some(true);
        env.run_ok(&SetPasswords);
        assert_eq!(
            env.read("/etc/ssh/sshd_config.d/50-ci-agent.conf"),
            "# Written by ci-agent from the seed's ssh_pwauth.\nPasswordAuthentication yes\n"
        );
        assert_eq!(
            env.lines(),
            ["systemctl try-reload-or-restart ssh.service sshd.service"]
        );
        env.run_ok(&SetPasswords);
        assert_eq!(env.lines().len(), 1, "unchanged: no reload");

        let mut env = env_fbsd_sshd();
        env.seed.cloud_config.ssh_pwauth = Some(false);
        env.sys.on_command(
            &["service", "sshd", "onestatus"],
            crate::platform::CmdOutput {
                code: Some(1),
                ..Default::default()
            },
        );
        env.run_ok(&SetPasswords);
        assert_eq!(
            env.read("/etc/ssh/sshd_config"),
            "Port 22\nPasswordAuthentication no\n"
        );
        assert_eq!(env.mode("/etc/ssh/sshd_config"), 0o644);
        assert_eq!(
            env.lines(),
            ["service sshd onestatus"],
            "not running: no reload"
        );
    }

    fn env_fbsd_sshd() -> Env {
        let e = env(OsKind::FreeBsd);
        e.sys.put("/etc/ssh/sshd_config", "Port 22\n");
        e
    }
}
