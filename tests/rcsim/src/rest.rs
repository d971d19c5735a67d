//! The REST API under `/api`: `info`, `v1/settings.public`, `v1/chat.otr` (7.x only),
//! `v1/im.list`, `v1/im.create`, `v1/rooms.info`, `v1/rooms.get`, `v1/users.info`,
//! `v1/users.presence`, `v1/subscriptions.get`, `v1/me`, `v1/login` (with the server's LDAP and
//! two-factor handling, `rest::auth`). Authenticated calls carry
//! `X-User-Id` and `X-Auth-Token` (the DDP login token works, as on a real server).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::config::Mode;
use crate::ddp::{date, now_ms, random_id};
use crate::methods::rooms as rooms_api;
use crate::sim::Sim;

pub(crate) mod auth;

type Q = Query<HashMap<String, String>>;

/// The `/api` routes.
pub fn router() -> Router<Arc<Sim>> {
    Router::new()
        .route("/api/info", get(info))
        .route("/api/v1/settings.public", get(settings_public))
        .route("/api/v1/chat.otr", post(chat_otr))
        .route("/api/v1/im.list", get(im_list))
        .route("/api/v1/im.create", post(im_create))
        .route("/api/v1/rooms.info", get(rooms_info))
        .route("/api/v1/rooms.get", get(rooms_get))
        .route("/api/v1/users.info", get(users_info))
        .route("/api/v1/users.presence", get(users_presence))
        .route("/api/v1/subscriptions.get", get(subscriptions_get))
        .route("/api/v1/me", get(me))
        .route("/api/v1/login", post(login))
}

fn reply(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

fn ok(mut body: Value) -> Response {
    if let Some(o) = body.as_object_mut() {
        o.insert("success".into(), json!(true));
    }
    reply(StatusCode::OK, body)
}

fn fail(error: &str, error_type: Option<&str>) -> Response {
    let mut body = json!({ "success": false, "error": error });
    if let (Some(t), Some(o)) = (error_type, body.as_object_mut()) {
        o.insert("errorType".into(), json!(t));
    }
    reply(StatusCode::BAD_REQUEST, body)
}

/// The reply for a route this server version does not have.
pub fn not_found() -> Response {
    reply(
        StatusCode::NOT_FOUND,
        json!({ "success": false, "error": "Not Found" }),
    )
}

/// Resolves `X-User-Id` + `X-Auth-Token` to a user id, or the 401 Rocket.Chat answers.
fn auth(sim: &Sim, headers: &HeaderMap) -> Result<String, Box<Response>> {
    let h = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let (uid, token) = (h("x-user-id"), h("x-auth-token"));
    let valid = !uid.is_empty()
        && sim
            .lock()
            .token(token)
            .is_some_and(|t| t.uid == uid && (t.personal || t.expires_ms >= now_ms()));
    if valid {
        Ok(uid.to_string())
    } else {
        Err(Box::new(reply(
            StatusCode::UNAUTHORIZED,
            json!({ "status": "error", "message": "You must be logged in to do this." }),
        )))
    }
}

async fn info(State(sim): State<Arc<Sim>>) -> Response {
    ok(json!({ "version": sim.cfg.version_string() }))
}

async fn settings_public(State(sim): State<Arc<Sim>>, Query(q): Q) -> Response {
    let all = rooms_api::public_settings(&sim);
    let wanted: Option<Vec<String>> = q
        .get("_id")
        .filter(|s| !s.is_empty())
        .map(|s| s.split(',').map(|p| p.trim().to_string()).collect());
    let list: Vec<Value> = all
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| {
            let id = s.get("_id").and_then(Value::as_str).unwrap_or("");
            wanted.as_ref().is_none_or(|w| w.iter().any(|x| x == id))
        })
        .cloned()
        .collect();
    let n = list.len();
    ok(json!({ "settings": list, "count": n, "offset": 0, "total": n }))
}

const OTR_SYSTEM_TYPES: [&str; 3] = [
    "user_joined_otr",
    "user_requested_otr_key_refresh",
    "user_key_refreshed_successfully",
];

