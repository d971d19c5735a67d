//! The daemon's domain vocabulary, shared by the engine, the session logic and the API layer.
//!
//! These are not the generated gRPC types: `api` converts at the edge, so message text stays in
//! [`SecretString`](crate::secure::SecretString) until the last moment and no key material can ever reach a generated type.

use crate::secure::LockedText;
use std::fmt;

/// Where a session stands (the contract's state names: `as_str`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionState {
    /// No session, no invitation.
    NotStarted,
    /// We invited (or accepted) and wait for the handshake to complete.
    Establishing,
    /// The peer invited us; waiting for the user.
    Requested,
    /// Keys agreed; messages flow.
    Established,
    /// The peer declined.
    Declined,
    /// No answer in time.
    Timeout,
    /// Ended by either side or by a lock.
    Ended,
    /// Protocol or crypto failure.
    Error,
}

impl SessionState {
    /// The contract's lowercase name (`established`, `not_started`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotStarted => "not_started",
            Self::Establishing => "establishing",
            Self::Requested => "requested",
            Self::Established => "established",
            Self::Declined => "declined",
            Self::Timeout => "timeout",
            Self::Ended => "ended",
            Self::Error => "error",
        }
    }

    /// True for states in which no keys are held and a new start is allowed.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::NotStarted | Self::Declined | Self::Timeout | Self::Ended | Self::Error
        )
    }
}

/// Which cryptographic scheme a session runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// The stock Rocket.Chat client's scheme.
    Legacy,
    /// otrd to otrd.
    Native,
}

impl Mode {
    /// The contract's name: `legacy` or `native`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Legacy => "legacy",
            Self::Native => "native",
        }
    }
}

/// What the user asks for when starting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SchemePreference {
    /// Native when the peer speaks it, else legacy (subject to the downgrade policy).
    #[default]
    Auto,
    /// Force the stock scheme.
    Legacy,
    /// Native or nothing.
    Native,
}

/// How a session's frames travel through the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    /// The Rocket.Chat <= 7.x OTR relay (the only one stock clients understand).
    OtrRelay,
    /// Path A: `stream-notify-room` `<rid>/user-activity`.
    UserActivity,
    /// Path B: `stream-notify-room-users` `<rid>/video-conference`.
    VideoConference,
}

impl TransportKind {
    /// Short name for people and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OtrRelay => "otr_relay",
            Self::UserActivity => "user_activity",
            Self::VideoConference => "video_conference",
        }
    }
}

/// How far the user trusts a peer's identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Trust {
    /// No identity seen.
    Unknown,
    /// Remembered on first use, not verified.
    Unverified,
    /// Verified by the user.
    Verified,
    /// Differs from the remembered identity: an alarm.
    Changed,
}

impl Trust {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Unverified => "unverified",
            Self::Verified => "verified",
            Self::Changed => "changed",
        }
    }
}

/// A user's presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Presence {
    /// Not known yet.
    #[default]
    Unknown,
    /// Offline (or invisible).
    Offline,
    /// Online.
    Online,
    /// Away.
    Away,
    /// Busy.
    Busy,
}

impl Presence {
    /// From Rocket.Chat's numeric status code (0 offline, 1 online, 2 away, 3 busy).
    pub fn from_code(code: i64) -> Self {
        match code {
            0 => Self::Offline,
            1 => Self::Online,
            2 => Self::Away,
            3 => Self::Busy,
            _ => Self::Unknown,
        }
    }

    /// From Rocket.Chat's status string (`online`, `away`, `busy`, `offline`).
    pub fn from_name(name: &str) -> Self {
        match name {
            "offline" | "invisible" => Self::Offline,
            "online" => Self::Online,
            "away" => Self::Away,
            "busy" => Self::Busy,
            _ => Self::Unknown,
        }
    }

    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Offline => "offline",
            Self::Online => "online",
            Self::Away => "away",
            Self::Busy => "busy",
        }
    }
}

