//! The native handshake: offer (in `handshake`), answer (in `acknowledge`), confirm (third frame).
//! Triple Diffie-Hellman over identity and ephemeral keys, keyed by the transcript hash, with
//! explicit key confirmation in both directions, and a commitment that keeps the SAS out of a man
//! in the middle's reach: the offer carries `commit = H(n)` of a secret `n` the initiator reveals
//! only in the confirm frame, and the SAS covers `n`. See the module docs of `otr::native`.

use super::keys::{b64, dh, hkdf, hmac, locked_from, mac_eq, public_of, random_key, unb64_32};
use super::ratchet::{kdf_rk, NativeSession, RatchetInit};
use super::transcript::{put_lp, transcript_hash};
use super::{sas, InstanceTag, LocalIdentity, NativeError, NATIVE_VERSION};
use crate::secure::LockedKey;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::cell::Cell;
use std::fmt;
use zeroize::Zeroizing;

/// The payload member that carries the native negotiation (stock clients ignore it).
pub const OTRD_MEMBER: &str = "otrd";

const RESPONDER_LABEL: &[u8] = b"otrd v1 responder confirm";
const INITIATOR_LABEL: &[u8] = b"otrd v1 initiator confirm";
const COMMIT_LABEL: &[u8] = b"otrd v3 sas commit";

/// The initiator's commitment to its SAS secret: `SHA-256("otrd v3 sas commit" ‖ n)`.
fn commitment(nonce: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(COMMIT_LABEL);
    h.update(nonce);
    h.finalize().into()
}

/// Which room and which two users a handshake is about (from the room, never from the payload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionContext {
    /// The DM room id.
    pub room_id: String,
    /// Our user id.
    pub local_uid: String,
    /// The peer's user id (the room's other uid).
    pub peer_uid: String,
}

/// An otrd peer's offer, read from a `handshake` payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// The initiating instance.
    pub tag: InstanceTag,
    /// Its identity public key.
    pub ik: [u8; 32],
    /// Its ephemeral public key for this handshake.
    pub ek: [u8; 32],
    /// Its commitment to the SAS secret it reveals in the confirm frame.
    pub commit: [u8; 32],
}

/// An otrd responder's answer, read from an `acknowledge` payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The responding instance.
    pub tag: InstanceTag,
    /// The initiating instance this answer is for.
    pub to: InstanceTag,
    /// The responder's identity public key.
    pub ik: [u8; 32],
    /// The responder's ephemeral public key.
    pub ek: [u8; 32],
    /// The responder's key-confirmation MAC.
    pub confirm: [u8; 32],
}

/// The initiator's key confirmation, sent in a third frame after the acknowledge. On the wire it
/// is the `"otrd"` member of that frame: `{"v":3,"tag","to","rk","n","confirm"}` (`rk` = the
/// initiator's first ratchet public key, `n` = the SAS secret its offer committed to, `confirm` =
/// its MAC, all base64).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NativeConfirm {
    /// Protocol version ([`NATIVE_VERSION`]).
    pub v: u8,
    /// The initiator's instance tag (hex).
    pub tag: String,
    /// The responder's instance tag (hex).
    pub to: String,
    /// The initiator's first ratchet public key (base64).
    pub rk: String,
    /// The SAS secret the offer committed to, revealed only now (base64).
    pub n: String,
    /// HMAC over the transcript hash, `rk` and `n` (base64).
    pub confirm: String,
}

impl NativeConfirm {
    /// As a JSON value, to be placed under `"otrd"` in the confirm frame.
    pub fn to_value(&self) -> Value {
        json!({"v": self.v, "tag": self.tag, "to": self.to, "rk": self.rk, "n": self.n,
               "confirm": self.confirm})
    }

    /// The responder this confirmation is addressed to.
    pub fn receiver_tag(&self) -> Option<InstanceTag> {
        InstanceTag::from_hex(&self.to)
    }
}

