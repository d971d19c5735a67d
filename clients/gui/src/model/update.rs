//! What the worker tells the view model: the daemon's events and the results of RPCs.

use otrd_proto::v1::{Event, GetFingerprintResponse, GetStatusResponse, Room, Session};

/// Everything the view model learns, in the order the worker learned it.
#[derive(Debug, Clone)]
pub enum Update {
    /// The worker is dialling the daemon.
    Connecting,
    /// Connected: a fresh picture of the daemon. Replaces everything known before (the daemon
    /// may have restarted, wiping its sessions); the scrollback replay follows as events.
    Connected(Box<Snapshot>),
    /// The daemon went away (or never answered); the worker retries.
    Disconnected {
        /// What failed, for people.
        reason: String,
    },
    /// An event from WatchEvents (replayed scrollback or live).
    Event(Event),
    /// A fresh room list (presence changes have no event; the worker polls).
    Rooms(Vec<Room>),
    /// A fresh daemon status (boxed: it is by far the largest update).
    Status(Box<GetStatusResponse>),
    /// The session a Start/Accept/Decline/Refresh/End call returned.
    Session(Session),
    /// EndAllSessions ended this many sessions.
    EndedAll {
        /// How many.
        ended: u32,
    },
    /// GetFingerprint or TrustPeer answered: the verification dialog's contents.
    Fingerprint(GetFingerprintResponse),
    /// GetFingerprint failed: the dialog opens and says why (e.g. no native scheme yet).
    FingerprintUnavailable {
        /// The peer asked about.
        peer: String,
        /// What the daemon said.
        reason: String,
    },
    /// An RPC failed.
    Failed {
        /// What the user asked for, e.g. "start a session with echo".
        action: String,
        /// What the daemon said.
        message: String,
    },
}

/// The daemon as seen right after connecting.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// GetStatus.
    pub status: GetStatusResponse,
    /// ListRooms.
    pub rooms: Vec<Room>,
    /// ListSessions.
    pub sessions: Vec<Session>,
}
