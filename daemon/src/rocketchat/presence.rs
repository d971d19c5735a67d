//! Reading presence events (PROTOCOL §8).
//!
//! Two streams carry them:
//! - `stream-user-presence`, event name = the user's uid, args `[[username, code, statusText]]`
//!   (7.x) or flat `[username, code, statusText]` (around 5.x);
//! - `stream-notify-logged` `user-status`, args `[[uid, username, code, statusText, name, roles]]`
//!   (flat variant tolerated too).
//!
//! The status is a number (0 offline, 1 online, 2 away, 3 busy) or, on some servers, its name.

use crate::engine::Presence;
use serde_json::Value;

/// The `stream-user-presence` subscription params that follow `uids`:
/// `["", {"added": uids, "removed": []}]`.
pub fn follow_params(added: &[String], removed: &[String]) -> Vec<Value> {
    vec![
        Value::String(String::new()),
        serde_json::json!({ "added": added, "removed": removed }),
    ]
}

/// Reads one presence event: `event_name` is the stream event's name (the uid on
/// `stream-user-presence`, `user-status` on `stream-notify-logged`). Returns `(uid, presence)`,
/// or `None` for anything that is not a presence event.
pub fn parse_presence_event(event_name: &str, args: &[Value]) -> Option<(String, Presence)> {
    // Both shapes: the real payload is either args[0] (an array) or args itself.
    let items: &[Value] = match args.first() {
        Some(Value::Array(inner)) => inner,
        _ => args,
    };
    if event_name == "user-status" {
        let uid = items.first()?.as_str()?;
        let presence = status(items.get(2)?)?;
        return (!uid.is_empty()).then(|| (uid.to_owned(), presence));
    }
    if event_name.is_empty() || event_name.contains('/') {
        return None;
    }
    // `[username, code, statusText]`: the uid is the event name.
    items.first()?.as_str()?;
    let presence = status(items.get(1)?)?;
    Some((event_name.to_owned(), presence))
}

fn status(v: &Value) -> Option<Presence> {
    let p = match v {
        Value::Number(n) => Presence::from_code(n.as_i64()?),
        Value::String(s) => Presence::from_name(s),
        _ => return None,
    };
    (p != Presence::Unknown).then_some(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_and_flat_user_presence() {
        let nested = [json!(["bob", 1, ""])];
        assert_eq!(
            parse_presence_event("BobX8dR4tWq2nJ5hE", &nested),
            Some(("BobX8dR4tWq2nJ5hE".into(), Presence::Online))
        );
        let flat = [json!("bob"), json!(2), json!("lunch")];
        assert_eq!(
            parse_presence_event("B", &flat),
            Some(("B".into(), Presence::Away))
        );
        assert_eq!(
            parse_presence_event("B", &[json!(["bob", "busy"])]),
            Some(("B".into(), Presence::Busy))
        );
        assert_eq!(
            parse_presence_event("B", &[json!(["bob", 0])]),
            Some(("B".into(), Presence::Offline))
        );
    }

    #[test]
    fn user_status_stream() {
        let args = [json!(["BobX8", "bob", 3, "", "Bob", ["user"]])];
        assert_eq!(
            parse_presence_event("user-status", &args),
            Some(("BobX8".into(), Presence::Busy))
        );
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(parse_presence_event("B", &[]), None);
        assert_eq!(parse_presence_event("B", &[json!([1, 2])]), None);
        assert_eq!(parse_presence_event("B", &[json!(["bob", 9])]), None);
        assert_eq!(parse_presence_event("B/otr", &[json!(["bob", 1])]), None);
        assert_eq!(
            parse_presence_event("user-status", &[json!(["", "bob", 1])]),
            None
        );
        assert_eq!(parse_presence_event("", &[json!(["bob", 1])]), None);
    }

    #[test]
    fn follow_params_shape() {
        assert_eq!(
            follow_params(&["a".into()], &[]),
            vec![json!(""), json!({"added":["a"],"removed":[]})]
        );
    }
}
