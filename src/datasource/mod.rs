//! Finding a seed: where the agent's input comes from.
//!
//! [`find_seed`] looks, in order:
//! 1. at `--seed PATH` when given: a directory (read like a seed directory), or a block
//!    device / image file (probed as ISO9660, then vfat, and read whatever its label);
//! 2. at `ds=nocloud;…` on the kernel command line (`/proc/cmdline`) and in the SMBIOS
//!    system serial (`/sys/class/dmi/id/product_serial` on Linux, `kenv
//!    smbios.system.serial` on FreeBSD), the command line winning field by field
//!    ([`cmdline`]): `s=/dir/` or `s=file:///dir/` loads that directory; `h=`/`i=` become
//!    the seed's hostname / instance-id overrides; an `http(s)://` seedfrom is reported as
//!    [`Found::Remote`] for the HTTP datasource to fetch;
//! 3. at the block devices, for a volume labelled `cidata` in any case ([`nocloud`]),
//!    polling up to `config.seed_wait_secs` (devices may appear late: SCSI scans are
//!    asynchronous).
//!
//! When only the command line says `ds=nocloud` (no seedfrom, no device), the seed is the
//! command line itself: no files, its `h=`/`i=` overrides (cloud-init does the same).

pub mod bootstrap;
pub mod cmdline;
pub mod http;
pub mod nocloud;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;

use crate::formats::userdata::{Seed, SeedData};
use crate::platform::config::Config;
use crate::platform::{Cmd, FileKind, OsKind, System};

pub use cmdline::{NocloudArgs, SeedFrom};

/// How long one device-scan pass waits before the next while polling.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// What discovery found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// A seed read from local storage (or the command line alone).
    Seed(Seed),
    /// `ds=nocloud;s=http(s)://…`: the HTTP datasource fetches `url` + `meta-data`,
    /// `user-data`, `vendor-data` and applies the overrides to the result.
    Remote {
        url: String,
        hostname_override: Option<String>,
        instance_id_override: Option<String>,
    },
}

/// Find the NoCloud seed: `seed` (device, image or directory) when given, else the kernel
/// command line / SMBIOS `ds=nocloud`, else a scan of block devices for a `cidata` label.
/// `Ok(None)` when there is none.
///
/// An `http(s)://` seedfrom is fetched with [`http::fetch_nocloud`] (limits from
/// `bootstrap.*`), then the command line's `h=`/`i=` overrides are applied. Callers that
/// want to decide themselves use [`discover`], which returns it as [`Found::Remote`].
pub fn find_seed(
    sys: &dyn System,
    config: &Config,
    seed: Option<&Path>,
) -> anyhow::Result<Option<Seed>> {
    let found = find_seed_as_named(sys, config, seed)?;
    // `user_data`, `USER_DATA;1`, … read as `user-data` everywhere after this (the parse
    // warns about a seed with neither).
    Ok(found.map(|mut s| {
        let _ = s.canonical_names();
        s
    }))
}

fn find_seed_as_named(
    sys: &dyn System,
    config: &Config,
    seed: Option<&Path>,
) -> anyhow::Result<Option<Seed>> {
    match discover(sys, config, seed)? {
        None => Ok(None),
        Some(Found::Seed(s)) => Ok(Some(s)),
        Some(Found::Remote {
            url,
            hostname_override,
            instance_id_override,
        }) => {
            let limits = http::HttpLimits::from_bootstrap(&config.bootstrap);
            let mut s = http::fetch_nocloud(&limits, &url)
                .with_context(|| format!("ds=nocloud seedfrom {url}"))?;
            if hostname_override.is_some() {
                s.hostname_override = hostname_override;
            }
            if instance_id_override.is_some() {
                s.instance_id_override = instance_id_override;
            }
            Ok(Some(s))
        }
    }
}

/// Fetch the seed's `#include` URLs (HTTP limits from `bootstrap.*`) and parse the seed
/// again with their bodies after `user-data`. Like cloud-init, a URL that cannot be
/// fetched is a warning and the rest goes on; an included body that does not parse is a
/// warning too, and the seed is applied without the included parts. Nested `#include`s
/// (inside fetched bodies) are not followed.
pub fn resolve_includes(config: &Config, seed: &Seed, data: SeedData) -> SeedData {
    let limits = http::HttpLimits::from_bootstrap(&config.bootstrap);
    let (bodies, problems) = http::fetch_includes_lenient(&data.includes, &limits);
    let mut warnings: Vec<String> = problems
        .into_iter()
        .map(|p| format!("user-data: #include {p}; skipped"))
        .collect();
    if bodies.is_empty() {
        let mut data = data;
        data.warnings.extend(warnings);
        return data;
    }
    let limits = crate::formats::userdata::Limits::default();
    match crate::formats::userdata::parse_seed_full(seed, &limits, &bodies, &data.sys_info) {
        Ok(mut d) => {
            for url in &d.includes {
                if !data.includes.contains(url) {
                    warnings.push(format!(
                        "user-data: #include {url} inside an included body is not followed"
                    ));
                }
            }
            d.warnings.extend(warnings);
            d
        }
        Err(e) => {
            let mut data = data;
            data.warnings
                .push(format!("included user-data ignored: {e}"));
            data.warnings.extend(warnings);
            data
        }
    }
}

