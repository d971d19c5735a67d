//! Conversions between the daemon's domain types and the generated `otrd.v1` types, in both
//! directions. The only place that knows both vocabularies.
//!
//! Message text stays in a [`SecretString`] until [`event`] copies it
//! into the outgoing protobuf, the last moment before encoding; requests' text goes straight into
//! a `SecretString` in [`send_text`].

use crate::engine::{self as domain, SentMessage};
use crate::secure::SecretString;
use otrd_proto::v1 as pb;
use tonic::Status;

/// The peer named in a request, or INVALID_ARGUMENT saying which field is missing.
pub fn peer_ref(peer: Option<pb::PeerRef>) -> Result<domain::PeerRef, Status> {
    optional_peer_ref(peer)?.ok_or_else(|| {
        Status::invalid_argument("the request names no peer: set peer.username or peer.room_id")
    })
}

/// An optional peer (GetFingerprint): absent means "no peer", an empty name is an error.
pub fn optional_peer_ref(peer: Option<pb::PeerRef>) -> Result<Option<domain::PeerRef>, Status> {
    let Some(target) = peer.and_then(|p| p.target) else {
        return Ok(None);
    };
    let peer = match target {
        pb::peer_ref::Target::Username(u) if !u.trim().is_empty() => {
            domain::PeerRef::Username(u.trim().to_owned())
        }
        pb::peer_ref::Target::RoomId(r) if !r.trim().is_empty() => {
            domain::PeerRef::RoomId(r.trim().to_owned())
        }
        _ => {
            return Err(Status::invalid_argument(
                "the peer's username or room id is empty",
            ))
        }
    };
    Ok(Some(peer))
}

/// The scheme a StartSession asks for; unknown numbers are refused rather than guessed.
pub fn scheme(value: i32) -> Result<domain::SchemePreference, Status> {
    match pb::SchemePreference::try_from(value) {
        Ok(pb::SchemePreference::Auto) => Ok(domain::SchemePreference::Auto),
        Ok(pb::SchemePreference::Legacy) => Ok(domain::SchemePreference::Legacy),
        Ok(pb::SchemePreference::Native) => Ok(domain::SchemePreference::Native),
        Err(_) => Err(Status::invalid_argument(format!(
            "unknown scheme preference {value}"
        ))),
    }
}

/// Moves a SendMessage's text into a secret, refusing an empty message.
pub fn send_text(text: String) -> Result<SecretString, Status> {
    let text = SecretString::new(text);
    if text.expose().trim().is_empty() {
        return Err(Status::invalid_argument("the message text is empty"));
    }
    Ok(text)
}

/// Domain session state → protobuf.
pub fn session_state(s: domain::SessionState) -> pb::SessionState {
    use domain::SessionState as D;
    match s {
        D::NotStarted => pb::SessionState::NotStarted,
        D::Establishing => pb::SessionState::Establishing,
        D::Requested => pb::SessionState::Requested,
        D::Established => pb::SessionState::Established,
        D::Declined => pb::SessionState::Declined,
        D::Timeout => pb::SessionState::Timeout,
        D::Ended => pb::SessionState::Ended,
        D::Error => pb::SessionState::Error,
    }
}

/// Domain mode (unknown until negotiated) → protobuf.
pub fn mode(m: Option<domain::Mode>) -> pb::Mode {
    match m {
        None => pb::Mode::Unspecified,
        Some(domain::Mode::Legacy) => pb::Mode::Legacy,
        Some(domain::Mode::Native) => pb::Mode::Native,
    }
}

/// Domain transport → protobuf.
pub fn transport(t: Option<domain::TransportKind>) -> pb::Transport {
    match t {
        None => pb::Transport::Unspecified,
        Some(domain::TransportKind::OtrRelay) => pb::Transport::OtrRelay,
        Some(domain::TransportKind::UserActivity) => pb::Transport::UserActivity,
        Some(domain::TransportKind::VideoConference) => pb::Transport::VideoConference,
    }
}

