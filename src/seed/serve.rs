//! `ci-seed serve`: the host side of the vm-bootstrap endpoint and of NoCloud over HTTP.
//!
//! Two ways to serve the same read-only content:
//! - `--stdio`: answer exactly one HTTP request read from stdin, response on stdout, then
//!   exit. This is what qemu spawns per guest connection with
//!   `-nic user,guestfwd=tcp:10.0.2.100:80-cmd:ci-seed serve --stdio /path/script`
//!   (instead of `netcat HOST PORT` plus a web server). A guest that connects and sends
//!   nothing is dropped after `--timeout` seconds, and the whole exchange is bounded by
//!   `--max-time`, so no process lingers.
//! - `--listen ADDR`: the server a fleet's clones fetch from (`ds=nocloud;s=http://…/`
//!   seeds, bootstrap scripts); it prints the bound address first (`--listen 127.0.0.1:0`
//!   picks a free port and prints it). One thread reads request heads from every open
//!   connection with `poll`, so a client that sends half a request holds a descriptor,
//!   not a worker, and is dropped at `--timeout`; complete heads go to `--max-conns`
//!   worker threads, queued while all are busy. At most [`MAX_OPEN`] connections are open
//!   at once; beyond that the server stops accepting and the kernel's listen backlog
//!   (the system maximum) holds new clients until a slot frees: a burst waits, it is not
//!   refused.
//!
//! Content is either one SCRIPT, served at `/vm-bootstrap` (every other path is 404), or a
//! directory (`--dir DIR`): `/vm-bootstrap` is `DIR/vm-bootstrap`, `/<name>/meta-data` is
//! `DIR/<name>/meta-data`, and so on for any regular file below DIR. Only GET and HEAD;
//! no directory listings; `.`/`..` segments, backslashes and NUL are refused (400), and a
//! path whose canonical form (symlinks resolved) leaves DIR is 404. Each request is logged
//! to stderr (and `--log FILE`): peer, method, path, status, bytes.
//!
//! HTTP/1.x is hand-written here: a read-only server that answers one request per
//! connection with `Connection: close` needs a request-line parser and a status line,
//! which is less code and less attack surface than any server crate.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::platform::cli::{self, Opt, Value as CliValue};

/// Largest request head (request line + headers) accepted.
pub const MAX_HEAD: usize = 8 * 1024;

/// Worker threads of `--listen` (requests beyond them wait in a queue).
pub const DEFAULT_MAX_CONNS: usize = 32;

/// Connections `--listen` keeps open at once (heads being read, queued, being answered);
/// more wait in the kernel's listen backlog.
pub const MAX_OPEN: usize = 1024;

/// `ci-seed serve`'s options (the parser below; `platform::cli`).
pub const OPTIONS: &[Opt] = &[
    cli::HELP,
    Opt::flag("stdio", &[]),
    Opt::with("listen", &[], CliValue::Word("ADDR")),
    Opt::with("dir", &[], CliValue::Dir),
    Opt::with("timeout", &[], CliValue::Word("SECS")),
    Opt::with("max-time", &[], CliValue::Word("SECS")),
    Opt::with("max-conns", &[], CliValue::Word("N")),
    Opt::with("log", &[], CliValue::File),
];

const USAGE: &str = "\
usage: ci-seed serve --stdio (SCRIPT | --dir DIR) [--timeout SECS] [--max-time SECS] [--log FILE]
       ci-seed serve --listen ADDR (SCRIPT | --dir DIR) [--timeout SECS] [--max-conns N] [--log FILE]

Serve the vm-bootstrap script (SCRIPT at /vm-bootstrap) or a directory of files (DIR:
/vm-bootstrap and NoCloud trees /<name>/{meta-data,user-data,vendor-data}) over HTTP, read-only.

  --stdio          answer one request on stdin/stdout and exit (qemu guestfwd ...-cmd:)
  --listen ADDR    listen on ADDR (e.g. 127.0.0.1:8080; port 0 = any free port); the bound
                   address is printed on stdout as `listening on http://ADDR/`
  --dir DIR        serve the regular files below DIR
  --timeout SECS   wait at most SECS for a request head (default 10); --listen: also
                   for each write of the answer
  --max-time SECS  --stdio: give up on the whole exchange after SECS (default 600)
  --max-conns N    --listen: requests answered at once (default 32); more wait their turn
  --log FILE       also append one line per request to FILE
  -h, --help       this help
";

/// What is served.
#[derive(Debug, Clone)]
pub enum Site {
    /// One script at `/vm-bootstrap`.
    Script(PathBuf),
    /// Regular files below a directory (canonical path).
    Dir(PathBuf),
}

