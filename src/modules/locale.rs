//! Key: `locale`, `locale_configfile`. cloud-init: `cc_locale`.
//!
//! `locale: en_US.UTF-8` sets the system locale; `locale: false` leaves it alone.
//!
//! - Linux: `LANG=` in `/etc/default/locale` on Debian (`/etc/debian_version`), in
//!   `/etc/locale.conf` elsewhere (`locale_configfile` overrides the path); other lines of
//!   the file are kept. On Debian the locale is also generated when the template can
//!   (`/etc/locale.gen` and `locale-gen`, from the `locales` package): its line is enabled
//!   in `/etc/locale.gen` and `locale-gen` runs; without them a warning says the locale was
//!   set but not generated. `C`, `C.UTF-8` and `POSIX` need no generation.
//! - FreeBSD: every locale ships in base (`/usr/share/locale/<name>`; a missing one is an
//!   error). Login shells get `LANG` from `/etc/profile.d/ci-agent-locale.sh` (FreeBSD's
//!   `/etc/profile` sources `/etc/profile.d/*.sh`), or from `locale_configfile`.
//!
//! Early, once per instance.

use std::path::Path;

use anyhow::bail;

use super::{Context, Frequency, Module, Stage};
use crate::platform::policy::shorten;
use crate::platform::OsKind;

pub struct Locale;

const FREEBSD_PROFILE: &str = "/etc/profile.d/ci-agent-locale.sh";

fn check_locale(l: &str) -> Result<(), String> {
    if l.is_empty()
        || l.len() > 128
        || !l
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c))
    {
        return Err(format!("invalid locale name {:?}", shorten(l)));
    }
    Ok(())
}

/// `text` with `KEY=value` set: the first assignment of `KEY` (`KEY=`, `KEY = `,
/// `export KEY=`) is replaced, later ones are dropped, comments stay; appended when there
/// is none. Also used for other `key=value` files (`zypp.conf`).
pub fn set_assignment(text: &str, key: &str, value: &str) -> String {
    let mut out = String::new();
    let mut placed = false;
    for l in text.lines() {
        let t = l.trim_start();
        let t = t.strip_prefix("export ").unwrap_or(t);
        let sets = t
            .strip_prefix(key)
            .is_some_and(|rest| rest.trim_start().starts_with('='));
        if sets {
            if !placed {
                out.push_str(&format!("{key}={value}\n"));
                placed = true;
            }
            continue;
        }
        out.push_str(l);
        out.push('\n');
    }
    if !placed {
        out.push_str(&format!("{key}={value}\n"));
    }
    out
}

/// `/etc/locale.gen` with `locale charset` enabled.
fn enable_in_locale_gen(text: &str, locale: &str) -> String {
    let charset = locale
        .split_once('.')
        .map(|(_, c)| c.split('@').next().unwrap_or(c))
        .unwrap_or("ISO-8859-1");
    let mut out = String::new();
    let mut found = false;
    for l in text.lines() {
        let bare = l.trim_start().trim_start_matches('#').trim();
        let mut f = bare.split_whitespace();
        if f.next() == Some(locale) && f.next().is_some() && f.next().is_none() {
            if !found {
                out.push_str(bare);
                out.push('\n');
                found = true;
            }
            continue;
        }
        out.push_str(l);
        out.push('\n');
    }
    if !found {
        out.push_str(&format!("{locale} {charset}\n"));
    }
    out
}

/// A guest text file (missing: empty), at most 1 MiB.
pub fn read_text(ctx: &Context, path: &str) -> anyhow::Result<String> {
    if !ctx.sys.exists(Path::new(path)) {
        return Ok(String::new());
    }
    let b = ctx.sys.read_file(Path::new(path), 1 << 20)?;
    Ok(String::from_utf8_lossy(&b).into_owned())
}

