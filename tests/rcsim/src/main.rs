//! `rcsim` binary: runs a Rocket.Chat simulator until interrupted and prints exactly one line,
//! `rcsim listening on http://127.0.0.1:PORT`, on stdout once it accepts connections.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use rcsim::SimConfig;

/// Rocket.Chat server simulator (DDP + REST on one port).
#[derive(Parser, Debug)]
#[command(name = "rcsim", version)]
struct Args {
    /// TOML configuration file.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Port on 127.0.0.1 (0 = pick a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Use the demo configuration (users `me`/`demo` and `echo`/`echo`, one DM, 7.x, OTR on).
    #[arg(long)]
    demo: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let cfg = match (&args.config, args.demo) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            SimConfig::from_toml(&text)?
        }
        (None, true) => SimConfig::demo(),
        (None, false) => SimConfig::default(),
    };
    let bind = SocketAddr::from((Ipv4Addr::LOCALHOST, args.port));
    let handle = rcsim::start(cfg, bind).await?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "rcsim listening on {}", handle.http_url()).context("writing to stdout")?;
        out.flush().context("flushing stdout")?;
    }
    wait_for_signal().await?;
    handle.shutdown().await;
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing SIGTERM handler")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
        _ = term.recv() => {}
    }
    Ok(())
}
