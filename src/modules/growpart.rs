//! Key: `growpart` (`mode`, `devices`, `ignore_growroot_disabled`). cloud-init: `cc_growpart`.
//!
//! The root partition grows into a resized clone's disk, every boot, early (right after
//! `bootcmd` and `boothooks`, before anything fills the disk), cheap when there is nothing
//! to grow. The work is the disk room's ([`crate::disk::grow`]).

use anyhow::anyhow;

use super::{Context, Frequency, Module, Stage};
use crate::disk::grow::{self, Mode};

/// `growpart:`.
pub struct Growpart;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::test_env::Env;
    use crate::platform::OsKind;

    #[test]
    fn placed_after_the_boothooks_and_quiet_under_a_test_root() {
        let names: Vec<&str> = crate::modules::all().iter().map(|m| m.name()).collect();
        let at = names.iter().position(|n| *n == "boothooks").unwrap();
        assert_eq!(names[at + 1..at + 3], ["growpart", "resize_rootfs"]);
        // No mount table under a --root prefix: nothing to look at, nothing recorded.
        for os in [OsKind::Linux, OsKind::FreeBsd] {
            let env = Env::new(os);
            assert!(env.run(&Growpart).is_none());
            assert!(env
                .run(&crate::modules::resize_rootfs::ResizeRootfsModule)
                .is_none());
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
        let err = env.run_err(&crate::modules::resize_rootfs::ResizeRootfsModule);
        assert!(err.contains("resize_rootfs"), "{err}");
    }
}
