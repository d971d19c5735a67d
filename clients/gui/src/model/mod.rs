//! The view model: the window's whole state, changed only by [`ViewModel::apply`] (what the
//! daemon said) and by the user's choices (select a peer, close a dialog). Pure: no I/O, no
//! clock, no egui — so it is tested on its own and against a real daemon.

mod types;
mod update;

#[cfg(test)]
mod tests;

pub use types::*;
pub use update::{Snapshot, Update};

use otrd_proto::v1::{
    event::Kind, ConnectionState, Direction, Event, GetFingerprintResponse, GetStatusResponse,
    Room, Session, SessionState,
};
use std::collections::{BTreeMap, HashMap, VecDeque};
use zeroize::Zeroizing;

/// How many notices are kept (oldest dropped first).
const MAX_NOTICES: usize = 5;

/// The window's state.
#[derive(Debug, Default)]
pub struct ViewModel {
    link: Option<Link>,
    status: GetStatusResponse,
    peers: BTreeMap<String, PeerView>,
    chats: HashMap<String, Vec<ChatLine>>,
    invites: BTreeMap<String, Invite>,
    selected: Option<String>,
    verification: Option<Verification>,
    notices: VecDeque<Notice>,
}

impl ViewModel {
    /// An empty model, connecting.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one thing the worker learned.
    pub fn apply(&mut self, update: Update) {
        match update {
            Update::Connecting => {
                if self.link != Some(Link::Connected) {
                    self.link = Some(Link::Connecting);
                }
            }
            Update::Connected(snapshot) => self.reset(*snapshot),
            Update::Disconnected { reason } => self.link = Some(Link::Disconnected { reason }),
            Update::Event(event) => self.apply_event(event),
            Update::Rooms(rooms) => rooms.into_iter().for_each(|r| self.merge_room(r)),
            Update::Status(status) => self.status = *status,
            Update::Session(session) => self.merge_session(session),
            Update::EndedAll { ended } => {
                self.notice(format!("Locked: {ended} session(s) ended"), false)
            }
            Update::Fingerprint(fp) => self.show_fingerprint(fp),
            Update::FingerprintUnavailable { peer, reason } => {
                self.verification = Some(Verification {
                    peer,
                    own_fingerprint: String::new(),
                    peer_fingerprint: String::new(),
                    sas: String::new(),
                    trust: otrd_proto::v1::Trust::Unspecified,
                    previous_fingerprint: String::new(),
                    unavailable: Some(reason),
                })
            }
            Update::Failed { action, message } => {
                self.notice(format!("Could not {action}: {message}"), true)
            }
        }
    }

    /// A fresh start from the daemon's current picture.
    fn reset(&mut self, snapshot: Snapshot) {
        self.link = Some(Link::Connected);
        self.status = snapshot.status;
        self.peers.clear();
        self.chats.clear();
        self.invites.clear();
        self.verification = None;
        snapshot.rooms.into_iter().for_each(|r| self.merge_room(r));
        snapshot
            .sessions
            .into_iter()
            .for_each(|s| self.merge_session(s));
        let still_there = self
            .selected
            .as_ref()
            .is_some_and(|s| self.peers.contains_key(s));
        if !still_there {
            self.selected = self.peers.keys().next().cloned();
        }
    }

    fn peer_mut(&mut self, name: &str, room_id: &str) -> &mut PeerView {
        let peer = self
            .peers
            .entry(name.to_owned())
            .or_insert_with(|| PeerView::new(name, room_id));
        if peer.room_id.is_empty() {
            peer.room_id = room_id.to_owned();
        }
        peer
    }

    /// Whether a snapshot taken at event `seq` is older than the state already shown for `peer`
    /// (a state event with a greater `seq` was applied). `seq` 0 (a daemon that does not say)
    /// is never judged stale.
    fn stale(&self, peer: &str, seq: u64) -> bool {
        seq != 0 && self.peers.get(peer).is_some_and(|p| seq < p.state_seq)
    }

