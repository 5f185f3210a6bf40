//! Instance data on disk, and `query KEY` over it (`ci-agent query` and the `cloud-init`
//! personality's `query`).
//!
//! Each pass that reads a seed writes, atomically, into the run directory (`/run/ci-agent`,
//! FreeBSD `/var/run/ci-agent`; emptied at boot):
//! - `instance-data.json`, mode 0600: the full instance data
//!   ([`crate::formats::userdata::instance`]), what `## template: jinja` parts saw plus
//!   `merged_cfg` (the merged cloud-config, which may hold passwords);
//! - `instance-data-redacted.json`, mode 0644: the same with every key listed in
//!   `sensitive_keys` replaced by `redacted for non-root user`.
//!
//! With `cloud_init_compat` the same two documents also go where cloud-init puts them:
//! `/run/cloud-init/instance-data.json` (0644, redacted) and
//! `/run/cloud-init/instance-data-sensitive.json` (0600).
//!
//! `query` as root reads the instance's seed (the local copy of the instance in progress
//! or last applied, else discovery) and adds `userdata` and `vendordata`; as any other
//! user it reads the redacted copy, where those two (and every sensitive key) read as
//! cloud-init shows them to non-root users, with a one-line note on stderr (exit 0, as
//! cloud-init).

use std::path::PathBuf;

use anyhow::Context as _;
use serde_json::{json, Value};

use crate::agent::boot::CLOUDINIT_RUN_DIR;
use crate::agent::state::State;
use crate::formats::userdata::instance::{self, REDACTED};
use crate::formats::userdata::SeedData;
use crate::platform::config::Config;
use crate::platform::{System, WriteOpts};

/// The full document, root only.
pub const FULL_FILE: &str = "instance-data.json";
/// The redacted document any user may read.
pub const REDACTED_FILE: &str = "instance-data-redacted.json";
/// Largest instance-data document read back.
const MAX_READ: u64 = 64 << 20;

/// `(full, redacted)` paths of our files.
pub fn paths(cfg: &Config) -> (PathBuf, PathBuf) {
    (cfg.run_dir.join(FULL_FILE), cfg.run_dir.join(REDACTED_FILE))
}

/// The document as written: the instance data with our schema version.
fn document(d: &SeedData) -> Value {
    let mut v = d.instance_data.clone();
    if let Some(m) = v.as_object_mut() {
        m.insert(
            "schema_version".into(),
            json!(crate::agent::boot::SCHEMA_VERSION),
        );
    }
    v
}

/// Write the instance data of a parsed seed (see the module documentation).
pub fn write(sys: &dyn System, cfg: &Config, d: &SeedData) -> anyhow::Result<()> {
    let full = document(d);
    let redacted = instance::redact(&full);
    let text = |v: &Value| -> anyhow::Result<Vec<u8>> {
        let mut t = serde_json::to_vec_pretty(v)?;
        t.push(b'\n');
        Ok(t)
    };
    let (full_text, red_text) = (text(&full)?, text(&redacted)?);
    let mut targets = vec![(cfg.run_dir.clone(), FULL_FILE, REDACTED_FILE)];
    if cfg.cloud_init_compat {
        targets.push((
            PathBuf::from(CLOUDINIT_RUN_DIR),
            "instance-data-sensitive.json",
            "instance-data.json",
        ));
    }
    for (dir, full_name, red_name) in targets {
        sys.create_dir_all(&dir, 0o755, None)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        for (name, data, mode) in [(full_name, &full_text, 0o600), (red_name, &red_text, 0o644)] {
            let p = dir.join(name);
            // The late pass of a boot usually has what the early pass wrote: no second
            // temp + fsync + rename for the same bytes.
            let limit = u64::try_from(data.len()).map_or(u64::MAX, |n| n.saturating_add(1));
            if sys.read_file(&p, limit).is_ok_and(|old| old == *data) {
                continue;
            }
            sys.write_file(&p, data, WriteOpts::mode(mode))
                .with_context(|| format!("cannot write instance data {}", p.display()))?;
        }
    }
    Ok(())
}

