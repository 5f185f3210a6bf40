//! `ci-seed [options] OUTPUT USER-DATA [META-DATA]`: one seed, cloud-localds style.
//!
//! The arguments are cloud-localds's (same option letters, same incompatibilities), plus
//! img-clone's seed step (USER-DATA may be a directory copied onto the seed root, and
//! `--config` writes the per-instance `CONFIG` file), plus what both lack: a fresh
//! instance id per seed, validation with the agent's own parser, deterministic bytes, and
//! an atomic write.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::hostkeys;
use super::image::{self, DiskFormat, Filesystem, Output};
use super::metadata::{self, MetaFields};
use super::validate;
use super::CliError;

/// Where an input comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Stdin,
    Path(PathBuf),
}

impl Source {
    fn from_arg(v: OsString) -> Self {
        if v == "-" {
            Source::Stdin
        } else {
            Source::Path(PathBuf::from(v))
        }
    }

    fn shown(&self) -> String {
        match self {
            Source::Stdin => "<stdin>".into(),
            Source::Path(p) => p.display().to_string(),
        }
    }
}

/// Parsed command line of the build command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildArgs {
    pub output: Output,
    pub user_data: Source,
    pub meta_data: Option<PathBuf>,
    pub filesystem: Filesystem,
    pub disk_format: DiskFormat,
    pub hostname: Option<String>,
    pub instance_id: Option<String>,
    pub interfaces: Option<PathBuf>,
    pub dsmode: Option<String>,
    pub network_config: Option<PathBuf>,
    pub vendor_data: Option<PathBuf>,
    pub config: Option<Source>,
    pub validate: bool,
    pub verbose: u32,
    /// `--ip`, `--gateway`, `--dns`, `--mac`, `--search`.
    pub net: super::netcfg::NetArgs,
    /// `--ssh-host-keys[=TYPES]`: host keys to make and put in the seed.
    pub ssh_host_keys: Option<Vec<crate::formats::hostkey::KeyType>>,
    /// `--known-hosts FILE`: where the host learns those keys.
    pub known_hosts: Option<PathBuf>,
}

/// What parsing the command line produced.
#[derive(Debug)]
pub enum Parsed {
    Help,
    Version,
    Build(Box<BuildArgs>),
}

fn value(parser: &mut lexopt::Parser, opt: &str) -> Result<OsString, CliError> {
    parser
        .value()
        .map_err(|e| CliError::Usage(format!("{opt}: {e}")))
}

fn string(parser: &mut lexopt::Parser, opt: &str) -> Result<String, CliError> {
    value(parser, opt)?
        .into_string()
        .map_err(|v| CliError::Usage(format!("{opt} {v:?}: not valid UTF-8")))
}

