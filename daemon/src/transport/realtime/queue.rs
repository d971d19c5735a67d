//! One room's outgoing items on one path, in the order its session wrote them: what the next
//! call would carry ([`RoomQueue::peek`], [`RoomQueue::take`]), what still waits (for the
//! back-pressure users see), and the rules that keep a queue honest under rate limits:
//!
//! - a resend of a message that is still queued, on its way, or left moments ago is dropped (a
//!   session resends every 5 s what is unacknowledged; a message that waited for the budget has
//!   not been lost, and its copy would only spend more of it);
//! - an `end` drops the messages still waiting — the peer could not read them after it — and the
//!   session reports them failed; it keeps the acknowledgements that fit beside it, so the end
//!   leaves in one call;
//! - a message that waited past the delivery bound is taken out and reported failed, never sent
//!   late ([`RoomQueue::expire`]).
//!
//! Items are packed lazily, when a call is about to go, so whatever arrived meanwhile shares it.

use super::envelope::{item_len, Envelope, Fragment, Item, Kind, MAX_ITEMS, MAX_PAYLOAD};
use super::sender::Numbering;
use super::{fragment, Class};
use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

/// How much of [`MAX_PAYLOAD`] makes a frame "full": waiting would add too little to be worth it.
const FULL_PAYLOAD: usize = MAX_PAYLOAD * 7 / 8;

/// The pacing class of an item kind.
pub fn class_of(kind: Kind) -> Class {
    match kind {
        Kind::Message | Kind::Ack => Class::Bulk,
        Kind::Offer | Kind::Answer | Kind::Confirm | Kind::Probe | Kind::ProbeAck => Class::Urgent,
        Kind::End | Kind::Deny => Class::Control,
    }
}

/// One item waiting, with what its outcome must be reported as.
#[derive(Debug, Clone)]
pub struct Queued {
    /// The item.
    pub item: Item,
    /// Its pacing class.
    pub class: Class,
    /// The chat message's id, for a message.
    pub message_id: Option<String>,
    /// What the frame is, for a failure report ("acknowledgement", "end", ...).
    pub what: &'static str,
    /// When it was queued.
    pub at: Instant,
    /// Its serialised length plus the separating comma.
    len: usize,
}

impl Queued {
    /// An item queued at `at`.
    pub fn new(item: Item, what: &'static str, at: Instant) -> Self {
        let message_id = (item.k == Kind::Message)
            .then(|| item.p.get("id").and_then(|v| v.as_str()).map(str::to_owned))
            .flatten();
        Self {
            class: class_of(item.k),
            len: item_len(&item).saturating_add(1),
            item,
            message_id,
            what,
            at,
        }
    }

    fn is_message(&self) -> bool {
        self.item.k == Kind::Message
    }
}

/// An envelope ready to go, and what its outcome decides.
#[derive(Debug, Clone)]
pub struct Packed {
    /// The envelope.
    pub envelope: Envelope,
    /// The highest class of its items.
    pub class: Class,
    /// The messages it carries (a fragment: the message its group carries).
    pub messages: Vec<String>,
    /// The other frames it carries, by name (reported only if it fails).
    pub others: Vec<&'static str>,
    /// For a fragment: its group and whether it is the group's last piece.
    pub group: Option<(u64, bool)>,
    /// When its oldest item was queued.
    pub oldest: Instant,
    /// Calls of it lost with the connection (or timed out) so far.
    pub attempts: u32,
}

impl Packed {
    /// Whether its messages' outcome is decided by this call (a fragment's only by the last).
    pub fn decides(&self) -> bool {
        self.group.is_none_or(|(_, last)| last)
    }
}

/// What the next call would carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peek {
    /// The highest class in it.
    pub class: Class,
    /// Whether it is as full as it gets (waiting would not fill it further).
    pub full: bool,
}

/// What became of a pushed item.
#[derive(Debug, PartialEq, Eq)]
pub enum Pushed {
    /// Queued.
    Queued,
    /// A resend of a message still queued or just sent: dropped.
    Coalesced,
    /// An `end`: queued, and these waiting messages were dropped (the session reports them).
    Ended {
        /// The dropped messages' ids.
        dropped: Vec<String>,
    },
}