async fn chat_otr(State(sim): State<Arc<Sim>>, headers: HeaderMap, body: Bytes) -> Response {
    if sim.cfg.mode == Mode::V8 {
        return not_found();
    }
    let uid = match auth(&sim, &headers) {
        Ok(u) => u,
        Err(r) => return *r,
    };
    let Ok(Value::Object(b)) = serde_json::from_slice::<Value>(&body) else {
        return fail("must be object [invalid-params]", Some("invalid-params"));
    };
    let room_id = b.get("roomId").and_then(Value::as_str).unwrap_or("");
    let kind = b.get("type").and_then(Value::as_str).unwrap_or("");
    if room_id.is_empty() || !OTR_SYSTEM_TYPES.contains(&kind) || b.len() != 2 {
        return fail(
            "must match the chat.otr schema [invalid-params]",
            Some("invalid-params"),
        );
    }
    let doc = {
        let st = sim.lock();
        if !st.is_member(room_id, &uid) {
            return fail("error-not-allowed", Some("error-not-allowed"));
        }
        let Some(u) = st.user(&uid) else {
            return fail("error-invalid-user", Some("error-invalid-user"));
        };
        let now = now_ms();
        json!({
            "_id": random_id(),
            "t": kind,
            "rid": room_id,
            "ts": date(now),
            "msg": u.username,
            "u": { "_id": u.id, "username": u.username },
            "groupable": false,
            "_updatedAt": date(now),
        })
    };
    if sim.store_message("system", doc.clone()) {
        sim.broadcast_stored(room_id, &doc);
    }
    ok(json!({}))
}

async fn im_list(State(sim): State<Arc<Sim>>, headers: HeaderMap) -> Response {
    let uid = match auth(&sim, &headers) {
        Ok(u) => u,
        Err(r) => return *r,
    };
    let st = sim.lock();
    let ims: Vec<Value> = st
        .rooms_of(&uid)
        .into_iter()
        .map(|r| st.room_doc(r))
        .collect();
    let n = ims.len();
    ok(json!({ "ims": ims, "offset": 0, "count": n, "total": n }))
}

async fn rooms_get(State(sim): State<Arc<Sim>>, headers: HeaderMap) -> Response {
    let uid = match auth(&sim, &headers) {
        Ok(u) => u,
        Err(r) => return *r,
    };
    let st = sim.lock();
    let rooms: Vec<Value> = st
        .rooms_of(&uid)
        .into_iter()
        .map(|r| st.room_doc(r))
        .collect();
    ok(json!({ "update": rooms, "remove": [] }))
}

