//! How cloud-config parts merge: cloud-init's mergers (`cloudinit/mergers`), as
//! `merge_how` / `merge_type` in a part or the MIME `Merge-Type` header name them.
//!
//! A spec is `name(opt,opt)+name(…)…` (case and `-`/`_` do not matter), or a YAML list of
//! `{name: list, settings: [append]}` mappings or `[list, append]` lists. The part's own
//! key comes first, then the header; with neither, user-data parts merge with
//! `dict(replace)+list()+str()`: a later part's top-level keys replace the earlier ones
//! whole.
//!
//! The first merger of each kind decides how values of that kind merge, and the kind is
//! the one of the value merged *into*: a kind without a merger keeps the old value, so
//! `merge_how: list(append)` alone (no `dict`) leaves the config as it was.
//!
//! - `dict(replace|no_replace, recurse_list|recurse_array, recurse_str, allow_delete)`:
//!   keys only the new mapping has are added. For a key both have, `replace` (first
//!   wins over `no_replace`, the default) takes the new value; `no_replace` keeps the old
//!   one, except that a new mapping always merges into the old value, and a new list
//!   (`recurse_list`) or string (`recurse_str`) does too. `allow_delete`: a new `null`
//!   removes the key. `recurse_dict` is accepted and changes nothing (mappings always
//!   recurse).
//! - `list(append|prepend|replace|no_replace, recurse_dict, recurse_list, recurse_str)`:
//!   `append` / `prepend` join the lists; `replace` (the default) replaces item by
//!   item (a shorter new list keeps the old tail; with a `recurse_*` option, items of that
//!   kind merge), and a new value that is not a list replaces the list; `no_replace` keeps
//!   the old list.
//! - `str(append)`: the new string is appended; anything else (`str()`, `str(no_replace)`)
//!   takes the new value.
//!
//! Where cloud-init's merge raises (appending a number to a list, a string to a list of
//! a different type …) the whole part is left out, as cloud-init leaves it out; the
//! caller reports it.

use std::collections::HashMap;

use crate::formats::yaml::{Node, NodeValue};

/// cloud-init's merge for user-data parts without `merge_how` or `Merge-Type`.
pub const DEFAULT: &str = "dict(replace)+list()+str()";

/// Options of one merger: a YAML list (items compared whole), or a string (Python's
/// `in` on a string is a substring test), or a mapping's keys.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Opts {
    /// Items; `None` for an item that is not a string (never equal to an option name).
    List(Vec<Option<String>>),
    Text(String),
}