/// The seed `query` describes as root: the local copy of the instance in progress or
/// last applied, else what discovery finds now.
fn query_seed(sys: &dyn System, cfg: &Config) -> anyhow::Result<crate::formats::userdata::Seed> {
    let state = State::new(sys, &cfg.state_dir);
    if sys.exists(&cfg.state_dir) && sys.read_dir(&cfg.state_dir).is_err() {
        anyhow::bail!(
            "cannot read {} (the instance's seed is readable by root only; try sudo)",
            cfg.state_dir.display()
        );
    }
    for iid in [state.in_progress(), state.applied_instance()]
        .into_iter()
        .flatten()
    {
        if let Some(seed) = state.load_seed_copy(&iid, cfg.max_seed_file_bytes)? {
            return Ok(seed);
        }
    }
    crate::datasource::find_seed(sys, cfg, None)?
        .ok_or_else(|| anyhow::anyhow!("no instance data: no seed has been applied or found"))
}

/// Where `userdata` comes from, for the redacted placeholder.
fn seed_copy_hint(cfg: &Config) -> String {
    format!("{}/instances/<instance-id>/seed", cfg.state_dir.display())
}

/// The full instance data of a seed read from `path` (`query --seed PATH KEY`).
pub fn load_seed(sys: &dyn System, cfg: &Config, path: &std::path::Path) -> anyhow::Result<Value> {
    let seed = crate::datasource::find_seed(sys, cfg, Some(path))?
        .ok_or_else(|| anyhow::anyhow!("{}: no seed there", path.display()))?;
    with_seed(sys, cfg, &seed)
}

/// The full instance data of `seed`, with its `userdata` and `vendordata`.
fn with_seed(
    sys: &dyn System,
    cfg: &Config,
    seed: &crate::formats::userdata::Seed,
) -> anyhow::Result<Value> {
    let facts = crate::platform::sys_info(sys, cfg.os);
    let d = crate::formats::userdata::parse_seed_on(seed, &facts).map_err(anyhow::Error::new)?;
    let mut v = document(&d);
    let text = |n: &str| {
        seed.files
            .get(n)
            .map(|b| String::from_utf8_lossy(b).into_owned())
    };
    if let Some(m) = v.as_object_mut() {
        m.insert("userdata".into(), json!(text("user-data")));
        m.insert("vendordata".into(), json!(text("vendor-data")));
    }
    Ok(v)
}

/// The instance data `query` shows. `root`: whether the caller may read sensitive data
/// (the seam tests use; the CLI passes the effective uid's answer).
pub fn load(sys: &dyn System, cfg: &Config, root: bool) -> anyhow::Result<Value> {
    if root {
        return with_seed(sys, cfg, &query_seed(sys, cfg)?);
    }
    let (_, path) = paths(cfg);
    let bytes = match sys.read_file(&path, MAX_READ) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => anyhow::bail!(
            "Missing instance-data file: {} (written by `ci-agent run` at boot; until then \
             only root can query the seed)",
            path.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let mut v: Value = serde_json::from_slice(&bytes)
        .with_context(|| format!("{}: not valid JSON", path.display()))?;
    if let Some(m) = v.as_object_mut() {
        let hint = seed_copy_hint(cfg);
        for (k, file) in [("userdata", "user-data"), ("vendordata", "vendor-data")] {
            m.insert(k.into(), json!(format!("<{REDACTED}> file:{hint}/{file}")));
        }
    }
    Ok(v)
}

/// What one `query` prints: stdout text, stderr lines, exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub out: String,
    pub err: Vec<String>,
    pub code: u8,
}

