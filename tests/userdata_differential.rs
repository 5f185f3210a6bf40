//! Differential test of user-data processing against cloud-init itself.
//!
//! Every case under `tests/differential/userdata/cases/<name>/` (a `user-data`, optionally
//! a `meta-data`) is read twice: by cloud-init's own user-data processor, part handlers
//! and mergers (Debian's `cloud-init` package unpacked by `tests/cloudinit/fetch.sh`, run
//! by `tests/differential/userdata/cloudinit_userdata.py` with /usr/bin/python3), and by
//! `ci-agent query --seed <case>`. They must agree:
//!
//! - the merged cloud-config is equal after a JSON round trip (bytes as cloud-init's
//!   `ci-b64:` strings);
//! - the scripts and the boothooks are the same bytes (SHA-256), in the same order, with
//!   the same frequency;
//! - where cloud-init raises (and then applies no user-data at all), `ci-agent query`
//!   reports an error too ("both error"); where cloud-init skipped a part with a warning,
//!   ci-agent reports an error or a warning.
//!
//! `#include` URLs are not fetched on either side. Every case of the corpus must pass; the
//! failures are listed together, one block per case.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/differential/userdata/cases")
}

fn cases() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(cases_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("user-data").is_file())
        .collect();
    out.sort();
    out
}

/// cloud-init's view of every case, by case name. `instance_data`: a directory of
/// `<case>.json` instance data for the cases with jinja templates.
fn cloudinit(cases: &[PathBuf], instance_data: &Path) -> std::collections::BTreeMap<String, Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/differential/userdata/cloudinit_userdata.py");
    let out = Command::new("/usr/bin/python3")
        .arg(script)
        .args(cases)
        .env("PYTHONPATH", common::cloudinit_pythonpath())
        .env("CI_AGENT_INSTANCE_DATA", instance_data)
        .output()
        .expect("running /usr/bin/python3");
    assert!(
        out.status.success(),
        "cloudinit_userdata.py failed (missing python3-* package? see scripts/tools.tsv):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (v["case"].as_str().unwrap().to_owned(), v)
        })
        .collect()
}

/// `ci-agent query` on one case: its JSON and whether it exited 0.
fn ours(case: &Path, root: &Path) -> (Value, bool) {
    let o = query(case, root, &[]);
    let v = serde_json::from_slice(&o.stdout).unwrap_or_else(
        |e| json!({"unparsable": e.to_string(), "stderr": String::from_utf8_lossy(&o.stderr)}),
    );
    (v, o.status.success())
}

/// `ci-agent query --seed CASE` with `extra` arguments.
fn query(case: &Path, root: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ci-agent"))
        .args(["query", "--os", "linux", "--root"])
        .arg(root)
        .arg("--seed")
        .arg(case)
        .args(extra)
        .env_remove("JOURNAL_STREAM")
        .output()
        .unwrap()
}

/// The instance data ci-agent renders a case's templates with, for cloud-init to use
/// too: written as `<dir>/<case>.json` for every case whose user-data mentions jinja.
fn instance_data(cases: &[PathBuf], root: &Path, dir: &Path) {
    for case in cases {
        let ud = std::fs::read(case.join("user-data")).unwrap();
        if !String::from_utf8_lossy(&ud)
            .to_ascii_lowercase()
            .contains("jinja")
        {
            continue;
        }
        let o = query(case, root, &["--all"]);
        assert!(o.status.success(), "{}: query --all failed", case.display());
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        std::fs::write(dir.join(format!("{name}.json")), &o.stdout).unwrap();
    }
}

/// `(frequency, sha256)` of each script, in order.
fn script_ids(v: &Value) -> Vec<(String, String)> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|s| {
                    (
                        s["frequency"].as_str().unwrap_or("?").to_owned(),
                        s["sha256"].as_str().unwrap_or("?").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn compare(name: &str, theirs: &Value, ours: &Value, ok: bool) -> Vec<String> {
    let mut bad = Vec::new();
    let errors = ours["errors"].as_array().map_or(0, Vec::len);
    // Only what is said about user-data counts (not, say, the missing meta-data).
    let warnings = ours["warnings"].as_array().map_or(0, |w| {
        w.iter()
            .filter(|m| m.as_str().is_some_and(|m| m.starts_with("user-data")))
            .count()
    });
    if let Some(e) = theirs["error"].as_str() {
        if ok || errors == 0 {
            bad.push(format!(
                "cloud-init raised ({e}) but ci-agent query reported no error: {ours}"
            ));
        }
        return bad;
    }
    if ours.get("unparsable").is_some() {
        bad.push(format!("ci-agent query printed no JSON: {ours}"));
        return bad;
    }
    if theirs["cloud_config"] != ours["cloud_config"] {
        bad.push(format!(
            "cloud-config differs\n  cloud-init: {}\n  ci-agent:   {}",
            theirs["cloud_config"], ours["cloud_config"]
        ));
    }
    for kind in ["scripts", "boothooks"] {
        let (t, o) = (script_ids(&theirs[kind]), script_ids(&ours[kind]));
        if t != o {
            bad.push(format!(
                "{kind} differ\n  cloud-init: {}\n  ci-agent:   {}",
                theirs[kind], ours[kind]
            ));
        }
    }
    let dropped = theirs["dropped"].as_array().map_or(0, Vec::len);
    if dropped > 0 && errors + warnings == 0 {
        bad.push(format!(
            "cloud-init warned {} but ci-agent said nothing",
            theirs["dropped"]
        ));
    }
    if !bad.is_empty() {
        bad.insert(0, format!("case {name}:"));
    }
    bad
}

#[test]
fn userdata_as_cloudinit_reads_it() {
    if !common::have("python3") {
        return;
    }
    let cases = cases();
    assert!(
        cases.len() >= 3,
        "corpus missing under {}",
        cases_dir().display()
    );
    let root = tempfile::tempdir().unwrap();
    let idata = tempfile::tempdir().unwrap();
    instance_data(&cases, root.path(), idata.path());
    let theirs = cloudinit(&cases, idata.path());
    let mut failures = Vec::new();
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let t = theirs
            .get(&name)
            .unwrap_or_else(|| panic!("no cloud-init result for {name}"));
        let (o, ok) = ours(case, root.path());
        failures.extend(compare(&name, t, &o, ok));
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ from cloud-init:\n{}",
        failures.iter().filter(|l| l.starts_with("case ")).count(),
        cases.len(),
        failures.join("\n")
    );
    eprintln!("{} user-data cases agree with cloud-init", cases.len());
}
