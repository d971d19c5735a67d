//! Budgets of the receiving side: how many inbound frames of a room may reach its session (and
//! so its decryption) and how many probes are answered. Anyone who shares any room with us can
//! write on path B, claiming to be any of our peers; these bounds keep such a flood from costing
//! more than a fixed amount of CPU or of the connection's call budget, whatever its rate.
//! (Sending is paced separately, by [`super::pacing`].)
//!
//! Time is the caller's clock in milliseconds (what `Realtime::accept` is given), so the buckets
//! are deterministic under test; a clock that steps back refills nothing.

use std::collections::HashMap;

/// A token bucket's shape: `burst` tokens at most, refilled at `per_sec`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Tokens when full (the largest burst taken at once).
    pub burst: f64,
    /// Tokens added per second.
    pub per_sec: f64,
}

/// Inbound items of one room that may reach its session: a burst of 1,024, then 256 a second.
///
/// The real peer cannot come near it. Its daemon makes at most 40 calls per method in any 42 s
/// ([`super::pacing`], under the server's 40 per 40 s per connection), each call with at most
/// [`super::envelope::MAX_ITEMS`] items — and a 300-line paste, with the acks for ours, is a few
/// hundred items in about ten calls. Even the server's per-user ceiling (80 calls per 40 s,
/// PROTOCOL §12.4) is 128 items a second. A forger at 1,000 items a second gets 256 of them into
/// the session, each costing at most one X25519 and [`crate::otr::native::MAX_SKIP`] chain steps
/// before its AEAD tag fails.
pub const SESSION_INPUTS: Rate = Rate {
    burst: 1024.0,
    per_sec: 256.0,
};

/// At most one summary of a room's dropped items per this many milliseconds (the first drop is
/// reported at once): a flood is one line every 10 s, not one per frame.
pub const REPORT_EVERY_MS: i64 = 10_000;

/// Probe answers on path B, all rooms together: a burst of 8, then one per 10 s. Each answer is
/// a call from the connection's path-B budget (about one a second); a forger who sprays probes
/// in the names of all our peers may spend a tenth of it, no more. Path A is not counted here: its
/// sender is checked by the server, so only the room's members can write there.
pub const PATH_B_ANSWERS: Rate = Rate {
    burst: 8.0,
    per_sec: 0.1,
};

/// Proven runs remembered per room (one per connection of the peer's daemon, and it reconnects).
pub const PROVEN_RUNS: usize = 4;

/// One token bucket.
#[derive(Debug, Clone)]
pub struct Bucket {
    tokens: f64,
    last_ms: i64,
}

impl Bucket {
    /// A full bucket.
    pub fn full(rate: Rate, now_ms: i64) -> Self {
        Self {
            tokens: rate.burst,
            last_ms: now_ms,
        }
    }

