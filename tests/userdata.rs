//! user-data and meta-data parsing: every classification branch, merging, YAML 1.1
//! booleans, error positions, budgets (alias bomb, deep nesting, gzip bomb), MIME with
//! encoded parts, typed cloud-config shapes, the validators.

use std::io::Write;

use ci_agent::formats::userdata::cloud_config::{
    CommandSpec, ManageEtcHosts, Package, PasswordKind, UserSpec,
};
use ci_agent::formats::userdata::{
    self, parse_seed, validate_meta_data, validate_user_data, CloudConfig, Frequency, Seed,
    SeedData,
};
use serde_json::json;

fn fixture(name: &str) -> Vec<u8> {
    let p = format!(
        "{}/tests/fixtures/userdata/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

fn seed(files: &[(&str, &[u8])]) -> Seed {
    Seed {
        source: "test".into(),
        files: files
            .iter()
            .map(|(n, d)| (n.to_string(), d.to_vec()))
            .collect(),
        ..Seed::default()
    }
}

/// Parse user-data beside a meta-data with an instance-id (without one, a warning says
/// that the id is `nocloud`).
fn ud(data: &[u8]) -> SeedData {
    parse_seed(&seed(&[
        ("user-data", data),
        ("meta-data", b"instance-id: i-test\n"),
    ]))
    .unwrap()
}

/// The names of `users` entries (`default` for the default user).
fn user_names(users: &[UserSpec]) -> Vec<String> {
    users
        .iter()
        .map(|u| match u {
            UserSpec::User(u) => u.name.clone(),
            UserSpec::Default => "default".into(),
        })
        .collect()
}

/// The first problem with this user-data: unreadable (a [`SeedData::errors`] entry) or a
/// rejected key (a [`CloudConfig::errors`] entry); neither stops the parse.
fn ud_err(data: &[u8]) -> String {
    first_error(parse_seed(&seed(&[("user-data", data)])))
}

fn first_error(r: Result<SeedData, userdata::SeedError>) -> String {
    let d = r.expect("user-data problems do not fail the parse");
    d.errors
        .iter()
        .chain(d.cloud_config.errors.iter().map(|k| &k.error))
        .next()
        .expect("an error")
        .to_string()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[test]
fn full_cloud_config_shapes() {
    let d = ud(&fixture("full.yaml"));
    let c = &d.cloud_config;
    assert!(
        d.warnings.iter().all(|w| !w.contains("not supported")),
        "{:?}",
        d.warnings
    );
    assert_eq!(c.hostname.as_deref(), Some("web1"));
    assert_eq!(c.fqdn.as_deref(), Some("web1.example.org"));
    assert_eq!(c.preserve_hostname, Some(false));
    assert_eq!(c.prefer_fqdn_over_hostname, Some(true));
    assert_eq!(c.manage_etc_hosts, Some(ManageEtcHosts::Localhost));
    assert_eq!(c.ssh_authorized_keys, ["ssh-ed25519 AAAAC3Nza top@key"]);

    let users = c.users.as_ref().unwrap();
    assert_eq!(users.len(), 5);
    assert_eq!(users[0], UserSpec::Default);
    let UserSpec::User(alice) = &users[1] else {
        panic!()
    };
    assert_eq!(alice.name, "alice");
    assert_eq!(alice.gecos.as_deref(), Some("Alice A."));
    assert_eq!(alice.groups, ["adm", "wheel"]);
    assert_eq!(alice.primary_group.as_deref(), Some("alice"));
    assert_eq!(alice.shell.as_deref(), Some("/bin/zsh"));
    assert_eq!(alice.sudo, ["ALL=(ALL) NOPASSWD:ALL"]);
    assert_eq!(alice.homedir.as_deref(), Some("/srv/alice"));
    assert_eq!(alice.lock_passwd, Some(false));
    assert_eq!(alice.passwd.as_deref(), Some("$6$salt$hash"));
    assert_eq!(alice.ssh_authorized_keys, ["ssh-rsa AAAA alice@x"]);
    assert_eq!(alice.uid, Some(1500));
    let UserSpec::User(svc) = &users[2] else {
        panic!()
    };
    assert!(svc.system && svc.no_create_home);
    assert!(svc.sudo.is_empty());
    assert_eq!(svc.groups, ["adm", "docker"]);
    assert_eq!(svc.lock_passwd, Some(false));
    assert_eq!(user_names(&users[3..]), ["bob", "carol"]);

    let groups: Vec<_> = c
        .groups
        .iter()
        .map(|g| (g.name.as_str(), g.members.clone()))
        .collect();
    assert_eq!(
        groups,
        [
            ("admins", vec!["alice".to_string(), "bob".into()]),
            ("plain", vec![]),
            ("a", vec![]),
            ("b", vec![]),
        ]
    );
    assert_eq!(c.disable_root, Some(true));
    assert_eq!(c.password.as_deref(), Some("s3cret"));

    let ch = c.chpasswd.as_ref().unwrap();
    assert_eq!(ch.expire, Some(false));
    let got: Vec<_> = ch
        .users
        .iter()
        .map(|u| (u.name.as_str(), u.password.as_deref(), u.kind))
        .collect();
    assert_eq!(
        got,
        [
            ("alice", Some("pw1"), PasswordKind::Text),
            ("bob", None, PasswordKind::Random),
            ("carol", Some("$6$rounds$abc$def"), PasswordKind::Hash),
            ("dave", None, PasswordKind::Random),
            ("erin", Some("$1$xy$zz"), PasswordKind::Hash),
            ("frank", Some("plain:with:colons"), PasswordKind::Text),
            ("gina", None, PasswordKind::Random),
        ]
    );
    assert!(d
        .warnings
        .iter()
        .any(|w| w.contains("chpasswd.list is deprecated")));
    assert_eq!(c.ssh_pwauth, None, "unchanged");
    assert_eq!(c.ssh_deletekeys, Some(true));
    assert_eq!(
        c.ssh_genkeytypes.as_deref(),
        Some(&["ed25519".to_string(), "rsa".into()][..])
    );
    assert_eq!(
        c.packages,
        [
            Package {
                name: "vim".into(),
                version: None
            },
            Package {
                name: "curl".into(),
                version: Some("7.88.1-10".into())
            },
            Package {
                name: "libfoo".into(),
                version: Some("1.10".into())
            },
        ]
    );
    assert_eq!(
        (c.package_update, c.package_upgrade),
        (Some(true), Some(true))
    );
    assert_eq!(
        c.bootcmd,
        [
            CommandSpec::Shell("echo boot".into()),
            CommandSpec::Argv(vec!["sh".into(), "-c".into(), "echo $HOME".into()]),
        ]
    );
    assert_eq!(
        c.runcmd,
        [
            CommandSpec::Argv(vec!["ls".into(), "-l".into(), "/".into()]),
            CommandSpec::Shell("echo \"hi\" > /tmp/x".into()),
            CommandSpec::Shell("42".into()),
            CommandSpec::Shell("true".into()),
        ]
    );
    let wf = &c.write_files;
    assert_eq!(wf.len(), 4);
    assert_eq!(
        (wf[0].content.as_slice(), wf[0].permissions),
        (&b"hello\n"[..], Some(0o640))
    );
    assert_eq!(wf[0].owner.as_deref(), Some("root:root"));
    assert_eq!(
        (wf[1].content.as_slice(), wf[1].permissions),
        (&b"hello b64"[..], Some(0o600))
    );
    assert!(wf[1].append && !wf[1].defer);
    assert_eq!(wf[2].content, b"hello");
    assert!(wf[2].defer);
    // cloud-init's decode_perms takes an int as the mode number: 644 is 0o1204. Warned.
    assert_eq!(wf[3].permissions, Some(644));
    assert!(
        d.warnings
            .iter()
            .any(|w| w.contains("write_files[3].permissions")),
        "{:?}",
        d.warnings
    );
    assert_eq!(c.final_message.as_deref(), Some("done in $UPTIME"));
    let ps = c.power_state.as_ref().unwrap();
    assert_eq!(ps.mode, "reboot");
    assert_eq!(ps.delay.as_deref(), Some("+5"));
    assert_eq!(ps.message.as_deref(), Some("bye"));
    assert_eq!(ps.timeout_secs, Some(30));
    assert_eq!(
        ps.condition,
        Some(CommandSpec::Shell("test -f /run/reboot".into()))
    );
}

#[test]
fn yaml11_booleans_where_booleans_are_expected_only() {
    for (word, b) in [
        ("yes", true),
        ("Yes", true),
        ("YES", true),
        ("on", true),
        ("On", true),
        ("ON", true),
        ("true", true),
        ("True", true),
        ("TRUE", true),
        ("no", false),
        ("No", false),
        ("NO", false),
        ("off", false),
        ("Off", false),
        ("OFF", false),
        ("false", false),
        ("False", false),
        ("FALSE", false),
    ] {
        let d = ud(format!("#cloud-config\nssh_pwauth: {word}\nhostname: {word}\n").as_bytes());
        assert_eq!(d.cloud_config.ssh_pwauth, Some(b), "{word}");
        assert_eq!(d.cloud_config.hostname.as_deref(), Some(word), "{word}");
        assert_eq!(d.cloud_config_json["ssh_pwauth"], json!(b), "{word}");
    }
    // Not booleans for PyYAML: y, n, mixed case, quoted.
    for word in ["y", "n", "Y", "N", "yEs", "oN", "'yes'", "\"no\""] {
        let e = ud_err(format!("#cloud-config\nssh_pwauth: {word}\n").as_bytes());
        assert!(
            e.starts_with("user-data:2:13: ssh_pwauth: expected true, false or 'unchanged'"),
            "{word}: {e}"
        );
    }
    let d = ud(b"#cloud-config\nusers:\n  - name: no\n    lock_passwd: No\n");
    let UserSpec::User(u) = &d.cloud_config.users.unwrap()[0] else {
        panic!()
    };
    assert_eq!(u.name, "no");
    assert_eq!(u.lock_passwd, Some(false));
}

#[test]
fn type_errors_name_path_file_line_column() {
    let e = ud_err(b"#cloud-config\nusers:\n  - default\n  - name: x\n    groups: {a: 1}\n");
    assert_eq!(
        e,
        "user-data:5:13: users[1].groups: expected a list of names or a comma-separated string, found a mapping"
    );
    let e = ud_err(
        b"#cloud-config\nwrite_files:\n  - path: /x\n    encoding: rot13\n    content: abc\n",
    );
    assert!(
        e.starts_with("user-data:5:14: write_files[0].content: unknown encoding 'rot13'"),
        "{e}"
    );
    // An entry without a path is skipped with a warning, as cloud-init does.
    let d = ud(b"#cloud-config\nwrite_files:\n  - content: x\n  - {path: /b}\n");
    assert_eq!(d.cloud_config.write_files.len(), 1);
    assert!(d.cloud_config.errors.is_empty());
    assert_eq!(
        d.warnings,
        ["user-data:3:5: write_files[0]: no 'path'; entry skipped"]
    );
    let e = ud_err(b"#cloud-config\nwrite_files:\n  - {path: /a, permissions: '9x'}\n");
    assert!(
        e.contains("write_files[0].permissions: expected an octal mode"),
        "{e}"
    );
    let e = ud_err(b"#cloud-config\nruncmd: echo hi\n");
    assert_eq!(
        e,
        "user-data:2:9: runcmd: expected a list of commands, found a string"
    );
    let e = ud_err(b"#cloud-config\nruncmd:\n  - {a: b}\n");
    assert!(
        e.starts_with("user-data:3:5: runcmd[0]: expected a command string or an argv list"),
        "{e}"
    );
    let e = ud_err(b"#cloud-config\npackages: [[a, b, c]]\n");
    assert!(
        e.starts_with("user-data:2:12: packages[0]: expected a name or [name, version]"),
        "{e}"
    );
    let e = ud_err(b"#cloud-config\nchpasswd: {users: [{name: a, type: md5, password: x}]}\n");
    assert!(
        e.contains("chpasswd.users[0].type: expected 'text', 'hash' or 'RANDOM', found 'md5'"),
        "{e}"
    );
    let e = ud_err(b"#cloud-config\npower_state: {mode: explode}\n");
    assert!(
        e.contains("power_state.mode: expected 'poweroff', 'reboot' or 'halt'"),
        "{e}"
    );
    let e = ud_err(b"#cloud-config\n- a\n- b\n");
    assert_eq!(
        e,
        "user-data:2:1: cloud-config must be a mapping, found a list"
    );
    // Syntax errors carry the parser's position.
    let e = ud_err(b"#cloud-config\nhostname: [a\nusers: x\n");
    assert!(e.starts_with("user-data:3:"), "{e}");
    assert!(e.contains("invalid YAML"), "{e}");
    // meta-data errors name meta-data.
    let e = parse_seed(&seed(&[("meta-data", b"instance-id: {a: 1}\n")])).unwrap_err();
    assert_eq!(
        e.to_string(),
        "meta-data:1:14: instance-id: expected a string, found a mapping"
    );
}

#[test]
fn unknown_keys_are_warnings_naming_file_and_key() {
    let d = ud(b"#cloud-config\nhostname: h\nlxd:\n  init: {}\nsnap: {}\nusers:\n  - name: u\n    selinux_user: staff_u\n");
    assert_eq!(
        d.warnings,
        [
            "user-data:3:1: 'lxd' is not supported by ci-agent (ignored)",
            "user-data:5:1: 'snap' is not supported by ci-agent (ignored)",
            "user-data:8:5: 'users[0].selinux_user' is not supported by ci-agent (ignored)",
        ]
    );
    // Kept in the JSON view.
    assert_eq!(d.cloud_config_json["snap"], json!({}));
}

#[test]
fn classification_branches() {
    // Empty: nothing, no warning. Blanks only: nothing, and a warning (as cloud-init).
    for (empty, warned) in [(&b""[..], false), (b"  \n\n", true)] {
        let d = ud(empty);
        assert!(
            d.scripts.is_empty() && d.warnings.is_empty() != warned,
            "{:?}",
            d.warnings
        );
        assert_eq!(d.cloud_config, CloudConfig::default());
    }
    // Script, any interpreter.
    let d = ud(b"#!/usr/bin/env python3\nprint('hi')\n");
    assert_eq!(d.scripts.len(), 1);
    assert_eq!(d.scripts[0].interpreter, "/usr/bin/env python3");
    assert_eq!(d.scripts[0].name, "part-001");
    assert_eq!(d.scripts[0].frequency, Frequency::PerInstance);
    assert_eq!(d.scripts[0].body, b"#!/usr/bin/env python3\nprint('hi')\n");
    // Case-insensitive prefixes.
    let d = ud(b"#Cloud-Config\nhostname: c\n");
    assert_eq!(d.cloud_config.hostname.as_deref(), Some("c"));
    // Boothook.
    let d = ud(b"#cloud-boothook\n#!/bin/bash\necho early\n");
    assert_eq!(d.boothooks.len(), 1);
    assert_eq!(d.boothooks[0].interpreter, "/bin/bash");
    assert_eq!(d.boothooks[0].body, b"#!/bin/bash\necho early\n");
    assert_eq!(d.boothooks[0].frequency, Frequency::PerBoot);
    let d = ud(b"#cloud-boothook\necho no shebang\n");
    assert_eq!(d.boothooks[0].interpreter, "/bin/sh");
    assert!(d.warnings[0].contains("no '#!' line"));
    // Include and include-once.
    let d = ud(b"#include\nhttp://127.0.0.1:8000/a\n\n# c\nhttps://127.0.0.1/b\nnot a url\n");
    assert_eq!(
        d.includes,
        ["http://127.0.0.1:8000/a", "https://127.0.0.1/b"]
    );
    assert!(d.warnings[0].contains("not a URL"), "{:?}", d.warnings);
    let d = ud(b"#include-once\nhttp://127.0.0.1/once\n");
    assert_eq!(d.includes, ["http://127.0.0.1/once"]);
    // Unsupported formats: warnings, nothing run.
    for (data, what) in [
        (
            &b"#part-handler\ndef list_types(): pass\n"[..],
            "#part-handler",
        ),
        (b"#cloud-config-jsonp\n[]\n", "#cloud-config-jsonp"),
    ] {
        let d = ud(data);
        assert!(d.scripts.is_empty() && d.cloud_config == CloudConfig::default());
        assert_eq!(d.warnings.len(), 1);
        assert!(
            d.warnings[0].starts_with("user-data: ") && d.warnings[0].contains(what),
            "{:?}",
            d.warnings
        );
    }
    // Anything else.
    let d = ud(b"hostname: looks-like-yaml\n");
    assert_eq!(
        d.warnings,
        ["user-data: unhandled user-data (first line \"hostname: looks-like-yaml\"); nothing from it is applied (cloud-config must start with a #cloud-config line)"]
    );
    assert_eq!(d.cloud_config, CloudConfig::default());
}

#[test]
fn gzip_is_decompressed_and_redetected() {
    let d = ud(&gzip(b"#cloud-config\nhostname: zipped\n"));
    assert_eq!(d.cloud_config.hostname.as_deref(), Some("zipped"));
    let d = ud(&gzip(&gzip(b"#!/bin/sh\necho twice\n")));
    assert_eq!(d.scripts[0].interpreter, "/bin/sh");
    // Nesting beyond the limit is refused.
    let mut data = b"#!/bin/sh\n".to_vec();
    for _ in 0..10 {
        data = gzip(&data);
    }
    let e = ud_err(&data);
    assert!(e.contains("nested more than"), "{e}");
    // Corrupt gzip.
    let e = ud_err(b"\x1f\x8b\x08\x00garbage");
    assert!(e.starts_with("user-data: invalid gzip data"), "{e}");
}

#[test]
fn gzip_bomb_fails_at_the_limit() {
    // ~10 MB of zeros compress to ~10 KB; with a 1 MiB limit it must stop at the limit.
    let bomb = gzip(&vec![0u8; 10 << 20]);
    assert!(bomb.len() < 20_000);
    let limits = userdata::Limits {
        max_gunzip_bytes: 1 << 20,
        ..userdata::Limits::default()
    };
    let e = first_error(userdata::parse_seed_with(
        &seed(&[("user-data", &bomb)]),
        &limits,
    ));
    assert_eq!(
        e.to_string(),
        "user-data: gzip data expands to more than 1048576 bytes"
    );
    // A 10 GB bomb (1 KB-ish per MB, streamed) against the default 64 MiB limit: built as
    // concatenated gzip members of 1 MiB of zeros each, 10240 members ≈ 10 GiB of output.
    let member = gzip(&vec![0u8; 1 << 20]);
    let mut huge = Vec::new();
    for _ in 0..10240 {
        huge.extend_from_slice(&member);
    }
    let e = ud_err(&huge);
    assert!(e.contains("expands to more than 67108864 bytes"), "{e}");
}

#[test]
fn mime_multipart_with_encoded_parts() {
    let d = ud(&fixture("mime.txt"));
    let c = &d.cloud_config;
    // A later part's top-level keys replace the earlier ones whole (cloud-init's default
    // `dict(replace)+list()+str()`): the first part's `chpasswd.expire` is gone.
    assert_eq!(c.hostname.as_deref(), Some("last=wins"));
    assert_eq!(c.runcmd, [CommandSpec::Shell("two".into())]);
    let ch = c.chpasswd.as_ref().unwrap();
    assert_eq!(ch.expire, None);
    assert_eq!(ch.users.len(), 1);
    let scripts: Vec<_> = d
        .scripts
        .iter()
        .map(|s| (s.name.as_str(), s.interpreter.as_str(), s.frequency))
        .collect();
    assert_eq!(
        scripts,
        [
            ("setup.sh", "/bin/bash", Frequency::PerInstance),
            ("every.sh", "/bin/sh", Frequency::PerBoot),
            ("part-004", "/usr/bin/env python3", Frequency::Once),
            ("plain.sh", "/bin/sh", Frequency::PerInstance),
        ]
    );
    assert_eq!(d.scripts[0].body, b"#!/bin/bash\necho setup\n");
    assert_eq!(d.boothooks.len(), 1);
    assert_eq!(d.boothooks[0].name, "hook");
    assert_eq!(
        d.includes,
        ["http://127.0.0.1:1/a.yaml", "http://127.0.0.1:1/b.yaml"]
    );
    // The jinja part renders `{{ x }}` as cloud-init does (x is not in the instance
    // data), and what it renders to is neither cloud-config nor a script.
    assert_eq!(d.warnings.len(), 3, "{:?}", d.warnings);
    assert!(
        d.warnings[0].starts_with("user-data[part-009]: jinja variables not in the instance data")
            && d.warnings[0].ends_with("'x'"),
        "{:?}",
        d.warnings
    );
    assert!(
        d.warnings[1].contains("neither #cloud-config nor a #! script"),
        "{:?}",
        d.warnings
    );
    assert!(d.warnings[2].starts_with("user-data[foo.bin]: MIME part type 'application/x-foo'"));
}

#[test]
fn mime_part_errors_name_the_part() {
    let msg = b"Content-Type: multipart/mixed; boundary=B\nMIME-Version: 1.0\n\n--B\nContent-Type: text/cloud-config\nContent-Disposition: attachment; filename=\"bad.yaml\"\n\nusers: 3\n--B--\n";
    let e = ud_err(msg);
    assert_eq!(
        e,
        "user-data[bad.yaml]:1:8: users: expected a list of users, found an integer"
    );
    // A gzip part inside MIME, and a hostile part filename.
    let mut msg = b"Content-Type: multipart/mixed; boundary=B\nMIME-Version: 1.0\n\n--B\nContent-Type: application/gzip\nContent-Transfer-Encoding: base64\nContent-Disposition: attachment; filename=\"../../etc/x\"\n\n".to_vec();
    use base64::Engine;
    msg.extend(
        base64::engine::general_purpose::STANDARD
            .encode(gzip(b"#!/bin/sh\necho gz\n"))
            .as_bytes(),
    );
    msg.extend(b"\n--B--\n");
    let d = ud(&msg);
    assert_eq!(d.scripts.len(), 1);
    assert_eq!(d.scripts[0].name, "x");
}

#[test]
fn vendor_data_is_below_user_data() {
    let d = parse_seed(&seed(&[
        (
            "vendor-data",
            b"#cloud-config\nhostname: vendor\npackages: [v]\nruncmd: [vendor]\n",
        ),
        ("user-data", b"#cloud-config\nhostname: user\n"),
    ]))
    .unwrap();
    assert_eq!(d.cloud_config.hostname.as_deref(), Some("user"));
    assert_eq!(d.cloud_config.packages[0].name, "v");
    assert_eq!(d.cloud_config.runcmd, [CommandSpec::Shell("vendor".into())]);
    // Vendor scripts first, named vendor-…; the list form of vendor-data.
    let d = parse_seed(&seed(&[
        (
            "vendor-data",
            b"- \"#!/bin/sh\\necho v\\n\"\n- \"#cloud-config\\nfqdn: v.example\\n\"\n",
        ),
        ("user-data", b"#!/bin/sh\necho u\n"),
    ]))
    .unwrap();
    let names: Vec<_> = d.scripts.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["vendor-part-001", "part-001"]);
    assert_eq!(d.cloud_config.fqdn.as_deref(), Some("v.example"));
    // {cloud-init: "..."} form.
    let d = parse_seed(&seed(&[(
        "vendor-data",
        b"cloud-init: \"#cloud-config\\nhostname: ci\\n\"\n",
    )]))
    .unwrap();
    assert_eq!(d.cloud_config.hostname.as_deref(), Some("ci"));
    // Disabled by user-data.
    let d = parse_seed(&seed(&[
        ("vendor-data", b"#cloud-config\nhostname: vendor\n"),
        (
            "user-data",
            b"#cloud-config\nvendor_data: {enabled: false}\n",
        ),
    ]))
    .unwrap();
    assert_eq!(d.cloud_config.hostname, None);
    assert!(d.warnings.iter().any(|w| w.contains("vendor_data.enabled")));
}

#[test]
fn alias_bomb_and_deep_nesting_fail_fast() {
    let pad = "lol".repeat(1300);
    let mut doc = format!(
        "#cloud-config\na: &a [{}]\n",
        vec![format!("\"{pad}\""); 9].join(", ")
    );
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
    for w in names.windows(2) {
        doc.push_str(&format!(
            "{}: &{} [{}]\n",
            w[1],
            w[1],
            vec![format!("*{}", w[0]); 9].join(", ")
        ));
    }
    assert!(doc.len() > 30_000);
    let e = ud_err(doc.as_bytes());
    assert!(
        e.starts_with("user-data:") && e.contains("YAML limits"),
        "{e}"
    );
    let deep = format!(
        "#cloud-config\nx: {}1{}\n",
        "{a: ".repeat(100_000),
        "}".repeat(100_000)
    );
    let e = ud_err(deep.as_bytes());
    assert!(e.starts_with("user-data:2:"), "{e}");
    let deep = format!("{}1{}", "{\"a\": ".repeat(100_000), "}".repeat(100_000));
    let e = parse_seed(&seed(&[("meta-data", deep.as_bytes())])).unwrap_err();
    assert!(e.to_string().starts_with("meta-data:"), "{e}");
}

#[test]
fn json_meta_data_and_public_keys_shapes() {
    let d = parse_seed(&seed(&[(
        "meta-data",
        br#"{"instance-id": "i-json", "local-hostname": "j", "public-keys": ["k1", "k2"], "x": {"y": [1, true]}}"#,
    )]))
    .unwrap();
    assert_eq!(d.instance_id, "i-json");
    assert_eq!(d.hostname.as_deref(), Some("j"));
    assert_eq!(d.meta.public_keys, ["k1", "k2"]);
    assert_eq!(d.meta.raw["x"], json!({"y": [1, true]}));
    let d = parse_seed(&seed(&[(
        "meta-data",
        b"public-keys: |\n  ssh-rsa A\n  ssh-rsa B\n",
    )]))
    .unwrap();
    assert_eq!(d.meta.public_keys, ["ssh-rsa A", "ssh-rsa B"]);
    assert_eq!(d.instance_id, "nocloud");
    let d = parse_seed(&seed(&[(
        "meta-data",
        b"public-keys:\n  one: ssh-rsa A\n  two: [ssh-rsa B, ssh-rsa C]\n",
    )]))
    .unwrap();
    assert_eq!(d.meta.public_keys, ["ssh-rsa A", "ssh-rsa B", "ssh-rsa C"]);
}

#[test]
fn from_value_and_deserialize_glue() {
    let v = json!({"hostname": "h", "users": ["default", {"name": "a", "groups": "x,y"}], "ssh_pwauth": true});
    let c = CloudConfig::from_value(&v).unwrap();
    assert_eq!(c.hostname.as_deref(), Some("h"));
    let UserSpec::User(a) = &c.users.as_ref().unwrap()[1] else {
        panic!()
    };
    assert_eq!(a.groups, ["x", "y"]);
    // JSON strings are never YAML 1.1 booleans.
    let e = CloudConfig::from_value(&json!({"ssh_pwauth": "yes"})).unwrap_err();
    assert_eq!(
        e.to_string(),
        "cloud-config: ssh_pwauth: expected true, false or 'unchanged', found a string"
    );
    let c: CloudConfig = serde_json::from_value(json!({"runcmd": [["a", 1]]})).unwrap();
    assert_eq!(c.runcmd, [CommandSpec::Argv(vec!["a".into(), "1".into()])]);
    // The merged JSON round-trips through from_value to the same typed config, except
    // where the JSON view is PyYAML's: `1.10` is the float 1.1 there, while the typed
    // config keeps the spelling.
    let d = ud(&fixture("full.yaml"));
    assert_eq!(d.cloud_config_json["packages"][2], json!(["libfoo", 1.1]));
    let mut from_json = CloudConfig::from_value(&d.cloud_config_json).unwrap();
    assert_eq!(from_json.packages[2].version.as_deref(), Some("1.1"));
    from_json.packages[2].version = Some("1.10".into());
    assert_eq!(from_json, d.cloud_config);
}

#[test]
fn validators_report_everything() {
    assert!(validate_user_data("user-data", b"#cloud-config\nhostname: h\n").is_empty());
    let v = validate_user_data("ud", b"#cloud-config\nhostname: h\nfoo: 1\n");
    assert_eq!(v.len(), 1);
    assert_eq!(
        v[0].to_string(),
        "ud:3:1: warning: 'foo' is not supported by ci-agent (ignored)"
    );
    // Errors in two MIME parts: both reported.
    let msg = b"Content-Type: multipart/mixed; boundary=B\nMIME-Version: 1.0\n\n--B\nContent-Type: text/cloud-config\n\nusers: 3\n--B\nContent-Type: text/cloud-config\n\nruncmd: [\n--B--\n";
    let v = validate_user_data("ud", msg);
    let errors: Vec<_> = v
        .iter()
        .filter(|e| !e.message.starts_with("warning:"))
        .collect();
    assert_eq!(errors.len(), 2, "{v:?}");
    assert!(errors[0]
        .to_string()
        .starts_with("ud[part-001]:1:8: users:"));
    assert!(errors[1].to_string().starts_with("ud[part-002]:"));
    assert!(validate_meta_data("meta-data", b"instance-id: x\n").is_empty());
    let v = validate_meta_data("md", b"instance-id: [x]\n");
    assert_eq!(
        v[0].to_string(),
        "md:1:14: instance-id: expected a string, found a list"
    );
}

#[test]
fn arbitrary_bytes_never_panic() {
    use proptest::prelude::*;
    let mut runner = proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
        cases: 300,
        ..Default::default()
    });
    let prefixes = prop_oneof![
        Just(b"#cloud-config\n".to_vec()),
        Just(b"Content-Type: multipart/mixed; boundary=B\nMIME-Version: 1.0\n\n--B\n".to_vec()),
        Just(vec![0x1f, 0x8b]),
        Just(b"#include\n".to_vec()),
        Just(Vec::new()),
    ];
    runner
        .run(
            &(prefixes, proptest::collection::vec(any::<u8>(), 0..400)),
            |(p, tail)| {
                let mut data = p;
                data.extend(tail);
                let _ = parse_seed(&seed(&[("user-data", &data), ("meta-data", &data)]));
                let _ = validate_user_data("u", &data);
                Ok(())
            },
        )
        .unwrap();
}