/// `a.b.c` in a JSON document (keys may contain `-`; a number indexes a list; a key's
/// `_` alias matches its `-`/`.` spelling, as cloud-init's jinja-safe aliases).
pub fn lookup<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    let mut cur = v;
    for part in key.split('.') {
        cur = match cur {
            Value::Object(m) => m.get(part).or_else(|| {
                m.iter()
                    .find(|(k, _)| instance::jinja_alias(k).as_deref() == Some(part))
                    .map(|(_, v)| v)
            })?,
            Value::Array(a) => a.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// Answer `query [--all | --list-keys] [KEY]` over `data` (from [`load`]); `root` as
/// there. The `v1` keys are also found at the top level (`instance_id`).
pub fn answer(data: &Value, key: Option<&str>, list: bool, root: bool) -> Answer {
    let mut err = Vec::new();
    let mut with_top = data.clone();
    if let (Some(m), Some(Value::Object(v1))) = (with_top.as_object_mut(), data.get("v1")) {
        for (k, v) in v1 {
            if !k.starts_with('_') && !m.contains_key(k) {
                m.insert(k.clone(), v.clone());
            }
        }
    }
    let target = match key {
        Some(k) => match lookup(&with_top, k) {
            Some(v) => v,
            None => {
                let msg = match k.rsplit_once('.') {
                    Some((parent, leaf)) if lookup(&with_top, parent).is_some() => {
                        format!("instance-data '{parent}' has no '{leaf}'")
                    }
                    _ => format!("Undefined instance-data key '{k}'"),
                };
                return Answer {
                    out: String::new(),
                    err: vec![msg],
                    code: crate::exit::FAILED,
                };
            }
        },
        None => &with_top,
    };
    if !root {
        if let Some(k) = key.filter(|k| instance::is_sensitive_key(k)) {
            err.push(format!(
                "'{k}' is readable by root only: shown redacted (run query as root)"
            ));
        }
    }
    if list {
        return match target {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                Answer {
                    out: keys.iter().map(|k| format!("{k}\n")).collect(),
                    err,
                    code: crate::exit::OK,
                }
            }
            _ => Answer {
                out: String::new(),
                err: vec![format!(
                    "--list-keys provided but '{}' is not a dict",
                    key.unwrap_or_default()
                )],
                code: crate::exit::FAILED,
            },
        };
    }
    let out = match target {
        Value::String(s) => format!("{s}\n"),
        Value::Null => "\n".into(),
        v => format!(
            "{}\n",
            serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
        ),
    };
    Answer {
        out,
        err,
        code: crate::exit::OK,
    }
}

/// Whether this process may read root-only instance data.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Print an [`Answer`] (`prog` prefixes the stderr lines) and return its code.
pub fn print(prog: &str, a: &Answer) -> u8 {
    crate::out!("{}", a.out);
    for e in &a.err {
        eprintln!("{prog}: {e}");
    }
    a.code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_dotted_keys() {
        let v = json!({"v1": {"local_hostname": "h"}, "ds": {"meta_data": {"local-hostname": "h", "list": [1, 2]}}});
        assert_eq!(lookup(&v, "v1.local_hostname"), Some(&json!("h")));
        assert_eq!(lookup(&v, "ds.meta_data.local_hostname"), Some(&json!("h")));
        assert_eq!(lookup(&v, "ds.meta_data.local-hostname"), Some(&json!("h")));
        assert_eq!(lookup(&v, "ds.meta_data.list.1"), Some(&json!(2)));
        assert_eq!(lookup(&v, "v1.nope"), None);
    }

    #[test]
    fn files_are_written_redacted_and_queried_as_a_user() {
        use crate::formats::userdata::{parse_seed_on, Seed, SysInfo};
        use crate::platform::fake::FakeSystem;
        use crate::platform::OsKind;
        use std::os::unix::fs::PermissionsExt as _;

        let d = tempfile::tempdir().unwrap();
        let sys = FakeSystem::new(d.path());
        let mut cfg = Config::defaults(OsKind::Linux);
        cfg.cloud_init_compat = true;
        let mut seed = Seed {
            source: "iso9660:/dev/sr0".into(),
            ..Seed::default()
        };
        seed.files.insert(
            "meta-data".into(),
            b"instance-id: i-7
local-hostname: h7
"
            .to_vec(),
        );
        seed.files.insert(
            "user-data".into(),
            b"#cloud-config
chpasswd:
  users: [{name: u, password: hunter2}]
"
            .to_vec(),
        );
        let data = parse_seed_on(&seed, &SysInfo::default()).unwrap();
        // Nothing written yet: a user is told where the file will be.
        let e = load(&sys, &cfg, false).unwrap_err().to_string();
        assert!(
            e.starts_with("Missing instance-data file: /run/ci-agent/instance-data-redacted.json"),
            "{e}"
        );
        write(&sys, &cfg, &data).unwrap();
        let mode = |p: &str| {
            let host = d.path().join(p.trim_start_matches('/'));
            std::fs::metadata(&host).unwrap().permissions().mode() & 0o777
        };
        assert_eq!(mode("/run/ci-agent/instance-data.json"), 0o600);
        assert_eq!(mode("/run/ci-agent/instance-data-redacted.json"), 0o644);
        assert_eq!(mode("/run/cloud-init/instance-data-sensitive.json"), 0o600);
        assert_eq!(mode("/run/cloud-init/instance-data.json"), 0o644);
        let full = sys.read_string("/run/ci-agent/instance-data.json").unwrap();
        assert!(full.contains("hunter2"));
        for p in [
            "/run/ci-agent/instance-data-redacted.json",
            "/run/cloud-init/instance-data.json",
        ] {
            let red = sys.read_string(p).unwrap();
            assert!(!red.contains("hunter2"), "{p}");
            assert!(
                red.contains("\"merged_cfg\": \"redacted for non-root user\""),
                "{p}"
            );
        }
        assert_eq!(
            sys.read_string("/run/cloud-init/instance-data-sensitive.json"),
            Some(full)
        );

        // The same data again (the late pass): the files are left as they are.
        let inode = |p: &str| {
            use std::os::unix::fs::MetadataExt as _;
            std::fs::metadata(d.path().join(p.trim_start_matches('/')))
                .unwrap()
                .ino()
        };
        let before = inode("/run/ci-agent/instance-data.json");
        write(&sys, &cfg, &data).unwrap();
        assert_eq!(inode("/run/ci-agent/instance-data.json"), before);

        // A user reads the redacted copy: public keys as usual, sensitive ones redacted.
        let v = load(&sys, &cfg, false).unwrap();
        let a = answer(&v, Some("v1.local_hostname"), false, false);
        assert_eq!((a.out.as_str(), a.err.len(), a.code), ("h7\n", 0, 0));
        let a = answer(&v, Some("ds.meta_data.local-hostname"), false, false);
        assert_eq!(a.out, "h7\n");
        let a = answer(&v, Some("userdata"), false, false);
        assert!(
            a.out
                .starts_with("<redacted for non-root user> file:/var/lib/ci-agent/"),
            "{}",
            a.out
        );
        assert_eq!(a.code, 0);
        assert!(a.err[0].contains("root only"));
        let a = answer(&v, None, false, false);
        assert!(!a.out.contains("hunter2"));
        assert!(a.out.contains("\"instance_id\": \"i-7\""));
    }

    #[test]
    fn answers_like_cloud_init() {
        let v = json!({"v1": {"instance_id": "i", "_beta_keys": []}, "merged_cfg": REDACTED});
        let a = answer(&v, Some("instance_id"), false, false);
        assert_eq!((a.out.as_str(), a.code), ("i\n", 0));
        let a = answer(&v, Some("v1.nope"), false, true);
        assert_eq!(a.err, ["instance-data 'v1' has no 'nope'"]);
        assert_eq!(a.code, 1);
        let a = answer(&v, Some("nope"), false, true);
        assert_eq!(a.err, ["Undefined instance-data key 'nope'"]);
        let a = answer(&v, Some("merged_cfg"), false, false);
        assert_eq!(a.out, format!("{REDACTED}\n"));
        assert_eq!(a.code, 0);
        assert_eq!(a.err.len(), 1);
        assert!(a.err[0].contains("root only"), "{:?}", a.err);
        let a = answer(&v, Some("v1"), true, true);
        assert_eq!(a.out, "_beta_keys\ninstance_id\n");
    }
}
