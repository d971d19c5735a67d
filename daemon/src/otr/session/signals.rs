//! Incoming signalling (`handshake`, `acknowledge`, `deny`, `end`) and presence.
//!
//! Every event must name this room and the room's peer as sender (`payload.userId` is not
//! attested by the server, but a third party must at least guess right); our own echoes are
//! dropped. Events carrying a key are deduplicated by that key: a repeat inside the window is a
//! relay duplicate (silent), a later repeat is a replay (reported).

use super::control::LegacyVerdict;
use super::machine::{Invitation, Session};
use super::scheme::{self, CompleteError, Completed, PeerOffer};
use super::{Output, SignalKind};
use crate::engine::{EventKind, SessionState};
use crate::otr::legacy::PeerPublicKey;
use crate::otr::native;
use rand::{CryptoRng, RngCore};
use serde_json::{Map, Value};

impl Session {
    pub(super) fn on_signal(
        &mut self,
        kind: SignalKind,
        payload: &Value,
        now: i64,
        rng: &mut (impl RngCore + CryptoRng),
        out: &mut Vec<Output>,
    ) {
        let Some(obj) = payload.as_object() else {
            out.push(self.error_event(
                "malformed_event",
                format!("{} payload is not an object", kind.as_str()),
                "",
            ));
            return;
        };
        let room = obj.get("roomId").and_then(Value::as_str);
        let user = obj.get("userId").and_then(Value::as_str);
        let (Some(room), Some(user)) = (room, user) else {
            out.push(self.error_event(
                "malformed_event",
                format!("{} without roomId/userId", kind.as_str()),
                "",
            ));
            return;
        };
        if user == self.ctx.my_uid {
            return; // our own event (stock clients drop these too)
        }
        if room != self.ctx.room_id || user != self.ctx.peer_uid {
            tracing::warn!(room = %self.ctx.room_id, kind = kind.as_str(), "forged OTR signalling event");
            out.push(self.error_event(
                "forged_event",
                format!(
                    "ignored a {} that does not come from {} in this room",
                    kind.as_str(),
                    self.ctx.peer_username
                ),
                "",
            ));
            return;
        }
        if self.live_native() {
            // Nothing unauthenticated may change a native session (control.rs).
            self.on_native_control(kind, obj, now, rng, out);
            return;
        }
        match kind {
            SignalKind::Handshake => self.on_handshake(obj, now, rng, out),
            SignalKind::Acknowledge => self.on_acknowledge(obj, now, rng, out),
            SignalKind::Deny => self.on_deny(now, out),
            SignalKind::End => self.on_peer_end(payload, now, out),
        }
    }

    /// Parses `publicKey` and checks it is new: `None` means "drop this event" (outputs already
    /// pushed). The caller remembers the returned normalised key once it acts on it.
    pub(super) fn fresh_peer_key(
        &mut self,
        kind: SignalKind,
        obj: &Map<String, Value>,
        now: i64,
        out: &mut Vec<Output>,
    ) -> Option<(PeerPublicKey, String)> {
        let code = match kind {
            SignalKind::Handshake => "bad_handshake",
            _ => "bad_acknowledge",
        };
        let Some(jwk) = obj.get("publicKey").and_then(Value::as_str) else {
            out.push(self.error_event(code, format!("{} without publicKey", kind.as_str()), ""));
            return None;
        };
        let key = match PeerPublicKey::from_jwk(jwk) {
            Ok(k) => k,
            Err(e) => {
                out.push(self.error_event(code, format!("{}: {e}", kind.as_str()), ""));
                return None;
            }
        };
        let norm = format!("{}:{}", kind.as_str(), key.to_jwk());
        if let Some(first) = self.peer_keys.get(&norm) {
            if now - first > self.policy.dedupe_window_ms {
                out.push(self.error_event(
                    "replayed_event",
                    format!(
                        "ignored a replayed {} from {}",
                        kind.as_str(),
                        self.ctx.peer_username
                    ),
                    "",
                ));
            }
            return None;
        }
        Some((key, norm))
    }

