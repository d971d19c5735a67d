//! `login` (resume token incl. personal access tokens, password digest, LDAP, the `{totp}`
//! wrapper — checked by `rest::auth`, shared with REST login) and `logout`. A login binds the
//! user to the connection, which makes them online (presence).

use serde_json::{json, Map, Value};

use super::Ctx;
use crate::ddp::{date, MeteorError};
use crate::rest::auth;

pub fn login(ctx: &Ctx<'_>, params: &[Value]) -> Result<Option<Value>, MeteorError> {
    let Some(opts) = params.first().and_then(Value::as_object) else {
        return Err(MeteorError::match_failed());
    };
    if ctx.sim.faults.refuse_logins() {
        tracing::info!(conn = ctx.conn, "login refused by fault injection");
        return Err(MeteorError::new(403, "Login forbidden"));
    }
    let granted = auth::check(ctx.sim, opts, true)?;
    let uid = granted.uid.clone();
    let (token, expires) = match granted.resumed {
        Some(t) => (t, granted.expires),
        None => {
            let (t, e) = ctx.sim.lock().issue_token(&uid);
            (t, Some(e))
        }
    };
    let kind = if granted.kind == "resume" {
        "resume"
    } else {
        "password"
    };
    let previous = bind_user(ctx, Some(uid.clone()));
    if let Some(prev) = previous.filter(|p| *p != uid) {
        ctx.sim.refresh_presence(&prev);
    }
    ctx.sim.refresh_presence(&uid);
    tracing::info!(conn = ctx.conn, uid = %uid, kind = granted.kind, "login");
    let mut result = Map::new();
    result.insert("id".into(), json!(uid));
    result.insert("token".into(), json!(token.expose()));
    if let Some(ms) = expires {
        result.insert("tokenExpires".into(), date(ms));
    }
    result.insert("type".into(), json!(kind));
    Ok(Some(Value::Object(result)))
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
