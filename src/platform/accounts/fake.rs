//! A stand-in for shadow-utils and `pw(8)` behind the recording fake, so tests exercise the
//! real flow of the account modules (create, then look the new uid up in `/etc/passwd`).
//!
//! [`install`] answers `useradd`, `groupadd`, `usermod -a -G`, `pw useradd`, `pw groupadd`
//! and `pw groupmod -m` by editing `etc/passwd` and `etc/group` under the fake's root, the
//! way the real tools would (including their failure on an existing name). Everything
//! else falls through to the fake's other rules. Used by unit tests and `tests/modules.rs`.

use std::fs;
use std::path::{Path, PathBuf};

use crate::platform::fake::FakeSystem;
use crate::platform::{Cmd, CmdOutput, System};

/// Make `fake` behave like a system with working account tools.
pub fn install(fake: &FakeSystem) {
    let root = fake.root().to_path_buf();
    fake.on_command_fn(move |cmd| simulate(&root, cmd));
}

fn out(code: i32, err: &str) -> Option<CmdOutput> {
    Some(CmdOutput {
        code: Some(code),
        stderr: err.as_bytes().to_vec(),
        ..CmdOutput::default()
    })
}

struct Files {
    passwd: PathBuf,
    group: PathBuf,
}

impl Files {
    fn read(p: &Path) -> Vec<String> {
        fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }
    fn write(p: &Path, lines: &[String]) {
        if let Some(d) = p.parent() {
            let _ = fs::create_dir_all(d);
        }
        let mut s = lines.join("\n");
        s.push('\n');
        let _ = fs::write(p, s);
    }
    fn field(line: &str, i: usize) -> Option<&str> {
        line.split(':').nth(i)
    }
    fn has(lines: &[String], name: &str) -> bool {
        lines.iter().any(|l| Self::field(l, 0) == Some(name))
    }
    fn gid_of(lines: &[String], name: &str) -> Option<u32> {
        lines
            .iter()
            .find(|l| Self::field(l, 0) == Some(name))
            .and_then(|l| Self::field(l, 2)?.parse().ok())
    }
    fn next_id(lines: &[String]) -> u32 {
        lines
            .iter()
            .filter_map(|l| Self::field(l, 2)?.parse::<u32>().ok())
            .filter(|n| (1000..60000).contains(n))
            .max()
            .map_or(1000, |n| n + 1)
    }
    fn add_member(lines: &mut [String], group: &str, user: &str) -> bool {
        for l in lines.iter_mut() {
            if Self::field(l, 0) == Some(group) {
                let mut f: Vec<String> = l.split(':').map(String::from).collect();
                while f.len() < 4 {
                    f.push(String::new());
                }
                let mut members: Vec<String> = f[3]
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect();
                if !members.iter().any(|m| m == user) {
                    members.push(user.into());
                }
                f[3] = members.join(",");
                *l = f.join(":");
                return true;
            }
        }
        false
    }
}

fn simulate(root: &Path, cmd: &Cmd) -> Option<CmdOutput> {
    let files = Files {
        passwd: root.join("etc/passwd"),
        group: root.join("etc/group"),
    };
    let a: Vec<&str> = cmd.argv.iter().map(String::as_str).collect();
    match a.as_slice() {
        ["useradd", rest @ ..] => {
            let (name, opts) = rest.split_last()?;
            useradd(root, &files, name, opts, false)
        }
        ["pw", "useradd", "-n", name, opts @ ..] => useradd(root, &files, name, opts, true),
        ["groupadd", name] | ["pw", "groupadd", name] => {
            let mut g = Files::read(&files.group);
            if Files::has(&g, name) {
                return out(9, "group already exists");
            }
            let gid = Files::next_id(&g).max(Files::next_id(&Files::read(&files.passwd)));
            g.push(format!("{name}:x:{gid}:"));
            Files::write(&files.group, &g);
            out(0, "")
        }
        ["usermod", "-a", "-G", group, user] | ["pw", "groupmod", group, "-m", user] => {
            let mut g = Files::read(&files.group);
            if !Files::add_member(&mut g, group, user) {
                return out(6, "group does not exist");
            }
            Files::write(&files.group, &g);
            out(0, "")
        }
        _ => None,
    }
}

fn useradd(root: &Path, files: &Files, name: &str, opts: &[&str], pw: bool) -> Option<CmdOutput> {
    let mut p = Files::read(&files.passwd);
    let mut g = Files::read(&files.group);
    if Files::has(&p, name) {
        return out(9, "user already exists");
    }
    let mut gecos = "";
    let mut home = format!("/home/{name}");
    let mut shell = if pw { "/bin/sh" } else { "/bin/bash" };
    let mut primary: Option<&str> = None;
    let mut groups: Vec<&str> = Vec::new();
    let mut uid: Option<u32> = None;
    let mut create_home = false;
    let mut i = 0;
    while i < opts.len() {
        let val = opts.get(i + 1).copied().unwrap_or("");
        match opts[i] {
            "-c" => gecos = val,
            "-d" => home = val.to_string(),
            "-g" => primary = Some(val),
            "-G" => groups = val.split(',').collect(),
            "-s" => shell = val,
            "-u" => uid = val.parse().ok(),
            "-p" | "-h" | "-H" => {}
            "-m" => {
                create_home = true;
                i += 1;
                continue;
            }
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    let uid = uid.unwrap_or_else(|| Files::next_id(&p).max(Files::next_id(&g)));
    let gid = match primary {
        Some(gname) => match gname.parse::<u32>().ok().or(Files::gid_of(&g, gname)) {
            Some(n) => n,
            None => return out(6, "primary group does not exist"),
        },
        None => {
            g.push(format!("{name}:x:{uid}:"));
            uid
        }
    };
    for grp in &groups {
        if !Files::add_member(&mut g, grp, name) {
            return out(6, "supplementary group does not exist");
        }
    }
    p.push(format!("{name}:x:{uid}:{gid}:{gecos}:{home}:{shell}"));
    Files::write(&files.passwd, &p);
    Files::write(&files.group, &g);
    if create_home {
        let _ = fs::create_dir_all(root.join(home.trim_start_matches('/')));
    }
    out(0, "")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::accounts::AccountDb;

    #[test]
    fn useradd_and_groups() {
        let d = tempfile::tempdir().unwrap();
        let f = FakeSystem::new(d.path());
        f.put("/etc/passwd", "root:x:0:0:root:/root:/bin/sh\n");
        f.put("/etc/group", "root:x:0:\nsudo:x:27:\n");
        install(&f);
        let r = |argv: &[&str]| f.run(&Cmd::new(argv.iter().copied())).unwrap().code;
        assert_eq!(
            r(&["useradd", "-G", "sudo", "--user-group", "-m", "bob"]),
            Some(0)
        );
        assert_eq!(r(&["useradd", "-m", "bob"]), Some(9));
        assert_eq!(r(&["pw", "groupadd", "ops"]), Some(0));
        assert_eq!(r(&["pw", "groupmod", "ops", "-m", "bob"]), Some(0));
        assert_eq!(r(&["usermod", "-a", "-G", "nope", "bob"]), Some(6));
        let db = AccountDb::load(&f).unwrap();
        let bob = db.user("bob").unwrap();
        assert_eq!(
            (bob.uid, bob.gid, bob.home.as_str()),
            (1000, 1000, "/home/bob")
        );
        assert!(db.is_member("bob", "sudo") && db.is_member("bob", "ops"));
        assert!(d.path().join("home/bob").is_dir());
    }
}
