//! The bridge's line protocol: what a request line must hold, and how answers, errors and events
//! are written. Message bodies use the proto3 JSON mapping (lowerCamelCase names, enum values by
//! name, 64-bit integers as strings), produced from the API's own descriptor so every field the
//! proto has — now or later — is mapped without hand-written mirrors.
//!
//! Lines:
//! - in:  `{"id":ID,"method":"StartSession","params":{…}}` (`id` any JSON value, echoed; `params`
//!   optional);
//! - out: `{"id":ID,"result":{…}}`, `{"id":ID,"error":{"code":"NOT_FOUND","message":"…"}}`,
//!   `{"event":{…}}` while watching, and `{"watch":"ended","error":{…}}` when the event stream
//!   stops.

use otrd_proto::v1::FILE_DESCRIPTOR_SET;
use prost_reflect::{
    DescriptorPool, DeserializeOptions, DynamicMessage, MethodDescriptor, SerializeOptions,
    ServiceDescriptor,
};
use serde::{Serialize, Serializer};
use serde_json::{json, Value};
use tonic::Code;
use zeroize::Zeroizing;

/// The service the bridge speaks for.
const SERVICE: &str = "otrd.v1.Otrd";

/// Answers show every field, defaults included, so a client need not know proto3's defaults.
const OUTPUT: SerializeOptions = SerializeOptions::new().skip_default_fields(false);

/// One encoded output line, newline included. It may carry message text, hence zeroizing.
pub type Line = Zeroizing<Vec<u8>>;

/// The API as the bridge knows it: the service descriptor compiled into `otrd-proto`.
#[derive(Debug, Clone)]
pub struct Api {
    service: ServiceDescriptor,
}

/// The embedded descriptor set is unusable (a build problem, not a user's).
#[derive(Debug, thiserror::Error)]
#[error("the embedded API description is unusable: {0}")]
pub struct DescriptorError(String);

/// A request line, understood: which method, with which request message.
#[derive(Debug)]
pub struct Call {
    /// Echoed in the answer.
    pub id: Value,
    /// The RPC to call.
    pub method: MethodDescriptor,
    /// Its request message, from `params`.
    pub request: DynamicMessage,
}

/// A request line that cannot be carried out; answered with an error line.
#[derive(Debug)]
pub struct Rejected {
    /// The line's `id` if it had one, else `null`.
    pub id: Value,
    /// The gRPC code saying why.
    pub code: Code,
    /// For people.
    pub message: String,
}

impl Api {
    /// Loads the service from the descriptor set compiled into `otrd-proto`.
    pub fn load() -> Result<Self, DescriptorError> {
        let pool = DescriptorPool::decode(FILE_DESCRIPTOR_SET)
            .map_err(|e| DescriptorError(e.to_string()))?;
        let service = pool
            .get_service_by_name(SERVICE)
            .ok_or_else(|| DescriptorError(format!("no service {SERVICE}")))?;
        Ok(Self { service })
    }

    /// The method names the bridge accepts, in the proto's order.
    pub fn method_names(&self) -> Vec<String> {
        self.service
            .methods()
            .map(|m| m.name().to_owned())
            .collect()
    }

