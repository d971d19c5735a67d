//! Chat messages and acks (PROTOCOL.md §4), delivery tracking and timers.
//!
//! Outgoing: sealed only while `Established`; pending until an ack carrying its token comes back;
//! resent with the same id and ciphertext on reconnect and (bounded) on ticks; reported
//! `send_failed` past the delivery bound — never silently dropped. Incoming: checked against the
//! room, the sender, our own ciphertexts, the replay memory and the clock before it is shown and
//! acknowledged.

use super::machine::{Pending, Received, Session};
use super::{Output, SessionError};
use crate::engine::{Direction, EventKind, SessionState};
use crate::otr::ids;
use crate::otr::legacy::{AckPayload, InnerMessage};
use crate::secure::{LockedText, SecretBytes, SecretString};
use rand::{CryptoRng, RngCore};
use serde_json::{json, Map, Value};

/// How often a resent (identical) peer message is acknowledged again.
const MAX_REACKS: u32 = 3;

/// Most messages held while a confirmation of new keys is awaited (see `stashed`).
const STASH_MAX: usize = 32;

/// Which key opened an envelope.
#[derive(Clone, Copy)]
enum Which {
    Current,
    Previous,
}

impl Session {
    pub(super) fn send(
        &mut self,
        text: SecretString,
        now: i64,
        rng: &mut (impl RngCore + CryptoRng),
        out: &mut Vec<Output>,
    ) -> Result<(), SessionError> {
        let not_established = || SessionError::NotEstablished {
            peer: self.ctx.peer_username.clone(),
            state: self.state.as_str(),
        };
        if self.state != SessionState::Established {
            return Err(not_established());
        }
        if self.policy.require_native && self.mode != Some(crate::engine::Mode::Native) {
            return Err(SessionError::LegacyRefused(format!(
                "the session with {} is legacy and only native is acceptable (require_native);                  nothing was sent — end it and start a native one",
                self.ctx.peer_username
            )));
        }
        let Some(cipher) = self.cipher.as_mut() else {
            return Err(not_established());
        };
        let inner = InnerMessage {
            id: ids::message_id(rng),
            text,
            user_id: self.ctx.my_uid.clone(),
            ack: ids::ack_token(rng),
            ts_ms: now,
        };
        let crypto = |e: crate::otr::legacy::LegacyError| SessionError::Crypto(e.to_string());
        let plaintext = inner.to_plaintext().map_err(crypto)?;
        let msg = cipher.seal(&plaintext, rng).map_err(crypto)?;
        if msg.len() > self.policy.max_message_chars {
            return Err(SessionError::TooLong {
                chars: msg.len(),
                max: self.policy.max_message_chars,
            });
        }
        self.own_ciphertexts.insert(msg.clone(), ());
        self.pending.push(Pending {
            id: inner.id.clone(),
            msg: msg.clone(),
            ack_token: inner.ack.clone(),
            sent_ms: now,
            last_sent_ms: now,
            resends: 0,
            epoch: self.epoch,
        });
        out.push(Output::SendMessage {
            id: inner.id.clone(),
            msg,
        });
        out.push(Output::Event(EventKind::Message {
            peer: self.ctx.peer_username.clone(),
            room_id: self.ctx.room_id.clone(),
            direction: Direction::Out,
            text: LockedText::new(inner.text.expose()),
            id: inner.id,
            ts_ms: now,
        }));
        Ok(())
    }

    pub(super) fn on_room_message(
        &mut self,
        message: &Value,
        now: i64,
        rng: &mut (impl RngCore + CryptoRng),
        out: &mut Vec<Output>,
    ) {
        let Some(obj) = message.as_object() else {
            return;
        };
        if obj.get("t").and_then(Value::as_str) != Some("otr") {
            return;
        }
        let id = obj.get("_id").and_then(Value::as_str);
        let msg = obj.get("msg").and_then(Value::as_str);
        let sender = obj
            .get("u")
            .and_then(|u| u.get("_id"))
            .and_then(Value::as_str);
        let (Some(id), Some(msg), Some(sender)) = (id, msg, sender) else {
            out.push(self.error_event(
                "malformed_message",
                "an OTR message without _id, msg or u._id".into(),
                "",
            ));
            return;
        };
        if obj
            .get("rid")
            .and_then(Value::as_str)
            .is_some_and(|rid| rid != self.ctx.room_id)
        {
            out.push(self.error_event(
                "forged_event",
                "an OTR message for another room".into(),
                id,
            ));
            return;
        }
        let ack = obj.get("otrAck").and_then(Value::as_str).or_else(|| {
            obj.get("otr")
                .and_then(|o| o.get("ack"))
                .and_then(Value::as_str)
        });
        if let Some(ack) = ack {
            // Acks for the peer's messages are our own re-broadcast: nobody acks an ack.
            if sender == self.ctx.my_uid {
                self.on_ack(id, ack, out);
            }
            return;
        }
        if sender == self.ctx.my_uid {
            return; // the server's echo of our own message
        }
        if sender != self.ctx.peer_uid {
            out.push(self.error_event(
                "forged_event",
                "an OTR message from someone else than the peer".into(),
                id,
            ));
            return;
        }
        self.on_peer_message(obj, id, msg, now, rng, out);
    }

