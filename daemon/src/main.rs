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
    /// Socket to serve on [default: $OTRD_SOCKET, else $XDG_RUNTIME_DIR/otrd/otrd.sock, else
    /// $TMPDIR/otrd-$UID/otrd.sock].
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
    // One thread runs everything. The engine task owns all state and serialises the work anyway,
    // so a worker pool only adds hand-offs: each hop on a message's path (gRPC handler → engine →
    // outbox → websocket writer; websocket reader → engine → WatchEvents stream) could wake another
    // thread, and on a busy machine every such wake-up waits for a CPU. Measured on 2026-12-02
    // (docs/benchmarks.md): half the context switches per message, end-to-end p50 down ~20%,
    // 10,000 handshakes established sooner and ended faster; GetStatus may now wait behind one
    // engine step, so its p99 while thousands of handshakes run is higher.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let runtime = match runtime {
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
