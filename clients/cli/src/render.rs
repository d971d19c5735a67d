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
        "relay_budgets": s.relay_budgets.iter().map(relay_budget_json).collect::<Vec<_>>(),
    })
}

/// A realtime relay method's budget as JSON (`otrctl --json status`).
fn relay_budget_json(b: &pb::RelayBudget) -> Value {
    json!({
        "method": b.method,
        "transport": names::transport(b.transport),
        "connection_calls": b.connection_calls,
        "connection_limit": b.connection_limit,
        "user_calls": b.user_calls,
        "user_limit": b.user_limit,
        "reserve": b.reserve,
        "window_ms": b.window_ms,
        "queued_messages": b.queued_messages,
        "queued_items": b.queued_items,
        "oldest_wait_ms": b.oldest_wait_ms,
        "calls_total": b.calls_total,
        "rate_limited_total": b.rate_limited_total,
        "expired_total": b.expired_total,
    })
}

/// A realtime relay method's budget for people: what was spent of what is allowed, and what
/// waits for it.
fn relay_budget_text(b: &pb::RelayBudget) -> String {
    let path = names::transport(b.transport).unwrap_or_else(|| "-".into());
    let mut line = format!(
        "relay {path} ({}): {}/{} calls in {} s on this connection, {}/{} of your account's \
         share (reserve {})",
        b.method,
        b.connection_calls,
        b.connection_limit,
        b.window_ms.div_ceil(1000),
        b.user_calls,
        b.user_limit,
        b.reserve
    );
    if b.queued_messages > 0 {
        line.push_str(&format!(
            "; {} message(s) waiting, oldest {}",
            b.queued_messages,
            seconds(b.oldest_wait_ms)
        ));
    }
    if b.rate_limited_total > 0 {
        line.push_str(&format!("; {} too-many-requests", b.rate_limited_total));
    }
    if b.expired_total > 0 {
        line.push_str(&format!(
            "; {} message(s) failed waiting past the delivery bound",
            b.expired_total
        ));
    }
    line
}

/// Milliseconds as "2.4 s".
fn seconds(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

/// A backlog for people, or `None` when nothing waits.
pub fn backlog_text(b: Option<&pb::Backlog>) -> Option<String> {
    let b = b.filter(|b| b.queued_messages > 0)?;
    Some(format!(
        "{} queued for the server's rate limit ({})",
        b.queued_messages,
        seconds(b.waited_ms)
    ))
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
    let mut lines = vec![
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
    ];
    lines.extend(s.relay_budgets.iter().map(relay_budget_text));
    lines.join("\n")
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
        "queued_messages": s.backlog.as_ref().map_or(0, |b| b.queued_messages),
        "queued_ms": s.backlog.as_ref().map_or(0, |b| b.waited_ms),
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
    if let Some(queued) = backlog_text(s.backlog.as_ref()) {
        line.push_str(&format!(", {queued}"));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_each_relay_budget_and_what_waits_for_it() {
        let s = pb::GetStatusResponse {
            relay_budgets: vec![pb::RelayBudget {
                method: "stream-notify-room".into(),
                transport: pb::Transport::UserActivity as i32,
                connection_calls: 12,
                connection_limit: 40,
                user_calls: 12,
                user_limit: 40,
                reserve: 4,
                window_ms: 42_000,
                queued_messages: 3,
                queued_items: 5,
                oldest_wait_ms: 2_400,
                calls_total: 90,
                rate_limited_total: 0,
                expired_total: 0,
            }],
            ..pb::GetStatusResponse::default()
        };
        let text = status_text(&s);
        assert!(
            text.contains(
                "relay user_activity (stream-notify-room): 12/40 calls in 42 s on this \
                 connection, 12/40 of your account's share (reserve 4); 3 message(s) waiting, \
                 oldest 2.4 s"
            ),
            "{text}"
        );
        assert!(
            !text.contains("too-many-requests"),
            "only when there were any"
        );
        let v = status_json(&s);
        assert_eq!(v["relay_budgets"][0]["queued_messages"], 3);
        assert_eq!(v["relay_budgets"][0]["transport"], "user_activity");
    }

    #[test]
    fn a_session_says_how_many_messages_wait_and_for_how_long() {
        let mut s = pb::Session {
            peer: "bob".into(),
            state: pb::SessionState::Established as i32,
            ..pb::Session::default()
        };
        assert!(!session_text(&s).contains("queued"));
        s.backlog = Some(pb::Backlog {
            queued_messages: 7,
            waited_ms: 1_250,
        });
        assert!(
            session_text(&s).contains("7 queued for the server's rate limit (1.2 s)"),
            "{}",
            session_text(&s)
        );
        let v = session_json(&s);
        assert_eq!(
            (v["queued_messages"].as_u64(), v["queued_ms"].as_u64()),
            (Some(7), Some(1_250))
        );
    }
}
