//! Everything that reaches the engine from outside a front-end: the connection's events (login,
//! signalling, room messages, presence), results of spawned work, outbox reports, and the tick.
//! Also where a session's outputs are performed.

use super::core::{Engine, Internal};
use super::held::AfterResolve;
use super::parked::Parking;
use super::types::*;
use crate::otr::session::{Input, Output, SignalKind};
use crate::rocketchat::{self, parse_presence_event, ClientEvent, DirectRoom};
use crate::transport::{Frame, Outbox, Report, RoomAddr};
use serde_json::{json, Value};
use std::time::Instant;

impl Engine {
    pub(super) fn on_client_event(&mut self, ev: ClientEvent) {
        match ev {
            ClientEvent::Connection { state, detail } => {
                let pending = (state == ConnectionState::TwoFactorRequired)
                    .then(|| self.client.as_ref().and_then(|c| c.code_wanted()))
                    .flatten()
                    .map(|(m, _)| m);
                if pending != self.pending_two_factor {
                    self.pending_two_factor = pending;
                    self.status_dirty = true;
                }
                if self.connection.0 != state || self.connection.1 != detail {
                    self.set_connection(state, detail.clone());
                    self.emit(EventKind::Connection { state, detail });
                }
            }
            ClientEvent::LoggedIn(info) => self.on_logged_in(info),
            ClientEvent::Stream {
                collection,
                event_name,
                args,
            } => self.on_stream(&collection, &event_name, args),
            ClientEvent::SubscriptionLost { name, error, .. } => {
                tracing::warn!(subscription = %name, %error, "subscription lost");
                self.emit(EventKind::Error {
                    peer: String::new(),
                    room_id: String::new(),
                    code: "subscription_lost".into(),
                    message: format!("the server ended the `{name}` subscription: {error}"),
                    id: String::new(),
                });
            }
        }
    }

    fn on_logged_in(&mut self, info: rocketchat::SessionInfo) {
        let first = self.me.is_none();
        let changed = self
            .me
            .as_ref()
            .is_some_and(|old| super::capabilities::changed(&old.server, &info.server));
        let uid = info.user_id.clone();
        let relay = info.server.otr_relay;
        tracing::info!(user = %info.username, server_version = %info.server.version, otr_relay = relay, "logged in");
        self.set_me(info);
        if self.connection.0 != ConnectionState::Connected {
            self.set_connection(ConnectionState::Connected, String::new());
            self.emit(EventKind::Connection {
                state: ConnectionState::Connected,
                detail: String::new(),
            });
        }
        if first {
            // Subscriptions are remembered by the client and re-issued after every reconnect.
            let Some(client) = self.client.clone() else {
                return;
            };
            let tx = self.internal_tx.clone();
            let generation = self.transport_subs.generation();
            tokio::spawn(async move {
                // The relay's signalling, or path B's inbound side (no 7.x relay: otrd ↔ otrd
                // over paths A and B); redone if the capabilities change (engine/capabilities.rs).
                let ids = super::capabilities::follow_user_stream(&client, &uid, relay)
                    .await
                    .into_iter()
                    .collect();
                let _ = tx.send(Internal::TransportSubscribed { generation, ids });
                for event in ["subscriptions-changed", "rooms-changed"] {
                    if let Err(e) = client
                        .subscribe(
                            "stream-notify-user",
                            vec![json!(format!("{uid}/{event}")), stream_opts()],
                        )
                        .await
                    {
                        tracing::debug!(error = %e, event, "cannot follow room changes");
                    }
                }
                let rooms = client.list_direct_rooms().await.map_err(|e| e.to_string());
                let _ = tx.send(Internal::RoomsLoaded(rooms));
            });
        } else if changed {
            self.on_capabilities_changed();
        } else {
            self.reload_rooms();
            if let Some(client) = &self.client {
                // Before the sessions resend: what left on the old connection may be lost.
                self.relays.connection(client.stats().logins);
            }
            let ids: Vec<String> = self.sessions.keys().cloned().collect();
            for room_id in ids {
                self.drive(&room_id, Input::Reconnected);
            }
        }
    }

    pub(super) fn reload_rooms(&self) {
        let Some(client) = self.client.clone() else {
            return;
        };
        let tx = self.internal_tx.clone();
        tokio::spawn(async move {
            let rooms = client.list_direct_rooms().await.map_err(|e| e.to_string());
            let _ = tx.send(Internal::RoomsLoaded(rooms));
        });
    }