/// The daemon's link to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ConnectionState {
    /// Opening the websocket or logging in.
    Connecting,
    /// Logged in and subscribed.
    Connected,
    /// Lost; waiting to retry.
    Reconnecting,
    /// Credentials refused; not retrying.
    AuthFailed,
    /// Not connected and not trying.
    #[default]
    Disconnected,
    /// The login waits for a two-factor code (`otrctl login`, SubmitLoginCode); the detail says
    /// "two-factor code required (totp|email)" and why.
    TwoFactorRequired,
}

impl ConnectionState {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connecting => "connecting",
            Self::Connected => "connected",
            Self::Reconnecting => "reconnecting",
            Self::AuthFailed => "auth_failed",
            Self::Disconnected => "disconnected",
            Self::TwoFactorRequired => "two_factor_required",
        }
    }
}

/// Names a peer: by username or by DM room id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PeerRef {
    /// A Rocket.Chat username.
    Username(String),
    /// A direct-message room id.
    RoomId(String),
}

impl fmt::Display for PeerRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Username(u) => f.write_str(u),
            Self::RoomId(r) => write!(f, "room {r}"),
        }
    }
}

/// A snapshot of one session.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionInfo {
    /// DM room id.
    pub room_id: String,
    /// Peer username.
    pub peer: String,
    /// Peer user id.
    pub peer_user_id: String,
    /// State.
    pub state: SessionState,
    /// Scheme, once negotiated.
    pub mode: Option<Mode>,
    /// Transport in use, once chosen.
    pub transport: Option<TransportKind>,
    /// Identity trust (legacy: always `Unverified`).
    pub trust: Trust,
    /// True when we started it.
    pub initiator: bool,
    /// Last state change, ms since the epoch.
    pub since_ms: i64,
    /// Why the state is what it is (declined, timeout, error).
    pub detail: String,
    /// Sent messages not yet acknowledged.
    pub pending_messages: u32,
    /// The sequence number of the invitation event for the offer waiting for an answer (also one
    /// offered beside a live native session); what AcceptSession may name.
    pub invitation_seq: Option<u64>,
    /// Set when both ends run otrd but the session is legacy: "legacy — the server could read
    /// this" (see `otr::session::LEGACY_WARNING`).
    pub warning: Option<String>,
    /// The event log's last sequence number when the snapshot was taken (0 until the engine
    /// stamps it): events up to it are reflected here, later ones are newer.
    pub seq: u64,
    /// Messages waiting for the realtime relays' rate limit (Rocket.Chat 8.x); filled in by the
    /// engine, sessions do not know.
    pub backlog: Backlog,
}

/// A session's messages handed to the transport and not yet accepted by the server, because the
/// realtime relays' budget makes them wait (Rocket.Chat 8.x).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backlog {
    /// How many.
    pub queued: u32,
    /// How long the oldest has waited, ms (0 when none waits).
    pub waited_ms: u64,
}

impl Backlog {
    /// For people: "3 messages wait for the server's rate limit (oldest 2.4 s)".
    pub fn describe(&self) -> String {
        if self.queued == 0 {
            return "no message waits for the server's rate limit any more".to_owned();
        }
        let what = if self.queued == 1 {
            "1 message waits".to_owned()
        } else {
            format!("{} messages wait", self.queued)
        };
        format!(
            "{what} for the server's rate limit (oldest {:.1} s); they leave packed into as \
             few calls as the budget allows",
            self.waited_ms as f64 / 1000.0
        )
    }
}

