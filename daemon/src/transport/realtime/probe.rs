//! Choosing a path (issue 11 §3): on a server without the 7.x relay, Start sends a probe on path
//! A and waits for the peer's daemon to echo its nonce; without an answer it tries path B; without
//! one there either, the peer's client does not speak otrd.
//!
//! The probe proves reachability only. It is not what authenticates the peer: a forged answer
//! (anyone sharing a room with us can write on B) can at worst pick a path on which the native
//! handshake that follows then fails or times out — that handshake authenticates both identities
//! and, through `message_context`, the room and both uids, and its key confirmation catches a key
//! swap. Nothing is shown as established before it completes. Stock 8.x clients ignore probes
//! (an empty activity list on A, `params: {}` on B).
//!
//! Answering costs a call from the connection's budget, so [`Answers`] answers a room's probes at
//! most once per path every [`ANSWER_EVERY_MS`], and path B's (writable by anyone sharing a room
//! with us) at most [`super::budget::PATH_B_ANSWERS`] across rooms. The engine also never answers
//! while its own probe for the room is pending.

use super::budget::{Bucket, PATH_B_ANSWERS};
use super::envelope::{Item, Kind};
use super::Path;
use rand::RngCore;
use serde_json::json;
use std::collections::HashMap;

/// How long to wait for an answer on one path; A then B stays within the stock client's 10 s.
pub const WAIT_MS: i64 = 4_000;

// A then B must end within the stock client's 10 s handshake timeout.
const _: () = assert!(2 * WAIT_MS < 10_000);

/// A room's probes on one path are answered at most once per 5 s. A peer's Start sends one
/// probe per path ([`WAIT_MS`] apart, so per path, not per room: its B probe right after an A
/// probe whose answer was lost must still be answered), and a new Start only after the last one
/// failed, at least `2 × WAIT_MS` later; a forger gets one answer per 5 s and room, not one per
/// probe.
pub const ANSWER_EVERY_MS: i64 = 5_000;

const _: () = assert!(ANSWER_EVERY_MS < 2 * WAIT_MS);

/// Which probes we answer.
#[derive(Debug, Default)]
pub struct Answers {
    /// When each (room, path) was last answered.
    last_ms: HashMap<(String, Path), i64>,
    /// Path B answers across rooms; made full on first use.
    path_b: Option<Bucket>,
}

impl Answers {
    /// Whether to answer a probe for `room_id` on `path` now (counting it as answered if so).
    pub fn allow(&mut self, room_id: &str, path: Path, now_ms: i64) -> bool {
        let key = (room_id.to_owned(), path);
        if self
            .last_ms
            .get(&key)
            .is_some_and(|t| now_ms.saturating_sub(*t) < ANSWER_EVERY_MS)
        {
            return false;
        }
        if path == Path::B {
            let bucket = self
                .path_b
                .get_or_insert_with(|| Bucket::full(PATH_B_ANSWERS, now_ms));
            if !bucket.take(PATH_B_ANSWERS, now_ms) {
                return false;
            }
        }
        self.last_ms.insert(key, now_ms);
        true
    }
}

/// The order paths are tried in.
pub const ORDER: [Path; 2] = [Path::A, Path::B];

/// The path tried after `path`, if any.
pub fn next(path: Path) -> Option<Path> {
    ORDER.iter().skip_while(|p| **p != path).nth(1).copied()
}

/// A fresh nonce.
pub fn nonce(rng: &mut impl RngCore) -> String {
    format!("{:016x}{:016x}", rng.next_u64(), rng.next_u64())
}

/// The probe item.
pub fn request(nonce: &str) -> Item {
    Item {
        k: Kind::Probe,
        p: json!({ "nonce": nonce }),
    }
}

/// The answer item.
pub fn answer(nonce: &str) -> Item {
    Item {
        k: Kind::ProbeAck,
        p: json!({ "nonce": nonce }),
    }
}

/// Why Start fails when no path answered.
pub fn no_otrd_reason(peer: &str) -> String {
    format!("{peer}'s client does not speak otrd; Rocket.Chat 8 removed OTR for stock clients")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tries_a_then_b() {
        assert_eq!(next(Path::A), Some(Path::B));
        assert_eq!(next(Path::B), None);
        assert_ne!(nonce(&mut rand::rngs::OsRng), nonce(&mut rand::rngs::OsRng));
    }

    #[test]
    fn probes_are_answered_once_per_room_and_path_in_the_window() {
        let mut a = Answers::default();
        assert!(a.allow("R", Path::A, 0));
        assert!(
            !a.allow("R", Path::A, ANSWER_EVERY_MS - 1),
            "second within the window"
        );
        // The peer's B probe after an unanswered-for-them A probe, and another room.
        assert!(a.allow("R", Path::B, WAIT_MS));
        assert!(a.allow("S", Path::A, 1));
        assert!(a.allow("R", Path::A, ANSWER_EVERY_MS));
        assert!(!a.allow("R", Path::B, WAIT_MS + 1));
    }

    #[test]
    fn a_spray_of_path_b_probes_over_many_rooms_is_capped_overall() {
        let mut a = Answers::default();
        let burst = PATH_B_ANSWERS.burst as usize;
        let answered = (0..100)
            .filter(|i| a.allow(&format!("room{i}"), Path::B, 0))
            .count();
        assert_eq!(answered, burst);
        // Path A (sender checked by the server) is not capped across rooms.
        assert!((0..100).all(|i| a.allow(&format!("room{i}"), Path::A, 0)));
        // One more B answer after the refill interval.
        let refill_ms = (1000.0 / PATH_B_ANSWERS.per_sec) as i64;
        assert!(a.allow("another", Path::B, refill_ms));
        assert!(!a.allow("yet another", Path::B, refill_ms));
    }
}
