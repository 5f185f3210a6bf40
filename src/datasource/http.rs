//! The one HTTP client of the agent: the vm-bootstrap script, NoCloud `seedfrom` URLs and
//! user-data `#include` URLs are all fetched here, with the same bounds.
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

use crate::formats::userdata::Seed;
use crate::platform::config::BootstrapConfig;

/// Redirect hops followed before giving up.
pub const MAX_REDIRECTS: u32 = 3;

/// Most `#include` URLs fetched for one user-data.
pub const MAX_INCLUDES: usize = 32;

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

fn check_url(url: &str) -> Result<(), FetchError> {
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
    check_url(url)?;
    let mut resp = agent(limits)
        .get(url)
        .call()
        .map_err(|e| transport_error(url, e, limits))?;
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

/// The NoCloud files fetched from a `seedfrom` URL, in this order; only `meta-data` and
/// `user-data` are required (like cloud-init's NoCloud-net).
const NOCLOUD_FILES: [(&str, bool); 4] = [
    ("meta-data", true),
    ("user-data", true),
    ("vendor-data", false),
    ("network-config", false),
];

/// Fetch a NoCloud seed from `base_url` (`seedfrom`, `ds=nocloud;s=…`): `meta-data` and
/// `user-data` must answer 200 (an empty body is fine), `vendor-data` and `network-config`
/// are optional (404 = absent). A trailing `/` is added to the base when missing. The
/// seed's `source` is the base URL. Total size is bounded by `limits.max_bytes` per file.
pub fn fetch_nocloud(limits: &HttpLimits, base_url: &str) -> anyhow::Result<Seed> {
    check_url(base_url)?;
    let mut base = base_url.to_string();
    if !base.ends_with('/') {
        base.push('/');
    }
    let mut seed = Seed {
        source: base.clone(),
        ..Seed::default()
    };
    for (name, required) in NOCLOUD_FILES {
        let url = format!("{base}{name}");
        let body = if required {
            Some(get(&url, limits)?)
        } else {
            get_optional(&url, limits)?
        };
        if let Some(body) = body {
            seed.files.insert(name.to_string(), body);
        }
    }
    Ok(seed)
}

/// Fetch user-data `#include` URLs in order, going on past failures: at most
/// [`MAX_INCLUDES`] URLs, each bounded by `limits` and all bodies together by
/// `limits.max_bytes` (each URL may read only what the earlier ones left). Returns the
/// bodies fetched and one problem per URL that was not (each naming the URL). This is
/// what the agent applies, like cloud-init: a missing include is a warning.
pub fn fetch_includes_lenient(
    urls: &[String],
    limits: &HttpLimits,
) -> (Vec<(String, Vec<u8>)>, Vec<String>) {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    let mut remaining = limits.max_bytes;
    for (i, url) in urls.iter().enumerate() {
        if i >= MAX_INCLUDES {
            problems.push(format!(
                "more than {MAX_INCLUDES} #include URLs; {url} and later ones skipped"
            ));
            break;
        }
        let one = HttpLimits {
            max_bytes: remaining,
            ..*limits
        };
        match get(url, &one) {
            Ok(body) => {
                remaining = remaining.saturating_sub(body.len() as u64);
                out.push((url.clone(), body));
            }
            // A body over what is left is not kept, so the budget is unchanged for the
            // next URL.
            Err(FetchError::TooLarge { url, .. }) if remaining < limits.max_bytes => {
                problems.push(format!(
                    "{url}: #include bodies together exceed the limit of {} bytes",
                    limits.max_bytes
                ));
            }
            Err(e) => problems.push(e.to_string()),
        }
    }
    (out, problems)
}

/// [`fetch_includes_lenient`], strict: more than [`MAX_INCLUDES`] URLs, or any URL that
/// cannot be fetched (including a 404), is an error naming it.
pub fn fetch_includes(
    urls: &[String],
    limits: &HttpLimits,
) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    if urls.len() > MAX_INCLUDES {
        anyhow::bail!(
            "#include lists {} URLs; at most {MAX_INCLUDES} are fetched",
            urls.len()
        );
    }
    let (out, problems) = fetch_includes_lenient(urls, limits);
    match problems.into_iter().next() {
        Some(p) => anyhow::bail!("fetching an #include URL: {p}"),
        None => Ok(out),
    }
}
