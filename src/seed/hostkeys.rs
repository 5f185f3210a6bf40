//! `--ssh-host-keys[=TYPES]` and `--known-hosts FILE` of `ci-seed` and `ci-seed batch`:
//! the clone's SSH host keys are made on the host, in-process, and put in its seed as
//! cloud-init's `ssh_keys` (so cloud-init applies them too, and the agent makes none);
//! the host learns them in advance through a `known_hosts` file instead of trusting the
//! first key it sees.
//!
//! The keys go into user-data as one more `#cloud-config` part after the user's (a
//! `multipart/mixed` document; the later part's `ssh_keys` win). The seed then holds
//! private keys: ci-seed writes it 0600, and it should be detached after the first boot.

use std::io;
use std::path::Path;

use anyhow::Context as _;
use zeroize::Zeroizing;

use super::parts::{multipart, part_type};
use crate::formats::hostkey::{self, HostKey, KeyType};

/// The types made when `--ssh-host-keys` names none: quick to make, and what every
/// OpenSSH since 6.5 offers first.
pub const DEFAULT_TYPES: [KeyType; 2] = [KeyType::Ed25519, KeyType::Ecdsa];

/// The types of `--ssh-host-keys[=TYPES]` (`None`: the default ones).
pub fn parse_types(arg: Option<&str>) -> Result<Vec<KeyType>, String> {
    match arg {
        None => Ok(DEFAULT_TYPES.to_vec()),
        Some(s) => hostkey::parse_types(s).map_err(|e| format!("--ssh-host-keys: {e}")),
    }
}

/// Make one key of each type, from the system's random source; `host` names them
/// (`root@host`, as `ssh-keygen` on the clone would).
pub fn generate(types: &[KeyType], host: Option<&str>) -> anyhow::Result<Vec<HostKey>> {
    let comment = format!("root@{}", host.unwrap_or("clone"));
    let mut fill = |b: &mut [u8]| getrandom::fill(b).map_err(|e| io::Error::other(e.to_string()));
    types
        .iter()
        .map(|&t| hostkey::generate_with_rsa(t, &comment, &mut fill).map_err(anyhow::Error::msg))
        .collect()
}

/// The `#cloud-config` part carrying `keys` as `ssh_keys` (private and public halves).
pub fn cloud_config(keys: &[HostKey]) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    let mut out = Zeroizing::new(String::from(
        "#cloud-config\n# SSH host keys made by ci-seed --ssh-host-keys: this seed is secret.\nssh_keys:\n",
    ));
    for k in keys {
        let private = k.private_openssh().map_err(anyhow::Error::msg)?;
        out.push_str(&format!("  {}_private: |\n", k.kind));
        for line in private.lines() {
            out.push_str("    ");
            out.push_str(line);
            out.push('\n');
        }
        out.push_str(&format!("  {}_public: {}", k.kind, k.public_openssh()));
    }
    Ok(Zeroizing::new(out.as_bytes().to_vec()))
}

/// `user_data` with the keys part after it. An empty user-data becomes the keys part
/// alone; a MIME or gzip user-data cannot take another part.
pub fn add_to_user_data(user_data: &[u8], keys_part: &[u8]) -> Result<Vec<u8>, String> {
    if user_data.iter().all(u8::is_ascii_whitespace) {
        return Ok(keys_part.to_vec());
    }
    let ty = part_type(user_data).ok_or(
        "--ssh-host-keys: the keys cannot be added to this user-data: only a #cloud-config, #!, #cloud-boothook or #include user-data can take another part (not MIME multipart or gzip)",
    )?;
    multipart(&[
        ("user-data", ty, user_data),
        ("ssh-host-keys", "text/cloud-config", keys_part),
    ])
}

/// The host field of a `known_hosts` line: `name`, or `name,address` with the address of
/// `ip` (`10.0.0.7/24` → `10.0.0.7`).
pub fn host_field(name: &str, ip: Option<&str>) -> String {
    match ip
        .and_then(|i| i.split('/').next())
        .filter(|i| !i.is_empty())
    {
        Some(addr) if addr != name => format!("{name},{addr}"),
        _ => name.to_string(),
    }
}

