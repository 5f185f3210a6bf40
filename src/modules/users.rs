//! Key: `users`. cloud-init: `cc_users_groups`.
//!
//! `users`: create the accounts a seed asks for, like cloud-init's `users-groups`.
//!
//! - `users` absent → the configured default user only; `- default` in the list → the
//!   default user (from the agent config) at that place.
//! - Names, groups and database fields are validated before anything runs (`../x`,
//!   `root;rm` are refused with an error naming the key).
//! - Accounts are looked up by reading the guest's `/etc/passwd` and `/etc/group`. A
//!   missing user is created (`useradd` / `pw useradd`) after its missing groups
//!   (`groupadd` / `pw groupadd`), then looked up again: a user still absent is an error.
//!   An existing user only gets missing supplementary groups (so a second run creates
//!   nothing).
//! - `passwd`/`hashed_passwd` (a hash) go in at creation (`useradd` then `chpasswd -e`,
//!   `pw useradd … -H 0`), or via `chpasswd -e` / `pw usermod -H 0` for an existing
//!   user: always on stdin, never in argv;
//!   `plain_text_passwd` via stdin only. All such commands are marked secret.
//! - `lock_passwd` (default true, as cloud-init — including for root when root is the
//!   default user) disables password logins: `passwd -l`, FreeBSD `pw usermod -w no` (not
//!   `pw lock`, which would also refuse SSH keys). Not run for a user this run created
//!   without a password: `useradd` (`!`) and `pw useradd -h -` (`*`) leave it locked.
//! - `sudo` rules go to one drop-in (`/etc/sudoers.d/90-ci-agent-users`, FreeBSD
//!   `/usr/local/etc/sudoers.d/…`), mode 0440, one block per user, replaced in place.
//!   The new file is first checked with `visudo -c -f` (when sudo is installed); rules
//!   that do not parse are an error and the drop-in is left as it was.
//!
//! - `expiredate` (`YYYY-MM-DD`) and `inactive` (days): `usermod --expiredate --inactive`
//!   on Linux, `pw usermod -e DD-MM-YYYY` on FreeBSD (whose pw has no inactivity period:
//!   a warning), for new and existing users alike.
//!
//! Per-user `ssh_authorized_keys` are installed by the `ssh_authorized_keys` module.
//! Once per instance, early.

use std::path::Path;

use anyhow::{bail, Context as _};

use super::{Context, Frequency, Module, Stage};
use crate::formats::userdata::cloud_config::{User, UserSpec};
use crate::platform::accounts::{
    check_account_name, check_field, commands_recorded, missing_after_create, AccountDb,
};
use crate::platform::exec;
use crate::platform::policy::UserPlan;
use crate::platform::{Cmd, OsKind, WriteOpts};

pub struct Users;

/// A user from the seed or the config, with where it came from (`users[1]`).
#[derive(Debug, Clone)]
pub struct Resolved {
    pub key: String,
    pub user: User,
    pub is_default: bool,
}

/// The configured default user as a `users` entry.
pub fn default_user(ctx: &Context) -> User {
    let d = &ctx.config.default_user;
    User {
        name: d.name.clone(),
        gecos: d.gecos.clone(),
        groups: d.groups.clone(),
        shell: d.shell.clone(),
        sudo: d.sudo.clone(),
        lock_passwd: Some(d.lock_passwd),
        ..User::default()
    }
}

/// The users this seed configures, in order (`users` absent → the default user).
pub fn resolve(ctx: &Context) -> Vec<Resolved> {
    match &ctx.cc().users {
        None => vec![Resolved {
            key: "default_user".into(),
            user: default_user(ctx),
            is_default: true,
        }],
        Some(list) => list
            .iter()
            .enumerate()
            .map(|(i, s)| match s {
                UserSpec::Default => Resolved {
                    key: format!("users[{i}] (default)"),
                    user: default_user(ctx),
                    is_default: true,
                },
                UserSpec::User(u) => Resolved {
                    key: format!("users[{i}]"),
                    user: (**u).clone(),
                    is_default: false,
                },
            })
            .collect(),
    }
}

/// The default user's name when this seed has one (cloud-init: `users` absent or listing
/// `default`).
pub fn default_user_name(ctx: &Context) -> Option<String> {
    resolve(ctx)
        .into_iter()
        .find(|r| r.is_default)
        .map(|r| r.user.name)
}

