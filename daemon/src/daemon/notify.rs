//! Telling systemd where we are (`Type=notify`): only when `NOTIFY_SOCKET` is set.

use sd_notify::NotifyState;

fn send(state: NotifyState<'_>) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    if let Err(e) = sd_notify::notify(false, &[state]) {
        tracing::warn!(error = %e, "could not notify systemd");
    }
}

/// `READY=1`: the socket accepts connections.
pub fn ready() {
    send(NotifyState::Ready);
}

/// `STOPPING=1`: shutdown has begun.
pub fn stopping() {
    send(NotifyState::Stopping);
}