/// Reads a confirm frame's member: accepts the member itself or a payload holding it as `"otrd"`.
pub fn parse_confirm(value: &Value) -> Option<NativeConfirm> {
    let member = value.get(OTRD_MEMBER).unwrap_or(value);
    let c: NativeConfirm = serde_json::from_value(member.clone()).ok()?;
    (c.v == NATIVE_VERSION && c.rk.len() <= 64 && c.n.len() <= 64 && c.confirm.len() <= 64)
        .then_some(c)
}

fn member(payload: &Value) -> Option<&Map<String, Value>> {
    let m = payload.get(OTRD_MEMBER)?.as_object()?;
    (m.get("v")?.as_u64()? == u64::from(NATIVE_VERSION)).then_some(m)
}

fn tag_of(m: &Map<String, Value>, key: &str) -> Option<InstanceTag> {
    InstanceTag::from_hex(m.get(key)?.as_str()?)
}

fn key_of(m: &Map<String, Value>, key: &str) -> Option<[u8; 32]> {
    unb64_32(m.get(key)?.as_str()?)
}

/// Detects an otrd peer: the offer in a `handshake` payload, if present and well-formed.
pub fn parse_offer(payload: &Value) -> Option<Offer> {
    let m = member(payload)?;
    Some(Offer {
        tag: tag_of(m, "tag")?,
        ik: key_of(m, "ik")?,
        ek: key_of(m, "ek")?,
        commit: key_of(m, "commit")?,
    })
}

/// The answer in an `acknowledge` payload, if present and well-formed.
pub fn parse_answer(payload: &Value) -> Option<Answer> {
    let m = member(payload)?;
    Some(Answer {
        tag: tag_of(m, "tag")?,
        to: tag_of(m, "to")?,
        ik: key_of(m, "ik")?,
        ek: key_of(m, "ek")?,
        confirm: key_of(m, "confirm")?,
    })
}

fn str_member<'a>(payload: &'a Value, key: &str) -> Option<&'a str> {
    payload.get(key)?.as_str()
}

/// Checks a payload's `roomId` and `userId` (the sender) against the context.
fn check_payload(payload: &Value, room: &str, sender: &str) -> Result<(), NativeError> {
    if str_member(payload, "roomId") != Some(room) {
        return Err(NativeError::WrongContext("roomId"));
    }
    if str_member(payload, "userId") != Some(sender) {
        return Err(NativeError::WrongContext("userId"));
    }
    Ok(())
}

/// Root key and the two confirmation keys of one handshake.
struct HandshakeKeys {
    root: LockedKey<32>,
    confirm_initiator: LockedKey<32>,
    confirm_responder: LockedKey<32>,
}

/// HKDF over the three DH results, salted with the transcript hash, bound to room, users, tags.
fn derive(
    th: &[u8; 32],
    dhs: [&[u8; 32]; 3],
    ctx_room: &str,
    uid_i: &str,
    uid_r: &str,
    tag_i: InstanceTag,
    tag_r: InstanceTag,
) -> HandshakeKeys {
    let mut ikm = Zeroizing::new([0u8; 96]);
    for (i, d) in dhs.iter().enumerate() {
        ikm[i * 32..(i + 1) * 32].copy_from_slice(*d);
    }
    let mut info = b"otrd v1 session".to_vec();
    put_lp(&mut info, ctx_room.as_bytes());
    put_lp(&mut info, uid_i.as_bytes());
    put_lp(&mut info, uid_r.as_bytes());
    info.extend_from_slice(&tag_i.value().to_be_bytes());
    info.extend_from_slice(&tag_r.value().to_be_bytes());
    let mut okm = Zeroizing::new([0u8; 96]);
    hkdf(th, ikm.as_ref(), &info, okm.as_mut());
    HandshakeKeys {
        root: locked_from(&okm[..32]),
        confirm_initiator: locked_from(&okm[32..64]),
        confirm_responder: locked_from(&okm[64..]),
    }
}