/// One realtime relay method's budget on this account (GetStatus; Rocket.Chat 8.x).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayBudget {
    /// The DDP method (`stream-notify-room`, `stream-notify-room-users`).
    pub method: &'static str,
    /// The path it carries.
    pub transport: TransportKind,
    /// Our calls on this connection within the last window (plus margin).
    pub connection_calls: u32,
    /// What the server allows per connection and window (config `calls_per_window`).
    pub connection_limit: u32,
    /// Our calls counted against the user's limit in that window (earlier connections too).
    pub user_calls: u32,
    /// Our share of the per-user limit (the rest is left to the user's other clients).
    pub user_limit: u32,
    /// Calls of each window only `end` and `deny` may spend.
    pub reserve: u32,
    /// The window our counts cover (the server's plus a margin), ms.
    pub window_ms: u64,
    /// Messages waiting on this method, all rooms.
    pub queued_messages: u32,
    /// Items of any kind waiting (messages, acknowledgements, signals).
    pub queued_items: u32,
    /// How long the oldest waiting message has waited, ms.
    pub oldest_wait_ms: u64,
    /// Calls made since start.
    pub calls_total: u64,
    /// `too-many-requests` answers since start.
    pub rate_limited_total: u64,
    /// Messages reported failed because they could not leave within the delivery bound.
    pub expired_total: u64,
}

/// A 1:1 direct-message room.
#[derive(Debug, Clone, PartialEq)]
pub struct RoomInfo {
    /// Room id.
    pub room_id: String,
    /// Peer username.
    pub peer: String,
    /// Peer user id.
    pub peer_user_id: String,
    /// Peer presence.
    pub presence: Presence,
    /// Session state of the room.
    pub state: SessionState,
    /// Scheme of the room's session, if any.
    pub mode: Option<Mode>,
    /// The event log's last sequence number when the snapshot was taken.
    pub seq: u64,
}

/// Locked-memory state for GetStatus.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MemoryStatus {
    /// Pages are mlock'd.
    pub locked: bool,
    /// Arena bytes holding secrets now.
    pub in_use_bytes: u64,
    /// Arena bytes mlock'd.
    pub locked_bytes: u64,
    /// RLIMIT_MEMLOCK (0 = unlimited/unknown).
    pub limit_bytes: u64,
    /// Why not locked, and the policy applied.
    pub detail: String,
}

/// What GetStatus reports.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StatusInfo {
    /// Server URL from the config.
    pub server_url: String,
    /// Account username.
    pub account: String,
    /// Account user id once logged in.
    pub account_user_id: String,
    /// Connection state.
    pub connection: ConnectionState,
    /// Why.
    pub connection_detail: String,
    /// Server version, once known.
    pub server_version: String,
    /// Stock-client OTR works on this server.
    pub otr_available: bool,
    /// Why not, in words a user understands.
    pub otr_unavailable_reason: String,
    /// otrd-to-otrd transports the server offers.
    pub native_transports: Vec<TransportKind>,
    /// Locked memory.
    pub memory: MemoryStatus,
    /// Sessions in any state but not_started.
    pub session_count: u32,
    /// Established sessions.
    pub established_count: u32,
    /// Established legacy sessions although both ends run otrd: the server could read them.
    pub exposed_count: u32,
    /// This daemon's instance tag, hex.
    pub instance_tag: String,
    /// Why the native scheme is off (empty when on).
    pub native_unavailable_reason: String,
    /// How the daemon logged in (`LoginInfo::describe`).
    pub login_method: String,
    /// The server generation the compatibility layer chose.
    pub server_generation: String,
    /// Which paths carry rooms, DMs, users and realtime traffic.
    pub api_paths: String,
    /// The second factor asked for now or at the last login (`totp`, `email`, empty).
    pub two_factor: String,
    /// The screen lock in force (`None` when unlocked): no session starts or is accepted.
    pub lock: Option<LockState>,
    /// The newest event seq emitted before the latest lock (0: never locked): a watcher reading a
    /// message event at or below it after the lock gets it dropped, not delivered.
    pub lock_watermark: u64,
    /// The realtime relays' budgets (Rocket.Chat 8.x; empty elsewhere). Read when GetStatus is
    /// asked, like `memory`, not kept in the published snapshot.
    pub relays: Vec<RelayBudget>,
}

/// A screen lock in force: between a lock (logind, `otrctl lock`) and the unlock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockState {
    /// What locked: `lock`, `locked_hint`, `sleep` (logind) or `otrctl lock`.
    pub reason: String,
    /// When, ms since epoch.
    pub since_ms: i64,
}

