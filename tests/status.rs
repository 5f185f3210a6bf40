//! `ci-agent status`: human and JSON output and the exit codes (0 done/disabled, 1 error,
//! 2 degraded, 3 running, 4 not run yet, 5 usage or unreadable state), `--wait`.

use std::path::Path;
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ci-agent"))
}

fn status(root: &Path, extra: &[&str]) -> Output {
    bin()
        .arg("status")
        .arg("--root")
        .arg(root)
        .args(extra)
        .output()
        .unwrap()
}

fn write_status(root: &Path, state_dir: &str, status: &str) {
    let dir = root.join(state_dir.trim_start_matches('/'));
    std::fs::create_dir_all(&dir).unwrap();
    let doc = serde_json::json!({
        "status": status,
        "action": "apply",
        "detail": "first boot (/firstboot exists)",
        "instance_id": "iid-42",
        "datasource": "dir:/seed",
        "stage": "all",
        "started": "2026-01-01T00:00:00Z",
        "finished": "2026-01-01T00:00:05Z",
        "seed_dir": "/var/lib/ci-agent/instances/iid-42/seed",
        "applied_instance_id": "iid-42",
        "modules": [
            {"name": "hostname", "stage": "early", "frequency": "per-instance", "result": "ok", "error": null, "duration_ms": 2},
            {"name": "runcmd", "stage": "late", "frequency": "per-instance", "result": if status == "error" {"failed"} else {"ok"},
             "error": if status == "error" {serde_json::json!("exit 1")} else {serde_json::Value::Null}, "duration_ms": 40}
        ],
        "warnings": if status == "degraded" {serde_json::json!(["user-data: unknown key 'fo'"])} else {serde_json::json!([])},
        "bootstrap": null,
        "os": "linux",
        "version": "0.1.0"
    });
    // Atomically, like the agent (a reader polling with --wait never sees half a file).
    std::fs::write(
        dir.join(".status.tmp"),
        serde_json::to_vec_pretty(&doc).unwrap(),
    )
    .unwrap();
    std::fs::rename(dir.join(".status.tmp"), dir.join("status.json")).unwrap();
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn exit_codes_follow_the_status() {
    let d = tempfile::tempdir().unwrap();
    let o = status(d.path(), &["--os", "linux"]);
    assert_eq!(o.status.code(), Some(4), "not run yet");
    assert!(stdout(&o).contains("status: not run yet"));
    let o = status(d.path(), &["--os", "linux", "--json"]);
    assert_eq!(o.status.code(), Some(4));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["status"], "not-run");

    for (st, code) in [
        ("done", 0),
        ("error", 1),
        ("degraded", 2),
        ("running", 3),
        ("disabled", 0),
    ] {
        write_status(d.path(), "/var/lib/ci-agent", st);
        let o = status(d.path(), &["--os", "linux"]);
        assert_eq!(o.status.code(), Some(code), "{st}: {}", stdout(&o));
        let out = stdout(&o);
        assert!(out.starts_with(&format!("status: {st}\n")), "{out}");
        assert!(out.contains("instance-id: iid-42"));
        assert!(
            out.contains("seed files (CI_AGENT_SEED_DIR): /var/lib/ci-agent/instances/iid-42/seed")
        );
        assert!(out.contains("hostname"));
        if st == "error" {
            assert!(out.contains("FAILED") && out.contains("exit 1"), "{out}");
        }
        if st == "degraded" {
            assert!(out.contains("unknown key 'fo'"), "{out}");
        }
        let o = status(d.path(), &["--os", "linux", "--json"]);
        assert_eq!(o.status.code(), Some(code));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["status"], st);
        assert_eq!(v["modules"][1]["name"], "runcmd");
    }
}

#[test]
fn freebsd_state_dir_and_config_state_dir() {
    let d = tempfile::tempdir().unwrap();
    write_status(d.path(), "/var/db/ci-agent", "degraded");
    assert_eq!(
        status(d.path(), &["--os", "freebsd"]).status.code(),
        Some(2)
    );
    assert_eq!(status(d.path(), &["--os", "linux"]).status.code(), Some(4));
    // state_dir from a config file (this needs the YAML wrapper).
    let conf = d.path().join("etc/ci-agent.conf");
    std::fs::create_dir_all(conf.parent().unwrap()).unwrap();
    std::fs::write(&conf, "state_dir: /var/db/ci-agent\n").unwrap();
    let o = status(d.path(), &["--os", "linux"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn usage_and_unreadable_state_exit_5() {
    let d = tempfile::tempdir().unwrap();
    let o = bin().args(["status", "--bogus"]).output().unwrap();
    assert_eq!(o.status.code(), Some(5));
    let dir = d.path().join("var/lib/ci-agent");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("status.json"), "{not json").unwrap();
    let o = status(d.path(), &["--os", "linux"]);
    assert_eq!(o.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&o.stderr).contains("status.json"));
    let o = bin().args(["status", "--help"]).output().unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).contains("exit status"));
}

#[test]
fn wait_returns_when_the_run_finishes() {
    let d = tempfile::tempdir().unwrap();
    write_status(d.path(), "/var/lib/ci-agent", "running");
    // Gives up after the timeout while still running.
    let o = status(d.path(), &["--os", "linux", "--wait", "--timeout", "1"]);
    assert_eq!(o.status.code(), Some(3));
    // Returns the final result once the run finishes.
    let child = bin()
        .args([
            "status",
            "--os",
            "linux",
            "--wait",
            "--timeout",
            "60",
            "--root",
        ])
        .arg(d.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    write_status(d.path(), "/var/lib/ci-agent", "error");
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).starts_with("status: error\n"));
}
