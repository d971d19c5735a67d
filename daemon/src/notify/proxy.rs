//! The client side of `org.freedesktop.Notifications` (the Desktop Notifications spec, 1.2):
//! only the calls and signals the notifier uses.
// The proxy macro generates signal-argument structs and accessors without docs.
#![allow(missing_docs)]

use std::collections::HashMap;
use zbus::zvariant::Value;

/// `org.freedesktop.Notifications` at `/org/freedesktop/Notifications`.
#[zbus::proxy(
    interface = "org.freedesktop.Notifications",
    default_service = "org.freedesktop.Notifications",
    default_path = "/org/freedesktop/Notifications"
)]
pub trait Notifications {
    /// Shows (or replaces) a notification; returns its id.
    #[allow(clippy::too_many_arguments)]
    fn notify(
        &self,
        app_name: &str,
        replaces_id: u32,
        app_icon: &str,
        summary: &str,
        body: &str,
        actions: &[&str],
        hints: HashMap<&str, Value<'_>>,
        expire_timeout: i32,
    ) -> zbus::Result<u32>;

    /// What the server supports; "actions" means buttons work.
    fn get_capabilities(&self) -> zbus::Result<Vec<String>>;

    /// Withdraws a notification.
    fn close_notification(&self, id: u32) -> zbus::Result<()>;

    /// The user chose an action of notification `id`.
    #[zbus(signal)]
    fn action_invoked(&self, id: u32, action_key: String) -> zbus::Result<()>;

    /// Notification `id` went away (expired, dismissed, closed by a call).
    #[zbus(signal)]
    fn notification_closed(&self, id: u32, reason: u32) -> zbus::Result<()>;
}
