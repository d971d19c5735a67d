//! The per-room OTR session state machine — pure: no sockets, no clock, no global randomness.
//!
//! One [`Session`] per DM room. The engine feeds it [`Input`]s (user commands, signalling events
//! from `<myUid>/otr`, `t:"otr"` room messages, call outcomes, timer ticks) together with the
//! current time and a CSPRNG, and performs the [`Output`]s it returns, in order.
//!
//! # Results of user commands
//! [`Session::handle`] returns `Result<Vec<Output>, SessionError>`. An `Err` only ever answers a
//! *user command* (`Start`, `Accept`, `Decline`, `Refresh`, `End`, `Send`) that was refused: the
//! session is unchanged and nothing must be sent — this is how "fail closed" looks (a `Send` while
//! not established returns [`SessionError::NotEstablished`] and no [`Output::SendMessage`]).
//! Inputs from the network never return `Err`: problems there become [`Output::Event`]s carrying
//! [`EventKind::Error`] with a machine-readable `code`
//! (`forged_event`, `replayed_message`, `decrypt_failed`, `send_failed`, ...). On a successful
//! `Send`, the outputs hold exactly one [`Output::SendMessage`] (its `id` is the message id) and an
//! outgoing message event with the timestamp; [`sent_message`] picks both out.
//!
//! # What the machine does (PROTOCOL.md §8, from both sides)
//! - Start: fresh key pair, `DeleteOldMessages`, `handshake` without `refresh`; `Establishing`,
//!   `Timeout` after 10 s (keys kept a grace period so a late `acknowledge` still completes).
//! - Incoming `handshake`: `Requested` and an invitation event (expires in 10 s; then `Timeout` in
//!   our view, but a late `Accept` still answers and completes), or auto-accept per policy. With
//!   `refresh:true` while `Established` (legacy): re-keyed at once, no prompt. While `Establishing`: glare —
//!   ours is abandoned and we answer as responder, unless our uid sorts lower than the peer's (then
//!   we keep ours: two daemons that both abandoned would wait on each other forever, and a stock
//!   peer prompts for our handshake anyway).
//! - `acknowledge` completes our handshake (only when we are the initiator waiting for it); the
//!   first session's initiator posts `user_joined_otr`. `deny` is honoured only while
//!   `Establishing`, `end` only while `Established`. A peer going offline ends a legacy session.
//! - A forged or tampered answer to our handshake (or confirmation of our answer) raises an alarm
//!   and is dropped: the handshake waits for the genuine one, and its timeout ends it in `Error`
//!   naming what was refused.
//!
//! # Live native sessions (`control.rs`)
//! The stock signals carry no authentication, so a live native session obeys only signals proven
//! by its own keys: a native refresh (fresh 3DH, old keys live until the new ones are confirmed,
//! then kept for what is in flight for a short while), its answer and its refusal, and `end`.
//! Anything else — stock handshakes, refreshes, acknowledges, denies, ends, the server's "offline"
//! — changes nothing and is not answered (a `forged_signal` alarm). A new native offer from the
//! peer is an invitation beside the live session. A frame that does not decrypt is dropped.
//! Stock-only offers and answers are judged by `legacy_verdict` (8.x: refused; `require_native`:
//! refused; a peer that spoke native before: the downgrade policy).
//! - Messages are sealed only when `Established`; each stays pending until its ack comes back,
//!   is resent with the same id and ciphertext on `Reconnected` (and on ticks, a bounded number of
//!   times), and is reported `send_failed` when the delivery bound passes or the session ends.
//!
//! # Protections (PROTOCOL.md §9.1) that keep stock peers working
//! Signalling only from the room's peer for this room (else `forged_event`); duplicates inside a
//! window dropped, older repeats of a key reported; unsolicited `acknowledge` ignored; on messages
//! `inner._id == outer._id`, `inner.userId == u._id == peer`, our own echoes skipped, reflections
//! of our ciphertext and replays of ids or ack tokens rejected, sender clock skew bounded.
//!
//! # Scheme seam
//! Key material sits behind `scheme::Cipher` and the handshake's optional `"otrd"` member goes
//! through the negotiation functions in `scheme.rs`; the native scheme adds a variant and fills those
//! functions in without touching the transitions.

