//! End-to-end tests of the `ci-seed` binary (build, batch, validate): every image is read
//! back by our own reader and by the usual tools (isoinfo, xorriso, bsdtar; mtools and
//! fsck.fat for vfat), byte for byte, and compared with what cloud-localds writes for the
//! same arguments. A missing tool skips its check loudly, or fails it under scripts/test.sh.

mod common;

use common::have;
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/seed")
        .join(name)
}

fn fx(name: &str) -> Vec<u8> {
    fs::read(fixture(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

fn ci_seed() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ci-seed"));
    c.env_remove("SOURCE_DATE_EPOCH");
    c
}

fn run(mut cmd: Command) -> Output {
    cmd.output().expect("spawn")
}

fn run_stdin(mut cmd: Command, input: &[u8]) -> Output {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write stdin");
    child.wait_with_output().expect("wait")
}

#[track_caller]
fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn tool(cmd: &str, args: &[&str]) -> Vec<u8> {
    let out = Command::new(cmd)
        .args(args)
        .env("MTOOLS_SKIP_CHECK", "1")
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

type Files = BTreeMap<String, Vec<u8>>;

fn files(list: &[(&str, &[u8])]) -> Files {
    list.iter()
        .map(|(n, d)| (n.to_string(), d.to_vec()))
        .collect()
}

/// Root files only (the readers return the root directory).
fn root_only(expected: &Files) -> Files {
    expected
        .iter()
        .filter(|(n, _)| !n.contains('/'))
        .map(|(n, d)| (n.clone(), d.clone()))
        .collect()
}

/// Read an ISO seed back with every reader and compare with `expected` (name → bytes).
fn check_iso(img: &Path, expected: &Files) {
    // Our own reader (root directory).
    let mut f = fs::File::open(img).unwrap();
    let got: Files = ci_agent::formats::iso9660::read_root_files(&mut f, 1 << 20)
        .expect("our ISO reader")
        .into_iter()
        .collect();
    assert_eq!(got, root_only(expected), "our ISO reader");
    let mut f = fs::File::open(img).unwrap();
    assert_eq!(
        ci_agent::formats::iso9660::volume_id(&mut f)
            .expect("volume id")
            .as_deref(),
        Some("cidata")
    );

    if have("isoinfo") {
        let d = String::from_utf8_lossy(&tool("isoinfo", &["-d", "-i", p(img)])).into_owned();
        assert!(d.contains("Volume id: cidata"), "{d}");
        assert!(d.contains("Rock Ridge"), "no Rock Ridge: {d}");
        assert!(d.contains("Joliet"), "no Joliet: {d}");
        for (name, data) in expected {
            let iso_path = format!("/{name}");
            for ext in ["-R", "-J"] {
                let got = tool("isoinfo", &[ext, "-i", p(img), "-x", &iso_path]);
                assert_eq!(&got, data, "isoinfo {ext} -x {iso_path}");
            }
        }
        let listing =
            String::from_utf8_lossy(&tool("isoinfo", &["-R", "-f", "-i", p(img)])).into_owned();
        for name in expected.keys() {
            assert!(
                listing.lines().any(|l| l == format!("/{name}")),
                "isoinfo -R -f lacks /{name}: {listing}"
            );
        }
    }
    if have("xorriso") {
        let ls =
            String::from_utf8_lossy(&tool("xorriso", &["-indev", p(img), "-ls", "/"])).into_owned();
        for name in root_only(expected).keys() {
            assert!(
                ls.contains(&format!("'{name}'")),
                "xorriso -ls lacks {name}: {ls}"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("x");
        tool(
            "xorriso",
            &[
                "-osirrox",
                "on",
                "-indev",
                p(img),
                "-extract",
                "/",
                p(&dest),
            ],
        );
        for (name, data) in expected {
            assert_eq!(
                &fs::read(dest.join(name)).unwrap_or_default(),
                data,
                "xorriso -extract {name}"
            );
        }
    }
    if have("bsdtar") {
        let list = String::from_utf8_lossy(&tool("bsdtar", &["-tf", p(img)])).into_owned();
        for (name, data) in expected {
            assert!(
                list.lines().any(|l| l == name),
                "bsdtar -tf lacks {name}: {list}"
            );
            assert_eq!(
                &tool("bsdtar", &["-xOf", p(img), name]),
                data,
                "bsdtar -xOf {name}"
            );
        }
    }
}

/// Read a vfat seed back with every reader and compare with `expected`.
fn check_vfat(img: &Path, expected: &Files) {
    let mut f = fs::File::open(img).unwrap();
    let got: Files = ci_agent::formats::fat::read_root_files(&mut f, 1 << 20)
        .expect("our FAT reader")
        .into_iter()
        .collect();
    assert_eq!(got, root_only(expected), "our FAT reader");
    let mut f = fs::File::open(img).unwrap();
    let label = ci_agent::formats::fat::volume_label(&mut f).expect("label");
    assert_eq!(
        label.map(|l| l.to_ascii_lowercase()).as_deref(),
        Some("cidata")
    );

    if have("mdir") && have("mtype") {
        let dir = String::from_utf8_lossy(&tool("mdir", &["-i", p(img), "::"])).into_owned();
        assert!(dir.to_ascii_lowercase().contains("cidata"), "label: {dir}");
        for (name, data) in expected {
            if !name.contains('/') {
                assert!(dir.contains(name.as_str()), "mdir lacks {name}: {dir}");
            }
            let got = tool("mtype", &["-i", p(img), &format!("::/{name}")]);
            assert_eq!(&got, data, "mtype {name}");
        }
    }
    if have("fsck.fat") {
        tool("fsck.fat", &["-n", p(img)]);
    }
}

fn meta_json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).expect("generated meta-data is JSON (and so YAML)")
}

#[track_caller]
fn assert_fresh_iid(v: &serde_json::Value) -> String {
    let iid = v["instance-id"].as_str().expect("instance-id").to_string();
    let uuid = iid.strip_prefix("iid-").expect("iid- prefix");
    let u = uuid::Uuid::parse_str(uuid).expect("UUID");
    assert_eq!(u.get_version_num(), 4, "{iid}");
    iid
}

fn extract_iso(img: &Path, name: &str) -> Vec<u8> {
    tool("isoinfo", &["-R", "-i", p(img), "-x", &format!("/{name}")])
}

#[test]
fn iso_with_all_files_reads_back_everywhere() {
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("seed.iso");
    let out = run({
        let mut c = ci_seed();
        c.args(["-N", p(&fixture("network-config"))])
            .args(["-V", p(&fixture("vendor-data"))])
            .arg(&img)
            .arg(fixture("user-data"))
            .arg(fixture("meta-data"));
        c
    });
    ok(&out);
    check_iso(
        &img,
        &files(&[
            ("user-data", &fx("user-data")),
            ("meta-data", &fx("meta-data")),
            ("network-config", &fx("network-config")),
            ("vendor-data", &fx("vendor-data")),
        ]),
    );
}

#[test]
fn generated_meta_data_has_fresh_instance_id_and_hostname() {
    let t = tempfile::tempdir().unwrap();
    let a = t.path().join("a.iso");
    let b = t.path().join("b.iso");
    for img in [&a, &b] {
        let mut c = ci_seed();
        c.args(["-H", "vm-01.example.org", "-m", "local"])
            .arg(img)
            .arg(fixture("user-data"));
        ok(&run(c));
    }
    let mut f = fs::File::open(&a).unwrap();
    let got: Files = ci_agent::formats::iso9660::read_root_files(&mut f, 1 << 20)
        .unwrap()
        .into_iter()
        .collect();
    let md_a = meta_json(&got["meta-data"]);
    assert_eq!(md_a["local-hostname"], "vm-01.example.org");
    assert_eq!(md_a["dsmode"], "local");
    let iid_a = assert_fresh_iid(&md_a);
    assert_ne!(iid_a, "iid-local01");
    let mut f = fs::File::open(&b).unwrap();
    let got_b: Files = ci_agent::formats::iso9660::read_root_files(&mut f, 1 << 20)
        .unwrap()
        .into_iter()
        .collect();
    let iid_b = assert_fresh_iid(&meta_json(&got_b["meta-data"]));
    assert_ne!(iid_a, iid_b, "each seed is a new instance");
    check_iso(
        &a,
        &files(&[
            ("user-data", &fx("user-data")),
            ("meta-data", &got["meta-data"]),
        ]),
    );
}

#[test]
fn vfat_seed_reads_back_everywhere() {
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("seed.img");
    let mut c = ci_seed();
    c.args(["-f", "vfat", "-I", "iid-vfat-1", "-H", "vfat-host"])
        .args(["--network-config", p(&fixture("network-config"))])
        .arg(&img)
        .arg(fixture("user-data"));
    ok(&run(c));
    let md = b"{\n\"instance-id\": \"iid-vfat-1\",\n\"local-hostname\": \"vfat-host\"\n}\n";
    check_vfat(
        &img,
        &files(&[
            ("user-data", &fx("user-data")),
            ("meta-data", md),
            ("network-config", &fx("network-config")),
        ]),
    );
}

/// The files of a cloud-localds or ci-seed image, by any reader that works on both.
fn seed_files(img: &Path, vfat: bool) -> Files {
    let mut f = fs::File::open(img).unwrap();
    let list = if vfat {
        ci_agent::formats::fat::read_root_files(&mut f, 1 << 20).expect("FAT reader")
    } else {
        ci_agent::formats::iso9660::read_root_files(&mut f, 1 << 20).expect("ISO reader")
    };
    list.into_iter().collect()
}

#[test]
fn drop_in_for_cloud_localds() {
    if !have("cloud-localds") {
        return;
    }
    let cases: Vec<Vec<String>> = vec![
        vec![],
        vec!["-H".into(), "vm1".into()],
        vec!["-H".into(), "vm1".into(), "-m".into(), "net".into()],
        // Every flag of cloud-localds, short and long, on the same command lines.
        vec!["-i".into(), p(&fixture("interfaces")).into()],
        vec!["--interfaces".into(), p(&fixture("interfaces")).into()],
        vec![
            "--hostname=vm3".into(),
            "--dsmode".into(),
            "local".into(),
            "-v".into(),
            "--verbose".into(),
            "-d".into(),
            "raw".into(),
        ],
        vec![
            "--network-config".into(),
            p(&fixture("network-config")).into(),
            "--vendor-data".into(),
            p(&fixture("vendor-data")).into(),
            "--disk-format=raw".into(),
        ],
        vec![
            "-f".into(),
            "iso9660".into(),
            "-i".into(),
            p(&fixture("interfaces")).into(),
            "-H".into(),
            "vm4".into(),
            "-m".into(),
            "net".into(),
        ],
        vec![
            "-N".into(),
            p(&fixture("network-config")).into(),
            "-V".into(),
            p(&fixture("vendor-data")).into(),
        ],
        vec!["-f".into(), "vfat".into(), "-H".into(), "vm2".into()],
        vec!["--filesystem=iso".into(), "--dsmode=local".into()],
    ];
    for with_md in [false, true] {
        for args in &cases {
            if with_md
                && args.iter().any(|a| {
                    ["-H", "-i", "--interfaces", "-m"].contains(&a.as_str())
                        || a.contains("dsmode")
                        || a.contains("hostname")
                })
            {
                continue;
            }
            let vfat = args.iter().any(|a| a == "vfat");
            let t = tempfile::tempdir().unwrap();
            let theirs = t.path().join("theirs.img");
            let ours = t.path().join("ours.img");
            let mut positional = vec![p(&fixture("user-data")).to_string()];
            if with_md {
                positional.push(p(&fixture("meta-data")).into());
            }
            let mut c = Command::new("cloud-localds");
            c.args(args).arg(&theirs).args(&positional);
            ok(&run(c));
            let mut c = ci_seed();
            c.args(args).arg(&ours).args(&positional);
            ok(&run(c));
            let mut a = seed_files(&theirs, vfat);
            let mut b = seed_files(&ours, vfat);
            assert_eq!(
                a.keys().collect::<Vec<_>>(),
                b.keys().collect::<Vec<_>>(),
                "same files for {args:?}"
            );
            let (ma, mb) = (
                a.remove("meta-data").unwrap(),
                b.remove("meta-data").unwrap(),
            );
            assert_eq!(
                a, b,
                "same user-data/network-config/vendor-data for {args:?}"
            );
            if with_md {
                assert_eq!(ma, mb, "META-DATA copied as is");
            } else {
                let mut ja = meta_json(&ma);
                let mut jb = meta_json(&mb);
                assert_eq!(ja["instance-id"], "iid-local01");
                assert_fresh_iid(&jb);
                ja.as_object_mut().unwrap().remove("instance-id");
                jb.as_object_mut().unwrap().remove("instance-id");
                assert_eq!(ja, jb, "meta-data other than instance-id for {args:?}");
                // Same layout too: only the instance-id line differs.
                let la: Vec<_> = ma.split(|&c| c == b'\n').collect();
                let lb: Vec<_> = mb.split(|&c| c == b'\n').collect();
                assert_eq!(la.len(), lb.len());
                let differing = la.iter().zip(&lb).filter(|(x, y)| x != y).count();
                assert_eq!(differing, 1, "{}", String::from_utf8_lossy(&mb));
            }
        }
    }
}

#[test]
fn same_input_same_bytes() {
    let t = tempfile::tempdir().unwrap();
    for fs_kind in ["iso", "vfat"] {
        let mut images = Vec::new();
        for (i, epoch) in [Some("1700000000"), Some("1700000000"), None, None]
            .into_iter()
            .enumerate()
        {
            let img = t.path().join(format!("{fs_kind}-{i}.img"));
            let mut c = ci_seed();
            if let Some(e) = epoch {
                c.env("SOURCE_DATE_EPOCH", e);
            }
            c.args(["-f", fs_kind, "-I", "iid-fixed", "-H", "same"])
                .args(["-V", p(&fixture("vendor-data"))])
                .arg(&img)
                .arg(fixture("user-data"));
            ok(&run(c));
            images.push(fs::read(&img).unwrap());
        }
        assert_eq!(images[0], images[1], "{fs_kind}: SOURCE_DATE_EPOCH set");
        assert_eq!(images[2], images[3], "{fs_kind}: unset (timestamps 0)");
        // As --help says: ISO timestamps follow SOURCE_DATE_EPOCH, vfat ones are fixed.
        assert_eq!(
            images[0] == images[2],
            fs_kind == "vfat",
            "{fs_kind}: SOURCE_DATE_EPOCH changes only ISO images"
        );
    }
    // A bad SOURCE_DATE_EPOCH is an error, not a silent fallback.
    let mut c = ci_seed();
    c.env("SOURCE_DATE_EPOCH", "yesterday")
        .arg(t.path().join("x.iso"))
        .arg(fixture("user-data"));
    let out = run(c);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("SOURCE_DATE_EPOCH"));
    assert!(!t.path().join("x.iso").exists());
}

#[test]
fn directory_user_data_and_config_from_stdin() {
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("clone.iso");
    let mut c = ci_seed();
    c.args(["--config", "-", "-I", "iid-dir"])
        .arg(&img)
        .arg(fixture("dir"));
    let config = b"ROLE=web\nSIZE=large\n";
    ok(&run_stdin(c, config));
    let md = b"{\n\"instance-id\": \"iid-dir\"\n}\n";
    check_iso(
        &img,
        &files(&[
            ("user-data", &fx("dir/user-data")),
            ("meta-data", md),
            ("CONFIG", config),
            ("scripts/setup.sh", &fx("dir/scripts/setup.sh")),
            ("files/payload.txt", &fx("dir/files/payload.txt")),
        ]),
    );
    // The same as vfat.
    let img = t.path().join("clone.img");
    let mut c = ci_seed();
    c.args([
        "-f",
        "vfat",
        "--config",
        p(&fixture("dir/files/payload.txt")),
    ])
    .args(["-I", "iid-dir"])
    .arg(&img)
    .arg(fixture("dir"));
    ok(&run(c));
    check_vfat(
        &img,
        &files(&[
            ("user-data", &fx("dir/user-data")),
            ("meta-data", md),
            ("CONFIG", &fx("dir/files/payload.txt")),
            ("scripts/setup.sh", &fx("dir/scripts/setup.sh")),
            ("files/payload.txt", &fx("dir/files/payload.txt")),
        ]),
    );
}

#[test]
fn directory_with_meta_data_conflicts_with_hostname() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("seed");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("user-data"), fx("user-data")).unwrap();
    fs::write(dir.join("meta-data"), fx("meta-data")).unwrap();
    let img = t.path().join("s.iso");
    let mut c = ci_seed();
    c.args(["-H", "x"]).arg(&img).arg(&dir);
    let out = run(c);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("incompatible"), "{}", stderr(&out));
    assert!(!img.exists());
    // Without -H the directory's own meta-data is used as is.
    let mut c = ci_seed();
    c.arg(&img).arg(&dir);
    ok(&run(c));
    assert_eq!(seed_files(&img, false)["meta-data"], fx("meta-data"));
}