#[test]
fn users_mapping_form_and_nameless_users() {
    let d = ud(b"#cloud-config\nusers:\n  alice: {shell: /bin/sh}\n  bob: true\n  carol: false\n  default: {}\n");
    let users = d.cloud_config.users.unwrap();
    assert_eq!(users.len(), 3);
    let UserSpec::User(a) = &users[0] else {
        panic!()
    };
    assert_eq!(
        (a.name.as_str(), a.shell.as_deref()),
        ("alice", Some("/bin/sh"))
    );
    let UserSpec::User(b) = &users[1] else {
        panic!()
    };
    assert_eq!(b.name, "bob");
    assert_eq!(users[2], UserSpec::Default);
    let d = ud(b"#cloud-config\nusers:\n  - gecos: x\n");
    assert_eq!(d.cloud_config.users, Some(vec![]));
    assert!(
        d.warnings[0].starts_with("user-data:3:5: users[0]: a user without 'name'"),
        "{:?}",
        d.warnings
    );
    // `users: []` and `users:` mean no users at all (not even the default one).
    assert_eq!(
        ud(b"#cloud-config\nusers: []\n").cloud_config.users,
        Some(vec![])
    );
    assert_eq!(
        ud(b"#cloud-config\nusers:\n").cloud_config.users,
        Some(vec![])
    );
    assert_eq!(ud(b"#cloud-config\nhostname: x\n").cloud_config.users, None);
}

