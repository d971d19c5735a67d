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

use super::envelope::{Item, Kind};
use super::Path;
use rand::RngCore;
use serde_json::json;

/// How long to wait for an answer on one path; A then B stays within the stock client's 10 s.
pub const WAIT_MS: i64 = 4_000;

// A then B must end within the stock client's 10 s handshake timeout.
const _: () = assert!(2 * WAIT_MS < 10_000);

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
}
