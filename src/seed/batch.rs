//! `ci-seed batch`: a seed for every row of a manifest, for a fleet of clones.
//!
//! Everything is read and checked before anything is written: the template user-data is
//! parsed once, each row is checked (name, hostname, instance-id, its own user-data part),
//! and any problem stops the run naming the manifest line, with nothing written. Then each
//! seed is rendered in memory and written with one write into a temporary file in the
//! output directory and fdatasync'd (many threads, so the journal commits the syncs in
//! groups); once all are written they are renamed into place and the directory is
//! synced — no process is spawned and no half-written image is left behind.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::io::IsTerminal as _;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use anyhow::Context;

use crate::platform::cli::{self, Opt, Value as CliValue};

use super::build::{check_hostname, check_instance_id};
use super::hostkeys;
use super::image::{self, Filesystem};
use super::metadata::{self, MetaFields};
use super::parts::{multipart, part_type};
use super::validate;
use super::CliError;

/// `ci-seed batch`'s options (the parser below; `platform::cli`).
pub const OPTIONS: &[Opt] = &[
    cli::HELP,
    Opt::with("out", &['o'], CliValue::Dir),
    Opt::with("user-data", &['u'], CliValue::File),
    Opt::with("network-config", &['N'], CliValue::File),
    Opt::with("vendor-data", &['V'], CliValue::File),
    Opt::with("filesystem", &['f'], CliValue::Choice(&["iso", "vfat"])),
    Opt::with("dsmode", &['m'], CliValue::Choice(&["local", "net"])),
    Opt::flag("no-validate", &[]),
    // Also `--ssh-host-keys=TYPES`.
    Opt::flag("ssh-host-keys", &[]),
    Opt::with("known-hosts", &[], CliValue::File),
    Opt::flag("no-sync", &[]),
    Opt::with("report", &[], CliValue::File),
    Opt::flag("quiet", &['q']),
    Opt::flag("verbose", &['v']),
];

pub(super) const HELP: &str = "\
Usage: ci-seed batch MANIFEST --out DIR [options]

Build one seed per manifest row, written as DIR/<name>.iso (or DIR/<name>.img with
-f vfat), all sharing the template user-data and the -N/-V files. Nothing is
written unless every row is valid; existing images of the same names are replaced.

MANIFEST ('-' for standard input) is JSON lines or CSV: .jsonl/.ndjson/.json
means JSON lines, .csv means CSV, anything else is decided by the first character
('{' → JSON lines). Fields of a row (all strings):
  name         required; output file name without extension:
               letters, digits, '.', '_', '-' (not starting with '.'), <= 128
  hostname     local-hostname in the generated meta-data (RFC 1123)
  instance-id  instance-id (default: a fresh iid-<random UUID>); must be unique
  user-data    extra user-data for this row: added after the template as a
               second MIME part (cloud-init merges cloud-config parts, later keys
               win; scripts run in order); the whole user-data when no template
  config       content of the per-instance file CONFIG at the seed root
  ip, gateway, dns, search, mac
               a static network for this row, as ci-seed's --ip, --gateway,
               --dns, --search and --mac (lists: comma- or space-separated):
               a version 2 network-config, checked by ci-agent's parser;
               not with -N
JSON lines: one object per line, e.g.
  {\"name\": \"web1\", \"hostname\": \"web1\", \"config\": \"role=web\\n\"}
Blank lines are skipped; unknown keys are errors; null means absent.
CSV (RFC 4180): a header line naming the columns, then one row per record;
quoted fields may hold commas, newlines and \"\" for a quote; an empty field means
absent, e.g.
  name,hostname,instance-id,config
  web1,web1,,role=web

Options:
  -o, --out DIR            output directory (created if missing)
  -u, --user-data FILE     template user-data shared by every seed
  -f, --filesystem F       iso (default) or vfat
  -N, --network-config F   network-config for every seed
  -V, --vendor-data F      vendor-data for every seed
  -m, --dsmode M           dsmode (local or net) in every meta-data
      --no-validate        skip checking user-data with ci-agent's parser, and
                           hostnames against RFC 1123
      --no-sync            skip the per-image fdatasync before the images are
                           renamed into place (scratch directories; after a
                           crash an image may then be empty)
      --report FILE        write one line per seed (name, path, instance-id,
                           hostname) to FILE: CSV for *.csv, JSON lines for
                           *.jsonl (written atomically, after the seeds)
      --ssh-host-keys[=TYPES]
                           make each clone's SSH host keys (TYPES: ed25519,
                           ecdsa, rsa; default ed25519,ecdsa) and put them in
                           its seed as ssh_keys; the images are written 0600
      --known-hosts FILE   with --ssh-host-keys: one known_hosts for the fleet,
                           'HOSTNAME[,IP] KEY' per row (hostname, else name;
                           the ip column's address), old lines of those hosts
                           replaced
  -q, --quiet              no summary line
  -v, --verbose            say what was written, seed by seed
  -h, --help               show this help

A one-line summary goes to standard output (and progress to a terminal on
standard error).

Problems are reported as MANIFEST:LINE: MESSAGE (user-data problems as
MANIFEST:LINE: user-data:LINE:COLUMN: MESSAGE). ISO timestamps come from
SOURCE_DATE_EPOCH (0 when unset); vfat ones are always 1980-01-01.
Exit status: 0 all written, 1 failed (I/O), 2 usage error or invalid manifest.
";

/// One manifest row, as read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Row {
    /// 1-based manifest line where the row starts.
    pub line: usize,
    pub name: String,
    pub hostname: Option<String>,
    pub instance_id: Option<String>,
    pub user_data: Option<String>,
    pub config: Option<String>,
    /// `ip`, `gateway`, `dns`, `mac`, `search`.
    pub net: super::netcfg::NetArgs,
}

