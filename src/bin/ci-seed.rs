//! `ci-seed`: thin entry point. `ci-seed [options] OUTPUT USER-DATA [META-DATA]` builds a
//! seed like cloud-localds; `validate`, `batch` and `serve` are subcommands.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    let code = match args.first().and_then(|a| a.to_str()) {
        Some("validate") => ci_agent::seed::cli_validate(args[1..].to_vec()),
        Some("batch") => ci_agent::seed::cli_batch(args[1..].to_vec()),
        Some("serve") => ci_agent::seed::serve::cli(args[1..].to_vec()),
        _ => ci_agent::seed::cli_build(args),
    };
    ExitCode::from(code)
}
