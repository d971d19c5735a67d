//! Front-end commands: each is answered on its own reply channel, never by blocking the loop
//! (resolving a username to its DM is handed to a task and finished in `on_internal`).

use super::core::{Engine, Internal};
use super::handle::{Command, SentMessage};
use super::held::AfterResolve;
use super::types::*;
use crate::config::DowngradePolicy;
use crate::otr::session::{self, Input, RoomContext, Session, SessionPolicy};
use tokio::sync::oneshot;

type Reply = oneshot::Sender<Result<SessionInfo, EngineError>>;

impl Engine {
    pub(super) fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Status(r) => {
                let status = self.status();
                self.reply(r, status);
            }
            Command::ListRooms(r) => {
                let rooms = self.list_rooms();
                self.reply(r, rooms);
            }
            Command::ListSessions(r) => {
                let sessions = self.list_sessions();
                self.reply(r, sessions);
            }
            Command::Start {
                peer,
                scheme,
                reply,
            } => self.start(peer, scheme, reply),
            Command::Accept(peer, seq, r) => {
                let answer = self
                    .require_unlocked()
                    .and_then(|()| self.check_memory_policy())
                    .and_then(|()| self.user_input(&peer, Input::Accept { seq }));
                self.reply(r, answer);
            }
            Command::Decline(peer, r) => {
                let answer = self.user_input(&peer, Input::Decline);
                self.reply(r, answer);
            }
            Command::Refresh(peer, r) => {
                let answer = self.user_input(&peer, Input::Refresh);
                self.reply(r, answer);
            }
            Command::End(peer, r) => {
                let answer = self.user_input(&peer, Input::End { notify_peer: true });
                self.reply(r, answer);
            }
            Command::EndAll(r) => {
                let ended = self.end_all();
                self.reply(r, ended);
            }
            Command::Lock(reason, r) => {
                let ended = self.lock(reason);
                self.reply(r, ended);
            }
            Command::Unlock(r) => {
                let was_locked = self.unlock();
                self.reply(r, was_locked);
            }
            Command::Send { peer, text, reply } => self.on_send(peer, text, reply),
            Command::Watch {
                include_scrollback,
                reply,
            } => {
                let attached = self.log.attach(include_scrollback);
                self.reply(reply, attached);
            }
            Command::Fingerprint(peer, r) => {
                let answer = self.fingerprint(peer.as_ref());
                self.reply(r, answer);
            }
            Command::Trust(peer, decision, r) => {
                let answer = self.decide_key(&peer, &decision);
                self.reply(r, answer);
            }
            Command::SubmitCode(code, r) => self.on_submit_code(code, r),
        }
    }

    /// The attempt is a server round trip: it runs beside the engine loop, not in it.
    fn on_submit_code(
        &mut self,
        code: crate::secure::SecretString,
        reply: tokio::sync::oneshot::Sender<Result<String, EngineError>>,
    ) {
        let Some(client) = self.client.clone() else {
            let e =
                EngineError::Unavailable("this daemon runs without a Rocket.Chat server".into());
            self.reply(reply, Err(e));
            return;
        };
        tokio::spawn(async move {
            let outcome = client
                .submit_code(code)
                .await
                .map_err(EngineError::FailedPrecondition);
            let _ = reply.send(outcome);
        });
    }

    fn list_rooms(&self) -> Result<Vec<RoomInfo>, EngineError> {
        self.require_login()?;
        Ok(self
            .rooms
            .all()
            .into_iter()
            .map(|r| {
                let s = self.sessions.get(&r.room_id);
                RoomInfo {
                    room_id: r.room_id.clone(),
                    peer: r.peer_username.clone(),
                    peer_user_id: r.peer_uid.clone(),
                    presence: r.presence,
                    state: s.map_or(SessionState::NotStarted, Session::state),
                    mode: s.and_then(Session::mode),
                    seq: self.log.last_seq(),
                }
            })
            .collect())
    }

    fn list_sessions(&self) -> Vec<SessionInfo> {
        let mut out: Vec<SessionInfo> = self
            .sessions
            .values()
            .filter(|s| s.state() != SessionState::NotStarted)
            .filter_map(|s| self.session_info(&s.context().room_id))
            .collect();
        out.sort_by(|a, b| a.peer.cmp(&b.peer));
        out
    }

    /// Errors unless logged in; says why in the user's terms.
    pub(super) fn require_login(&self) -> Result<&crate::rocketchat::SessionInfo, EngineError> {
        if self.client.is_none() {
            return Err(EngineError::Unavailable(
                "this daemon runs without a Rocket.Chat server".into(),
            ));
        }
        self.me
            .as_ref()
            .filter(|_| self.connection.0 == ConnectionState::Connected)
            .ok_or_else(|| {
                EngineError::Unavailable(format!(
                    "not connected to {} ({}: {})",
                    self.cfg.config.server.url,
                    self.connection.0.as_str(),
                    self.connection.1
                ))
            })
    }

    fn start(&mut self, peer: PeerRef, scheme: SchemePreference, reply: Reply) {
        if let Err(e) = self.require_unlocked() {
            self.reply(reply, Err(e));
            return;
        }
        let me = match self.require_login() {
            Ok(me) => me,
            Err(e) => {
                self.reply(reply, Err(e));
                return;
            }
        };
        // Without the 7.x relay (8.x, or OTR_Enable off) only otrd peers can be reached, over
        // paths A/B once a probe found one (engine/realtime.rs).
        let realtime = !me.server.otr_relay;
        if let Some(room_id) = self.room_id_of(&peer) {
            if realtime {
                self.start_probing(&room_id, scheme, Some(reply));
            } else {
                let answer = self.start_in_room(&room_id, scheme);
                self.start_answered(&room_id, Some(reply), answer);
            }
            return;
        }
        let PeerRef::Username(username) = peer else {
            let err = EngineError::NotFound(format!("{peer} is not a direct-message room of ours"));
            self.reply(reply, Err(err));
            return;
        };
        self.spawn_resolve(username, AfterResolve::Start { scheme, reply });
    }

    pub(super) fn start_in_room(
        &mut self,
        room_id: &str,
        scheme: SchemePreference,
    ) -> Result<SessionInfo, EngineError> {
        self.require_unlocked()?;
        self.check_memory_policy()?;
        self.drive_user(room_id, Input::Start { scheme })
    }

    /// Opens (or creates) the DM with `username` off the engine task; `then` runs with the result
    /// (Internal::Resolved). Without a connection there is nothing to ask.
    pub(super) fn spawn_resolve(&self, username: String, then: AfterResolve) {
        let Some(client) = self.client.clone() else {
            return;
        };
        let tx = self.internal_tx.clone();
        tokio::spawn(async move {
            let result = client
                .open_direct_room(&username)
                .await
                .map_err(|e| e.to_string());
            let _ = tx.send(Internal::Resolved {
                username,
                result,
                then,
            });
        });
    }

    pub(super) fn end_all(&mut self) -> u32 {
        // First, so that no held message is sent while sessions end, and no pending Start
        // brings a session back after the lock.
        self.fail_all_held("every session was ended (EndAllSessions or the screen lock)");
        // A lock is a reseed: what the generator's state held before it says nothing of after.
        self.rng.reseed();
        self.cancel_probes();
        self.parked.clear();
        let live: Vec<(String, SessionState)> = self
            .sessions
            .iter()
            .map(|(id, s)| (id.clone(), s.state()))
            .filter(|(_, state)| {
                matches!(
                    state,
                    SessionState::Established
                        | SessionState::Establishing
                        | SessionState::Requested
                )
            })
            .collect();
        let mut ended = 0;
        for (room_id, state) in live {
            // A pending invitation is declined (the peer is told); anything live is ended.
            let input = if state == SessionState::Requested {
                Input::Decline
            } else {
                Input::End { notify_peer: true }
            };
            if self.drive_user(&room_id, input).is_ok() {
                ended += 1;
            }
        }
        self.log.wipe_all();
        ended
    }

    /// The screen locked: ends everything as [`Engine::end_all`] does, then stays locked until
    /// [`Engine::unlock`] — no Start, Accept or auto-accept (every session's policy says so), and
    /// the watermark makes message events from before now undeliverable to watchers that have
    /// not read them yet.
    pub(super) fn lock(&mut self, reason: String) -> u32 {
        let ended = self.end_all();
        for session in self.sessions.values_mut() {
            session.set_auto_accept(false);
        }
        self.lock_watermark = self.log.last_seq();
        if self.lock.is_none() {
            tracing::info!(%reason, ended, "locked: no session starts until the unlock");
            self.lock = Some(LockState {
                reason,
                since_ms: super::core::now_ms(),
            });
        }
        self.status_dirty = true;
        ended
    }

    /// The screen unlocked: sessions may start again and auto-accept is back as configured.
    pub(super) fn unlock(&mut self) -> bool {
        let Some(lock) = self.lock.take() else {
            return false;
        };
        tracing::info!(reason = %lock.reason, "unlocked");
        let memory_ok = self.check_memory_policy().is_ok();
        for session in self.sessions.values_mut() {
            let peer = &session.context().peer_username;
            let auto = self.cfg.config.auto_accept(peer) && memory_ok;
            session.set_auto_accept(auto);
        }
        self.status_dirty = true;
        true
    }

    /// Errors while a screen lock is in force.
    pub(super) fn require_unlocked(&self) -> Result<(), EngineError> {
        match &self.lock {
            None => Ok(()),
            Some(lock) => Err(EngineError::FailedPrecondition(format!(
                "the screen is locked ({}): no OTR session starts or is accepted until it is                  unlocked (the desktop's unlock, or `otrctl unlock`)",
                lock.reason
            ))),
        }
    }

    /// SendMessage to a peer without `require_otr`: fails closed unless established.
    pub(super) fn send(
        &mut self,
        peer: &PeerRef,
        text: crate::secure::SecretString,
    ) -> Result<SentMessage, EngineError> {
        let room_id = self.room_id_of(peer).ok_or_else(|| {
            EngineError::FailedPrecondition(format!(
                "no OTR session with {peer}; start one first (nothing was sent)"
            ))
        })?;
        self.send_in_room(&room_id, peer, text)
    }

    /// Seals `text` in the room's session and queues it (fails closed unless established).
    pub(super) fn send_in_room(
        &mut self,
        room_id: &str,
        peer: &PeerRef,
        text: crate::secure::SecretString,
    ) -> Result<SentMessage, EngineError> {
        let room_id = room_id.to_owned();
        self.check_not_held(&room_id, peer)?;
        let outputs = self.feed(&room_id, Input::Send { text }).ok_or_else(|| {
            EngineError::FailedPrecondition(format!(
                "no OTR session with {peer}; start one first (nothing was sent)"
            ))
        })??;
        let sent = session::sent_message(&outputs);
        self.perform(&room_id, outputs);
        let (id, ts_ms) =
            sent.ok_or_else(|| EngineError::Internal("the message was not queued".into()))?;
        Ok(SentMessage { id, room_id, ts_ms })
    }

    /// A user command on an existing room's session.
    fn user_input(&mut self, peer: &PeerRef, input: Input) -> Result<SessionInfo, EngineError> {
        let room_id = self
            .room_id_of(peer)
            .filter(|id| self.sessions.contains_key(id))
            .ok_or_else(|| {
                EngineError::FailedPrecondition(format!("there is no OTR session with {peer}"))
            })?;
        self.drive_user(&room_id, input)
    }

    /// Feeds a user command to a room's session (created if needed) and performs its outputs.
    fn drive_user(&mut self, room_id: &str, input: Input) -> Result<SessionInfo, EngineError> {
        self.ensure_session(room_id)?;
        let outputs = self
            .feed(room_id, input)
            .ok_or_else(|| EngineError::Internal("session vanished".into()))??;
        self.perform(room_id, outputs);
        self.session_info(room_id)
            .ok_or_else(|| EngineError::Internal("session vanished".into()))
    }

    /// Creates the room's session (and outbox) on first use.
    pub(super) fn ensure_session(&mut self, room_id: &str) -> Result<(), EngineError> {
        if let Some(peer) = self
            .sessions
            .get(room_id)
            .map(|s| s.context().peer_username.clone())
        {
            // The session outlives its runs: a peer first seen native during this daemon's run
            // must count as known-native for the next handshake, or a downgrade goes unnoticed.
            let known = self.knows_native(room_id);
            let require_native = self.cfg.config.require_native(&peer);
            if let Some(session) = self.sessions.get_mut(room_id) {
                session.set_peer_known_native(known);
                session.set_require_native(require_native);
            }
            return Ok(());
        }
        let me = self.require_login()?;
        let room = self.rooms.get(room_id).ok_or_else(|| {
            EngineError::NotFound(format!(
                "room {room_id} is not a 1:1 direct message of ours"
            ))
        })?;
        // Auto-accept creates keys too: not while memory cannot be locked under the refuse policy.
        // And never while the screen is locked.
        let auto_accept = self.cfg.config.auto_accept(&room.peer_username)
            && self.check_memory_policy().is_ok()
            && self.lock.is_none();
        let mut policy = SessionPolicy::new(
            auto_accept,
            (self.cfg.config.policy.delivery_timeout_secs as i64).saturating_mul(1000),
        );
        policy.native = self.identity.native.clone();
        policy.peer_known_native = self.knows_native(room_id);
        policy.refuse_downgrade = self.cfg.config.policy.downgrade == DowngradePolicy::Refuse;
        policy.require_native = self.cfg.config.require_native(&room.peer_username);
        if !me.server.otr_relay {
            // Paths A/B: no `Message_MaxAllowedSize` (large messages are fragmented, reassembly
            // is bounded at 512 KiB), and anyone sharing a room with us can write on path B, so
            // a frame that does not decrypt is dropped instead of ending the session.
            policy.max_message_chars = 256 * 1024;
            policy.decrypt_failure_ends_session = false;
            // 8.x has no stock OTR: a stock-scheme offer or answer here is forged or stripped.
            policy.legacy_impossible = true;
        }
        let ctx = RoomContext {
            room_id: room.room_id.clone(),
            my_uid: me.user_id.clone(),
            peer_uid: room.peer_uid.clone(),
            peer_username: room.peer_username.clone(),
        };
        self.sessions
            .insert(room_id.to_owned(), Session::new(ctx, policy));
        Ok(())
    }

    /// The room a peer reference names, if we know it.
    pub(super) fn room_id_of(&self, peer: &PeerRef) -> Option<String> {
        match peer {
            PeerRef::Username(u) => self.rooms.by_username(u).map(|r| r.room_id.clone()),
            PeerRef::RoomId(id) => self.rooms.get(id).map(|r| r.room_id.clone()),
        }
    }
}