    fn on_stream(&mut self, collection: &str, event_name: &str, args: Vec<Value>) {
        if self.on_realtime_event(collection, event_name, &args) {
            return;
        }
        let Some(my_uid) = self.me.as_ref().map(|m| m.user_id.clone()) else {
            return;
        };
        match collection {
            "stream-notify-user" if event_name == format!("{my_uid}/otr") => self.on_signal(args),
            "stream-notify-user"
                if event_name.ends_with("/subscriptions-changed")
                    || event_name.ends_with("/rooms-changed") =>
            {
                self.reload_rooms()
            }
            "stream-room-messages" => {
                let Some(message) = args.into_iter().next() else {
                    return;
                };
                if message.get("t").and_then(Value::as_str) != Some("otr") {
                    return;
                }
                // The room is the stream's event name; the message's own `rid` must agree.
                if message.get("rid").and_then(Value::as_str) != Some(event_name) {
                    tracing::debug!(
                        room = event_name,
                        "room message with a mismatched rid ignored"
                    );
                    return;
                }
                if self.sessions.contains_key(event_name) {
                    self.drive(event_name, Input::RoomMessage { message });
                }
            }
            "stream-user-presence" => {
                if let Some((uid, presence)) = parse_presence_event(event_name, &args) {
                    self.on_presence(&uid, presence);
                }
            }
            _ => {}
        }
    }

    fn on_signal(&mut self, args: Vec<Value>) {
        let mut it = args.into_iter();
        let (Some(kind), Some(payload)) = (it.next(), it.next()) else {
            return;
        };
        let Some(kind) = kind.as_str().and_then(SignalKind::from_wire) else {
            return;
        };
        let Some(room_id) = payload
            .get("roomId")
            .and_then(Value::as_str)
            .map(str::to_owned)
        else {
            return;
        };
        if self.rooms.get(&room_id).is_none() || self.parked.holds_room(&room_id) {
            // A DM we have not loaded yet, or not a 1:1 DM of ours at all: the signal waits for
            // the DM list to tell (engine/parked.rs), and later ones for that room wait behind it
            // to keep their order. Other signals for known rooms never wait here: a room we
            // opened ourselves is known before its first signal can come back.
            match self.parked.park(&room_id, kind, payload, Instant::now()) {
                Parking::FirstForRoom => {
                    tracing::debug!(room = %room_id, kind = kind.as_str(), "signal for an unknown room parked; reloading DMs");
                    self.reload_rooms();
                }
                Parking::Queued => {}
                Parking::TooLarge => {
                    tracing::debug!(room = %room_id, kind = kind.as_str(), "oversized signal for an unknown room dropped");
                }
            }
            return;
        }
        self.signal_for_room(&room_id, kind, payload);
    }

    /// A signal for one of our DMs goes to its session, which checks who sent it.
    fn signal_for_room(&mut self, room_id: &str, kind: SignalKind, payload: Value) {
        if self.ensure_session(room_id).is_err() {
            return;
        }
        self.drive(room_id, Input::Signal { kind, payload });
    }

    /// Parked signals whose DM is now known and followed go to their sessions; expired ones go.
    fn replay_parked(&mut self) {
        let (rooms, following) = (&self.rooms, &self.following);
        let ready = self.parked.take_ready(Instant::now(), |r| {
            rooms.get(r).is_some() && !following.contains(r)
        });
        for (room_id, kind, payload) in ready {
            tracing::debug!(room = %room_id, kind = kind.as_str(), "parked signal delivered");
            self.signal_for_room(&room_id, kind, payload);
        }
    }

    fn on_presence(&mut self, uid: &str, presence: Presence) {
        let Some(room_id) = self.rooms.set_presence(uid, presence) else {
            return;
        };
        if self.sessions.contains_key(&room_id) {
            self.drive(
                &room_id,
                Input::PeerPresence {
                    online: presence != Presence::Offline,
                },
            );
        }
    }

    pub(super) fn on_internal(&mut self, msg: Internal) {
        match msg {
            Internal::RoomsLoaded(Ok(list)) => self.on_rooms(list),
            Internal::RoomsLoaded(Err(e)) => {
                tracing::warn!(error = %e, "cannot list direct-message rooms")
            }
            Internal::Resolved {
                username,
                result,
                then,
            } => self.on_resolved(&username, result, then),
            Internal::Presence(map) => {
                for (uid, p) in map {
                    self.on_presence(&uid, p);
                }
            }
            Internal::RoomsFollowed(ids) => {
                for id in &ids {
                    self.following.remove(id);
                }
                self.replay_parked();
            }
            Internal::TransportSubscribed { generation, ids } => {
                self.on_transport_subscribed(generation, ids)
            }
        }
    }

