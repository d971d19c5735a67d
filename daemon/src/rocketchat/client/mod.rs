//! The client handle and its vocabulary. [`Client::spawn`] starts the one task that owns the
//! websocket; the handle talks to it over a command channel and watches its login state. REST
//! calls go straight from the handle (they need only the token).
//!
//! - `auth` — REST login: its body and reading its answers (2FA errors included).
//! - `connection` — the task: reconnect loop, routing of results and stream events, heartbeat.
//! - `handshake` — DDP connect, login (resume; REST login; DDP fallbacks), post-login probes.
//! - `link` — one websocket: pongs, junk frames, size limit.
//! - `login` — login params, digest, error classification, capability probe.
//! - `rest` — REST with the login's headers; URL arithmetic.
//! - `rooms` — DMs, users, presence.
//! - `twofactor` — where second-factor codes come from, and how attempts are paced.

mod auth;
mod connection;
mod handshake;
mod link;
mod login;
mod rest;
mod rooms;
mod twofactor;

use super::backoff::BackoffPolicy;
use super::capabilities::ServerCapabilities;
use super::ddp::DdpError;
use super::RcError;
use crate::engine::ConnectionState;
use crate::secure::SecretString;
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

pub use auth::TwoFactorMethod;
pub use rooms::{DirectRoom, UserRef};

/// How to log in.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// Username and password; after the first login the server's resume token is used for
    /// reconnects (falling back to the password if the token is refused).
    Password {
        /// Login name.
        username: String,
        /// The password (only its SHA-256 digest is sent).
        password: SecretString,
    },
    /// A personal access token (or any resume token) and the user id it belongs to.
    Token {
        /// The user id.
        user_id: String,
        /// The token.
        token: SecretString,
    },
}

/// DDP heartbeat timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartbeatPolicy {
    /// Send our own ping after this long without any frame from the server.
    pub idle: Duration,
    /// Declare the connection dead when nothing arrives this long after our ping.
    pub timeout: Duration,
}

impl Default for HeartbeatPolicy {
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(25),
            timeout: Duration::from_secs(15),
        }
    }
}

/// Everything [`Client::spawn`] needs.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `https://host` (DDP at `wss://host/websocket`) or `http://127.0.0.1:port` for tests.
    pub server_url: String,
    /// How to log in.
    pub credentials: Credentials,
    /// How long one method call (or one handshake step) may take.
    pub method_timeout: Duration,
    /// Largest websocket message accepted; bigger ones are refused and counted (the
    /// connection is then re-established, since the stream cannot be resynchronised).
    pub max_frame_bytes: usize,
    /// Reconnect pacing.
    pub backoff: BackoffPolicy,
    /// Heartbeat timing.
    pub heartbeat: HeartbeatPolicy,
    /// `account.totp_command`: prints the current TOTP code. Without it, codes are asked from
    /// the user ([`Client::submit_code`]).
    pub totp_command: Option<crate::config::SecretCommand>,
}

impl ClientConfig {
    /// Defaults: 20 s method timeout, 16 MiB frames, default backoff and heartbeat.
    pub fn new(server_url: impl Into<String>, credentials: Credentials) -> Self {
        Self {
            server_url: server_url.into(),
            credentials,
            method_timeout: Duration::from_secs(20),
            // Bounded, but large enough for `rooms/get` of an account with 10,000+ DMs (~3 MB).
            max_frame_bytes: 16 * 1024 * 1024,
            backoff: BackoffPolicy::default(),
            heartbeat: HeartbeatPolicy::default(),
            totp_command: None,
        }
    }
}

/// Who we are logged in as, and what the server can do.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionInfo {
    /// Our user id.
    pub user_id: String,
    /// Our username.
    pub username: String,
    /// The server's capabilities, probed at this login.
    pub server: ServerCapabilities,
    /// How we logged in.
    pub login: LoginInfo,
}

/// What credential a login used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LoginMethod {
    /// Not logged in yet.
    #[default]
    None,
    /// Username and password.
    Password,
    /// Username and password checked by the server's LDAP.
    Ldap,
    /// A personal access token (or another resume token) from the config.
    Token,
}

