//! Key: `ssh_authorized_keys`, `disable_root`, `disable_root_opts` and meta-data `public-keys`. cloud-init: `cc_ssh` (its authorized-keys half).
//!
//! `ssh_authorized_keys` (with meta-data `public-keys`, per-user `ssh_authorized_keys`
//! and `disable_root`): install login keys, the one place that writes `authorized_keys`.
//!
//! - Top-level keys and meta-data `public-keys` go to the default user (when the seed has
//!   one; otherwise a warning says they were not installed). Each `users` entry's keys go
//!   to that user.
//! - `disable_root` (default true, as cloud-init): root gets the same keys behind
//!   cloud-init's `no-port-forwarding,…,command="echo 'Please login as the user …'"`
//!   prefix, so a root login says which user to use; `disable_root: false` gives root the
//!   plain keys. Nothing is added for root when the default user is root itself.
//!   `disable_root_opts` replaces that prefix (`$USER` → the default user,
//!   `$DISABLE_USER` → root), as in cloud-init.
//! - Keys are appended once: a key already present (same type and base64, whatever its
//!   comment or options) is not added again; the file is rewritten atomically.
//! - `~/.ssh` is 0700 and `authorized_keys` 0600, owned by the user (numeric ids from the
//!   guest's `/etc/passwd`). The home directory path is resolved (system symlinks such as
//!   FreeBSD's `/home -> /usr/home` are followed), but a symlinked `~/.ssh` or
//!   `authorized_keys` is refused with an error naming it, and nothing is written.
//!
//! Once per instance, early (after `users`).

use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context as _};

use super::users::{default_user_name, resolve};
use super::{Context, Frequency, Module, Stage};
use crate::formats::userdata::cloud_config::UserSpec;
use crate::platform::accounts::{commands_recorded, AccountDb};
use crate::platform::{FileKind, System, WriteOpts};

pub struct SshAuthorizedKeys;

/// Largest authorized_keys file read.
const MAX_KEYS_BYTES: u64 = 4 << 20;

/// cloud-init's root login refusal, with `$USER` the default user.
pub fn disable_root_prefix(user: &str) -> String {
    format!(
        "no-port-forwarding,no-agent-forwarding,no-X11-forwarding,command=\"echo 'Please login as the user \\\"{user}\\\" rather than the user \\\"root\\\".';echo;sleep 10;exit 142\""
    )
}

/// Split an authorized_keys line into fields, keeping double-quoted parts (options with
/// spaces) together.
fn fields(line: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = None;
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted => escaped = true,
            '"' => {
                quoted = !quoted;
                start.get_or_insert(i);
            }
            c if c.is_whitespace() && !quoted => {
                if let Some(s) = start.take() {
                    out.push(&line[s..i]);
                }
            }
            _ => {
                start.get_or_insert(i);
            }
        }
    }
    if let Some(s) = start {
        out.push(&line[s..]);
    }
    out
}

/// Key types OpenSSH accepts in `authorized_keys` (plain and certificate forms), as
/// cloud-init's `VALID_KEY_TYPES`.
const KEY_TYPES: &[&str] = &[
    "ssh-rsa",
    "ssh-dss",
    "ssh-ed25519",
    "ssh-ed448",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
    "rsa-sha2-256",
    "rsa-sha2-512",
    "ssh-rsa-cert-v01@openssh.com",
    "ssh-dss-cert-v01@openssh.com",
    "ssh-ed25519-cert-v01@openssh.com",
    "ssh-ed448-cert-v01@openssh.com",
    "ecdsa-sha2-nistp256-cert-v01@openssh.com",
    "ecdsa-sha2-nistp384-cert-v01@openssh.com",
    "ecdsa-sha2-nistp521-cert-v01@openssh.com",
    "sk-ssh-ed25519-cert-v01@openssh.com",
    "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com",
    "rsa-sha2-256-cert-v01@openssh.com",
    "rsa-sha2-512-cert-v01@openssh.com",
];

