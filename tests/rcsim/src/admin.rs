//! Test-control endpoints under `/_sim` for process-level tests (the binary): read the audit,
//! drop connections, refuse logins, force presence, delay/duplicate events, toggle rate limits,
//! list the calls the rate limiter refused.
//! These requests are not audited.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::config::Status;
use crate::sim::Sim;

/// The `/_sim` routes.
pub fn router() -> Router<Arc<Sim>> {
    Router::new()
        .route("/_sim/audit", get(audit))
        .route("/_sim/drop", post(drop_all))
        .route("/_sim/refuse_logins", post(refuse_logins))
        .route("/_sim/presence", post(presence))
        .route("/_sim/faults", post(faults))
        .route("/_sim/rate_limits", post(rate_limits))
        .route("/_sim/rate_limited", get(rate_limited))
}

fn bad(msg: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "success": false, "error": msg })),
    )
        .into_response()
}

fn done(extra: Value) -> Response {
    let mut body = json!({ "success": true });
    if let (Some(o), Value::Object(e)) = (body.as_object_mut(), extra) {
        o.extend(e);
    }
    Json(body).into_response()
}

fn parse(body: &Bytes) -> Option<Value> {
    serde_json::from_slice(body).ok()
}

async fn audit(State(sim): State<Arc<Sim>>) -> Response {
    Json(sim.audit.snapshot()).into_response()
}

async fn drop_all(State(sim): State<Arc<Sim>>) -> Response {
    let n = sim.drop_all_connections();
    done(json!({ "dropped": n }))
}

async fn refuse_logins(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    match parse(&body).and_then(|b| b.get("refuse").and_then(Value::as_bool)) {
        Some(on) => {
            sim.faults.set_refuse_logins(on);
            done(json!({}))
        }
        None => bad("body must be {\"refuse\": bool}"),
    }
}

async fn presence(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    let Some(b) = parse(&body) else {
        return bad("body must be {\"username\", \"status\"}");
    };
    let username = b.get("username").and_then(Value::as_str).unwrap_or("");
    let status = match b.get("status").and_then(Value::as_str) {
        Some("auto") => None,
        Some(s) => match Status::parse(s) {
            Some(s) => Some(s),
            None => return bad("status must be online, away, busy, offline or auto"),
        },
        None => return bad("status missing"),
    };
    if sim.set_presence(username, status) {
        done(json!({}))
    } else {
        bad("unknown username")
    }
}

async fn faults(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    let Some(b) = parse(&body) else {
        return bad("body must be {\"delay_ms\": n, \"duplicate\": bool}");
    };
    if let Some(ms) = b.get("delay_ms").and_then(Value::as_u64) {
        sim.faults.set_event_delay(Duration::from_millis(ms));
    }
    if let Some(d) = b.get("duplicate").and_then(Value::as_bool) {
        sim.faults.set_duplicate_events(d);
    }
    done(json!({}))
}

async fn rate_limited(State(sim): State<Arc<Sim>>) -> Response {
    let refused = sim
        .limiter
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .refused()
        .to_vec();
    done(json!({ "refused": refused }))
}

async fn rate_limits(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    match parse(&body).and_then(|b| b.get("enabled").and_then(Value::as_bool)) {
        Some(on) => {
            sim.limiter
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .set_enabled(on);
            done(json!({}))
        }
        None => bad("body must be {\"enabled\": bool}"),
    }
}
