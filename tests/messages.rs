//! What a person sees: the messages of both binaries for everyday mistakes (issue 20).
//! Each test runs the real binary under a temporary `--root`, with the seed beside it.
//!
//! - seed warnings on stderr and in the log, with `file:line:column` and a suggestion for
//!   a typo'd key;
//! - a seed without meta-data (instance-id `nocloud`) is warned about;
//! - `ci-agent run` by a user other than root, without `--root`: one line;
//! - a closed standard output ends every command of both binaries quietly;
//! - YAML budget errors in words;
//! - `final_message` at info level;
//! - control characters quoted from a seed are escaped on the console and in the log.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const AGENT: &str = env!("CARGO_BIN_EXE_ci-agent");
const SEED: &str = env!("CARGO_BIN_EXE_ci-seed");
const LOG: &str = "var/log/ci-agent.log";

struct Root {
    dir: tempfile::TempDir,
}

impl Root {
    fn new() -> Self {
        let r = Root {
            dir: tempfile::tempdir().unwrap(),
        };
        r.put(
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\ndebian:x:1000:1000::/home/debian:/bin/bash\n",
        );
        r.put("etc/group", "root:x:0:\nsudo:x:27:debian\nadm:x:4:debian\n");
        r.put("etc/hostname", "template\n");
        r
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
    fn put(&self, rel: &str, data: &str) {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }
    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path().join(rel)).unwrap_or_default()
    }
    /// A seed directory outside the guest tree; `meta` None: no meta-data file.
    fn seed(&self, user_data: &str, meta: Option<&str>) -> PathBuf {
        let d = self.path().join("seed-dir");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("user-data"), user_data).unwrap();
        match meta {
            Some(m) => std::fs::write(d.join("meta-data"), m).unwrap(),
            None => {
                let _ = std::fs::remove_file(d.join("meta-data"));
            }
        }
        d
    }
    fn run(&self, seed: &Path) -> Output {
        Command::new(AGENT)
            .args(["run", "--once", "--root"])
            .arg(self.path())
            .arg("--seed")
            .arg(seed)
            .env_remove("JOURNAL_STREAM")
            .output()
            .unwrap()
    }
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn seed_warnings_reach_the_console_and_the_log_with_a_suggestion() {
    let r = Root::new();
    let seed = r.seed(
        "#cloud-config\nhostname: web1\nssh_authorised_keys: [x]\nusers:\n  - name: bob\n    gropus: [adm]\n",
        Some("instance-id: i-1\n"),
    );
    let o = r.run(&seed);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let err = stderr(&o);
    let log = r.read(LOG);
    for needle in [
        "user-data:3:1: 'ssh_authorised_keys' is not supported by ci-agent (ignored); did you mean ssh_authorized_keys?",
        "user-data:6:5: 'users[0].gropus' is not supported by ci-agent (ignored); did you mean users[0].groups?",
    ] {
        assert!(err.contains(&format!("warning: {needle}")), "{needle}\n{}", text(&o));
        assert!(log.contains(needle), "{needle}\n{log}");
    }
    // No suggestion where nothing is close.
    let seed = r.seed("#cloud-config\nlandscape: {}\n", Some("instance-id: i-2\n"));
    let o = r.run(&seed);
    assert!(
        stderr(&o).contains("'landscape' is not supported by ci-agent (ignored)\n"),
        "{}",
        text(&o)
    );
    // user-data that is not cloud-config says how to make it one.
    let seed = r.seed("hostname: web1\n", Some("instance-id: i-3\n"));
    let o = r.run(&seed);
    assert!(
        stderr(&o).contains("must start with a #cloud-config line"),
        "{}",
        text(&o)
    );
}

#[test]
fn a_seed_without_meta_data_is_warned_about() {
    let r = Root::new();
    let seed = r.seed("#cloud-config\nhostname: web1\n", None);
    let o = r.run(&seed);
    let err = stderr(&o);
    assert!(
        err.contains("warning: meta-data is missing, so the instance-id is 'nocloud'")
            && err.contains("every clone from such a seed is the same instance"),
        "{}",
        text(&o)
    );
    let seed = r.seed(
        "#cloud-config\nhostname: web1\n",
        Some("local-hostname: x\n"),
    );
    let o = r.run(&seed);
    assert!(
        stderr(&o).contains("meta-data has no instance-id"),
        "{}",
        text(&o)
    );
    let seed = r.seed(
        "#cloud-config\nhostname: web1\n",
        Some("instance-id: i-9\n"),
    );
    let o = r.run(&seed);
    assert!(!stderr(&o).contains("nocloud"), "{}", text(&o));
}

#[test]
fn run_without_root_says_so_in_one_line() {
    let mut cmd = if nix::unistd::geteuid().is_root() {
        if Command::new("setpriv").arg("--version").output().is_err() {
            eprintln!("skipped: running as root and setpriv (util-linux) is missing");
            return;
        }
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", AGENT]);
        c
    } else {
        Command::new(AGENT)
    };
    let o = cmd
        .args(["run", "--once"])
        .current_dir("/")
        .env_remove("JOURNAL_STREAM")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{}", text(&o));
    assert!(
        err.contains("needs root") && err.contains("--root DIR"),
        "{err}"
    );
}