const FIELDS: [&str; 10] = [
    "name",
    "hostname",
    "instance-id",
    "user-data",
    "config",
    "ip",
    "gateway",
    "dns",
    "mac",
    "search",
];

impl Row {
    fn set(&mut self, key: &str, value: String) -> Result<(), String> {
        let value = Some(value).filter(|v| !v.is_empty());
        match key {
            "name" => self.name = value.unwrap_or_default(),
            "hostname" => self.hostname = value,
            "instance-id" => self.instance_id = value,
            "user-data" => self.user_data = value,
            "config" => self.config = value,
            k if super::netcfg::KEYS.contains(&k) => {
                self.net.set(k, value.as_deref().unwrap_or(""));
            }
            other => {
                return Err(format!(
                    "unknown field {other:?} (expected {})",
                    FIELDS.join(", ")
                ))
            }
        }
        Ok(())
    }
}

/// Manifest syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    JsonLines,
    Csv,
}

/// Decide the format from the file name, else from the first non-blank character.
pub fn detect_format(name: &str, text: &str) -> Format {
    let lower = name.to_ascii_lowercase();
    if [".jsonl", ".ndjson", ".json"]
        .iter()
        .any(|e| lower.ends_with(e))
    {
        return Format::JsonLines;
    }
    if lower.ends_with(".csv") {
        return Format::Csv;
    }
    if text
        .trim_start_matches('\u{feff}')
        .trim_start()
        .starts_with('{')
    {
        Format::JsonLines
    } else {
        Format::Csv
    }
}

/// A row-level problem: the manifest line and what is wrong.
pub type LineError = (usize, String);

/// Parse a manifest into rows; every malformed row is reported.
pub fn parse_manifest(text: &str, format: Format) -> Result<Vec<Row>, Vec<LineError>> {
    match format {
        Format::JsonLines => parse_jsonl(text),
        Format::Csv => parse_csv(text),
    }
}

fn parse_jsonl(text: &str) -> Result<Vec<Row>, Vec<LineError>> {
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let lineno = i + 1;
        let line = if i == 0 {
            line.trim_start_matches('\u{feff}')
        } else {
            line
        };
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => {
                errors.push((lineno, format!("not a JSON object: {e}")));
                continue;
            }
        };
        let Some(obj) = value.as_object() else {
            errors.push((lineno, "not a JSON object".into()));
            continue;
        };
        let mut row = Row {
            line: lineno,
            ..Default::default()
        };
        let mut bad = false;
        for (k, v) in obj {
            let s = match v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => String::new(),
                _ => {
                    errors.push((lineno, format!("field {k:?}: expected a string")));
                    bad = true;
                    continue;
                }
            };
            if let Err(m) = row.set(k, s) {
                errors.push((lineno, m));
                bad = true;
            }
        }
        if !bad {
            rows.push(row);
        }
    }
    if errors.is_empty() {
        Ok(rows)
    } else {
        Err(errors)
    }
}

/// RFC 4180 records with the line each starts on. Quoted fields may span lines.
fn csv_records(text: &str) -> Result<Vec<(usize, Vec<String>)>, LineError> {
    let text = text.trim_start_matches('\u{feff}');
    let mut records = Vec::new();
    let mut fields: Vec<String> = Vec::new();
    let mut field = String::new();
    let mut line = 1usize;
    let mut start = 1usize;
    let mut in_quotes = false;
    let mut quoted = false; // the current field was quoted
    let mut chars = text.chars().peekable();
    let mut at_record_start = true;
    while let Some(c) = chars.next() {
        if in_quotes {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => in_quotes = false,
                '\n' => {
                    line += 1;
                    field.push('\n');
                }
                c => field.push(c),
            }
            continue;
        }
        if at_record_start {
            start = line;
            at_record_start = false;
        }
        match c {
            '"' if field.is_empty() && !quoted => {
                in_quotes = true;
                quoted = true;
            }
            '"' => {
                return Err((
                    line,
                    "unexpected '\"' inside a field (quote the whole field and double the quote)"
                        .into(),
                ));
            }
            ',' => {
                fields.push(std::mem::take(&mut field));
                quoted = false;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                fields.push(std::mem::take(&mut field));
                quoted = false;
                records.push((start, std::mem::take(&mut fields)));
                line += 1;
                at_record_start = true;
            }
            c if quoted => {
                return Err((line, format!("unexpected {c:?} after a closing quote")));
            }
            c => field.push(c),
        }
    }
    if in_quotes {
        return Err((start, "unterminated quoted field".into()));
    }
    if !at_record_start {
        fields.push(field);
        records.push((start, fields));
    }
    // Blank lines are not rows.
    records.retain(|(_, f)| !(f.len() == 1 && f[0].is_empty()));
    Ok(records)
}

