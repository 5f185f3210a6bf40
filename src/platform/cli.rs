//! Option tables of the command lines: one table per command, beside its parser.
//!
//! The parsers themselves match options by hand (lexopt); these tables say the same thing
//! as data, for what must agree with them: the top-level usage of `ci-agent` (generated
//! from the tables), the shell completions under `packaging/completions/` (generated from
//! the tables by `tests/cli_docs.rs`), and the `--help` texts and man pages (checked
//! against the tables by that test, which also checks each table against its parser's
//! source).

/// What an option takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value {
    /// Nothing: a flag.
    Flag,
    /// A file path.
    File,
    /// A path to a file, directory or device (completed as a file).
    Path,
    /// A directory path.
    Dir,
    /// One of these words.
    Choice(&'static [&'static str]),
    /// Free text, shown as this placeholder.
    Word(&'static str),
}

/// One option of a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opt {
    /// The long name, without `--`.
    pub long: &'static str,
    /// Short spellings, without `-`.
    pub short: &'static [char],
    pub value: Value,
}

impl Opt {
    pub const fn flag(long: &'static str, short: &'static [char]) -> Self {
        Opt {
            long,
            short,
            value: Value::Flag,
        }
    }

    pub const fn with(long: &'static str, short: &'static [char], value: Value) -> Self {
        Opt { long, short, value }
    }

    /// How the usage shows the value (`DIR`, `early|late|all`), empty for a flag.
    pub fn placeholder(&self) -> String {
        match self.value {
            Value::Flag => String::new(),
            Value::File => "FILE".into(),
            Value::Path => "PATH".into(),
            Value::Dir => "DIR".into(),
            Value::Choice(c) => c.join("|"),
            Value::Word(w) => w.into(),
        }
    }

    /// `[--stage early|late|all]`, `[-n|--dry-run]`: one item of a synopsis line.
    pub fn synopsis(&self) -> String {
        let mut s = String::from("[");
        for c in self.short {
            s.push_str(&format!("-{c}|"));
        }
        s.push_str("--");
        s.push_str(self.long);
        let p = self.placeholder();
        if !p.is_empty() {
            s.push(' ');
            s.push_str(&p);
        }
        s.push(']');
        s
    }
}

/// `-h`/`--help`, accepted by every command.
pub const HELP: Opt = Opt::flag("help", &['h']);

/// `--os linux|freebsd` (the agent's commands).
pub const OS: Opt = Opt::with("os", &[], Value::Choice(&["linux", "freebsd"]));

/// A command of a binary and its options (`name` empty for the binary's own options).
#[derive(Debug, Clone, Copy)]
pub struct Command {
    pub name: &'static str,
    pub opts: &'static [Opt],
    /// What follows the options in the synopsis (`FILE...`), empty when nothing.
    pub operands: &'static str,
}

impl Command {
    /// The usage line: `BIN NAME [options] OPERANDS`, wrapped at 90 columns.
    pub fn synopsis(&self, bin: &str) -> String {
        let head = if self.name.is_empty() {
            bin.to_string()
        } else {
            format!("{bin} {}", self.name)
        };
        let mut words: Vec<String> = self
            .opts
            .iter()
            .filter(|o| o.long != "help")
            .map(Opt::synopsis)
            .collect();
        if !self.operands.is_empty() {
            words.push(self.operands.to_string());
        }
        let mut out = format!("  {head}");
        let indent = " ".repeat(out.len());
        let mut col = out.len();
        for w in words {
            if col + 1 + w.len() > 90 {
                out.push('\n');
                out.push_str(&indent);
                col = indent.len();
            }
            out.push(' ');
            out.push_str(&w);
            col += 1 + w.len();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synopsis_items_and_wrapping() {
        assert_eq!(Opt::flag("dry-run", &['n']).synopsis(), "[-n|--dry-run]");
        assert_eq!(OS.synopsis(), "[--os linux|freebsd]");
        assert_eq!(
            Opt::with("root", &[], Value::Dir).synopsis(),
            "[--root DIR]"
        );
        const OPTS: &[Opt] = &[
            Opt::with("alpha-option", &[], Value::Word("SOMETHING")),
            Opt::with("beta-option", &[], Value::Word("SOMETHING")),
            Opt::with("gamma-option", &[], Value::Word("SOMETHING")),
            HELP,
        ];
        let c = Command {
            name: "x",
            opts: OPTS,
            operands: "FILE...",
        };
        let s = c.synopsis("bin");
        assert!(s.lines().all(|l| l.len() <= 90), "{s}");
        assert!(s.starts_with("  bin x [--alpha-option SOMETHING]"), "{s}");
        assert!(s.ends_with("FILE..."), "{s}");
        assert!(!s.contains("help"));
    }
}
