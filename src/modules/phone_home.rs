//! Key: `phone_home` (`url`, `post`, `tries`). cloud-init: `cc_phone_home`.
//!
//! At the end of the late pass, POST (form-encoded, as cloud-init) what `post` lists —
//! `all` (the default) or some of `pub_key_rsa`, `pub_key_ecdsa`, `pub_key_ed25519`,
//! `instance_id`, `hostname`, `fqdn` — to `url`, where `$INSTANCE_ID` is replaced by the
//! instance id. The host keys are the `.pub` files under `/etc/ssh` (a missing one is
//! sent as `N/A`, like cloud-init). Each attempt is bounded like the bootstrap fetch
//! (`bootstrap.*` connect and total timeouts); `tries` attempts (default 10), 3 s apart;
//! a 2xx answer ends it, and when every attempt failed the module fails naming the URL and
//! the last error. Once per instance.

use std::path::Path;
use std::time::Duration;

use anyhow::bail;

use super::hostname::choose;
use super::{Context, Frequency, Module, Stage};
use crate::platform::http::{self, HttpLimits};

pub struct PhoneHome;

const FIELDS: [&str; 6] = [
    "pub_key_rsa",
    "pub_key_ecdsa",
    "pub_key_ed25519",
    "instance_id",
    "hostname",
    "fqdn",
];

fn host_key(ctx: &Context, kind: &str) -> String {
    let p = format!("/etc/ssh/ssh_host_{kind}_key.pub");
    ctx.sys
        .read_file(Path::new(&p), 64 << 10)
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_else(|_| "N/A".into())
}

fn current_hostname(ctx: &Context) -> (String, String) {
    if let Ok(Some((short, fqdn))) = choose(ctx) {
        return (short, fqdn);
    }
    let name = ctx
        .sys
        .read_file(Path::new("/etc/hostname"), 4096)
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let short = name.split('.').next().unwrap_or("").to_owned();
    (short, name)
}

impl Module for PhoneHome {
    fn name(&self) -> &'static str {
        "phone_home"
    }
    fn frequency(&self) -> Frequency {
        Frequency::PerInstance
    }
    fn stage(&self) -> Stage {
        Stage::Late
    }
    fn wanted(&self, ctx: &Context) -> bool {
        ctx.key("phone_home").is_some()
    }
    fn run(&self, ctx: &mut Context) -> anyhow::Result<()> {
        let Some(v) = ctx.key("phone_home") else {
            return Ok(());
        };
        v.mapping()?;
        for w in v.unknown_keys(&["url", "post", "tries"]) {
            ctx.warn(w);
        }
        let Some(url) = v.get("url") else {
            return Err(v.err("missing 'url'").into());
        };
        let url = url.word()?.replace("$INSTANCE_ID", &ctx.seed.instance_id);
        if !http::is_http_url(&url) {
            bail!("phone_home.url: {url}: only http:// and https:// URLs are supported");
        }
        let wanted: Vec<String> = match v.get("post") {
            None => FIELDS.iter().map(|s| s.to_string()).collect(),
            Some(p) if p.str().ok().as_deref() == Some("all") => {
                FIELDS.iter().map(|s| s.to_string()).collect()
            }
            Some(p) => {
                let mut out = Vec::new();
                for item in p.items()? {
                    let f = item.word()?;
                    if !FIELDS.contains(&f.as_str()) {
                        ctx.warn(format!("{}: unknown field {f:?} (ignored)", item.path));
                        continue;
                    }
                    out.push(f);
                }
                out
            }
        };
        let tries = match v.get("tries") {
            Some(t) => t.u64()?.clamp(1, 100),
            None => 10,
        };
        let (short, fqdn) = current_hostname(ctx);
        let form: Vec<(String, String)> = wanted
            .iter()
            .map(|f| {
                let value = match f.as_str() {
                    "pub_key_rsa" => host_key(ctx, "rsa"),
                    "pub_key_ecdsa" => host_key(ctx, "ecdsa"),
                    "pub_key_ed25519" => host_key(ctx, "ed25519"),
                    "instance_id" => ctx.seed.instance_id.clone(),
                    "hostname" => short.clone(),
                    _ => fqdn.clone(),
                };
                (f.clone(), value)
            })
            .collect();
        let limits = HttpLimits::from_bootstrap(&ctx.config.bootstrap);
        let mut last = String::new();
        for attempt in 1..=tries {
            match http::post_form(&url, &form, &limits) {
                Ok(()) => {
                    log::info!("phone_home: posted {} field(s) to {url}", form.len());
                    return Ok(());
                }
                Err(e) => {
                    last = e.to_string();
                    log::info!("phone_home: attempt {attempt}/{tries}: {last}");
                }
            }
            if attempt < tries {
                ctx.sys.sleep(Duration::from_secs(3));
            }
        }
        bail!("phone_home: {tries} attempt(s) failed; last: {last}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::test_env::Env;
    use crate::platform::OsKind;
    use std::io::{Read, Write};

    /// A one-request HTTP server on 127.0.0.1 answering `status`; returns its URL and a
    /// handle giving the raw request.
    fn server(status: u16) -> (String, std::thread::JoinHandle<String>) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/home/$INSTANCE_ID", l.local_addr().unwrap());
        let h = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                let n = s.read(&mut chunk).unwrap_or(0);
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf);
                if let Some(end) = text.find("\r\n\r\n") {
                    let len: usize = text
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + len {
                        break;
                    }
                }
            }
            let _ = write!(
                s,
                "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            String::from_utf8_lossy(&buf).into_owned()
        });
        (url, h)
    }

    #[test]
    fn posts_the_cloud_init_fields_on_both_oses() {
        for os in [OsKind::Linux, OsKind::FreeBsd] {
            let (url, h) = server(200);
            let mut env = Env::new(os);
            env.sys.put(
                "/etc/ssh/ssh_host_ed25519_key.pub",
                "ssh-ed25519 AAAA host\n",
            );
            env.yaml(&format!(
                "hostname: web1.example.org\nphone_home:\n  url: {url}\n  post: [pub_key_ed25519, pub_key_rsa, instance_id, hostname, fqdn]\n"
            ));
            env.run_ok(&PhoneHome);
            let req = h.join().unwrap();
            assert!(req.starts_with("POST /home/iid-test HTTP/1.1\r\n"), "{req}");
            assert!(req.contains("application/x-www-form-urlencoded"), "{req}");
            assert!(
                req.ends_with("pub_key_ed25519=ssh-ed25519+AAAA+host&pub_key_rsa=N%2FA&instance_id=iid-test&hostname=web1&fqdn=web1.example.org"),
                "{req}"
            );
        }
    }

    #[test]
    fn failures_are_retried_then_reported() {
        let (url, h) = server(500);
        let mut env = Env::new(OsKind::Linux);
        // The one-shot server answers the first try; the second finds nobody listening.
        env.yaml(&format!("phone_home: {{url: '{url}', tries: 2}}\n"));
        let e = env.run_err(&PhoneHome);
        h.join().unwrap();
        assert!(e.contains("2 attempt(s) failed"), "{e}");
        assert_eq!(env.sys.slept(), [Duration::from_secs(3)]);
        env.yaml("phone_home: {url: 'ftp://x/'}\n");
        assert!(env.run_err(&PhoneHome).contains("only http://"));
    }
}
