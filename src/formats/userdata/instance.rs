//! Instance data: what the seed and the machine say about this instance, in the layout
//! cloud-init gives `/run/cloud-init/instance-data.json`, so that `## template: jinja`
//! user-data, `query` and scripts find the same names (`v1.instance_id`,
//! `v1.local_hostname`, `ds.meta_data.*`, …).
//!
//! - [`instance_data`]: the full document (root only on disk). `sensitive_keys` lists the
//!   key paths (`/`-separated) that [`redact`] replaces with [`REDACTED`] in the copy any
//!   user may read; as in cloud-init they are `merged_cfg` and any `security-credentials`.
//! - [`jinja_vars`]: the variables a template sees: the document, plus the `v1` keys at
//!   the top level and, for every key holding a Jinja operator (`-`, `.`, `/`, …), an alias
//!   with `_` in its place (`ds.meta_data.local_hostname` for `local-hostname`).

use serde_json::{json, Map, Value};

use super::MetaData;

/// What a redacted value reads (cloud-init's words, which scripts compare against).
pub const REDACTED: &str = "redacted for non-root user";
/// Keys whose values only root may read, wherever they appear (cloud-init's defaults).
pub const SENSITIVE_KEYS: &[&str] = &["merged_cfg", "security-credentials"];
/// `ds._doc`, as cloud-init writes it.
const DS_DOC: &str = "EXPERIMENTAL: The structure and format of content scoped under the 'ds' key may change in subsequent releases of cloud-init.";

/// The machine's side of instance data (`v1.distro`, `v1.kernel_release`, …); empty
/// fields become `null`/empty like cloud-init's when it cannot tell.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SysInfo {
    /// `Linux` or `FreeBSD` (Python's `platform.system()`).
    pub system: String,
    /// os-release `ID` (`debian`, `ubuntu`, `freebsd`, …).
    pub distro: String,
    /// os-release `VERSION_ID`.
    pub distro_version: String,
    /// os-release `VERSION_CODENAME` (or the name in parentheses in `VERSION`).
    pub distro_release: String,
    /// The running kernel's release (`uname -r`).
    pub kernel_release: String,
    /// `uname -m` (`x86_64`, `aarch64`, `amd64`, `arm64`).
    pub machine: String,
}

impl SysInfo {
    /// cloud-init's `variant`: the distro family it knows, else `linux` / the system.
    pub fn variant(&self) -> String {
        let d = self.distro.to_ascii_lowercase();
        if !self.system.eq_ignore_ascii_case("linux") {
            return if self.system.is_empty() {
                "unknown".into()
            } else {
                self.system.to_ascii_lowercase()
            };
        }
        match d.as_str() {
            "almalinux" | "alpine" | "arch" | "centos" | "cloudlinux" | "debian" | "eurolinux"
            | "fedora" | "mariner" | "miraclelinux" | "openeuler" | "openmandriva" | "photon"
            | "rhel" | "rocky" | "suse" | "virtuozzo" => d,
            "ubuntu" | "linuxmint" | "mint" => "ubuntu".into(),
            "redhat" => "rhel".into(),
            "opensuse" | "opensuse-tumbleweed" | "opensuse-leap" | "sles" | "sle_hpc" => {
                "suse".into()
            }
            _ => "linux".into(),
        }
    }

    /// Read an os-release file's `ID`, `VERSION_ID` and codename (shell-style
    /// `KEY=value`, values optionally quoted).
    pub fn set_os_release(&mut self, text: &str) {
        let mut version = String::new();
        for line in text.lines() {
            let Some((k, v)) = line.trim().split_once('=') else {
                continue;
            };
            let v = v.trim().trim_matches(|c| c == '"' || c == '\'').to_owned();
            match k.trim() {
                "ID" => self.distro = v,
                "VERSION_ID" => self.distro_version = v,
                "VERSION_CODENAME" if !v.is_empty() => self.distro_release = v,
                "VERSION" => version = v,
                _ => {}
            }
        }
        if self.distro_release.is_empty() {
            if let Some((_, rest)) = version.split_once('(') {
                if let Some((name, _)) = rest.split_once(')') {
                    self.distro_release = name.trim().to_owned();
                }
            }
        }
        if self.distro == "rhel" {
            self.distro = "redhat".into();
        }
    }
}

fn opt(s: &str) -> Value {
    if s.is_empty() {
        Value::Null
    } else {
        json!(s)
    }
}

/// cloud-init's `subplatform` for NoCloud: `config-disk (/dev/sr0)` for a device,
/// `seed-dir (PATH or URL)` otherwise.
fn subplatform(source: &str) -> String {
    let (kind, what) = match source.split_once(':') {
        Some((k, rest)) if !k.contains('/') && !rest.starts_with("//") => (k, rest),
        _ => ("", source),
    };
    let what = what.split(" (").next().unwrap_or(what);
    if what.starts_with("/dev/") && kind != "dir" {
        format!("config-disk ({what})")
    } else {
        format!("seed-dir ({what})")
    }
}

