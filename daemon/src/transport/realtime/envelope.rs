//! The otrd envelope carried on paths A and B (PROTOCOL.md §12.2, §12.3): who sends, for which
//! room, a per-run sequence number, and either a list of items (several messages and acks share
//! one frame when they queue up) or one fragment of a larger item list.
//!
//! The envelope itself is not authenticated: sender and room are claims the receiver checks
//! against the room it knows, and the native scheme binds both into every message's associated
//! data (`otr::native::message_context`), so a frame replayed by a third user or moved to another
//! room does not decrypt.
//!
//! Anyone sharing any room with us can write on path B, so [`Envelope::from_value`] bounds what
//! it takes before anything is stored or acted on: the serialised size ([`MAX_ENVELOPE_BYTES`],
//! measured with a counter that stops at the bound), the item count ([`MAX_ITEMS`]), the `run`
//! (exactly [`RUN_LEN`] lowercase hex digits, as [`super::sender::Numbering`] makes it) and the
//! `from` and `room` claims ([`MAX_ID_BYTES`]).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Envelope format version.
pub const VERSION: u8 = 1;

/// Largest item payload (serialised item list) carried whole; larger ones are fragmented
/// (§12.5: ≤ 8 KiB per frame keeps the DDP frame well under 16 KiB).
pub const MAX_PAYLOAD: usize = 8 * 1024;

/// Largest serialised envelope taken. A whole envelope carries at most [`MAX_PAYLOAD`] of items;
/// a fragment carries at most [`MAX_PAYLOAD`] bytes of JSON text, which escaping as a JSON string
/// can at most double (`"` and `\` become two bytes; the text has no control characters). 1 KiB
/// covers the other members (`from`, `room`, `run`, `seq`, the fragment's numbers).
pub const MAX_ENVELOPE_BYTES: usize = 2 * MAX_PAYLOAD + 1024;

/// Most items in one envelope, whole or reassembled. [`super::sender::pack`] never puts more in
/// one frame; 64 small items (acks, short messages) already fill most of [`MAX_PAYLOAD`].
pub const MAX_ITEMS: usize = 64;

/// Length of a `run`: a random `u64` as 16 lowercase hex digits (`sender::Numbering::new`).
pub const RUN_LEN: usize = 16;

/// Longest `from` or `room` taken. Rocket.Chat user ids are 17 characters and DM ids two of
/// them; 64 leaves room for other id schemes without letting a claim grow the replay memory.
pub const MAX_ID_BYTES: usize = 64;

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
    /// Larger than [`MAX_ENVELOPE_BYTES`] serialised.
    #[error("otrd envelope larger than {MAX_ENVELOPE_BYTES} bytes")]
    TooLarge,
    /// More than [`MAX_ITEMS`] items.
    #[error("otrd envelope with more than {MAX_ITEMS} items")]
    TooManyItems,
    /// `run` is not [`RUN_LEN`] lowercase hex digits.
    #[error("otrd envelope with a malformed run id")]
    BadRun,
    /// `from` or `room` longer than [`MAX_ID_BYTES`] (names the member, never its value).
    #[error("otrd envelope whose `{0}` is longer than {MAX_ID_BYTES} bytes")]
    IdTooLong(&'static str),
}

