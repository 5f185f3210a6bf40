//! The command lines, their documentation and their completions agree.
//!
//! One option table per command (`ci_agent::platform::cli`) is the reference:
//! - each table lists exactly the options its parser matches (read from the parser's
//!   source: every `Long("…")` and `Short('…')`);
//! - every option appears in the command's `--help`, in the top-level usage of
//!   `ci-agent`, and in the man page (`man/ci-agent.8`, `man/ci-seed.1`) as `Fl …`;
//! - the bash and zsh completions under `packaging/completions/` are generated from the
//!   tables: this test regenerates them and compares (`CI_AGENT_UPDATE_COMPLETIONS=1`
//!   rewrites the files), and runs the bash one.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command as Proc;

use ci_agent::platform::cli::{Command, Opt, Value};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// (binary, command, the parser's source file) for every table.
fn tables() -> Vec<(&'static str, &'static Command, &'static str)> {
    let agent_src = [
        "src/agent/mod.rs",
        "src/agent/status.rs",
        "src/agent/query.rs",
        "src/agent/seal.rs",
    ];
    let seed_src = [
        "src/seed/build.rs",
        "src/seed/batch.rs",
        "src/seed/validate.rs",
        "src/seed/serve.rs",
    ];
    let agent = ci_agent::agent::COMMANDS;
    let seed = ci_agent::seed::COMMANDS;
    assert_eq!(agent.len(), agent_src.len());
    assert_eq!(seed.len(), seed_src.len());
    let mut v = Vec::new();
    for (c, s) in agent.iter().zip(agent_src) {
        v.push(("ci-agent", c, s));
    }
    for (c, s) in seed.iter().zip(seed_src) {
        v.push(("ci-seed", c, s));
    }
    v
}

/// Every `Long("x")`, `Long(k @ ("x" | "y"))` and `Short('c')` in a source file.
fn parser_options(src: &str) -> (BTreeSet<String>, BTreeSet<char>) {
    let mut longs = BTreeSet::new();
    let mut shorts = BTreeSet::new();
    for (i, _) in src.match_indices("Long(") {
        let rest = &src[i + 5..];
        // The pattern up to its closing parenthesis: one literal, or a binding of several.
        let end = match rest.strip_prefix('"') {
            Some(lit) => lit.find('"').unwrap() + 2,
            None => rest.find("))").unwrap_or(0),
        };
        for (j, part) in rest[..end].split('"').enumerate() {
            if j % 2 == 1 {
                longs.insert(part.to_string());
            }
        }
    }
    for (i, _) in src.match_indices("Short('") {
        shorts.insert(src[i + 7..].chars().next().unwrap());
    }
    (longs, shorts)
}

fn longs(opts: &[Opt]) -> BTreeSet<String> {
    opts.iter().map(|o| o.long.to_string()).collect()
}

fn shorts(opts: &[Opt]) -> BTreeSet<char> {
    opts.iter().flat_map(|o| o.short.iter().copied()).collect()
}

#[test]
fn each_table_lists_exactly_what_its_parser_accepts() {
    for (bin, c, src) in tables() {
        let (l, s) = parser_options(&read(src));
        assert!(!l.is_empty(), "no options found in {src}");
        assert_eq!(longs(c.opts), l, "{bin} {}: table vs {src}", c.name);
        assert_eq!(shorts(c.opts), s, "{bin} {}: table vs {src}", c.name);
    }
}

/// `text` mentions `-c` or `--long` as an option (not inside a longer word).
fn mentions(text: &str, opt: &str) -> bool {
    text.match_indices(opt).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + opt.len()..].chars().next();
        !before.is_some_and(|c| c.is_alphanumeric() || c == '-')
            && !after.is_some_and(|c| c.is_alphanumeric() || c == '-' || c == '_')
    })
}

fn help_of(bin: &str, cmd: &str) -> String {
    let exe = match bin {
        "ci-agent" => env!("CARGO_BIN_EXE_ci-agent"),
        _ => env!("CARGO_BIN_EXE_ci-seed"),
    };
    let mut p = Proc::new(exe);
    if !cmd.is_empty() {
        p.arg(cmd);
    }
    let out = p.arg("--help").output().unwrap();
    assert!(out.status.success(), "{bin} {cmd} --help: {:?}", out.status);
    String::from_utf8(out.stdout).unwrap()
}

