//! Build facts for `--version` (src/platform/build_info.rs): the target triple and the
//! source commit. The commit comes from `CI_AGENT_COMMIT` when set (a release built from
//! a tarball), else from `git rev-parse` in the source tree, else "unknown".
//!
//! Also one link flag for the static x86_64 musl binaries: see [`pack_relative_relocs`].

use std::process::Command;

fn main() {
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".into());
    println!("cargo:rustc-env=CI_AGENT_TARGET={target}");
    println!("cargo:rerun-if-env-changed=CI_AGENT_COMMIT");
    let commit = std::env::var("CI_AGENT_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(git_commit)
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=CI_AGENT_COMMIT={commit}");
    pack_relative_relocs(&target);
}

/// The static x86_64 musl binaries are static-pie: at start, musl's rcrt1 relocates the
/// image itself, from ~5,300 24-byte `R_X86_64_RELATIVE` entries (124 KiB of `.rela.dyn`,
/// every vtable and string-table pointer). `-z pack-relative-relocs` stores them as a
/// DT_RELR bitmap instead (a few hundred bytes), which musl ≥ 1.2.4 (the rustup target's)
/// applies the same way: same addresses, same ASLR, ~120 KiB less binary. Needs GNU ld ≥
/// 2.38 (Debian 12 has 2.40) or lld ≥ 15 behind `cc`. Only the binaries get it.
fn pack_relative_relocs(target: &str) {
    if target == "x86_64-unknown-linux-musl" {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// `git rev-parse --short=12 HEAD`, and the files whose change means a new commit, so
/// cargo reruns this script then. (No `-dirty` mark: cargo would not rerun the script when
/// a source file changes, so the mark would go stale.)
fn git_commit() -> Option<String> {
    let git = |args: &[&str]| -> Option<String> {
        let out = Command::new("git").args(args).output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let head = git(&["rev-parse", "--short=12", "HEAD"])?;
    // A worktree's HEAD and the ref it points to live in different git directories.
    if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
        println!("cargo:rerun-if-changed={dir}/HEAD");
        println!("cargo:rerun-if-changed={dir}/logs/HEAD");
    }
    // Only when it exists: cargo takes a missing rerun-if-changed file as changed, and
    // then rebuilds the crate on every build.
    if let Some(dir) = git(&["rev-parse", "--git-common-dir"]) {
        let packed = format!("{dir}/packed-refs");
        if std::path::Path::new(&packed).exists() {
            println!("cargo:rerun-if-changed={packed}");
        }
    }
    Some(head)
}
