//! Fuzz `ci-seed serve`, the host-side HTTP endpoint a guest talks to: the request-line
//! parser, percent-decoding and path resolution against a served directory that holds
//! symlinks pointing out of it, and the response (`serve::respond`, what both `--stdio`
//! and `--listen` call once the head is read).
//!
//! Not `serve::serve_one`: it reads the head on a detached thread (by design: `--stdio`
//! exits after one request), which LeakSanitizer reports as a leak when the fuzzer checks
//! before that thread has finished exiting. The head reader itself is covered by the unit
//! and property tests in `src/seed/serve.rs`.
//!
//! Invariant checked beyond "no panic": a 200 response only ever carries the bytes of a
//! file inside the served tree (the secret outside it never leaks, whatever the target).
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use ci_agent::seed::serve::{self, Site};
use libfuzzer_sys::fuzz_target;

const SECRET: &[u8] = b"SECRET-OUTSIDE-THE-SERVED-TREE";

struct Fixture {
    site: Site,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let base = std::env::temp_dir().join(format!("ci-agent-fuzz-serve-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let root: PathBuf = base.join("www");
        let seed = root.join("vm1");
        std::fs::create_dir_all(&seed).expect("fixture dir");
        std::fs::write(root.join("vm-bootstrap"), b"#!/bin/sh\necho hi\n").expect("fixture");
        std::fs::write(seed.join("meta-data"), b"instance-id: i-1\n").expect("fixture");
        std::fs::write(seed.join("user-data"), b"#cloud-config\n").expect("fixture");
        std::fs::write(base.join("secret"), SECRET).expect("fixture");
        let _ = std::os::unix::fs::symlink(base.join("secret"), root.join("escape"));
        let _ = std::os::unix::fs::symlink(&base, seed.join("up"));
        Fixture {
            site: Site::dir(&root).expect("fixture site"),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = serve::target_segments(text);
    }
    let _ = serve::parse_request(data);
    let mut out = Vec::new();
    let _ = serve::respond(&f.site, data, &mut out);
    assert!(
        !out.windows(SECRET.len()).any(|w| w == SECRET),
        "a file outside the served tree was sent"
    );
});