/// Parse the build command's arguments (everything after `ci-seed`).
pub fn parse_args(args: Vec<OsString>) -> Result<Parsed, CliError> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_args(args);
    let mut positional: Vec<OsString> = Vec::new();
    let mut filesystem = Filesystem::Iso;
    let mut disk_format = DiskFormat::Raw;
    let mut a = BuildArgs {
        output: Output::Stdout,
        user_data: Source::Stdin,
        meta_data: None,
        filesystem,
        disk_format: DiskFormat::Raw,
        hostname: None,
        instance_id: None,
        interfaces: None,
        dsmode: None,
        network_config: None,
        vendor_data: None,
        config: None,
        validate: true,
        verbose: 0,
        net: super::netcfg::NetArgs::default(),
        ssh_host_keys: None,
        known_hosts: None,
    };
    while let Some(arg) = parser.next().map_err(|e| CliError::Usage(e.to_string()))? {
        match arg {
            Short('h') | Long("help") => return Ok(Parsed::Help),
            Long("version") => return Ok(Parsed::Version),
            Short('f') | Long("filesystem") => {
                let v = string(&mut parser, "--filesystem")?;
                filesystem = Filesystem::parse(&v).ok_or_else(|| {
                    CliError::Usage(format!("--filesystem {v:?}: expected iso or vfat"))
                })?;
            }
            Short('d') | Long("disk-format") => {
                let v = string(&mut parser, "--disk-format")?;
                disk_format = DiskFormat::parse(&v).map_err(CliError::Usage)?;
            }
            Short('H') | Long("hostname") => a.hostname = Some(string(&mut parser, "--hostname")?),
            // cloud-localds's -i is --interfaces; the instance id has only -I.
            Short('I') | Long("instance-id") => {
                a.instance_id = Some(string(&mut parser, "--instance-id")?)
            }
            Short('i') | Long("interfaces") => {
                a.interfaces = Some(value(&mut parser, "--interfaces")?.into())
            }
            // cloud-localds's getopt takes -o/--output but its loop drops the value: an
            // image would silently go to the first positional argument. Say so instead.
            Short('o') | Long("output") => {
                let v = value(&mut parser, "--output")?;
                return Err(CliError::Usage(format!(
                    "--output {}: not supported (cloud-localds ignores it too); give OUTPUT as the first argument",
                    v.to_string_lossy()
                )));
            }
            Short('m') | Long("dsmode") => {
                let v = string(&mut parser, "--dsmode")?;
                if v != "local" && v != "net" {
                    return Err(CliError::Usage(format!(
                        "--dsmode {v:?}: expected local or net"
                    )));
                }
                a.dsmode = Some(v);
            }
            Short('N') | Long("network-config") => {
                a.network_config = Some(value(&mut parser, "--network-config")?.into())
            }
            Short('V') | Long("vendor-data") => {
                a.vendor_data = Some(value(&mut parser, "--vendor-data")?.into())
            }
            Long("config") => a.config = Some(Source::from_arg(value(&mut parser, "--config")?)),
            Long("ssh-host-keys") => {
                let v = parser
                    .optional_value()
                    .map(|v| v.to_string_lossy().into_owned());
                a.ssh_host_keys =
                    Some(hostkeys::parse_types(v.as_deref()).map_err(CliError::Usage)?);
            }
            Long("known-hosts") => {
                a.known_hosts = Some(value(&mut parser, "--known-hosts")?.into())
            }
            Long("no-validate") => a.validate = false,
            Short('v') | Long("verbose") => a.verbose += 1,
            Long(k @ ("ip" | "gateway" | "dns" | "mac" | "search")) => {
                let k = k.to_string();
                let v = string(&mut parser, &format!("--{k}"))?;
                a.net.set(&k, &v);
            }
            Value(v) => positional.push(v),
            other => return Err(CliError::Usage(other.unexpected().to_string())),
        }
    }
    a.filesystem = filesystem;
    a.disk_format = disk_format;
    let mut pos = positional.into_iter();
    let (Some(output), Some(user_data)) = (pos.next(), pos.next()) else {
        return Err(CliError::Usage("must provide OUTPUT and USER-DATA".into()));
    };
    a.meta_data = pos.next().map(PathBuf::from);
    if let Some(extra) = pos.next() {
        return Err(CliError::Usage(format!(
            "unexpected argument {extra:?} after OUTPUT USER-DATA META-DATA"
        )));
    }
    a.output = if output == "-" {
        Output::Stdout
    } else {
        Output::File(PathBuf::from(output))
    };
    a.user_data = Source::from_arg(user_data);
    if let Some(md) = &a.meta_data {
        let clash = meta_options(&a);
        if !clash.is_empty() {
            return Err(CliError::Usage(format!(
                "META-DATA {} is incompatible with {} (they write meta-data)",
                md.display(),
                clash.join(", ")
            )));
        }
    }
    if a.known_hosts.is_some() && a.ssh_host_keys.is_none() {
        return Err(CliError::Usage(
            "--known-hosts needs --ssh-host-keys (the keys it records)".into(),
        ));
    }
    if a.user_data == Source::Stdin && a.config == Some(Source::Stdin) {
        return Err(CliError::Usage(
            "USER-DATA and --config cannot both read standard input ('-')".into(),
        ));
    }
    if !a.net.is_empty() {
        if a.network_config.is_some() {
            return Err(CliError::Usage(
                "--network-config and --ip/--gateway/--dns/--mac/--search both write network-config".into(),
            ));
        }
        a.net.render().map_err(CliError::Usage)?;
    }
    if let Some(iid) = &a.instance_id {
        check_instance_id(iid).map_err(|m| CliError::Usage(format!("--instance-id: {m}")))?;
    }
    if let Some(h) = &a.hostname {
        if a.validate {
            check_hostname(h).map_err(|m| CliError::Usage(format!("--hostname {h:?}: {m}")))?;
        }
    }
    Ok(Parsed::Build(Box::new(a)))
}