#[test]
fn user_data_from_stdin_and_image_to_stdout() {
    let t = tempfile::tempdir().unwrap();
    let mut c = ci_seed();
    c.args(["-I", "iid-stdio", "-", "-"]);
    let out = run_stdin(c, &fx("user-data"));
    ok(&out);
    let img = t.path().join("from-stdout.iso");
    fs::write(&img, &out.stdout).unwrap();
    check_iso(
        &img,
        &files(&[
            ("user-data", &fx("user-data")),
            ("meta-data", b"{\n\"instance-id\": \"iid-stdio\"\n}\n"),
        ]),
    );
}

#[test]
fn usage_errors_exit_2_and_write_nothing() {
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("s.iso");
    let ud = fixture("user-data");
    let md = fixture("meta-data");
    let ifaces = fixture("interfaces");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["-H", "h"], "--hostname"),
        (vec!["-m", "local"], "--dsmode"),
        (vec!["-i", p(&ifaces)], "--interfaces"),
        (vec!["-I", "iid-1"], "--instance-id"),
        (vec!["--interfaces", p(&ifaces)], "--interfaces"),
    ];
    for (opts, named) in cases {
        let mut c = ci_seed();
        c.args(&opts).arg(&img).arg(&ud).arg(&md);
        let out = run(c);
        assert_eq!(out.status.code(), Some(2), "{opts:?}");
        let e = stderr(&out);
        assert!(e.contains("incompatible") && e.contains(named), "{e}");
        assert!(!img.exists());
    }
    for (args, needle) in [
        (vec![p(&img)], "OUTPUT and USER-DATA"),
        (vec!["-f", "ext4", p(&img), p(&ud)], "ext4"),
        (vec!["-d", "tar-seed-net", p(&img), p(&ud)], "tar"),
        (vec!["-m", "cloud", p(&img), p(&ud)], "local or net"),
        (vec!["--frobnicate", p(&img), p(&ud)], "frobnicate"),
        (vec!["-H", "bad_host!", p(&img), p(&ud)], "RFC 1123"),
        (
            vec![p(&img), p(&ud), p(&md), "extra"],
            "unexpected argument",
        ),
    ] {
        let out = run({
            let mut c = ci_seed();
            c.args(&args);
            c
        });
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
        assert!(!img.exists());
    }
    // A missing input is a failure (exit 1) naming the file.
    let out = run({
        let mut c = ci_seed();
        c.arg(&img).arg(t.path().join("no-such-user-data"));
        c
    });
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no-such-user-data"));
    assert!(!img.exists());
}

