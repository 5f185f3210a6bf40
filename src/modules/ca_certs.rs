//! Key: `ca_certs` (`trusted`, `remove_defaults`; also spelled `ca-certs`). cloud-init: `cc_ca_certs`.
//!
//! Adds the seed's CA certificates (PEM) to the system trust store, one file per
//! certificate (`ci-agent-ca-<n>.crt`/`.pem`; files of an earlier, longer list are
//! removed), then rebuilds the store with the tool of the template:
//!
//! - Debian family: `/usr/local/share/ca-certificates/` + `update-ca-certificates`;
//!   `remove_defaults: true` empties `/etc/ca-certificates.conf` (the list of distribution
//!   certificates) and rebuilds with `--fresh`, so only ours stay.
//! - RHEL family: `/etc/pki/ca-trust/source/anchors/` + `update-ca-trust`;
//!   `remove_defaults` is refused there (the distribution bundle is not a list to edit).
//! - FreeBSD: `/usr/share/certs/trusted/` + `certctl rehash`; `remove_defaults` first
//!   `certctl untrust`s every other certificate of that directory.
//!
//! A template without the tool is a module error naming it. Each entry must hold a PEM
//! certificate (`-----BEGIN CERTIFICATE-----`), or the module fails naming
//! `ca_certs.trusted[i]` before anything is written. Late pass (before `packages`, so a
//! private mirror's CA is trusted for them), once per instance.

use std::path::Path;

use anyhow::bail;

use super::{Context, Frequency, Module, Stage};
use crate::platform::OsKind;

pub struct CaCerts;

const KNOWN: &[&str] = &["trusted", "remove_defaults"];
const PREFIX: &str = "ci-agent-ca-";
const PEM_BEGIN: &str = "-----BEGIN CERTIFICATE-----";
const PEM_END: &str = "-----END CERTIFICATE-----";

struct Store {
    dir: &'static str,
    ext: &'static str,
    tool: &'static str,
}

fn store(ctx: &Context) -> anyhow::Result<Store> {
    match ctx.os {
        OsKind::FreeBsd => {
            if ctx.find_tool("certctl").is_none() {
                bail!("ca_certs: certctl is not in the template");
            }
            Ok(Store {
                dir: "/usr/share/certs/trusted",
                ext: "pem",
                tool: "certctl",
            })
        }
        OsKind::Linux => {
            if ctx.find_tool("update-ca-certificates").is_some() {
                Ok(Store {
                    dir: "/usr/local/share/ca-certificates",
                    ext: "crt",
                    tool: "update-ca-certificates",
                })
            } else if ctx.find_tool("update-ca-trust").is_some() {
                Ok(Store {
                    dir: "/etc/pki/ca-trust/source/anchors",
                    ext: "crt",
                    tool: "update-ca-trust",
                })
            } else {
                bail!("ca_certs: neither update-ca-certificates (package ca-certificates) nor update-ca-trust is in the template")
            }
        }
    }
}

