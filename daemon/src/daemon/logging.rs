//! Logging setup: `RUST_LOG` respected (default `info`), and plain lines without colours or
//! timestamps when stderr is not a terminal, because journald adds its own.
//!
//! Libraries never log secrets through us, at any level: at `debug` and `trace`, the HTTP,
//! WebSocket, TLS and gRPC stacks print request bodies and frames — the login call with its
//! password digest, the resume token, DDP frames carrying message text. So whatever `RUST_LOG`
//! asks, their targets are capped at `info` ([`LIBRARY_CAPS`]); `otrd`'s own targets follow
//! `RUST_LOG`, and they never print a secret or a plaintext. Only `OTRD_LOG_DANGEROUS=1` lifts
//! the caps (for debugging the protocol on a test server), and the log says so at once.

use std::io::IsTerminal;
use tracing_subscriber::filter::{Directive, EnvFilter};

/// The environment variable that lifts the library caps (see the module docs).
pub const DANGEROUS_ENV: &str = "OTRD_LOG_DANGEROUS";

/// Library targets capped at `info`: everything that sees bytes on the wire.
pub const LIBRARY_CAPS: &[&str] = &[
    "hyper",
    "hyper_util",
    "h2",
    "reqwest",
    "rustls",
    "tokio_tungstenite",
    "tungstenite",
    "tonic",
    "tower",
    "zbus",
    "mio",
    "want",
];

/// The filter for `rust_log` (`RUST_LOG`, if set) with the library caps unless `dangerous`.
pub fn filter(rust_log: Option<&str>, dangerous: bool) -> EnvFilter {
    let mut filter = rust_log
        .and_then(|s| EnvFilter::try_new(s).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    if !dangerous {
        // Later directives for the same target win over RUST_LOG's, so these are caps.
        for target in LIBRARY_CAPS {
            if let Ok(d) = format!("{target}=info").parse::<Directive>() {
                filter = filter.add_directive(d);
            }
        }
    }
    filter
}

/// Installs the global subscriber. Call once, from `main`.
pub fn init_tracing() {
    let dangerous = std::env::var_os(DANGEROUS_ENV).is_some_and(|v| v == "1");
    let rust_log = std::env::var("RUST_LOG").ok();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(rust_log.as_deref(), dangerous))
        .with_writer(std::io::stderr);
    let result = if std::io::stderr().is_terminal() {
        builder.try_init()
    } else {
        builder.with_ansi(false).without_time().try_init()
    };
    if let Err(e) = result {
        eprintln!("otrd: logging was already set up: {e}");
    }
    if dangerous {
        tracing::warn!(
            "{DANGEROUS_ENV}=1: library logs are NOT capped; at debug/trace they print login \
             secrets, tokens and message text. Never use this with a real account"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_everywhere_still_caps_the_libraries_that_see_the_wire() {
        let f = filter(Some("trace"), false).to_string();
        for target in ["hyper", "h2", "tungstenite", "rustls", "reqwest", "tonic"] {
            assert!(
                f.contains(&format!("{target}=info")),
                "{target} not capped: {f}"
            );
        }
        // A library named outright in RUST_LOG is capped too.
        let f = filter(Some("info,tungstenite=trace"), false).to_string();
        assert!(!f.contains("tungstenite=trace"), "{f}");
        // otrd's own targets follow RUST_LOG.
        let f = filter(Some("otrd=trace"), false).to_string();
        assert!(f.contains("otrd=trace"), "{f}");
    }

    #[test]
    fn only_the_dangerous_switch_lifts_the_caps() {
        let f = filter(Some("trace"), true).to_string();
        assert!(!f.contains("hyper=info"), "{f}");
    }
}