    /// Reads one request line.
    pub fn parse(&self, line: &[u8]) -> Result<Call, Rejected> {
        let value: Value = serde_json::from_slice(line).map_err(|e| Rejected {
            id: Value::Null,
            code: Code::InvalidArgument,
            message: format!("not a JSON request line: {e}"),
        })?;
        let Value::Object(mut fields) = value else {
            return Err(Rejected {
                id: Value::Null,
                code: Code::InvalidArgument,
                message: "a request line must be a JSON object with `method`".into(),
            });
        };
        let id = fields.remove("id").unwrap_or(Value::Null);
        let reject = |code, message: String| Rejected {
            id: id.clone(),
            code,
            message,
        };
        let name = match fields.remove("method") {
            Some(Value::String(name)) => name,
            Some(_) => {
                return Err(reject(
                    Code::InvalidArgument,
                    "`method` must be a string".into(),
                ))
            }
            None => {
                return Err(reject(
                    Code::InvalidArgument,
                    "the request has no `method`".into(),
                ))
            }
        };
        let method = self
            .service
            .methods()
            .find(|m| m.name() == name)
            .ok_or_else(|| {
                reject(
                    Code::Unimplemented,
                    format!(
                        "no method `{name}`; the API has {}",
                        self.method_names().join(", ")
                    ),
                )
            })?;
        let params = match fields.remove("params") {
            None | Some(Value::Null) => Value::Object(Default::default()),
            Some(p @ Value::Object(_)) => p,
            Some(_) => {
                return Err(reject(
                    Code::InvalidArgument,
                    "`params` must be an object".into(),
                ))
            }
        };
        if let Some(extra) = fields.keys().next() {
            return Err(reject(
                Code::InvalidArgument,
                format!("unknown member `{extra}` (a request has id, method, params)"),
            ));
        }
        let request = DynamicMessage::deserialize_with_options(
            method.input(),
            params,
            &DeserializeOptions::new(),
        )
        .map_err(|e| {
            reject(
                Code::InvalidArgument,
                format!("params of {name} ({}): {e}", method.input().name()),
            )
        })?;
        Ok(Call {
            id,
            method,
            request,
        })
    }
}

/// `{"id":…,"result":{…}}`.
pub fn answer(id: &Value, result: &DynamicMessage) -> Line {
    #[derive(Serialize)]
    struct Answer<'a> {
        id: &'a Value,
        result: Mapped<'a>,
    }
    encode(&Answer {
        id,
        result: Mapped(result),
    })
    .unwrap_or_else(|e| error(id, Code::Internal, &format!("encoding the answer: {e}")))
}

/// `{"id":…,"result":{}}`: a stream request is attached; its items follow as event lines.
pub fn attached(id: &Value) -> Line {
    finish(json!({"id": id, "result": {}}))
}

/// `{"id":…,"error":{"code":"NOT_FOUND","message":"…"}}`.
pub fn error(id: &Value, code: Code, message: &str) -> Line {
    finish(json!({"id": id, "error": {"code": code_name(code), "message": message}}))
}

/// `{"event":{…}}`.
pub fn event(event: &DynamicMessage) -> Line {
    #[derive(Serialize)]
    struct EventLine<'a> {
        event: Mapped<'a>,
    }
    encode(&EventLine {
        event: Mapped(event),
    })
    .unwrap_or_else(|e| watch_ended(Code::Internal, &format!("encoding an event: {e}")))
}

/// `{"watch":"ended","error":{…}}`: the event stream stopped (daemon gone or shutting down).
pub fn watch_ended(code: Code, message: &str) -> Line {
    finish(json!({"watch": "ended", "error": {"code": code_name(code), "message": message}}))
}

/// The rejection as its error line.
pub fn rejected(r: &Rejected) -> Line {
    error(&r.id, r.code, &r.message)
}

/// The gRPC code's canonical name, as in the gRPC spec (`FAILED_PRECONDITION`).
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// A dynamic message serialized with the bridge's output options.
struct Mapped<'a>(&'a DynamicMessage);

impl Serialize for Mapped<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize_with_options(s, &OUTPUT)
    }
}

fn encode(value: &impl Serialize) -> Result<Line, serde_json::Error> {
    let mut line = Zeroizing::new(Vec::with_capacity(512));
    serde_json::to_writer(&mut *line, value)?;
    line.push(b'\n');
    Ok(line)
}

