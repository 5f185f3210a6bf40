//! The `growpart` and `resize_rootfs` keys as modules of the run. The work is the disk
//! room's ([`crate::disk::grow`]); modules and disk share a layer and do not import each
//! other, so the two modules are put together here, above both, and placed in the run
//! order right after `bootcmd` and `boothooks` (cloud-init runs them early in its init
//! stage too), before anything fills the disk. Every boot: the steps are cheap when there
//! is nothing to grow.

use anyhow::anyhow;

use crate::disk::grow::{self, Mode, ResizeRootfs};
use crate::modules::{Context, Frequency, Module, Stage};

/// `growpart:`.
pub struct Growpart;

/// `resize_rootfs:`.
pub struct ResizeRootfsModule;

/// The run's modules with these two placed after `boothooks`.
pub fn with_disk_modules(mut modules: Vec<Box<dyn Module>>) -> Vec<Box<dyn Module>> {
    let at = modules
        .iter()
        .position(|m| m.name() == "boothooks")
        .map_or(0, |i| i + 1);
    modules.insert(at, Box::new(ResizeRootfsModule));
    modules.insert(at, Box::new(Growpart));
    modules
}

impl Module for Growpart {
    fn name(&self) -> &'static str {
        "growpart"
    }
    fn frequency(&self) -> Frequency {
        Frequency::PerBoot
    }
    fn stage(&self) -> Stage {
        Stage::Early
    }
    fn wanted(&self, ctx: &Context) -> bool {
        match grow::growpart_config(ctx.key("growpart")) {
            Err(_) => true,
            Ok((cfg, _)) => cfg.mode != Mode::Off && grow::can_look(ctx.sys, ctx.os),
        }
    }
    fn run(&self, ctx: &mut Context) -> anyhow::Result<()> {
        let (cfg, warnings) = grow::growpart_config(ctx.key("growpart")).map_err(|e| anyhow!(e))?;
        for w in warnings {
            ctx.warn(w);
        }
        let report = grow::growpart(ctx.sys, ctx.os, &cfg)?;
        for w in report.warnings {
            ctx.warn(w);
        }
        Ok(())
    }
}

impl Module for ResizeRootfsModule {
    fn name(&self) -> &'static str {
        "resize_rootfs"
    }
    fn frequency(&self) -> Frequency {
        Frequency::PerBoot
    }
    fn stage(&self) -> Stage {
        Stage::Early
    }
    fn wanted(&self, ctx: &Context) -> bool {
        match grow::resize_rootfs_config(ctx.key("resize_rootfs")) {
            Err(_) => true,
            Ok(mode) => mode != ResizeRootfs::No && grow::can_look(ctx.sys, ctx.os),
        }
    }
    fn run(&self, ctx: &mut Context) -> anyhow::Result<()> {
        let mode = grow::resize_rootfs_config(ctx.key("resize_rootfs")).map_err(|e| anyhow!(e))?;
        let report = grow::resize_rootfs(ctx.sys, ctx.os, mode)?;
        for w in report.warnings {
            ctx.warn(w);
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
    fn placed_after_the_boothooks_and_quiet_under_a_test_root() {
        let names: Vec<&str> = with_disk_modules(crate::modules::all())
            .iter()
            .map(|m| m.name())
            .collect();
        let at = names.iter().position(|n| *n == "boothooks").unwrap();
        assert_eq!(names[at + 1..at + 3], ["growpart", "resize_rootfs"]);
        // No mount table under a --root prefix: nothing to look at, nothing recorded.
        for os in [OsKind::Linux, OsKind::FreeBsd] {
            let env = Env::new(os);
            assert!(env.run(&Growpart).is_none());
            assert!(env.run(&ResizeRootfsModule).is_none());
        }
    }

    #[test]
    fn a_bad_value_fails_the_module_naming_the_key() {
        let mut env = Env::new(OsKind::Linux);
        let tree =
            crate::formats::yaml::parse_node("growpart: {mode: sideways}\n", "user-data").unwrap();
        env.seed.cloud_config_tree = Some(tree);
        let err = env.run_err(&Growpart);
        assert!(err.contains("growpart.mode"), "{err}");
        let tree = crate::formats::yaml::parse_node("resize_rootfs: later\n", "user-data").unwrap();
        env.seed.cloud_config_tree = Some(tree);
        let err = env.run_err(&ResizeRootfsModule);
        assert!(err.contains("resize_rootfs"), "{err}");
    }
}