/// cloud-init left-strips user-data before looking at its first line: a templated seed
/// that starts with a blank line is still cloud-config (or a script, a boothook). The
/// script keeps its bytes (CRLF made LF), as cloud-init writes it; a boothook loses only
/// a `#cloud-boothook` that starts it and the blanks after that.
#[test]
fn leading_whitespace_does_not_hide_the_format() {
    let d = ud(b"\n\n  #cloud-config\nhostname: after-blank\n");
    assert_eq!(d.cloud_config.hostname.as_deref(), Some("after-blank"));
    assert!(d.warnings.is_empty(), "{:?}", d.warnings);
    let d = ud(b"\r\n\t#!/bin/bash\necho hi\n");
    assert_eq!(d.scripts.len(), 1);
    assert_eq!(d.scripts[0].interpreter, "/bin/bash");
    assert_eq!(d.scripts[0].body, b"\n\t#!/bin/bash\necho hi\n");
    let d = ud(b"\n#cloud-boothook\n#!/bin/sh\necho early\n");
    assert_eq!(d.boothooks.len(), 1);
    assert_eq!(
        d.boothooks[0].body,
        b"#cloud-boothook\n#!/bin/sh\necho early\n"
    );
    let d = ud(b"#cloud-boothook #!/bin/sh\r\necho same line\r\n");
    assert_eq!(d.boothooks[0].body, b"#!/bin/sh\necho same line\n");
    // A byte order mark hides the format from cloud-init too: a warning says why.
    let d = ud(b"\xef\xbb\xbf#cloud-config\nhostname: bom\n");
    assert_eq!(d.cloud_config.hostname, None);
    assert!(
        d.warnings[0].contains("byte order mark"),
        "{:?}",
        d.warnings
    );
    let d = ud(b"\n#include\nhttp://127.0.0.1/a\n");
    assert_eq!(d.includes, ["http://127.0.0.1/a"]);
    // A YAML error in such a document still names the right line.
    let e = ud_err(b"\n#cloud-config\nusers: [\n");
    assert!(e.starts_with("user-data:"), "{e}");
    // Inside a text/plain MIME part too.
    let d = ud(
        b"Content-Type: multipart/mixed; boundary=B\nMIME-Version: 1.0\n\n--B\n\
Content-Type: text/plain\n\n\n#!/bin/sh\necho p\n--B--\n",
    );
    assert_eq!(d.scripts.len(), 1, "{:?}", d.warnings);
    assert_eq!(d.scripts[0].interpreter, "/bin/sh");
}

