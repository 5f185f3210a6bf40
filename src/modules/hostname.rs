//! Key: `hostname`, `fqdn`, `preserve_hostname`, `prefer_fqdn_over_hostname`, `manage_etc_hosts`. cloud-init: `cc_set_hostname`, `cc_update_hostname`, `cc_update_etc_hosts`.
//!
//! `hostname` (with `fqdn`, `preserve_hostname`, `prefer_fqdn_over_hostname`,
//! `manage_etc_hosts`): give the clone its own name.
//!
//! Precedence as cloud-init: cloud-config `fqdn`, then `hostname`, then meta-data
//! `local-hostname`. A name with a dot is an FQDN whose first label is the short name.
//! The persistent file gets the short name on Linux (`/etc/hostname`, as Debian and
//! cloud-init do) and the FQDN on FreeBSD (`hostname="…"` in the `/etc/rc.conf.d/hostname`
//! drop-in; rc.conf(5) wants the FQDN); `prefer_fqdn_over_hostname` overrides that choice.
//! The same name is set now with sethostname. `preserve_hostname: true` leaves it all.
//!
//! Runs once per instance (cloud-init's `set_hostname`): a clone keeps a name an admin
//! gave it by hand until it becomes a new instance.
//!
//! Every name is validated (RFC 1123 labels of 1–63 letters, digits and inner hyphens,
//! at most 253 characters) before it reaches a file or a syscall; the name set must also
//! fit sethostname(2) (64 characters on Linux), checked before anything is written.

use std::path::Path;

use anyhow::{bail, Context as _};

use super::{Context, Frequency, Module, Stage};
use crate::formats::userdata::cloud_config::ManageEtcHosts;
use crate::platform::policy::shorten;
use crate::platform::WriteOpts;

pub struct Hostname;

/// Marks the `/etc/hosts` line this module owns.
const HOSTS_MARK: &str = "# ci-agent hostname";

