//! Answers to one-shot commands, for people or as JSON objects (one per line).

use crate::names;
use otrd_proto::v1 as pb;
use serde_json::{json, Value};

fn or_dash(s: &str) -> &str {
    if s.is_empty() {
        "-"
    } else {
        s
    }
}

/// GetStatus as JSON.
pub fn status_json(s: &pb::GetStatusResponse) -> Value {
    let memory = s.memory.clone().unwrap_or_default();
    json!({
        "daemon_version": s.daemon_version,
        "api_version": s.api_version,
        "server_url": s.server_url,
        "server_version": s.server_version,
        "account": s.account,
        "account_user_id": s.account_user_id,
        "connection": names::connection(s.connection),
        "connection_detail": s.connection_detail,
        "otr_available": s.otr_available,
        "otr_unavailable_reason": s.otr_unavailable_reason,
        "native_transports": s.native_transports.iter().filter_map(|t| names::transport(*t)).collect::<Vec<_>>(),
        "memory": {
            "locked": memory.locked,
            "in_use_bytes": memory.in_use_bytes,
            "locked_bytes": memory.locked_bytes,
            "limit_bytes": memory.limit_bytes,
            "detail": memory.detail,
        },
        "session_count": s.session_count,
        "established_count": s.established_count,
        "legacy_exposed_count": s.legacy_exposed_count,
        "instance_tag": s.instance_tag,
        "native_unavailable_reason": s.native_unavailable_reason,
        "login_method": s.login_method,
        "two_factor": s.two_factor,
        "server_generation": s.server_generation,
        "api_paths": s.api_paths,
        "locked": s.locked,
        "lock_reason": s.lock_reason,
    })
}

/// GetStatus for people.
pub fn status_text(s: &pb::GetStatusResponse) -> String {
    let memory = s.memory.clone().unwrap_or_default();
    let connection = match s.connection_detail.as_str() {
        "" => names::connection(s.connection),
        detail => format!("{} ({detail})", names::connection(s.connection)),
    };
    let otr = if s.otr_available {
        "available".to_owned()
    } else {
        format!("unavailable ({})", or_dash(&s.otr_unavailable_reason))
    };
    let transports: Vec<String> = s
        .native_transports
        .iter()
        .filter_map(|t| names::transport(*t))
        .collect();
    let memory = if memory.locked {
        format!(
            "locked ({} of {} bytes in use)",
            memory.in_use_bytes, memory.locked_bytes
        )
    } else {
        format!("NOT locked ({})", or_dash(&memory.detail))
    };
    [
        format!("otrd {} (API v{})", s.daemon_version, s.api_version),
        format!(
            "server:      {} {}",
            or_dash(&s.server_url),
            s.server_version
        ),
        format!("account:     {} {}", or_dash(&s.account), s.account_user_id),
        format!("connection:  {connection}"),
        format!("logged in:   {}", or_dash(&s.login_method)),
        format!(
            "generation:  {}{}",
            or_dash(&s.server_generation),
            if s.api_paths.is_empty() {
                String::new()
            } else {
                format!(" ({})", s.api_paths)
            }
        ),
        format!("stock OTR:   {otr}"),
        format!(
            "native via:  {}",
            if transports.is_empty() {
                "-".to_owned()
            } else {
                transports.join(", ")
            }
        ),
        format!("memory:      {memory}"),
        if s.locked {
            format!(
                "screen lock: LOCKED ({}): no session starts until `otrctl unlock` or the \
                 desktop's unlock",
                or_dash(&s.lock_reason)
            )
        } else {
            "screen lock: unlocked".to_owned()
        },
        if s.native_unavailable_reason.is_empty() {
            "native:      available".to_owned()
        } else {
            format!("native:      OFF ({})", s.native_unavailable_reason)
        },
        if s.legacy_exposed_count > 0 {
            format!(
                "sessions:    {} ({} established; {} legacy — the server could read this)",
                s.session_count, s.established_count, s.legacy_exposed_count
            )
        } else {
            format!(
                "sessions:    {} ({} established)",
                s.session_count, s.established_count
            )
        },
    ]
    .join("\n")
}

/// A session as JSON.
pub fn session_json(s: &pb::Session) -> Value {
    json!({
        "peer": s.peer,
        "room_id": s.room_id,
        "peer_user_id": s.peer_user_id,
        "state": names::session_state(s.state),
        "mode": names::mode(s.mode),
        "transport": names::transport(s.transport),
        "trust": names::trust(s.trust),
        "initiator": s.initiator,
        "since_ms": s.since_ms,
        "detail": s.detail,
        "pending_messages": s.pending_messages,
        "invitation_seq": (s.invitation_seq != 0).then_some(s.invitation_seq),
        "warning": (!s.warning.is_empty()).then_some(&s.warning),
    })
}

/// A session as one line for people.
pub fn session_text(s: &pb::Session) -> String {
    let mut line = format!("{}: {}", s.peer, names::session_state(s.state));
    if let Some(mode) = names::mode(s.mode) {
        line.push_str(&format!(" ({mode}"));
        if let Some(trust) = names::trust(s.trust) {
            line.push_str(&format!(", {trust}"));
        }
        line.push(')');
    }
    if !s.warning.is_empty() {
        line.push_str(&format!(" [{}]", s.warning));
    }
    if s.pending_messages > 0 {
        line.push_str(&format!(", {} unacknowledged", s.pending_messages));
    }
    if s.invitation_seq != 0 {
        line.push_str(&format!(", invitation seq {}", s.invitation_seq));
    }
    if !s.detail.is_empty() {
        line.push_str(&format!(" — {}", s.detail));
    }
    line
}

/// A room as JSON.
pub fn room_json(r: &pb::Room) -> Value {
    json!({
        "peer": r.peer,
        "room_id": r.room_id,
        "peer_user_id": r.peer_user_id,
        "presence": names::presence(r.presence),
        "state": names::session_state(r.state),
        "mode": names::mode(r.mode),
    })
}

/// A room as one line for people.
pub fn room_text(r: &pb::Room) -> String {
    let mode = names::mode(r.mode)
        .map(|m| format!(" ({m})"))
        .unwrap_or_default();
    format!(
        "{:<20} {:<8} {}{mode}  room:{}",
        r.peer,
        names::presence(r.presence),
        names::session_state(r.state),
        r.room_id
    )
}

/// Fingerprints as JSON.
pub fn fingerprint_json(f: &pb::GetFingerprintResponse) -> Value {
    json!({
        "own_fingerprint": f.own_fingerprint,
        "peer": f.peer,
        "peer_fingerprint": f.peer_fingerprint,
        "trust": names::trust(f.trust),
        "sas": f.sas,
        "previous_fingerprint": f.previous_fingerprint,
    })
}

/// Fingerprints for people.
pub fn fingerprint_text(f: &pb::GetFingerprintResponse) -> String {
    let mut lines = vec![format!("your fingerprint: {}", or_dash(&f.own_fingerprint))];
    if !f.peer.is_empty() {
        lines.push(format!(
            "{}: {} ({})",
            f.peer,
            or_dash(&f.peer_fingerprint),
            names::trust(f.trust).unwrap_or_else(|| "unknown".into())
        ));
        if !f.sas.is_empty() {
            lines.push(format!(
                "short authentication string: {} (compare all five groups with {})",
                f.sas, f.peer
            ));
        }
        if !f.previous_fingerprint.is_empty() {
            lines.push(format!(
                "WARNING: {} previously had fingerprint {}",
                f.peer, f.previous_fingerprint
            ));
        }
    }
    lines.join("\n")
}