/// How the daemon logged in, for status.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LoginInfo {
    /// The credential.
    pub method: LoginMethod,
    /// The password went to REST `/api/v1/login` (then DDP resumed with its token); false: DDP
    /// login (the fallback for servers without REST login).
    pub rest: bool,
    /// The second factor the server asked for, if any.
    pub two_factor: Option<TwoFactorMethod>,
}

impl LoginInfo {
    /// For people: `password (REST login, then DDP resume); 2FA totp`.
    pub fn describe(&self) -> String {
        let mut s = match (self.method, self.rest) {
            (LoginMethod::None, _) => return String::new(),
            (LoginMethod::Password, true) => "password (REST login, then DDP resume)".to_owned(),
            (LoginMethod::Password, false) => "password (DDP login; no REST login)".to_owned(),
            (LoginMethod::Ldap, true) => "LDAP (REST login, then DDP resume)".to_owned(),
            (LoginMethod::Ldap, false) => "LDAP (DDP login; no REST login)".to_owned(),
            (LoginMethod::Token, _) => "token (DDP resume)".to_owned(),
        };
        if let Some(m) = self.two_factor {
            s.push_str(&format!("; two-factor {}", m.as_str()));
        }
        s
    }
}

/// A subscription, stable across reconnects (also its DDP sub id).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscriptionId(pub String);

/// What the connection task reports.
#[derive(Debug, Clone)]
pub enum ClientEvent {
    /// Every connection state transition.
    Connection {
        /// New state.
        state: ConnectionState,
        /// Why, for people.
        detail: String,
    },
    /// After every (re)login, once subscriptions were re-issued.
    LoggedIn(SessionInfo),
    /// Every `changed` frame on a `stream-*` collection.
    Stream {
        /// The stream (`stream-notify-user`, `stream-room-messages`, ...).
        collection: String,
        /// `fields.eventName`.
        event_name: String,
        /// `fields.args`.
        args: Vec<Value>,
    },
    /// The server ended (or, after a reconnect, refused) a subscription that had been ready.
    SubscriptionLost {
        /// Which.
        id: SubscriptionId,
        /// Publication name.
        name: String,
        /// Why.
        error: String,
    },
}

/// Counters for things the client survived.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Websocket messages refused for exceeding `max_frame_bytes`.
    pub oversized_frames: u64,
    /// Frames that were not valid DDP (skipped).
    pub malformed_frames: u64,
    /// Successful logins (first one included).
    pub logins: u64,
}

#[derive(Debug, Default)]
struct Counters {
    oversized: AtomicU64,
    malformed: AtomicU64,
    logins: AtomicU64,
}

/// What the task publishes about the link; callers wait on it.
#[derive(Debug, Clone, Default)]
struct LinkState {
    session: Option<SessionInfo>,
    /// A login waits for a two-factor code (method, what the prompt says).
    code_wanted: Option<(TwoFactorMethod, String)>,
    auth_failed: Option<String>,
    shut_down: bool,
}

/// REST credentials from the current login.
#[derive(Debug, Clone)]
struct RestAuth {
    user_id: String,
    token: SecretString,
}

/// Requests to the connection task; each carries its reply channel.
enum Command {
    Call {
        method: String,
        params: Vec<Value>,
        /// A method of the 7.x OTR relay: sent only on a login whose server has it.
        relay_only: bool,
        reply: oneshot::Sender<Result<Option<Value>, RcError>>,
    },
    Subscribe {
        id: SubscriptionId,
        name: String,
        params: Vec<Value>,
        reply: oneshot::Sender<Result<(), RcError>>,
    },
    Unsubscribe(SubscriptionId),
}

struct Inner {
    commands: mpsc::Sender<Command>,
    codes: mpsc::Sender<twofactor::Submission>,
    state: watch::Receiver<LinkState>,
    shutdown: watch::Sender<bool>,
    auth: Arc<RwLock<Option<RestAuth>>>,
    /// `None` only if the TLS backend could not be initialised (REST then fails with a
    /// config error).
    http: Option<reqwest::Client>,
    base_url: String,
    method_timeout: Duration,
    next_sub: AtomicU64,
    counters: Arc<Counters>,
    /// A DDP method answered "method not found": rooms and DMs go over REST from then on.
    method_missing: std::sync::atomic::AtomicBool,
}

/// A cloneable handle to the connection task.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("server", &self.inner.base_url)
            .finish()
    }
}

/// Most retries of one rate-limited call before giving up with a timeout.
const RATE_LIMIT_RETRIES: u32 = 20;

