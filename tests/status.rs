//! `ci-agent status`: cloud-init's words (`not started`, `running`, `done`, `error`,
//! `disabled`; `extended_status: degraded done`) and exit codes (0, 1 error, 2 degraded),
//! decided from this boot's pass record and the pass lock, not from `status.json`; a pass
//! killed mid-way; `--wait` and `--timeout`.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::json;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ci-agent"))
}

fn status(root: &Path, extra: &[&str]) -> Output {
    bin()
        .arg("status")
        .arg("--root")
        .arg(root)
        .args(["--os", "linux"])
        .args(extra)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Write atomically, like the agent (a reader polling with --wait never sees half a file).
fn put(root: &Path, guest: &str, doc: &serde_json::Value) {
    let p = root.join(guest.trim_start_matches('/'));
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    let tmp = p.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(doc).unwrap()).unwrap();
    std::fs::rename(tmp, p).unwrap();
}

fn pass(stage: &str, finished: bool, status: &str) -> serde_json::Value {
    json!({
        "stage": stage, "pid": 4242, "started": 1_767_225_600u64,
        "finished": if finished { json!(1_767_225_660u64) } else { json!(null) },
        "exit": if finished { json!(0) } else { json!(null) },
        "status": status, "action": "apply", "detail": "first boot (/firstboot exists)",
        "instance_id": "iid-42", "datasource": "iso9660:/dev/sr0",
        "errors": if status == "error" { json!(["runcmd: exit 1"]) } else { json!([]) },
        "warnings": if status == "degraded" { json!(["user-data: unknown key 'fo'"]) } else { json!([]) },
    })
}

fn boot(root: &Path, passes: Vec<serde_json::Value>) {
    put(
        root,
        "/run/ci-agent/pass.json",
        &json!({"schema_version": 1, "passes": passes}),
    );
}

fn last_run(root: &Path, status: &str) {
    put(
        root,
        "/var/lib/ci-agent/status.json",
        &json!({
            "schema_version": 1, "status": status, "action": "apply",
            "detail": "first boot (/firstboot exists)", "instance_id": "iid-42",
            "datasource": "iso9660:/dev/sr0", "stage": "late",
            "started": "2026-01-01T00:00:00Z", "finished": "2026-01-01T00:01:00Z",
            "seed_dir": "/var/lib/ci-agent/instances/iid-42/seed",
            "applied_instance_id": "iid-42",
            "modules": [{"name": "runcmd", "stage": "late", "frequency": "per-instance",
                         "result": if status == "error" {"failed"} else {"ok"},
                         "error": if status == "error" {json!("exit 1")} else {json!(null)}, "duration_ms": 40}],
            "warnings": [], "os": "linux"
        }),
    );
}

#[test]
fn words_and_exit_codes_are_cloud_inits() {
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    let o = status(r, &[]);
    assert_eq!(o.status.code(), Some(0), "not started");
    assert!(
        stdout(&o).starts_with("status: not started\n"),
        "{}",
        stdout(&o)
    );

    // A persistent record from an earlier boot does not make this boot done.
    last_run(r, "running");
    assert!(stdout(&status(r, &[])).starts_with("status: not started\n"));

    for (st, word, ext, code) in [
        ("done", "done", "done", 0),
        ("degraded", "done", "degraded done", 2),
        ("error", "error", "error", 1),
        ("disabled", "disabled", "disabled", 0),
    ] {
        boot(
            r,
            vec![pass("early", true, "running"), pass("late", true, st)],
        );
        last_run(r, st);
        let o = status(r, &[]);
        let out = stdout(&o);
        assert_eq!(o.status.code(), Some(code), "{st}: {out}");
        assert!(
            out.starts_with(&format!("status: {word}\nextended_status: {ext}\n")),
            "{out}"
        );
        assert_eq!(out.contains("status: done"), word == "done", "{out}");
        assert!(out.contains("instance-id: iid-42"), "{out}");
        assert!(
            out.contains("seed files (CI_AGENT_SEED_DIR): /var/lib/ci-agent/instances/iid-42/seed")
        );
        let o = status(r, &["--json"]);
        assert_eq!(o.status.code(), Some(code));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["status"], word);
        assert_eq!(v["extended_status"], ext);
        assert_eq!(v["schema_version"], 1);
        assert_eq!(v["_schema_version"], "1");
        assert_eq!(v["ci_agent"]["last_run"]["modules"][0]["name"], "runcmd");
        // The last run's fields stay at the top level too (older readers).
        assert_eq!(v["instance_id"], "iid-42");
        assert_eq!(v["modules"][0]["name"], "runcmd");
        if st == "degraded" {
            assert_eq!(
                v["recoverable_errors"]["WARNING"][0],
                "user-data: unknown key 'fo'"
            );
        }
        if st == "error" {
            assert_eq!(v["errors"][0], "runcmd: exit 1");
        }
        let o = status(r, &["--format", "yaml"]);
        assert!(
            stdout(&o).contains(&format!("extended_status: {ext}")),
            "{}",
            stdout(&o)
        );
    }

    // Between the passes: running (the late pass is due).
    boot(r, vec![pass("early", true, "running")]);
    let o = status(r, &[]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).starts_with("status: running\n"));
}

