//! Key: `resize_rootfs` (`true`, `false`, `noblock`). cloud-init: `cc_resizefs`.
//!
//! The root file system grows to fill its (grown) partition, every boot, early, right
//! after `growpart`. The work is the disk room's ([`crate::disk::grow`]).

use anyhow::anyhow;

use super::{Context, Frequency, Module, Stage};
use crate::disk::grow::{self, ResizeRootfs};

/// `resize_rootfs:`.
pub struct ResizeRootfsModule;

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