/// [`find_seed`], with HTTP seedfroms returned as [`Found::Remote`] instead of an error.
pub fn discover(
    sys: &dyn System,
    config: &Config,
    seed: Option<&Path>,
) -> anyhow::Result<Option<Found>> {
    let limits = nocloud::SeedLimits::of(config);
    if let Some(path) = seed {
        return load_seed_arg(sys, path, limits).map(|s| Some(Found::Seed(s)));
    }
    let args = nocloud_args(sys, config.os);
    if let Some(a) = &args {
        for w in &a.warnings {
            log::warn!("{w}");
        }
        match &a.seedfrom {
            Some(SeedFrom::Url(url)) => {
                return Ok(Some(Found::Remote {
                    url: url.clone(),
                    hostname_override: a.hostname.clone(),
                    instance_id_override: a.instance_id.clone(),
                }))
            }
            Some(SeedFrom::Dir(dir)) => {
                let mut s = nocloud::read_dir(sys, dir, limits)
                    .with_context(|| format!("ds=nocloud seedfrom {}", dir.display()))?;
                apply_overrides(&mut s, a);
                return Ok(Some(Found::Seed(s)));
            }
            None => {}
        }
    }
    let polls = config.seed_wait_secs.saturating_mul(1000) / POLL_INTERVAL.as_millis() as u64;
    let mut found = None;
    for attempt in 0..=polls {
        found = match config.os {
            OsKind::Linux => nocloud::scan_linux(sys),
            OsKind::FreeBsd => nocloud::scan_freebsd(sys),
        };
        if found.is_some() || attempt == polls {
            break;
        }
        sys.sleep(POLL_INTERVAL);
    }
    match (found, args) {
        (Some((dev, kind)), args) => {
            let mut s = nocloud::read_volume(sys, &dev, kind, limits)?;
            if let Some(a) = &args {
                apply_overrides(&mut s, a);
            }
            Ok(Some(Found::Seed(s)))
        }
        (None, Some(a)) => {
            let mut s = Seed {
                source: "cmdline:ds=nocloud".into(),
                ..Seed::default()
            };
            apply_overrides(&mut s, &a);
            Ok(Some(Found::Seed(s)))
        }
        (None, None) => Ok(None),
    }
}

fn apply_overrides(seed: &mut Seed, args: &NocloudArgs) {
    if args.hostname.is_some() {
        seed.hostname_override = args.hostname.clone();
    }
    if args.instance_id.is_some() {
        seed.instance_id_override = args.instance_id.clone();
    }
}

/// `--seed PATH` is a path on the machine running us, like `--config`: under the
/// system's root it is read through `sys` (as the guest path it is there); elsewhere
/// through a read-only view of `/` (a seed image next to the test root, say). A relative
/// path is taken from the current directory.
pub fn load_seed_arg(
    sys: &dyn System,
    path: &Path,
    limits: nocloud::SeedLimits,
) -> anyhow::Result<Seed> {
    let path = std::path::absolute(path)
        .with_context(|| format!("--seed {}: cannot resolve", path.display()))?;
    let root = sys.root();
    if root == Path::new("/") {
        return load_path(sys, &path, limits);
    }
    if let Ok(rel) = path.strip_prefix(root) {
        return load_path(sys, &Path::new("/").join(rel), limits);
    }
    let outside = crate::platform::host::HostSystem::recording("/");
    load_path(&outside, &path, limits)
}

/// A seed at a guest path: a directory, or a device / image file.
pub fn load_path(
    sys: &dyn System,
    path: &Path,
    limits: nocloud::SeedLimits,
) -> anyhow::Result<Seed> {
    let info = sys
        .lstat(path)
        .with_context(|| format!("--seed {}", path.display()))?
        .with_context(|| format!("--seed {}: no such file or directory", path.display()))?;
    // /dev/disk/by-label/cidata and friends are symlinks to the device, usually relative
    // (`../../sr0`): resolve them against the guest path, a few hops at most.
    let mut target = path.to_path_buf();
    let mut kind = info.kind;
    for _ in 0..8 {
        if kind != FileKind::Symlink {
            break;
        }
        let t = sys.read_link(&target)?;
        target = lexical_normal(&target.parent().unwrap_or(Path::new("/")).join(t));
        kind = match sys.lstat(&target)? {
            Some(i) => i.kind,
            None => anyhow::bail!("--seed {}: dangling link", path.display()),
        };
    }
    if kind == FileKind::Symlink {
        anyhow::bail!(
            "--seed {}: too many levels of symbolic links",
            path.display()
        );
    }
    if kind == FileKind::Dir {
        return nocloud::read_dir(sys, &target, limits);
    }
    nocloud::read_image(sys, &target, limits)?.with_context(|| {
        format!(
            "--seed {}: neither a directory nor an ISO9660 or vfat image",
            path.display()
        )
    })
}

/// An absolute path with `.` and `..` resolved by name (`..` stops at `/`).
fn lexical_normal(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::Normal(n) => out.push(n),
            _ => {}
        }
    }
    out
}

/// `ds=nocloud` from the kernel command line and the SMBIOS serial (command line first).
pub fn nocloud_args(sys: &dyn System, os: OsKind) -> Option<NocloudArgs> {
    let from_cmdline = cmdline::parse(&crate::platform::kernel_cmdline(sys, os));
    let serial = match os {
        OsKind::Linux => sys
            .read_file(Path::new("/sys/class/dmi/id/product_serial"), 4096)
            .ok()
            .map(|b| String::from_utf8_lossy(&b).into_owned()),
        OsKind::FreeBsd => sys
            .run(&Cmd::new(["kenv", "-q", "smbios.system.serial"]).timeout(Duration::from_secs(5)))
            .ok()
            .filter(|o| o.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned()),
    };
    let from_serial = serial.and_then(|s| cmdline::parse(s.trim()));
    match (from_cmdline, from_serial) {
        (Some(c), Some(s)) => Some(c.or(s)),
        (c, s) => c.or(s),
    }
}