/// The initiator between sending the offer and receiving the answer.
pub struct PendingInitiator {
    identity: LocalIdentity,
    tag: InstanceTag,
    ephemeral: LockedKey<32>,
    ephemeral_pub: [u8; 32],
    /// The SAS secret the offer committed to; revealed in the confirm frame.
    nonce: LockedKey<32>,
    /// The commitment the offer carried.
    commit: [u8; 32],
    /// Set once an answer completed and `nonce` went out: no second answer may complete this
    /// offer (a responder that saw `nonce` could otherwise pick a key for a SAS of its choice).
    revealed: Cell<bool>,
}

impl fmt::Debug for PendingInitiator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingInitiator")
            .field("tag", &self.tag)
            .finish_non_exhaustive()
    }
}

/// Starts a native handshake: returns the pending state and the `"otrd"` member to add to the
/// stock `handshake` payload (beside its P-256 `publicKey`).
pub fn make_offer<R: rand::RngCore + rand::CryptoRng + ?Sized>(
    id: &LocalIdentity,
    tag: InstanceTag,
    rng: &mut R,
) -> (PendingInitiator, Value) {
    let ephemeral = random_key(rng);
    let ephemeral_pub = public_of(&ephemeral);
    let nonce = random_key(rng);
    let commit = commitment(nonce.expose());
    let offer = json!({
        "v": NATIVE_VERSION,
        "tag": tag.to_hex(),
        "ik": b64(&id.public()),
        "ek": b64(&ephemeral_pub),
        "commit": b64(&commit),
    });
    let pending = PendingInitiator {
        identity: id.clone(),
        tag,
        ephemeral,
        ephemeral_pub,
        nonce,
        commit,
        revealed: Cell::new(false),
    };
    (pending, offer)
}

#[cfg(test)]
impl PendingInitiator {
    /// Plays a cheating initiator (a man in the middle facing Bob): it swaps the secret its offer
    /// committed to for another, as if chosen after seeing the responder's key.
    pub(super) fn cheat_with_secret(&mut self, secret: [u8; 32]) {
        let mut secret = secret;
        self.nonce = LockedKey::new(&mut secret);
    }
}

impl PendingInitiator {
    /// Our instance tag (answers must be addressed to it).
    pub fn tag(&self) -> InstanceTag {
        self.tag
    }

