//! The scheme seam: key material and negotiation behind small types, so the state machine does not
//! care which scheme a session runs.
//!
//! - [`Cipher`] is `Legacy` (one AES-128 key) or `Native` (a Double Ratchet session from
//!   `crate::otr::native`, its frames carried in the same `{"$binary":…}` envelope strings).
//! - [`offer`] builds our handshake: always the legacy key pair (stock peers need it), plus the
//!   `"otrd"` offer for `Auto`/`Native` when this daemon has a native identity.
//! - [`answer`] answers a peer's offer: natively when it carries an `"otrd"` offer and we can, which
//!   yields a [`NativeAnswer`] waiting for the initiator's confirmation — not a live cipher.
//! - [`complete`] finishes ours from the acknowledge: natively (returning the confirm member to send)
//!   or legacy (telling the caller a native offer got a legacy answer, for the downgrade policy).
//! - [`confirm`] finishes a native answer from the initiator's confirm frame.
//!
//! The confirm frame is an `acknowledge` event from the initiator whose payload is
//! `{roomId, userId, "otrd": {v, tag, to, rk, confirm}}` with no `publicKey`; only otrd peers are
//! ever sent one. Stock clients ignore unknown members, so a legacy peer keeps working.

use super::{NativeSetup, RoomContext, SessionError};
use crate::engine::{Mode, SchemePreference};
use crate::otr::legacy::{self, EphemeralKeyPair, LegacyError, PeerPublicKey, SharedKey};
use crate::otr::native::{
    self, message_context, Fingerprint, NativeError, NativeSession, PendingInitiator,
    PendingResponder, SessionContext,
};
use crate::secure::SecretBytes;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use rand::{CryptoRng, RngCore};
use serde_json::{json, Value};
use std::fmt;

/// A live session's key material.
pub(super) enum Cipher {
    /// The stock scheme: one AES-128 key, both ways.
    Legacy(SharedKey),
    /// The native scheme, with the associated-data contexts of each direction.
    Native {
        /// The ratchet.
        session: Box<NativeSession>,
        /// `message_context(room, us, peer)`.
        ad_out: Vec<u8>,
        /// `message_context(room, peer, us)`.
        ad_in: Vec<u8>,
    },
}

impl fmt::Debug for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Legacy(_) => f.write_str("Cipher::Legacy([REDACTED])"),
            Self::Native { session, .. } => write!(f, "Cipher::Native({session:?})"),
        }
    }
}

fn contexts(ctx: &RoomContext) -> (Vec<u8>, Vec<u8>) {
    (
        message_context(&ctx.room_id, &ctx.my_uid, &ctx.peer_uid),
        message_context(&ctx.room_id, &ctx.peer_uid, &ctx.my_uid),
    )
}

fn native_ctx(ctx: &RoomContext) -> SessionContext {
    SessionContext {
        room_id: ctx.room_id.clone(),
        local_uid: ctx.my_uid.clone(),
        peer_uid: ctx.peer_uid.clone(),
    }
}

impl Cipher {
    /// The scheme.
    pub(super) fn mode(&self) -> Mode {
        match self {
            Self::Legacy(_) => Mode::Legacy,
            Self::Native { .. } => Mode::Native,
        }
    }

    /// The peer's identity fingerprint and the SAS (native only).
    pub(super) fn native_peer(&self) -> Option<(Fingerprint, String)> {
        match self {
            Self::Legacy(_) => None,
            Self::Native { session, .. } => Some((session.peer_fingerprint(), session.sas())),
        }
    }

    /// The `otrd` member proving that `sender_uid` ends this native session in `room`:
    /// `{"end": <base64 MAC>}`; `None` for legacy (a stock peer cannot authenticate `end`).
    pub(super) fn end_proof(&self, room: &str, sender_uid: &str) -> Option<Value> {
        match self {
            Self::Legacy(_) => None,
            Self::Native { session, .. } => {
                Some(json!({ "end": B64.encode(session.end_token(room, sender_uid)) }))
            }
        }
    }

    /// The ratchet of a native session (for control proofs, `crate::otr::native::control`).
    pub(super) fn native_session(&self) -> Option<&NativeSession> {
        match self {
            Self::Legacy(_) => None,
            Self::Native { session, .. } => Some(session),
        }
    }

    /// Whether an incoming `end` may end this session: always for legacy (stock behaviour);
    /// for native only with a valid [`Cipher::end_proof`] from `sender_uid` in `room`.
    pub(super) fn end_is_authentic(&self, room: &str, sender_uid: &str, payload: &Value) -> bool {
        match self {
            Self::Legacy(_) => true,
            // `end` is made under the sender's live keys, `prev` under its pre-refresh keys.
            Self::Native { session, .. } => ["end", "prev"].iter().any(|member| {
                payload
                    .get("otrd")
                    .and_then(|m| m.get(*member))
                    .and_then(Value::as_str)
                    .and_then(|t| B64.decode(t).ok())
                    .is_some_and(|t| session.verify_end_token(room, sender_uid, &t))
            }),
        }
    }