#[test]
fn invalid_user_data_is_rejected_before_writing() {
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("s.iso");
    fs::write(&img, b"previous image").unwrap();
    let bad = fixture("bad-user-data");
    let out = run({
        let mut c = ci_seed();
        c.arg(&img).arg(&bad);
        c
    });
    assert_eq!(out.status.code(), Some(2));
    let e = stderr(&out);
    let prefix = format!("{}:", bad.display());
    let line = e
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no {prefix}LINE:COL in {e}"));
    let mut parts = line[prefix.len()..].splitn(3, ':');
    let l: usize = parts.next().unwrap().parse().expect("line number");
    let _c: usize = parts.next().unwrap().parse().expect("column number");
    assert!((3..=6).contains(&l), "{line}");
    assert_eq!(
        fs::read(&img).unwrap(),
        b"previous image",
        "old image untouched"
    );
    let names: Vec<_> = fs::read_dir(t.path()).unwrap().collect();
    assert_eq!(names.len(), 1, "no temp file left");
    // --no-validate writes it anyway (cloud-localds never checks).
    let out = run({
        let mut c = ci_seed();
        c.arg("--no-validate").arg(&img).arg(&bad);
        c
    });
    ok(&out);
    assert_eq!(seed_files(&img, false)["user-data"], fx("bad-user-data"));
}