async fn im_create(State(sim): State<Arc<Sim>>, headers: HeaderMap, body: Bytes) -> Response {
    let uid = match auth(&sim, &headers) {
        Ok(u) => u,
        Err(r) => return *r,
    };
    let username = serde_json::from_slice::<Value>(&body).ok().and_then(|b| {
        b.get("username")
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    let Some(username) = username else {
        return fail("Body param \"username\" or \"usernames\" is required", None);
    };
    match rooms_api::open_dm(&sim, &uid, &username) {
        Some(room) => ok(json!({ "room": room })),
        None => fail(
            "Invalid user [error-invalid-user]",
            Some("error-invalid-user"),
        ),
    }
}

async fn rooms_info(State(sim): State<Arc<Sim>>, headers: HeaderMap, Query(q): Q) -> Response {
    let uid = match auth(&sim, &headers) {
        Ok(u) => u,
        Err(r) => return *r,
    };
    let rid = q.get("roomId").map(String::as_str).unwrap_or("");
    let st = sim.lock();
    match st.room(rid) {
        Some(room) if room.uids.contains(&uid) => ok(json!({ "room": st.room_doc(room) })),
        Some(_) => fail("Not Allowed", None),
        None => fail("The required \"roomId\" or \"roomName\" param provided does not match any channel [error-room-not-found]", Some("error-room-not-found")),
    }
}

async fn users_info(State(sim): State<Arc<Sim>>, headers: HeaderMap, Query(q): Q) -> Response {
    if let Err(r) = auth(&sim, &headers) {
        return *r;
    }
    let st = sim.lock();
    let found = if let Some(id) = q.get("userId") {
        st.user(id).map(|u| u.id.clone())
    } else if let Some(name) = q.get("username") {
        st.user_by_name(name).map(|u| u.id.clone())
    } else {
        return fail("The required \"userId\" or \"username\" param was not provided [error-user-param-not-provided]", Some("error-user-param-not-provided"));
    };
    match found.and_then(|id| st.user_doc(&id)) {
        Some(user) => ok(json!({ "user": user })),
        None => fail("User not found.", None),
    }
}

async fn users_presence(State(sim): State<Arc<Sim>>, headers: HeaderMap, Query(q): Q) -> Response {
    if let Err(r) = auth(&sim, &headers) {
        return *r;
    }
    let st = sim.lock();
    let ids: Vec<String> = q
        .get("ids")
        .map(|s| s.split(',').map(|p| p.trim().to_string()).collect())
        .unwrap_or_else(|| st.users.iter().map(|u| u.id.clone()).collect());
    let users: Vec<Value> = ids
        .iter()
        .filter_map(|id| {
            let u = st.user(id)?;
            let status = st.effective_status(id);
            if status == crate::config::Status::Offline {
                return None;
            }
            Some(json!({ "_id": u.id, "username": u.username, "name": u.name, "status": status.as_str(), "utcOffset": 0 }))
        })
        .collect();
    ok(json!({ "users": users, "full": true }))
}

async fn subscriptions_get(State(sim): State<Arc<Sim>>, headers: HeaderMap) -> Response {
    let uid = match auth(&sim, &headers) {
        Ok(u) => u,
        Err(r) => return *r,
    };
    let st = sim.lock();
    let subs: Vec<Value> = st
        .rooms_of(&uid)
        .into_iter()
        .filter_map(|r| st.subscription_doc(r, &uid))
        .collect();
    ok(json!({ "update": subs, "remove": [] }))
}

async fn me(State(sim): State<Arc<Sim>>, headers: HeaderMap) -> Response {
    let uid = match auth(&sim, &headers) {
        Ok(u) => u,
        Err(r) => return *r,
    };
    match sim.lock().user_doc(&uid) {
        Some(mut doc) => {
            if let Some(o) = doc.as_object_mut() {
                o.insert("success".into(), json!(true));
            }
            reply(StatusCode::OK, doc)
        }
        None => fail("User not found.", None),
    }
}

/// REST login: the body rewritten as the server's `loginCompatibility` does (LDAP, `code`),
/// then the same checks as DDP `login`; errors are 401 with the login error's `error`,
/// `details` and `message`. Does not make the user online.
async fn login(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    if sim.cfg.no_rest_login {
        return not_found();
    }
    let unauthorized = |body: Value| reply(StatusCode::UNAUTHORIZED, body);
    if sim.faults.refuse_logins() {
        return unauthorized(auth::rest_error(&crate::ddp::MeteorError::new(
            403,
            "Login forbidden",
        )));
    }
    let Ok(Value::Object(b)) = serde_json::from_slice::<Value>(&body) else {
        return fail("Invalid body", None);
    };
    let opts = auth::rest_options(&sim, &b);
    let granted = match auth::check(&sim, &opts, false) {
        Ok(g) => g,
        Err(e) => return unauthorized(auth::rest_error(&e)),
    };
    let mut st = sim.lock();
    let token = match granted.resumed {
        Some(t) => t,
        None => st.issue_token(&granted.uid).0,
    };
    let me = st.user_doc(&granted.uid).unwrap_or(Value::Null);
    tracing::info!(uid = %granted.uid, kind = granted.kind, "REST login");
    reply(
        StatusCode::OK,
        json!({ "status": "success", "data": { "userId": granted.uid, "authToken": token.expose(), "me": me } }),
    )
}

/// The reply for a body over the simulator's limit.
pub fn too_large() -> Response {
    reply(
        StatusCode::PAYLOAD_TOO_LARGE,
        json!({ "success": false, "error": "Payload Too Large" }),
    )
}
