//! `otrctl watch` output: each event as the contract's JSON object (`--json`) or a human line.
//!
//! JSON shapes (every object also has `seq` and `replay`):
//! - `{"type":"invitation","peer","room_id","mode","expires_ms"}`
//! - `{"type":"state","peer","room_id","state","mode","transport","trust","detail"}`, plus
//!   `"warning"` when a session between two otrd daemons is legacy, and `"queued_messages"`,
//!   `"queued_ms"` when the event reports messages waiting for the realtime relays' rate limit
//!   (Rocket.Chat 8.x; `queued_messages` 0 when the wait is over)
//! - `{"type":"message","peer","room_id","direction":"in"|"out","text","id","ts"}`
//! - `{"type":"delivered","peer","room_id","id"}`
//! - `{"type":"error","peer","room_id","code","message","id"}`
//! - `{"type":"connection","state","detail"}`
//! - `{"type":"alarm","peer","room_id","code","message"}`
//!
//! `mode`, `transport` and `trust` are `null` until known.

use crate::names;
use otrd_proto::v1 as pb;
use otrd_proto::v1::event::Kind;
use serde_json::{json, Value};

/// The event as one JSON object; `None` for an event of a kind this otrctl does not know.
pub fn to_json(event: &pb::Event) -> Option<Value> {
    let mut v = match event.kind.as_ref()? {
        Kind::Invitation(i) => json!({
            "type": "invitation",
            "peer": i.peer,
            "room_id": i.room_id,
            "mode": names::mode(i.mode),
            "expires_ms": i.expires_ms,
        }),
        Kind::State(s) => {
            let mut v = json!({
                "type": "state",
                "peer": s.peer,
                "room_id": s.room_id,
                "state": names::session_state(s.state),
                "mode": names::mode(s.mode),
                "transport": names::transport(s.transport),
                "trust": names::trust(s.trust),
                "detail": s.detail,
            });
            // Only when set: "legacy — the server could read this" (both ends run otrd).
            if let (false, Some(map)) = (s.warning.is_empty(), v.as_object_mut()) {
                map.insert("warning".into(), s.warning.clone().into());
            }
            // Only on back-pressure events.
            if let (Some(b), Some(map)) = (&s.backlog, v.as_object_mut()) {
                map.insert("queued_messages".into(), b.queued_messages.into());
                map.insert("queued_ms".into(), b.waited_ms.into());
            }
            v
        }
        Kind::Message(m) => json!({
            "type": "message",
            "peer": m.peer,
            "room_id": m.room_id,
            "direction": names::direction(m.direction),
            "text": m.text,
            "id": m.id,
            "ts": m.ts_ms,
        }),
        Kind::Delivered(d) => json!({
            "type": "delivered",
            "peer": d.peer,
            "room_id": d.room_id,
            "id": d.id,
        }),
        Kind::Error(e) => json!({
            "type": "error",
            "peer": e.peer,
            "room_id": e.room_id,
            "code": e.code,
            "message": e.message,
            "id": e.id,
        }),
        Kind::Connection(c) => json!({
            "type": "connection",
            "state": names::connection(c.state),
            "detail": c.detail,
        }),
        Kind::Alarm(a) => json!({
            "type": "alarm",
            "peer": a.peer,
            "room_id": a.room_id,
            "code": a.code,
            "message": a.message,
        }),
    };
    if let Some(obj) = v.as_object_mut() {
        obj.insert("seq".into(), json!(event.seq));
        obj.insert("replay".into(), json!(event.replay));
    }
    Some(v)
}