/// The options that write meta-data themselves (so conflict with a META-DATA file).
fn meta_options(a: &BuildArgs) -> Vec<&'static str> {
    let mut v = Vec::new();
    if a.hostname.is_some() {
        v.push("--hostname");
    }
    if a.instance_id.is_some() {
        v.push("--instance-id");
    }
    if a.interfaces.is_some() {
        v.push("--interfaces");
    }
    if a.dsmode.is_some() {
        v.push("--dsmode");
    }
    v
}

/// An instance id names a directory on the guest (cloud-init's `instances/<iid>`), so it
/// must be one printable path component.
pub fn check_instance_id(iid: &str) -> Result<(), String> {
    if iid.is_empty() {
        return Err("empty".into());
    }
    if iid.len() > 255 {
        return Err(format!("{} bytes, at most 255", iid.len()));
    }
    if iid == "." || iid == ".." || iid.contains('/') {
        return Err(format!("{iid:?} is not a single path component"));
    }
    if iid.chars().any(char::is_control) {
        return Err(format!("{iid:?} contains control characters"));
    }
    Ok(())
}

/// RFC 1123 host name: dot-separated labels of letters, digits and `-`, 1–63 bytes each,
/// not starting or ending with `-`, at most 253 bytes in all (a trailing dot is allowed).
pub fn check_hostname(h: &str) -> Result<(), String> {
    let name = h.strip_suffix('.').unwrap_or(h);
    if name.is_empty() {
        return Err("empty".into());
    }
    if name.len() > 253 {
        return Err(format!("{} bytes, at most 253", name.len()));
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err("each dot-separated label must be 1 to 63 characters".into());
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err("only letters, digits, '-' and '.' are allowed (RFC 1123)".into());
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("a label cannot start or end with '-'".into());
        }
    }
    Ok(())
}

/// The seed's files and how the user named each one.
#[derive(Debug, Default, Clone)]
pub struct Files {
    pub files: BTreeMap<String, Vec<u8>>,
    pub shown: BTreeMap<String, String>,
}

impl Files {
    fn add(&mut self, name: &str, bytes: Vec<u8>, shown: String) -> Result<(), CliError> {
        if let Some(prev) = self.shown.get(name) {
            return Err(CliError::Usage(format!(
                "{name} given twice: {prev} and {shown}"
            )));
        }
        self.files.insert(name.to_string(), bytes);
        self.shown.insert(name.to_string(), shown);
        Ok(())
    }

    /// The user's name for a seed file (for messages).
    pub fn display(&self, name: &str) -> String {
        self.shown
            .get(name)
            .cloned()
            .unwrap_or_else(|| name.to_string())
    }
}

/// Upper bounds on a directory given as USER-DATA: depth and number of entries.
const MAX_DEPTH: usize = 16;
const MAX_ENTRIES: usize = 10_000;

fn read_stdin() -> Result<Vec<u8>, CliError> {
    let mut buf = Vec::new();
    std::io::stdin()
        .lock()
        .read_to_end(&mut buf)
        .context("reading standard input")
        .map_err(CliError::Failed)?;
    Ok(buf)
}

fn read_file(path: &Path) -> Result<Vec<u8>, CliError> {
    std::fs::read(path)
        .with_context(|| format!("reading {}", path.display()))
        .map_err(CliError::Failed)
}

fn read_source(src: &Source) -> Result<Vec<u8>, CliError> {
    match src {
        Source::Stdin => read_stdin(),
        Source::Path(p) => read_file(p),
    }
}

