//! The Rocket.Chat DDP/REST client.
//!
//! One task owns the websocket ([`Client::spawn`]); everything else holds a cloneable [`Client`]
//! handle and receives [`ClientEvent`]s on a channel. The pieces:
//!
//! - [`ejson`] — `$date` / `$binary`, and the `{"$binary":…}` string form of OTR message fields.
//! - [`ddp`] — the frame codec (framing only, no meaning).
//! - [`backoff`] — reconnect pacing.
//! - [`capabilities`] — what the server can do for OTR (version, `OTR_Enable`).
//! - [`compat`] — the server generation and which paths (DDP or REST) carry rooms and DMs.
//! - [`presence`] — reading presence events.
//! - `client` — the connection task, login, REST, rooms.

pub mod backoff;
pub mod capabilities;
mod client;
pub mod compat;
pub mod ddp;
pub mod ejson;
pub mod presence;
#[cfg(test)]
mod robustness;

pub use backoff::{Backoff, BackoffPolicy};
pub use capabilities::ServerCapabilities;
pub use client::{
    rate_limit_wait, Client, ClientConfig, ClientEvent, ClientStats, Credentials, DirectRoom,
    HeartbeatPolicy, LoginInfo, LoginMethod, SessionInfo, SubscriptionId, TwoFactorMethod, UserRef,
};
pub use compat::{ApiPaths, Generation};
pub use ddp::{DdpError, FrameError, ServerFrame};
pub use ejson::EjsonError;
pub use presence::parse_presence_event;

/// Why a client operation failed. Messages never contain secrets or frame content.
#[derive(Debug, thiserror::Error)]
pub enum RcError {
    /// No answer within the method timeout (or not logged in in time).
    #[error("`{method}` got no answer in time")]
    Timeout {
        /// The method (or operation) that timed out.
        method: String,
    },
    /// The server answered the method with an error.
    #[error("`{method}` failed: {error}")]
    Method {
        /// The method.
        method: String,
        /// The server's error (boxed: it is large and errors should be cheap to move).
        error: Box<DdpError>,
    },
    /// The server refused a subscription.
    #[error("subscription `{name}` refused: {error}")]
    NoSub {
        /// The publication.
        name: String,
        /// Why (code and reason).
        error: String,
    },
    /// The connection dropped while waiting, or there is none.
    #[error("not connected to the Rocket.Chat server")]
    NotConnected,
    /// A call of the 7.x OTR relay on a login whose server has none (`Client::call_relay`).
    #[error("`{method}` needs the Rocket.Chat ≤ 7.x OTR relay, which this server does not have")]
    NoRelay {
        /// The method (or REST path) refused.
        method: String,
    },
    /// Credentials refused; the client stopped retrying.
    #[error("login refused: {0}")]
    AuthFailed(String),
    /// A REST call answered with a non-success HTTP status.
    #[error("REST {path} answered HTTP {status}")]
    Http {
        /// The path called.
        path: String,
        /// HTTP status.
        status: u16,
    },
    /// A REST call answered `success: false`.
    #[error("REST {path} failed: {error}")]
    Api {
        /// The path called.
        path: String,
        /// The server's `error` text.
        error: String,
    },
    /// An answer did not have the expected shape.
    #[error("unexpected answer to {0}")]
    Decode(String),
    /// Network / transport failure.
    #[error("connection error: {0}")]
    Io(String),
    /// Bad configuration (e.g. a server URL that is not http(s)).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The client was shut down.
    #[error("the Rocket.Chat client is shut down")]
    Shutdown,
}