/// Direction of a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the peer.
    In,
    /// From us (any front-end).
    Out,
}

impl Direction {
    /// `in` or `out`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::In => "in",
            Self::Out => "out",
        }
    }
}

/// What happened, as every front-end sees it.
#[derive(Debug, Clone)]
pub enum EventKind {
    /// The peer wants to start OTR.
    Invitation {
        /// Peer username.
        peer: String,
        /// Room id.
        room_id: String,
        /// Offered scheme.
        mode: Mode,
        /// When the peer's client gives up, ms since epoch.
        expires_ms: i64,
    },
    /// A session changed state.
    State {
        /// Peer username.
        peer: String,
        /// Room id.
        room_id: String,
        /// New state.
        state: SessionState,
        /// Scheme.
        mode: Option<Mode>,
        /// Transport.
        transport: Option<TransportKind>,
        /// Trust.
        trust: Trust,
        /// Why.
        detail: String,
        /// "legacy — the server could read this" when both ends run otrd but the session is
        /// legacy (see [`SessionInfo::warning`]).
        warning: Option<String>,
        /// Set when this event reports messages waiting for the realtime relays' rate limit, or
        /// that the wait is over (`queued == 0`); `None` on every other state event.
        backlog: Option<Backlog>,
    },
    /// A chat message, in or out.
    Message {
        /// Peer username.
        peer: String,
        /// Room id.
        room_id: String,
        /// In or out.
        direction: Direction,
        /// The plaintext, in locked memory (it is kept in the scrollback).
        text: LockedText,
        /// Message id.
        id: String,
        /// Sender's timestamp, ms.
        ts_ms: i64,
    },
    /// The peer acknowledged our message.
    Delivered {
        /// Peer username.
        peer: String,
        /// Room id.
        room_id: String,
        /// Message id.
        id: String,
    },
    /// Something failed.
    Error {
        /// Peer (empty if none).
        peer: String,
        /// Room id (empty if none).
        room_id: String,
        /// Machine-readable code.
        code: String,
        /// For people.
        message: String,
        /// Message id concerned, if any.
        id: String,
    },
    /// The server connection changed.
    Connection {
        /// New state.
        state: ConnectionState,
        /// Why.
        detail: String,
    },
    /// A security alarm.
    Alarm {
        /// Peer.
        peer: String,
        /// Room id.
        room_id: String,
        /// `fingerprint_changed`, `downgrade`, `key_confirmation_failed`, ...
        code: String,
        /// For people.
        message: String,
    },
}

/// An event with its daemon-wide sequence number.
#[derive(Debug, Clone)]
pub struct Event {
    /// Increases by one per event.
    pub seq: u64,
    /// ms since the epoch.
    pub ts_ms: i64,
    /// True for replayed scrollback.
    pub replay: bool,
    /// What happened.
    pub kind: EventKind,
}

/// Fingerprints and trust, for GetFingerprint / TrustPeer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FingerprintInfo {
    /// Our identity fingerprint.
    pub own_fingerprint: String,
    /// Peer username.
    pub peer: String,
    /// Peer's current fingerprint.
    pub peer_fingerprint: String,
    /// Trust.
    pub trust: Option<Trust>,
    /// Short authentication string of the live native session.
    pub sas: String,
    /// The previously remembered fingerprint when it changed.
    pub previous_fingerprint: String,
}

/// Why an engine command failed; `api` maps each to a gRPC code.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// No such user or room.
    #[error("{0}")]
    NotFound(String),
    /// The request makes no sense in the current state (no session, not established, ...).
    #[error("{0}")]
    FailedPrecondition(String),
    /// Bad argument from the client.
    #[error("{0}")]
    InvalidArgument(String),
    /// The server or the connection cannot do it right now.
    #[error("{0}")]
    Unavailable(String),
    /// This capability is not built yet.
    #[error("{0}")]
    Unimplemented(String),
    /// The engine is gone (shutting down).
    #[error("the daemon is shutting down")]
    ShuttingDown,
    /// Anything else.
    #[error("{0}")]
    Internal(String),
}
