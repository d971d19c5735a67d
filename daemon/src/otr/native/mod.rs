//! The native otrd-to-otrd scheme: authenticated key agreement and the Double Ratchet, as pure
//! logic (no I/O, no clocks, randomness passed in). The session state machine drives it; this
//! module only turns payloads and frames into keys and plaintext and back.
//!
//! # Design (what a reviewer should check)
//!
//! **Identity.** Each account has a long-term X25519 key ([`LocalIdentity`], persisted by
//! `crate::identity`). Its [`Fingerprint`] is SHA-256 of the 32-byte public key, shown as 64
//! uppercase hex digits in 8 groups of 8. Each daemon start picks a random [`InstanceTag`]
//! (a `u32` ≥ `0x100`, as in OTRv3, written as 8 lowercase hex digits) so one user running otrd
//! on two machines does not break sessions: every native member and every message header names
//! the sender's and the receiver's tag, and anything addressed to another instance is ignored.
//!
//! **Negotiation inside the stock frames.** Stock clients ignore unknown payload members, so:
//! * the initiator's `handshake` payload gets `"otrd": {"v":3, "tag", "ik", "ek", "commit"}`
//!   beside the stock P-256 `publicKey` ([`make_offer`]; a stock peer still answers the stock
//!   part); `commit = SHA-256("otrd v3 sas commit" ‖ n)` for a fresh 32-byte secret `n`;
//! * an otrd responder's `acknowledge` gets `"otrd": {"v":3, "tag", "to", "ik", "ek", "confirm"}`
//!   ([`answer`]); `to` is the initiator's tag, `confirm` the responder's key-confirmation MAC;
//! * the initiator verifies that MAC ([`PendingInitiator::complete`]) and sends a third frame
//!   carrying [`NativeConfirm`] `{"v":3, "tag", "to", "rk", "n", "confirm"}`: its first ratchet
//!   public key, the secret `n` (revealed only now), and its own MAC; the responder verifies the MAC
//!   and that `n` matches `commit` ([`PendingResponder::confirm`]). Each side holds an
//!   established [`NativeSession`] only after verifying the other's MAC. An offer completes once:
//!   after `n` is out, a second answer to it is refused.
//!
//! `ik`, `ek`, `commit`, `rk`, `n` and `confirm` are standard base64 (padded) of 32 bytes.
//!
//! **SAS commitment** (ZRTP's hash commitment, applied to a secret rather than the DH key so the
//! responder can still confirm keys in the acknowledge). Without it a man in the middle, answering
//! Alice's offer, could try responder keys until Alice's SAS equals the one of its handshake with
//! Bob. With it, the SAS depends on `n`, which the responder learns only after its key is sent
//! and the transcript fixed; and an initiator is bound to its `n` before it sees the responder's
//! key. So neither role can search: see [`sas`] for the entropy and the odds. A refresh is a fresh
//! native handshake inside the live session ([`make_offer`] / [`answer`] again), so it carries
//! its own commitment and SAS.
//!
//! **Transcript.** `TH = SHA-256("otrd v1 transcript" ‖ len ‖ canon(handshake) ‖ len ‖
//! canon(acknowledge))` over BOTH complete payloads — `roomId`, `userId`, the stock `publicKey`,
//! `refresh`, the `otrd` members, every member present — where `canon` is JSON with object keys
//! sorted at every level, and the acknowledge's `otrd.confirm` member is left out (it is the MAC
//! over TH). A server that strips the offer, swaps the P-256 key or any otrd key, or edits any
//! member makes the two sides compute different TH and confirmation fails.
//!
//! **Key agreement (3DH, deniable: nothing is signed).** With identity keys IK and ephemeral keys
//! EK, initiator *i*, responder *r*:
//! `ikm = DH(IK_i, EK_r) ‖ DH(EK_i, IK_r) ‖ DH(EK_i, EK_r)`;
//! `HKDF-SHA256(salt = TH, ikm, info = "otrd v1 session" ‖ room ‖ uid_i ‖ uid_r ‖ tag_i ‖ tag_r)`
//! (each variable part length-prefixed) → 96 bytes = root key ‖ confirmation key *i* ‖
//! confirmation key *r*. A DH result that is all zero (low-order point) is rejected.
//! Responder MAC = `HMAC-SHA256(kc_r, "otrd v1 responder confirm" ‖ TH)`; initiator MAC =
//! `HMAC-SHA256(kc_i, "otrd v1 initiator confirm" ‖ TH ‖ rk ‖ n)`, so the initiator's first
//! ratchet key and its revealed secret are authenticated too. MACs are compared in constant time.
//!
//! **Messages: Signal's Double Ratchet** (signal.org/docs/specifications/doubleratchet), see
//! [`ratchet`]: `KDF_RK` = HKDF-SHA256(salt = RK, ikm = DH output, info "otrd v1 ratchet") → 64
//! bytes (new RK, chain key); `KDF_CK`: message key = HMAC(CK, 0x01), next CK = HMAC(CK, 0x02).
//! The responder's handshake ephemeral key is its first ratchet key (Bob's prekey in the spec);
//! the initiator makes a fresh ratchet key at completion and sends its public half in
//! [`NativeConfirm`]. One deviation, documented in [`ratchet`]: the new sending ratchet key is
//! generated at the next send rather than at receive time (same key schedule, and the old private
//! key is dropped as soon as the receiving chain is derived). Skipped message keys are kept for at
//! most [`MAX_SKIP`] per step, [`MAX_SKIPPED_KEYS`] in total, and expire after
//! [`SKIPPED_KEY_LIFETIME`] later messages. Message encryption: AES-256-GCM keyed by the message
//! key itself, nonce = 8 zero bytes ‖ N; each message key seals one message and is deleted, so no
//! (key, nonce) pair repeats (version 1 derived key and nonce through HKDF, for no gain with an
//! AEAD, at ~40% of the per-message cost). Associated data = the frame's
//! version byte and header ‖ a caller context ([`message_context`]: room id, sender uid, receiver
//! uid), so a frame moved to another room or relayed by a third user fails.
//!
//! **Wire frame** (`frame`): `0x02 ‖ sender tag (4) ‖ receiver tag (4) ‖ ratchet pub (32) ‖
//! PN (4) ‖ N (4) ‖ AES-GCM ciphertext+tag`, integers big-endian; the caller wraps the bytes in
//! the EJSON `{"$binary": …}` string. Replays fail (a used message key is deleted), reflections
//! fail (the receiver tag must be ours and chains are per direction), out-of-order frames within
//! the window decrypt. A failed decryption leaves the session unchanged.
//!
//! **SAS** ([`sas`]): `SHA-256("otrd v3 sas" ‖ TH ‖ n ‖ IK_i ‖ IK_r)`; the first 20 bytes as five
//! big-endian `u32`s, each reduced mod 10000, printed as five groups of 4 decimal digits
//! (`"0421 7730 1284 5521 0093"`), about 66.4 bits. Both sides compute the same string; under a
//! MITM the two transcripts differ, and the commitment leaves the MITM no way to make the strings
//! agree but chance (10⁻²⁰ per attempt). Front-ends ask users to compare all five groups.
//!
//! **Labels.** Every label keeps the `otrd v1` prefix it had in version 1: they are
//! domain-separation strings, and only the message AEAD changed in version 2. Version 3's new
//! inputs got new labels (`otrd v3 sas commit`, and `otrd v3 sas` since the SAS input changed).
//!
//! **Secrets at rest** are [`crate::secure::LockedKey`]s (identity and ephemeral private keys,
//! root key, chain keys, ratchet private key, skipped keys); `x25519-dalek` values and AWS-LC's
//! AES-256-GCM keys (`aws-lc-rs`) are built per operation and dropped. No type here has a `Debug` that prints key bytes.