    fn merge_room(&mut self, room: Room) {
        let (presence, state, mode) = (room.presence(), room.state(), room.mode());
        let stale = self.stale(&room.peer, room.seq);
        let known = self.peers.get(&room.peer).map(|p| p.state);
        if !stale && known != Some(state) {
            self.set_state(&room.peer, &room.room_id, state, String::new());
        }
        let peer = self.peer_mut(&room.peer, &room.room_id);
        // Presence is not an event: the latest answer is the best there is.
        peer.presence = presence;
        if stale {
            return;
        }
        peer.state_seq = peer.state_seq.max(room.seq);
        if mode != otrd_proto::v1::Mode::Unspecified {
            peer.mode = mode;
        }
    }

    fn merge_session(&mut self, s: Session) {
        if self.stale(&s.peer, s.seq) {
            // An answer (StartSession, AcceptSession, …) that raced with newer state events.
            return;
        }
        let (state, mode, trust) = (s.state(), s.mode(), s.trust());
        self.set_state(&s.peer, &s.room_id, state, s.detail);
        let peer = self.peer_mut(&s.peer, &s.room_id);
        peer.state_seq = peer.state_seq.max(s.seq);
        peer.mode = mode;
        peer.trust = trust;
        peer.warning = s.warning;
    }

    fn set_state(&mut self, name: &str, room_id: &str, state: SessionState, detail: String) {
        let peer = self.peer_mut(name, room_id);
        if peer.state != state {
            peer.alarm = None;
        }
        peer.state = state;
        peer.detail = detail;
        if state == SessionState::Requested {
            // A window opened after the invitation came still prompts (the event is not replayed).
            let room = room_id.to_owned();
            self.invites
                .entry(name.to_owned())
                .or_insert_with(|| Invite {
                    peer: name.to_owned(),
                    room_id: room,
                    mode: otrd_proto::v1::Mode::Unspecified,
                    expires_ms: 0,
                    seq: 0,
                });
        } else {
            self.invites.remove(name);
        }
        if state == SessionState::Ended {
            // The daemon wiped the conversation; so does the window.
            self.chats.remove(name);
        }
    }