/// A flat mapping of many keys (with a duplicate) and a merge of two such parts keep the
/// semantics: last value wins, first position kept, later part wins. (These used to be
/// quadratic: a ~1 MB cloud-config of 90,000 keys took two minutes.)
#[test]
fn many_keys_parse_and_merge() {
    let n = 20_000;
    let mut a = String::from("#cloud-config\nhostname: first\n");
    let mut b = String::from("#cloud-config\n");
    for i in 0..n {
        a.push_str(&format!("x_{i}: a\n"));
        b.push_str(&format!("x_{i}: b\n"));
    }
    a.push_str("hostname: again\n");
    b.push_str("fqdn: from-b.example\n");
    let node = ci_agent::formats::yaml::parse_node(&a, "a").unwrap();
    let ci_agent::formats::yaml::NodeValue::Map(m) = &node.value else {
        panic!("not a map")
    };
    assert_eq!(m.len(), n + 1);
    assert_eq!(m[0].0.name, "hostname");
    assert_eq!(m[0].0.pos.line, 2);
    assert_eq!(m[0].1.as_text().as_deref(), Some("again"));
    let mime = format!(
        "Content-Type: multipart/mixed; boundary=B\nMIME-Version: 1.0\n\n--B\n\
Content-Type: text/cloud-config\n\n{a}--B\nContent-Type: text/cloud-config\n\n{b}--B--\n"
    );
    let d = ud(mime.as_bytes());
    let j = d.cloud_config_json.as_object().unwrap();
    assert_eq!(j.len(), n + 2);
    assert_eq!(j["x_0"], "b");
    assert_eq!(j[&format!("x_{}", n - 1)], "b");
    assert_eq!(d.cloud_config.hostname.as_deref(), Some("again"));
    assert_eq!(d.cloud_config.fqdn.as_deref(), Some("from-b.example"));
}