/// The messages of the call in flight.
#[derive(Debug, Clone)]
struct InFlight {
    messages: Vec<String>,
    oldest: Instant,
}

/// Messages not yet accepted by the server, and how long the oldest has waited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Waiting {
    /// How many.
    pub messages: u32,
    /// Items of any kind.
    pub items: u32,
    /// When the oldest message was queued.
    pub oldest: Option<Instant>,
}

/// One room's queue on one path.
#[derive(Debug)]
pub struct RoomQueue {
    room_id: String,
    numbering: Numbering,
    items: VecDeque<Queued>,
    /// Envelopes already packed (a large item's fragments, a call to resend): they go first.
    ready: VecDeque<Packed>,
    in_flight: Option<InFlight>,
    /// After a lost call, not before this.
    pub retry_at: Option<Instant>,
    /// Messages the server accepted recently, and when (resends of them are dropped).
    left: HashMap<String, Instant>,
    /// Back-pressure last reported for this queue (engine state events).
    pub reported: Option<Reported>,
    /// When a call of this queue last went (rooms take turns: least recently served first).
    pub served: Option<Instant>,
}

/// What was last reported of a queue's back-pressure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reported {
    /// How many messages the report said were waiting.
    pub count: u32,
    /// When it was made.
    pub at: Instant,
    /// Since when no message has waited (the all-clear follows after a while, not at once: a
    /// paced stream empties the queue at every call).
    pub empty_since: Option<Instant>,
}

impl RoomQueue {
    /// An empty queue for `room_id`, numbered in a fresh run.
    pub fn new(room_id: &str) -> Self {
        Self::with_numbering(room_id, Numbering::new())
    }

    /// An empty queue numbered on in `numbering`'s run.
    pub fn with_numbering(room_id: &str, numbering: Numbering) -> Self {
        Self {
            room_id: room_id.to_owned(),
            numbering,
            items: VecDeque::new(),
            ready: VecDeque::new(),
            in_flight: None,
            retry_at: None,
            left: HashMap::new(),
            reported: None,
            served: None,
        }
    }

    /// The run numbering, to go on with elsewhere.
    pub fn into_numbering(self) -> Numbering {
        self.numbering
    }

    /// Whether a call of this queue is on its way (one at a time keeps the order).
    pub fn in_flight(&self) -> bool {
        self.in_flight.is_some()
    }

    /// Whether nothing waits and nothing is on its way.
    pub fn is_idle(&self) -> bool {
        self.items.is_empty() && self.ready.is_empty() && self.in_flight.is_none()
    }

    /// Queues an item; see the module docs for resends and `end`. `grace` is how long a sent
    /// message's resends are dropped.
    pub fn push(&mut self, q: Queued, now: Instant, grace: Duration) -> Pushed {
        if let Some(id) = &q.message_id {
            if self.holds(id, now, grace) {
                return Pushed::Coalesced;
            }
        }
        if q.item.k == Kind::End {
            let dropped = self.clear_for_end(&q);
            self.items.push_back(q);
            return Pushed::Ended { dropped };
        }
        self.items.push_back(q);
        Pushed::Queued
    }

    /// Whether message `id` is queued, on its way, or was accepted less than `grace` ago.
    fn holds(&self, id: &str, now: Instant, grace: Duration) -> bool {
        let queued = self
            .items
            .iter()
            .any(|q| q.message_id.as_deref() == Some(id));
        let ready = self
            .ready
            .iter()
            .any(|p| p.messages.iter().any(|m| m == id));
        let flying = self
            .in_flight
            .as_ref()
            .is_some_and(|f| f.messages.iter().any(|m| m == id));
        let recent = self
            .left
            .get(id)
            .is_some_and(|t| now.saturating_duration_since(*t) < grace);
        queued || ready || flying || recent
    }