/// Put each `(host field, keys)` in the `known_hosts` file at `path`: the host's old lines
/// are replaced, other lines kept; written atomically, mode kept (new files 0644).
pub fn write_known_hosts(path: &Path, entries: &[(String, &[HostKey])]) -> anyhow::Result<()> {
    let (mut text, mode) = match std::fs::read(path) {
        Ok(b) => {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path)?.permissions().mode() & 0o7777;
            (String::from_utf8_lossy(&b).into_owned(), mode)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => (String::new(), 0o644),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    for (host, keys) in entries {
        let lines: Vec<String> = keys
            .iter()
            .map(|k| hostkey::known_hosts_line(host, k.public()))
            .collect();
        text = hostkey::update_known_hosts(&text, host, &lines);
    }
    super::image::write_atomic_mode(path, text.as_bytes(), mode)
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::userdata::{parse_seed, Seed};

    #[test]
    fn keys_part_is_what_the_agent_reads_back() {
        let keys = generate(&DEFAULT_TYPES, Some("vm1")).unwrap();
        assert_eq!(keys.len(), 2);
        let part = cloud_config(&keys).unwrap();
        let ud = add_to_user_data(b"#cloud-config\nhostname: vm1\n", &part).unwrap();
        let seed = Seed {
            source: "test".into(),
            files: [
                ("user-data".to_string(), ud),
                ("meta-data".to_string(), b"instance-id: i-1\n".to_vec()),
            ]
            .into_iter()
            .collect(),
            ..Seed::default()
        };
        let d = parse_seed(&seed).unwrap();
        assert!(d.warnings.is_empty(), "{:?}", d.warnings);
        assert_eq!(d.cloud_config.hostname.as_deref(), Some("vm1"));
        let sk = d.cloud_config.ssh_keys.as_ref().unwrap();
        for k in &keys {
            let private = sk.get(&format!("{}_private", k.kind)).unwrap();
            let public = sk.get(&format!("{}_public", k.kind)).unwrap();
            assert_eq!(public, k.public_openssh().trim_end());
            let set = hostkey::check_set(k.kind, Some(private), Some(public), None).unwrap();
            assert_eq!(set.public.unwrap(), k.public_openssh());
        }
        assert!(k_comment(&keys[0]).ends_with(" root@vm1"));
        // Empty user-data: the part alone; MIME user-data: refused.
        assert_eq!(add_to_user_data(b"\n", &part).unwrap(), *part);
        assert!(add_to_user_data(b"Content-Type: multipart/mixed\n", &part).is_err());
    }

    fn k_comment(k: &HostKey) -> String {
        k.public_openssh().trim_end().to_string()
    }

    #[test]
    fn types_and_host_fields() {
        assert_eq!(parse_types(None).unwrap(), DEFAULT_TYPES);
        assert_eq!(parse_types(Some("rsa")).unwrap(), [KeyType::Rsa]);
        assert!(parse_types(Some("dsa"))
            .unwrap_err()
            .starts_with("--ssh-host-keys: unknown"));
        assert_eq!(host_field("vm1", Some("10.0.0.7/24")), "vm1,10.0.0.7");
        assert_eq!(host_field("vm1", None), "vm1");
    }

    #[test]
    fn known_hosts_file_keeps_others_and_replaces_the_hosts_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        std::fs::write(&path, "other ssh-ed25519 AAAA\nvm1 ssh-ed25519 OLD").unwrap();
        let k1 = generate(&[KeyType::Ed25519], Some("vm1")).unwrap();
        let k2 = generate(&[KeyType::Ed25519], Some("vm2")).unwrap();
        write_known_hosts(&path, &[("vm1".into(), &k1), ("vm2,10.0.0.8".into(), &k2)]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(lines[0], "other ssh-ed25519 AAAA");
        assert!(lines[1].starts_with("vm1 ssh-ed25519 AAAA"));
        assert!(lines[2].starts_with("vm2,10.0.0.8 ssh-ed25519 AAAA"));
        use std::os::unix::fs::PermissionsExt;
        let fresh = dir.path().join("new");
        write_known_hosts(&fresh, &[("vm1".into(), &k1)]).unwrap();
        assert_eq!(
            std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777,
            0o644
        );
    }
}