/// The event as one line for people; `None` for an unknown kind.
pub fn to_line(event: &pb::Event) -> Option<String> {
    let with_detail = |base: String, detail: &str| {
        if detail.is_empty() {
            base
        } else {
            format!("{base} — {detail}")
        }
    };
    let line = match event.kind.as_ref()? {
        Kind::Invitation(i) => format!(
            "{} invites you to an OTR session ({}); `otrctl accept {}` or `otrctl decline {}`",
            i.peer,
            names::mode(i.mode).unwrap_or_else(|| "scheme not yet known".into()),
            i.peer,
            i.peer
        ),
        Kind::State(s) => {
            let mode = names::mode(s.mode)
                .map(|m| format!(" ({m})"))
                .unwrap_or_default();
            with_detail(
                format!("{}: {}{mode}", s.peer, names::session_state(s.state)),
                &s.detail,
            )
        }
        Kind::Message(m) => match names::direction(m.direction).as_str() {
            "out" => format!("you → {}: {}", m.peer, m.text),
            _ => format!("{} → you: {}", m.peer, m.text),
        },
        Kind::Delivered(d) => format!("{}: delivered {}", d.peer, d.id),
        Kind::Error(e) if e.peer.is_empty() => format!("error ({}): {}", e.code, e.message),
        Kind::Error(e) => format!("{}: error ({}): {}", e.peer, e.code, e.message),
        Kind::Connection(c) => with_detail(
            format!("connection: {}", names::connection(c.state)),
            &c.detail,
        ),
        Kind::Alarm(a) => format!("ALARM {}: {} ({})", a.peer, a.message, a.code),
    };
    Some(if event.replay {
        format!("[scrollback] {line}")
    } else {
        line
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: Kind) -> pb::Event {
        pb::Event {
            seq: 3,
            ts_ms: 10,
            replay: false,
            kind: Some(kind),
        }
    }

    #[test]
    fn state_event_json_matches_the_contract() {
        let e = ev(Kind::State(pb::StateChange {
            peer: "bob".into(),
            room_id: "r1".into(),
            state: pb::SessionState::Established as i32,
            mode: pb::Mode::Legacy as i32,
            transport: pb::Transport::OtrRelay as i32,
            trust: pb::Trust::Unverified as i32,
            detail: String::new(),
            warning: String::new(),
            backlog: None,
        }));
        let v = to_json(&e).expect("known kind");
        assert_eq!(v["type"], "state");
        assert_eq!(v["peer"], "bob");
        assert_eq!(v["state"], "established");
        assert_eq!(v["mode"], "legacy");
        assert_eq!(v["seq"], 3);
        assert!(v.get("warning").is_none(), "only when set");
        let mut warned = e.clone();
        if let Some(Kind::State(s)) = warned.kind.as_mut() {
            s.warning = "legacy — the server could read this".into();
        }
        let v = to_json(&warned).expect("known kind");
        assert_eq!(v["warning"], "legacy — the server could read this");
        assert!(
            v.get("queued_messages").is_none(),
            "only on back-pressure events"
        );
        let mut waiting = e.clone();
        if let Some(Kind::State(s)) = waiting.kind.as_mut() {
            s.backlog = Some(pb::Backlog {
                queued_messages: 12,
                waited_ms: 3_400,
            });
        }
        let v = to_json(&waiting).expect("known kind");
        assert_eq!(
            (v["queued_messages"].as_u64(), v["queued_ms"].as_u64()),
            (Some(12), Some(3_400))
        );
    }

    #[test]
    fn message_event_json_matches_the_contract() {
        let e = ev(Kind::Message(pb::ChatMessage {
            peer: "bob".into(),
            room_id: "r1".into(),
            direction: pb::Direction::Out as i32,
            text: "hi \"there\"".into(),
            id: "m1".into(),
            ts_ms: 42,
        }));
        let v = to_json(&e).expect("known kind");
        assert_eq!(v["type"], "message");
        assert_eq!(v["direction"], "out");
        assert_eq!(v["text"], "hi \"there\"");
        assert_eq!(v["id"], "m1");
        assert_eq!(v["ts"], 42);
        // One object per line: the serialisation has no newline even if the text had one.
        assert!(!serde_json::to_string(&v)
            .expect("serialises")
            .contains('\n'));
    }

    #[test]
    fn mode_is_null_until_known_and_types_are_named() {
        let e = ev(Kind::Invitation(pb::Invitation::default()));
        let v = to_json(&e).expect("known kind");
        assert_eq!(v["type"], "invitation");
        assert!(v["mode"].is_null());
        for (kind, name) in [
            (Kind::Delivered(pb::Delivered::default()), "delivered"),
            (Kind::Error(pb::ErrorEvent::default()), "error"),
            (
                Kind::Connection(pb::ConnectionChange::default()),
                "connection",
            ),
            (Kind::Alarm(pb::Alarm::default()), "alarm"),
        ] {
            assert_eq!(to_json(&ev(kind)).expect("known")["type"], name);
        }
    }
}