    /// Encrypts a plaintext into the string that goes into `msg` or `ack`.
    pub(super) fn seal(
        &mut self,
        plaintext: &SecretBytes,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<String, LegacyError> {
        match self {
            Self::Legacy(key) => legacy::encrypt(key, plaintext.expose(), rng),
            Self::Native {
                session, ad_out, ..
            } => {
                let frame = session
                    .encrypt(plaintext.expose(), ad_out, rng)
                    .map_err(|_| LegacyError::Encrypt)?;
                Ok(json!({ "$binary": B64.encode(frame) }).to_string())
            }
        }
    }

    /// Decrypts a `msg` or `ack` string. Native failures (replay, reflection, wrong room or
    /// sender, tampering) all surface as [`LegacyError::Decrypt`]; the ratchet is left unchanged.
    pub(super) fn open(&mut self, envelope: &str) -> Result<SecretBytes, LegacyError> {
        match self {
            Self::Legacy(key) => legacy::decrypt(key, envelope),
            Self::Native { session, ad_in, .. } => {
                let parsed: Value = serde_json::from_str(envelope)
                    .map_err(|_| LegacyError::Envelope("not JSON"))?;
                let b64 = parsed
                    .get("$binary")
                    .and_then(Value::as_str)
                    .ok_or(LegacyError::Envelope("no $binary"))?;
                let frame = B64
                    .decode(b64)
                    .map_err(|_| LegacyError::Envelope("bad base64"))?;
                session.decrypt(&frame, ad_in).map_err(|e| {
                    tracing::debug!(error = %e, "native frame rejected");
                    LegacyError::Decrypt
                })
            }
        }
    }
}

/// Our half of a handshake, kept until the acknowledge arrives.
pub(super) struct OwnOffer {
    /// The legacy ephemeral key pair (always offered: stock peers need it).
    pub(super) legacy: EphemeralKeyPair,
    /// Our `"otrd"` member, when we offer more than legacy.
    pub(super) ext: Option<Value>,
    /// The native initiator state matching `ext`.
    pub(super) native: Option<PendingInitiator>,
    /// The user asked for native or nothing.
    pub(super) native_only: bool,
}

impl fmt::Debug for OwnOffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnOffer")
            .field("legacy", &self.legacy)
            .finish_non_exhaustive()
    }
}

/// A peer's handshake, validated.
#[derive(Debug, Clone)]
pub(super) struct PeerOffer {
    /// Their legacy public key.
    pub(super) key: PeerPublicKey,
    /// `refresh: true` in the handshake.
    pub(super) refresh: bool,
    /// The whole handshake payload as received, `"otrd"` offer included (the native transcript
    /// covers all of it).
    pub(super) payload: Value,
}

/// A key pair could not be made (the generator or AWS-LC failed): the handshake cannot go on.
fn key_generation(e: LegacyError) -> SessionError {
    SessionError::Crypto(format!("legacy key pair: {e}"))
}

/// Builds our offer for `pref`.
pub(super) fn offer(
    pref: SchemePreference,
    setup: Option<&NativeSetup>,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<OwnOffer, SessionError> {
    let legacy = EphemeralKeyPair::generate(rng).map_err(key_generation)?;
    match (pref, setup) {
        (SchemePreference::Native, None) => Err(SessionError::NativeUnavailable),
        (SchemePreference::Legacy, _) | (SchemePreference::Auto, None) => Ok(OwnOffer {
            legacy,
            ext: None,
            native: None,
            native_only: false,
        }),
        (SchemePreference::Auto | SchemePreference::Native, Some(s)) => {
            let (pending, member) = native::make_offer(&s.identity, s.tag, rng);
            Ok(OwnOffer {
                legacy,
                ext: Some(member),
                native: Some(pending),
                native_only: pref == SchemePreference::Native,
            })
        }
    }
}

/// What an invitation offers, for the invitation event.
pub(super) fn offered_mode(offer: &PeerOffer) -> Mode {
    if native::parse_offer(&offer.payload).is_some() {
        Mode::Native
    } else {
        Mode::Legacy
    }
}

/// A native answer sent, waiting for the initiator's confirm frame.
pub(super) struct NativeAnswer {
    responder: PendingResponder,
    /// When the acknowledge went out (for the handshake timeout).
    pub(super) sent_ms: i64,
    /// It answered a `refresh: true` handshake.
    pub(super) refresh: bool,
}

impl fmt::Debug for NativeAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NativeAnswer")
            .field("sent_ms", &self.sent_ms)
            .finish_non_exhaustive()
    }
}

