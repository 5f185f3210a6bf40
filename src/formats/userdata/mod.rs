//! User-data and meta-data: from the raw files of a seed to what the modules apply.
//!
//! `user-data` is classified by its first bytes like cloud-init does (the prefixes are
//! compared case-insensitively, longest first, after leading whitespace):
//!
//! | starts with                     | becomes                                              |
//! |---------------------------------|------------------------------------------------------|
//! | gzip magic `1f 8b`              | decompressed (bounded), then classified again        |
//! | `#include`, `#include-once`     | URLs in [`SeedData::includes`] (fetched by the HTTP datasource) |
//! | `#cloud-config`                 | a YAML cloud-config part                             |
//! | `#cloud-boothook`               | a boothook ([`SeedData::boothooks`], every boot)     |
//! | `#!`                            | a script (its interpreter from the `#!` line)        |
//! | MIME headers with Content-Type  | multipart, split by [`mime`]; each part by its type  |
//! | `## template: jinja`            | rendered with the instance data ([`jinja`]), then a cloud-config or script |
//! | `#cloud-config-archive`         | a YAML list of parts (see below)                     |
//! | `#part-handler`, `#cloud-config-jsonp`, `#upstart-job` | warning: not supported        |
//! | only whitespace                 | nothing                                              |
//! | anything else                   | warning "unhandled user-data", nothing run           |
//!
//! MIME part types: `text/cloud-config`, `text/x-shellscript` (per instance),
//! `text/x-shellscript-per-boot|per-instance|per-once`, `text/cloud-boothook`,
//! `text/x-include-url`, `text/x-include-once-url`, `text/jinja2` (a `## template: jinja`
//! body), `text/cloud-config-archive`; `text/plain`, `text/x-not-multipart`
//! or no type are classified by content; gzip bodies (or `application/*gzip*` types) are
//! decompressed first. Nesting (gzip in MIME in gzip …) is bounded by
//! [`Limits::max_nesting`], decompressed size (all gzip data of a file together) by
//! [`Limits::max_gunzip_bytes`], the number
//! of parts by [`Limits::max_parts`].
//!
//! `#cloud-config-archive` (cloud-init's `_explode_archive`): a YAML list whose items are
//! parts: a string is a part's content; a mapping has `content` (text or `!!binary`),
//! `type` (a MIME type; when absent, found from the content's first line like any
//! user-data, and `text/cloud-config` when nothing matches), `filename` and
//! `launch-index`. The parts are taken as they are, like cloud-init does: cloud-config,
//! scripts (`text/x-shellscript*`), boothooks and jinja templates; a gzip, MIME,
//! `#include` or nested archive content is not unpacked there (warning). A part whose
//! `launch-index` (or, for cloud-config, whose own `launch-index` key) differs from
//! meta-data's `launch-index` is skipped.
//!
//! Merging: the cloud-config parts of one file merge in order with cloud-init's mergers
//! ([`mod@merge`]: the part's `merge_how`, the MIME `Merge-Type` header, by default
//! `dict(replace)+list()+str()`, where a later part's top-level keys replace earlier ones
//! whole). `vendor-data` (same formats; also a
//! YAML list of such strings, or a mapping with a `cloud-init` key, like cloud-init's
//! `convert_vendordata`) is merged first, so user-data wins; `vendor_data: {enabled:
//! false}` in user-data drops it. Vendor scripts run before user scripts, named
//! `vendor-…`.
//!
//! Unknown cloud-config keys are warnings naming the file, position and key ("not
//! supported by ci-agent"); type errors are [`SeedError`]s with `file:line:col`.
//!
//! - [`mime`]: multipart splitting and part decoding.
//! - [`cloud_config`]: the typed cloud-config for the keys in scope.
//! - [`metadata`]: `meta-data` (YAML or JSON).
//! - [`instance`]: instance data (cloud-init's `instance-data.json` layout).
//! - [`jinja`]: `## template: jinja` rendering.

pub mod cloud_config;
pub mod instance;
pub mod jinja;
pub mod merge;
pub mod metadata;
pub mod mime;
pub mod value;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::formats::yaml::{self, Node, NodeValue};

pub use cloud_config::CloudConfig;
pub use instance::SysInfo;
pub use metadata::MetaData;

/// The files of a seed, as found (before parsing).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seed {
    /// Where it came from, for logs and `status`: `iso9660:/dev/sr0`, `vfat:/dev/vdb`,
    /// `dir:/mnt/seed`, `http://10.0.2.2/seed/`.
    pub source: String,
    /// Files at the seed root by name (`user-data`, `meta-data`, `vendor-data`,
    /// `network-config`, `CONFIG`, …). Files in subdirectories use `/` in the name.
    pub files: BTreeMap<String, Vec<u8>>,
    /// `h=` / `i=` from the kernel command line or SMBIOS serial; they override meta-data.
    pub hostname_override: Option<String>,
    pub instance_id_override: Option<String>,
}

/// Other spellings of the seed's file names, and the name they stand for: nuageinit reads
/// `user_data`/`meta_data`; a plain ISO9660 image without Rock Ridge or Joliet can only
/// spell them `USER_DATA;1` (`makefs -t cd9660` without `-o R`), or `USER_DAT.;1` in
/// strict 8.3 (`genisoimage` without `-R`/`-J`), which our reader lowercases and strips.
const NAME_ALIASES: &[(&str, &str)] = &[
    ("user_data", "user-data"),
    ("user_dat", "user-data"),
    ("meta_data", "meta-data"),
    ("meta_dat", "meta-data"),
    ("vendor_data", "vendor-data"),
    ("network_config", "network-config"),
];

impl Seed {
    /// Rename the other spellings of `user-data`, `meta-data`, `vendor-data` and
    /// `network-config` (see [`NAME_ALIASES`]) to the usual one, unless the usual one is
    /// there too (it wins). Returns a warning when the seed has neither user-data nor
    /// meta-data under any name.
    pub fn canonical_names(&mut self) -> Option<String> {
        for (alias, name) in NAME_ALIASES {
            if !self.files.contains_key(*name) {
                if let Some(data) = self.files.remove(*alias) {
                    self.files.insert((*name).to_owned(), data);
                }
            }
        }
        let has = |n: &str| self.files.contains_key(n);
        (!has("user-data") && !has("meta-data")).then(|| {
            let names: Vec<&str> = self.files.keys().map(String::as_str).take(20).collect();
            format!(
                "{}: the seed has neither user-data nor meta-data (files: {}); nothing from it is applied",
                self.source,
                if names.is_empty() { "none".to_owned() } else { names.join(", ") }
            )
        })
    }
}