fn check_path_field(v: &str, key: &str) -> anyhow::Result<()> {
    check_field(v, key)?;
    if !v.starts_with('/') {
        bail!("{key}: must be an absolute path");
    }
    Ok(())
}

/// Validate everything of a user that reaches a command or a file.
pub fn validate(r: &Resolved) -> anyhow::Result<()> {
    let u = &r.user;
    let k = &r.key;
    check_account_name(&u.name, &format!("{k}.name"))?;
    for g in u.groups.iter().chain(u.primary_group.iter()) {
        check_account_name(g, &format!("{k}.groups"))?;
    }
    if let Some(v) = &u.gecos {
        check_field(v, &format!("{k}.gecos"))?;
    }
    if let Some(v) = &u.homedir {
        check_path_field(v, &format!("{k}.homedir"))?;
    }
    if let Some(v) = &u.shell {
        check_path_field(v, &format!("{k}.shell"))?;
    }
    if let Some(v) = &u.passwd {
        check_field(v, &format!("{k}.passwd"))?;
    }
    if let Some(v) = &u.plain_text_passwd {
        if v.contains(['\n', '\r', '\0']) {
            bail!("{k}.plain_text_passwd: must be one line");
        }
    }
    for (j, rule) in u.sudo.iter().enumerate() {
        if rule.contains(['\n', '\r', '\0']) || rule.trim().is_empty() {
            bail!("{k}.sudo[{j}]: a sudo rule must be one non-empty line");
        }
    }
    Ok(())
}

fn plan(u: &User) -> UserPlan {
    UserPlan {
        name: u.name.clone(),
        gecos: u.gecos.clone(),
        homedir: u.homedir.clone(),
        shell: u.shell.clone(),
        primary_group: u.primary_group.clone(),
        groups: u.groups.clone(),
        system: u.system,
        no_create_home: u.no_create_home,
        uid: u.uid,
        passwd_hash: u.passwd.clone(),
    }
}

const BLOCK_MARK: &str = "# ci-agent: sudo rules for ";

/// The sudoers drop-in with `user`'s block set to `rules` (removed when empty), other
/// users' blocks and foreign lines kept in place.
pub fn update_sudoers(old: &str, user: &str, rules: &[String]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut skipping = false;
    let mut placed = false;
    let block = |out: &mut Vec<String>| {
        if !rules.is_empty() {
            out.push(format!("{BLOCK_MARK}{user}"));
            out.extend(rules.iter().map(|r| format!("{user} {}", r.trim())));
        }
    };
    let own_line = format!("{user} ");
    for l in old.lines() {
        if skipping && l.starts_with(&own_line) {
            continue;
        }
        skipping = false;
        if l.strip_prefix(BLOCK_MARK) == Some(user) {
            skipping = true;
            if !placed {
                block(&mut out);
                placed = true;
            }
            continue;
        }
        out.push(l.to_string());
    }
    if !placed && rules.is_empty() {
        return old.to_string();
    }
    if !placed {
        if out.is_empty() {
            out.push(
                "# Written by ci-agent from the seed's users; edits to these blocks are replaced."
                    .into(),
            );
        }
        block(&mut out);
    }
    let mut s = out.join("\n");
    s.push('\n');
    s
}

/// Let visudo parse the new drop-in before it replaces the old one: a drop-in that does
/// not parse makes sudo refuse to work at all (every rule, not just the bad one). The
/// candidate goes to the root-only instance directory, not to the drop-in directory sudo
/// reads. Skipped when visudo is absent (no sudo: the rules do nothing anyway).
fn check_sudoers(ctx: &Context, text: &str) -> anyhow::Result<()> {
    let visudo = ctx.policy().visudo();
    if !ctx.sys.exists(&visudo) {
        return Ok(());
    }
    let candidate = ctx.write_instance_file("sudoers.check", text.as_bytes(), 0o440)?;
    let cmd = Cmd::new([
        visudo.to_string_lossy().into_owned(),
        "-c".into(),
        "-f".into(),
        candidate.to_string_lossy().into_owned(),
    ]);
    log::info!("running {}", cmd.display());
    let out = ctx.sys.run(&cmd);
    if let Err(e) = ctx.sys.remove_file(&candidate) {
        log::warn!("removing {}: {e}", candidate.display());
    }
    let out = out.with_context(|| format!("{}: could not run", cmd.display()))?;
    if !out.success() {
        exec::log_output("visudo", &out);
        // visudo names the file, line and column on its first line; the next ones
        // repeat the rule and point at the column.
        let err = String::from_utf8_lossy(&out.stderr);
        let first = err.lines().map(str::trim).find(|l| !l.is_empty());
        let why: String = first.unwrap_or("no message").chars().take(300).collect();
        bail!("visudo: {why} ({})", exec::describe_exit(&out));
    }
    Ok(())
}