/// Domain trust → protobuf.
pub fn trust(t: Option<domain::Trust>) -> pb::Trust {
    match t {
        None => pb::Trust::Unspecified,
        Some(domain::Trust::Unknown) => pb::Trust::Unknown,
        Some(domain::Trust::Unverified) => pb::Trust::Unverified,
        Some(domain::Trust::Verified) => pb::Trust::Verified,
        Some(domain::Trust::Changed) => pb::Trust::Changed,
    }
}

/// Domain presence → protobuf.
pub fn presence(p: domain::Presence) -> pb::Presence {
    match p {
        domain::Presence::Unknown => pb::Presence::Unknown,
        domain::Presence::Offline => pb::Presence::Offline,
        domain::Presence::Online => pb::Presence::Online,
        domain::Presence::Away => pb::Presence::Away,
        domain::Presence::Busy => pb::Presence::Busy,
    }
}

/// Domain connection state → protobuf.
pub fn connection_state(c: domain::ConnectionState) -> pb::ConnectionState {
    use domain::ConnectionState as D;
    match c {
        D::Connecting => pb::ConnectionState::Connecting,
        D::Connected => pb::ConnectionState::Connected,
        D::Reconnecting => pb::ConnectionState::Reconnecting,
        D::AuthFailed => pb::ConnectionState::AuthFailed,
        D::Disconnected => pb::ConnectionState::Disconnected,
        D::TwoFactorRequired => pb::ConnectionState::TwoFactorRequired,
    }
}

/// Domain direction → protobuf.
pub fn direction(d: domain::Direction) -> pb::Direction {
    match d {
        domain::Direction::In => pb::Direction::In,
        domain::Direction::Out => pb::Direction::Out,
    }
}

/// A session snapshot.
pub fn session(s: &domain::SessionInfo) -> pb::Session {
    pb::Session {
        room_id: s.room_id.clone(),
        peer: s.peer.clone(),
        peer_user_id: s.peer_user_id.clone(),
        state: session_state(s.state).into(),
        mode: mode(s.mode).into(),
        transport: transport(s.transport).into(),
        trust: trust(Some(s.trust)).into(),
        initiator: s.initiator,
        since_ms: s.since_ms,
        detail: s.detail.clone(),
        pending_messages: s.pending_messages,
        invitation_seq: s.invitation_seq.unwrap_or(0),
        warning: s.warning.clone().unwrap_or_default(),
        seq: s.seq,
        backlog: Some(backlog(s.backlog)),
    }
}

/// Messages waiting for the realtime relays' budget.
pub fn backlog(b: domain::Backlog) -> pb::Backlog {
    pb::Backlog {
        queued_messages: b.queued,
        waited_ms: b.waited_ms,
    }
}

/// A realtime relay method's budget.
pub fn relay_budget(b: &domain::RelayBudget) -> pb::RelayBudget {
    pb::RelayBudget {
        method: b.method.to_owned(),
        transport: transport(Some(b.transport)).into(),
        connection_calls: b.connection_calls,
        connection_limit: b.connection_limit,
        user_calls: b.user_calls,
        user_limit: b.user_limit,
        reserve: b.reserve,
        window_ms: b.window_ms,
        queued_messages: b.queued_messages,
        queued_items: b.queued_items,
        oldest_wait_ms: b.oldest_wait_ms,
        calls_total: b.calls_total,
        rate_limited_total: b.rate_limited_total,
        expired_total: b.expired_total,
    }
}

/// A DM room.
pub fn room(r: &domain::RoomInfo) -> pb::Room {
    pb::Room {
        room_id: r.room_id.clone(),
        peer: r.peer.clone(),
        peer_user_id: r.peer_user_id.clone(),
        presence: presence(r.presence).into(),
        state: session_state(r.state).into(),
        mode: mode(r.mode).into(),
        seq: r.seq,
    }
}

