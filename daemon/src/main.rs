//! `otrd [--config PATH] [--socket PATH] [--demo]`: the per-user daemon, in the foreground.

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

/// Off-the-record direct messages on Rocket.Chat: the per-user daemon.
#[derive(Debug, Parser)]
#[command(name = "otrd", version)]
struct Cli {
    /// Config file [default: $XDG_CONFIG_HOME/otrd/config.toml].
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Socket to serve on [default: $OTRD_SOCKET, else $XDG_RUNTIME_DIR/otrd/otrd.sock].
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Run against an embedded simulated Rocket.Chat server with a contact that answers.
    #[arg(long)]
    demo: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    otrd::daemon::init_tracing();
    // Before any secret exists and before other threads start: no core dumps, no ptrace by
    // other processes of the same user.
    let hardening = otrd::secure::harden_process();
    if !hardening.is_complete() {
        eprintln!("otrd: warning: process hardening incomplete (see the log)");
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("otrd: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let opts = otrd::daemon::Options {
        config: cli.config,
        socket: cli.socket,
        demo: cli.demo,
    };
    match runtime.block_on(otrd::daemon::run(opts)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("otrd: {e:#}");
            ExitCode::FAILURE
        }
    }
}