pub mod control;
mod frame;
mod handshake;
mod keys;
pub mod ratchet;
pub mod sas;
mod transcript;

#[cfg(test)]
mod handshake_tests;
#[cfg(test)]
mod ratchet_tests;

pub use frame::{message_context, Header, FRAME_VERSION, HEADER_LEN};
pub use handshake::{
    answer, make_offer, parse_answer, parse_confirm, parse_offer, Answer, NativeConfirm, Offer,
    PendingInitiator, PendingResponder, SessionContext, OTRD_MEMBER,
};
pub use keys::{Fingerprint, LocalIdentity};
pub use ratchet::{NativeSession, MAX_SKIP, MAX_SKIPPED_KEYS, SKIPPED_KEY_LIFETIME};

use std::fmt;

/// The native handshake version carried as `"v"`. Version 3 adds the SAS commitment (`commit` in
/// the offer, `n` in the confirm frame; the SAS covers `n`); version 2 keyed each message's AEAD
/// with the message key directly (version 1 ran it through HKDF first). Versions do not
/// interoperate, so an offer of another version is not ours: that peer's offer is answered as a
/// stock client would, and the session is legacy. (An optional commitment would be stripped by
/// the very server it guards against.) Message frames did not change in version 3 and keep
/// [`FRAME_VERSION`] 2.
pub const NATIVE_VERSION: u8 = 3;

