//! Key: `apt` (`primary`, `security`, `sources`, `proxy`, `http_proxy`, `https_proxy`, `ftp_proxy`, `conf`, `preserve_sources_list`), `apt_pipelining`. cloud-init: `cc_apt_configure`, `cc_apt_pipelining`.
//!
//! apt's configuration from the seed, applied in the late pass before `packages`, so the
//! packages come from the seed's mirror and sources. Linux with apt only: without
//! `apt-get` in the template the module fails naming it; on FreeBSD the key is a warning.
//!
//! - `primary` / `security` (`[{arches: [default], uri: …}]`): the first entry whose arches
//!   list `default` or the machine's (`dpkg --print-architecture`) gives the mirror. With
//!   either set and `preserve_sources_list` false (the default), `/etc/apt/sources.list`
//!   becomes `deb MIRROR RELEASE main` (+ `-updates`) and `deb SECURITY RELEASE-security
//!   main`, and the template's deb822 `/etc/apt/sources.list.d/debian.sources` is moved
//!   aside (`.disabled-by-ci-agent`), so the old mirror is not used as well. RELEASE is
//!   `VERSION_CODENAME` from `/etc/os-release`.
//! - `sources` (`name: {source, key, keyid, keyserver, filename}`): one
//!   `/etc/apt/sources.list.d/<name>.list` each; `$RELEASE`, `$MIRROR`, `$PRIMARY` and
//!   `$SECURITY` are substituted as cloud-init does. A `key` (ASCII-armored) is written to
//!   `/etc/apt/keyrings/<name>.asc`, a `keyid` is fetched with `gpg --recv-keys` (default
//!   keyserver `keyserver.ubuntu.com`; no `gpg` is an error naming it) and exported to
//!   `/etc/apt/keyrings/<name>.gpg`; the source line gets `[signed-by=…]` unless it has one.
//! - `proxy` (= `http_proxy`), `https_proxy`, `ftp_proxy`: `/etc/apt/apt.conf.d/90ci-agent-proxy`.
//! - `conf`: `/etc/apt/apt.conf.d/94ci-agent-conf`, as given.
//! - `apt_pipelining`: `false`/`none` → `Acquire::http::Pipeline-Depth "0";`, a number → that
//!   depth, in `/etc/apt/apt.conf.d/90ci-agent-pipelining`; `os`/`true`/`unchanged` leave it.
//!
//! Every name, URI and line is checked (no newline, no `..`) before anything is written.
//! Once per instance.

use std::path::Path;

use anyhow::bail;

use super::{Context, Frequency, Module, Stage};
use crate::formats::userdata::value::KeyVal;
use crate::platform::OsKind;

pub struct Apt;

const KNOWN: &[&str] = &[
    "primary",
    "security",
    "sources",
    "proxy",
    "http_proxy",
    "https_proxy",
    "ftp_proxy",
    "conf",
    "preserve_sources_list",
];
const CONF_D: &str = "/etc/apt/apt.conf.d";
const KEYRINGS: &str = "/etc/apt/keyrings";
const HEADER: &str = "# Written by ci-agent from the cloud-config 'apt' key.\n";

fn uri(v: &KeyVal) -> anyhow::Result<String> {
    let u = v.word()?;
    if !(u.starts_with("http://") || u.starts_with("https://") || u.starts_with("file:/")) {
        return Err(v.err("expected an http://, https:// or file: URI").into());
    }
    Ok(u)
}

/// The mirror of a `primary`/`security` list for `arch`.
fn mirror(v: &KeyVal, arch: &str) -> anyhow::Result<Option<String>> {
    for item in v.items()? {
        let arches = match item.get("arches") {
            Some(a) => a.str_list()?,
            None => vec!["default".into()],
        };
        if arches.iter().any(|a| a == "default" || a == arch) {
            return match item.get("uri") {
                Some(u) => Ok(Some(uri(&u)?)),
                None => Ok(None),
            };
        }
    }
    Ok(None)
}

fn source_name(name: &str, v: &KeyVal) -> anyhow::Result<String> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        && !name.starts_with('.');
    if !ok {
        return Err(v
            .err("the source name must be letters, digits, '.', '_' or '-'")
            .into());
    }
    Ok(name.strip_suffix(".list").unwrap_or(name).to_owned())
}