mod control;
mod machine;
mod messages;
mod replay;
mod scheme;
mod signals;

#[cfg(test)]
mod native_tests;
#[cfg(test)]
mod tests;

pub use machine::{Session, LEGACY_WARNING};

use crate::engine::{EngineError, EventKind};
use crate::secure::SecretString;

/// Who and where: fixed for the life of a [`Session`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomContext {
    /// The DM room id.
    pub room_id: String,
    /// Our user id.
    pub my_uid: String,
    /// The other member's user id (from the room's `uids`, never from an event).
    pub peer_uid: String,
    /// The other member's username (for events).
    pub peer_username: String,
}

/// Tunables of one session; [`Default`] follows the stock client's timings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionPolicy {
    /// Accept invitations without asking the user.
    pub auto_accept: bool,
    /// A sent message not acknowledged within this many ms is reported `send_failed`.
    pub delivery_timeout_ms: i64,
    /// How long the stock client waits on a handshake or a prompt (10 s).
    pub handshake_timeout_ms: i64,
    /// After a timeout, how long keys (ours or the peer's offer) are kept so a late answer still
    /// completes the session.
    pub late_answer_grace_ms: i64,
    /// An unacknowledged message is resent (same id and ciphertext) after this many ms...
    pub resend_interval_ms: i64,
    /// ...at most this many times (besides resends on reconnect).
    pub max_resends: u32,
    /// Incoming messages whose sender timestamp is further than this from our clock are rejected.
    pub max_clock_skew_ms: i64,
    /// Identical signalling events within this window are relay duplicates, dropped silently.
    pub dedupe_window_ms: i64,
    /// The server's `Message_MaxAllowedSize` (applies to the ciphertext string).
    pub max_message_chars: usize,
    /// This daemon's native identity and instance tag; `None` means legacy only.
    pub native: Option<NativeSetup>,
    /// The peer has spoken native before (the engine asks the trust store): a legacy answer to
    /// our native offer is then a possible downgrade.
    pub peer_known_native: bool,
    /// On such a downgrade: refuse the session (default) or accept it, with an alarm either way.
    pub refuse_downgrade: bool,
    /// A message that does not decrypt ends an established session in `Error` (stock
    /// behaviour; default). Off on transports anyone can write to (path B on 8.x), where an
    /// undecryptable frame is reported and dropped so a third user cannot end the session.
    /// Native sessions never end on a bad frame, whatever this says.
    pub decrypt_failure_ends_session: bool,
    /// Only the native scheme is acceptable (config `require_native`): start, accept and sends
    /// refuse legacy, first contact included.
    pub require_native: bool,
    /// The stock scheme cannot be genuine here (Rocket.Chat 8.x, transports A and B): stock-only
    /// offers and answers are refused outright.
    pub legacy_impossible: bool,
}

/// What the native scheme needs from the daemon: the identity and this run's instance tag.
#[derive(Debug, Clone)]
pub struct NativeSetup {
    /// The account's long-term identity (from `crate::identity::IdentityStore`).
    pub identity: crate::otr::native::LocalIdentity,
    /// This daemon run's instance tag.
    pub tag: crate::otr::native::InstanceTag,
}

impl PartialEq for NativeSetup {
    fn eq(&self, other: &Self) -> bool {
        self.identity.public() == other.identity.public() && self.tag == other.tag
    }
}

impl Eq for NativeSetup {}

impl Default for SessionPolicy {
    fn default() -> Self {
        Self {
            auto_accept: false,
            delivery_timeout_ms: 60_000,
            handshake_timeout_ms: 10_000,
            late_answer_grace_ms: 60_000,
            resend_interval_ms: 5_000,
            max_resends: 3,
            max_clock_skew_ms: 5 * 60_000,
            dedupe_window_ms: 10_000,
            max_message_chars: 5_000,
            native: None,
            peer_known_native: false,
            refuse_downgrade: true,
            decrypt_failure_ends_session: true,
            require_native: false,
            legacy_impossible: false,
        }
    }
}

