//! Room and account methods: `createDirectMessage`, `rooms/get`, `subscriptions/get` (full list or
//! `{update, remove}` delta since a date), `UserPresence:setDefaultStatus`, `public-settings/get`.

use serde_json::{json, Value};

use super::Ctx;
use crate::config::{Mode, Status};
use crate::ddp::MeteorError;
use crate::sim::Sim;

pub fn create_direct_message(
    ctx: &Ctx<'_>,
    params: &[Value],
) -> Result<Option<Value>, MeteorError> {
    let uid = ctx.require_user("createDirectMessage")?;
    let Some(username) = params.first().and_then(Value::as_str) else {
        return Err(MeteorError::match_failed());
    };
    let doc = open_dm(ctx.sim, &uid, username).ok_or_else(|| {
        MeteorError::new("error-invalid-user", "Invalid user")
            .with_details(json!({ "method": "createDirectMessage" }))
    })?;
    Ok(Some(doc))
}

/// Finds or creates the DM between `uid` and `username`; returns the room doc plus `rid`
/// (`None` when the user does not exist). New rooms are announced to both members.
pub fn open_dm(sim: &Sim, uid: &str, username: &str) -> Option<Value> {
    let (rid, created) = {
        let mut st = sim.lock();
        let peer = st.user_by_name(username)?.id.clone();
        st.ensure_dm(None, uid, &peer).ok()?
    };
    if created {
        tracing::info!(rid = %rid, "direct message room created");
        sim.announce_new_dm(&rid);
    }
    let st = sim.lock();
    let room = st.room(&rid)?;
    let mut doc = st.room_doc(room);
    if let Some(o) = doc.as_object_mut() {
        o.insert("rid".into(), json!(rid));
    }
    Some(doc)
}

/// `Some(ms)` when the first param is `{"$date": ms}` (delta request).
fn since(params: &[Value]) -> Option<i64> {
    params.first()?.get("$date")?.as_i64()
}

fn updated_after(doc: &Value, ms: i64) -> bool {
    doc.get("_updatedAt")
        .and_then(|d| d.get("$date"))
        .and_then(Value::as_i64)
        .is_some_and(|t| t > ms)
}

fn list_or_delta(docs: Vec<Value>, params: &[Value]) -> Value {
    match since(params) {
        Some(ms) => json!({
            "update": docs.into_iter().filter(|d| updated_after(d, ms)).collect::<Vec<_>>(),
            "remove": [],
        }),
        None => Value::Array(docs),
    }
}

pub fn rooms_get(ctx: &Ctx<'_>, params: &[Value]) -> Result<Option<Value>, MeteorError> {
    let Some(uid) = ctx.uid.as_deref() else {
        return Ok(Some(json!([])));
    };
    let st = ctx.sim.lock();
    let docs = st
        .rooms_of(uid)
        .into_iter()
        .map(|r| st.room_doc(r))
        .collect();
    Ok(Some(list_or_delta(docs, params)))
}

pub fn subscriptions_get(ctx: &Ctx<'_>, params: &[Value]) -> Result<Option<Value>, MeteorError> {
    let Some(uid) = ctx.uid.as_deref() else {
        return Ok(Some(json!([])));
    };
    let st = ctx.sim.lock();
    let docs = st
        .rooms_of(uid)
        .into_iter()
        .filter_map(|r| st.subscription_doc(r, uid))
        .collect();
    Ok(Some(list_or_delta(docs, params)))
}

pub fn set_default_status(ctx: &Ctx<'_>, params: &[Value]) -> Result<Option<Value>, MeteorError> {
    let uid = ctx.require_user("UserPresence:setDefaultStatus")?;
    let Some(status) = params
        .first()
        .and_then(Value::as_str)
        .and_then(Status::parse)
    else {
        return Err(MeteorError::match_failed());
    };
    if let Some(u) = ctx.sim.lock().user_mut(&uid) {
        u.default_status = status;
    }
    ctx.sim.refresh_presence(&uid);
    Ok(Some(json!(true)))
}

/// The public settings this server exposes (`OTR_Enable` only on 7.x).
pub fn public_settings(sim: &Sim) -> Value {
    let mut list = Vec::new();
    if sim.cfg.mode == Mode::V7 {
        list.push(json!({ "_id": "OTR_Enable", "value": sim.cfg.otr_enable, "enterprise": false, "requiredOnWizard": false }));
    }
    list.push(json!({ "_id": "UI_Use_Real_Name", "value": sim.cfg.ui_use_real_name, "enterprise": false, "requiredOnWizard": false }));
    list.push(json!({ "_id": "Message_MaxAllowedSize", "value": sim.cfg.message_max_allowed_size, "enterprise": false, "requiredOnWizard": false }));
    Value::Array(list)
}