/// Copy a directory tree onto the seed root (img-clone's `.cloud-init/`), names joined
/// with `/`, in sorted order.
fn add_dir(files: &mut Files, root: &Path) -> Result<(), CliError> {
    let mut stack = vec![(root.to_path_buf(), String::new(), 0usize)];
    let mut seen = 0usize;
    while let Some((dir, prefix, depth)) = stack.pop() {
        let entries = std::fs::read_dir(&dir)
            .with_context(|| format!("reading directory {}", dir.display()))
            .map_err(CliError::Failed)?;
        for entry in entries {
            let entry = entry
                .with_context(|| format!("reading directory {}", dir.display()))
                .map_err(CliError::Failed)?;
            seen += 1;
            if seen > MAX_ENTRIES {
                return Err(CliError::Usage(format!(
                    "{}: more than {MAX_ENTRIES} entries; a seed is not the place for that",
                    root.display()
                )));
            }
            let path = entry.path();
            let name = entry.file_name().into_string().map_err(|n| {
                CliError::Usage(format!("{}: file name {n:?} is not UTF-8", dir.display()))
            })?;
            let rel = format!("{prefix}{name}");
            // Follow symlinks (like copying the tree would), but never into a directory
            // deeper than MAX_DEPTH, which also stops symlink loops.
            let meta = std::fs::metadata(&path)
                .with_context(|| format!("reading {}", path.display()))
                .map_err(CliError::Failed)?;
            if meta.is_dir() {
                if depth + 1 >= MAX_DEPTH {
                    return Err(CliError::Usage(format!(
                        "{}: nested deeper than {MAX_DEPTH} directories (a symlink loop?)",
                        path.display()
                    )));
                }
                stack.push((path, format!("{rel}/"), depth + 1));
            } else if meta.is_file() {
                let bytes = read_file(&path)?;
                files.add(&rel, bytes, path.display().to_string())?;
            } else {
                return Err(CliError::Usage(format!(
                    "{}: not a regular file or directory",
                    path.display()
                )));
            }
        }
    }
    Ok(())
}

/// Gather the seed's files from the arguments (reads every input, writes nothing).
pub fn gather(a: &BuildArgs) -> Result<Files, CliError> {
    let mut files = Files::default();
    let mut from_dir = false;
    match &a.user_data {
        Source::Path(p) if p.is_dir() => {
            add_dir(&mut files, p)?;
            from_dir = true;
            if !files.files.contains_key("user-data") {
                // cloud-init wants the file; an empty one means "nothing to do".
                files.add(
                    "user-data",
                    Vec::new(),
                    format!("{}/user-data", p.display()),
                )?;
            }
        }
        src => {
            let bytes = read_source(src)?;
            files.add("user-data", bytes, src.shown())?;
        }
    }
    if from_dir {
        if let Some(shown) = files.shown.get("meta-data") {
            let clash = meta_options(a);
            if !clash.is_empty() {
                return Err(CliError::Usage(format!(
                    "{shown} is incompatible with {} (they write meta-data)",
                    clash.join(", ")
                )));
            }
        }
    }
    if let Some(md) = &a.meta_data {
        files.add("meta-data", read_file(md)?, md.display().to_string())?;
    }
    if !files.files.contains_key("meta-data") {
        let interfaces = match &a.interfaces {
            Some(p) => Some(String::from_utf8(read_file(p)?).map_err(|_| {
                CliError::Usage(format!("--interfaces {}: not UTF-8 text", p.display()))
            })?),
            None => None,
        };
        let fields = MetaFields {
            instance_id: a
                .instance_id
                .clone()
                .unwrap_or_else(metadata::new_instance_id),
            hostname: a.hostname.clone(),
            interfaces,
            dsmode: a.dsmode.clone(),
        };
        files.add(
            "meta-data",
            metadata::render(&fields),
            "meta-data (generated)".into(),
        )?;
    }
    if let Some(p) = &a.network_config {
        files.add("network-config", read_file(p)?, p.display().to_string())?;
    }
    if !a.net.is_empty() {
        let text = a.net.render().map_err(CliError::Usage)?;
        files.add(
            "network-config",
            text.into_bytes(),
            "network-config (from --ip)".into(),
        )?;
    }
    if let Some(p) = &a.vendor_data {
        files.add("vendor-data", read_file(p)?, p.display().to_string())?;
    }
    if let Some(src) = &a.config {
        files.add("CONFIG", read_source(src)?, src.shown())?;
    }
    Ok(files)
}