    fn on_ack(&mut self, id: &str, ack: &str, out: &mut Vec<Output>) {
        let Some(idx) = self.pending.iter().position(|p| p.id == id) else {
            // Already delivered (repeated re-broadcasts are normal) or already reported failed.
            return;
        };
        let payload = match self.open_any(ack) {
            Some((plain, _)) => AckPayload::parse(&plain).ok(),
            None => None,
        };
        let Some(payload) = payload else {
            out.push(self.error_event(
                "bad_ack",
                "an acknowledgement that does not decrypt".into(),
                id,
            ));
            return;
        };
        if payload.text != self.pending[idx].ack_token {
            out.push(self.error_event(
                "bad_ack",
                "an acknowledgement with the wrong token".into(),
                id,
            ));
            return;
        }
        let done = self.pending.remove(idx);
        self.delivered.insert(done.id.clone(), ());
        out.push(Output::Event(EventKind::Delivered {
            peer: self.ctx.peer_username.clone(),
            room_id: self.ctx.room_id.clone(),
            id: done.id,
        }));
    }

    fn on_peer_message(
        &mut self,
        obj: &Map<String, Value>,
        id: &str,
        msg: &str,
        now: i64,
        rng: &mut (impl RngCore + CryptoRng),
        out: &mut Vec<Output>,
    ) {
        if let Some(seen) = self.received.get(&id.to_owned()) {
            if seen.msg == msg {
                // The sender resent it (our ack got lost): acknowledge again, show it once.
                self.reack(obj, id, rng, out);
            } else {
                out.push(self.error_event(
                    "replayed_message",
                    "a message id that was already used".into(),
                    id,
                ));
            }
            return;
        }
        if self.own_ciphertexts.contains(&msg.to_owned()) {
            out.push(self.error_event(
                "reflected_message",
                "our own ciphertext presented as the peer's".into(),
                id,
            ));
            return;
        }
        if self.cipher.is_none() && self.previous.is_none() {
            out.push(self.error_event(
                "not_established",
                format!(
                    "a message from {} arrived while OTR is not established; it cannot be read",
                    self.ctx.peer_username
                ),
                id,
            ));
            return;
        }
        let Some((plain, which)) = self.open_any(msg) else {
            if self.live_native() && self.native_answer.is_some() && self.stashed.len() < STASH_MAX
            {
                // The peer switches to the new keys when it has our answer to its refresh (or
                // new session); its first messages under them can overtake its confirmation.
                // Held until the confirmation comes (or its timeout, then reported).
                self.stashed.push(Value::Object(obj.clone()));
                return;
            }
            // Anyone can post frames that fail in a native session (path B, a forger): reported
            // in bursts, so a flood cannot bury every front-end in errors.
            let also = if self.live_native() {
                self.report_allowed("decrypt_failed", now)
            } else {
                Some(String::new())
            };
            if let Some(also) = also {
                let why = format!(
                    "could not decrypt a message from {}{also}",
                    self.ctx.peer_username
                );
                out.push(self.error_event("decrypt_failed", why, id));
            }
            // A native frame that does not open is dropped (the ratchet is unchanged): anyone
            // can post one, so it must not end the session. Legacy keeps the stock behaviour.
            let native = matches!(self.cipher, Some(super::scheme::Cipher::Native { .. }));
            if self.state == SessionState::Established
                && self.policy.decrypt_failure_ends_session
                && !native
            {
                let detail = format!(
                    "could not decrypt a message from {}",
                    self.ctx.peer_username
                );
                self.teardown(SessionState::Error, detail, now, out);
            }
            return;
        };
        let Ok(inner) = InnerMessage::parse(&plain) else {
            out.push(self.error_event(
                "bad_message",
                "the decrypted message is not a chat message".into(),
                id,
            ));
            return;
        };
        if let Some((code, why)) = self.check_inner(&inner, id, now) {
            out.push(self.error_event(code, why, id));
            return;
        }
        self.received.insert(
            id.to_owned(),
            Received {
                msg: msg.to_owned(),
                ts_ms: inner.ts_ms,
                ack_token: inner.ack.clone(),
                reacks: 0,
            },
        );
        self.seen_ack_tokens.insert(inner.ack.clone(), ());
        out.push(Output::Event(EventKind::Message {
            peer: self.ctx.peer_username.clone(),
            room_id: self.ctx.room_id.clone(),
            direction: Direction::In,
            text: LockedText::new(inner.text.expose()),
            id: id.to_owned(),
            ts_ms: inner.ts_ms,
        }));
        if let Some(ack) = self.seal_ack(which, &inner.ack, rng) {
            out.push(Output::SendAck {
                message: ack_echo(obj, inner.ts_ms),
                ack,
            });
        }
    }

