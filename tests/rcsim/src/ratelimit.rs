//! DDP method rate limiting the way Meteor's `DDPRateLimiter` does it for Rocket.Chat (§12.4):
//! fixed windows per rule (one window start per rule, not per key), every call counted — refused
//! ones too — and the longest `timeToReset` reported when several rules trip.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::config::{Limit, RateLimitConfig};

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
            Some(w) => Err(w),
            None => Ok(()),
        }
    }
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
        rl.set_enabled(false);
        assert!(rl.check("sendMessage", Some("u"), 2, t0).is_ok());
    }
}
