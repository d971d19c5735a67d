//! Path A (PROTOCOL.md §12.2): `stream-notify-room` `"<rid>/user-activity"`. The server checks
//! that the caller may type in the room and that `args[0]` is the caller's username, then relays
//! to the room's readers; a stock client only clears the sender's typing indicator (`[]`
//! activities, no `tmid`).

use serde_json::{json, Value};

/// The DDP method.
pub const METHOD: &str = "stream-notify-room";

/// The event name for a room.
pub fn event(room_id: &str) -> String {
    format!("{room_id}/user-activity")
}

/// Subscription params for a room (read rule: the caller can access the room).
pub fn subscribe_params(room_id: &str) -> Vec<Value> {
    vec![json!(event(room_id)), json!(false)]
}

/// Method params carrying `envelope`: always empty activities and never a `tmid`.
pub fn params(room_id: &str, my_username: &str, envelope: Value) -> Vec<Value> {
    vec![
        json!(event(room_id)),
        json!(my_username),
        json!([]),
        json!({ "otrd": envelope }),
    ]
}

/// The room and the `otrd` member of an inbound event, if it is one of ours.
pub fn parse<'a>(
    collection: &str,
    event_name: &'a str,
    args: &'a [Value],
) -> Option<(&'a str, &'a Value)> {
    if collection != "stream-notify-room" {
        return None;
    }
    let room = event_name.strip_suffix("/user-activity")?;
    let otrd = args.get(2)?.get("otrd")?;
    Some((room, otrd))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_match_the_protocol_notes() {
        let p = params("R", "alice", json!({"v": 1}));
        assert_eq!(
            p,
            vec![
                json!("R/user-activity"),
                json!("alice"),
                json!([]),
                json!({"otrd": {"v": 1}})
            ]
        );
        let args = vec![json!("alice"), json!([]), json!({"otrd": {"v": 1}})];
        assert_eq!(
            parse("stream-notify-room", "R/user-activity", &args),
            Some(("R", &json!({"v": 1})))
        );
        assert_eq!(parse("stream-notify-room", "R/typing", &args), None);
        assert_eq!(
            parse("stream-notify-room", "R/user-activity", &args[..2]),
            None
        );
    }
}
