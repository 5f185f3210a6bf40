//! Kill points (issue 20): a first-boot run cut at every mutating effect, then the next
//! boot, must end in the same tree as one uninterrupted run.
//!
//! The real modules and seed parser run on the recording fake `System` under a temporary
//! root. Its fault hook lets the first n-1 effects (file writes, mkdir, chmod, chown,
//! removals, commands, sethostname) happen and fails the n-th and every later one: the
//! run is dead from that effect on, as after a SIGKILL or a power cut (a command that ran
//! has fully happened; the next did not start). The hook is then cleared and the agent
//! runs again, as on the next boot. This is done for every n from 1 to the number of
//! effects of a clean run.
//!
//! Account tools are simulated on the guest's own files (`groupadd`, `useradd`,
//! `usermod -a -G`, `passwd -l` edit `/etc/group`, `/etc/passwd`, `/etc/shadow` as the
//! real tools do), so a re-run sees what the interrupted run changed, and the final
//! account files are part of the comparison: a step repeated after a kill must change
//! nothing.

mod common;

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ci_agent::agent::{self, Parts, RunOptions, StageSel};
use ci_agent::formats::userdata::Seed;
use ci_agent::platform::config::{Config, DatasourceKind};
use ci_agent::platform::fake::{Effect, FakeSystem};
use ci_agent::platform::{Cmd, CmdOutput, OsKind};

const K1: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEW5qwDTLFzoiwFYA6liGjXBToid7HjnK5ioO0CoUEC0 anchor@e2e";
const K2: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 bob@laptop";

fn user_data() -> String {
    format!(
        "#cloud-config
hostname: web1
groups: [ops]
users:
  - default
  - name: carol
    groups: [ops]
    sudo: ALL=(ALL) NOPASSWD:ALL
    ssh_authorized_keys: ['{K2}']
ssh_authorized_keys: ['{K1}']
write_files:
  - path: /etc/motd
    content: \"welcome\\n\"
    append: true
  - path: /etc/app/app.conf
    content: secret
    owner: carol:carol
    permissions: '0600'
  - path: /etc/app/late.log
    content: \"late line\\n\"
    append: true
    defer: true
runcmd:
  - echo hi
  - [touch, /var/tmp/ran]
final_message: done
"
    )
}

fn seed() -> Seed {
    Seed {
        source: "dir:/seed".into(),
        files: [
            ("user-data".to_string(), user_data().into_bytes()),
            ("meta-data".to_string(), b"instance-id: iid-kill\n".to_vec()),
        ]
        .into_iter()
        .collect(),
        ..Seed::default()
    }
}

/// Edit a guest account file the way the real tool would (idempotent where the tool is).
fn edit(root: &Path, rel: &str, f: impl FnOnce(&mut Vec<String>)) {
    let p = root.join(rel);
    let mut lines: Vec<String> = std::fs::read_to_string(&p)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect();
    f(&mut lines);
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(p, text).unwrap();
}

/// Add `user` to each of the comma-separated `groups` (once).
fn add_members(root: &Path, groups: &str, user: &str) {
    for g in groups.split(',') {
        edit(root, "etc/group", |lines| {
            for l in lines.iter_mut() {
                if l.split(':').next() == Some(g) {
                    let members: Vec<&str> = l
                        .rsplit(':')
                        .next()
                        .unwrap()
                        .split(',')
                        .filter(|m| !m.is_empty())
                        .collect();
                    if !members.contains(&user) {
                        let sep = if members.is_empty() { "" } else { "," };
                        l.push_str(&format!("{sep}{user}"));
                    }
                }
            }
        });
    }
}

