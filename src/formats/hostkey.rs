//! SSH host keys: generate them, write them in OpenSSH's formats, fingerprint them, and
//! check the ones a seed brings (cloud-init's `ssh_keys`).
//!
//! Generation and encoding are RustCrypto's `ssh-key`; randomness comes from the caller
//! (the agent's `System::random`, ci-seed's getrandom), so this file stays pure. Private
//! key text is returned in a `Zeroizing` buffer and never reaches a `Debug`, a log line or
//! an error message: errors name the entry and what is wrong with it, never its content.

use std::fmt;

use ssh_key::private::{EcdsaKeypair, Ed25519Keypair, KeypairData, RsaKeypair};
use ssh_key::public::KeyData;
use ssh_key::rand_core::{self, CryptoRng, RngCore};
use ssh_key::{EcdsaCurve, HashAlg, LineEnding, PrivateKey, PublicKey};
use zeroize::Zeroizing;

/// The host key types ci-agent and ci-seed make and accept, in `ssh_keys` spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyType {
    Rsa,
    Ecdsa,
    Ed25519,
}

/// RSA host keys are 3072 bits, as `ssh-keygen`'s default.
pub const RSA_BITS: usize = 3072;

impl KeyType {
    pub const ALL: [KeyType; 3] = [KeyType::Rsa, KeyType::Ecdsa, KeyType::Ed25519];

    pub fn parse(s: &str) -> Option<KeyType> {
        match s {
            "rsa" => Some(KeyType::Rsa),
            "ecdsa" => Some(KeyType::Ecdsa),
            "ed25519" => Some(KeyType::Ed25519),
            _ => None,
        }
    }

    /// `rsa`, `ecdsa`, `ed25519` (as in `ssh_host_<name>_key` and `ssh_keys`).
    pub fn name(self) -> &'static str {
        match self {
            KeyType::Rsa => "rsa",
            KeyType::Ecdsa => "ecdsa",
            KeyType::Ed25519 => "ed25519",
        }
    }

    /// The guest path of the private key (`.pub` and `-cert.pub` beside it).
    pub fn private_path(self) -> String {
        format!("/etc/ssh/ssh_host_{}_key", self.name())
    }

    fn matches(self, k: &KeyData) -> bool {
        match self {
            KeyType::Rsa => k.is_rsa(),
            KeyType::Ecdsa => k.is_ecdsa(),
            KeyType::Ed25519 => k.is_ed25519(),
        }
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A comma-separated list of key types (`ed25519,ecdsa`), in the given order, without
/// repeats.
pub fn parse_types(s: &str) -> Result<Vec<KeyType>, String> {
    let mut out = Vec::new();
    for t in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let k = KeyType::parse(t).ok_or_else(|| {
            format!(
                "unknown host key type {:?} (expected rsa, ecdsa or ed25519)",
                t.chars().take(32).collect::<String>()
            )
        })?;
        if !out.contains(&k) {
            out.push(k);
        }
    }
    if out.is_empty() {
        return Err("no host key type given".into());
    }
    Ok(out)
}

/// A `rand_core` generator over a fill function (the caller's random source). A failing
/// source is remembered and reported by [`generate`]; meanwhile the generator keeps
/// producing non-zero filler so that rejection loops in the key generators terminate,
/// and the key made from it is thrown away.
struct FillRng<'a> {
    fill: &'a mut dyn FnMut(&mut [u8]) -> std::io::Result<()>,
    failed: Option<std::io::Error>,
    counter: u8,
}

impl RngCore for FillRng<'_> {
    fn next_u32(&mut self) -> u32 {
        rand_core::impls::next_u32_via_fill(self)
    }
    fn next_u64(&mut self) -> u64 {
        rand_core::impls::next_u64_via_fill(self)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        if self.failed.is_none() {
            if let Err(e) = (self.fill)(dest) {
                self.failed = Some(e);
            }
        }
        if self.failed.is_some() {
            for b in dest {
                self.counter = self.counter.wrapping_add(1);
                *b = self.counter | 1;
            }
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for FillRng<'_> {}

/// A host key pair.
pub struct HostKey {
    pub kind: KeyType,
    key: PrivateKey,
}

impl fmt::Debug for HostKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HostKey({}, {})", self.kind, self.fingerprint())
    }
}