    /// The §9.1 checks on a decrypted message; `Some((code, why))` rejects it.
    fn check_inner(
        &self,
        inner: &InnerMessage,
        id: &str,
        now: i64,
    ) -> Option<(&'static str, String)> {
        if inner.id != id {
            return Some((
                "id_mismatch",
                "the inner id differs from the outer id".into(),
            ));
        }
        if inner.user_id == self.ctx.my_uid {
            return Some((
                "reflected_message",
                "one of our own messages presented as the peer's".into(),
            ));
        }
        if inner.user_id != self.ctx.peer_uid {
            return Some(("sender_mismatch", "the inner sender is not the peer".into()));
        }
        if self.seen_ack_tokens.contains(&inner.ack) {
            return Some((
                "replayed_message",
                "an ack token that was already used".into(),
            ));
        }
        // abs_diff: a hostile timestamp (i64::MIN) must not overflow.
        let skew = inner.ts_ms.abs_diff(now);
        if skew > self.policy.max_clock_skew_ms.unsigned_abs() {
            return Some((
                "clock_skew",
                format!("the sender's clock is {} s off", skew / 1000),
            ));
        }
        None
    }

    fn reack(
        &mut self,
        obj: &Map<String, Value>,
        id: &str,
        rng: &mut (impl RngCore + CryptoRng),
        out: &mut Vec<Output>,
    ) {
        let (ts_ms, token) = match self.received.get_mut(&id.to_owned()) {
            Some(seen) if seen.reacks < MAX_REACKS => {
                seen.reacks += 1;
                (seen.ts_ms, seen.ack_token.clone())
            }
            _ => return,
        };
        if let Some(ack) = self.seal_ack(Which::Current, &token, rng) {
            out.push(Output::SendAck {
                message: ack_echo(obj, ts_ms),
                ack,
            });
        }
    }