/// An `#include` listed by vendor-data brings vendor data: it stays below user-data and
/// its scripts are vendor scripts. One listed by user-data is user data.
#[test]
fn vendor_includes_stay_vendor_data() {
    let s = seed(&[
        (
            "vendor-data",
            b"#include\nhttp://127.0.0.1:9/vendor.yaml\nhttp://127.0.0.1:9/vendor.sh\n",
        ),
        (
            "user-data",
            b"Content-Type: multipart/mixed; boundary=B\nMIME-Version: 1.0\n\n--B\n\
Content-Type: text/cloud-config\n\n#cloud-config\nhostname: user\n--B\n\
Content-Type: text/x-include-url\n\nhttp://127.0.0.1:9/user.yaml\n--B--\n",
        ),
    ]);
    let limits = userdata::Limits::default();
    let included = vec![
        (
            "http://127.0.0.1:9/vendor.yaml".to_string(),
            b"#cloud-config\nhostname: vendor\nfqdn: v.example\n".to_vec(),
        ),
        (
            "http://127.0.0.1:9/vendor.sh".to_string(),
            b"#!/bin/sh\necho vendor\n".to_vec(),
        ),
        (
            "http://127.0.0.1:9/user.yaml".to_string(),
            b"#cloud-config\npackages: [jq]\n".to_vec(),
        ),
    ];
    let d = userdata::parse_seed_including(&s, &limits, &included).unwrap();
    assert_eq!(d.cloud_config.hostname.as_deref(), Some("user"));
    assert_eq!(d.cloud_config.fqdn.as_deref(), Some("v.example"));
    assert_eq!(d.cloud_config.packages.len(), 1);
    let names: Vec<_> = d.scripts.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["vendor-part-001"]);
}

