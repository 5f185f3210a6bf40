//! The `meta-data` file ci-seed writes when the user gives none.
//!
//! cloud-localds writes a small JSON object (JSON is a subset of YAML) with the keys
//! `instance-id`, `local-hostname`, `interfaces` and `dsmode`, in that order, one per line,
//! and always the same `iid-local01` instance id. We keep its layout, so a seed built by
//! ci-seed differs from one built by cloud-localds only in the instance id, but every value
//! is escaped as a JSON string (a hostname with a quote, a colon or a newline cannot break
//! the document) and the instance id is fresh for each seed unless the user gives one.

/// What goes into a generated meta-data file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetaFields {
    /// `instance-id` (required: generate one with [`new_instance_id`]).
    pub instance_id: String,
    /// `local-hostname` (`-H`).
    pub hostname: Option<String>,
    /// `interfaces`: a Debian `/etc/network/interfaces` text (`-i FILE`), trailing newlines
    /// removed like cloud-localds's shell substitution does.
    pub interfaces: Option<String>,
    /// `dsmode`: `local` or `net` (`-m`).
    pub dsmode: Option<String>,
}

/// A fresh instance id: `iid-` and a random (v4) UUID, so clones never share one.
pub fn new_instance_id() -> String {
    format!("iid-{}", uuid::Uuid::new_v4())
}

/// Render `fields` as meta-data bytes, in cloud-localds's layout:
///
/// ```text
/// {
/// "instance-id": "iid-…",
/// "local-hostname": "vm1"
/// }
/// ```
///
/// Empty values are left out, as cloud-localds does.
pub fn render(fields: &MetaFields) -> Vec<u8> {
    let interfaces = fields
        .interfaces
        .as_deref()
        .map(|s| s.trim_end_matches('\n'));
    let pairs = [
        ("instance-id", Some(fields.instance_id.as_str())),
        ("local-hostname", fields.hostname.as_deref()),
        ("interfaces", interfaces),
        ("dsmode", fields.dsmode.as_deref()),
    ];
    let mut out = String::with_capacity(128);
    out.push_str("{\n");
    let mut first = true;
    for (key, value) in pairs {
        let Some(value) = value.filter(|v| !v.is_empty()) else {
            continue;
        };
        if !first {
            out.push_str(",\n");
        }
        first = false;
        out.push('"');
        out.push_str(key);
        out.push_str("\": ");
        json_string(&mut out, value);
    }
    out.push_str("\n}\n");
    out.into_bytes()
}

/// Append `s` as a JSON string literal (also a valid YAML double-quoted scalar).
fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // C0 controls, DEL and the C1 block: YAML wants them escaped too.
            c if (c as u32) < 0x20 || (0x7f..=0x9f).contains(&(c as u32)) => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            // Line/paragraph separators and the BOM are line breaks or noise to YAML.
            '\u{2028}' | '\u{2029}' | '\u{feff}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> serde_json::Value {
        let text = std::str::from_utf8(bytes).expect("utf-8");
        let json: serde_json::Value = serde_json::from_str(text).expect("valid JSON");
        let yaml: serde_json::Value = serde_saphyr::from_str(text).expect("valid YAML");
        assert_eq!(json, yaml, "JSON and YAML readings agree");
        json
    }

    #[test]
    fn layout_matches_cloud_localds() {
        let got = render(&MetaFields {
            instance_id: "iid-local01".into(),
            hostname: Some("vm1".into()),
            ..Default::default()
        });
        assert_eq!(
            String::from_utf8(got).unwrap(),
            "{\n\"instance-id\": \"iid-local01\",\n\"local-hostname\": \"vm1\"\n}\n"
        );
    }

    #[test]
    fn only_instance_id() {
        let got = render(&MetaFields {
            instance_id: "i-1".into(),
            hostname: Some(String::new()),
            ..Default::default()
        });
        assert_eq!(
            String::from_utf8(got).unwrap(),
            "{\n\"instance-id\": \"i-1\"\n}\n"
        );
    }

    #[test]
    fn hostile_values_stay_strings() {
        let nasty = "a\": b\n- x: 'y'\\ #c\t\u{0}\u{85}\u{2028}é";
        let got = render(&MetaFields {
            instance_id: "no".into(),
            hostname: Some(nasty.into()),
            interfaces: Some("auto eth0\niface eth0 inet dhcp\n\n".into()),
            dsmode: Some("local".into()),
        });
        let v = parse(&got);
        assert_eq!(v["instance-id"], "no");
        assert_eq!(v["local-hostname"], nasty);
        assert_eq!(v["interfaces"], "auto eth0\niface eth0 inet dhcp");
        assert_eq!(v["dsmode"], "local");
        assert_eq!(v.as_object().unwrap().len(), 4);
    }

    #[test]
    fn instance_ids_are_fresh_uuids() {
        let a = new_instance_id();
        let b = new_instance_id();
        assert_ne!(a, b);
        let uuid = a.strip_prefix("iid-").expect("iid- prefix");
        let parsed = uuid::Uuid::parse_str(uuid).expect("a UUID");
        assert_eq!(parsed.get_version_num(), 4);
    }
}