/// GetStatus's answer; the versions come from this build, the rest from the engine.
pub fn status(s: domain::StatusInfo) -> pb::GetStatusResponse {
    pb::GetStatusResponse {
        daemon_version: env!("CARGO_PKG_VERSION").to_owned(),
        api_version: otrd_proto::API_VERSION,
        server_url: s.server_url,
        account: s.account,
        account_user_id: s.account_user_id,
        connection: connection_state(s.connection).into(),
        connection_detail: s.connection_detail,
        server_version: s.server_version,
        otr_available: s.otr_available,
        otr_unavailable_reason: s.otr_unavailable_reason,
        native_transports: s
            .native_transports
            .into_iter()
            .map(|t| transport(Some(t)).into())
            .collect(),
        memory: Some(pb::MemoryLock {
            locked: s.memory.locked,
            in_use_bytes: s.memory.in_use_bytes,
            locked_bytes: s.memory.locked_bytes,
            limit_bytes: s.memory.limit_bytes,
            detail: s.memory.detail,
        }),
        session_count: s.session_count,
        established_count: s.established_count,
        legacy_exposed_count: s.exposed_count,
        instance_tag: s.instance_tag,
        native_unavailable_reason: s.native_unavailable_reason,
        login_method: s.login_method,
        server_generation: s.server_generation,
        api_paths: s.api_paths,
        two_factor: s.two_factor,
        locked: s.lock.is_some(),
        lock_reason: s
            .lock
            .as_ref()
            .map(|l| l.reason.clone())
            .unwrap_or_default(),
        locked_since_ms: s.lock.as_ref().map_or(0, |l| l.since_ms),
        relay_budgets: s.relays.iter().map(relay_budget).collect(),
    }
}

/// SendMessage's answer.
pub fn sent(m: SentMessage) -> pb::SendMessageResponse {
    pb::SendMessageResponse {
        id: m.id,
        room_id: m.room_id,
        ts_ms: m.ts_ms,
    }
}

/// Fingerprints and trust.
pub fn fingerprint(f: domain::FingerprintInfo) -> pb::GetFingerprintResponse {
    pb::GetFingerprintResponse {
        own_fingerprint: f.own_fingerprint,
        peer: f.peer,
        peer_fingerprint: f.peer_fingerprint,
        trust: trust(f.trust).into(),
        sas: f.sas,
        previous_fingerprint: f.previous_fingerprint,
    }
}