fn parse_csv(text: &str) -> Result<Vec<Row>, Vec<LineError>> {
    let records = csv_records(text).map_err(|e| vec![e])?;
    let mut it = records.into_iter();
    let Some((hline, header)) = it.next() else {
        return Ok(Vec::new());
    };
    let mut errors = Vec::new();
    let header: Vec<String> = header.iter().map(|h| h.trim().to_string()).collect();
    for (i, h) in header.iter().enumerate() {
        if !FIELDS.contains(&h.as_str()) {
            errors.push((
                hline,
                format!(
                    "header: unknown column {h:?} (expected {})",
                    FIELDS.join(", ")
                ),
            ));
        }
        if header[..i].contains(h) {
            errors.push((hline, format!("header: column {h:?} given twice")));
        }
    }
    if !header.iter().any(|h| h == "name") {
        errors.push((hline, "header: no \"name\" column".into()));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut rows = Vec::new();
    for (line, fields) in it {
        if fields.len() != header.len() {
            errors.push((
                line,
                format!("{} fields, the header has {}", fields.len(), header.len()),
            ));
            continue;
        }
        let mut row = Row {
            line,
            ..Default::default()
        };
        for (k, v) in header.iter().zip(fields) {
            // Known column (checked above), so this cannot fail.
            if let Err(m) = row.set(k, v) {
                errors.push((line, m));
            }
        }
        rows.push(row);
    }
    if errors.is_empty() {
        Ok(rows)
    } else {
        Err(errors)
    }
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("missing \"name\"".into());
    }
    if name.len() > 128 {
        return Err(format!("name is {} bytes, at most 128", name.len()));
    }
    if name.starts_with('.')
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(format!(
            "name {name:?}: only letters, digits, '.', '_' and '-' are allowed, not starting with '.'"
        ));
    }
    Ok(())
}

/// Template user-data ready to be combined with per-row parts.
#[derive(Debug, Clone)]
struct Template {
    data: Vec<u8>,
    /// MIME type when it can be a part of a multipart document.
    part_type: Option<&'static str>,
}

/// `template` then `extra` as a `multipart/mixed` document (deterministic boundary).
fn combine(template: &Template, extra: &[u8], keys: Option<&[u8]>) -> Result<Vec<u8>, String> {
    let ttype = template.part_type.ok_or(
        "a user-data field cannot be added to this template: only a #cloud-config, #!, #cloud-boothook or #include template can be combined (not MIME multipart or gzip)",
    )?;
    let etype = part_type(extra).ok_or(
        "user-data field: the first line must be #cloud-config, #!, #cloud-boothook or #include",
    )?;
    let mut parts = vec![
        ("template", ttype, &template.data[..]),
        ("row", etype, extra),
    ];
    if let Some(k) = keys {
        parts.push(("ssh-host-keys", "text/cloud-config", k));
    }
    multipart(&parts)
}

/// Parsed `ci-seed batch` arguments.
#[derive(Debug, Clone)]
pub struct BatchArgs {
    pub manifest: OsString,
    pub out: PathBuf,
    pub user_data: Option<PathBuf>,
    pub filesystem: Filesystem,
    pub network_config: Option<PathBuf>,
    pub vendor_data: Option<PathBuf>,
    pub dsmode: Option<String>,
    pub validate: bool,
    /// Make the images durable (one `sync`) before renaming them into place.
    pub sync: bool,
    pub verbose: bool,
    /// `--report FILE`: one line per seed written (CSV, or JSON lines for `.jsonl`).
    pub report: Option<PathBuf>,
    /// `--quiet`: no summary line.
    pub quiet: bool,
    /// `--ssh-host-keys[=TYPES]`: host keys made for every row, put in its seed.
    pub ssh_host_keys: Option<Vec<crate::formats::hostkey::KeyType>>,
    /// `--known-hosts FILE`: one known_hosts for the fleet.
    pub known_hosts: Option<PathBuf>,
}

fn val(parser: &mut lexopt::Parser, opt: &str) -> Result<OsString, CliError> {
    parser
        .value()
        .map_err(|e| CliError::Usage(format!("{opt}: {e}")))
}

