//! Signals for a DM we have not loaded yet, parked until the DM list says whose room it is.
//!
//! When someone opens a new DM and starts OTR at once, their `handshake` on `<uid>/otr` can reach
//! us before the server's `subscriptions-changed` does: the room is unknown, so the signal cannot
//! be checked against the room's real peer. Dropping it would lose the invitation (the stock
//! client never repeats one); accepting it unchecked would let anyone invite us into any room.
//! So the signal waits here while the DM list is reloaded, and is fed to the session only once the
//! room is known to be our 1:1 DM and its message stream is followed (so the first OTR message
//! after the handshake is not missed). It then goes through every check a signal for a known room
//! does (signals for rooms we know go to their sessions at once, never here). Bounded in count,
//! size and age: a stranger sending signals for made-up rooms costs a
//! reload of the DM list per room id and a few kilobytes, and never reaches a session.

use crate::otr::session::SignalKind;
use serde_json::Value;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Signals kept at once; the oldest goes first.
pub(super) const MAX_PARKED: usize = 64;
/// Larger payloads are not kept (a handshake with a native offer is well under 2 KiB).
pub(super) const MAX_PAYLOAD_BYTES: usize = 16 * 1024;
/// How long a signal may wait for its room: a little over the stock client's 10 s answer window.
pub(super) const PARK_FOR: Duration = Duration::from_secs(15);

struct Parked {
    at: Instant,
    room_id: String,
    kind: SignalKind,
    payload: Value,
}

/// The parked signals, oldest first.
#[derive(Default)]
pub(super) struct ParkedSignals {
    entries: VecDeque<Parked>,
}

/// What `park` did.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Parking {
    /// Kept; the first for its room, so the caller should reload the DM list.
    FirstForRoom,
    /// Kept behind earlier signals for the same room (a reload is already under way).
    Queued,
    /// Not kept: the payload is too large.
    TooLarge,
}

impl ParkedSignals {
    /// Keeps a signal for `room_id` until the room is ready or `PARK_FOR` has passed.
    pub(super) fn park(
        &mut self,
        room_id: &str,
        kind: SignalKind,
        payload: Value,
        now: Instant,
    ) -> Parking {
        if serde_json::to_vec(&payload).map_or(true, |v| v.len() > MAX_PAYLOAD_BYTES) {
            return Parking::TooLarge;
        }
        self.expire(now);
        let first = !self.entries.iter().any(|p| p.room_id == room_id);
        if self.entries.len() == MAX_PARKED {
            self.entries.pop_front();
        }
        self.entries.push_back(Parked {
            at: now,
            room_id: room_id.to_owned(),
            kind,
            payload,
        });
        if first {
            Parking::FirstForRoom
        } else {
            Parking::Queued
        }
    }

    /// Takes, in arrival order, the signals whose room `ready` accepts; drops expired ones.
    pub(super) fn take_ready(
        &mut self,
        now: Instant,
        ready: impl Fn(&str) -> bool,
    ) -> Vec<(String, SignalKind, Value)> {
        self.expire(now);
        let (go, stay): (VecDeque<Parked>, VecDeque<Parked>) =
            self.entries.drain(..).partition(|p| ready(&p.room_id));
        self.entries = stay;
        go.into_iter()
            .map(|p| (p.room_id, p.kind, p.payload))
            .collect()
    }

    /// Whether signals for `room_id` are waiting (a later one must wait behind them).
    pub(super) fn holds_room(&self, room_id: &str) -> bool {
        self.entries.iter().any(|p| p.room_id == room_id)
    }

    /// Forgets everything (the lock: nothing from before it may start a session after it).
    pub(super) fn clear(&mut self) {
        self.entries.clear();
    }

    /// Signals waiting.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    fn expire(&mut self, now: Instant) {
        self.entries
            .retain(|p| now.saturating_duration_since(p.at) < PARK_FOR);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn offer(n: u32) -> Value {
        json!({"roomId": "r", "userId": "u", "publicKey": format!("k{n}")})
    }

    #[test]
    fn the_first_signal_for_a_room_asks_for_a_reload_and_later_ones_queue() {
        let mut p = ParkedSignals::default();
        let t = Instant::now();
        assert_eq!(
            p.park("r1", SignalKind::Handshake, offer(1), t),
            Parking::FirstForRoom
        );
        assert_eq!(p.park("r1", SignalKind::End, offer(2), t), Parking::Queued);
        assert_eq!(
            p.park("r2", SignalKind::Handshake, offer(3), t),
            Parking::FirstForRoom
        );
        assert_eq!(p.len(), 3);
        assert!(p.holds_room("r1") && !p.holds_room("r3"));
    }

    #[test]
    fn ready_rooms_come_out_in_arrival_order_and_the_rest_stay() {
        let mut p = ParkedSignals::default();
        let t = Instant::now();
        p.park("r1", SignalKind::Handshake, offer(1), t);
        p.park("r2", SignalKind::Handshake, offer(2), t);
        p.park("r1", SignalKind::End, offer(3), t);
        let out = p.take_ready(t, |r| r == "r1");
        let got: Vec<_> = out
            .iter()
            .map(|(r, k, v)| (r.as_str(), *k, v["publicKey"].clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("r1", SignalKind::Handshake, json!("k1")),
                ("r1", SignalKind::End, json!("k3"))
            ]
        );
        assert_eq!(p.len(), 1);
        assert!(p.take_ready(t, |r| r == "r1").is_empty());
    }

    #[test]
    fn bounded_in_count_size_and_age() {
        let mut p = ParkedSignals::default();
        let t = Instant::now();
        for n in 0..(MAX_PARKED as u32 + 5) {
            p.park(&format!("r{n}"), SignalKind::Handshake, offer(n), t);
        }
        assert_eq!(p.len(), MAX_PARKED);
        // The oldest went first.
        assert!(p.take_ready(t, |r| r == "r0").is_empty());
        let big = json!({"roomId": "r", "publicKey": "x".repeat(MAX_PAYLOAD_BYTES)});
        assert_eq!(
            p.park("big", SignalKind::Handshake, big, t),
            Parking::TooLarge
        );
        assert_eq!(p.len(), MAX_PARKED);
        let later = t + PARK_FOR;
        assert!(p.take_ready(later, |_| true).is_empty());
        assert_eq!(p.len(), 0);
    }

    #[test]
    fn clear_forgets_everything() {
        let mut p = ParkedSignals::default();
        p.park("r1", SignalKind::Handshake, offer(1), Instant::now());
        p.clear();
        assert!(p.take_ready(Instant::now(), |_| true).is_empty());
    }
}