fn write_sudo_rules(ctx: &mut Context, user: &str, rules: &[String]) -> anyhow::Result<()> {
    let policy = ctx.policy();
    let path = policy.sudoers_file();
    let old = match ctx.sys.read_file(&path, 1 << 20) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let new = update_sudoers(&old, user, rules);
    if new == old {
        return Ok(());
    }
    check_sudoers(ctx, &new).with_context(|| {
        format!(
            "the sudo rules do not parse; {} not changed",
            path.display()
        )
    })?;
    let dir = path.parent().unwrap_or(Path::new("/"));
    ctx.sys
        .create_dir_all(dir, 0o750, None)
        .with_context(|| format!("creating {}", dir.display()))?;
    ctx.sys
        .write_file(&path, new.as_bytes(), WriteOpts::mode(0o440))
        .with_context(|| format!("writing {}", path.display()))?;
    let main = policy.sudoers_main();
    match ctx.sys.read_file(&main, 1 << 20) {
        Ok(b) => {
            let text = String::from_utf8_lossy(&b);
            let d = dir.to_string_lossy();
            let included = text.lines().any(|l| {
                let l = l.trim();
                (l.starts_with("#includedir") || l.starts_with("@includedir"))
                    && l.split_whitespace().nth(1) == Some(&*d)
            });
            if !included {
                ctx.warn(format!(
                    "{} does not include {d}; the sudo rules in {} have no effect",
                    main.display(),
                    path.display()
                ));
            }
        }
        Err(_) => ctx.warn(format!(
            "{} not found (sudo not installed?); sudo rules written to {} anyway",
            main.display(),
            path.display()
        )),
    }
    Ok(())
}

fn apply_user(ctx: &mut Context, r: &Resolved) -> anyhow::Result<()> {
    let policy = ctx.policy();
    let u = &r.user;
    let db = AccountDb::load(ctx.sys)?;
    let mut made: Vec<&str> = Vec::new();
    for g in u.primary_group.iter().chain(u.groups.iter()) {
        if db.group(g).is_none() && !made.contains(&g.as_str()) {
            exec::run_ok(ctx.sys, &policy.groupadd(g))?;
            made.push(g);
        }
    }
    let created = if db.user(&u.name).is_none() {
        for cmd in policy.useradd(&plan(u)) {
            exec::run_ok(ctx.sys, &cmd)?;
        }
        let db = AccountDb::load(ctx.sys)?;
        if db.user(&u.name).is_none() {
            let w = missing_after_create(&r.key, &u.name, commands_recorded(ctx.sys))?;
            ctx.warn(w);
        } else {
            log::info!("created user {}", u.name);
        }
        true
    } else {
        let db = AccountDb::load(ctx.sys)?;
        for g in &u.groups {
            if !db.is_member(&u.name, g) {
                exec::run_ok(ctx.sys, &policy.add_to_group(&u.name, g))?;
            }
        }
        false
    };
    if let (Some(h), false) = (&u.passwd, created) {
        exec::run_ok(ctx.sys, &policy.set_password_hash(&u.name, h))?;
    }
    if let Some(p) = &u.plain_text_passwd {
        exec::run_ok(ctx.sys, &policy.set_password_text(&u.name, p))?;
    }
    // A user just created without a password is already locked (`useradd` writes `!`,
    // `pw useradd -h -` writes `*`): locking it again would only spawn a command.
    let born_locked = created && u.passwd.is_none() && u.plain_text_passwd.is_none();
    if u.lock_passwd.unwrap_or(true) && !born_locked {
        exec::run_ok(ctx.sys, &policy.lock_passwd(&u.name))?;
    }
    if let Some(cmd) = expiry(ctx, u) {
        exec::run_ok(ctx.sys, &cmd)?;
    }
    write_sudo_rules(ctx, &u.name, &u.sudo)
}