fn parse_args(args: Vec<OsString>) -> Result<Option<BatchArgs>, CliError> {
    use lexopt::prelude::*;
    let usage = |m: String| CliError::Usage(m);
    let mut parser = lexopt::Parser::from_args(args);
    let mut manifest = None;
    let mut out = None;
    let mut a = BatchArgs {
        manifest: OsString::new(),
        out: PathBuf::new(),
        user_data: None,
        filesystem: Filesystem::Iso,
        network_config: None,
        vendor_data: None,
        dsmode: None,
        validate: true,
        sync: true,
        verbose: false,
        report: None,
        quiet: false,
        ssh_host_keys: None,
        known_hosts: None,
    };
    while let Some(arg) = parser.next().map_err(|e| usage(e.to_string()))? {
        match arg {
            Short('h') | Long("help") => return Ok(None),
            Long("out") | Short('o') => out = Some(PathBuf::from(val(&mut parser, "--out")?)),
            Short('u') | Long("user-data") => {
                a.user_data = Some(PathBuf::from(val(&mut parser, "--user-data")?))
            }
            Short('N') | Long("network-config") => {
                a.network_config = Some(PathBuf::from(val(&mut parser, "--network-config")?))
            }
            Short('V') | Long("vendor-data") => {
                a.vendor_data = Some(PathBuf::from(val(&mut parser, "--vendor-data")?))
            }
            Short('f') | Long("filesystem") => {
                let v = val(&mut parser, "--filesystem")?
                    .to_string_lossy()
                    .into_owned();
                a.filesystem = Filesystem::parse(&v)
                    .ok_or_else(|| usage(format!("--filesystem {v:?}: expected iso or vfat")))?;
            }
            Short('m') | Long("dsmode") => {
                let v = val(&mut parser, "--dsmode")?.to_string_lossy().into_owned();
                if v != "local" && v != "net" {
                    return Err(usage(format!("--dsmode {v:?}: expected local or net")));
                }
                a.dsmode = Some(v);
            }
            Long("no-validate") => a.validate = false,
            Long("no-sync") => a.sync = false,
            Long("ssh-host-keys") => {
                let v = parser
                    .optional_value()
                    .map(|v| v.to_string_lossy().into_owned());
                a.ssh_host_keys = Some(hostkeys::parse_types(v.as_deref()).map_err(usage)?);
            }
            Long("known-hosts") => {
                a.known_hosts = Some(PathBuf::from(val(&mut parser, "--known-hosts")?))
            }
            Short('v') | Long("verbose") => a.verbose = true,
            Short('q') | Long("quiet") => a.quiet = true,
            Long("report") => a.report = Some(PathBuf::from(val(&mut parser, "--report")?)),
            Value(v) if manifest.is_none() => manifest = Some(v),
            Value(v) => return Err(usage(format!("unexpected argument {v:?}"))),
            other => return Err(usage(other.unexpected().to_string())),
        }
    }
    a.manifest = manifest.ok_or_else(|| usage("no MANIFEST given".into()))?;
    a.out = out.ok_or_else(|| usage("--out DIR is required".into()))?;
    if a.known_hosts.is_some() && a.ssh_host_keys.is_none() {
        return Err(usage(
            "--known-hosts needs --ssh-host-keys (the keys it records)".into(),
        ));
    }
    if a.manifest == "-" && a.user_data.as_deref() == Some(Path::new("-")) {
        return Err(usage(
            "MANIFEST and --user-data cannot both read standard input".into(),
        ));
    }
    Ok(Some(a))
}

/// `ci-seed batch`.
pub fn cli(args: Vec<OsString>) -> u8 {
    match parse_args(args) {
        Ok(None) => {
            crate::out!("{HELP}");
            crate::exit::OK
        }
        Ok(Some(a)) => {
            let t = std::time::Instant::now();
            match run(&a) {
                Ok(written) => {
                    if a.verbose {
                        for w in &written {
                            eprintln!("wrote {} ({})", w.path.display(), w.instance_id);
                        }
                    }
                    if !a.quiet {
                        crate::outln!(
                            "ci-seed batch: wrote {} {} seeds to {} in {:.2} s{}",
                            written.len(),
                            a.filesystem.extension(),
                            a.out.display(),
                            t.elapsed().as_secs_f64(),
                            a.report
                                .as_ref()
                                .map(|r| format!("; report {}", r.display()))
                                .unwrap_or_default()
                        );
                    }
                    crate::exit::OK
                }
                Err(e) => e.report("ci-seed batch"),
            }
        }
        Err(e) => e.report("ci-seed batch"),
    }
}

fn read_input(p: &Path) -> Result<Vec<u8>, CliError> {
    if p == Path::new("-") {
        let mut buf = Vec::new();
        std::io::stdin()
            .lock()
            .read_to_end(&mut buf)
            .context("reading standard input")?;
        Ok(buf)
    } else {
        Ok(std::fs::read(p).with_context(|| format!("reading {}", p.display()))?)
    }
}

