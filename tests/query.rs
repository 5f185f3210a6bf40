//! `ci-agent query` end to end: seeds built at test time by cloud-localds (ISO and vfat),
//! genisoimage, xorriso, mkfs.vfat + mcopy and plain directories, found through `--seed`
//! and through a fake `/sys` + `/dev` under `--root`; the JSON compared to what we expect;
//! exit codes 0 / 1 / 2.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{json, Value};

const UD: &str = "#cloud-config\nhostname: q-host\nssh_pwauth: no\npackages: [vim, [curl, 1.10]]\nruncmd:\n  - [echo, hi]\nfoo: bar\n";
const MD: &str = "instance-id: iid-q\nlocal-hostname: q-meta\n";

fn query(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ci-agent"))
        .arg("query")
        .args(args)
        .output()
        .unwrap()
}

fn ok_json(out: &Output) -> Value {
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn tool(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn write_src(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("user-data"), UD).unwrap();
    std::fs::write(dir.join("meta-data"), MD).unwrap();
}

fn expected(source: &str) -> Value {
    json!({
        "schema_version": 1,
        "source": source,
        "instance_id": "iid-q",
        "hostname": "q-meta",
        "meta_data": {"instance-id": "iid-q", "local-hostname": "q-meta"},
        "cloud_config": {
            "hostname": "q-host",
            "ssh_pwauth": false,
            "packages": ["vim", ["curl", 1.1]],
            "runcmd": [["echo", "hi"]],
            "foo": "bar",
        },
        "scripts": [],
        "boothooks": [],
        "includes": [],
        "files": ["meta-data", "user-data"],
        "warnings": ["user-data:7:1: 'foo' is not supported by ci-agent (ignored)"],
        "errors": [],
    })
}

/// An empty root whose config does not wait for devices.
fn root() -> tempfile::TempDir {
    let r = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(r.path().join("etc")).unwrap();
    std::fs::write(r.path().join("etc/ci-agent.conf"), "seed_wait_secs: 0\n").unwrap();
    r
}

#[test]
fn seeds_from_every_tool() {
    let w = tempfile::tempdir().unwrap();
    let src = w.path().join("src");
    write_src(&src);
    let r = root();
    let rs = r.path().to_str().unwrap();
    let p = |n: &str| w.path().join(n);

    tool(
        Command::new("cloud-localds")
            .arg(p("localds.iso"))
            .arg(src.join("user-data"))
            .arg(src.join("meta-data")),
    );
    tool(
        Command::new("cloud-localds")
            .args(["-f", "vfat"])
            .arg(p("localds.img"))
            .arg(src.join("user-data"))
            .arg(src.join("meta-data")),
    );
    tool(
        Command::new("genisoimage")
            .args(["-quiet", "-volid", "cidata", "-J", "-R", "-o"])
            .arg(p("geniso.iso"))
            .arg(&src),
    );
    tool(
        Command::new("xorriso")
            .args(["-as", "mkisofs", "-quiet", "-V", "CIDATA", "-J", "-R", "-o"])
            .arg(p("xorriso.iso"))
            .arg(&src),
    );
    tool(
        Command::new("mkfs.vfat")
            .args(["-C", "-n", "CIDATA"])
            .arg(p("mtools.img"))
            .arg("512"),
    );
    for f in ["user-data", "meta-data"] {
        tool(
            Command::new("mcopy")
                .arg("-i")
                .arg(p("mtools.img"))
                .arg(src.join(f))
                .arg(format!("::{f}")),
        );
    }
    for (name, kind) in [
        ("localds.iso", "iso9660"),
        ("localds.img", "vfat"),
        ("geniso.iso", "iso9660"),
        ("xorriso.iso", "iso9660"),
        ("mtools.img", "vfat"),
    ] {
        let path = p(name);
        let v = ok_json(&query(&["--root", rs, "--seed", path.to_str().unwrap()]));
        assert_eq!(v, expected(&format!("{kind}:{}", path.display())), "{name}");
    }
    // A directory.
    let v = ok_json(&query(&["--root", rs, "--seed", src.to_str().unwrap()]));
    assert_eq!(v, expected(&format!("dir:{}", src.display())));
}

#[test]
fn device_scan_under_root() {
    let w = tempfile::tempdir().unwrap();
    let src = w.path().join("src");
    write_src(&src);
    let r = root();
    let iso = r.path().join("dev/sr0");
    std::fs::create_dir_all(iso.parent().unwrap()).unwrap();
    tool(
        Command::new("genisoimage")
            .args(["-quiet", "-volid", "cidata", "-J", "-R", "-o"])
            .arg(&iso)
            .arg(&src),
    );
    std::fs::create_dir_all(r.path().join("sys/class/block/sr0")).unwrap();
    std::fs::write(r.path().join("dev/vda"), vec![0u8; 65536]).unwrap();
    std::fs::create_dir_all(r.path().join("sys/class/block/vda")).unwrap();
    let v = ok_json(&query(&[
        "--root",
        r.path().to_str().unwrap(),
        "--os",
        "linux",
    ]));
    assert_eq!(v, expected("iso9660:/dev/sr0"));
}

#[test]
fn scripts_and_mime_are_listed() {
    let w = tempfile::tempdir().unwrap();
    let d = w.path().join("seed");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(
        d.join("user-data"),
        "Content-Type: multipart/mixed; boundary=B\nMIME-Version: 1.0\n\n--B\nContent-Type: text/x-shellscript\nContent-Disposition: attachment; filename=\"a.sh\"\n\n#!/bin/sh\necho a\n--B\nContent-Type: text/cloud-config\n\nhostname: mime\n--B--\n",
    )
    .unwrap();
    std::fs::write(d.join("CONFIG"), "x=1\n").unwrap();
    let r = root();
    let v = ok_json(&query(&[
        "--root",
        r.path().to_str().unwrap(),
        "--seed",
        d.to_str().unwrap(),
    ]));
    assert_eq!(
        v["scripts"],
        json!([{"name": "a.sh", "interpreter": "/bin/sh", "bytes": 16, "frequency": "per-instance",
            "sha256": "c9e50b33296b8274d95981a241e8e4e91de27b82e4d4d25925443686c91043c2"}])
    );
    assert_eq!(v["cloud_config"], json!({"hostname": "mime"}));
    assert_eq!(v["instance_id"], json!("nocloud"));
    assert_eq!(v["hostname"], Value::Null);
    assert_eq!(v["files"], json!(["CONFIG", "user-data"]));
}

#[test]
fn exit_codes() {
    let r = root();
    let rs = r.path().to_str().unwrap();
    // No seed anywhere: 1, nothing on stdout.
    let out = query(&["--root", rs]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no seed found"));
    // Malformed: 2, message names the file and position.
    let w = tempfile::tempdir().unwrap();
    let d = w.path().join("bad");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(
        d.join("user-data"),
        "#cloud-config\nusers:\n  - name: a\n    sudo: {x: 1}\n",
    )
    .unwrap();
    let out = query(&["--root", rs, "--seed", d.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("user-data:4:11: users[0].sudo: expected a sudoers rule"),
        "{err}"
    );
    // Usage errors: 2; --help: 0.
    assert_eq!(query(&["--bogus"]).status.code(), Some(2));
    assert_eq!(
        query(&["--root", "/nonexistent-dir-xyz"]).status.code(),
        Some(2)
    );
    let help = query(&["--help"]);
    assert_eq!(help.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&help.stdout).contains("usage: ci-agent query"));
    // Nothing was written under the root.
    let mut entries: Vec<_> = walk(r.path());
    entries.sort();
    assert_eq!(entries, ["etc", "etc/ci-agent.conf"]);
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            out.push(p.strip_prefix(dir).unwrap().display().to_string());
            if p.is_dir() {
                stack.push(p);
            }
        }
    }
    out
}

