//! The HTTP client and the vm-bootstrap retry loop against a scripted HTTP server on
//! 127.0.0.1 (started here), with the recording `FakeSystem` standing in for the guest.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ci_agent::datasource::bootstrap::{self, Outcome};
use ci_agent::datasource::http::{self, FetchError, HttpLimits};
use ci_agent::platform::config::{BootstrapConfig, Config};
use ci_agent::platform::fake::FakeSystem;
use ci_agent::platform::system::{Cmd, CmdOutput};
use ci_agent::platform::OsKind;

/// What the test server does with one connection.
#[derive(Clone)]
enum Reply {
    /// Status, body, with Content-Length.
    Full(u16, Vec<u8>),
    /// 200, body, no Content-Length, connection closed after it.
    CloseDelimited(Vec<u8>),
    /// 200 with chunked encoding that never ends.
    EndlessChunked,
    /// 200, no length, one byte every 100 ms forever.
    Trickle,
    /// Sleep before answering (a server that hangs).
    Slow(Duration, Vec<u8>),
    /// Close right after reading the request.
    Close,
    /// Announce a length, send part of it, close.
    Truncated(usize, Vec<u8>),
    /// Redirect to a path.
    Redirect(String),
    /// These bytes as the whole answer, then close.
    Raw(Vec<u8>),
}

struct Server {
    base: String,
    replies: Arc<Mutex<VecDeque<Reply>>>,
    hits: Arc<Mutex<Vec<String>>>,
}

fn read_request(s: &mut TcpStream) -> String {
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut buf = Vec::new();
    let mut b = [0u8; 512];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&b[..n]),
        }
    }
    let text = String::from_utf8_lossy(&buf);
    text.lines()
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .unwrap_or("")
        .to_string()
}

fn answer(mut s: TcpStream, reply: Reply) {
    let _ = match reply {
        Reply::Full(status, body) => write!(
            s,
            "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .and_then(|_| s.write_all(&body)),
        Reply::CloseDelimited(body) => s
            .write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
            .and_then(|_| s.write_all(&body)),
        Reply::EndlessChunked => {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
            let chunk = vec![b'x'; 4096];
            loop {
                if write!(s, "1000\r\n")
                    .and_then(|_| s.write_all(&chunk))
                    .and_then(|_| s.write_all(b"\r\n"))
                    .is_err()
                {
                    break;
                }
            }
            Ok(())
        }
        Reply::Trickle => {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
            for _ in 0..200 {
                if s.write_all(b"x").is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            Ok(())
        }
        Reply::Slow(d, body) => {
            std::thread::sleep(d);
            write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .and_then(|_| s.write_all(&body))
        }
        Reply::Close => Ok(()),
        Reply::Raw(bytes) => s.write_all(&bytes),
        Reply::Truncated(len, body) => {
            write!(s, "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n")
                .and_then(|_| s.write_all(&body))
        }
        Reply::Redirect(to) => write!(
            s,
            "HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\n\r\n"
        ),
    };
    let _ = s.shutdown(std::net::Shutdown::Both);
}

impl Server {
    fn start(fallback: Reply) -> Server {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", l.local_addr().unwrap());
        let replies: Arc<Mutex<VecDeque<Reply>>> = Arc::default();
        let hits: Arc<Mutex<Vec<String>>> = Arc::default();
        let (r, h) = (replies.clone(), hits.clone());
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(mut s) = conn else { continue };
                let path = read_request(&mut s);
                h.lock().unwrap().push(path);
                let reply = r
                    .lock()
                    .unwrap()
                    .pop_front()
                    .unwrap_or_else(|| fallback.clone());
                std::thread::spawn(move || answer(s, reply));
            }
        });
        Server {
            base,
            replies,
            hits,
        }
    }
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
    fn push(&self, r: Reply) {
        self.replies.lock().unwrap().push_back(r);
    }
    fn hits(&self) -> Vec<String> {
        self.hits.lock().unwrap().clone()
    }
}

fn limits() -> HttpLimits {
    HttpLimits {
        connect_timeout: Duration::from_secs(2),
        timeout: Duration::from_secs(2),
        max_bytes: 64 * 1024,
    }
}

