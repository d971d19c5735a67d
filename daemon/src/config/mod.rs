//! Configuration: the TOML file (`$XDG_CONFIG_HOME/otrd/config.toml` or `--config`) and every path
//! the daemon uses.
//!
//! The file never holds a secret: the password, token or TOTP code comes from the stdout of
//! `password_command` / `token_command` / `totp_command`, run without a shell (see
//! [`secret_command`]).

use serde::Deserialize;
use std::collections::BTreeMap;

mod load;
pub mod paths;
pub mod secret_command;

pub use load::{load, login_secret, parse, ConfigError, LoginSecret};
pub use secret_command::{SecretCommand, SecretCommandError};

/// The whole config file.
#[derive(Debug, Clone, Deserialize, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[server]`.
    #[serde(default)]
    pub server: ServerConfig,
    /// `[account]`.
    #[serde(default)]
    pub account: AccountConfig,
    /// `[policy]`: auto-accept, downgrades, delivery timeout, scrollback.
    #[serde(default)]
    pub policy: PolicyConfig,
    /// `[security]`: memory locking and lock-screen teardown.
    #[serde(default)]
    pub security: SecurityConfig,
    /// `[contacts.<username>]`: per-contact overrides of the policy.
    #[serde(default)]
    pub contacts: BTreeMap<String, ContactPolicy>,
    /// `[notifications]`: desktop notifications for invitations.
    #[serde(default)]
    pub notifications: NotificationsConfig,
    /// `[transport]`: pacing of the realtime relays used on Rocket.Chat 8.x.
    #[serde(default)]
    pub transport: TransportConfig,
}

/// `[transport]`: how much otrd writes to the realtime relays (paths A and B, PROTOCOL.md §12.4).
/// The defaults match the server's default DDP rate limits (per method: 40 calls per 40 s and
/// connection, 80 per user); raise them only for a server whose admin raised those limits.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TransportConfig {
    /// Calls the server allows per window, method and connection; at least 1.
    pub calls_per_window: u32,
    /// Calls the server allows per window, method and user (all the user's clients together);
    /// at least 1.
    pub user_calls_per_window: u32,
    /// Share of the per-user calls left to the user's other clients (the browser's and the
    /// phone's typing indicators use `stream-notify-room` too), from 0 up to (not including) 1.
    pub share_for_other_clients: f64,
    /// Window length in seconds; at least 1.
    pub window_secs: u64,
}

impl Default for TransportConfig {
    fn default() -> Self {
        Self {
            calls_per_window: 40,
            user_calls_per_window: 80,
            share_for_other_clients: 0.5,
            window_secs: 40,
        }
    }
}

/// `[notifications]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NotificationsConfig {
    /// Show a desktop notification (with Accept / Decline where supported) for each invitation.
    pub enabled: bool,
}

impl Default for NotificationsConfig {
    fn default() -> Self {
        Self { enabled: true }
    }
}

/// `[server]`.
#[derive(Debug, Clone, Deserialize, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// e.g. `https://chat.example.com`; DDP goes to `wss://chat.example.com/websocket`.
    pub url: String,
}

/// `[account]`.
#[derive(Debug, Clone, Deserialize, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AccountConfig {
    /// Login name.
    pub username: String,
    /// Command whose stdout is the password (e.g. `pass show chat`).
    pub password_command: Option<String>,
    /// With `token_command`: the user id the personal access token belongs to.
    pub user_id: Option<String>,
    /// Command whose stdout is a personal access token.
    pub token_command: Option<String>,
    /// With `password_command`: command whose stdout is the current TOTP code (`pass otp chat`,
    /// `oathtool --totp -b …`), run without a shell when the server asks for one. Without it,
    /// codes are asked from the user (`otrctl login`).
    pub totp_command: Option<String>,
}

/// What to do when a peer that once spoke native now offers only legacy.
#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DowngradePolicy {
    /// Refuse the legacy session and raise an alarm; the user may start `--legacy` explicitly.
    #[default]
    Refuse,
    /// Accept with an alarm event.
    Warn,
}

/// `[policy]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Accept every invitation without asking (off by default).
    pub auto_accept: bool,
    /// Downgrade handling.
    pub downgrade: DowngradePolicy,
    /// Seconds a sent message may stay unacknowledged before it is reported failed.
    pub delivery_timeout_secs: u64,
    /// Messages kept per session in the in-memory scrollback.
    pub scrollback: usize,
    /// Refuse anything but the native scheme: start, accept and `require_otr` sends fail rather
    /// than make (or use) a legacy session, first contact included — so a server that strips the
    /// native offer from a first handshake produces a clear error, not a session it can read.
    pub require_native: bool,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            auto_accept: false,
            downgrade: DowngradePolicy::Refuse,
            delivery_timeout_secs: 60,
            scrollback: 200,
            require_native: false,
        }
    }
}

/// `[contacts.<username>]`.
#[derive(Debug, Clone, Deserialize, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ContactPolicy {
    /// Overrides `policy.auto_accept` for this contact.
    pub auto_accept: Option<bool>,
    /// Sending to this contact without an established session starts OTR (scheme auto, as
    /// `otrctl start` does) and holds the message until the session is established, then sends
    /// it encrypted and answers; if the session cannot be established (declined, timed out,
    /// failed, no otrd on an 8.x server...) the send fails naming the contact and the outcome.
    /// At most 64 messages wait per contact; `otrctl lock` fails them all. Without it, a send
    /// fails at once unless a session is established. Either way nothing is ever sent in
    /// plaintext.
    pub require_otr: Option<bool>,
    /// Overrides `policy.require_native` for this contact.
    pub require_native: Option<bool>,
}

/// What happens when memory cannot be locked.
#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum MemlockPolicy {
    /// Refuse to establish sessions (default).
    #[default]
    Refuse,
    /// Go on with a warning.
    Warn,
}

/// `[security]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityConfig {
    /// Policy when mlock fails.
    pub memlock: MemlockPolicy,
    /// End every session when logind says the screen locks or the machine sleeps.
    pub lock_on_screen_lock: bool,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        Self {
            memlock: MemlockPolicy::Refuse,
            lock_on_screen_lock: true,
        }
    }
}

impl Config {
    /// Auto-accept for `peer`, after per-contact overrides.
    pub fn auto_accept(&self, peer: &str) -> bool {
        self.contacts
            .get(peer)
            .and_then(|c| c.auto_accept)
            .unwrap_or(self.policy.auto_accept)
    }

    /// Whether sends to `peer` start OTR and wait for it (see [`ContactPolicy::require_otr`]).
    pub fn require_otr(&self, peer: &str) -> bool {
        self.contacts
            .get(peer)
            .and_then(|c| c.require_otr)
            .unwrap_or(false)
    }

    /// Whether only the native scheme is acceptable with `peer` (see
    /// [`PolicyConfig::require_native`]), after per-contact overrides.
    pub fn require_native(&self, peer: &str) -> bool {
        self.contacts
            .get(peer)
            .and_then(|c| c.require_native)
            .unwrap_or(self.policy.require_native)
    }
}
