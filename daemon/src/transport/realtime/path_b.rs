//! Path B (PROTOCOL.md §12.3): `stream-notify-room-users` `"<rid>/video-conference"`. The server
//! checks only that the caller is in the room and re-emits to every other member on their
//! `<uid>/video-conference` user stream, adding no sender: anyone who shares any room with us can
//! write here, so the envelope's claims are checked and the native scheme authenticates them.
//! `params: {}` makes stock clients' `VideoConfManager` return early.

use serde_json::{json, Value};

/// The DDP method.
pub const METHOD: &str = "stream-notify-room-users";

/// Subscription params for our own user stream.
pub fn subscribe_params(my_uid: &str) -> Vec<Value> {
    vec![json!(format!("{my_uid}/video-conference")), json!(false)]
}

/// Method params carrying `envelope` (never a `callId`, `uid` or `rid` in `params`).
pub fn params(room_id: &str, envelope: Value) -> Vec<Value> {
    vec![
        json!(format!("{room_id}/video-conference")),
        json!({ "action": "otrd", "params": {}, "otrd": envelope }),
    ]
}

/// The `otrd` member of an inbound event on our own `video-conference` stream.
pub fn parse<'a>(
    collection: &str,
    event_name: &str,
    my_uid: &str,
    args: &'a [Value],
) -> Option<&'a Value> {
    if collection != "stream-notify-user"
        || event_name.strip_suffix("/video-conference") != Some(my_uid)
    {
        return None;
    }
    let first = args.first()?;
    if first.get("action").and_then(Value::as_str) != Some("otrd") {
        return None;
    }
    first.get("otrd")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_match_the_protocol_notes() {
        let p = params("R", json!({"v": 1}));
        assert_eq!(p[0], json!("R/video-conference"));
        assert_eq!(p[1]["params"], json!({}));
        let args = vec![p[1].clone()];
        assert_eq!(
            parse("stream-notify-user", "B/video-conference", "B", &args),
            Some(&json!({"v": 1}))
        );
        assert_eq!(
            parse("stream-notify-user", "C/video-conference", "B", &args),
            None
        );
        let call = vec![json!({"action": "call", "params": {"callId": "x"}})];
        assert_eq!(
            parse("stream-notify-user", "B/video-conference", "B", &call),
            None
        );
    }
}