    /// Verifies the responder's answer and derives the session. `handshake_payload` is exactly
    /// what we sent (with the offer), `ack_payload` exactly what arrived. On success returns the
    /// established session and the confirmation to send. Borrowed, so a forged answer leaves the
    /// offer waiting for the genuine one; but once one answer completed (and the SAS secret is
    /// out), every later answer is refused.
    pub fn complete<R: rand::RngCore + rand::CryptoRng + ?Sized>(
        &self,
        ctx: &SessionContext,
        handshake_payload: &Value,
        ack_payload: &Value,
        rng: &mut R,
    ) -> Result<(NativeSession, NativeConfirm), NativeError> {
        if self.revealed.get() {
            return Err(NativeError::AlreadyCompleted);
        }
        let sent = parse_offer(handshake_payload).ok_or(NativeError::Malformed("own offer"))?;
        if sent.commit != self.commit {
            return Err(NativeError::WrongContext(
                "handshake is not the one this offer made",
            ));
        }
        if sent.ek != self.ephemeral_pub
            || sent.ik != self.identity.public()
            || sent.tag != self.tag
        {
            return Err(NativeError::WrongContext(
                "handshake is not the one this offer made",
            ));
        }
        check_payload(handshake_payload, &ctx.room_id, &ctx.local_uid)?;
        let ans = parse_answer(ack_payload).ok_or(NativeError::Malformed("answer"))?;
        if ans.to != self.tag {
            return Err(NativeError::NotForThisInstance);
        }
        if ans.tag == self.tag || ans.ek == self.ephemeral_pub {
            return Err(NativeError::Reflection);
        }
        check_payload(ack_payload, &ctx.room_id, &ctx.peer_uid)?;

        let th = transcript_hash(handshake_payload, ack_payload);
        let d1 = dh(self.identity.secret(), &ans.ek)?;
        let d2 = dh(&self.ephemeral, &ans.ik)?;
        let d3 = dh(&self.ephemeral, &ans.ek)?;
        let keys = derive(
            &th,
            [&d1, &d2, &d3],
            &ctx.room_id,
            &ctx.local_uid,
            &ctx.peer_uid,
            self.tag,
            ans.tag,
        );
        let expected = hmac(keys.confirm_responder.expose(), &[RESPONDER_LABEL, &th]);
        if !mac_eq(expected.as_ref(), &ans.confirm) {
            return Err(NativeError::KeyConfirmationFailed);
        }

        // Alice's side of the Double Ratchet: a fresh ratchet key against Bob's first ratchet
        // key, which is his handshake ephemeral key.
        let ratchet = random_key(rng);
        let ratchet_pub = public_of(&ratchet);
        let (root, sending) = kdf_rk(&keys.root, dh(&ratchet, &ans.ek)?.as_ref());
        let mac = hmac(
            keys.confirm_initiator.expose(),
            &[INITIATOR_LABEL, &th, &ratchet_pub, self.nonce.expose()],
        );
        let confirm = NativeConfirm {
            v: NATIVE_VERSION,
            tag: self.tag.to_hex(),
            to: ans.tag.to_hex(),
            rk: b64(&ratchet_pub),
            n: b64(self.nonce.expose()),
            confirm: b64(mac.as_ref()),
        };
        self.revealed.set(true);
        let session = NativeSession::new(RatchetInit {
            own_tag: self.tag,
            peer_tag: ans.tag,
            root,
            sending: Some((ratchet, ratchet_pub, sending)),
            peer_ratchet: ans.ek,
            receiving: None,
            peer_identity: ans.ik,
            sas: sas::compute(&th, self.nonce.expose(), &self.identity.public(), &ans.ik),
        });
        Ok((session, confirm))
    }
}

/// The responder between sending its answer and receiving the initiator's confirmation.
pub struct PendingResponder {
    tag: InstanceTag,
    peer_tag: InstanceTag,
    peer_identity: [u8; 32],
    transcript: [u8; 32],
    /// The initiator's commitment and our identity key: the SAS is computed only once the
    /// secret is revealed. Boxed to keep the pending answer (held in an enum) small.
    sas_inputs: Box<SasInputs>,
    root: LockedKey<32>,
    confirm_initiator: LockedKey<32>,
    ephemeral: LockedKey<32>,
}

/// What the responder needs for the SAS besides the transcript (public values).
struct SasInputs {
    commit: [u8; 32],
    own_identity: [u8; 32],
}

impl fmt::Debug for PendingResponder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingResponder")
            .field("tag", &self.tag)
            .field("peer_tag", &self.peer_tag)
            .finish_non_exhaustive()
    }
}

