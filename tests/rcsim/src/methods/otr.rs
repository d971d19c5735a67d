//! 7.x OTR methods: `updateOTRAck` with the era-D strict `check()` and ack re-emit (`otrAck` or
//! era C's `otr.ack`), and `deleteOldOTRMessages`. On 8.x these methods do not exist.

use serde_json::{json, Map, Value};

use super::Ctx;
use crate::config::AckShape;
use crate::ddp::{is_date, now_ms, MeteorError};

/// System message types the OTR cleanup removes along with `otr` messages.
const OTR_TYPES: [&str; 4] = [
    "otr",
    "user_joined_otr",
    "user_requested_otr_key_refresh",
    "user_key_refreshed_successfully",
];

/// Meteor `check(message, {_id:String, rid:String, msg:String, t:String, ts:Date,
/// u:{_id:String, username:String, name:String}})`: object patterns reject missing and extra keys.
fn era_d_message_ok(message: &Value) -> bool {
    let Some(m) = message.as_object() else {
        return false;
    };
    let strings = ["_id", "rid", "msg", "t"];
    if m.len() != 6
        || !strings
            .iter()
            .all(|k| m.get(*k).is_some_and(Value::is_string))
    {
        return false;
    }
    if !m.get("ts").is_some_and(is_date) {
        return false;
    }
    let Some(u) = m.get("u").and_then(Value::as_object) else {
        return false;
    };
    u.len() == 3
        && ["_id", "username", "name"]
            .iter()
            .all(|k| u.get(*k).is_some_and(Value::is_string))
}

pub fn update_otr_ack(ctx: &Ctx<'_>, params: &[Value]) -> Result<Option<Value>, MeteorError> {
    let arg = match params.first() {
        None | Some(Value::Null) => return Err(MeteorError::internal()),
        Some(v) => v,
    };
    let uid = ctx.require_user("updateOTRAck")?;
    let (Some(message), Some(ack)) = (arg.get("message"), arg.get("ack")) else {
        return Err(MeteorError::match_failed());
    };
    let Some(ack) = ack.as_str() else {
        return Err(MeteorError::match_failed());
    };
    if !era_d_message_ok(message) {
        return Err(MeteorError::match_failed());
    }
    let field = |k: &str| message.get(k).and_then(Value::as_str).unwrap_or("");
    if field("t") != "otr" {
        return Err(
            MeteorError::new("error-invalid-message", "Invalid message type")
                .with_details(json!({ "method": "updateOTRAck" })),
        );
    }
    let rid = field("rid").to_string();
    let author = message
        .get("u")
        .and_then(|u| u.get("_id"))
        .and_then(Value::as_str)
        .unwrap_or("");
    {
        let st = ctx.sim.lock();
        let ok = st
            .room(&rid)
            .is_some_and(|r| r.uids.contains(&uid) && r.uids.iter().any(|u| u == author));
        if !ok {
            return Err(MeteorError::new("error-invalid-room", "Invalid room")
                .with_details(json!({ "method": "updateOTRAck" })));
        }
    }
    let mut acked: Map<String, Value> = message.as_object().cloned().unwrap_or_default();
    match ctx.sim.cfg.ack_shape {
        AckShape::OtrAck => acked.insert("otrAck".into(), json!(ack)),
        AckShape::OtrDotAck => acked.insert("otr".into(), json!({ "ack": ack })),
    };
    ctx.sim.emit(
        "stream-room-messages",
        &rid,
        &json!([Value::Object(acked)]),
        None,
    );
    Ok(None)
}

pub fn delete_old_otr_messages(
    ctx: &Ctx<'_>,
    params: &[Value],
) -> Result<Option<Value>, MeteorError> {
    let Some(rid) = params.first().and_then(Value::as_str) else {
        return Err(MeteorError::match_failed());
    };
    let uid = ctx.require_user("deleteOldOTRMessages")?;
    let mut st = ctx.sim.lock();
    if !st.is_member(rid, &uid) {
        return Err(MeteorError::new("error-invalid-room", "Invalid room")
            .with_details(json!({ "method": "deleteOldOTRMessages" })));
    }
    let now = now_ms();
    st.messages.retain(|m| {
        let in_room = m.get("rid").and_then(Value::as_str) == Some(rid);
        let otr_type = m
            .get("t")
            .and_then(Value::as_str)
            .is_some_and(|t| OTR_TYPES.contains(&t));
        let old = m
            .get("ts")
            .and_then(|t| t.get("$date"))
            .and_then(Value::as_i64)
            .is_some_and(|t| t <= now);
        !(in_room && otr_type && old)
    });
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_check_rejects_missing_and_extra() {
        let good = json!({"_id":"m","rid":"r","msg":"x","t":"otr","ts":{"$date":1},"u":{"_id":"a","username":"a","name":"A"}});
        assert!(era_d_message_ok(&good));
        let mut extra = good.clone();
        extra["otrAck"] = json!("x");
        assert!(!era_d_message_ok(&extra));
        let mut no_name = good.clone();
        no_name["u"] = json!({"_id":"a","username":"a"});
        assert!(!era_d_message_ok(&no_name));
        let mut bad_ts = good;
        bad_ts["ts"] = json!(1);
        assert!(!era_d_message_ok(&bad_ts));
    }
}
