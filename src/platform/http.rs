//! The one HTTP client of the agent: the vm-bootstrap script, NoCloud `seedfrom` URLs,
//! user-data `#include` URLs (through `datasource::http`), `write_files` sources and
//! `phone_home` posts (modules) all go through here, with the same bounds.
//!
//! Everything the network hands us is untrusted, so every fetch is bounded:
//! - time: a connect timeout and an overall deadline that also covers reading the body
//!   (a server that trickles bytes forever is cut at the deadline);
//! - size: the body is read through a bounded reader and refused past `max_bytes`, whether or
//!   not the server sent a `Content-Length` (chunked or connection-close bodies included);
//! - redirects: at most [`MAX_REDIRECTS`] hops (seed servers behind a rewrite are common; an
//!   endless loop is not);
//! - status: only `200` is a body; anything else is an error naming the status (`404` is its
//!   own variant so optional NoCloud files can be told apart from failures).
//!
//! Only `http://` URLs, and `https://` when built with the `tls` cargo feature; an
//! `https://` URL in a build without it is a clear error instead of a confusing connect
//! failure. No proxy is ever taken from the environment: the bootstrap endpoint is a
//! link-local slirp address, and a boot environment has no business redirecting it.

use std::time::Duration;

use crate::platform::config::BootstrapConfig;

/// Redirect hops followed before giving up.
pub const MAX_REDIRECTS: u32 = 3;

/// The bounds of one fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Time to establish the TCP connection.
    pub connect_timeout: Duration,
    /// Deadline for the whole request: connect, headers and the complete body.
    pub timeout: Duration,
    /// Largest body accepted, in bytes.
    pub max_bytes: u64,
}

impl HttpLimits {
    /// The limits configured under `bootstrap.*` (also used for seedfrom and `#include`).
    pub fn from_bootstrap(cfg: &BootstrapConfig) -> Self {
        HttpLimits {
            connect_timeout: Duration::from_secs(cfg.connect_timeout_secs.max(1)),
            timeout: Duration::from_secs(cfg.timeout_secs.max(1)),
            max_bytes: cfg.max_bytes,
        }
    }
}

/// Why a fetch failed. Every message names the URL.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{url}: only http:// and https:// URLs are supported")]
    UnsupportedScheme { url: String },
    #[error(
        "{url}: https is not supported by this build (rebuild ci-agent with the `tls` feature)"
    )]
    TlsNotBuilt { url: String },
    #[error("{url}: not found (HTTP 404)")]
    NotFound { url: String },
    #[error("{url}: server answered HTTP {status} (expected 200)")]
    Status { url: String, status: u16 },
    #[error("{url}: response body larger than the limit of {limit} bytes")]
    TooLarge { url: String, limit: u64 },
    #[error("{url}: timed out ({what})")]
    Timeout { url: String, what: String },
    #[error("{url}: {message}")]
    Transport { url: String, message: String },
}

impl FetchError {
    /// The URL the error is about.
    pub fn url(&self) -> &str {
        match self {
            FetchError::UnsupportedScheme { url }
            | FetchError::TlsNotBuilt { url }
            | FetchError::NotFound { url }
            | FetchError::Status { url, .. }
            | FetchError::TooLarge { url, .. }
            | FetchError::Timeout { url, .. }
            | FetchError::Transport { url, .. } => url,
        }
    }
}

/// True when `s` is an URL this client fetches (`http://…`, `https://…`; case-insensitive
/// scheme). NoCloud `seedfrom` values that are not URLs are local paths.
pub fn is_http_url(s: &str) -> bool {
    scheme_of(s).is_some()
}

fn scheme_of(s: &str) -> Option<&'static str> {
    let lower = s.get(..8).unwrap_or(s).to_ascii_lowercase();
    if lower.starts_with("http://") {
        Some("http")
    } else if lower.starts_with("https://") {
        Some("https")
    } else {
        None
    }
}