// ---------------------------------------------------------------- the HTTP client

#[test]
fn http_200_404_500_and_empty() {
    let srv = Server::start(Reply::Full(404, b"nope".to_vec()));
    srv.push(Reply::Full(200, b"#!/bin/sh\necho hi\n".to_vec()));
    srv.push(Reply::Full(500, b"boom".to_vec()));
    srv.push(Reply::Full(200, Vec::new()));
    srv.push(Reply::CloseDelimited(b"no length".to_vec()));
    let u = srv.url("/vm-bootstrap");
    assert_eq!(http::get(&u, &limits()).unwrap(), b"#!/bin/sh\necho hi\n");
    let e = http::get(&u, &limits()).unwrap_err();
    assert!(matches!(e, FetchError::Status { status: 500, .. }), "{e}");
    assert!(e.to_string().contains("500") && e.to_string().contains(&u));
    assert_eq!(http::get(&u, &limits()).unwrap(), b"");
    assert_eq!(http::get(&u, &limits()).unwrap(), b"no length");
    let e = http::get(&u, &limits()).unwrap_err();
    assert!(matches!(e, FetchError::NotFound { .. }), "{e}");
    assert_eq!(http::get_optional(&u, &limits()).unwrap(), None);
}

/// Answers that are not HTTP are clean errors naming the URL; the first is the input the
/// `bootstrap_response` fuzz target stopped on (a harness false positive, kept as a case).
#[test]
fn http_garbage_answers_are_errors() {
    let answers: [&[u8]; 5] = [
        b"0 OK\r\n\r\n#ame:\0\x06x\x01H\xdfTP/1.0 200 O+\r\n\r\n#amu:\0\x06x\n",
        b"HTTP/1.1 abc OK\r\n\r\nbody",
        b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\nbody",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nbody\r\n",
        b"\0\0\0\0",
    ];
    let srv = Server::start(Reply::Close);
    for a in answers {
        srv.push(Reply::Raw(a.to_vec()));
    }
    let u = srv.url("/vm-bootstrap");
    for a in answers {
        let e = http::get(&u, &limits()).expect_err(&String::from_utf8_lossy(a));
        assert!(e.to_string().contains(&u), "{e}");
    }
}

#[test]
fn http_slow_headers_time_out() {
    let srv = Server::start(Reply::Slow(Duration::from_secs(4), b"late".to_vec()));
    let l = HttpLimits {
        timeout: Duration::from_secs(1),
        ..limits()
    };
    let e = http::get(&srv.url("/x"), &l).unwrap_err();
    assert!(matches!(e, FetchError::Timeout { .. }), "{e}");
}

#[test]
fn http_trickling_body_is_cut_at_the_deadline() {
    let srv = Server::start(Reply::Trickle);
    let l = HttpLimits {
        timeout: Duration::from_secs(1),
        ..limits()
    };
    let e = http::get(&srv.url("/x"), &l).unwrap_err();
    assert!(matches!(e, FetchError::Timeout { .. }), "{e}");
}

#[test]
fn http_oversized_and_endless_bodies_are_refused() {
    let srv = Server::start(Reply::EndlessChunked);
    srv.push(Reply::Full(200, vec![b'a'; 64 * 1024 + 1]));
    srv.push(Reply::CloseDelimited(vec![b'a'; 200 * 1024]));
    srv.push(Reply::Full(200, vec![b'a'; 64 * 1024]));
    let u = srv.url("/x");
    for _ in 0..2 {
        let e = http::get(&u, &limits()).unwrap_err();
        assert!(
            matches!(e, FetchError::TooLarge { limit: 65536, .. }),
            "{e}"
        );
    }
    // Exactly the limit is fine.
    assert_eq!(http::get(&u, &limits()).unwrap().len(), 64 * 1024);
    // Endless chunked body.
    let e = http::get(&u, &limits()).unwrap_err();
    assert!(matches!(e, FetchError::TooLarge { .. }), "{e}");
    assert!(e.to_string().contains("65536"));
}

