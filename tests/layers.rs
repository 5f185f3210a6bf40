//! The layer rule of `docs/architecture.md`, checked on the source itself.
//!
//! `src/` is parsed with `syn`; every path that names something of this crate (`crate::…`,
//! `super::…`, `self::…` in `use` items and in code) is resolved to the module it names.
//! Then:
//! - imports only go down: bin → agent/seed → modules/datasource/disk → network →
//!   platform → formats (a room may use itself and any lower layer, never a room of its
//!   own layer or above);
//! - no two files of a room form an import cycle (a file may use its room's `mod.rs`, the
//!   room's shared types; sibling files must not use each other both ways, directly or
//!   through others).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use syn::visit::Visit;

/// Rooms by layer, lowest first. `exit` (exit codes in lib.rs) is a leaf anyone may use.
const LAYERS: &[&[&str]] = &[
    &["formats", "exit"],
    &["platform"],
    &["network", "disk"],
    &["modules", "datasource"],
    &["agent", "seed"],
];

fn layer_of(room: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&room))
}

/// A source file and the module path it defines (`src/agent/state.rs` → `agent::state`).
struct SourceFile {
    path: PathBuf,
    module: Vec<String>,
}

fn source_files(dir: &Path, out: &mut Vec<SourceFile>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            if p.file_name().unwrap() != "bin" {
                source_files(&p, out);
            }
            continue;
        }
        if p.extension().and_then(|e| e.to_str()) != Some("rs") {
            continue;
        }
        let rel = p.strip_prefix(src_dir()).unwrap();
        let mut module: Vec<String> = rel
            .iter()
            .map(|c| c.to_str().unwrap().trim_end_matches(".rs").to_string())
            .collect();
        if matches!(module.last().map(String::as_str), Some("mod" | "lib")) {
            module.pop();
        }
        out.push(SourceFile { path: p, module });
    }
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Collects the crate paths one file names, resolved to absolute module paths.
struct Refs<'a> {
    /// The module the visitor is in (the file's, plus inline `mod x { … }` blocks).
    here: Vec<String>,
    file_module: &'a [String],
    found: Vec<Vec<String>>,
}

impl Refs<'_> {
    /// Resolve `segments` (as written) from the module `self.here`; None for paths that
    /// do not start at `crate`, `self` or `super` (std, external crates, local names).
    fn resolve(&self, segments: &[String]) -> Option<Vec<String>> {
        let first = segments.first()?;
        let (mut base, rest) = match first.as_str() {
            "crate" => (Vec::new(), &segments[1..]),
            "self" => (self.here.clone(), &segments[1..]),
            "super" => {
                let mut base = self.here.clone();
                let mut rest = segments;
                while rest.first().map(String::as_str) == Some("super") {
                    base.pop()?;
                    rest = &rest[1..];
                }
                (base, rest)
            }
            _ => return None,
        };
        base.extend(rest.iter().cloned());
        Some(base)
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                let mut full = prefix.clone();
                if n.ident != "self" {
                    full.push(n.ident.to_string());
                }
                self.record(&full);
            }
            syn::UseTree::Rename(r) => {
                let mut full = prefix.clone();
                if r.ident != "self" {
                    full.push(r.ident.to_string());
                }
                self.record(&full);
            }
            syn::UseTree::Glob(_) => self.record(prefix),
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.use_tree(prefix, t);
                }
            }
        }
    }

    fn record(&mut self, segments: &[String]) {
        if let Some(p) = self.resolve(segments) {
            // `use super::*` inside an inline test module names the file itself.
            if p.as_slice() != self.file_module {
                self.found.push(p);
            }
        }
    }
}

impl<'ast> Visit<'ast> for Refs<'_> {
    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        if m.content.is_some() {
            self.here.push(m.ident.to_string());
            syn::visit::visit_item_mod(self, m);
            self.here.pop();
        }
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        self.use_tree(&mut Vec::new(), &u.tree);
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        let segs: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
        self.record(&segs);
        syn::visit::visit_path(self, p);
    }
}

/// The longest prefix of `path` that is a module of the crate.
fn owning_module<'a>(path: &[String], modules: &'a BTreeSet<Vec<String>>) -> Option<&'a [String]> {
    (1..=path.len())
        .rev()
        .find_map(|n| modules.get(&path[..n]).map(Vec::as_slice))
}

struct Graph {
    /// file module → the modules it names (resolved to files).
    edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
}

fn graph() -> Graph {
    let mut files = Vec::new();
    source_files(&src_dir(), &mut files);
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| f.module.clone()).collect();
    let mut edges = BTreeMap::new();
    for f in &files {
        let text = std::fs::read_to_string(&f.path).unwrap();
        let ast = syn::parse_file(&text)
            .unwrap_or_else(|e| panic!("{}: does not parse: {e}", f.path.display()));
        let mut refs = Refs {
            here: f.module.clone(),
            file_module: &f.module,
            found: Vec::new(),
        };
        refs.visit_file(&ast);
        let targets: BTreeSet<Vec<String>> = refs
            .found
            .iter()
            .filter_map(|p| owning_module(p, &modules))
            .filter(|m| *m != f.module.as_slice())
            .map(<[String]>::to_vec)
            .collect();
        edges.insert(f.module.clone(), targets);
    }
    Graph { edges }
}

