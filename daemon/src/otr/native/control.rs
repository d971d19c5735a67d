//! Proofs for a native session's control signals.
//!
//! The stock scheme's signals (`handshake`, `acknowledge`, `deny`, `end` on `<uid>/otr`) carry no
//! authentication: the server, and on 7.x any logged-in user, can write them. Inside a live
//! native session every control signal that changes it — a refresh handshake, the answer to one,
//! the refusal of one — therefore carries a proof that only the two ends can make: a top-level
//! [`AUTH_MEMBER`] holding `base64(HMAC-SHA256(end key, "otrd v1 control" ‖ lp(kind) ‖ lp(room) ‖
//! lp(sender uid) ‖ lp(canon(payload − proof))))`. The end key is the session's
//! (`NativeSession::session_mac`); the sender uid keeps our own proof from being reflected back
//! to us, the kind keeps a refresh's proof from passing as a refusal's, and the canonical payload
//! binds every member — the new handshake's keys included. (`end` keeps its older proof format,
//! `ratchet::NativeSession::end_token`.)

use super::transcript::{canonical, put_lp, without_proof};
use super::NativeSession;
use crate::otr::native::keys::mac_eq;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde_json::Value;

/// The top-level payload member carrying the proof.
pub const AUTH_MEMBER: &str = "otrdAuth";

/// Domain separation for control proofs.
const CONTROL_LABEL: &[u8] = b"otrd v1 control";

fn mac(session: &NativeSession, kind: &str, room: &str, sender: &str, payload: &Value) -> [u8; 32] {
    let mut body = String::new();
    canonical(&without_proof(payload), &mut body);
    let mut buf = Vec::with_capacity(body.len() + kind.len() + room.len() + sender.len() + 16);
    put_lp(&mut buf, kind.as_bytes());
    put_lp(&mut buf, room.as_bytes());
    put_lp(&mut buf, sender.as_bytes());
    put_lp(&mut buf, body.as_bytes());
    session.session_mac(&[CONTROL_LABEL, &buf])
}

/// Adds the proof that `sender` (us) sends this `kind` of signal in `room` to `payload`.
pub fn add_proof(
    session: &NativeSession,
    kind: &str,
    room: &str,
    sender: &str,
    payload: &mut Value,
) {
    let tag = B64.encode(mac(session, kind, room, sender, payload));
    if let Some(map) = payload.as_object_mut() {
        map.insert(AUTH_MEMBER.to_owned(), Value::String(tag));
    }
}

/// Whether `payload` carries a valid proof from `sender` for this `kind` in `room` (constant time).
pub fn has_proof(
    session: &NativeSession,
    kind: &str,
    room: &str,
    sender: &str,
    payload: &Value,
) -> bool {
    let Some(tag) = payload
        .get(AUTH_MEMBER)
        .and_then(Value::as_str)
        .and_then(|t| B64.decode(t).ok())
    else {
        return false;
    };
    mac_eq(&mac(session, kind, room, sender, payload), &tag)
}
