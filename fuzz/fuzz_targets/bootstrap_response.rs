//! Fuzz what the agent does with an HTTP response it did not write: the vm-bootstrap
//! attempt (`bootstrap::run`: fetch, size and status checks, the empty-script rule, the
//! `#!` interpreter choice, the counter and result files), a NoCloud `seedfrom` fetch
//! (`http::fetch_nocloud`, then the seed parser) and user-data `#include` fetches
//! (`http::fetch_includes_lenient`).
//!
//! The input is the raw byte stream a server on 127.0.0.1 answers every connection with
//! (status line, headers, body: chunked, close-delimited, redirects, garbage); its first
//! byte picks the path. The guest is the recording `FakeSystem` under a temp directory,
//! so the script "runs" as a recorded command.
//!
//! Invariants beyond "no panic": no body longer than the limit is ever accepted (by any
//! path, the include budget included); a bootstrap pass with a working state directory
//! never errors, counts exactly one attempt (the limit is 1), and never leaves the script
//! file behind; a script is only run when the body was non-empty.
#![no_main]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use ci_agent::platform::config::Config;
use ci_agent::datasource::bootstrap::{self, Outcome};
use ci_agent::datasource::http::{self, HttpLimits};
use ci_agent::platform::fake::FakeSystem;
use ci_agent::platform::system::{Cmd, CmdOutput};
use ci_agent::platform::OsKind;
use ci_agent::formats::userdata;
use libfuzzer_sys::fuzz_target;

/// Small, so "too large" is reachable by the fuzzer.
const MAX_BYTES: u64 = 1024;
const DIR: &str = "/root/bootstrap";

struct Fixture {
    base: String,
    reply: Arc<Mutex<Vec<u8>>>,
    work: PathBuf,
    /// Threads of this process once the server runs (libFuzzer's own included).
    threads: usize,
}

/// Threads of this process now.
fn live_threads() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count())
}

/// ureq resolves every host on a detached thread of its own when a timeout is set. Wait
/// until those have exited: LeakSanitizer, which runs right after an input, reports the
/// thread-exit bookkeeping of a thread still on its way out as a leak (seen once, after
/// 48,323 inputs; the input ran clean on its own).
fn settle(f: &Fixture) {
    for _ in 0..50_000 {
        if live_threads() <= f.threads {
            return;
        }
        std::thread::sleep(Duration::from_micros(100));
    }
}

/// Read a request head (bounded) and answer with the current reply, then close.
fn serve(l: TcpListener, reply: Arc<Mutex<Vec<u8>>>) {
    for conn in l.incoming() {
        let Ok(mut s) = conn else { continue };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
        let mut head = Vec::new();
        let mut b = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
            match s.read(&mut b) {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&b[..n]),
            }
        }
        let bytes = reply.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let _ = s.write_all(&bytes);
        let _ = s.shutdown(std::net::Shutdown::Both);
    }
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let l = TcpListener::bind("127.0.0.1:0").expect("fixture: bind");
        let base = format!("http://{}", l.local_addr().expect("fixture: addr"));
        let reply: Arc<Mutex<Vec<u8>>> = Arc::default();
        let r = reply.clone();
        std::thread::spawn(move || serve(l, r));
        // On tmpfs when there is one: the guest's state writes fsync, and on a disk that
        // is most of an execution.
        let shm = std::path::Path::new("/dev/shm");
        let tmp = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        let work = tmp.join(format!("ci-agent-fuzz-bootstrap-{}", std::process::id()));
        Fixture {
            base,
            reply,
            work,
            threads: live_threads(),
        }
    })
}

fn limits() -> HttpLimits {
    HttpLimits {
        connect_timeout: Duration::from_secs(1),
        timeout: Duration::from_secs(2),
        max_bytes: MAX_BYTES,
    }
}

/// One bootstrap pass against the reply, on a fresh guest directory.
fn bootstrap_pass(f: &Fixture) {
    let root = f.work.join("guest");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).expect("fixture: guest root");
    let sys = FakeSystem::new(&root);
    sys.put(format!("{DIR}/start-bootstrap"), "");
    let host_root = root.clone();
    sys.on_command_fn(move |cmd: &Cmd| {
        let script = cmd.argv.last()?;
        let body = std::fs::read(host_root.join(script.trim_start_matches('/'))).ok()?;
        assert!(!body.is_empty(), "an empty script was run");
        assert!(body.len() as u64 <= MAX_BYTES, "{} bytes ran", body.len());
        // Succeed or fail on the script's first byte, to reach both endings.
        Some(CmdOutput {
            code: Some(i32::from(body[0] & 1)),
            ..CmdOutput::default()
        })
    });
    let mut cfg = Config::defaults(OsKind::Linux).bootstrap;
    cfg.url = format!("{}/vm-bootstrap", f.base);
    cfg.dir = PathBuf::from(DIR);
    cfg.max_retry = 1;
    cfg.connect_timeout_secs = 1;
    cfg.timeout_secs = 2;
    cfg.max_bytes = MAX_BYTES;
    let out = bootstrap::run(&sys, &cfg).expect("bootstrap pass with a working state dir");
    assert!(
        matches!(
            out,
            Outcome::Succeeded { attempt: 1 }
                | Outcome::LimitReached {
                    attempts: 1,
                    max: 1
                }
        ),
        "{out:?}"
    );
    assert_eq!(
        sys.read_string(format!("{DIR}/retry-amount")).as_deref(),
        Some("1\n")
    );
    assert!(sys
        .read_string(format!("{DIR}/vm-bootstrap.script"))
        .is_none());
    assert!(sys
        .read_string(format!("{DIR}/bootstrap-last-result"))
        .is_some());
    assert!(sys.commands().len() <= 1);
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, reply)) = data.split_first() else {
        return;
    };
    // Redirects may only stay on this server: an absolute URL elsewhere would spend the
    // run on connect and resolver timeouts, not on our code.
    let lower = reply.to_ascii_lowercase();
    if lower.windows(2).any(|w| w == b"//") || lower.windows(5).any(|w| w == b"http:") {
        return;
    }
    let f = fixture();
    *f.reply.lock().unwrap_or_else(|e| e.into_inner()) = reply.to_vec();
    match sel % 3 {
        0 => bootstrap_pass(f),
        1 => {
            if let Ok(seed) = http::fetch_nocloud(&limits(), &format!("{}/seed", f.base)) {
                for body in seed.files.values() {
                    assert!(body.len() as u64 <= MAX_BYTES);
                }
                let _ = userdata::parse_seed_with(&seed, &userdata::Limits::default());
            }
        }
        _ => {
            let urls: Vec<String> = ["/a", "/b", "/c"]
                .iter()
                .map(|p| format!("{}{p}", f.base))
                .collect();
            let (out, problems) = http::fetch_includes_lenient(&urls, &limits());
            assert_eq!(out.len() + problems.len(), urls.len());
            let total: u64 = out.iter().map(|(_, b)| b.len() as u64).sum();
            assert!(total <= MAX_BYTES, "includes read {total} bytes");
        }
    }
    settle(f);
});
