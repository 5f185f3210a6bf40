//! `ci-seed serve` as a process: `--listen 127.0.0.1:0` against the agent's HTTP client
//! (bootstrap and NoCloud over HTTP end to end), and `--stdio` driven through pipes.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ci_agent::datasource::bootstrap::{self, Outcome};
use ci_agent::datasource::http::{self, FetchError, HttpLimits};
use ci_agent::platform::config::Config;
use ci_agent::platform::fake::FakeSystem;
use ci_agent::platform::OsKind;

const BIN: &str = env!("CARGO_BIN_EXE_ci-seed");

/// A running `ci-seed serve --listen`, killed on drop.
struct Served {
    child: Child,
    addr: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Served {
    fn start(args: &[&str]) -> Served {
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .and_then(|s| s.strip_suffix('/'))
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        assert!(
            addr.starts_with("127.0.0.1:") && !addr.ends_with(":0"),
            "{addr}"
        );
        Served { child, addr }
    }
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
    /// Send raw bytes, return the raw response.
    fn raw(&self, req: &[u8]) -> String {
        let mut s = TcpStream::connect(&self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(req).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

fn limits() -> HttpLimits {
    HttpLimits {
        connect_timeout: Duration::from_secs(2),
        timeout: Duration::from_secs(5),
        max_bytes: 1 << 20,
    }
}

/// DIR with a bootstrap script, two NoCloud trees, and a secret beside it.
fn tree() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let srv = d.path().join("srv");
    std::fs::create_dir_all(srv.join("vm1")).unwrap();
    std::fs::create_dir_all(srv.join("vm2")).unwrap();
    std::fs::write(srv.join("vm-bootstrap"), "#!/bin/sh\necho bootstrapped\n").unwrap();
    std::fs::write(
        srv.join("vm1/meta-data"),
        "instance-id: iid-vm1\nlocal-hostname: vm1\n",
    )
    .unwrap();
    std::fs::write(
        srv.join("vm1/user-data"),
        "#cloud-config\nhostname: web1\nruncmd:\n  - echo hi\n",
    )
    .unwrap();
    std::fs::write(
        srv.join("vm1/vendor-data"),
        "#cloud-config\npackages: [curl]\n",
    )
    .unwrap();
    std::fs::write(srv.join("vm2/meta-data"), "instance-id: iid-vm2\n").unwrap();
    std::fs::write(srv.join("vm2/user-data"), "").unwrap();
    std::fs::write(d.path().join("secret"), "root:x:0:0\n").unwrap();
    std::os::unix::fs::symlink(d.path().join("secret"), srv.join("escape")).unwrap();
    std::os::unix::fs::symlink("..", srv.join("vm2/up")).unwrap();
    d
}

#[test]
fn listen_serves_files_to_the_agent_client() {
    let d = tree();
    let s = Served::start(&["--dir", d.path().join("srv").to_str().unwrap()]);
    assert_eq!(
        http::get(&s.url("/vm-bootstrap"), &limits()).unwrap(),
        b"#!/bin/sh\necho bootstrapped\n"
    );
    let e = http::get(&s.url("/vm1/nothing"), &limits()).unwrap_err();
    assert!(matches!(e, FetchError::NotFound { .. }), "{e}");
    for path in ["/escape", "/vm2/up/secret", "/vm1", "/"] {
        let e = http::get(&s.url(path), &limits()).unwrap_err();
        assert!(matches!(e, FetchError::NotFound { .. }), "{path}: {e}");
    }
    // Raw requests the client would normalise.
    for req in [
        "GET /../secret HTTP/1.1\r\n\r\n",
        "GET /vm1/%2e%2e/%2e%2e/secret HTTP/1.1\r\n\r\n",
        "GET /vm1/..%2f..%2fsecret HTTP/1.0\r\n\r\n",
        "GET http://x/secret HTTP/1.1\r\n\r\n",
    ] {
        let r = s.raw(req.as_bytes());
        assert!(
            r.starts_with("HTTP/1.") && r.contains(" 400 "),
            "{req:?} → {r}"
        );
        assert!(!r.contains("root:x"));
    }
    let r = s.raw(b"HEAD /vm1/meta-data HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
    assert!(
        r.contains("Content-Length: 41\r\n") && r.ends_with("\r\n\r\n"),
        "{r}"
    );
    let r = s.raw(b"PUT /vm1/meta-data HTTP/1.1\r\nContent-Length: 1\r\n\r\nx");
    assert!(r.starts_with("HTTP/1.1 405 "), "{r}");
    let r = s.raw(&[b'a'; 10_000]);
    assert!(r.starts_with("HTTP/1.1 431 "), "{r}");
}

#[test]
fn listen_drops_a_silent_client() {
    let d = tree();
    let s = Served::start(&["--dir", d.path().to_str().unwrap(), "--timeout", "1"]);
    let t0 = Instant::now();
    let mut c = TcpStream::connect(&s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut out = String::new();
    let _ = c.read_to_string(&mut out);
    assert!(out.starts_with("HTTP/1.1 408 "), "{out}");
    assert!(t0.elapsed() < Duration::from_secs(8));
    // The server still answers others.
    assert!(http::get(&s.url("/secret"), &limits()).is_ok());
}

#[test]
fn nocloud_over_http_end_to_end() {
    let d = tree();
    let s = Served::start(&["--dir", d.path().join("srv").to_str().unwrap()]);
    let seed = http::fetch_nocloud(&limits(), &s.url("/vm1/")).unwrap();
    assert_eq!(seed.source, s.url("/vm1/"));
    assert_eq!(
        seed.files.keys().collect::<Vec<_>>(),
        ["meta-data", "user-data", "vendor-data"]
    );
    assert!(String::from_utf8_lossy(&seed.files["user-data"]).contains("hostname: web1"));
    // No trailing slash, no vendor-data: still fine.
    let seed2 = http::fetch_nocloud(&limits(), &s.url("/vm2")).unwrap();
    assert_eq!(seed2.source, s.url("/vm2/"));
    assert_eq!(
        seed2.files.keys().collect::<Vec<_>>(),
        ["meta-data", "user-data"]
    );
    assert_eq!(seed2.files["user-data"], b"");
    // A missing required file is an error naming it.
    let e = http::fetch_nocloud(&limits(), &s.url("/vm3/")).unwrap_err();
    assert!(format!("{e:#}").contains("/vm3/meta-data"), "{e:#}");
}

#[test]
fn bootstrap_against_ci_seed_serve() {
    let d = tree();
    let script = d.path().join("srv/vm-bootstrap");
    let s = Served::start(&[script.to_str().unwrap()]);
    let g = tempfile::tempdir().unwrap();
    let sys = FakeSystem::new(g.path());
    sys.put("/root/bootstrap/start-bootstrap", "");
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let (root, got2) = (g.path().to_path_buf(), got.clone());
    sys.on_command_fn(move |cmd| {
        let p = cmd.argv.last()?;
        got2.lock()
            .unwrap()
            .push(std::fs::read(root.join(p.trim_start_matches('/'))).unwrap());
        None
    });
    let mut c = Config::defaults(OsKind::FreeBsd).bootstrap;
    c.url = s.url("/vm-bootstrap");
    assert_eq!(
        bootstrap::run(&sys, &c).unwrap(),
        Outcome::Succeeded { attempt: 1 }
    );
    assert_eq!(got.lock().unwrap()[0], std::fs::read(&script).unwrap());
    // A script server answers nothing else.
    let e = http::get(&s.url("/other"), &limits()).unwrap_err();
    assert!(matches!(e, FetchError::NotFound { .. }), "{e}");
}

/// Run `ci-seed serve --stdio ARGS` with `input` on stdin (stdin closed after it unless
/// `hold` keeps it open); returns (exit code, stdout, stderr, elapsed).
fn stdio(args: &[&str], input: &[u8], hold: bool) -> (Option<i32>, String, String, Duration) {
    let t0 = Instant::now();
    let mut child = Command::new(BIN)
        .args(["serve", "--stdio"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input).unwrap();
    let keep = if hold {
        Some(stdin)
    } else {
        drop(stdin);
        None
    };
    let out = child.wait_with_output().unwrap();
    drop(keep);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        t0.elapsed(),
    )
}

#[test]
fn stdio_answers_one_request() {
    let d = tree();
    let script = d.path().join("srv/vm-bootstrap");
    let log = d.path().join("serve.log");
    let args = [script.to_str().unwrap(), "--log", log.to_str().unwrap()];
    // As busybox wget sends it: HTTP/1.0, LF only would also do; stdin stays open.
    let (code, out, err, _) = stdio(
        &args,
        b"GET /vm-bootstrap HTTP/1.0\r\nHost: 10.0.2.100\r\nUser-Agent: Wget\r\n\r\n",
        true,
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        out,
        "HTTP/1.0 200 OK\r\nServer: ci-seed\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: 28\r\nConnection: close\r\n\r\n#!/bin/sh\necho bootstrapped\n"
    );
    assert!(err.contains("stdio GET /vm-bootstrap 200 28"), "{err}");
    assert!(std::fs::read_to_string(&log)
        .unwrap()
        .contains("GET /vm-bootstrap 200 28"));

    let (code, out, _, _) = stdio(&args, b"GET /etc/passwd HTTP/1.1\n\n", false);
    assert_eq!(code, Some(0));
    assert!(out.starts_with("HTTP/1.1 404 Not Found\r\n"), "{out}");
}

#[test]
fn stdio_dir_refuses_traversal() {
    let d = tree();
    let dir = d.path().join("srv");
    let args = ["--dir", dir.to_str().unwrap()];
    let (_, out, _, _) = stdio(&args, b"GET /vm1/meta-data HTTP/1.1\r\n\r\n", false);
    assert!(out.starts_with("HTTP/1.1 200 ") && out.ends_with("local-hostname: vm1\n"));
    for req in [
        &b"GET /../secret HTTP/1.1\r\n\r\n"[..],
        b"GET /%2E%2E/secret HTTP/1.1\r\n\r\n",
        b"GET /escape HTTP/1.1\r\n\r\n",
    ] {
        let (_, out, _, _) = stdio(&args, req, false);
        assert!(
            out.starts_with("HTTP/1.1 400 ") || out.starts_with("HTTP/1.1 404 "),
            "{out}"
        );
        assert!(!out.contains("root:x"));
    }
}

#[test]
fn stdio_silent_guest_times_out() {
    let d = tree();
    let script = d.path().join("srv/vm-bootstrap");
    let (code, out, err, took) = stdio(&[script.to_str().unwrap(), "--timeout", "1"], b"", true);
    assert_eq!(code, Some(1));
    assert!(out.starts_with("HTTP/1.1 408 "), "{out}");
    assert!(err.contains("no request in time"), "{err}");
    assert!(took < Duration::from_secs(8), "{took:?}");
    // A half request that then closes.
    let (code, _, err, _) = stdio(&[script.to_str().unwrap()], b"GET /vm-boot", false);
    assert_eq!(code, Some(1));
    assert!(err.contains("closed before a request"), "{err}");
}

#[test]
fn cli_usage_and_errors() {
    let out = Command::new(BIN)
        .args(["serve", "--help"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("--stdio"));
    let out = Command::new(BIN)
        .args(["serve", "--stdio"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("SCRIPT"));
    let missing = Path::new("/nonexistent/ci-seed-test/script");
    let out = Command::new(BIN)
        .args(["serve", "--stdio", missing.to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such script file"));
}

// ---------------------------------------------------------------------------------------
// A fleet's load (issue 20). Loopback only; bounded in count (the loops end) and in time
// (every socket has connect/read/write timeouts, and the server is killed on drop). No
// timed assertion: speed is in scripts/bench/serve.sh and docs/benchmarks.md.

/// One GET on a fresh connection; `Err` unless it is a 200 ending with `want`.
fn get_ok(addr: &str, path: &str, want: &[u8]) -> Result<(), String> {
    let sa: std::net::SocketAddr = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
    let mut s = TcpStream::connect_timeout(&sa, Duration::from_secs(60))
        .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .and_then(|()| s.set_write_timeout(Some(Duration::from_secs(60))))
        .map_err(|e| e.to_string())?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).map_err(|e| format!("read: {e}"))?;
    if out.starts_with(b"HTTP/1.1 200 ") && out.ends_with(want) {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out[..out.len().min(80)]).into_owned())
    }
}

/// `requests` GETs of `path` from `clients` threads at once; the failures.
fn hammer(addr: &str, path: &str, want: &[u8], clients: usize, requests: usize) -> Vec<String> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    let next = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (next, failures) = (Arc::clone(&next), Arc::clone(&failures));
            let (addr, path, want) = (addr.to_string(), path.to_string(), want.to_vec());
            std::thread::spawn(move || {
                while next.fetch_add(1, Ordering::SeqCst) < requests {
                    if let Err(e) = get_ok(&addr, &path, &want) {
                        failures.lock().unwrap().push(e);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let f = failures.lock().unwrap().clone();
    f
}

#[test]
fn listen_under_a_fleets_load_queues_instead_of_refusing() {
    // 256 clients at once for 10,000 requests, against 8 workers: most requests wait in
    // the worker queue (the old server refused them with 503), and none fails.
    let d = tree();
    let dir = d.path().join("srv");
    let s = Served::start(&["--dir", dir.to_str().unwrap(), "--max-conns", "8"]);
    let want = std::fs::read(dir.join("vm1/meta-data")).unwrap();
    let failures = hammer(&s.addr, "/vm1/meta-data", &want, 256, 10_000);
    assert!(
        failures.is_empty(),
        "{} of 10000 requests failed, e.g. {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
}

#[test]
fn slow_clients_do_not_hold_the_workers() {
    // 200 clients send half a request and wait; 4 workers still answer everyone else.
    let d = tree();
    let dir = d.path().join("srv");
    let s = Served::start(&[
        "--dir",
        dir.to_str().unwrap(),
        "--max-conns",
        "4",
        "--timeout",
        "300",
    ]);
    let idle: Vec<TcpStream> = (0..200)
        .map(|_| {
            let mut c = TcpStream::connect(&s.addr).unwrap();
            c.write_all(b"GET /vm1/meta-data HTTP/1.1\r\nHost: sl")
                .unwrap();
            c
        })
        .collect();
    let want = std::fs::read(dir.join("vm1/user-data")).unwrap();
    let failures = hammer(&s.addr, "/vm1/user-data", &want, 16, 500);
    assert!(failures.is_empty(), "{failures:?}");
    // The slow ones were still waiting (not answered, not dropped) all that time.
    for mut c in idle {
        c.set_nonblocking(true).unwrap();
        let mut b = [0u8; 16];
        let r = c.read(&mut b);
        assert!(
            matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "{r:?}"
        );
    }
}