impl Site {
    /// A directory site (the directory must exist).
    pub fn dir(dir: &Path) -> anyhow::Result<Self> {
        let canon = dir
            .canonicalize()
            .with_context(|| format!("{}: cannot open the directory to serve", dir.display()))?;
        if !canon.is_dir() {
            anyhow::bail!("{}: not a directory", dir.display());
        }
        Ok(Site::Dir(canon))
    }
}

/// A parsed request line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The target as sent (for the log).
    pub target: String,
    /// `HTTP/1.0` or `HTTP/1.1`.
    pub version: String,
}

/// What was sent back, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Served {
    pub status: u16,
    pub bytes: u64,
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    }
}

/// Why no request could be read.
#[derive(Debug)]
pub enum HeadError {
    /// Nothing complete arrived in time.
    Timeout,
    /// The head exceeded [`MAX_HEAD`].
    TooLarge,
    /// The peer closed before the head was complete.
    Closed,
    Io(io::Error),
}

fn head_end(buf: &[u8]) -> Option<usize> {
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4);
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|p| p + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Read a request head (up to the empty line). `before_read` is called before each read
/// with the time left, so a socket can set its read timeout; it returns `false` when the
/// deadline has passed.
fn read_head(
    r: &mut dyn Read,
    mut before_read: impl FnMut() -> io::Result<bool>,
) -> Result<Vec<u8>, HeadError> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        if !before_read().map_err(HeadError::Io)? {
            return Err(HeadError::Timeout);
        }
        let n = match r.read(&mut chunk) {
            Ok(0) => return Err(HeadError::Closed),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut =>
            {
                return Err(HeadError::Timeout)
            }
            Err(e) => return Err(HeadError::Io(e)),
        };
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = head_end(&buf) {
            buf.truncate(end);
            return Ok(buf);
        }
        if buf.len() > MAX_HEAD {
            return Err(HeadError::TooLarge);
        }
    }
}

/// Parse the request line of a head. Headers are not needed (no body, no keep-alive).
pub fn parse_request(head: &[u8]) -> Result<Request, u16> {
    let line_end = head.iter().position(|&b| b == b'\n').ok_or(400u16)?;
    let line = std::str::from_utf8(&head[..line_end]).map_err(|_| 400u16)?;
    let line = line.strip_suffix('\r').unwrap_or(line);
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(400);
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(400);
    }
    if version != "HTTP/1.0" && version != "HTTP/1.1" {
        return Err(if version.starts_with("HTTP/") {
            505
        } else {
            400
        });
    }
    Ok(Request {
        method: method.into(),
        target: target.into(),
        version: version.into(),
    })
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The path segments of a request target: query and fragment dropped, percent-decoded,
/// empty segments skipped. `.`/`..`, NUL, backslash, an absolute-form or relative target
/// are refused with 400.
pub fn target_segments(target: &str) -> Result<Vec<String>, u16> {
    let path = target.split(['?', '#']).next().unwrap_or("");
    if !path.starts_with('/') {
        return Err(400);
    }
    let mut out = Vec::new();
    for raw in path.split('/').filter(|s| !s.is_empty()) {
        let bytes = raw.as_bytes();
        let mut dec = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                let hi = bytes.get(i + 1).copied().and_then(hex).ok_or(400u16)?;
                let lo = bytes.get(i + 2).copied().and_then(hex).ok_or(400u16)?;
                dec.push(hi << 4 | lo);
                i += 3;
            } else {
                dec.push(bytes[i]);
                i += 1;
            }
        }
        let seg = String::from_utf8(dec).map_err(|_| 400u16)?;
        if seg == "." || seg == ".." || seg.contains(['/', '\\', '\0']) {
            return Err(400);
        }
        out.push(seg);
    }
    Ok(out)
}

/// Resolve a request to a file to send, or a status.
fn resolve(site: &Site, target: &str) -> Result<PathBuf, u16> {
    let segs = target_segments(target)?;
    match site {
        Site::Script(script) => {
            if segs.len() == 1 && segs[0] == "vm-bootstrap" {
                Ok(script.clone())
            } else {
                Err(404)
            }
        }
        Site::Dir(root) => {
            if segs.is_empty() {
                return Err(404);
            }
            let mut p = root.clone();
            p.extend(&segs);
            // Resolve symlinks; whatever lands outside the served tree does not exist.
            let canon = p.canonicalize().map_err(|_| 404u16)?;
            if !canon.starts_with(root) {
                return Err(404);
            }
            Ok(canon)
        }
    }
}