/// The gunzip budget is for a whole file: many gzip parts, each under the limit, cannot
/// together hold more than it (their script bodies are all kept).
#[test]
fn gzip_budget_is_shared_by_all_parts() {
    use base64::Engine;
    let limits = userdata::Limits {
        max_gunzip_bytes: 1 << 20,
        ..userdata::Limits::default()
    };
    let mut body = b"#!/bin/sh\n".to_vec();
    body.resize(400 << 10, b'#');
    let part = base64::engine::general_purpose::STANDARD.encode(gzip(&body));
    let mime = |n: usize| {
        let mut m =
            String::from("Content-Type: multipart/mixed; boundary=B\nMIME-Version: 1.0\n\n");
        for _ in 0..n {
            m.push_str(
                "--B\nContent-Type: text/x-shellscript\nContent-Transfer-Encoding: base64\n\n",
            );
            m.push_str(&part);
            m.push('\n');
        }
        m.push_str("--B--\n");
        m.into_bytes()
    };
    // Two parts of 400 KiB fit in 1 MiB; a third does not.
    let d = userdata::parse_seed_with(&seed(&[("user-data", &mime(2))]), &limits).unwrap();
    assert_eq!(d.scripts.len(), 2);
    let e = first_error(userdata::parse_seed_with(
        &seed(&[("user-data", &mime(3))]),
        &limits,
    ));
    let e = e.to_string();
    assert!(e.starts_with("user-data[part-003]: "), "{e}");
    assert!(e.contains("together may expand to 1048576 bytes"), "{e}");
}

/// cloud-init drops a line's leading `#include` before reading the URL: the one-line
/// form `#include http://…` works.
#[test]
fn include_url_on_the_directive_line() {
    let d = ud(b"#include http://127.0.0.1/one\n#INCLUDE-ONCE  http://127.0.0.1/two\n# note\nhttp://127.0.0.1/three\n");
    assert_eq!(
        d.includes,
        [
            "http://127.0.0.1/one",
            "http://127.0.0.1/two",
            "http://127.0.0.1/three"
        ]
    );
    assert!(d.warnings.is_empty(), "{:?}", d.warnings);
}

#[test]
fn yaml11_values_reach_write_files_and_users_as_cloud_init_reads_them() {
    let payload = b"gzipped payload\n";
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(gzip(payload));
    let doc = format!(
        "#cloud-config
write_files:
  - path: /a
    permissions: 0755
  - path: /b
    permissions: 0o600
  - path: /c
    permissions: '0640'
  - path: /d
    encoding: gzip
    content: !!binary |
      {b64}
  - path: /e
    content: !!binary |
      {b64}
  - path: /f
    encoding: b64
    content: aGVs*bG8=
users:
  - name: ann
    ssh-authorized-keys: [ssh-ed25519 AAAA k]
    lock-passwd: false
    primary-group: staff
"
    );
    let d = ud(doc.as_bytes());
    assert!(
        d.cloud_config.errors.is_empty(),
        "{:?}",
        d.cloud_config.errors
    );
    let w = &d.cloud_config.write_files;
    assert_eq!(w[0].permissions, Some(0o755));
    assert_eq!(w[1].permissions, Some(0o600));
    assert_eq!(w[2].permissions, Some(0o640));
    assert_eq!(w[3].content, payload);
    assert_eq!(w[4].content, gzip(payload));
    assert_eq!(w[5].content, b"hello");
    let UserSpec::User(u) = &d.cloud_config.users.as_ref().unwrap()[0] else {
        panic!()
    };
    assert_eq!(u.ssh_authorized_keys, ["ssh-ed25519 AAAA k"]);
    assert_eq!(u.lock_passwd, Some(false));
    assert_eq!(u.primary_group.as_deref(), Some("staff"));
    assert_eq!(
        d.cloud_config_json["write_files"][0]["permissions"],
        json!(493)
    );
    assert_eq!(
        d.cloud_config_json["write_files"][1]["permissions"],
        json!("0o600")
    );
}

