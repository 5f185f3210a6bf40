//! `## template: jinja` user-data: rendered with the instance data ([`super::instance`])
//! before it is classified, like cloud-init's jinja part handler, on minijinja.
//!
//! What follows cloud-init (`cloudinit/handlers/jinja_template.py`, `templater.py`):
//! the first line (`## template: jinja`) is dropped, blocks trim their newline
//! (`trim_blocks`), `{% do %}` works, a final newline of the template is kept, and a
//! variable the instance data lacks renders as `CI_MISSING_JINJA_VAR/<name>` (with a
//! warning naming them) and is false in `{% if %}`. Python's common `str`, `dict` and
//! `list` methods work (minijinja-contrib's pycompat); Python's `%` string formatting
//! does not (use the `format` filter).
//!
//! Hostile templates are bounded: a fuel budget (instructions and memory), a recursion
//! limit and a cap on the output; any failure is an error naming the part, never a panic.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use minijinja::value::{Enumerator, Object, ObjectRepr, Value};
use minijinja::{Environment, UndefinedBehavior};

/// What an undefined variable renders as (cloud-init's marker, which its warnings and
/// users' scripts look for).
pub const MISSING_PREFIX: &str = "CI_MISSING_JINJA_VAR/";
/// Fuel of one render: roughly this many instructions, or 64 bytes of memory per unit.
const FUEL: u64 = 2_000_000;
/// Nesting of blocks, loops and macro calls.
const RECURSION: usize = 64;

/// A rendered template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The output, without the `## template: jinja` line.
    pub text: String,
    /// Names of the variables the instance data lacked, in order of first use.
    pub missing: Vec<String>,
}

/// True when the first line of `data` (after leading whitespace) is a
/// `## template: jinja` header (any case, spaces after `##` and around the type allowed).
pub fn is_template(data: &[u8]) -> bool {
    header_type(data).is_some_and(|t| t.eq_ignore_ascii_case("jinja"))
}

/// The template type a `## template: TYPE` first line names.
fn header_type(data: &[u8]) -> Option<String> {
    let data = data.trim_ascii_start();
    let line = data.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let rest = line.strip_prefix("##")?.trim_start();
    let head = rest.get(..9)?;
    if !head.eq_ignore_ascii_case("template:") {
        return None;
    }
    Some(rest.get(9..)?.trim().to_owned())
}

/// A variable the instance data lacks: prints as cloud-init's marker, is false and
/// iterates as empty.
#[derive(Debug)]
struct Missing(String);

impl Object for Missing {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }
    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Empty
    }
    fn is_true(self: &Arc<Self>) -> bool {
        false
    }
    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{MISSING_PREFIX}{}", self.0)
    }
}

/// A JSON value as a template value (mappings become maps, so lookups can be added).
fn to_value(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::from(()),
        serde_json::Value::Bool(b) => Value::from(*b),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => Value::from(i),
            (_, Some(u), _) => Value::from(u),
            (_, _, Some(f)) => Value::from(f),
            _ => Value::from(n.to_string()),
        },
        serde_json::Value::String(s) => Value::from(s.as_str()),
        serde_json::Value::Array(a) => a.iter().map(to_value).collect(),
        serde_json::Value::Object(_) => Value::from(to_map(v)),
    }
}

fn to_map(v: &serde_json::Value) -> BTreeMap<String, Value> {
    match v {
        serde_json::Value::Object(m) => m.iter().map(|(k, v)| (k.clone(), to_value(v))).collect(),
        _ => BTreeMap::new(),
    }
}

/// Put a [`Missing`] where a dotted path `a.b.c` first leaves the instance data, when
/// that is its last part (an attribute of a missing value is an error in cloud-init, and
/// stays one here). `vars` is the JSON the context is built from.
fn mark_missing(vars: &serde_json::Value, path: &str, missing: &mut BTreeMap<Vec<String>, String>) {
    let parts: Vec<&str> = path.split('.').collect();
    let mut cur = vars;
    for (i, p) in parts.iter().enumerate() {
        match cur.get(*p) {
            Some(next) => cur = next,
            None => {
                if i + 1 == parts.len() && (i == 0 || cur.is_object()) {
                    missing.insert(
                        parts.iter().map(|s| s.to_string()).collect(),
                        (*p).to_owned(),
                    );
                }
                return;
            }
        }
    }
}