#[test]
fn http_connection_closed_early_or_refused() {
    let srv = Server::start(Reply::Close);
    srv.push(Reply::Truncated(100, b"0123456789".to_vec()));
    let u = srv.url("/x");
    let e = http::get(&u, &limits()).unwrap_err();
    assert!(
        matches!(e, FetchError::Transport { .. } | FetchError::Timeout { .. }),
        "{e}"
    );
    let e = http::get(&u, &limits()).unwrap_err();
    assert!(matches!(e, FetchError::Transport { .. }), "{e}");

    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    let e = http::get(&format!("http://127.0.0.1:{port}/x"), &limits()).unwrap_err();
    assert!(matches!(e, FetchError::Transport { .. }), "{e}");
}

#[test]
fn http_redirects_are_followed_but_bounded() {
    let srv = Server::start(Reply::Redirect("/loop".into()));
    srv.push(Reply::Redirect("/real".into()));
    srv.push(Reply::Full(200, b"moved".to_vec()));
    assert_eq!(http::get(&srv.url("/old"), &limits()).unwrap(), b"moved");
    assert_eq!(srv.hits()[..2], ["/old", "/real"]);
    let e = http::get(&srv.url("/loop"), &limits()).unwrap_err();
    assert!(matches!(e, FetchError::Transport { .. }), "{e}");
    // 1 + MAX_REDIRECTS requests, then it stops.
    assert_eq!(srv.hits().len(), 2 + 1 + http::MAX_REDIRECTS as usize);
}

#[test]
fn http_only_http_urls() {
    let e = http::get("ftp://127.0.0.1/x", &limits()).unwrap_err();
    assert!(matches!(e, FetchError::UnsupportedScheme { .. }), "{e}");
    let e = http::get("/etc/passwd", &limits()).unwrap_err();
    assert!(matches!(e, FetchError::UnsupportedScheme { .. }), "{e}");
    assert!(http::is_http_url("HTTP://x/") && !http::is_http_url("file:///x"));
    if !cfg!(feature = "tls") {
        let e = http::get("https://127.0.0.1:1/x", &limits()).unwrap_err();
        assert!(matches!(e, FetchError::TlsNotBuilt { .. }), "{e}");
        assert!(e.to_string().contains("tls"));
    } else {
        // The TLS stack is in: a handshake with a plain-HTTP server fails cleanly.
        let srv = Server::start(Reply::Full(200, b"plain".to_vec()));
        let url = srv.url("/x").replacen("http://", "https://", 1);
        let e = http::get(&url, &limits()).unwrap_err();
        assert!(
            matches!(e, FetchError::Transport { .. } | FetchError::Timeout { .. }),
            "{e}"
        );
    }
}

#[test]
fn includes_are_bounded() {
    let srv = Server::start(Reply::Full(200, vec![b'i'; 40 * 1024]));
    let urls = vec![srv.url("/a"), srv.url("/b")];
    let got = http::fetch_includes(&urls[..1], &limits()).unwrap();
    assert_eq!(got[0].0, urls[0]);
    assert_eq!(got[0].1.len(), 40 * 1024);
    // Two of them exceed the shared 64 KiB budget.
    let e = http::fetch_includes(&urls, &limits()).unwrap_err();
    assert!(format!("{e:#}").contains("together exceed"), "{e:#}");
    let many: Vec<String> = (0..http::MAX_INCLUDES + 1)
        .map(|i| srv.url(&format!("/{i}")))
        .collect();
    let before = srv.hits().len();
    assert!(http::fetch_includes(&many, &limits()).is_err());
    assert_eq!(
        srv.hits().len(),
        before,
        "nothing fetched past the count limit"
    );
    let srv404 = Server::start(Reply::Full(404, Vec::new()));
    let e = http::fetch_includes(&[srv404.url("/gone")], &limits()).unwrap_err();
    assert!(format!("{e:#}").contains("/gone"), "{e:#}");
}

