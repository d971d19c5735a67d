//! A key-swapping server: rewrites OTR signalling (`stream-notify-user` `<uid>/otr` writes) in
//! flight, the attack PROTOCOL.md §9 describes and the native scheme must detect. Tests switch it
//! on with `SimHandle::set_mitm`; every rewrite is counted so a test can prove the attack ran.
//!
//! * [`MitmMode::ReplaceKeys`]: the stock P-256 `publicKey` of every `handshake` and
//!   `acknowledge` is replaced by the server's own (a fixed valid key from PROTOCOL.md §1.6), and
//!   the `otrd` member's identity and ephemeral keys (`ik`, `ek`) by random ones.
//! * [`MitmMode::StripOffer`]: the `otrd` member is deleted from `handshake` and `acknowledge`,
//!   so each side sees a stock peer (a downgrade attempt).
//!
//! Native confirm frames (an `acknowledge` without `publicKey`) and `deny`/`end` pass unchanged.
//!
//! On servers without the 7.x relay the same signalling travels as `offer` and `answer` items of
//! otrd envelopes on paths A and B (PROTOCOL.md §12); [`rewrite_envelope`] does the same to those
//! (whole envelopes only: a fragmented handshake passes unchanged, and none is that large).

use base64::Engine as _;
use rand::RngCore;
use serde_json::Value;

/// The server's own P-256 keys put in place of the clients' (PROTOCOL.md §1.6 vectors A and B).
const SERVER_KEY_HANDSHAKE: &str = r#"{"crv":"P-256","ext":true,"key_ops":[],"kty":"EC","x":"ioJoe5tCZv1VU__TKiPc9bAEJYCWqsAWfyHaokLB1Vo","y":"OtKF0OsmPtW135H8sOG8L6y11nxGPmgFnGGM4ldtDJE"}"#;
const SERVER_KEY_ACKNOWLEDGE: &str = r#"{"crv":"P-256","ext":true,"key_ops":[],"kty":"EC","x":"8_1TENHDdHBs0UNd-4VeZCnn49wGsI8GutgfcfnJHvg","y":"MAjVibTlLlBT1yyZLDVtVF6uDx2MwnPfQQ9yxCCzFtQ"}"#;

/// What the man in the middle does to OTR signalling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum MitmMode {
    /// Relay unchanged.
    #[default]
    Off,
    /// Substitute the server's keys for the clients' (stock key and native `ik`/`ek`).
    ReplaceKeys,
    /// Delete the native offer/answer (`otrd` member).
    StripOffer,
}

impl MitmMode {
    pub(crate) fn to_u8(self) -> u8 {
        match self {
            MitmMode::Off => 0,
            MitmMode::ReplaceKeys => 1,
            MitmMode::StripOffer => 2,
        }
    }

    pub(crate) fn from_u8(v: u8) -> MitmMode {
        match v {
            1 => MitmMode::ReplaceKeys,
            2 => MitmMode::StripOffer,
            _ => MitmMode::Off,
        }
    }
}

/// Rewrites the arguments of a `stream-notify-user` write (`[type, payload]`) to `event`;
/// returns true when something was changed.
pub fn rewrite(mode: MitmMode, event: &str, args: &mut [Value]) -> bool {
    if mode == MitmMode::Off || !event.ends_with("/otr") {
        return false;
    }
    let kind = args
        .first()
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    if kind != "handshake" && kind != "acknowledge" {
        return false;
    }
    let Some(Value::Object(payload)) = args.get_mut(1) else {
        return false;
    };
    // A native confirm frame carries no stock key: not part of the key exchange we attack.
    if !payload.contains_key("publicKey") {
        return false;
    }
    rewrite_payload(mode, &kind, payload)
}

/// Rewrites the `offer`/`answer` items of the otrd envelope in a path A (`stream-notify-room`)
/// or path B (`stream-notify-room-users`) write; returns true when something was changed.
pub fn rewrite_envelope(mode: MitmMode, stream: &str, args: &mut [Value]) -> bool {
    if mode == MitmMode::Off {
        return false;
    }
    let env = match stream {
        "stream-notify-room" => args.get_mut(2),
        "stream-notify-room-users" => args.get_mut(0),
        _ => None,
    }
    .and_then(|extras| extras.get_mut("otrd"));
    let Some(Value::Array(items)) = env.and_then(|e| e.get_mut("items")) else {
        return false;
    };
    let mut changed = false;
    for item in items {
        let kind = match item.get("k").and_then(Value::as_str) {
            Some("offer") => "handshake",
            Some("answer") => "acknowledge",
            _ => continue,
        };
        if let Some(Value::Object(payload)) = item.get_mut("p") {
            changed |= rewrite_payload(mode, kind, payload);
        }
    }
    changed
}