    fn on_handshake(
        &mut self,
        obj: &Map<String, Value>,
        now: i64,
        rng: &mut (impl RngCore + CryptoRng),
        out: &mut Vec<Output>,
    ) {
        let Some((key, norm)) = self.fresh_peer_key(SignalKind::Handshake, obj, now, out) else {
            return;
        };
        self.peer_keys.insert(norm, now);
        let offer = PeerOffer {
            key,
            refresh: obj.get("refresh") == Some(&Value::Bool(true)),
            payload: Value::Object(obj.clone()),
        };
        // Within an established legacy session (a stock peer's refresh or restart) nothing is
        // downgraded; everywhere else a stock-only offer is judged.
        let legacy_live = self.state == SessionState::Established
            && self.mode == Some(crate::engine::Mode::Legacy);
        let stock_offer = scheme::offered_mode(&offer) == crate::engine::Mode::Legacy;
        if stock_offer
            && self.state == SessionState::Establishing
            && self.own.as_ref().is_some_and(|o| o.offer.native.is_some())
        {
            // Glare with a stock offer while ours offers native: a stock peer answers ours
            // anyway, and abandoning ours for it would let anyone talk a native handshake down.
            tracing::debug!(room = %self.ctx.room_id, "stock offer during our native handshake ignored");
            return;
        }
        let verdict = if stock_offer && self.native_answer.is_some() {
            // The peer spoke native in this very handshake: a stock offer now is a downgrade.
            LegacyVerdict::Refuse {
                code: "downgrade",
                message: format!(
                    "{} offered only the stock scheme while a native handshake with them was under                      way: refused as a possible downgrade",
                    self.ctx.peer_username
                ),
            }
        } else if !legacy_live && stock_offer {
            self.legacy_verdict("offers", false)
        } else {
            LegacyVerdict::Allow
        };
        if let LegacyVerdict::Refuse { code, message } = verdict {
            // Refused before anything changes: a pending handshake of ours (glare) or a live
            // legacy session stays as it was, and nothing is sent.
            out.push(self.refusal(code, message));
            return;
        }
        match self.state {
            SessionState::Established if offer.refresh => {
                // A refresh is answered at once, no prompt (stock behaviour); the old key stays
                // readable for what is in flight.
                let old = self.cipher.take();
                match self.answer_offer(&offer, now, rng, out) {
                    Ok(()) => {
                        self.previous = old;
                        self.previous_since_ms = Some(now);
                    }
                    Err(e) => {
                        self.cipher = old;
                        out.push(self.error_event("refresh_failed", e.to_string(), ""));
                    }
                }
            }
            SessionState::Established => {
                // The peer started over (e.g. reloaded): its old keys are gone, so are ours.
                self.drop_keys();
                self.fail_pending(
                    "the peer restarted the session before delivery was confirmed",
                    out,
                );
                self.invite(
                    offer,
                    format!("{} restarted OTR", self.ctx.peer_username),
                    now,
                    rng,
                    out,
                );
            }
            SessionState::Establishing if self.ctx.my_uid < self.ctx.peer_uid => {
                // Glare with a deterministic winner: the lower uid keeps its offer. A stock peer
                // prompts for our handshake even while it is establishing, and a daemon peer (the
                // higher uid) answers ours below, so exactly one offer survives.
                tracing::debug!(room = %self.ctx.room_id, "glare: keeping our offer");
            }
            SessionState::Establishing => {
                // Glare: both started. Abandon ours and answer theirs.
                self.own = None;
                self.invite(
                    offer,
                    format!("both started; answering {}", self.ctx.peer_username),
                    now,
                    rng,
                    out,
                );
            }
            _ => {
                let detail = format!("{} wants to start OTR", self.ctx.peer_username);
                self.invite(offer, detail, now, rng, out);
            }
        }
        if let LegacyVerdict::Warn(message) = verdict {
            out.push(self.alarm("downgrade", message));
        }
    }

    /// `Requested` with an invitation event, then auto-accept when the policy says so.
    fn invite(
        &mut self,
        offer: PeerOffer,
        detail: String,
        now: i64,
        rng: &mut (impl RngCore + CryptoRng),
        out: &mut Vec<Output>,
    ) {
        let expires_ms = now + self.policy.handshake_timeout_ms;
        let mode = scheme::offered_mode(&offer);
        self.own = None;
        self.native_answer = None; // a newer offer supersedes one we answered
        self.initiator = false;
        self.timed_out_ms = None;
        self.invitation = Some(Invitation {
            offer: offer.clone(),
            expires_ms,
            seq: None,
        });
        self.set_state(SessionState::Requested, detail, now, out);
        out.push(Output::Event(EventKind::Invitation {
            peer: self.ctx.peer_username.clone(),
            room_id: self.ctx.room_id.clone(),
            mode,
            expires_ms,
        }));
        if self.policy.auto_accept {
            if let Err(e) = self.answer_offer(&offer, now, rng, out) {
                out.push(self.error_event("accept_failed", e.to_string(), ""));
            }
        }
    }