    /// Seals `{"text": token, "ack": <new token>}` under the key that opened the message.
    fn seal_ack(
        &mut self,
        which: Which,
        token: &str,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Option<String> {
        let payload = AckPayload {
            text: token.to_owned(),
            ack: ids::ack_token(rng),
        };
        let plain = payload.to_plaintext().ok()?;
        let cipher = match which {
            Which::Current => self.cipher.as_mut().or(self.previous.as_mut()),
            Which::Previous => self.previous.as_mut(),
        }?;
        let ack = cipher.seal(&plain, rng).ok()?;
        self.own_ciphertexts.insert(ack.clone(), ());
        Some(ack)
    }

    /// Opens with the live key, then with the one before the last refresh.
    fn open_any(&mut self, envelope: &str) -> Option<(SecretBytes, Which)> {
        if let Some(Ok(p)) = self.cipher.as_mut().map(|c| c.open(envelope)) {
            return Some((p, Which::Current));
        }
        if let Some(Ok(p)) = self.previous.as_mut().map(|c| c.open(envelope)) {
            return Some((p, Which::Previous));
        }
        None
    }

    pub(super) fn on_send_result(
        &mut self,
        id: &str,
        ok: bool,
        detail: &str,
        out: &mut Vec<Output>,
    ) {
        if ok {
            return;
        }
        if let Some(idx) = self.pending.iter().position(|p| p.id == id) {
            self.pending.remove(idx);
            out.push(self.error_event(
                "send_failed",
                format!("the server refused the message: {detail}"),
                id,
            ));
        }
    }

    pub(super) fn on_reconnected(&mut self, now: i64, out: &mut Vec<Output>) {
        let refreshing =
            self.state == SessionState::Established && self.own.as_ref().is_some_and(|o| o.refresh);
        if self.state == SessionState::Establishing || refreshing {
            if let Some(own) = &mut self.own {
                // Events in flight during the gap are lost; the same offer again is harmless.
                own.sent_ms = now;
                out.push(Output::Signal {
                    kind: super::SignalKind::Handshake,
                    payload: own.payload.clone(),
                });
            }
        }
        if self.state != SessionState::Established {
            return;
        }
        for p in self.pending.iter_mut().filter(|p| p.epoch == self.epoch) {
            p.last_sent_ms = now;
            out.push(Output::SendMessage {
                id: p.id.clone(),
                msg: p.msg.clone(),
            });
        }
    }

    pub(super) fn on_tick(&mut self, now: i64, out: &mut Vec<Output>) {
        let timeout = self.policy.handshake_timeout_ms;
        let grace = self.policy.late_answer_grace_ms;
        match self.state {
            SessionState::Establishing
                if self
                    .own
                    .as_ref()
                    .is_some_and(|o| now - o.sent_ms >= timeout) =>
            {
                if let Some(why) = self.rejected_answer.take() {
                    // Only refused (forged, stripped or stock) answers came: no session. A stock
                    // peer that thinks it is established is told.
                    out.push(self.signal(super::SignalKind::End, None));
                    let detail = format!("no acceptable answer within {} s: {why}", timeout / 1000);
                    self.teardown(SessionState::Error, detail, now, out);
                    return;
                }
                // Keys are kept (as stock clients do) so a late acknowledge still completes.
                let detail = format!(
                    "no answer from {} within {} s",
                    self.ctx.peer_username,
                    timeout / 1000
                );
                self.set_state(SessionState::Timeout, detail, now, out);
            }
            SessionState::Establishing
                if self
                    .native_answer
                    .as_ref()
                    .is_some_and(|p| now - p.sent_ms >= timeout) =>
            {
                // The initiator never confirmed our native answer: no session.
                self.native_answer = None;
                if let Some(why) = self.rejected_answer.take() {
                    let detail =
                        format!("no valid confirmation within {} s: {why}", timeout / 1000);
                    self.teardown(SessionState::Error, detail, now, out);
                    return;
                }
                let detail = format!(
                    "{} did not confirm the keys within {} s",
                    self.ctx.peer_username,
                    timeout / 1000
                );
                self.set_state(SessionState::Timeout, detail, now, out);
            }
            SessionState::Requested
                if self
                    .invitation
                    .as_ref()
                    .is_some_and(|i| now >= i.expires_ms) =>
            {
                // The peer's client has given up; a late accept still answers and completes.
                self.set_state(SessionState::Timeout, "invitation expired".into(), now, out);
            }
            SessionState::Timeout if self.timed_out_ms.is_some_and(|t| now - t > grace) => {
                self.own = None;
                self.invitation = None;
                self.previous = None;
                self.timed_out_ms = None;
            }
            SessionState::Established => self.tick_live(now, out),
            _ => {}
        }
        self.tick_pending(now, out);
    }

    fn tick_pending(&mut self, now: i64, out: &mut Vec<Output>) {
        let bound = self.policy.delivery_timeout_ms;
        let (expired, kept): (Vec<Pending>, Vec<Pending>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|p| now - p.sent_ms >= bound);
        self.pending = kept;
        for p in expired {
            let why = format!(
                "{} did not acknowledge the message within {} s",
                self.ctx.peer_username,
                bound / 1000
            );
            out.push(self.error_event("send_failed", why, &p.id));
        }
        if self.state != SessionState::Established {
            return;
        }
        let (interval, max, epoch) = (
            self.policy.resend_interval_ms,
            self.policy.max_resends,
            self.epoch,
        );
        for p in self.pending.iter_mut() {
            if p.epoch == epoch && p.resends < max && now - p.last_sent_ms >= interval {
                p.resends += 1;
                p.last_sent_ms = now;
                out.push(Output::SendMessage {
                    id: p.id.clone(),
                    msg: p.msg.clone(),
                });
            }
        }
    }

    /// Reports every pending message failed (the keys to confirm them are going away).
    pub(super) fn fail_pending(&mut self, why: &str, out: &mut Vec<Output>) {
        for p in std::mem::take(&mut self.pending) {
            out.push(self.error_event("send_failed", why.to_owned(), &p.id));
        }
    }
}

/// The received message object with `ts` replaced by the sender's inner date (PROTOCOL.md §4.4).
fn ack_echo(obj: &Map<String, Value>, ts_ms: i64) -> Value {
    let mut echo = obj.clone();
    echo.insert("ts".into(), json!({ "$date": ts_ms }));
    Value::Object(echo)
}