fn is_key_type(t: &str) -> bool {
    KEY_TYPES.contains(&t)
}

/// The key's base64 must decode (padding optional, as `ssh-keygen` writes it).
fn is_base64(s: &str) -> bool {
    use base64::engine::{general_purpose, DecodePaddingMode, Engine as _, GeneralPurpose};
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        general_purpose::GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    s.len() >= 16 && LENIENT.decode(s).is_ok()
}

/// A parsed key line: (options, type, base64, comment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyLine {
    pub options: Option<String>,
    pub kind: String,
    pub blob: String,
    pub comment: String,
}

impl KeyLine {
    pub fn parse(line: &str) -> Option<KeyLine> {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return None;
        }
        let f = fields(line);
        let i = f.iter().position(|t| is_key_type(t))?;
        if i > 1 {
            return None;
        }
        let blob = f.get(i + 1).filter(|b| is_base64(b))?;
        Some(KeyLine {
            options: (i == 1).then(|| f[0].to_string()),
            kind: f[i].to_string(),
            blob: blob.to_string(),
            comment: f[i + 2..].join(" "),
        })
    }

    /// The key's identity: type and base64, not the comment or options.
    pub fn id(&self) -> (String, String) {
        (self.kind.clone(), self.blob.clone())
    }

    pub fn render(&self, options: Option<&str>) -> String {
        let mut s = String::new();
        if let Some(o) = options.or(self.options.as_deref()) {
            s.push_str(o);
            s.push(' ');
        }
        s.push_str(&self.kind);
        s.push(' ');
        s.push_str(&self.blob);
        if !self.comment.is_empty() {
            s.push(' ');
            s.push_str(&self.comment);
        }
        s
    }
}

/// A key to install and the options to put before it (root's login refusal).
pub type KeyWithOptions = (KeyLine, Option<String>);

/// `existing` plus the keys not already in it, or `None` when nothing is new.
pub fn merge_keys(existing: &str, new: &[KeyWithOptions]) -> Option<String> {
    let mut have: HashSet<(String, String)> = existing
        .lines()
        .filter_map(KeyLine::parse)
        .map(|k| k.id())
        .collect();
    let mut out = existing.to_string();
    let mut added = false;
    for (k, opts) in new {
        if have.insert(k.id()) {
            if !out.is_empty() && !out.ends_with('\n') {
                out.push('\n');
            }
            out.push_str(&k.render(opts.as_deref()));
            out.push('\n');
            added = true;
        }
    }
    added.then_some(out)
}

/// A guest path with every symlink resolved (bounded; targets stay under the root).
/// Components that do not exist yet are kept as they are.
pub fn resolve_symlinks(sys: &dyn System, path: &Path) -> anyhow::Result<PathBuf> {
    let mut pending: Vec<std::ffi::OsString> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(p) => Some(p.to_os_string()),
            _ => None,
        })
        .rev()
        .collect();
    let mut cur = PathBuf::from("/");
    let mut hops = 0;
    while let Some(name) = pending.pop() {
        if name == ".." {
            cur.pop();
            continue;
        }
        if name == "." {
            continue;
        }
        let next = cur.join(&name);
        match sys.lstat(&next)? {
            Some(st) if st.kind == FileKind::Symlink => {
                hops += 1;
                if hops > 40 {
                    bail!("{}: too many levels of symbolic links", path.display());
                }
                let target = sys.read_link(&next)?;
                if target.is_absolute() {
                    cur = PathBuf::from("/");
                }
                for c in target.components().rev() {
                    if let Component::Normal(p) = c {
                        pending.push(p.to_os_string());
                    } else if c == Component::ParentDir {
                        pending.push("..".into());
                    }
                }
            }
            _ => cur = next,
        }
    }
    Ok(cur)
}