    fn on_acknowledge(
        &mut self,
        obj: &Map<String, Value>,
        now: i64,
        rng: &mut (impl RngCore + CryptoRng),
        out: &mut Vec<Output>,
    ) {
        let payload = Value::Object(obj.clone());
        if scheme::is_confirm_frame(&payload) {
            self.on_native_confirm(&payload, now, rng, out);
            return;
        }
        let Some((key, norm)) = self.fresh_peer_key(SignalKind::Acknowledge, obj, now, out) else {
            return;
        };
        let in_grace =
            |t: Option<i64>| t.is_some_and(|t| now - t <= self.policy.late_answer_grace_ms);
        let waiting = self.initiator
            && self.own.is_some()
            && (self.state == SessionState::Establishing
                || (self.state == SessionState::Timeout && in_grace(self.timed_out_ms)));
        if !waiting {
            // Not remembered, so an unsolicited key never blocks a real answer later.
            tracing::warn!(room = %self.ctx.room_id, "unsolicited OTR acknowledge ignored");
            out.push(self.error_event(
                "unsolicited_acknowledge",
                format!(
                    "ignored an acknowledge from {} that answers nothing we sent",
                    self.ctx.peer_username
                ),
                "",
            ));
            return;
        }
        if self
            .own
            .as_ref()
            .is_some_and(|o| scheme::answer_is_for_other_instance(&o.offer, &payload))
        {
            // Our other daemon's handshake was answered: not ours, and not an error.
            return;
        }
        let Some(own) = self.own.as_ref() else { return };
        let refresh = own.refresh;
        if scheme::is_legacy_answer_to_native(&own.offer, &payload) {
            let native_only = own.offer.native_only;
            match self.legacy_verdict("answered", native_only) {
                LegacyVerdict::Refuse { code, message } => {
                    // Not remembered and not fatal: a forged stock answer must not abandon our
                    // handshake; the genuine answer may still come. The timeout reports it.
                    out.push(self.refusal(code, message.clone()));
                    self.rejected_answer = Some(message);
                    return;
                }
                LegacyVerdict::Warn(message) => out.push(self.alarm("downgrade", message)),
                LegacyVerdict::Allow => {}
            }
        }
        let outcome = scheme::complete(&own.offer, &own.payload, &payload, &key, &self.ctx, rng);
        if let Err(CompleteError::Native(e)) = &outcome {
            // A forged or tampered answer: raise the alarm, keep waiting for the genuine one.
            let message = format!(
                "the native answer from {} did not verify: {e}",
                self.ctx.peer_username
            );
            self.reject_answer(message, out);
            return;
        }
        self.peer_keys.insert(norm, now);
        self.own = None;
        let cipher = match outcome {
            Ok(Completed::Native { cipher, confirm }) => {
                self.push_confirm_frame(confirm, out);
                Ok(cipher)
            }
            Ok(Completed::Legacy { cipher }) => Ok(cipher),
            Err(CompleteError::NativeRequired) => {
                // Judged above (native_only refuses every legacy answer); kept for completeness.
                let detail = format!(
                    "{} does not speak the native scheme",
                    self.ctx.peer_username
                );
                out.push(self.error_event("native_required", detail.clone(), ""));
                self.teardown(SessionState::Error, detail, now, out);
                return;
            }
            Err(CompleteError::Native(_)) => return,
            Err(CompleteError::Legacy(e)) => Err(e),
        };
        let own_refresh = refresh;
        match cipher {
            Ok(cipher) => {
                self.mode = Some(cipher.mode());
                self.cipher = Some(cipher);
                self.epoch += 1;
                self.timed_out_ms = None;
                let detail = if own_refresh {
                    "keys refreshed".to_owned()
                } else {
                    format!("{} accepted", self.ctx.peer_username)
                };
                self.set_state(SessionState::Established, detail, now, out);
                if self.first_otr && !own_refresh {
                    out.push(Output::SystemMessage {
                        kind: super::system::USER_JOINED_OTR,
                    });
                }
                self.first_otr = false;
            }
            Err(e) => {
                out.push(self.error_event("key_agreement_failed", e.to_string(), ""));
                self.teardown(
                    SessionState::Error,
                    format!("key agreement failed: {e}"),
                    now,
                    out,
                );
            }
        }
    }