impl Module for Locale {
    fn name(&self) -> &'static str {
        "locale"
    }
    fn frequency(&self) -> Frequency {
        Frequency::PerInstance
    }
    fn stage(&self) -> Stage {
        Stage::Early
    }
    fn wanted(&self, ctx: &Context) -> bool {
        ctx.key("locale").is_some()
    }
    fn run(&self, ctx: &mut Context) -> anyhow::Result<()> {
        let Some(v) = ctx.key("locale") else {
            return Ok(());
        };
        if v.node.as_bool() == Some(false) {
            log::info!("locale: false, leaving the locale alone");
            return Ok(());
        }
        let locale = v.line(128)?;
        check_locale(&locale).map_err(|e| v.err(e))?;
        let configfile = match ctx.key("locale_configfile") {
            Some(c) => {
                let p = c.line(4096)?;
                if !p.starts_with('/') || p.split('/').any(|x| x == "..") {
                    return Err(c.err("expected an absolute path without '..'").into());
                }
                Some(p)
            }
            None => None,
        };
        match ctx.os {
            OsKind::Linux => {
                let debian = ctx.sys.exists(Path::new("/etc/debian_version"));
                let path = configfile.unwrap_or_else(|| {
                    if debian {
                        "/etc/default/locale".into()
                    } else {
                        "/etc/locale.conf".into()
                    }
                });
                let text = set_assignment(&read_text(ctx, &path)?, "LANG", &locale);
                ctx.write_config(&path, text.as_bytes(), 0o644)?;
                let builtin = matches!(locale.as_str(), "C" | "C.UTF-8" | "C.utf8" | "POSIX");
                if debian && !builtin {
                    let gen = "/etc/locale.gen";
                    match (ctx.sys.exists(Path::new(gen)), ctx.find_tool("locale-gen")) {
                        (true, Some(tool)) => {
                            let text = enable_in_locale_gen(&read_text(ctx, gen)?, &locale);
                            ctx.write_config(gen, text.as_bytes(), 0o644)?;
                            ctx.cmd(&[&tool.to_string_lossy()])?;
                        }
                        _ => ctx.warn(format!(
                            "locale {locale} set in {path} but not generated: no /etc/locale.gen or locale-gen (package locales) in the template"
                        )),
                    }
                }
            }
            OsKind::FreeBsd => {
                let dir = format!("/usr/share/locale/{locale}");
                if !ctx.sys.exists(Path::new(&dir)) {
                    bail!("locale: unknown locale {locale:?}: no {dir} in the template");
                }
                let path = configfile.unwrap_or_else(|| FREEBSD_PROFILE.into());
                let body = format!(
                    "# Written by ci-agent (cloud-config locale).\nLANG={locale}; export LANG\n"
                );
                ctx.write_config(&path, body.as_bytes(), 0o644)?;
            }
        }
        log::info!("locale set to {locale}");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::test_env::Env;

    #[test]
    fn debian_sets_lang_and_generates_the_locale() {
        let mut env = Env::new(OsKind::Linux);
        env.sys.put("/etc/debian_version", "12\n");
        env.sys.put("/usr/sbin/locale-gen", "");
        env.sys.put(
            "/etc/locale.gen",
            "# en_GB.UTF-8 UTF-8\n# en_US.UTF-8 UTF-8\n# fr_FR.UTF-8 UTF-8\n",
        );
        env.sys
            .put("/etc/default/locale", "LANG=C.UTF-8\nLC_TIME=C\n");
        env.yaml("locale: en_US.UTF-8\n");
        env.run_ok(&Locale);
        env.run_ok(&Locale);
        assert_eq!(
            env.read("/etc/default/locale"),
            "LANG=en_US.UTF-8\nLC_TIME=C\n"
        );
        assert_eq!(
            env.read("/etc/locale.gen"),
            "# en_GB.UTF-8 UTF-8\nen_US.UTF-8 UTF-8\n# fr_FR.UTF-8 UTF-8\n"
        );
        assert_eq!(
            env.lines(),
            ["/usr/sbin/locale-gen", "/usr/sbin/locale-gen"]
        );
    }

    #[test]
    fn other_linux_uses_locale_conf_or_the_configfile_and_warns_without_locale_gen() {
        let mut env = Env::new(OsKind::Linux);
        env.yaml("locale: de_DE.UTF-8\n");
        assert!(env.run_ok(&Locale).is_empty());
        assert_eq!(env.read("/etc/locale.conf"), "LANG=de_DE.UTF-8\n");
        env.sys.put("/etc/debian_version", "12\n");
        env.yaml("locale: de_DE.UTF-8\nlocale_configfile: /etc/my-locale\n");
        let w = env.run_ok(&Locale);
        assert!(w[0].contains("not generated"), "{w:?}");
        assert_eq!(env.read("/etc/my-locale"), "LANG=de_DE.UTF-8\n");
        env.yaml("locale: false\n");
        env.run_ok(&Locale);
        env.yaml("locale: \"en US\"\n");
        assert!(env.run_err(&Locale).contains("invalid locale name"));
        assert!(env.lines().is_empty());
    }

    #[test]
    fn freebsd_exports_lang_for_login_shells() {
        let mut env = Env::new(OsKind::FreeBsd);
        env.yaml("locale: fr_FR.UTF-8\n");
        assert!(env.run_err(&Locale).contains("unknown locale"));
        env.sys.put("/usr/share/locale/fr_FR.UTF-8/LC_CTYPE", "");
        env.run_ok(&Locale);
        assert!(env
            .read(FREEBSD_PROFILE)
            .contains("LANG=fr_FR.UTF-8; export LANG\n"));
    }

    #[test]
    fn assignments_replace_in_place() {
        assert_eq!(set_assignment("", "LANG", "C"), "LANG=C\n");
        assert_eq!(
            set_assignment("# LANG=x\nLANG=y\nLANG=z\n", "LANG", "C"),
            "# LANG=x\nLANG=C\n"
        );
    }
}
