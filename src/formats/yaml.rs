//! The one YAML wrapper: every YAML document ci-agent reads (cloud-config, meta-data, the
//! agent's own config file) goes through here, within explicit budgets, with PyYAML's
//! (YAML 1.1) boolean rules and errors that carry `file:line:col`.
//!
//! # Why serde-saphyr and not serde_yaml
//!
//! `serde_yaml` is archived and unmaintained (RUSTSEC-2024-0320). Measured here, it and its
//! forks `serde_yaml_ng` / `serde_norway` accept a 36 KB alias bomb (billion laughs),
//! expanding it to 2.4 GB RSS, and take about 110 s on a 100,000-deep flow mapping. Seeds
//! come from whoever built the VM's cdrom, so the parser must refuse such input quickly:
//! `serde-saphyr` (a maintained, pure-Rust parser) enforces budgets while parsing — nesting
//! depth, events, nodes, aliases, alias replay, documents, scalar bytes — and reports line
//! and column for every node (its `Spanned` wrapper), which is what gives us located errors.
//!
//! # Design
//!
//! A document is first parsed into a [`Node`] tree: each node keeps its line/column and,
//! for scalars, whether it was written *plain* (unquoted, not a block scalar). That is what
//! lets us be exact about YAML 1.1 where PyYAML (cloud-init's parser) and serde-saphyr
//! differ:
//! - PyYAML's bool resolver accepts exactly `yes|Yes|YES|no|No|NO|true|True|TRUE|false|
//!   False|FALSE|on|On|ON|off|Off|OFF` (not `y`/`n`, not `yEs`); serde-saphyr's YAML 1.1
//!   mode also takes `y`, `n` and any case. So serde-saphyr runs with `strict_booleans`
//!   (only `true`/`false` in their three spellings become booleans) and [`Node`] resolves the
//!   other PyYAML spellings itself, for plain scalars only.
//! - Where a boolean is expected, a plain `yes`/`off`/… is a boolean; where a string is
//!   expected, the same plain scalar keeps its spelling (`name: no` is the user "no", and
//!   `version: 1.10` stays "1.10", not the float 1.1).
//! - Plain numbers with a leading zero (`0644`) stay strings in the tree (YAML 1.2 has no
//!   such octal); where an integer is expected they are read as octal, as PyYAML does.
//!
//! The JSON view ([`Node::to_json`], [`parse_value`]) is PyYAML's view of the document:
//! plain YAML 1.1 booleans become JSON booleans; `0644` stays the string `"0644"` (PyYAML
//! would give 420; cloud-init reads both the same way where it matters, `permissions`).
//!
//! Typed reads ([`from_str`], [`from_node`]) deserialize from the [`Node`] tree through a
//! small serde `Deserializer`, so every type error names the key path and the position of
//! the offending node: `file:3:12: users[1].groups: invalid type: …`.
//!
//! # Policies
//! - **Duplicate keys: last wins**, like PyYAML (the key keeps its first position in the
//!   mapping, the value is the later one). A YAML "error" policy would refuse seeds that
//!   cloud-init accepts.
//! - **One document per file**: a second `---` document is an error (PyYAML's `safe_load`
//!   refuses it too). An empty document is `null`.
//! - Merge keys (`<<: *anchor`) are expanded, as in PyYAML.
//! - Tags: `!!binary` is bytes (Python's lenient base64) and `!!str` keeps the scalar as
//!   written (`!!str 0755` is `"0755"`), verbatim spellings (`!<tag:yaml.org,2002:str>`)
//!   included; other tags are not interpreted beyond what serde-saphyr does.
//! - A block scalar (`|`, `>`) whose last line ends the input without a line break has no
//!   final newline, as in PyYAML (serde-saphyr adds one).

use std::collections::HashMap;
use std::fmt;

use base64::Engine;
use serde::de::{self, DeserializeOwned, IntoDeserializer, Visitor};
use serde_saphyr::options::DuplicateKeyPolicy;
use serde_saphyr::Spanned;

use crate::formats::SeedError;

/// Resource budgets for one YAML document. Every limit is enforced while parsing, so a
/// hostile document fails fast with a clear error instead of exhausting memory or time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest input accepted, in bytes (checked before parsing).
    pub max_bytes: usize,
    /// Deepest nesting of sequences and mappings.
    pub max_depth: usize,
    /// Most nodes (scalars, sequences, mappings), aliases replayed included.
    pub max_nodes: usize,
    /// Most parser events.
    pub max_events: usize,
    /// Most alias (`*name`) references.
    pub max_aliases: usize,
    /// Most events injected by replaying aliases, over the whole document (the alias-bomb
    /// limit: a billion-laughs document needs millions).
    pub max_alias_replay_events: usize,
    /// Deepest alias-inside-alias replay.
    pub max_alias_replay_depth: usize,
    /// Most bytes of scalar text in total.
    pub max_scalar_bytes: usize,
}

impl Default for Limits {
    /// Generous for any real cloud-config (a few hundred keys, files of megabytes), small
    /// enough that parsing anything within them takes well under a second.
    fn default() -> Self {
        Limits {
            max_bytes: 16 << 20,
            max_depth: 64,
            max_nodes: 200_000,
            max_events: 500_000,
            max_aliases: 10_000,
            max_alias_replay_events: 100_000,
            max_alias_replay_depth: 32,
            max_scalar_bytes: 32 << 20,
        }
    }
}

impl Limits {
    fn options(&self) -> serde_saphyr::Options {
        let mut opts = serde_saphyr::options! {
            strict_booleans: true,
            leading_zero_numbers_as_strings: true,
            // `!!binary` reaches us as its base64 text; [`Builder`] decodes it to bytes
            // the way PyYAML does (Python's lenient base64).
            ignore_binary_tag_for_string: true,
            with_snippet: false,
            duplicate_keys: DuplicateKeyPolicy::LastWins,
        };
        opts.budget = serde_saphyr::budget! {
            max_reader_input_bytes: Some(self.max_bytes),
            max_depth: self.max_depth,
            flow_nesting_limit: self.max_depth,
            max_nodes: self.max_nodes,
            max_events: self.max_events,
            max_aliases: self.max_aliases,
            max_documents: 1,
            max_total_scalar_bytes: self.max_scalar_bytes,
        };
        opts.alias_limits = serde_saphyr::alias_limits! {
            max_total_replayed_events: self.max_alias_replay_events,
            max_replay_stack_depth: self.max_alias_replay_depth,
        };
        opts
    }
}

/// A position in a YAML file (1-based line and column; 0 when unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

impl Pos {
    fn known(self) -> Option<Pos> {
        (self.line > 0).then_some(self)
    }
}

/// A parsed YAML node with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: NodeValue,
    pub pos: Pos,
    /// Scalars: written without quotes and not as a block scalar (only plain scalars are
    /// subject to YAML 1.1 implicit typing).
    pub plain: bool,
    /// Booleans and numbers: the spelling in the source (`1.10`, `0x1F`, `TRUE`), used where
    /// a string is expected.
    pub text: Option<String>,
}

/// The value of a [`Node`].
#[derive(Debug, Clone, PartialEq)]
pub enum NodeValue {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    /// A `!!binary` scalar, decoded (PyYAML gives `bytes`).
    Bytes(Vec<u8>),
    Seq(Vec<Node>),
    /// Keys in document order, each unique (a later duplicate replaced the value).
    Map(Vec<(Key, Node)>),
}

/// A mapping key: its text (non-string keys are written as they appear) and position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub name: String,
    pub pos: Pos,
}