/// `expiredate` / `inactive` (cloud-init passes them to `useradd`; here they also reach an
/// existing user): Linux `usermod --expiredate --inactive`, FreeBSD `pw usermod -e
/// DD-MM-YYYY` (pw has no inactivity period: a warning).
fn expiry(ctx: &mut Context, u: &User) -> Option<Cmd> {
    match ctx.os {
        OsKind::Linux => {
            let mut argv = vec!["usermod".to_owned()];
            if let Some(d) = &u.expiredate {
                argv.extend(["--expiredate".to_owned(), d.clone()]);
            }
            if let Some(n) = u.inactive {
                argv.extend(["--inactive".to_owned(), n.to_string()]);
            }
            argv.push(u.name.clone());
            (argv.len() > 2).then(|| Cmd::new(argv))
        }
        OsKind::FreeBsd => {
            if u.inactive.is_some() {
                ctx.warn(format!(
                    "users {}: inactive is not supported on FreeBSD (pw has no inactivity period)",
                    u.name
                ));
            }
            let d = u.expiredate.as_ref()?;
            let (y, rest) = d.split_once('-')?;
            let (m, day) = rest.split_once('-')?;
            Some(Cmd::new([
                "pw".to_owned(),
                "usermod".to_owned(),
                u.name.clone(),
                "-e".to_owned(),
                format!("{day}-{m}-{y}"),
            ]))
        }
    }
}