/// When a script runs (cloud-init's `scripts-per-*` frequencies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Frequency {
    PerInstance,
    PerBoot,
    Once,
}

/// A user-data script (a `#!` part, or `text/x-shellscript*`), or a boothook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    /// Part file name if the MIME part had one, else `part-NNN`.
    pub name: String,
    /// The interpreter from the `#!` line (`/bin/sh`, `/usr/bin/env python3`, …).
    pub interpreter: String,
    pub body: Vec<u8>,
    pub frequency: Frequency,
}

/// A parsed seed: everything the run needs, and what `ci-agent query` prints.
#[derive(Debug, Clone, Default)]
pub struct SeedData {
    pub source: String,
    pub meta: MetaData,
    /// Instance id after overrides (`nocloud` when none is given, like cloud-init).
    pub instance_id: String,
    /// Hostname from meta-data (`local-hostname`, else `hostname`) after overrides.
    pub hostname: Option<String>,
    /// Merged cloud-config (vendor-data below user-data), typed.
    pub cloud_config: CloudConfig,
    /// The same merge as plain JSON (unknown keys included).
    pub cloud_config_json: serde_json::Value,
    /// The same merge as a located tree (modules that read their own keys; `None` when
    /// the seed was not parsed from files).
    pub cloud_config_tree: Option<Node>,
    /// User-data scripts in order.
    pub scripts: Vec<Script>,
    /// `#cloud-boothook` parts (run early, every boot).
    pub boothooks: Vec<Script>,
    /// `#include` URLs (fetched by the HTTP datasource, recorded here).
    pub includes: Vec<String>,
    /// Names of the files on the seed.
    pub files: Vec<String>,
    /// Non-fatal problems (unknown keys, unhandled parts), each naming the file and key.
    pub warnings: Vec<String>,
    /// user-data or vendor-data that could not be read (invalid YAML, a broken MIME or
    /// gzip part): what it held is not applied, the rest of the seed is, and the run
    /// reports a failure. Rejected cloud-config keys are in [`CloudConfig::errors`].
    pub errors: Vec<SeedError>,
    /// The machine facts the seed was read with (templates saw them).
    pub sys_info: SysInfo,
    /// Instance data ([`instance::instance_data`], with `merged_cfg`): what
    /// `instance-data.json` holds and `query` shows.
    pub instance_data: serde_json::Value,
}

pub use crate::formats::SeedError;

/// Budgets for user-data processing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest output of all gzip decompressions of one file (`user-data` with its parts
    /// and included bodies; `vendor-data`) together: a 1 KB → 10 GB bomb stops here, and so
    /// do a thousand small gzip parts of 64 MiB each.
    pub max_gunzip_bytes: u64,
    /// How deep gzip / MIME / text-plain re-classification may nest.
    pub max_nesting: usize,
    /// Most MIME parts in one file.
    pub max_parts: usize,
    /// Budgets of every YAML document (cloud-config parts, meta-data).
    pub yaml: yaml::Limits,
    /// Largest output of one `## template: jinja` part.
    pub max_template_output: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_gunzip_bytes: 64 << 20,
            max_nesting: 4,
            max_parts: 1000,
            yaml: yaml::Limits::default(),
            max_template_output: 16 << 20,
        }
    }
}

/// Parse a seed's files into what the run applies, with the default [`Limits`].
pub fn parse_seed(seed: &Seed) -> Result<SeedData, SeedError> {
    parse_seed_with(seed, &Limits::default())
}

/// [`parse_seed`] with explicit limits.
pub fn parse_seed_with(seed: &Seed, limits: &Limits) -> Result<SeedData, SeedError> {
    parse_seed_including(seed, limits, &[])
}

/// [`parse_seed`] on a machine: templates see its facts (`v1.distro`, …).
pub fn parse_seed_on(seed: &Seed, sys: &SysInfo) -> Result<SeedData, SeedError> {
    parse_seed_full(seed, &Limits::default(), &[], sys)
}

/// [`parse_seed_with`], with the bodies fetched for its `#include` URLs (`(url, body)`),
/// which are processed after `user-data` as if they were parts of it (each is classified
/// on its own: cloud-config, script, multipart, gzip). A body whose URL only `vendor-data`
/// listed is processed after `vendor-data` instead, as vendor data. One level: `#include`
/// URLs inside included bodies are recorded in [`SeedData::includes`] but not fetched.
pub fn parse_seed_including(
    seed: &Seed,
    limits: &Limits,
    included: &[(String, Vec<u8>)],
) -> Result<SeedData, SeedError> {
    parse_seed_full(seed, limits, included, &SysInfo::default())
}

