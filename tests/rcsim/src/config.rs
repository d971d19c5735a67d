//! Simulator configuration: which Rocket.Chat the simulator pretends to be (version, 7.x or 8.x
//! behaviour, `OTR_Enable`, ack re-emit shape), its users and DM rooms, and the rate limits.
//! Loaded from TOML by the binary or built in Rust by tests (`SimConfig::demo()`).

use std::fmt;
use std::path::PathBuf;

pub mod totp;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// Which server generation to imitate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Rocket.Chat 7.x (era D): OTR relayed when `otr_enable` is true.
    #[default]
    V7,
    /// Rocket.Chat 8.x (era E): OTR removed on the server.
    V8,
}

/// How `updateOTRAck` re-emits the acknowledged message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AckShape {
    /// `{...message, otrAck: ack}` (eras A, B, D — 7.x).
    #[default]
    OtrAck,
    /// `{...message, otr: {ack}}` (era C).
    OtrDotAck,
}

/// Presence status of a user as Rocket.Chat names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Not connected, or invisible.
    Offline,
    /// Connected and available.
    #[default]
    Online,
    /// Away.
    Away,
    /// Busy (do not disturb).
    Busy,
}

impl Status {
    /// The numeric code used on `stream-user-presence` / `user-status` (offline 0 … busy 3).
    pub fn code(self) -> u8 {
        match self {
            Status::Offline => 0,
            Status::Online => 1,
            Status::Away => 2,
            Status::Busy => 3,
        }
    }

    /// The string used by REST (`users.info`, `users.presence`).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Offline => "offline",
            Status::Online => "online",
            Status::Away => "away",
            Status::Busy => "busy",
        }
    }

    /// Parses `online` / `away` / `busy` / `offline` (the REST/DDP spelling).
    pub fn parse(s: &str) -> Option<Status> {
        match s {
            "offline" | "invisible" => Some(Status::Offline),
            "online" => Some(Status::Online),
            "away" => Some(Status::Away),
            "busy" => Some(Status::Busy),
            _ => None,
        }
    }
}

/// A credential (password or token) held in zeroizing memory and never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential(Zeroizing<String>);

impl Serialize for Credential {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Credential {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Credential::new)
    }
}

impl Credential {
    /// Wraps a credential.
    pub fn new(s: impl Into<String>) -> Self {
        Credential(Zeroizing::new(s.into()))
    }

    /// The credential text, for comparison and hashing only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

/// One user account.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UserConfig {
    /// User id (`_id`); generated (17 chars) when empty.
    #[serde(default)]
    pub id: String,
    /// Login name, unique.
    pub username: String,
    /// Display name; defaults to the username.
    #[serde(default)]
    pub name: Option<String>,
    /// Plain password; clients log in with its SHA-256 digest.
    pub password: Credential,
    /// Personal access tokens accepted by `login {resume}` and REST.
    #[serde(default)]
    pub personal_access_tokens: Vec<Credential>,
    /// Status the user shows while connected (`UserPresence:setDefaultStatus`); `offline` = invisible.
    #[serde(default)]
    pub default_status: Status,
    /// Authenticator-app 2FA: the TOTP secret (its bytes; codes per RFC 6238, see [`totp`]).
    #[serde(default)]
    pub totp_secret: Option<Credential>,
    /// E-mail 2FA: codes are "sent" to the simulator's `email_outbox`.
    #[serde(default)]
    pub email_2fa: bool,
    /// An LDAP-only account: no local password (`password` is the directory's); a DDP password
    /// login says "User has no password set", the LDAP form and a REST login (with the server's
    /// LDAP rewrite, `ldap_enable`) work.
    #[serde(default)]
    pub ldap: bool,
    /// Session tokens that expired (a resume with one is refused as on a real server).
    #[serde(default)]
    pub expired_tokens: Vec<Credential>,
}

