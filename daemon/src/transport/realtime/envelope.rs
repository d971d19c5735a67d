//! The otrd envelope carried on paths A and B (PROTOCOL.md §12.2, §12.3): who sends, for which
//! room, a per-run sequence number, and either a list of items (several messages and acks share
//! one frame when they queue up) or one fragment of a larger item list.
//!
//! The envelope itself is not authenticated: sender and room are claims the receiver checks
//! against the room it knows, and the native scheme binds both into every message's associated
//! data (`otr::native::message_context`), so a frame replayed by a third user or moved to another
//! room does not decrypt.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Envelope format version.
pub const VERSION: u8 = 1;

/// Largest item payload (serialised item list) carried whole; larger ones are fragmented
/// (§12.5: ≤ 8 KiB per frame keeps the DDP frame well under 16 KiB).
pub const MAX_PAYLOAD: usize = 8 * 1024;

/// What one item carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A handshake (offer or refresh); payload = the session's signalling payload.
    Offer,
    /// The answer to an offer.
    Answer,
    /// The initiator's native key confirmation.
    Confirm,
    /// A sealed chat message: `{id, msg}`.
    Message,
    /// An acknowledgement: `{id, ack}`.
    Ack,
    /// The session is over.
    End,
    /// The invitation was declined.
    Deny,
    /// Path probe: `{nonce}`.
    Probe,
    /// Path probe answer: `{nonce}`.
    ProbeAck,
}

/// One thing inside an envelope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    /// Kind.
    pub k: Kind,
    /// Payload.
    pub p: Value,
}

/// A piece of a serialised item list larger than [`MAX_PAYLOAD`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fragment {
    /// Group id (unique per sender run).
    pub id: u64,
    /// Index, from 0.
    pub i: u32,
    /// Number of pieces.
    pub n: u32,
    /// The piece of the JSON text.
    pub d: String,
}

/// One frame as it travels in the `otrd` member.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Format version.
    pub v: u8,
    /// Sender's user id (claimed; checked against the room's peer).
    pub from: String,
    /// Room id (claimed; checked against the room the frame came for).
    pub room: String,
    /// The sender's run id (random per outbox), so sequence numbers restart safely.
    pub run: String,
    /// Sequence number within the run (replays are dropped).
    pub seq: u64,
    /// Items, when whole.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<Item>,
    /// A fragment, when the items were too large.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frag: Option<Fragment>,
}

/// Why an `otrd` member was not an envelope we take.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum EnvelopeError {
    /// Not our shape.
    #[error("not an otrd envelope")]
    Malformed,
    /// A version we do not speak.
    #[error("otrd envelope version {0} is not supported")]
    Version(u8),
    /// Neither items nor a fragment (or both).
    #[error("an otrd envelope must carry items or one fragment")]
    Empty,
}

impl Envelope {
    /// Parses and sanity-checks an envelope received from the network.
    pub fn from_value(v: &Value) -> Result<Self, EnvelopeError> {
        let env: Envelope =
            serde_json::from_value(v.clone()).map_err(|_| EnvelopeError::Malformed)?;
        if env.v != VERSION {
            return Err(EnvelopeError::Version(env.v));
        }
        if env.items.is_empty() == env.frag.is_none() {
            return Err(EnvelopeError::Empty);
        }
        Ok(env)
    }

    /// The JSON value put into the `otrd` member.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// Serialised size of one item (what counts against [`MAX_PAYLOAD`]).
pub fn item_len(item: &Item) -> usize {
    serde_json::to_string(item).map_or(usize::MAX, |s| s.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips_and_rejects_bad_shapes() {
        let env = Envelope {
            v: VERSION,
            from: "A".into(),
            room: "R".into(),
            run: "r1".into(),
            seq: 7,
            items: vec![Item {
                k: Kind::ProbeAck,
                p: json!({"nonce": "n"}),
            }],
            frag: None,
        };
        let v = env.to_value();
        assert_eq!(v["items"][0]["k"], "probe_ack");
        assert_eq!(Envelope::from_value(&v), Ok(env.clone()));
        let mut bad = v.clone();
        bad["v"] = json!(9);
        assert_eq!(Envelope::from_value(&bad), Err(EnvelopeError::Version(9)));
        let mut empty = v.clone();
        empty["items"] = json!([]);
        assert_eq!(Envelope::from_value(&empty), Err(EnvelopeError::Empty));
        assert_eq!(
            Envelope::from_value(&json!("x")),
            Err(EnvelopeError::Malformed)
        );
        let mut unknown = v;
        unknown["items"][0]["k"] = json!("userData");
        assert_eq!(
            Envelope::from_value(&unknown),
            Err(EnvelopeError::Malformed)
        );
    }
}