/// The full instance data of a seed (no `userdata`/`vendordata`: `query` adds those).
/// `merged_cfg` is the merged cloud-config when known (`None` while user-data is
/// still being read, as for the variables of a template).
pub fn instance_data(
    source: &str,
    meta: &MetaData,
    instance_id: &str,
    hostname: Option<&str>,
    sys: &SysInfo,
    merged_cfg: Option<&Value>,
) -> Value {
    let md = |k: &str| meta.raw.get(k).filter(|v| !v.is_null());
    let az = md("availability-zone")
        .or_else(|| md("availability_zone"))
        .filter(|v| v.as_str().is_none_or(|s| !s.is_empty()))
        .or_else(|| {
            meta.raw
                .get("placement")
                .and_then(|p| p.get("availability-zone"))
        })
        .cloned()
        .unwrap_or(Value::Null);
    let cloud_name = md("cloud-name")
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase)
        .unwrap_or_else(|| "nocloud".into());
    let region = md("region").cloned().unwrap_or(Value::Null);
    // meta-data as cloud-init's NoCloud holds it: the file, with the kernel command line's
    // instance id and hostname merged in.
    let mut meta_data = match &meta.raw {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    meta_data.insert("instance-id".into(), json!(instance_id));
    if let Some(h) = hostname {
        meta_data.insert("local-hostname".into(), json!(h));
    }
    let system_platform = if sys.system.is_empty() {
        String::new()
    } else {
        format!("{}-{}-{}", sys.system, sys.kernel_release, sys.machine)
    };
    let v1 = json!({
        "_beta_keys": ["subplatform"],
        "availability-zone": az,
        "availability_zone": az,
        "cloud-name": cloud_name,
        "cloud_id": cloud_name,
        "cloud_name": cloud_name,
        "distro": sys.distro,
        "distro_release": sys.distro_release,
        "distro_version": sys.distro_version,
        "instance-id": instance_id,
        "instance_id": instance_id,
        "kernel_release": opt(&sys.kernel_release),
        "local-hostname": hostname,
        "local_hostname": hostname,
        "machine": opt(&sys.machine),
        "platform": "nocloud",
        "public_ssh_keys": meta.public_keys,
        "python_version": Value::Null,
        "region": region,
        "subplatform": subplatform(source),
        "system_platform": opt(&system_platform),
        "variant": sys.variant(),
    });
    let sys_info = json!({
        "dist": [sys.distro, sys.distro_version, sys.distro_release],
        "platform": system_platform,
        "python": Value::Null,
        "release": sys.kernel_release,
        "system": sys.system,
        "uname": [sys.system, hostname.unwrap_or_default(), sys.kernel_release, "", sys.machine, ""],
        "variant": sys.variant(),
    });
    let mut top = Map::new();
    top.insert("_schema_version".into(), json!("1"));
    top.insert(
        "ds".into(),
        json!({ "_doc": DS_DOC, "meta_data": Value::Object(meta_data) }),
    );
    if let Some(cfg) = merged_cfg {
        top.insert("merged_cfg".into(), cfg.clone());
    }
    top.insert("sys_info".into(), sys_info);
    top.insert("v1".into(), v1);
    let mut sensitive = Vec::new();
    find_sensitive(&top, "", &mut sensitive);
    sensitive.sort();
    top.insert("base64_encoded_keys".into(), json!([]));
    top.insert("sensitive_keys".into(), json!(sensitive));
    Value::Object(top)
}

/// Key paths (`a/b/c`) of every [`SENSITIVE_KEYS`] entry in `m`.
fn find_sensitive(m: &Map<String, Value>, prefix: &str, out: &mut Vec<String>) {
    for (k, v) in m {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}/{k}")
        };
        if SENSITIVE_KEYS.contains(&k.as_str()) {
            out.push(path);
            continue;
        }
        if let Value::Object(inner) = v {
            find_sensitive(inner, &path, out);
        }
    }
}

/// The copy any user may read: every path in `sensitive_keys` holds [`REDACTED`].
pub fn redact(data: &Value) -> Value {
    let mut out = data.clone();
    let paths: Vec<String> = data
        .get("sensitive_keys")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    for path in paths {
        let parts: Vec<&str> = path.split('/').collect();
        redact_at(&mut out, &parts);
    }
    out
}

fn redact_at(v: &mut Value, path: &[&str]) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    let Some(m) = v.as_object_mut() else {
        return;
    };
    if rest.is_empty() {
        if let Some(slot) = m.get_mut(*first) {
            *slot = json!(REDACTED);
        }
    } else if let Some(next) = m.get_mut(*first) {
        redact_at(next, rest);
    }
}

