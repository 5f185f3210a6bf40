//! `ci-agent`: thin entry point. Each subcommand parses its own arguments and returns an
//! exit code; this file only dispatches.

use std::process::ExitCode;

const USAGE: &str = "\
ci-agent: first-boot agent for VM templates

usage:
  ci-agent run [--once] [--stage early|late|all] [--root DIR] [--seed PATH] [--config FILE] [--dry-run]
  ci-agent status [--json | --format F] [--wait [--timeout S]] [--root DIR] [--config FILE]
  ci-agent query [--seed PATH] [--root DIR] [--config FILE]
  ci-agent seal [--root DIR] [--dry-run] [--yes]
  ci-agent --version

Invoked as `cloud-init` (a link), it answers cloud-init's status, query, clean and
schema commands.

Run `ci-agent COMMAND --help` for the options of one command.
";

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
        eprint!("{USAGE}");
        return ExitCode::from(ci_agent::exit::USAGE);
    };
    let rest: Vec<_> = args.collect();
    let code = match cmd.to_str().unwrap_or("") {
        "run" => ci_agent::agent::cli(rest),
        "status" => ci_agent::agent::status::cli_status(rest),
        "query" => ci_agent::agent::query::cli(rest),
        "seal" => ci_agent::agent::seal::cli(rest),
        "-h" | "--help" | "help" => {
            print!("{USAGE}");
            ci_agent::exit::OK
        }
        "-V" | "--version" => {
            println!("ci-agent {}", env!("CARGO_PKG_VERSION"));
            ci_agent::exit::OK
        }
        other => {
            eprintln!("ci-agent: unknown command '{other}'\n\n{USAGE}");
            ci_agent::exit::USAGE
        }
    };
    ExitCode::from(code)
}