impl Opts {
    fn has(&self, opt: &str) -> bool {
        match self {
            Opts::List(items) => items.iter().any(|i| i.as_deref() == Some(opt)),
            Opts::Text(t) => t.contains(opt),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListMethod {
    Append,
    Prepend,
    Replace,
    NoReplace,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DictMerger {
    replace: bool,
    recurse_str: bool,
    recurse_array: bool,
    allow_delete: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ListMerger {
    method: ListMethod,
    recurse_str: bool,
    recurse_dict: bool,
    recurse_array: bool,
}

/// A set of mergers: the first of each kind in the spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mergers {
    dict: Option<DictMerger>,
    list: Option<ListMerger>,
    /// `Some(append)` when there is a `str` merger.
    string: Option<bool>,
}

impl Default for Mergers {
    fn default() -> Self {
        // DEFAULT, spelled out (it always parses).
        Mergers {
            dict: Some(DictMerger {
                replace: true,
                recurse_str: false,
                recurse_array: false,
                allow_delete: false,
            }),
            list: Some(ListMerger {
                method: ListMethod::Replace,
                recurse_str: false,
                recurse_dict: false,
                recurse_array: false,
            }),
            string: Some(false),
        }
    }
}

/// One parsed `name(opts)` before it is looked up.
type Parsed = Vec<(String, Opts)>;

/// `string_extract_mergers`: `dict(replace)+list(append)`.
fn parse_string(spec: &str) -> Result<Parsed, String> {
    let mut out = Vec::new();
    for item in spec.split('+') {
        let item = item.trim().to_lowercase().replace('-', "_");
        if item.is_empty() {
            continue;
        }
        let bad = || format!("'{item}' is not name(options)");
        let open = item.find('(').ok_or_else(bad)?;
        let name = item.get(..open).unwrap_or_default();
        let name_ok = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        let inner = item
            .get(open + 1..)
            .and_then(|r| r.strip_suffix(')'))
            .filter(|i| name_ok && !i.contains('\n'))
            .ok_or_else(bad)?;
        let opts = inner
            .trim()
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(|o| Some(o.to_lowercase()))
            .collect();
        out.push((name.to_owned(), Opts::List(opts)));
    }
    Ok(out)
}

/// A plain scalar PyYAML reads as a string (not a boolean).
fn py_str(n: &Node) -> Option<&str> {
    match &n.value {
        NodeValue::Str(s) if n.as_bool().is_none() => Some(s),
        _ => None,
    }
}

/// `dict_extract_mergers` for a `merge_how` that is not a string: a list of
/// `{name, settings}` mappings or `[name, option…]` lists.
fn parse_node(node: &Node) -> Result<Parsed, String> {
    let items = match &node.value {
        NodeValue::Str(_) if py_str(node).is_some() => {
            return parse_string(py_str(node).unwrap_or_default())
        }
        NodeValue::Seq(items) => items,
        NodeValue::Map(m) if m.is_empty() => return Ok(Vec::new()),
        NodeValue::Bytes(b) if b.is_empty() => return Ok(Vec::new()),
        _ => {
            return Err(format!(
                "expected a string or a list of mergers, found {}",
                node.kind()
            ))
        }
    };
    let mut out = Vec::new();
    for item in items {
        let (name, opts) = match &item.value {
            NodeValue::Map(_) => {
                let name = item.get("name").ok_or("a merger mapping needs 'name'")?;
                let name = py_str(name).ok_or("a merger's 'name' must be a string")?;
                let settings = item
                    .get("settings")
                    .ok_or("a merger mapping needs 'settings'")?;
                (
                    name.replace('-', "_").trim().to_owned(),
                    settings_opts(settings)?,
                )
            }
            NodeValue::Seq(parts) => {
                let (first, rest) = parts
                    .split_first()
                    .ok_or("a merger list needs a name first")?;
                let name = py_str(first).ok_or("a merger's name must be a string")?;
                let opts = rest.iter().map(|o| py_str(o).map(str::to_owned)).collect();
                (name.to_owned(), Opts::List(opts))
            }
            // A string item is taken apart character by character by cloud-init: its
            // name is one letter, which names no merger.
            _ => {
                return Err(format!(
                    "a merger must be a mapping or a list, found {}",
                    item.kind()
                ))
            }
        };
        if !name.is_empty() {
            out.push((name, opts));
        }
    }
    Ok(out)
}

/// A merger mapping's `settings`.
fn settings_opts(n: &Node) -> Result<Opts, String> {
    match &n.value {
        NodeValue::Seq(items) => Ok(Opts::List(
            items.iter().map(|o| py_str(o).map(str::to_owned)).collect(),
        )),
        NodeValue::Map(m) => Ok(Opts::List(
            m.iter().map(|(k, _)| Some(k.name.clone())).collect(),
        )),
        _ => match py_str(n) {
            Some(s) => Ok(Opts::Text(s.to_owned())),
            None => Err(format!(
                "a merger's 'settings' must be a list, found {}",
                n.kind()
            )),
        },
    }
}

/// `mergers.construct`: the first merger of each kind; an unknown name is an error.
fn construct(parsed: &Parsed) -> Result<Mergers, String> {
    let mut m = Mergers {
        dict: None,
        list: None,
        string: None,
    };
    for (name, opts) in parsed {
        match name.strip_prefix("m_").unwrap_or(name) {
            "dict" => {
                m.dict.get_or_insert(DictMerger {
                    replace: opts.has("replace"),
                    recurse_str: opts.has("recurse_str"),
                    recurse_array: opts.has("recurse_array") || opts.has("recurse_list"),
                    allow_delete: opts.has("allow_delete"),
                });
            }
            "list" => {
                let method = [
                    ("append", ListMethod::Append),
                    ("prepend", ListMethod::Prepend),
                    ("replace", ListMethod::Replace),
                    ("no_replace", ListMethod::NoReplace),
                ]
                .into_iter()
                .find(|(o, _)| opts.has(o))
                .map_or(ListMethod::Replace, |(_, m)| m);
                m.list.get_or_insert(ListMerger {
                    method,
                    recurse_str: opts.has("recurse_str"),
                    recurse_dict: opts.has("recurse_dict"),
                    recurse_array: opts.has("recurse_array") || opts.has("recurse_list"),
                });
            }
            "str" => {
                m.string.get_or_insert(opts.has("append"));
            }
            other => {
                let shown: String = other.chars().take(40).collect();
                return Err(format!(
                    "unknown merger '{shown}' (expected dict, list or str)"
                ));
            }
        }
    }
    Ok(m)
}

/// The mergers of one cloud-config part, as cloud-init's cloud-config handler finds them:
/// `merge_how` (else `merge_type`) is taken out of `part`, then the `Merge-Type` header
/// is added; with neither, [`DEFAULT`]. An error names what is wrong; cloud-init then
/// leaves the whole part out.
pub fn for_part(part: &mut Node, header: Option<&str>) -> Result<Mergers, String> {
    let mut parsed = Vec::new();
    let mut origin = Vec::new();
    if let NodeValue::Map(map) = &mut part.value {
        let mut spec = None;
        for key in ["merge_how", "merge_type"] {
            if let Some(i) = map.iter().position(|(k, _)| k.name == key) {
                let (_, v) = map.remove(i);
                if !matches!(v.value, NodeValue::Null) {
                    spec = Some((key, v));
                    break;
                }
            }
        }
        if let Some((key, v)) = spec {
            parsed = parse_node(&v).map_err(|e| format!("{key}: {e}"))?;
            origin.push(key);
        }
    }
    if let Some(h) = header.filter(|h| !h.is_empty()) {
        parsed.extend(parse_string(h).map_err(|e| format!("Merge-Type header: {e}"))?);
        origin.push("Merge-Type header");
    }
    if parsed.is_empty() {
        return Ok(Mergers::default());
    }
    construct(&parsed).map_err(|e| format!("{}: {e}", origin.join(" + ")))
}

/// What kind of Python value PyYAML makes of a node, as far as merging cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dict,
    List,
    Str,
    Other,
}

fn kind(n: &Node) -> Kind {
    match &n.value {
        NodeValue::Map(_) => Kind::Dict,
        NodeValue::Seq(_) => Kind::List,
        NodeValue::Str(_) if py_str(n).is_some() => Kind::Str,
        _ => Kind::Other,
    }
}

fn derived(at: &Node, value: NodeValue) -> Node {
    Node {
        value,
        pos: at.pos,
        plain: false,
        text: None,
    }
}

impl Mergers {
    /// Merge `new` into `buf` (cloud-init's `LookupMerger.merge`): the merger for the kind
    /// of the old value decides; a kind without one keeps the old value. When the merge
    /// fails (where cloud-init raises), `buf` is left as it was: a first pass only checks,
    /// so the merge itself changes `buf` in place instead of copying it per part.
    pub fn merge_into(&self, buf: &mut Node, new: &Node) -> Result<(), String> {
        self.walk(buf, new, true)?;
        self.walk(buf, new, false)
    }

    /// One merge step; with `dry`, only find whether it fails.
    fn walk(&self, old: &mut Node, new: &Node, dry: bool) -> Result<(), String> {
        match kind(old) {
            Kind::Dict => match &self.dict {
                Some(d) => self.on_dict(d, old, new, dry),
                None => Ok(()),
            },
            Kind::List => match &self.list {
                Some(l) => self.on_list(l, old, new, dry),
                None => Ok(()),
            },
            Kind::Str => match self.string {
                Some(true) => {
                    let Some(tail) = py_str(new) else {
                        return Err(format!("cannot append {} to a string", new.kind()));
                    };
                    if !dry {
                        if let NodeValue::Str(s) = &mut old.value {
                            s.push_str(tail);
                        }
                        old.plain = false;
                        old.text = None;
                    }
                    Ok(())
                }
                Some(false) => {
                    if !dry {
                        *old = new.clone();
                    }
                    Ok(())
                }
                None => Ok(()),
            },
            Kind::Other => Ok(()),
        }
    }

    fn on_dict(&self, d: &DictMerger, old: &mut Node, new: &Node, dry: bool) -> Result<(), String> {
        let (NodeValue::Map(base), NodeValue::Map(next)) = (&mut old.value, &new.value) else {
            return Ok(());
        };
        // Where each key of `base` is (a search per key would cost |base|·|next|).
        let mut index: HashMap<String, usize> = base
            .iter()
            .enumerate()
            .map(|(i, (k, _))| (k.name.clone(), i))
            .collect();
        let mut deleted = Vec::new();
        for (k, v) in next {
            let Some(&i) = index.get(&k.name) else {
                if !dry {
                    index.insert(k.name.clone(), base.len());
                    base.push((k.clone(), v.clone()));
                }
                continue;
            };
            let Some((_, slot)) = base.get_mut(i) else {
                continue;
            };
            if d.allow_delete && matches!(v.value, NodeValue::Null) {
                deleted.push(i);
                continue;
            }
            let recurse = match kind(v) {
                Kind::List => d.recurse_array,
                Kind::Str => d.recurse_str,
                Kind::Dict => true,
                Kind::Other => false,
            };
            if d.replace {
                if !dry {
                    *slot = v.clone();
                }
            } else if recurse {
                self.walk(slot, v, dry)?;
            }
        }
        if !dry {
            deleted.sort_unstable();
            for i in deleted.into_iter().rev() {
                base.remove(i);
            }
        }
        Ok(())
    }

    fn on_list(&self, l: &ListMerger, old: &mut Node, new: &Node, dry: bool) -> Result<(), String> {
        if l.method == ListMethod::Replace && kind(new) != Kind::List {
            if !dry {
                *old = new.clone();
            }
            return Ok(());
        }
        let NodeValue::Seq(base) = &mut old.value else {
            return Ok(());
        };
        match l.method {
            ListMethod::Prepend => {
                let items = python_items(new)?;
                if !dry {
                    base.splice(0..0, items);
                }
            }
            ListMethod::Append => {
                let items = python_items(new)?;
                if !dry {
                    base.extend(items);
                }
            }
            // cloud-init indexes the new value over the common length (a mapping there
            // is a KeyError; a scalar has no length), then keeps every old item.
            ListMethod::NoReplace => match (&new.value, kind(new)) {
                (NodeValue::Map(m), _) if !m.is_empty() && !base.is_empty() => {
                    return Err("cannot merge a mapping into a list".into())
                }
                (NodeValue::Map(_) | NodeValue::Seq(_) | NodeValue::Bytes(_), _)
                | (_, Kind::Str) => {}
                _ => return Err(format!("cannot merge {} into a list", new.kind())),
            },
            ListMethod::Replace => {
                let NodeValue::Seq(next) = &new.value else {
                    return Ok(());
                };
                for (slot, nv) in base.iter_mut().zip(next) {
                    let recurse = match kind(nv) {
                        Kind::List => l.recurse_array,
                        Kind::Str => l.recurse_str,
                        Kind::Dict => l.recurse_dict,
                        Kind::Other => false,
                    };
                    if recurse {
                        self.walk(slot, nv, dry)?;
                    } else if !dry {
                        *slot = nv.clone();
                    }
                }
            }
        }
        Ok(())
    }
}

/// Most items a string (one per character) or byte string may add to a list: cloud-init
/// would make a list of a whole file's characters; this bounds what a seed can make of
/// one scalar.
const MAX_SPLIT_ITEMS: usize = 100_000;

/// What Python's `list.extend(value)` takes from a value: a list's items, a string's
/// characters, a mapping's keys, a byte string's numbers; anything else is an error.
fn python_items(n: &Node) -> Result<Vec<Node>, String> {
    let items: Vec<Node> = match (&n.value, kind(n)) {
        (NodeValue::Seq(items), _) => return Ok(items.clone()),
        (NodeValue::Map(m), _) => m
            .iter()
            .map(|(k, _)| derived(n, NodeValue::Str(k.name.clone())))
            .collect(),
        (NodeValue::Bytes(b), _) => b
            .iter()
            .take(MAX_SPLIT_ITEMS + 1)
            .map(|&x| derived(n, NodeValue::Int(i64::from(x))))
            .collect(),
        (NodeValue::Str(s), Kind::Str) => s
            .chars()
            .take(MAX_SPLIT_ITEMS + 1)
            .map(|c| derived(n, NodeValue::Str(c.to_string())))
            .collect(),
        _ => return Err(format!("cannot add {} to a list", n.kind())),
    };
    if items.len() > MAX_SPLIT_ITEMS {
        return Err(format!(
            "adding {} to a list item by item: more than {MAX_SPLIT_ITEMS} items",
            n.kind()
        ));
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::yaml;

    fn node(text: &str) -> Node {
        yaml::parse_node(text, "t").unwrap()
    }

    fn merged(parts: &[(&str, Option<&str>)]) -> Result<serde_json::Value, String> {
        let mut buf = node("{}");
        for (text, header) in parts {
            let mut n = node(text);
            let m = for_part(&mut n, *header)?;
            m.merge_into(&mut buf, &n)?;
        }
        Ok(buf.to_json())
    }

    #[test]
    fn default_replaces_top_level_keys() {
        let v = merged(&[
            ("{a: {x: 1}, l: [1, 2]}", None),
            ("{a: {y: 2}, l: [3]}", None),
        ]);
        assert_eq!(v.unwrap(), serde_json::json!({"a": {"y": 2}, "l": [3]}));
    }

    #[test]
    fn append_prepend_and_no_replace() {
        let v = merged(&[
            ("{runcmd: [a], h: x}", None),
            (
                "{merge_how: 'dict(recurse_array,no_replace)+list(append)', runcmd: [b], h: y}",
                None,
            ),
            ("{runcmd: [c]}", Some("list(prepend)+dict(recurse_list)")),
        ]);
        assert_eq!(
            v.unwrap(),
            serde_json::json!({"runcmd": ["c", "a", "b"], "h": "x"})
        );
    }

    #[test]
    fn list_syntax_and_errors() {
        let v = merged(&[
            ("{w: [1]}", None),
            (
                "{merge_how: [{name: list, settings: [append]}, [dict, recurse_array]], w: [2]}",
                None,
            ),
        ]);
        assert_eq!(v.unwrap(), serde_json::json!({"w": [1, 2]}));
        assert!(merged(&[("{merge_how: 'foo(bar)'}", None)])
            .unwrap_err()
            .contains("unknown merger 'foo'"));
        assert!(merged(&[("{merge_how: 'list append'}", None)]).is_err());
        assert!(merged(&[
            ("{r: [1]}", None),
            (
                "{merge_how: 'dict(recurse_array)+list(append)', r: 5}",
                None
            )
        ])
        .is_ok());
        let only_list = merged(&[
            ("{a: 1}", None),
            ("{merge_how: 'list(append)', a: 2}", None),
        ]);
        assert_eq!(only_list.unwrap(), serde_json::json!({"a": 1}));
    }

    #[test]
    fn a_failed_merge_leaves_the_buffer_and_a_string_is_bounded() {
        let mut buf = node("{d: {x: 1}, a: text}");
        let mut n =
            node("{merge_how: 'dict(no_replace,recurse_array)+str(append)', d: {y: 2}, a: [1]}");
        let m = for_part(&mut n, None).unwrap();
        assert!(m.merge_into(&mut buf, &n).is_err());
        assert_eq!(
            buf.to_json(),
            serde_json::json!({"d": {"x": 1}, "a": "text"})
        );
        let mut buf = node("{r: [1]}");
        let long = format!(
            "{{merge_how: 'dict(recurse_str)+list(append)', r: '{}'}}",
            "x".repeat(MAX_SPLIT_ITEMS + 1)
        );
        let mut n = node(&long);
        let m = for_part(&mut n, None).unwrap();
        assert!(m
            .merge_into(&mut buf, &n)
            .unwrap_err()
            .contains("item by item"));
    }

    #[test]
    fn strings_and_replace_by_index() {
        let v = merged(&[
            ("{h: web, l: [1, 2, 3]}", None),
            ("{merge_how: 'dict(recurse_str,recurse_list)+str(append)+list()', h: '-01', l: [9]}", None),
        ]);
        assert_eq!(
            v.unwrap(),
            serde_json::json!({"h": "web-01", "l": [9, 2, 3]})
        );
    }
}
