//! `[contacts.<user>] require_otr = true`: SendMessage to such a contact does not fail for want
//! of a session. Without an established one it starts OTR (scheme auto, as StartSession does),
//! holds the message, and sends it through the normal path once the session is established; the
//! RPC is answered then. If the session cannot be established (declined, timed out, failed,
//! ended, no otrd on an 8.x server, memory that cannot be locked...) every held message fails with
//! the peer's name and the outcome. A held message is never sent any other way, so nothing ever
//! leaves in plaintext.
//!
//! Held messages are keyed by the peer's username, bounded per peer ([`MAX_HELD_PER_PEER`]), and
//! failed (their text zeroized as it drops) by EndAllSessions and the screen lock. A message also
//! fails after [`HOLD_LIMIT_MS`] whatever the session is doing; the session's own timeouts (10 s
//! handshake and invitation windows, 8 s of probes on 8.x) normally decide much sooner.
//!
//! Contacts without `require_otr` are untouched: SendMessage fails at once unless established.

use super::core::{now_ms, Engine};
use super::handle::SentMessage;
use super::types::*;
use crate::secure::SecretString;
use std::collections::{HashMap, HashSet, VecDeque};
use tokio::sync::oneshot;

/// How many messages may wait for one peer's session; one more is refused at once.
pub(super) const MAX_HELD_PER_PEER: usize = 64;

/// A held message fails after this long, whatever the session is doing.
pub(super) const HOLD_LIMIT_MS: i64 = 60_000;

/// SendMessage's answer channel.
pub(super) type SendReply = oneshot::Sender<Result<SentMessage, EngineError>>;

/// StartSession's answer channel.
pub(super) type StartReply = oneshot::Sender<Result<SessionInfo, EngineError>>;

/// One message waiting for its session.
pub(super) struct HeldMessage {
    /// The plaintext (zeroized when dropped).
    pub(super) text: SecretString,
    /// Where the SendMessage answer goes.
    pub(super) reply: SendReply,
    /// When it was held, for [`HOLD_LIMIT_MS`].
    since_ms: i64,
}

impl HeldMessage {
    /// A message held from `now_ms`.
    pub(super) fn new(text: SecretString, reply: SendReply, now_ms: i64) -> Self {
        Self {
            text,
            reply,
            since_ms: now_ms,
        }
    }
}

/// The held messages, oldest first per peer, and the peers whose DM is being opened for them.
#[derive(Default)]
pub(super) struct HeldMessages {
    by_peer: HashMap<String, VecDeque<HeldMessage>>,
    /// Usernames without a known DM whose room is being resolved (at most one lookup each).
    pub(super) resolving: HashSet<String>,
}

impl HeldMessages {
    /// Holds `msg` for `peer`, or gives it back when [`MAX_HELD_PER_PEER`] already wait.
    pub(super) fn hold(&mut self, peer: &str, msg: HeldMessage) -> Result<(), HeldMessage> {
        let queue = self.by_peer.entry(peer.to_owned()).or_default();
        if queue.len() >= MAX_HELD_PER_PEER {
            return Err(msg);
        }
        queue.push_back(msg);
        Ok(())
    }

    /// Nothing is held for anyone.
    pub(super) fn is_empty(&self) -> bool {
        self.by_peer.is_empty()
    }

    /// Something is held for `peer`.
    pub(super) fn has(&self, peer: &str) -> bool {
        self.by_peer.contains_key(peer)
    }

    /// Takes `peer`'s messages, oldest first.
    pub(super) fn take(&mut self, peer: &str) -> VecDeque<HeldMessage> {
        self.by_peer.remove(peer).unwrap_or_default()
    }

    /// Takes everything, peer by peer.
    pub(super) fn take_all(&mut self) -> Vec<(String, HeldMessage)> {
        self.by_peer
            .drain()
            .flat_map(|(peer, q)| q.into_iter().map(move |m| (peer.clone(), m)))
            .collect()
    }

    /// Takes the messages held since before `now_ms - HOLD_LIMIT_MS`.
    pub(super) fn take_expired(&mut self, now_ms: i64) -> Vec<(String, HeldMessage)> {
        let mut out = Vec::new();
        for (peer, queue) in &mut self.by_peer {
            // Oldest first: the expired ones are a prefix.
            while queue
                .front()
                .is_some_and(|m| now_ms - m.since_ms >= HOLD_LIMIT_MS)
            {
                if let Some(m) = queue.pop_front() {
                    out.push((peer.clone(), m));
                }
            }
        }
        self.by_peer.retain(|_, q| !q.is_empty());
        out
    }

    /// Moves `from`'s messages behind `to`'s (a username the server spelled differently).
    pub(super) fn rename(&mut self, from: &str, to: &str) {
        if from == to {
            return;
        }
        let moved = self.take(from);
        if !moved.is_empty() {
            self.by_peer.entry(to.to_owned()).or_default().extend(moved);
        }
    }
}

/// What to do once a username's DM is resolved.
pub(super) enum AfterResolve {
    /// Finish a StartSession.
    Start {
        /// Scheme asked for.
        scheme: SchemePreference,
        /// Its answer channel.
        reply: StartReply,
    },
    /// Start OTR for the messages held for that username.
    Held,
}