/// `groupadd`, `useradd`, `usermod -a -G`, `passwd -l` acting on the guest's files; a
/// `groupadd` or `useradd` of a name that exists fails, as the real tools do.
fn account_tools(root: PathBuf) -> impl Fn(&Cmd) -> Option<CmdOutput> + Send + 'static {
    move |cmd| {
        let a: Vec<&str> = cmd.argv.iter().map(String::as_str).collect();
        let fail = || {
            Some(CmdOutput {
                code: Some(9),
                stderr: b"already exists\n".to_vec(),
                ..CmdOutput::default()
            })
        };
        let exists = |rel: &str, name: &str| {
            std::fs::read_to_string(root.join(rel))
                .unwrap_or_default()
                .lines()
                .any(|l| l.split(':').next() == Some(name))
        };
        match a.as_slice() {
            ["groupadd", name] => {
                if exists("etc/group", name) {
                    return fail();
                }
                edit(&root, "etc/group", |l| {
                    l.push(format!("{name}:x:{}:", 2000 + l.len()))
                });
            }
            ["useradd", .., name] => {
                if exists("etc/passwd", name) {
                    return fail();
                }
                let uid = 3000
                    + std::fs::read_to_string(root.join("etc/passwd"))
                        .unwrap()
                        .lines()
                        .count();
                edit(&root, "etc/passwd", |l| {
                    l.push(format!("{name}:x:{uid}:{uid}::/home/{name}:/bin/sh"))
                });
                if !exists("etc/group", name) {
                    edit(&root, "etc/group", |l| l.push(format!("{name}:x:{uid}:")));
                }
                edit(&root, "etc/shadow", |l| {
                    l.push(format!("{name}:!:19000::::::"))
                });
                std::fs::create_dir_all(root.join(format!("home/{name}"))).unwrap();
                if let Some(i) = a.iter().position(|w| *w == "-G") {
                    add_members(&root, a[i + 1], name);
                }
            }
            ["usermod", "-a", "-G", groups, user] => add_members(&root, groups, user),
            ["passwd", "-l", user] => edit(&root, "etc/shadow", |lines| {
                for l in lines.iter_mut() {
                    let mut f: Vec<String> = l.split(':').map(str::to_owned).collect();
                    if f[0] == *user && !f[1].starts_with('!') {
                        f[1] = format!("!{}", f[1]);
                        *l = f.join(":");
                    }
                }
            }),
            _ => return None,
        }
        Some(CmdOutput {
            code: Some(0),
            ..CmdOutput::default()
        })
    }
}

/// Every path: mode, contents, recorded owner.
type State = BTreeMap<PathBuf, (u32, Vec<u8>, Option<(u32, u32)>)>;

struct Guest {
    dir: tempfile::TempDir,
    sys: FakeSystem,
}

impl Guest {
    fn new() -> Guest {
        let dir = tempfile::tempdir().unwrap();
        let sys = FakeSystem::new(dir.path());
        sys.put(
            "/etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\ndebian:x:1000:1000::/home/debian:/bin/bash\n",
        );
        sys.put(
            "/etc/group",
            "root:x:0:\nadm:x:4:debian\nsudo:x:27:debian\ndebian:x:1000:\n",
        );
        sys.put(
            "/etc/shadow",
            "root:*:19000::::::\ndebian:$6$x$y:19000::::::\n",
        );
        sys.put("/etc/motd", "hello\n");
        sys.put("/etc/hostname", "template\n");
        sys.put(
            "/etc/sudoers",
            "root ALL=(ALL) ALL\n@includedir /etc/sudoers.d\n",
        );
        sys.put("/firstboot", "");
        std::fs::create_dir_all(dir.path().join("home/debian")).unwrap();
        std::fs::create_dir_all(dir.path().join("root")).unwrap();
        sys.on_command_fn(account_tools(dir.path().to_path_buf()));
        Guest { dir, sys }
    }

