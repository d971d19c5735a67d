//! Logging setup: `RUST_LOG` respected (default `info`), and plain lines without colours or
//! timestamps when stderr is not a terminal, because journald adds its own.

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. Call once, from `main`.
pub fn init_tracing() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = if std::io::stderr().is_terminal() {
        builder.try_init()
    } else {
        builder.with_ansi(false).without_time().try_init()
    };
    if let Err(e) = result {
        eprintln!("otrd: logging was already set up: {e}");
    }
}