/// An event. This is where a message's plaintext is copied out of its `SecretString`.
pub fn event(e: &domain::Event) -> pb::Event {
    use domain::EventKind as K;
    use pb::event::Kind;
    let kind = match &e.kind {
        K::Invitation {
            peer,
            room_id,
            mode: m,
            expires_ms,
        } => Kind::Invitation(pb::Invitation {
            peer: peer.clone(),
            room_id: room_id.clone(),
            mode: mode(Some(*m)).into(),
            expires_ms: *expires_ms,
        }),
        K::State {
            peer,
            room_id,
            state,
            mode: m,
            transport: t,
            trust: tr,
            detail,
            warning,
            backlog: b,
        } => Kind::State(pb::StateChange {
            peer: peer.clone(),
            room_id: room_id.clone(),
            state: session_state(*state).into(),
            mode: mode(*m).into(),
            transport: transport(*t).into(),
            trust: trust(Some(*tr)).into(),
            detail: detail.clone(),
            warning: warning.clone().unwrap_or_default(),
            backlog: b.map(backlog),
        }),
        K::Message {
            peer,
            room_id,
            direction: d,
            text,
            id,
            ts_ms,
        } => Kind::Message(pb::ChatMessage {
            peer: peer.clone(),
            room_id: room_id.clone(),
            direction: direction(*d).into(),
            text: text.expose().to_owned(),
            id: id.clone(),
            ts_ms: *ts_ms,
        }),
        K::Delivered { peer, room_id, id } => Kind::Delivered(pb::Delivered {
            peer: peer.clone(),
            room_id: room_id.clone(),
            id: id.clone(),
        }),
        K::Error {
            peer,
            room_id,
            code,
            message,
            id,
        } => Kind::Error(pb::ErrorEvent {
            peer: peer.clone(),
            room_id: room_id.clone(),
            code: code.clone(),
            message: message.clone(),
            id: id.clone(),
        }),
        K::Connection { state, detail } => Kind::Connection(pb::ConnectionChange {
            state: connection_state(*state).into(),
            detail: detail.clone(),
        }),
        K::Alarm {
            peer,
            room_id,
            code,
            message,
        } => Kind::Alarm(pb::Alarm {
            peer: peer.clone(),
            room_id: room_id.clone(),
            code: code.clone(),
            message: message.clone(),
        }),
    };
    pb::Event {
        seq: e.seq,
        ts_ms: e.ts_ms,
        replay: e.replay,
        kind: Some(kind),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The proto's lowercase suffixes are the contract's names, which the domain's `as_str` gives.
    #[test]
    fn enum_names_agree_with_the_contract() {
        use domain::SessionState as S;
        for s in [
            S::NotStarted,
            S::Establishing,
            S::Requested,
            S::Established,
            S::Declined,
            S::Timeout,
            S::Ended,
            S::Error,
        ] {
            let name = session_state(s).as_str_name().to_lowercase();
            assert_eq!(name, format!("session_state_{}", s.as_str()));
        }
        for m in [domain::Mode::Legacy, domain::Mode::Native] {
            assert_eq!(
                mode(Some(m)).as_str_name().to_lowercase(),
                format!("mode_{}", m.as_str())
            );
        }
        use domain::ConnectionState as C;
        for c in [
            C::Connecting,
            C::Connected,
            C::Reconnecting,
            C::AuthFailed,
            C::Disconnected,
            C::TwoFactorRequired,
        ] {
            let name = connection_state(c).as_str_name().to_lowercase();
            assert_eq!(name, format!("connection_state_{}", c.as_str()));
        }
    }

    #[test]
    fn peer_refs() {
        let by_name = pb::PeerRef {
            target: Some(pb::peer_ref::Target::Username(" bob ".into())),
        };
        assert_eq!(
            peer_ref(Some(by_name)).expect("ok"),
            domain::PeerRef::Username("bob".into())
        );
        let err = peer_ref(None).expect_err("missing");
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        let empty = pb::PeerRef {
            target: Some(pb::peer_ref::Target::RoomId(String::new())),
        };
        assert_eq!(
            peer_ref(Some(empty)).expect_err("empty").code(),
            tonic::Code::InvalidArgument
        );
        assert_eq!(optional_peer_ref(None).expect("none is fine"), None);
    }

    #[test]
    fn unknown_scheme_is_refused() {
        assert_eq!(scheme(1).expect("legacy"), domain::SchemePreference::Legacy);
        assert_eq!(
            scheme(42).expect_err("bad").code(),
            tonic::Code::InvalidArgument
        );
    }

    #[test]
    fn snapshots_carry_the_seq_they_were_taken_at() {
        let info = domain::SessionInfo {
            room_id: "r".into(),
            peer: "bob".into(),
            peer_user_id: "u".into(),
            state: domain::SessionState::Established,
            mode: Some(domain::Mode::Native),
            transport: None,
            trust: domain::Trust::Unverified,
            initiator: true,
            since_ms: 1,
            detail: String::new(),
            pending_messages: 0,
            invitation_seq: None,
            warning: None,
            seq: 41,
            backlog: domain::Backlog {
                queued: 3,
                waited_ms: 2_500,
            },
        };
        assert_eq!(session(&info).seq, 41);
        assert_eq!(
            session(&info).backlog,
            Some(pb::Backlog {
                queued_messages: 3,
                waited_ms: 2_500
            })
        );
        let room_info = domain::RoomInfo {
            room_id: "r".into(),
            peer: "bob".into(),
            peer_user_id: "u".into(),
            presence: domain::Presence::Online,
            state: domain::SessionState::Established,
            mode: Some(domain::Mode::Native),
            seq: 42,
        };
        assert_eq!(room(&room_info).seq, 42);
    }

    #[test]
    fn message_event_carries_text() {
        let e = domain::Event {
            seq: 7,
            ts_ms: 1,
            replay: true,
            kind: domain::EventKind::Message {
                peer: "bob".into(),
                room_id: "r".into(),
                direction: domain::Direction::In,
                text: crate::secure::LockedText::from("hi"),
                id: "m1".into(),
                ts_ms: 5,
            },
        };
        let pb = event(&e);
        assert_eq!(pb.seq, 7);
        assert!(pb.replay);
        match pb.kind {
            Some(pb::event::Kind::Message(m)) => {
                assert_eq!(m.text, "hi");
                assert_eq!(m.direction, pb::Direction::In as i32);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