fn os_release_codename(ctx: &Context) -> Option<String> {
    let b = ctx
        .sys
        .read_file(Path::new("/etc/os-release"), 1 << 16)
        .ok()?;
    String::from_utf8_lossy(&b).lines().find_map(|l| {
        l.strip_prefix("VERSION_CODENAME=")
            .map(|v| v.trim_matches('"').to_owned())
    })
}

/// `deb [opts] uri …` with `signed-by=KEY` added unless the line names one.
fn signed(line: &str, key: &str) -> String {
    if line.contains("signed-by=") {
        return line.to_owned();
    }
    let mut words = line.splitn(2, ' ');
    let kind = words.next().unwrap_or("");
    let rest = words.next().unwrap_or("").trim_start();
    if let Some(opts) = rest.strip_prefix('[') {
        format!("{kind} [signed-by={key} {opts}")
    } else {
        format!("{kind} [signed-by={key}] {rest}")
    }
}

impl Module for Apt {
    fn name(&self) -> &'static str {
        "apt"
    }
    fn frequency(&self) -> Frequency {
        Frequency::PerInstance
    }
    fn stage(&self) -> Stage {
        Stage::Late
    }
    fn wanted(&self, ctx: &Context) -> bool {
        ctx.key("apt").is_some() || ctx.key("apt_pipelining").is_some()
    }
    fn run(&self, ctx: &mut Context) -> anyhow::Result<()> {
        if ctx.os == OsKind::FreeBsd {
            ctx.warn("apt: not used on FreeBSD (ignored)");
            return Ok(());
        }
        if ctx.find_tool("apt-get").is_none() {
            bail!("apt: apt-get is not in the template");
        }
        let mut files: Vec<(String, String)> = Vec::new();
        let mut cmds: Vec<Vec<String>> = Vec::new();
        let mut disable_deb822 = false;
        if let Some(p) = ctx.key("apt_pipelining") {
            let depth = match p.node.as_bool() {
                Some(false) => Some("0".to_owned()),
                Some(true) => None,
                None => match p.str()?.as_str() {
                    "none" => Some("0".into()),
                    "os" | "unchanged" => None,
                    _ => Some(p.u64()?.to_string()),
                },
            };
            if let Some(d) = depth {
                files.push((
                    format!("{CONF_D}/90ci-agent-pipelining"),
                    format!("{HEADER}Acquire::http::Pipeline-Depth \"{d}\";\n"),
                ));
            }
        }
        if let Some(v) = ctx.key("apt") {
            v.mapping()?;
            for w in v.unknown_keys(KNOWN) {
                ctx.warn(w);
            }
            let arch = match ctx.find_tool("dpkg") {
                Some(_) => {
                    let out = ctx.cmd(&["dpkg", "--print-architecture"])?;
                    String::from_utf8_lossy(&out.stdout).trim().to_owned()
                }
                None => "amd64".into(),
            };
            let release = os_release_codename(ctx).unwrap_or_default();
            let primary = match v.get("primary") {
                Some(p) => mirror(&p, &arch)?,
                None => None,
            };
            let security = match v.get("security") {
                Some(p) => mirror(&p, &arch)?,
                None => None,
            };
            let preserve = match v.get("preserve_sources_list") {
                Some(b) => b.bool()?,
                None => false,
            };
            let mirror_uri = primary
                .clone()
                .unwrap_or_else(|| "http://deb.debian.org/debian".into());
            let security_uri = security
                .clone()
                .unwrap_or_else(|| "http://security.debian.org/debian-security".into());
            if (primary.is_some() || security.is_some()) && !preserve {
                if release.is_empty() {
                    bail!("apt: no VERSION_CODENAME in /etc/os-release to write sources.list");
                }
                files.push((
                    "/etc/apt/sources.list".into(),
                    format!(
                        "{HEADER}deb {mirror_uri} {release} main\ndeb {mirror_uri} {release}-updates main\ndeb {security_uri} {release}-security main\n"
                    ),
                ));
                disable_deb822 = true;
            }
            let mut proxies = String::new();
            for (key, scheme) in [
                ("proxy", "http"),
                ("http_proxy", "http"),
                ("https_proxy", "https"),
                ("ftp_proxy", "ftp"),
            ] {
                if let Some(p) = v.get(key) {
                    let line = format!("Acquire::{scheme}::Proxy \"{}\";\n", p.word()?);
                    if !proxies.contains(&format!("Acquire::{scheme}::")) {
                        proxies.push_str(&line);
                    }
                }
            }
            if !proxies.is_empty() {
                files.push((
                    format!("{CONF_D}/90ci-agent-proxy"),
                    format!("{HEADER}{proxies}"),
                ));
            }
            if let Some(c) = v.get("conf") {
                let mut text = c.str()?;
                if !text.ends_with('\n') {
                    text.push('\n');
                }
                files.push((format!("{CONF_D}/94ci-agent-conf"), text));
            }
            if let Some(s) = v.get("sources") {
                for (name, src) in s.entries()? {
                    let name = source_name(&name, &src)?;
                    src.mapping()?;
                    let mut key_file = None;
                    if let Some(k) = src.get("key") {
                        let text = k.str()?;
                        if !text.contains("-----BEGIN PGP PUBLIC KEY BLOCK-----") {
                            return Err(k.err("expected an ASCII-armored PGP public key").into());
                        }
                        let path = format!("{KEYRINGS}/{name}.asc");
                        files.push((path.clone(), text));
                        key_file = Some(path);
                    } else if let Some(id) = src.get("keyid") {
                        let id = id.word()?;
                        if !id.chars().all(|c| c.is_ascii_hexdigit()) {
                            return Err(src.err("keyid: expected a hexadecimal key id").into());
                        }
                        let server = match src.get("keyserver") {
                            Some(k) => k.word()?,
                            None => "keyserver.ubuntu.com".into(),
                        };
                        if ctx.find_tool("gpg").is_none() {
                            bail!(
                                "apt: sources.{name}.keyid needs gpg, which is not in the template"
                            );
                        }
                        let path = format!("{KEYRINGS}/{name}.gpg");
                        cmds.push(vec![
                            "gpg".into(),
                            "--batch".into(),
                            "--keyserver".into(),
                            server,
                            "--recv-keys".into(),
                            id.clone(),
                        ]);
                        cmds.push(vec![
                            "gpg".into(),
                            "--batch".into(),
                            "--yes".into(),
                            "--output".into(),
                            path.clone(),
                            "--export".into(),
                            id,
                        ]);
                        key_file = Some(path);
                    }
                    if let Some(line) = src.get("source") {
                        let text = line
                            .line(4096)?
                            .replace("$RELEASE", &release)
                            .replace("$MIRROR", &mirror_uri)
                            .replace("$PRIMARY", &mirror_uri)
                            .replace("$SECURITY", &security_uri);
                        let text = match &key_file {
                            Some(k) if text.starts_with("deb") => signed(&text, k),
                            _ => text,
                        };
                        files.push((
                            format!("/etc/apt/sources.list.d/{name}.list"),
                            format!("{HEADER}{text}\n"),
                        ));
                    }
                }
            }
        }
        // Keys fetched first: a failure leaves the sources unchanged.
        if !cmds.is_empty() {
            ctx.sys.create_dir_all(Path::new(KEYRINGS), 0o755, None)?;
            let home = ctx.instance_dir.join("gnupg");
            ctx.sys.create_dir_all(&home, 0o700, None)?;
            for argv in &cmds {
                let cmd = crate::platform::Cmd::new(argv.clone())
                    .env("GNUPGHOME", home.to_string_lossy());
                crate::platform::exec::run_ok(ctx.sys, &cmd)?;
            }
        }
        for (path, text) in &files {
            ctx.write_config(path, text.as_bytes(), 0o644)?;
        }
        if disable_deb822 {
            let deb822 = Path::new("/etc/apt/sources.list.d/debian.sources");
            if ctx.sys.exists(deb822) {
                let data = ctx.sys.read_file(deb822, 1 << 20)?;
                ctx.write_config(
                    "/etc/apt/sources.list.d/debian.sources.disabled-by-ci-agent",
                    &data,
                    0o644,
                )?;
                ctx.sys.remove_file(deb822)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::test_env::Env;
    use crate::platform::System;

    fn debian() -> Env {
        let env = Env::new(OsKind::Linux);
        env.sys.put("/usr/bin/apt-get", "");
        env.sys
            .put("/etc/os-release", "ID=debian\nVERSION_CODENAME=bookworm\n");
        env.sys
            .put("/etc/apt/sources.list.d/debian.sources", "Types: deb\n");
        env
    }

    #[test]
    fn primary_sources_proxy_conf_and_pipelining() {
        let mut env = debian();
        env.yaml(
            "apt_pipelining: false\napt:\n  primary:\n  - arches: [default]\n    uri: http://mirror.example/debian\n  proxy: http://proxy:3128\n  conf: |\n    APT::Get::Assume-Yes \"true\";\n  sources:\n    extra:\n      source: deb $MIRROR $RELEASE extra\n      key: |\n        -----BEGIN PGP PUBLIC KEY BLOCK-----\n        xyz\n        -----END PGP PUBLIC KEY BLOCK-----\n",
        );
        env.run_ok(&Apt);
        let sl = env.read("/etc/apt/sources.list");
        assert!(
            sl.contains("deb http://mirror.example/debian bookworm main\n"),
            "{sl}"
        );
        assert!(
            sl.contains("deb http://security.debian.org/debian-security bookworm-security main\n")
        );
        assert!(!env
            .sys
            .exists(Path::new("/etc/apt/sources.list.d/debian.sources")));
        assert!(env.sys.exists(Path::new(
            "/etc/apt/sources.list.d/debian.sources.disabled-by-ci-agent"
        )));
        assert!(env
            .read("/etc/apt/sources.list.d/extra.list")
            .ends_with("deb [signed-by=/etc/apt/keyrings/extra.asc] http://mirror.example/debian bookworm extra\n"));
        assert!(env
            .read("/etc/apt/keyrings/extra.asc")
            .starts_with("-----BEGIN PGP"));
        assert!(env
            .read("/etc/apt/apt.conf.d/90ci-agent-proxy")
            .contains("Acquire::http::Proxy \"http://proxy:3128\";\n"));
        assert_eq!(
            env.read("/etc/apt/apt.conf.d/94ci-agent-conf"),
            "APT::Get::Assume-Yes \"true\";\n"
        );
        assert!(env
            .read("/etc/apt/apt.conf.d/90ci-agent-pipelining")
            .contains("Pipeline-Depth \"0\""));
    }

    #[test]
    fn keyid_needs_gpg_and_bad_input_writes_nothing() {
        let mut env = debian();
        env.yaml("apt:\n  sources:\n    x:\n      source: deb http://x/ stable main\n      keyid: 0A1B2C3D\n");
        assert!(env.run_err(&Apt).contains("needs gpg"));
        env.sys.put("/usr/bin/gpg", "");
        env.run_ok(&Apt);
        assert_eq!(
            env.lines(),
            [
                "gpg --batch --keyserver keyserver.ubuntu.com --recv-keys 0A1B2C3D",
                "gpg --batch --yes --output /etc/apt/keyrings/x.gpg --export 0A1B2C3D"
            ]
        );
        assert!(env
            .read("/etc/apt/sources.list.d/x.list")
            .contains("deb [signed-by=/etc/apt/keyrings/x.gpg] http://x/ stable main"));
        let mut env = debian();
        env.yaml("apt:\n  sources:\n    ../evil:\n      source: deb http://x/ stable main\n");
        assert!(env.run_err(&Apt).contains("source name"));
        env.yaml("apt:\n  primary:\n  - uri: 'ftp://x'\n");
        assert!(env.run_err(&Apt).contains("apt.primary[0].uri"));
        assert!(env
            .sys
            .exists(Path::new("/etc/apt/sources.list.d/debian.sources")));
    }

    #[test]
    fn apt_get_is_required_and_freebsd_ignores_it() {
        let mut env = Env::new(OsKind::Linux);
        env.yaml("apt: {conf: 'x'}\n");
        assert!(env.run_err(&Apt).contains("apt-get is not in the template"));
        let mut env = Env::new(OsKind::FreeBsd);
        env.yaml("apt: {conf: 'x'}\n");
        assert!(env.run_ok(&Apt)[0].contains("not used on FreeBSD"));
    }
}
