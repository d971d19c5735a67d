//! The DDP frame codec: server frames decoded into [`ServerFrame`], client frames built as text.
//!
//! Framing only — what a frame *means* for the connection (login, subscriptions, heartbeats) is
//! the client's business. One JSON object per websocket text frame (PROTOCOL §7). Errors never
//! carry frame content: frames hold tokens and ciphertext.

use serde_json::{json, Map, Value};

/// Why a server frame could not be decoded. Carries no content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Not JSON.
    #[error("DDP frame is not valid JSON")]
    NotJson,
    /// JSON, but not an object.
    #[error("DDP frame is not a JSON object")]
    NotObject,
    /// A `msg` we know lacks a member it needs, or has it with the wrong type.
    #[error("DDP `{msg}` frame has a missing or malformed `{field}`")]
    BadField {
        /// The frame's `msg`.
        msg: &'static str,
        /// The member.
        field: &'static str,
    },
}

/// A Meteor error object, as carried by `result`, `nosub` and errors (PROTOCOL §7).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DdpError {
    /// `error`: a number (403, 400) or a string code (`too-many-requests`, `not-allowed`).
    pub error: Value,
    /// `reason`, for people.
    pub reason: String,
    /// `message` (`"reason [code]"`).
    pub message: String,
    /// `errorType` (`Meteor.Error`).
    pub error_type: String,
    /// `details` (e.g. `timeToReset` for rate limits); `Null` when absent.
    pub details: Value,
}

impl DdpError {
    /// Reads an error object; anything missing becomes empty.
    pub fn from_value(v: &Value) -> Self {
        let s = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        Self {
            error: v.get("error").cloned().unwrap_or(Value::Null),
            reason: s("reason"),
            message: s("message"),
            error_type: s("errorType"),
            details: v.get("details").cloned().unwrap_or(Value::Null),
        }
    }

    /// The error code as text (`"403"`, `"too-many-requests"`).
    pub fn code(&self) -> String {
        match &self.error {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        }
    }

    /// True for Meteor's rate limiter answer.
    pub fn is_rate_limited(&self) -> bool {
        self.code() == "too-many-requests"
    }

    /// `details.timeToReset` in milliseconds, for rate limits.
    pub fn time_to_reset_ms(&self) -> Option<u64> {
        let v = self.details.get("timeToReset")?;
        v.as_u64().or_else(|| {
            v.as_f64()
                .filter(|f| f.is_finite() && *f >= 0.0)
                .map(|f| f as u64)
        })
    }
}

impl std::fmt::Display for DdpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let reason = if self.reason.is_empty() {
            &self.message
        } else {
            &self.reason
        };
        write!(f, "[{}] {}", self.code(), reason)
    }
}

/// A frame from the server.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerFrame {
    /// Handshake accepted.
    Connected {
        /// Server session id.
        session: String,
    },
    /// Handshake refused (protocol version).
    Failed,
    /// Heartbeat request; answer with a pong echoing `id`.
    Ping {
        /// Echo this in the pong when present.
        id: Option<String>,
    },
    /// Heartbeat answer.
    Pong {
        /// The id of our ping, if we sent one.
        id: Option<String>,
    },
    /// A method's outcome.
    Result {
        /// Our method id.
        id: String,
        /// The result (absent for void methods).
        result: Option<Value>,
        /// The error, if the method failed.
        error: Option<DdpError>,
    },
    /// Writes of methods are visible (ignored by the client).
    Updated,
    /// Subscriptions are ready.
    Ready {
        /// Our subscription ids.
        subs: Vec<String>,
    },
    /// A subscription was refused or ended.
    NoSub {
        /// Our subscription id.
        id: String,
        /// Why, if given.
        error: Option<DdpError>,
    },
    /// A document changed; streams deliver every event this way.
    Changed {
        /// Collection (stream name, e.g. `stream-notify-user`).
        collection: String,
        /// Document id (`"id"` for streams).
        id: String,
        /// `fields` (`{eventName, args}` for streams); `Null` when absent.
        fields: Value,
    },
    /// A document was added.
    Added {
        /// Collection.
        collection: String,
        /// Document id.
        id: String,
        /// Fields; `Null` when absent.
        fields: Value,
    },
    /// A document was removed.
    Removed {
        /// Collection.
        collection: String,
        /// Document id.
        id: String,
    },
    /// Protocol error from the server.
    Error {
        /// Why.
        reason: String,
    },
    /// Anything else: frames without `msg` (`{"server_id":"0"}`) or unknown messages.
    Other,
}

