//! What may change a session that the server can read nothing of: control signals of a live
//! native session, and the rules that keep a native peer from being talked down to legacy.
//!
//! **Inside a live native session** (`Established`, native cipher) the stock signals carry no
//! authority: the server, and on 7.x any logged-in user, can write them. So:
//! - a `handshake` with `refresh: true` is a native re-key only with the live session's proof
//!   (`crate::otr::native::control`); it is answered natively at once, the old keys stay live
//!   until the initiator's confirmation verifies;
//! - a native `handshake` without `refresh` (the peer's daemon restarted and lost its keys) is an
//!   invitation beside the live session — never auto-accepted; the old keys go only when the new
//!   session is confirmed or the user ends the old one;
//! - the answer to our refresh (`acknowledge`) and its refusal (`deny`) need the proof too; a
//!   refusal names the offer it refuses, so an old one cannot be replayed against a later refresh;
//! - `end` needs its own proof (`Cipher::end_proof`), from the live or the pre-refresh keys;
//! - anything else — a stock handshake, a stock or unproven answer, refusal or end — changes
//!   nothing, is not answered, and raises a `forged_signal` alarm naming the signal and the
//!   claimed sender (a burst of five per signal kind, then one a second, so a flood cannot bury
//!   the user).
//!
//! **Outside one**, a stock-only offer or answer is judged by [`Session::legacy_verdict`]:
//! refused outright where the stock scheme cannot be genuine (Rocket.Chat 8.x: transports A and
//! B), refused under `require_native`, and for a peer that has spoken native before an alarm that
//! follows `[policy] downgrade`.

use super::machine::{Invitation, Session};
use super::scheme::{self, Cipher, CompleteError, Completed, PeerOffer};
use super::{Output, SignalKind};
use crate::engine::{EventKind, Mode, SessionState};
use crate::otr::native::control;
use rand::{CryptoRng, RngCore};
use serde_json::{json, Map, Value};

/// Forged-signal alarms of one kind: a burst of this many, then one per
/// [`FORGED_ALARM_INTERVAL_MS`]; the rest are counted and mentioned in the next alarm, so a flood
/// neither buries the user nor hides that it happened.
const FORGED_ALARM_BURST: u32 = 5;
const FORGED_ALARM_INTERVAL_MS: i64 = 1_000;

/// How a stock-only offer or answer is judged.
pub(super) enum LegacyVerdict {
    /// Nothing against it (a stock peer on a server where that is normal).
    Allow,
    /// Go on, with this `downgrade` alarm (`[policy] downgrade = "warn"`).
    Warn(String),
    /// Refuse: nothing changes, nothing is sent; `code` is `downgrade` (an alarm) or
    /// `native_required` (an error).
    Refuse {
        /// `downgrade` or `native_required`.
        code: &'static str,
        /// For people.
        message: String,
    },
}

impl Session {
    /// An established session under the native scheme: only proven signals may change it.
    pub(super) fn live_native(&self) -> bool {
        self.state == SessionState::Established
            && matches!(self.cipher, Some(Cipher::Native { .. }))
    }

    /// Judges a stock-only offer (`what` = "offers") or answer ("answered"); `native_only` is the
    /// user's `start --native`.
    pub(super) fn legacy_verdict(&self, what: &str, native_only: bool) -> LegacyVerdict {
        let peer = &self.ctx.peer_username;
        if self.policy.native.is_none() {
            return LegacyVerdict::Allow; // a legacy-only daemon: the stock scheme is all there is
        }
        if self.policy.legacy_impossible {
            return LegacyVerdict::Refuse {
                code: "downgrade",
                message: format!(
                    "{peer} {what} only the stock scheme, which no genuine client uses on this server \
                     (Rocket.Chat 8.x removed it): refused — it was forged or stripped on the way"
                ),
            };
        }
        if self.policy.require_native || native_only {
            return LegacyVerdict::Refuse {
                code: "native_required",
                message: format!(
                    "{peer} {what} only the stock scheme and only native is acceptable: refused \
                     (a server that strips the native offer looks exactly like this)"
                ),
            };
        }
        if self.policy.peer_known_native {
            return if self.policy.refuse_downgrade {
                LegacyVerdict::Refuse {
                    code: "downgrade",
                    message: format!(
                        "{peer} has used the native scheme before but now {what} only the stock \
                         scheme: possible downgrade, refused. If {peer} really uses a stock client \
                         now, `otrctl start {peer} --legacy` starts a legacy session"
                    ),
                }
            } else {
                LegacyVerdict::Warn(format!(
                    "{peer} has used the native scheme before but now {what} only the stock \
                     scheme: possible downgrade, accepted per policy — the server could read this"
                ))
            };
        }
        LegacyVerdict::Allow
    }

