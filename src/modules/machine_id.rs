//! Key: none (config `identity.reset_machine_id`). cloud-init: none (`cloud-init clean --machine-id` empties it).
//!
//! `machine_id` (config `identity.reset_machine_id`): a clone must not share the
//! template's machine identity. Linux: a fresh random `/etc/machine-id` (32 hex digits,
//! 0444, systemd's format), and `/var/lib/dbus/machine-id` replaced when it is a copy (a
//! symlink to /etc/machine-id is left alone). FreeBSD: a fresh UUID in `/etc/hostid` and
//! the same without dashes in `/var/db/machine-id`, as `rc.d/hostid_save` writes them,
//! and `kern.hostuuid` set to it. Runs once per instance, early.

use anyhow::Context as _;

use super::{Context, Frequency, Module, Stage};
use crate::platform::exec;
use crate::platform::{FileKind, WriteOpts};

pub struct MachineId;

impl Module for MachineId {
    fn name(&self) -> &'static str {
        "machine_id"
    }
    fn frequency(&self) -> Frequency {
        Frequency::PerInstance
    }
    fn stage(&self) -> Stage {
        Stage::Early
    }
    fn wanted(&self, ctx: &Context) -> bool {
        ctx.config.identity.reset_machine_id
    }
    fn run(&self, ctx: &mut Context) -> anyhow::Result<()> {
        let mut bytes = [0u8; 16];
        ctx.sys
            .random(&mut bytes)
            .context("getting random bytes for a machine id")?;
        let id = uuid::Builder::from_random_bytes(bytes).into_uuid();
        let policy = ctx.policy();
        let files = policy.machine_id_files(&id);
        for f in &files {
            if let Some(parent) = f.path.parent() {
                ctx.sys
                    .create_dir_all(parent, 0o755, None)
                    .with_context(|| format!("creating {}", parent.display()))?;
            }
            ctx.sys
                .write_file(&f.path, f.content.as_bytes(), WriteOpts::mode(f.mode))
                .with_context(|| format!("writing {}", f.path.display()))?;
            log::info!("new machine identity in {}", f.path.display());
        }
        if let (Some(copy), Some(first)) = (policy.machine_id_copy(), files.first()) {
            let st = ctx
                .sys
                .lstat(&copy)
                .with_context(|| format!("checking {}", copy.display()))?;
            if matches!(st, Some(s) if s.kind == FileKind::File) {
                ctx.sys
                    .write_file(&copy, first.content.as_bytes(), WriteOpts::mode(0o444))
                    .with_context(|| format!("writing {}", copy.display()))?;
            }
        }
        for cmd in policy.machine_id_live(&id) {
            exec::run_ok(ctx.sys, &cmd)?;
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
    fn linux_new_id_replaces_dbus_copy_keeps_symlink() {
        let env = Env::new(OsKind::Linux);
        env.sys
            .put("/etc/machine-id", "0123456789abcdef0123456789abcdef\n");
        env.sys.put(
            "/var/lib/dbus/machine-id",
            "0123456789abcdef0123456789abcdef\n",
        );
        env.run_ok(&MachineId);
        let id = env.read("/etc/machine-id");
        assert_eq!(id.len(), 33);
        assert!(id.trim_end().bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(id, "0123456789abcdef0123456789abcdef\n");
        assert_eq!(env.mode("/etc/machine-id"), 0o444);
        assert_eq!(env.read("/var/lib/dbus/machine-id"), id);

        let env2 = Env::new(OsKind::Linux);
        std::fs::create_dir_all(crate::platform::System::root(&env2.sys).join("var/lib/dbus"))
            .unwrap();
        std::os::unix::fs::symlink(
            "/etc/machine-id",
            crate::platform::System::root(&env2.sys).join("var/lib/dbus/machine-id"),
        )
        .unwrap();
        env2.run_ok(&MachineId);
        let st = crate::platform::System::lstat(
            &env2.sys,
            std::path::Path::new("/var/lib/dbus/machine-id"),
        )
        .unwrap()
        .unwrap();
        assert_eq!(st.kind, FileKind::Symlink);
    }

    #[test]
    fn freebsd_hostid_and_machine_id_agree() {
        let env = Env::new(OsKind::FreeBsd);
        env.run_ok(&MachineId);
        let hostid = env.read("/etc/hostid");
        let mid = env.read("/var/db/machine-id");
        assert_eq!(hostid.len(), 37);
        assert_eq!(hostid.replace('-', ""), mid);
        assert_eq!(
            env.lines(),
            [format!("sysctl kern.hostuuid={}", hostid.trim_end())]
        );
    }

    #[test]
    fn switched_off() {
        let mut env = Env::new(OsKind::Linux);
        env.config.identity.reset_machine_id = false;
        assert!(env.run(&MachineId).is_none());
    }
}