    /// Applies one WatchEvents event.
    pub fn apply_event(&mut self, event: Event) {
        let Some(kind) = event.kind else { return };
        match kind {
            Kind::Invitation(inv) => {
                let mode = inv.mode();
                // A new session offered beside a live one leaves the live one usable.
                let live =
                    self.peer_mut(&inv.peer, &inv.room_id).state == SessionState::Established;
                if !live {
                    self.set_state(
                        &inv.peer,
                        &inv.room_id,
                        SessionState::Requested,
                        String::new(),
                    );
                    self.peer_mut(&inv.peer, &inv.room_id).state_seq = event.seq;
                }
                self.invites.insert(
                    inv.peer.clone(),
                    Invite {
                        peer: inv.peer,
                        room_id: inv.room_id,
                        mode,
                        expires_ms: inv.expires_ms,
                        seq: event.seq,
                    },
                );
            }
            Kind::State(st) => {
                let (state, mode, trust) = (st.state(), st.mode(), st.trust());
                self.set_state(&st.peer, &st.room_id, state, st.detail);
                let peer = self.peer_mut(&st.peer, &st.room_id);
                peer.state_seq = peer.state_seq.max(event.seq);
                peer.warning = st.warning;
                if mode != otrd_proto::v1::Mode::Unspecified {
                    peer.mode = mode;
                }
                if trust != otrd_proto::v1::Trust::Unspecified {
                    peer.trust = trust;
                }
            }
            Kind::Message(mut m) => {
                let direction = m.direction();
                let line = ChatLine {
                    id: m.id,
                    direction,
                    text: Zeroizing::new(std::mem::take(&mut m.text)),
                    ts_ms: m.ts_ms,
                    delivery: if direction == Direction::Out {
                        Delivery::Pending
                    } else {
                        Delivery::Incoming
                    },
                };
                let unseen = self.selected.as_deref() != Some(m.peer.as_str()) && !event.replay;
                let peer = self.peer_mut(&m.peer, &m.room_id);
                if unseen && direction == Direction::In {
                    peer.unread += 1;
                }
                let chat = self.chats.entry(m.peer).or_default();
                if !chat
                    .iter()
                    .any(|l| l.id == line.id && l.direction == line.direction)
                {
                    chat.push(line);
                }
            }
            Kind::Delivered(d) => self.mark(&d.peer, &d.id, Delivery::Delivered),
            Kind::Error(e) => {
                if !e.id.is_empty() {
                    self.mark(&e.peer, &e.id, Delivery::Failed(e.message.clone()));
                }
                let who = if e.peer.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", e.peer)
                };
                self.notice(format!("{}{who}: {}", e.code, e.message), true);
            }
            Kind::Connection(c) => {
                self.status.connection = c.state;
                self.status.connection_detail = c.detail;
            }
            Kind::Alarm(a) => {
                self.notice(format!("Security alarm ({}): {}", a.peer, a.message), true);
                self.peer_mut(&a.peer, &a.room_id).alarm =
                    Some(format!("{}: {}", a.code, a.message));
            }
        }
    }

    fn mark(&mut self, peer: &str, id: &str, delivery: Delivery) {
        let lines = self.chats.get_mut(peer).into_iter().flatten();
        for line in lines.filter(|l| l.id == id && l.direction == Direction::Out) {
            line.delivery = delivery.clone();
        }
    }

    fn show_fingerprint(&mut self, fp: GetFingerprintResponse) {
        let trust = fp.trust();
        if let Some(peer) = self.peers.get_mut(&fp.peer) {
            if trust != otrd_proto::v1::Trust::Unspecified {
                peer.trust = trust;
            }
        }
        self.verification = Some(Verification {
            peer: fp.peer,
            own_fingerprint: fp.own_fingerprint,
            peer_fingerprint: fp.peer_fingerprint,
            sas: fp.sas,
            trust,
            previous_fingerprint: fp.previous_fingerprint,
            unavailable: None,
        });
    }

    fn notice(&mut self, text: String, error: bool) {
        self.notices.push_back(Notice { text, error });
        while self.notices.len() > MAX_NOTICES {
            self.notices.pop_front();
        }
    }

    // ---- What the window shows ----

    /// The link to the daemon.
    pub fn link(&self) -> Link {
        self.link.clone().unwrap_or(Link::Connecting)
    }

    /// The daemon's status as last seen (account, server link).
    pub fn status(&self) -> &GetStatusResponse {
        &self.status
    }

    /// The daemon's link to the Rocket.Chat server.
    pub fn server_link(&self) -> ConnectionState {
        self.status.connection()
    }

    /// Every peer, by name.
    pub fn peers(&self) -> impl Iterator<Item = &PeerView> {
        self.peers.values()
    }

    /// One peer.
    pub fn peer(&self, name: &str) -> Option<&PeerView> {
        self.peers.get(name)
    }

    /// The peer whose conversation is open.
    pub fn selected(&self) -> Option<&PeerView> {
        self.selected.as_ref().and_then(|s| self.peers.get(s))
    }

    /// Opens a peer's conversation.
    pub fn select(&mut self, name: &str) {
        if let Some(peer) = self.peers.get_mut(name) {
            peer.unread = 0;
            self.selected = Some(name.to_owned());
        }
    }

    /// A peer's conversation, oldest first.
    pub fn chat(&self, peer: &str) -> &[ChatLine] {
        self.chats.get(peer).map_or(&[], Vec::as_slice)
    }

    /// Invitations waiting for an answer.
    pub fn invitations(&self) -> impl Iterator<Item = &Invite> {
        self.invites.values()
    }

    /// Hides an invitation once the user answered it (the state event confirms later).
    pub fn answered(&mut self, peer: &str) {
        self.invites.remove(peer);
    }

    /// The verification dialog, when open.
    pub fn verification(&self) -> Option<&Verification> {
        self.verification.as_ref()
    }

    /// Closes the verification dialog.
    pub fn close_verification(&mut self) {
        self.verification = None;
    }

    /// Notices, oldest first.
    pub fn notices(&self) -> impl Iterator<Item = &Notice> {
        self.notices.iter()
    }

    /// Clears the notices.
    pub fn clear_notices(&mut self) {
        self.notices.clear();
    }
}
