//! Key: `keyboard` (`layout`, `model`, `variant`, `options`). cloud-init: `cc_keyboard`.
//!
//! `layout` is required; `model` defaults to `pc105`, `variant` and `options` to empty,
//! as in cloud-init.
//!
//! - Debian (`/etc/debian_version`): `/etc/default/keyboard` (`XKBMODEL`, `XKBLAYOUT`,
//!   `XKBVARIANT`, `XKBOPTIONS`, `BACKSPACE="guess"`), read by console-setup and X at boot.
//! - Other Linux: `localectl set-x11-keymap LAYOUT MODEL VARIANT OPTIONS` (systemd-localed
//!   writes the files and converts the console keymap); no `localectl` is an error naming
//!   it.
//! - FreeBSD: `keymap="<layout>[.<variant>].kbd"` in `/etc/rc.conf.d/syscons` — the keymap
//!   must exist in `/usr/share/vt/keymaps/`. (rc.d/syscons, the script that loads `keymap`,
//!   reads only `/etc/rc.conf` and `/etc/rc.conf.d/syscons`: a file named `keymap` there
//!   would never be read.) It takes effect when rc runs that script, at the next boot.
//!
//! Late (localectl talks to systemd-localed over D-Bus), once per instance.

use std::path::Path;

use anyhow::bail;

use super::{Context, Frequency, Module, Stage};
use crate::formats::userdata::value::KeyVal;
use crate::platform::OsKind;

pub struct Keyboard;

const KNOWN: &[&str] = &["layout", "model", "variant", "options"];

/// A keyboard setting: letters, digits and `_-:,.+()` only (it ends up in a shell-sourced
/// file and in argv).
fn setting(v: &KeyVal) -> anyhow::Result<String> {
    let s = v.line(128)?;
    if !s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_-:,.+()".contains(c))
    {
        return Err(v
            .err("only letters, digits and _-:,.+() are allowed")
            .into());
    }
    Ok(s)
}

impl Module for Keyboard {
    fn name(&self) -> &'static str {
        "keyboard"
    }
    fn frequency(&self) -> Frequency {
        Frequency::PerInstance
    }
    fn stage(&self) -> Stage {
        Stage::Late
    }
    fn wanted(&self, ctx: &Context) -> bool {
        ctx.key("keyboard").is_some()
    }
    fn run(&self, ctx: &mut Context) -> anyhow::Result<()> {
        let Some(v) = ctx.key("keyboard") else {
            return Ok(());
        };
        v.mapping()?;
        for w in v.unknown_keys(KNOWN) {
            ctx.warn(w);
        }
        let Some(layout) = v.get("layout") else {
            return Err(v.err("missing 'layout'").into());
        };
        let layout = setting(&layout)?;
        let opt = |k: &str, d: &str| -> anyhow::Result<String> {
            v.get(k).map_or(Ok(d.to_owned()), |x| setting(&x))
        };
        let model = opt("model", "pc105")?;
        let variant = opt("variant", "")?;
        let options = opt("options", "")?;
        match ctx.os {
            OsKind::Linux if ctx.sys.exists(Path::new("/etc/debian_version")) => {
                let body = format!(
                    "# Written by ci-agent (cloud-config keyboard).\nXKBMODEL=\"{model}\"\nXKBLAYOUT=\"{layout}\"\nXKBVARIANT=\"{variant}\"\nXKBOPTIONS=\"{options}\"\n\nBACKSPACE=\"guess\"\n"
                );
                ctx.write_config("/etc/default/keyboard", body.as_bytes(), 0o644)?;
            }
            OsKind::Linux => {
                let Some(tool) = ctx.find_tool("localectl") else {
                    bail!("keyboard: not Debian and localectl is not in the template");
                };
                ctx.cmd(&[
                    &tool.to_string_lossy(),
                    "set-x11-keymap",
                    &layout,
                    &model,
                    &variant,
                    &options,
                ])?;
            }
            OsKind::FreeBsd => {
                let name = if variant.is_empty() {
                    format!("{layout}.kbd")
                } else {
                    format!("{layout}.{variant}.kbd")
                };
                let file = format!("/usr/share/vt/keymaps/{name}");
                if !ctx.sys.exists(Path::new(&file)) {
                    bail!("keyboard: no keymap {file} in the template for layout {layout:?} variant {variant:?}");
                }
                ctx.write_config(
                    "/etc/rc.conf.d/syscons",
                    format!("keymap=\"{name}\"\n").as_bytes(),
                    0o644,
                )?;
            }
        }
        log::info!("keyboard layout {layout} set");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::test_env::Env;

    #[test]
    fn debian_writes_etc_default_keyboard() {
        let mut env = Env::new(OsKind::Linux);
        env.sys.put("/etc/debian_version", "12\n");
        env.yaml("keyboard: {layout: de, variant: nodeadkeys}\n");
        env.run_ok(&Keyboard);
        let t = env.read("/etc/default/keyboard");
        assert!(t.contains("XKBMODEL=\"pc105\"\nXKBLAYOUT=\"de\"\nXKBVARIANT=\"nodeadkeys\"\nXKBOPTIONS=\"\"\n"), "{t}");
        assert!(env.lines().is_empty());
    }

    #[test]
    fn other_linux_uses_localectl_or_fails_naming_it() {
        let mut env = Env::new(OsKind::Linux);
        env.yaml("keyboard: {layout: us, model: pc104, options: 'ctrl:nocaps'}\n");
        assert!(env.run_err(&Keyboard).contains("localectl"));
        env.sys.put("/usr/bin/localectl", "");
        env.run_ok(&Keyboard);
        assert_eq!(
            env.lines(),
            ["/usr/bin/localectl set-x11-keymap us pc104  ctrl:nocaps"]
        );
        env.yaml("keyboard: {model: pc105}\n");
        assert!(env.run_err(&Keyboard).contains("missing 'layout'"));
        env.yaml("keyboard: {layout: 'us\"; rm -rf /'}\n");
        assert!(env
            .run_err(&Keyboard)
            .contains("keyboard.layout: only letters"));
    }

    #[test]
    fn freebsd_sets_the_vt_keymap_for_rc_d_syscons() {
        let mut env = Env::new(OsKind::FreeBsd);
        env.yaml("keyboard: {layout: fr, variant: acc}\n");
        assert!(env
            .run_err(&Keyboard)
            .contains("no keymap /usr/share/vt/keymaps/fr.acc.kbd"));
        env.sys.put("/usr/share/vt/keymaps/fr.acc.kbd", "");
        env.run_ok(&Keyboard);
        assert_eq!(
            env.read("/etc/rc.conf.d/syscons"),
            "keymap=\"fr.acc.kbd\"\n"
        );
    }
}
