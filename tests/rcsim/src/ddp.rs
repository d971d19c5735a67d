//! DDP framing as a Meteor server speaks it: building every server frame (`connected`, `result`,
//! `updated`, `ready`, `nosub`, `changed`, `error`, `ping`/`pong`), the `Meteor.Error` object shape,
//! EJSON dates, and Meteor's random ids. Meaning (which method does what) lives elsewhere.

use std::time::{SystemTime, UNIX_EPOCH};

use rand::Rng;
use serde_json::{json, Map, Value};

/// Meteor's `Random.id` alphabet (no 0/1/I/O/U/V/l).
const ID_ALPHABET: &[u8] = b"23456789ABCDEFGHJKLMNPQRSTWXYZabcdefghijkmnopqrstuvwxyz";
/// Meteor's `Random.secret` alphabet (base64url-like).
const SECRET_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// A 17-character Meteor id.
pub fn random_id() -> String {
    random_from(ID_ALPHABET, 17)
}

/// A 43-character login token like `Accounts._generateStampedLoginToken`.
pub fn random_token() -> String {
    random_from(SECRET_ALPHABET, 43)
}

fn random_from(alphabet: &[u8], n: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..n)
        .map(|_| char::from(alphabet[rng.gen_range(0..alphabet.len())]))
        .collect()
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// EJSON `Date`: `{"$date": ms}`.
pub fn date(ms: i64) -> Value {
    json!({ "$date": ms })
}

/// True when `v` is exactly an EJSON Date (`{"$date": <number>}` and nothing else).
pub fn is_date(v: &Value) -> bool {
    match v.as_object() {
        Some(o) => o.len() == 1 && o.get("$date").is_some_and(Value::is_number),
        None => false,
    }
}

/// A `Meteor.Error` as it travels in `result.error` and `nosub.error`.
#[derive(Clone, Debug, PartialEq)]
pub struct MeteorError {
    /// The `error` member: a number (403, 404, 400) or a string code (`not-allowed`).
    pub error: Box<Value>,
    /// Human-readable reason; absent for bare `new Meteor.Error('code')`.
    pub reason: Option<String>,
    /// Optional `details` object (e.g. `{timeToReset}` or `{method}`).
    pub details: Option<Box<Value>>,
}

impl MeteorError {
    /// Error with a numeric or string code and a reason.
    pub fn new(error: impl Into<Value>, reason: impl Into<String>) -> Self {
        MeteorError {
            error: Box::new(error.into()),
            reason: Some(reason.into()),
            details: None,
        }
    }

    /// Error with only a code (`message` becomes `[code]`).
    pub fn bare(error: impl Into<Value>) -> Self {
        MeteorError {
            error: Box::new(error.into()),
            reason: None,
            details: None,
        }
    }

    /// Adds `details`.
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(Box::new(details));
        self
    }

    /// `check()` failure: 400 "Match failed".
    pub fn match_failed() -> Self {
        MeteorError::new(400, "Match failed")
    }

    /// Meteor's reply to an unknown method.
    pub fn method_not_found(method: &str) -> Self {
        MeteorError::new(404, format!("Method '{method}' not found"))
    }

    /// Rocket.Chat's "not logged in" error for a method.
    pub fn invalid_user(method: &str) -> Self {
        MeteorError::new("error-invalid-user", "Invalid user")
            .with_details(json!({ "method": method }))
    }

    /// A non-Meteor exception thrown in a method (Meteor hides the cause).
    pub fn internal() -> Self {
        MeteorError::new(500, "Internal server error")
    }

    /// The JSON object put on the wire.
    pub fn to_json(&self) -> Value {
        let code = match self.error.as_ref() {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let message = match &self.reason {
            Some(r) => format!("{r} [{code}]"),
            None => format!("[{code}]"),
        };
        let mut o = Map::new();
        o.insert("isClientSafe".into(), Value::Bool(true));
        o.insert("error".into(), self.error.as_ref().clone());
        if let Some(r) = &self.reason {
            o.insert("reason".into(), Value::String(r.clone()));
        }
        o.insert("message".into(), Value::String(message));
        o.insert("errorType".into(), Value::String("Meteor.Error".into()));
        if let Some(d) = &self.details {
            o.insert("details".into(), d.as_ref().clone());
        }
        Value::Object(o)
    }
}