#[test]
fn include_urls_are_fetched_and_merged_after_user_data() {
    use ci_agent::formats::userdata::{parse_seed, Seed};
    let srv = Server::start(Reply::Full(404, Vec::new()));
    srv.push(Reply::Full(
        200,
        b"#cloud-config\nhostname: from-include\nruncmd: [included]\n".to_vec(),
    ));
    let mut seed = Seed {
        source: "dir:/seed".into(),
        ..Seed::default()
    };
    let user_data = format!(
        "Content-Type: multipart/mixed; boundary=XX\nMIME-Version: 1.0\n\n--XX\n\
         Content-Type: text/cloud-config\n\n#cloud-config\nhostname: from-user-data\n\
         packages: [jq]\n--XX\nContent-Type: text/x-include-url\n\n{}\n{}\n--XX--\n",
        srv.url("/inc.yaml"),
        srv.url("/missing")
    );
    seed.files
        .insert("user-data".into(), user_data.into_bytes());
    seed.files
        .insert("meta-data".into(), b"instance-id: iid-inc\n".to_vec());
    let data = parse_seed(&seed).unwrap();
    assert_eq!(data.includes.len(), 2);
    let mut config =
        ci_agent::platform::config::Config::defaults(ci_agent::platform::OsKind::Linux);
    config.bootstrap.connect_timeout_secs = 2;
    config.bootstrap.timeout_secs = 2;
    let data = ci_agent::datasource::resolve_includes(&config, &seed, data);
    let cc = &data.cloud_config;
    // The included part comes after user-data: its keys win, lists are replaced.
    assert_eq!(cc.hostname.as_deref(), Some("from-include"));
    assert_eq!(cc.packages.len(), 1, "keys only in user-data stay");
    assert_eq!(cc.runcmd.len(), 1);
    assert!(
        data.warnings
            .iter()
            .any(|w| w.contains("/missing") && w.contains("skipped")),
        "{:?}",
        data.warnings
    );
    assert_eq!(srv.hits(), ["/inc.yaml", "/missing"]);
}

// ---------------------------------------------------------------- the bootstrap

const DIR: &str = "/root/bootstrap";
const LOG: &str = "/var/log/vm-bootstrap.log";

fn cfg(url: String) -> BootstrapConfig {
    let mut c = Config::defaults(OsKind::Linux).bootstrap;
    c.url = url;
    c.timeout_secs = 2;
    c.connect_timeout_secs = 2;
    c
}

/// A fake guest with the gate present; "executes" the script by looking at it: a script
/// containing `exit N` exits N, anything else exits 0. Records the counter value seen while
/// each script ran.
struct Guest {
    _dir: tempfile::TempDir,
    sys: FakeSystem,
    seen_counter: Arc<Mutex<Vec<String>>>,
}

fn guest() -> Guest {
    let d = tempfile::tempdir().unwrap();
    let sys = FakeSystem::new(d.path());
    sys.put(format!("{DIR}/start-bootstrap"), "");
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let root: PathBuf = d.path().to_path_buf();
    let s2 = seen.clone();
    sys.on_command_fn(move |cmd: &Cmd| {
        let script = cmd.argv.last()?;
        if !script.ends_with("vm-bootstrap.script") {
            return None;
        }
        let host = root.join(script.trim_start_matches('/'));
        let body = std::fs::read_to_string(host).unwrap_or_default();
        let counter =
            std::fs::read_to_string(root.join("root/bootstrap/retry-amount")).unwrap_or_default();
        s2.lock().unwrap().push(counter.trim().to_string());
        let code = body
            .split_whitespace()
            .skip_while(|w| *w != "exit")
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        Some(CmdOutput {
            code: Some(code),
            ..CmdOutput::default()
        })
    });
    Guest {
        _dir: d,
        sys,
        seen_counter: seen,
    }
}

fn file(g: &Guest, name: &str) -> Option<String> {
    g.sys.read_string(format!("{DIR}/{name}"))
}

#[test]
fn no_gate_means_disabled_and_nothing_fetched() {
    let srv = Server::start(Reply::Full(200, b"true\n".to_vec()));
    let g = guest();
    g.sys.remove_file_for_test(format!("{DIR}/start-bootstrap"));
    let out = bootstrap::run(&g.sys, &cfg(srv.url("/vm-bootstrap"))).unwrap();
    assert_eq!(out, Outcome::Disabled);
    assert!(srv.hits().is_empty());
    assert!(file(&g, "retry-amount").is_none());
    assert!(g.sys.commands().is_empty());
}

