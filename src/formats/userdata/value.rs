//! Typed reads of one cloud-config value from the located tree, for keys whose module
//! reads its own settings (`timezone`, `ntp`, `mounts`, …) instead of a field of
//! [`super::CloudConfig`].
//!
//! A [`KeyVal`] is a node plus its key path; every conversion error names the file, the
//! line:column where the value was written and the key path (`user-data:4:9: ntp.servers[1]:
//! expected a string, found a mapping`), so the module that owns the key fails with a
//! message the seed's author can act on.

use super::SeedError;
use crate::formats::yaml::{Node, NodeValue};

/// One value of the cloud-config with where it came from: its node and key path.
#[derive(Debug, Clone)]
pub struct KeyVal<'a> {
    pub node: &'a Node,
    pub file: &'a str,
    pub path: String,
}

impl<'a> KeyVal<'a> {
    /// The value of top-level `key` in `tree` (absent, or `tree` not a mapping: `None`).
    pub fn top(tree: &'a Node, file: &'a str, key: &str) -> Option<KeyVal<'a>> {
        tree.get(key).map(|node| KeyVal {
            node,
            file,
            path: key.to_owned(),
        })
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// An error about this value: `file:line:col: path: msg`.
    pub fn err(&self, msg: impl std::fmt::Display) -> SeedError {
        let known = self.node.pos.line > 0;
        SeedError {
            file: self.file.to_owned(),
            line: known.then_some(self.node.pos.line),
            column: known.then_some(self.node.pos.column),
            message: format!("{}: {msg}", self.path),
        }
    }

    pub fn expected(&self, what: &str) -> SeedError {
        self.err(format!("expected {what}, found {}", self.node.kind()))
    }

    pub fn is_null(&self) -> bool {
        self.node.value == NodeValue::Null
    }

