//! MIME multipart user-data (what `cloud-init devel make-mime` and most cloud tooling
//! produce): detection, splitting into leaf parts, and transfer decoding, on `mailparse`.
//!
//! Nested `multipart/*` parts are flattened in document order. Each leaf keeps its
//! lower-cased MIME type (`text/cloud-config`, `text/x-shellscript`, …), its file name
//! (Content-Disposition `filename`, else Content-Type `name`, as Python's
//! `get_filename()`), and its body with base64 / quoted-printable undone. What each type
//! means is decided by the caller ([`super`]).

/// One leaf part of a multipart message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// Lower-cased MIME type without parameters; empty when the part has none.
    pub content_type: String,
    pub filename: Option<String>,
    /// Body after the Content-Transfer-Encoding is undone.
    pub body: Vec<u8>,
    /// The `Merge-Type` (else `X-Merge-Type`) header: how a cloud-config part merges.
    /// Like cloud-init (a dict of the headers), the name must be spelled exactly so, and
    /// the last of repeated headers counts.
    pub merge_type: Option<String>,
}

/// True when `data` is a MIME message as cloud-init decides it (`convert_string`):
/// `MIME-Version:` (any case) somewhere in its first 4096 bytes. A document with only a
/// `Content-Type` header is not one (cloud-init ignores it as unhandled user-data).
pub fn looks_like_mime(data: &[u8]) -> bool {
    const NEEDLE: &[u8] = b"mime-version:";
    data.get(..4096)
        .unwrap_or(data)
        .windows(NEEDLE.len())
        .any(|w| w.eq_ignore_ascii_case(NEEDLE))
}

/// Split a MIME message into its leaf parts (at most `max_parts`; more is an error).
/// Header blocks are found the way Python's `email` parser (cloud-init's) finds them:
/// see [`with_separators`].
pub fn split(data: &[u8], max_parts: usize) -> Result<Vec<Part>, String> {
    let data = with_separators(data, 0);
    let mail = mailparse::parse_mail(&data).map_err(|e| format!("invalid MIME message: {e}"))?;
    let mut out = Vec::new();
    collect(&mail, max_parts, &mut out)?;
    Ok(out)
}

fn collect(
    mail: &mailparse::ParsedMail<'_>,
    max_parts: usize,
    out: &mut Vec<Part>,
) -> Result<(), String> {
    let ctype = mail.ctype.mimetype.trim().to_ascii_lowercase();
    if ctype.starts_with("multipart/") && !mail.subparts.is_empty() {
        for sub in &mail.subparts {
            collect(sub, max_parts, out)?;
        }
        return Ok(());
    }
    if out.len() >= max_parts {
        return Err(format!("more than {max_parts} MIME parts"));
    }
    let has_ctype = mail
        .headers
        .iter()
        .any(|h| h.get_key_ref().eq_ignore_ascii_case("content-type"));
    let filename = mail
        .get_content_disposition()
        .params
        .get("filename")
        .cloned()
        .or_else(|| mail.ctype.params.get("name").cloned())
        .filter(|n| !n.trim().is_empty());
    let mut body = match mail.get_body_encoded() {
        // Python's email decodes base64 leniently: characters outside the alphabet are
        // skipped, missing padding is added, and data that still does not decode is kept
        // as it is (`email._encoded_words.decode_b`).
        mailparse::body::Body::Base64(b) => {
            let raw: Vec<u8> = b
                .get_raw()
                .iter()
                .copied()
                .filter(|c| !matches!(c, b'\r' | b'\n'))
                .collect();
            let mut padded = raw.clone();
            padded.extend_from_slice(b"==");
            crate::formats::yaml::python_b64decode(&raw)
                .or_else(|_| crate::formats::yaml::python_b64decode(&padded))
                .unwrap_or(raw)
        }
        _ => mail.get_body_raw().map_err(|e| {
            format!(
                "part {} ({}): cannot decode its body: {e}",
                out.len() + 1,
                filename.as_deref().unwrap_or(&ctype)
            )
        })?,
    };
    // mailparse turns quoted-printable line ends into CRLF; keep the sender's LF (a
    // `#!/bin/sh\r` line would not run).
    if let mailparse::body::Body::QuotedPrintable(qp) = mail.get_body_encoded() {
        if !qp.get_raw().windows(2).any(|w| w == b"\r\n") {
            body = crlf_to_lf(&body);
        }
    }
    let header = |name: &str| {
        mail.headers
            .iter()
            .rev()
            .find(|h| h.get_key_ref() == name)
            .map(|h| h.get_value())
            .filter(|v| !v.is_empty())
    };
    out.push(Part {
        // mailparse defaults a missing Content-Type to text/plain; keep "none" visible.
        content_type: if has_ctype { ctype } else { String::new() },
        filename,
        body,
        merge_type: header("Merge-Type").or_else(|| header("X-Merge-Type")),
    });
    Ok(())
}

/// How deep [`with_separators`] follows nested multiparts (the caller bounds nesting
/// again when it walks the parts).
const MAX_SEPARATOR_DEPTH: usize = 8;