#[test]
fn relative_paths_with_dotdot_are_taken_from_the_current_directory() {
    // `--seed ../seed`, `--config ../root/etc/...`: command-line paths on this machine,
    // which the shell user means relative to the current directory, `..` included.
    let r = root();
    let w = tempfile::tempdir().unwrap();
    write_src(&w.path().join("src"));
    std::fs::create_dir_all(w.path().join("cwd")).unwrap();
    let rs = r.path().to_str().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ci-agent"))
        .current_dir(w.path().join("cwd"))
        .args(["query", "--root", rs, "--seed", "../src"])
        .output()
        .unwrap();
    let v = ok_json(&out);
    assert_eq!(v["instance_id"], "iid-q");
    // --config under the root, reached with `..`.
    let out = Command::new(env!("CARGO_BIN_EXE_ci-agent"))
        .current_dir(r.path().join("etc"))
        .args(["query", "--root", "..", "--config", "../etc/ci-agent.conf"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "no seed, but the config was read: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// nuageinit's `user_data`/`meta_data`, and a plain ISO9660 seed without Rock Ridge or
/// Joliet (level-1 names `USER_DAT.;1`, `META_DAT.;1`) read like `user-data`/`meta-data`;
/// a seed with neither says so.
#[test]
fn other_spellings_of_the_seed_files() {
    let w = tempfile::tempdir().unwrap();
    let r = root();
    let rs = r.path().to_str().unwrap();
    let under = w.path().join("under");
    std::fs::create_dir_all(&under).unwrap();
    std::fs::write(under.join("user_data"), UD).unwrap();
    std::fs::write(under.join("meta_data"), MD).unwrap();
    let v = ok_json(&query(&["--root", rs, "--seed", under.to_str().unwrap()]));
    assert_eq!(v["instance_id"], "iid-q");
    assert_eq!(v["cloud_config"]["hostname"], "q-host");

    let src = w.path().join("src");
    write_src(&src);
    let iso = w.path().join("plain.iso");
    tool(
        Command::new("genisoimage")
            .args(["-quiet", "-V", "cidata", "-o"])
            .arg(&iso)
            .arg(&src),
    );
    let v = ok_json(&query(&["--root", rs, "--seed", iso.to_str().unwrap()]));
    assert_eq!(v["instance_id"], "iid-q");
    assert_eq!(v["hostname"], "q-meta");
    assert_eq!(v["cloud_config"]["hostname"], "q-host");

    let empty = w.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::write(empty.join("userdata.txt"), UD).unwrap();
    let v = ok_json(&query(&["--root", rs, "--seed", empty.to_str().unwrap()]));
    assert_eq!(v["instance_id"], "nocloud");
    let w0 = v["warnings"][0].as_str().unwrap();
    assert!(
        w0.contains("neither user-data nor meta-data") && w0.contains("userdata.txt"),
        "{w0}"
    );
}
