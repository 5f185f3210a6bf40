//! Key: `packages`, `package_update`, `package_upgrade`. cloud-init: `cc_package_update_upgrade_install`.
//!
//! `packages` (with `package_update`, `package_upgrade`): install what the seed asks for,
//! late (the network is up). FreeBSD: `pkg` with `ASSUME_ALWAYS_YES=yes`, bootstrapped
//! first when `/usr/local/sbin/pkg` is missing; Linux: the first of apt-get, dnf, yum,
//! apk, zypper, pacman found under the root, with its non-interactive flags. Versions:
//! `name=version` (apt, apk, zypper), `name-version` (dnf, yum, pkg). No package manager
//! → an error naming the packages. Once per instance.

use anyhow::bail;

use super::{Context, Frequency, Module, Stage};
use crate::platform::exec;
use crate::platform::policy::PackageRequest;

pub struct Packages;

/// A package manager run may take long, but not forever.
const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3600);

impl Module for Packages {
    fn name(&self) -> &'static str {
        "packages"
    }
    fn keys(&self) -> &'static [&'static str] {
        &["packages", "package_update", "package_upgrade"]
    }
    fn frequency(&self) -> Frequency {
        Frequency::PerInstance
    }
    fn stage(&self) -> Stage {
        Stage::Late
    }
    fn wanted(&self, ctx: &Context) -> bool {
        let cc = ctx.cc();
        !cc.packages.is_empty()
            || cc.package_update == Some(true)
            || cc.package_upgrade == Some(true)
    }
    fn run(&self, ctx: &mut Context) -> anyhow::Result<()> {
        let cc = ctx.cc();
        let req = PackageRequest {
            update: cc.package_update == Some(true),
            upgrade: cc.package_upgrade == Some(true),
            packages: cc.packages.clone(),
        };
        let sys = ctx.sys;
        let cmds = match ctx.policy().package_commands(&|p| sys.exists(p), &req) {
            Ok(c) => c,
            Err(e) => bail!("{e}"),
        };
        for cmd in cmds {
            let out = exec::run_ok(ctx.sys, &cmd.timeout(TIMEOUT))?;
            exec::log_output("packages", &out);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::userdata::cloud_config::Package;
    use crate::modules::test_env::Env;
    use crate::platform::{CmdOutput, OsKind};

    fn pkgs() -> Vec<Package> {
        vec![
            Package {
                name: "nginx".into(),
                version: None,
            },
            Package {
                name: "jq".into(),
                version: Some("1.6-2.1".into()),
            },
        ]
    }

    #[test]
    fn freebsd_bootstrap_then_install() {
        let mut env = Env::new(OsKind::FreeBsd);
        assert!(env.run(&Packages).is_none());
        env.seed.cloud_config.packages = pkgs();
        env.run_ok(&Packages);
        assert_eq!(
            env.lines(),
            [
                "/usr/sbin/pkg bootstrap -y",
                "pkg install -y nginx jq-1.6-2.1"
            ]
        );
        env.sys.put("/usr/local/sbin/pkg", "");
        env.run_ok(&Packages);
        assert_eq!(env.lines()[2], "pkg install -y nginx jq-1.6-2.1");
    }

    #[test]
    fn linux_detect_and_fail() {
        let mut env = Env::new(OsKind::Linux);
        env.seed.cloud_config.packages = pkgs();
        let e = env.run_err(&Packages);
        assert!(
            e.contains("no package manager found") && e.contains("nginx, jq"),
            "{e}"
        );
        env.sys.put("/usr/bin/apt-get", "");
        env.seed.cloud_config.package_upgrade = Some(true);
        env.run_ok(&Packages);
        let l = env.lines();
        assert_eq!(l.len(), 3);
        assert!(
            l[0].ends_with("update") && l[1].ends_with("dist-upgrade"),
            "{l:?}"
        );
        assert!(l[2].ends_with("install nginx jq=1.6-2.1"), "{l:?}");
        env.sys.on_command(
            &["apt-get"],
            CmdOutput {
                code: Some(100),
                stderr: b"E: Unable to locate package nginx\n".to_vec(),
                ..CmdOutput::default()
            },
        );
        let e = env.run_err(&Packages);
        assert!(
            e.contains("exit code 100") && e.contains("Unable to locate"),
            "{e}"
        );
    }
}