/// The spellings of a command's options that `text` does not mention, each written as
/// `{prefix}-{long}` / `{prefix}{short}` (`--once` / `-n` in help, `Fl -once` / `Fl n` in
/// mdoc).
fn unmentioned(text: &str, c: &Command, prefix: &str) -> Vec<String> {
    let mut missing = Vec::new();
    for o in c.opts {
        let spellings = std::iter::once(format!("{prefix}-{}", o.long))
            .chain(o.short.iter().map(|s| format!("{prefix}{s}")));
        missing.extend(spellings.filter(|w| !mentions(text, w)));
    }
    missing
}

#[test]
fn every_option_is_in_its_help() {
    for (bin, c, _) in tables() {
        let help = help_of(bin, c.name);
        let missing = unmentioned(&help, c, "-");
        assert!(
            missing.is_empty(),
            "{bin} {} --help lacks {missing:?}:\n{help}",
            c.name
        );
    }
}

#[test]
fn the_top_level_usage_lists_every_command_and_option() {
    let top = help_of("ci-agent", "");
    for c in ci_agent::agent::COMMANDS {
        let line = top
            .split("\n  ci-agent ")
            .find(|l| l.starts_with(&format!("{} ", c.name)))
            .unwrap_or_else(|| panic!("usage lacks ci-agent {}:\n{top}", c.name));
        for o in c.opts.iter().filter(|o| o.long != "help") {
            assert!(
                mentions(line, &format!("--{}", o.long)),
                "ci-agent {} usage lacks --{}",
                c.name,
                o.long
            );
        }
    }
    // `ci-agent help run` is `ci-agent run --help`.
    for c in ci_agent::agent::COMMANDS {
        let out = Proc::new(env!("CARGO_BIN_EXE_ci-agent"))
            .args(["help", c.name])
            .output()
            .unwrap();
        assert!(out.status.success());
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            help_of("ci-agent", c.name)
        );
    }
    let out = Proc::new(env!("CARGO_BIN_EXE_ci-agent"))
        .args(["help", "nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn every_option_is_in_the_man_page() {
    for (bin, c, _) in tables() {
        let page = match bin {
            "ci-agent" => read("man/ci-agent.8"),
            _ => read("man/ci-seed.1"),
        };
        // mdoc: `.Fl -once` renders as --once, `Fl n` as -n.
        let missing = unmentioned(&page, c, "Fl ");
        assert!(
            missing.is_empty(),
            "{bin}'s man page lacks {missing:?} ({})",
            c.name
        );
        if !c.name.is_empty() {
            assert!(
                page.contains(c.name),
                "{bin}'s man page lacks the command {}",
                c.name
            );
        }
    }
}

#[test]
fn versions_name_target_commit_and_tls() {
    for exe in [
        env!("CARGO_BIN_EXE_ci-agent"),
        env!("CARGO_BIN_EXE_ci-seed"),
    ] {
        let out = Proc::new(exe).arg("--version").output().unwrap();
        assert!(out.status.success());
        let t = String::from_utf8(out.stdout).unwrap();
        assert!(
            t.lines()
                .next()
                .unwrap()
                .ends_with(env!("CARGO_PKG_VERSION")),
            "{t}"
        );
        for key in ["target: ", "commit: ", "tls: "] {
            assert!(
                t.lines().any(|l| l.starts_with(key) && l.len() > key.len()),
                "{t}"
            );
        }
    }
}

// ---- completions ----------------------------------------------------------------------

fn all_words(opts: &[Opt]) -> Vec<String> {
    let mut w = Vec::new();
    for o in opts {
        w.extend(o.short.iter().map(|s| format!("-{s}")));
        w.push(format!("--{}", o.long));
    }
    w
}

/// The bash `case` arm completing the value of an option, if it takes one.
fn bash_value_arm(cmd: &str, o: &Opt) -> Option<String> {
    let action = match o.value {
        Value::Flag => return None,
        Value::File | Value::Path => "_ci_files".to_string(),
        Value::Dir => "_ci_dirs".to_string(),
        Value::Choice(c) => format!("_ci_words \"{}\"", c.join(" ")),
        Value::Word(_) => "COMPREPLY=()".to_string(),
    };
    let mut pats: Vec<String> = o.short.iter().map(|s| format!("{cmd}:-{s}")).collect();
    pats.push(format!("{cmd}:--{}", o.long));
    Some(format!("        {}) {action}; return ;;\n", pats.join("|")))
}

/// `_ci_agent` for `ci-agent`: the completion function's name.
fn shell_func(bin: &str) -> String {
    format!("_{}", bin.replace('-', "_"))
}

/// The named commands (not the binary's own options).
fn command_names(cmds: &[Command]) -> Vec<&'static str> {
    cmds.iter()
        .map(|c| c.name)
        .filter(|n| !n.is_empty())
        .collect()
}

