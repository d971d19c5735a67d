//! Streamer publications and `stream-*` methods: subscribing (read rule → `ready` or `nosub`
//! not-allowed), unsubscribing, and client writes (write rule → emit to every subscriber except
//! the calling connection; a refused write is answered with an empty result, like Meteor).

use serde_json::{json, Value};

use crate::ddp::MeteorError;
use crate::rules::{self, Caller};
use crate::sim::Sim;
use crate::state::{ConnId, Sub};

/// Publications this server knows.
const STREAMS: [&str; 7] = [
    "stream-notify-user",
    "stream-room-messages",
    "stream-notify-room",
    "stream-notify-room-users",
    "stream-user-presence",
    "stream-notify-logged",
    "stream-notify-all",
];

/// Whether `method` is a streamer method (`stream-<name>`).
pub fn is_stream_method(method: &str) -> bool {
    STREAMS.contains(&method)
}

/// Handles a `sub`; `Err` becomes `nosub` with that error.
pub fn subscribe(
    sim: &Sim,
    conn: ConnId,
    id: &Value,
    name: &str,
    params: &[Value],
) -> Result<(), MeteorError> {
    if !STREAMS.contains(&name) {
        return Err(MeteorError::new(
            404,
            format!("Subscription '{name}' not found"),
        ));
    }
    let Some(event) = params.first().and_then(Value::as_str) else {
        return Err(MeteorError::match_failed());
    };
    let options = params.get(1);
    match options {
        None | Some(Value::Bool(_)) | Some(Value::Object(_)) | Some(Value::Null) => {}
        Some(_) => return Err(MeteorError::match_failed()),
    }
    let mut st = sim.lock();
    let uid = st.conns.get(&conn).and_then(|c| c.user.clone());
    let caller = Caller {
        uid: uid.as_deref(),
    };
    if !rules::allow_read(&sim.cfg, &st, &caller, name, event) {
        tracing::debug!(conn, stream = name, "subscription refused");
        return Err(MeteorError::bare("not-allowed"));
    }
    let Some(c) = st.conns.get_mut(&conn) else {
        return Err(MeteorError::internal());
    };
    if name == "stream-user-presence" {
        let list = |key: &str| -> Vec<String> {
            options
                .and_then(|o| o.get(key))
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()
        };
        for uid in list("added") {
            c.presence_uids.insert(uid);
        }
        for uid in list("removed") {
            c.presence_uids.remove(&uid);
        }
    }
    if !c.subs.iter().any(|s| &s.id == id) {
        c.subs.push(Sub {
            id: id.clone(),
            name: name.to_string(),
            event: event.to_string(),
        });
    }
    Ok(())
}

/// Handles an `unsub` (unknown ids are fine, Meteor answers `nosub` anyway).
pub fn unsubscribe(sim: &Sim, conn: ConnId, id: &Value) {
    if let Some(c) = sim.lock().conns.get_mut(&conn) {
        c.subs.retain(|s| &s.id != id);
    }
}

/// A `stream-*` method call: `params = [eventName, ...args]`.
pub fn write(
    sim: &Sim,
    conn: ConnId,
    uid: Option<&str>,
    stream: &str,
    params: &[Value],
) -> Result<Option<Value>, MeteorError> {
    let Some(event) = params.first().and_then(Value::as_str) else {
        return Err(MeteorError::match_failed());
    };
    let args = &params[1..];
    let caller = Caller { uid };
    match stream {
        "stream-notify-user" => {
            if rules::allow_notify_user_write(&sim.cfg, &caller, event, args) {
                let mut args = args.to_vec();
                if crate::mitm::rewrite(sim.faults.mitm(), event, &mut args) {
                    tracing::debug!(
                        conn,
                        event,
                        "man in the middle rewrote a signalling payload"
                    );
                    sim.faults.count_mitm_rewrite();
                }
                sim.emit(stream, event, &json!(args), Some(conn));
            } else {
                tracing::debug!(conn, "notify-user write refused");
            }
        }
        "stream-notify-room" => {
            let allowed =
                rules::allow_notify_room_write(&sim.cfg, &sim.lock(), &caller, event, args);
            if allowed {
                let mut args = args.to_vec();
                if crate::mitm::rewrite_envelope(sim.faults.mitm(), stream, &mut args) {
                    sim.faults.count_mitm_rewrite();
                }
                sim.emit(stream, event, &json!(args), Some(conn));
            } else {
                tracing::debug!(conn, "notify-room write refused");
            }
        }
        "stream-notify-room-users" => {
            let targets = rules::notify_room_users_targets(&sim.cfg, &sim.lock(), &caller, event);
            match targets {
                Some(members) => {
                    let mut args = args.to_vec();
                    if crate::mitm::rewrite_envelope(sim.faults.mitm(), stream, &mut args) {
                        sim.faults.count_mitm_rewrite();
                    }
                    let (_, e) = rules::split_event(event);
                    for member in members {
                        sim.notify_user(&member, e, &json!(args));
                    }
                }
                None => tracing::debug!(conn, "notify-room-users write refused"),
            }
        }
        // Every other stream is server-written only (allowWrite 'none').
        _ => tracing::debug!(conn, stream, "write to read-only stream refused"),
    }
    Ok(None)
}
