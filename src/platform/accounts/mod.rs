//! Users and groups as the guest sees them: `/etc/passwd` and `/etc/group` read through
//! `System` under the root prefix (never libc/getent, so `--root DIR` and the test fake
//! see the guest's accounts, not the host's). Also the name checks every module that
//! takes a user or group name from a seed applies. [`fake`] gives the test fake working
//! account tools (`useradd`, `pw`, … that edit those files).

pub mod fake;

use std::path::Path;

use anyhow::{bail, Context as _};

use crate::platform::policy::shorten;
use crate::platform::System;

/// Largest passwd/group file read.
const MAX_DB_BYTES: u64 = 16 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub gecos: String,
    pub home: String,
    pub shell: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

/// A snapshot of the account databases.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountDb {
    pub users: Vec<PasswdEntry>,
    pub groups: Vec<GroupEntry>,
}

impl AccountDb {
    /// Read `/etc/passwd` and `/etc/group` (a missing file is empty; lines that do not
    /// parse — comments, NIS `+` entries — are skipped).
    pub fn load(sys: &dyn System) -> anyhow::Result<Self> {
        let passwd = read_opt(sys, Path::new("/etc/passwd"))?;
        let group = read_opt(sys, Path::new("/etc/group"))?;
        Ok(AccountDb {
            users: passwd.lines().filter_map(parse_passwd_line).collect(),
            groups: group.lines().filter_map(parse_group_line).collect(),
        })
    }

    pub fn user(&self, name: &str) -> Option<&PasswdEntry> {
        self.users.iter().find(|u| u.name == name)
    }

    pub fn group(&self, name: &str) -> Option<&GroupEntry> {
        self.groups.iter().find(|g| g.name == name)
    }

    /// True when `user` is in `group`, as a listed member or by primary gid.
    pub fn is_member(&self, user: &str, group: &str) -> bool {
        let Some(g) = self.group(group) else {
            return false;
        };
        g.members.iter().any(|m| m == user) || self.user(user).is_some_and(|u| u.gid == g.gid)
    }

    /// `user[:group]` (names or numbers) to numeric ids; `user` alone takes the user's
    /// primary group; `root` is 0 even where no user or group has that name (FreeBSD's
    /// gid 0 is `wheel`). Errors name what is unknown.
    pub fn resolve_owner(&self, spec: &str) -> anyhow::Result<(u32, u32)> {
        let (u, g) = match spec.split_once(':') {
            Some((u, g)) => (u.trim(), Some(g.trim())),
            None => (spec.trim(), None),
        };
        let (uid, primary) = if let Ok(n) = u.parse::<u32>() {
            (n, self.users.iter().find(|e| e.uid == n).map(|e| e.gid))
        } else {
            let e = self.user(u).with_context(|| {
                format!("unknown user {:?} in owner {:?}", shorten(u), shorten(spec))
            })?;
            (e.uid, Some(e.gid))
        };
        let gid = match g {
            None | Some("") => match primary {
                Some(g) => g,
                None => bail!(
                    "owner {:?}: uid {uid} has no passwd entry to take a group from",
                    shorten(spec)
                ),
            },
            Some(g) => match g.parse::<u32>() {
                Ok(n) => n,
                // FreeBSD has no group named root (gid 0 is wheel), yet seeds say
                // `root:root` everywhere: take it as gid 0.
                Err(_) if g == "root" && self.group("root").is_none() => 0,
                Err(_) => {
                    self.group(g)
                        .with_context(|| {
                            format!(
                                "unknown group {:?} in owner {:?}",
                                shorten(g),
                                shorten(spec)
                            )
                        })?
                        .gid
                }
            },
        };
        Ok((uid, gid))
    }
}