/// Our answer to a peer's offer.
pub(super) enum Answered {
    /// Stock scheme: live at once.
    Legacy {
        /// The live cipher.
        cipher: Cipher,
        /// The acknowledge payload to send.
        payload: Value,
    },
    /// Native: established only once the initiator's confirmation verifies.
    Native {
        /// The pending answer.
        pending: NativeAnswer,
        /// The acknowledge payload to send (with the `"otrd"` answer).
        payload: Value,
    },
}

/// Answers `offer`: natively when it carries an `"otrd"` offer and we have an identity.
pub(super) fn answer(
    offer: &PeerOffer,
    setup: Option<&NativeSetup>,
    ctx: &RoomContext,
    now: i64,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<Answered, SessionError> {
    let pair = EphemeralKeyPair::generate(rng).map_err(key_generation)?;
    let base = json!({
        "roomId": ctx.room_id,
        "userId": ctx.my_uid,
        "publicKey": pair.public_jwk(),
    });
    if let (Some(s), Some(_)) = (setup, native::parse_offer(&offer.payload)) {
        let (responder, payload) = native::answer(
            &s.identity,
            s.tag,
            &native_ctx(ctx),
            &offer.payload,
            base,
            rng,
        )
        .map_err(|e| SessionError::Crypto(format!("native answer: {e}")))?;
        let pending = NativeAnswer {
            responder,
            sent_ms: now,
            refresh: offer.refresh,
        };
        return Ok(Answered::Native { pending, payload });
    }
    let key = pair
        .agree(&offer.key)
        .map_err(|e| SessionError::Crypto(e.to_string()))?;
    Ok(Answered::Legacy {
        cipher: Cipher::Legacy(key),
        payload: base,
    })
}

/// How our handshake ended.
pub(super) enum Completed {
    /// Legacy (whether that was acceptable after a native offer is judged before, see
    /// [`is_legacy_answer_to_native`]).
    Legacy {
        /// The live cipher.
        cipher: Cipher,
    },
    /// Native, confirmed; `confirm` is the `"otrd"` member of the confirm frame to send.
    Native {
        /// The live cipher.
        cipher: Cipher,
        /// The confirm member.
        confirm: Value,
    },
}

/// Why our handshake could not be completed.
pub(super) enum CompleteError {
    /// Legacy key agreement failed.
    Legacy(LegacyError),
    /// Native key confirmation (or validation) failed: an alarm.
    Native(NativeError),
    /// The user asked for native only and the peer answered legacy.
    NativeRequired,
}

/// True when the acknowledge carries a native answer addressed to another instance of us (our
/// other daemon's handshake): not ours to complete.
pub(super) fn answer_is_for_other_instance(own: &OwnOffer, ack: &Value) -> bool {
    match (&own.native, native::parse_answer(ack)) {
        (Some(p), Some(a)) => a.to != p.tag(),
        _ => false,
    }
}

/// Completes our offer with the peer's acknowledge.
pub(super) fn complete(
    own: &OwnOffer,
    own_payload: &Value,
    ack: &Value,
    peer_key: &PeerPublicKey,
    ctx: &RoomContext,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<Completed, CompleteError> {
    match &own.native {
        Some(pending) if native::parse_answer(ack).is_some() => {
            let (session, confirm) = pending
                .complete(&native_ctx(ctx), own_payload, ack, rng)
                .map_err(CompleteError::Native)?;
            let (ad_out, ad_in) = contexts(ctx);
            let cipher = Cipher::Native {
                session: Box::new(session),
                ad_out,
                ad_in,
            };
            Ok(Completed::Native {
                cipher,
                confirm: confirm.to_value(),
            })
        }
        Some(_) if own.native_only => Err(CompleteError::NativeRequired),
        _ => {
            let cipher = own
                .legacy
                .agree(peer_key)
                .map(Cipher::Legacy)
                .map_err(CompleteError::Legacy)?;
            Ok(Completed::Legacy { cipher })
        }
    }
}

/// True when `ack` answers our native offer with the stock scheme only: a stock peer, or a
/// server that stripped the answer (or the offer) — the downgrade rules decide.
pub(super) fn is_legacy_answer_to_native(own: &OwnOffer, ack: &Value) -> bool {
    own.native.is_some() && native::parse_answer(ack).is_none()
}

/// True when an `acknowledge` payload is a native confirm frame (an `"otrd"` member with `rk`).
pub(super) fn is_confirm_frame(payload: &Value) -> bool {
    payload.get("otrd").and_then(|m| m.get("rk")).is_some()
}

/// Finishes a native answer with the initiator's confirm frame.
pub(super) fn confirm(
    pending: &NativeAnswer,
    frame: &Value,
    ctx: &RoomContext,
) -> Result<Cipher, NativeError> {
    let session = pending.responder.confirm(frame)?;
    let (ad_out, ad_in) = contexts(ctx);
    Ok(Cipher::Native {
        session: Box::new(session),
        ad_out,
        ad_in,
    })
}