impl UserConfig {
    /// A user with the given id, username and password; display name = username, online by default.
    pub fn new(id: &str, username: &str, password: &str) -> Self {
        UserConfig {
            id: id.to_string(),
            username: username.to_string(),
            name: None,
            password: Credential::new(password),
            personal_access_tokens: Vec::new(),
            default_status: Status::Online,
            totp_secret: None,
            email_2fa: false,
            ldap: false,
            expired_tokens: Vec::new(),
        }
    }
}

/// A direct-message room between two users.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DmConfig {
    /// Room id; generated when empty.
    #[serde(default)]
    pub id: String,
    /// The two members' usernames.
    pub usernames: [String; 2],
}

/// One fixed-window limit: `count` calls per `window_ms`.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Limit {
    /// Calls allowed per window.
    pub count: u32,
    /// Window length in milliseconds.
    pub window_ms: u64,
}

/// DDP rate limits (Meteor `DDPRateLimiter` defaults as Rocket.Chat configures them, §12.4).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct RateLimitConfig {
    /// Master switch.
    pub enabled: bool,
    /// Per user and per `stream-*` method name.
    pub stream_per_user: Limit,
    /// Per connection and per `stream-*` method name.
    pub stream_per_connection: Limit,
    /// `sendMessage` per user.
    pub send_message_per_user: Limit,
    /// All methods per user.
    pub global_per_user: Limit,
    /// All methods per connection.
    pub global_per_connection: Limit,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            enabled: true,
            stream_per_user: Limit {
                count: 80,
                window_ms: 40_000,
            },
            stream_per_connection: Limit {
                count: 40,
                window_ms: 40_000,
            },
            send_message_per_user: Limit {
                count: 5,
                window_ms: 1_000,
            },
            global_per_user: Limit {
                count: 1200,
                window_ms: 60_000,
            },
            global_per_connection: Limit {
                count: 600,
                window_ms: 60_000,
            },
        }
    }
}

/// Everything the simulator needs to start.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct SimConfig {
    /// Version reported by `GET /api/info`; defaults by mode (7.10.0 / 8.0.0).
    pub version: Option<String>,
    /// 7.x or 8.x behaviour.
    pub mode: Mode,
    /// Admin setting `OTR_Enable` (7.x only; absent on 8.x).
    pub otr_enable: bool,
    /// Shape of the `updateOTRAck` re-emit.
    pub ack_shape: AckShape,
    /// Public setting `UI_Use_Real_Name` (path A then matches the display name).
    pub ui_use_real_name: bool,
    /// Only `video-conference` and `userData` relayed by `stream-notify-room-users` (post-fix
    /// behaviour); false imitates the buggy builds that relayed any event name.
    pub notify_room_users_allowlist: bool,
    /// Setting `Message_MaxAllowedSize` (UTF-16 code units of `msg`).
    pub message_max_allowed_size: usize,
    /// Largest websocket frame/message accepted, in bytes.
    pub max_ws_frame_bytes: usize,
    /// Server heartbeat: ping after this much inbound silence, close after as much again
    /// without traffic. 0 disables.
    pub heartbeat_ms: u64,
    /// DDP rate limits.
    pub rate_limits: RateLimitConfig,
    /// User accounts.
    pub users: Vec<UserConfig>,
    /// DM rooms.
    pub dms: Vec<DmConfig>,
    /// Setting `LDAP_Enable`: REST user/password logins are rewritten to the LDAP form.
    pub ldap_enable: bool,
    /// No REST `/api/v1/login` (404): clients must log in over DDP.
    pub no_rest_login: bool,
    /// An EE-style DDP endpoint (the microservices' `ddp-streamer`): `login` accepts only
    /// `{resume}`.
    pub ddp_resume_only: bool,
    /// The 9.0 mode: DDP carries only `login {resume}`, `logout`, the `stream-*` methods and
    /// `UserPresence:*` (plus, in 7.x mode, the OTR relay's methods, which have no REST twin);
    /// every other method answers "method not found". `/api/info` says 9.0.0 in 8.x mode.
    pub rest_only_ddp: bool,
    /// Where e-mail 2FA codes are "sent": `<dir>/<username>.code` holds the latest.
    pub email_outbox: Option<PathBuf>,
    /// Setting `Accounts_TwoFactorAuthentication_Max_Invalid_Email_Code_Attempts`.
    pub email_code_max_attempts: u32,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            version: None,
            mode: Mode::V7,
            otr_enable: true,
            ack_shape: AckShape::OtrAck,
            ui_use_real_name: false,
            notify_room_users_allowlist: true,
            message_max_allowed_size: 5000,
            max_ws_frame_bytes: 16 * 1024 * 1024,
            heartbeat_ms: 15_000,
            rate_limits: RateLimitConfig::default(),
            users: Vec::new(),
            dms: Vec::new(),
            ldap_enable: false,
            no_rest_login: false,
            ddp_resume_only: false,
            rest_only_ddp: false,
            email_outbox: None,
            email_code_max_attempts: 5,
        }
    }
}

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The TOML did not parse.
    #[error("parsing simulator config: {0}")]
    Parse(#[from] toml::de::Error),
    /// Two users share a username or id.
    #[error("duplicate user {0:?}")]
    DuplicateUser(String),
    /// A DM names a user that does not exist.
    #[error("DM {room:?} names unknown user {username:?}")]
    UnknownDmUser {
        /// The room id from the config (may be empty).
        room: String,
        /// The missing username.
        username: String,
    },
}