/// The rewrite of one `handshake` or `acknowledge` payload.
fn rewrite_payload(
    mode: MitmMode,
    kind: &str,
    payload: &mut serde_json::Map<String, Value>,
) -> bool {
    match mode {
        MitmMode::Off => false,
        MitmMode::StripOffer => payload.remove("otrd").is_some(),
        MitmMode::ReplaceKeys => {
            let key = if kind == "handshake" {
                SERVER_KEY_HANDSHAKE
            } else {
                SERVER_KEY_ACKNOWLEDGE
            };
            if payload.contains_key("publicKey") {
                payload.insert("publicKey".into(), Value::String(key.to_owned()));
            }
            if let Some(Value::Object(ext)) = payload.get_mut("otrd") {
                for member in ["ik", "ek"] {
                    if ext.contains_key(member) {
                        ext.insert(member.into(), Value::String(random_key()));
                    }
                }
            }
            true
        }
    }
}

/// 32 random bytes, standard base64 with padding (the native scheme's key encoding).
fn random_key() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn replaces_keys_and_strips_offers_only_in_key_exchange_frames() {
        let original = json!(["handshake", {"roomId": "r", "userId": "u", "publicKey": "{}",
            "otrd": {"v": 1, "tag": "00000100", "ik": "a", "ek": "b"}}]);
        let mut args = original.as_array().cloned().unwrap_or_default();
        assert!(rewrite(MitmMode::ReplaceKeys, "peer/otr", &mut args));
        assert_eq!(args[1]["publicKey"], SERVER_KEY_HANDSHAKE);
        assert_ne!(args[1]["otrd"]["ik"], "a");
        assert_ne!(args[1]["otrd"]["ek"], "b");
        assert_eq!(args[1]["otrd"]["tag"], "00000100");

        let mut args = original.as_array().cloned().unwrap_or_default();
        assert!(rewrite(MitmMode::StripOffer, "peer/otr", &mut args));
        assert!(args[1].get("otrd").is_none());

        let mut confirm = vec![
            json!("acknowledge"),
            json!({"roomId": "r", "otrd": {"rk": "x"}}),
        ];
        assert!(!rewrite(MitmMode::StripOffer, "peer/otr", &mut confirm));
        let mut end = vec![json!("end"), json!({"roomId": "r"})];
        assert!(!rewrite(MitmMode::ReplaceKeys, "peer/otr", &mut end));
        let mut other = original.as_array().cloned().unwrap_or_default();
        assert!(!rewrite(
            MitmMode::ReplaceKeys,
            "peer/rooms-changed",
            &mut other
        ));
        assert!(!rewrite(MitmMode::Off, "peer/otr", &mut other));
    }

    #[test]
    fn strips_offers_inside_envelopes_on_both_paths() {
        let env = json!({"v": 1, "from": "A", "room": "R", "run": "r", "seq": 1, "items": [
            {"k": "offer", "p": {"roomId": "R", "publicKey": "{}", "otrd": {"v": 1}}},
            {"k": "message", "p": {"id": "m", "msg": "x"}}]});
        let mut a = vec![json!("alice"), json!([]), json!({"otrd": env.clone()})];
        assert!(rewrite_envelope(
            MitmMode::StripOffer,
            "stream-notify-room",
            &mut a
        ));
        assert!(a[2]["otrd"]["items"][0]["p"].get("otrd").is_none());
        assert_eq!(a[2]["otrd"]["items"][1]["p"]["msg"], "x");
        let mut b = vec![json!({"action": "otrd", "params": {}, "otrd": env})];
        assert!(rewrite_envelope(
            MitmMode::ReplaceKeys,
            "stream-notify-room-users",
            &mut b
        ));
        assert_eq!(
            b[0]["otrd"]["items"][0]["p"]["publicKey"],
            SERVER_KEY_HANDSHAKE
        );
        assert!(!rewrite_envelope(
            MitmMode::Off,
            "stream-notify-room-users",
            &mut b
        ));
    }
}