    /// The initiator's confirm frame for our native answer (a first session, a refresh, or a new
    /// session offered beside a live one).
    pub(super) fn on_native_confirm(
        &mut self,
        frame: &Value,
        now: i64,
        rng: &mut (impl RngCore + CryptoRng),
        out: &mut Vec<Output>,
    ) {
        let Some(pending) = self.native_answer.as_ref() else {
            // A duplicate after we finished, or nothing we answered: nothing to do.
            return;
        };
        let ours = native::parse_confirm(frame).and_then(|c| c.receiver_tag());
        if self.policy.native.as_ref().map(|s| s.tag) != ours {
            // Addressed to another instance of this account.
            return;
        }
        let refresh = pending.refresh;
        match scheme::confirm(pending, frame, &self.ctx) {
            Ok(cipher) => {
                self.native_answer = None;
                self.rejected_answer = None;
                if self.live_native() {
                    self.replace_live(cipher, refresh, now, out);
                    // What overtook the confirmation opens now.
                    for message in std::mem::take(&mut self.stashed) {
                        self.on_room_message(&message, now, rng, out);
                    }
                    return;
                }
                self.mode = Some(cipher.mode());
                self.cipher = Some(cipher);
                self.epoch += 1;
                self.timed_out_ms = None;
                let detail = if refresh {
                    "keys refreshed"
                } else {
                    "accepted"
                };
                self.set_state(SessionState::Established, detail.into(), now, out);
            }
            Err(e) => {
                // Forged or tampered: the alarm goes up, the answer keeps waiting for the
                // genuine confirmation until its timeout.
                let message = format!(
                    "a confirmation of the native handshake with {} did not verify: {e}",
                    self.ctx.peer_username
                );
                self.reject_answer(message, out);
            }
        }
    }

    /// Sends the initiator's confirm frame (`acknowledge` with the `otrd` confirm member).
    pub(super) fn push_confirm_frame(&self, confirm: Value, out: &mut Vec<Output>) {
        let mut frame = match self.signal(SignalKind::Acknowledge, None) {
            Output::Signal { payload, .. } => payload,
            _ => Value::Null,
        };
        if let Value::Object(map) = &mut frame {
            map.insert("otrd".into(), confirm);
        }
        out.push(Output::Signal {
            kind: SignalKind::Acknowledge,
            payload: frame,
        });
    }

    /// An answer to our handshake (or a confirmation of ours) that did not verify: alarm, and
    /// remember why for the timeout's report.
    fn reject_answer(&mut self, message: String, out: &mut Vec<Output>) {
        tracing::warn!(room = %self.ctx.room_id, "native handshake answer did not verify");
        out.push(self.alarm(
            "key_confirmation_failed",
            format!("{message}; keys may have been tampered with — still waiting for the genuine answer"),
        ));
        self.rejected_answer = Some(message);
    }

    fn on_deny(&mut self, now: i64, out: &mut Vec<Output>) {
        if self.state == SessionState::Establishing && self.initiator {
            let detail = format!("{} declined", self.ctx.peer_username);
            self.teardown(SessionState::Declined, detail, now, out);
        }
    }

    pub(super) fn on_peer_end(&mut self, payload: &Value, now: i64, out: &mut Vec<Output>) {
        if self.state == SessionState::Established {
            // The server does not attest `userId`: anyone sharing a room with us can send this.
            // A native session ends only on the peer's proof; legacy keeps the stock behaviour.
            let authentic = self.end_is_authentic(payload);
            if !authentic {
                self.forged_signal("end", now, out);
                return;
            }
            self.first_otr = true;
            let detail = format!("ended by {}", self.ctx.peer_username);
            self.teardown(SessionState::Ended, detail, now, out);
        }
    }

    pub(super) fn on_peer_offline(&mut self, now: i64, out: &mut Vec<Output>) {
        if self.live_native() {
            // Presence is the server's word, and the server must not be able to end a native
            // session. The ratchet survives the peer's absence: messages wait for their acks (and
            // fail at the delivery bound), and a peer that really lost its keys comes back with a
            // new session, offered beside this one.
            tracing::debug!(room = %self.ctx.room_id, "peer offline; the native session stays");
            return;
        }
        let live = matches!(
            self.state,
            SessionState::Established | SessionState::Establishing
        );
        if !live && self.state != SessionState::Requested {
            return;
        }
        if live {
            // As the stock client does: tell the (now offline) peer, in case it is only hidden.
            out.push(self.signal(SignalKind::End, None));
        }
        self.first_otr = true;
        let detail = format!("{} went offline", self.ctx.peer_username);
        self.teardown(SessionState::Ended, detail, now, out);
    }
}