/// [`parse_seed_including`] on a machine whose facts `sys` templates see.
pub fn parse_seed_full(
    seed: &Seed,
    limits: &Limits,
    included: &[(String, Vec<u8>)],
    sys: &SysInfo,
) -> Result<SeedData, SeedError> {
    let mut canonical = seed.clone();
    let no_files = canonical.canonical_names();
    let seed = &canonical;
    let meta = match seed.files.get("meta-data") {
        Some(d) => MetaData::parse_with("meta-data", d, &limits.yaml)?,
        None => MetaData {
            raw: serde_json::Value::Object(Default::default()),
            ..MetaData::default()
        },
    };
    if let Some(id) = seed
        .instance_id_override
        .as_deref()
        .filter(|s| !s.is_empty())
    {
        metadata::check_instance_id(id).map_err(|m| SeedError {
            file: seed.source.clone(),
            line: None,
            column: None,
            message: format!("instance-id: {m}"),
        })?;
    }
    let instance_id = seed
        .instance_id_override
        .clone()
        .filter(|s| !s.is_empty())
        .or_else(|| meta.instance_id.clone())
        .unwrap_or_else(|| "nocloud".into());
    let hostname = seed
        .hostname_override
        .clone()
        .filter(|s| !s.is_empty())
        .or_else(|| meta.local_hostname.clone());

    // What `## template: jinja` parts see: the instance data before user-data is read.
    let vars = instance::jinja_vars(&instance::instance_data(
        &seed.source,
        &meta,
        &instance_id,
        hostname.as_deref(),
        sys,
        None,
    ));
    let launch_index = meta.raw.get("launch-index").and_then(launch_index_of);

    // Errors in user-data and vendor-data are collected, not fatal: meta-data (hostname,
    // public-keys, the instance id) still applies, and so do the other parts.
    let mut user = Collector::new(limits, "", true);
    user.jinja_vars = Some(&vars);
    user.launch_index = launch_index;
    if let Some(ud) = seed.files.get("user-data") {
        user.bytes(ud, "user-data", 0)?;
    }
    // An included body belongs to whoever listed its URL: user-data first; bodies only
    // vendor-data listed are vendor parts (below user-data, scripts named vendor-…).
    let user_urls = user.includes.clone();
    let (for_user, rest): (Vec<_>, Vec<_>) = included
        .iter()
        .partition(|(url, _)| user_urls.contains(url));
    for (url, body) in for_user {
        user.bytes(body, &format!("user-data #include {url}"), 1)?;
    }
    let (user_merged, _) = merge_parts(&user.configs);
    let vendor_enabled = user_merged
        .get("vendor_data")
        .and_then(|v| v.get("enabled"))
        .and_then(Node::as_bool)
        .unwrap_or(true);
    let mut vendor = Collector::new(limits, "vendor-", true);
    vendor.jinja_vars = Some(&vars);
    vendor.launch_index = launch_index;
    if let Some(vd) = seed.files.get("vendor-data") {
        if vendor_enabled {
            vendor.vendor_data(vd)?;
        } else {
            vendor.warnings.push(warning(
                "vendor-data",
                "ignored: user-data sets vendor_data.enabled to false",
            ));
        }
    }
    let vendor_urls = vendor.includes.clone();
    for (url, body) in rest {
        if vendor_urls.contains(url) {
            vendor.bytes(body, &format!("vendor-data #include {url}"), 1)?;
        } else {
            user.bytes(body, &format!("user-data #include {url}"), 1)?;
        }
    }
    // Each file's parts merge by their mergers (cloud-init's cloud-config handler); the
    // user's result then wins over the vendor's key by key.
    let (vendor_merged, vendor_failed) = merge_parts(&vendor.configs);
    let (user_merged, user_failed) = merge_parts(&user.configs);
    vendor.errors.extend(vendor_failed);
    user.errors.extend(user_failed);
    let merged = merge_all([&vendor_merged, &user_merged].into_iter());
    // Each part was converted (and checked) on its own; this conversion of the merge
    // cannot find new type errors, and its warnings repeat the parts'.
    let mut scratch = Vec::new();
    let mut cloud_config = CloudConfig::from_node(&merged, "user-data", &mut scratch)?;
    // The merged tree has no file names: name the part a rejected key came from.
    for e in &mut cloud_config.errors {
        let from_part = vendor
            .key_errors
            .iter()
            .chain(user.key_errors.iter())
            .rev()
            .find(|p| p.key == e.key);
        if let Some(p) = from_part {
            e.error = p.error.clone();
        }
    }

    let mut warnings: Vec<String> = no_files.into_iter().collect();
    if seed
        .instance_id_override
        .as_deref()
        .unwrap_or_default()
        .is_empty()
        && meta.instance_id.is_none()
    {
        let why = if seed.files.contains_key("meta-data") {
            "has no instance-id"
        } else {
            "is missing"
        };
        warnings.push(format!(
            "meta-data {why}, so the instance-id is 'nocloud': every clone from such a seed \
             is the same instance, and a clone will not be reconfigured by a new seed \
             without one; give each clone its own instance-id"
        ));
    }
    warnings.extend(vendor.warnings.iter().map(ToString::to_string));
    warnings.extend(user.warnings.iter().map(ToString::to_string));
    let mut scripts = vendor.scripts;
    scripts.extend(user.scripts);
    let mut boothooks = vendor.boothooks;
    boothooks.extend(user.boothooks);
    let mut includes = vendor.includes;
    for u in user.includes {
        if !includes.contains(&u) {
            includes.push(u);
        }
    }
    let cloud_config_json = merged.to_json();
    let instance_data = instance::instance_data(
        &seed.source,
        &meta,
        &instance_id,
        hostname.as_deref(),
        sys,
        Some(&cloud_config_json),
    );
    Ok(SeedData {
        source: seed.source.clone(),
        meta,
        instance_id,
        hostname,
        cloud_config,
        cloud_config_json,
        cloud_config_tree: Some(merged),
        scripts,
        boothooks,
        includes,
        files: seed.files.keys().cloned().collect(),
        warnings,
        errors: vendor.errors.into_iter().chain(user.errors).collect(),
        sys_info: sys.clone(),
        instance_data,
    })
}