    fn run(&self) -> u8 {
        let mut cfg = Config::defaults(OsKind::Linux);
        cfg.datasources = vec![DatasourceKind::Nocloud];
        cfg.seed_wait_secs = 0;
        let mut parts = Parts::real();
        let s = seed();
        parts.find_seed = Box::new(move |_, _, _| Ok(Some(s.clone())));
        let opts = RunOptions {
            stage: StageSel::All,
            ..RunOptions::default()
        };
        let r = agent::run(&self.sys, &cfg, &opts, &parts);
        if r.exit != 0 {
            eprintln!(
                "{:#?}",
                r.status
                    .modules
                    .iter()
                    .filter(|m| m.error.is_some())
                    .collect::<Vec<_>>()
            );
        }
        r.exit
    }

    /// The tree with recorded owners; the run's own records normalised: `status.json`
    /// (timings), the random machine-id (the fake's random bytes depend on how many were
    /// drawn before).
    fn state(&self) -> State {
        common::snapshot(self.dir.path())
            .into_iter()
            // status.json has timings; /run is a tmpfs, empty after a reboot.
            .filter(|(p, _)| !p.ends_with("status.json") && !p.starts_with("run"))
            .map(|(p, (mode, data))| {
                let data = if p == Path::new("etc/machine-id") {
                    format!("{} bytes", data.len()).into_bytes()
                } else {
                    data
                };
                let owner = self.sys.owner(Path::new("/").join(&p));
                (p, (mode, data, owner))
            })
            .collect()
    }
}

#[test]
fn a_run_cut_at_any_effect_converges_on_the_next_boot() {
    let clean = Guest::new();
    let effects = Arc::new(Mutex::new(0usize));
    let e = effects.clone();
    clean.sys.set_fault(move |_| {
        *e.lock().unwrap() += 1;
        Ok(())
    });
    assert_eq!(clean.run(), 0);
    clean.sys.clear_fault();
    let total = *effects.lock().unwrap();
    let want = clean.state();
    assert_eq!(
        String::from_utf8_lossy(&want[Path::new("etc/motd")].1),
        "hello\nwelcome\n"
    );
    assert!(total > 40, "{total} effects");
    // A second boot of the clean guest changes nothing.
    assert_eq!(clean.run(), 0);
    let again = clean.state();
    let changed: Vec<_> = want
        .keys()
        .filter(|p| again.get(*p) != want.get(*p))
        .collect();
    assert!(
        changed.is_empty() && again.len() == want.len(),
        "second boot changed {changed:?}"
    );

    let mut converged = 0;
    for n in 1..=total {
        let g = Guest::new();
        let count = Arc::new(Mutex::new(0usize));
        let cut_at = Arc::new(Mutex::new(None));
        let (c, at) = (count.clone(), cut_at.clone());
        g.sys.set_fault(move |e: &Effect| {
            let mut c = c.lock().unwrap();
            *c += 1;
            if *c >= n {
                at.lock().unwrap().get_or_insert_with(|| format!("{e:?}"));
                Err(io::Error::other("killed"))
            } else {
                Ok(())
            }
        });
        let _ = g.run();
        g.sys.clear_fault();
        let at = cut_at.lock().unwrap().clone().unwrap_or_default();
        assert_eq!(g.run(), 0, "cut at effect {n} ({at}): the next boot failed");
        let got = g.state();
        for (p, v) in &want {
            match got.get(p) {
                None => panic!("cut at effect {n} ({at}): {} missing", p.display()),
                Some(gv) => assert_eq!(
                    gv,
                    v,
                    "cut at effect {n} ({at}): {} differs:\n{}\nvs clean\n{}",
                    p.display(),
                    String::from_utf8_lossy(&gv.1),
                    String::from_utf8_lossy(&v.1)
                ),
            }
        }
        let extra: Vec<_> = got.keys().filter(|p| !want.contains_key(*p)).collect();
        assert!(
            extra.is_empty(),
            "cut at effect {n} ({at}): extra {extra:?}"
        );
        converged += 1;
    }
    eprintln!("kill points: {total}, converged: {converged}");
    assert_eq!(converged, total);
}