#[test]
fn failing_then_succeeding_script() {
    let srv = Server::start(Reply::Full(200, b"echo fine\n".to_vec()));
    srv.push(Reply::Full(
        200,
        b"#!/bin/sh\necho broken\nexit 1\n".to_vec(),
    ));
    let g = guest();
    let c = cfg(srv.url("/vm-bootstrap"));
    let out = bootstrap::run(&g.sys, &c).unwrap();
    assert_eq!(out, Outcome::Succeeded { attempt: 2 });
    assert_eq!(file(&g, "retry-amount").as_deref(), Some("2\n"));
    // Counted before each script ran.
    assert_eq!(*g.seen_counter.lock().unwrap(), ["1", "2"]);
    assert_eq!(g.sys.slept(), [Duration::from_secs(60)]);
    assert!(file(&g, "bootstrap-done").unwrap().contains("attempt 2"));
    assert!(file(&g, "vm-bootstrap.script").is_none(), "script removed");

    let cmds = g.sys.commands();
    assert_eq!(cmds.len(), 2);
    // The #! interpreter first, then bash/sh for a script without one; output to the log.
    let a0 = &cmds[0].argv;
    assert_eq!(a0[..2], ["/bin/sh", "-c"]);
    assert_eq!(a0[4], LOG);
    assert_eq!(a0[5..], ["/bin/sh", "/root/bootstrap/vm-bootstrap.script"]);
    assert_eq!(
        cmds[1].argv[5..],
        ["/bin/sh", "/root/bootstrap/vm-bootstrap.script"]
    );
    assert_eq!(cmds[0].timeout, Some(Duration::from_secs(3600)));
    assert!(cmds[1]
        .env
        .contains(&("CI_AGENT_BOOTSTRAP_ATTEMPT".into(), "2".into())));

    let log = g.sys.read_string(LOG).unwrap();
    for want in [
        "attempt 1 of 10: fetching",
        "attempt 1: failed: script exited with status 1",
        "next attempt in 60 s",
        "attempt 2: succeeded; bootstrap done",
    ] {
        assert!(log.contains(want), "log lacks {want:?}:\n{log}");
    }
    assert!(
        log.lines().all(|l| l.starts_with("2026-01-01T00:")),
        "{log}"
    );

    let st = bootstrap::status(&g.sys, &c).unwrap();
    assert!(st.enabled && st.done && !st.limit_reached);
    assert_eq!((st.attempts, st.max_retry), (2, 10));
    assert!(st.last_result.unwrap().contains("attempt 2: succeeded"));

    // Done for good: a later boot fetches nothing.
    let hits = srv.hits().len();
    assert_eq!(bootstrap::run(&g.sys, &c).unwrap(), Outcome::AlreadyDone);
    assert_eq!(srv.hits().len(), hits);
    assert_eq!(g.sys.commands().len(), 2);
}

#[test]
fn retry_limit_stops_for_good() {
    let srv = Server::start(Reply::Full(404, Vec::new()));
    let g = guest();
    g.sys.put(format!("{DIR}/bootstrap-max-retry"), "3\n");
    let c = cfg(srv.url("/vm-bootstrap"));
    let out = bootstrap::run(&g.sys, &c).unwrap();
    assert_eq!(
        out,
        Outcome::LimitReached {
            attempts: 3,
            max: 3
        }
    );
    assert_eq!(srv.hits().len(), 3);
    assert_eq!(g.sys.slept(), [Duration::from_secs(60); 2]);
    assert!(
        g.sys.commands().is_empty(),
        "a failed download runs nothing"
    );
    let log = g.sys.read_string(LOG).unwrap();
    assert!(log.contains("not found (HTTP 404)"), "{log}");
    assert!(
        log.contains("retry limit reached (3 of 3 attempts)"),
        "{log}"
    );
    let st = bootstrap::status(&g.sys, &c).unwrap();
    assert!(st.limit_reached && !st.done);
    // Next boot: nothing fetched.
    assert_eq!(
        bootstrap::run(&g.sys, &c).unwrap(),
        Outcome::LimitReached {
            attempts: 3,
            max: 3
        }
    );
    assert_eq!(srv.hits().len(), 3);
    // Raising the limit by hand allows more attempts, counting on.
    g.sys.put(format!("{DIR}/bootstrap-max-retry"), "4");
    assert_eq!(
        bootstrap::run(&g.sys, &c).unwrap(),
        Outcome::LimitReached {
            attempts: 4,
            max: 4
        }
    );
    assert_eq!(srv.hits().len(), 4);
}

