//! `ci-agent query`: find and parse the seed exactly as a run would, and print what the
//! run would apply as one JSON object, without changing anything.
//!
//! Use it to check a seed before a template is cloned, or on a machine to see what the
//! agent sees. It only reads (through [`HostSystem`] at `--root`, default `/`); the only
//! command it may run is FreeBSD's `kenv smbios.system.serial` (recorded, not run, under a
//! `--root` other than `/`), and an `http://` seedfrom on the kernel command line is
//! fetched like a run would.
//!
//! Exit codes: 0 a seed was read; 1 no seed was found; 2 the seed is malformed (the message
//! on stderr names the file and line:column) or the command line is wrong. A seed whose
//! meta-data reads but whose user-data (or one of its keys) does not is still printed,
//! with the problems in `errors` (and on stderr), and exits 2.
//!
//! `--all`, `--list-keys` and `KEY` answer over the instance data instead, like
//! `cloud-init query` ([`crate::agent::instance`]): as root from the seed (`--seed`, else
//! the instance's local copy, else discovery), as any other user from the redacted copy a
//! run wrote. Exit codes then are cloud-init's: 0, or 1 for an unknown key or no data.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde_json::json;
use sha2::Digest;

use crate::formats::userdata::{Script, SeedData};
use crate::platform::cli::{self, Opt, Value as CliValue};
use crate::platform::config::Config;
use crate::platform::host::HostSystem;
use crate::platform::{OsKind, System};

/// `ci-agent query`'s options (the parser below; `platform::cli`).
pub const OPTIONS: &[Opt] = &[
    Opt::flag("all", &['a']),
    Opt::flag("list-keys", &['l']),
    Opt::with("seed", &[], CliValue::Path),
    Opt::with("root", &[], CliValue::Dir),
    Opt::with("config", &[], CliValue::File),
    cli::OS,
    cli::HELP,
];

const USAGE: &str = "\
usage: ci-agent query [-a|--all] [-l|--list-keys] [--seed PATH] [--root DIR]
                      [--config FILE] [--os linux|freebsd] [KEY]

Find the seed like `ci-agent run` does and print what it holds as JSON on stdout:
schema_version, source, instance_id, hostname, meta_data, cloud_config (merged),
scripts, boothooks, includes, files, warnings, errors. Nothing is changed.

With --all, --list-keys or KEY, answer over the instance data as `cloud-init query`
does: KEY is a dotted path (v1.instance_id, v1.local_hostname, ds.meta_data.local-hostname,
userdata). Root reads the seed; other users read the redacted instance data the run
wrote (/run/ci-agent/instance-data-redacted.json), where sensitive keys read
'redacted for non-root user'.