/// Makes an RSA key pair (the prime search of the `rsa` crate and num-bigint-dig).
type RsaMaker = fn(&mut FillRng<'_>) -> ssh_key::Result<RsaKeypair>;

fn rsa_random(rng: &mut FillRng<'_>) -> ssh_key::Result<RsaKeypair> {
    RsaKeypair::random(rng, RSA_BITS)
}

/// Make a new Ed25519 or ECDSA key with `comment` (`root@host`), random bytes from
/// `fill`. An RSA key is refused: the agent leaves RSA to `ssh-keygen` (slow, deferred to
/// the late pass), so nothing in its binary reaches an RSA generator and the linker drops
/// one (~45 KiB of the static binary). Parsing and writing RSA keys needs no RSA maths.
pub fn generate(
    kind: KeyType,
    comment: &str,
    fill: &mut dyn FnMut(&mut [u8]) -> std::io::Result<()>,
) -> Result<HostKey, String> {
    make(kind, comment, fill, None)
}

/// [`generate`], RSA included ([`RSA_BITS`]): ci-seed's `--ssh-host-keys rsa`.
pub fn generate_with_rsa(
    kind: KeyType,
    comment: &str,
    fill: &mut dyn FnMut(&mut [u8]) -> std::io::Result<()>,
) -> Result<HostKey, String> {
    make(kind, comment, fill, Some(rsa_random))
}

fn make(
    kind: KeyType,
    comment: &str,
    fill: &mut dyn FnMut(&mut [u8]) -> std::io::Result<()>,
    rsa: Option<RsaMaker>,
) -> Result<HostKey, String> {
    let mut rng = FillRng {
        fill,
        failed: None,
        counter: 0,
    };
    let data = match kind {
        KeyType::Ed25519 => KeypairData::from(Ed25519Keypair::random(&mut rng)),
        KeyType::Ecdsa => KeypairData::from(
            EcdsaKeypair::random(&mut rng, EcdsaCurve::NistP256)
                .map_err(|e| format!("ecdsa key generation: {e}"))?,
        ),
        KeyType::Rsa => {
            let rsa = rsa.ok_or("rsa keys are made by ssh-keygen, not in-process")?;
            KeypairData::from(rsa(&mut rng).map_err(|e| format!("rsa key generation: {e}"))?)
        }
    };
    if let Some(e) = rng.failed {
        return Err(format!("reading random bytes: {e}"));
    }
    let key = PrivateKey::new(data, comment).map_err(|e| format!("{kind} key: {e}"))?;
    Ok(HostKey { kind, key })
}

impl HostKey {
    /// The private key in OpenSSH's format (`-----BEGIN OPENSSH PRIVATE KEY-----`).
    pub fn private_openssh(&self) -> Result<Zeroizing<String>, String> {
        self.key
            .to_openssh(LineEnding::LF)
            .map_err(|e| format!("encoding the {} private key: {e}", self.kind))
    }

    pub fn public(&self) -> &PublicKey {
        self.key.public_key()
    }

    /// The `.pub` line: `ssh-ed25519 AAAA… comment`.
    pub fn public_openssh(&self) -> String {
        public_line(self.public())
    }

    /// `SHA256:…`, as `ssh-keygen -l` prints it.
    pub fn fingerprint(&self) -> String {
        self.public().fingerprint(HashAlg::Sha256).to_string()
    }
}

/// A public key as one `.pub` line, ending in a newline.
pub fn public_line(k: &PublicKey) -> String {
    // Encoding a parsed or generated key into a String cannot fail in practice; fall back
    // to the bare algorithm name rather than panic.
    let mut s = k
        .to_openssh()
        .unwrap_or_else(|_| k.algorithm().as_str().to_string());
    s.push('\n');
    s
}

/// The bits of a public key, as `ssh-keygen -l` counts them.
pub fn bits(k: &KeyData) -> usize {
    match k {
        KeyData::Rsa(r) => {
            let n = r.n.as_positive_bytes().unwrap_or(&[]);
            match n.iter().position(|&b| b != 0) {
                Some(i) => (n.len() - i) * 8 - n[i].leading_zeros() as usize,
                None => 0,
            }
        }
        KeyData::Ecdsa(e) => match e.curve() {
            EcdsaCurve::NistP256 => 256,
            EcdsaCurve::NistP384 => 384,
            EcdsaCurve::NistP521 => 521,
        },
        _ => 256,
    }
}

/// One line of `ssh-keygen -l -f FILE` for a public key:
/// `256 SHA256:… root@vm1 (ED25519)`.
pub fn fingerprint_line(k: &PublicKey) -> String {
    let kind = match k.key_data() {
        KeyData::Rsa(_) => "RSA",
        KeyData::Ecdsa(_) => "ECDSA",
        KeyData::Ed25519(_) => "ED25519",
        KeyData::Dsa(_) => "DSA",
        _ => "OTHER",
    };
    let comment = if k.comment().is_empty() {
        "no comment"
    } else {
        k.comment()
    };
    format!(
        "{} {} {} ({kind})",
        bits(k.key_data()),
        k.fingerprint(HashAlg::Sha256),
        comment.chars().take(128).collect::<String>().escape_debug()
    )
}

/// A `known_hosts` line for `hosts` (`vm1,192.0.2.10`): `hosts algo base64`, no comment.
pub fn known_hosts_line(hosts: &str, k: &PublicKey) -> String {
    let bare = PublicKey::new(k.key_data().clone(), "");
    format!("{hosts} {}", public_line(&bare))
}

/// `text` with every line whose host field is exactly `hosts` removed, then `lines`
/// appended (a re-made seed replaces the host's old keys instead of adding to them).
pub fn update_known_hosts(text: &str, hosts: &str, lines: &[String]) -> String {
    let mut out: String = text
        .lines()
        .filter(|l| l.split_whitespace().next() != Some(hosts))
        .flat_map(|l| [l, "\n"])
        .collect();
    for l in lines {
        out.push_str(l);
    }
    out
}

/// Parse a public key line (`ssh-ed25519 AAAA… comment`).
pub fn parse_public(text: &str) -> Result<PublicKey, String> {
    PublicKey::from_openssh(text.trim()).map_err(|e| format!("not an OpenSSH public key ({e})"))
}

/// What a seed's private key text is.
pub enum PrivateText {
    /// OpenSSH's own format, parsed: the public half is known.
    OpenSsh(Box<PrivateKey>),
    /// A PEM private key (`BEGIN RSA PRIVATE KEY`, `EC PRIVATE KEY`, `PRIVATE KEY`) that
    /// sshd reads but is not decoded here: only its framing and base64 are checked.
    Pem,
}

/// Check a seed's private key text for key type `kind`. The error never quotes the text.
pub fn parse_private(kind: KeyType, text: &str) -> Result<PrivateText, String> {
    let t = text.trim();
    if t.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----") {
        let k = PrivateKey::from_openssh(t)
            .map_err(|e| format!("not a valid OpenSSH private key ({e})"))?;
        if k.is_encrypted() {
            return Err(
                "the private key is encrypted (a host key must not have a passphrase)".into(),
            );
        }
        if !kind.matches(k.public_key().key_data()) {
            return Err(format!(
                "holds a {} key, not {kind}",
                k.algorithm().as_str()
            ));
        }
        return Ok(PrivateText::OpenSsh(Box::new(k)));
    }
    let label = match kind {
        KeyType::Rsa => ["RSA PRIVATE KEY", "PRIVATE KEY"],
        KeyType::Ecdsa => ["EC PRIVATE KEY", "PRIVATE KEY"],
        KeyType::Ed25519 => ["PRIVATE KEY", "PRIVATE KEY"],
    };
    for l in label {
        let begin = format!("-----BEGIN {l}-----");
        let end = format!("-----END {l}-----");
        if let Some(body) = t.strip_prefix(&begin).and_then(|r| r.strip_suffix(&end)) {
            if body.contains("ENCRYPTED") || body.contains("Proc-Type") {
                return Err(
                    "the private key is encrypted (a host key must not have a passphrase)".into(),
                );
            }
            let b64: String = body.split_whitespace().collect();
            use base64::Engine;
            let der = base64::engine::general_purpose::STANDARD
                .decode(b64.as_bytes())
                .map_err(|_| format!("the {l} block is not valid base64"))?;
            if der.len() < 32 || der[0] != 0x30 {
                return Err(format!("the {l} block is not a DER key"));
            }
            return Ok(PrivateText::Pem);
        }
    }
    Err(format!(
        "not a {kind} private key (expected -----BEGIN OPENSSH PRIVATE KEY----- or a PEM block)"
    ))
}

