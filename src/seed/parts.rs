//! User-data parts: what cloud-init would call a part, and several parts as one
//! `multipart/mixed` document (a manifest row's user-data after the template, the host
//! keys of `--ssh-host-keys` after the user's user-data).

/// MIME type of a user-data part by its first line, as cloud-init classifies it.
pub fn part_type(data: &[u8]) -> Option<&'static str> {
    const TYPES: [(&str, &str); 7] = [
        ("#cloud-config-archive", "text/cloud-config-archive"),
        ("#cloud-config", "text/cloud-config"),
        ("#cloud-boothook", "text/cloud-boothook"),
        ("#include", "text/x-include-url"),
        ("#part-handler", "text/part-handler"),
        ("## template: jinja", "text/jinja2"),
        ("#!", "text/x-shellscript"),
    ];
    TYPES
        .iter()
        .find(|(prefix, _)| data.starts_with(prefix.as_bytes()))
        .map(|(_, t)| *t)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// `(name, MIME type, body)` parts, in order, as one `multipart/mixed` document with a
/// deterministic boundary that occurs in none of them. cloud-init (and the agent) merge
/// cloud-config parts in order, a later part's keys winning.
pub fn multipart(parts: &[(&str, &str, &[u8])]) -> Result<Vec<u8>, String> {
    let boundary = (0..1000u32)
        .map(|n| format!("==ci-seed-part-boundary-{n}=="))
        .find(|b| !parts.iter().any(|(_, _, d)| contains(d, b.as_bytes())))
        .ok_or("no MIME boundary free in the user-data parts")?;
    let total: usize = parts.iter().map(|(_, _, d)| d.len() + 256).sum();
    let mut out = Vec::with_capacity(total + 128);
    out.extend_from_slice(
        format!("Content-Type: multipart/mixed; boundary=\"{boundary}\"\nMIME-Version: 1.0\n\n")
            .as_bytes(),
    );
    for (name, ty, data) in parts {
        out.extend_from_slice(
            format!(
                "--{boundary}\nContent-Type: {ty}; charset=\"utf-8\"\nMIME-Version: 1.0\nContent-Transfer-Encoding: 8bit\nContent-Disposition: attachment; filename=\"{name}\"\n\n"
            )
            .as_bytes(),
        );
        out.extend_from_slice(data);
        out.push(b'\n');
    }
    out.extend_from_slice(format!("--{boundary}--\n").as_bytes());
    Ok(out)
}