impl SimConfig {
    /// Parses a TOML configuration.
    pub fn from_toml(text: &str) -> Result<SimConfig, ConfigError> {
        Ok(toml::from_str(text)?)
    }

    /// The version string `GET /api/info` reports.
    pub fn version_string(&self) -> String {
        match (&self.version, self.mode) {
            (Some(v), _) => v.clone(),
            (None, Mode::V7) => "7.10.0".to_string(),
            (None, Mode::V8) if self.rest_only_ddp => "9.0.0".to_string(),
            (None, Mode::V8) => "8.0.0".to_string(),
        }
    }

    /// Users `me` (password `demo`) and `echo` (password `echo`) with a DM between them; 7.x, OTR on.
    pub fn demo() -> SimConfig {
        let mut me = UserConfig::new("MeUser0000000001a", "me", "demo");
        me.name = Some("Me".to_string());
        let mut echo = UserConfig::new("EchoUser00000001b", "echo", "echo");
        echo.name = Some("Echo".to_string());
        SimConfig {
            users: vec![me, echo],
            dms: vec![DmConfig {
                id: "DemoDmRoom000001c".to_string(),
                usernames: ["me".to_string(), "echo".to_string()],
            }],
            ..SimConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_file_parses() {
        let cfg = SimConfig::from_toml(include_str!("../rcsim.example.toml")).expect("example");
        assert_eq!(cfg.users.len(), 2);
        assert_eq!(cfg.dms[0].id, "Kd9fPq2WxYz7mN3aT");
        assert_eq!(cfg.rate_limits.send_message_per_user.count, 5);
    }

    #[test]
    fn toml_round_trip_and_defaults() {
        let cfg = SimConfig::from_toml(
            r#"
mode = "v8"
ack_shape = "otr_dot_ack"
[rate_limits]
enabled = false
[[users]]
username = "a"
password = "pw"
personal_access_tokens = ["tok"]
default_status = "away"
[[dms]]
usernames = ["a", "a"]
"#,
        )
        .expect("valid toml");
        assert_eq!(cfg.mode, Mode::V8);
        assert_eq!(cfg.ack_shape, AckShape::OtrDotAck);
        assert!(!cfg.rate_limits.enabled);
        assert_eq!(cfg.rate_limits.stream_per_user.count, 80);
        assert_eq!(cfg.version_string(), "8.0.0");
        assert_eq!(cfg.users[0].default_status, Status::Away);
        assert_eq!(format!("{:?}", cfg.users[0].password), "[REDACTED]");
    }
}
