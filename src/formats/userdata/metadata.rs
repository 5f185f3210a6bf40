//! `meta-data`: the instance's identity (instance-id, hostname, public keys).
//!
//! YAML or JSON (a YAML subset; parsed as JSON first when it looks like a JSON object, so
//! JSON-only escapes are honoured). A missing or empty file is an empty meta-data; the
//! instance id then defaults later (`nocloud`, like cloud-init). Keys:
//! - `instance-id`
//! - `local-hostname`, else `hostname`
//! - `public-keys` (also `public_keys`): a string (one key per line), a list of keys, or a
//!   mapping of name → key or list of keys, as cloud-init's `normalize_pubkey_data` accepts.
//!
//! Everything, unknown keys included, is kept in `raw` as JSON.

use super::SeedError;
use crate::formats::yaml::{self, Node, NodeValue};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetaData {
    pub instance_id: Option<String>,
    pub local_hostname: Option<String>,
    pub public_keys: Vec<String>,
    /// The whole document as JSON (unknown keys kept).
    pub raw: serde_json::Value,
}

impl MetaData {
    /// Parse a `meta-data` file's bytes; `file` names it in errors.
    pub fn parse(file: &str, data: &[u8]) -> Result<MetaData, SeedError> {
        Self::parse_with(file, data, &yaml::Limits::default())
    }

    /// [`MetaData::parse`] with explicit YAML limits.
    pub fn parse_with(
        file: &str,
        data: &[u8],
        limits: &yaml::Limits,
    ) -> Result<MetaData, SeedError> {
        let text = std::str::from_utf8(data).map_err(|e| SeedError {
            file: file.into(),
            line: None,
            column: None,
            message: format!(
                "not valid UTF-8 (at byte {}); meta-data must be YAML or JSON text",
                e.valid_up_to()
            ),
        })?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        if text.trim().is_empty() {
            return Ok(MetaData {
                raw: serde_json::Value::Object(Default::default()),
                ..MetaData::default()
            });
        }
        let node = match json_node(text, limits) {
            Some(n) => n,
            None => yaml::parse_node_with(text, file, limits)?,
        };
        Self::from_node(file, &node)
    }

    fn from_node(file: &str, node: &Node) -> Result<MetaData, SeedError> {
        let err = |n: &Node, msg: String| SeedError {
            file: file.into(),
            line: (n.pos.line > 0).then_some(n.pos.line),
            column: (n.pos.line > 0).then_some(n.pos.column),
            message: msg,
        };
        match &node.value {
            NodeValue::Null => {
                return Ok(MetaData {
                    raw: serde_json::Value::Object(Default::default()),
                    ..MetaData::default()
                })
            }
            NodeValue::Map(_) => {}
            _ => {
                return Err(err(
                    node,
                    format!(
                        "expected a mapping of keys (instance-id, local-hostname, …), found {}",
                        node.kind()
                    ),
                ))
            }
        }
        let string = |key: &str| -> Result<Option<String>, SeedError> {
            match node.get(key) {
                None => Ok(None),
                Some(n) if n.value == NodeValue::Null => Ok(None),
                Some(n) => match (&n.value, n.as_text()) {
                    (NodeValue::Seq(_) | NodeValue::Map(_), _) | (_, None) => Err(err(
                        n,
                        format!("{key}: expected a string, found {}", n.kind()),
                    )),
                    (_, Some(s)) => Ok(Some(s.trim().to_owned())),
                },
            }
        };
        let instance_id = string("instance-id")?.filter(|s| !s.is_empty());
        if let (Some(id), Some(n)) = (&instance_id, node.get("instance-id")) {
            check_instance_id(id).map_err(|m| err(n, format!("instance-id: {m}")))?;
        }
        let local_hostname = match string("local-hostname")?.filter(|s| !s.is_empty()) {
            Some(h) => Some(h),
            None => string("hostname")?.filter(|s| !s.is_empty()),
        };
        let keys_node = node.get("public-keys").or_else(|| node.get("public_keys"));
        let public_keys = match keys_node {
            None => Vec::new(),
            Some(n) => public_keys(n).map_err(|m| err(n, format!("public-keys: {m}")))?,
        };
        Ok(MetaData {
            instance_id,
            local_hostname,
            public_keys,
            raw: node.to_json(),
        })
    }
}

/// Longest instance-id accepted.
pub const MAX_INSTANCE_ID: usize = 128;

/// An instance-id names the instance's state directory and is read back on every boot:
/// it must be short and made of characters that are safe in a path component.
pub fn check_instance_id(id: &str) -> Result<(), String> {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-._:@+=,~".contains(c);
    if id.chars().count() > MAX_INSTANCE_ID {
        return Err(format!(
            "{} characters, more than {MAX_INSTANCE_ID}",
            id.chars().count()
        ));
    }
    if let Some(c) = id.chars().find(|c| !safe(*c)) {
        return Err(format!(
            "{:?} is not allowed (use letters, digits and - . _ : @ + = , ~)",
            c
        ));
    }
    if id.starts_with('.') {
        return Err("must not start with '.'".into());
    }
    Ok(())
}