/// A `launch-index` value (an integer, or text holding one) as cloud-init's
/// `safe_int` reads it.
fn launch_index_of(v: &serde_json::Value) -> Option<i64> {
    match v {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Check one user-data (or vendor-data) file for `ci-seed validate`: every problem found,
/// errors and warnings. Warnings (keys not supported by ci-agent, unhandled parts) are
/// returned as `SeedError`s whose message starts with `warning: `; they describe things
/// ci-agent will skip, and should not change the validator's exit code. Errors stop the
/// processing of the part they are in; other parts are still checked.
pub fn validate_user_data(file: &str, data: &[u8]) -> Vec<SeedError> {
    let limits = Limits::default();
    // Templates are rendered with the instance data of a seed with no meta-data.
    let vars = instance::jinja_vars(&instance::instance_data(
        "validate",
        &MetaData::default(),
        "nocloud",
        None,
        &SysInfo::default(),
        None,
    ));
    let mut c = Collector::new(&limits, "", true);
    c.jinja_vars = Some(&vars);
    if let Err(e) = c.bytes(data, file, 0) {
        c.errors.push(e);
    }
    let mut out = c.errors;
    out.extend(c.key_errors.into_iter().map(|k| k.error));
    // In document order: by part, then by line.
    out.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    out.extend(c.warnings.into_iter().map(|w| SeedError {
        message: format!("warning: {}", w.message),
        ..w
    }));
    out
}

/// Check one meta-data file for `ci-seed validate` (an empty list: it is fine).
pub fn validate_meta_data(file: &str, data: &[u8]) -> Vec<SeedError> {
    match MetaData::parse(file, data) {
        Ok(_) => Vec::new(),
        Err(e) => vec![e],
    }
}

/// An error at a node's position (when it has one).
fn located(node: &Node, file: &str, message: String) -> SeedError {
    let known = node.pos.line > 0;
    SeedError {
        file: file.into(),
        line: known.then_some(node.pos.line),
        column: known.then_some(node.pos.column),
        message,
    }
}

/// A warning without a position.
fn warning(file: &str, msg: impl Into<String>) -> SeedError {
    SeedError {
        file: file.into(),
        line: None,
        column: None,
        message: msg.into(),
    }
}

/// Merge `next` over `base` recursively, `next` winning (cloud-init's merge of the
/// user-data config over the vendor-data config): mappings merge key by key; anything
/// else is replaced.
pub fn merge_over(base: &mut Node, next: &Node) {
    match (&mut base.value, &next.value) {
        (NodeValue::Map(b), NodeValue::Map(n)) => {
            // Where each key of `base` is: a linear search per key made merging two
            // mappings cost |base|·|next| comparisons (minutes for a 1 MB cloud-config).
            let mut index: HashMap<String, usize> = b
                .iter()
                .enumerate()
                .map(|(i, (k, _))| (k.name.clone(), i))
                .collect();
            for (k, v) in n {
                match index.get(&k.name).and_then(|&i| b.get_mut(i)) {
                    Some((_, bv)) => merge_over(bv, v),
                    None => {
                        index.insert(k.name.clone(), b.len());
                        b.push((k.clone(), v.clone()));
                    }
                }
            }
        }
        _ => *base = next.clone(),
    }
}

/// The parts of one file merged in order, each with its own mergers (see [`mod@merge`]), and
/// an error for each part cloud-init would leave out because its merge fails.
fn merge_parts(parts: &[ConfigPart]) -> (Node, Vec<SeedError>) {
    let mut out = Node::unlocated(NodeValue::Map(Vec::new()));
    let mut failed = Vec::new();
    for p in parts {
        match p.mergers.merge_into(&mut out, &p.node) {
            Ok(()) => {}
            Err(e) => failed.push(SeedError {
                file: p.label.clone(),
                line: None,
                column: None,
                message: format!(
                    "cannot merge this part into the earlier ones: {e}; it is not applied"
                ),
            }),
        }
    }
    (out, failed)
}

fn merge_all<'a>(nodes: impl Iterator<Item = &'a Node>) -> Node {
    let mut out = Node::unlocated(NodeValue::Map(Vec::new()));
    for n in nodes {
        merge_over(&mut out, n);
    }
    out
}

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];

/// What the first bytes of a user-data blob say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Gzip,
    Include,
    CloudConfig,
    Boothook,
    Script,
    Mime,
    Jinja,
    Archive,
    Unsupported(&'static str),
    Empty,
    Unknown,
}

fn classify(data: &[u8]) -> Kind {
    if data.starts_with(GZIP_MAGIC) {
        return Kind::Gzip;
    }
    if data.iter().all(u8::is_ascii_whitespace) {
        return Kind::Empty;
    }
    match type_from_starts_with(data) {
        Some("text/cloud-config-archive") => Kind::Archive,
        Some("text/cloud-config-jsonp") => Kind::Unsupported("#cloud-config-jsonp"),
        Some("text/cloud-config") => Kind::CloudConfig,
        Some("text/x-include-url" | "text/x-include-once-url") => Kind::Include,
        Some("text/cloud-boothook") => Kind::Boothook,
        Some("text/part-handler") => Kind::Unsupported("#part-handler"),
        Some("text/jinja2") => Kind::Jinja,
        Some("text/upstart-job") => Kind::Unsupported("#upstart-job"),
        Some(_) => Kind::Script,
        None if mime::looks_like_mime(data) => Kind::Mime,
        None => Kind::Unknown,
    }
}

/// cloud-init's `INCLUSION_SRCH`: the first characters of a payload and the MIME type
/// they give it. Where one prefix starts another, the longer comes first.
const STARTS_WITH: &[(&str, &str)] = &[
    ("#cloud-config-archive", "text/cloud-config-archive"),
    ("#cloud-config-jsonp", "text/cloud-config-jsonp"),
    ("## template: jinja", "text/jinja2"),
    ("#cloud-boothook", "text/cloud-boothook"),
    ("#include-once", "text/x-include-once-url"),
    ("#cloud-config", "text/cloud-config"),
    ("#part-handler", "text/part-handler"),
    ("#upstart-job", "text/upstart-job"),
    ("#include", "text/x-include-url"),
    ("#!", "text/x-shellscript"),
];

/// The MIME type of a payload from its first characters, as cloud-init's
/// `type_from_starts_with`: it lower-cases and left-strips the payload before comparing,
/// so user-data that starts with a blank line (a templated heredoc) is still
/// `#cloud-config`.
fn type_from_starts_with(data: &[u8]) -> Option<&'static str> {
    let text = data.trim_ascii_start();
    STARTS_WITH
        .iter()
        .find(|(prefix, _)| {
            text.get(..prefix.len())
                .is_some_and(|h| h.eq_ignore_ascii_case(prefix.as_bytes()))
        })
        .map(|&(_, t)| t)
}

/// The MIME type cloud-init gives an archive part without `type`: from its first
/// characters ([`type_from_starts_with`]), `text/cloud-config` when nothing matches, and
/// `application/octet-stream` for bytes that are not text.
fn archive_type(content: &[u8]) -> &'static str {
    if std::str::from_utf8(content).is_err() {
        return "application/octet-stream";
    }
    type_from_starts_with(content).unwrap_or("text/cloud-config")
}

/// The first line of a blob, shortened and printable, for messages.
fn first_line(data: &[u8]) -> String {
    let line = data.split(|&b| b == b'\n').next().unwrap_or_default();
    let text = String::from_utf8_lossy(line);
    let short: String = text.trim_end().chars().take(40).collect();
    format!("{short:?}")
}

/// A part file name safe to use as a file name: the last path component, characters
/// outside `[A-Za-z0-9._-]` replaced by `_`; `None` when nothing usable remains.
fn safe_name(name: &str) -> Option<String> {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let clean: String = base
        .chars()
        .take(100)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let trimmed = clean.trim_start_matches('.');
    (!trimmed.is_empty()).then(|| trimmed.to_owned())
}

/// One cloud-config part, `merge_how` taken out, and how it merges.
struct ConfigPart {
    label: String,
    node: Node,
    mergers: merge::Mergers,
}