#[test]
fn qcow2_through_qemu_img() {
    if !have("qemu-img") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("s.qcow2");
    let mut c = ci_seed();
    c.args(["-d", "qcow2", "-I", "iid-q"])
        .arg(&img)
        .arg(fixture("user-data"));
    ok(&run(c));
    let info = String::from_utf8_lossy(&tool("qemu-img", &["info", p(&img)])).into_owned();
    assert!(info.contains("file format: qcow2"), "{info}");
    let raw = t.path().join("back.iso");
    tool(
        "qemu-img",
        &["convert", "-f", "qcow2", "-O", "raw", p(&img), p(&raw)],
    );
    check_iso(
        &raw,
        &files(&[
            ("user-data", &fx("user-data")),
            ("meta-data", b"{\n\"instance-id\": \"iid-q\"\n}\n"),
        ]),
    );
}

fn batch(args: &[&str]) -> Output {
    let mut c = ci_seed();
    c.arg("batch").args(args);
    run(c)
}

fn check_fleet(out_dir: &Path, ext: &str) {
    let mut names: Vec<String> = fs::read_dir(out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            format!("db1.{ext}"),
            format!("web1.{ext}"),
            format!("web2.{ext}")
        ]
    );
    let vfat = ext == "img";
    let web1 = seed_files(&out_dir.join(format!("web1.{ext}")), vfat);
    assert_eq!(web1["user-data"], fx("user-data"));
    assert_eq!(web1["CONFIG"], b"ROLE=web\n");
    let md = meta_json(&web1["meta-data"]);
    assert_eq!(md["instance-id"], "iid-web1");
    assert_eq!(md["local-hostname"], "web1");
    let db1 = seed_files(&out_dir.join(format!("db1.{ext}")), vfat);
    assert_eq!(db1["CONFIG"], b"ROLE=db\n");
    let md = meta_json(&db1["meta-data"]);
    assert_eq!(md["local-hostname"], "db1.example.org");
    assert_fresh_iid(&md);
    // web2: template + its own script as a MIME multipart, no CONFIG.
    let web2 = seed_files(&out_dir.join(format!("web2.{ext}")), vfat);
    assert!(!web2.contains_key("CONFIG"));
    let mail = mailparse::parse_mail(&web2["user-data"]).expect("multipart user-data");
    assert_eq!(mail.subparts.len(), 2);
    assert_eq!(mail.subparts[0].get_body_raw().unwrap(), fx("user-data"));
    assert_eq!(mail.subparts[1].ctype.mimetype, "text/x-shellscript");
    assert_eq!(
        mail.subparts[1].get_body_raw().unwrap(),
        b"#!/bin/sh\necho web2 > /root/who\n"
    );
    if ext == "iso" {
        check_iso(
            &out_dir.join("web1.iso"),
            &files(&[
                ("user-data", &fx("user-data")),
                ("meta-data", &web1["meta-data"]),
                ("CONFIG", b"ROLE=web\n"),
            ]),
        );
    } else {
        check_vfat(
            &out_dir.join("web1.img"),
            &files(&[
                ("user-data", &fx("user-data")),
                ("meta-data", &web1["meta-data"]),
                ("CONFIG", b"ROLE=web\n"),
            ]),
        );
    }
}

