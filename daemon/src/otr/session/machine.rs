//! The [`Session`] type: its fields, the dispatcher, the user commands and the shared helpers for
//! changing state. Incoming signals live in `signals.rs`, chat messages and timers in
//! `messages.rs`.

use super::replay::Bounded;
use super::scheme::{self, Answered, Cipher, NativeAnswer, OwnOffer, PeerOffer};
use super::{system, Input, Output, RoomContext, SessionError, SessionPolicy, SignalKind};
use crate::engine::{
    EventKind, Mode, SchemePreference, SessionInfo, SessionState, TransportKind, Trust,
};
use rand::{CryptoRng, RngCore};
use serde_json::{json, Value};

/// What front-ends show for a legacy session between two otrd daemons.
pub const LEGACY_WARNING: &str = "legacy — the server could read this";

/// How many ids, tokens, ciphertexts and keys each replay memory keeps.
pub(super) const MEMORY: usize = 4096;

/// Our handshake in flight.
#[derive(Debug)]
pub(super) struct OwnHandshake {
    pub(super) offer: OwnOffer,
    /// The exact payload sent (resent unchanged after a reconnect).
    pub(super) payload: Value,
    pub(super) sent_ms: i64,
    pub(super) refresh: bool,
}

/// The peer's handshake waiting for the user.
#[derive(Debug)]
pub(super) struct Invitation {
    pub(super) offer: PeerOffer,
    pub(super) expires_ms: i64,
    /// The sequence number of the invitation event that showed it (set by the engine), which an
    /// accept may name so that it cannot land on an offer the user never saw.
    pub(super) seq: Option<u64>,
}

/// A message we sent that the peer has not acknowledged yet.
#[derive(Debug)]
pub(super) struct Pending {
    pub(super) id: String,
    /// The ciphertext, resent unchanged.
    pub(super) msg: String,
    /// The token the peer's ack must carry (not secret: it only proves delivery).
    pub(super) ack_token: String,
    pub(super) sent_ms: i64,
    pub(super) last_sent_ms: i64,
    pub(super) resends: u32,
    /// Key epoch it was sealed under; only messages of the live epoch are resent.
    pub(super) epoch: u32,
}

/// A peer message we accepted, remembered to spot replays and to re-ack resends.
#[derive(Debug)]
pub(super) struct Received {
    pub(super) msg: String,
    pub(super) ts_ms: i64,
    pub(super) ack_token: String,
    pub(super) reacks: u32,
}

/// One DM room's OTR session. See the module docs for the contract.
#[derive(Debug)]
pub struct Session {
    pub(super) ctx: RoomContext,
    pub(super) policy: SessionPolicy,
    pub(super) state: SessionState,
    pub(super) since_ms: i64,
    pub(super) detail: String,
    pub(super) initiator: bool,
    pub(super) mode: Option<Mode>,
    /// Stock `isFirstOTR`: the initiator of a fresh session posts `user_joined_otr` once.
    pub(super) first_otr: bool,
    pub(super) own: Option<OwnHandshake>,
    pub(super) invitation: Option<Invitation>,
    pub(super) cipher: Option<Cipher>,
    /// The key before the last refresh: messages and acks in flight across a refresh still open.
    pub(super) previous: Option<Cipher>,
    pub(super) epoch: u32,
    /// When the state became `Timeout` (keys of a late answer are kept for a grace period).
    pub(super) timed_out_ms: Option<i64>,
    pub(super) pending: Vec<Pending>,
    pub(super) delivered: Bounded<String, ()>,
    pub(super) received: Bounded<String, Received>,
    pub(super) seen_ack_tokens: Bounded<String, ()>,
    /// Every envelope we produced (messages and acks), to recognise reflections.
    pub(super) own_ciphertexts: Bounded<String, ()>,
    /// Peer public keys (normalised JWK) and when first seen: duplicates vs. replays.
    pub(super) peer_keys: Bounded<String, i64>,
    /// Our native answer, waiting for the initiator's confirm frame (not yet established, or a
    /// refresh / new session beside a live one).
    pub(super) native_answer: Option<NativeAnswer>,
    /// Why the last answer to our handshake (or confirmation of our answer) was refused; the
    /// handshake keeps waiting for the genuine one and its timeout reports this.
    pub(super) rejected_answer: Option<String>,
    /// When `previous` became the pre-refresh keys (they go soon after, see `control.rs`).
    pub(super) previous_since_ms: Option<i64>,
    /// Per signal kind: the last `forged_signal` alarm and how many were held back since.
    pub(super) forged_alarms: std::collections::HashMap<&'static str, super::control::AlarmBucket>,
    /// An established legacy session although both ends run otrd (see [`Session::warning`]).
    pub(super) exposed: bool,
    /// Peer messages that did not open while our answer to its new keys waited for their
    /// confirmation: opened once it comes, reported when it does not.
    pub(super) stashed: Vec<Value>,
}