    /// The event for a refused stock offer or answer.
    pub(super) fn refusal(&self, code: &'static str, message: String) -> Output {
        if code == "downgrade" {
            self.alarm(code, message)
        } else {
            tracing::warn!(room = %self.ctx.room_id, code, "stock-scheme offer or answer refused");
            self.error_event(code, message, "")
        }
    }

    /// A signal for a live native session (already checked to name this room and the peer).
    pub(super) fn on_native_control(
        &mut self,
        kind: SignalKind,
        obj: &Map<String, Value>,
        now: i64,
        rng: &mut (impl RngCore + CryptoRng),
        out: &mut Vec<Output>,
    ) {
        let payload = Value::Object(obj.clone());
        match kind {
            SignalKind::Handshake => self.on_native_handshake(obj, payload, now, rng, out),
            SignalKind::Acknowledge if scheme::is_confirm_frame(&payload) => {
                self.on_native_confirm(&payload, now, rng, out)
            }
            SignalKind::Acknowledge => self.on_refresh_answer(obj, &payload, now, rng, out),
            SignalKind::Deny => self.on_refresh_refusal(&payload, now, out),
            SignalKind::End => self.on_peer_end(&payload, now, out),
        }
    }

    fn on_native_handshake(
        &mut self,
        obj: &Map<String, Value>,
        payload: Value,
        now: i64,
        rng: &mut (impl RngCore + CryptoRng),
        out: &mut Vec<Output>,
    ) {
        let refresh = obj.get("refresh") == Some(&Value::Bool(true));
        let native_offer = crate::otr::native::parse_offer(&payload).is_some();
        if refresh && !(native_offer && self.proven(SignalKind::Handshake, &payload)) {
            return self.forged_signal("refresh handshake", now, out);
        }
        if !native_offer {
            return self.forged_signal("handshake", now, out);
        }
        // Remembered only now: unproven keys must not fill the replay memory.
        let Some((key, norm)) = self.fresh_peer_key(SignalKind::Handshake, obj, now, out) else {
            return;
        };
        self.peer_keys.insert(norm, now);
        let offer = PeerOffer {
            key,
            refresh,
            payload,
        };
        if !refresh {
            return self.invite_beside(offer, now, out);
        }
        if self.own.as_ref().is_some_and(|o| o.refresh) && self.ctx.my_uid < self.ctx.peer_uid {
            // Both refreshed at once: the lower uid keeps its offer, as for first handshakes.
            return;
        }
        if let Err(e) = self.answer_offer(&offer, now, rng, out) {
            out.push(self.error_event("refresh_failed", e.to_string(), ""));
            self.refuse_refresh(&offer, out);
        }
    }

    /// The peer's new native session offered while ours is live: an invitation beside it.
    fn invite_beside(&mut self, offer: PeerOffer, now: i64, out: &mut Vec<Output>) {
        let expires_ms = now + self.policy.handshake_timeout_ms;
        self.invitation = Some(Invitation {
            offer,
            expires_ms,
            seq: None,
        });
        out.push(Output::Event(EventKind::Invitation {
            peer: self.ctx.peer_username.clone(),
            room_id: self.ctx.room_id.clone(),
            mode: Mode::Native,
            expires_ms,
        }));
        out.push(self.error_event(
            "new_session_offered",
            format!(
                "{} offers a new native session (their daemon may have restarted); the current \
                 session stays until you accept the new one or end it",
                self.ctx.peer_username
            ),
            "",
        ));
    }

    /// The `acknowledge` answering our native refresh.
    fn on_refresh_answer(
        &mut self,
        obj: &Map<String, Value>,
        payload: &Value,
        now: i64,
        rng: &mut (impl RngCore + CryptoRng),
        out: &mut Vec<Output>,
    ) {
        let waiting = self.own.as_ref().is_some_and(|o| o.refresh);
        if !waiting || !self.proven(SignalKind::Acknowledge, payload) {
            return self.forged_signal("acknowledge", now, out);
        }
        if self
            .own
            .as_ref()
            .is_some_and(|o| scheme::answer_is_for_other_instance(&o.offer, payload))
        {
            return; // our other daemon's refresh was answered
        }
        let Some((key, norm)) = self.fresh_peer_key(SignalKind::Acknowledge, obj, now, out) else {
            return;
        };
        let Some(own) = self.own.as_ref() else { return };
        if scheme::is_legacy_answer_to_native(&own.offer, payload) {
            self.own = None;
            let message = format!(
                "{} answered the key refresh with the stock scheme: refused, the session goes on \
                 with the current keys",
                self.ctx.peer_username
            );
            out.push(self.alarm("downgrade", message));
            return;
        }
        match scheme::complete(&own.offer, &own.payload, payload, &key, &self.ctx, rng) {
            Ok(Completed::Native { cipher, confirm }) => {
                self.peer_keys.insert(norm, now);
                self.own = None;
                self.push_confirm_frame(confirm, out);
                self.replace_live(cipher, true, now, out);
            }
            Err(CompleteError::Native(e)) => {
                let message = format!(
                    "the refreshed keys from {} did not verify: {e}",
                    self.ctx.peer_username
                );
                out.push(self.alarm("key_confirmation_failed", message));
            }
            Ok(Completed::Legacy { .. }) | Err(_) => {
                self.own = None;
                let message = "the key refresh could not be completed; the session goes on with the current keys";
                out.push(self.error_event("refresh_failed", message.into(), ""));
            }
        }
    }

