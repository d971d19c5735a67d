//! otrd ↔ otrd over the realtime relays that Rocket.Chat 8.x still has (PROTOCOL.md §12): path A
//! (`stream-notify-room` `<rid>/user-activity`) and path B (`stream-notify-room-users`
//! `<rid>/video-conference`). Nothing sent here is stored by the server.
//!
//! - [`envelope`] — the frame format and its bounds; [`fragment`] — splitting and bounded
//!   reassembly; [`path_a`], [`path_b`] — the wire shapes; [`probe`] — choosing a path, and
//!   which probes to answer; [`budget`] — how much inbound work a room (or a forger writing in
//!   its name) may cause.
//! - Outgoing: [`sender`] — frames as numbered envelope items; [`pacing`] — the server's rate
//!   limits as a budget per method, connection and user, with a reserve for control frames and
//!   a pacing gap; [`queue`] — one room's items, packed call by call; [`scheduler`] — which
//!   room's call goes when, and what each outcome means; [`outgoing`] — the task that makes
//!   the calls, and the handle rooms and front-ends use.
//! - [`Realtime`] (here) — the inbound half: an event from either path becomes the same session
//!   [`Input`]s the 7.x relay produces, after bounding the envelope, checking its claims (room,
//!   sender), dropping replays, reassembling fragments and keeping each room within its budget.
//!
//! Sessions and schemes never learn which path carried a frame. The envelope's sender and room
//! must equal the room's peer and the room itself; the native scheme binds both into each
//! message's associated data, so even a frame whose claims were rewritten does not decrypt.

pub mod budget;
pub mod envelope;
pub mod fragment;
pub mod outgoing;
pub mod pacing;
pub mod path_a;
pub mod path_b;
pub mod probe;
pub mod queue;
pub mod scheduler;
pub mod sender;

pub use outgoing::{RelayTask, Relays, RoomOutbox};
pub use pacing::Limits;
pub use scheduler::Settings;

use crate::engine::TransportKind;
use crate::otr::session::{Input, SignalKind};
use envelope::{Envelope, Item, Kind};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet, VecDeque};

/// How urgently an outgoing item must leave (the order matters: later is more urgent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    /// Messages and acknowledgements: packed together, paced as the budget drains.
    Bulk,
    /// Handshakes and probes (a peer waits on them with a timeout): at once while a data call
    /// is left.
    Urgent,
    /// `end` and `deny`: at once, from the reserve if need be.
    Control,
}

/// Which realtime relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Path {
    /// `stream-notify-room` `<rid>/user-activity` (sender checked by the server).
    A,
    /// `stream-notify-room-users` `<rid>/video-conference` (no sender check).
    B,
}

impl Path {
    /// As shown in GetStatus and state events.
    pub fn kind(self) -> TransportKind {
        match self {
            Path::A => TransportKind::UserActivity,
            Path::B => TransportKind::VideoConference,
        }
    }
}

/// The room an envelope may be for, as the engine knows it.
#[derive(Debug, Clone)]
pub struct KnownRoom {
    /// Room id.
    pub room_id: String,
    /// The peer's uid (from the room's members, never from an event).
    pub peer_uid: String,
    /// The peer's username.
    pub peer_username: String,
}

/// What an inbound event asks of the engine.
#[derive(Debug)]
pub enum Inbound {
    /// Feed this to the room's session.
    Session {
        /// Room.
        room_id: String,
        /// The path it came on.
        path: Path,
        /// The sender's run it came in: once an item of it proved genuine (it decrypted), the
        /// engine calls [`Realtime::prove_run`] and the run no longer shares the room's budget
        /// with forgers.
        run: String,
        /// The input.
        input: Input,
    },
    /// The peer asks whether this path works: answer on the same path.
    ProbeRequest {
        /// Room.
        room_id: String,
        /// Path.
        path: Path,
        /// Nonce to echo.
        nonce: String,
    },
    /// The peer answered our probe.
    ProbeAnswered {
        /// Room.
        room_id: String,
        /// Path.
        path: Path,
        /// The nonce it echoed.
        nonce: String,
    },
}