/// Check a host name; `key` names where it came from.
pub fn validate(name: &str, key: &str) -> anyhow::Result<()> {
    let bad = |why: &str| -> anyhow::Result<()> {
        bail!("{key}: invalid hostname {:?}: {why}", shorten(name))
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > 253 {
        return bad("longer than 253 characters");
    }
    for label in name.split('.') {
        if label.is_empty() {
            return bad("empty label");
        }
        if label.len() > 63 {
            return bad("a label is longer than 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return bad("only letters, digits, '-' and '.' are allowed");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return bad("a label starts or ends with '-'");
        }
    }
    Ok(())
}

/// The (short name, fqdn) to apply and where each came from, or `None` when nothing
/// names the host.
pub fn choose(ctx: &Context) -> anyhow::Result<Option<(String, String)>> {
    let cc = ctx.cc();
    let split = |s: &str| s.split('.').next().unwrap_or(s).to_string();
    let (short, fqdn) = match (&cc.fqdn, &cc.hostname, &ctx.seed.hostname) {
        (Some(f), h, _) => {
            validate(f, "fqdn")?;
            let short = match h {
                Some(h) => {
                    validate(h, "hostname")?;
                    split(h)
                }
                None => split(f),
            };
            (short, f.clone())
        }
        (None, Some(h), _) => {
            validate(h, "hostname")?;
            (split(h), h.clone())
        }
        (None, None, Some(m)) => {
            validate(m, "meta-data local-hostname")?;
            (split(m), m.clone())
        }
        (None, None, None) => return Ok(None),
    };
    Ok(Some((short, fqdn)))
}

/// `/etc/hosts` with our line for (short, fqdn), keeping everything else. `template`
/// also drops other lines for the hostname address when the OS reserves that address
/// for the host name (Debian's 127.0.1.1) — the template's old name must not linger.
/// `localhost` leaves an existing line that already maps the names alone.
pub fn update_hosts(
    text: &str,
    ip: &str,
    ip_is_hostname_only: bool,
    mode: &ManageEtcHosts,
    short: &str,
    fqdn: &str,
) -> String {
    let first_field = |l: &str| l.split_whitespace().next().map(str::to_string);
    let names_of = |l: &str| -> Vec<String> {
        l.split('#')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .skip(1)
            .map(str::to_string)
            .collect()
    };
    let ours = if short == fqdn {
        format!("{ip}\t{fqdn} {HOSTS_MARK}")
    } else {
        format!("{ip}\t{fqdn} {short} {HOSTS_MARK}")
    };
    if *mode == ManageEtcHosts::Localhost {
        let already = text.lines().any(|l| {
            !l.contains(HOSTS_MARK) && first_field(l).as_deref() == Some(ip) && {
                let n = names_of(l);
                n.iter().any(|x| x == fqdn) && n.iter().any(|x| x == short)
            }
        });
        if already {
            let kept: Vec<&str> = text.lines().filter(|l| !l.contains(HOSTS_MARK)).collect();
            return join_lines(&kept);
        }
    }
    let mut out: Vec<String> = Vec::new();
    let mut placed = false;
    for l in text.lines() {
        if l.contains(HOSTS_MARK) {
            continue;
        }
        if *mode == ManageEtcHosts::Template
            && ip_is_hostname_only
            && first_field(l).as_deref() == Some(ip)
        {
            continue;
        }
        out.push(l.to_string());
        if !placed && first_field(l).as_deref() == Some("127.0.0.1") {
            out.push(ours.clone());
            placed = true;
        }
    }
    if !placed {
        if !text
            .lines()
            .any(|l| names_of(l).iter().any(|n| n == "localhost"))
        {
            out.insert(0, "127.0.0.1\tlocalhost".into());
            out.insert(1, ours.clone());
        } else {
            out.push(ours.clone());
        }
    }
    // `true`/`template` also name the host on `::1`, as nuageinit does, unless an IPv6
    // loopback line of the template already carries the name.
    if *mode == ManageEtcHosts::Template {
        let v6 = |l: &String| !l.contains(HOSTS_MARK) && first_field(l).as_deref() == Some("::1");
        let resolves = out
            .iter()
            .filter(|l| v6(l))
            .any(|l| names_of(l).iter().any(|n| n == fqdn || n == short));
        if !resolves {
            let line = format!("::1{}", ours.strip_prefix(ip).unwrap_or(&ours));
            match out.iter().position(v6) {
                Some(i) => out.insert(i + 1, line),
                None => out.push(line),
            }
        }
    }
    let refs: Vec<&str> = out.iter().map(String::as_str).collect();
    join_lines(&refs)
}

fn join_lines(lines: &[&str]) -> String {
    let mut s = lines.join("\n");
    s.push('\n');
    s
}

/// Write `content` to `path` (0644) unless it already has exactly that content.
pub fn write_if_changed(ctx: &Context, path: &Path, content: &str) -> anyhow::Result<bool> {
    if let Ok(old) = ctx.sys.read_file(path, 1 << 20) {
        if old == content.as_bytes() {
            return Ok(false);
        }
    }
    if let Some(parent) = path.parent() {
        ctx.sys
            .create_dir_all(parent, 0o755, None)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    ctx.sys
        .write_file(path, content.as_bytes(), WriteOpts::mode(0o644))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(true)
}

impl Module for Hostname {
    fn name(&self) -> &'static str {
        "hostname"
    }
    fn keys(&self) -> &'static [&'static str] {
        &[
            "hostname",
            "fqdn",
            "preserve_hostname",
            "prefer_fqdn_over_hostname",
            "manage_etc_hosts",
        ]
    }
    fn frequency(&self) -> Frequency {
        Frequency::PerInstance
    }
    fn stage(&self) -> Stage {
        Stage::Early
    }
    fn wanted(&self, ctx: &Context) -> bool {
        let cc = ctx.cc();
        cc.preserve_hostname != Some(true)
            && (cc.fqdn.is_some() || cc.hostname.is_some() || ctx.seed.hostname.is_some())
    }
    fn run(&self, ctx: &mut Context) -> anyhow::Result<()> {
        let Some((short, fqdn)) = choose(ctx)? else {
            return Ok(());
        };
        let policy = ctx.policy();
        let prefer_fqdn = ctx
            .cc()
            .prefer_fqdn_over_hostname
            .unwrap_or(policy.prefer_fqdn());
        let name = if prefer_fqdn { &fqdn } else { &short };
        if name.len() > policy.hostname_max() {
            // Checked before the file is written: the kernel would refuse it after.
            bail!(
                "hostname {:?} is {} characters; this system takes at most {}",
                shorten(name),
                name.len(),
                policy.hostname_max()
            );
        }
        let (path, content) = policy.hostname_file(name);
        write_if_changed(ctx, &path, &content)?;
        ctx.sys
            .set_hostname(name)
            .with_context(|| format!("sethostname {name}"))?;
        log::info!("hostname set to {name}");

        let mode = ctx
            .cc()
            .manage_etc_hosts
            .clone()
            .unwrap_or(ManageEtcHosts::False);
        if mode != ManageEtcHosts::False {
            let hosts = Path::new("/etc/hosts");
            let old = match ctx.sys.read_file(hosts, 1 << 20) {
                Ok(b) => String::from_utf8_lossy(&b).into_owned(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
                Err(e) => return Err(e).context("reading /etc/hosts"),
            };
            let new = update_hosts(
                &old,
                policy.hosts_ip(),
                policy.hosts_ip_is_hostname_only(),
                &mode,
                &short,
                &fqdn,
            );
            write_if_changed(ctx, hosts, &new)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::test_env::Env;
    use crate::platform::OsKind;

    #[test]
    fn validation() {
        for ok in ["a", "anchor-vm", "vm1.example.org", &"a".repeat(63)] {
            validate(ok, "hostname").unwrap();
        }
        let long = format!("{}.{}", "a".repeat(63), "b".repeat(63)).repeat(3);
        for bad in [
            "",
            "a;reboot",
            "$(id)",
            "-a",
            "a-",
            "a..b",
            "a b",
            "é",
            &"a".repeat(64),
            &long,
            &"x".repeat(1000),
        ] {
            let e = validate(bad, "hostname").unwrap_err().to_string();
            assert!(e.starts_with("hostname: invalid hostname"), "{e}");
            assert!(e.len() < 200, "error must not echo 1000 chars: {e}");
        }
    }

    #[test]
    fn linux_short_name_and_precedence() {
        let mut env = Env::new(OsKind::Linux);
        env.seed.hostname = Some("meta-name".into());
        env.run_ok(&Hostname);
        assert_eq!(env.read("/etc/hostname"), "meta-name\n");
        assert_eq!(env.sys.hostname().as_deref(), Some("meta-name"));

        env.seed.cloud_config.hostname = Some("web1.example.org".into());
        env.run_ok(&Hostname);
        assert_eq!(env.read("/etc/hostname"), "web1\n");

        env.seed.cloud_config.fqdn = Some("db.example.net".into());
        env.seed.cloud_config.prefer_fqdn_over_hostname = Some(true);
        env.run_ok(&Hostname);
        assert_eq!(env.read("/etc/hostname"), "db.example.net\n");
        assert_eq!(env.sys.hostname().as_deref(), Some("db.example.net"));

        env.seed.cloud_config.preserve_hostname = Some(true);
        assert!(env.run(&Hostname).is_none());
    }

    #[test]
    fn freebsd_dropin_with_fqdn() {
        let mut env = Env::new(OsKind::FreeBsd);
        env.sys.put("/etc/rc.conf", "sshd_enable=\"YES\"\n");
        env.seed.cloud_config.hostname = Some("vm7.lab.example".into());
        env.run_ok(&Hostname);
        assert_eq!(
            env.read("/etc/rc.conf.d/hostname"),
            "hostname=\"vm7.lab.example\"\n"
        );
        assert_eq!(env.read("/etc/rc.conf"), "sshd_enable=\"YES\"\n");
        assert_eq!(env.sys.hostname().as_deref(), Some("vm7.lab.example"));
    }

    #[test]
    fn a_name_longer_than_the_kernel_takes_touches_nothing() {
        let fqdn = format!("{}.{}.example.org", "a".repeat(40), "b".repeat(20));
        assert_eq!(fqdn.len(), 73);
        let mut env = Env::new(OsKind::Linux);
        env.seed.cloud_config.fqdn = Some(fqdn.clone());
        env.seed.cloud_config.prefer_fqdn_over_hostname = Some(true);
        let e = env.run_err(&Hostname);
        assert!(e.contains("at most 64"), "{e}");
        assert!(env.sys.read_string("/etc/hostname").is_none());
        assert!(env.sys.hostname().is_none());
        // the short name fits; FreeBSD takes the FQDN
        env.seed.cloud_config.prefer_fqdn_over_hostname = None;
        env.run_ok(&Hostname);
        assert_eq!(env.read("/etc/hostname"), format!("{}\n", "a".repeat(40)));
        let mut env = Env::new(OsKind::FreeBsd);
        env.seed.cloud_config.fqdn = Some(fqdn.clone());
        env.run_ok(&Hostname);
        assert_eq!(env.sys.hostname(), Some(fqdn));
    }

    #[test]
    fn hostile_names_touch_nothing() {
        let mut env = Env::new(OsKind::Linux);
        env.seed.cloud_config.hostname = Some("x;reboot".into());
        let e = env.run_err(&Hostname);
        assert!(e.contains("hostname: invalid hostname \"x;reboot\""), "{e}");
        env.seed.cloud_config.hostname = None;
        env.seed.hostname = Some("y".repeat(1000));
        let e = env.run_err(&Hostname);
        assert!(e.contains("meta-data local-hostname"), "{e}");
        assert!(env.sys.read_string("/etc/hostname").is_none());
        assert!(env.sys.hostname().is_none());
        assert!(env.lines().is_empty());
    }

    #[test]
    fn etc_hosts_template_and_localhost() {
        let mut env = Env::new(OsKind::Linux);
        env.sys.put(
            "/etc/hosts",
            "127.0.0.1\tlocalhost\n127.0.1.1\ttemplate.example template\n\n::1 localhost ip6-localhost\n10.0.0.5 db\n",
        );
        env.seed.cloud_config.hostname = Some("anchor-vm".into());
        env.seed.cloud_config.manage_etc_hosts = Some(ManageEtcHosts::Template);
        env.run_ok(&Hostname);
        let h = env.read("/etc/hosts");
        assert_eq!(
            h,
            "127.0.0.1\tlocalhost\n127.0.1.1\tanchor-vm # ci-agent hostname\n\n::1 localhost ip6-localhost\n::1\tanchor-vm # ci-agent hostname\n10.0.0.5 db\n"
        );
        env.run_ok(&Hostname);
        assert_eq!(env.read("/etc/hosts"), h, "idempotent");

        // localhost mode keeps an existing matching line and other 127.0.1.1 lines
        let t = "127.0.0.1 localhost\n127.0.1.1 a.example a\n";
        let out = update_hosts(
            t,
            "127.0.1.1",
            true,
            &ManageEtcHosts::Localhost,
            "a",
            "a.example",
        );
        assert_eq!(out, t);
        let out = update_hosts(
            t,
            "127.0.1.1",
            true,
            &ManageEtcHosts::Localhost,
            "b",
            "b.example",
        );
        assert_eq!(
            out,
            "127.0.0.1 localhost\n127.0.1.1\tb.example b # ci-agent hostname\n127.0.1.1 a.example a\n"
        );
        // empty file
        let out = update_hosts(
            "",
            "127.0.0.1",
            false,
            &ManageEtcHosts::Template,
            "b",
            "b.x",
        );
        assert_eq!(
            out,
            "127.0.0.1\tlocalhost\n127.0.0.1\tb.x b # ci-agent hostname\n::1\tb.x b # ci-agent hostname\n"
        );
    }

    #[test]
    fn freebsd_hosts_keeps_localhost_line() {
        let t = "::1 localhost localhost.my.domain\n127.0.0.1 localhost localhost.my.domain\n";
        let out = update_hosts(
            t,
            "127.0.0.1",
            false,
            &ManageEtcHosts::Template,
            "vm",
            "vm.lab",
        );
        assert_eq!(
            out,
            "::1 localhost localhost.my.domain\n::1\tvm.lab vm # ci-agent hostname\n127.0.0.1 localhost localhost.my.domain\n127.0.0.1\tvm.lab vm # ci-agent hostname\n"
        );
        // A template whose ::1 line already names the host gets no second one.
        let t = "::1 localhost vm\n127.0.0.1 localhost\n";
        let out = update_hosts(
            t,
            "127.0.0.1",
            false,
            &ManageEtcHosts::Template,
            "vm",
            "vm.lab",
        );
        assert_eq!(
            out,
            "::1 localhost vm\n127.0.0.1 localhost\n127.0.0.1\tvm.lab vm # ci-agent hostname\n"
        );
        let again = update_hosts(
            &out,
            "127.0.0.1",
            false,
            &ManageEtcHosts::Template,
            "vm",
            "vm.lab",
        );
        assert_eq!(again, out);
    }
}