/// Install keys for one user. Errors name the user or the refused path.
pub fn install_keys(
    sys: &dyn System,
    db: &AccountDb,
    user: &str,
    keys: &[KeyWithOptions],
) -> anyhow::Result<bool> {
    let Some(pw) = db.user(user) else {
        bail!("user {user} does not exist (not in /etc/passwd)");
    };
    if !pw.home.starts_with('/') {
        bail!(
            "user {user}: home directory {:?} is not an absolute path",
            pw.home
        );
    }
    let (uid, gid) = (pw.uid, pw.gid);
    let home = resolve_symlinks(sys, Path::new(&pw.home))
        .with_context(|| format!("resolving home directory {} of {user}", pw.home))?;
    let ssh = home.join(".ssh");
    match sys.lstat(&ssh)? {
        None => sys
            .create_dir_all(&ssh, 0o700, Some((uid, gid)))
            .with_context(|| format!("creating {}", ssh.display()))?,
        Some(st) if st.kind == FileKind::Dir => {
            sys.set_mode(&ssh, 0o700)
                .with_context(|| format!("chmod {}", ssh.display()))?;
            sys.set_owner(&ssh, uid, gid)
                .with_context(|| format!("chown {}", ssh.display()))?;
        }
        Some(st) if st.kind == FileKind::Symlink => {
            bail!("refusing to follow symlink {} (user {user})", ssh.display())
        }
        Some(_) => bail!("{} is not a directory (user {user})", ssh.display()),
    }
    let auth = ssh.join("authorized_keys");
    let existing = match sys.lstat(&auth)? {
        None => String::new(),
        Some(st) if st.kind == FileKind::File => String::from_utf8_lossy(
            &sys.read_file(&auth, MAX_KEYS_BYTES)
                .with_context(|| format!("reading {}", auth.display()))?,
        )
        .into_owned(),
        Some(st) if st.kind == FileKind::Symlink => {
            bail!(
                "refusing to follow symlink {} (user {user})",
                auth.display()
            )
        }
        Some(_) => bail!("{} is not a regular file (user {user})", auth.display()),
    };
    let Some(content) = merge_keys(&existing, keys) else {
        return Ok(false);
    };
    sys.write_file(
        &auth,
        content.as_bytes(),
        WriteOpts::mode(0o600).owner(uid, gid).strict(),
    )
    .with_context(|| format!("writing {}", auth.display()))?;
    log::info!("installed SSH keys for {user} in {}", auth.display());
    Ok(true)
}

/// Parse seed keys; a line that is not a key is a warning naming `key[i]`.
fn parse_keys(ctx: &mut Context, key: &str, lines: &[String]) -> Vec<KeyLine> {
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if l.trim().contains(|c: char| c.is_control() && c != '\t') {
            ctx.warn(format!(
                "{key}[{i}]: contains a line break or control character (a key is one line), skipped: {:?}",
                crate::platform::policy::shorten(l)
            ));
            continue;
        }
        match KeyLine::parse(l) {
            Some(k) => out.push(k),
            None => ctx.warn(format!(
                "{key}[{i}]: not an SSH public key (expected a known key type and base64 \
                 that decodes), skipped: {:?}",
                crate::platform::policy::shorten(l)
            )),
        }
    }
    out
}

