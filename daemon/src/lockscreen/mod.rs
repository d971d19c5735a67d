//! Lock-screen teardown: watches logind over D-Bus and ends every session on lock or sleep; the
//! daemon stays locked (no session starts or is accepted) until logind's unlock.
//!
//! [`watch`] connects to the system bus (or a given address, for tests), finds the user's session
//! object in logind and subscribes to three events, each of which means "the user walked away":
//! the session's `Lock` signal, its `LockedHint` property turning true (set by lockers that tell
//! logind), and the manager's `PrepareForSleep(true)`. Each sends a [`LockReason`] on the caller's
//! channel; the engine answers with `EngineHandle::lock()`. The session's `Unlock` signal and
//! `LockedHint` turning false send the unlock reasons, answered with `EngineHandle::unlock()`.
//! Lockers that tell logind nothing (plain `swaylock`, `i3lock`) are wired with `otrctl lock` and
//! `otrctl unlock` instead.
//!
//! Subscriptions are in place when `watch` returns, so no event after that is missed.

mod logind;

use std::fmt;
use std::pin::Pin;

use futures::stream::{select_all, Stream, StreamExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use zbus::fdo::PropertiesProxy;
use zbus::zvariant::Value;
use zbus::Connection;

use logind::{ManagerProxy, SessionProxy, LOGIN1};

/// Why the lock state changes: a lock (sessions end now, and none starts until the unlock) or an
/// unlock ([`LockReason::is_unlock`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockReason {
    /// logind's `Lock` signal for the user's session (`loginctl lock-session`, the desktop).
    Lock,
    /// The session's `LockedHint` became true (a screen locker reported itself).
    LockedHint,
    /// The machine is about to suspend or hibernate (`PrepareForSleep(true)`).
    Sleep,
    /// logind's `Unlock` signal for the user's session (`loginctl unlock-session`, the desktop).
    Unlock,
    /// The session's `LockedHint` became false (the screen locker let the user in).
    UnlockedHint,
}

impl LockReason {
    /// A short name for logs and events.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Lock => "lock",
            Self::LockedHint => "locked_hint",
            Self::Sleep => "sleep",
            Self::Unlock => "unlock",
            Self::UnlockedHint => "unlocked_hint",
        }
    }

    /// Whether this ends a lock rather than starting one. Waking from sleep is not an unlock: the
    /// machine comes back to its lock screen, and its unlock is what counts.
    pub fn is_unlock(self) -> bool {
        matches!(self, Self::Unlock | Self::UnlockedHint)
    }
}

impl fmt::Display for LockReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why watching logind could not start. The daemon logs it and runs without the watcher.
#[derive(Debug, thiserror::Error)]
pub enum LockscreenError {
    /// The bus address is malformed or the bus is unreachable.
    #[error("connecting to the D-Bus {bus}: {source}")]
    Connect {
        /// The address, or "system bus".
        bus: String,
        /// The cause.
        #[source]
        source: zbus::Error,
    },
    /// Subscribing to logind's signals failed.
    #[error("subscribing to logind {what}: {source}")]
    Subscribe {
        /// Which subscription.
        what: &'static str,
        /// The cause.
        #[source]
        source: zbus::Error,
    },
}

/// The running watcher. Dropping it stops watching.
pub struct WatchHandle {
    /// The task forwarding events to the channel.
    task: JoinHandle<()>,
    /// The logind session object watched, if one was found.
    session: Option<String>,
    /// Why no session object is watched (only sleep is then); `None` when one is.
    session_error: Option<String>,
    /// Keeps the bus connection (and so the subscriptions) alive with the handle.
    _connection: Connection,
}

impl WatchHandle {
    /// The logind session object path watched for lock events, if one was found.
    pub fn session_path(&self) -> Option<&str> {
        self.session.as_deref()
    }

    /// Why no session is watched (only `PrepareForSleep` then triggers), if none is.
    pub fn session_error(&self) -> Option<&str> {
        self.session_error.as_deref()
    }

    /// True while the watcher task runs (it ends when the bus closes or the receiver is dropped).
    pub fn is_running(&self) -> bool {
        !self.task.is_finished()
    }

    /// Stops watching.
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for WatchHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl fmt::Debug for WatchHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatchHandle")
            .field("session", &self.session)
            .field("running", &self.is_running())
            .finish()
    }
}

/// One boxed stream of lock events (`None` items are events that are not locks).
type Events = Pin<Box<dyn Stream<Item = Option<LockReason>> + Send>>;