/// One seed ready to render.
struct Job {
    name: String,
    instance_id: String,
    hostname: Option<String>,
    files: Vec<(String, Vec<u8>)>,
    /// With `--ssh-host-keys`: the known_hosts host field and the keys.
    host_keys: Option<(String, Vec<crate::formats::hostkey::HostKey>)>,
}

/// One seed `ci-seed batch` wrote (a line of `--report`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Written {
    pub name: String,
    pub path: PathBuf,
    #[serde(rename = "instance-id")]
    pub instance_id: String,
    pub hostname: Option<String>,
}

/// Check the whole manifest and build each seed's file list; nothing is written.
fn plan(a: &BatchArgs, rows: Vec<Row>, manifest_shown: &str) -> Result<Vec<Job>, CliError> {
    let mut errors: Vec<String> = Vec::new();
    let err = |line: usize, m: &str| format!("{manifest_shown}:{line}: {m}");

    // Shared files, read and checked once.
    let template = match &a.user_data {
        Some(p) => Some(Template {
            data: read_input(p)?,
            part_type: None,
        }),
        None => None,
    }
    .map(|mut t| {
        t.part_type = part_type(&t.data);
        t
    });
    let mut shared: Vec<(String, Vec<u8>)> = Vec::new();
    if let Some(p) = &a.network_config {
        shared.push(("network-config".into(), read_input(p)?));
    }
    if let Some(p) = &a.vendor_data {
        shared.push(("vendor-data".into(), read_input(p)?));
    }
    if a.validate {
        let mut files: BTreeMap<String, Vec<u8>> = shared.iter().cloned().collect();
        if let Some(t) = &template {
            files.insert("user-data".into(), t.data.clone());
        }
        let shown = |n: &str| match (n, &a.user_data, &a.network_config, &a.vendor_data) {
            ("user-data", Some(p), _, _)
            | ("network-config", _, Some(p), _)
            | ("vendor-data", _, _, Some(p)) => p.display().to_string(),
            _ => n.to_string(),
        };
        let report = validate::check_seed(&files, &shown);
        for w in &report.warnings {
            eprintln!("{w}");
        }
        if !report.errors.is_empty() {
            return Err(CliError::Input(
                report.errors.iter().map(|e| e.to_string()).collect(),
            ));
        }
    }

    let mut names: HashMap<String, usize> = HashMap::with_capacity(rows.len());
    let mut iids: HashMap<String, usize> = HashMap::new();
    let mut jobs = Vec::with_capacity(rows.len());
    for row in rows {
        let before = errors.len();
        if let Err(m) = check_name(&row.name) {
            errors.push(err(row.line, &m));
        } else if let Some(prev) = names.insert(row.name.clone(), row.line) {
            errors.push(err(
                row.line,
                &format!("duplicate name {:?} (also on line {prev})", row.name),
            ));
        }
        if let Some(h) = row.hostname.as_ref().filter(|_| a.validate) {
            if let Err(m) = check_hostname(h) {
                errors.push(err(row.line, &format!("hostname {h:?}: {m}")));
            }
        }
        if let Some(iid) = &row.instance_id {
            if let Err(m) = check_instance_id(iid) {
                errors.push(err(row.line, &format!("instance-id: {m}")));
            } else if let Some(prev) = iids.insert(iid.clone(), row.line) {
                errors.push(err(
                    row.line,
                    &format!("duplicate instance-id {iid:?} (also on line {prev})"),
                ));
            }
        }
        let host_keys = match &a.ssh_host_keys {
            Some(types) => {
                let host = row.hostname.clone().unwrap_or_else(|| row.name.clone());
                let keys = hostkeys::generate(types, Some(&host))?;
                let part = hostkeys::cloud_config(&keys)?;
                let field = hostkeys::host_field(&host, row.net.ip.first().map(String::as_str));
                Some((field, keys, part))
            }
            None => None,
        };
        let keys_part = host_keys.as_ref().map(|(_, _, p)| &p[..]);
        let user_data = match (&template, &row.user_data) {
            (Some(t), None) => match keys_part {
                Some(k) => hostkeys::add_to_user_data(&t.data, k).unwrap_or_else(|m| {
                    errors.push(err(row.line, &m));
                    Vec::new()
                }),
                None => t.data.clone(),
            },
            (None, Some(extra)) => match keys_part {
                Some(k) => hostkeys::add_to_user_data(extra.as_bytes(), k).unwrap_or_else(|m| {
                    errors.push(err(row.line, &m));
                    Vec::new()
                }),
                None => extra.clone().into_bytes(),
            },
            (Some(t), Some(extra)) => match combine(t, extra.as_bytes(), keys_part) {
                Ok(d) => d,
                Err(m) => {
                    errors.push(err(row.line, &m));
                    Vec::new()
                }
            },
            (None, None) => {
                errors.push(err(
                    row.line,
                    "no user-data: give --user-data TEMPLATE or a user-data field",
                ));
                Vec::new()
            }
        };
        if a.validate {
            if let Some(extra) = &row.user_data {
                let report =
                    validate::check_file(validate::Kind::UserData, "user-data", extra.as_bytes());
                for e in report.errors {
                    errors.push(err(row.line, &e.to_string()));
                }
            }
        }
        let network = if row.net.is_empty() {
            None
        } else if a.network_config.is_some() {
            errors.push(err(
                row.line,
                "ip/gateway/dns/mac/search and --network-config both give network-config",
            ));
            None
        } else {
            match row.net.render() {
                Ok(t) => Some(t.into_bytes()),
                Err(m) => {
                    errors.push(err(row.line, &m.replace("--", "")));
                    None
                }
            }
        };
        if errors.len() == before {
            // Caught now rather than at the final rename, which must not fail halfway.
            let target = a
                .out
                .join(format!("{}.{}", row.name, a.filesystem.extension()));
            if target.is_dir() {
                errors.push(err(
                    row.line,
                    &format!("{} exists and is a directory", target.display()),
                ));
            }
        }
        if errors.len() > before {
            continue;
        }
        let instance_id = row
            .instance_id
            .clone()
            .unwrap_or_else(metadata::new_instance_id);
        let meta = metadata::render(&MetaFields {
            instance_id: instance_id.clone(),
            hostname: row.hostname.clone(),
            interfaces: None,
            dsmode: a.dsmode.clone(),
        });
        let mut files = Vec::with_capacity(shared.len() + 3);
        files.push(("user-data".to_string(), user_data));
        files.push(("meta-data".to_string(), meta));
        files.extend(shared.iter().cloned());
        if let Some(n) = network {
            files.push(("network-config".to_string(), n));
        }
        if let Some(c) = row.config {
            files.push(("CONFIG".to_string(), c.into_bytes()));
        }
        files.sort_by(|x, y| x.0.cmp(&y.0));
        jobs.push(Job {
            name: row.name,
            instance_id,
            hostname: row.hostname,
            files,
            host_keys: host_keys.map(|(field, keys, _)| (field, keys)),
        });
    }
    if errors.is_empty() {
        Ok(jobs)
    } else {
        Err(CliError::Input(errors))
    }
}