    /// Takes one token if there is one.
    pub fn take(&mut self, rate: Rate, now_ms: i64) -> bool {
        let elapsed = now_ms.saturating_sub(self.last_ms).max(0);
        self.last_ms = self.last_ms.max(now_ms);
        self.tokens = (self.tokens + elapsed as f64 * rate.per_sec / 1000.0).min(rate.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A room's [`SESSION_INPUTS`] bucket and what it dropped.
#[derive(Debug)]
struct RoomBudget {
    bucket: Bucket,
    /// The peer's runs proven genuine (newest last): their items are not counted.
    proven: std::collections::VecDeque<String>,
    /// Dropped since the last summary.
    unreported: u64,
    /// When the last summary was written.
    reported_ms: Option<i64>,
}

/// The per-room budgets of session inputs.
#[derive(Debug, Default)]
pub struct SessionBudgets {
    rooms: HashMap<String, RoomBudget>,
    dropped: u64,
}

impl SessionBudgets {
    /// Whether one more item of `room_id` may go to its session; a refusal is counted and
    /// summarised (at warn level, without contents) at most every [`REPORT_EVERY_MS`].
    pub fn admit(&mut self, room_id: &str, run: &str, now_ms: i64) -> bool {
        let room = match self.rooms.get_mut(room_id) {
            Some(r) => r,
            None => self
                .rooms
                .entry(room_id.to_owned())
                .or_insert_with(|| RoomBudget {
                    bucket: Bucket::full(SESSION_INPUTS, now_ms),
                    proven: std::collections::VecDeque::new(),
                    unreported: 0,
                    reported_ms: None,
                }),
        };
        if room.proven.iter().any(|r| r == run) {
            // The peer's own run (see `prove`): a forger writing in its name cannot starve it.
            return true;
        }
        if room.bucket.take(SESSION_INPUTS, now_ms) {
            return true;
        }
        self.dropped += 1;
        room.unreported += 1;
        let due = room
            .reported_ms
            .is_none_or(|t| now_ms.saturating_sub(t) >= REPORT_EVERY_MS);
        if due {
            tracing::warn!(
                room = %room_id,
                dropped = room.unreported,
                "realtime frames for this room arrive faster than any peer sends; the excess is \
                 dropped before decryption (someone sharing a room with us may be flooding path B)"
            );
            room.unreported = 0;
            room.reported_ms = Some(now_ms);
        }
        false
    }

    /// Marks `run` as the genuine peer's (an item of it decrypted): its items bypass the room's
    /// bucket. A few runs per room are remembered (a peer starts a new run per connection).
    pub fn prove(&mut self, room_id: &str, run: &str) {
        let Some(room) = self.rooms.get_mut(room_id) else {
            return; // nothing was admitted for this room, so nothing was proven either
        };
        if room.proven.iter().any(|r| r == run) {
            return;
        }
        if room.proven.len() >= PROVEN_RUNS {
            room.proven.pop_front();
        }
        room.proven.push_back(run.to_owned());
    }

    /// Items dropped over the budget since start.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_bursts_then_refills_at_its_rate_and_ignores_a_clock_stepping_back() {
        let rate = Rate {
            burst: 3.0,
            per_sec: 2.0,
        };
        let mut b = Bucket::full(rate, 1_000);
        assert!((0..3).all(|_| b.take(rate, 1_000)));
        assert!(!b.take(rate, 1_000));
        assert!(!b.take(rate, 1_400), "0.8 of a token");
        assert!(b.take(rate, 1_500));
        assert!(!b.take(rate, 0), "back in time: nothing refilled");
        assert!(b.take(rate, 2_000));
        assert!(
            (0..3).all(|_| b.take(rate, 60_000)) && !b.take(rate, 60_000),
            "never above the burst"
        );
    }

    #[test]
    fn a_flood_is_cut_to_the_rate_while_the_peers_largest_burst_passes() {
        let mut budgets = SessionBudgets::default();
        // The real peer's 300-line paste with the acks for ours, all at once.
        assert!((0..600).all(|_| budgets.admit("R", "peer", 0)));
        // Right after, a forger's 1,000 items a second for 10 s: only the rate gets through.
        let mut admitted = 0;
        for ms in 0..10_000 {
            if budgets.admit("R", "forged", ms) {
                admitted += 1;
            }
        }
        let most = (SESSION_INPUTS.burst - 600.0 + 10.0 * SESSION_INPUTS.per_sec) as i32 + 1;
        assert!(admitted <= most, "{admitted} > {most}");
        assert_eq!(budgets.dropped(), 10_000 - admitted as u64);
        // Another room has its own budget.
        assert!(budgets.admit("S", "peer", 11_000));
    }

    #[test]
    fn a_proven_run_is_not_starved_by_a_flood_in_its_name() {
        let mut budgets = SessionBudgets::default();
        assert!(budgets.admit("R", "peer", 0));
        budgets.prove("R", "peer");
        // A forger claiming the peer, in runs of its own, spends the whole bucket...
        for ms in 0..5_000 {
            budgets.admit("R", &format!("forged{}", ms % 7), ms);
        }
        assert!(!budgets.admit("R", "forged0", 5_000));
        // ...and the peer's proven run still gets every item through.
        assert!((0..1_000).all(|i| budgets.admit("R", "peer", 5_000 + i)));
        // Proving is per room, and only a few runs are remembered.
        assert!(!budgets.admit("R", "unproven", 5_000));
        for run in ["a", "b", "c", "d"] {
            budgets.prove("R", run);
        }
        assert!(
            !budgets.admit("R", "peer", 5_000),
            "the oldest proven run was forgotten"
        );
        budgets.prove("S", "peer");
        assert!(budgets.admit("S", "peer", 5_000));
    }
}