impl Module for CaCerts {
    fn name(&self) -> &'static str {
        "ca_certs"
    }
    fn frequency(&self) -> Frequency {
        Frequency::PerInstance
    }
    fn stage(&self) -> Stage {
        Stage::Late
    }
    fn wanted(&self, ctx: &Context) -> bool {
        ctx.key("ca_certs")
            .or_else(|| ctx.key("ca-certs"))
            .is_some()
    }
    fn run(&self, ctx: &mut Context) -> anyhow::Result<()> {
        let Some(v) = ctx.key("ca_certs").or_else(|| ctx.key("ca-certs")) else {
            return Ok(());
        };
        v.mapping()?;
        for w in v.unknown_keys(KNOWN) {
            ctx.warn(w);
        }
        let remove_defaults = match v.get("remove_defaults") {
            Some(b) => b.bool()?,
            None => false,
        };
        let mut certs = Vec::new();
        if let Some(t) = v.get("trusted") {
            let items = match t.node.value {
                crate::formats::yaml::NodeValue::Str(_) => vec![t.clone()],
                _ => t.items()?,
            };
            for item in items {
                let pem = item.str()?;
                let (Some(b), Some(e)) = (pem.find(PEM_BEGIN), pem.rfind(PEM_END)) else {
                    return Err(item
                        .err("expected a PEM certificate (-----BEGIN CERTIFICATE-----)")
                        .into());
                };
                if e < b {
                    return Err(item
                        .err("expected a PEM certificate (-----BEGIN CERTIFICATE-----)")
                        .into());
                }
                let mut body = pem.trim().to_owned();
                body.push('\n');
                certs.push(body);
            }
        }
        let st = store(ctx)?;
        if remove_defaults && st.tool == "update-ca-trust" {
            bail!("ca_certs: remove_defaults is not supported with update-ca-trust");
        }
        let dir = Path::new(st.dir);
        if !certs.is_empty() {
            ctx.sys.create_dir_all(dir, 0o755, None)?;
        }
        let mut ours = Vec::new();
        for (i, pem) in certs.iter().enumerate() {
            let path = format!("{}/{PREFIX}{i}.{}", st.dir, st.ext);
            ctx.write_config(&path, pem.as_bytes(), 0o644)?;
            ours.push(format!("{PREFIX}{i}.{}", st.ext));
        }
        // Files of an earlier, longer list.
        let present = if ctx.sys.exists(dir) {
            ctx.sys.read_dir(dir)?
        } else {
            Vec::new()
        };
        for name in present
            .iter()
            .filter(|n| n.starts_with(PREFIX) && !ours.contains(n))
        {
            ctx.sys.remove_file(&dir.join(name))?;
        }
        match st.tool {
            "update-ca-certificates" => {
                if remove_defaults {
                    ctx.write_config(
                        "/etc/ca-certificates.conf",
                        b"# Emptied by ci-agent (cloud-config ca_certs.remove_defaults).\n",
                        0o644,
                    )?;
                    ctx.cmd(&["update-ca-certificates", "--fresh"])?;
                } else {
                    ctx.cmd(&["update-ca-certificates"])?;
                }
            }
            "update-ca-trust" => {
                ctx.cmd(&["update-ca-trust"])?;
            }
            _ => {
                if remove_defaults {
                    for name in present.iter().filter(|n| !n.starts_with(PREFIX)) {
                        let p = dir.join(name);
                        ctx.cmd(&["certctl", "untrust", &p.to_string_lossy()])?;
                    }
                }
                ctx.cmd(&["certctl", "rehash"])?;
            }
        }
        log::info!("ca_certs: {} certificate(s) trusted", certs.len());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::test_env::Env;
    use crate::platform::System;

    const SEED: &str = "ca_certs:\n  trusted:\n  - |\n    -----BEGIN CERTIFICATE-----\n    MIIB\n    -----END CERTIFICATE-----\n  - |\n    -----BEGIN CERTIFICATE-----\n    MIIC\n    -----END CERTIFICATE-----\n";

    #[test]
    fn debian_writes_one_file_per_cert_and_updates() {
        let mut env = Env::new(OsKind::Linux);
        env.sys.put("/usr/sbin/update-ca-certificates", "");
        env.sys.put(
            "/usr/local/share/ca-certificates/ci-agent-ca-7.crt",
            "stale",
        );
        env.sys
            .put("/usr/local/share/ca-certificates/site.crt", "theirs");
        env.yaml(SEED);
        env.run_ok(&CaCerts);
        assert_eq!(
            env.read("/usr/local/share/ca-certificates/ci-agent-ca-0.crt"),
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
        );
        assert!(env
            .read("/usr/local/share/ca-certificates/ci-agent-ca-1.crt")
            .contains("MIIC"));
        assert!(!env.sys.exists(Path::new(
            "/usr/local/share/ca-certificates/ci-agent-ca-7.crt"
        )));
        assert_eq!(
            env.read("/usr/local/share/ca-certificates/site.crt"),
            "theirs"
        );
        assert_eq!(env.lines(), ["update-ca-certificates"]);

        env.yaml("ca-certs: {remove_defaults: true}\n");
        env.run_ok(&CaCerts);
        assert!(env.read("/etc/ca-certificates.conf").starts_with('#'));
        assert_eq!(env.lines()[1], "update-ca-certificates --fresh");
    }

    #[test]
    fn rhel_uses_update_ca_trust_and_a_missing_tool_is_an_error() {
        let mut env = Env::new(OsKind::Linux);
        env.yaml(SEED);
        let e = env.run_err(&CaCerts);
        assert!(e.contains("update-ca-certificates"), "{e}");
        env.sys.put("/usr/bin/update-ca-trust", "");
        env.run_ok(&CaCerts);
        assert!(env.sys.exists(Path::new(
            "/etc/pki/ca-trust/source/anchors/ci-agent-ca-1.crt"
        )));
        assert_eq!(env.lines(), ["update-ca-trust"]);
        env.yaml("ca_certs: {remove_defaults: true}\n");
        assert!(env.run_err(&CaCerts).contains("not supported"));
    }

    #[test]
    fn freebsd_uses_certctl() {
        let mut env = Env::new(OsKind::FreeBsd);
        env.sys.put("/usr/sbin/certctl", "");
        env.sys.put("/usr/share/certs/trusted/Some_Root.pem", "x");
        env.yaml(&format!("{SEED}  remove_defaults: true\n"));
        env.run_ok(&CaCerts);
        assert!(env
            .sys
            .exists(Path::new("/usr/share/certs/trusted/ci-agent-ca-0.pem")));
        assert_eq!(
            env.lines(),
            [
                "certctl untrust /usr/share/certs/trusted/Some_Root.pem",
                "certctl rehash"
            ]
        );
    }

    #[test]
    fn a_non_pem_entry_fails_before_writing() {
        let mut env = Env::new(OsKind::Linux);
        env.sys.put("/usr/sbin/update-ca-certificates", "");
        env.yaml("ca_certs:\n  trusted:\n  - not a cert\n");
        let e = env.run_err(&CaCerts);
        assert!(
            e.contains("user-data:3:5: ca_certs.trusted[0]: expected a PEM certificate"),
            "{e}"
        );
        assert!(env.lines().is_empty());
        assert!(!env
            .sys
            .exists(Path::new("/usr/local/share/ca-certificates")));
    }
}