/// Run a command with a standard output whose reader is already gone.
fn with_closed_stdout(cmd: &mut Command) -> Output {
    let (read, write): (OwnedFd, OwnedFd) = nix::unistd::pipe().unwrap();
    drop(read);
    cmd.stdout(Stdio::from(write))
        .stderr(Stdio::piped())
        .stdin(Stdio::null())
        .env_remove("JOURNAL_STREAM")
        .output()
        .unwrap()
}

#[test]
fn a_closed_stdout_ends_every_command_quietly() {
    let r = Root::new();
    let seed = r.seed(
        "#cloud-config\nhostname: web1\nruncmd: [echo hi]\n",
        Some("instance-id: i-1\n"),
    );
    let root = r.path().to_str().unwrap().to_owned();
    let seed_s = seed.to_str().unwrap().to_owned();
    let img = r.path().join("seed.iso");
    let img_s = img.to_str().unwrap().to_owned();
    let ud = seed.join("user-data");
    let ud_s = ud.to_str().unwrap().to_owned();
    // The agent's own run first, so that status has something to print.
    let o = r.run(&seed);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let agent: Vec<Vec<&str>> = vec![
        vec!["--help"],
        vec!["--version"],
        vec!["run", "--help"],
        vec![
            "run",
            "--once",
            "--dry-run",
            "--root",
            &root,
            "--seed",
            &seed_s,
        ],
        vec!["status", "--root", &root],
        vec!["status", "--json", "--root", &root],
        vec!["status", "--help"],
        vec!["query", "--seed", &seed_s, "--root", &root],
        vec!["query", "--help"],
        vec!["seal", "--dry-run", "--root", &root],
        vec!["seal", "--help"],
    ];
    let seed_tool: Vec<Vec<&str>> = vec![
        vec!["--help"],
        vec!["--version"],
        vec![&img_s, &ud_s],
        vec!["-", &ud_s],
        vec!["validate", &ud_s],
        vec!["validate", "--help"],
        vec!["batch", "--help"],
        vec!["serve", "--help"],
    ];
    for (bin, list) in [(AGENT, agent), (SEED, seed_tool)] {
        for args in list {
            let o = with_closed_stdout(Command::new(bin).args(&args));
            let err = stderr(&o);
            assert!(
                !err.contains("panicked") && !err.contains("Broken pipe"),
                "{bin} {args:?}: {}",
                text(&o)
            );
            // Quiet: either it wrote nothing to stdout and ended as usual, or it ended
            // at the closed pipe with 141, without a word.
            let code = o.status.code();
            assert!(
                code.is_some() && code != Some(134) && code != Some(101),
                "{bin} {args:?}: {}",
                text(&o)
            );
        }
    }
}

#[test]
fn budget_errors_are_in_words() {
    let r = Root::new();
    let mut ud = String::from("#cloud-config\n");
    for i in 0..70 {
        ud.push_str(&format!("{}k{i}:\n", "  ".repeat(i)));
    }
    let seed = r.seed(&ud, Some("instance-id: i-1\n"));
    let o = Command::new(AGENT)
        .args(["query", "--seed"])
        .arg(&seed)
        .arg("--root")
        .arg(r.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = stderr(&o);
    assert!(err.contains("nesting deeper than 64 levels"), "{err}");
    assert!(
        !err.contains("Depth {") && !err.contains("breached"),
        "{err}"
    );
}

#[test]
fn final_message_is_news_not_a_warning() {
    let r = Root::new();
    let seed = r.seed(
        "#cloud-config\nfinal_message: all done here\n",
        Some("instance-id: i-1\n"),
    );
    let o = r.run(&seed);
    let err = stderr(&o);
    assert!(err.contains("ci-agent: all done here\n"), "{}", text(&o));
    assert!(!err.contains("warning: all done here"), "{}", text(&o));
    assert!(
        r.read(LOG).contains(" info all done here\n"),
        "{}",
        r.read(LOG)
    );
}

#[test]
fn control_characters_from_the_seed_are_escaped() {
    let r = Root::new();
    // ESC (clear screen), BEL, CR: a forged "finished: done" line.
    let seed = r.seed(
        "#cloud-config\nfinal_message: \"x\\e[2J\\a\\rci-agent: all pass finished: done\"\n\"bad\\ekey\": 1\n",
        Some("instance-id: i-1\n"),
    );
    let o = r.run(&seed);
    let log = r.read(LOG);
    for (what, out) in [("stderr", stderr(&o)), ("log", log)] {
        for c in ['\x1b', '\x07', '\r'] {
            assert!(!out.contains(c), "{what} has {c:?} raw:\n{out}");
        }
        assert!(out.contains("x\\x1b[2J\\x07\\rci-agent"), "{what}:\n{out}");
        assert!(
            out.contains("'bad\\x1bkey' is not supported"),
            "{what}:\n{out}"
        );
    }
    // The same through query's error path (a SeedError quoting a key).
    let seed = r.seed(
        "#cloud-config\nusers: \"\\e]0;pwned\\a\"\n",
        Some("instance-id: i-1\n"),
    );
    let o = Command::new(AGENT)
        .args(["query", "--seed"])
        .arg(&seed)
        .output()
        .unwrap();
    assert!(!stderr(&o).contains('\x1b'), "{}", text(&o));
}