/// Why an inbound envelope was dropped (logged at debug; never reaches a session).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    /// Not an envelope.
    #[error(transparent)]
    Envelope(#[from] envelope::EnvelopeError),
    /// The envelope names a room we have no DM for, or another room than the event's.
    #[error("envelope for another room")]
    WrongRoom,
    /// The envelope's sender is not the room's peer.
    #[error("envelope from someone else than the room's peer")]
    WrongSender,
    /// Seen before.
    #[error("replayed envelope")]
    Replay,
    /// The room talks over the other path (only probes may switch).
    #[error("envelope on a path the room does not use")]
    WrongPath,
    /// A fragment was dropped.
    #[error(transparent)]
    Fragment(#[from] fragment::FragmentError),
}

/// How many envelope ids each room remembers against replays.
const REPLAY_MEMORY: usize = 4096;

#[derive(Debug, Default)]
struct Seen {
    set: HashSet<(String, u64)>,
    order: VecDeque<(String, u64)>,
}

impl Seen {
    /// True if new (and remembers it).
    fn insert(&mut self, run: &str, seq: u64) -> bool {
        let key = (run.to_owned(), seq);
        if !self.set.insert(key.clone()) {
            return false;
        }
        self.order.push_back(key);
        if self.order.len() > REPLAY_MEMORY {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }
}

/// What the inbound checks refused, since start (for tests and diagnostics).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct InboundCounts {
    /// Envelopes rejected ([`Rejected`]): out of bounds, wrong claims, replays, wrong path.
    pub rejected: u64,
    /// Items dropped over their room's [`budget::SESSION_INPUTS`].
    pub over_budget: u64,
}

/// Inbound state of both paths for one connection, and each room's chosen path.
#[derive(Debug, Default)]
pub struct Realtime {
    paths: HashMap<String, Path>,
    seen: HashMap<String, Seen>,
    reassembly: fragment::Reassembler,
    /// Items each room may still hand to its session.
    budgets: budget::SessionBudgets,
    /// Which probes are answered.
    answers: probe::Answers,
    /// Envelopes rejected since start ([`InboundCounts::rejected`]).
    rejected: u64,
}

impl Realtime {
    /// The path a room uses, once chosen.
    pub fn path(&self, room_id: &str) -> Option<Path> {
        self.paths.get(room_id).copied()
    }

    /// Chooses (or changes) a room's path.
    pub fn set_path(&mut self, room_id: &str, path: Path) {
        self.paths.insert(room_id.to_owned(), path);
    }

    /// Forgets every room's path and the fragments in flight (the server's capabilities
    /// changed: paths are probed again). Replay memory and budgets stay: they guard against
    /// the same senders as before.
    pub fn forget_paths(&mut self) {
        self.paths.clear();
        self.reassembly = fragment::Reassembler::default();
    }

    /// Whether to answer a probe for `room_id` on `path` now ([`probe::Answers`]).
    pub fn may_answer_probe(&mut self, room_id: &str, path: Path, now_ms: i64) -> bool {
        self.answers.allow(room_id, path, now_ms)
    }

    /// Marks `run` of `room_id` as the genuine peer's: an item of it decrypted under the
    /// session's keys. A third user cannot read the peer's frames, so cannot learn the run (64
    /// random bits) to borrow its standing; the server could, but the server can drop anything
    /// anyway.
    pub fn prove_run(&mut self, room_id: &str, run: &str) {
        self.budgets.prove(room_id, run);
    }

    /// What the inbound checks refused so far.
    pub fn counts(&self) -> InboundCounts {
        InboundCounts {
            rejected: self.rejected,
            over_budget: self.budgets.dropped(),
        }
    }

    /// Takes one stream event. `Ok(None)` when it is not one of ours; `room_of` looks up a DM.
    pub fn accept(
        &mut self,
        collection: &str,
        event_name: &str,
        args: &[Value],
        my_uid: &str,
        room_of: impl Fn(&str) -> Option<KnownRoom>,
        now_ms: i64,
    ) -> Option<Result<Vec<Inbound>, Rejected>> {
        let (path, raw, event_room) =
            if let Some((room, raw)) = path_a::parse(collection, event_name, args) {
                (Path::A, raw, Some(room))
            } else if let Some(raw) = path_b::parse(collection, event_name, my_uid, args) {
                (Path::B, raw, None)
            } else {
                return None;
            };
        let result = self.take(path, raw, event_room, my_uid, room_of, now_ms);
        if result.is_err() {
            self.rejected += 1;
        }
        Some(result)
    }

    fn take(
        &mut self,
        path: Path,
        raw: &Value,
        event_room: Option<&str>,
        my_uid: &str,
        room_of: impl Fn(&str) -> Option<KnownRoom>,
        now_ms: i64,
    ) -> Result<Vec<Inbound>, Rejected> {
        let env = Envelope::from_value(raw)?;
        if env.from == my_uid {
            return Ok(Vec::new()); // our own frame, seen by another of our sessions
        }
        if event_room.is_some_and(|r| r != env.room) {
            return Err(Rejected::WrongRoom);
        }
        let room = room_of(&env.room).ok_or(Rejected::WrongRoom)?;
        if env.from != room.peer_uid {
            return Err(Rejected::WrongSender);
        }
        if !self
            .seen
            .entry(room.room_id.clone())
            .or_default()
            .insert(&env.run, env.seq)
        {
            return Err(Rejected::Replay);
        }
        let items = match env.frag {
            Some(frag) => match self.reassembly.add(&room.room_id, &env.run, frag, now_ms)? {
                Some(items) => {
                    envelope::check_items(&items)?;
                    items
                }
                None => return Ok(Vec::new()),
            },
            None => env.items,
        };
        let chosen = self.path(&room.room_id);
        let only_probes = items
            .iter()
            .all(|i| matches!(i.k, Kind::Probe | Kind::ProbeAck));
        if !only_probes && chosen.is_some_and(|p| p != path) {
            return Err(Rejected::WrongPath);
        }
        // Everything a session gets may cost it a decryption (or a handshake's DH): within the
        // room's budget only. Probes are bounded where they are answered.
        let budgets = &mut self.budgets;
        let out: Vec<Inbound> = items
            .into_iter()
            .filter_map(|item| to_inbound(&room, path, my_uid, &env.run, item, now_ms))
            .filter(|i| {
                !matches!(i, Inbound::Session { .. })
                    || budgets.admit(&room.room_id, &env.run, now_ms)
            })
            .collect();
        if chosen.is_none() && out.iter().any(|i| matches!(i, Inbound::Session { .. })) {
            // The peer started on this path: answer on it.
            self.set_path(&room.room_id, path);
        }
        Ok(out)
    }
}

fn to_inbound(
    room: &KnownRoom,
    path: Path,
    my_uid: &str,
    run: &str,
    item: Item,
    now_ms: i64,
) -> Option<Inbound> {
    let room_id = room.room_id.clone();
    let signal = |kind| Inbound::Session {
        room_id: room_id.clone(),
        path,
        run: run.to_owned(),
        input: Input::Signal {
            kind,
            payload: item.p.clone(),
        },
    };
    let text = |key: &str| item.p.get(key).and_then(Value::as_str).map(str::to_owned);
    Some(match item.k {
        Kind::Offer => signal(SignalKind::Handshake),
        Kind::Answer | Kind::Confirm => signal(SignalKind::Acknowledge),
        Kind::Deny => signal(SignalKind::Deny),
        Kind::End => signal(SignalKind::End),
        Kind::Message => {
            let (id, msg) = (text("id")?, text("msg")?);
            // The shape the 7.x relay delivers (§4.2); the sender is the room's peer, checked above.
            let message = json!({"_id": id, "rid": room.room_id, "msg": msg, "t": "otr",
                "ts": {"$date": now_ms},
                "u": {"_id": room.peer_uid, "username": room.peer_username, "name": room.peer_username}});
            Inbound::Session {
                room_id,
                path,
                run: run.to_owned(),
                input: Input::RoomMessage { message },
            }
        }
        Kind::Ack => {
            let (id, ack) = (text("id")?, text("ack")?);
            // As the 7.x server re-broadcasts an ack: our own message carrying `otrAck`.
            let message = json!({"_id": id, "rid": room.room_id, "msg": "", "t": "otr",
                "u": {"_id": my_uid}, "otrAck": ack});
            Inbound::Session {
                room_id,
                path,
                run: run.to_owned(),
                input: Input::RoomMessage { message },
            }
        }
        Kind::Probe => Inbound::ProbeRequest {
            room_id,
            path,
            nonce: text("nonce")?,
        },
        Kind::ProbeAck => Inbound::ProbeAnswered {
            room_id,
            path,
            nonce: text("nonce")?,
        },
    })
}

#[cfg(test)]
mod tests;