impl Client {
    /// Starts the connection task. Events arrive on the receiver; drop it only when done.
    /// A `server_url` that is not http(s) ends the task at once with a `Disconnected` event
    /// saying why; calls then fail with [`RcError::AuthFailed`] carrying that reason.
    pub fn spawn(cfg: ClientConfig) -> (Client, mpsc::Receiver<ClientEvent>) {
        connection::spawn(cfg)
    }

    /// Calls a DDP method. Waits (up to the method timeout) until logged in; retries
    /// `too-many-requests` after `details.timeToReset`; fails with [`RcError::NotConnected`] if
    /// the connection drops meanwhile (the caller decides whether to retry).
    pub async fn call(&self, method: &str, params: Vec<Value>) -> Result<Option<Value>, RcError> {
        self.call_with(method, params, false, true).await
    }

    /// [`Client::call`] without its retries of `too-many-requests`: the error comes back to the
    /// caller, who keeps its own account of the server's budget (the realtime relays' pacer
    /// must see every refusal, and a retry is a call the server counts).
    pub async fn call_once(
        &self,
        method: &str,
        params: Vec<Value>,
    ) -> Result<Option<Value>, RcError> {
        self.call_with(method, params, false, false).await
    }

    /// [`Client::call`] for a method of the Rocket.Chat ≤ 7.x OTR relay (`sendMessage` of an OTR
    /// message, `stream-notify-user` `<uid>/otr`, `updateOTRAck`, ...). The connection task
    /// checks the capabilities of the login the call would go out on and refuses it there, unsent,
    /// with [`RcError::NoRelay`] when that server has no relay — so a call that waited through a
    /// reconnect never reaches a server that was upgraded to 8.x (or had `OTR_Enable` switched
    /// off) meanwhile.
    pub async fn call_relay(
        &self,
        method: &str,
        params: Vec<Value>,
    ) -> Result<Option<Value>, RcError> {
        self.call_with(method, params, true, true).await
    }

    async fn call_with(
        &self,
        method: &str,
        params: Vec<Value>,
        relay_only: bool,
        retry_rate_limits: bool,
    ) -> Result<Option<Value>, RcError> {
        let mut attempts = 0;
        loop {
            self.wait_logged_in(method).await?;
            let (reply, rx) = oneshot::channel();
            let cmd = Command::Call {
                method: method.to_owned(),
                params: params.clone(),
                relay_only,
                reply,
            };
            self.inner
                .commands
                .send(cmd)
                .await
                .map_err(|_| RcError::Shutdown)?;
            let outcome = tokio::time::timeout(self.inner.method_timeout, rx)
                .await
                .map_err(|_| RcError::Timeout {
                    method: method.to_owned(),
                })?
                .map_err(|_| RcError::NotConnected)?;
            match outcome {
                Err(RcError::Method { error, .. })
                    if retry_rate_limits && error.is_rate_limited() =>
                {
                    attempts += 1;
                    if attempts > RATE_LIMIT_RETRIES {
                        return Err(RcError::Timeout {
                            method: method.to_owned(),
                        });
                    }
                    let wait = rate_limit_wait(&error);
                    tracing::debug!(
                        method,
                        wait_ms = wait.as_millis() as u64,
                        "rate limited; retrying"
                    );
                    tokio::time::sleep(wait).await;
                }
                other => return other,
            }
        }
    }

    /// Subscribes; the subscription is re-issued after every reconnect until
    /// [`Client::unsubscribe`]. Fails with [`RcError::NoSub`] if the server refuses it.
    pub async fn subscribe(
        &self,
        name: &str,
        params: Vec<Value>,
    ) -> Result<SubscriptionId, RcError> {
        self.wait_logged_in(name).await?;
        let n = self.inner.next_sub.fetch_add(1, Ordering::Relaxed);
        let id = SubscriptionId(format!("sub-{n}"));
        let (reply, rx) = oneshot::channel();
        let cmd = Command::Subscribe {
            id: id.clone(),
            name: name.to_owned(),
            params,
            reply,
        };
        self.inner
            .commands
            .send(cmd)
            .await
            .map_err(|_| RcError::Shutdown)?;
        match tokio::time::timeout(self.inner.method_timeout, rx).await {
            Ok(Ok(Ok(()))) => Ok(id),
            Ok(Ok(Err(e))) => Err(e),
            Ok(Err(_)) => Err(RcError::Shutdown),
            Err(_) => {
                // Do not leave a half-made subscription to be re-issued forever.
                self.unsubscribe(id).await;
                Err(RcError::Timeout {
                    method: name.to_owned(),
                })
            }
        }
    }

