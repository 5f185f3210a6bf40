//! `ci-agent`: thin entry point. Each subcommand parses its own arguments and returns an
//! exit code; this file only dispatches.

use std::ffi::OsString;
use std::process::ExitCode;

use ci_agent::agent::COMMANDS;

/// The top-level usage: every command with every option, from the option tables.
fn usage() -> String {
    let mut u = String::from("ci-agent: first-boot agent for VM templates\n\nusage:\n");
    for c in COMMANDS {
        u.push_str(&c.synopsis("ci-agent"));
        u.push('\n');
    }
    u.push_str(
        "  ci-agent help [COMMAND]\n  ci-agent -V|--version\n\n\
         Invoked as `cloud-init` (a link), it answers cloud-init's status, query, clean and\n\
         schema commands.\n\n\
         Run `ci-agent help COMMAND` or `ci-agent COMMAND --help` for the options of one command.\n",
    );
    u
}

/// Run command `cmd` with `rest`; `None` for an unknown command.
fn dispatch(cmd: &str, rest: Vec<OsString>) -> Option<u8> {
    Some(match cmd {
        "run" => ci_agent::agent::cli(rest),
        "status" => ci_agent::agent::status::cli_status(rest),
        "query" => ci_agent::agent::query::cli(rest),
        "seal" => ci_agent::agent::seal::cli(rest),
        _ => return None,
    })
}

fn main() -> ExitCode {
    let mut args = std::env::args_os();
    // Invoked through a link named `cloud-init`: answer as cloud-init.
    let argv0 = args.next().unwrap_or_default();
    let name = std::path::Path::new(&argv0)
        .file_name()
        .unwrap_or_default()
        .to_owned();
    if name == "cloud-init" {
        return ExitCode::from(ci_agent::agent::cloudinit::main(args.collect()));
    }
    let Some(cmd) = args.next() else {
        eprint!("{}", usage());
        return ExitCode::from(ci_agent::exit::USAGE);
    };
    let rest: Vec<_> = args.collect();
    let cmd = cmd.to_string_lossy().into_owned();
    let code = match cmd.as_str() {
        "-h" | "--help" => {
            ci_agent::out!("{}", usage());
            ci_agent::exit::OK
        }
        // `ci-agent help run` is `ci-agent run --help`.
        "help" => match rest.first().map(|c| c.to_string_lossy().into_owned()) {
            None => {
                ci_agent::out!("{}", usage());
                ci_agent::exit::OK
            }
            Some(sub) => dispatch(&sub, vec!["--help".into()]).unwrap_or_else(|| {
                eprintln!("ci-agent: unknown command '{sub}'\n\n{}", usage());
                ci_agent::exit::USAGE
            }),
        },
        "-V" | "--version" => {
            ci_agent::out!(
                "{}",
                ci_agent::platform::build_info::version_text("ci-agent")
            );
            ci_agent::exit::OK
        }
        other => dispatch(other, rest).unwrap_or_else(|| {
            eprintln!("ci-agent: unknown command '{other}'\n\n{}", usage());
            ci_agent::exit::USAGE
        }),
    };
    ExitCode::from(code)
}