    /// A username's DM is known (or not): finish the Start or the held messages waiting for it.
    fn on_resolved(
        &mut self,
        username: &str,
        result: Result<DirectRoom, String>,
        then: AfterResolve,
    ) {
        let room = result.map(|room| {
            self.on_rooms(vec![room.clone()]);
            self.rooms.get(&room.room_id).map(|r| r.room_id.clone())
        });
        let (scheme, reply) = match then {
            AfterResolve::Held => return self.on_resolved_for_held(username, room),
            AfterResolve::Start { scheme, reply } => (scheme, reply),
        };
        match room {
            Ok(Some(room_id)) if self.realtime_mode() => {
                self.start_probing(&room_id, scheme, Some(reply))
            }
            Ok(Some(room_id)) => {
                let answer = self.start_in_room(&room_id, scheme);
                self.start_answered(&room_id, Some(reply), answer);
            }
            Ok(None) => {
                let err = EngineError::NotFound("that is not a 1:1 direct message".into());
                self.reply(reply, Err(err));
            }
            Err(e) => {
                let err = EngineError::NotFound(format!("cannot open a direct message: {e}"));
                self.reply(reply, Err(err));
            }
        }
    }

    /// Registers DMs, follows their message streams and their peers' presence.
    fn on_rooms(&mut self, list: Vec<DirectRoom>) {
        let Some(me) = self.me.clone() else { return };
        let mut new_rooms = Vec::new();
        for r in &list {
            if self
                .rooms
                .upsert(&me.user_id, &r.room_id, &r.uids, &r.usernames, &me.username)
                .is_some()
                && self.subscribed_rooms.insert(r.room_id.clone())
            {
                new_rooms.push(r.room_id.clone());
            }
        }
        let new_peers: Vec<String> = self
            .rooms
            .peer_uids()
            .into_iter()
            .filter(|u| self.followed_presence.insert(u.clone()))
            .collect();
        let Some(client) = self.client.clone() else {
            return;
        };
        self.following.extend(new_rooms.iter().cloned());
        // Signals parked for rooms that were already followed can go now; the new rooms' wait
        // for their subscriptions (Internal::RoomsFollowed).
        self.replay_parked();
        let tx = self.internal_tx.clone();
        let path_a = self.realtime_mode();
        let generation = self.transport_subs.generation();
        tokio::spawn(async move {
            let mut transport = Vec::new();
            for rid in &new_rooms {
                if let Err(e) = client
                    .subscribe("stream-room-messages", vec![json!(rid), stream_opts()])
                    .await
                {
                    tracing::warn!(room = %rid, error = %e, "cannot follow room messages");
                }
                // Path A's inbound side, per DM (no 7.x relay).
                if path_a {
                    transport.extend(super::capabilities::follow_path_a(&client, rid).await);
                }
            }
            if !transport.is_empty() {
                let _ = tx.send(Internal::TransportSubscribed {
                    generation,
                    ids: transport,
                });
            }
            if !new_rooms.is_empty() {
                let _ = tx.send(Internal::RoomsFollowed(new_rooms));
            }
            if !new_peers.is_empty() {
                let params = rocketchat::presence::follow_params(&new_peers, &[]);
                if let Err(e) = client.subscribe("stream-user-presence", params).await {
                    tracing::debug!(error = %e, "cannot follow presence");
                }
                if let Ok(map) = client.presence(&new_peers).await {
                    let _ = tx.send(Internal::Presence(map));
                }
            }
        });
    }

    pub(super) fn on_report(&mut self, report: Report) {
        match report {
            Report::MessageOutcome {
                room_id,
                id,
                ok,
                detail,
            } => {
                self.drive(&room_id, Input::SendResult { id, ok, detail });
            }
            Report::Backlog { room_id, backlog } => self.emit_backlog(&room_id, backlog),
            Report::FrameFailed {
                room_id,
                what,
                detail,
            } => {
                let peer = self
                    .rooms
                    .get(&room_id)
                    .map(|r| r.peer_username.clone())
                    .unwrap_or_default();
                self.emit(EventKind::Error {
                    peer,
                    room_id,
                    code: "frame_failed".into(),
                    message: format!("could not send the {what}: {detail}"),
                    id: String::new(),
                });
            }
        }
    }