#[test]
fn counter_persists_across_boots() {
    // A previous boot made 4 attempts (maybe a script rebooted the VM mid-run).
    let srv = Server::start(Reply::Full(200, b"exit 2\n".to_vec()));
    let g = guest();
    g.sys.put(format!("{DIR}/retry-amount"), "4\n");
    g.sys.put(format!("{DIR}/bootstrap-max-retry"), "5\n");
    let out = bootstrap::run(&g.sys, &cfg(srv.url("/vm-bootstrap"))).unwrap();
    assert_eq!(
        out,
        Outcome::LimitReached {
            attempts: 5,
            max: 5
        }
    );
    assert_eq!(srv.hits().len(), 1);
    assert!(
        g.sys.slept().is_empty(),
        "no wait after the last allowed attempt"
    );
}

#[test]
fn script_may_lower_the_limit_or_remove_the_gate() {
    let srv = Server::start(Reply::Full(200, b"exit 1\n".to_vec()));
    let g = guest();
    let root = g.sys_root();
    // The "script" lowers the limit to 1 while it runs.
    let r2 = root.clone();
    g.sys.on_command_fn(move |cmd: &Cmd| {
        cmd.argv.last()?.ends_with(".script").then(|| {
            std::fs::write(r2.join("root/bootstrap/bootstrap-max-retry"), "1\n").unwrap();
            CmdOutput {
                code: Some(1),
                ..CmdOutput::default()
            }
        })
    });
    let c = cfg(srv.url("/vm-bootstrap"));
    assert_eq!(
        bootstrap::run(&g.sys, &c).unwrap(),
        Outcome::LimitReached {
            attempts: 1,
            max: 1
        }
    );
    assert!(g.sys.slept().is_empty());

    let g = guest();
    let root = g.sys_root();
    g.sys.on_command_fn(move |cmd: &Cmd| {
        cmd.argv.last()?.ends_with(".script").then(|| {
            std::fs::remove_file(root.join("root/bootstrap/start-bootstrap")).unwrap();
            CmdOutput {
                code: Some(1),
                ..CmdOutput::default()
            }
        })
    });
    assert_eq!(bootstrap::run(&g.sys, &c).unwrap(), Outcome::Disabled);
    assert_eq!(file(&g, "retry-amount").as_deref(), Some("1\n"));
    assert!(g.sys.slept().is_empty());
    assert!(g
        .sys
        .read_string(LOG)
        .unwrap()
        .contains("start-bootstrap removed; stopping"));
}

#[test]
fn download_failures_are_failed_attempts() {
    let srv = Server::start(Reply::Full(200, b"echo ok\n".to_vec()));
    srv.push(Reply::Full(200, Vec::new()));
    srv.push(Reply::Slow(Duration::from_secs(4), b"late".to_vec()));
    srv.push(Reply::Full(200, vec![b'#'; 2000]));
    srv.push(Reply::Close);
    srv.push(Reply::Full(500, b"err".to_vec()));
    let g = guest();
    let mut c = cfg(srv.url("/vm-bootstrap"));
    c.timeout_secs = 1;
    c.max_bytes = 1000;
    c.interval_secs = 5;
    let out = bootstrap::run(&g.sys, &c).unwrap();
    assert_eq!(out, Outcome::Succeeded { attempt: 6 });
    assert_eq!(g.sys.slept(), [Duration::from_secs(5); 5]);
    assert_eq!(g.sys.commands().len(), 1, "only the good script ran");
    let log = g.sys.read_string(LOG).unwrap();
    for want in [
        "attempt 1: failed: ",
        "empty script",
        "attempt 2: failed: download failed: ",
        "timed out",
        "larger than the limit of 1000 bytes",
        "attempt 4: failed: download failed",
        "HTTP 500",
        "attempt 6: succeeded",
    ] {
        assert!(log.contains(want), "log lacks {want:?}:\n{log}");
    }
}

