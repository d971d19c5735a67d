//! `otrctl`: parse the command line, run the command, turn the outcome into an exit status.

use clap::Parser;
use otrctl::cli::Cli;
use otrctl::error::{EXIT_FAILED, EXIT_USAGE};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { 0 };
            // Printing help or a usage error can only fail if the terminal is gone.
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("otrctl: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    match runtime.block_on(otrctl::run::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("otrctl: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
