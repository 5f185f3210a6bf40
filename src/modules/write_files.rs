//! Key: `write_files`. cloud-init: `cc_write_files`, `cc_write_files_deferred`.
//!
//! `write_files`: files from the seed. Items without `defer` are written early (module
//! `write_files`); `defer: true` items late, after users and packages exist (module
//! `write_files_deferred`), like cloud-init.
//!
//! Each item: content already decoded by the parser; `permissions` (default 0644);
//! `owner` `user[:group]` resolved to numbers from the guest's `/etc/passwd` and
//! `/etc/group` (unknown → error naming the item); missing parent directories created
//! 0755; replaced atomically, or appended with `append: true`. A relative path or one
//! with `..` is refused, naming the item index and path. The final component is never
//! followed when it is a symlink (error). Symlinks among the parent directories are
//! followed: they belong to the system (`/var/run -> /run`), and the seed author is
//! already root. Every item is tried; the module fails naming each failed item.
//!
//! `source: {uri, headers}` (cloud-init 23.1): the content is fetched from `uri`
//! (`http(s)://` with the bootstrap's time and size limits and the given headers, or a
//! `file://` path in the guest); when that fails the item's `content` is written instead
//! (a warning), and without `content` the item fails. The early pass runs before the
//! network: give a source that needs it `defer: true`. Once per instance.
//!
//! An append happens exactly once per instance, across kills: before it, the target's
//! size and the length of what is appended are recorded durably in the instance's state
//! directory (`write_files-append-N`). If the run dies after the append and before the
//! module's semaphore, the next boot finds the record, sees the bytes already at that
//! offset, and appends only what is missing (nothing, or the rest of a short write).

use std::path::{Component, Path};

use anyhow::{bail, Context as _};

use super::{Context, Frequency, Module, Stage};
use crate::formats::userdata::cloud_config::WriteFile;
use crate::platform::accounts::AccountDb;
use crate::platform::http::{self, HttpLimits};
use crate::platform::policy::shorten;
use crate::platform::{FileKind, WriteOpts};

pub struct WriteFiles {
    /// `false`: the early module (`write_files`); `true`: `write_files_deferred`.
    pub deferred: bool,
}

fn check_path(p: &str) -> Result<(), &'static str> {
    if !p.starts_with('/') {
        return Err("must be an absolute path");
    }
    if p.contains('\0') {
        return Err("contains a NUL byte");
    }
    if Path::new(p)
        .components()
        .any(|c| matches!(c, Component::ParentDir))
    {
        return Err("must not contain '..'");
    }
    if p.ends_with('/') || Path::new(p).file_name().is_none() {
        return Err("names a directory, not a file");
    }
    Ok(())
}

/// The record of item `i`'s append: `OFFSET LEN` (the target's size before the append,
/// the bytes appended).
fn append_record(i: usize) -> String {
    format!("write_files-append-{i}")
}

/// What item `i` still has to append to `path`: all of it, the rest of a short write, or
/// nothing when a killed run already appended it (its record says where). A new append
/// is recorded first.
fn still_to_append<'c>(
    ctx: &Context,
    i: usize,
    path: &Path,
    content: &'c [u8],
) -> anyhow::Result<&'c [u8]> {
    let exists = ctx.sys.lstat(path)?;
    let size = exists.as_ref().map_or(0, |st| st.len);
    let len = content.len() as u64;
    let rec = ctx.instance_dir.join(append_record(i));
    let recorded = ctx.sys.read_file(&rec, 64).ok().and_then(|b| {
        let t = String::from_utf8(b).ok()?;
        let (o, l) = t.trim().split_once(' ')?;
        Some((o.parse::<u64>().ok()?, l.parse::<u64>().ok()?))
    });
    if let Some((off, rlen)) = recorded {
        if rlen == len && size >= off && size <= off + len {
            let data = match exists {
                Some(_) => ctx
                    .sys
                    .read_file(path, off + len)
                    .with_context(|| format!("reading {}", path.display()))?,
                None => Vec::new(),
            };
            let landed = data.get(off as usize..).unwrap_or_default();
            if content.starts_with(landed) {
                if !landed.is_empty() {
                    log::info!(
                        "{}: {} of {len} bytes were appended by an interrupted run",
                        path.display(),
                        landed.len()
                    );
                }
                return Ok(&content[landed.len()..]);
            }
        }
    }
    ctx.write_instance_file(
        &append_record(i),
        format!("{size} {len}\n").as_bytes(),
        0o600,
    )?;
    Ok(content)
}