/// Walks user-data (or vendor-data) and collects its pieces.
struct Collector<'l> {
    limits: &'l Limits,
    /// Prefix of script names (`vendor-` for vendor-data).
    prefix: &'static str,
    /// Keep going after an error (for `validate`), collecting them in `errors`.
    collect_all: bool,
    parts: usize,
    /// What is left of [`Limits::max_gunzip_bytes`] for this file.
    gunzip_left: u64,
    names: BTreeSet<String>,
    configs: Vec<ConfigPart>,
    scripts: Vec<Script>,
    boothooks: Vec<Script>,
    includes: Vec<String>,
    warnings: Vec<SeedError>,
    errors: Vec<SeedError>,
    /// Keys rejected in each cloud-config part, with the part's name.
    key_errors: Vec<cloud_config::KeyError>,
    /// The variables of `## template: jinja` parts ([`instance::jinja_vars`]); `None`:
    /// templates are not rendered (warning).
    jinja_vars: Option<&'l serde_json::Value>,
    /// meta-data's `launch-index`: archive parts for another index are skipped.
    launch_index: Option<i64>,
}

impl<'l> Collector<'l> {
    fn new(limits: &'l Limits, prefix: &'static str, collect_all: bool) -> Self {
        Collector {
            limits,
            prefix,
            collect_all,
            parts: 0,
            gunzip_left: limits.max_gunzip_bytes,
            names: BTreeSet::new(),
            configs: Vec::new(),
            scripts: Vec::new(),
            boothooks: Vec::new(),
            includes: Vec::new(),
            warnings: Vec::new(),
            errors: Vec::new(),
            key_errors: Vec::new(),
            jinja_vars: None,
            launch_index: None,
        }
    }

    /// Record an error: returned (stops the parse), or collected in validate mode.
    fn fail(&mut self, e: SeedError) -> Result<(), SeedError> {
        if self.collect_all {
            self.errors.push(e);
            Ok(())
        } else {
            Err(e)
        }
    }

    fn warn(&mut self, label: &str, msg: impl Into<String>) {
        self.warnings.push(warning(label, msg));
    }

    /// Gunzip within what is left of the file's budget (retained script bodies add up:
    /// one limit per decompression let a thousand small parts hold 64 GiB).
    fn gunzip(&mut self, data: &[u8]) -> Result<Vec<u8>, String> {
        let max = self.limits.max_gunzip_bytes;
        let left = self.gunzip_left;
        let plain = cloud_config::gunzip_limited(data, left).map_err(|e| {
            if left < max && e.contains("expands to more than") {
                format!("{e}: all gzip data of one file together may expand to {max} bytes")
            } else {
                e
            }
        })?;
        self.gunzip_left = left.saturating_sub(plain.len() as u64);
        Ok(plain)
    }

    /// A unique script name: the part's file name if usable, else `part-NNN`.
    fn script_name(&mut self, filename: Option<&str>) -> String {
        let base = filename
            .and_then(safe_name)
            .unwrap_or_else(|| format!("part-{:03}", self.parts.max(1)));
        let mut name = format!("{}{base}", self.prefix);
        let mut n = 2;
        while self.names.contains(&name) {
            name = format!("{}{base}-{n}", self.prefix);
            n += 1;
        }
        self.names.insert(name.clone());
        name
    }

    /// Classify and collect one blob of user-data. `label` names it in messages.
    fn bytes(&mut self, data: &[u8], label: &str, depth: usize) -> Result<(), SeedError> {
        if depth > self.limits.max_nesting {
            return self.fail(warning(
                label,
                format!(
                    "user-data nested more than {} levels deep (gzip/MIME inside each other)",
                    self.limits.max_nesting
                ),
            ));
        }
        match classify(data) {
            Kind::Gzip => match self.gunzip(data) {
                Ok(plain) => self.bytes(&plain, label, depth + 1),
                Err(e) => self.fail(warning(label, e)),
            },
            // Nothing; blanks alone are unhandled user-data to cloud-init, which says so.
            Kind::Empty if data.is_empty() => Ok(()),
            Kind::Empty => {
                self.warn(
                    label,
                    "user-data holds only blank characters; nothing from it is applied",
                );
                Ok(())
            }
            Kind::CloudConfig => self.cloud_config(data, label),
            Kind::Include => {
                self.include(data, label);
                Ok(())
            }
            Kind::Boothook => {
                self.parts += 1;
                self.boothook(data, None, label);
                Ok(())
            }
            Kind::Script => {
                self.parts += 1;
                self.script(data, None, Frequency::PerInstance, label);
                Ok(())
            }
            Kind::Mime => self.mime(data, label, depth),
            Kind::Jinja => {
                self.parts += 1;
                self.jinja(data, None, label)
            }
            Kind::Archive => self.archive(data, label),
            Kind::Unsupported(what) => {
                self.warn(
                    label,
                    format!("{what} user-data is not supported by ci-agent; part ignored"),
                );
                Ok(())
            }
            Kind::Unknown => {
                let why = if data.starts_with(b"\xef\xbb\xbf") {
                    "it starts with a UTF-8 byte order mark, which cloud-init does not skip \
                     either; save the file without one"
                } else if data
                    .get(..13)
                    .is_some_and(|h| h.eq_ignore_ascii_case(b"content-type:"))
                {
                    "MIME user-data needs a MIME-Version header in its first 4096 bytes, \
                     as cloud-init does"
                } else {
                    "cloud-config must start with a #cloud-config line"
                };
                self.warn(
                    label,
                    format!(
                        "unhandled user-data (first line {}); nothing from it is applied ({why})",
                        first_line(data)
                    ),
                );
                Ok(())
            }
        }
    }

    /// A part's bytes as a YAML document (`what` names the format in messages).
    fn yaml_part(&self, data: &[u8], label: &str, what: &str) -> Result<Node, SeedError> {
        let text = std::str::from_utf8(data).map_err(|e| {
            warning(
                label,
                format!("{what} is not valid UTF-8 (at byte {})", e.valid_up_to()),
            )
        })?;
        yaml::parse_node_with(text, label, &self.limits.yaml)
    }

    fn cloud_config(&mut self, data: &[u8], label: &str) -> Result<(), SeedError> {
        self.cloud_config_merging(data, label, None)
    }

