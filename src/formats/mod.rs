//! Pure codecs shared by both binaries: no `System`, no agent types, nothing above this
//! layer is imported here.
//!
//! - [`iso9660`], [`fat`]: read and write seed images over `Read + Seek` / `Write`.
//! - [`yaml`]: the one wrapper around the YAML parser, with budgets and YAML 1.1 rules.
//! - [`userdata`]: classify, gunzip, split multipart, merge; typed cloud-config; meta-data.
//! - [`hostkey`]: SSH host keys: generate, encode, fingerprint, known_hosts, check `ssh_keys`.
//! - [`civil`]: the calendar (UTC dates, RFC 3339) without a time-zone database.
//! - [`SeedError`]: a malformed seed file, with its position; [`SeedBudget`]: the bytes all
//!   files of one seed may take together, whatever holds them (ISO9660, FAT, a directory).

pub mod civil;
pub mod fat;
pub mod hostkey;
pub mod iso9660;
pub mod userdata;
pub mod yaml;

/// A malformed seed: names the file and, where known, the line and column. Its text is
/// one line: control characters quoted from the seed are escaped ([`escape_controls`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}: {}", escape_controls(file, false), match (line, column) { (Some(l), Some(c)) => format!(":{l}:{c}"), (Some(l), None) => format!(":{l}"), _ => String::new() }, escape_controls(message, false))]
pub struct SeedError {
    pub file: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

/// The bytes that all files of one seed may take together (`max_seed_bytes`), on top of
/// the per-file limit: ISO9660, FAT and directory seeds count against the same kind of
/// budget, checked before each file is read (so entries that share data still count).
#[derive(Debug, Clone, Copy)]
pub struct SeedBudget {
    limit: u64,
    used: u64,
}

/// A file that would take a seed over its [`SeedBudget`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("file {name:?} ({size} bytes) would bring the seed to {total} bytes, more than the seed budget of {limit} bytes")]
pub struct SeedTooLarge {
    pub name: String,
    pub size: u64,
    pub total: u64,
    pub limit: u64,
}

impl SeedBudget {
    pub fn new(limit: u64) -> Self {
        SeedBudget { limit, used: 0 }
    }

    /// Bytes still free.
    pub fn left(&self) -> u64 {
        self.limit.saturating_sub(self.used)
    }

    /// Counts a file of `size` bytes, or says which file breaks the budget.
    pub fn take(&mut self, name: &str, size: u64) -> Result<(), SeedTooLarge> {
        let total = self.used.saturating_add(size);
        if total > self.limit {
            return Err(SeedTooLarge {
                name: name.to_string(),
                size,
                total,
                limit: self.limit,
            });
        }
        self.used = total;
        Ok(())
    }
}

/// `s` with every control character (C0, DEL, C1) written as an escape (`\r`, `\x1b`,
/// `\u{9b}`), so that text quoted from a seed cannot move the cursor, clear the console,
/// ring the bell or forge a line of its own. Tabs stay; line breaks stay only when
/// `keep_newlines` (the logger then prefixes each line itself).
pub fn escape_controls(s: &str, keep_newlines: bool) -> std::borrow::Cow<'_, str> {
    let escaped = |c: char| c.is_control() && c != '\t' && !(keep_newlines && c == '\n');
    if !s.chars().any(escaped) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            c if !escaped(c) => out.push(c),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(escape_controls("plain\ttext", false), "plain\ttext");
        assert_eq!(
            escape_controls("a\x1b[2J\x07\rb\u{9b}c\u{7f}", true),
            "a\\x1b[2J\\x07\\rb\\u{9b}c\\x7f"
        );
        assert_eq!(escape_controls("1\n2", true), "1\n2");
        assert_eq!(escape_controls("1\n2\0", false), "1\\n2\\x00");
        let e = SeedError {
            file: "user-data".into(),
            line: Some(2),
            column: Some(1),
            message: "'a\x1bb' is not supported".into(),
        };
        assert_eq!(e.to_string(), "user-data:2:1: 'a\\x1bb' is not supported");
    }

    #[test]
    fn the_seed_budget_counts_every_file() {
        let mut b = SeedBudget::new(10);
        b.take("a", 6).unwrap();
        assert_eq!(b.left(), 4);
        let e = b.take("b", 5).unwrap_err();
        assert_eq!((e.size, e.total, e.limit), (5, 11, 10));
        assert_eq!(b.left(), 4, "a refused file takes nothing");
        b.take("c", 4).unwrap();
        assert!(b.take("d", u64::MAX).is_err());
    }
}