/// Build the context: the variables, with [`Missing`] values at the recorded paths.
fn context(vars: &serde_json::Value, missing: &BTreeMap<Vec<String>, String>) -> Value {
    let mut root = to_map(vars);
    for (path, name) in missing {
        set_missing(&mut root, path, name);
    }
    Value::from(root)
}

/// Replace the value at `path` in a tree of maps by a [`Missing`].
fn set_missing(map: &mut BTreeMap<String, Value>, path: &[String], name: &str) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    if rest.is_empty() {
        map.insert(first.clone(), Value::from_object(Missing(name.to_owned())));
        return;
    }
    let mut inner: BTreeMap<String, Value> = match map.get(first) {
        Some(v) => match v.try_iter() {
            Ok(keys) => keys
                .filter_map(|k| {
                    let val = v.get_item(&k).ok()?;
                    Some((k.as_str()?.to_owned(), val))
                })
                .collect(),
            Err(_) => return,
        },
        None => BTreeMap::new(),
    };
    set_missing(&mut inner, rest, name);
    map.insert(first.clone(), Value::from(inner));
}

/// A writer that refuses to grow past a limit.
struct Capped {
    buf: Vec<u8>,
    max: usize,
}

impl std::io::Write for Capped {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.buf.len().saturating_add(data.len()) > self.max {
            return Err(std::io::Error::other(format!(
                "the rendered template is larger than {} bytes",
                self.max
            )));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Render a `## template: jinja` blob with `vars` (already [`super::instance::jinja_vars`]).
/// The output is at most `max_output` bytes. `Err` says why, for a message that names
/// the part.
pub fn render(
    data: &[u8],
    vars: &serde_json::Value,
    max_output: usize,
) -> Result<Rendered, String> {
    let data = data.trim_ascii_start();
    let text = std::str::from_utf8(data).map_err(|e| {
        format!(
            "jinja template is not valid UTF-8 (at byte {})",
            e.valid_up_to()
        )
    })?;
    match header_type(data) {
        Some(t) if t.eq_ignore_ascii_case("jinja") => {}
        Some(t) => {
            return Err(format!(
                "unknown template type '{t}' (only jinja is rendered)"
            ))
        }
        None => return Err("no '## template: jinja' first line".into()),
    }
    let body = text.split_once('\n').map(|(_, rest)| rest).unwrap_or("");
    let mut env = Environment::new();
    env.set_syntax(
        minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .build()
            .map_err(|e| e.to_string())?,
    );
    env.set_undefined_behavior(UndefinedBehavior::Lenient);
    // Jinja2 templates call Python's methods on values (`s.split(' ')`, `d.keys()`).
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.set_fuel(Some(FUEL));
    env.set_recursion_limit(RECURSION);
    let tmpl = env
        .template_from_str(body)
        .map_err(|e| format!("invalid jinja template: {}", describe(&e)))?;
    let mut missing_at = BTreeMap::new();
    let mut names: Vec<String> = tmpl.undeclared_variables(true).into_iter().collect();
    names.sort();
    let globals: Vec<&str> = env.globals().map(|(k, _)| k).collect();
    for path in &names {
        // `range`, `dict`, `namespace`…: the engine's own functions, not instance data.
        let first = path.split('.').next().unwrap_or_default();
        if !globals.contains(&first) {
            mark_missing(vars, path, &mut missing_at);
        }
    }
    let ctx = context(vars, &missing_at);
    let mut out = Capped {
        buf: Vec::new(),
        max: max_output,
    };
    tmpl.render_captured_to(ctx, &mut out)
        .map_err(|e| format!("cannot render jinja template: {}", describe(&e)))?;
    let mut text = String::from_utf8(out.buf)
        .map_err(|_| "the rendered template is not valid UTF-8".to_owned())?;
    // Jinja drops the template's final newline; cloud-init puts it back.
    if body.ends_with('\n') {
        text.push('\n');
    }
    let mut missing = Vec::new();
    for (i, _) in text.match_indices(MISSING_PREFIX) {
        let name: String = text
            .get(i + MISSING_PREFIX.len()..)
            .unwrap_or_default()
            .chars()
            .take_while(|c| !c.is_whitespace())
            .take(100)
            .collect();
        if !missing.contains(&name) {
            missing.push(name);
        }
    }
    Ok(Rendered { text, missing })
}

/// An engine error in one line: what, and where in the template.
fn describe(e: &minijinja::Error) -> String {
    let mut s = e
        .detail()
        .map(str::to_owned)
        .unwrap_or_else(|| e.kind().to_string());
    if let Some(line) = e.line() {
        // +1: the dropped header line.
        s = format!("line {}: {s}", line + 1);
    }
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s.push_str(&format!(": {inner}"));
        src = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars() -> serde_json::Value {
        super::super::instance::jinja_vars(&json!({
            "v1": {"instance_id": "i-1", "local_hostname": "web", "region": null},
            "ds": {"meta_data": {"local-hostname": "web", "tags": ["a", "b"]}},
        }))
    }

    fn r(t: &str) -> Result<Rendered, String> {
        render(t.as_bytes(), &vars(), 1 << 20)
    }

    #[test]
    fn renders_like_cloud_init() {
        let out = r("## template: jinja\n#cloud-config\nhostname: {{ v1.local_hostname }}-{{ instance_id }}\n").unwrap();
        assert_eq!(out.text, "#cloud-config\nhostname: web-i-1\n");
        assert!(out.missing.is_empty());
        let out = r("## Template:Jinja\n{% if v1.region %}r{% else %}none{% endif %}\n{% for t in ds.meta_data.tags %}\n- {{ t }}\n{% endfor %}\n").unwrap();
        assert_eq!(out.text, "none- a\n- b\n\n");
        let out = r("## template: jinja\n{{ ds.meta_data.local_hostname }}").unwrap();
        assert_eq!(out.text, "web");
    }

    #[test]
    fn missing_variables() {
        let out = r("## template: jinja\na={{ nope }} b={{ v1.nope }} c={% if nope %}y{% else %}n{% endif %}\n").unwrap();
        assert_eq!(
            out.text,
            "a=CI_MISSING_JINJA_VAR/nope b=CI_MISSING_JINJA_VAR/nope c=n\n"
        );
        assert_eq!(out.missing, ["nope"]);
        // An attribute of a missing variable fails, as in cloud-init.
        assert!(r("## template: jinja\n{{ nope.deeper }}\n").is_err());
    }

    #[test]
    fn hostile_templates_are_bounded() {
        let deep = format!("{{{{ {}1{} }}}}", "(".repeat(5000), ")".repeat(5000));
        for t in [
            "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
            "{{ 'x' * 100000000 }}",
            "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
            &deep,
            "{% for x in [1,2] %}",
            "{{ }",
        ] {
            let res = render(
                format!("## template: jinja\n{t}").as_bytes(),
                &vars(),
                1 << 16,
            );
            assert!(res.is_err(), "{t}: {res:?}");
        }
        let o = r("## template: jinja\n{{ v1.instance_id.__class__ }}").unwrap();
        assert_eq!(o.text, "");
        let e = r("## template: jinja\n{% for x in [1] %}\n").unwrap_err();
        assert!(e.starts_with("invalid jinja template: line"), "{e}");
        assert!(r("## template: basic\nx").is_err());
        assert!(is_template(b"  ## template: JINJA\n"));
        assert!(!is_template(b"#cloud-config\n"));
    }
}