options:
  -a, --all        print the whole instance data
  -l, --list-keys  list the keys of the instance data (or of KEY)
  --seed PATH    read this seed directory, image file or device instead of searching
                 (a path on this machine; under --root when it lies there)
  --root DIR     the machine's root directory (default /)
  --config FILE  agent configuration (default: the OS's path under the root)
  --os OS        linux or freebsd policy (default: this build's OS)
  -h, --help     this help

exit status: 0 seed read, 1 no seed found, 2 malformed seed or usage error;
with --all, --list-keys or KEY: 0 answered, 1 unknown key or no instance data
";

#[derive(Debug, Clone, PartialEq)]
struct QueryArgs {
    all: bool,
    list: bool,
    key: Option<String>,
    seed: Option<PathBuf>,
    root: PathBuf,
    config: Option<PathBuf>,
    os: OsKind,
}

fn parse_args(args: Vec<OsString>) -> Result<Option<QueryArgs>, lexopt::Error> {
    use lexopt::prelude::*;
    let mut a = QueryArgs {
        all: false,
        list: false,
        key: None,
        seed: None,
        root: PathBuf::from("/"),
        config: None,
        os: OsKind::host(),
    };
    let mut p = lexopt::Parser::from_args(args);
    while let Some(arg) = p.next()? {
        match arg {
            Long("all") | Short('a') => a.all = true,
            Long("list-keys") | Short('l') => a.list = true,
            Value(v) if a.key.is_none() => a.key = Some(v.string()?),
            Long("seed") => a.seed = Some(p.value()?.into()),
            Long("root") => a.root = p.value()?.into(),
            Long("config") => a.config = Some(p.value()?.into()),
            Long("os") => a.os = OsKind::from_arg(&mut p)?,
            Short('h') | Long("help") => {
                crate::out!("{USAGE}");
                return Ok(None);
            }
            _ => return Err(arg.unexpected()),
        }
    }
    Ok(Some(a))
}

/// Why a query did not print a seed.
#[derive(Debug)]
pub enum QueryError {
    /// No seed anywhere (exit 1).
    NotFound,
    /// A seed that cannot be read or parsed (exit 2).
    Malformed(anyhow::Error),
}

/// Find and parse the seed; the JSON `ci-agent query` prints.
pub fn query(
    sys: &dyn System,
    config: &Config,
    seed: Option<&Path>,
) -> Result<serde_json::Value, QueryError> {
    let found = crate::datasource::find_seed(sys, config, seed).map_err(QueryError::Malformed)?;
    let seed = found.ok_or(QueryError::NotFound)?;
    let data = crate::formats::userdata::parse_seed(&seed)
        .map_err(|e| QueryError::Malformed(anyhow::Error::new(e)))?;
    Ok(to_json(&data))
}

fn script_json(s: &Script) -> serde_json::Value {
    json!({
        "name": s.name,
        "interpreter": s.interpreter,
        "bytes": s.body.len(),
        // Which script this is, byte for byte (the differential test against cloud-init
        // compares it), without printing a body that may hold secrets.
        "sha256": format!("{:x}", sha2::Sha256::digest(&s.body)),
        "frequency": s.frequency,
    })
}

/// The JSON form of a parsed seed (no script bodies, only their SHA-256; no decoded file
/// contents).
pub fn to_json(d: &SeedData) -> serde_json::Value {
    json!({
        "schema_version": crate::agent::boot::SCHEMA_VERSION,
        "source": d.source,
        "instance_id": d.instance_id,
        "hostname": d.hostname,
        "meta_data": d.meta.raw,
        "cloud_config": d.cloud_config_json,
        "scripts": d.scripts.iter().map(script_json).collect::<Vec<_>>(),
        "boothooks": d.boothooks.iter().map(script_json).collect::<Vec<_>>(),
        "includes": d.includes,
        "files": d.files,
        "warnings": d.warnings,
        "errors": d
            .errors
            .iter()
            .chain(d.cloud_config.errors.iter().map(|k| &k.error))
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
    })
}

/// `ci-agent query`.
pub fn cli(args: Vec<OsString>) -> u8 {
    let a = match parse_args(args) {
        Ok(Some(a)) => a,
        Ok(None) => return crate::exit::OK,
        Err(e) => {
            eprintln!("ci-agent query: {e}\n\n{USAGE}");
            return crate::exit::USAGE;
        }
    };
    crate::agent::logging::init("ci-agent", false);
    let code = run(&a);
    crate::agent::logging::close();
    code
}

fn run(a: &QueryArgs) -> u8 {
    let root = match crate::platform::config::absolute(&a.root) {
        Ok(r) if r.is_dir() => r,
        Ok(r) => {
            eprintln!("ci-agent query: --root {}: not a directory", r.display());
            return crate::exit::USAGE;
        }
        Err(e) => {
            eprintln!("ci-agent query: {e:#}");
            return crate::exit::USAGE;
        }
    };
    let sys = HostSystem::new(&root);
    let config = match crate::platform::config::load_config(&sys, &root, a.config.as_deref(), a.os)
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ci-agent query: {e:#}");
            return crate::exit::USAGE;
        }
    };
    let seed = match a
        .seed
        .as_deref()
        .map(crate::platform::config::absolute)
        .transpose()
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ci-agent query: {e:#}");
            return crate::exit::USAGE;
        }
    };
    if a.all || a.list || a.key.is_some() {
        let root = crate::agent::instance::is_root();
        let data = match seed.as_deref() {
            // A seed named on the command line is the caller's to read.
            Some(s) => crate::agent::instance::load_seed(&sys, &config, s),
            None => crate::agent::instance::load(&sys, &config, root),
        };
        return match data {
            Ok(v) => crate::agent::instance::print(
                "ci-agent query",
                &crate::agent::instance::answer(
                    &v,
                    a.key.as_deref(),
                    a.list,
                    root || seed.is_some(),
                ),
            ),
            Err(e) => {
                eprintln!("ci-agent query: {e:#}");
                crate::exit::FAILED
            }
        };
    }
    match query(&sys, &config, seed.as_deref()) {
        Ok(v) => match serde_json::to_string_pretty(&v) {
            Ok(text) => {
                crate::outln!("{text}");
                // What `run` would reject (unreadable user-data, rejected keys) is in the
                // JSON's `errors` and on stderr; the seed is then malformed (exit 2).
                let errors = v["errors"].as_array().cloned().unwrap_or_default();
                for e in &errors {
                    eprintln!("ci-agent query: {}", e.as_str().unwrap_or_default());
                }
                if errors.is_empty() {
                    crate::exit::OK
                } else {
                    crate::exit::USAGE
                }
            }
            Err(e) => {
                eprintln!("ci-agent query: {e}");
                crate::exit::USAGE
            }
        },
        Err(QueryError::NotFound) => {
            eprintln!("ci-agent query: no seed found");
            crate::exit::FAILED
        }
        Err(QueryError::Malformed(e)) => {
            eprintln!("ci-agent query: {e:#}");
            crate::exit::USAGE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn parses_options() {
        let a = parse_args(args(&["--seed", "s.iso", "--root=/r", "--os", "freebsd"]))
            .unwrap()
            .unwrap();
        assert_eq!(a.seed.as_deref(), Some(Path::new("s.iso")));
        assert_eq!(a.root, Path::new("/r"));
        assert_eq!(a.os, OsKind::FreeBsd);
        assert!(parse_args(args(&["--bogus"])).is_err());
        assert!(parse_args(args(&["--os", "plan9"])).is_err());
        // One KEY; a second operand is an error.
        let a = parse_args(args(&["-l", "v1.instance_id"]))
            .unwrap()
            .unwrap();
        assert_eq!(
            (a.list, a.all, a.key.as_deref()),
            (true, false, Some("v1.instance_id"))
        );
        assert!(parse_args(args(&["--all"])).unwrap().unwrap().all);
        assert!(parse_args(args(&["key", "extra"])).is_err());
    }
}