/// Why a native operation failed. Messages name the step, never key material.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum NativeError {
    /// The payload has no usable `otrd` member (missing, wrong version, bad field).
    #[error("native member malformed: {0}")]
    Malformed(&'static str),
    /// The payload's room or sender does not match the session's context.
    #[error("payload does not belong to this session: {0}")]
    WrongContext(&'static str),
    /// The frame or answer is addressed to another instance of this account.
    #[error("addressed to another instance")]
    NotForThisInstance,
    /// Our own frame or offer presented back to us.
    #[error("reflected frame rejected")]
    Reflection,
    /// A Diffie-Hellman result was all zero (low-order peer key).
    #[error("peer key is of low order")]
    WeakKey,
    /// The peer's key-confirmation MAC did not verify: keys or transcript differ.
    #[error("key confirmation failed")]
    KeyConfirmationFailed,
    /// The frame is not a native message frame of a version we speak.
    #[error("message frame malformed: {0}")]
    BadFrame(&'static str),
    /// The message would need more skipped keys than allowed.
    #[error("message too far ahead of the receiving chain")]
    TooFarAhead,
    /// No key for this message any more: a replay, or an expired skipped key.
    #[error("message key unavailable (replayed or expired)")]
    KeyUnavailable,
    /// Authenticated decryption failed (forged, altered, or wrong associated data).
    #[error("message authentication failed")]
    DecryptFailed,
    /// A counter would overflow; the session must be re-keyed.
    #[error("message counter exhausted; start a new session")]
    CounterExhausted,
    /// Encryption failed inside the cipher.
    #[error("message encryption failed")]
    EncryptFailed,
    /// The initiator revealed another SAS secret than its offer committed to: it chose it after
    /// seeing our key (a man in the middle steering the SAS).
    #[error("the revealed SAS secret does not match the offer's commitment")]
    CommitmentMismatch,
    /// An answer to an offer that another answer already completed (its SAS secret is out).
    #[error("this offer was already answered")]
    AlreadyCompleted,
}

/// A daemon instance's tag (a random `u32` ≥ `0x100`, chosen at each start).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct InstanceTag(u32);

impl InstanceTag {
    /// The smallest valid tag (smaller values are reserved, as in OTRv3).
    pub const MIN: u32 = 0x100;

    /// A fresh random tag.
    pub fn random<R: rand::RngCore + ?Sized>(rng: &mut R) -> Self {
        loop {
            let v = rng.next_u32();
            if v >= Self::MIN {
                return Self(v);
            }
        }
    }

    /// A tag from its numeric value, if valid.
    pub fn new(value: u32) -> Option<Self> {
        (value >= Self::MIN).then_some(Self(value))
    }

    /// The numeric value.
    pub fn value(self) -> u32 {
        self.0
    }

    /// 8 lowercase hex digits, as on the wire.
    pub fn to_hex(self) -> String {
        format!("{:08x}", self.0)
    }

    /// Parses the wire form (exactly 8 hex digits, value ≥ `0x100`).
    pub fn from_hex(s: &str) -> Option<Self> {
        if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u32::from_str_radix(s, 16).ok().and_then(Self::new)
    }
}

impl fmt::Debug for InstanceTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InstanceTag({:08x})", self.0)
    }
}

impl fmt::Display for InstanceTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}