    /// A cloud-config part; `merge_type` is its MIME `Merge-Type` header.
    fn cloud_config_merging(
        &mut self,
        data: &[u8],
        label: &str,
        merge_type: Option<&str>,
    ) -> Result<(), SeedError> {
        let node = match self.yaml_part(data, label, "cloud-config") {
            Ok(n) => n,
            Err(e) => return self.fail(e),
        };
        let mut node = match node.value {
            NodeValue::Null => {
                self.warn(label, "empty cloud-config part; nothing from it is applied");
                return Ok(());
            }
            NodeValue::Map(_) => node,
            _ => {
                let msg = format!("cloud-config must be a mapping, found {}", node.kind());
                return self.fail(located(&node, label, msg));
            }
        };
        let spec_at = ["merge_how", "merge_type"]
            .iter()
            .find_map(|k| node.get(k))
            .map(|n| n.pos);
        let mergers = match merge::for_part(&mut node, merge_type) {
            Ok(m) => m,
            Err(e) => {
                let at = spec_at.filter(|p| p.line > 0 && !e.starts_with("Merge-Type"));
                return self.fail(SeedError {
                    file: label.into(),
                    line: at.map(|p| p.line),
                    column: at.map(|p| p.column),
                    message: format!("{e}; this part is not applied"),
                });
            }
        };
        let mut w = Vec::new();
        let checked = CloudConfig::from_node(&node, label, &mut w);
        self.warnings.extend(w);
        match checked {
            Ok(cc) => {
                self.key_errors.extend(cc.errors);
                self.configs.push(ConfigPart {
                    label: label.to_owned(),
                    node,
                    mergers,
                });
                Ok(())
            }
            Err(e) => self.fail(e),
        }
    }

    /// `#include` / `#include-once` bodies: one URL per line; blank lines and comments
    /// skipped. Like cloud-init, a line's leading `#include` / `#include-once` is dropped
    /// first, so `#include http://host/cfg` on one line names a URL.
    fn include(&mut self, data: &[u8], label: &str) {
        let text = String::from_utf8_lossy(data);
        for line in text.lines() {
            let mut line = line.trim();
            for directive in ["#include-once", "#include"] {
                if line
                    .get(..directive.len())
                    .is_some_and(|h| h.eq_ignore_ascii_case(directive))
                {
                    line = line.get(directive.len()..).unwrap_or_default().trim();
                    break;
                }
            }
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if line.starts_with("http://")
                || line.starts_with("https://")
                || line.starts_with("file://")
            {
                if !self.includes.iter().any(|u| u == line) {
                    self.includes.push(line.to_owned());
                }
            } else {
                let shown: String = line.chars().take(60).collect();
                self.warn(label, format!("#include: '{shown}' is not a URL; skipped"));
            }
        }
    }

    /// The interpreter of a script body (`#!` line), `/bin/sh` when there is none.
    fn interpreter(&mut self, body: &[u8], label: &str) -> String {
        if let Some(rest) = body.strip_prefix(b"#!") {
            let line = rest.split(|&b| b == b'\n').next().unwrap_or_default();
            let interp = String::from_utf8_lossy(line).trim().to_owned();
            if !interp.is_empty() {
                return interp;
            }
        }
        self.warn(
            label,
            "script has no '#!' line; it will be run with /bin/sh",
        );
        "/bin/sh".into()
    }

    /// A script's bytes as cloud-init writes them: CRLF line ends made LF (`dos2unix`).
    /// `None`, with an error, when the body is not UTF-8: cloud-init decodes every part as
    /// UTF-8 and cannot write such a script back, so it never runs.
    fn script_text(&mut self, body: &[u8], label: &str) -> Option<Vec<u8>> {
        if let Err(e) = std::str::from_utf8(body) {
            self.errors.push(warning(
                label,
                format!(
                    "script is not valid UTF-8 (at byte {}); not run (cloud-init cannot write it either)",
                    e.valid_up_to()
                ),
            ));
            return None;
        }
        let mut out = Vec::with_capacity(body.len());
        let mut rest = body;
        while let Some(i) = rest.windows(2).position(|w| w == b"\r\n") {
            out.extend_from_slice(rest.get(..i).unwrap_or_default());
            out.push(b'\n');
            rest = rest.get(i + 2..).unwrap_or_default();
        }
        out.extend_from_slice(rest);
        Some(out)
    }

    /// A script, kept byte for byte as cloud-init writes it (see [`Self::script_text`]);
    /// its interpreter is read after any leading blanks.
    fn script(&mut self, body: &[u8], filename: Option<&str>, frequency: Frequency, label: &str) {
        let Some(body) = self.script_text(body, label) else {
            return;
        };
        let interpreter = self.interpreter(body.trim_ascii_start(), label);
        let name = self.script_name(filename);
        self.scripts.push(Script {
            name,
            interpreter,
            body,
            frequency,
        });
    }

    /// `#cloud-boothook`: like cloud-init, the `#cloud-boothook` that starts the part (as
    /// written, case and all) is cut off, then the blanks after it; the rest runs every
    /// boot, early.
    fn boothook(&mut self, data: &[u8], filename: Option<&str>, label: &str) {
        let Some(text) = self.script_text(data, label) else {
            return;
        };
        let body = text
            .strip_prefix(b"#cloud-boothook")
            .unwrap_or(&text)
            .trim_ascii_start()
            .to_vec();
        let interpreter = self.interpreter(&body, label);
        let name = self.script_name(filename);
        self.boothooks.push(Script {
            name,
            interpreter,
            body,
            frequency: Frequency::PerBoot,
        });
    }

    /// A `## template: jinja` part: rendered, then handled as the cloud-config or script
    /// it became (cloud-init's jinja handler knows no other kind). A template that does
    /// not render is an error for this part; variables the instance data lacks are a
    /// warning (they render as `CI_MISSING_JINJA_VAR/<name>`).
    fn jinja(&mut self, data: &[u8], filename: Option<&str>, label: &str) -> Result<(), SeedError> {
        let Some(vars) = self.jinja_vars else {
            self.warn(label, "jinja template not rendered here; part ignored");
            return Ok(());
        };
        let rendered = match jinja::render(data, vars, self.limits.max_template_output) {
            Ok(r) => r,
            Err(e) => return self.fail(warning(label, format!("{e}; part ignored"))),
        };
        if !rendered.missing.is_empty() {
            let names: Vec<String> = rendered
                .missing
                .iter()
                .take(20)
                .map(|n| format!("'{}'", n.escape_debug()))
                .collect();
            self.warn(
                label,
                format!(
                    "jinja variables not in the instance data (rendered as {}<name>): {}",
                    jinja::MISSING_PREFIX,
                    names.join(", ")
                ),
            );
        }
        let body = rendered.text.into_bytes();
        match classify(&body) {
            // cloud-init drops an empty result; one of blanks is a part of no known type.
            Kind::Empty if body.is_empty() => Ok(()),
            Kind::CloudConfig => self.cloud_config(&body, label),
            Kind::Script => {
                self.script(&body, filename, Frequency::PerInstance, label);
                Ok(())
            }
            _ => {
                self.warn(
                    label,
                    format!(
                        "the rendered jinja template is neither #cloud-config nor a #! script \
                         (first line {}); part ignored",
                        first_line(&body)
                    ),
                );
                Ok(())
            }
        }
    }

