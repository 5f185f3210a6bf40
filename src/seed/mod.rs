//! `ci-seed`, the host side: build NoCloud seeds (`cidata` ISO9660 or vfat images) for
//! clones of a template, one at a time like cloud-localds and img-clone, or a fleet at once
//! from a manifest, and check seed files with the agent's own parser.
//!
//! - [`build`]: `ci-seed [options] OUTPUT USER-DATA [META-DATA]` (cloud-localds's CLI).
//! - [`batch`]: `ci-seed batch MANIFEST --out DIR` (one seed per manifest row).
//! - [`validate`]: `ci-seed validate FILE…`, and the pre-write check of the other two.
//! - [`metadata`]: the generated meta-data (fresh instance id, escaped values).
//! - [`netcfg`]: `--ip/--gateway/--dns/--mac/--search` (and the batch columns) → a
//!   validated v2 network-config.
//! - [`image`]: file system bytes and the atomic write.
//!
//! - [`serve`]: `ci-seed serve` (bootstrap scripts and `seedfrom` trees over HTTP).

pub mod batch;
pub mod build;
pub mod hostkeys;
pub mod image;
pub mod metadata;
pub mod netcfg;
pub mod parts;
pub mod serve;
pub mod validate;

use std::ffi::OsString;

use crate::platform::cli::{self, Command, Opt, Value as CliValue};

pub use image::{DiskFormat, Filesystem, Output};
pub use metadata::{new_instance_id, MetaFields};

/// How a ci-seed command failed; decides the exit code in one place.
#[derive(Debug)]
pub enum CliError {
    /// Wrong arguments: exit 2, with a hint to `--help`.
    Usage(String),
    /// Malformed input (a parser rejected a file, a bad manifest row): exit 2, each line
    /// `file:line:col: message`.
    Input(Vec<String>),
    /// The work failed (I/O, an external converter): exit 1.
    Failed(anyhow::Error),
}

impl CliError {
    /// Print the error for command `cmd` (`ci-seed`, `ci-seed batch`) and return the exit code.
    pub fn report(&self, cmd: &str) -> u8 {
        match self {
            CliError::Usage(m) => {
                eprintln!("{cmd}: {m}\nTry '{cmd} --help'.");
                crate::exit::USAGE
            }
            CliError::Input(lines) => {
                for l in lines {
                    eprintln!("{l}");
                }
                eprintln!("{cmd}: invalid input, nothing written");
                crate::exit::USAGE
            }
            CliError::Failed(e) => {
                eprintln!("{cmd}: {e:#}");
                crate::exit::FAILED
            }
        }
    }
}

/// `ci-seed`'s own options (building a seed; the parser is in `build`).
pub const BUILD_OPTIONS: &[Opt] = &[
    cli::HELP,
    Opt::flag("version", &[]),
    Opt::with("filesystem", &['f'], CliValue::Choice(&["iso", "vfat"])),
    Opt::with("disk-format", &['d'], CliValue::Word("FORMAT")),
    Opt::with("hostname", &['H'], CliValue::Word("NAME")),
    Opt::with("instance-id", &['I'], CliValue::Word("ID")),
    Opt::with("interfaces", &['i'], CliValue::File),
    // Refused with a reason (cloud-localds accepts it and drops the value).
    Opt::with("output", &['o'], CliValue::File),
    Opt::with("dsmode", &['m'], CliValue::Choice(&["local", "net"])),
    Opt::with("network-config", &['N'], CliValue::File),
    Opt::with("ip", &[], CliValue::Word("A/P[,A/P]")),
    Opt::with("gateway", &[], CliValue::Word("G[,G6]")),
    Opt::with("dns", &[], CliValue::Word("A[,A]")),
    Opt::with("search", &[], CliValue::Word("D[,D]")),
    Opt::with("mac", &[], CliValue::Word("MAC")),
    Opt::with("vendor-data", &['V'], CliValue::File),
    Opt::with("config", &[], CliValue::File),
    Opt::flag("no-validate", &[]),
    // Also `--ssh-host-keys=TYPES`.
    Opt::flag("ssh-host-keys", &[]),
    Opt::with("known-hosts", &[], CliValue::File),
    Opt::flag("verbose", &['v']),
];

/// Every `ci-seed` command with its options (the first: the binary's own).
pub const COMMANDS: &[Command] = &[
    Command {
        name: "",
        opts: BUILD_OPTIONS,
        operands: "OUTPUT USER-DATA [META-DATA]",
    },
    Command {
        name: "batch",
        opts: batch::OPTIONS,
        operands: "MANIFEST",
    },
    Command {
        name: "validate",
        opts: validate::OPTIONS,
        operands: "FILE...",
    },
    Command {
        name: "serve",
        opts: serve::OPTIONS,
        operands: "[SCRIPT]",
    },
];

/// `ci-seed --help`.
pub const HELP: &str = "\
Usage: ci-seed [options] OUTPUT USER-DATA [META-DATA]
       ci-seed batch MANIFEST --out DIR [options]     (ci-seed batch --help)
       ci-seed validate FILE...                       (ci-seed validate --help)
       ci-seed serve ...                              (ci-seed serve --help)

Build a NoCloud seed image (volume label 'cidata') for a clone of a VM template.
A drop-in for cloud-localds, plus img-clone's seed step, with no external tools.

OUTPUT is the image file ('-' writes it to standard output). USER-DATA is a file,
'-' (standard input), or a directory whose whole tree is copied onto the seed root
(img-clone). Without META-DATA (and without a meta-data file in that directory),
meta-data is generated with a fresh instance-id (iid-<random UUID>), so every seed
is a new instance; -H, -I, -i and -m add to it.