/// The URL is one this client fetches (scheme, and TLS built in for https).
pub fn check_url(url: &str) -> Result<(), FetchError> {
    match scheme_of(url) {
        None => Err(FetchError::UnsupportedScheme { url: url.into() }),
        Some("https") if !cfg!(feature = "tls") => Err(FetchError::TlsNotBuilt { url: url.into() }),
        Some(_) => Ok(()),
    }
}

fn agent(limits: &HttpLimits) -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .max_redirects(MAX_REDIRECTS)
        .max_redirects_will_error(true)
        // No connection reuse: a boot makes a handful of requests, and a pooled connection
        // the server has already closed turns the next hop (a redirect) into an error.
        .max_idle_connections(0)
        .max_idle_connections_per_host(0)
        .timeout_connect(Some(limits.connect_timeout))
        .timeout_global(Some(limits.timeout))
        .max_response_header_size(64 * 1024)
        .user_agent(concat!("ci-agent/", env!("CARGO_PKG_VERSION")))
        .build();
    ureq::Agent::new_with_config(config)
}

fn transport_error(url: &str, e: ureq::Error, limits: &HttpLimits) -> FetchError {
    let url = url.to_string();
    match e {
        ureq::Error::BodyExceedsLimit(_) => FetchError::TooLarge {
            url,
            limit: limits.max_bytes,
        },
        ureq::Error::Timeout(t) => FetchError::Timeout {
            url,
            what: format!(
                "{t}; limits: connect {:?}, total {:?}",
                limits.connect_timeout, limits.timeout
            ),
        },
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => FetchError::Timeout {
            url,
            what: io.to_string(),
        },
        ureq::Error::ConnectionFailed => FetchError::Transport {
            url,
            message: "connection failed".into(),
        },
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            FetchError::Transport {
                url,
                message: "connection refused".into(),
            }
        }
        other => FetchError::Transport {
            url,
            message: other.to_string(),
        },
    }
}

/// GET `url` and return its body (status 200 only), bounded by `limits`.
pub fn get(url: &str, limits: &HttpLimits) -> Result<Vec<u8>, FetchError> {
    get_with_headers(url, &[], limits)
}

/// [`get`] with extra request headers (`write_files` `source.headers`).
pub fn get_with_headers(
    url: &str,
    headers: &[(String, String)],
    limits: &HttpLimits,
) -> Result<Vec<u8>, FetchError> {
    check_url(url)?;
    let mut req = agent(limits).get(url);
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let mut resp = req.call().map_err(|e| transport_error(url, e, limits))?;
    let status = resp.status().as_u16();
    if status == 404 {
        return Err(FetchError::NotFound { url: url.into() });
    }
    if status != 200 {
        return Err(FetchError::Status {
            url: url.into(),
            status,
        });
    }
    // ureq's limit refuses a read once the limit is used up, even at the end of the body;
    // allow one byte more and judge the length here, so exactly `max_bytes` passes.
    let body = resp
        .body_mut()
        .with_config()
        .limit(limits.max_bytes.saturating_add(1))
        .read_to_vec()
        .map_err(|e| transport_error(url, e, limits))?;
    if body.len() as u64 > limits.max_bytes {
        return Err(FetchError::TooLarge {
            url: url.into(),
            limit: limits.max_bytes,
        });
    }
    Ok(body)
}

/// Like [`get`], but a `404` is `Ok(None)` (an optional file that is absent).
pub fn get_optional(url: &str, limits: &HttpLimits) -> Result<Option<Vec<u8>>, FetchError> {
    match get(url, limits) {
        Ok(body) => Ok(Some(body)),
        Err(FetchError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// POST `form` as `application/x-www-form-urlencoded` (`phone_home`); any 2xx answer is
/// success, its body is not read.
pub fn post_form(
    url: &str,
    form: &[(String, String)],
    limits: &HttpLimits,
) -> Result<(), FetchError> {
    check_url(url)?;
    let resp = agent(limits)
        .post(url)
        .send_form(form.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .map_err(|e| transport_error(url, e, limits))?;
    let status = resp.status().as_u16();
    if !(200..300).contains(&status) {
        return Err(FetchError::Status {
            url: url.into(),
            status,
        });
    }
    Ok(())
}