impl Module for Users {
    fn name(&self) -> &'static str {
        "users"
    }
    fn keys(&self) -> &'static [&'static str] {
        &["users"]
    }
    fn frequency(&self) -> Frequency {
        Frequency::PerInstance
    }
    fn stage(&self) -> Stage {
        Stage::Early
    }
    fn wanted(&self, ctx: &Context) -> bool {
        !resolve(ctx).is_empty()
    }
    fn run(&self, ctx: &mut Context) -> anyhow::Result<()> {
        let users = resolve(ctx);
        for r in &users {
            validate(r)?;
        }
        let mut failed = Vec::new();
        for r in &users {
            if let Err(e) = apply_user(ctx, r) {
                failed.push(format!("{} ({}): {e:#}", r.key, r.user.name));
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
    use crate::modules::test_env::Env;
    use crate::platform::OsKind;

    fn deploy() -> UserSpec {
        UserSpec::User(Box::new(User {
            name: "deploy".into(),
            groups: vec!["sudo".into()],
            shell: Some("/bin/bash".into()),
            sudo: vec!["ALL=(ALL) NOPASSWD:ALL".into()],
            ..User::default()
        }))
    }

    #[test]
    fn absent_users_key_means_default_user() {
        let env = Env::new(OsKind::Linux);
        env.sys.put("/etc/sudoers", "@includedir /etc/sudoers.d\n");
        let w = env.run_ok(&Users);
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(
            env.lines(),
            ["useradd -G adm,sudo -s /bin/bash --user-group -m debian"]
        );
        let s = env.read("/etc/sudoers.d/90-ci-agent-users");
        assert!(s.contains("# ci-agent: sudo rules for debian\ndebian ALL=(ALL) NOPASSWD:ALL\n"));
        assert_eq!(env.mode("/etc/sudoers.d/90-ci-agent-users"), 0o440);
    }

    #[test]
    fn idempotent_second_run_creates_nothing() {
        let mut env = Env::new(OsKind::Linux);
        env.seed.cloud_config.users = Some(vec![UserSpec::Default, deploy()]);
        env.run_ok(&Users);
        let first = env.lines();
        assert_eq!(first.iter().filter(|l| l.starts_with("useradd")).count(), 2);
        let sudoers = env.read("/etc/sudoers.d/90-ci-agent-users");
        env.run_ok(&Users);
        let second: Vec<String> = env.lines()[first.len()..].to_vec();
        assert!(
            second.iter().all(|l| l.starts_with("passwd -l")) && second.len() == 2,
            "only re-locking on a second run: {second:?}"
        );
        assert_eq!(env.read("/etc/sudoers.d/90-ci-agent-users"), sudoers);
        assert_eq!(sudoers.matches("deploy ALL").count(), 1);
    }

    #[test]
    fn existing_user_gets_missing_groups_and_hash() {
        let mut env = Env::new(OsKind::FreeBsd);
        env.sys.put(
            "/etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nfreebsd:*:1001:1001:FreeBSD User:/home/freebsd:/bin/sh\n",
        );
        env.seed.cloud_config.users = Some(vec![UserSpec::User(Box::new(User {
            name: "freebsd".into(),
            groups: vec!["wheel".into(), "operator".into()],
            passwd: Some("$6$salt$abc".into()),
            lock_passwd: Some(false),
            ..User::default()
        }))]);
        env.run_ok(&Users);
        assert_eq!(
            env.lines(),
            [
                "pw groupmod wheel -m freebsd",
                "pw groupmod operator -m freebsd",
                "pw (arguments withheld)"
            ]
        );
        let c = &env.sys.commands()[2];
        assert_eq!(c.argv, ["pw", "usermod", "freebsd", "-H", "0"]);
        assert_eq!(c.stdin.as_deref(), Some(&b"$6$salt$abc\n"[..]));
    }

    #[test]
    fn hostile_names_refused_before_any_command() {
        for bad in ["../x", "root;rm", "Root", ""] {
            let mut env = Env::new(OsKind::Linux);
            env.seed.cloud_config.users = Some(vec![
                deploy(),
                UserSpec::User(Box::new(User {
                    name: bad.into(),
                    ..User::default()
                })),
            ]);
            let e = env.run_err(&Users);
            assert!(e.starts_with("users[1].name: invalid name"), "{e}");
            assert!(env.lines().is_empty(), "nothing run for {bad:?}");
        }
        let mut env = Env::new(OsKind::Linux);
        env.seed.cloud_config.users = Some(vec![UserSpec::User(Box::new(User {
            name: "eve".into(),
            sudo: vec!["ALL=(ALL) ALL\neve2 ALL=(ALL) ALL".into()],
            ..User::default()
        }))]);
        let e = env.run_err(&Users);
        assert!(e.contains("users[0].sudo[0]"), "{e}");
        env.seed.cloud_config.users = Some(vec![UserSpec::User(Box::new(User {
            name: "eve".into(),
            gecos: Some("x:0:0".into()),
            ..User::default()
        }))]);
        assert!(env.run_err(&Users).contains("users[0].gecos"));
    }

    #[test]
    fn plain_text_password_is_secret_and_on_stdin() {
        let mut env = Env::new(OsKind::Linux);
        env.seed.cloud_config.users = Some(vec![UserSpec::User(Box::new(User {
            name: "alice".into(),
            plain_text_passwd: Some("s3cret".into()),
            lock_passwd: Some(false),
            ..User::default()
        }))]);
        env.run_ok(&Users);
        assert_eq!(
            env.lines(),
            [
                "useradd --user-group -m alice",
                "chpasswd (arguments withheld)"
            ]
        );
        assert_eq!(
            env.sys.commands()[1].stdin.as_deref(),
            Some(&b"alice:s3cret\n"[..])
        );
        assert!(!env.lines().concat().contains("s3cret"));
        assert!(env
            .sys
            .read_string("/etc/sudoers.d/90-ci-agent-users")
            .is_none());
    }

    #[test]
    fn a_new_users_hash_goes_on_stdin_never_in_argv() {
        let mut env = Env::new(OsKind::Linux);
        env.seed.cloud_config.users = Some(vec![UserSpec::User(Box::new(User {
            name: "carol".into(),
            passwd: Some("$6$salt$carolhash".into()),
            ..User::default()
        }))]);
        env.run_ok(&Users);
        assert_eq!(
            env.lines(),
            [
                "useradd --user-group -m carol",
                "chpasswd (arguments withheld)",
                "passwd -l carol"
            ]
        );
        let cmds = env.sys.commands();
        assert_eq!(cmds[1].argv, ["chpasswd", "-e"]);
        assert_eq!(
            cmds[1].stdin.as_deref(),
            Some(&b"carol:$6$salt$carolhash\n"[..])
        );
        assert!(!cmds
            .iter()
            .flat_map(|c| &c.argv)
            .any(|a| a.contains("carolhash")));
    }

    #[test]
    fn recorded_useradd_is_a_warning_under_a_root_prefix() {
        // Without the account-tool simulation useradd is only recorded (as under
        // --root DIR): a warning, not a failure. A live system fails instead, see
        // passwd_db::missing_after_create.
        let mut env = Env::new(OsKind::Linux);
        env.sys.on_command(
            &["useradd"],
            crate::platform::CmdOutput {
                code: Some(0),
                ..Default::default()
            },
        );
        env.seed.cloud_config.users = Some(vec![deploy()]);
        let w = env.run_ok(&Users);
        assert!(
            w[0].starts_with("users[0]: user deploy was not created"),
            "{w:?}"
        );
    }

    #[test]
    fn sudo_rules_that_do_not_parse_are_not_installed() {
        for (os, visudo, dropin) in [
            (
                OsKind::Linux,
                "/usr/sbin/visudo",
                "/etc/sudoers.d/90-ci-agent-users",
            ),
            (
                OsKind::FreeBsd,
                "/usr/local/sbin/visudo",
                "/usr/local/etc/sudoers.d/90-ci-agent-users",
            ),
        ] {
            let mut env = Env::new(os);
            env.sys.put(visudo, "");
            env.seed.cloud_config.users = Some(vec![deploy()]);
            env.run_ok(&Users);
            let check = "/var/lib/ci-agent/instances/iid-test/sudoers.check";
            let check = match os {
                OsKind::Linux => check.to_string(),
                OsKind::FreeBsd => check.replace("/var/lib/", "/var/db/"),
            };
            assert!(
                env.lines().contains(&format!("{visudo} -c -f {check}")),
                "{:?}",
                env.lines()
            );
            assert!(env.read(dropin).contains("deploy ALL=(ALL) NOPASSWD:ALL\n"));
            assert!(env.sys.read_string(&check).is_none(), "candidate removed");

            env.sys.on_command(
                &[visudo],
                crate::platform::CmdOutput {
                    code: Some(1),
                    stderr: format!(
                        "{check}:2:16: syntax error\ndeploy ALL=(ALL NOPASSWD:ALL\n           ^~~~\n"
                    )
                    .into_bytes(),
                    ..Default::default()
                },
            );
            env.seed.cloud_config.users = Some(vec![UserSpec::User(Box::new(User {
                name: "deploy".into(),
                sudo: vec!["ALL=(ALL NOPASSWD:ALL".into()],
                ..User::default()
            }))]);
            let before = env.read(dropin);
            let e = env.run_err(&Users);
            assert!(
                e.contains("the sudo rules do not parse")
                    && e.contains(&format!("visudo: {check}:2:16: syntax error (exit code 1)")),
                "{e}"
            );
            assert_eq!(env.read(dropin), before, "a bad drop-in is never installed");
            assert!(env.sys.read_string(&check).is_none(), "candidate removed");
        }
    }

    #[test]
    fn sudoers_blocks() {
        let a = update_sudoers("", "bob", &["ALL=(ALL) ALL".into()]);
        let b = update_sudoers(&a, "amy", &["ALL=(ALL) NOPASSWD:ALL".into()]);
        let c = update_sudoers(&b, "bob", &["ALL=(root) /bin/ls".into()]);
        assert_eq!(
            c,
            "# Written by ci-agent from the seed's users; edits to these blocks are replaced.\n\
             # ci-agent: sudo rules for bob\nbob ALL=(root) /bin/ls\n\
             # ci-agent: sudo rules for amy\namy ALL=(ALL) NOPASSWD:ALL\n"
        );
        assert_eq!(update_sudoers(&c, "bob", &["ALL=(root) /bin/ls".into()]), c);
        let d = update_sudoers(&c, "bob", &[]);
        assert!(!d.contains("bob"));
        assert_eq!(update_sudoers("", "nobody", &[]), "", "no rules, no file");
        assert_eq!(update_sudoers(&d, "nobody", &[]), d);
    }

    #[test]
    fn expiredate_and_inactive_reach_usermod_or_pw() {
        let seed = "users:\n- name: alice\n  expiredate: '2030-01-31'\n  inactive: 7\n  lock_passwd: false\n";
        let mut env = Env::new(OsKind::Linux);
        env.yaml(seed);
        env.run_ok(&Users);
        assert_eq!(
            env.lines().last().unwrap(),
            "usermod --expiredate 2030-01-31 --inactive 7 alice"
        );
        let mut env = Env::new(OsKind::FreeBsd);
        env.yaml(seed);
        let w = env.run_ok(&Users);
        assert!(
            w[0].contains("inactive is not supported on FreeBSD"),
            "{w:?}"
        );
        assert_eq!(
            env.lines().last().unwrap(),
            "pw usermod alice -e 31-01-2030"
        );
    }
}