/// Temporary files written so far; removed on drop unless committed.
struct Staged {
    temps: Vec<(PathBuf, PathBuf)>,
    committed: bool,
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.committed {
            for (tmp, _) in &self.temps {
                let _ = std::fs::remove_file(tmp);
            }
        }
    }
}

/// Render and stage `jobs` (one thread's share): (temp path, final path) per seed. With
/// `sync`, each file's data is made durable (fdatasync) before it counts as staged; the
/// threads' syncs overlap, so the journal commits them in groups. Stops early once
/// another thread has failed (`stop`).
fn stage(
    jobs: &[Job],
    out: &Path,
    fs: Filesystem,
    mtime: i64,
    sync: bool,
    stop: &AtomicBool,
    done: &AtomicUsize,
) -> Result<Staged, anyhow::Error> {
    let mut staged = Staged {
        temps: Vec::with_capacity(jobs.len()),
        committed: false,
    };
    for job in jobs {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let result = (|| {
            let bytes = image::render_list(&job.files, fs, mtime)
                .with_context(|| format!("seed {}", job.name))?;
            let target = out.join(format!("{}.{}", job.name, fs.extension()));
            let tmp = image::write_temp(&target, &bytes)
                .with_context(|| format!("writing {}", target.display()))?;
            if sync {
                tmp.file
                    .sync_data()
                    .with_context(|| format!("fsync of {}", tmp.path.display()))?;
            }
            staged.temps.push((tmp.into_kept_path(), target));
            done.fetch_add(1, Ordering::Relaxed);
            Ok(())
        })();
        if let Err(e) = result {
            stop.store(true, Ordering::Relaxed);
            return Err(e);
        }
    }
    Ok(staged)
}

