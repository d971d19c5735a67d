//! The compatibility layer: which server generation we talk to, and which path carries rooms,
//! DMs and users on it.
//!
//! Chosen at each login from `/api/info` (6.x, 7.x, 8.x, ≥ 9.0), and switched to REST-only for
//! the rest of the daemon's life the first time a DDP method answers "method not found" (a
//! server that moved methods to REST ahead of 9.0, as Rocket.Chat's 2026 deprecations do). In
//! REST-only mode DDP carries nothing but `login {resume}`, the `stream-*` subscriptions and
//! methods and presence; rooms come from REST `rooms.get`, DMs from `im.create`, users from
//! `users.info` (always REST).

use super::ddp::DdpError;

/// A Rocket.Chat generation, as far as otrd's paths care.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Generation {
    /// The server did not say.
    #[default]
    Unknown,
    /// 6.x or older.
    V6,
    /// 7.x (the stock OTR relay, when `OTR_Enable` is on).
    V7,
    /// 8.x (no OTR on the server; DDP methods still there).
    V8,
    /// 9.0 and later: the remaining DDP methods moved to REST.
    RestOnly,
}

impl Generation {
    /// From the major version.
    pub fn from_major(major: Option<u32>) -> Self {
        match major {
            None => Self::Unknown,
            Some(m) if m <= 6 => Self::V6,
            Some(7) => Self::V7,
            Some(8) => Self::V8,
            Some(_) => Self::RestOnly,
        }
    }

    /// For status: `6.x`, `7.x`, `8.x`, `9.x (REST only)`, or empty.
    pub fn name(self) -> &'static str {
        match self {
            Self::Unknown => "",
            Self::V6 => "6.x",
            Self::V7 => "7.x",
            Self::V8 => "8.x",
            Self::RestOnly => "9.x (REST only)",
        }
    }
}

/// Which paths are in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ApiPaths {
    /// Rooms and DMs over REST (the server is ≥ 9.0 or a DDP method was missing).
    pub rest_only: bool,
}

impl ApiPaths {
    /// For status: what carries rooms, DMs, users and the realtime traffic.
    pub fn describe(self) -> &'static str {
        if self.rest_only {
            "rooms: REST rooms.get; DMs: REST im.create; users: REST users.info; realtime: DDP streams"
        } else {
            "rooms: DDP rooms/get; DMs: DDP createDirectMessage; users: REST users.info; realtime: DDP streams"
        }
    }
}

/// Meteor's answer to a method the server does not have: `{error: 404, reason: "Method 'x' not
/// found"}`.
pub fn is_method_not_found(e: &DdpError) -> bool {
    e.code() == "404" && e.reason.contains("not found")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn generations_from_versions() {
        assert_eq!(Generation::from_major(Some(5)), Generation::V6);
        assert_eq!(Generation::from_major(Some(7)), Generation::V7);
        assert_eq!(Generation::from_major(Some(8)), Generation::V8);
        assert_eq!(Generation::from_major(Some(9)), Generation::RestOnly);
        assert_eq!(Generation::from_major(Some(12)), Generation::RestOnly);
        assert_eq!(Generation::from_major(None).name(), "");
        assert!(ApiPaths { rest_only: true }
            .describe()
            .contains("im.create"));
        let e = DdpError::from_value(&json!({"error":404,"reason":"Method 'rooms/get' not found"}));
        assert!(is_method_not_found(&e));
        let e = DdpError::from_value(&json!({"error":404,"reason":"Room not found"}));
        assert!(
            is_method_not_found(&e),
            "Meteor's shape; only methods we call reach this"
        );
        let e = DdpError::from_value(&json!({"error":403,"reason":"not found"}));
        assert!(!is_method_not_found(&e));
    }
}
