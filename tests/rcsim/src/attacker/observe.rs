//! Reading what clients send the way a curious server reads it: every DDP method call is taken
//! apart into the OTR signals it carries (the 7.x `<uid>/otr` writes, and the `offer`, `answer`,
//! `confirm`, `deny`, `end` items of 8.x envelopes on paths A and B) and the ciphertexts (`msg` of
//! `t:"otr"` messages, `updateOTRAck` acks, `message`/`ack` envelope items). Envelope fragments
//! are put back together within fixed bounds, so a flood of bogus pieces costs bounded memory.

use std::collections::{HashMap, VecDeque};

use serde_json::Value;

use super::Route;

/// A signal a client sent.
#[derive(Debug, Clone)]
pub(super) struct SignalSeen {
    /// Where it travelled.
    pub route: Route,
    /// The room it names (event name or envelope).
    pub room: String,
    /// The stock signal type: `handshake`, `acknowledge`, `deny` or `end`.
    pub kind: &'static str,
    /// The payload as sent.
    pub payload: Value,
}

/// A ciphertext a client sent.
#[derive(Debug, Clone)]
pub(super) struct CiphertextSeen {
    /// The room it is for.
    pub room: String,
    /// `message` or `ack`.
    pub what: &'static str,
    /// The `{"$binary": …}` string.
    pub text: String,
}

/// Everything one method call carried.
#[derive(Debug, Default)]
pub(super) struct Seen {
    /// Signals, in order.
    pub signals: Vec<SignalSeen>,
    /// Ciphertexts, in order.
    pub ciphertexts: Vec<CiphertextSeen>,
    /// `(room, path)` when the caller sent an envelope in its own name (the path it uses there).
    pub path_used: Option<(String, Route)>,
}

/// Bounds of the fragment buffer (a flood of bogus pieces must not grow it).
const MAX_GROUPS: usize = 64;
const MAX_GROUP_BYTES: usize = 1024 * 1024;
const MAX_PIECES: u64 = 256;

/// Fragment groups in flight, keyed by (writer uid, run, group id).
#[derive(Debug, Default)]
pub(super) struct Fragments {
    groups: HashMap<(String, String, u64), Group>,
    order: VecDeque<(String, String, u64)>,
}

#[derive(Debug)]
struct Group {
    n: u64,
    pieces: HashMap<u64, String>,
    bytes: usize,
}

impl Fragments {
    /// Adds one piece; returns the item list once the group is complete.
    fn add(&mut self, key: (String, String, u64), i: u64, n: u64, d: &str) -> Option<Vec<Value>> {
        if n == 0 || n > MAX_PIECES || i >= n {
            return None;
        }
        if !self.groups.contains_key(&key) {
            if self.groups.len() >= MAX_GROUPS {
                if let Some(old) = self.order.pop_front() {
                    self.groups.remove(&old);
                }
            }
            self.order.push_back(key.clone());
            self.groups.insert(
                key.clone(),
                Group {
                    n,
                    pieces: HashMap::new(),
                    bytes: 0,
                },
            );
        }
        let group = self.groups.get_mut(&key)?;
        if group.n != n || group.bytes + d.len() > MAX_GROUP_BYTES {
            return None;
        }
        if group.pieces.insert(i, d.to_owned()).is_none() {
            group.bytes += d.len();
        }
        if group.pieces.len() as u64 != group.n {
            return None;
        }
        let group = self.groups.remove(&key)?;
        self.order.retain(|k| k != &key);
        let text: String = (0..group.n)
            .filter_map(|i| group.pieces.get(&i).map(String::as_str))
            .collect();
        serde_json::from_str::<Vec<Value>>(&text).ok()
    }
}

/// Takes one method call by `uid` apart.
pub(super) fn method_call(
    uid: &str,
    method: &str,
    params: &[Value],
    fragments: &mut Fragments,
) -> Seen {
    let mut seen = Seen::default();
    let event = params.first().and_then(Value::as_str).unwrap_or("");
    match method {
        "stream-notify-user" if event.ends_with("/otr") => {
            let kind = params.get(1).and_then(Value::as_str).and_then(stock_kind);
            if let (Some(kind), Some(payload)) = (kind, params.get(2)) {
                let room = text(payload, "roomId");
                seen.signals.push(SignalSeen {
                    route: Route::OtrStream,
                    room,
                    kind,
                    payload: payload.clone(),
                });
            }
        }
        "stream-notify-room" => {
            if let Some(rid) = event.strip_suffix("/user-activity") {
                if let Some(env) = params.get(3).and_then(|x| x.get("otrd")) {
                    envelope(uid, Route::PathA, rid, env, fragments, &mut seen);
                }
            }
        }
        "stream-notify-room-users" => {
            if let Some(rid) = event.strip_suffix("/video-conference") {
                if let Some(env) = params.get(1).and_then(|x| x.get("otrd")) {
                    envelope(uid, Route::PathB, rid, env, fragments, &mut seen);
                }
            }
        }
        "sendMessage" => {
            let m = params.first().unwrap_or(&Value::Null);
            if m.get("t").and_then(Value::as_str) == Some("otr") {
                if let Some(msg) = m.get("msg").and_then(Value::as_str) {
                    seen.ciphertexts.push(CiphertextSeen {
                        room: text(m, "rid"),
                        what: "message",
                        text: msg.to_owned(),
                    });
                }
            }
        }
        "updateOTRAck" => {
            let p = params.first().unwrap_or(&Value::Null);
            if let Some(ack) = p.get("ack").and_then(Value::as_str) {
                let room = p.get("message").map(|m| text(m, "rid")).unwrap_or_default();
                seen.ciphertexts.push(CiphertextSeen {
                    room,
                    what: "ack",
                    text: ack.to_owned(),
                });
            }
        }
        _ => {}
    }
    seen
}

