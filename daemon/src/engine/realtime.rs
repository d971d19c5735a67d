//! The engine's hooks for the realtime paths (PROTOCOL.md §12) on a server without the 7.x OTR
//! relay: choosing a path for Start (probe A, then B), answering the peer's probes, turning
//! inbound envelopes into session inputs, and building a room's realtime outbox. The path
//! logic itself lives in `transport::realtime`; sessions never see which path carried a frame.

use super::core::{now_ms, Engine};
use super::held::StartReply;
use super::types::*;
use crate::transport::realtime::{envelope::Item, probe, Inbound, KnownRoom, Path};
use crate::transport::Outbox;
use serde_json::Value;

/// A Start waiting for the peer's daemon to answer a probe.
pub(super) struct PendingStart {
    path: Path,
    nonce: String,
    deadline_ms: i64,
    scheme: SchemePreference,
    /// The StartSession waiting, if an RPC asked (a held message's Start has none).
    reply: Option<StartReply>,
}

impl Engine {
    /// True when the server has no 7.x relay: otrd ↔ otrd then travels over paths A and B.
    pub(super) fn realtime_mode(&self) -> bool {
        self.me.as_ref().is_some_and(|m| !m.server.otr_relay)
    }

    /// Start on such a server: native only, after a probe found a path.
    pub(super) fn start_probing(
        &mut self,
        room_id: &str,
        scheme: SchemePreference,
        reply: Option<StartReply>,
    ) {
        let peer = self
            .rooms
            .get(room_id)
            .map(|r| r.peer_username.clone())
            .unwrap_or_default();
        if scheme == SchemePreference::Legacy {
            let why = self
                .me
                .as_ref()
                .and_then(|m| m.server.reason.clone())
                .unwrap_or_else(|| "this server has no OTR relay".into());
            let err = EngineError::FailedPrecondition(format!(
                "cannot start the legacy scheme with {peer}: {why}, and the stock scheme needs the \
                 Rocket.Chat ≤ 7.x OTR relay; start with the native scheme (nothing was sent)"
            ));
            self.start_answered(room_id, reply, Err(err));
            return;
        }
        if self.identity.native.is_none() {
            let err = EngineError::FailedPrecondition(format!(
                "cannot start OTR with {peer}: this server only carries the native scheme and this \
                 daemon has no native identity (no state directory); nothing was sent"
            ));
            self.start_answered(room_id, reply, Err(err));
            return;
        }
        if let Err(e) = self.check_memory_policy() {
            self.start_answered(room_id, reply, Err(e));
            return;
        }
        if self.probes.contains_key(room_id) {
            // Held messages wait for that probe; only an RPC is told.
            if let Some(reply) = reply {
                let err = EngineError::FailedPrecondition(format!(
                    "already looking for a path to {peer}'s daemon"
                ));
                self.reply(reply, Err(err));
            }
            return;
        }
        let nonce = probe::nonce(&mut self.rng);
        self.send_control(room_id, Path::A, probe::request(&nonce));
        let deadline_ms = now_ms() + probe::WAIT_MS;
        self.probes.insert(
            room_id.to_owned(),
            PendingStart {
                path: Path::A,
                nonce,
                deadline_ms,
                scheme,
                reply,
            },
        );
    }

    /// Abandons every pending Start (EndAllSessions, the screen lock): none may bring a session
    /// back after it.
    pub(super) fn cancel_probes(&mut self) {
        self.fail_probes("every session was ended (EndAllSessions or the screen lock)");
    }

    /// Abandons every pending Start; the StartSession waiting for one is told `why`.
    pub(super) fn fail_probes(&mut self, why: &str) {
        let probes: Vec<(String, PendingStart)> = self.probes.drain().collect();
        for (room_id, p) in probes {
            if let Some(reply) = p.reply {
                let peer = self
                    .rooms
                    .get(&room_id)
                    .map(|r| r.peer_username.clone())
                    .unwrap_or_default();
                let err = EngineError::FailedPrecondition(format!(
                    "{why} before {peer}'s daemon answered; nothing was started"
                ));
                self.reply(reply, Err(err));
            }
        }
    }

