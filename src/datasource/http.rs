//! NoCloud over HTTP: a `seedfrom` URL's files and user-data `#include` URLs, fetched with
//! the agent's one bounded client ([`crate::platform::http`], re-exported here).

use crate::formats::userdata::Seed;
pub use crate::platform::http::{
    check_url, get, get_optional, get_with_headers, is_http_url, post_form, FetchError, HttpLimits,
    MAX_REDIRECTS,
};

/// Most `#include` URLs fetched for one user-data.
pub const MAX_INCLUDES: usize = 32;

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