    /// Ends a subscription and forgets it.
    pub async fn unsubscribe(&self, id: SubscriptionId) {
        // A closed channel means the task is gone, and the subscription with it.
        let _ = self.inner.commands.send(Command::Unsubscribe(id)).await;
    }

    /// The current login, if logged in right now.
    pub fn session(&self) -> Option<SessionInfo> {
        self.inner.state.borrow().session.clone()
    }

    /// The two-factor method a login waits for a code for, and the prompt; `None` when no code
    /// is wanted.
    pub fn code_wanted(&self) -> Option<(TwoFactorMethod, String)> {
        self.inner.state.borrow().code_wanted.clone()
    }

    /// Hands in a two-factor code for the login waiting for one; answers once the server took
    /// it (`Ok`, for people) or refused it (`Err` with why — a refused code is never sent again).
    pub async fn submit_code(&self, code: SecretString) -> Result<String, String> {
        if self.code_wanted().is_none() {
            return Err("no two-factor code is asked for right now".into());
        }
        let (reply, rx) = oneshot::channel();
        let sub = twofactor::Submission { code, reply };
        // Full means another code is being handed in right now.
        if self.inner.codes.try_send(sub).is_err() {
            return Err("another code is being tried; wait for its outcome".into());
        }
        // The attempt is one REST round trip; the bound covers a slow server.
        match tokio::time::timeout(self.inner.method_timeout * 2, rx).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Err("the login was interrupted; see the connection state".into()),
            Err(_) => Err("the server did not answer in time; see the connection state".into()),
        }
    }

    /// Which paths carry rooms and DMs now (see [`crate::rocketchat::compat`]).
    pub fn api_paths(&self) -> crate::rocketchat::ApiPaths {
        let gen9 = self
            .session()
            .is_some_and(|s| s.server.generation == crate::rocketchat::Generation::RestOnly);
        crate::rocketchat::ApiPaths {
            rest_only: gen9 || self.inner.method_missing.load(Ordering::Relaxed),
        }
    }

    /// Whether a DDP method answered "method not found" (sticky: servers do not grow methods
    /// back).
    pub fn method_missing(&self) -> bool {
        self.inner.method_missing.load(Ordering::Relaxed)
    }

    /// Counters of refused and malformed frames and logins.
    pub fn stats(&self) -> ClientStats {
        let c = &self.inner.counters;
        ClientStats {
            oversized_frames: c.oversized.load(Ordering::Relaxed),
            malformed_frames: c.malformed.load(Ordering::Relaxed),
            logins: c.logins.load(Ordering::Relaxed),
        }
    }

    /// Stops the connection task and waits (briefly) for it to finish.
    pub async fn shutdown(&self) {
        let _ = self.inner.shutdown.send(true);
        let mut state = self.inner.state.clone();
        let _ = tokio::time::timeout(Duration::from_secs(5), state.wait_for(|s| s.shut_down)).await;
    }

    async fn wait_logged_in(&self, what: &str) -> Result<(), RcError> {
        let mut state = self.inner.state.clone();
        let ready =
            state.wait_for(|s| s.session.is_some() || s.auth_failed.is_some() || s.shut_down);
        let s = match tokio::time::timeout(self.inner.method_timeout, ready).await {
            Err(_) => {
                return Err(RcError::Timeout {
                    method: what.to_owned(),
                })
            }
            Ok(Err(_)) => return Err(RcError::Shutdown),
            Ok(Ok(s)) => s.clone(),
        };
        if let Some(why) = s.auth_failed {
            return Err(RcError::AuthFailed(why));
        }
        if s.shut_down {
            return Err(RcError::Shutdown);
        }
        Ok(())
    }
}

/// How long to wait before retrying a rate-limited call: `timeToReset`, bounded.
pub fn rate_limit_wait(error: &DdpError) -> Duration {
    let ms = error.time_to_reset_ms().unwrap_or(1000).clamp(50, 60_000);
    Duration::from_millis(ms)
}