/// PyYAML's boolean spellings (`yaml.resolver.Resolver`, `tag:yaml.org,2002:bool`).
pub fn yaml11_bool(s: &str) -> Option<bool> {
    match s {
        "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => Some(true),
        "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => Some(false),
        _ => None,
    }
}

/// PyYAML's YAML 1.1 octal integer (`0[0-7_]+`, optional sign).
fn yaml11_octal(s: &str) -> Option<i64> {
    let (neg, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, s.get(1..)?),
        Some(b'+') => (false, s.get(1..)?),
        _ => (false, s),
    };
    let rest = digits.strip_prefix('0')?;
    if rest.is_empty() || !rest.bytes().all(|b| matches!(b, b'0'..=b'7' | b'_')) {
        return None;
    }
    let clean: String = rest.chars().filter(|c| *c != '_').collect();
    if clean.is_empty() {
        return None;
    }
    let v = i64::from_str_radix(&clean, 8).ok()?;
    Some(if neg { -v } else { v })
}

/// PyYAML's implicit int (`tag:yaml.org,2002:int`, YAML 1.1): `0b1010`, `0755` (octal),
/// `0x1f`, `1_000`, `1:20` (sexagesimal, 80), with an optional sign. `None` for anything
/// PyYAML reads as another type (`0o600` is a string there).
pub fn yaml11_int(s: &str) -> Option<i128> {
    let (neg, body) = split_sign(s);
    let digits = |t: &str, ok: fn(u8) -> bool| -> Option<String> {
        (!t.is_empty() && t.bytes().all(|b| b == b'_' || ok(b)))
            .then(|| t.chars().filter(|c| *c != '_').collect())
    };
    let v = if let Some(rest) = body.strip_prefix("0b") {
        i128::from_str_radix(&digits(rest, |b| matches!(b, b'0' | b'1'))?, 2).ok()?
    } else if let Some(rest) = body.strip_prefix("0x") {
        i128::from_str_radix(&digits(rest, |b| b.is_ascii_hexdigit())?, 16).ok()?
    } else if body == "0" {
        0
    } else if let Some(rest) = body.strip_prefix('0') {
        let d = digits(rest, |b| matches!(b, b'0'..=b'7'))?;
        if d.is_empty() {
            0
        } else {
            i128::from_str_radix(&d, 8).ok()?
        }
    } else if body.starts_with(|c: char| matches!(c, '1'..='9')) {
        if body.contains(':') {
            sexagesimal(body)?
        } else {
            digits(body, |b| b.is_ascii_digit())?.parse().ok()?
        }
    } else {
        return None;
    };
    Some(if neg { -v } else { v })
}

/// `[-+]` in front of a YAML 1.1 number.
fn split_sign(s: &str) -> (bool, &str) {
    match s.as_bytes().first() {
        Some(b'-') => (true, s.get(1..).unwrap_or_default()),
        Some(b'+') => (false, s.get(1..).unwrap_or_default()),
        _ => (false, s),
    }
}

/// `[1-9][0-9_]*(:[0-5]?[0-9])+` as an integer (base 60).
fn sexagesimal(body: &str) -> Option<i128> {
    let mut parts = body.split(':');
    let first = parts.next()?;
    if first.is_empty() || !first.bytes().all(|b| b.is_ascii_digit() || b == b'_') {
        return None;
    }
    let mut v: i128 = first.replace('_', "").parse().ok()?;
    for p in parts {
        let ok = matches!(p.as_bytes(), [a, b] if (b'0'..=b'5').contains(a) && b.is_ascii_digit())
            || matches!(p.as_bytes(), [b] if b.is_ascii_digit());
        if !ok {
            return None;
        }
        v = v.checked_mul(60)?.checked_add(p.parse::<i128>().ok()?)?;
    }
    Some(v)
}

/// PyYAML's implicit float (`tag:yaml.org,2002:float`, YAML 1.1): a dot is required
/// (`1.5`, `1.`, `.5`, `1.0e+3`; `1e3` is a string), `1:20.5` is sexagesimal, and
/// `.inf`/`.nan` in three spellings.
pub fn yaml11_float(s: &str) -> Option<f64> {
    let (neg, body) = split_sign(s);
    let sign = if neg { -1.0 } else { 1.0 };
    if matches!(body, ".inf" | ".Inf" | ".INF") {
        return Some(sign * f64::INFINITY);
    }
    if matches!(s, ".nan" | ".NaN" | ".NAN") {
        return Some(f64::NAN);
    }
    let (mantissa, exp) = match body.find(['e', 'E']) {
        Some(i) => (body.get(..i)?, Some(body.get(i + 1..)?)),
        None => (body, None),
    };
    if let Some(e) = exp {
        let digits = e.strip_prefix(['+', '-'])?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
    }
    let (int, frac) = mantissa.split_once('.')?;
    if !frac.bytes().all(|b| b.is_ascii_digit() || b == b'_') {
        return None;
    }
    let frac_clean = frac.replace('_', "");
    if int.contains(':') {
        // [0-9][0-9_]*(:[0-5]?[0-9])+\.[0-9_]*, no exponent.
        if exp.is_some() || !int.starts_with(|c: char| c.is_ascii_digit()) {
            return None;
        }
        #[allow(clippy::cast_precision_loss)]
        let v = sexagesimal(int)? as f64;
        // PyYAML adds the fraction to the last base-60 digit.
        let f: f64 = format!("0.{frac_clean}").parse().unwrap_or(0.0);
        return Some(sign * (v + f));
    }
    let int_ok = if int.is_empty() {
        // `.5`: only without a sign.
        !s.starts_with(['+', '-']) && !frac_clean.is_empty()
    } else {
        int.starts_with(|c: char| c.is_ascii_digit())
            && int.bytes().all(|b| b.is_ascii_digit() || b == b'_')
    };
    if !int_ok {
        return None;
    }
    let text = format!(
        "{}.{frac_clean}{}",
        if int.is_empty() {
            "0".to_owned()
        } else {
            int.replace('_', "")
        },
        exp.map(|e| format!("e{e}")).unwrap_or_default()
    );
    text.parse::<f64>().ok().map(|v| sign * v)
}

/// Python's `base64.b64decode` without `validate` (what PyYAML's `!!binary` and
/// cloud-init's `b64` use): characters outside the alphabet are skipped, a complete pad
/// ends the data, and only a count of data characters that cannot be base64 is an error.
pub fn python_b64decode(text: &[u8]) -> Result<Vec<u8>, String> {
    fn val(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut quad_pos, mut pads, mut acc, mut count) = (0u32, 0u32, 0u32, 0usize);
    let mut done = false;
    for &c in text {
        if c == b'=' {
            pads += 1;
            if quad_pos >= 2 && quad_pos + pads >= 4 {
                done = true;
                break;
            }
            continue;
        }
        let Some(v) = val(c) else { continue };
        pads = 0;
        count += 1;
        acc = (acc << 6) | v;
        quad_pos += 1;
        if quad_pos == 4 {
            out.extend_from_slice(&[(acc >> 16) as u8, (acc >> 8) as u8, acc as u8]);
            quad_pos = 0;
            acc = 0;
        }
    }
    match quad_pos {
        0 => Ok(out),
        1 => Err(format!(
            "invalid base64: number of data characters ({count}) cannot be 1 more than a multiple of 4"
        )),
        2 if done => {
            out.push((acc >> 4) as u8);
            Ok(out)
        }
        3 if done => {
            out.extend_from_slice(&[(acc >> 10) as u8, (acc >> 2) as u8]);
            Ok(out)
        }
        _ => Err("invalid base64: incorrect padding".into()),
    }
}

impl Node {
    /// A node without a position (built from JSON, or synthesised).
    pub fn unlocated(value: NodeValue) -> Node {
        Node {
            value,
            pos: Pos::default(),
            plain: false,
            text: None,
        }
    }

