//! How session frames travel through the server, so that the session logic and the schemes never
//! know: a session emits abstract [`Frame`]s and an [`Outbox`] per room carries them, in order.
//!
//! - [`relay`] — the Rocket.Chat ≤ 7.x OTR relay: `<peerUid>/otr` signalling through
//!   `stream-notify-user`, `sendMessage` with `t:"otr"`, `updateOTRAck`, `chat.otr`. The only
//!   path a stock client understands.
//! - [`realtime`] — paths A and B for otrd ↔ otrd on servers without the relay (8.x).
//! - [`outbox`] — one task per room that performs frames in order and reports outcomes.

pub mod outbox;
pub mod realtime;
pub mod relay;

pub use outbox::{Outbox, Report};

use crate::otr::session::SignalKind;
use serde_json::Value;

/// Where a room's frames go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomAddr {
    /// The DM room id.
    pub room_id: String,
    /// The peer's user id (signalling goes to `<peer_uid>/otr`).
    pub peer_uid: String,
}

/// One thing a session asks to send, independent of the path it takes.
#[derive(Debug, Clone)]
pub enum Frame {
    /// A signalling event (handshake, acknowledge, deny, end).
    Signal {
        /// Type.
        kind: SignalKind,
        /// Payload object.
        payload: Value,
    },
    /// An encrypted chat message (same id and ciphertext on resend).
    Message {
        /// Message id.
        id: String,
        /// Ciphertext envelope string.
        msg: String,
    },
    /// An acknowledgement of a received message.
    Ack {
        /// The received message object, `ts` replaced by the inner date.
        message: Value,
        /// Ack envelope string.
        ack: String,
    },
    /// A stock-client system message (`chat.otr`).
    System {
        /// Its type.
        kind: &'static str,
    },
    /// `deleteOldOTRMessages`, as the stock client calls on every key change.
    DeleteOld,
}