#[test]
fn a_killed_pass_is_an_error_at_once() {
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    // Killed mid-way: status.json still says running, pass.json has no end, no lock held.
    last_run(r, "running");
    boot(
        r,
        vec![
            pass("early", true, "running"),
            pass("late", false, "running"),
        ],
    );
    let o = status(r, &["--wait", "--timeout", "600"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let out = stdout(&o);
    assert!(out.contains("status: error\n"), "{out}");
    assert!(out.contains("was killed"), "{out}");
}

#[test]
fn wait_follows_the_lock() {
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    boot(r, vec![pass("late", false, "running")]);
    let lock_path = r.join("run/ci-agent/pass.lock");
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .unwrap();
    let held = ci_agent::platform::FileLock::take(f, false)
        .unwrap()
        .unwrap();
    // Running while the lock is held; --timeout gives up with exit 1.
    let o = status(r, &["--wait", "--timeout", "1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("status: running\n"), "{}", stdout(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--timeout"));

    let child = bin()
        .args(["status", "--os", "linux", "--wait", "--root"])
        .arg(r)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    boot(r, vec![pass("late", true, "done")]);
    drop(held);
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).contains("status: done\n"), "{}", stdout(&o));

    // Not started: --wait waits (here until the timeout).
    let e = tempfile::tempdir().unwrap();
    let o = status(e.path(), &["--wait", "--timeout", "1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("status: not started\n"));
}

#[test]
fn disable_switches_say_why() {
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    std::fs::create_dir_all(r.join("etc")).unwrap();
    std::fs::write(r.join("etc/ci-agent.disabled"), "").unwrap();
    let o = status(r, &["--wait"]);
    assert_eq!(o.status.code(), Some(0));
    let out = stdout(&o);
    assert!(out.starts_with("status: disabled\n"), "{out}");
    assert!(
        out.contains("boot_status_code: disabled-by-marker-file"),
        "{out}"
    );
    assert!(out.contains("/etc/ci-agent.disabled"), "{out}");
    std::fs::remove_file(r.join("etc/ci-agent.disabled")).unwrap();
    std::fs::create_dir_all(r.join("proc")).unwrap();
    std::fs::write(r.join("proc/cmdline"), "root=/dev/vda ci-agent=disabled\n").unwrap();
    let out = stdout(&status(r, &[]));
    assert!(out.contains("disabled-by-kernel-cmdline"), "{out}");
}

#[test]
fn a_disabled_run_does_nothing_whatever_starts_it() {
    // systemd, rc.d and OpenRC all start `ci-agent run`; the switches are checked there,
    // so they hold under each of them (the units' own conditions are only a shortcut).
    for (file, text) in [
        ("etc/ci-agent.disabled", ""),
        ("proc/cmdline", "root=/dev/vda ci-agent=disabled\n"),
    ] {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join(file).parent().unwrap()).unwrap();
        std::fs::write(r.join(file), text).unwrap();
        std::fs::write(r.join("firstboot"), "").unwrap();
        for stage in ["early", "late"] {
            let o = bin()
                .args(["run", "--stage", stage, "--os", "linux", "--root"])
                .arg(r)
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(0), "{file} {stage}: {err}");
            assert!(err.contains("ci-agent is disabled by"), "{file}: {err}");
            assert!(err.contains("nothing to do"), "{file}: {err}");
        }
        assert!(!r.join("var/lib/ci-agent").exists(), "{file}: no state");
        assert!(r.join("firstboot").exists(), "{file}: sentinel left");
        let out = stdout(&status(r, &[]));
        assert!(out.starts_with("status: disabled\n"), "{file}: {out}");
    }
}

#[test]
fn freebsd_paths_and_config() {
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    put(
        r,
        "/var/run/ci-agent/pass.json",
        &json!({"schema_version": 1, "passes": [pass("all", true, "degraded")]}),
    );
    let o = bin()
        .args(["status", "--os", "freebsd", "--root"])
        .arg(r)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(status(r, &[]).status.code(), Some(0), "linux: not started");
    // run_dir from a config file.
    std::fs::create_dir_all(r.join("etc")).unwrap();
    std::fs::write(r.join("etc/ci-agent.conf"), "run_dir: /var/run/ci-agent\n").unwrap();
    let o = status(r, &[]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn usage_and_unreadable_records() {
    let d = tempfile::tempdir().unwrap();
    let o = bin().args(["status", "--bogus"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    put(d.path(), "/run/ci-agent/pass.json", &json!({"passes": 3}));
    let o = status(d.path(), &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("pass.json"));
    let o = bin().args(["status", "--help"]).output().unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).contains("exit status"));
}

#[test]
fn a_real_run_killed_mid_way() {
    // A pass that waits for a seed device (first boot, none attached) holds its lock;
    // SIGKILL it there, as a unit timeout or the OOM killer would.
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    std::fs::create_dir_all(r.join("etc")).unwrap();
    std::fs::write(r.join("etc/ci-agent.conf"), "seed_wait_secs: 600\n").unwrap();
    std::fs::write(r.join("firstboot"), "").unwrap();
    let mut child = bin()
        .args(["run", "--stage", "late", "--os", "linux", "--root"])
        .arg(r)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pass = r.join("run/ci-agent/pass.json");
    for _ in 0..600 {
        if pass.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(pass.exists(), "the pass never started");
    let o = status(r, &[]);
    assert!(
        stdout(&o).starts_with("status: running\n"),
        "{}",
        stdout(&o)
    );
    child.kill().unwrap();
    child.wait().unwrap();
    // Returns at once with cloud-init's error code, naming the kill (a timeout would
    // say "still running" instead).
    let o = status(r, &["--wait", "--timeout", "600"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stdout(&o).contains("was killed"), "{}", stdout(&o));
}