    /// The `deny` of our native refresh: honoured only with proof and naming our offer.
    fn on_refresh_refusal(&mut self, payload: &Value, now: i64, out: &mut Vec<Output>) {
        let ours = self
            .own
            .as_ref()
            .filter(|o| o.refresh)
            .and_then(|o| offer_ek(&o.payload));
        let names_ours = ours.is_some()
            && payload
                .get("otrd")
                .and_then(|m| m.get("refuses"))
                .and_then(Value::as_str)
                == ours.as_deref();
        if !names_ours || !self.proven(SignalKind::Deny, payload) {
            return self.forged_signal("deny", now, out);
        }
        self.own = None;
        let detail = format!(
            "{} refused the key refresh; the session goes on with the current keys",
            self.ctx.peer_username
        );
        self.set_state(SessionState::Established, detail, now, out);
    }

    /// Tells the peer we cannot answer its refresh (proven, naming its offer).
    fn refuse_refresh(&self, offer: &PeerOffer, out: &mut Vec<Output>) {
        let Output::Signal { mut payload, .. } = self.signal(SignalKind::Deny, None) else {
            return;
        };
        if let (Some(ek), Value::Object(map)) = (offer_ek(&offer.payload), &mut payload) {
            map.insert("otrd".into(), json!({ "refuses": ek }));
        }
        self.prove(SignalKind::Deny, &mut payload);
        out.push(Output::Signal {
            kind: SignalKind::Deny,
            payload,
        });
    }

    /// A new native session verified while one is live: a refresh keeps the old keys readable
    /// for what is in flight; a new session (the peer lost the old keys) replaces it.
    pub(super) fn replace_live(
        &mut self,
        new: Cipher,
        refresh: bool,
        now: i64,
        out: &mut Vec<Output>,
    ) {
        let old_peer = self.native_peer().map(|(fp, _)| fp);
        let new_peer = new.native_peer().map(|(fp, _)| fp);
        if refresh && old_peer != new_peer {
            // A refresh is proven by the old session's keys, so the identity cannot change.
            let message = format!(
                "the refreshed session names another identity for {}: refused, the session goes \
                 on with the current keys",
                self.ctx.peer_username
            );
            out.push(self.alarm("key_confirmation_failed", message));
            return;
        }
        let old = self.cipher.replace(new);
        self.epoch += 1;
        let detail = if refresh {
            self.previous = old;
            self.previous_since_ms = Some(now);
            "keys refreshed".to_owned()
        } else {
            self.previous = None;
            self.previous_since_ms = None;
            self.fail_pending(
                "the peer started a new session before delivery was confirmed",
                out,
            );
            format!("new session with {}", self.ctx.peer_username)
        };
        self.set_state(SessionState::Established, detail, now, out);
    }

    /// Whether `payload` carries the live session's proof that the peer sent this `kind`.
    fn proven(&self, kind: SignalKind, payload: &Value) -> bool {
        self.cipher
            .as_ref()
            .and_then(Cipher::native_session)
            .is_some_and(|s| {
                control::has_proof(
                    s,
                    kind.as_str(),
                    &self.ctx.room_id,
                    &self.ctx.peer_uid,
                    payload,
                )
            })
    }

    /// Adds our proof for a `kind` signal to `payload` (nothing outside a native session).
    pub(super) fn prove(&self, kind: SignalKind, payload: &mut Value) {
        if let Some(s) = self.cipher.as_ref().and_then(Cipher::native_session) {
            control::add_proof(
                s,
                kind.as_str(),
                &self.ctx.room_id,
                &self.ctx.my_uid,
                payload,
            );
        }
    }

    /// Whether an `end` may end this session: always for legacy (stock behaviour); for native
    /// only with a proof from the live keys or the ones before the last refresh.
    pub(super) fn end_is_authentic(&self, payload: &Value) -> bool {
        let (room, peer) = (&self.ctx.room_id, &self.ctx.peer_uid);
        match &self.cipher {
            None | Some(Cipher::Legacy(_)) => true,
            Some(live) => [Some(live), self.previous.as_ref()]
                .into_iter()
                .flatten()
                .any(|c| c.end_is_authentic(room, peer, payload)),
        }
    }