Options:
  -f, --filesystem F      iso (iso9660, default: Rock Ridge + Joliet) or vfat
  -d, --disk-format D     raw (default), or any qemu-img output format (qcow2,
                          vmdk, ...), converted with 'qemu-img convert'; the tar
                          formats of cloud-localds are not supported
  -H, --hostname H        local-hostname in the generated meta-data (RFC 1123)
  -I, --instance-id ID    instance-id in the generated meta-data (default: fresh)
  -i, --interfaces FILE   'interfaces' (Debian ifupdown text) in the meta-data,
                          as cloud-localds -i writes it
  -m, --dsmode M          'dsmode' in the meta-data: local or net
  -N, --network-config F  network-config file for the seed
      --ip A/P[,A/P]      static address(es) with prefix: writes a version 2
                          network-config (instead of -N), checked by ci-agent
      --gateway G[,G6]    default gateway (one IPv4, one IPv6)
      --dns A[,A]         name servers
      --search D[,D]      DNS search domains
      --mac M             match the NIC by MAC (default: the first NIC named e*;
                          FreeBSD's vtnet0 needs --mac)
  -V, --vendor-data F     vendor-data file for the seed
      --config F          per-instance file CONFIG at the seed root ('-': stdin)
      --ssh-host-keys[=TYPES]
                          make the clone's SSH host keys here (TYPES: a comma
                          list of ed25519, ecdsa, rsa; default ed25519,ecdsa) and
                          put them in the seed as ssh_keys (cloud-init applies
                          them too); the image is then written 0600: it holds
                          private keys, detach it after the first boot
      --known-hosts FILE  with --ssh-host-keys: put the clone's keys in this
                          known_hosts file as 'HOSTNAME[,IP] KEY' lines (-H, and
                          the address of --ip), replacing the host's old lines
      --no-validate       write even if ci-agent's parser rejects user-data,
                          vendor-data or meta-data (and allow any -H value)
  -v, --verbose           say what was written
  -h, --help              show this help
      --version           show the version

-H, -I, -i and -m write meta-data, so they cannot be combined with META-DATA.
Every cloud-localds option means the same here; its tar disk formats and -o/--output
(which cloud-localds accepts and ignores) fail with a message instead.
Before writing, user-data, vendor-data, meta-data and network-config are checked
with ci-agent's own parser; problems are printed as FILE:LINE:COLUMN: MESSAGE and
nothing is written. The image replaces OUTPUT atomically (temp file, fsync,
rename). Timestamps in an ISO image are SOURCE_DATE_EPOCH, or 0 when unset (a
vfat image's are always 1980-01-01, the FAT epoch), so the same inputs and
instance-id give byte-identical images.

Equivalents:
  cloud-localds / img-clone                     ci-seed
  ----------------------------------------------------------------------------
  cloud-localds seed.iso ud                     ci-seed seed.iso ud
    (instance-id always iid-local01)              (fresh iid-<uuid> per seed)
  cloud-localds seed.iso ud md                  ci-seed seed.iso ud md
  cloud-localds -f vfat seed.img ud             ci-seed -f vfat seed.img ud
  cloud-localds -d qcow2 seed.qcow2 ud          ci-seed -d qcow2 seed.qcow2 ud
  cloud-localds -H vm1 -N nc -V vd seed.iso ud  ci-seed -H vm1 -N nc -V vd seed.iso ud
  cloud-localds -m local -i ifaces seed.iso ud  ci-seed -m local -i ifaces seed.iso ud
  (echo instance-id: X >md; cloud-localds ...)  ci-seed -I X seed.iso ud
  cloud-localds - ud > seed.iso                 ci-seed - ud > seed.iso
  img-clone tpl vm ud                           ci-seed seed.iso ud
  img-clone tpl vm - < ud                       ci-seed seed.iso -  < ud
  img-clone tpl vm DIR                          ci-seed seed.iso DIR
  img-clone tpl vm ud CONFIG                    ci-seed --config CONFIG seed.iso ud
  img-clone tpl vm ud -                         ci-seed --config - seed.iso ud
  (a loop of the above, ~40 ms each)            ci-seed batch fleet.csv --out seeds/
  (none)                                        ci-seed validate user-data meta-data
  (img-clone also copies the template disk; ci-seed only builds the seed.)

Exit status: 0 written, 1 failed (I/O, qemu-img), 2 usage error or invalid input.
";

/// `ci-seed [options] OUTPUT USER-DATA [META-DATA]`.
pub fn cli_build(args: Vec<OsString>) -> u8 {
    let parsed = match build::parse_args(args) {
        Ok(p) => p,
        Err(e) => return e.report("ci-seed"),
    };
    match parsed {
        build::Parsed::Help => {
            crate::out!("{HELP}");
            crate::exit::OK
        }
        build::Parsed::Version => {
            crate::out!("{}", crate::platform::build_info::version_text("ci-seed"));
            crate::exit::OK
        }
        build::Parsed::Build(a) => match build::run(&a) {
            Ok(()) => crate::exit::OK,
            Err(e) => e.report("ci-seed"),
        },
    }
}

/// `ci-seed validate FILE…`.
pub fn cli_validate(args: Vec<OsString>) -> u8 {
    validate::cli(args)
}

/// `ci-seed batch MANIFEST --out DIR …`.
pub fn cli_batch(args: Vec<OsString>) -> u8 {
    batch::cli(args)
}