/// Whether a dotted `query` key names (or lies inside, or holds) a sensitive value.
pub fn is_sensitive_key(key: &str) -> bool {
    key.split('.').any(|p| {
        SENSITIVE_KEYS.contains(&p) || SENSITIVE_KEYS.contains(&p.replace('_', "-").as_str())
    }) || matches!(
        key.split('.').next(),
        Some("userdata" | "vendordata" | "combined_cloud_config")
    )
}

/// A key with Jinja's operator characters replaced by `_` (`local-hostname` →
/// `local_hostname`, `v1.0` → `v1_0`), or `None` when it has none.
pub fn jinja_alias(key: &str) -> Option<String> {
    const OPS: &[char] = &[
        '+', '-', '/', '*', '%', '~', '[', ']', '(', ')', '{', '}', '=', '!', '<', '>', '.', ':',
        '|', ',', ';',
    ];
    key.contains(OPS).then(|| key.replace(OPS, "_"))
}

/// The variables of a template: the document with the `vN` keys also at the top level
/// and `_` aliases for keys holding operators (cloud-init's
/// `convert_jinja_instance_data` with key aliases).
pub fn jinja_vars(data: &Value) -> Value {
    match data {
        Value::Object(m) => Value::Object(convert(m)),
        other => other.clone(),
    }
}

fn convert(m: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    // Sorted like cloud-init, so a later key's copy wins the same way.
    let mut keys: Vec<&String> = m.keys().collect();
    keys.sort();
    for k in keys {
        let v = &m[k];
        let conv = match v {
            Value::Object(inner) => {
                let c = convert(inner);
                let versioned = k.len() > 1
                    && k.starts_with('v')
                    && k.get(1..)
                        .is_some_and(|d| d.bytes().all(|b| b.is_ascii_digit()));
                if versioned {
                    for (sk, sv) in &c {
                        out.insert(sk.clone(), sv.clone());
                    }
                }
                Value::Object(c)
            }
            other => other.clone(),
        };
        if let Some(alias) = jinja_alias(k) {
            out.insert(alias, conv.clone());
        }
        out.insert(k.clone(), conv);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(text: &str) -> MetaData {
        MetaData::parse("meta-data", text.as_bytes()).unwrap()
    }

    #[test]
    fn layout_and_redaction() {
        let m = meta(
            "instance-id: i-1\nlocal-hostname: web\nregion: r1\nsecurity-credentials: {k: s}\n",
        );
        let mut sys = SysInfo {
            system: "Linux".into(),
            kernel_release: "6.1.0".into(),
            machine: "x86_64".into(),
            ..SysInfo::default()
        };
        sys.set_os_release("ID=debian\nVERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\n");
        let cfg = json!({"chpasswd": {"users": [{"name": "u", "password": "p"}]}});
        let d = instance_data("iso9660:/dev/sr0", &m, "i-1", Some("web"), &sys, Some(&cfg));
        assert_eq!(d["v1"]["instance_id"], "i-1");
        assert_eq!(d["v1"]["local_hostname"], "web");
        assert_eq!(d["v1"]["region"], "r1");
        assert_eq!(d["v1"]["distro"], "debian");
        assert_eq!(d["v1"]["distro_release"], "bookworm");
        assert_eq!(d["v1"]["variant"], "debian");
        assert_eq!(d["v1"]["subplatform"], "config-disk (/dev/sr0)");
        assert_eq!(d["ds"]["meta_data"]["local-hostname"], "web");
        assert_eq!(
            d["sensitive_keys"],
            json!(["ds/meta_data/security-credentials", "merged_cfg"])
        );
        let r = redact(&d);
        assert_eq!(r["merged_cfg"], REDACTED);
        assert_eq!(r["ds"]["meta_data"]["security-credentials"], REDACTED);
        assert_eq!(r["v1"], d["v1"]);
        assert!(!r.to_string().contains("\"p\""));
        assert_eq!(subplatform("dir:/var/lib/seed"), "seed-dir (/var/lib/seed)");
        assert_eq!(
            subplatform("http://10.0.2.2/s/"),
            "seed-dir (http://10.0.2.2/s/)"
        );
    }

    #[test]
    fn jinja_aliases() {
        let v = jinja_vars(
            &json!({"v1": {"instance_id": "i"}, "ds": {"meta_data": {"local-hostname": "h", "a.b": 1}}}),
        );
        assert_eq!(v["instance_id"], "i");
        assert_eq!(v["ds"]["meta_data"]["local_hostname"], "h");
        assert_eq!(v["ds"]["meta_data"]["local-hostname"], "h");
        assert_eq!(v["ds"]["meta_data"]["a_b"], 1);
        assert!(is_sensitive_key("merged_cfg.x"));
        assert!(is_sensitive_key("userdata"));
        assert!(is_sensitive_key("ds.meta_data.security_credentials"));
        assert!(!is_sensitive_key("v1.instance_id"));
    }
}
