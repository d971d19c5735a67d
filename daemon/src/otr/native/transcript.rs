//! The handshake transcript: a canonical serialisation of both signalling payloads and its hash,
//! which salts the key derivation and is what both confirmation MACs cover.

use super::control::AUTH_MEMBER;
use super::OTRD_MEMBER;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Appends `bytes` with a 4-byte big-endian length prefix (so concatenations are unambiguous).
pub(crate) fn put_lp(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

/// JSON with object keys sorted at every level and no insignificant whitespace. Independent of
/// whether serde_json was built with `preserve_order`, so both daemons serialise identically.
pub(crate) fn canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String((*k).clone()).to_string());
                out.push(':');
                if let Some(v) = map.get(*k) {
                    canonical(v, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(v, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// The acknowledge payload as hashed: everything except `otrd.confirm` (the MAC over the hash)
/// and the session proof (see [`without_proof`]).
fn ack_without_confirm(ack: &Value) -> Value {
    let mut copy = without_proof(ack);
    if let Some(member) = copy.get_mut(OTRD_MEMBER).and_then(Value::as_object_mut) {
        member.remove("confirm");
    }
    copy
}

/// A payload without its top-level [`AUTH_MEMBER`]: a refresh's proof from the old session is
/// added after the new handshake's answer is computed (it covers that answer), so it cannot be
/// part of the transcript the answer's MAC covers.
pub(crate) fn without_proof(payload: &Value) -> Value {
    let mut copy = payload.clone();
    if let Some(map) = copy.as_object_mut() {
        map.remove(AUTH_MEMBER);
    }
    copy
}

/// `TH = SHA-256("otrd v1 transcript" ‖ lp(canon(handshake − proof)) ‖
/// lp(canon(ack − proof − confirm)))`.
pub(crate) fn transcript_hash(handshake: &Value, ack: &Value) -> [u8; 32] {
    let mut h = String::new();
    canonical(&without_proof(handshake), &mut h);
    let mut a = String::new();
    canonical(&ack_without_confirm(ack), &mut a);
    let mut buf = Vec::with_capacity(h.len() + a.len() + 32);
    buf.extend_from_slice(b"otrd v1 transcript");
    put_lp(&mut buf, h.as_bytes());
    put_lp(&mut buf, a.as_bytes());
    Sha256::digest(&buf).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_sorts_keys_at_every_level() {
        let mut s = String::new();
        canonical(
            &json!({"b": 1, "a": {"z": [1, {"y": "\"", "x": true}], "c": null}}),
            &mut s,
        );
        assert_eq!(s, r#"{"a":{"c":null,"z":[1,{"x":true,"y":"\""}]},"b":1}"#);
    }

    #[test]
    fn confirm_mac_is_excluded_but_everything_else_counts() {
        let hs = json!({"roomId": "r", "userId": "u"});
        let a1 = json!({"roomId": "r", "otrd": {"v": 1, "confirm": "AAAA"}});
        let a2 = json!({"roomId": "r", "otrd": {"v": 1, "confirm": "BBBB"}});
        let a3 = json!({"roomId": "r", "otrd": {"v": 2, "confirm": "AAAA"}});
        assert_eq!(transcript_hash(&hs, &a1), transcript_hash(&hs, &a2));
        assert_ne!(transcript_hash(&hs, &a1), transcript_hash(&hs, &a3));
    }
}