impl SessionPolicy {
    /// The defaults with the user's auto-accept choice and delivery bound (config `[policy]`).
    pub fn new(auto_accept: bool, delivery_timeout_ms: i64) -> Self {
        Self {
            auto_accept,
            delivery_timeout_ms,
            ..Self::default()
        }
    }
}

/// The four signalling event types on `<uid>/otr` (PROTOCOL.md §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignalKind {
    /// `handshake`: an offer (or a refresh).
    Handshake,
    /// `acknowledge`: the answer.
    Acknowledge,
    /// `deny`: the invitation was declined.
    Deny,
    /// `end`: the session is over.
    End,
}

impl SignalKind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Handshake => "handshake",
            Self::Acknowledge => "acknowledge",
            Self::Deny => "deny",
            Self::End => "end",
        }
    }

    /// From the wire name.
    pub fn from_wire(s: &str) -> Option<Self> {
        match s {
            "handshake" => Some(Self::Handshake),
            "acknowledge" => Some(Self::Acknowledge),
            "deny" => Some(Self::Deny),
            "end" => Some(Self::End),
            _ => None,
        }
    }
}

/// The system message types posted through REST `chat.otr` (PROTOCOL.md §6).
pub mod system {
    /// Posted by the initiator when its first session is acknowledged.
    pub const USER_JOINED_OTR: &str = "user_joined_otr";
    /// Posted by the initiator of a key refresh.
    pub const USER_REQUESTED_OTR_KEY_REFRESH: &str = "user_requested_otr_key_refresh";
    /// Posted by the responder after it answered a refresh.
    pub const USER_KEY_REFRESHED_SUCCESSFULLY: &str = "user_key_refreshed_successfully";
}

/// Something that happened to the session, or a user command.
#[derive(Debug)]
pub enum Input {
    /// The user starts OTR in this room.
    Start {
        /// Which scheme to offer.
        scheme: crate::engine::SchemePreference,
    },
    /// The user accepts the pending invitation (also after its 10 s window).
    Accept {
        /// The invitation event's sequence number the user saw; `None` accepts whatever is
        /// pending (scripts that accept at once).
        seq: Option<u64>,
    },
    /// The user declines the pending invitation.
    Decline,
    /// The user asks for fresh keys in an established session.
    Refresh,
    /// The user (or a lock) ends the session; `notify_peer` sends `end`.
    End {
        /// Send `end` to the peer.
        notify_peer: bool,
    },
    /// The user sends a message (fails closed unless established).
    Send {
        /// The plaintext.
        text: SecretString,
    },
    /// A signalling event from `<myUid>/otr` for this room, already split by the engine.
    Signal {
        /// Event type.
        kind: SignalKind,
        /// The payload object (`roomId`, `userId`, `publicKey`, `refresh`, maybe `otrd`).
        payload: serde_json::Value,
    },
    /// `args[0]` of a `stream-room-messages` event with `t == "otr"`: the peer's messages, our own
    /// echoes and ack re-broadcasts (`otrAck` or `otr.ack`).
    RoomMessage {
        /// The message object as received.
        message: serde_json::Value,
    },
    /// Outcome of the `sendMessage` call for message `id`. `ok: false` means the server refused
    /// it; a call lost with the connection should not be reported (`Reconnected` resends instead).
    SendResult {
        /// Message id.
        id: String,
        /// The server accepted it.
        ok: bool,
        /// Why not, for people.
        detail: String,
    },
    /// The connection is back: unacknowledged messages are resent with the same id and ciphertext.
    Reconnected,
    /// The peer's presence changed; offline ends a legacy session as stock clients do (not a
    /// native one: the server must not be able to end it).
    PeerPresence {
        /// Online (any status but offline).
        online: bool,
    },
    /// Time passed (timeouts, resends, delivery bound). Call about once a second.
    Tick,
}