impl Envelope {
    /// Parses and bounds an envelope received from the network. The size is checked first, by
    /// a serialisation that stops at the bound, so an oversized value costs at most that much
    /// work; the envelope is then read straight from `v` (no copy of the value first).
    pub fn from_value(v: &Value) -> Result<Self, EnvelopeError> {
        if !fits(v, MAX_ENVELOPE_BYTES) {
            return Err(EnvelopeError::TooLarge);
        }
        let env = Envelope::deserialize(v).map_err(|_| EnvelopeError::Malformed)?;
        if env.v != VERSION {
            return Err(EnvelopeError::Version(env.v));
        }
        if env.items.is_empty() == env.frag.is_none() {
            return Err(EnvelopeError::Empty);
        }
        check_items(&env.items)?;
        if !is_run(&env.run) {
            return Err(EnvelopeError::BadRun);
        }
        if env.from.len() > MAX_ID_BYTES {
            return Err(EnvelopeError::IdTooLong("from"));
        }
        if env.room.len() > MAX_ID_BYTES {
            return Err(EnvelopeError::IdTooLong("room"));
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

/// The item count bound, for whole envelopes and reassembled fragment groups alike.
pub fn check_items(items: &[Item]) -> Result<(), EnvelopeError> {
    if items.len() > MAX_ITEMS {
        return Err(EnvelopeError::TooManyItems);
    }
    Ok(())
}

/// True for a run id as [`super::sender::Numbering`] makes it.
fn is_run(run: &str) -> bool {
    run.len() == RUN_LEN && run.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Whether `v` serialises to at most `limit` bytes. The writer refuses the byte that would
/// cross the bound, which ends the serialisation there.
fn fits(v: &Value, limit: usize) -> bool {
    struct Bounded {
        left: usize,
    }
    impl std::io::Write for Bounded {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.left = self
                .left
                .checked_sub(buf.len())
                .ok_or(std::io::ErrorKind::WriteZero)?;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    serde_json::to_writer(&mut Bounded { left: limit }, v).is_ok()
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
            run: "00000000000000a1".into(),
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

    fn whole(items: Vec<Item>) -> Value {
        Envelope {
            v: VERSION,
            from: "A".into(),
            room: "R".into(),
            run: "0123456789abcdef".into(),
            seq: 1,
            items,
            frag: None,
        }
        .to_value()
    }

    fn ack(i: usize) -> Item {
        Item {
            k: Kind::Ack,
            p: json!({"id": format!("m{i}"), "ack": "k"}),
        }
    }

    #[test]
    fn a_third_users_oversized_or_odd_envelopes_are_refused() {
        let at_limit = |n| whole((0..n).map(ack).collect());
        assert!(Envelope::from_value(&at_limit(MAX_ITEMS)).is_ok());
        assert_eq!(
            Envelope::from_value(&at_limit(MAX_ITEMS + 1)),
            Err(EnvelopeError::TooManyItems)
        );
        let huge = whole(vec![Item {
            k: Kind::Message,
            p: json!({"id": "m", "msg": "x".repeat(MAX_ENVELOPE_BYTES)}),
        }]);
        assert_eq!(Envelope::from_value(&huge), Err(EnvelopeError::TooLarge));
        // Far larger still costs no more: the size check stops at the bound.
        let mut deep = json!(0);
        for _ in 0..1_000 {
            deep = json!([deep, "y".repeat(100)]);
        }
        let mut v = at_limit(1);
        v["extra"] = deep;
        assert_eq!(Envelope::from_value(&v), Err(EnvelopeError::TooLarge));

        for bad in [
            "",
            "0123456789abcde",
            "0123456789abcdef0",
            "0123456789ABCDEF",
            "0123456789abcdeg",
            "forged-end000000",
        ] {
            let mut v = at_limit(1);
            v["run"] = json!(bad);
            assert_eq!(
                Envelope::from_value(&v),
                Err(EnvelopeError::BadRun),
                "{bad:?}"
            );
        }
        let mut v = at_limit(1);
        v["run"] = json!(7);
        assert_eq!(Envelope::from_value(&v), Err(EnvelopeError::Malformed));

        for field in ["from", "room"] {
            let mut v = at_limit(1);
            v[field] = json!("u".repeat(MAX_ID_BYTES));
            assert!(Envelope::from_value(&v).is_ok(), "{field} at the bound");
            v[field] = json!("u".repeat(MAX_ID_BYTES + 1));
            assert_eq!(
                Envelope::from_value(&v),
                Err(EnvelopeError::IdTooLong(if field == "from" {
                    "from"
                } else {
                    "room"
                }))
            );
        }
        // The reasons name no content.
        let shown = EnvelopeError::IdTooLong("from").to_string();
        assert!(!shown.contains("uuu"), "{shown}");
    }

    #[test]
    fn the_largest_legitimate_fragment_fits() {
        // A piece of JSON text made only of characters JSON escapes: its escaped form is
        // twice its length, the worst case a sender can produce.
        let env = Envelope {
            v: VERSION,
            from: "u".repeat(MAX_ID_BYTES),
            room: "r".repeat(MAX_ID_BYTES),
            run: "0123456789abcdef".into(),
            seq: u64::MAX,
            items: Vec::new(),
            frag: Some(Fragment {
                id: u64::MAX,
                i: u32::MAX - 1,
                n: u32::MAX,
                d: "\\\"".repeat(MAX_PAYLOAD / 2),
            }),
        };
        assert_eq!(Envelope::from_value(&env.to_value()), Ok(env));
    }
}