fn read_opt(sys: &dyn System, path: &Path) -> anyhow::Result<String> {
    match sys.read_file(path, MAX_DB_BYTES) {
        Ok(b) => Ok(String::from_utf8_lossy(&b).into_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn parse_passwd_line(line: &str) -> Option<PasswdEntry> {
    let f: Vec<&str> = line.splitn(8, ':').collect();
    if f.len() < 7 || f[0].is_empty() || f[0].starts_with('#') {
        return None;
    }
    Some(PasswdEntry {
        name: f[0].into(),
        uid: f[2].parse().ok()?,
        gid: f[3].parse().ok()?,
        gecos: f[4].into(),
        home: f[5].into(),
        shell: f[6].into(),
    })
}

fn parse_group_line(line: &str) -> Option<GroupEntry> {
    let f: Vec<&str> = line.splitn(5, ':').collect();
    if f.len() < 3 || f[0].is_empty() || f[0].starts_with('#') {
        return None;
    }
    Some(GroupEntry {
        name: f[0].into(),
        gid: f[2].parse().ok()?,
        members: f
            .get(3)
            .map(|m| {
                m.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default(),
    })
}

/// True when commands are recorded instead of run: the `System` contract is that any root
/// other than `/` (`--root DIR`, the test fake) records commands, so an account "created"
/// there never appears in `/etc/passwd` unless a test simulates the tools.
pub fn commands_recorded(sys: &dyn System) -> bool {
    sys.root() != Path::new("/")
}

/// What to do when a user is not in `/etc/passwd` after `useradd` reported success: a
/// warning when the command was only recorded, an error on a live system.
pub fn missing_after_create(key: &str, user: &str, recorded: bool) -> anyhow::Result<String> {
    if recorded {
        Ok(format!(
            "{key}: user {user} was not created because commands are recorded, not run \
             (--root); steps that need its uid are skipped"
        ))
    } else {
        bail!("{key}: user {user} is not in /etc/passwd after it was created")
    }
}

/// A user or group name as shadow-utils and pw accept it: `^[a-z_][a-z0-9_-]*[$]?$`, at
/// most 32 characters. `key` names where it came from (`users[2].name`).
pub fn check_account_name(name: &str, key: &str) -> anyhow::Result<()> {
    let b = name.as_bytes();
    let body_ok = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-';
    let ok = !b.is_empty()
        && b.len() <= 32
        && (b[0].is_ascii_lowercase() || b[0] == b'_')
        && match b.split_last() {
            Some((b'$', rest)) => rest.iter().skip(1).all(body_ok),
            _ => b.iter().skip(1).all(body_ok),
        };
    if !ok {
        bail!(
            "{key}: invalid name {:?} (expected lowercase letters, digits, '_' or '-', \
             starting with a letter or '_', at most 32 characters)",
            shorten(name)
        );
    }
    Ok(())
}

/// A field that ends up in a colon-separated database line (gecos, home, shell, hash).
pub fn check_field(value: &str, key: &str) -> anyhow::Result<()> {
    if value.contains([':', '\n', '\r', '\0']) {
        bail!("{key}: value must not contain ':' or control line breaks");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::fake::FakeSystem;

    #[test]
    fn parses_databases_and_resolves_owners() {
        let d = tempfile::tempdir().unwrap();
        let f = FakeSystem::new(d.path());
        f.put(
            "/etc/passwd",
            "root:x:0:0:root:/root:/bin/bash\n# comment\n+nis\nbob:x:1000:1000:Bob,,,:/home/bob:/bin/sh\nbad:x:notanumber:1::/:/bin/sh\n",
        );
        f.put(
            "/etc/group",
            "root:x:0:\nbob:x:1000:\nsudo:x:27:alice, bob\nwww:x:33\n",
        );
        let db = AccountDb::load(&f).unwrap();
        assert_eq!(db.users.len(), 2);
        assert_eq!(db.user("bob").unwrap().home, "/home/bob");
        assert_eq!(db.group("sudo").unwrap().members, ["alice", "bob"]);
        assert!(db.group("www").unwrap().members.is_empty());
        assert!(db.is_member("bob", "sudo") && db.is_member("bob", "bob"));
        assert!(!db.is_member("bob", "www"));
        assert_eq!(db.resolve_owner("bob").unwrap(), (1000, 1000));
        assert_eq!(db.resolve_owner("bob:sudo").unwrap(), (1000, 27));
        assert_eq!(db.resolve_owner("root:root").unwrap(), (0, 0));
        assert_eq!(db.resolve_owner("1000:33").unwrap(), (1000, 33));
        let mut bsd = db.clone();
        bsd.groups.retain(|g| g.name != "root");
        assert_eq!(bsd.resolve_owner("root:root").unwrap(), (0, 0));
        let e = db.resolve_owner("nobody:sudo").unwrap_err().to_string();
        assert!(e.contains("unknown user \"nobody\""), "{e}");
        let e = db.resolve_owner("bob:nogroup").unwrap_err().to_string();
        assert!(e.contains("unknown group"), "{e}");
    }

    #[test]
    fn missing_files_are_empty() {
        let d = tempfile::tempdir().unwrap();
        let f = FakeSystem::new(d.path());
        assert_eq!(AccountDb::load(&f).unwrap(), AccountDb::default());
    }

    #[test]
    fn missing_user_after_create() {
        let e = missing_after_create("users[1]", "deploy", false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "users[1]: user deploy is not in /etc/passwd after it was created"
        );
        let w = missing_after_create("users[1]", "deploy", true).unwrap();
        assert!(w.contains("recorded, not run"), "{w}");
    }

    #[test]
    fn account_names() {
        for ok in ["bob", "_svc", "a-b_c1", "machine$", "a"] {
            check_account_name(ok, "users[0].name").unwrap();
        }
        for bad in [
            "",
            "../x",
            "root;rm",
            "Bob",
            "1abc",
            "-x",
            "a b",
            "a$b",
            &"a".repeat(33),
        ] {
            let e = check_account_name(bad, "users[1].name")
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("users[1].name: invalid name"), "{e}");
        }
        assert!(check_field("a:b", "users[0].gecos").is_err());
        assert!(check_field("Bob Smith", "users[0].gecos").is_ok());
    }
}