impl Engine {
    /// SendMessage: at once, or held for OTR when the contact requires it (module docs).
    pub(super) fn on_send(&mut self, peer: PeerRef, text: SecretString, reply: SendReply) {
        let username = match &peer {
            PeerRef::Username(u) => Some(u.clone()),
            PeerRef::RoomId(id) => self.rooms.get(id).map(|r| r.peer_username.clone()),
        };
        match username.filter(|u| self.cfg.config.require_otr(u)) {
            Some(username) => self.send_requiring_otr(username, text, reply),
            None => {
                let answer = self.send(&peer, text);
                self.reply(reply, answer);
            }
        }
    }

    fn send_requiring_otr(&mut self, username: String, text: SecretString, reply: SendReply) {
        // Holding it would start a session when the lock ends; the user is not there to see it.
        if let Err(e) = self.require_unlocked() {
            let e = EngineError::FailedPrecondition(format!("{e}; the message was not sent"));
            self.reply(reply, Err(e));
            return;
        }
        let room_id = self.rooms.by_username(&username).map(|r| r.room_id.clone());
        // Behind anything already held for this peer, so messages keep their order.
        if let Some(room_id) = &room_id {
            if !self.held.has(&username) && self.session_state(room_id) == SessionState::Established
            {
                let answer = self.send_in_room(room_id, &PeerRef::Username(username), text);
                self.reply(reply, answer);
                return;
            }
        }
        if let Err(refused) = self
            .held
            .hold(&username, HeldMessage::new(text, reply, now_ms()))
        {
            let err = EngineError::FailedPrecondition(format!(
                "{MAX_HELD_PER_PEER} messages already wait for OTR with {username}; this one was \
                 not sent"
            ));
            self.reply(refused.reply, Err(err));
            return;
        }
        tracing::debug!(peer = %username, "message held until OTR is established (require_otr)");
        match room_id {
            Some(room_id) => self.start_for_held(&room_id),
            None => self.resolve_for_held(username),
        }
    }

    /// Makes sure something is under way that will settle the room's held messages: a session
    /// being established or requested, a probe for the peer's daemon, or else a new Start.
    fn start_for_held(&mut self, room_id: &str) {
        if let Err(e) = self.require_login() {
            self.settle_held(room_id, Some(&e));
            return;
        }
        let state = self.session_state(room_id);
        let under_way = matches!(
            state,
            SessionState::Establishing | SessionState::Requested | SessionState::Established
        ) || self.probes.contains_key(room_id);
        if under_way {
            self.settle_held(room_id, None);
        } else if self.realtime_mode() {
            self.start_probing(room_id, SchemePreference::Auto, None);
        } else {
            let answer = self.start_in_room(room_id, SchemePreference::Auto);
            self.start_answered(room_id, None, answer);
        }
    }

    /// Opens the DM with a peer we have none with yet (as StartSession does), once per peer.
    fn resolve_for_held(&mut self, username: String) {
        if let Err(e) = self.require_login() {
            let why = format!("OTR with {username} could not be started: {e}");
            self.fail_held(&username, &why);
            return;
        }
        if !self.held.resolving.insert(username.clone()) {
            return;
        }
        self.spawn_resolve(username, AfterResolve::Held);
    }

    /// The DM for held messages is known (or not): start OTR in it, or fail them.
    pub(super) fn on_resolved_for_held(
        &mut self,
        username: &str,
        room: Result<Option<String>, String>,
    ) {
        self.held.resolving.remove(username);
        match room {
            Ok(Some(room_id)) => {
                let peer = self
                    .rooms
                    .get(&room_id)
                    .map(|r| r.peer_username.clone())
                    .unwrap_or_default();
                self.held.rename(username, &peer);
                if self.held.has(&peer) {
                    self.start_for_held(&room_id);
                }
            }
            Ok(None) => self.fail_held(
                username,
                &format!("{username} has no 1:1 direct message with us"),
            ),
            Err(e) => self.fail_held(
                username,
                &format!("cannot open a direct message with {username}: {e}"),
            ),
        }
    }

    /// Answers a Start (when an RPC asked for one) and settles the room's held messages with
    /// its outcome.
    pub(super) fn start_answered(
        &mut self,
        room_id: &str,
        reply: Option<StartReply>,
        answer: Result<SessionInfo, EngineError>,
    ) {
        self.settle_held(room_id, answer.as_ref().err());
        if let Some(reply) = reply {
            self.reply(reply, answer);
        }
    }

