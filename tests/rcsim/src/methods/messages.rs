//! `sendMessage` as 7.x/8.x run it: validation and size check, then — on 7.x — the `t:"otr"`
//! short-circuit (broadcast `[message, user, room]`, never stored), otherwise store and broadcast.
//! Like Rocket.Chat, every failure except `error-not-allowed` is swallowed: the result frame has
//! no `result` member and an ephemeral error goes to `<uid>/message`.

use serde_json::{json, Map, Value};

use super::Ctx;
use crate::config::Mode;
use crate::ddp::{date, is_date, now_ms, random_id, MeteorError};

/// A failure Rocket.Chat swallows (reported only as an ephemeral message).
struct Swallowed(&'static str);

pub fn send_message(ctx: &Ctx<'_>, params: &[Value]) -> Result<Option<Value>, MeteorError> {
    let Some(message) = params.first().and_then(Value::as_object) else {
        return Err(MeteorError::match_failed());
    };
    let uid = ctx.require_user("sendMessage")?;
    match execute(ctx, &uid, message) {
        Ok(v) => Ok(Some(v)),
        Err(Outcome::Thrown(e)) => Err(e),
        Err(Outcome::Swallowed(Swallowed(code))) => {
            tracing::info!(conn = ctx.conn, code, "sendMessage failed (swallowed)");
            let rid = message.get("rid").and_then(Value::as_str).unwrap_or("");
            let now = now_ms();
            ctx.sim.notify_user(
                &uid,
                "message",
                &json!([{
                    "groupable": false,
                    "_id": random_id(),
                    "rid": rid,
                    "ts": date(now),
                    "msg": code,
                    "u": { "_id": "rocket.cat", "username": "rocket.cat" },
                    "private": true,
                    "_updatedAt": date(now),
                }]),
            );
            Ok(None)
        }
    }
}

enum Outcome {
    Thrown(MeteorError),
    Swallowed(Swallowed),
}

impl From<Swallowed> for Outcome {
    fn from(s: Swallowed) -> Self {
        Outcome::Swallowed(s)
    }
}

fn execute(ctx: &Ctx<'_>, uid: &str, message: &Map<String, Value>) -> Result<Value, Outcome> {
    let sim = ctx.sim;
    let now = now_ms();
    let ts = match message.get("ts") {
        None | Some(Value::Null) => now,
        Some(v) if is_date(v) => {
            let sent = v.get("$date").and_then(Value::as_i64).unwrap_or(now);
            let skew = (now - sent).abs();
            if skew > 60_000 {
                return Err(Swallowed("error-message-ts-out-of-sync").into());
            }
            if skew > 10_000 {
                now
            } else {
                sent
            }
        }
        Some(_) => return Err(Swallowed("Match failed").into()),
    };
    for key in ["_id", "rid", "msg", "t", "tmid"] {
        if message.get(key).is_some_and(|v| !v.is_string()) {
            return Err(Swallowed("Match failed").into());
        }
    }
    let text = message.get("msg").and_then(Value::as_str).unwrap_or("");
    if text.encode_utf16().count() > sim.cfg.message_max_allowed_size {
        return Err(Swallowed("error-message-size-exceeded").into());
    }
    let Some(rid) = message.get("rid").and_then(Value::as_str) else {
        return Err(Swallowed("The 'rid' property on the message object is missing.").into());
    };
    let (user, user_full, room_doc) = {
        let st = sim.lock();
        let Some(room) = st.room(rid) else {
            return Err(Swallowed("error-invalid-room").into());
        };
        if !room.uids.iter().any(|u| u == uid) {
            return Err(Outcome::Thrown(
                MeteorError::new("error-not-allowed", "Not allowed")
                    .with_details(json!({ "method": "sendMessage" })),
            ));
        }
        let Some(u) = st.user(uid) else {
            return Err(Swallowed("error-invalid-user").into());
        };
        (
            json!({ "_id": u.id, "username": u.username, "name": u.name }),
            json!({ "_id": u.id, "username": u.username, "type": "user", "name": u.name }),
            st.room_doc(room),
        )
    };
    // prepareMessageObject: client members kept, then rid forced, ts and u set by the server.
    let mut doc = Map::new();
    let id = message
        .get("_id")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(random_id);
    doc.insert("_id".into(), json!(id));
    for (k, v) in message {
        if !matches!(k.as_str(), "_id" | "rid" | "ts" | "u") {
            doc.insert(k.clone(), v.clone());
        }
    }
    doc.insert("rid".into(), json!(rid));
    doc.insert("ts".into(), date(ts));
    doc.insert("u".into(), user);
    // Keep the wire order of §10: _id, rid, msg, t, ts, u.
    let order = ["_id", "rid", "msg", "t", "ts", "u"];
    let mut ordered = Map::new();
    for k in order {
        if let Some(v) = doc.remove(k) {
            ordered.insert(k.into(), v);
        }
    }
    ordered.extend(doc);
    let is_otr = ordered.get("t").and_then(Value::as_str) == Some("otr");
    if is_otr && sim.cfg.mode == Mode::V7 {
        let message = Value::Object(ordered);
        tracing::debug!(conn = ctx.conn, rid, "otr message relayed, not stored");
        sim.emit(
            "stream-room-messages",
            rid,
            &json!([message, user_full, room_doc]),
            None,
        );
        return Ok(message);
    }
    ordered.insert("_updatedAt".into(), date(now));
    ordered.insert("urls".into(), json!([]));
    ordered.insert("mentions".into(), json!([]));
    ordered.insert("channels".into(), json!([]));
    let message = Value::Object(ordered);
    if !sim.store_message("message", message.clone()) {
        return Err(Swallowed("error-duplicate-message-id").into());
    }
    sim.broadcast_stored(rid, &message);
    Ok(message)
}
