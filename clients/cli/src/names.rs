//! The contract's names for the API's enums: the lowercase suffix of the protobuf name
//! (`SESSION_STATE_NOT_STARTED` → `not_started`, `MODE_LEGACY` → `legacy`), which is what the
//! daemon's domain types call them too. Unknown numbers (a newer daemon) read as `unknown`.

use otrd_proto::v1 as pb;

fn suffix(full: &str, prefix: &str) -> String {
    full.strip_prefix(prefix)
        .unwrap_or(full)
        .to_ascii_lowercase()
}

/// `established`, `not_started`, ...
pub fn session_state(v: i32) -> String {
    pb::SessionState::try_from(v)
        .map(|s| suffix(s.as_str_name(), "SESSION_STATE_"))
        .unwrap_or_else(|_| "unknown".into())
}

/// `legacy` or `native`; `None` until negotiated.
pub fn mode(v: i32) -> Option<String> {
    match pb::Mode::try_from(v) {
        Ok(pb::Mode::Unspecified) => None,
        Ok(m) => Some(suffix(m.as_str_name(), "MODE_")),
        Err(_) => Some("unknown".into()),
    }
}

/// `otr_relay`, `user_activity`, `video_conference`; `None` until chosen.
pub fn transport(v: i32) -> Option<String> {
    match pb::Transport::try_from(v) {
        Ok(pb::Transport::Unspecified) => None,
        Ok(t) => Some(suffix(t.as_str_name(), "TRANSPORT_")),
        Err(_) => Some("unknown".into()),
    }
}

/// `unknown`, `unverified`, `verified`, `changed`; `None` when not given.
pub fn trust(v: i32) -> Option<String> {
    match pb::Trust::try_from(v) {
        Ok(pb::Trust::Unspecified) => None,
        Ok(t) => Some(suffix(t.as_str_name(), "TRUST_")),
        Err(_) => Some("unknown".into()),
    }
}

/// `connecting`, `connected`, `reconnecting`, `auth_failed`, `disconnected`,
/// `two_factor_required`.
pub fn connection(v: i32) -> String {
    pb::ConnectionState::try_from(v)
        .map(|s| suffix(s.as_str_name(), "CONNECTION_STATE_"))
        .unwrap_or_else(|_| "unknown".into())
}

/// `online`, `away`, `busy`, `offline`, `unknown`.
pub fn presence(v: i32) -> String {
    pb::Presence::try_from(v)
        .map(|p| suffix(p.as_str_name(), "PRESENCE_"))
        .unwrap_or_else(|_| "unknown".into())
}

/// `in` or `out`.
pub fn direction(v: i32) -> String {
    pb::Direction::try_from(v)
        .map(|d| suffix(d.as_str_name(), "DIRECTION_"))
        .unwrap_or_else(|_| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_contract_names() {
        assert_eq!(
            session_state(pb::SessionState::NotStarted as i32),
            "not_started"
        );
        assert_eq!(
            session_state(pb::SessionState::Established as i32),
            "established"
        );
        assert_eq!(session_state(99), "unknown");
        assert_eq!(mode(pb::Mode::Legacy as i32).as_deref(), Some("legacy"));
        assert_eq!(mode(pb::Mode::Native as i32).as_deref(), Some("native"));
        assert_eq!(mode(0), None);
        assert_eq!(
            connection(pb::ConnectionState::AuthFailed as i32),
            "auth_failed"
        );
        assert_eq!(
            connection(pb::ConnectionState::TwoFactorRequired as i32),
            "two_factor_required"
        );
        assert_eq!(direction(pb::Direction::In as i32), "in");
        assert_eq!(direction(pb::Direction::Out as i32), "out");
        assert_eq!(
            transport(pb::Transport::OtrRelay as i32).as_deref(),
            Some("otr_relay")
        );
    }
}
