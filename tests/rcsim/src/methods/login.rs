//! `login` (password digest or resume token, incl. personal access tokens) and `logout`. A login
//! binds the user to the connection, which makes them online (presence).

use serde_json::{json, Map, Value};

use super::Ctx;
use crate::config::Credential;
use crate::ddp::{date, MeteorError};
use crate::state::sha256_hex;

/// Meteor's reply to an unknown or expired resume token.
const RESUME_FAILED: &str = "You've been logged out by the server. Please log in again.";

pub fn login(ctx: &Ctx<'_>, params: &[Value]) -> Result<Option<Value>, MeteorError> {
    let Some(opts) = params.first().and_then(Value::as_object) else {
        return Err(MeteorError::match_failed());
    };
    if ctx.sim.faults.refuse_logins() {
        tracing::info!(conn = ctx.conn, "login refused by fault injection");
        return Err(MeteorError::new(403, "Login forbidden"));
    }
    let (uid, token, expires, kind) = if let Some(resume) = opts.get("resume") {
        let Some(resume) = resume.as_str() else {
            return Err(MeteorError::match_failed());
        };
        let st = ctx.sim.lock();
        let entry = st
            .token(resume)
            .cloned()
            .ok_or_else(|| MeteorError::new(403, RESUME_FAILED))?;
        if !entry.personal && entry.expires_ms < crate::ddp::now_ms() {
            return Err(MeteorError::new(403, RESUME_FAILED));
        }
        let expires = (!entry.personal).then_some(entry.expires_ms);
        (entry.uid, Credential::new(resume), expires, "resume")
    } else if let (Some(user), Some(password)) = (opts.get("user"), opts.get("password")) {
        let uid = check_password(ctx, user, password)?;
        let (token, expires) = ctx.sim.lock().issue_token(&uid);
        (uid, token, Some(expires), "password")
    } else {
        return Err(MeteorError::new(
            400,
            "Unrecognized options for login request",
        ));
    };
    let previous = bind_user(ctx, Some(uid.clone()));
    if let Some(prev) = previous.filter(|p| *p != uid) {
        ctx.sim.refresh_presence(&prev);
    }
    ctx.sim.refresh_presence(&uid);
    tracing::info!(conn = ctx.conn, uid = %uid, kind, "login");
    let mut result = Map::new();
    result.insert("id".into(), json!(uid));
    result.insert("token".into(), json!(token.expose()));
    if let Some(ms) = expires {
        result.insert("tokenExpires".into(), date(ms));
    }
    result.insert("type".into(), json!(kind));
    Ok(Some(Value::Object(result)))
}

/// Resolves `{username}` / `{email}` / `{id}` and compares the password (digest or plain).
fn check_password(ctx: &Ctx<'_>, user: &Value, password: &Value) -> Result<String, MeteorError> {
    let st = ctx.sim.lock();
    let found = match user {
        Value::String(name) => st.user_by_name(name),
        Value::Object(o) => {
            if let Some(name) = o.get("username").and_then(Value::as_str) {
                st.user_by_name(name)
            } else if let Some(id) = o.get("id").and_then(Value::as_str) {
                st.user(id)
            } else {
                // Users have no e-mail addresses in the simulator.
                None
            }
        }
        _ => return Err(MeteorError::match_failed()),
    };
    let Some(found) = found else {
        return Err(MeteorError::new(403, "User not found"));
    };
    let digest = match password {
        Value::String(plain) => sha256_hex(plain),
        Value::Object(o) => {
            let algorithm = o.get("algorithm").and_then(Value::as_str);
            match (o.get("digest").and_then(Value::as_str), algorithm) {
                (Some(d), Some("sha-256")) => d.to_ascii_lowercase(),
                _ => return Err(MeteorError::match_failed()),
            }
        }
        _ => return Err(MeteorError::match_failed()),
    };
    if digest != sha256_hex(found.password.expose()) {
        return Err(MeteorError::new(403, "Incorrect password"));
    }
    Ok(found.id.clone())
}

/// Sets the connection's user; returns the previous one.
fn bind_user(ctx: &Ctx<'_>, uid: Option<String>) -> Option<String> {
    let mut st = ctx.sim.lock();
    let conn = st.conns.get_mut(&ctx.conn)?;
    std::mem::replace(&mut conn.user, uid)
}

pub fn logout(ctx: &Ctx<'_>) -> Result<Option<Value>, MeteorError> {
    if let Some(prev) = bind_user(ctx, None) {
        ctx.sim.refresh_presence(&prev);
    }
    Ok(None)
}