    /// Build a tree from JSON (no positions; strings are not plain, so they are never
    /// re-typed).
    pub fn from_json(v: &serde_json::Value) -> Node {
        use serde_json::Value as J;
        let value = match v {
            J::Null => NodeValue::Null,
            J::Bool(b) => NodeValue::Bool(*b),
            J::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
                (Some(u), _, _) => NodeValue::UInt(u),
                (None, Some(i), _) => NodeValue::Int(i),
                (None, None, Some(f)) => NodeValue::Float(f),
                _ => NodeValue::Str(n.to_string()),
            },
            J::String(s) => NodeValue::Str(s.clone()),
            J::Array(a) => NodeValue::Seq(a.iter().map(Node::from_json).collect()),
            J::Object(o) => NodeValue::Map(
                o.iter()
                    .map(|(k, v)| {
                        (
                            Key {
                                name: k.clone(),
                                pos: Pos::default(),
                            },
                            Node::from_json(v),
                        )
                    })
                    .collect(),
            ),
        };
        Node::unlocated(value)
    }

    /// The node as a boolean, PyYAML style: a YAML boolean, or a plain scalar spelled as
    /// one of PyYAML's 18 boolean words.
    pub fn as_bool(&self) -> Option<bool> {
        match &self.value {
            NodeValue::Bool(b) => Some(*b),
            NodeValue::Str(s) if self.plain => yaml11_bool(s),
            _ => None,
        }
    }

    /// The node as a string where a string is expected: strings as they are, other plain
    /// scalars as they were written (`no`, `1.10`, `0644`), quoted or not.
    pub fn as_text(&self) -> Option<String> {
        if let Some(t) = &self.text {
            return Some(t.clone());
        }
        match &self.value {
            NodeValue::Str(s) => Some(s.clone()),
            NodeValue::Bytes(b) => String::from_utf8(b.clone()).ok(),
            NodeValue::Bool(b) => Some(b.to_string()),
            NodeValue::Int(i) => Some(i.to_string()),
            NodeValue::UInt(u) => Some(u.to_string()),
            NodeValue::Float(f) => Some(f.to_string()),
            _ => None,
        }
    }

    /// Look up a mapping key.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            NodeValue::Map(m) => m.iter().find(|(k, _)| k.name == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// A short name of the node's type, for error messages.
    pub fn kind(&self) -> &'static str {
        match &self.value {
            NodeValue::Null => "null",
            NodeValue::Bool(_) => "a boolean",
            NodeValue::Int(_) | NodeValue::UInt(_) => "an integer",
            NodeValue::Float(_) => "a number",
            NodeValue::Str(_) => "a string",
            NodeValue::Bytes(_) => "binary data",
            NodeValue::Seq(_) => "a list",
            NodeValue::Map(_) => "a mapping",
        }
    }

    /// PyYAML's view of the node as JSON (plain YAML 1.1 booleans become booleans).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            NodeValue::Null => J::Null,
            NodeValue::Bool(b) => J::Bool(*b),
            NodeValue::Int(i) => J::from(*i),
            NodeValue::UInt(u) => J::from(*u),
            NodeValue::Float(f) => serde_json::Number::from_f64(*f)
                .map(J::Number)
                .unwrap_or(J::Null),
            NodeValue::Str(s) => match self.as_bool() {
                Some(b) => J::Bool(b),
                None => J::String(s.clone()),
            },
            // cloud-init's `json_serialize_default` spelling of bytes.
            NodeValue::Bytes(b) => J::String(format!(
                "ci-b64:{}",
                base64::engine::general_purpose::STANDARD.encode(b)
            )),
            NodeValue::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            NodeValue::Map(m) => J::Object(
                m.iter()
                    .map(|(k, v)| (k.name.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

/// What serde-saphyr hands us before positions and plainness are resolved.
enum Raw {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<Raw>>),
    Map(Vec<(Spanned<Raw>, Spanned<Raw>)>),
}

impl<'de> de::Deserialize<'de> for Raw {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Raw;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_unit<E>(self) -> Result<Raw, E> {
                Ok(Raw::Null)
            }
            fn visit_none<E>(self) -> Result<Raw, E> {
                Ok(Raw::Null)
            }
            fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
                <Raw as de::Deserialize>::deserialize(d)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Raw, E> {
                Ok(Raw::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Raw, E> {
                Ok(Raw::Int(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Raw, E> {
                Ok(Raw::UInt(v))
            }
            fn visit_i128<E: de::Error>(self, v: i128) -> Result<Raw, E> {
                Ok(Raw::Str(v.to_string()))
            }
            fn visit_u128<E: de::Error>(self, v: u128) -> Result<Raw, E> {
                Ok(Raw::Str(v.to_string()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Raw, E> {
                Ok(Raw::Float(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Raw, E> {
                Ok(Raw::Str(v.into()))
            }
            fn visit_string<E>(self, v: String) -> Result<Raw, E> {
                Ok(Raw::Str(v))
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Raw, E> {
                Ok(Raw::Str(String::from_utf8_lossy(v).into_owned()))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut a: A) -> Result<Raw, A::Error> {
                let mut v = Vec::new();
                while let Some(x) = a.next_element::<Spanned<Raw>>()? {
                    v.push(x);
                }
                Ok(Raw::Seq(v))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut a: A) -> Result<Raw, A::Error> {
                let mut v = Vec::new();
                while let Some(k) = a.next_key::<Spanned<Raw>>()? {
                    let val = a.next_value::<Spanned<Raw>>()?;
                    v.push((k, val));
                }
                Ok(Raw::Map(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// Turns serde-saphyr's spanned values into [`Node`]s, using the source text to tell plain
/// scalars from quoted and block ones.
struct Builder<'a> {
    src: &'a str,
}

impl Builder<'_> {
    fn pos(s: &Spanned<Raw>) -> Pos {
        Pos {
            line: usize::try_from(s.referenced.line()).unwrap_or(0),
            column: usize::try_from(s.referenced.column()).unwrap_or(0),
        }
    }

    /// The explicit tag of the scalar at `loc`, from the source just before it (or before
    /// its block scalar header `|`/`>`), anchors skipped; a verbatim YAML tag
    /// (`!<tag:yaml.org,2002:str>`) is given in its short form (`!!str`).
    fn explicit_tag(&self, loc: &serde_saphyr::Location) -> Option<String> {
        let start = usize::try_from(loc.span().byte_offset()?).ok()?;
        let mut before = self.src.get(..start)?.trim_end_matches([' ', '\t']);
        if before.ends_with(['\n', '\r']) {
            // Block scalar content: the tag is on the header line, before `|`/`>`, its
            // indicators and any comment.
            let head = before.trim_end();
            let line_start = head.rfind(['\n', '\r']).map_or(0, |i| i + 1);
            let line = head.get(line_start..).unwrap_or_default();
            let line = line
                .find(" #")
                .map_or(line, |i| line.get(..i).unwrap_or(line));
            let line = line
                .trim_end()
                .trim_end_matches(['+', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
            before = line.strip_suffix(['|', '>']).unwrap_or("").trim_end();
        }
        if before.ends_with('>') {
            if let Some(verbatim) = before.rfind("!<").and_then(|i| before.get(i..)) {
                return Some(match verbatim.strip_prefix("!<tag:yaml.org,2002:") {
                    Some(rest) => format!("!!{}", rest.trim_end_matches('>')),
                    None => verbatim.to_owned(),
                });
            }
        }
        let tag = before
            .split([' ', '\t', '\n', '\r', '[', '{', ','])
            .rev()
            .filter(|t| !t.is_empty())
            .find(|t| !t.starts_with('&'))
            .filter(|t| t.starts_with('!'))?;
        Some(tag.to_owned())
    }

    /// Whether the scalar at `loc` (not quoted: its source `raw` does not start with a quote)
    /// runs to the very end of the input, and the input does not end with a line break.
    fn ends_the_input_without_a_line_break(
        &self,
        loc: &serde_saphyr::Location,
        raw: Option<&str>,
    ) -> bool {
        if self.src.ends_with(['\n', '\r']) || raw.is_none_or(|r| r.starts_with(['"', '\''])) {
            return false;
        }
        let span = loc.span();
        let end = span
            .byte_offset()
            .zip(span.byte_len())
            .and_then(|(o, l)| o.checked_add(l))
            .and_then(|e| usize::try_from(e).ok());
        end == Some(self.src.len())
    }

    /// The scalar's source text at its definition.
    fn source_text(&self, s: &Spanned<Raw>) -> Option<&str> {
        let span = s.defined.span();
        let start = usize::try_from(span.byte_offset()?).ok()?;
        let len = usize::try_from(span.byte_len()?).ok()?;
        self.src.get(start..start.checked_add(len)?)
    }

    /// The node of `s`; the one error is a mapping key that is itself a mapping or a
    /// sequence (PyYAML, hence cloud-init, refuses those as unhashable; spelling them out
    /// as text grows twice as long with every level of nesting).
    fn node(&self, s: Spanned<Raw>) -> Result<Node, (Pos, String)> {
        let pos = Self::pos(&s);
        // A plain scalar's source text is exactly its value; quoted scalars start with a
        // quote, block scalars span several lines (or differ by their indentation).
        let raw_text = self.source_text(&s).map(str::to_owned);
        let plain_if = |text: &str| raw_text.as_deref() == Some(text);
        let is_scalar_number = matches!(
            s.value,
            Raw::Bool(_) | Raw::Int(_) | Raw::UInt(_) | Raw::Float(_)
        );
        let mut text = if is_scalar_number {
            raw_text
                .as_deref()
                .map(str::trim)
                .filter(|t| !t.is_empty() && !t.starts_with(['"', '\'', '*', '&', '!']))
                .map(str::to_owned)
        } else {
            None
        };
        let at_end = self.ends_the_input_without_a_line_break(&s.defined, raw_text.as_deref());
        let tag = match s.value {
            Raw::Str(_) => self.explicit_tag(&s.defined),
            _ => None,
        };
        let tag = tag.as_deref();
        let (mut value, mut plain) = match s.value {
            Raw::Null => (NodeValue::Null, true),
            Raw::Bool(b) => (NodeValue::Bool(b), true),
            Raw::Int(i) => (NodeValue::Int(i), true),
            Raw::UInt(u) => (NodeValue::UInt(u), true),
            Raw::Float(f) => (NodeValue::Float(f), true),
            // `!!str 12`, `!!str 0755`, `!!str yes`: the string as written (PyYAML);
            // serde-saphyr hands these over as strings.
            Raw::Str(st) if tag == Some("!!str") => (NodeValue::Str(st), false),
            Raw::Str(st) if tag == Some("!!binary") => {
                let bytes =
                    python_b64decode(st.as_bytes()).map_err(|e| (pos, format!("!!binary: {e}")))?;
                (NodeValue::Bytes(bytes), false)
            }
            Raw::Str(mut st) => {
                let plain = plain_if(&st) && !st.starts_with(['"', '\'']) && !st.contains('\n');
                if !plain && at_end {
                    // A block scalar (`|`, `>`, `|+`) whose last line ends the file with no
                    // line break: PyYAML keeps no final newline (there is none to keep);
                    // serde-saphyr adds one.
                    if st.ends_with('\n') {
                        st.pop();
                    }
                }
                (NodeValue::Str(st), plain)
            }
            Raw::Seq(items) => (
                NodeValue::Seq(
                    items
                        .into_iter()
                        .map(|i| self.node(i))
                        .collect::<Result<_, _>>()?,
                ),
                false,
            ),
            Raw::Map(entries) => {
                let mut out: Vec<(Key, Node)> = Vec::with_capacity(entries.len());
                // Where each name is in `out`: a linear search per key made a flat
                // mapping of n keys cost n²/2 comparisons (minutes for a 1 MB document).
                let mut index: HashMap<String, usize> = HashMap::with_capacity(entries.len());
                for (k, v) in entries {
                    let kpos = Self::pos(&k);
                    if matches!(k.value, Raw::Seq(_) | Raw::Map(_)) {
                        return Err((
                            kpos,
                            "a mapping key must be a scalar, not a sequence or a mapping"
                                .to_owned(),
                        ));
                    }
                    let knode = self.node(k)?;
                    let name = key_name(&knode);
                    let vnode = self.node(v)?;
                    // Duplicate keys: last wins, first position kept (PyYAML's dict).
                    match index.get(&name).and_then(|&i| out.get_mut(i)) {
                        Some(slot) => slot.1 = vnode,
                        None => {
                            index.insert(name.clone(), out.len());
                            out.push((Key { name, pos: kpos }, vnode));
                        }
                    }
                }
                (NodeValue::Map(out), false)
            }
        };
        // PyYAML's YAML 1.1 reading of plain numbers: `0755` octal, `1_000`, `1:20`, `0x1f`
        // are integers; `0o600` and `1e3` (YAML 1.2 numbers) are strings. The spelling is
        // kept in `text` for where a string is expected.
        let spelled = match &value {
            NodeValue::Str(st) if plain => Some(st.clone()),
            NodeValue::Int(_) | NodeValue::UInt(_) | NodeValue::Float(_) => text.clone(),
            _ => None,
        };
        if let Some(sp) = spelled {
            if let Some(i) = yaml11_int(&sp) {
                if let Ok(v) = i64::try_from(i) {
                    value = NodeValue::Int(v);
                    text = Some(sp);
                } else if let Ok(v) = u64::try_from(i) {
                    value = NodeValue::UInt(v);
                    text = Some(sp);
                }
            } else if let Some(f) = yaml11_float(&sp) {
                value = NodeValue::Float(f);
                text = Some(sp);
            } else if matches!(
                value,
                NodeValue::Int(_) | NodeValue::UInt(_) | NodeValue::Float(_)
            ) {
                value = NodeValue::Str(sp);
                text = None;
                plain = true;
            }
        }
        Ok(Node {
            value,
            pos,
            plain,
            text,
        })
    }
}

/// A mapping key as PyYAML (then JSON) spells it: `01` and `1` are the int 1, so the same
/// key; a plain `yes` is `true`; other scalars keep their text.
fn key_name(k: &Node) -> String {
    match &k.value {
        NodeValue::Null => "null".into(),
        NodeValue::Bool(b) => b.to_string(),
        NodeValue::Int(i) => i.to_string(),
        NodeValue::UInt(u) => u.to_string(),
        NodeValue::Float(f) => format!("{f:?}"),
        _ => match k.as_bool() {
            Some(b) => b.to_string(),
            None => k.as_text().unwrap_or_default(),
        },
    }
}

fn seed_error(file: &str, pos: Option<Pos>, message: impl Into<String>) -> SeedError {
    SeedError {
        file: file.into(),
        line: pos.map(|p| p.line),
        column: pos.map(|p| p.column),
        message: message.into(),
    }
}

/// serde-saphyr's message without its own " at line N, column M" suffix (we print
/// `file:line:col:` in front instead), reworded where it helps.
fn saphyr_message(e: &serde_saphyr::Error, limits: &Limits) -> String {
    if let serde_saphyr::Error::Budget { breach, .. } = e {
        if let serde_saphyr::budget::BudgetBreach::Documents { .. } = breach {
            return "expected a single YAML document, found a second one ('---')".into();
        }
        return format!(
            "document exceeds the YAML limits: {}; refusing it",
            breach_words(breach, limits)
        );
    }
    let full = e.to_string();
    let msg = match full.find(" at line ") {
        Some(i) => full.get(..i).unwrap_or(&full),
        None => full.as_str(),
    };
    let msg = msg.trim();
    // Budget errors end "… (defined at line N, column M)": the cut above leaves an
    // unclosed "(defined"; drop it.
    let msg = match msg.rfind(" (") {
        Some(i) if !msg.get(i..).unwrap_or_default().contains(')') => {
            msg.get(..i).unwrap_or(msg).trim_end()
        }
        _ => msg,
    };
    if msg.contains("multiple YAML documents") || msg.contains("Documents {") {
        "expected a single YAML document, found a second one ('---')".into()
    } else if msg.starts_with("budget breached") {
        format!("document exceeds the YAML limits ({msg}); refusing it")
    } else if msg.contains("recursion limit") || msg.contains("nesting") {
        format!(
            "document nested too deeply (nesting deeper than {} levels)",
            limits.max_depth
        )
    } else {
        format!("invalid YAML: {msg}")
    }
}

/// A budget breach in words, with the limit that was crossed (never Rust debug syntax).
fn breach_words(b: &serde_saphyr::budget::BudgetBreach, l: &Limits) -> String {
    use serde_saphyr::budget::BudgetBreach as B;
    match b {
        B::Depth { .. } => format!("nesting deeper than {} levels", l.max_depth),
        B::Events { .. } => format!("more than {} YAML events", l.max_events),
        B::Aliases { .. } => format!("more than {} aliases", l.max_aliases),
        B::Anchors { .. } => "too many anchors".into(),
        B::Nodes { .. } => format!("more than {} nodes", l.max_nodes),
        B::ScalarBytes { .. } => format!("more than {} bytes of scalars", l.max_scalar_bytes),
        B::MergeKeys { .. } => "too many merge keys (<<)".into(),
        B::AliasAnchorRatio { aliases, anchors } => {
            format!("{aliases} aliases for {anchors} anchors (an alias bomb)")
        }
        B::SequenceUnbalanced => "unbalanced structure (truncated document?)".into(),
        B::InputBytes { .. } => format!("more than {} bytes", l.max_bytes),
        _ => "too much repetition through anchors and aliases".into(),
    }
}

/// Stack for the parser thread. serde-saphyr recurses once per nesting level with large
/// frames (tens of KiB per level in debug builds), so 64 levels can overflow a 2 MiB test
/// thread. Parsing on a thread of our own makes the depth budget, not the caller's stack,
/// the limit. Only touched pages are committed.
const PARSER_STACK: usize = 64 << 20;

/// Run `f` on a scoped thread with [`PARSER_STACK`].
fn on_parser_stack<T: Send>(f: impl FnOnce() -> T + Send) -> std::io::Result<T> {
    std::thread::scope(|s| {
        let h = std::thread::Builder::new()
            .name("yaml".into())
            .stack_size(PARSER_STACK)
            .spawn_scoped(s, f)?;
        match h.join() {
            Ok(v) => Ok(v),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Parse a document into a located [`Node`] tree, within `limits`.
pub fn parse_node_with(text: &str, file: &str, limits: &Limits) -> Result<Node, SeedError> {
    if text.len() > limits.max_bytes {
        return Err(seed_error(
            file,
            None,
            format!(
                "document is {} bytes, more than the limit of {} bytes",
                text.len(),
                limits.max_bytes
            ),
        ));
    }
    let limits = *limits;
    let file_name = file.to_owned();
    on_parser_stack(move || {
        let raw: Spanned<Raw> = serde_saphyr::from_str_with_options(text, limits.options())
            .map_err(|e| {
                let pos = e.location().map(|l| Pos {
                    line: usize::try_from(l.line()).unwrap_or(0),
                    column: usize::try_from(l.column()).unwrap_or(0),
                });
                seed_error(
                    &file_name,
                    pos.and_then(Pos::known),
                    saphyr_message(&e, &limits),
                )
            })?;
        Builder { src: text }
            .node(raw)
            .map_err(|(pos, msg)| seed_error(&file_name, pos.known(), msg))
    })
    .unwrap_or_else(|e| {
        Err(seed_error(
            file,
            None,
            format!("cannot start the YAML parser: {e}"),
        ))
    })
}

/// [`parse_node_with`] with the default [`Limits`].
pub fn parse_node(text: &str, file: &str) -> Result<Node, SeedError> {
    parse_node_with(text, file, &Limits::default())
}

/// Parse a YAML (or JSON) document into a plain JSON value, within budgets.
pub fn parse_value(text: &str, file: &str) -> Result<serde_json::Value, SeedError> {
    parse_value_with(text, file, &Limits::default())
}

/// [`parse_value`] with explicit limits.
pub fn parse_value_with(
    text: &str,
    file: &str,
    limits: &Limits,
) -> Result<serde_json::Value, SeedError> {
    Ok(parse_node_with(text, file, limits)?.to_json())
}

/// Parse a YAML document into a typed value, within budgets; errors carry line/column and
/// the key path. Booleans follow PyYAML (see the module doc).
pub fn from_str<T: DeserializeOwned>(text: &str, file: &str) -> Result<T, SeedError> {
    from_str_with(text, file, &Limits::default())
}

/// [`from_str`] with explicit limits.
pub fn from_str_with<T: DeserializeOwned>(
    text: &str,
    file: &str,
    limits: &Limits,
) -> Result<T, SeedError> {
    let node = parse_node_with(text, file, limits)?;
    from_node(&node, file)
}

/// Deserialize a typed value from a parsed [`Node`]; errors name the key path and the
/// position of the offending node.
pub fn from_node<T: DeserializeOwned>(node: &Node, file: &str) -> Result<T, SeedError> {
    T::deserialize(NodeDe { node }).map_err(|e| e.into_seed_error(file))
}

/// A typed-read error: message, innermost node position, and the key path (collected
/// innermost first while the error propagates outwards).
#[derive(Debug)]
pub struct DeError {
    message: String,
    pos: Option<Pos>,
    path: Vec<PathSeg>,
}

#[derive(Debug)]
enum PathSeg {
    Key(String),
    Index(usize),
}

/// Format a key path (`users[1].groups`) from segments given outermost first.
fn format_path<'a>(segs: impl Iterator<Item = &'a PathSeg>) -> String {
    let mut out = String::new();
    for s in segs {
        match s {
            PathSeg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            PathSeg::Index(i) => {
                out.push('[');
                out.push_str(&i.to_string());
                out.push(']');
            }
        }
    }
    out
}

impl DeError {
    fn at(mut self, pos: Pos) -> Self {
        if self.pos.is_none() {
            self.pos = pos.known();
        }
        self
    }
    fn seg(mut self, s: PathSeg) -> Self {
        self.path.push(s);
        self
    }
    fn into_seed_error(self, file: &str) -> SeedError {
        let path = format_path(self.path.iter().rev());
        let message = if path.is_empty() {
            self.message
        } else {
            format!("{path}: {}", self.message)
        };
        seed_error(file, self.pos, message)
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError {
            message: msg.to_string(),
            pos: None,
            path: Vec::new(),
        }
    }
}

/// A serde `Deserializer` over a [`Node`].
struct NodeDe<'a> {
    node: &'a Node,
}

impl<'a> NodeDe<'a> {
    fn unexpected(&self) -> de::Unexpected<'a> {
        match &self.node.value {
            NodeValue::Null => de::Unexpected::Unit,
            NodeValue::Bool(b) => de::Unexpected::Bool(*b),
            NodeValue::Int(i) => de::Unexpected::Signed(*i),
            NodeValue::UInt(u) => de::Unexpected::Unsigned(*u),
            NodeValue::Float(f) => de::Unexpected::Float(*f),
            NodeValue::Str(s) => de::Unexpected::Str(s),
            NodeValue::Bytes(b) => de::Unexpected::Bytes(b),
            NodeValue::Seq(_) => de::Unexpected::Seq,
            NodeValue::Map(_) => de::Unexpected::Map,
        }
    }

    fn any<'de, V: Visitor<'de>>(&self, v: V) -> Result<V::Value, DeError> {
        let n = self.node;
        match &n.value {
            NodeValue::Null => v.visit_unit(),
            NodeValue::Bool(b) => v.visit_bool(*b),
            NodeValue::Int(i) => v.visit_i64(*i),
            NodeValue::UInt(u) => v.visit_u64(*u),
            NodeValue::Float(f) => v.visit_f64(*f),
            NodeValue::Str(s) => match n.as_bool() {
                Some(b) => v.visit_bool(b),
                None => v.visit_str(s),
            },
            NodeValue::Bytes(b) => v.visit_bytes(b),
            NodeValue::Seq(items) => v.visit_seq(SeqDe {
                iter: items.iter().enumerate(),
            }),
            NodeValue::Map(m) => v.visit_map(MapDe {
                iter: m.iter(),
                value: None,
            }),
        }
    }

    fn int<'de, V: Visitor<'de>>(&self, v: V) -> Result<V::Value, DeError> {
        match &self.node.value {
            NodeValue::Str(s) if self.node.plain => match yaml11_octal(s) {
                Some(i) => v.visit_i64(i),
                None => self.any(v),
            },
            _ => self.any(v),
        }
    }

    fn text<'de, V: Visitor<'de>>(&self, v: V) -> Result<V::Value, DeError> {
        match &self.node.value {
            NodeValue::Str(s) => v.visit_str(s),
            NodeValue::Null | NodeValue::Seq(_) | NodeValue::Map(_) => self.any(v),
            _ => match self.node.as_text() {
                Some(t) => v.visit_string(t),
                None => self.any(v),
            },
        }
    }
}

macro_rules! forward_int {
    ($($m:ident)*) => {$(
        fn $m<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
            self.int(v).map_err(|e| e.at(self.node.pos))
        }
    )*};
}

impl<'de> de::Deserializer<'de> for NodeDe<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.any(v).map_err(|e| e.at(self.node.pos))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        match self.node.as_bool() {
            Some(b) => v.visit_bool(b),
            None => Err(<DeError as de::Error>::invalid_type(
                self.unexpected(),
                &"a boolean (true/false, yes/no, on/off)",
            )),
        }
        .map_err(|e| e.at(self.node.pos))
    }

    forward_int! {
        deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_i128
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128
    }

    fn deserialize_f32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.any(v).map_err(|e| e.at(self.node.pos))
    }
    fn deserialize_f64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.any(v).map_err(|e| e.at(self.node.pos))
    }
    fn deserialize_char<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.text(v).map_err(|e| e.at(self.node.pos))
    }
    fn deserialize_str<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.text(v).map_err(|e| e.at(self.node.pos))
    }
    fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.text(v).map_err(|e| e.at(self.node.pos))
    }
    fn deserialize_bytes<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.any(v).map_err(|e| e.at(self.node.pos))
    }
    fn deserialize_byte_buf<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.any(v).map_err(|e| e.at(self.node.pos))
    }
    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        match self.node.value {
            NodeValue::Null => v.visit_none(),
            _ => v.visit_some(NodeDe { node: self.node }),
        }
        .map_err(|e| e.at(self.node.pos))
    }
    fn deserialize_unit<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.any(v).map_err(|e| e.at(self.node.pos))
    }
    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        v: V,
    ) -> Result<V::Value, DeError> {
        self.any(v).map_err(|e| e.at(self.node.pos))
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        v: V,
    ) -> Result<V::Value, DeError> {
        v.visit_newtype_struct(NodeDe { node: self.node })
            .map_err(|e| e.at(self.node.pos))
    }
    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.any(v).map_err(|e| e.at(self.node.pos))
    }
    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, v: V) -> Result<V::Value, DeError> {
        self.any(v).map_err(|e| e.at(self.node.pos))
    }
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        v: V,
    ) -> Result<V::Value, DeError> {
        self.any(v).map_err(|e| e.at(self.node.pos))
    }
    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.any(v).map_err(|e| e.at(self.node.pos))
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, DeError> {
        // An empty document / `key:` with nothing is an empty struct, as in PyYAML configs.
        match self.node.value {
            NodeValue::Null => v.visit_map(MapDe {
                iter: [].iter(),
                value: None,
            }),
            _ => self.any(v),
        }
        .map_err(|e| e.at(self.node.pos))
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, DeError> {
        let node = self.node;
        match &node.value {
            NodeValue::Map(m) if m.len() == 1 => match m.first() {
                Some((k, val)) => v.visit_enum(EnumDe {
                    variant: k.name.clone(),
                    value: Some(val),
                }),
                None => Err(de::Error::custom("expected an enum")),
            },
            _ => match node.as_text() {
                Some(s) => v.visit_enum(EnumDe {
                    variant: s,
                    value: None,
                }),
                None => Err(de::Error::invalid_type(
                    self.unexpected(),
                    &"a string or a one-key mapping",
                )),
            },
        }
        .map_err(|e| e.at(node.pos))
    }
    fn deserialize_identifier<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.text(v).map_err(|e| e.at(self.node.pos))
    }
    fn deserialize_ignored_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        v.visit_unit()
    }
}

struct SeqDe<'a> {
    iter: std::iter::Enumerate<std::slice::Iter<'a, Node>>,
}

impl<'de> de::SeqAccess<'de> for SeqDe<'_> {
    type Error = DeError;
    fn next_element_seed<T: de::DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        match self.iter.next() {
            Some((i, node)) => seed
                .deserialize(NodeDe { node })
                .map(Some)
                .map_err(|e| e.seg(PathSeg::Index(i))),
            None => Ok(None),
        }
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

struct MapDe<'a> {
    iter: std::slice::Iter<'a, (Key, Node)>,
    value: Option<(&'a Key, &'a Node)>,
}