/// The header of a generated completion file.
fn generated_by(shell: &str, bin: &str) -> String {
    format!(
        "# {shell} completion for {bin}. Generated from the option tables (src/platform/cli.rs)\n\
         # by tests/cli_docs.rs: do not edit; CI_AGENT_UPDATE_COMPLETIONS=1 cargo test --test cli_docs\n\
         # rewrites it.\n"
    )
}

fn bash(bin: &str, cmds: &[Command], top: &[&str]) -> String {
    let (func, names) = (shell_func(bin), command_names(cmds));
    let mut s = generated_by("bash", bin);
    s += &format!(
        "_ci_words() {{ mapfile -t COMPREPLY < <(compgen -W \"$1\" -- \"$cur\"); }}\n\
         _ci_files() {{ compopt -o filenames 2>/dev/null; mapfile -t COMPREPLY < <(compgen -f -- \"$cur\"); }}\n\
         _ci_dirs() {{ compopt -o filenames 2>/dev/null; mapfile -t COMPREPLY < <(compgen -d -- \"$cur\"); }}\n\
         {func}() {{\n\
         \x20   local cur prev cmd= i\n\
         \x20   cur=${{COMP_WORDS[COMP_CWORD]}}\n\
         \x20   prev=${{COMP_WORDS[COMP_CWORD-1]}}\n\
         \x20   for ((i = 1; i < COMP_CWORD; i++)); do\n\
         \x20       case ${{COMP_WORDS[i]}} in\n\
         \x20       {}) cmd=${{COMP_WORDS[i]}}; break ;;\n\
         \x20       esac\n\
         \x20   done\n\
         \x20   case $cmd:$prev in\n",
        names.join("|")
    );
    for c in cmds {
        for o in c.opts {
            if let Some(arm) = bash_value_arm(c.name, o) {
                s.push_str(&arm);
            }
        }
    }
    s.push_str("    esac\n    case $cmd in\n");
    for c in cmds {
        let words = all_words(c.opts).join(" ");
        if c.name.is_empty() {
            // The binary's own options, its commands, and files for the operands.
            s.push_str(&format!(
                "    \"\")\n        if [[ $cur == -* ]]; then _ci_words \"{words}\"; \
                 elif [[ $COMP_CWORD == 1 ]]; then _ci_words \"{}\"; mapfile -t -O \"${{#COMPREPLY[@]}}\" COMPREPLY < <(compgen -f -- \"$cur\"); \
                 else _ci_files; fi ;;\n",
                names.join(" ")
            ));
        } else {
            s.push_str(&format!(
                "    {})\n        _ci_words \"{words}\" ;;\n",
                c.name
            ));
        }
    }
    if !cmds.iter().any(|c| c.name.is_empty()) {
        s.push_str(&format!(
            "    \"\")\n        _ci_words \"{} {}\" ;;\n",
            names.join(" "),
            top.join(" ")
        ));
    }
    if top.contains(&"help") {
        s.push_str(&format!(
            "    help)\n        _ci_words \"{}\" ;;\n",
            names.join(" ")
        ));
    }
    s.push_str(&format!("    esac\n}}\ncomplete -F {func} {bin}\n"));
    s
}

fn zsh_spec(o: &Opt) -> Vec<String> {
    let action = match o.value {
        Value::Flag => String::new(),
        Value::File | Value::Path => ":file:_files".into(),
        Value::Dir => ":directory:_files -/".into(),
        Value::Choice(c) => format!(":value:({})", c.join(" ")),
        Value::Word(w) => format!(":{}: ", w.to_lowercase()),
    };
    let mut v: Vec<String> = o.short.iter().map(|s| format!("'-{s}{action}'")).collect();
    v.push(format!("'--{}{action}'", o.long));
    v
}

