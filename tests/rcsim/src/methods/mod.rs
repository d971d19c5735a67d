//! DDP method dispatch: which methods exist in the configured mode (8.x has no OTR methods, so
//! Meteor answers 404), the rate limiter in front of them, and the calling context.

mod login;
mod messages;
mod otr;
pub(crate) mod rooms;

use std::time::Instant;

use serde_json::{json, Value};

use crate::config::Mode;
use crate::ddp::MeteorError;
use crate::ratelimit;
use crate::sim::Sim;
use crate::state::ConnId;
use crate::streams;

/// The calling connection and its user.
pub struct Ctx<'a> {
    /// The simulator.
    pub sim: &'a Sim,
    /// Calling connection.
    pub conn: ConnId,
    /// Logged-in user id, if any.
    pub uid: Option<String>,
}

impl Ctx<'_> {
    /// The caller's user id or Rocket.Chat's "Invalid user" error for `method`.
    pub fn require_user(&self, method: &str) -> Result<String, MeteorError> {
        self.uid
            .clone()
            .ok_or_else(|| MeteorError::invalid_user(method))
    }
}

/// Methods that exist only while the server has OTR (7.x).
const OTR_METHODS: [&str; 3] = ["updateOTRAck", "deleteOldOTRMessages", "sendSystemMessages"];

/// Methods every mode has.
const METHODS: [&str; 9] = [
    "login",
    "logout",
    "sendMessage",
    "createDirectMessage",
    "rooms/get",
    "subscriptions/get",
    "UserPresence:setDefaultStatus",
    "public-settings/get",
    "getUserRoles",
];

fn exists(sim: &Sim, method: &str) -> bool {
    METHODS.contains(&method)
        || streams::is_stream_method(method)
        || (sim.cfg.mode == Mode::V7 && OTR_METHODS.contains(&method))
}

/// Runs a method call for connection `conn`.
pub fn call(
    sim: &Sim,
    conn: ConnId,
    method: &str,
    params: &[Value],
) -> Result<Option<Value>, MeteorError> {
    if !exists(sim, method) {
        return Err(MeteorError::method_not_found(method));
    }
    let uid = sim.lock().conns.get(&conn).and_then(|c| c.user.clone());
    let limited = sim.limiter.lock().unwrap_or_else(|e| e.into_inner()).check(
        method,
        uid.as_deref(),
        conn,
        Instant::now(),
    );
    if let Err(left) = limited {
        let ms = u64::try_from(left.as_millis()).unwrap_or(u64::MAX);
        tracing::info!(
            conn,
            method,
            user = uid.as_deref().unwrap_or(""),
            "rate limited"
        );
        return Err(
            MeteorError::new("too-many-requests", ratelimit::error_message(left))
                .with_details(json!({ "timeToReset": ms })),
        );
    }
    // The server reads every call it accepts; the attacker keeps what OTR leaves in them.
    sim.attacker.observe(uid.as_deref(), method, params);
    let ctx = Ctx { sim, conn, uid };
    match method {
        "login" => login::login(&ctx, params),
        "logout" => login::logout(&ctx),
        "sendMessage" => messages::send_message(&ctx, params),
        "updateOTRAck" => otr::update_otr_ack(&ctx, params),
        "deleteOldOTRMessages" => otr::delete_old_otr_messages(&ctx, params),
        // 7.x turned the legacy method into a no-op ("use REST chat.otr").
        "sendSystemMessages" => Ok(None),
        "createDirectMessage" => rooms::create_direct_message(&ctx, params),
        "rooms/get" => rooms::rooms_get(&ctx, params),
        "subscriptions/get" => rooms::subscriptions_get(&ctx, params),
        "UserPresence:setDefaultStatus" => rooms::set_default_status(&ctx, params),
        "public-settings/get" => Ok(Some(rooms::public_settings(sim))),
        "getUserRoles" => Ok(Some(json!([]))),
        stream => streams::write(sim, conn, ctx.uid.as_deref(), stream, params),
    }
}
