//! Fuzz the `ds=nocloud;…` parser: the kernel command line and the SMBIOS serial are
//! read at every boot, and the serial is set by whoever launches the VM.
//!
//! Beyond "no panic", the parser's promises: a directory seedfrom is absolute with no
//! `..` component; no value carries the separators it was split on (ASCII whitespace,
//! `;`, `"`); merging two results never loses a field.
#![no_main]

use ci_agent::datasource::cmdline::{self, SeedFrom};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Some(a) = cmdline::parse(&text) else {
        return;
    };
    if let Some(SeedFrom::Dir(d)) = &a.seedfrom {
        assert!(d.is_absolute(), "{d:?}");
        assert!(
            !d.components().any(|c| c == std::path::Component::ParentDir),
            "{d:?}"
        );
    }
    for v in [&a.hostname, &a.instance_id].into_iter().flatten() {
        assert!(!v.is_empty());
        assert!(
            !v.contains(|c: char| c.is_ascii_whitespace() || c == ';' || c == '"'),
            "{v:?}"
        );
    }
    // Field by field, the first wins; nothing set on either side is lost.
    let b = cmdline::parse("ds=nocloud;h=other;i=other-id").unwrap_or_default();
    let m = a.clone().or(b);
    assert!(m.hostname.is_some());
    if a.hostname.is_some() {
        assert_eq!(m.hostname, a.hostname);
    }
    assert!(m.warnings.len() >= a.warnings.len());
});