/// The non-DDP hello Meteor sends as soon as the socket opens.
pub fn server_hello() -> String {
    r#"{"server_id":"0"}"#.to_string()
}

/// `connected` with a session id.
pub fn connected(session: &str) -> String {
    json!({ "msg": "connected", "session": session }).to_string()
}

/// `failed` for an unsupported protocol version.
pub fn failed() -> String {
    json!({ "msg": "failed", "version": "1" }).to_string()
}

/// `pong`, echoing the ping's id when it had one.
pub fn pong(id: Option<&Value>) -> String {
    match id {
        Some(id) => json!({ "msg": "pong", "id": id }).to_string(),
        None => json!({ "msg": "pong" }).to_string(),
    }
}

/// Server-initiated heartbeat.
pub fn ping() -> String {
    json!({ "msg": "ping" }).to_string()
}

/// Method result: with `result` member when `Some`, without it for void methods and for
/// Rocket.Chat's swallowed `sendMessage` failures.
pub fn result(id: &Value, value: Option<Value>) -> String {
    match value {
        Some(v) => json!({ "msg": "result", "id": id, "result": v }).to_string(),
        None => json!({ "msg": "result", "id": id }).to_string(),
    }
}

/// Method error result.
pub fn result_error(id: &Value, err: &MeteorError) -> String {
    json!({ "msg": "result", "id": id, "error": err.to_json() }).to_string()
}

/// `updated` after a method's writes are visible.
pub fn updated(id: &Value) -> String {
    json!({ "msg": "updated", "methods": [id] }).to_string()
}

/// Subscription ready.
pub fn ready(id: &Value) -> String {
    json!({ "msg": "ready", "subs": [id] }).to_string()
}

/// Subscription ended or refused.
pub fn nosub(id: &Value, err: Option<&MeteorError>) -> String {
    match err {
        Some(e) => json!({ "msg": "nosub", "id": id, "error": e.to_json() }).to_string(),
        None => json!({ "msg": "nosub", "id": id }).to_string(),
    }
}

/// A stream event: `changed` with document id `"id"` and `{eventName, args}`.
pub fn stream_event(collection: &str, event_name: &str, args: &Value) -> String {
    json!({
        "msg": "changed",
        "collection": collection,
        "id": "id",
        "fields": { "eventName": event_name, "args": args },
    })
    .to_string()
}

/// A `changed` frame with an arbitrary document id and fields (presence stream).
pub fn changed(collection: &str, id: &str, fields: Value) -> String {
    json!({ "msg": "changed", "collection": collection, "id": id, "fields": fields }).to_string()
}

/// Protocol-level error (`sendError` in Meteor's livedata server).
pub fn protocol_error(reason: &str, offending: Option<&Value>) -> String {
    match offending {
        Some(m) => json!({ "msg": "error", "reason": reason, "offendingMessage": m }).to_string(),
        None => json!({ "msg": "error", "reason": reason }).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meteor_error_shapes() {
        let e = MeteorError::match_failed().to_json();
        assert_eq!(
            e.to_string(),
            r#"{"isClientSafe":true,"error":400,"reason":"Match failed","message":"Match failed [400]","errorType":"Meteor.Error"}"#
        );
        let e = MeteorError::bare("not-allowed").to_json();
        assert_eq!(
            e.to_string(),
            r#"{"isClientSafe":true,"error":"not-allowed","message":"[not-allowed]","errorType":"Meteor.Error"}"#
        );
    }

    #[test]
    fn stream_event_shape() {
        let f = stream_event("stream-notify-user", "u/otr", &json!(["end", {}]));
        assert_eq!(
            f,
            r#"{"msg":"changed","collection":"stream-notify-user","id":"id","fields":{"eventName":"u/otr","args":["end",{}]}}"#
        );
    }

    #[test]
    fn ids_and_dates() {
        assert_eq!(random_id().len(), 17);
        assert_eq!(random_token().len(), 43);
        assert!(is_date(&date(5)));
        assert!(!is_date(&json!({"$date": 5, "x": 1})));
        assert!(!is_date(&json!(5)));
    }
}