/// What the engine must do, in order.
#[derive(Debug, Clone)]
pub enum Output {
    /// `stream-notify-user` `["<peerUid>/otr", kind, payload]`.
    Signal {
        /// Event type.
        kind: SignalKind,
        /// Payload object.
        payload: serde_json::Value,
    },
    /// `sendMessage {_id: id, rid, msg, t: "otr"}`; a resend repeats the same id and msg.
    SendMessage {
        /// Message id (outer `_id` = inner `_id`).
        id: String,
        /// The ciphertext envelope string.
        msg: String,
    },
    /// `updateOTRAck({message, ack})`: `message` is the received object with `ts` replaced by the
    /// sender's inner date (PROTOCOL.md §4.4).
    SendAck {
        /// The message object to echo.
        message: serde_json::Value,
        /// The ack envelope string.
        ack: String,
    },
    /// `POST chat.otr {roomId, type: kind}` (one of [`system`]).
    SystemMessage {
        /// System message type.
        kind: &'static str,
    },
    /// `deleteOldOTRMessages(rid)`.
    DeleteOldMessages,
    /// For front-ends.
    Event(EventKind),
}

/// Why a user command was refused. The session is unchanged when one is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// Sending needs an established session; nothing was sent.
    #[error("OTR is not established with {peer} (session is {state}); nothing was sent")]
    NotEstablished {
        /// Peer username.
        peer: String,
        /// Current state name.
        state: &'static str,
    },
    /// Accept/decline without a pending invitation.
    #[error("there is no pending OTR invitation from {0}")]
    NoInvitation(String),
    /// Start while a session is already underway.
    #[error("an OTR session with {peer} is already {state}")]
    AlreadyActive {
        /// Peer username.
        peer: String,
        /// Current state name.
        state: &'static str,
    },
    /// Nothing to end.
    #[error("there is no OTR session with {0} to end")]
    NotActive(String),
    /// The native scheme is not available in this build.
    #[error("the native otrd-to-otrd scheme is not available in this build; start with the legacy scheme")]
    NativeUnavailable,
    /// The message is too long for the server once encrypted.
    #[error("message too long: {chars} characters once encrypted, the server allows {max}")]
    TooLong {
        /// Ciphertext length.
        chars: usize,
        /// Limit.
        max: usize,
    },
    /// The stock scheme was refused (`require_native`, Rocket.Chat 8.x, a possible downgrade).
    #[error("{0}")]
    LegacyRefused(String),
    /// The invitation the user accepted was replaced by another offer meanwhile.
    #[error("the invitation from {peer} you accepted (seq {asked}) was replaced by a newer {mode} offer{}; nothing was accepted — look at the new offer and accept it by its seq", current.map(|c| format!(" (seq {c})")).unwrap_or_default())]
    InvitationReplaced {
        /// Peer username.
        peer: String,
        /// The seq the user named.
        asked: u64,
        /// The pending invitation's seq.
        current: Option<u64>,
        /// Its scheme.
        mode: &'static str,
    },
    /// A key refresh is already waiting for the peer.
    #[error("a key refresh with {0} is already under way")]
    RefreshUnderway(String),
    /// Key generation or encryption failed.
    #[error("OTR crypto failed: {0}")]
    Crypto(String),
}

impl From<SessionError> for EngineError {
    fn from(e: SessionError) -> Self {
        match e {
            SessionError::NativeUnavailable => EngineError::Unimplemented(e.to_string()),
            SessionError::TooLong { .. } => EngineError::InvalidArgument(e.to_string()),
            SessionError::Crypto(_) => EngineError::Internal(e.to_string()),
            _ => EngineError::FailedPrecondition(e.to_string()),
        }
    }
}

/// The message id and timestamp of a successful `Send`, from its outputs.
pub fn sent_message(outputs: &[Output]) -> Option<(String, i64)> {
    outputs.iter().find_map(|o| match o {
        Output::Event(EventKind::Message {
            direction: crate::engine::Direction::Out,
            id,
            ts_ms,
            ..
        }) => Some((id.clone(), *ts_ms)),
        _ => None,
    })
}