#[test]
fn imports_only_go_down() {
    let g = graph();
    let mut bad = Vec::new();
    for (from, targets) in &g.edges {
        let Some(from_room) = from.first() else {
            continue; // lib.rs: declares the rooms
        };
        let from_layer =
            layer_of(from_room).unwrap_or_else(|| panic!("src/{from_room}: not in any layer"));
        for to in targets {
            let Some(to_room) = to.first() else {
                continue;
            };
            if to_room == from_room {
                continue;
            }
            let to_layer =
                layer_of(to_room).unwrap_or_else(|| panic!("src/{to_room}: not in any layer"));
            if to_layer >= from_layer {
                bad.push(format!("{} uses {}", from.join("::"), to.join("::")));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "imports that do not go down a layer (docs/architecture.md):\n  {}",
        bad.join("\n  ")
    );
}

#[test]
fn files_of_a_room_form_no_cycle() {
    let g = graph();
    // Edges between files that are not ancestor/descendant of each other (a file may use
    // its room's mod.rs; a mod.rs declares and uses its children).
    let related = |a: &[String], b: &[String]| a.starts_with(b) || b.starts_with(a);
    let mut adj: BTreeMap<&Vec<String>, Vec<&Vec<String>>> = BTreeMap::new();
    for (from, targets) in &g.edges {
        for to in targets {
            if !related(from, to) {
                adj.entry(from).or_default().push(to);
            }
        }
    }
    // Depth-first search for a back edge; report the cycle it closes.
    fn visit<'a>(
        n: &'a Vec<String>,
        adj: &BTreeMap<&'a Vec<String>, Vec<&'a Vec<String>>>,
        state: &mut BTreeMap<&'a Vec<String>, u8>,
        stack: &mut Vec<&'a Vec<String>>,
    ) -> Option<Vec<String>> {
        state.insert(n, 1);
        stack.push(n);
        for &m in adj.get(n).map(Vec::as_slice).unwrap_or(&[]) {
            match state.get(m) {
                Some(1) => {
                    let start = stack.iter().position(|x| *x == m).unwrap();
                    let mut cycle: Vec<String> =
                        stack[start..].iter().map(|x| x.join("::")).collect();
                    cycle.push(m.join("::"));
                    return Some(cycle);
                }
                Some(_) => {}
                None => {
                    if let Some(c) = visit(m, adj, state, stack) {
                        return Some(c);
                    }
                }
            }
        }
        stack.pop();
        state.insert(n, 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in g.edges.keys() {
        if !state.contains_key(n) {
            if let Some(c) = visit(n, &adj, &mut state, &mut Vec::new()) {
                panic!("import cycle: {}", c.join(" → "));
            }
        }
    }
}

#[test]
fn the_checker_sees_imports() {
    // Guards the two tests above against passing because they saw nothing.
    let g = graph();
    let agent = g.edges.get(&vec!["agent".to_string()]).unwrap();
    assert!(agent.contains(&vec!["modules".to_string()]), "{agent:?}");
    let yaml = vec!["formats".to_string(), "yaml".to_string()];
    let cc = g
        .edges
        .get(&vec![
            "formats".to_string(),
            "userdata".to_string(),
            "cloud_config".to_string(),
        ])
        .unwrap();
    assert!(cc.contains(&yaml), "{cc:?}");
    // A made-up upward import is caught by the resolver the tests use.
    let mut refs = Refs {
        here: vec!["formats".into(), "yaml".into()],
        file_module: &[],
        found: Vec::new(),
    };
    let ast =
        syn::parse_file("use crate::platform::System; fn f() { super::super::agent::run(); }")
            .unwrap();
    refs.visit_file(&ast);
    assert!(refs
        .found
        .contains(&vec!["platform".into(), "System".into()]));
    assert!(refs.found.contains(&vec!["agent".into(), "run".into()]));
}

#[test]
fn every_module_file_names_its_key() {
    // src/modules/ holds only modules; each says which cloud-config key it owns and what
    // cloud-init calls the same module, on its first line.
    let dir = src_dir().join("modules");
    let mut missing = Vec::new();
    let mut seen = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.file_name().unwrap() == "mod.rs" || p.is_dir() {
            continue;
        }
        seen += 1;
        let text = std::fs::read_to_string(&p).unwrap();
        let first = text.lines().next().unwrap_or("");
        if !(first.starts_with("//! Key: ") && first.contains("cloud-init: ")) {
            missing.push(p.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    assert!(seen > 10, "only {seen} module files seen");
    assert!(
        missing.is_empty(),
        "module files whose first line is not `//! Key: … cloud-init: ….`: {missing:?}"
    );
}