/// Decodes one server frame.
pub fn decode_server_frame(text: &str) -> Result<ServerFrame, FrameError> {
    let v: Value = serde_json::from_str(text).map_err(|_| FrameError::NotJson)?;
    let Value::Object(mut obj) = v else {
        return Err(FrameError::NotObject);
    };
    // The parsed frame is ours: payloads (`result`, `fields`) are moved out, not deep-copied
    // (a stream event's message, user and room documents are most of every frame).
    let msg = match obj.get("msg").and_then(Value::as_str) {
        Some(msg) => msg.to_owned(),
        None => return Ok(ServerFrame::Other),
    };
    let obj = &mut obj;
    let frame = match msg.as_str() {
        "connected" => ServerFrame::Connected {
            session: opt_str(obj, "session").unwrap_or_default(),
        },
        "failed" => ServerFrame::Failed,
        "ping" => ServerFrame::Ping {
            id: opt_str(obj, "id"),
        },
        "pong" => ServerFrame::Pong {
            id: opt_str(obj, "id"),
        },
        "result" => ServerFrame::Result {
            id: req_str(obj, "result", "id")?,
            result: obj.remove("result"),
            error: obj.get("error").map(DdpError::from_value),
        },
        "updated" => ServerFrame::Updated,
        "ready" => {
            let subs = obj
                .get("subs")
                .and_then(Value::as_array)
                .ok_or(FrameError::BadField {
                    msg: "ready",
                    field: "subs",
                })?;
            ServerFrame::Ready {
                subs: subs
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect(),
            }
        }
        "nosub" => ServerFrame::NoSub {
            id: req_str(obj, "nosub", "id")?,
            error: obj.get("error").map(DdpError::from_value),
        },
        "changed" => ServerFrame::Changed {
            collection: req_str(obj, "changed", "collection")?,
            id: opt_str(obj, "id").unwrap_or_default(),
            fields: obj.remove("fields").unwrap_or(Value::Null),
        },
        "added" => ServerFrame::Added {
            collection: req_str(obj, "added", "collection")?,
            id: opt_str(obj, "id").unwrap_or_default(),
            fields: obj.remove("fields").unwrap_or(Value::Null),
        },
        "removed" => ServerFrame::Removed {
            collection: req_str(obj, "removed", "collection")?,
            id: opt_str(obj, "id").unwrap_or_default(),
        },
        "error" => ServerFrame::Error {
            reason: opt_str(obj, "reason").unwrap_or_default(),
        },
        _ => ServerFrame::Other,
    };
    Ok(frame)
}