fn write_head(
    out: &mut dyn Write,
    version: &str,
    status: u16,
    len: u64,
    extra: &str,
) -> io::Result<()> {
    let ctype = if status == 200 {
        "application/octet-stream"
    } else {
        "text/plain; charset=utf-8"
    };
    write!(
        out,
        "{version} {status} {}\r\nServer: ci-seed\r\nContent-Type: {ctype}\r\nContent-Length: {len}\r\n{extra}Connection: close\r\n\r\n",
        reason(status)
    )
}

/// Send an error response with a one-line body.
pub fn send_error(
    out: &mut dyn Write,
    version: &str,
    status: u16,
    head_only: bool,
) -> io::Result<Served> {
    let body = format!("{status} {}\n", reason(status));
    let extra = if status == 405 {
        "Allow: GET, HEAD\r\n"
    } else {
        ""
    };
    write_head(out, version, status, body.len() as u64, extra)?;
    let mut bytes = 0;
    if !head_only {
        out.write_all(body.as_bytes())?;
        bytes = body.len() as u64;
    }
    out.flush()?;
    Ok(Served { status, bytes })
}

/// Answer one request head.
pub fn respond(
    site: &Site,
    head: &[u8],
    out: &mut dyn Write,
) -> io::Result<(Option<Request>, Served)> {
    let req = match parse_request(head) {
        Ok(r) => r,
        Err(status) => return Ok((None, send_error(out, "HTTP/1.1", status, false)?)),
    };
    let v = req.version.clone();
    let head_only = req.method == "HEAD";
    if req.method != "GET" && !head_only {
        return Ok((Some(req), send_error(out, &v, 405, false)?));
    }
    let path = match resolve(site, &req.target) {
        Ok(p) => p,
        Err(status) => return Ok((Some(req), send_error(out, &v, status, head_only)?)),
    };
    // The canonical path has no symlink left; O_NOFOLLOW keeps a last-moment swap out.
    // O_NONBLOCK: opening a FIFO below DIR must not wait for a writer (it would pin the
    // connection's thread for ever); a FIFO then fails the regular-file check below.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags((nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_NONBLOCK).bits())
        .open(&path);
    let (file, len) = match file.and_then(|f| f.metadata().map(|m| (f, m))) {
        Ok((f, m)) if m.is_file() => (f, m.len()),
        _ => return Ok((Some(req), send_error(out, &v, 404, head_only)?)),
    };
    write_head(out, &v, 200, len, "")?;
    let mut bytes = 0;
    if !head_only {
        // Send exactly what Content-Length announced, even if the file changes meanwhile.
        // A file that shrinks meanwhile gives a short body (the log shows the bytes).
        bytes = io::copy(&mut (&file).take(len), out)?;
    }
    out.flush()?;
    Ok((Some(req), Served { status: 200, bytes }))
}

/// Where request lines go: stderr, and optionally a file.
struct ReqLog {
    file: Option<Mutex<File>>,
}

impl ReqLog {
    fn open(path: Option<&Path>) -> anyhow::Result<Self> {
        let file = match path {
            Some(p) => Some(Mutex::new(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .with_context(|| format!("{}: cannot open the log", p.display()))?,
            )),
            None => None,
        };
        Ok(ReqLog { file })
    }

    fn line(&self, peer: &str, req: Option<&Request>, served: Option<Served>, note: &str) {
        let (method, target) = match req {
            Some(r) => (r.method.as_str(), r.target.escape_debug().to_string()),
            None => ("-", "-".to_string()),
        };
        let (status, bytes) = match served {
            Some(s) => (s.status.to_string(), s.bytes.to_string()),
            None => ("-".into(), "0".into()),
        };
        let mut line = format!("ci-seed serve: {peer} {method} {target} {status} {bytes}");
        if !note.is_empty() {
            line.push(' ');
            line.push_str(note);
        }
        eprintln!("{line}");
        if let Some(f) = &self.file {
            let mut f = f.lock().unwrap_or_else(|e| e.into_inner());
            let _ = writeln!(f, "{line}");
        }
    }
}

