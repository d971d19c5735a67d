//! The event log: numbering, live fan-out to every watcher, and each room's bounded in-memory
//! scrollback (wiped when its session ends).

use super::core::now_ms;
use super::types::{Event, EventKind};
use std::collections::{HashMap, VecDeque};
use tokio::sync::broadcast;

/// Capacity of the live fan-out; a watcher further behind than this loses events and is told.
const FANOUT_CAPACITY: usize = 4096;

/// Numbers events, fans them out, and keeps scrollback per room.
pub struct EventLog {
    /// Live fan-out; each WatchEvents stream holds a receiver.
    live: broadcast::Sender<Event>,
    /// Last sequence number handed out.
    seq: u64,
    /// Per-room scrollback of message events, oldest first.
    scrollback: HashMap<String, VecDeque<Event>>,
    /// Messages kept per room.
    scrollback_limit: usize,
}

impl EventLog {
    /// An empty log keeping `scrollback_limit` messages per room.
    pub fn new(scrollback_limit: usize) -> Self {
        let (live, _) = broadcast::channel(FANOUT_CAPACITY);
        Self {
            live,
            seq: 0,
            scrollback: HashMap::new(),
            scrollback_limit,
        }
    }

    /// Numbers `kind`, keeps it in scrollback if it is part of a conversation, and fans it out.
    pub fn emit(&mut self, kind: EventKind) -> u64 {
        self.seq += 1;
        let event = Event {
            seq: self.seq,
            ts_ms: now_ms(),
            replay: false,
            kind,
        };
        if let Some(room) = scrollback_room(&event.kind) {
            let log = self.scrollback.entry(room.to_owned()).or_default();
            log.push_back(event.clone());
            while log.len() > self.scrollback_limit {
                log.pop_front();
            }
        }
        // No receivers is fine: nobody is watching.
        let _ = self.live.send(event);
        self.seq
    }

    /// The last sequence number handed out (0 before the first event): what a snapshot taken now
    /// already reflects.
    pub fn last_seq(&self) -> u64 {
        self.seq
    }

    /// Scrollback of every room (oldest first within a room, flagged `replay`) and a live receiver,
    /// taken together so that nothing falls between them.
    pub fn attach(&self, include_scrollback: bool) -> (Vec<Event>, broadcast::Receiver<Event>) {
        let rx = self.live.subscribe();
        let mut replay = Vec::new();
        if include_scrollback {
            for log in self.scrollback.values() {
                replay.extend(log.iter().cloned().map(|mut e| {
                    e.replay = true;
                    e
                }));
            }
            replay.sort_by_key(|e| e.seq);
        }
        (replay, rx)
    }

    /// Wipes a room's scrollback (the session ended). The texts are zeroized as they drop.
    pub fn wipe(&mut self, room_id: &str) {
        self.scrollback.remove(room_id);
    }

    /// Wipes every room's scrollback (lock).
    pub fn wipe_all(&mut self) {
        self.scrollback.clear();
    }

    /// Number of scrollback entries held, for tests and status.
    #[cfg(test)]
    pub fn scrollback_len(&self, room_id: &str) -> usize {
        self.scrollback.get(room_id).map_or(0, VecDeque::len)
    }
}

/// The room whose scrollback keeps this event: chat messages and delivery receipts.
fn scrollback_room(kind: &EventKind) -> Option<&str> {
    match kind {
        EventKind::Message { room_id, .. } | EventKind::Delivered { room_id, .. } => Some(room_id),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::types::Direction;

    fn msg(room: &str, text: &str) -> EventKind {
        EventKind::Message {
            peer: "bob".into(),
            room_id: room.into(),
            direction: Direction::In,
            text: text.into(),
            id: "m".into(),
            ts_ms: 0,
        }
    }

    #[test]
    fn scrollback_is_bounded_replayed_and_wiped() {
        let mut log = EventLog::new(2);
        log.emit(msg("r1", "a"));
        log.emit(msg("r1", "b"));
        log.emit(msg("r1", "c"));
        log.emit(EventKind::Connection {
            state: crate::engine::ConnectionState::Connected,
            detail: String::new(),
        });
        assert_eq!(log.scrollback_len("r1"), 2);
        let (replay, _rx) = log.attach(true);
        let texts: Vec<_> = replay
            .iter()
            .map(|e| match &e.kind {
                EventKind::Message { text, .. } => text.expose().to_owned(),
                _ => String::new(),
            })
            .collect();
        assert_eq!(texts, ["b", "c"]);
        assert!(replay.iter().all(|e| e.replay));
        log.wipe("r1");
        assert_eq!(log.scrollback_len("r1"), 0);
        assert!(log.attach(true).0.is_empty());
    }

    #[test]
    fn last_seq_is_the_newest_event_a_snapshot_reflects() {
        let mut log = EventLog::new(10);
        assert_eq!(log.last_seq(), 0, "nothing emitted yet");
        let first = log.emit(msg("r", "x"));
        assert_eq!(log.last_seq(), first);
        let second = log.emit(msg("r", "y"));
        assert_eq!((first, second, log.last_seq()), (1, 2, 2));
    }

    #[test]
    fn live_receivers_see_events_in_order() {
        let mut log = EventLog::new(10);
        let (_, mut a) = log.attach(false);
        let (_, mut b) = log.attach(false);
        log.emit(msg("r", "x"));
        log.emit(msg("r", "y"));
        for rx in [&mut a, &mut b] {
            assert_eq!(rx.try_recv().map(|e| e.seq).ok(), Some(1));
            assert_eq!(rx.try_recv().map(|e| e.seq).ok(), Some(2));
        }
    }
}