/// A big-endian SSH wire reader (RFC 4251 `uint32`, `uint64`, `string`) that never
/// reads past its input.
struct Wire<'a>(&'a [u8]);

impl<'a> Wire<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    fn string(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}

/// What a host certificate says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// `ssh-ed25519-cert-v01@openssh.com`, …
    pub algorithm: String,
    /// The certified key's wire fields (after its algorithm name).
    key_fields: Vec<u8>,
    pub serial: u64,
    /// 1 user, 2 host.
    pub cert_type: u32,
}

/// The certified key's fields in a certificate of `kind` (number of wire strings).
fn cert_key_strings(kind: KeyType) -> usize {
    match kind {
        KeyType::Ed25519 => 1,
        KeyType::Ecdsa | KeyType::Rsa => 2,
    }
}

/// Check a host certificate for a key of `kind` (and, when known, for that exact key).
/// Read by hand rather than with `ssh_key::Certificate`, which refuses the `forever`
/// validity `ssh-keygen -s` writes by default; the CA signature is sshd's business (it
/// presents the certificate, clients check it).
pub fn parse_certificate(
    kind: KeyType,
    text: &str,
    key: Option<&KeyData>,
) -> Result<CertInfo, String> {
    let mut words = text.split_whitespace();
    let (Some(algo), Some(b64)) = (words.next(), words.next()) else {
        return Err("not an OpenSSH certificate (expected TYPE BASE64 [COMMENT])".into());
    };
    let expected = match kind {
        KeyType::Ed25519 => &["ssh-ed25519-cert-v01@openssh.com"][..],
        KeyType::Rsa => &["ssh-rsa-cert-v01@openssh.com"][..],
        KeyType::Ecdsa => &[
            "ecdsa-sha2-nistp256-cert-v01@openssh.com",
            "ecdsa-sha2-nistp384-cert-v01@openssh.com",
            "ecdsa-sha2-nistp521-cert-v01@openssh.com",
        ][..],
    };
    if !expected.contains(&algo) {
        return Err(format!(
            "not a {kind} host certificate (type {:?})",
            algo.chars().take(48).collect::<String>()
        ));
    }
    use base64::Engine;
    let blob = base64::engine::general_purpose::STANDARD
        .decode(b64.as_bytes())
        .map_err(|_| "not an OpenSSH certificate (bad base64)".to_string())?;
    let bad = || "not an OpenSSH certificate (truncated or malformed)".to_string();
    let mut w = Wire(&blob);
    if w.string().ok_or_else(bad)? != algo.as_bytes() {
        return Err("not an OpenSSH certificate (its type does not match its data)".into());
    }
    w.string().ok_or_else(bad)?; // nonce
    let fields_start = blob.len() - w.0.len();
    for _ in 0..cert_key_strings(kind) {
        w.string().ok_or_else(bad)?;
    }
    let key_fields = blob[fields_start..blob.len() - w.0.len()].to_vec();
    let serial = u64::from_be_bytes(w.take(8).ok_or_else(bad)?.try_into().map_err(|_| bad())?);
    let cert_type = w.u32().ok_or_else(bad)?;
    match cert_type {
        2 => {}
        1 => return Err("is a user certificate, not a host certificate".into()),
        _ => return Err(bad()),
    }
    let info = CertInfo {
        algorithm: algo.to_string(),
        key_fields,
        serial,
        cert_type,
    };
    if let Some(k) = key {
        if !info.certifies(k) {
            return Err(format!("certifies another key than the {kind} host key"));
        }
    }
    Ok(info)
}