    /// Makes room for `end`: waiting messages and packed envelopes go (their ids returned),
    /// signals stay, acknowledgements stay as far as they fit in one envelope with the `end`.
    fn clear_for_end(&mut self, end: &Queued) -> Vec<String> {
        let mut dropped: Vec<String> = Vec::new();
        let mut seen_groups = HashSet::new();
        for p in self.ready.drain(..) {
            let first_of_group = p.group.is_none_or(|(g, _)| seen_groups.insert(g));
            if first_of_group {
                dropped.extend(p.messages);
            }
        }
        let mut size = 2 + end.len;
        let mut count = 1;
        let mut kept = VecDeque::new();
        for q in self.items.drain(..) {
            if q.is_message() {
                dropped.extend(q.message_id);
                continue;
            }
            let fits = size + q.len <= MAX_PAYLOAD && count < MAX_ITEMS;
            if q.class == Class::Bulk && !fits {
                continue; // an acknowledgement that would push the end into a second call
            }
            size += q.len;
            count += 1;
            kept.push_back(q);
        }
        self.items = kept;
        dropped
    }

    /// What the next call would carry, if anything waits (nothing while a call is on its way
    /// or a retry is due later: the caller checks those).
    pub fn peek(&self) -> Option<Peek> {
        if let Some(p) = self.ready.front() {
            return Some(Peek {
                class: p.class,
                full: true,
            });
        }
        let mut size = 2;
        let mut count = 0;
        let mut class = Class::Bulk;
        for q in &self.items {
            if count == 0 && q.len + 2 > MAX_PAYLOAD {
                // Fragmented: every piece is a full frame.
                return Some(Peek {
                    class: q.class,
                    full: true,
                });
            }
            if size + q.len > MAX_PAYLOAD || count == MAX_ITEMS {
                return Some(Peek { class, full: true });
            }
            size += q.len;
            count += 1;
            class = class.max(q.class);
        }
        (count > 0).then_some(Peek {
            class,
            full: count == MAX_ITEMS || size >= FULL_PAYLOAD,
        })
    }