/// Serve one connection given as a reader (request) and a writer (response), waiting at
/// most `timeout` for the request head. Used by `--stdio` (stdin/stdout) and by tests.
pub fn serve_one(
    site: &Site,
    input: Box<dyn Read + Send>,
    out: &mut dyn Write,
    timeout: Duration,
) -> (Option<Request>, Result<Served, HeadError>) {
    // A blocking read on a pipe cannot be given a timeout portably: read in a thread and
    // wait for it. If it never returns, the process exits and takes the thread with it.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut input = input;
        let _ = tx.send(read_head(&mut input, || Ok(true)));
    });
    let head = match rx.recv_timeout(timeout) {
        Ok(r) => r,
        Err(_) => Err(HeadError::Timeout),
    };
    match head {
        Ok(head) => match respond(site, &head, out) {
            Ok((req, served)) => (req, Ok(served)),
            Err(e) => (None, Err(HeadError::Io(e))),
        },
        Err(HeadError::TooLarge) => (
            None,
            send_error(out, "HTTP/1.1", 431, false).map_err(HeadError::Io),
        ),
        Err(HeadError::Timeout) => {
            // Whoever is there gets told; nobody listening is fine too.
            let _ = send_error(out, "HTTP/1.1", 408, false);
            (None, Err(HeadError::Timeout))
        }
        Err(e) => (None, Err(e)),
    }
}

/// What a worker does with a connection whose head the poll loop read.
enum Job {
    Head(Vec<u8>),
    TooLarge,
}

/// A connection handed to a worker.
struct Conn {
    stream: TcpStream,
    peer: String,
    job: Job,
}

/// Answer one connection (blocking; each write bounded by `timeout`), then close it.
fn answer(site: &Site, conn: Conn, timeout: Duration, log: &ReqLog) {
    let Conn { stream, peer, job } = conn;
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_write_timeout(Some(timeout.max(Duration::from_secs(1))));
    let mut out = BufWriter::new(&stream);
    match job {
        Job::Head(head) => match respond(site, &head, &mut out) {
            Ok((req, served)) => log.line(&peer, req.as_ref(), Some(served), ""),
            Err(e) => log.line(&peer, None, None, &format!("write failed: {e}")),
        },
        Job::TooLarge => {
            let s = send_error(&mut out, "HTTP/1.1", 431, false).ok();
            log.line(&peer, None, s, "request head too large");
        }
    }
    drop(out);
    linger_close(&stream);
}

/// Close gracefully: send FIN, then read and drop what the client still sends (briefly, and
/// boundedly), so unread request bytes do not turn our close into a reset that destroys the
/// response before the client reads it.
fn linger_close(stream: &TcpStream) {
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let mut sink = [0u8; 4096];
    let mut left = 64 * 1024;
    let mut r = stream;
    while left > 0 {
        match r.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => left -= n.min(left),
        }
    }
}

/// A connection whose request head the poll loop is still reading (non-blocking).
struct Pending {
    stream: TcpStream,
    peer: String,
    buf: Vec<u8>,
    deadline: Instant,
}

/// What one read of a pending connection gave.
enum Step {
    More,
    Done(Job),
    Closed,
    Failed(io::Error),
}

impl Pending {
    /// Read what is there (at most a head's worth) without blocking.
    fn read(&mut self) -> Step {
        let mut chunk = [0u8; 2048];
        loop {
            match (&self.stream).read(&mut chunk) {
                Ok(0) => return Step::Closed,
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    if let Some(end) = head_end(&self.buf) {
                        self.buf.truncate(end);
                        return Step::Done(Job::Head(std::mem::take(&mut self.buf)));
                    }
                    if self.buf.len() > MAX_HEAD {
                        return Step::Done(Job::TooLarge);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Step::More,
                Err(e) => return Step::Failed(e),
            }
        }
    }
}

/// A listening socket with the system's largest backlog (std does not let us choose), so a
/// burst of clients beyond [`MAX_OPEN`] waits in the kernel instead of being refused.
fn bind_listener(addr: &str) -> anyhow::Result<TcpListener> {
    use nix::sys::socket::{self as sock, AddressFamily, Backlog, SockFlag, SockType};
    use std::net::ToSocketAddrs as _;
    use std::os::fd::AsRawFd as _;
    let sa = addr
        .to_socket_addrs()
        .with_context(|| format!("cannot listen on {addr}"))?
        .next()
        .with_context(|| format!("cannot listen on {addr}: no address"))?;
    let family = if sa.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let fd = sock::socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)
        .with_context(|| format!("cannot listen on {addr}"))?;
    sock::setsockopt(&fd, sock::sockopt::ReuseAddr, &true)
        .with_context(|| format!("cannot listen on {addr}"))?;
    sock::bind(fd.as_raw_fd(), &sock::SockaddrStorage::from(sa))
        .with_context(|| format!("cannot listen on {addr}"))?;
    sock::listen(&fd, Backlog::MAXALLOWABLE).with_context(|| format!("cannot listen on {addr}"))?;
    Ok(TcpListener::from(fd))
}