fn zsh(bin: &str, cmds: &[Command], top: &[&str]) -> String {
    let (func, names) = (shell_func(bin), command_names(cmds));
    let mut s = format!("#compdef {bin}\n{}", generated_by("zsh", bin));
    s += &format!(
        "{func}() {{\n\
         \x20 local cmd=\n\
         \x20 (( CURRENT > 2 )) && cmd=${{words[2]}}\n\
         \x20 case $cmd in\n"
    );
    for c in cmds.iter().filter(|c| !c.name.is_empty()) {
        let specs: Vec<String> = c.opts.iter().flat_map(zsh_spec).collect();
        let operand = match c.operands {
            "" => String::new(),
            _ => " '*:file:_files'".into(),
        };
        s.push_str(&format!(
            "  {})\n    shift words; (( CURRENT-- ))\n    _arguments -s {}{operand} ;;\n",
            c.name,
            specs.join(" ")
        ));
    }
    if top.contains(&"help") {
        s.push_str(&format!(
            "  help)\n    _values command {} ;;\n",
            names.join(" ")
        ));
    }
    let own = cmds.iter().find(|c| c.name.is_empty());
    let own_specs = own.map(|c| {
        c.opts
            .iter()
            .flat_map(zsh_spec)
            .collect::<Vec<_>>()
            .join(" ")
    });
    let top_words = names
        .iter()
        .copied()
        .chain(top.iter().copied())
        .collect::<Vec<_>>()
        .join(" ");
    match own_specs {
        Some(specs) => s.push_str(&format!(
            "  *)\n    if (( CURRENT == 2 )) && [[ $PREFIX != -* ]]; then\n      \
             _alternative 'commands:command:({top_words})' 'files:file:_files'\n    else\n      \
             _arguments -s {specs} '*:file:_files'\n    fi ;;\n"
        )),
        None => s.push_str(&format!("  *)\n    _values command {top_words} ;;\n")),
    }
    s.push_str(&format!("  esac\n}}\n{func} \"$@\"\n"));
    s
}

fn completions() -> Vec<(String, String)> {
    let agent_top = ["help", "--help", "-h", "--version", "-V"];
    vec![
        (
            "packaging/completions/ci-agent.bash".into(),
            bash("ci-agent", ci_agent::agent::COMMANDS, &agent_top),
        ),
        (
            "packaging/completions/ci-seed.bash".into(),
            bash("ci-seed", ci_agent::seed::COMMANDS, &[]),
        ),
        (
            "packaging/completions/_ci-agent".into(),
            zsh("ci-agent", ci_agent::agent::COMMANDS, &agent_top),
        ),
        (
            "packaging/completions/_ci-seed".into(),
            zsh("ci-seed", ci_agent::seed::COMMANDS, &[]),
        ),
    ]
}

#[test]
fn completions_are_generated_from_the_tables() {
    let update = std::env::var_os("CI_AGENT_UPDATE_COMPLETIONS").is_some();
    for (rel, want) in completions() {
        let path = repo().join(&rel);
        if update {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &want).unwrap();
            continue;
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "{rel} is not what the option tables give: run\n  CI_AGENT_UPDATE_COMPLETIONS=1 cargo test --test cli_docs"
        );
    }
}

/// Complete `line` (words; the last one is being typed) with the bash completion of `bin`.
fn bash_complete(bin: &str, words: &[&str]) -> Vec<String> {
    let file = repo().join(format!("packaging/completions/{bin}.bash"));
    let func = shell_func(bin);
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let script = format!(
        "source '{}'; COMP_WORDS=({}); COMP_CWORD={}; {func}; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        file.display(),
        quoted.join(" "),
        words.len() - 1
    );
    let out = Proc::new("bash")
        .args(["--norc", "-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn the_bash_completions_complete() {
    assert_eq!(
        bash_complete("ci-agent", &["ci-agent", "run", "--st"]),
        ["--stage"]
    );
    assert_eq!(
        bash_complete("ci-agent", &["ci-agent", "run", "--stage", "e"]),
        ["early"]
    );
    assert_eq!(bash_complete("ci-agent", &["ci-agent", "se"]), ["seal"]);
    assert_eq!(
        bash_complete("ci-agent", &["ci-agent", "status", "--w"]),
        ["--wait"]
    );
    assert_eq!(
        bash_complete("ci-agent", &["ci-agent", "help", "q"]),
        ["query"]
    );
    assert_eq!(
        bash_complete("ci-seed", &["ci-seed", "--dsm"]),
        ["--dsmode"]
    );
    assert_eq!(bash_complete("ci-seed", &["ci-seed", "-f", "v"]), ["vfat"]);
    assert_eq!(
        bash_complete("ci-seed", &["ci-seed", "validate", "--type", "meta"]),
        ["meta-data"]
    );
    let mut got = bash_complete("ci-seed", &["ci-seed", "ba"]);
    got.retain(|w| w == "batch");
    assert_eq!(got, ["batch"]);
}

#[test]
fn the_zsh_completions_parse() {
    if !Path::new("/usr/bin/zsh").exists() && !Path::new("/bin/zsh").exists() {
        assert!(
            std::env::var_os("CI_AGENT_REQUIRE_TOOLS").is_none(),
            "zsh is missing (Debian package zsh, scripts/tools.tsv)"
        );
        eprintln!("skipped: zsh not installed");
        return;
    }
    for f in [
        "packaging/completions/_ci-agent",
        "packaging/completions/_ci-seed",
    ] {
        let out = Proc::new("zsh")
            .args(["-n"])
            .arg(repo().join(f))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{f}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
