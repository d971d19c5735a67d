//! Desktop notifications for incoming invitations, sent by the daemon so they show whichever
//! front-ends are open (or none).
//!
//! [`spawn`] connects to the session bus, watches the engine's events, and on each invitation
//! calls `org.freedesktop.Notifications.Notify` with the peer's name. When the notification
//! server lists the "actions" capability the notification carries Accept and Decline buttons;
//! choosing one accepts or declines through the engine, like `otrctl accept` would. A
//! notification is withdrawn once its invitation is answered elsewhere.
//!
//! - [`proxy`] — the D-Bus interface (client side);
//! - `task` — the loop joining engine events and notification signals.
//!
//! Switched by `[notifications] enabled` in the config; the daemon goes on without
//! notifications when there is no session bus.

pub mod proxy;
mod task;

use crate::engine::{EngineError, EngineHandle};
use tokio::task::JoinHandle;

/// Why the notifier could not start.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The bus address is malformed, or the bus could not be reached.
    #[error("connecting to the D-Bus session bus: {0}")]
    Bus(#[from] zbus::Error),
    /// The engine is gone.
    #[error("watching the engine's events: {0}")]
    Engine(#[from] EngineError),
}

/// Starts the notifier on the session bus (`bus_address`, or the standard session bus from
/// `$DBUS_SESSION_BUS_ADDRESS` when `None`). Returns once connected and watching; the task runs
/// until the engine shuts down.
pub async fn spawn(
    engine: EngineHandle,
    bus_address: Option<String>,
) -> Result<JoinHandle<()>, NotifyError> {
    let connection = match bus_address {
        Some(address) => {
            zbus::connection::Builder::address(address.as_str())?
                .build()
                .await?
        }
        None => zbus::Connection::session().await?,
    };
    let proxy = proxy::NotificationsProxy::new(&connection).await?;
    // Subscribe before watching the engine so no button press can be missed.
    let actions = proxy.receive_action_invoked().await?;
    let closed = proxy.receive_notification_closed().await?;
    let (_, events) = engine.watch(false).await?;
    tracing::info!("desktop notifications for invitations are on");
    Ok(tokio::spawn(task::run(
        task::Notifier::new(engine, proxy),
        events,
        actions,
        closed,
    )))
}