    /// The `forged_signal` alarm: nothing changed, nothing was answered.
    pub(super) fn forged_signal(&mut self, what: &'static str, now: i64, out: &mut Vec<Output>) {
        tracing::warn!(room = %self.ctx.room_id, signal = what, "unproven signal for a native session ignored");
        let Some(also) = self.report_allowed(what, now) else {
            return;
        };
        let message = format!(
            "ignored {} {what} claiming to come from {} ({}) that carries no proof from the native \
             session: the server or another user forged it; the session is unchanged{also}",
            if what.starts_with(['a', 'e']) { "an" } else { "a" },
            self.ctx.peer_username,
            self.ctx.peer_uid
        );
        out.push(self.alarm("forged_signal", message));
    }

    /// Whether a report of kind `what` (a `forged_signal` alarm per signal, a native
    /// `decrypt_failed`) may go to front-ends now: a burst of [`FORGED_ALARM_BURST`], then one
    /// per [`FORGED_ALARM_INTERVAL_MS`]. `Some(text)` says how many were held back since the last
    /// (empty when none), to append to the report.
    pub(super) fn report_allowed(&mut self, what: &'static str, now: i64) -> Option<String> {
        let bucket = self.forged_alarms.entry(what).or_insert(AlarmBucket {
            tokens: FORGED_ALARM_BURST,
            refilled_ms: now,
            suppressed: 0,
        });
        let earned = now.saturating_sub(bucket.refilled_ms) / FORGED_ALARM_INTERVAL_MS;
        if earned > 0 {
            let earned = u32::try_from(earned).unwrap_or(u32::MAX);
            bucket.tokens = bucket.tokens.saturating_add(earned).min(FORGED_ALARM_BURST);
            bucket.refilled_ms = now;
        }
        if bucket.tokens == 0 {
            bucket.suppressed = bucket.suppressed.saturating_add(1);
            return None;
        }
        bucket.tokens -= 1;
        Some(match std::mem::take(&mut bucket.suppressed) {
            0 => String::new(),
            more => format!(" ({more} more since the last report)"),
        })
    }

    /// Timers of an established session: a refresh or a new session that was not answered or
    /// confirmed in time, an invitation beside it that expired, the pre-refresh keys.
    pub(super) fn tick_live(&mut self, now: i64, out: &mut Vec<Output>) {
        let timeout = self.policy.handshake_timeout_ms;
        if self
            .own
            .as_ref()
            .is_some_and(|o| o.refresh && now - o.sent_ms >= timeout)
        {
            self.own = None;
            let message = format!(
                "{} did not answer the key refresh within {} s; the session goes on with the \
                 current keys",
                self.ctx.peer_username,
                timeout / 1000
            );
            out.push(self.error_event("refresh_failed", message, ""));
        }
        if self
            .native_answer
            .as_ref()
            .is_some_and(|p| now - p.sent_ms >= timeout)
        {
            self.native_answer = None;
            self.rejected_answer = None;
            for m in std::mem::take(&mut self.stashed) {
                let id = m.get("_id").and_then(Value::as_str).unwrap_or_default();
                let why = format!(
                    "could not decrypt a message from {}",
                    self.ctx.peer_username
                );
                out.push(self.error_event("decrypt_failed", why, id));
            }
            let message = format!(
                "{} did not confirm the new keys within {} s; the session goes on with the \
                 current keys",
                self.ctx.peer_username,
                timeout / 1000
            );
            out.push(self.error_event("refresh_failed", message, ""));
        }
        let grace = self.policy.late_answer_grace_ms;
        if self
            .invitation
            .as_ref()
            .is_some_and(|i| now - i.expires_ms > grace)
        {
            self.invitation = None;
        }
        self.tick_previous(now);
    }

    /// Item of the refresh contract: the pre-refresh keys go once nothing sealed under them is
    /// pending and the peer's messages in flight have had a handshake timeout to arrive — or at
    /// the delivery bound, when whatever was pending has been reported failed anyway.
    fn tick_previous(&mut self, now: i64) {
        let Some(since) = self.previous_since_ms else {
            return;
        };
        let epoch = self.epoch;
        let old_pending = self.pending.iter().any(|p| p.epoch != epoch);
        let age = now - since;
        if (!old_pending && age >= self.policy.handshake_timeout_ms)
            || age >= self.policy.delivery_timeout_ms
        {
            self.previous = None;
            self.previous_since_ms = None;
        }
    }
}

/// The alarm budget of one forged-signal kind (see [`FORGED_ALARM_BURST`]).
#[derive(Debug)]
pub(super) struct AlarmBucket {
    tokens: u32,
    refilled_ms: i64,
    suppressed: u32,
}

/// The `otrd.ek` of a handshake payload (what a refusal names).
fn offer_ek(payload: &Value) -> Option<String> {
    payload
        .get("otrd")
        .and_then(|m| m.get("ek"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}