impl<'de> de::MapAccess<'de> for MapDe<'_> {
    type Error = DeError;
    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        match self.iter.next() {
            Some((k, v)) => {
                self.value = Some((k, v));
                seed.deserialize(k.name.as_str().into_deserializer())
                    .map(Some)
                    .map_err(|e: DeError| e.at(k.pos).seg(PathSeg::Key(k.name.clone())))
            }
            None => Ok(None),
        }
    }
    fn next_value_seed<V: de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, DeError> {
        match self.value.take() {
            Some((k, node)) => seed
                .deserialize(NodeDe { node })
                .map_err(|e| e.seg(PathSeg::Key(k.name.clone()))),
            None => Err(de::Error::custom("value requested before key")),
        }
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

struct EnumDe<'a> {
    variant: String,
    value: Option<&'a Node>,
}

impl<'de, 'a> de::EnumAccess<'de> for EnumDe<'a> {
    type Error = DeError;
    type Variant = VariantDe<'a>;
    fn variant_seed<V: de::DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, VariantDe<'a>), DeError> {
        let name = self.variant.clone();
        let v = seed.deserialize(self.variant.into_deserializer())?;
        Ok((
            v,
            VariantDe {
                name,
                value: self.value,
            },
        ))
    }
}

struct VariantDe<'a> {
    name: String,
    value: Option<&'a Node>,
}