impl Module for SshAuthorizedKeys {
    fn name(&self) -> &'static str {
        "ssh_authorized_keys"
    }
    fn keys(&self) -> &'static [&'static str] {
        &["ssh_authorized_keys", "disable_root"]
    }
    fn frequency(&self) -> Frequency {
        Frequency::PerInstance
    }
    fn stage(&self) -> Stage {
        Stage::Early
    }
    fn wanted(&self, ctx: &Context) -> bool {
        !ctx.cc().ssh_authorized_keys.is_empty()
            || !ctx.seed.meta.public_keys.is_empty()
            || ctx.cc().users.iter().flatten().any(|u| match u {
                UserSpec::User(u) => !u.ssh_authorized_keys.is_empty(),
                UserSpec::Default => false,
            })
    }
    fn run(&self, ctx: &mut Context) -> anyhow::Result<()> {
        let mut plan: Vec<(String, Vec<KeyWithOptions>)> = Vec::new();
        let top = ctx.cc().ssh_authorized_keys.clone();
        let meta = ctx.seed.meta.public_keys.clone();
        let mut default_keys = parse_keys(ctx, "ssh_authorized_keys", &top);
        default_keys.extend(parse_keys(ctx, "meta-data public-keys", &meta));
        if !default_keys.is_empty() {
            match default_user_name(ctx) {
                Some(name) => {
                    plan.push((
                        name.clone(),
                        default_keys.iter().map(|k| (k.clone(), None)).collect(),
                    ));
                    if name != "root" {
                        // `disable_root_opts`: cloud-init's override of the refusal text.
                        let custom = match ctx.key("disable_root_opts") {
                            Some(v) => Some(v.line(4096)?),
                            None => None,
                        };
                        let opts = ctx.cc().disable_root.unwrap_or(true).then(|| {
                            custom.map_or_else(
                                || disable_root_prefix(&name),
                                |t| t.replace("$USER", &name).replace("$DISABLE_USER", "root"),
                            )
                        });
                        plan.push((
                            "root".into(),
                            default_keys
                                .iter()
                                .map(|k| (k.clone(), opts.clone()))
                                .collect(),
                        ));
                    }
                }
                None => ctx.warn(
                    "the seed's users list has no default user; \
                     top-level and meta-data keys were not installed",
                ),
            }
        }
        for r in resolve(ctx) {
            if r.is_default || r.user.ssh_authorized_keys.is_empty() {
                continue;
            }
            let keys = parse_keys(
                ctx,
                &format!("{}.ssh_authorized_keys", r.key),
                &r.user.ssh_authorized_keys,
            );
            plan.push((
                r.user.name.clone(),
                keys.into_iter().map(|k| (k, None)).collect(),
            ));
        }
        let db = AccountDb::load(ctx.sys)?;
        let recorded = commands_recorded(ctx.sys);
        let mut failed = Vec::new();
        for (user, keys) in &plan {
            if recorded && db.user(user).is_none() {
                ctx.warn(format!(
                    "keys for {user} not installed: the user does not exist because \
                     commands are recorded, not run (--root)"
                ));
                continue;
            }
            if let Err(e) = install_keys(ctx.sys, &db, user, keys) {
                failed.push(format!("{e:#}"));
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
    use crate::formats::userdata::cloud_config::User;
    use crate::modules::test_env::Env;
    use crate::platform::OsKind;

    const K1: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEW5qwDTLFzoiwFYA6liGjXBToid7HjnK5ioO0CoUEC0 anchor@e2e";
    const K2: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 bob@laptop";

    fn env_with_users(os: OsKind) -> Env {
        let env = Env::new(os);
        let home = "/home";
        env.sys.put(
            "/etc/passwd",
            format!(
                "root:x:0:0:root:/root:/bin/sh\ndebian:x:1000:1000::{home}/debian:/bin/bash\nfreebsd:x:1001:1001::{home}/freebsd:/bin/sh\ndeploy:x:1002:1002::{home}/deploy:/bin/bash\n"
            ),
        );
        env
    }

    #[test]
    fn parse_lines() {
        let k = KeyLine::parse(K1).unwrap();
        assert_eq!(k.kind, "ssh-ed25519");
        assert_eq!(k.comment, "anchor@e2e");
        let o = KeyLine::parse(&format!("{} {K1}", disable_root_prefix("debian"))).unwrap();
        assert_eq!(o.id(), k.id());
        assert!(o.options.unwrap().starts_with("no-port-forwarding"));
        assert!(KeyLine::parse("# comment").is_none());
        assert!(KeyLine::parse("not a key").is_none());
        assert!(KeyLine::parse("ssh-rsa short").is_none());
    }

    #[test]
    fn default_user_and_root_once() {
        let mut env = env_with_users(OsKind::Linux);
        env.seed.cloud_config.ssh_authorized_keys = vec![K1.into()];
        env.seed.meta.public_keys = vec![K2.into(), K1.into()];
        env.run_ok(&SshAuthorizedKeys);
        let p = "/home/debian/.ssh/authorized_keys";
        let keys = env.read(p);
        assert_eq!(keys, format!("{K1}\n{K2}\n"));
        assert_eq!(env.mode(p), 0o600);
        assert_eq!(env.mode("/home/debian/.ssh"), 0o700);
        assert_eq!(env.sys.owner(p), Some((1000, 1000)));
        assert_eq!(env.sys.owner("/home/debian/.ssh"), Some((1000, 1000)));
        let root = env.read("/root/.ssh/authorized_keys");
        assert!(root.starts_with(&disable_root_prefix("debian")), "{root}");
        assert!(root.contains("Please login as the user \\\"debian\\\""));
        assert_eq!(root.lines().count(), 2);
        assert_eq!(env.sys.owner("/root/.ssh/authorized_keys"), Some((0, 0)));

        // idempotent; a key already present with another comment is not added again
        env.sys.put(
            p,
            format!("{K1}\nssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 other-comment\n"),
        );
        env.run_ok(&SshAuthorizedKeys);
        assert_eq!(env.read(p).lines().count(), 2);
        assert_eq!(env.read("/root/.ssh/authorized_keys"), root);
    }

    #[test]
    fn per_user_keys_and_disable_root_false() {
        let mut env = env_with_users(OsKind::FreeBsd);
        env.seed.cloud_config.disable_root = Some(false);
        env.seed.cloud_config.ssh_authorized_keys = vec![K1.into()];
        env.seed.cloud_config.users = Some(vec![
            UserSpec::Default,
            UserSpec::User(Box::new(User {
                name: "deploy".into(),
                ssh_authorized_keys: vec![K2.into(), "garbage".into()],
                ..User::default()
            })),
        ]);
        let w = env.run_ok(&SshAuthorizedKeys);
        assert!(
            w.iter()
                .any(|w| w.contains("users[1].ssh_authorized_keys[1]")),
            "{w:?}"
        );
        assert_eq!(
            env.read("/home/freebsd/.ssh/authorized_keys"),
            format!("{K1}\n")
        );
        assert_eq!(env.read("/root/.ssh/authorized_keys"), format!("{K1}\n"));
        assert_eq!(
            env.read("/home/deploy/.ssh/authorized_keys"),
            format!("{K2}\n")
        );
        assert_eq!(
            env.sys.owner("/home/deploy/.ssh/authorized_keys"),
            Some((1002, 1002))
        );
    }

    #[test]
    fn symlinked_ssh_dir_is_refused() {
        let mut env = env_with_users(OsKind::Linux);
        let root = env.sys.root().to_path_buf();
        std::fs::create_dir_all(root.join("home/debian")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("home/debian/.ssh")).unwrap();
        env.seed.cloud_config.users = Some(vec![UserSpec::Default]);
        env.seed.cloud_config.ssh_authorized_keys = vec![K1.into()];
        env.seed.cloud_config.disable_root = Some(true);
        let e = env.run_err(&SshAuthorizedKeys);
        assert!(
            e.contains("refusing to follow symlink /home/debian/.ssh"),
            "{e}"
        );
        assert!(!root.join("etc/authorized_keys").exists());

        // a symlinked authorized_keys file is refused too
        std::fs::remove_file(root.join("home/debian/.ssh")).unwrap();
        std::fs::create_dir_all(root.join("home/debian/.ssh")).unwrap();
        std::os::unix::fs::symlink("/etc/shadow", root.join("home/debian/.ssh/authorized_keys"))
            .unwrap();
        let e = env.run_err(&SshAuthorizedKeys);
        assert!(
            e.contains("refusing to follow symlink /home/debian/.ssh/authorized_keys"),
            "{e}"
        );
    }

    #[test]
    fn system_symlinks_above_home_are_followed() {
        let mut env = env_with_users(OsKind::FreeBsd);
        let root = env.sys.root().to_path_buf();
        std::fs::create_dir_all(root.join("usr/home")).unwrap();
        std::os::unix::fs::symlink("usr/home", root.join("home")).unwrap();
        env.seed.cloud_config.ssh_authorized_keys = vec![K1.into()];
        env.run_ok(&SshAuthorizedKeys);
        assert_eq!(
            env.read("/usr/home/freebsd/.ssh/authorized_keys"),
            format!("{K1}\n")
        );
        assert_eq!(
            resolve_symlinks(&env.sys, Path::new("/home/freebsd/x")).unwrap(),
            PathBuf::from("/usr/home/freebsd/x")
        );
    }

    #[test]
    fn no_default_user_warns() {
        let mut env = env_with_users(OsKind::Linux);
        env.seed.cloud_config.users = Some(vec![]);
        env.seed.cloud_config.ssh_authorized_keys = vec![K1.into()];
        let w = env.run_ok(&SshAuthorizedKeys);
        assert!(w[0].contains("no default user"), "{w:?}");
    }

    #[test]
    fn unknown_user_is_an_error_on_a_live_system() {
        let env = Env::new(OsKind::Linux);
        let e = install_keys(&env.sys, &AccountDb::default(), "debian", &[]).unwrap_err();
        assert!(e.to_string().contains("user debian does not exist"), "{e}");
        // under a root prefix the user may only have been recorded: a warning
        let mut env = Env::new(OsKind::Linux);
        env.seed.cloud_config.ssh_authorized_keys = vec![K1.into()];
        let w = env.run_ok(&SshAuthorizedKeys);
        assert!(w[0].contains("keys for debian not installed"), "{w:?}");
    }

    #[test]
    fn disable_root_opts_replace_the_refusal_prefix() {
        let mut env = env_with_users(OsKind::Linux);
        env.yaml(&format!(
            "ssh_authorized_keys: ['{K1}']\ndisable_root_opts: 'no-pty,command=\"echo use $USER not $DISABLE_USER\"'\n"
        ));
        env.run_ok(&SshAuthorizedKeys);
        let root = env.read("/root/.ssh/authorized_keys");
        assert!(
            root.starts_with("no-pty,command=\"echo use debian not root\" ssh-ed25519 "),
            "{root}"
        );
    }

    #[test]
    fn every_key_is_one_line_of_a_known_type_with_base64_that_decodes() {
        // A line break inside a meta-data list item must not smuggle in a second line.
        let meta = format!(
            "instance-id: i\npublic-keys:\n  - \"{K2}\\ncommand=\\\"/bin/evil\\\" {K1}\"\n"
        );
        let md = crate::formats::userdata::metadata::MetaData::parse("meta-data", meta.as_bytes())
            .unwrap();
        assert_eq!(md.public_keys.len(), 1, "{:?}", md.public_keys);
        let mut env = env_with_users(OsKind::Linux);
        env.seed.meta = md;
        env.seed.cloud_config.ssh_authorized_keys = vec![
            K1.into(),
            "ssh-foo AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 unknown-type".into(),
            "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAA*BAQC7 bad-base64".into(),
            "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7A not-decodable".into(),
        ];
        let w = env.run_ok(&SshAuthorizedKeys);
        let p = "/home/debian/.ssh/authorized_keys";
        assert_eq!(env.read(p), format!("{K1}\n"));
        assert!(!env.read("/root/.ssh/authorized_keys").contains("evil"));
        for needle in [
            "meta-data public-keys[0]: contains a line break",
            "ssh_authorized_keys[1]: not an SSH public key",
            "ssh_authorized_keys[2]: not an SSH public key",
            "ssh_authorized_keys[3]: not an SSH public key",
        ] {
            assert!(w.iter().any(|w| w.contains(needle)), "{needle}: {w:?}");
        }
    }
}