/// Answers an otrd offer. `ack_payload` is the stock `acknowledge` payload we are about to send
/// (`roomId`, `userId`, `publicKey`); the returned value is that payload with the `"otrd"`
/// answer added — send exactly it, since the transcript covers every member.
pub fn answer<R: rand::RngCore + rand::CryptoRng + ?Sized>(
    id: &LocalIdentity,
    tag: InstanceTag,
    ctx: &SessionContext,
    handshake_payload: &Value,
    ack_payload: Value,
    rng: &mut R,
) -> Result<(PendingResponder, Value), NativeError> {
    let offer = parse_offer(handshake_payload).ok_or(NativeError::Malformed("offer"))?;
    if offer.tag == tag || offer.ik == id.public() {
        return Err(NativeError::Reflection);
    }
    check_payload(handshake_payload, &ctx.room_id, &ctx.peer_uid)?;
    check_payload(&ack_payload, &ctx.room_id, &ctx.local_uid)?;
    let mut ack = ack_payload;
    let ack_map = ack
        .as_object_mut()
        .ok_or(NativeError::Malformed("acknowledge payload"))?;

    let ephemeral = random_key(rng);
    let ephemeral_pub = public_of(&ephemeral);
    ack_map.insert(
        OTRD_MEMBER.to_owned(),
        json!({
            "v": NATIVE_VERSION,
            "tag": tag.to_hex(),
            "to": offer.tag.to_hex(),
            "ik": b64(&id.public()),
            "ek": b64(&ephemeral_pub),
        }),
    );
    let th = transcript_hash(handshake_payload, &ack);
    let d1 = dh(&ephemeral, &offer.ik)?;
    let d2 = dh(id.secret(), &offer.ek)?;
    let d3 = dh(&ephemeral, &offer.ek)?;
    let keys = derive(
        &th,
        [&d1, &d2, &d3],
        &ctx.room_id,
        &ctx.peer_uid,
        &ctx.local_uid,
        offer.tag,
        tag,
    );
    let mac = hmac(keys.confirm_responder.expose(), &[RESPONDER_LABEL, &th]);
    if let Some(m) = ack.get_mut(OTRD_MEMBER).and_then(Value::as_object_mut) {
        m.insert("confirm".to_owned(), Value::String(b64(mac.as_ref())));
    }
    let pending = PendingResponder {
        tag,
        peer_tag: offer.tag,
        peer_identity: offer.ik,
        transcript: th,
        sas_inputs: Box::new(SasInputs {
            commit: offer.commit,
            own_identity: id.public(),
        }),
        root: keys.root,
        confirm_initiator: keys.confirm_initiator,
        ephemeral,
    };
    Ok((pending, ack))
}

impl PendingResponder {
    /// The initiating instance we answered.
    pub fn peer_tag(&self) -> InstanceTag {
        self.peer_tag
    }

    /// Verifies the initiator's confirmation (the frame's `"otrd"` member, or the frame holding
    /// it) and returns the established session. Borrowed, so a forged confirmation leaves the
    /// answer waiting for the genuine one.
    pub fn confirm(&self, confirm: &Value) -> Result<NativeSession, NativeError> {
        let c = parse_confirm(confirm).ok_or(NativeError::Malformed("confirm"))?;
        if InstanceTag::from_hex(&c.to) != Some(self.tag) {
            return Err(NativeError::NotForThisInstance);
        }
        if InstanceTag::from_hex(&c.tag) != Some(self.peer_tag) {
            return Err(NativeError::WrongContext("confirm from another instance"));
        }
        let ratchet_pub = unb64_32(&c.rk).ok_or(NativeError::Malformed("confirm rk"))?;
        let mac = unb64_32(&c.confirm).ok_or(NativeError::Malformed("confirm mac"))?;
        let nonce = Zeroizing::new(unb64_32(&c.n).ok_or(NativeError::Malformed("confirm n"))?);
        let expected = hmac(
            self.confirm_initiator.expose(),
            &[
                INITIATOR_LABEL,
                &self.transcript,
                &ratchet_pub,
                nonce.as_ref(),
            ],
        );
        if !mac_eq(expected.as_ref(), &mac) {
            return Err(NativeError::KeyConfirmationFailed);
        }
        // After the MAC: a genuine initiator revealing another secret than it committed to is one
        // that chose it after seeing our key, to steer the SAS.
        if !mac_eq(&commitment(&nonce), &self.sas_inputs.commit) {
            return Err(NativeError::CommitmentMismatch);
        }
        // Bob's side: our handshake ephemeral key was the first ratchet key; derive the receiving
        // chain for Alice's ratchet key and drop ours (a new one is made at our first send).
        let (root, receiving) = kdf_rk(&self.root, dh(&self.ephemeral, &ratchet_pub)?.as_ref());
        Ok(NativeSession::new(RatchetInit {
            own_tag: self.tag,
            peer_tag: self.peer_tag,
            root,
            sending: None,
            peer_ratchet: ratchet_pub,
            receiving: Some(receiving),
            peer_identity: self.peer_identity,
            sas: sas::compute(
                &self.transcript,
                &nonce,
                &self.peer_identity,
                &self.sas_inputs.own_identity,
            ),
        }))
    }
}
