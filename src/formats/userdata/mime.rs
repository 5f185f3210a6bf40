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
}

/// True when `data` is a MIME message: it starts with header lines (`Name: value`) and
/// the header block names a `Content-Type`. Plain YAML (`hostname: x`) has no
/// Content-Type header and is not taken for MIME.
pub fn looks_like_mime(data: &[u8]) -> bool {
    let first_line = data.split(|&b| b == b'\n').next().unwrap_or_default();
    let Some(colon) = first_line.iter().position(|&b| b == b':') else {
        return false;
    };
    let name = first_line.get(..colon).unwrap_or_default();
    if name.is_empty() || !name.iter().all(|&b| b.is_ascii_graphic() && b != b':') {
        return false;
    }
    match mailparse::parse_headers(data) {
        Ok((headers, _)) => headers
            .iter()
            .any(|h| h.get_key_ref().eq_ignore_ascii_case("content-type")),
        Err(_) => false,
    }
}

/// Split a MIME message into its leaf parts (at most `max_parts`; more is an error).
pub fn split(data: &[u8], max_parts: usize) -> Result<Vec<Part>, String> {
    let mail = mailparse::parse_mail(data).map_err(|e| format!("invalid MIME message: {e}"))?;
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
    let mut body = mail.get_body_raw().map_err(|e| {
        format!(
            "part {} ({}): cannot decode its body: {e}",
            out.len() + 1,
            filename.as_deref().unwrap_or(&ctype)
        )
    })?;
    // mailparse turns quoted-printable line ends into CRLF; keep the sender's LF (a
    // `#!/bin/sh\r` line would not run).
    if let mailparse::body::Body::QuotedPrintable(qp) = mail.get_body_encoded() {
        if !qp.get_raw().windows(2).any(|w| w == b"\r\n") {
            body = crlf_to_lf(&body);
        }
    }
    out.push(Part {
        // mailparse defaults a missing Content-Type to text/plain; keep "none" visible.
        content_type: if has_ctype { ctype } else { String::new() },
        filename,
        body,
    });
    Ok(())
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