fn write_one(ctx: &Context, db: &AccountDb, i: usize, f: &WriteFile) -> anyhow::Result<()> {
    let path = Path::new(&f.path);
    let owner = match &f.owner {
        Some(o) => Some(db.resolve_owner(o)?),
        None => None,
    };
    let mode = f.permissions.unwrap_or(0o644);
    if mode > 0o7777 {
        bail!("permissions {mode:o} are not a file mode");
    }
    if let Some(st) = ctx.sys.lstat(path).ok().flatten() {
        match st.kind {
            FileKind::Symlink => bail!("refusing to write through symlink {}", f.path),
            FileKind::Dir => bail!("{} is a directory", f.path),
            _ => {}
        }
    }
    if let Some(parent) = path.parent() {
        ctx.sys
            .create_dir_all(parent, 0o755, None)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let mut opts = WriteOpts::mode(mode);
    if let Some((u, g)) = owner {
        opts = opts.owner(u, g);
    }
    let content = if f.append {
        opts = opts.append();
        still_to_append(ctx, i, path, &f.content)?
    } else {
        &f.content[..]
    };
    // An empty append still creates a missing file, as cloud-init does.
    if !(f.append && content.is_empty() && ctx.sys.lstat(path)?.is_some()) {
        ctx.sys
            .write_file(path, content, opts)
            .with_context(|| format!("writing {}", f.path))?;
    }
    if f.append {
        // An existing file keeps its mode and owner through an append; set them as
        // cloud-init does. Owner first: Linux chown clears the setuid/setgid bits, even
        // for root, so a chmod before it would lose them.
        if let Some((u, g)) = owner {
            ctx.sys
                .set_owner(path, u, g)
                .with_context(|| format!("chown {}", f.path))?;
        }
        ctx.sys
            .set_mode(path, mode)
            .with_context(|| format!("chmod {}", f.path))?;
    }
    log::info!(
        "wrote {} ({} bytes{})",
        f.path,
        f.content.len(),
        if f.append { ", appended" } else { "" }
    );
    Ok(())
}

/// A `source.uri`: `http(s)://` through the agent's bounded client (the bootstrap's
/// limits), or `file://`/a path read from the guest (at most the same size).
fn fetch_source(ctx: &Context, uri: &str, headers: &[(String, String)]) -> Result<Vec<u8>, String> {
    let limits = HttpLimits::from_bootstrap(&ctx.config.bootstrap);
    if http::is_http_url(uri) {
        return http::get_with_headers(uri, headers, &limits).map_err(|e| e.to_string());
    }
    let path = uri.strip_prefix("file://").unwrap_or(uri);
    if !path.starts_with('/') {
        return Err(format!("{uri}: expected an http(s):// or file:// URI"));
    }
    ctx.sys
        .read_file(Path::new(path), limits.max_bytes)
        .map_err(|e| format!("{uri}: {e}"))
}

impl Module for WriteFiles {
    fn name(&self) -> &'static str {
        if self.deferred {
            "write_files_deferred"
        } else {
            "write_files"
        }
    }
    fn keys(&self) -> &'static [&'static str] {
        &["write_files"]
    }
    fn frequency(&self) -> Frequency {
        Frequency::PerInstance
    }
    fn stage(&self) -> Stage {
        if self.deferred {
            Stage::Late
        } else {
            Stage::Early
        }
    }
    fn wanted(&self, ctx: &Context) -> bool {
        ctx.cc()
            .write_files
            .iter()
            .any(|f| f.defer == self.deferred)
    }
    fn run(&self, ctx: &mut Context) -> anyhow::Result<()> {
        let files = ctx.cc().write_files.clone();
        let db = AccountDb::load(ctx.sys)?;
        let mut failed = Vec::new();
        for (i, f) in files.iter().enumerate() {
            if f.defer != self.deferred {
                continue;
            }
            let label = format!("write_files[{i}] ({})", shorten(&f.path));
            if let Err(why) = check_path(&f.path) {
                failed.push(format!("{label}: path {why}"));
                continue;
            }
            let mut f = f.clone();
            if let Some(src) = &f.source {
                match fetch_source(ctx, &src.uri, &src.headers) {
                    Ok(body) => f.content = body,
                    Err(e) if f.content.is_empty() => {
                        failed.push(format!("{label}: source: {e}"));
                        continue;
                    }
                    Err(e) => {
                        ctx.warn(format!("{label}: source: {e}; writing its content instead"))
                    }
                }
            }
            if let Err(e) = write_one(ctx, &db, i, &f) {
                failed.push(format!("{label}: {e:#}"));
            }
        }
        if !failed.is_empty() {
            bail!("{}", failed.join("; "));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::test_env::Env;
    use crate::platform::OsKind;

    fn wf(path: &str, content: &str) -> WriteFile {
        WriteFile {
            path: path.into(),
            content: content.as_bytes().to_vec(),
            ..WriteFile::default()
        }
    }

    #[test]
    fn writes_modes_owners_append_and_defer() {
        let mut env = Env::new(OsKind::Linux);
        env.sys.put(
            "/etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nbob:x:1000:1000::/home/bob:/bin/sh\n",
        );
        env.sys.put("/etc/motd", "hello\n");
        env.seed.cloud_config.write_files = vec![
            wf(
                "/etc/anchor/written.txt",
                "written-by-cloud-init write_files\n",
            ),
            WriteFile {
                owner: Some("bob:sudo".into()),
                permissions: Some(0o600),
                ..wf("/home/bob/secret", "s")
            },
            WriteFile {
                append: true,
                permissions: Some(0o640),
                owner: Some("root:sudo".into()),
                ..wf("/etc/motd", "more\n")
            },
            WriteFile {
                defer: true,
                ..wf("/etc/late", "late\n")
            },
        ];
        env.run_ok(&WriteFiles { deferred: false });
        assert_eq!(
            env.read("/etc/anchor/written.txt"),
            "written-by-cloud-init write_files\n"
        );
        assert_eq!(env.mode("/etc/anchor/written.txt"), 0o644);
        assert_eq!(env.mode("/etc/anchor"), 0o755);
        assert_eq!(env.mode("/home/bob/secret"), 0o600);
        assert_eq!(env.sys.owner("/home/bob/secret"), Some((1000, 27)));
        assert_eq!(env.read("/etc/motd"), "hello\nmore\n");
        assert_eq!(env.mode("/etc/motd"), 0o640);
        assert_eq!(env.sys.owner("/etc/motd"), Some((0, 27)));
        assert!(env.sys.read_string("/etc/late").is_none());
        env.run_ok(&WriteFiles { deferred: true });
        assert_eq!(env.read("/etc/late"), "late\n");
    }

    #[test]
    fn append_sets_the_mode_after_the_owner() {
        use crate::platform::fake::Effect;
        use std::sync::{Arc, Mutex};
        let mut env = Env::new(OsKind::Linux);
        env.sys.put("/usr/local/bin/tool", "#!/bin/sh\n");
        env.seed.cloud_config.write_files = vec![WriteFile {
            append: true,
            permissions: Some(0o4755),
            owner: Some("root:root".into()),
            ..wf("/usr/local/bin/tool", "exit 0\n")
        }];
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        env.sys.set_fault(move |e| {
            if let Effect::Chown(_) | Effect::Chmod(_) = e {
                log.lock().unwrap().push(e.clone());
            }
            Ok(())
        });
        env.run_ok(&WriteFiles { deferred: false });
        let p = std::path::PathBuf::from("/usr/local/bin/tool");
        assert_eq!(
            *seen.lock().unwrap(),
            [Effect::Chown(p.clone()), Effect::Chmod(p)],
            "a chown after the chmod would clear the setuid bit"
        );
        assert_eq!(env.mode("/usr/local/bin/tool"), 0o4755);
    }

    #[test]
    fn hostile_paths_and_owners() {
        let mut env = Env::new(OsKind::FreeBsd);
        let root = crate::platform::System::root(&env.sys).to_path_buf();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::os::unix::fs::symlink("/etc/master.passwd", root.join("etc/link")).unwrap();
        env.seed.cloud_config.write_files = vec![
            wf("relative/x", ""),
            wf("/etc/../../x", ""),
            wf("/etc/link", "pwned"),
            WriteFile {
                owner: Some("nobody:nogroup".into()),
                ..wf("/etc/owned", "")
            },
            wf("/etc/ok", "fine"),
        ];
        let e = env.run_err(&WriteFiles { deferred: false });
        assert!(
            e.contains("write_files[0] (relative/x): path must be an absolute path"),
            "{e}"
        );
        assert!(
            e.contains("write_files[1] (/etc/../../x): path must not contain '..'"),
            "{e}"
        );
        assert!(
            e.contains("write_files[2] (/etc/link): refusing to write through symlink"),
            "{e}"
        );
        assert!(
            e.contains("write_files[3] (/etc/owned): unknown user \"nobody\""),
            "{e}"
        );
        assert!(!root.join("etc/master.passwd").exists());
        assert!(!root.join("etc/owned").exists());
        assert_eq!(
            env.read("/etc/ok"),
            "fine",
            "the good item is still written"
        );
    }

    #[test]
    fn source_is_fetched_or_falls_back_to_content() {
        use std::io::{Read, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/f", l.local_addr().unwrap());
        let h = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap();
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: 7\r\nConnection: close\r\n\r\nfetched"
            );
            String::from_utf8_lossy(&buf[..n]).into_owned()
        });
        let mut env = Env::new(OsKind::Linux);
        env.sys.put("/srv/local.txt", "from-file");
        env.yaml(&format!(
            "write_files:\n- path: /a\n  source: {{uri: '{url}', headers: {{X-Token: s3cret}}}}\n  content: fallback\n- path: /b\n  source: {{uri: 'file:///srv/local.txt'}}\n- path: /c\n  source: {{uri: 'file:///nope'}}\n  content: fallback\n- path: /d\n  source: {{uri: 'file:///nope'}}\n"
        ));
        let e = env.run_err(&WriteFiles { deferred: false });
        let req = h.join().unwrap();
        assert!(req.contains("x-token: s3cret\r\n"), "{req}");
        assert_eq!(env.read("/a"), "fetched");
        assert_eq!(env.read("/b"), "from-file");
        assert_eq!(env.read("/c"), "fallback");
        assert!(
            e.contains("write_files[3] (/d): source: file:///nope"),
            "{e}"
        );
        assert!(!e.contains("write_files[2]"), "{e}");
    }

    #[test]
    fn an_append_happens_once_across_a_kill() {
        use crate::platform::fake::Effect;
        let mut env = Env::new(OsKind::Linux);
        env.sys.put("/etc/motd", "hello\n");
        env.seed.cloud_config.write_files = vec![WriteFile {
            append: true,
            permissions: Some(0o644),
            ..wf("/etc/motd", "welcome\n")
        }];
        // Killed right after the append, at the chmod that follows it.
        env.sys.set_fault(|e| match e {
            Effect::Chmod(p) if p.ends_with("motd") => Err(std::io::Error::other("killed")),
            _ => Ok(()),
        });
        env.run_err(&WriteFiles { deferred: false });
        env.sys.clear_fault();
        assert_eq!(env.read("/etc/motd"), "hello\nwelcome\n");
        env.run_ok(&WriteFiles { deferred: false });
        assert_eq!(env.read("/etc/motd"), "hello\nwelcome\n");
        // A short write: the rest is appended, not the whole again.
        env.sys.put("/etc/motd", "hello\nwel");
        env.run_ok(&WriteFiles { deferred: false });
        assert_eq!(env.read("/etc/motd"), "hello\nwelcome\n");
        // Someone rewrote the file since: a new append.
        env.sys.put("/etc/motd", "other\n");
        env.run_ok(&WriteFiles { deferred: false });
        assert_eq!(env.read("/etc/motd"), "other\nwelcome\n");
    }
}