#[test]
fn a_rejected_key_names_its_mime_part_and_spares_the_rest() {
    let msg = b"Content-Type: multipart/mixed; boundary=B\nMIME-Version: 1.0\n\n--B\nContent-Type: text/cloud-config\n\nhostname: h1\nusers: 3\n--B\nContent-Type: text/cloud-config\n\nruncmd: [ls]\n--B--\n";
    let d = ud(msg);
    assert!(d.errors.is_empty());
    assert_eq!(d.cloud_config.hostname.as_deref(), Some("h1"));
    assert_eq!(d.cloud_config.runcmd.len(), 1);
    let e: Vec<String> = d
        .cloud_config
        .errors_for(&["users"])
        .map(ToString::to_string)
        .collect();
    assert_eq!(e.len(), 1);
    assert!(e[0].starts_with("user-data[part-001]:2:8: users:"), "{e:?}");
    // Secrets in a rejected value are not echoed.
    let d = ud(b"#cloud-config\nchpasswd:\n  users:\n    - {name: a, password: {p: hunter2}}\n");
    let e = d.cloud_config.errors[0].error.to_string();
    assert!(
        e.contains("chpasswd.users[0].password") && !e.contains("hunter2"),
        "{e}"
    );
}

#[test]
fn ssh_keys_entries_are_kept_and_bad_ones_are_positioned_warnings() {
    let pubkey = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/hostkeys/ssh_host_ed25519_key.pub"
    ))
    .unwrap();
    let doc = format!(
        "#cloud-config\nno_ssh_fingerprints: true\nssh_keys:\n  ed25519_public: {}\n  rsa_private: |\n    -----BEGIN OPENSSH PRIVATE KEY-----\n    c2VjcmV0\n    -----END OPENSSH PRIVATE KEY-----\n  dsa_private: x\n  foo_bar: y\n",
        pubkey.trim()
    );
    let d = ud(doc.as_bytes());
    let c = &d.cloud_config;
    assert_eq!(c.no_ssh_fingerprints, Some(true));
    let keys = c.ssh_keys.as_ref().unwrap();
    assert_eq!(keys.get("ed25519_public"), Some(pubkey.trim()));
    assert!(keys.get("rsa_private").is_some());
    assert_eq!(keys.entries.len(), 2);
    assert_eq!(d.warnings.len(), 3, "{:?}", d.warnings);
    assert!(
        d.warnings[0]
            .starts_with("user-data:6:5: ssh_keys.rsa_private: not a valid OpenSSH private key"),
        "{:?}",
        d.warnings
    );
    assert!(d.warnings[1].contains("ssh_keys.dsa_private: DSA host keys are not supported"));
    assert_eq!(
        d.warnings[2],
        "user-data:10:3: 'ssh_keys.foo_bar' is not supported by ci-agent (ignored)"
    );
    // Private key text never shows in Debug or in the typed config's JSON.
    let shown = format!("{c:?} {}", serde_json::to_string(c).unwrap());
    assert!(!shown.contains("c2VjcmV0"), "{shown}");
    // A non-string entry is a type error like any other.
    let d = ud(b"#cloud-config\nssh_keys:\n  rsa_private: [1]\n");
    let e: Vec<String> = d
        .cloud_config
        .errors_for(&["ssh_keys"])
        .map(ToString::to_string)
        .collect();
    assert!(
        e[0].contains("ssh_keys.rsa_private: expected a string"),
        "{e:?}"
    );
    assert!(d.cloud_config.ssh_keys.is_none());
}

fn ud_meta(data: &[u8], meta: &[u8]) -> SeedData {
    parse_seed(&seed(&[("user-data", data), ("meta-data", meta)])).unwrap()
}

#[test]
fn jinja_templates_render_with_instance_data() {
    let meta = b"instance-id: i-9\nlocal-hostname: web-9\nregion: eu-1\ncloud-name: MyCloud\n";
    let d = ud_meta(
        b"## template: jinja\n#cloud-config\nhostname: {{ v1.local_hostname }}-x\nruncmd:\n  - echo {{ ds.meta_data.region }} {{ instance_id }} {{ v1.cloud_name }} {{ v1.platform }}\n",
        meta,
    );
    assert!(
        d.errors.is_empty() && d.warnings.is_empty(),
        "{:?} {:?}",
        d.errors,
        d.warnings
    );
    assert_eq!(d.cloud_config.hostname.as_deref(), Some("web-9-x"));
    assert_eq!(
        d.cloud_config.runcmd,
        [CommandSpec::Shell("echo eu-1 i-9 mycloud nocloud".into())]
    );
    // The instance data the run writes holds the merged cloud-config.
    assert_eq!(d.instance_data["merged_cfg"]["hostname"], "web-9-x");
    assert_eq!(d.instance_data["v1"]["region"], "eu-1");

    // A script, and the machine's facts.
    let sys = userdata::SysInfo {
        system: "Linux".into(),
        distro: "debian".into(),
        distro_version: "12".into(),
        distro_release: "bookworm".into(),
        kernel_release: "6.1.0-9".into(),
        machine: "x86_64".into(),
    };
    let s = seed(&[
        (
            "user-data",
            b"## template: jinja\n#!/bin/sh\necho {{ v1.distro }} {{ v1.distro_release }} {{ v1.kernel_release }} {{ v1.variant }}\n",
        ),
        ("meta-data", meta),
    ]);
    let d = userdata::parse_seed_on(&s, &sys).unwrap();
    assert_eq!(d.scripts.len(), 1);
    assert_eq!(
        d.scripts[0].body,
        b"#!/bin/sh\necho debian bookworm 6.1.0-9 debian\n"
    );
    assert_eq!(d.scripts[0].frequency, Frequency::PerInstance);
}

#[test]
fn jinja_problems_name_the_part() {
    // Missing variables: cloud-init's marker and a warning.
    let d = ud(b"## template: jinja\n#cloud-config\nhostname: {{ v1.nope }}\n");
    assert_eq!(
        d.cloud_config.hostname.as_deref(),
        Some("CI_MISSING_JINJA_VAR/nope")
    );
    assert!(d.warnings[0].contains("'nope'"), "{:?}", d.warnings);
    // A broken template is an error for its part only; the other parts apply.
    let mime = b"Content-Type: multipart/mixed; boundary=\"B\"\nMIME-Version: 1.0\n\n--B\nContent-Type: text/jinja2\nContent-Disposition: attachment; filename=\"bad.j2\"\n\n## template: jinja\n#cloud-config\n{% if %}\n--B\nContent-Type: text/cloud-config\n\nhostname: fine\n--B--\n";
    let d = ud(mime);
    assert_eq!(d.cloud_config.hostname.as_deref(), Some("fine"));
    assert_eq!(d.errors.len(), 1, "{:?}", d.errors);
    let e = d.errors[0].to_string();
    assert!(
        e.starts_with("user-data[bad.j2]: invalid jinja template: line 3"),
        "{e}"
    );
    // A template that would never end runs out of fuel.
    let e = ud_err(b"## template: jinja\n{% for a in range(99999) %}{% for b in range(99999) %}{{ a }}{% endfor %}{% endfor %}\n");
    assert!(e.contains("cannot render jinja template"), "{e}");
    // Too much output.
    let limits = userdata::Limits {
        max_template_output: 1000,
        ..userdata::Limits::default()
    };
    let e = first_error(userdata::parse_seed_with(
        &seed(&[(
            "user-data",
            b"## template: jinja\n{% for a in range(2000) %}xx{% endfor %}\n",
        )]),
        &limits,
    ));
    assert!(e.contains("larger than 1000 bytes"), "{e}");
    // `ci-seed validate` renders too.
    let p = userdata::validate_user_data("ud", b"## template: jinja\n{{ }\n");
    assert!(p[0].message.starts_with("invalid jinja template"), "{p:?}");
}