/// The limits of `--listen`.
#[derive(Debug, Clone, Copy)]
struct Limits {
    /// Deadline of a request head, and of each write of an answer.
    timeout: Duration,
    /// Worker threads.
    workers: usize,
    /// Connections open at once.
    max_open: usize,
}

/// Accept connections forever (until the process is killed): one poll loop reads heads,
/// `workers` threads answer.
fn listen(site: Site, listener: TcpListener, lim: Limits, log: ReqLog) -> anyhow::Result<()> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd as _;
    listener
        .set_nonblocking(true)
        .context("setting the listener non-blocking")?;
    let site = Arc::new(site);
    let log = Arc::new(log);
    // Connections accepted and not yet closed: pending heads, queued and being answered.
    let open = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::channel::<Conn>();
    let rx = Arc::new(Mutex::new(rx));
    for i in 0..lim.workers.max(1) {
        let (site, log, open, rx) = (
            Arc::clone(&site),
            Arc::clone(&log),
            Arc::clone(&open),
            Arc::clone(&rx),
        );
        std::thread::Builder::new()
            .name(format!("serve-{i}"))
            .spawn(move || loop {
                let next = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                let Ok(conn) = next else { return };
                answer(&site, conn, lim.timeout, &log);
                open.fetch_sub(1, Ordering::SeqCst);
            })
            .context("cannot start a worker thread")?;
    }
    let mut pending: Vec<Pending> = Vec::new();
    let close = |p: Pending, note: &str, status: Option<u16>| {
        let s = status.and_then(|st| send_error(&mut &p.stream, "HTTP/1.1", st, false).ok());
        log.line(&p.peer, None, s, note);
        let _ = p.stream.shutdown(std::net::Shutdown::Both);
        open.fetch_sub(1, Ordering::SeqCst);
    };
    loop {
        // Heads not complete by their deadline: 408 (a non-blocking write of a few bytes
        // into an empty send buffer), and the descriptor is freed.
        let now = Instant::now();
        let (late, keep): (Vec<_>, Vec<_>) = pending.into_iter().partition(|p| p.deadline <= now);
        pending = keep;
        for p in late {
            close(p, "no request in time", Some(408));
        }
        let accepting = open.load(Ordering::SeqCst) < lim.max_open;
        let mut wait = pending
            .iter()
            .map(|p| p.deadline.saturating_duration_since(now))
            .min()
            .unwrap_or(Duration::from_secs(1));
        if !accepting {
            // Workers free slots without telling this loop: look again soon.
            wait = wait.min(Duration::from_millis(10));
        }
        let ms = u16::try_from(wait.as_millis().max(1)).unwrap_or(u16::MAX);
        let ready: Vec<bool> = {
            let mut fds: Vec<PollFd> = pending
                .iter()
                .map(|p| PollFd::new(p.stream.as_fd(), PollFlags::POLLIN))
                .collect();
            if accepting {
                fds.push(PollFd::new(listener.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, PollTimeout::from(ms)) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e).context("poll"),
            }
            fds.iter()
                .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
                .collect()
        };
        // Read what arrived; back to front, so swap_remove keeps the indices valid.
        for i in (0..pending.len()).rev() {
            if !ready[i] {
                continue;
            }
            match pending[i].read() {
                Step::More => {}
                Step::Done(job) => {
                    let p = pending.swap_remove(i);
                    let conn = Conn {
                        stream: p.stream,
                        peer: p.peer,
                        job,
                    };
                    if let Err(mpsc::SendError(conn)) = tx.send(conn) {
                        close(
                            Pending {
                                stream: conn.stream,
                                peer: conn.peer,
                                buf: Vec::new(),
                                deadline: now,
                            },
                            "no worker left",
                            Some(503),
                        );
                    }
                }
                Step::Closed => close(pending.swap_remove(i), "closed before a request", None),
                Step::Failed(e) => {
                    close(pending.swap_remove(i), &format!("read failed: {e}"), None)
                }
            }
        }
        if accepting && ready.last() == Some(&true) {
            while open.load(Ordering::SeqCst) < lim.max_open {
                match listener.accept() {
                    Ok((stream, addr)) => {
                        if let Err(e) = stream.set_nonblocking(true) {
                            eprintln!("ci-seed serve: {addr}: {e}");
                            continue;
                        }
                        open.fetch_add(1, Ordering::SeqCst);
                        pending.push(Pending {
                            stream,
                            peer: addr.to_string(),
                            buf: Vec::new(),
                            deadline: Instant::now() + lim.timeout,
                        });
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        // Out of descriptors or memory: let connections finish first.
                        eprintln!("ci-seed serve: accept failed: {e}");
                        std::thread::sleep(Duration::from_millis(50));
                        break;
                    }
                }
            }
        }
    }
}