/// Run the build command.
pub fn run(a: &BuildArgs) -> Result<(), CliError> {
    let mtime = image::source_date_epoch().map_err(CliError::Usage)?;
    let mut files = gather(a)?;
    let keys = match &a.ssh_host_keys {
        Some(types) => Some(add_host_keys(a, types, &mut files)?),
        None => None,
    };
    if a.validate {
        let report = validate::check_seed(&files.files, &|n| files.display(n));
        for w in &report.warnings {
            eprintln!("{w}");
        }
        if !report.errors.is_empty() {
            let lines: Vec<String> = report.errors.iter().map(|e| e.to_string()).collect();
            return Err(CliError::Input(lines));
        }
    }
    let bytes = image::render(&files.files, a.filesystem, mtime).map_err(CliError::Failed)?;
    image::emit(&bytes, &a.output, &a.disk_format).map_err(CliError::Failed)?;
    if let (Some((host, keys)), Some(path)) = (&keys, &a.known_hosts) {
        hostkeys::write_known_hosts(path, &[(host.clone(), keys)]).map_err(CliError::Failed)?;
    }
    if a.verbose > 0 {
        let out = match &a.output {
            Output::Stdout => "-".to_string(),
            Output::File(p) => p.display().to_string(),
        };
        let fs = match a.filesystem {
            Filesystem::Iso => "iso9660",
            Filesystem::Vfat => "vfat",
        };
        let names: Vec<&str> = files.files.keys().map(String::as_str).collect();
        eprintln!(
            "wrote {out} with filesystem={fs} ({} bytes): {}",
            bytes.len(),
            names.join(" ")
        );
    }
    Ok(())
}

/// Make the clone's host keys and add them to its user-data (`--ssh-host-keys`); the
/// images written from now on are private. Returns the `known_hosts` host field and keys.
fn add_host_keys(
    a: &BuildArgs,
    types: &[crate::formats::hostkey::KeyType],
    files: &mut Files,
) -> Result<(String, Vec<crate::formats::hostkey::HostKey>), CliError> {
    let from_meta = files.files.get("meta-data").and_then(|md| {
        crate::formats::userdata::metadata::MetaData::parse("meta-data", md)
            .ok()?
            .local_hostname
    });
    let host = a.hostname.clone().or(from_meta);
    if a.known_hosts.is_some() && host.is_none() {
        return Err(CliError::Usage(
            "--known-hosts needs the clone's name: give -H HOSTNAME (or local-hostname in META-DATA)"
                .into(),
        ));
    }
    let keys = hostkeys::generate(types, host.as_deref())?;
    let part = hostkeys::cloud_config(&keys)?;
    let ud = files
        .files
        .get("user-data")
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let combined = hostkeys::add_to_user_data(ud, &part)
        .map_err(|m| CliError::Usage(format!("{}: {m}", files.display("user-data"))))?;
    files.files.insert("user-data".into(), combined);
    image::private_outputs();
    let field = hostkeys::host_field(
        host.as_deref().unwrap_or("clone"),
        a.net.ip.first().map(String::as_str),
    );
    Ok((field, keys))
}