#[test]
fn cloud_config_archive_parts() {
    let archive = b"#cloud-config-archive
- |
  #cloud-config
  hostname: from-string
- type: text/x-shellscript
  filename: setup.sh
  content: |
    #!/bin/bash
    echo setup
- content: |
    #!/bin/sh
    echo detected
- filename: later.cfg
  content: |
    runcmd: [echo later]
- content: |
    ## template: jinja
    #cloud-config
    fqdn: {{ v1.instance_id }}.example
- type: text/cloud-boothook
  content: |
    #!/bin/sh
    echo hook
- content: '#include http://127.0.0.1/x'
- launch-index: 3
  content: |
    #cloud-config
    final_message: indexed
- 42
";
    let d = ud_meta(archive, b"instance-id: i-a\nlaunch-index: 0\n");
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    let c = &d.cloud_config;
    assert_eq!(c.hostname.as_deref(), Some("from-string"));
    assert_eq!(c.fqdn.as_deref(), Some("i-a.example"));
    assert_eq!(c.runcmd, [CommandSpec::Shell("echo later".into())]);
    assert_eq!(c.final_message, None);
    let scripts: Vec<_> = d
        .scripts
        .iter()
        .map(|s| (s.name.as_str(), s.body.as_slice()))
        .collect();
    assert_eq!(
        scripts,
        [
            ("setup.sh", &b"#!/bin/bash\necho setup\n"[..]),
            ("part-003", b"#!/bin/sh\necho detected\n"),
        ]
    );
    assert_eq!(d.boothooks.len(), 1);
    // An #include inside an archive is not followed (cloud-init does not either).
    assert!(d.includes.is_empty());
    let w = d.warnings.join("\n");
    assert!(
        w.contains("type 'text/x-include-url' is not handled"),
        "{w}"
    );
    assert!(
        w.contains("launch-index 3 is not this instance's (0)"),
        "{w}"
    );
    assert!(w.contains("expected text or a mapping"), "{w}");
    // Without a launch-index in meta-data every part applies.
    let d = ud(archive);
    assert_eq!(d.cloud_config.final_message.as_deref(), Some("indexed"));
    // Not a list: an error naming the file.
    let e = ud_err(b"#cloud-config-archive\nhostname: x\n");
    assert!(
        e.contains("must be a list of parts, found a mapping"),
        "{e}"
    );
    // As a MIME part.
    let mime = b"Content-Type: multipart/mixed; boundary=\"B\"\nMIME-Version: 1.0\n\n--B\nContent-Type: text/cloud-config-archive\n\n- content: 'hostname: mimed'\n--B--\n";
    assert_eq!(ud(mime).cloud_config.hostname.as_deref(), Some("mimed"));
}

/// Cloud-config parts merge with cloud-init's mergers: by default a later part's top-level
/// keys replace earlier ones; `merge_how` and the `Merge-Type` header append lists (here
/// `runcmd`, `users` with dashed keys, `write_files`), and never reach the config.
#[test]
fn merge_how_and_merge_type_append_across_parts() {
    let msg = b"MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=B\n\n\
--B\nContent-Type: text/cloud-config\n\n#cloud-config\nruncmd: [one]\n\
users: [{name: a, ssh-authorized-keys: [k1]}]\nwrite_files: [{path: /a, content: a}]\n\
chpasswd: {expire: false}\n\
--B\nContent-Type: text/cloud-config\n\n#cloud-config\n\
merge_how: [{name: list, settings: [append]}, {name: dict, settings: [no_replace, recurse_list]}]\n\
runcmd: [two]\nusers: [{name: b, lock-passwd: false}]\nwrite_files: [{path: /b, content: b}]\n\
--B\nContent-Type: text/cloud-config\nMerge-Type: dict(recurse_array)+list(prepend)\n\n\
#cloud-config\nruncmd: [zero]\n\
--B\nContent-Type: text/cloud-config\n\n#cloud-config\nchpasswd: {users: []}\n--B--\n";
    let d = ud(msg);
    assert!(
        d.errors.is_empty() && d.warnings.is_empty(),
        "{:?} {:?}",
        d.errors,
        d.warnings
    );
    let c = &d.cloud_config;
    let shell = |s: &str| CommandSpec::Shell(s.into());
    assert_eq!(c.runcmd, [shell("zero"), shell("one"), shell("two")]);
    assert_eq!(
        user_names(c.users.as_deref().unwrap_or_default()),
        ["a", "b"]
    );
    assert_eq!(c.write_files.len(), 2);
    // The last part has no spec: its chpasswd replaces the first part's whole.
    assert_eq!(c.chpasswd.as_ref().unwrap().expire, None);
    assert!(d.cloud_config_json.get("merge_how").is_none());

    // A spec cloud-init cannot read leaves its part out, with an error at the key.
    let bad = b"MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=B\n\n\
--B\nContent-Type: text/cloud-config\n\n#cloud-config\nruncmd: [one]\n\
--B\nContent-Type: text/cloud-config\n\n#cloud-config\nmerge_how: dict(replace)+foo(bar)\nruncmd: [two]\n--B--\n";
    let d = ud(bad);
    assert_eq!(d.cloud_config.runcmd, [shell("one")]);
    assert_eq!(
        d.errors[0].to_string(),
        "user-data[part-002]:2:12: merge_how: unknown merger 'foo' (expected dict, list or str); this part is not applied"
    );
}

/// Header blocks end where Python's email parser ends them: no blank line is needed
/// before a part's body, whose first line (`#!`) is kept.
#[test]
fn mime_headers_without_a_blank_line() {
    let msg = b"MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=B\n\
--B\nContent-Type: text/x-shellscript\n#!/bin/sh\necho first\n\
--B\nContent-Type: text/cloud-config\n#cloud-config\nhostname: nb\n--B--\n";
    let d = ud(msg);
    assert_eq!(d.scripts.len(), 1);
    assert_eq!(d.scripts[0].body, b"#!/bin/sh\necho first");
    assert_eq!(d.cloud_config.hostname.as_deref(), Some("nb"));
}