impl CertInfo {
    /// True when the certified key is `k`.
    pub fn certifies(&self, k: &KeyData) -> bool {
        let Ok(blob) = PublicKey::new(k.clone(), "").to_bytes() else {
            return false;
        };
        let mut w = Wire(&blob);
        match w.string() {
            Some(_) => w.0 == &self.key_fields[..],
            None => false,
        }
    }
}

/// One key type's entries from `ssh_keys`, checked.
pub struct SeedKeySet {
    pub kind: KeyType,
    /// Private key text as given (written as is: sshd reads it).
    pub private: Option<Zeroizing<String>>,
    /// The public line: as given, else derived from an OpenSSH private key.
    pub public: Option<String>,
    /// True when the private key is PEM and no public key was given: the `.pub` has to be
    /// made by `ssh-keygen -y`.
    pub public_from_keygen: bool,
    pub certificate: Option<String>,
}

impl fmt::Debug for SeedKeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SeedKeySet")
            .field("kind", &self.kind)
            .field("private", &self.private.as_ref().map(|_| "<withheld>"))
            .field("public", &self.public)
            .field("certificate", &self.certificate.is_some())
            .finish()
    }
}

/// Check the entries of one key type: `private`, `public`, `certificate` (each optional).
/// The error names the entry (`ssh_keys.rsa_public`) and never its content.
pub fn check_set(
    kind: KeyType,
    private: Option<&str>,
    public: Option<&str>,
    certificate: Option<&str>,
) -> Result<SeedKeySet, String> {
    let entry = |what: &str| format!("ssh_keys.{kind}_{what}");
    let parsed = match private {
        Some(p) => Some(parse_private(kind, p).map_err(|e| format!("{}: {e}", entry("private")))?),
        None => None,
    };
    let derived = match &parsed {
        Some(PrivateText::OpenSsh(k)) => Some(k.public_key().clone()),
        _ => None,
    };
    let given = match public {
        Some(p) => {
            let k = parse_public(p).map_err(|e| format!("{}: {e}", entry("public")))?;
            if !kind.matches(k.key_data()) {
                return Err(format!(
                    "{}: holds a {} key, not {kind}",
                    entry("public"),
                    k.algorithm().as_str()
                ));
            }
            if derived
                .as_ref()
                .is_some_and(|d| d.key_data() != k.key_data())
            {
                return Err(format!(
                    "{}: does not match {}",
                    entry("public"),
                    entry("private")
                ));
            }
            Some(k)
        }
        None => None,
    };
    let known = given.as_ref().or(derived.as_ref()).map(|k| k.key_data());
    let certificate = match certificate {
        Some(c) => {
            parse_certificate(kind, c, known)
                .map_err(|e| format!("{}: {e}", entry("certificate")))?;
            Some(format!("{}\n", c.trim()))
        }
        None => None,
    };
    Ok(SeedKeySet {
        kind,
        private: private.map(|p| Zeroizing::new(format!("{}\n", p.trim()))),
        public: match (public, &derived) {
            (Some(p), _) => Some(format!("{}\n", p.trim())),
            (None, Some(d)) => Some(public_line(d)),
            (None, None) => None,
        },
        public_from_keygen: private.is_some() && public.is_none() && derived.is_none(),
        certificate,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic source for tests.
    pub(crate) fn counter_fill(seed: u8) -> impl FnMut(&mut [u8]) -> std::io::Result<()> {
        let mut n = seed;
        move |buf: &mut [u8]| {
            for b in buf {
                n = n.wrapping_mul(167).wrapping_add(13);
                *b = n;
            }
            Ok(())
        }
    }

    #[test]
    fn the_agents_generator_refuses_rsa() {
        let e = generate(KeyType::Rsa, "root@vm1", &mut counter_fill(1)).unwrap_err();
        assert!(e.contains("ssh-keygen"), "{e}");
    }

    #[test]
    fn ed25519_and_ecdsa_round_trip() {
        for (kind, algo, bits_) in [
            (KeyType::Ed25519, "ssh-ed25519", 256),
            (KeyType::Ecdsa, "ecdsa-sha2-nistp256", 256),
        ] {
            let k = generate(kind, "root@vm1", &mut counter_fill(7)).unwrap();
            let priv_text = k.private_openssh().unwrap();
            assert!(priv_text.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----\n"));
            let pub_text = k.public_openssh();
            assert!(pub_text.starts_with(&format!("{algo} AAAA")), "{pub_text}");
            assert!(pub_text.ends_with(" root@vm1\n"));
            // What the agent would read back from a seed.
            let set = check_set(kind, Some(&priv_text), Some(&pub_text), None).unwrap();
            assert_eq!(set.public.as_deref(), Some(&pub_text[..]));
            assert!(!set.public_from_keygen);
            // Derived when the public half is not given.
            let set = check_set(kind, Some(&priv_text), None, None).unwrap();
            assert_eq!(set.public.as_deref(), Some(&pub_text[..]));
            let line = fingerprint_line(k.public());
            assert_eq!(
                line,
                format!(
                    "{bits_} {} root@vm1 ({})",
                    k.fingerprint(),
                    kind.name().to_uppercase()
                )
            );
            assert!(k.fingerprint().starts_with("SHA256:"));
            // The private key never shows in Debug.
            let dbg = format!("{k:?} {set:?}");
            assert!(!dbg.contains("OPENSSH PRIVATE"), "{dbg}");
        }
    }

    #[test]
    fn rsa_is_3072_bits_and_round_trips() {
        // xorshift64*: a deterministic source with a period long enough for a prime search
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut fill = |buf: &mut [u8]| {
            for b in buf {
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                *b = (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8;
            }
            Ok(())
        };
        // The agent's generator refuses RSA (ssh-keygen makes it); ci-seed's makes it.
        let e = generate(KeyType::Rsa, "root@vm1", &mut fill).unwrap_err();
        assert_eq!(e, "rsa keys are made by ssh-keygen, not in-process");
        let k = generate_with_rsa(KeyType::Rsa, "root@vm1", &mut fill).unwrap();
        assert_eq!(bits(k.public().key_data()), RSA_BITS);
        let pub_text = k.public_openssh();
        assert!(pub_text.starts_with("ssh-rsa AAAA"), "{pub_text}");
        let priv_text = k.private_openssh().unwrap();
        let set = check_set(KeyType::Rsa, Some(&priv_text), None, None).unwrap();
        assert_eq!(set.public.as_deref(), Some(&pub_text[..]));
        let line = known_hosts_line("vm1,192.0.2.10", k.public());
        let key = pub_text
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(line.trim_end(), format!("vm1,192.0.2.10 {key}"));
        assert!(fingerprint_line(k.public()).starts_with("3072 SHA256:"));
    }

    #[test]
    fn fingerprint_matches_ssh_keygen_format() {
        // An Ed25519 key and its fingerprint as printed by `ssh-keygen -l` (OpenSSH 9.2).
        let pk =
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPD3y/Z37C6VodeycWrc1dpvLY+3KoXRhwQOlysNqlxm demo";
        let k = parse_public(pk).unwrap();
        assert_eq!(
            fingerprint_line(&k),
            "256 SHA256:jjTu6+hLxzCOYnt7OxJU+jfuyfJXxDmoQ2NzQ+wM0IQ demo (ED25519)"
        );
        let rsa = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC4Ash5z6eJ7vplDrF0o8NNzKHXwA3xXc4mX+ulQR+QOkoXCDL6xsRmSvXkq9nOYwIoNAJrFk+0n31cLFDrsDW7RojCFx1XZMgZxsAOh55cX7kT2Jk8+vq6VtO3VAeRgGxK7c1BABUbtYoKajliLXnEOA/pdjO2KqbuqtHiwPPg1oyunmHCvs9JZWsWsmOGFWpYg6+S7IQDKOltVIFWOjSQnVRaFV7T9nsUDxsMijPuq8S746p+lm9Yw1x5yYY4BCpdScFCOfmSTnDNkOq+iaCKkSWrb33IXPDmyJj32sVs5QSokemWE5JdOjk9USiKs/CppvsJ5z/04SDwjnPttNzT r";
        assert_eq!(
            fingerprint_line(&parse_public(rsa).unwrap()),
            "2048 SHA256:EEZYSSrhH7toM0BArgbSJqaaeZsfouERmgG0UXAEgXM r (RSA)"
        );
    }

    #[test]
    fn known_hosts_lines_replace_the_hosts_old_keys() {
        let k = generate(KeyType::Ed25519, "root@vm1", &mut counter_fill(1)).unwrap();
        let line = known_hosts_line("vm1,192.0.2.10", k.public());
        let key = k.public_openssh();
        let key_no_comment = key.trim_end().trim_end_matches(" root@vm1");
        assert_eq!(line, format!("vm1,192.0.2.10 {key_no_comment}\n"));
        let old = "other ssh-rsa AAAA\nvm1,192.0.2.10 ssh-ed25519 OLD\n# note\n";
        let new = update_known_hosts(old, "vm1,192.0.2.10", std::slice::from_ref(&line));
        assert_eq!(new, format!("other ssh-rsa AAAA\n# note\n{line}"));
        assert_eq!(update_known_hosts("", "vm1", &[]), "");
    }

    #[test]
    fn seed_entries_are_checked_without_quoting_them() {
        let ed = generate(KeyType::Ed25519, "a", &mut counter_fill(3)).unwrap();
        let ec = generate(KeyType::Ecdsa, "b", &mut counter_fill(4)).unwrap();
        let ed_priv = ed.private_openssh().unwrap();
        // Wrong type.
        let e = check_set(KeyType::Ecdsa, Some(&ed_priv), None, None).unwrap_err();
        assert!(
            e.starts_with("ssh_keys.ecdsa_private: holds a ssh-ed25519 key"),
            "{e}"
        );
        // Public does not match private.
        let e = check_set(
            KeyType::Ed25519,
            Some(&ed_priv),
            Some(
                &generate(KeyType::Ed25519, "c", &mut counter_fill(9))
                    .unwrap()
                    .public_openssh(),
            ),
            None,
        )
        .unwrap_err();
        assert_eq!(
            e,
            "ssh_keys.ed25519_public: does not match ssh_keys.ed25519_private"
        );
        let _ = ec;
        // Garbage, truncated and encrypted keys; the text is never in the error.
        let secret = "-----BEGIN OPENSSH PRIVATE KEY-----\nc2VjcmV0c2VjcmV0\n-----END OPENSSH PRIVATE KEY-----";
        let e = check_set(KeyType::Ed25519, Some(secret), None, None).unwrap_err();
        assert!(
            e.starts_with("ssh_keys.ed25519_private: not a valid OpenSSH private key"),
            "{e}"
        );
        assert!(!e.contains("c2VjcmV0"), "{e}");
        let cut = &ed_priv[..ed_priv.len() / 2];
        assert!(check_set(KeyType::Ed25519, Some(cut), None, None).is_err());
        let e = check_set(KeyType::Rsa, Some("hello"), None, None).unwrap_err();
        assert!(e.contains("not a rsa private key"), "{e}");
        let e = check_set(KeyType::Rsa, None, Some("ssh-rsa !!!"), None).unwrap_err();
        assert!(
            e.starts_with("ssh_keys.rsa_public: not an OpenSSH public key"),
            "{e}"
        );
        let e = check_set(
            KeyType::Rsa,
            None,
            None,
            Some("ssh-rsa-cert-v01@openssh.com AAAA"),
        )
        .unwrap_err();
        assert!(
            e.starts_with("ssh_keys.rsa_certificate: not an OpenSSH certificate"),
            "{e}"
        );
    }

    #[test]
    fn pem_private_keys_are_accepted_and_need_ssh_keygen_for_the_public_half() {
        // A PEM RSA key's framing (the DER content is not decoded here).
        let der = [0x30u8; 40];
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let pem =
            format!("-----BEGIN RSA PRIVATE KEY-----\n{b64}\n-----END RSA PRIVATE KEY-----\n");
        let set = check_set(KeyType::Rsa, Some(&pem), None, None).unwrap();
        assert!(set.public_from_keygen);
        assert!(set.public.is_none());
        let enc = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nAAAA\n-----END RSA PRIVATE KEY-----";
        assert!(check_set(KeyType::Rsa, Some(enc), None, None)
            .unwrap_err()
            .contains("encrypted"));
        let bad = "-----BEGIN EC PRIVATE KEY-----\n!!!!\n-----END EC PRIVATE KEY-----";
        assert!(check_set(KeyType::Ecdsa, Some(bad), None, None)
            .unwrap_err()
            .contains("not valid base64"));
    }

    #[test]
    fn types() {
        assert_eq!(
            parse_types("ed25519, ecdsa,ed25519").unwrap(),
            [KeyType::Ed25519, KeyType::Ecdsa]
        );
        assert!(parse_types("dsa")
            .unwrap_err()
            .contains("unknown host key type \"dsa\""));
        assert!(parse_types(",").is_err());
    }

    #[test]
    fn failing_random_source_is_an_error_not_a_weak_key() {
        let mut fill = |_: &mut [u8]| Err(std::io::Error::other("no entropy"));
        for kind in [KeyType::Ed25519, KeyType::Ecdsa] {
            let e = generate(kind, "x", &mut fill).unwrap_err();
            assert_eq!(e, "reading random bytes: no entropy");
        }
    }
}
