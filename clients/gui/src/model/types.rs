//! What the view model shows: peers, chat lines, invitations, the verification dialog, notices,
//! and the privacy of a conversation.

use otrd_proto::v1::{Direction, Mode, Presence, SessionState, Trust};
use zeroize::Zeroizing;

/// The window's link to the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// Dialling the socket (first start, or after a loss).
    Connecting,
    /// Talking to the daemon; events flow.
    Connected,
    /// No daemon; the worker retries. `reason` says what failed.
    Disconnected {
        /// For people.
        reason: String,
    },
}

/// How private a conversation is: what the status indicator shows. Each has its own look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Privacy {
    /// No session (or one being set up, declined, timed out or failed): nothing can be sent.
    Plaintext,
    /// Established, but the peer's identity is not verified (legacy sessions always are).
    PrivateUnverified,
    /// Established with a peer whose fingerprint the user verified.
    PrivateVerified,
    /// The session ended (by either side, or a lock); its keys and scrollback are gone.
    Ended,
}

impl Privacy {
    /// The privacy of a session in `state` with `trust`.
    pub fn of(state: SessionState, trust: Trust) -> Self {
        match (state, trust) {
            (SessionState::Established, Trust::Verified) => Self::PrivateVerified,
            (SessionState::Established, _) => Self::PrivateUnverified,
            (SessionState::Ended, _) => Self::Ended,
            _ => Self::Plaintext,
        }
    }

    /// The indicator's words.
    pub fn label(self) -> &'static str {
        match self {
            Self::Plaintext => "Not private",
            Self::PrivateUnverified => "Private — unverified",
            Self::PrivateVerified => "Private — verified",
            Self::Ended => "Ended",
        }
    }
}

/// One direct-message peer as the peers list shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerView {
    /// Username.
    pub name: String,
    /// Direct-message room id (empty until known).
    pub room_id: String,
    /// Presence as the server reports it.
    pub presence: Presence,
    /// The room's session state.
    pub state: SessionState,
    /// The session's scheme, once negotiated.
    pub mode: Mode,
    /// Identity trust (native sessions).
    pub trust: Trust,
    /// Why the session is in its state (declined, ended by whom, ...).
    pub detail: String,
    /// "legacy — the server could read this" when both ends run otrd but the session is legacy.
    pub warning: String,
    /// The last security alarm for this peer, until the session changes state again.
    pub alarm: Option<String>,
    /// Messages in this conversation not yet seen (not selected when they came).
    pub unread: usize,
    /// The event `seq` the shown state is as new as: the last state or invitation event applied,
    /// or the `seq` of the snapshot it came from. A snapshot older than this is stale.
    pub state_seq: u64,
}

impl PeerView {
    /// A peer we know nothing else about yet.
    pub fn new(name: &str, room_id: &str) -> Self {
        Self {
            name: name.to_owned(),
            room_id: room_id.to_owned(),
            presence: Presence::Unknown,
            state: SessionState::NotStarted,
            mode: Mode::Unspecified,
            trust: Trust::Unspecified,
            detail: String::new(),
            warning: String::new(),
            alarm: None,
            unread: 0,
            state_seq: 0,
        }
    }

    /// What the status indicator shows for this peer.
    pub fn privacy(&self) -> Privacy {
        Privacy::of(self.state, self.trust)
    }

    /// Messages can be sent (the daemon refuses otherwise; the window does not offer it).
    pub fn can_send(&self) -> bool {
        self.state == SessionState::Established
    }

    /// A session can be started (none running or pending).
    pub fn can_start(&self) -> bool {
        !matches!(
            self.state,
            SessionState::Established | SessionState::Establishing | SessionState::Requested
        )
    }

    /// A session can be ended (one is running or being set up).
    pub fn can_end(&self) -> bool {
        matches!(
            self.state,
            SessionState::Established | SessionState::Establishing
        )
    }
}

/// Where a sent message stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// A message from the peer.
    Incoming,
    /// Sent; the peer has not acknowledged it yet.
    Pending,
    /// The peer acknowledged it (the delivered mark).
    Delivered,
    /// The daemon reported it could not be delivered.
    Failed(String),
}

/// One line of a conversation. The text is wiped from memory when the line is dropped.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatLine {
    /// Message id.
    pub id: String,
    /// In or out.
    pub direction: Direction,
    /// The plaintext.
    pub text: Zeroizing<String>,
    /// Sender's timestamp, ms since the epoch.
    pub ts_ms: i64,
    /// Delivery, for outgoing lines.
    pub delivery: Delivery,
}

/// An invitation waiting for Accept or Decline.
#[derive(Debug, Clone, PartialEq)]
pub struct Invite {
    /// Who invites.
    pub peer: String,
    /// The room.
    pub room_id: String,
    /// The offered scheme.
    pub mode: Mode,
    /// When the peer's client gives up, ms since the epoch (0 if unknown).
    pub expires_ms: i64,
    /// The invitation event's seq, which Accept names so that it lands on this offer and no
    /// other (0 if unknown: accepts whatever is pending).
    pub seq: u64,
}

/// The verification dialog's contents (from GetFingerprint or TrustPeer).
#[derive(Debug, Clone, PartialEq)]
pub struct Verification {
    /// The peer.
    pub peer: String,
    /// Our fingerprint.
    pub own_fingerprint: String,
    /// The peer's fingerprint (empty if never seen).
    pub peer_fingerprint: String,
    /// Short authentication string of the current native session (empty otherwise).
    pub sas: String,
    /// Current trust.
    pub trust: Trust,
    /// When the identity changed: the one remembered before.
    pub previous_fingerprint: String,
    /// The daemon could not give fingerprints: why (the dialog says so instead).
    pub unavailable: Option<String>,
}

/// A message for the user at the bottom of the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// The words.
    pub text: String,
    /// An error or alarm (drawn in red) rather than information.
    pub error: bool,
}