/// Python's email parser ends a header block at the first line that is not a header
/// (`Name:` of printable characters, a continuation line, `From `): a blank line there
/// is dropped, any other line is the first line of the body. mailparse wants the blank
/// line, so put one in front of such a body, in the message and in every part of a
/// multipart (boundary lines as Python matches them: `--boundary`, optional `--`,
/// optional blanks). Everything else is kept byte for byte.
pub fn with_separators(data: &[u8], depth: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 16);
    let mut pos = 0;
    let mut crlf = false;
    while let Some(line) = next_line(data, pos) {
        let text = data.get(pos..pos + line).unwrap_or_default();
        if is_blank(text) {
            out.extend_from_slice(text);
            pos += line;
            break;
        }
        if !is_header(text) {
            out.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
            break;
        }
        crlf = text.ends_with(b"\r\n");
        out.extend_from_slice(text);
        pos += line;
    }
    let (headers, body) = data.split_at(pos.min(data.len()));
    let boundary = multipart_boundary(headers).filter(|_| depth < MAX_SEPARATOR_DEPTH);
    let Some(boundary) = boundary else {
        out.extend_from_slice(body);
        return out;
    };
    // Preamble, then each part up to the next boundary line, then the epilogue.
    let mut start = 0;
    let mut in_part = false;
    let mut pos = 0;
    while let Some(line) = next_line(body, pos) {
        let text = body.get(pos..pos + line).unwrap_or_default();
        if let Some(close) = boundary_line(text, &boundary) {
            let chunk = body.get(start..pos).unwrap_or_default();
            if in_part {
                out.extend(with_separators(chunk, depth + 1));
            } else {
                out.extend_from_slice(chunk);
            }
            out.extend_from_slice(text);
            start = pos + line;
            in_part = !close;
            if close {
                break;
            }
        }
        pos += line;
    }
    let rest = body.get(start..).unwrap_or_default();
    if in_part {
        out.extend(with_separators(rest, depth + 1));
    } else {
        out.extend_from_slice(rest);
    }
    out
}

/// Length of the line at `pos`, its line end included; `None` at the end.
fn next_line(data: &[u8], pos: usize) -> Option<usize> {
    let rest = data.get(pos..).filter(|r| !r.is_empty())?;
    Some(
        rest.iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |i| i + 1),
    )
}

fn is_blank(line: &[u8]) -> bool {
    matches!(line, b"\n" | b"\r\n" | b"\r")
}

/// Python's `headerRE`: `From `, a continuation, or printable non-colon characters then
/// a colon.
fn is_header(line: &[u8]) -> bool {
    if line.starts_with(b"From ") || line.starts_with(b" ") || line.starts_with(b"\t") {
        return true;
    }
    let name_len = line
        .iter()
        .take_while(|&&b| (0x21..=0x7e).contains(&b) && b != b':')
        .count();
    line.get(name_len) == Some(&b':')
}

/// The boundary of a `multipart/*` header block.
fn multipart_boundary(headers: &[u8]) -> Option<String> {
    let (parsed, _) = mailparse::parse_headers(headers).ok()?;
    let value = parsed
        .iter()
        .rev()
        .find(|h| h.get_key_ref().eq_ignore_ascii_case("content-type"))?
        .get_value();
    let ct = mailparse::parse_content_type(&value);
    if !ct.mimetype.to_ascii_lowercase().starts_with("multipart/") {
        return None;
    }
    ct.params.get("boundary").filter(|b| !b.is_empty()).cloned()
}

/// `Some(closing)` when `line` is a boundary line of `boundary`.
fn boundary_line(line: &[u8], boundary: &str) -> Option<bool> {
    let rest = line
        .strip_prefix(b"--")?
        .strip_prefix(boundary.as_bytes())?;
    let (close, rest) = match rest.strip_prefix(b"--") {
        Some(r) => (true, r),
        None => (false, rest),
    };
    rest.iter()
        .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
        .then_some(close)
}

fn crlf_to_lf(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    while let Some(&b) = data.get(i) {
        if b == b'\r' && data.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        out.push(b);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &str = "Content-Type: multipart/mixed; boundary=\"XX\"\n\
MIME-Version: 1.0\n\
\n\
--XX\n\
Content-Type: text/cloud-config; charset=\"us-ascii\"\n\
Content-Transfer-Encoding: base64\n\
Content-Disposition: attachment; filename=\"cfg.yaml\"\n\
\n\
I2Nsb3VkLWNvbmZpZwpob3N0bmFtZTogbWltZQo=\n\
--XX\n\
Content-Type: text/x-shellscript; name=\"s.sh\"\n\
Content-Transfer-Encoding: quoted-printable\n\
\n\
#!/bin/sh\n\
echo a=3Db\n\
--XX--\n";

    #[test]
    fn splits_and_decodes() {
        assert!(looks_like_mime(MSG.as_bytes()));
        let parts = split(MSG.as_bytes(), 10).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].content_type, "text/cloud-config");
        assert_eq!(parts[0].filename.as_deref(), Some("cfg.yaml"));
        assert_eq!(parts[0].body, b"#cloud-config\nhostname: mime\n");
        assert_eq!(parts[1].content_type, "text/x-shellscript");
        assert_eq!(parts[1].filename.as_deref(), Some("s.sh"));
        assert_eq!(parts[1].body, b"#!/bin/sh\necho a=b");
        assert!(split(MSG.as_bytes(), 1).is_err());
    }

    #[test]
    fn yaml_is_not_mime() {
        assert!(!looks_like_mime(b"hostname: x\nusers: []\n"));
        assert!(!looks_like_mime(b"#cloud-config\n"));
        assert!(!looks_like_mime(b""));
        assert!(looks_like_mime(
            b"MIME-Version: 1.0\nContent-Type: text/x-shellscript\n\n#!/bin/sh\n"
        ));
    }
}