#[test]
fn batch_jsonl_and_csv() {
    let t = tempfile::tempdir().unwrap();
    let ud = fixture("user-data");
    let out = t.path().join("jsonl");
    let report = t.path().join("report.jsonl");
    let o = batch(&[
        p(&fixture("fleet.jsonl")),
        "--out",
        p(&out),
        "--user-data",
        p(&ud),
        "--report",
        p(&report),
    ]);
    ok(&o);
    check_fleet(&out, "iso");
    // One summary line; the report has one line per seed.
    let summary = stdout(&o);
    assert_eq!(summary.lines().count(), 1, "{summary}");
    assert!(
        summary.starts_with("ci-seed batch: wrote 3 iso seeds to "),
        "{summary}"
    );
    let lines: Vec<serde_json::Value> = fs::read_to_string(&report)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    let web1 = lines.iter().find(|v| v["name"] == "web1").unwrap();
    assert_eq!(web1["instance-id"], "iid-web1");
    assert_eq!(web1["hostname"], "web1");
    assert_eq!(web1["path"], p(&out.join("web1.iso")));
    let db1 = lines.iter().find(|v| v["name"] == "db1").unwrap();
    let md = meta_json(&seed_files(&out.join("db1.iso"), false)["meta-data"]);
    assert_eq!(
        db1["instance-id"], md["instance-id"],
        "the generated id is reported"
    );
    // CSV report, and --quiet.
    let out2 = t.path().join("csv-report");
    let report = t.path().join("report.csv");
    let o = batch(&[
        p(&fixture("fleet.jsonl")),
        "--out",
        p(&out2),
        "-u",
        p(&ud),
        "--report",
        p(&report),
        "-q",
    ]);
    ok(&o);
    assert_eq!(stdout(&o), "");
    let csv = fs::read_to_string(&report).unwrap();
    assert!(
        csv.starts_with("name,path,instance-id,hostname\r\n"),
        "{csv}"
    );
    assert!(
        csv.contains(&format!(
            "web1,{},iid-web1,web1\r\n",
            p(&out2.join("web1.iso"))
        )),
        "{csv}"
    );
    let o = batch(&[
        p(&fixture("fleet.jsonl")),
        "--out",
        p(&out2),
        "-u",
        p(&ud),
        "--report",
        "r.txt",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains(".csv or .jsonl"), "{}", stderr(&o));
    let out = t.path().join("csv");
    ok(&batch(&[
        p(&fixture("fleet.csv")),
        "--out",
        p(&out),
        "-u",
        p(&ud),
        "-f",
        "vfat",
    ]));
    check_fleet(&out, "img");
    // Manifest from stdin (format from the first character).
    let out = t.path().join("stdin");
    let mut c = ci_seed();
    c.args(["batch", "-", "--out", p(&out), "--user-data", p(&ud)]);
    ok(&run_stdin(c, &fx("fleet.jsonl")));
    check_fleet(&out, "iso");
}

#[test]
fn batch_progress_only_on_a_terminal() {
    // util-linux's `script` gives the batch a terminal (stdout and stderr on one pty).
    if !have("script") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let args = |out: &str| {
        vec![
            p(&fixture("fleet.jsonl")).to_string(),
            "--out".into(),
            p(&t.path().join(out)).to_string(),
            "--user-data".into(),
            p(&fixture("user-data")).to_string(),
        ]
    };
    let mut line = shell_quote(env!("CARGO_BIN_EXE_ci-seed"));
    line.push_str(" batch");
    for a in args("tty") {
        line.push(' ');
        line.push_str(&shell_quote(&a));
    }
    let o = run({
        let mut c = Command::new("script");
        c.args(["-qec", &line, "/dev/null"])
            .env_remove("SOURCE_DATE_EPOCH");
        c
    });
    ok(&o);
    let text = stdout(&o);
    // The count, then the line cleared, then the summary.
    let progress = text.find("\rci-seed batch: ").expect(&text);
    assert!(text[progress..].contains("/3"), "{text:?}");
    let cleared = text.rfind("\r\x1b[K").expect(&text);
    assert!(cleared > progress, "{text:?}");
    assert!(
        text[cleared..].contains("ci-seed batch: wrote 3 iso seeds to "),
        "{text:?}"
    );
    // Not a terminal: no progress, no control characters, one summary line.
    let a: Vec<String> = args("pipe");
    let o = batch(&a.iter().map(String::as_str).collect::<Vec<_>>());
    ok(&o);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains('\r') && !err.contains('\x1b'), "{err:?}");
    assert_eq!(stdout(&o).lines().count(), 1, "{}", stdout(&o));
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[test]
fn batch_same_manifest_same_bytes_when_ids_given() {
    let t = tempfile::tempdir().unwrap();
    let manifest = t.path().join("m.csv");
    fs::write(
        &manifest,
        "name,instance-id,hostname\na,iid-a,a\nb,iid-b,b\n",
    )
    .unwrap();
    let ud = fixture("user-data");
    for d in ["x", "y"] {
        ok(&batch(&[
            p(&manifest),
            "--out",
            p(&t.path().join(d)),
            "-u",
            p(&ud),
        ]));
    }
    for n in ["a.iso", "b.iso"] {
        assert_eq!(
            fs::read(t.path().join("x").join(n)).unwrap(),
            fs::read(t.path().join("y").join(n)).unwrap()
        );
    }
    // And a batch seed equals a single build with the same inputs.
    let single = t.path().join("single.iso");
    let mut c = ci_seed();
    c.args(["-I", "iid-a", "-H", "a"]).arg(&single).arg(&ud);
    ok(&run(c));
    assert_eq!(
        fs::read(&single).unwrap(),
        fs::read(t.path().join("x/a.iso")).unwrap()
    );
}

#[test]
fn batch_bad_rows_name_the_line_and_write_nothing() {
    let t = tempfile::tempdir().unwrap();
    let ud = fixture("user-data");
    let cases: Vec<(&str, &str, Vec<&str>)> = vec![
        (
            "bad.jsonl",
            "{\"name\": \"ok1\"}\n{\"name\": \"bad host\", \"hostname\": \"no way\"}\n{\"name\": \"ok2\"}\n",
            vec![":2:", "hostname"],
        ),
        (
            "dup.jsonl",
            "{\"name\": \"a\"}\n{\"name\": \"b\"}\n\n{\"name\": \"a\"}\n",
            vec![":4:", "duplicate name \"a\"", "line 1"],
        ),
        (
            "dup.csv",
            "name,instance-id\na,iid-1\nb,iid-1\n",
            vec![":3:", "duplicate instance-id"],
        ),
        ("syntax.jsonl", "{\"name\": \"a\"}\n{\"name\": \n", vec![":2:", "JSON"]),
        ("fields.csv", "name,hostname\na,h\nb\n", vec![":3:", "fields"]),
        ("path.csv", "name\n../escape\n", vec![":2:", "name"]),
        (
            "bad-ud.jsonl",
            "{\"name\": \"a\", \"user-data\": \"#cloud-config\\nusers: [\\n\"}\n",
            vec![":1:", "user-data"],
        ),
    ];
    for (file, text, needles) in cases {
        let manifest = t.path().join(file);
        fs::write(&manifest, text).unwrap();
        let out_dir = t.path().join(format!("out-{file}"));
        let out = batch(&[p(&manifest), "--out", p(&out_dir), "--user-data", p(&ud)]);
        assert_eq!(out.status.code(), Some(2), "{file}: {}", stderr(&out));
        let e = stderr(&out);
        for n in needles {
            assert!(e.contains(n), "{file}: {n:?} not in {e}");
        }
        assert!(e.contains(p(&manifest)), "{file}: manifest path named: {e}");
        assert!(!out_dir.exists(), "{file}: nothing written");
    }
    // Usage errors.
    assert_eq!(batch(&[p(&fixture("fleet.csv"))]).status.code(), Some(2));
    assert_eq!(batch(&["--out", p(t.path())]).status.code(), Some(2));
    let out = batch(&[p(&fixture("fleet.csv")), "--out", p(&t.path().join("n"))]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "rows without user-data and no template"
    );
    assert!(stderr(&out).contains("no user-data"));
}

#[test]
fn batch_many_rows_all_written_no_temp_left() {
    let t = tempfile::tempdir().unwrap();
    let manifest = t.path().join("many.csv");
    let mut text = String::from("name,hostname,config\n");
    for i in 0..300 {
        text.push_str(&format!("vm{i:03},vm{i:03},N={i}\n"));
    }
    fs::write(&manifest, text).unwrap();
    let out_dir = t.path().join("out");
    ok(&batch(&[
        p(&manifest),
        "--out",
        p(&out_dir),
        "-u",
        p(&fixture("user-data")),
    ]));
    let names: Vec<String> = fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 300);
    assert!(names
        .iter()
        .all(|n| n.starts_with("vm") && n.ends_with(".iso")));
    let mut iids = std::collections::HashSet::new();
    for i in [0, 1, 150, 299] {
        let f = seed_files(&out_dir.join(format!("vm{i:03}.iso")), false);
        assert_eq!(f["CONFIG"], format!("N={i}").into_bytes());
        let md = meta_json(&f["meta-data"]);
        assert_eq!(md["local-hostname"], format!("vm{i:03}"));
        assert!(iids.insert(assert_fresh_iid(&md)));
    }
    // A target that cannot be replaced (a directory) is caught before anything is written.
    let out_dir = t.path().join("blocked");
    fs::create_dir_all(out_dir.join("vm150.iso")).unwrap();
    let out = batch(&[
        p(&manifest),
        "--out",
        p(&out_dir),
        "-u",
        p(&fixture("user-data")),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains(":152:"), "{}", stderr(&out));
    let left: Vec<_> = fs::read_dir(&out_dir).unwrap().collect();
    assert_eq!(left.len(), 1, "only the blocking directory");
}

#[test]
fn validate_exit_codes_and_positions() {
    let mut c = ci_seed();
    c.arg("validate")
        .arg(fixture("user-data"))
        .arg(fixture("meta-data"))
        .arg(fixture("vendor-data"))
        .arg(fixture("network-config"))
        .arg(fixture("dir/user-data"));
    let out = run(c);
    ok(&out);
    assert_eq!(stdout(&out), "");

    let bad = fixture("bad-user-data");
    let mut c = ci_seed();
    c.arg("validate").arg(fixture("user-data")).arg(&bad);
    let out = run(c);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    let prefix = format!("{}:", bad.display());
    assert!(text.lines().count() >= 1, "{text}");
    for line in text.lines() {
        let rest = line
            .strip_prefix(&prefix)
            .unwrap_or_else(|| panic!("{line}"));
        let mut parts = rest.splitn(3, ':');
        parts.next().unwrap().parse::<usize>().expect("line");
        parts.next().unwrap().parse::<usize>().expect("column");
        assert!(!parts.next().unwrap().trim().is_empty(), "a message");
    }

    // Meta-data detected by content, broken YAML.
    let t = tempfile::tempdir().unwrap();
    let md = t.path().join("md.yaml");
    fs::write(&md, "instance-id: i-1\nlocal-hostname: [oops\n").unwrap();
    let mut c = ci_seed();
    c.arg("validate").arg(&md);
    let out = run(c);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).starts_with(&format!("{}:", md.display())),
        "{}",
        stdout(&out)
    );

    // From stdin.
    let mut c = ci_seed();
    c.args(["validate", "-"]);
    let out = run_stdin(c, &fx("bad-user-data"));
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).starts_with("<stdin>:"), "{}", stdout(&out));

    // Usage and unreadable files.
    let mut c = ci_seed();
    c.arg("validate");
    assert_eq!(run(c).status.code(), Some(2));
    let mut c = ci_seed();
    c.args(["validate", "--type", "bogus", "x"]);
    assert_eq!(run(c).status.code(), Some(2));
    let mut c = ci_seed();
    c.arg("validate").arg(t.path().join("missing"));
    let out = run(c);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("missing"));
}