/// A JSON object parsed as JSON (serde_json bounds its own recursion at 128), or `None`
/// when the text is not a JSON object (then it is YAML).
fn json_node(text: &str, limits: &yaml::Limits) -> Option<Node> {
    if !text.trim_start().starts_with('{') || text.len() > limits.max_bytes {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    Some(Node::from_json(&v))
}

/// cloud-init's `normalize_pubkey_data`: string (lines), list, or mapping of lists/strings.
fn public_keys(n: &Node) -> Result<Vec<String>, String> {
    fn add_str(out: &mut Vec<String>, s: &str) {
        out.extend(
            s.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_owned),
        );
    }
    // One list item (or mapping value) is one key, as in cloud-init: a line break inside
    // it is not a second key but a malformed one, refused when keys are installed.
    fn add_item(out: &mut Vec<String>, s: &str) {
        if !s.trim().is_empty() {
            out.push(s.trim().to_owned());
        }
    }
    fn add_list(out: &mut Vec<String>, items: &[Node]) -> Result<(), String> {
        for (i, it) in items.iter().enumerate() {
            match &it.value {
                NodeValue::Str(s) => add_item(out, s),
                NodeValue::Null => {}
                _ => return Err(format!("[{i}]: expected a key string, found {}", it.kind())),
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    match &n.value {
        NodeValue::Null => {}
        NodeValue::Str(s) => add_str(&mut out, s),
        NodeValue::Seq(items) => add_list(&mut out, items)?,
        NodeValue::Map(m) => {
            for (k, v) in m {
                match &v.value {
                    NodeValue::Str(s) => add_item(&mut out, s),
                    NodeValue::Seq(items) => {
                        add_list(&mut out, items).map_err(|e| format!("{}{e}", k.name))?
                    }
                    // OpenStack-style `{name: {openssh-key: "..."}}`.
                    NodeValue::Map(inner) => {
                        for (_, iv) in inner {
                            if let NodeValue::Str(s) = &iv.value {
                                add_item(&mut out, s);
                            }
                        }
                    }
                    NodeValue::Null => {}
                    _ => {
                        return Err(format!(
                            "{}: expected a key string or a list of keys, found {}",
                            k.name,
                            v.kind()
                        ))
                    }
                }
            }
        }
        _ => return Err(format!("expected a list of keys, found {}", n.kind())),
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_meta_data() {
        let m = MetaData::parse(
            "meta-data",
            b"instance-id: iid-1\nlocal-hostname: web1\npublic-keys:\n  - ssh-ed25519 AAA a\nextra: [1]\n",
        )
        .unwrap();
        assert_eq!(m.instance_id.as_deref(), Some("iid-1"));
        assert_eq!(m.local_hostname.as_deref(), Some("web1"));
        assert_eq!(m.public_keys, ["ssh-ed25519 AAA a"]);
        assert_eq!(m.raw["extra"], serde_json::json!([1]));
    }

    #[test]
    fn json_meta_data_and_hostname_fallback() {
        let m = MetaData::parse(
            "meta-data",
            br#"{"instance-id": "i-\u0041", "hostname": "h", "public_keys": {"k1": "ssh-rsa X\nssh-rsa Y", "k2": ["ssh-rsa Z"]}}"#,
        )
        .unwrap();
        assert_eq!(m.instance_id.as_deref(), Some("i-A"));
        assert_eq!(m.local_hostname.as_deref(), Some("h"));
        // A mapping value or list item is one key: its line break stays inside it (and the
        // key is refused when installed), it never becomes a second key.
        assert_eq!(m.public_keys, ["ssh-rsa X\nssh-rsa Y", "ssh-rsa Z"]);
        let m = MetaData::parse("meta-data", b"public-keys: \"ssh-rsa X\\nssh-rsa Y\"\n").unwrap();
        assert_eq!(m.public_keys, ["ssh-rsa X", "ssh-rsa Y"]);
    }

    #[test]
    fn empty_and_errors() {
        let m = MetaData::parse("meta-data", b"").unwrap();
        assert_eq!(m.instance_id, None);
        assert_eq!(m.raw, serde_json::json!({}));
        let m = MetaData::parse("meta-data", b"# nothing\n").unwrap();
        assert_eq!(m.instance_id, None);
        let e = MetaData::parse("meta-data", b"instance-id: [a]\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "meta-data:1:14: instance-id: expected a string, found a list"
        );
        let e = MetaData::parse("meta-data", b"- a\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("meta-data:1:1: expected a mapping"),
            "{e}"
        );
        let e = MetaData::parse("meta-data", b"\xff\xfe").unwrap_err();
        assert!(e.message.contains("UTF-8"), "{e}");
        // Numbers are ids too (cloud-init str()s them).
        let m = MetaData::parse("meta-data", b"instance-id: 0012\n").unwrap();
        assert_eq!(m.instance_id.as_deref(), Some("0012"));
    }

    #[test]
    fn instance_ids_are_short_and_path_safe() {
        for ok in [
            "iid-local01",
            "i-0abc",
            "3f2a8c1e-1b2c-4d5e-8f90-0123456789ab",
            "a.b:c@d",
        ] {
            let m = MetaData::parse("meta-data", format!("instance-id: {ok}\n").as_bytes());
            assert_eq!(m.unwrap().instance_id.as_deref(), Some(ok));
        }
        let long = format!("instance-id: {}\n", "a".repeat(10_000));
        let e = MetaData::parse("meta-data", long.as_bytes()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "meta-data:1:14: instance-id: 10000 characters, more than 128"
        );
        for bad in [
            "\"../../etc\"",
            "\"a b\"",
            "\"a\\x1bb\"",
            ".hidden",
            "\"a\\0b\"",
        ] {
            let e = MetaData::parse("meta-data", format!("instance-id: {bad}\n").as_bytes())
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("meta-data:1:14: instance-id: "), "{bad}: {e}");
            assert!(!e.contains('\x1b') && !e.contains('\0'), "{e}");
        }
    }
}