fn finish(value: Value) -> Line {
    let mut line = Zeroizing::new(value.to_string().into_bytes());
    line.push(b'\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api() -> Api {
        Api::load().expect("descriptor loads")
    }

    fn text(line: &Line) -> Value {
        serde_json::from_slice(line).expect("output is JSON")
    }

    #[test]
    fn every_rpc_of_the_service_is_known() {
        let names = api().method_names();
        for m in [
            "GetStatus",
            "ListRooms",
            "ListSessions",
            "StartSession",
            "AcceptSession",
            "DeclineSession",
            "RefreshSession",
            "EndSession",
            "EndAllSessions",
            "SendMessage",
            "WatchEvents",
            "GetFingerprint",
            "TrustPeer",
            "AcceptPeerKey",
            "ConfirmSas",
        ] {
            assert!(names.iter().any(|n| n == m), "{m} missing from {names:?}");
        }
    }

    #[test]
    fn params_follow_the_json_mapping() {
        let call = api()
            .parse(br#"{"id":7,"method":"StartSession","params":{"peer":{"username":"bob"},"scheme":"SCHEME_PREFERENCE_LEGACY"}}"#)
            .expect("parses");
        assert_eq!(call.id, json!(7));
        let req: otrd_proto::v1::StartSessionRequest =
            call.request.transcode_to().expect("transcodes");
        assert_eq!(req.scheme(), otrd_proto::v1::SchemePreference::Legacy);
        assert_eq!(
            req.peer.and_then(|p| p.target),
            Some(otrd_proto::v1::peer_ref::Target::Username("bob".into()))
        );
        // The proto field name is accepted too, as the mapping requires of parsers.
        let call = api()
            .parse(br#"{"id":"w","method":"WatchEvents","params":{"include_scrollback":true}}"#)
            .expect("parses");
        let req: otrd_proto::v1::WatchEventsRequest =
            call.request.transcode_to().expect("transcodes");
        assert!(req.include_scrollback);
    }

    #[test]
    fn malformed_lines_are_rejected_with_a_code() {
        let cases: [(&[u8], Value, Code); 7] = [
            (b"not json", Value::Null, Code::InvalidArgument),
            (b"[1,2]", Value::Null, Code::InvalidArgument),
            (br#"{"id":1}"#, json!(1), Code::InvalidArgument),
            (
                br#"{"id":2,"method":"Nope"}"#,
                json!(2),
                Code::Unimplemented,
            ),
            (
                br#"{"id":3,"method":"GetStatus","params":[]}"#,
                json!(3),
                Code::InvalidArgument,
            ),
            (
                br#"{"id":4,"method":"SendMessage","params":{"txt":"x"}}"#,
                json!(4),
                Code::InvalidArgument,
            ),
            (
                br#"{"id":5,"method":"GetStatus","extra":1}"#,
                json!(5),
                Code::InvalidArgument,
            ),
        ];
        for (line, id, code) in cases {
            let r = api().parse(line).expect_err("rejected");
            assert_eq!(
                (r.id, r.code),
                (id, code),
                "{}",
                String::from_utf8_lossy(line)
            );
            let out = text(&rejected(&api().parse(line).expect_err("rejected")));
            assert_eq!(out["error"]["code"], code_name(code));
        }
    }

    #[test]
    fn answers_use_camel_case_enum_names_and_show_defaults() {
        let api = api();
        let method = api
            .service
            .methods()
            .find(|m| m.name() == "StartSession")
            .expect("method");
        let mut msg = DynamicMessage::new(method.output());
        msg.transcode_from(&otrd_proto::v1::SessionResponse {
            session: Some(otrd_proto::v1::Session {
                room_id: "r1".into(),
                peer: "bob".into(),
                state: otrd_proto::v1::SessionState::Establishing.into(),
                since_ms: 5,
                ..Default::default()
            }),
        })
        .expect("transcodes");
        let out = text(&answer(&json!("a"), &msg));
        assert_eq!(out["id"], "a");
        let s = &out["result"]["session"];
        assert_eq!(s["roomId"], "r1");
        assert_eq!(s["state"], "SESSION_STATE_ESTABLISHING");
        assert_eq!(s["sinceMs"], "5");
        assert_eq!(s["pendingMessages"], 0);
        assert_eq!(s["initiator"], false);
    }
}