struct Args {
    stdio: bool,
    listen: Option<String>,
    dir: Option<PathBuf>,
    script: Option<PathBuf>,
    timeout: Duration,
    max_time: Duration,
    max_conns: usize,
    log: Option<PathBuf>,
}

fn parse_args(args: Vec<OsString>) -> Result<Option<Args>, String> {
    use lexopt::prelude::*;
    let mut a = Args {
        stdio: false,
        listen: None,
        dir: None,
        script: None,
        timeout: Duration::from_secs(10),
        max_time: Duration::from_secs(600),
        max_conns: DEFAULT_MAX_CONNS,
        log: None,
    };
    let count = |v: OsString, name: &str| -> Result<usize, String> {
        v.to_str()
            .and_then(|s| s.parse::<usize>().ok())
            .filter(|&n| n > 0)
            .ok_or_else(|| format!("{name}: expected a positive number"))
    };
    let secs = |v: OsString, name: &str| -> Result<Duration, String> {
        v.to_str()
            .and_then(|s| s.parse::<u64>().ok())
            .filter(|&n| n > 0)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("{name}: expected a positive number of seconds"))
    };
    let mut p = lexopt::Parser::from_args(args);
    loop {
        let arg = match p.next() {
            Ok(Some(a)) => a,
            Ok(None) => break,
            Err(e) => return Err(e.to_string()),
        };
        let val = |p: &mut lexopt::Parser| p.value().map_err(|e| e.to_string());
        match arg {
            Short('h') | Long("help") => return Ok(None),
            Long("stdio") => a.stdio = true,
            Long("listen") => {
                a.listen = Some(
                    val(&mut p)?
                        .into_string()
                        .map_err(|_| "--listen: not UTF-8")?,
                )
            }
            Long("dir") => a.dir = Some(val(&mut p)?.into()),
            Long("timeout") => a.timeout = secs(val(&mut p)?, "--timeout")?,
            Long("max-time") => a.max_time = secs(val(&mut p)?, "--max-time")?,
            Long("max-conns") => a.max_conns = count(val(&mut p)?, "--max-conns")?,
            Long("log") => a.log = Some(val(&mut p)?.into()),
            Value(v) if a.script.is_none() => a.script = Some(v.into()),
            other => return Err(other.unexpected().to_string()),
        }
    }
    if a.stdio == a.listen.is_some() {
        return Err("give exactly one of --stdio and --listen ADDR".into());
    }
    if a.dir.is_some() == a.script.is_some() {
        return Err("give exactly one of SCRIPT and --dir DIR".into());
    }
    Ok(Some(a))
}

fn run(a: Args) -> anyhow::Result<u8> {
    let site = match (&a.dir, &a.script) {
        (Some(d), _) => Site::dir(d)?,
        (None, Some(s)) => {
            // Checked now so a typo shows at start; the file is read per request.
            if !s.is_file() {
                anyhow::bail!("{}: no such script file", s.display());
            }
            Site::Script(s.clone())
        }
        (None, None) => anyhow::bail!("nothing to serve"),
    };
    let log = ReqLog::open(a.log.as_deref())?;
    if a.stdio {
        // The guest may stop reading; nothing may keep this process alive for ever.
        let max_time = a.max_time;
        std::thread::spawn(move || {
            std::thread::sleep(max_time);
            eprintln!("ci-seed serve: giving up after {} s", max_time.as_secs());
            std::process::exit(i32::from(crate::exit::FAILED));
        });
        let stdout = io::stdout();
        let mut out = BufWriter::new(stdout.lock());
        let (req, res) = serve_one(&site, Box::new(io::stdin()), &mut out, a.timeout);
        return Ok(match res {
            Ok(served) => {
                log.line("stdio", req.as_ref(), Some(served), "");
                crate::exit::OK
            }
            Err(HeadError::Timeout) => {
                log.line("stdio", None, None, "no request in time");
                crate::exit::FAILED
            }
            Err(HeadError::Closed) => {
                log.line("stdio", None, None, "closed before a request");
                crate::exit::FAILED
            }
            Err(HeadError::TooLarge) => {
                log.line("stdio", None, None, "request head too large");
                crate::exit::FAILED
            }
            Err(HeadError::Io(e)) => {
                log.line("stdio", req.as_ref(), None, &format!("i/o error: {e}"));
                crate::exit::FAILED
            }
        });
    }
    let addr = a.listen.as_deref().unwrap_or_default();
    let listener = bind_listener(addr)?;
    let bound = listener.local_addr().context("reading the bound address")?;
    crate::outln!("listening on http://{bound}/");
    let lim = Limits {
        timeout: a.timeout,
        workers: a.max_conns,
        max_open: MAX_OPEN,
    };
    listen(site, listener, lim, log)?;
    Ok(crate::exit::OK)
}