#[test]
fn help_texts() {
    let out = run({
        let mut c = ci_seed();
        c.arg("--help");
        c
    });
    ok(&out);
    let h = stdout(&out);
    for needle in [
        "cloud-localds",
        "img-clone",
        "--config",
        "batch",
        "validate",
        "-f, --filesystem",
    ] {
        assert!(h.contains(needle), "--help lacks {needle}");
    }
    let out = run({
        let mut c = ci_seed();
        c.arg("--version");
        c
    });
    ok(&out);
    assert!(stdout(&out).starts_with("ci-seed "));
    for sub in ["batch", "validate"] {
        let out = run({
            let mut c = ci_seed();
            c.args([sub, "--help"]);
            c
        });
        ok(&out);
        assert!(stdout(&out).contains(&format!("ci-seed {sub}")));
    }
}

#[test]
fn hostile_hostname_cannot_break_meta_data() {
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("s.iso");
    let nasty = "x\"\ninstance-id: iid-local01\n#";
    let mut c = ci_seed();
    c.args(["--no-validate", "-H", nasty, "-I", "iid-real"])
        .arg(&img)
        .arg(fixture("user-data"));
    ok(&run(c));
    let md = seed_files(&img, false)["meta-data"].clone();
    let v = meta_json(&md);
    assert_eq!(v["local-hostname"], nasty);
    assert_eq!(v["instance-id"], "iid-real");
    if have("isoinfo") {
        assert_eq!(extract_iso(&img, "meta-data"), md);
    }
}