    /// Sends, keeps or fails the messages held for the room's peer, by its session's state:
    /// established sends them (in order, through the normal path), establishing or requested (or
    /// a probe or DM lookup under way) keeps them, anything else fails them with
    /// the outcome (`start_error` when a Start was just refused).
    pub(super) fn settle_held(&mut self, room_id: &str, start_error: Option<&EngineError>) {
        if self.held.is_empty() {
            return;
        }
        let Some(peer) = self.rooms.get(room_id).map(|r| r.peer_username.clone()) else {
            return;
        };
        // A probe or a DM lookup under way decides later.
        if !self.held.has(&peer)
            || self.probes.contains_key(room_id)
            || self.held.resolving.contains(&peer)
        {
            return;
        }
        let (state, detail) = self.sessions.get(room_id).map_or_else(
            || (SessionState::NotStarted, String::new()),
            |s| {
                let info = s.info();
                (info.state, info.detail)
            },
        );
        match state {
            SessionState::Establishing | SessionState::Requested => {}
            SessionState::Established => {
                for msg in self.held.take(&peer) {
                    let answer =
                        self.send_in_room(room_id, &PeerRef::Username(peer.clone()), msg.text);
                    self.reply(msg.reply, answer);
                }
            }
            _ => {
                let outcome = match start_error {
                    Some(e) => format!("could not start: {e}"),
                    None if detail.is_empty() => state.as_str().to_owned(),
                    None => format!("{}: {detail}", state.as_str()),
                };
                self.fail_held(
                    &peer,
                    &format!("OTR with {peer} was not established ({outcome})"),
                );
            }
        }
    }

    /// Fails `peer`'s held messages with `why`; their texts are zeroized as they drop.
    pub(super) fn fail_held(&mut self, peer: &str, why: &str) {
        for msg in self.held.take(peer) {
            self.reply(msg.reply, Err(not_sent(why)));
        }
    }

    /// Fails every held message (EndAllSessions, the screen lock).
    pub(super) fn fail_all_held(&mut self, why: &str) {
        for (peer, msg) in self.held.take_all() {
            let why = format!("{why} while the message to {peer} waited for OTR; it was not sent");
            self.reply(msg.reply, Err(EngineError::FailedPrecondition(why)));
        }
    }

    /// Fails the messages held longer than [`HOLD_LIMIT_MS`] (from the tick).
    pub(super) fn expire_held(&mut self) {
        if self.held.is_empty() {
            return;
        }
        for (peer, msg) in self.held.take_expired(now_ms()) {
            let why = format!(
                "OTR with {peer} was not established within {} s",
                HOLD_LIMIT_MS / 1000
            );
            self.reply(msg.reply, Err(not_sent(&why)));
        }
    }

    /// A room's session state (`not_started` without a session).
    pub(super) fn session_state(&self, room_id: &str) -> SessionState {
        self.sessions
            .get(room_id)
            .map_or(SessionState::NotStarted, |s| s.state())
    }
}

/// The error a held message fails with: why, and that nothing was sent.
fn not_sent(why: &str) -> EngineError {
    EngineError::FailedPrecondition(format!("{why}; the message was not sent"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(
        text: &str,
        at: i64,
    ) -> (
        HeldMessage,
        oneshot::Receiver<Result<SentMessage, EngineError>>,
    ) {
        let (tx, rx) = oneshot::channel();
        (HeldMessage::new(SecretString::from(text), tx, at), rx)
    }

    fn texts(q: VecDeque<HeldMessage>) -> Vec<String> {
        q.into_iter().map(|m| m.text.expose().to_owned()).collect()
    }

    #[test]
    fn each_peer_holds_at_most_the_bound_in_order() {
        let mut held = HeldMessages::default();
        for i in 0..MAX_HELD_PER_PEER {
            assert!(held.hold("bob", msg(&format!("m{i}"), 0).0).is_ok());
        }
        let refused = held.hold("bob", msg("one too many", 0).0).err();
        assert_eq!(
            refused.map(|m| m.text.expose().to_owned()).as_deref(),
            Some("one too many")
        );
        // Another peer has its own bound.
        assert!(held.hold("carol", msg("c", 0).0).is_ok());
        let bob = texts(held.take("bob"));
        assert_eq!(bob.len(), MAX_HELD_PER_PEER);
        assert_eq!((bob[0].as_str(), bob[63].as_str()), ("m0", "m63"));
        assert!(!held.has("bob"));
        assert!(held.has("carol"));
    }

    #[test]
    fn expiry_takes_only_the_old_ones_and_take_all_empties() {
        let mut held = HeldMessages::default();
        held.hold("bob", msg("old", 0).0).ok();
        held.hold("bob", msg("new", 50_000).0).ok();
        held.hold("carol", msg("old too", 1).0).ok();
        let expired = held.take_expired(HOLD_LIMIT_MS + 1);
        let mut names: Vec<_> = expired
            .iter()
            .map(|(p, m)| format!("{p}:{}", m.text.expose()))
            .collect();
        names.sort();
        assert_eq!(names, ["bob:old", "carol:old too"]);
        assert!(!held.has("carol"), "an emptied queue is gone");
        assert_eq!(held.take_all().len(), 1);
        assert!(held.is_empty());
    }

    #[test]
    fn a_respelled_peer_keeps_the_order() {
        let mut held = HeldMessages::default();
        held.hold("bob", msg("first", 0).0).ok();
        held.hold("Bob", msg("second", 0).0).ok();
        held.rename("Bob", "bob");
        assert!(!held.has("Bob"));
        assert_eq!(texts(held.take("bob")), ["first", "second"]);
    }
}