/// `ci-seed serve …` (arguments after `serve`).
pub fn cli(args: Vec<OsString>) -> u8 {
    let a = match parse_args(args) {
        Ok(Some(a)) => a,
        Ok(None) => {
            crate::out!("{USAGE}");
            return crate::exit::OK;
        }
        Err(e) => {
            eprintln!("ci-seed serve: {e}\n{USAGE}");
            return crate::exit::USAGE;
        }
    };
    match run(a) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ci-seed serve: {e:#}");
            crate::exit::FAILED
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_line_parsing() {
        let r = parse_request(b"GET /vm-bootstrap HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!(
            (r.method.as_str(), r.target.as_str()),
            ("GET", "/vm-bootstrap")
        );
        assert_eq!(parse_request(b"GET /x HTTP/2.0\r\n\r\n"), Err(505));
        assert_eq!(parse_request(b"GET /x\r\n\r\n"), Err(400));
        assert_eq!(parse_request(b"GET  /x HTTP/1.1\r\n\r\n"), Err(400));
        assert_eq!(parse_request(b"get /x HTTP/1.1\r\n\r\n"), Err(400));
        assert_eq!(parse_request(b"\xff /x HTTP/1.1\r\n\r\n"), Err(400));
        assert_eq!(parse_request(b""), Err(400));
    }

    #[test]
    fn targets_are_decoded_and_traversal_refused() {
        assert_eq!(target_segments("/a//b/?q=1").unwrap(), ["a", "b"]);
        assert_eq!(target_segments("/a%20b").unwrap(), ["a b"]);
        assert_eq!(target_segments("/"), Ok(vec![]));
        for bad in [
            "/../etc/passwd",
            "/a/%2e%2e/b",
            "/a/%2fetc",
            "/a\\..\\b",
            "/a%00",
            "/%zz",
            "/%4",
            "http://x/a",
            "a/b",
            "/./a",
        ] {
            assert_eq!(target_segments(bad), Err(400), "{bad}");
        }
    }

    #[test]
    fn head_end_finds_both_terminators() {
        assert_eq!(head_end(b"GET / HTTP/1.0\r\n\r\nbody"), Some(18));
        assert_eq!(head_end(b"GET / HTTP/1.0\n\nbody"), Some(16));
        assert_eq!(head_end(b"GET / HTTP/1.0\r\n"), None);
    }

    #[test]
    fn dir_site_serves_files_and_refuses_escapes() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("srv");
        std::fs::create_dir_all(root.join("vm1")).unwrap();
        std::fs::write(root.join("vm1/meta-data"), "instance-id: a\n").unwrap();
        std::fs::write(d.path().join("secret"), "no").unwrap();
        std::os::unix::fs::symlink(d.path().join("secret"), root.join("leak")).unwrap();
        std::os::unix::fs::symlink("vm1/meta-data", root.join("inner")).unwrap();
        let site = Site::dir(&root).unwrap();
        let get = |t: &str| {
            let mut out = Vec::new();
            let head = format!("GET {t} HTTP/1.1\r\n\r\n");
            let (_, s) = respond(&site, head.as_bytes(), &mut out).unwrap();
            (s.status, String::from_utf8_lossy(&out).into_owned())
        };
        let (st, body) = get("/vm1/meta-data");
        assert_eq!(st, 200);
        assert!(body.contains("Content-Length: 15\r\n") && body.ends_with("instance-id: a\n"));
        assert_eq!(get("/inner").0, 200);
        assert_eq!(get("/leak").0, 404);
        assert_eq!(get("/vm1").0, 404);
        assert_eq!(get("/").0, 404);
        assert_eq!(get("/../secret").0, 400);
        assert_eq!(get("/vm1/nope").0, 404);
        let mut out = Vec::new();
        let (_, s) = respond(&site, b"POST /vm1/meta-data HTTP/1.1\r\n\r\n", &mut out).unwrap();
        assert_eq!(s.status, 405);
        assert!(String::from_utf8_lossy(&out).contains("Allow: GET, HEAD\r\n"));
        let mut out = Vec::new();
        let (_, s) = respond(&site, b"HEAD /vm1/meta-data HTTP/1.0\r\n\r\n", &mut out).unwrap();
        assert_eq!((s.status, s.bytes), (200, 0));
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("HTTP/1.0 200 OK\r\n") && text.ends_with("\r\n\r\n"));
    }

    #[test]
    fn fifo_below_dir_is_404_not_a_hang() {
        let d = tempfile::tempdir().unwrap();
        nix::unistd::mkfifo(&d.path().join("pipe"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        let site = Site::dir(d.path()).unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut out = Vec::new();
            let r = respond(&site, b"GET /pipe HTTP/1.1\r\n\r\n", &mut out);
            let _ = tx.send(r.map(|(_, s)| s.status).ok());
        });
        let status = rx.recv_timeout(Duration::from_secs(10));
        assert_eq!(status, Ok(Some(404)), "opening a FIFO must not block");
    }

    #[test]
    fn serve_one_times_out_on_silence() {
        let (r, _w) = std::io::pipe().unwrap();
        let site = Site::Script("/nonexistent".into());
        let mut out = Vec::new();
        let (_, res) = serve_one(&site, Box::new(r), &mut out, Duration::from_millis(200));
        assert!(matches!(res, Err(HeadError::Timeout)));
        assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 408 "));
    }

    #[test]
    fn open_connections_are_bounded_and_the_next_one_waits() {
        // `max_open` 3: three clients that never finish their heads fill every slot (with
        // a long head deadline); a fourth, complete request is not accepted, so it is not
        // answered, until one of them leaves; then it is, from the listen backlog (not
        // refused). No timing is asserted: while the three are open, the fourth can never
        // be answered, however slow the machine.
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("f"), "body\n").unwrap();
        let site = Site::dir(d.path()).unwrap();
        let listener = bind_listener("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let lim = Limits {
            timeout: Duration::from_secs(600),
            workers: 1,
            max_open: 3,
        };
        // The loop runs until the test process exits.
        std::thread::spawn(move || listen(site, listener, lim, ReqLog { file: None }));
        let mut idle: Vec<TcpStream> = (0..3)
            .map(|_| {
                let mut c = TcpStream::connect(addr).unwrap();
                c.write_all(b"GET /f HTTP/1.1\r\nHo").unwrap();
                c
            })
            .collect();
        // The fourth: complete, but behind the three in the accept queue.
        let mut probe = TcpStream::connect(addr).unwrap();
        probe.write_all(b"GET /f HTTP/1.1\r\n\r\n").unwrap();
        probe
            .set_read_timeout(Some(Duration::from_millis(1500)))
            .unwrap();
        let mut b = [0u8; 64];
        let r = probe.read(&mut b);
        assert!(
            matches!(&r, Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)),
            "a fourth connection was served while three were open: {r:?}"
        );
        // One slot frees: the waiting request is accepted and answered.
        drop(idle.pop());
        probe
            .set_read_timeout(Some(Duration::from_secs(120)))
            .unwrap();
        let mut out = Vec::new();
        probe.read_to_end(&mut out).unwrap();
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.starts_with("HTTP/1.1 200 ") && text.ends_with("body\n"),
            "{text}"
        );
    }

    proptest::proptest! {
        /// Arbitrary request heads never panic and never serve anything outside the tree.
        #[test]
        fn arbitrary_heads_stay_inside(head in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
                                       path in "[/a-z.%2eEfF]{0,40}") {
            let d = tempfile::tempdir().unwrap();
            let root = d.path().join("srv");
            std::fs::create_dir_all(root.join("a")).unwrap();
            std::fs::write(root.join("a/f"), "in").unwrap();
            std::fs::write(d.path().join("f"), "OUT").unwrap();
            let site = Site::dir(&root).unwrap();
            let mut out = Vec::new();
            let _ = respond(&site, &head, &mut out);
            let mut out = Vec::new();
            let req = format!("GET {path} HTTP/1.1\r\n\r\n");
            let (_, served) = respond(&site, req.as_bytes(), &mut out).unwrap();
            let text = String::from_utf8_lossy(&out);
            proptest::prop_assert!(!text.contains("OUT"));
            if served.status == 200 {
                proptest::prop_assert!(text.ends_with("\r\n\r\nin"));
            }
        }
    }

    #[test]
    fn args() {
        let p = |v: &[&str]| parse_args(v.iter().map(OsString::from).collect());
        assert!(p(&["--help"]).unwrap().is_none());
        assert!(p(&["--stdio", "s"]).unwrap().is_some());
        assert!(p(&["--stdio", "--listen", "x", "s"]).is_err());
        assert!(p(&["--stdio"]).is_err());
        assert!(p(&["--stdio", "--dir", "d", "s"]).is_err());
        assert!(p(&["--stdio", "s", "--timeout", "0"]).is_err());
        assert!(p(&["--stdio", "a", "b"]).is_err());
    }
}
