//! Key: `yum_repos`, `yum_repo_dir`, `zypper` (`repos`, `config`), `apk_repos`, `pkg` (`repos`). cloud-init: `cc_yum_add_repo`, `cc_zypper_add_repo`, `cc_apk_configure`.
//!
//! Package repositories from the seed, written in the late pass before `packages`, in the
//! directory of the manager the template has (none: the module fails naming it):
//!
//! - `yum_repos: {ID: {baseurl|metalink|mirrorlist, name, enabled, gpgcheck, gpgkey, …}}`:
//!   `/etc/yum.repos.d/ID.repo` (`yum_repo_dir` overrides), booleans as `1`/`0`, lists on
//!   continuation lines, as cloud-init; a repo without a URL is skipped with a warning.
//!   Needs dnf or yum.
//! - `zypper: {repos: [{id, baseurl, name, enabled, autorefresh, …}], config: {k: v}}`:
//!   `/etc/zypp/repos.d/ID.repo` and `k=v` set in `/etc/zypp/zypp.conf`. Needs zypper.
//! - `apk_repos: {preserve_repositories, alpine_repo: {base_url, version, community_enabled,
//!   testing_enabled}, local_repo_base_url}`: `/etc/apk/repositories` rewritten (main,
//!   community, edge testing, the local repo) unless `preserve_repositories`. Needs apk.
//! - `pkg: {repos: {NAME: {url, enabled, mirror_type, signature_type, pubkey,
//!   fingerprints, priority}}}` (a key of ci-agent's own, for FreeBSD):
//!   `/usr/local/etc/pkg/repos/NAME.conf` in pkg's UCL (`FreeBSD: {enabled: false}` turns
//!   the default repository off). Needs pkg (or its bootstrap, `/usr/sbin/pkg`).
//!
//! The Linux keys on FreeBSD and `pkg` on Linux are warnings. Names and values are checked
//! (no newline, no `..`, names of letters, digits, `._-`) before anything is written.
//! Once per instance.

use anyhow::bail;

use super::locale::{read_text, set_assignment};
use super::{Context, Frequency, Module, Stage};
use crate::formats::userdata::value::KeyVal;
use crate::formats::yaml::NodeValue;
use crate::platform::OsKind;

pub struct Repos;

const HEADER: &str = "# Written by ci-agent from the cloud-config.\n";

fn name_ok(v: &KeyVal, name: &str) -> anyhow::Result<String> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if !ok {
        return Err(v
            .err(format!(
                "invalid repository name {name:?} (letters, digits, '.', '_', '-')"
            ))
            .into());
    }
    Ok(name.to_owned())
}

/// A repo-file value: booleans as 1/0, lists on indented continuation lines.
fn ini_value(v: &KeyVal) -> anyhow::Result<String> {
    if let Some(b) = v.node.as_bool() {
        return Ok(if b { "1" } else { "0" }.into());
    }
    match v.node.value {
        NodeValue::Seq(_) => Ok(v
            .items()?
            .iter()
            .map(|i| i.line(4096))
            .collect::<Result<Vec<_>, _>>()?
            .join("\n    ")),
        _ => Ok(v.line(4096)?),
    }
}

fn ini_section(id: &str, entries: &[(String, KeyVal)], skip: &[&str]) -> anyhow::Result<String> {
    let mut out = format!("{HEADER}[{id}]\n");
    for (k, v) in entries {
        if skip.contains(&k.as_str()) {
            continue;
        }
        if k.is_empty()
            || !k
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            return Err(v.err("invalid option name").into());
        }
        // cloud-init accepts `-` for `_` in yum keys.
        out.push_str(&format!("{}={}\n", k.replace('-', "_"), ini_value(v)?));
    }
    Ok(out)
}

fn has_url(entries: &[(String, KeyVal)]) -> bool {
    entries
        .iter()
        .any(|(k, _)| matches!(k.as_str(), "baseurl" | "metalink" | "mirrorlist"))
}

fn ucl_value(v: &KeyVal) -> anyhow::Result<String> {
    if let Some(b) = v.node.as_bool() {
        return Ok(if b { "yes" } else { "no" }.into());
    }
    match v.node.value {
        NodeValue::Int(_) | NodeValue::UInt(_) => Ok(v.str()?),
        _ => {
            let s = v.line(4096)?;
            if s.contains('"') || s.contains('\\') {
                return Err(v.err("must not contain '\"' or '\\'").into());
            }
            Ok(format!("\"{s}\""))
        }
    }
}