/// Run a batch; returns the seeds written, in manifest order.
pub fn run(a: &BatchArgs) -> Result<Vec<Written>, CliError> {
    let mtime = image::source_date_epoch().map_err(CliError::Usage)?;
    let manifest_path = Path::new(&a.manifest);
    let (shown, bytes) = if a.manifest == "-" {
        ("<stdin>".to_string(), read_input(manifest_path)?)
    } else {
        (
            manifest_path.display().to_string(),
            read_input(manifest_path)?,
        )
    };
    let text = String::from_utf8(bytes).map_err(|e| {
        CliError::Input(vec![format!(
            "{shown}: not UTF-8 text (byte {})",
            e.utf8_error().valid_up_to()
        )])
    })?;
    let format = detect_format(&shown, &text);
    let rows = parse_manifest(&text, format).map_err(|errs| {
        CliError::Input(
            errs.into_iter()
                .map(|(l, m)| format!("{shown}:{l}: {m}"))
                .collect(),
        )
    })?;
    if rows.is_empty() {
        return Err(CliError::Input(vec![format!("{shown}: no rows")]));
    }
    let jobs = plan(a, rows, &shown)?;
    if a.ssh_host_keys.is_some() {
        // The images hold private keys.
        image::private_outputs();
    }
    let report = match &a.report {
        Some(path) => Some((path, report_format(path)?)),
        None => None,
    };

    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    // Mostly waiting on fdatasync, so more threads than cores: overlapping syncs are
    // committed together by the file system's journal.
    let threads = (std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        * 8)
    .clamp(1, 32)
    .min(jobs.len().div_ceil(32).max(1));
    let stop = AtomicBool::new(false);
    let done = AtomicUsize::new(0);
    let finished = AtomicBool::new(false);
    let chunk = jobs.len().div_ceil(threads).max(1);
    // Progress on a terminal only (never in logs or pipes).
    let tty = !a.quiet && std::io::stderr().is_terminal();
    let results: Vec<Result<Staged, anyhow::Error>> = std::thread::scope(|s| {
        let handles: Vec<_> = jobs
            .chunks(chunk)
            .map(|part| {
                let (stop, done) = (&stop, &done);
                s.spawn(move || stage(part, &a.out, a.filesystem, mtime, a.sync, stop, done))
            })
            .collect();
        let finished = &finished;
        let progress = tty.then(|| {
            let (done, total) = (&done, jobs.len());
            s.spawn(move || {
                // At least once, however quick the batch: a terminal always sees the count.
                loop {
                    eprint!("\rci-seed batch: {}/{total}", done.load(Ordering::Relaxed));
                    if finished.load(Ordering::Relaxed) {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(200));
                }
                eprint!("\r\x1b[K");
            })
        });
        let out: Vec<_> = handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a writer thread panicked")))
            })
            .collect();
        finished.store(true, Ordering::Relaxed);
        if let Some(p) = progress {
            let _ = p.join();
        }
        out
    });
    // Keep every staged set alive (so failures clean up all temps) until all succeeded.
    let mut all = Vec::with_capacity(results.len());
    let mut first_err = None;
    for r in results {
        match r {
            Ok(s) => all.push(s),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_err {
        return Err(CliError::Failed(e));
    }
    // Every image is complete (and, with sync, durable): rename them into place.
    let mut count = 0;
    for staged in &mut all {
        for (tmp, target) in &staged.temps {
            std::fs::rename(tmp, target)
                .with_context(|| format!("renaming {} to {}", tmp.display(), target.display()))?;
            count += 1;
        }
        staged.committed = true;
    }
    image::sync_dir(&a.out).with_context(|| format!("fsync of {}", a.out.display()))?;
    debug_assert_eq!(count, jobs.len());
    if let Some(path) = &a.known_hosts {
        let entries: Vec<(String, &[crate::formats::hostkey::HostKey])> = jobs
            .iter()
            .filter_map(|j| j.host_keys.as_ref())
            .map(|(field, keys)| (field.clone(), &keys[..]))
            .collect();
        hostkeys::write_known_hosts(path, &entries)?;
    }
    let written: Vec<Written> = jobs
        .into_iter()
        .map(|j| Written {
            path: a
                .out
                .join(format!("{}.{}", j.name, a.filesystem.extension())),
            name: j.name,
            instance_id: j.instance_id,
            hostname: j.hostname,
        })
        .collect();
    if let Some((path, format)) = report {
        let text = render_report(&written, format);
        image::write_atomic(path, text.as_bytes())
            .with_context(|| format!("writing report {}", path.display()))?;
    }
    Ok(written)
}

/// `--report` as CSV (RFC 4180, a header line) or JSON lines, from the file name.
fn report_format(path: &Path) -> Result<Format, CliError> {
    let name = path.to_string_lossy().to_ascii_lowercase();
    if [".jsonl", ".ndjson", ".json"]
        .iter()
        .any(|e| name.ends_with(e))
    {
        Ok(Format::JsonLines)
    } else if name.ends_with(".csv") {
        Ok(Format::Csv)
    } else {
        Err(CliError::Usage(format!(
            "--report {}: name it .csv or .jsonl (the format follows the name)",
            path.display()
        )))
    }
}

/// One line per seed: name, path, instance-id, hostname.
pub fn render_report(written: &[Written], format: Format) -> String {
    let mut out = String::new();
    match format {
        Format::JsonLines => {
            for w in written {
                out.push_str(&serde_json::to_string(w).unwrap_or_default());
                out.push('\n');
            }
        }
        Format::Csv => {
            out.push_str("name,path,instance-id,hostname\r\n");
            for w in written {
                let path = w.path.display().to_string();
                let fields = [
                    w.name.as_str(),
                    path.as_str(),
                    w.instance_id.as_str(),
                    w.hostname.as_deref().unwrap_or(""),
                ];
                let quoted: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
                out.push_str(&quoted.join(","));
                out.push_str("\r\n");
            }
        }
    }
    out
}

/// A CSV field, quoted when it holds a comma, quote or line break.
fn csv_field(f: &str) -> String {
    if f.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", f.replace('"', "\"\""))
    } else {
        f.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(detect_format("a.csv", "{"), Format::Csv);
        assert_eq!(detect_format("a.JSONL", "name"), Format::JsonLines);
        assert_eq!(detect_format("-", "  {\"name\":1}"), Format::JsonLines);
        assert_eq!(detect_format("fleet", "name,hostname"), Format::Csv);
    }

    #[test]
    fn jsonl_rows_and_errors() {
        let text = "{\"name\":\"a\",\"hostname\":\"h\",\"config\":\"x=1\\n\"}\n\n{\"name\":\"b\",\"instance-id\":null}\n";
        let rows = parse_manifest(text, Format::JsonLines).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].line, 1);
        assert_eq!(rows[0].config.as_deref(), Some("x=1\n"));
        assert_eq!(rows[1].line, 3);
        assert_eq!(rows[1].instance_id, None);
        let errs = parse_manifest(
            "{\"name\":\"a\"}\n[1]\n{\"name\":2}\n{\"nmae\":\"x\"}\n{bad\n",
            Format::JsonLines,
        )
        .unwrap_err();
        let lines: Vec<usize> = errs.iter().map(|e| e.0).collect();
        assert_eq!(lines, vec![2, 3, 4, 5]);
        assert!(errs[2].1.contains("unknown field \"nmae\""));
    }

    #[test]
    fn csv_quoting_and_lines() {
        let text = "name,config,hostname\r\na,\"x,\"\"y\"\"\nz\",h1\n\nb,,\n";
        let rows = parse_manifest(text, Format::Csv).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].config.as_deref(), Some("x,\"y\"\nz"));
        assert_eq!(rows[0].hostname.as_deref(), Some("h1"));
        assert_eq!(rows[0].line, 2);
        assert_eq!(rows[1].line, 5);
        assert_eq!(rows[1].config, None);
        let errs = parse_manifest("name,hostname\na\nb,c\n", Format::Csv).unwrap_err();
        assert_eq!(errs[0].0, 2);
        let errs = parse_manifest("name,colour\n", Format::Csv).unwrap_err();
        assert!(errs[0].1.contains("colour"));
        let errs = parse_manifest("name\n\"open\nstill\n", Format::Csv).unwrap_err();
        assert_eq!(errs[0].0, 2);
        assert!(errs[0].1.contains("unterminated"));
        let errs = parse_manifest("name\nab\"c\n", Format::Csv).unwrap_err();
        assert_eq!(errs[0].0, 2);
        // No trailing newline.
        let rows = parse_manifest("name\nlast", Format::Csv).unwrap();
        assert_eq!(rows[0].name, "last");
    }

    #[test]
    fn names() {
        assert!(check_name("web-1.prod_a").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name(".hidden").is_err());
        assert!(check_name("a/b").is_err());
        assert!(check_name("../x").is_err());
        assert!(check_name(&"a".repeat(129)).is_err());
    }

    #[test]
    fn combining_parts() {
        let t = Template {
            data: b"#cloud-config\npackages: [vim]\n".to_vec(),
            part_type: Some("text/cloud-config"),
        };
        let out = combine(&t, b"#!/bin/sh\necho hi", None).unwrap();
        let msg = mailparse::parse_mail(&out).expect("valid MIME");
        assert_eq!(msg.subparts.len(), 2);
        assert_eq!(msg.subparts[0].ctype.mimetype, "text/cloud-config");
        assert_eq!(msg.subparts[1].ctype.mimetype, "text/x-shellscript");
        assert_eq!(
            msg.subparts[0].get_body_raw().unwrap(),
            b"#cloud-config\npackages: [vim]\n"
        );
        assert_eq!(
            msg.subparts[1].get_body_raw().unwrap(),
            b"#!/bin/sh\necho hi"
        );
        // A part that contains the first boundary gets another one.
        let out = combine(&t, b"#cloud-config\n# ==ci-seed-part-boundary-0==\n", None).unwrap();
        assert!(String::from_utf8_lossy(&out).contains("boundary-1=="));
        // Templates that cannot be a part, and extras that are not user-data.
        let mime = Template {
            data: b"Content-Type: multipart/mixed".to_vec(),
            part_type: None,
        };
        assert!(combine(&mime, b"#cloud-config\n", None).is_err());
        assert!(combine(&t, b"hello", None).is_err());
    }
}