impl<'de> de::VariantAccess<'de> for VariantDe<'_> {
    type Error = DeError;
    fn unit_variant(self) -> Result<(), DeError> {
        match self.value {
            None => Ok(()),
            Some(n) if n.value == NodeValue::Null => Ok(()),
            Some(_) => Err(de::Error::custom(format!("`{}` takes no value", self.name))),
        }
    }
    fn newtype_variant_seed<T: de::DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, DeError> {
        match self.value {
            Some(node) => seed
                .deserialize(NodeDe { node })
                .map_err(|e| e.seg(PathSeg::Key(self.name.clone()))),
            None => Err(de::Error::custom(format!("`{}` needs a value", self.name))),
        }
    }
    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, v: V) -> Result<V::Value, DeError> {
        match self.value {
            Some(node) => de::Deserializer::deserialize_seq(NodeDe { node }, v)
                .map_err(|e| e.seg(PathSeg::Key(self.name.clone()))),
            None => Err(de::Error::custom(format!("`{}` needs a list", self.name))),
        }
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, DeError> {
        match self.value {
            Some(node) => de::Deserializer::deserialize_map(NodeDe { node }, v)
                .map_err(|e| e.seg(PathSeg::Key(self.name.clone()))),
            None => Err(de::Error::custom(format!(
                "`{}` needs a mapping",
                self.name
            ))),
        }
    }
}

