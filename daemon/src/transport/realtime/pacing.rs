//! Pacing under the server's rate limits (PROTOCOL.md §12.4): one token bucket per method name,
//! shared by every room of the connection (the server counts per connection and method).
//! A call waits for a token instead of being refused; `too-many-requests` that still happens
//! (the user's own typing indicators share path A's budget) is back-pressure handled by the
//! DDP client, which waits `timeToReset` and resends the same frame.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Calls allowed per window and method (default: the server's 40 per 40 s per connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacingConfig {
    /// Off: no waiting at all (a server without limits).
    pub enabled: bool,
    /// Calls per window (also the burst size).
    pub calls: u32,
    /// Window length.
    pub window: Duration,
}

impl Default for PacingConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            calls: 40,
            window: Duration::from_secs(40),
        }
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Token buckets per method, cheap to clone (shared by a connection's outboxes).
#[derive(Debug, Clone)]
pub struct Pacer {
    cfg: PacingConfig,
    buckets: Arc<Mutex<HashMap<String, Bucket>>>,
}

impl Pacer {
    /// A pacer with these limits.
    pub fn new(cfg: PacingConfig) -> Self {
        Self {
            cfg,
            buckets: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Takes a token now, or says how long until one is available.
    pub fn try_take(&self, method: &str, now: Instant) -> Result<(), Duration> {
        if !self.cfg.enabled || self.cfg.calls == 0 {
            return Ok(());
        }
        let cap = f64::from(self.cfg.calls);
        let per_ms = cap / (self.cfg.window.as_millis().max(1) as f64);
        // A poisoned lock only means another outbox panicked mid-update; the counts are still
        // numbers, so go on with them.
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let b = map.entry(method.to_owned()).or_insert(Bucket {
            tokens: cap,
            last: now,
        });
        let elapsed = now.saturating_duration_since(b.last).as_millis() as f64;
        b.tokens = (b.tokens + elapsed * per_ms).min(cap);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_millis(
                ((1.0 - b.tokens) / per_ms).ceil() as u64
            ))
        }
    }

    /// Waits for a token for `method`.
    pub async fn acquire(&self, method: &str) {
        while let Err(wait) = self.try_take(method, Instant::now()) {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_up_to_the_limit_then_refills_at_its_rate() {
        let p = Pacer::new(PacingConfig {
            enabled: true,
            calls: 4,
            window: Duration::from_secs(4),
        });
        let t0 = Instant::now();
        for _ in 0..4 {
            assert_eq!(p.try_take("m", t0), Ok(()));
        }
        let wait = p.try_take("m", t0).expect_err("empty");
        assert!(
            wait <= Duration::from_millis(1000) && wait >= Duration::from_millis(999),
            "{wait:?}"
        );
        assert_eq!(p.try_take("other", t0), Ok(()), "buckets are per method");
        assert_eq!(p.try_take("m", t0 + Duration::from_millis(1000)), Ok(()));
        let off = Pacer::new(PacingConfig {
            enabled: false,
            ..PacingConfig::default()
        });
        for _ in 0..1000 {
            assert_eq!(off.try_take("m", t0), Ok(()));
        }
    }
}