impl From<anyhow::Error> for CliError {
    fn from(e: anyhow::Error) -> Self {
        CliError::Failed(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    fn parse(v: &[&str]) -> Result<BuildArgs, CliError> {
        match parse_args(args(v))? {
            Parsed::Build(b) => Ok(*b),
            other => panic!("{other:?}"),
        }
    }

    fn usage(v: &[&str]) -> String {
        match parse(v) {
            Err(CliError::Usage(m)) => m,
            other => panic!("expected a usage error, got {other:?}"),
        }
    }

    #[test]
    fn cloud_localds_arguments() {
        let a = parse(&[
            "-f", "vfat", "-d", "raw", "-H", "vm1", "-N", "nc", "-V", "vd", "-m", "local",
            "out.img", "ud",
        ])
        .unwrap();
        assert_eq!(a.filesystem, Filesystem::Vfat);
        assert_eq!(a.hostname.as_deref(), Some("vm1"));
        assert_eq!(a.dsmode.as_deref(), Some("local"));
        assert_eq!(a.network_config, Some(PathBuf::from("nc")));
        assert_eq!(a.vendor_data, Some(PathBuf::from("vd")));
        assert_eq!(a.output, Output::File("out.img".into()));
        assert_eq!(a.user_data, Source::Path("ud".into()));
        assert_eq!(a.meta_data, None);
        // Options after the positionals, long forms with '=', stdin/stdout.
        let a = parse(&["-", "-", "--filesystem=iso9660", "--hostname=h"]).unwrap();
        assert_eq!(a.output, Output::Stdout);
        assert_eq!(a.user_data, Source::Stdin);
        assert_eq!(a.filesystem, Filesystem::Iso);
    }

    #[test]
    fn network_shorthand() {
        let a = parse(&[
            "--ip",
            "10.0.0.7/24",
            "--gateway",
            "10.0.0.1",
            "--dns",
            "1.1.1.1,9.9.9.9",
            "--search",
            "lab",
            "o",
            "u",
        ])
        .unwrap();
        assert_eq!(a.net.ip, vec!["10.0.0.7/24"]);
        assert_eq!(a.net.dns.len(), 2);
        assert!(usage(&["--ip", "10.0.0.7/24", "-N", "nc", "o", "u"])
            .contains("both write network-config"));
        assert!(
            usage(&["--ip", "10.0.0.7/24", "--gateway", "10.9.0.1", "o", "u"])
                .contains("--gateway 10.9.0.1 is outside every subnet")
        );
    }

    #[test]
    fn usage_errors_name_the_problem() {
        assert!(usage(&["out"]).contains("OUTPUT and USER-DATA"));
        assert!(usage(&["o", "u", "m", "x"]).contains("unexpected argument"));
        let m = usage(&["-H", "h", "-m", "net", "o", "u", "md"]);
        assert!(
            m.contains("incompatible") && m.contains("--hostname") && m.contains("--dsmode"),
            "{m}"
        );
        assert!(usage(&["-i", "ifaces", "o", "u", "md"]).contains("--interfaces"));
        assert!(usage(&["-o", "x", "o", "u"]).contains("first argument"));
        assert!(usage(&["-I", "i-1", "o", "u", "md"]).contains("--instance-id"));
        assert!(usage(&["--interfaces", "ifaces", "o", "u", "md"]).contains("--interfaces"));
        assert!(usage(&["-f", "ext4", "o", "u"]).contains("ext4"));
        assert!(usage(&["-m", "remote", "o", "u"]).contains("local or net"));
        assert!(usage(&["-d", "tar", "o", "u"]).contains("tar"));
        assert!(usage(&["--config", "-", "o", "-"]).contains("standard input"));
        assert!(usage(&["-I", "a/b", "o", "u"]).contains("path component"));
        assert!(usage(&["-H", "bad host", "o", "u"]).contains("RFC 1123"));
        assert!(usage(&["--bogus", "o", "u"]).contains("bogus"));
        // --no-validate lets an odd hostname through (it is still quoted safely).
        assert!(parse(&["--no-validate", "-H", "bad host", "o", "u"]).is_ok());
    }

    #[test]
    fn hostnames() {
        assert!(check_hostname("vm-1.example.org").is_ok());
        assert!(check_hostname("vm1.").is_ok());
        assert!(check_hostname("").is_err());
        assert!(check_hostname("-a").is_err());
        assert!(check_hostname("a..b").is_err());
        assert!(check_hostname(&"a".repeat(64)).is_err());
        assert!(check_hostname("a\"b").is_err());
    }
}