impl Module for Repos {
    fn name(&self) -> &'static str {
        "repos"
    }
    fn frequency(&self) -> Frequency {
        Frequency::PerInstance
    }
    fn stage(&self) -> Stage {
        Stage::Late
    }
    fn wanted(&self, ctx: &Context) -> bool {
        ["yum_repos", "zypper", "apk_repos", "pkg"]
            .iter()
            .any(|k| ctx.key(k).is_some())
    }
    fn run(&self, ctx: &mut Context) -> anyhow::Result<()> {
        let mut files: Vec<(String, String)> = Vec::new();
        let linux = ctx.os == OsKind::Linux;
        for k in ["yum_repos", "zypper", "apk_repos"] {
            if !linux && ctx.key(k).is_some() {
                ctx.warn(format!("{k}: not used on FreeBSD (ignored)"));
            }
        }
        if linux && ctx.key("pkg").is_some() {
            ctx.warn("pkg: FreeBSD's pkg repositories, not used on Linux (ignored)");
        }
        if let (true, Some(v)) = (linux, ctx.key("yum_repos")) {
            if ctx.find_tool("dnf").is_none() && ctx.find_tool("yum").is_none() {
                bail!("yum_repos: neither dnf nor yum is in the template");
            }
            let dir = match ctx.key("yum_repo_dir") {
                Some(d) => {
                    let d = d.line(4096)?;
                    if !d.starts_with('/') || d.split('/').any(|c| c == "..") {
                        bail!("yum_repo_dir: expected an absolute path without '..'");
                    }
                    d
                }
                None => "/etc/yum.repos.d".into(),
            };
            for (id, repo) in v.entries()? {
                let id = name_ok(&repo, &id)?;
                let entries = repo.entries()?;
                if !has_url(&entries) {
                    ctx.warn(format!(
                        "yum_repos.{id}: no baseurl, metalink or mirrorlist (skipped, as cloud-init)"
                    ));
                    continue;
                }
                files.push((format!("{dir}/{id}.repo"), ini_section(&id, &entries, &[])?));
            }
        }
        if let (true, Some(v)) = (linux, ctx.key("zypper")) {
            if ctx.find_tool("zypper").is_none() {
                bail!("zypper: zypper is not in the template");
            }
            for w in v.unknown_keys(&["repos", "config"]) {
                ctx.warn(w);
            }
            if let Some(repos) = v.get("repos") {
                for repo in repos.items()? {
                    let Some(id) = repo.get("id") else {
                        return Err(repo.err("missing 'id'").into());
                    };
                    let id = name_ok(&id, &id.str()?)?;
                    let entries = repo.entries()?;
                    if !has_url(&entries) {
                        return Err(repo.err("missing 'baseurl'").into());
                    }
                    files.push((
                        format!("/etc/zypp/repos.d/{id}.repo"),
                        ini_section(&id, &entries, &["id"])?,
                    ));
                }
            }
            if let Some(conf) = v.get("config") {
                let mut text = read_text(ctx, "/etc/zypp/zypp.conf")?;
                for (k, val) in conf.entries()? {
                    if !k
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
                    {
                        return Err(val.err("invalid option name").into());
                    }
                    let value = match val.node.as_bool() {
                        Some(b) => b.to_string(),
                        None => val.line(4096)?,
                    };
                    text = set_assignment(&text, &k, &value);
                }
                files.push(("/etc/zypp/zypp.conf".into(), text));
            }
        }
        if let (true, Some(v)) = (linux, ctx.key("apk_repos")) {
            if ctx.find_tool("apk").is_none() {
                bail!("apk_repos: apk is not in the template");
            }
            let preserve = match v.get("preserve_repositories") {
                Some(b) => b.bool()?,
                None => false,
            };
            if !preserve {
                let Some(alpine) = v.get("alpine_repo") else {
                    return Err(v.err("missing 'alpine_repo'").into());
                };
                let base = match alpine.get("base_url") {
                    Some(b) => b.word()?,
                    None => "https://alpine.global.ssl.fastly.net/alpine".into(),
                };
                let Some(version) = alpine.get("version") else {
                    return Err(alpine.err("missing 'version'").into());
                };
                let version = version.word()?;
                let flag = |k: &str| -> anyhow::Result<bool> {
                    alpine.get(k).map_or(Ok(false), |b| Ok(b.bool()?))
                };
                let mut text = format!("{HEADER}{base}/{version}/main\n");
                if flag("community_enabled")? {
                    text.push_str(&format!("{base}/{version}/community\n"));
                }
                if flag("testing_enabled")? {
                    text.push_str(&format!("@testing {base}/edge/testing\n"));
                }
                if let Some(local) = v.get("local_repo_base_url") {
                    text.push_str(&format!("{}/{version}\n", local.word()?));
                }
                files.push(("/etc/apk/repositories".into(), text));
            }
        }
        if let (false, Some(v)) = (linux, ctx.key("pkg")) {
            if ctx.find_tool("pkg").is_none() {
                bail!("pkg: pkg is not in the template");
            }
            for w in v.unknown_keys(&["repos"]) {
                ctx.warn(w);
            }
            if let Some(repos) = v.get("repos") {
                for (name, repo) in repos.entries()? {
                    let name = name_ok(&repo, &name)?;
                    let mut body = format!("{HEADER}{name}: {{\n");
                    for (k, val) in repo.entries()? {
                        if !matches!(
                            k.as_str(),
                            "url"
                                | "enabled"
                                | "mirror_type"
                                | "signature_type"
                                | "pubkey"
                                | "fingerprints"
                                | "priority"
                                | "ip_version"
                        ) {
                            ctx.warn(format!("{}: not supported by ci-agent (ignored)", val.path));
                            continue;
                        }
                        body.push_str(&format!("  {k}: {},\n", ucl_value(&val)?));
                    }
                    body.push_str("}\n");
                    files.push((format!("/usr/local/etc/pkg/repos/{name}.conf"), body));
                }
            }
        }
        for (path, text) in &files {
            ctx.write_config(path, text.as_bytes(), 0o644)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::test_env::Env;
    use crate::platform::System;

    #[test]
    fn yum_repos_need_dnf_or_yum_and_a_url() {
        let mut env = Env::new(OsKind::Linux);
        env.yaml("yum_repos:\n  epel:\n    name: Extra\n    baseurl: http://m/epel/$releasever\n    enabled: true\n    gpgcheck: no\n    gpgkey: [file:///a, file:///b]\n  nourl: {name: x}\n");
        assert!(env.run_err(&Repos).contains("neither dnf nor yum"));
        env.sys.put("/usr/bin/dnf", "");
        let w = env.run_ok(&Repos);
        assert!(w[0].contains("yum_repos.nourl: no baseurl"), "{w:?}");
        assert_eq!(
            env.read("/etc/yum.repos.d/epel.repo"),
            format!("{HEADER}[epel]\nname=Extra\nbaseurl=http://m/epel/$releasever\nenabled=1\ngpgcheck=0\ngpgkey=file:///a\n    file:///b\n")
        );
        env.yaml("yum_repos:\n  ../x: {baseurl: http://m}\n");
        assert!(env.run_err(&Repos).contains("invalid repository name"));
    }

    #[test]
    fn zypper_and_apk() {
        let mut env = Env::new(OsKind::Linux);
        env.sys.put("/usr/bin/zypper", "");
        env.sys.put("/sbin/apk", "");
        env.sys.put(
            "/etc/zypp/zypp.conf",
            "[main]\ndownload.use_deltarpm = true\n",
        );
        env.yaml("zypper:\n  repos:\n  - {id: oss, name: OSS, baseurl: 'http://z/oss', enabled: 1, autorefresh: true}\n  config: {download.use_deltarpm: false}\napk_repos:\n  alpine_repo: {version: 'v3.19', community_enabled: true}\n  local_repo_base_url: https://local/alpine\n");
        env.run_ok(&Repos);
        assert_eq!(
            env.read("/etc/zypp/repos.d/oss.repo"),
            format!("{HEADER}[oss]\nname=OSS\nbaseurl=http://z/oss\nenabled=1\nautorefresh=1\n")
        );
        assert_eq!(
            env.read("/etc/zypp/zypp.conf"),
            "[main]\ndownload.use_deltarpm=false\n"
        );
        assert_eq!(
            env.read("/etc/apk/repositories"),
            format!("{HEADER}https://alpine.global.ssl.fastly.net/alpine/v3.19/main\nhttps://alpine.global.ssl.fastly.net/alpine/v3.19/community\nhttps://local/alpine/v3.19\n")
        );
    }

    #[test]
    fn freebsd_pkg_repos_in_ucl() {
        let mut env = Env::new(OsKind::FreeBsd);
        env.sys.put("/usr/sbin/pkg", "");
        env.yaml("pkg:\n  repos:\n    FreeBSD: {enabled: false}\n    local:\n      url: 'pkg+http://pkg.lan/${ABI}/latest'\n      mirror_type: srv\n      signature_type: none\n      priority: 10\nyum_repos: {a: {baseurl: 'http://x'}}\n");
        let w = env.run_ok(&Repos);
        assert!(w[0].contains("yum_repos: not used on FreeBSD"), "{w:?}");
        assert_eq!(
            env.read("/usr/local/etc/pkg/repos/FreeBSD.conf"),
            format!("{HEADER}FreeBSD: {{\n  enabled: no,\n}}\n")
        );
        assert_eq!(
            env.read("/usr/local/etc/pkg/repos/local.conf"),
            format!("{HEADER}local: {{\n  url: \"pkg+http://pkg.lan/${{ABI}}/latest\",\n  mirror_type: \"srv\",\n  signature_type: \"none\",\n  priority: 10,\n}}\n")
        );
        assert!(!env.sys.exists(std::path::Path::new("/etc/yum.repos.d")));
    }
}