fn opt_str(obj: &Map<String, Value>, key: &str) -> Option<String> {
    obj.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn req_str(
    obj: &Map<String, Value>,
    msg: &'static str,
    field: &'static str,
) -> Result<String, FrameError> {
    opt_str(obj, field).ok_or(FrameError::BadField { msg, field })
}

/// `{"msg":"connect","version":"1","support":["1","pre2","pre1"]}`.
pub fn connect_frame() -> String {
    json!({"msg": "connect", "version": "1", "support": ["1", "pre2", "pre1"]}).to_string()
}

/// `{"msg":"ping","id":…}`.
pub fn ping_frame(id: &str) -> String {
    json!({"msg": "ping", "id": id}).to_string()
}

/// `{"msg":"pong"}`, echoing the ping's id when it had one.
pub fn pong_frame(id: Option<&str>) -> String {
    match id {
        Some(id) => json!({"msg": "pong", "id": id}).to_string(),
        None => json!({"msg": "pong"}).to_string(),
    }
}

/// `{"msg":"method","method":…,"id":…,"params":[…]}`.
pub fn method_frame(id: &str, method: &str, params: &[Value]) -> String {
    json!({"msg": "method", "method": method, "id": id, "params": params}).to_string()
}

/// `{"msg":"sub","id":…,"name":…,"params":[…]}`.
pub fn sub_frame(id: &str, name: &str, params: &[Value]) -> String {
    json!({"msg": "sub", "id": id, "name": name, "params": params}).to_string()
}

/// `{"msg":"unsub","id":…}`.
pub fn unsub_frame(id: &str) -> String {
    json!({"msg": "unsub", "id": id}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_worked_frames() {
        assert_eq!(
            decode_server_frame(r#"{"server_id":"0"}"#),
            Ok(ServerFrame::Other)
        );
        assert_eq!(
            decode_server_frame(r#"{"msg":"connected","session":"nq3ZtKwA8sYfJ2xPd"}"#),
            Ok(ServerFrame::Connected {
                session: "nq3ZtKwA8sYfJ2xPd".into()
            })
        );
        assert_eq!(
            decode_server_frame(r#"{"msg":"ping"}"#),
            Ok(ServerFrame::Ping { id: None })
        );
        let login = r#"{"msg":"result","id":"1","result":{"id":"aLiCe7yNSKqG3mZ2p","token":"Z5","tokenExpires":{"$date":1743508800000},"type":"resume"}}"#;
        match decode_server_frame(login) {
            Ok(ServerFrame::Result {
                id,
                result: Some(r),
                error: None,
            }) => {
                assert_eq!(id, "1");
                assert_eq!(r["id"], "aLiCe7yNSKqG3mZ2p");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            decode_server_frame(r#"{"msg":"result","id":"2"}"#),
            Ok(ServerFrame::Result {
                id: "2".into(),
                result: None,
                error: None
            })
        );
        assert_eq!(
            decode_server_frame(r#"{"msg":"ready","subs":["sub-otr-1"]}"#),
            Ok(ServerFrame::Ready {
                subs: vec!["sub-otr-1".into()]
            })
        );
        let nosub = r#"{"msg":"nosub","id":"sub-otr-1","error":{"isClientSafe":true,"error":"not-allowed","message":"[not-allowed]","errorType":"Meteor.Error"}}"#;
        match decode_server_frame(nosub) {
            Ok(ServerFrame::NoSub { id, error: Some(e) }) => {
                assert_eq!(id, "sub-otr-1");
                assert_eq!(e.code(), "not-allowed");
                assert_eq!(e.error_type, "Meteor.Error");
            }
            other => panic!("unexpected {other:?}"),
        }
        let changed = r#"{"msg":"changed","collection":"stream-notify-user","id":"id","fields":{"eventName":"aLiCe7yNSKqG3mZ2p/otr","args":["acknowledge",{"roomId":"Kd9"}]}}"#;
        match decode_server_frame(changed) {
            Ok(ServerFrame::Changed {
                collection,
                id,
                fields,
            }) => {
                assert_eq!(collection, "stream-notify-user");
                assert_eq!(id, "id");
                assert_eq!(fields["args"][0], "acknowledge");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn method_errors_keep_code_and_details() {
        let f = r#"{"msg":"result","id":"9","error":{"isClientSafe":true,"error":"too-many-requests","reason":"Too many","message":"Too many [too-many-requests]","errorType":"Meteor.Error","details":{"timeToReset":1234}}}"#;
        let Ok(ServerFrame::Result { error: Some(e), .. }) = decode_server_frame(f) else {
            panic!("not an error result");
        };
        assert!(e.is_rate_limited());
        assert_eq!(e.time_to_reset_ms(), Some(1234));
        let f = r#"{"msg":"result","id":"1","error":{"error":403,"reason":"Incorrect password"}}"#;
        let Ok(ServerFrame::Result { error: Some(e), .. }) = decode_server_frame(f) else {
            panic!("not an error result");
        };
        assert_eq!(e.code(), "403");
        assert_eq!(e.to_string(), "[403] Incorrect password");
    }

    #[test]
    fn malformed_frames_are_errors_not_panics() {
        assert_eq!(decode_server_frame("not json"), Err(FrameError::NotJson));
        assert_eq!(decode_server_frame("[1,2]"), Err(FrameError::NotObject));
        assert_eq!(
            decode_server_frame(r#"{"msg":"result"}"#),
            Err(FrameError::BadField {
                msg: "result",
                field: "id"
            })
        );
        assert_eq!(
            decode_server_frame(r#"{"msg":"ready","subs":"x"}"#),
            Err(FrameError::BadField {
                msg: "ready",
                field: "subs"
            })
        );
        assert_eq!(
            decode_server_frame(r#"{"msg":"whatever"}"#),
            Ok(ServerFrame::Other)
        );
    }

    #[test]
    fn client_frames_have_the_documented_shape() {
        let v: Value = serde_json::from_str(&connect_frame()).unwrap_or_default();
        assert_eq!(
            v,
            json!({"msg":"connect","version":"1","support":["1","pre2","pre1"]})
        );
        let v: Value = serde_json::from_str(&pong_frame(Some("x"))).unwrap_or_default();
        assert_eq!(v, json!({"msg":"pong","id":"x"}));
        let v: Value = serde_json::from_str(&pong_frame(None)).unwrap_or_default();
        assert_eq!(v, json!({"msg":"pong"}));
        let v: Value =
            serde_json::from_str(&method_frame("4", "sendMessage", &[json!({"rid":"r"})]))
                .unwrap_or_default();
        assert_eq!(
            v,
            json!({"msg":"method","method":"sendMessage","id":"4","params":[{"rid":"r"}]})
        );
        let v: Value = serde_json::from_str(&sub_frame(
            "s",
            "stream-room-messages",
            &[json!("r"), json!(false)],
        ))
        .unwrap_or_default();
        assert_eq!(
            v,
            json!({"msg":"sub","id":"s","name":"stream-room-messages","params":["r",false]})
        );
        let v: Value = serde_json::from_str(&unsub_frame("s")).unwrap_or_default();
        assert_eq!(v, json!({"msg":"unsub","id":"s"}));
    }
}