/// A fleet of clones with static addresses is one CSV: each row's ip/gateway/dns/search/mac
/// columns become that seed's version 2 network-config, checked by the agent's parser; a bad
/// row is reported with its manifest line and nothing is written.
#[test]
fn batch_static_network_fleet() {
    let t = tempfile::tempdir().unwrap();
    let out_dir = t.path().join("out");
    let csv = t.path().join("fleet.csv");
    fs::write(
        &csv,
        "name,ip,gateway,dns,search,mac\nweb1,10.0.0.11/24,10.0.0.1,\"1.1.1.1,9.9.9.9\",lab,\nweb2,10.0.0.12/24,10.0.0.1,1.1.1.1,,52:54:00:00:00:12\nplain,,,,,\n",
    )
    .unwrap();
    ok(&batch(&[
        p(&csv),
        "--out",
        p(&out_dir),
        "--user-data",
        p(&fixture("user-data")),
    ]));
    let web1 = seed_files(&out_dir.join("web1.iso"), false);
    let nc = String::from_utf8(web1["network-config"].clone()).unwrap();
    assert!(
        nc.contains("      - \"10.0.0.11/24\"\n    gateway4: \"10.0.0.1\"\n"),
        "{nc}"
    );
    assert!(
        nc.contains("addresses: [\"1.1.1.1\", \"9.9.9.9\"]\n      search: [\"lab\"]\n"),
        "{nc}"
    );
    let mut w = Vec::new();
    assert!(matches!(
        ci_agent::network::parse("nc", nc.as_bytes(), &mut w),
        Ok(ci_agent::network::Parsed::Config(_))
    ));
    let web2 = seed_files(&out_dir.join("web2.iso"), false);
    assert!(String::from_utf8_lossy(&web2["network-config"])
        .contains("macaddress: \"52:54:00:00:00:12\""));
    assert!(!seed_files(&out_dir.join("plain.iso"), false).contains_key("network-config"));

    let bad = t.path().join("bad.csv");
    fs::write(
        &bad,
        "name,ip,gateway\nok1,10.0.0.11/24,10.0.0.1\nbad1,10.0.0.12/24,10.9.0.1\n",
    )
    .unwrap();
    let out2 = t.path().join("out2");
    let o = batch(&[
        p(&bad),
        "--out",
        p(&out2),
        "--user-data",
        p(&fixture("user-data")),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.contains("bad.csv:3: gateway 10.9.0.1 is outside every subnet"),
        "{e}"
    );
    assert!(!out2.join("ok1.iso").exists());
}

/// `ci-seed --ip …` writes the same network-config for one seed.
#[test]
fn build_with_static_network_shorthand() {
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("seed.iso");
    let mut c = ci_seed();
    c.args([
        "--ip",
        "10.0.2.20/24",
        "--gateway",
        "10.0.2.2",
        "--dns",
        "10.0.2.3",
        "--search",
        "lab",
    ])
    .arg(&img)
    .arg(fixture("user-data"));
    ok(&run(c));
    let files = seed_files(&img, false);
    let nc = String::from_utf8(files["network-config"].clone()).unwrap();
    assert!(
        nc.starts_with("version: 2\nethernets:\n  id0:\n    match:\n      name: \"e*\"\n"),
        "{nc}"
    );
}

/// The `ssh_keys` of a seed's user-data, parsed by the agent's own parser.
fn seed_ssh_keys(img: &Path) -> Vec<(String, String)> {
    use ci_agent::formats::userdata::{parse_seed, Seed};
    let seed = Seed {
        source: "test".into(),
        files: [
            ("user-data".to_string(), extract_iso(img, "user-data")),
            ("meta-data".to_string(), extract_iso(img, "meta-data")),
        ]
        .into_iter()
        .collect(),
        ..Seed::default()
    };
    let d = parse_seed(&seed).expect("seed parses");
    assert!(d.warnings.is_empty(), "{:?}", d.warnings);
    d.cloud_config.ssh_keys.expect("ssh_keys").entries
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn ssh_host_keys_go_in_the_seed_and_known_hosts() {
    if !have("isoinfo") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("vm1.iso");
    let kh = dir.path().join("known_hosts");
    fs::write(
        &kh,
        "vm1,10.0.0.7 ssh-ed25519 AAAAold\nother ssh-rsa AAAA\n",
    )
    .unwrap();
    let ud = dir.path().join("ud");
    fs::write(&ud, "#cloud-config\nhostname: vm1\n").unwrap();
    let mut c = ci_seed();
    c.args(["--ssh-host-keys", "--known-hosts", p(&kh), "-H", "vm1"])
        .args(["--ip", "10.0.0.7/24", p(&img), p(&ud)]);
    ok(&run(c));
    assert_eq!(mode(&img), 0o600, "the seed holds private keys");
    let keys = seed_ssh_keys(&img);
    let names: Vec<&str> = keys.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "ed25519_private",
            "ed25519_public",
            "ecdsa_private",
            "ecdsa_public"
        ]
    );
    let get = |n: &str| keys.iter().find(|(k, _)| k == n).unwrap().1.clone();
    let text = fs::read_to_string(&kh).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert_eq!(lines[0], "other ssh-rsa AAAA");
    for (line, t) in lines[1..].iter().zip(["ed25519", "ecdsa"]) {
        let public = get(&format!("{t}_public"));
        let mut w = public.split_whitespace();
        let (algo, b64) = (w.next().unwrap(), w.next().unwrap());
        assert_eq!(*line, format!("vm1,10.0.0.7 {algo} {b64}"));
    }
    // OpenSSH reads the private keys and derives the same public keys.
    if have("ssh-keygen") {
        for t in ["ed25519", "ecdsa"] {
            let f = dir.path().join(format!("k_{t}"));
            fs::write(&f, get(&format!("{t}_private"))).unwrap();
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&f, fs::Permissions::from_mode(0o600)).unwrap();
            let derived = tool("ssh-keygen", &["-y", "-f", p(&f)]);
            let public = get(&format!("{t}_public"));
            let key_of = |s: &str| s.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
            assert_eq!(key_of(&String::from_utf8_lossy(&derived)), key_of(&public));
        }
    }
    // Usage errors.
    let mut c = ci_seed();
    c.args(["--known-hosts", p(&kh), p(&img), p(&ud)]);
    let out = run(c);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--known-hosts needs --ssh-host-keys"));
    let mut c = ci_seed();
    c.args(["--ssh-host-keys=dsa", p(&img), p(&ud)]);
    assert!(stderr(&run(c)).contains("unknown host key type \"dsa\""));
    let mut c = ci_seed();
    c.args(["--ssh-host-keys", "--known-hosts", p(&kh), p(&img), p(&ud)]);
    assert!(stderr(&run(c)).contains("--known-hosts needs the clone's name"));
}

