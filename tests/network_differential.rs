//! Differential test of the network renderers against cloud-init's own: Debian's cloud-init
//! package (unpacked by `tests/cloudinit/fetch.sh`, never installed) renders every
//! network-config of `tests/cloudinit/netcfg/` with its `networkd`, `eni` and `netplan`
//! renderers; ci-agent renders the same files with its own three. One Python extractor (`tests/cloudinit/net_diff.py`) reads
//! both sides' files into what a clone ends up with: interfaces, addresses, DHCP, routes,
//! DNS servers and search domains. They must be equal except for the differences listed in
//! [`KNOWN`], each a cloud-init 22.4.2 defect or a deliberate choice, and each of which
//! must still occur (so the list cannot go stale).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use ci_agent::network::{self, render_eni, render_netplan, render_networkd, Parsed};
use serde_json::Value;

/// (config, cloud-init renderer, field that differs, why). Field `error`: cloud-init
/// refuses the file.
const KNOWN: &[(&str, &str, &str, &str)] = &[
    (
        "v2-05-noprefix.yaml",
        "netplan",
        "addresses",
        "netplan passes v2 through: 10.0.0.7 keeps no prefix (netplan generate then rejects it); ci-agent gives /24 as cloud-init's other renderers",
    ),
    (
        "v2-11-route-metric.yaml",
        "networkd",
        "routes",
        "cloud-init's v2 conversion drops a route's `metric` for every renderer but netplan; ci-agent keeps it",
    ),
    (
        "v2-11-route-metric.yaml",
        "eni",
        "routes",
        "as above",
    ),
    (
        "v2-12-to-default.yaml",
        "networkd",
        "error",
        "`routes: [{to: default}]` is refused outside netplan before cloud-init 25.3; ci-agent takes it",
    ),
    (
        "v2-12-to-default.yaml",
        "eni",
        "error",
        "as above",
    ),
];

const FIELDS: [&str; 6] = ["interfaces", "addresses", "dhcp", "routes", "dns", "search"];

fn corpus() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cloudinit/netcfg");
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    v.sort();
    v
}

fn python(args: &[&str], pythonpath: &str) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cloudinit/net_diff.py");
    let out = Command::new("/usr/bin/python3")
        .arg(script)
        .args(args)
        .env("PYTHONPATH", pythonpath)
        .output()
        .expect("running /usr/bin/python3");
    assert!(
        out.status.success(),
        "net_diff.py {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("net_diff.py prints JSON")
}

#[test]
fn renderers_agree_with_cloud_init() {
    let pythonpath = common::cloudinit_pythonpath();

    let files = corpus();
    assert!(files.len() >= 30, "only {} network-configs", files.len());
    let tmp = tempfile::tempdir().unwrap();
    let no_nics: Vec<(String, String)> = Vec::new();
    for f in &files {
        let name = f.file_name().unwrap().to_str().unwrap();
        let data = std::fs::read(f).unwrap();
        let mut w = Vec::new();
        let cfg = match network::parse(name, &data, &mut w) {
            Ok(Parsed::Config(c)) => c,
            other => panic!("{name}: {other:?}"),
        };
        let d = tmp.path().join(name);
        std::fs::create_dir_all(d.join("networkd")).unwrap();
        for o in render_networkd::render(&cfg).files {
            std::fs::write(
                d.join("networkd").join(o.path.file_name().unwrap()),
                o.content,
            )
            .unwrap();
        }
        let np = render_netplan::render(&cfg);
        std::fs::write(d.join("netplan.yaml"), &np.files[0].content).unwrap();
        let eni = render_eni::render(&cfg, &no_nics, false).unwrap();
        std::fs::write(d.join("eni"), &eni.files[0].content).unwrap();
    }
    let ours = python(
        &["summarise-ours", tmp.path().to_str().unwrap()],
        &pythonpath,
    );
    let paths: Vec<&str> = files.iter().map(|p| p.to_str().unwrap()).collect();
    let mut args = vec!["summarise-cloudinit"];
    args.extend(paths);
    let theirs = python(&args, &pythonpath);

    let mut found: BTreeMap<(String, String, String), String> = BTreeMap::new();
    let mut compared = 0;
    for f in &files {
        let name = f.file_name().unwrap().to_str().unwrap();
        for (kind, ours_kind) in [
            ("networkd", "networkd"),
            ("eni", "eni"),
            ("netplan", "networkd"),
        ] {
            let a = &ours[name][ours_kind];
            let b = &theirs[name][kind];
            if let Some(e) = b.get("error") {
                found.insert((name.into(), kind.into(), "error".into()), e.to_string());
                continue;
            }
            compared += 1;
            for field in FIELDS {
                if a[field] != b[field] {
                    found.insert(
                        (name.into(), kind.into(), field.into()),
                        format!("ci-agent {} / cloud-init {}", a[field], b[field]),
                    );
                }
            }
        }
    }
    let known: BTreeMap<(String, String, String), &str> = KNOWN
        .iter()
        .map(|(c, r, f, why)| ((c.to_string(), r.to_string(), f.to_string()), *why))
        .collect();
    let unexpected: Vec<String> = found
        .iter()
        .filter(|(k, _)| !known.contains_key(*k))
        .map(|((c, r, f), d)| format!("{c} [{r}] {f}: {d}"))
        .collect();
    let stale: Vec<String> = known
        .keys()
        .filter(|k| !found.contains_key(*k))
        .map(|(c, r, f)| format!("{c} [{r}] {f}"))
        .collect();
    assert!(
        unexpected.is_empty() && stale.is_empty(),
        "differences not in KNOWN:\n  {}\nKNOWN entries that no longer differ:\n  {}",
        unexpected.join("\n  "),
        stale.join("\n  ")
    );
    assert!(compared >= 90, "only {compared} renderings compared");
}