    pub(super) fn on_tick(&mut self) {
        let ids: Vec<String> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.state() != SessionState::NotStarted)
            .map(|(id, _)| id.clone())
            .collect();
        for room_id in ids {
            self.drive(&room_id, Input::Tick);
        }
        self.on_probe_tick();
        self.expire_held();
    }

    /// Feeds a network or timer input to a room's session and performs its outputs.
    /// Returns whether the input proved to come from the peer: it decrypted under the session's
    /// keys (a message shown, or one of ours acknowledged).
    pub(super) fn drive(&mut self, room_id: &str, input: Input) -> bool {
        match self.feed(room_id, input) {
            Some(Ok(outputs)) => {
                let authentic = outputs.iter().any(|o| {
                    matches!(
                        o,
                        Output::Event(
                            EventKind::Message {
                                direction: Direction::In,
                                ..
                            } | EventKind::Delivered { .. }
                        )
                    )
                });
                self.perform(room_id, outputs);
                authentic
            }
            Some(Err(e)) => {
                tracing::debug!(room = %room_id, error = %e, "input refused");
                false
            }
            None => false,
        }
    }

    /// Performs a session's outputs in order: events to front-ends, frames to the room's outbox.
    pub(super) fn perform(&mut self, room_id: &str, outputs: Vec<Output>) {
        for output in outputs {
            let frame = match output {
                Output::Event(EventKind::State {
                    peer,
                    room_id: rid,
                    state,
                    mode,
                    transport,
                    detail,
                    warning,
                    backlog,
                    ..
                }) => {
                    if state == SessionState::Established && mode == Some(Mode::Native) {
                        self.observe_identity(room_id);
                    }
                    if state.is_terminal() && self.realtime_mode() {
                        // Messages still waiting for the relays' budget belong to a session the
                        // peer can no longer read (the session reported them failed).
                        self.relays.drop_messages(room_id);
                    }
                    let trust = self.trust_for(room_id).unwrap_or(Trust::Unverified);
                    let transport = self.transport_of(room_id, transport);
                    self.emit(EventKind::State {
                        peer,
                        room_id: rid,
                        state,
                        mode,
                        transport,
                        trust,
                        detail,
                        warning,
                        backlog,
                    });
                    continue;
                }
                Output::Event(kind @ EventKind::Invitation { .. }) => {
                    // An accept may name this seq: it must land on the offer the user saw.
                    let seq = self.emit(kind);
                    if let Some(session) = self.sessions.get_mut(room_id) {
                        session.set_invitation_seq(seq);
                    }
                    continue;
                }
                Output::Event(kind) => {
                    self.emit(kind);
                    continue;
                }
                Output::Signal { kind, payload } => Frame::Signal { kind, payload },
                Output::SendMessage { id, msg } => Frame::Message { id, msg },
                Output::SendAck { message, ack } => Frame::Ack { message, ack },
                Output::SystemMessage { kind } => Frame::System { kind },
                Output::DeleteOldMessages => Frame::DeleteOld,
            };
            self.outbox(room_id).map(|o| o.push(frame));
        }
        // A state change may be what messages held for this peer wait for (engine/held.rs).
        self.settle_held(room_id, None);
    }

    /// A session's snapshot with the trust the store gives its peer's identity.
    pub(super) fn session_info(&self, room_id: &str) -> Option<SessionInfo> {
        let mut info = self.sessions.get(room_id)?.info();
        info.transport = self.transport_of(room_id, info.transport);
        if self.realtime_mode() {
            info.backlog = self.relays.backlog(room_id);
        }
        if let Some(trust) = self.trust_for(room_id) {
            info.trust = trust;
        }
        info.seq = self.log.last_seq();
        Some(info)
    }

    /// Announces a session's current state again (after a trust decision).
    pub(super) fn emit_session_state(&mut self, room_id: &str, detail: &str) {
        let Some(info) = self.session_info(room_id) else {
            return;
        };
        self.emit(EventKind::State {
            peer: info.peer,
            room_id: info.room_id,
            state: info.state,
            mode: info.mode,
            transport: info.transport,
            trust: info.trust,
            detail: detail.to_owned(),
            warning: info.warning,
            backlog: None,
        });
    }

    /// Tells front-ends that a room's messages wait for the realtime relays' budget, or no
    /// longer do: a state event with the session's current state and the backlog.
    fn emit_backlog(&mut self, room_id: &str, backlog: Backlog) {
        let Some(info) = self.session_info(room_id) else {
            return;
        };
        // Only a live session's messages wait; an ended one's were reported failed with it.
        if info.state != SessionState::Established {
            return;
        }
        self.emit(EventKind::State {
            peer: info.peer,
            room_id: info.room_id,
            state: info.state,
            mode: info.mode,
            transport: info.transport,
            trust: info.trust,
            detail: backlog.describe(),
            warning: info.warning,
            backlog: Some(backlog),
        });
    }

    fn outbox(&mut self, room_id: &str) -> Option<&Outbox> {
        if !self.outboxes.contains_key(room_id) && self.realtime_mode() {
            // No 7.x relay: only paths A/B, and only once a path is chosen.
            let outbox = self.realtime_outbox(room_id)?;
            self.outboxes.insert(room_id.to_owned(), outbox);
        }
        if !self.outboxes.contains_key(room_id) {
            let client = self.client.clone()?;
            let room = self.rooms.get(room_id)?;
            let addr = RoomAddr {
                room_id: room.room_id.clone(),
                peer_uid: room.peer_uid.clone(),
            };
            self.outboxes.insert(
                room_id.to_owned(),
                Outbox::spawn(client, addr, self.reports_tx.clone()),
            );
        }
        self.outboxes.get(room_id)
    }
}

/// The second parameter of a stream subscription, as the current web client sends it.
pub(super) fn stream_opts() -> Value {
    json!({"useCollection": false, "args": []})
}