#[test]
fn batch_ssh_host_keys_one_known_hosts_for_the_fleet() {
    if !have("isoinfo") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("seeds");
    let kh = dir.path().join("fleet_known_hosts");
    let manifest = dir.path().join("fleet.csv");
    fs::write(
        &manifest,
        "name,hostname,ip,user-data\nweb1,web1,10.0.0.11/24,\"#cloud-config\nruncmd: [true]\"\nweb2,,,\n",
    )
    .unwrap();
    let ud = dir.path().join("ud");
    fs::write(&ud, "#cloud-config\npackages: [vim]\n").unwrap();
    let mut c = ci_seed();
    c.args(["batch", p(&manifest), "--out", p(&out), "-u", p(&ud)])
        .args(["--ssh-host-keys=ed25519", "--known-hosts", p(&kh)]);
    ok(&run(c));
    let text = fs::read_to_string(&kh).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    for (name, host) in [("web1", "web1,10.0.0.11"), ("web2", "web2")] {
        let img = out.join(format!("{name}.iso"));
        assert_eq!(mode(&img), 0o600);
        let keys = seed_ssh_keys(&img);
        assert_eq!(keys.len(), 2);
        let public = &keys[1].1;
        let key: Vec<&str> = public.split_whitespace().take(2).collect();
        assert!(
            lines.contains(&format!("{host} {}", key.join(" ")).as_str()),
            "{host}: {text}"
        );
    }
}