/// Starts watching logind on `bus_address` (the system bus when `None`) and sends a
/// [`LockReason`] on `tx` for every lock or sleep. The session is the one named by
/// `XDG_SESSION_ID`, else this process's, else the user's display session; when none is found only
/// sleep is watched (see [`WatchHandle::session_error`]).
pub async fn watch(
    bus_address: Option<String>,
    tx: mpsc::Sender<LockReason>,
) -> Result<WatchHandle, LockscreenError> {
    let conn = connect(bus_address.as_deref()).await?;
    let sub = |what| move |source| LockscreenError::Subscribe { what, source };

    let manager = ManagerProxy::new(&conn).await.map_err(sub("manager"))?;
    let sleep = manager
        .receive_prepare_for_sleep()
        .await
        .map_err(sub("PrepareForSleep"))?
        .map(|signal| match signal.args() {
            Ok(args) if args.start => Some(LockReason::Sleep),
            _ => None,
        });
    let mut streams: Vec<Events> = vec![Box::pin(sleep)];

    let session_id = std::env::var("XDG_SESSION_ID").ok();
    let (session, session_error) = match logind::find_session(&conn, session_id.as_deref()).await {
        Ok(path) => {
            streams.extend(session_streams(&conn, &path).await?);
            (Some(path.to_string()), None)
        }
        Err(why) => {
            tracing::warn!(error = %why, "no logind session found; only suspend ends sessions");
            (None, Some(why))
        }
    };
    tracing::info!(session = ?session, "watching logind for lock and sleep");

    let task = tokio::spawn(forward(select_all(streams), tx));
    Ok(WatchHandle {
        task,
        session,
        session_error,
        _connection: conn,
    })
}

/// Opens the bus connection.
async fn connect(bus_address: Option<&str>) -> Result<Connection, LockscreenError> {
    let bus = bus_address.unwrap_or("system bus").to_owned();
    let built = match bus_address {
        Some(address) => zbus::connection::Builder::address(address),
        None => zbus::connection::Builder::system(),
    };
    let conn = match built {
        Ok(builder) => builder.build().await,
        Err(e) => Err(e),
    };
    conn.map_err(|source| LockscreenError::Connect { bus, source })
}

/// Subscriptions to the session's `Lock` signal and its `LockedHint` changes.
async fn session_streams(
    conn: &Connection,
    path: &zbus::zvariant::OwnedObjectPath,
) -> Result<Vec<Events>, LockscreenError> {
    let sub = |what| move |source| LockscreenError::Subscribe { what, source };
    let session = SessionProxy::builder(conn)
        .path(path.clone())
        .map_err(sub("session"))?
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
        .map_err(sub("session"))?;
    let lock = session
        .receive_lock()
        .await
        .map_err(sub("Lock"))?
        .map(|_| Some(LockReason::Lock));
    let unlock = session
        .receive_unlock()
        .await
        .map_err(sub("Unlock"))?
        .map(|_| Some(LockReason::Unlock));

    let properties = PropertiesProxy::builder(conn)
        .destination(LOGIN1)
        .and_then(|b| b.path(path.clone()))
        .map_err(sub("session properties"))?
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
        .map_err(sub("session properties"))?;
    let hint = properties
        .receive_properties_changed()
        .await
        .map_err(sub("PropertiesChanged"))?
        .map(|signal| {
            let args = signal.args().ok()?;
            if args.interface_name.as_str() != "org.freedesktop.login1.Session" {
                return None;
            }
            match args.changed_properties.get("LockedHint") {
                Some(Value::Bool(true)) => Some(LockReason::LockedHint),
                Some(Value::Bool(false)) => Some(LockReason::UnlockedHint),
                _ => None,
            }
        });
    Ok(vec![Box::pin(lock), Box::pin(unlock), Box::pin(hint)])
}

/// Sends every lock event on `tx` until the bus closes or nobody listens.
async fn forward(
    mut events: impl Stream<Item = Option<LockReason>> + Unpin,
    tx: mpsc::Sender<LockReason>,
) {
    while let Some(event) = events.next().await {
        let Some(reason) = event else { continue };
        tracing::info!(reason = %reason, "lock state event from logind");
        if tx.send(reason).await.is_err() {
            tracing::debug!("lock receiver dropped; stopping the logind watcher");
            return;
        }
    }
    tracing::warn!("logind event streams ended (bus closed); lock events are no longer seen");
}