    /// A mapping entry; `None` when absent or null.
    pub fn get(&self, key: &str) -> Option<KeyVal<'a>> {
        let node = self.node.get(key)?;
        (node.value != NodeValue::Null).then(|| KeyVal {
            node,
            file: self.file,
            path: format!("{}.{key}", self.path),
        })
    }

    /// Mapping keys outside `known`, as warnings naming each one.
    pub fn unknown_keys(&self, known: &[&str]) -> Vec<String> {
        match &self.node.value {
            NodeValue::Map(m) => m
                .iter()
                .filter(|(k, _)| !known.contains(&k.name.as_str()))
                .map(|(k, _)| {
                    format!(
                        "{}.{}: not supported by ci-agent (ignored)",
                        self.path, k.name
                    )
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The entries of a mapping, in document order.
    pub fn entries(&self) -> Result<Vec<(String, KeyVal<'a>)>, SeedError> {
        match &self.node.value {
            NodeValue::Map(m) => Ok(m
                .iter()
                .map(|(k, node)| {
                    (
                        k.name.clone(),
                        KeyVal {
                            node,
                            file: self.file,
                            path: format!("{}.{}", self.path, k.name),
                        },
                    )
                })
                .collect()),
            _ => Err(self.expected("a mapping")),
        }
    }

    /// Check it is a mapping.
    pub fn mapping(&self) -> Result<(), SeedError> {
        self.entries().map(|_| ())
    }

    /// A scalar as text (`no`, `0644`, `1.10` keep their spelling).
    pub fn str(&self) -> Result<String, SeedError> {
        match &self.node.value {
            NodeValue::Seq(_) | NodeValue::Map(_) | NodeValue::Null => {
                Err(self.expected("a string"))
            }
            _ => self.node.as_text().ok_or_else(|| self.expected("a string")),
        }
    }

    /// A scalar string without control characters and within `max` characters (values
    /// that end up in a config file line).
    pub fn line(&self, max: usize) -> Result<String, SeedError> {
        let s = self.str()?;
        if s.chars().any(char::is_control) {
            return Err(self.err("must not contain control characters (newline, tab, …)"));
        }
        if s.chars().count() > max {
            return Err(self.err(format!("longer than {max} characters")));
        }
        Ok(s)
    }

    /// A word: non-empty, no whitespace or control characters, at most 255 characters.
    pub fn word(&self) -> Result<String, SeedError> {
        let s = self.line(255)?;
        if s.is_empty() || s.chars().any(char::is_whitespace) {
            return Err(self.err(format!(
                "expected one word without spaces, found {:?}",
                short(&s)
            )));
        }
        Ok(s)
    }

    /// A boolean, PyYAML style (`yes`, `on`, `true`, …).
    pub fn bool(&self) -> Result<bool, SeedError> {
        self.node
            .as_bool()
            .ok_or_else(|| self.expected("a boolean (true/false, yes/no, on/off)"))
    }

    /// A non-negative integer (a number or a string of digits).
    pub fn u64(&self) -> Result<u64, SeedError> {
        match &self.node.value {
            NodeValue::UInt(u) => Ok(*u),
            NodeValue::Int(i) if *i >= 0 => Ok(*i as u64),
            NodeValue::Str(s) => s
                .trim()
                .parse()
                .map_err(|_| self.err(format!("expected a non-negative integer, found {s:?}"))),
            _ => Err(self.expected("a non-negative integer")),
        }
    }

    /// The items of a list (null: none).
    pub fn items(&self) -> Result<Vec<KeyVal<'a>>, SeedError> {
        match &self.node.value {
            NodeValue::Null => Ok(Vec::new()),
            NodeValue::Seq(items) => Ok(items
                .iter()
                .enumerate()
                .map(|(i, node)| KeyVal {
                    node,
                    file: self.file,
                    path: format!("{}[{i}]", self.path),
                })
                .collect()),
            _ => Err(self.expected("a list")),
        }
    }

    /// A list of one-line strings; a single string is a list of one.
    pub fn str_list(&self) -> Result<Vec<String>, SeedError> {
        match &self.node.value {
            NodeValue::Null => Ok(Vec::new()),
            NodeValue::Seq(_) => self.items()?.iter().map(|v| v.line(1024)).collect(),
            NodeValue::Map(_) => Err(self.expected("a list of strings")),
            _ => Ok(vec![self.line(1024)?]),
        }
    }

    /// A size in bytes: an integer, or a number with a `K`, `M`, `G` or `T` suffix (powers
    /// of 1024, as cloud-init's `human2bytes`; an optional trailing `B`).
    pub fn size(&self) -> Result<u64, SeedError> {
        let text = self.str()?;
        parse_size(&text).ok_or_else(|| {
            self.err(format!(
                "expected a size such as 1073741824, 512M or 2G, found {:?}",
                short(&text)
            ))
        })
    }
}

/// `512M` → 536870912; plain digits are bytes.
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let t = t.strip_suffix(['B', 'b']).unwrap_or(t);
    let (digits, mult) = match t.chars().last()? {
        'k' | 'K' => (&t[..t.len() - 1], 1u64 << 10),
        'm' | 'M' => (&t[..t.len() - 1], 1 << 20),
        'g' | 'G' => (&t[..t.len() - 1], 1 << 30),
        't' | 'T' => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let digits = digits.trim();
    if let Ok(n) = digits.parse::<u64>() {
        return n.checked_mul(mult);
    }
    // `1.5G`
    let f: f64 = digits.parse().ok()?;
    (f.is_finite() && f >= 0.0 && f * (mult as f64) < 1.8e19).then_some((f * mult as f64) as u64)
}

/// A value cut to a size fit for an error message.
pub fn short(s: &str) -> String {
    const MAX: usize = 64;
    if s.chars().count() <= MAX {
        s.to_string()
    } else {
        let head: String = s.chars().take(MAX).collect();
        format!("{head}… ({} chars)", s.chars().count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::yaml::parse_node;

    #[test]
    fn errors_name_file_position_and_path() {
        let tree = parse_node("ntp:\n  servers: [a, {b: 1}]\n", "user-data").unwrap();
        let ntp = KeyVal::top(&tree, "user-data", "ntp").unwrap();
        let servers = ntp.get("servers").unwrap();
        let e = servers.str_list().unwrap_err().to_string();
        assert_eq!(
            e,
            "user-data:2:16: ntp.servers[1]: expected a string, found a mapping"
        );
        assert!(ntp.get("pools").is_none());
        assert_eq!(ntp.unknown_keys(&["servers"]), Vec::<String>::new());
        assert_eq!(
            ntp.unknown_keys(&[]),
            ["ntp.servers: not supported by ci-agent (ignored)"]
        );
    }

    #[test]
    fn sizes_and_words() {
        assert_eq!(parse_size("512M"), Some(512 << 20));
        assert_eq!(parse_size("2G"), Some(2 << 30));
        assert_eq!(parse_size("1.5K"), Some(1536));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("10MB"), Some(10 << 20));
        assert_eq!(parse_size("x"), None);
        assert_eq!(parse_size("99999999999T"), None);
        let tree = parse_node("a: two words\nb: 'x\n\n  y'\n", "f").unwrap();
        let a = KeyVal::top(&tree, "f", "a").unwrap();
        assert!(a.word().unwrap_err().to_string().contains("one word"));
        assert!(a.line(100).is_ok());
        assert!(a.line(3).is_err());
    }
}