/// The envelope's items (whole, or once its fragment group is complete) become signals and
/// ciphertexts. `rid` is the room the event was written for.
fn envelope(
    uid: &str,
    route: Route,
    rid: &str,
    env: &Value,
    fragments: &mut Fragments,
    seen: &mut Seen,
) {
    let room = env
        .get("room")
        .and_then(Value::as_str)
        .unwrap_or(rid)
        .to_owned();
    if env.get("from").and_then(Value::as_str) == Some(uid) && room == rid {
        seen.path_used = Some((room.clone(), route));
    }
    // Whole envelopes are read in place: a flood of them must not be copied item by item.
    let reassembled: Vec<Value>;
    let items: &[Value] = match (env.get("items"), env.get("frag")) {
        (Some(Value::Array(items)), _) if !items.is_empty() => items,
        (_, Some(frag)) => {
            let run = text(env, "run");
            let num = |k: &str| frag.get(k).and_then(Value::as_u64);
            let (Some(id), Some(i), Some(n)) = (num("id"), num("i"), num("n")) else {
                return;
            };
            let d = frag.get("d").and_then(Value::as_str).unwrap_or("");
            match fragments.add((uid.to_owned(), run, id), i, n, d) {
                Some(items) => {
                    reassembled = items;
                    &reassembled
                }
                None => return,
            }
        }
        _ => return,
    };
    for item in items {
        let p = item.get("p").unwrap_or(&Value::Null);
        let kind = match item.get("k").and_then(Value::as_str).unwrap_or("") {
            "offer" => "handshake",
            "answer" | "confirm" => "acknowledge",
            "deny" => "deny",
            "end" => "end",
            "message" | "ack" => {
                let (what, field) = if item["k"] == "message" {
                    ("message", "msg")
                } else {
                    ("ack", "ack")
                };
                if let Some(t) = p.get(field).and_then(Value::as_str) {
                    seen.ciphertexts.push(CiphertextSeen {
                        room: room.clone(),
                        what,
                        text: t.to_owned(),
                    });
                }
                continue;
            }
            _ => continue,
        };
        seen.signals.push(SignalSeen {
            route,
            room: room.clone(),
            kind,
            payload: p.clone(),
        });
    }
}

/// The stock signal type names (PROTOCOL.md §3.2).
fn stock_kind(s: &str) -> Option<&'static str> {
    ["handshake", "acknowledge", "deny", "end"]
        .into_iter()
        .find(|k| *k == s)
}

fn text(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_signals_and_ciphertexts_on_every_route() {
        let mut f = Fragments::default();
        let s = method_call(
            "A",
            "stream-notify-user",
            &[
                json!("B/otr"),
                json!("acknowledge"),
                json!({"roomId": "R", "userId": "A", "publicKey": "{}"}),
            ],
            &mut f,
        );
        assert_eq!(s.signals[0].kind, "acknowledge");
        assert_eq!(s.signals[0].room, "R");

        let env = json!({"v": 1, "from": "A", "room": "R", "run": "0123456789abcdef", "seq": 1,
            "items": [{"k": "answer", "p": {"publicKey": "{}"}}, {"k": "message", "p": {"id": "m", "msg": "X"}}]});
        let s = method_call(
            "A",
            "stream-notify-room",
            &[
                json!("R/user-activity"),
                json!("alice"),
                json!([]),
                json!({"otrd": env}),
            ],
            &mut f,
        );
        assert_eq!(s.signals[0].route, Route::PathA);
        assert_eq!(s.ciphertexts[0].text, "X");
        assert_eq!(s.path_used, Some(("R".to_owned(), Route::PathA)));

        let s = method_call(
            "A",
            "sendMessage",
            &[json!({"_id": "m", "rid": "R", "msg": "Y", "t": "otr"})],
            &mut f,
        );
        assert_eq!(
            (s.ciphertexts[0].what, s.ciphertexts[0].text.as_str()),
            ("message", "Y")
        );
        let s = method_call(
            "A",
            "sendMessage",
            &[json!({"rid": "R", "msg": "plain"})],
            &mut f,
        );
        assert!(s.ciphertexts.is_empty());
    }

    #[test]
    fn reassembles_fragments_and_forgets_old_groups() {
        let mut f = Fragments::default();
        let items = json!([{"k": "message", "p": {"id": "m", "msg": "Z"}}]).to_string();
        let (a, b) = items.split_at(10);
        let piece = |i: u64, d: &str| {
            json!({"v": 1, "from": "A", "room": "R", "run": "r", "seq": i + 1,
                "frag": {"id": 7, "i": i, "n": 2, "d": d}})
        };
        let call = |f: &mut Fragments, env: Value| {
            method_call(
                "A",
                "stream-notify-room-users",
                &[
                    json!("R/video-conference"),
                    json!({"action": "otrd", "otrd": env}),
                ],
                f,
            )
        };
        assert!(call(&mut f, piece(1, b)).ciphertexts.is_empty());
        assert_eq!(call(&mut f, piece(0, a)).ciphertexts[0].text, "Z");
        for id in 0..(MAX_GROUPS as u64 * 2) {
            let env = json!({"v": 1, "from": "A", "room": "R", "run": "r", "seq": 1,
                "frag": {"id": 100 + id, "i": 0, "n": 3, "d": "x"}});
            call(&mut f, env);
        }
        assert!(f.groups.len() <= MAX_GROUPS);
    }
}