/// A value as a YAML document (block style), for output in YAML (`status --format yaml`).
pub fn to_string<T: serde::Serialize>(value: &T) -> Result<String, String> {
    serde_saphyr::to_string(value).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[test]
    fn pyyaml_booleans_exactly() {
        let v = parse_value(
            "a: yes\nb: No\nc: OFF\nd: y\ne: n\nf: yEs\ng: 'yes'\nh: True\ni: on\n",
            "t",
        )
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({"a": true, "b": false, "c": false, "d": "y", "e": "n",
                "f": "yEs", "g": "yes", "h": true, "i": true})
        );
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct T {
        name: String,
        flag: bool,
        #[serde(default)]
        mode: Option<u32>,
        #[serde(default)]
        list: Vec<String>,
    }

    #[test]
    fn typed_reads_keep_strings_and_resolve_bools() {
        let t: T = from_str("name: no\nflag: off\nmode: 0644\nlist: [1.10, yes]\n", "f").unwrap();
        assert_eq!(
            t,
            T {
                name: "no".into(),
                flag: false,
                mode: Some(0o644),
                list: vec!["1.10".into(), "yes".into()],
            }
        );
    }

    #[test]
    fn typed_errors_have_path_and_position() {
        let e = from_str::<T>("name: x\nflag: maybe\n", "cfg.yaml").unwrap_err();
        assert_eq!(e.line, Some(2));
        assert_eq!(e.column, Some(7));
        assert!(e.to_string().starts_with("cfg.yaml:2:7: flag: "), "{e}");
        let e = from_str::<T>("name: x\nflag: true\nlist:\n  - a\n  - [b]\n", "c").unwrap_err();
        assert!(e.to_string().starts_with("c:5:5: list[1]: "), "{e}");
        let e = from_str::<T>("flag: true\n", "c").unwrap_err();
        assert!(e.to_string().contains("missing field `name`"), "{e}");
    }

    #[test]
    fn duplicate_keys_last_wins() {
        let v = parse_value("a: 1\nb: 2\na: 3\n", "f").unwrap();
        assert_eq!(v, serde_json::json!({"a": 3, "b": 2}));
        let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["a", "b"]);
    }

    #[test]
    fn syntax_errors_are_located() {
        let e = parse_value("a: 1\nb: [1, 2\nc: 3\n", "user-data").unwrap_err();
        assert_eq!(e.file, "user-data");
        assert!(e.line.is_some(), "{e}");
        assert!(e.message.starts_with("invalid YAML"), "{e}");
    }

    #[test]
    fn second_document_is_refused_and_empty_is_null() {
        let e = parse_value("a: 1\n---\nb: 2\n", "f").unwrap_err();
        assert!(e.message.contains("single YAML document"), "{e}");
        assert_eq!(parse_value("", "f").unwrap(), serde_json::Value::Null);
        assert_eq!(
            parse_value("# only\n", "f").unwrap(),
            serde_json::Value::Null
        );
    }

    #[test]
    fn input_size_limit() {
        let limits = Limits {
            max_bytes: 10,
            ..Limits::default()
        };
        let e = parse_value_with("a: 0123456789\n", "f", &limits).unwrap_err();
        assert!(e.message.contains("more than the limit"), "{e}");
    }

    #[test]
    fn json_documents() {
        let v = parse_value(r#"{"instance-id": "i-1", "n": [1, 2.5, null, false]}"#, "m").unwrap();
        assert_eq!(
            v,
            serde_json::json!({"instance-id": "i-1", "n": [1, 2.5, null, false]})
        );
    }

    #[test]
    fn aliases_and_merge_keys() {
        let v = parse_value("a: &x {k: 1}\nb: *x\nc:\n  <<: *x\n  j: 2\n", "f").unwrap();
        assert_eq!(
            v,
            serde_json::json!({"a": {"k": 1}, "b": {"k": 1}, "c": {"k": 1, "j": 2}})
        );
    }

    #[test]
    fn octal_helper() {
        assert_eq!(yaml11_octal("0644"), Some(0o644));
        assert_eq!(yaml11_octal("-017"), Some(-0o17));
        assert_eq!(yaml11_octal("0"), None);
        assert_eq!(yaml11_octal("08"), None);
        assert_eq!(yaml11_octal("644"), None);
    }

    /// A billion-laughs document of about 36 KB: nine levels of nine-fold aliases, padded
    /// with long scalars so its size matches the bomb measured against serde_yaml.
    fn alias_bomb() -> String {
        let pad = "lol".repeat(1300);
        let mut doc = format!("a: &a [\"{pad}\", \"{pad}\", \"{pad}\", \"{pad}\", \"{pad}\", \"{pad}\", \"{pad}\", \"{pad}\", \"{pad}\"]\n");
        let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
        for w in names.windows(2) {
            let refs = vec![format!("*{}", w[0]); 9].join(", ");
            doc.push_str(&format!("{}: &{} [{refs}]\n", w[1], w[1]));
        }
        doc
    }

    #[test]
    fn complex_keys_are_refused_where_they_are() {
        for (doc, line, column) in [
            ("a: 1\n? [x, y]\n: 2\n", 2, 3),
            ("? {k: v}\n: 1\n", 1, 3),
            ("outer:\n  {[1]: 2}: 3\n", 2, 3),
        ] {
            let e = parse_node(doc, "meta-data").expect_err(doc);
            let m = e.to_string();
            assert!(m.contains("a mapping key must be a scalar"), "{doc:?}: {m}");
            assert!(
                m.starts_with(&format!("meta-data:{line}:{column}")),
                "{doc:?}: {m}"
            );
        }
        // Scalar keys of every kind still work.
        let n = parse_node("1: a\n~: b\ntrue: c\n\"q\": d\n", "m").unwrap();
        let j = n.to_json();
        assert_eq!(j["1"], "a");
        assert_eq!(j["null"], "b");
        assert_eq!(j["true"], "c");
        assert_eq!(j["q"], "d");
    }

    /// Found by the `userdata` fuzz target: 112 bytes of nested complex keys
    /// (`? ? ? ? : ?`…) made the key spelling (JSON text of JSON text…) double with each
    /// level, until a 2 GiB allocation aborted the agent after a minute. Refused at once.
    #[test]
    fn nested_complex_keys_cannot_blow_up() {
        let doc = " ? ? ? ? : ?  ? ? : ?  ? : ? : ?  ? : ?  ? ? : ?  ? : ?    : ?  ?  ? ? : ?  ? : ? : ?  ? : ?  ? ? : ?  ? : ? : ?";
        let e = parse_node(doc, "meta-data").unwrap_err().to_string();
        assert!(e.contains("a mapping key must be a scalar"), "{e}");
        let deep = format!("{}x: 1\n", "? ".repeat(60));
        let e = parse_node(&deep, "meta-data").unwrap_err().to_string();
        assert!(e.contains("a mapping key must be a scalar"), "{e}");
    }

    #[test]
    fn alias_bomb_is_refused() {
        let doc = alias_bomb();
        assert!(doc.len() > 30_000 && doc.len() < 40_000, "{}", doc.len());
        let e = parse_value(&doc, "user-data").unwrap_err();
        assert!(e.message.contains("YAML limits"), "{e}");
        assert!(e.line.is_some(), "{e}");
    }

    #[test]
    fn budget_messages_are_well_formed() {
        let doc = format!(
            "a: &a \"{}\"\nb: [{}]\n",
            "x".repeat(1 << 20),
            vec!["*a"; 64].join(", ")
        );
        let e = parse_value(&doc, "user-data").unwrap_err();
        let text = e.to_string();
        assert!(text.contains("YAML limits"), "{text}");
        assert_eq!(
            text.matches('(').count(),
            text.matches(')').count(),
            "{text}"
        );
        assert!(!text.contains("(defined"), "{text}");
        assert!(e.line.is_some(), "{text}");
    }

    #[test]
    fn deep_flow_mapping_is_refused() {
        let depth = 100_000;
        let doc = format!("{}1{}\n", "{a: ".repeat(depth), "}".repeat(depth));
        let e = parse_value(&doc, "meta-data").unwrap_err();
        assert!(
            e.message.contains("nested too deeply") || e.message.contains("YAML limits"),
            "{e}"
        );
        let doc = format!("{}1{}\n", "[".repeat(depth), "]".repeat(depth));
        assert!(parse_value(&doc, "meta-data").is_err());
        // Block nesting: 1000 levels of "- ".
        let mut doc = String::new();
        for i in 0..1000 {
            doc.push_str(&" ".repeat(i * 2));
            doc.push_str("-\n");
        }
        let e = parse_value(&doc, "f").unwrap_err();
        assert!(e.message.contains("YAML limits"), "{e}");
    }

    #[test]
    fn yaml11_numbers_as_pyyaml() {
        let v = parse_value(
            "a: 0755\nb: 00\nc: 0x1f\nd: 1_000\ne: 1:20\nf: 0o600\ng: 1e3\nh: 1.5\ni: '0755'\nj: 0b101\nk: -0x10\nl: 1:20.5\nm: .5\n01: one\n",
            "t",
        )
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({"a": 493, "b": 0, "c": 31, "d": 1000, "e": 80, "f": "0o600",
                "g": "1e3", "h": 1.5, "i": "0755", "j": 5, "k": -16, "l": 80.5, "m": 0.5, "1": "one"})
        );
        // Keys 01 and 1 are the same key: the later wins.
        let v = parse_value("01: a\n1: b\n", "t").unwrap();
        assert_eq!(v, serde_json::json!({"1": "b"}));
        // Where a string is expected, the spelling is kept.
        let n = parse_node("v: 0755\n", "t").unwrap();
        assert_eq!(n.get("v").unwrap().as_text().as_deref(), Some("0755"));
        assert_eq!(yaml11_int("1:70"), None);
        assert_eq!(yaml11_int("0_"), Some(0));
        assert_eq!(yaml11_float("-.5"), None);
        assert_eq!(yaml11_float("1.0e+3"), Some(1000.0));
        assert_eq!(yaml11_float("1.0e3"), None);
    }

    #[test]
    fn explicit_tags() {
        let v = |src: &str| parse_node(src, "t").unwrap().to_json();
        assert_eq!(
            v("a: !!str 12\nb: !!str 0755\nc: !!str yes\nd: &x !!str 1:20\ne: !!str &y 0x1f\nf: !!str true"),
            serde_json::json!({"a": "12", "b": "0755", "c": "yes", "d": "1:20", "e": "0x1f", "f": "true"})
        );
        assert_eq!(
            v("a: !<tag:yaml.org,2002:binary> aGk=\nb: !<tag:yaml.org,2002:str> 12\nc: [!!str 1, 2]"),
            serde_json::json!({"a": "ci-b64:aGk=", "b": "12", "c": ["1", 2]})
        );
        assert_eq!(
            v("a: !!binary | # gzip\n  aGk=\nb: !!binary >-\n  aGk=\nc: |\n  !!str"),
            serde_json::json!({"a": "ci-b64:aGk=", "b": "ci-b64:aGk=", "c": "!!str"})
        );
    }

    #[test]
    fn block_scalar_at_the_end_of_the_input() {
        let v = |src: &str| parse_node(src, "t").unwrap().to_json();
        assert_eq!(
            v("a: |\n  one\n  two"),
            serde_json::json!({"a": "one\ntwo"})
        );
        assert_eq!(
            v("a: |\n  one\n  two\n"),
            serde_json::json!({"a": "one\ntwo\n"})
        );
        assert_eq!(v("r:\n- |\n  x"), serde_json::json!({"r": ["x"]}));
        assert_eq!(v("a: |+\n  x"), serde_json::json!({"a": "x"}));
        assert_eq!(v("a: >\n  x\n  y"), serde_json::json!({"a": "x y"}));
        assert_eq!(
            v("a: |\n  x\nb: |\n  y"),
            serde_json::json!({"a": "x\n", "b": "y"})
        );
        assert_eq!(v("a: \"x\""), serde_json::json!({"a": "x"}));
    }

    #[test]
    fn binary_is_bytes_with_python_base64() {
        let n = parse_node(
            "a: !!binary |\n  H4sI\n  AAA=\nb: !!binary aGk*=\nc: x\n",
            "t",
        )
        .unwrap();
        assert_eq!(
            n.get("a").unwrap().value,
            NodeValue::Bytes(vec![0x1f, 0x8b, 0x08, 0, 0])
        );
        assert_eq!(n.get("b").unwrap().value, NodeValue::Bytes(b"hi".to_vec()));
        assert_eq!(n.get("c").unwrap().value, NodeValue::Str("x".into()));
        assert_eq!(n.to_json()["b"], serde_json::json!("ci-b64:aGk="));
        assert_eq!(python_b64decode(b"YWJj=ZGVm").unwrap(), b"abcdef");
        assert_eq!(python_b64decode(b"YW*J j\n").unwrap(), b"abc");
        assert!(python_b64decode(b"YWJjZA").is_err());
        assert!(python_b64decode(b"YWJjZ").is_err());
        assert_eq!(python_b64decode(b"YWJjZA==").unwrap(), b"abcd");
    }

    #[test]
    fn budget_errors_are_in_words() {
        let mut block = String::new();
        for i in 0..70 {
            block.push_str(&format!("{}k{i}:\n", "  ".repeat(i)));
        }
        block.push_str(&format!("{}x\n", "  ".repeat(70)));
        let flow = format!("a: {}{}\n", "[".repeat(70), "]".repeat(70));
        for doc in [block, flow] {
            let e = parse_node_with(&doc, "user-data", &Limits::default()).unwrap_err();
            let text = e.to_string();
            assert!(text.contains("nesting deeper than 64 levels"), "{text}");
            assert!(!text.contains('{') && !text.contains("breached"), "{text}");
        }
    }
}
