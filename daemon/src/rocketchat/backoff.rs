//! Reconnect pacing: capped, jittered exponential backoff that starts over after a success.

use rand::Rng;
use std::time::Duration;

/// How reconnect delays grow.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackoffPolicy {
    /// First delay after a failure.
    pub initial: Duration,
    /// No delay is longer than this (before jitter).
    pub max: Duration,
    /// Each further failure multiplies the delay by this (values below 1 count as 1).
    pub multiplier: f64,
    /// Random spread as a fraction of the delay: 0.2 means ±20 %. Clamped to 0..=1. Jitter keeps
    /// many daemons from reconnecting in lock-step after a server restart.
    pub jitter: f64,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(60),
            multiplier: 2.0,
            jitter: 0.2,
        }
    }
}

/// The running state of a [`BackoffPolicy`].
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: BackoffPolicy,
    /// The un-jittered delay the next failure gets.
    next: Duration,
    attempts: u32,
}

impl Backoff {
    /// A fresh backoff: the next delay is `policy.initial`.
    pub fn new(policy: BackoffPolicy) -> Self {
        let next = policy.initial.min(policy.max);
        Self {
            policy,
            next,
            attempts: 0,
        }
    }

    /// The delay to wait before the next attempt; grows the following one.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.next;
        let mult = if self.policy.multiplier.is_finite() {
            self.policy.multiplier.max(1.0)
        } else {
            1.0
        };
        let grown = base.as_secs_f64() * mult;
        self.next = if grown.is_finite() && grown < self.policy.max.as_secs_f64() {
            Duration::from_secs_f64(grown)
        } else {
            self.policy.max
        };
        self.attempts = self.attempts.saturating_add(1);
        let jitter = if self.policy.jitter.is_finite() {
            self.policy.jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        if jitter == 0.0 || base.is_zero() {
            return base;
        }
        let factor = rand::thread_rng().gen_range((1.0 - jitter)..=(1.0 + jitter));
        Duration::from_secs_f64(base.as_secs_f64() * factor)
    }

    /// Failures since the last success.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// After a success: the next failure waits `initial` again.
    pub fn reset(&mut self) {
        self.next = self.policy.initial.min(self.policy.max);
        self.attempts = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(jitter: f64) -> BackoffPolicy {
        BackoffPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(1000),
            multiplier: 2.0,
            jitter,
        }
    }

    #[test]
    fn grows_caps_and_resets() {
        let mut b = Backoff::new(policy(0.0));
        let got: Vec<u128> = (0..6).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(got, vec![100, 200, 400, 800, 1000, 1000]);
        assert_eq!(b.attempts(), 6);
        b.reset();
        assert_eq!(b.attempts(), 0);
        assert_eq!(b.next_delay().as_millis(), 100);
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let mut b = Backoff::new(policy(0.5));
        for _ in 0..200 {
            b.reset();
            let d = b.next_delay().as_millis();
            assert!((50..=150).contains(&d), "{d}");
        }
    }

    #[test]
    fn degenerate_policies_do_not_panic() {
        let mut b = Backoff::new(BackoffPolicy {
            initial: Duration::from_secs(10),
            max: Duration::from_secs(1),
            multiplier: f64::NAN,
            jitter: 7.0,
        });
        for _ in 0..10 {
            assert!(b.next_delay() <= Duration::from_secs(2));
        }
        let mut z = Backoff::new(BackoffPolicy {
            initial: Duration::ZERO,
            ..policy(0.3)
        });
        assert_eq!(z.next_delay(), Duration::ZERO);
    }
}
