//! DDP method rate limiting the way Meteor's `DDPRateLimiter` does it for Rocket.Chat (§12.4):
//! fixed windows per rule (one window start per rule, not per key), every call counted — refused
//! ones too — and the longest `timeToReset` reported when several rules trip.
//!
//! Every refusal is also kept ([`RateLimiter::refused`]), as the real server logs each one with
//! the user id ("limit by userId per method"): tests and benchmarks assert there were none, in
//! process or through `GET /_sim/rate_limited` ([`fetch_refused`]).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::config::{Limit, RateLimitConfig};

/// One call the limiter refused with `too-many-requests`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// The method called.
    pub method: String,
    /// The user the connection was logged in as.
    pub user: Option<String>,
    /// The connection.
    pub conn: u64,
    /// The `timeToReset` answered, ms.
    pub time_to_reset_ms: u64,
}

#[derive(Clone, Copy, Debug)]
enum Scope {
    /// `stream-*` methods, keyed by user and method name.
    StreamUser,
    /// `stream-*` methods, keyed by connection and method name.
    StreamConnection,
    /// `sendMessage`, keyed by user.
    SendMessageUser,
    /// Every method, keyed by (logged-in) user.
    GlobalUser,
    /// Every method, keyed by connection.
    GlobalConnection,
}

#[derive(Debug)]
struct Rule {
    scope: Scope,
    limit: Limit,
    window_start: Instant,
    counters: HashMap<String, u32>,
}

/// The limiter for one simulator.
#[derive(Debug)]
pub struct RateLimiter {
    enabled: bool,
    rules: Vec<Rule>,
    refused: Vec<Refusal>,
}

impl RateLimiter {
    /// Builds the rules from config.
    pub fn new(cfg: &RateLimitConfig) -> Self {
        let now = Instant::now();
        let rule = |scope, limit| Rule {
            scope,
            limit,
            window_start: now,
            counters: HashMap::new(),
        };
        RateLimiter {
            enabled: cfg.enabled,
            rules: vec![
                rule(Scope::StreamUser, cfg.stream_per_user),
                rule(Scope::StreamConnection, cfg.stream_per_connection),
                rule(Scope::SendMessageUser, cfg.send_message_per_user),
                rule(Scope::GlobalUser, cfg.global_per_user),
                rule(Scope::GlobalConnection, cfg.global_per_connection),
            ],
            refused: Vec::new(),
        }
    }

    /// Switches limiting on or off at run time.
    pub fn set_enabled(&mut self, on: bool) {
        self.enabled = on;
    }

    /// Counts one call; `Err(time_to_reset)` when any matching rule is over its limit.
    pub fn check(
        &mut self,
        method: &str,
        user: Option<&str>,
        conn: u64,
        now: Instant,
    ) -> Result<(), Duration> {
        if !self.enabled {
            return Ok(());
        }
        let mut worst: Option<Duration> = None;
        for rule in &mut self.rules {
            let Some(key) = rule_key(rule.scope, method, user, conn) else {
                continue;
            };
            let window = Duration::from_millis(rule.limit.window_ms);
            if now.duration_since(rule.window_start) > window {
                rule.counters.clear();
                rule.window_start = now;
            }
            let count = rule.counters.entry(key).or_insert(0);
            *count = count.saturating_add(1);
            if *count > rule.limit.count {
                let left = window.saturating_sub(now.duration_since(rule.window_start));
                worst = Some(worst.map_or(left, |w| w.max(left)));
            }
        }
        match worst {
            Some(w) => {
                self.refused.push(Refusal {
                    method: method.to_string(),
                    user: user.map(str::to_string),
                    conn,
                    time_to_reset_ms: u64::try_from(w.as_millis()).unwrap_or(u64::MAX),
                });
                Err(w)
            }
            None => Ok(()),
        }
    }

    /// Every call refused so far, in order.
    pub fn refused(&self) -> &[Refusal] {
        &self.refused
    }
}

/// The refusals of the simulator at `http_url` (`GET /_sim/rate_limited`), for tests and
/// benchmarks that hold only its URL. A plain HTTP/1.1 request: no client library needed.
pub async fn fetch_refused(http_url: &str) -> anyhow::Result<Vec<Refusal>> {
    use anyhow::Context;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = http_url
        .strip_prefix("http://")
        .context("the simulator's URL is not http://")?
        .trim_end_matches('/');
    let mut stream = tokio::net::TcpStream::connect(host).await?;
    let request =
        format!("GET /_sim/rate_limited HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .context("no HTTP body from /_sim/rate_limited")?;
    anyhow::ensure!(
        head.starts_with("HTTP/1.1 200"),
        "/_sim/rate_limited answered {}",
        head.lines().next().unwrap_or("")
    );
    let v: serde_json::Value = serde_json::from_str(body)?;
    Ok(serde_json::from_value(v["refused"].clone())?)
}

fn rule_key(scope: Scope, method: &str, user: Option<&str>, conn: u64) -> Option<String> {
    let is_stream = method.starts_with("stream-");
    match scope {
        Scope::StreamUser if is_stream => Some(format!("{}|{method}", user.unwrap_or(""))),
        Scope::StreamConnection if is_stream => Some(format!("{conn}|{method}")),
        Scope::SendMessageUser if method == "sendMessage" => user.map(str::to_string),
        Scope::GlobalUser => user.map(str::to_string),
        Scope::GlobalConnection => Some(conn.to_string()),
        _ => None,
    }
}

/// Meteor's `DDPRateLimiter.getErrorMessage` text.
pub fn error_message(time_to_reset: Duration) -> String {
    let secs = time_to_reset.as_millis().div_ceil(1000);
    format!("Error, too many requests. Please slow down. You must wait {secs} seconds before trying again.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_limit_trips_at_41_and_resets() {
        let mut rl = RateLimiter::new(&RateLimitConfig::default());
        let t0 = Instant::now();
        for _ in 0..40 {
            assert!(rl.check("stream-notify-room", Some("u"), 1, t0).is_ok());
        }
        let err = rl.check("stream-notify-room", Some("u"), 1, t0);
        assert!(
            matches!(err, Err(d) if d <= Duration::from_secs(40) && d > Duration::from_secs(39))
        );
        // Another method has its own budget.
        assert!(rl
            .check("stream-notify-room-users", Some("u"), 1, t0)
            .is_ok());
        // Next window.
        let later = t0 + Duration::from_millis(40_001);
        assert!(rl.check("stream-notify-room", Some("u"), 1, later).is_ok());
    }

    #[test]
    fn send_message_five_per_second_and_switch_off() {
        let mut rl = RateLimiter::new(&RateLimitConfig::default());
        let t0 = Instant::now();
        for _ in 0..5 {
            assert!(rl.check("sendMessage", Some("u"), 1, t0).is_ok());
        }
        assert!(rl.check("sendMessage", Some("u"), 2, t0).is_err());
        let refused = rl.refused();
        assert_eq!(refused.len(), 1);
        assert_eq!(
            (
                refused[0].method.as_str(),
                refused[0].user.as_deref(),
                refused[0].conn
            ),
            ("sendMessage", Some("u"), 2)
        );
        assert!(refused[0].time_to_reset_ms <= 1_000);
        rl.set_enabled(false);
        assert!(rl.check("sendMessage", Some("u"), 2, t0).is_ok());
    }
}