impl Session {
    /// A session in `NotStarted`.
    pub fn new(ctx: RoomContext, policy: SessionPolicy) -> Self {
        Self {
            ctx,
            policy,
            state: SessionState::NotStarted,
            since_ms: 0,
            detail: String::new(),
            initiator: false,
            mode: None,
            first_otr: true,
            own: None,
            invitation: None,
            cipher: None,
            previous: None,
            epoch: 0,
            timed_out_ms: None,
            pending: Vec::new(),
            delivered: Bounded::new(MEMORY),
            received: Bounded::new(MEMORY),
            seen_ack_tokens: Bounded::new(MEMORY),
            own_ciphertexts: Bounded::new(MEMORY),
            peer_keys: Bounded::new(MEMORY),
            native_answer: None,
            rejected_answer: None,
            previous_since_ms: None,
            forged_alarms: std::collections::HashMap::new(),
            exposed: false,
            stashed: Vec::new(),
        }
    }

    /// Feeds one input; returns what the engine must do, or why a user command was refused.
    pub fn handle(
        &mut self,
        input: Input,
        now_ms: i64,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Vec<Output>, SessionError> {
        let mut out = Vec::new();
        match input {
            Input::Start { scheme } => self.start(scheme, now_ms, rng, &mut out)?,
            Input::Accept { seq } => self.accept(seq, now_ms, rng, &mut out)?,
            Input::Decline => self.decline(now_ms, &mut out)?,
            Input::Refresh => self.refresh(now_ms, rng, &mut out)?,
            Input::End { notify_peer } => self.end(notify_peer, now_ms, &mut out)?,
            Input::Send { text } => self.send(text, now_ms, rng, &mut out)?,
            Input::Signal { kind, payload } => {
                self.on_signal(kind, &payload, now_ms, rng, &mut out)
            }
            Input::RoomMessage { message } => self.on_room_message(&message, now_ms, rng, &mut out),
            Input::SendResult { id, ok, detail } => self.on_send_result(&id, ok, &detail, &mut out),
            Input::Reconnected => self.on_reconnected(now_ms, &mut out),
            Input::PeerPresence { online } => {
                if !online {
                    self.on_peer_offline(now_ms, &mut out);
                }
            }
            Input::Tick => self.on_tick(now_ms, &mut out),
        }
        Ok(out)
    }

    /// Current state.
    pub fn state(&self) -> SessionState {
        self.state
    }

    /// Scheme of the live (or last) session.
    pub fn mode(&self) -> Option<Mode> {
        self.mode
    }

    /// For an established native session: the peer's identity fingerprint (to check against the
    /// trust store) and the short authentication string.
    pub fn native_peer(&self) -> Option<(crate::otr::native::Fingerprint, String)> {
        self.cipher.as_ref().and_then(Cipher::native_peer)
    }

    /// Updates whether the peer is known to speak native (the trust store learns it during a
    /// session, after this session's policy was made).
    pub fn set_peer_known_native(&mut self, known: bool) {
        self.policy.peer_known_native = known;
    }

    /// Turns auto-accept off while the screen is locked, and back on (as configured) after.
    pub fn set_auto_accept(&mut self, auto: bool) {
        self.policy.auto_accept = auto;
    }

    /// Updates `require_native` (the config may have been reloaded since this session began).
    pub fn set_require_native(&mut self, required: bool) {
        self.policy.require_native = required;
    }

    /// Records the sequence number of the invitation event the engine published for the pending
    /// invitation.
    pub fn set_invitation_seq(&mut self, seq: u64) {
        if let Some(inv) = self.invitation.as_mut() {
            inv.seq.get_or_insert(seq);
        }
    }

    /// The room this session belongs to.
    pub fn context(&self) -> &RoomContext {
        &self.ctx
    }

    /// A snapshot for ListSessions.
    pub fn info(&self) -> SessionInfo {
        SessionInfo {
            room_id: self.ctx.room_id.clone(),
            peer: self.ctx.peer_username.clone(),
            peer_user_id: self.ctx.peer_uid.clone(),
            state: self.state,
            mode: self.mode,
            transport: self.transport(),
            trust: self.trust(),
            initiator: self.initiator,
            since_ms: self.since_ms,
            detail: self.detail.clone(),
            pending_messages: u32::try_from(self.pending.len()).unwrap_or(u32::MAX),
            invitation_seq: self.invitation.as_ref().and_then(|i| i.seq),
            warning: self.warning(),
            // Stamped by the engine, which owns the event log (engine::inbound::session_info).
            seq: 0,
            backlog: Default::default(),
        }
    }

    /// Set while the session is legacy although both ends run otrd (the peer has spoken native
    /// before, or the server has no stock OTR): the server could read it.
    /// Judged at each state change (so it only changes while an input is handled, where the
    /// engine's status tally sees it).
    pub fn warning(&self) -> Option<String> {
        self.exposed().then(|| LEGACY_WARNING.to_owned())
    }

    /// Whether [`Session::warning`] is set, without building it (the engine's status tally asks
    /// on every input).
    pub fn exposed(&self) -> bool {
        self.exposed
    }

    fn transport(&self) -> Option<TransportKind> {
        // Both schemes' frames go out as the machine's `SendMessage`/`Signal` outputs, i.e. the
        // OTR relay; other transports are the engine's business.
        match self.mode {
            Some(Mode::Legacy | Mode::Native) => Some(TransportKind::OtrRelay),
            None => None,
        }
    }

    fn trust(&self) -> Trust {
        // Legacy keys are unauthenticated: never more than unverified. Native identities are
        // judged by the engine against the trust store (see `native_peer`).
        match (self.state, self.mode) {
            (SessionState::Established, Some(_)) => Trust::Unverified,
            _ => Trust::Unknown,
        }
    }

    // ---- user commands ------------------------------------------------------------------

    fn start(
        &mut self,
        pref: SchemePreference,
        now: i64,
        rng: &mut (impl RngCore + CryptoRng),
        out: &mut Vec<Output>,
    ) -> Result<(), SessionError> {
        if matches!(
            self.state,
            SessionState::Established | SessionState::Establishing | SessionState::Requested
        ) {
            return Err(self.already_active());
        }
        let pref = self.acceptable_preference(pref)?;
        let offer = scheme::offer(pref, self.policy.native.as_ref(), rng)?;
        self.drop_keys();
        self.initiator = true;
        self.mode = None;
        self.send_handshake(offer, false, now, out);
        self.set_state(
            SessionState::Establishing,
            format!("waiting for {} to accept", self.ctx.peer_username),
            now,
            out,
        );
        Ok(())
    }

    /// The pending invitation a user command may act on: one waiting for an answer, or a new
    /// native session offered beside the live one.
    fn pending_invitation(&self) -> Result<&Invitation, SessionError> {
        match (&self.invitation, self.state) {
            (Some(inv), SessionState::Requested | SessionState::Timeout) => Ok(inv),
            (Some(inv), SessionState::Established) if self.live_native() => Ok(inv),
            _ => Err(SessionError::NoInvitation(self.ctx.peer_username.clone())),
        }
    }

    fn accept(
        &mut self,
        seq: Option<u64>,
        now: i64,
        rng: &mut (impl RngCore + CryptoRng),
        out: &mut Vec<Output>,
    ) -> Result<(), SessionError> {
        let invitation = self.pending_invitation()?;
        if let Some(asked) = seq.filter(|s| invitation.seq != Some(*s)) {
            return Err(SessionError::InvitationReplaced {
                peer: self.ctx.peer_username.clone(),
                asked,
                current: invitation.seq,
                mode: scheme::offered_mode(&invitation.offer).as_str(),
            });
        }
        if scheme::offered_mode(&invitation.offer) == Mode::Legacy {
            // Judged again: the policy may have changed since it was shown.
            if let super::control::LegacyVerdict::Refuse { message, .. } =
                self.legacy_verdict("offers", false)
            {
                return Err(SessionError::LegacyRefused(message));
            }
        }
        let offer = invitation.offer.clone();
        self.answer_offer(&offer, now, rng, out)
    }

    fn decline(&mut self, now: i64, out: &mut Vec<Output>) -> Result<(), SessionError> {
        self.pending_invitation()?;
        out.push(self.signal(SignalKind::Deny, None));
        if self.live_native() {
            // Declining a new session offered beside the live one leaves the live one alone.
            self.invitation = None;
            return Ok(());
        }
        self.teardown(SessionState::Declined, "declined by you".into(), now, out);
        Ok(())
    }

    /// `pref` as this session's policy allows it: only native under `require_native` or where
    /// the stock scheme cannot be genuine (8.x), where `auto` means native.
    fn acceptable_preference(
        &self,
        pref: SchemePreference,
    ) -> Result<SchemePreference, SessionError> {
        let native_only = self.policy.require_native || self.policy.legacy_impossible;
        match pref {
            SchemePreference::Legacy if native_only => Err(SessionError::LegacyRefused(format!(
                "only the native scheme is acceptable with {} ({})",
                self.ctx.peer_username,
                if self.policy.legacy_impossible {
                    "this server has no stock OTR"
                } else {
                    "require_native is set"
                }
            ))),
            SchemePreference::Auto if native_only && self.policy.native.is_some() => {
                Ok(SchemePreference::Native)
            }
            other => Ok(other),
        }
    }

    fn refresh(
        &mut self,
        now: i64,
        rng: &mut (impl RngCore + CryptoRng),
        out: &mut Vec<Output>,
    ) -> Result<(), SessionError> {
        if self.state != SessionState::Established {
            return Err(SessionError::NotEstablished {
                peer: self.ctx.peer_username.clone(),
                state: self.state.as_str(),
            });
        }
        if self.live_native() {
            // A native re-key: fresh 3DH under the live session's proof; the session stays
            // established and usable until the new keys are confirmed (control.rs).
            if self.own.is_some() || self.native_answer.is_some() {
                return Err(SessionError::RefreshUnderway(
                    self.ctx.peer_username.clone(),
                ));
            }
            let offer = scheme::offer(SchemePreference::Native, self.policy.native.as_ref(), rng)?;
            self.send_handshake(offer, true, now, out);
            self.set_state(
                SessionState::Established,
                "refreshing keys".into(),
                now,
                out,
            );
            return Ok(());
        }
        let offer = scheme::offer(SchemePreference::Legacy, self.policy.native.as_ref(), rng)?;
        // The old key stays readable for what is already in flight (for a while, control.rs).
        self.previous = self.cipher.take();
        self.previous_since_ms = Some(now);
        self.initiator = true;
        self.first_otr = false;
        self.send_handshake(offer, true, now, out);
        out.push(Output::SystemMessage {
            kind: system::USER_REQUESTED_OTR_KEY_REFRESH,
        });
        self.set_state(
            SessionState::Establishing,
            "refreshing keys".into(),
            now,
            out,
        );
        Ok(())
    }

    fn end(
        &mut self,
        notify_peer: bool,
        now: i64,
        out: &mut Vec<Output>,
    ) -> Result<(), SessionError> {
        match self.state {
            SessionState::NotStarted | SessionState::Ended => {
                return Err(SessionError::NotActive(self.ctx.peer_username.clone()))
            }
            // Ending while invited is a refusal: the initiator learns it at once.
            SessionState::Requested => out.push(self.signal(SignalKind::Deny, None)),
            SessionState::Established
            | SessionState::Establishing
            | SessionState::Timeout
            | SessionState::Error
                if notify_peer =>
            {
                out.push(self.signal(SignalKind::End, None))
            }
            _ => {}
        }
        self.first_otr = true;
        self.teardown(SessionState::Ended, "ended by you".into(), now, out);
        Ok(())
    }

    // ---- shared helpers -----------------------------------------------------------------

    /// Answers `offer` (user accept, auto-accept, or a refresh): new keys, `acknowledge`, established.
    pub(super) fn answer_offer(
        &mut self,
        offer: &PeerOffer,
        now: i64,
        rng: &mut (impl RngCore + CryptoRng),
        out: &mut Vec<Output>,
    ) -> Result<(), SessionError> {
        let answered = scheme::answer(offer, self.policy.native.as_ref(), &self.ctx, now, rng)?;
        let live = self.live_native();
        self.invitation = None;
        self.own = None;
        self.timed_out_ms = None;
        self.native_answer = None;
        self.rejected_answer = None;
        let (cipher, payload) = match answered {
            Answered::Native {
                pending,
                mut payload,
            } if live => {
                // Beside the live session, which stays usable until the initiator confirms.
                if offer.refresh {
                    self.prove(SignalKind::Acknowledge, &mut payload);
                }
                self.native_answer = Some(pending);
                out.push(Output::Signal {
                    kind: SignalKind::Acknowledge,
                    payload,
                });
                return Ok(());
            }
            Answered::Legacy { .. } if live => {
                return Err(SessionError::LegacyRefused(format!(
                    "a native session with {} is live; a stock-scheme answer would downgrade it",
                    self.ctx.peer_username
                )));
            }
            Answered::Legacy { cipher, payload } => (cipher, payload),
            Answered::Native { pending, payload } => {
                // Not established until the initiator proves it holds the same keys.
                self.initiator = false;
                self.mode = None;
                self.native_answer = Some(pending);
                out.push(Output::DeleteOldMessages);
                out.push(Output::Signal {
                    kind: SignalKind::Acknowledge,
                    payload,
                });
                let detail = format!("waiting for {} to confirm the keys", self.ctx.peer_username);
                self.set_state(SessionState::Establishing, detail, now, out);
                return Ok(());
            }
        };
        self.initiator = false;
        self.mode = Some(cipher.mode());
        self.cipher = Some(cipher);
        self.epoch += 1;
        out.push(Output::DeleteOldMessages);
        out.push(Output::Signal {
            kind: SignalKind::Acknowledge,
            payload,
        });
        let detail = if offer.refresh {
            "keys refreshed"
        } else {
            "accepted"
        };
        self.set_state(SessionState::Established, detail.into(), now, out);
        if offer.refresh {
            out.push(Output::SystemMessage {
                kind: system::USER_KEY_REFRESHED_SUCCESSFULLY,
            });
        }
        Ok(())
    }

    fn send_handshake(&mut self, offer: OwnOffer, refresh: bool, now: i64, out: &mut Vec<Output>) {
        let mut payload = match self.signal(SignalKind::Handshake, Some(offer.legacy.public_jwk()))
        {
            Output::Signal { payload, .. } => payload,
            _ => Value::Null,
        };
        if let Value::Object(map) = &mut payload {
            // Stock clients omit `refresh` on a first start (absent, not false).
            if refresh {
                map.insert("refresh".into(), Value::Bool(true));
            }
            if let Some(ext) = &offer.ext {
                map.insert("otrd".into(), ext.clone());
            }
        }
        if self.live_native() {
            // A native refresh: proven by the live session; the live session's messages on
            // the server are not deleted (they may still be in flight).
            self.prove(SignalKind::Handshake, &mut payload);
        } else {
            out.push(Output::DeleteOldMessages);
        }
        out.push(Output::Signal {
            kind: SignalKind::Handshake,
            payload: payload.clone(),
        });
        self.own = Some(OwnHandshake {
            offer,
            payload,
            sent_ms: now,
            refresh,
        });
        self.timed_out_ms = None;
        self.rejected_answer = None;
    }

    /// A signalling output from us: `{roomId, userId}` plus `publicKey` when given, plus the
    /// `otrd` end proof for a native session's `end`.
    pub(super) fn signal(&self, kind: SignalKind, public_jwk: Option<&str>) -> Output {
        let mut payload = json!({ "roomId": self.ctx.room_id, "userId": self.ctx.my_uid });
        if let (Some(k), Value::Object(map)) = (public_jwk, &mut payload) {
            map.insert("publicKey".into(), Value::String(k.to_owned()));
        }
        // A native session's `end` carries proof that it comes from us (see `Cipher::end_proof`).
        // A peer that has not switched to our refreshed keys yet checks the `prev` proof.
        if kind == SignalKind::End {
            let proof = |c: &Option<Cipher>| {
                c.as_ref()
                    .and_then(|c| c.end_proof(&self.ctx.room_id, &self.ctx.my_uid))
            };
            if let (Some(Value::Object(mut m)), Value::Object(map)) =
                (proof(&self.cipher), &mut payload)
            {
                if let Some(Value::Object(prev)) = proof(&self.previous) {
                    if let Some(t) = prev.get("end") {
                        m.insert("prev".into(), t.clone());
                    }
                }
                map.insert("otrd".into(), Value::Object(m));
            }
        }
        Output::Signal { kind, payload }
    }

    pub(super) fn set_state(
        &mut self,
        state: SessionState,
        detail: String,
        now: i64,
        out: &mut Vec<Output>,
    ) {
        self.state = state;
        self.since_ms = now;
        self.detail = detail;
        self.exposed = state == SessionState::Established
            && self.mode == Some(Mode::Legacy)
            && (self.policy.peer_known_native || self.policy.legacy_impossible);
        if state == SessionState::Timeout {
            self.timed_out_ms = Some(now);
        }
        out.push(Output::Event(EventKind::State {
            peer: self.ctx.peer_username.clone(),
            room_id: self.ctx.room_id.clone(),
            state,
            mode: self.mode,
            transport: self.transport(),
            trust: self.trust(),
            detail: self.detail.clone(),
            warning: self.warning(),
            backlog: None,
        }));
    }

    /// Leaves the session in a terminal `state`: keys wiped, pending messages reported failed,
    /// old OTR messages deleted (as the stock `reset()` does).
    pub(super) fn teardown(
        &mut self,
        state: SessionState,
        detail: String,
        now: i64,
        out: &mut Vec<Output>,
    ) {
        self.drop_keys();
        self.fail_pending(&format!("the session {}", detail_for_failure(state)), out);
        out.push(Output::DeleteOldMessages);
        self.set_state(state, detail, now, out);
    }

    /// Forgets every key and offer (they zeroize on drop).
    pub(super) fn drop_keys(&mut self) {
        self.own = None;
        self.invitation = None;
        self.cipher = None;
        self.previous = None;
        self.previous_since_ms = None;
        self.timed_out_ms = None;
        self.native_answer = None;
        self.rejected_answer = None;
        self.stashed.clear();
    }

    /// A security alarm for front-ends (`key_confirmation_failed`, `downgrade`, ...).
    pub(super) fn alarm(&self, code: &str, message: String) -> Output {
        tracing::warn!(room = %self.ctx.room_id, code, "OTR security alarm");
        Output::Event(EventKind::Alarm {
            peer: self.ctx.peer_username.clone(),
            room_id: self.ctx.room_id.clone(),
            code: code.to_owned(),
            message,
        })
    }

    pub(super) fn error_event(&self, code: &str, message: String, id: &str) -> Output {
        Output::Event(EventKind::Error {
            peer: self.ctx.peer_username.clone(),
            room_id: self.ctx.room_id.clone(),
            code: code.to_owned(),
            message,
            id: id.to_owned(),
        })
    }

    fn already_active(&self) -> SessionError {
        SessionError::AlreadyActive {
            peer: self.ctx.peer_username.clone(),
            state: self.state.as_str(),
        }
    }
}

fn detail_for_failure(state: SessionState) -> &'static str {
    match state {
        SessionState::Declined => "was declined",
        SessionState::Error => "failed",
        _ => "ended before delivery was confirmed",
    }
}
