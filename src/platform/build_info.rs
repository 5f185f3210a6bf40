//! What this binary is, for `--version` and bug reports: the version, the target it was
//! built for, the source commit (set by `build.rs`) and whether HTTPS (`tls`) is in.

/// The crate version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The target triple (`x86_64-unknown-linux-musl`).
pub const TARGET: &str = env!("CI_AGENT_TARGET");
/// `git rev-parse --short=12 HEAD` of the source, or the `CI_AGENT_COMMIT` the release build was
/// given, or `unknown`.
pub const COMMIT: &str = env!("CI_AGENT_COMMIT");
/// Whether the `tls` feature (HTTPS bootstrap and seedfrom URLs) is built in.
pub const TLS: bool = cfg!(feature = "tls");

/// The `--version` text of `bin`: the name and version on the first line (as before, for
/// scripts), then one `key: value` line per fact.
pub fn version_text(bin: &str) -> String {
    format!(
        "{bin} {VERSION}\ntarget: {TARGET}\ncommit: {COMMIT}\ntls: {}\n",
        if TLS { "yes" } else { "no" }
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn version_text_names_every_fact() {
        let t = super::version_text("ci-agent");
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], format!("ci-agent {}", env!("CARGO_PKG_VERSION")));
        assert!(lines[1].starts_with("target: ") && lines[1].len() > "target: ".len());
        assert!(lines[2].starts_with("commit: ") && lines[2].len() > "commit: ".len());
        assert!(lines[3] == "tls: yes" || lines[3] == "tls: no");
    }
}