    /// A part of a type one of cloud-init's part handlers takes as it is: cloud-config,
    /// scripts, boothooks, jinja templates. `Ok(false)`: not one of those types.
    fn handler_part(
        &mut self,
        ctype: &str,
        body: &[u8],
        filename: Option<&str>,
        merge_type: Option<&str>,
        label: &str,
    ) -> Result<bool, SeedError> {
        match ctype {
            "text/cloud-config" => self.cloud_config_merging(body, label, merge_type)?,
            "text/x-shellscript" | "text/x-shellscript-per-instance" => {
                self.script(body, filename, Frequency::PerInstance, label)
            }
            "text/x-shellscript-per-boot" => self.script(body, filename, Frequency::PerBoot, label),
            "text/x-shellscript-per-once" => self.script(body, filename, Frequency::Once, label),
            "text/cloud-boothook" => self.boothook(body, filename, label),
            "text/jinja2" => self.jinja(body, filename, label)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// `#cloud-config-archive`: a YAML list of parts, each taken as it is (see the module
    /// documentation).
    /// Its parts are not classified again, so it adds no nesting.
    fn archive(&mut self, data: &[u8], label: &str) -> Result<(), SeedError> {
        let node = match self.yaml_part(data, label, "#cloud-config-archive") {
            Ok(n) => n,
            Err(e) => return self.fail(e),
        };
        let items = match node.value {
            NodeValue::Seq(items) => items,
            NodeValue::Null => return Ok(()),
            _ => {
                let msg = format!(
                    "#cloud-config-archive must be a list of parts, found {}",
                    node.kind()
                );
                return self.fail(located(&node, label, msg));
            }
        };
        for item in items {
            if self.parts >= self.limits.max_parts {
                return self.fail(warning(
                    label,
                    format!("more than {} parts", self.limits.max_parts),
                ));
            }
            self.parts += 1;
            let at = format!("{label}:{}:{}", item.pos.line, item.pos.column);
            let (content, ctype, filename, index, merge_type) = match &item.value {
                NodeValue::Str(s) => (s.as_bytes().to_vec(), None, None, None, None),
                NodeValue::Map(entries) => {
                    let content = match item.get("content").map(|c| &c.value) {
                        None | Some(NodeValue::Null) => Vec::new(),
                        Some(NodeValue::Str(s)) => s.as_bytes().to_vec(),
                        Some(NodeValue::Bytes(b)) => b.clone(),
                        Some(_) => {
                            self.warn(&at, "archive part: 'content' must be text; part ignored");
                            continue;
                        }
                    };
                    let scalar = |k: &str| {
                        item.get(k).and_then(|n| match &n.to_json() {
                            serde_json::Value::String(s) => Some(s.clone()),
                            serde_json::Value::Number(n) => Some(n.to_string()),
                            serde_json::Value::Bool(b) => {
                                Some(if *b { "True" } else { "False" }.to_owned())
                            }
                            _ => None,
                        })
                    };
                    let index = item
                        .get("launch-index")
                        .map(|n| launch_index_of(&n.to_json()));
                    // Other keys become the part's headers in cloud-init: its cloud-config
                    // handler reads `Merge-Type` (or `X-Merge-Type`), in any case.
                    let merge_type = ["merge-type", "x-merge-type"].iter().find_map(|h| {
                        entries
                            .iter()
                            .find(|(k, _)| k.name.eq_ignore_ascii_case(h))
                            .and_then(|(k, _)| scalar(&k.name))
                    });
                    (
                        content,
                        scalar("type"),
                        scalar("filename"),
                        index,
                        merge_type,
                    )
                }
                _ => {
                    self.warn(
                        &at,
                        format!(
                            "archive part: expected text or a mapping, found {}; ignored",
                            item.kind()
                        ),
                    );
                    continue;
                }
            };
            let ctype = match ctype
                .map(|t| t.trim().to_ascii_lowercase())
                .filter(|t| !t.is_empty())
            {
                Some(t) => t,
                None => archive_type(&content).to_owned(),
            };
            let shown = filename
                .as_deref()
                .and_then(safe_name)
                .unwrap_or_else(|| format!("part-{:03}", self.parts));
            let part_label = format!("{label}[{shown}]");
            // cloud-init's launch-index filter: the part's own index, else (cloud-config)
            // the one in its content.
            let index = match index {
                Some(i) => i,
                None if ctype == "text/cloud-config" => std::str::from_utf8(&content)
                    .ok()
                    .and_then(|t| yaml::parse_node_with(t, &part_label, &self.limits.yaml).ok())
                    .and_then(|n| n.get("launch-index").map(|i| i.to_json()))
                    .and_then(|i| launch_index_of(&i)),
                None => None,
            };
            if let (Some(want), Some(have)) = (self.launch_index, index) {
                if want != have {
                    self.warn(
                        &part_label,
                        format!(
                            "launch-index {have} is not this instance's ({want}); part skipped"
                        ),
                    );
                    continue;
                }
            }
            let handled = self.handler_part(
                &ctype,
                &content,
                filename.as_deref(),
                merge_type.as_deref(),
                &part_label,
            )?;
            if !handled {
                self.warn(
                    &part_label,
                    format!(
                        "archive part of type '{ctype}' is not handled (cloud-init does not \
                         unpack includes, gzip, MIME or archives inside an archive); part ignored"
                    ),
                );
            }
        }
        Ok(())
    }

    fn mime(&mut self, data: &[u8], label: &str, depth: usize) -> Result<(), SeedError> {
        let parts = match mime::split(data, self.limits.max_parts) {
            Ok(p) => p,
            Err(e) => return self.fail(warning(label, e)),
        };
        for part in parts {
            self.parts += 1;
            let shown = part
                .filename
                .as_deref()
                .and_then(safe_name)
                .unwrap_or_else(|| format!("part-{:03}", self.parts));
            let part_label = format!("{label}[{shown}]");
            let mut ctype = part.content_type.as_str();
            let mut body = part.body;
            let mut merge_type = part.merge_type.as_deref();
            if body.starts_with(GZIP_MAGIC)
                || matches!(
                    ctype,
                    "application/gzip"
                        | "application/x-gzip"
                        | "application/gzip-compressed"
                        | "application/gzipped"
                        | "application/x-gzip-compressed"
                        | "application/x-compress"
                        | "application/x-compressed"
                        | "application/x-gunzip"
                )
            {
                match self.gunzip(&body) {
                    Ok(plain) => body = plain,
                    Err(e) => {
                        self.fail(warning(&part_label, e))?;
                        continue;
                    }
                }
                if ctype.starts_with("application/") {
                    // cloud-init makes a new part of it: only the file name is kept.
                    ctype = "";
                    merge_type = None;
                }
            }
            let filename = part.filename.as_deref();
            match ctype {
                "" | "text/plain" | "text/x-not-multipart" => match classify(&body) {
                    // Classified by content, keeping the part's file name.
                    Kind::Script => {
                        self.script(&body, filename, Frequency::PerInstance, &part_label)
                    }
                    Kind::Boothook => self.boothook(&body, filename, &part_label),
                    Kind::CloudConfig => {
                        self.cloud_config_merging(&body, &part_label, merge_type)?
                    }
                    _ => self.bytes(&body, &part_label, depth + 1)?,
                },
                "text/cloud-config" => self.cloud_config_merging(&body, &part_label, merge_type)?,
                // cloud-init classifies a text/x-shellscript part by its content too.
                "text/x-shellscript" => match classify(&body) {
                    Kind::CloudConfig => {
                        self.cloud_config_merging(&body, &part_label, merge_type)?
                    }
                    Kind::Boothook => self.boothook(&body, filename, &part_label),
                    Kind::Include => self.include(&body, &part_label),
                    Kind::Unsupported(_) | Kind::Jinja | Kind::Archive => {
                        self.bytes(&body, &part_label, depth + 1)?
                    }
                    _ => self.script(&body, filename, Frequency::PerInstance, &part_label),
                },
                "text/x-include-url" | "text/x-include-once-url" => {
                    self.include(&body, &part_label)
                }
                "text/cloud-config-archive" => self.archive(&body, &part_label)?,
                t if self.handler_part(t, &body, filename, merge_type, &part_label)? => {}
                other => self.warn(
                    &part_label,
                    format!("MIME part type '{other}' is not supported by ci-agent; part ignored"),
                ),
            }
        }
        Ok(())
    }

    /// vendor-data: user-data formats, or (cloud-init's `convert_vendordata`) a YAML list
    /// of such strings, or a mapping whose `cloud-init` key holds one.
    fn vendor_data(&mut self, data: &[u8]) -> Result<(), SeedError> {
        let label = "vendor-data";
        let stripped = data.strip_prefix(b"\xef\xbb\xbf").unwrap_or(data);
        if classify(stripped) != Kind::Unknown {
            return self.bytes(stripped, label, 0);
        }
        let node = std::str::from_utf8(stripped)
            .ok()
            .and_then(|t| yaml::parse_node_with(t, label, &self.limits.yaml).ok());
        let node = match node {
            Some(n) => match n.value {
                NodeValue::Map(_) => match n.get("cloud-init") {
                    Some(inner) => inner.clone(),
                    None => return self.bytes(stripped, label, 0),
                },
                _ => n,
            },
            None => return self.bytes(stripped, label, 0),
        };
        match &node.value {
            NodeValue::Str(s) => self.bytes(s.as_bytes(), label, 1),
            NodeValue::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    let item_label = format!("{label}[{i}]");
                    match &item.value {
                        NodeValue::Str(s) => self.bytes(s.as_bytes(), &item_label, 1)?,
                        _ => self.warn(
                            &item_label,
                            format!(
                                "expected a user-data string, found {}; ignored",
                                node.kind()
                            ),
                        ),
                    }
                }
                Ok(())
            }
            NodeValue::Null => Ok(()),
            _ => {
                self.warn(
                    label,
                    format!("vendor-data 'cloud-init' holds {}; ignored", node.kind()),
                );
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed(files: &[(&str, &[u8])]) -> Seed {
        Seed {
            source: "test".into(),
            files: files
                .iter()
                .map(|(n, d)| (n.to_string(), d.to_vec()))
                .collect(),
            ..Seed::default()
        }
    }

    #[test]
    fn cloud_config_and_meta_data() {
        let s = seed(&[
            ("meta-data", b"instance-id: i-1\nlocal-hostname: h1\n"),
            (
                "user-data",
                b"#cloud-config\nhostname: web\nssh_pwauth: yes\nusers:\n  - default\n  - name: no\n    groups: adm, sudo\nlxd: {}\n",
            ),
        ]);
        let d = parse_seed(&s).unwrap();
        assert_eq!(d.instance_id, "i-1");
        assert_eq!(d.hostname.as_deref(), Some("h1"));
        assert_eq!(d.cloud_config.hostname.as_deref(), Some("web"));
        assert_eq!(d.cloud_config.ssh_pwauth, Some(true));
        let users = d.cloud_config.users.as_ref().unwrap();
        assert_eq!(users[0], UserSpec::Default);
        match &users[1] {
            UserSpec::User(u) => {
                assert_eq!(u.name, "no");
                assert_eq!(u.groups, ["adm", "sudo"]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(d.cloud_config_json["ssh_pwauth"], serde_json::json!(true));
        assert_eq!(
            d.warnings,
            ["user-data:8:1: 'lxd' is not supported by ci-agent (ignored)"]
        );
        assert_eq!(d.files, ["meta-data", "user-data"]);
    }

    #[test]
    fn defaults_and_overrides() {
        let d = parse_seed(&seed(&[])).unwrap();
        assert_eq!(d.instance_id, "nocloud");
        assert_eq!(d.hostname, None);
        let mut s = seed(&[("meta-data", b"instance-id: i-1\nlocal-hostname: h1\n")]);
        s.instance_id_override = Some("i-2".into());
        s.hostname_override = Some("h2".into());
        let d = parse_seed(&s).unwrap();
        assert_eq!(d.instance_id, "i-2");
        assert_eq!(d.hostname.as_deref(), Some("h2"));
    }

    use cloud_config::UserSpec;
}