    /// When the oldest item waiting was queued.
    pub fn oldest(&self) -> Option<Instant> {
        let ready = self.ready.front().map(|p| p.oldest);
        let items = self.items.front().map(|q| q.at);
        match (ready, items) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Packs the next call's envelope (as [`RoomQueue::peek`] described it) and marks it on its
    /// way; `from` is our uid.
    pub fn take(&mut self, from: &str) -> Option<Packed> {
        if self.ready.is_empty() {
            self.pack_next(from)?;
        }
        let packed = self.ready.pop_front()?;
        self.in_flight = Some(InFlight {
            messages: packed.messages.clone(),
            oldest: packed.oldest,
        });
        Some(packed)
    }

    /// Moves the next envelope's items from `items` to `ready` (several for a fragmented item).
    fn pack_next(&mut self, from: &str) -> Option<()> {
        let head = self.items.front()?;
        if head.len + 2 > MAX_PAYLOAD {
            let head = self.items.pop_front()?;
            let json = serde_json::to_string(&[&head.item]).ok()?;
            let pieces = fragment::split(&json);
            let n = u32::try_from(pieces.len()).ok()?;
            let group = self.numbering.next_group();
            for (i, d) in (0u32..).zip(pieces) {
                let frag = Fragment { id: group, i, n, d };
                let envelope =
                    self.numbering
                        .next_envelope(from, &self.room_id, Vec::new(), Some(frag));
                self.ready.push_back(Packed {
                    envelope,
                    class: head.class,
                    messages: head.message_id.iter().cloned().collect(),
                    others: if head.is_message() {
                        Vec::new()
                    } else {
                        vec![head.what]
                    },
                    group: Some((group, i + 1 == n)),
                    oldest: head.at,
                    attempts: 0,
                });
            }
            return Some(());
        }
        let mut size = 2;
        let mut batch: Vec<Queued> = Vec::new();
        while let Some(q) = self.items.front() {
            let oversized = q.len + 2 > MAX_PAYLOAD;
            if oversized || size + q.len > MAX_PAYLOAD || batch.len() == MAX_ITEMS {
                break;
            }
            size += q.len;
            batch.extend(self.items.pop_front());
        }
        let oldest = batch.first().map(|q| q.at)?;
        let class = batch.iter().map(|q| q.class).max().unwrap_or(Class::Bulk);
        let mut messages = Vec::new();
        let mut others = Vec::new();
        let mut items = Vec::with_capacity(batch.len());
        for q in batch {
            match q.message_id {
                Some(id) => messages.push(id),
                None => others.push(q.what),
            }
            items.push(q.item);
        }
        let envelope = self
            .numbering
            .next_envelope(from, &self.room_id, items, None);
        self.ready.push_back(Packed {
            envelope,
            class,
            messages,
            others,
            group: None,
            oldest,
            attempts: 0,
        });
        Some(())
    }

    /// The call on its way is over. `accepted`: the server took it, so its messages are
    /// remembered as sent (resends within `grace` are dropped).
    pub fn landed(&mut self, packed: &Packed, accepted: bool, now: Instant, grace: Duration) {
        self.in_flight = None;
        if accepted && packed.decides() {
            self.left
                .retain(|_, t| now.saturating_duration_since(*t) < grace);
            for id in &packed.messages {
                self.left.insert(id.clone(), now);
            }
        }
    }

    /// Forgets which messages were accepted (a new connection: they may have been lost with
    /// the old one, so their resends must go).
    pub fn forget_sent(&mut self) {
        self.left.clear();
    }

    /// Puts an envelope back in front, to go again as it was (same sequence number: if the lost
    /// call did reach the peer, the copy is dropped there as a replay).
    pub fn requeue(&mut self, packed: Packed) {
        self.ready.push_front(packed);
    }

    /// Drops the pieces of fragment group `group` still waiting (one piece failed).
    pub fn drop_group(&mut self, group: u64) {
        self.ready
            .retain(|p| p.group.is_none_or(|(g, _)| g != group));
    }

    /// Takes out every message waiting (not the one on its way) and returns their ids; a
    /// fragmented one goes with all its pieces. Acknowledgements and signals stay.
    pub fn drop_messages(&mut self) -> Vec<String> {
        let mut dropped = Vec::new();
        let mut groups = HashSet::new();
        self.ready.retain(|p| {
            if p.messages.is_empty() {
                return true;
            }
            if p.group.is_none_or(|(g, _)| groups.insert(g)) {
                dropped.extend(p.messages.iter().cloned());
            }
            false
        });
        self.items.retain(|q| {
            if q.is_message() {
                dropped.extend(q.message_id.iter().cloned());
            }
            !q.is_message()
        });
        dropped
    }

    /// Takes out every message queued at or before `cutoff` (and acknowledgements as old: the
    /// peer has given up on them) and returns the messages' ids, to be reported failed.
    /// Signals stay.
    pub fn expire(&mut self, cutoff: Instant) -> Vec<String> {
        let mut expired = Vec::new();
        let mut groups = HashSet::new();
        self.ready.retain(|p| {
            let old = p.oldest <= cutoff && !p.messages.is_empty();
            if old {
                if let Some((g, _)) = p.group {
                    if !groups.insert(g) {
                        return false;
                    }
                }
                expired.extend(p.messages.iter().cloned());
            }
            !old
        });
        self.items.retain(|q| {
            let old = q.class == Class::Bulk && q.at <= cutoff;
            if old {
                expired.extend(q.message_id.iter().cloned());
            }
            !old
        });
        expired
    }

    /// Messages (and items) not yet accepted by the server: waiting or on their way.
    pub fn waiting(&self) -> Waiting {
        let mut messages = 0u32;
        let mut items = 0u32;
        let mut oldest: Option<Instant> = None;
        let mut note = |n: usize, at: Instant, has_messages: bool| {
            if has_messages {
                oldest = Some(oldest.map_or(at, |o| o.min(at)));
            }
            messages = messages.saturating_add(u32::try_from(n).unwrap_or(u32::MAX));
        };
        if let Some(f) = &self.in_flight {
            note(f.messages.len(), f.oldest, !f.messages.is_empty());
        }
        let mut groups = HashSet::new();
        for p in &self.ready {
            items = items.saturating_add(1);
            if p.group.is_none_or(|(g, _)| groups.insert(g)) {
                note(p.messages.len(), p.oldest, !p.messages.is_empty());
            }
        }
        for q in &self.items {
            items = items.saturating_add(1);
            if q.is_message() {
                note(1, q.at, true);
            }
        }
        Waiting {
            messages,
            items,
            oldest,
        }
    }
}

#[cfg(test)]
mod tests;