    /// Moves unanswered probes on to the next path, or fails their Start.
    pub(super) fn on_probe_tick(&mut self) {
        let now = now_ms();
        let due: Vec<String> = self
            .probes
            .iter()
            .filter(|(_, p)| p.deadline_ms <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for room_id in due {
            let Some(mut p) = self.probes.remove(&room_id) else {
                continue;
            };
            match probe::next(p.path) {
                Some(next) => {
                    p.nonce = probe::nonce(&mut self.rng);
                    p.path = next;
                    p.deadline_ms = now + probe::WAIT_MS;
                    self.send_control(&room_id, next, probe::request(&p.nonce));
                    self.probes.insert(room_id, p);
                }
                None => {
                    let peer = self
                        .rooms
                        .get(&room_id)
                        .map(|r| r.peer_username.clone())
                        .unwrap_or_default();
                    tracing::info!(room = %room_id, "no otrd answered on path A or B");
                    let err = EngineError::FailedPrecondition(probe::no_otrd_reason(&peer));
                    self.start_answered(&room_id, p.reply, Err(err));
                }
            }
        }
    }

    /// Takes an event from path A or B; false when it is not one.
    pub(super) fn on_realtime_event(
        &mut self,
        collection: &str,
        event_name: &str,
        args: &[Value],
    ) -> bool {
        if !self.realtime_mode() {
            return false;
        }
        let Some(my_uid) = self.me.as_ref().map(|m| m.user_id.clone()) else {
            return false;
        };
        let rooms = &self.rooms;
        let room_of = |id: &str| {
            rooms.get(id).map(|r| KnownRoom {
                room_id: r.room_id.clone(),
                peer_uid: r.peer_uid.clone(),
                peer_username: r.peer_username.clone(),
            })
        };
        let result = self
            .realtime
            .accept(collection, event_name, args, &my_uid, room_of, now_ms());
        let inbound = match result {
            None => return false,
            Some(Err(why)) => {
                tracing::debug!(event = event_name, reason = %why, "realtime frame dropped");
                return true;
            }
            Some(Ok(list)) => list,
        };
        for item in inbound {
            match item {
                Inbound::Session {
                    room_id,
                    path,
                    run,
                    input,
                } => {
                    self.outbox_follows(&room_id, path);
                    if self.ensure_session(&room_id).is_ok() && self.drive(&room_id, input) {
                        // It decrypted: the run is the peer's, and a flood in its name on B
                        // must not crowd it out of the room's budget.
                        self.realtime.prove_run(&room_id, &run);
                    }
                }
                Inbound::ProbeRequest {
                    room_id,
                    path,
                    nonce,
                } => self.on_probe_request(&room_id, path, &nonce),
                Inbound::ProbeAnswered {
                    room_id,
                    path,
                    nonce,
                } => self.on_probe_answered(&room_id, path, &nonce),
            }
        }
        true
    }

    /// The peer's daemon (or anyone writing on B in its name) asks whether `path` works.
    fn on_probe_request(&mut self, room_id: &str, path: Path, nonce: &str) {
        if let Some(ours) = self.probes.get(room_id) {
            // Never answered while our own probe for the room is pending: the answer would move
            // the room's path under our Start. A probe on the very path we are probing means
            // both Starts happened at once; it tells what an answer would (their daemon writes
            // there), and going on as if answered lets the sessions' glare rule keep one offer
            // — otherwise each side would ignore the other's probe until both gave up. Forged
            // on B, it can at worst start our handshake early on a path it then fails on.
            if ours.path == path {
                self.probe_succeeded(room_id, path);
            }
            return;
        }
        let live = self.sessions.get(room_id).is_some_and(|s| {
            matches!(
                s.state(),
                SessionState::Established | SessionState::Establishing
            )
        });
        // A live session keeps its path: a probe (anyone can write on B) must not redirect it.
        // Otherwise the peer's choice is ours.
        if live && self.realtime.path(room_id) != Some(path) {
            return;
        }
        if !self.realtime.may_answer_probe(room_id, path, now_ms()) {
            tracing::debug!(room = %room_id, transport = path.kind().as_str(), "probe not answered: one was answered moments ago");
            return;
        }
        self.realtime.set_path(room_id, path);
        self.outbox_follows(room_id, path);
        self.send_control(room_id, path, probe::answer(nonce));
    }

    fn on_probe_answered(&mut self, room_id: &str, path: Path, nonce: &str) {
        let matches = self
            .probes
            .get(room_id)
            .is_some_and(|p| p.path == path && p.nonce == nonce);
        if matches {
            self.probe_succeeded(room_id, path);
        }
    }

    /// Our pending probe for `room_id` found `path`: the Start waiting for it goes on there.
    fn probe_succeeded(&mut self, room_id: &str, path: Path) {
        let Some(p) = self.probes.remove(room_id) else {
            return;
        };
        self.realtime.set_path(room_id, path);
        self.outbox_follows(room_id, path);
        tracing::info!(room = %room_id, transport = path.kind().as_str(), "path to the peer's otrd found");
        // Native only on these paths (the stock scheme has no peer here).
        let _ = p.scheme;
        let answer = self.start_in_room(room_id, SchemePreference::Native);
        self.start_answered(room_id, p.reply, answer);
    }

    /// Drops a room's outbox when its path changed, so the next frame goes the new way.
    fn outbox_follows(&mut self, room_id: &str, path: Path) {
        if self.outbox_paths.get(room_id).is_some_and(|p| *p != path) {
            self.outboxes.remove(room_id);
            self.outbox_paths.remove(room_id);
        }
    }

    /// Starts the task performing the relays' calls, once logged in; false without a login.
    fn ensure_relay_task(&mut self) -> bool {
        if self.relay_task.is_some() {
            return true;
        }
        let (Some(client), Some(me)) = (self.client.clone(), self.me.as_ref()) else {
            return false;
        };
        let task = self
            .relays
            .start(client, me.user_id.clone(), me.username.clone());
        self.relay_task = Some(task);
        true
    }

    /// Stops the relays' task and drops every queued frame (the server's capabilities changed:
    /// what was queued was built for the old server).
    pub(super) fn stop_relays(&mut self) {
        if let Some(task) = self.relay_task.take() {
            task.stop();
        }
        self.relays.clear();
    }

    /// A room's realtime outbox, once its path is known (`None` before: nothing is ever sent
    /// through the 7.x methods on such a server).
    pub(super) fn realtime_outbox(&mut self, room_id: &str) -> Option<Outbox> {
        let path = self.realtime.path(room_id)?;
        if self.rooms.get(room_id).is_none() || !self.ensure_relay_task() {
            return None;
        }
        self.outbox_paths.insert(room_id.to_owned(), path);
        Some(Outbox::realtime(self.relays.outbox(room_id, path)))
    }

    /// Sends one probe or probe answer (paced like everything else on that method, ahead of
    /// messages: a peer waits for it with a timeout).
    fn send_control(&mut self, room_id: &str, path: Path, item: Item) {
        if self.rooms.get(room_id).is_none() || !self.ensure_relay_task() {
            return;
        }
        self.relays.outbox(room_id, path).push_control(item);
    }

    /// The transport a room's session uses, as shown to front-ends.
    pub(super) fn transport_of(
        &self,
        room_id: &str,
        session_says: Option<TransportKind>,
    ) -> Option<TransportKind> {
        if self.realtime_mode() {
            session_says.and(self.realtime.path(room_id).map(Path::kind))
        } else {
            session_says
        }
    }

    /// What GetStatus lists as otrd-to-otrd transports on this server.
    pub(super) fn native_transports(&self) -> Vec<TransportKind> {
        match &self.me {
            Some(m) if m.server.otr_relay => vec![TransportKind::OtrRelay],
            Some(_) if self.identity.native.is_some() => {
                vec![TransportKind::UserActivity, TransportKind::VideoConference]
            }
            _ => Vec::new(),
        }
    }
}
