//! The `cloud-init` personality (the binary invoked through a link named `cloud-init`)
//! against cloud-init's documented outputs: `status` words, fields and exit codes,
//! `query`, `clean`, `schema`, `--version`, other subcommands; and the files tools poll
//! (`/run/cloud-init/result.json`, `status.json`, `/var/lib/cloud/instance/boot-finished`)
//! written by a real `ci-agent run` with `cloud_init_compat`, and removed by `seal`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const UD: &str = "#cloud-config\nhostname: ci-host\nfoo: bar\n";
const MD: &str = "instance-id: iid-ci\nlocal-hostname: ci-meta\npublic-keys:\n  - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA k@h\n";

struct Env {
    _d: tempfile::TempDir,
    root: PathBuf,
    seed: PathBuf,
    link: PathBuf,
}

fn env(compat: bool) -> Env {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("root");
    let seed = d.path().join("seed");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::create_dir_all(&seed).unwrap();
    std::fs::write(seed.join("user-data"), UD).unwrap();
    std::fs::write(seed.join("meta-data"), MD).unwrap();
    if compat {
        std::fs::write(root.join("etc/ci-agent.conf"), "cloud_init_compat: true\n").unwrap();
    }
    let link = d.path().join("bin/cloud-init");
    std::fs::create_dir_all(link.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_ci-agent"), &link).unwrap();
    Env {
        _d: d,
        root,
        seed,
        link,
    }
}

impl Env {
    fn agent(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_ci-agent"))
            .args(args)
            .args(["--root".as_ref(), self.root.as_os_str()])
            .args(["--os", "linux"])
            .env_remove("JOURNAL_STREAM")
            .output()
            .unwrap()
    }

    fn run(&self, stage: &str) -> Output {
        let seed = self.seed.to_str().unwrap().to_string();
        self.agent(&["run", "--stage", stage, "--seed", &seed])
    }

    fn ci(&self, args: &[&str]) -> Output {
        Command::new(&self.link)
            .args(args)
            .args(["--root".as_ref(), self.root.as_os_str()])
            .args(["--os", "linux"])
            .output()
            .unwrap()
    }

    fn path(&self, guest: &str) -> PathBuf {
        self.root.join(guest.trim_start_matches('/'))
    }
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .unwrap()
}

#[test]
fn status_through_the_link() {
    let e = env(false);
    let o = e.ci(&["status"]);
    assert_eq!(
        (o.status.code(), out(&o).as_str()),
        (Some(0), "status: not started\n")
    );

    let r = e.run("early");
    assert_eq!(r.status.code(), Some(0), "{}", err(&r));
    let o = e.ci(&["status"]);
    assert_eq!(out(&o), "status: running\n");

    let r = e.run("late");
    assert_eq!(r.status.code(), Some(0), "{}", err(&r));
    // The unknown key `foo` is a warning: done, degraded, exit 2 (cloud-init >= 23.4).
    let o = e.ci(&["status"]);
    assert_eq!(
        (o.status.code(), out(&o).as_str()),
        (Some(2), "status: done\n")
    );
    let o = e.ci(&["status", "--wait"]);
    assert_eq!(
        (o.status.code(), out(&o).as_str()),
        (Some(2), "status: done\n")
    );
    let o = e.ci(&["-d", "status", "--long"]);
    let text = out(&o);
    assert!(
        text.starts_with("status: done\nextended_status: degraded done\nboot_status_code: "),
        "{text}"
    );
    assert!(text.contains("\nlast_update: "), "{text}");
    assert!(
        text.contains("\nrecoverable_errors:\nWARNING:\n\t- "),
        "{text}"
    );

    let o = e.ci(&["status", "--format", "json"]);
    assert_eq!(o.status.code(), Some(2));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    for k in [
        "boot_status_code",
        "datasource",
        "detail",
        "errors",
        "extended_status",
        "init",
        "init-local",
        "last_update",
        "modules-config",
        "modules-final",
        "recoverable_errors",
        "stage",
        "status",
        "_schema_version",
    ] {
        assert!(v.get(k).is_some(), "missing {k}: {v}");
    }
    assert_eq!(v["status"], "done");
    assert_eq!(v["extended_status"], "degraded done");
    assert_eq!(v["datasource"], "nocloud");
    assert_eq!(v["stage"], Value::Null);
    assert!(v["modules-final"]["finished"].is_number());
    assert!(v["recoverable_errors"]["WARNING"][0]
        .as_str()
        .unwrap()
        .contains("foo"));
    assert_eq!(v["errors"], serde_json::json!([]));

    let o = e.ci(&["status", "--format", "xml"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn compat_files_follow_the_passes_and_seal_removes_them() {
    let e = env(true);
    // A leftover from an image that had cloud-init is replaced, not written through.
    std::fs::create_dir_all(e.path("/var/lib/cloud/instances/old")).unwrap();
    std::os::unix::fs::symlink(
        "/var/lib/cloud/instances/old",
        e.path("/var/lib/cloud/instance"),
    )
    .unwrap();
    let r = e.run("early");
    assert_eq!(r.status.code(), Some(0), "{}", err(&r));
    let st = json(&e.path("/run/cloud-init/status.json"));
    assert!(st["v1"]["init-local"]["finished"].is_number(), "{st}");
    // cloud-init's instance data layout: redacted world-readable, sensitive root only.
    let red = json(&e.path("/run/cloud-init/instance-data.json"));
    assert_eq!(red["v1"]["local_hostname"], "ci-meta");
    assert_eq!(red["merged_cfg"], "redacted for non-root user");
    let full = json(&e.path("/run/cloud-init/instance-data-sensitive.json"));
    assert_eq!(full["merged_cfg"]["hostname"], "ci-host");
    assert_eq!(st["v1"]["modules-final"]["start"], Value::Null);
    assert!(!e.path("/run/cloud-init/result.json").exists());
    assert!(!e.path("/var/lib/cloud/instance/boot-finished").exists());

    let r = e.run("late");
    assert_eq!(r.status.code(), Some(0), "{}", err(&r));
    let res = json(&e.path("/run/cloud-init/result.json"));
    assert_eq!(res["v1"]["errors"], serde_json::json!([]));
    assert!(res["v1"]["datasource"]
        .as_str()
        .unwrap()
        .starts_with("DataSourceNoCloud [seed="));
    assert!(res["v1"]["recoverable_errors"]["WARNING"][0]
        .as_str()
        .unwrap()
        .contains("foo"));
    assert_eq!(json(&e.path("/var/lib/cloud/data/result.json")), res);
    let st = json(&e.path("/run/cloud-init/status.json"));
    assert_eq!(st["v1"]["stage"], Value::Null);
    assert!(st["v1"]["modules-final"]["finished"].is_number());
    let bf = e.path("/var/lib/cloud/instance/boot-finished");
    assert!(std::fs::symlink_metadata(e.path("/var/lib/cloud/instance"))
        .unwrap()
        .is_dir());
    let line = std::fs::read_to_string(&bf).unwrap();
    assert!(line.contains(" - v. "), "{line}");
    assert!(!e
        .path("/var/lib/cloud/instances/old/boot-finished")
        .exists());

    // The next boot's early pass removes boot-finished until its late pass ends.
    std::fs::remove_dir_all(e.path("/run")).unwrap();
    let r = e.run("early");
    assert_eq!(r.status.code(), Some(0), "{}", err(&r));
    assert!(!bf.exists());
    let r = e.run("late");
    assert_eq!(r.status.code(), Some(0), "{}", err(&r));
    assert!(bf.exists());

    let o = e.agent(&["seal", "--keep", "ssh-host-keys,logs,tmp"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    for p in [
        "/run/cloud-init/status.json",
        "/run/cloud-init/result.json",
        "/var/lib/cloud/data/result.json",
        "/var/lib/cloud/instance/boot-finished",
        "/run/ci-agent/pass.json",
    ] {
        assert!(!e.path(p).exists(), "{p} left by seal");
    }
}

#[test]
fn cloud_inits_disable_marker_counts_only_with_compat() {
    for compat in [false, true] {
        let e = env(compat);
        std::fs::create_dir_all(e.path("/etc/cloud")).unwrap();
        std::fs::write(e.path("/etc/cloud/cloud-init.disabled"), "").unwrap();
        let r = e.run("all");
        assert_eq!(r.status.code(), Some(0), "{}", err(&r));
        let o = e.ci(&["status"]);
        if compat {
            assert_eq!(out(&o), "status: disabled\n");
            assert!(!e.path("/var/lib/ci-agent/status.json").exists());
        } else {
            assert_eq!(out(&o), "status: done\n");
        }
    }
}

#[test]
fn an_enabled_cloud_init_beside_us_is_warned_about() {
    let e = env(false);
    std::fs::create_dir_all(e.path("/usr/bin")).unwrap();
    std::fs::write(e.path("/usr/bin/cloud-init"), "#!/usr/bin/python3\n").unwrap();
    let r = e.run("all");
    assert!(err(&r).contains("cloud-init is installed"), "{}", err(&r));
    let o = e.ci(&["status", "--long"]);
    assert!(out(&o).contains("acts on the same seed"), "{}", out(&o));
    // Our own link is not cloud-init; a disabled cloud-init is no conflict either.
    std::fs::remove_file(e.path("/usr/bin/cloud-init")).unwrap();
    std::os::unix::fs::symlink("ci-agent", e.path("/usr/bin/cloud-init")).unwrap();
    let r = e.run("all");
    assert!(!err(&r).contains("cloud-init is installed"), "{}", err(&r));
}

#[test]
fn query_reads_the_applied_instance() {
    let e = env(false);
    let o = e.ci(&["query", "v1.instance_id"]);
    // Nothing applied and no seed to be found under the root.
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    let r = e.run("all");
    assert_eq!(r.status.code(), Some(0), "{}", err(&r));
    let q = |k: &str| {
        let o = e.ci(&["query", k]);
        assert_eq!(o.status.code(), Some(0), "{k}: {}", err(&o));
        out(&o)
    };
    assert_eq!(q("v1.instance_id"), "iid-ci\n");
    assert_eq!(q("instance_id"), "iid-ci\n");
    assert_eq!(q("v1.local_hostname"), "ci-meta\n");
    assert_eq!(q("ds.meta_data.local-hostname"), "ci-meta\n");
    assert_eq!(q("userdata"), UD.to_string() + "\n");
    assert!(q("v1.public_ssh_keys").contains("ssh-ed25519"));
    let all: Value = serde_json::from_str(&q("--all")).unwrap();
    assert_eq!(all["v1"]["cloud_name"], "nocloud");
    assert_eq!(all["schema_version"], 1);
    assert!(q("--list-keys").lines().any(|l| l == "v1"));
    let o = e.ci(&["query", "v1.nope"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).contains("instance-data 'v1' has no 'nope'"),
        "{}",
        err(&o)
    );
    assert_eq!(e.ci(&["query"]).status.code(), Some(2));

    // The run wrote the instance data: full for root, redacted for everyone.
    use std::os::unix::fs::PermissionsExt as _;
    let mode = |p: &str| std::fs::metadata(e.path(p)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("/run/ci-agent/instance-data.json"), 0o600);
    assert_eq!(mode("/run/ci-agent/instance-data-redacted.json"), 0o644);
    let full = json(&e.path("/run/ci-agent/instance-data.json"));
    assert_eq!(full["v1"]["instance_id"], "iid-ci");
    assert_eq!(full["merged_cfg"]["foo"], "bar");
    let red = json(&e.path("/run/ci-agent/instance-data-redacted.json"));
    assert_eq!(red["merged_cfg"], "redacted for non-root user");
    // Not with cloud_init_compat off.
    assert!(!e.path("/run/cloud-init/instance-data.json").exists());
    // `ci-agent query` answers the same keys.
    let o = e.agent(&["query", "v1.local_hostname"]);
    assert_eq!((o.status.code(), out(&o).as_str()), (Some(0), "ci-meta\n"));
    let o = e.agent(&["query", "--all"]);
    let all: Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(all["ds"]["meta_data"]["instance-id"], "iid-ci");
}

#[test]
fn clean_resets_for_the_next_boot() {
    let e = env(false);
    let r = e.run("all");
    assert_eq!(r.status.code(), Some(0), "{}", err(&r));
    std::fs::write(
        e.path("/etc/machine-id"),
        "0123456789abcdef0123456789abcdef\n",
    )
    .unwrap();
    std::fs::create_dir_all(e.path("/etc/ssh")).unwrap();
    std::fs::write(e.path("/etc/ssh/ssh_host_ed25519_key"), "k").unwrap();
    let o = e.ci(&["clean", "--logs", "--machine-id", "--seed"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(!e.path("/var/lib/ci-agent").exists());
    assert!(!e.path("/var/log/ci-agent.log").exists());
    assert!(e.path("/firstboot").exists());
    assert_eq!(
        std::fs::read_to_string(e.path("/etc/machine-id")).unwrap(),
        ""
    );
    // Only what cloud-init clean removes: host keys stay.
    assert!(e.path("/etc/ssh/ssh_host_ed25519_key").exists());
    let o = e.ci(&["clean", "--configs", "all"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn schema_version_and_other_commands() {
    let e = env(false);
    let f = e.seed.join("user-data");
    let o = Command::new(&e.link)
        .args(["schema", "-c"])
        .arg(&f)
        .arg("--annotate")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let text = out(&o);
    assert!(text.contains("foo: bar\t\t# E1\n"), "{text}");
    assert!(text.contains("# Errors: -------------\n# E1: "), "{text}");
    std::fs::write(&f, "#cloud-config\nhostname: ok\n").unwrap();
    let o = Command::new(&e.link)
        .args(["schema", "-c"])
        .arg(&f)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(out(&o), format!("Valid cloud-config: {}\n", f.display()));

    let o = Command::new(&e.link).arg("--version").output().unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert!(out(&o).contains("ci-agent"));
    for cmd in ["init", "modules", "analyze", "frobnicate"] {
        let o = Command::new(&e.link).arg(cmd).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{cmd}");
        let msg = err(&o);
        assert_eq!(msg.lines().count(), 1, "{msg}");
        assert!(msg.contains("in place of cloud-init"), "{msg}");
    }
}

/// cloud-init's own status reader (Debian's package, unpacked by tests/cloudinit/fetch.sh,
/// never installed) over the files `cloud_init_compat` writes.
fn cloud_inits_reading(run_dir: &Path, pythonpath: &str) -> Value {
    let py = "import json, sys\n\
from cloudinit.cmd import status as s\n\
class P: pass\n\
p = P(); p.run_dir = sys.argv[1]\n\
d = s.get_status_details(p)\n\
print(json.dumps({'status': d.status.value, 'errors': d.errors, 'datasource': d.datasource}))\n";
    let out = Command::new("/usr/bin/python3")
        .args(["-c", py])
        .arg(run_dir)
        .env("PYTHONPATH", pythonpath)
        .output()
        .expect("running /usr/bin/python3");
    assert!(out.status.success(), "{}", err(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn cloud_inits_own_reader_agrees_with_our_files() {
    let pythonpath = common::cloudinit_pythonpath();
    let ours = |e: &Env| -> Value {
        serde_json::from_slice(&e.ci(&["status", "--format", "json"]).stdout).unwrap()
    };

    let e = env(true);
    let r = e.run("early");
    assert_eq!(r.status.code(), Some(0), "{}", err(&r));
    let theirs = cloud_inits_reading(&e.path("/run/cloud-init"), &pythonpath);
    assert_eq!(theirs["status"], "running", "{theirs}");
    assert_eq!(ours(&e)["status"], "running");
    let r = e.run("late");
    assert_eq!(r.status.code(), Some(0), "{}", err(&r));
    let theirs = cloud_inits_reading(&e.path("/run/cloud-init"), &pythonpath);
    // 22.4 has no degraded state: warnings are not errors there either.
    assert_eq!(theirs["status"], "done", "{theirs}");
    assert_eq!(theirs["errors"], serde_json::json!([]));
    assert_eq!(theirs["datasource"], "nocloud");
    let o = ours(&e);
    assert_eq!(
        (&o["status"], &o["datasource"]),
        (&theirs["status"], &theirs["datasource"])
    );

    // A failing module: both say error, with our module's message.
    let e = env(true);
    std::fs::write(
        e.seed.join("user-data"),
        "#cloud-config\nwrite_files:\n  - path: relative/not/allowed\n    content: x\n",
    )
    .unwrap();
    let r = e.run("all");
    assert_eq!(r.status.code(), Some(1), "{}", err(&r));
    let theirs = cloud_inits_reading(&e.path("/run/cloud-init"), &pythonpath);
    assert_eq!(theirs["status"], "error", "{theirs}");
    let msg = theirs["errors"][0].as_str().unwrap();
    assert!(msg.starts_with("write_files: "), "{msg}");
    let o = ours(&e);
    assert_eq!(o["status"], "error");
    assert_eq!(o["errors"], theirs["errors"]);
}