#[cfg(test)]
mod lock_tests {
    use super::super::core::{spawn, EngineConfig};
    use super::super::types::{EngineError, PeerRef, SchemePreference};
    use crate::config::Config;

    fn locked_refusal(e: EngineError) -> String {
        match e {
            EngineError::FailedPrecondition(m) if m.contains("the screen is locked") => m,
            other => panic!("expected the lock's refusal, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn between_lock_and_unlock_nothing_starts_or_is_accepted() {
        let (engine, _task) = spawn(EngineConfig::offline(Config::default()));
        assert_eq!(engine.status().await.expect("status").lock, None);
        assert!(!engine.unlock().await.expect("unlock"), "was not locked");

        assert_eq!(engine.lock("otrctl lock").await.expect("lock"), 0);
        let status = engine.status().await.expect("status");
        assert_eq!(
            status.lock.map(|l| l.reason).as_deref(),
            Some("otrctl lock")
        );
        let bob = || PeerRef::Username("bob".into());
        let start = engine.start(bob(), SchemePreference::Auto).await;
        let msg = locked_refusal(start.expect_err("start refused"));
        assert!(
            msg.contains("otrctl lock") && msg.contains("otrctl unlock"),
            "{msg}"
        );
        locked_refusal(
            engine
                .accept(bob(), None)
                .await
                .expect_err("accept refused"),
        );
        // A second lock keeps the first one's reason.
        engine.lock("sleep").await.expect("lock");
        let status = engine.status().await.expect("status");
        assert_eq!(
            status.lock.map(|l| l.reason).as_deref(),
            Some("otrctl lock")
        );

        assert!(engine.unlock().await.expect("unlock"));
        assert_eq!(engine.status().await.expect("status").lock, None);
        // Past the lock now: this offline engine fails for its own reason.
        let start = engine.start(bob(), SchemePreference::Auto).await;
        assert!(
            matches!(start, Err(EngineError::Unavailable(_))),
            "{start:?}"
        );
    }
}