#[test]
fn script_timeout_and_refused_connection() {
    let srv = Server::start(Reply::Full(200, b"sleep 999\n".to_vec()));
    let g = guest();
    g.sys.put(format!("{DIR}/bootstrap-max-retry"), "2");
    g.sys.on_command_fn(|cmd: &Cmd| {
        cmd.argv.last()?.ends_with(".script").then(|| CmdOutput {
            code: None,
            timed_out: true,
            ..CmdOutput::default()
        })
    });
    let mut c = cfg(srv.url("/vm-bootstrap"));
    c.script_timeout_secs = 7;
    let out = bootstrap::run(&g.sys, &c).unwrap();
    assert_eq!(
        out,
        Outcome::LimitReached {
            attempts: 2,
            max: 2
        }
    );
    assert_eq!(g.sys.commands()[0].timeout, Some(Duration::from_secs(7)));
    assert!(g
        .sys
        .read_string(LOG)
        .unwrap()
        .contains("script killed after 7 s"));

    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    let g = guest();
    g.sys.put(format!("{DIR}/bootstrap-max-retry"), "1");
    let out = bootstrap::run(
        &g.sys,
        &cfg(format!("http://127.0.0.1:{port}/vm-bootstrap")),
    )
    .unwrap();
    assert_eq!(
        out,
        Outcome::LimitReached {
            attempts: 1,
            max: 1
        }
    );
    assert!(g.sys.read_string(LOG).unwrap().contains("download failed"));
}

#[test]
fn bad_state_files() {
    let srv = Server::start(Reply::Full(200, b"echo ok\n".to_vec()));
    let g = guest();
    g.sys.put(format!("{DIR}/bootstrap-max-retry"), "lots\n");
    let c = cfg(srv.url("/vm-bootstrap"));
    assert_eq!(
        bootstrap::run(&g.sys, &c).unwrap(),
        Outcome::Succeeded { attempt: 1 }
    );
    let log = g.sys.read_string(LOG).unwrap();
    assert!(
        log.contains("bootstrap-max-retry: expected a decimal number"),
        "{log}"
    );
    assert!(log.contains("using the default 10"), "{log}");
    let st = bootstrap::status(&g.sys, &c).unwrap();
    assert_eq!(st.max_retry, 10);
    assert_eq!(st.warnings.len(), 1);

    let g = guest();
    g.sys.put(format!("{DIR}/retry-amount"), "x1");
    let e = bootstrap::run(&g.sys, &c).unwrap_err().to_string();
    assert!(e.contains("retry-amount") && e.contains("x1"), "{e}");
    assert!(bootstrap::status(&g.sys, &c).is_err());
}

#[test]
fn a_counter_that_cannot_be_written_means_no_attempt() {
    let srv = Server::start(Reply::Full(200, b"echo ok\n".to_vec()));
    let g = guest();
    g.sys.set_fault(|e| match e {
        ci_agent::platform::fake::Effect::Write(p) if p.ends_with("retry-amount") => {
            Err(std::io::Error::other("disk full"))
        }
        _ => Ok(()),
    });
    let e = bootstrap::run(&g.sys, &cfg(srv.url("/vm-bootstrap"))).unwrap_err();
    assert!(format!("{e:#}").contains("disk full"), "{e:#}");
    assert!(srv.hits().is_empty());
    assert!(g.sys.commands().is_empty());
}

trait GuestExt {
    fn remove_file_for_test(&self, p: String);
}

impl GuestExt for FakeSystem {
    fn remove_file_for_test(&self, p: String) {
        use ci_agent::platform::System;
        self.remove_file(std::path::Path::new(&p)).unwrap();
    }
}

impl Guest {
    fn sys_root(&self) -> PathBuf {
        self._dir.path().to_path_buf()
    }
}
