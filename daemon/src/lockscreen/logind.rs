//! Client proxies for the parts of logind (`org.freedesktop.login1`) the watcher uses, and how the
//! daemon's own session object is found.

use zbus::zvariant::OwnedObjectPath;
use zbus::{proxy, Connection};

/// logind's well-known bus name.
pub(crate) const LOGIN1: &str = "org.freedesktop.login1";

/// `org.freedesktop.login1.Manager` at `/org/freedesktop/login1`.
#[proxy(
    interface = "org.freedesktop.login1.Manager",
    default_service = "org.freedesktop.login1",
    default_path = "/org/freedesktop/login1",
    gen_blocking = false
)]
pub(crate) trait Manager {
    /// The session object for a session id (`XDG_SESSION_ID`).
    fn get_session(&self, session_id: &str) -> zbus::Result<OwnedObjectPath>;

    /// The session object a process belongs to.
    #[zbus(name = "GetSessionByPID")]
    fn get_session_by_pid(&self, pid: u32) -> zbus::Result<OwnedObjectPath>;

    /// The user object for a uid.
    fn get_user(&self, uid: u32) -> zbus::Result<OwnedObjectPath>;

    /// Sent with `true` just before the machine suspends or hibernates.
    #[zbus(signal)]
    fn prepare_for_sleep(&self, start: bool) -> zbus::Result<()>;
}

/// `org.freedesktop.login1.Session`.
#[proxy(
    interface = "org.freedesktop.login1.Session",
    default_service = "org.freedesktop.login1",
    gen_blocking = false
)]
pub(crate) trait Session {
    /// Sent when something (`loginctl lock-session`, the desktop) asks the session to lock.
    #[zbus(signal)]
    fn lock(&self) -> zbus::Result<()>;

    /// Sent when the session is to unlock (`loginctl unlock-session`, the desktop).
    #[zbus(signal)]
    fn unlock(&self) -> zbus::Result<()>;

    /// Set by screen lockers that tell logind the session is locked.
    #[zbus(property)]
    fn locked_hint(&self) -> zbus::Result<bool>;
}

/// `org.freedesktop.login1.User`.
#[proxy(
    interface = "org.freedesktop.login1.User",
    default_service = "org.freedesktop.login1",
    gen_blocking = false
)]
pub(crate) trait User {
    /// The user's graphical (or otherwise primary) session: id and object path.
    #[zbus(property)]
    fn display(&self) -> zbus::Result<(String, OwnedObjectPath)>;
}

/// Finds the session whose lock should end OTR sessions.
///
/// In order: the session named by `session_id` (the daemon's `XDG_SESSION_ID` when started from a
/// login shell); the session this process belongs to; and — because a systemd user service runs
/// outside any session — the user's display session. Returns why none was found otherwise.
pub(crate) async fn find_session(
    conn: &Connection,
    session_id: Option<&str>,
) -> Result<OwnedObjectPath, String> {
    let manager = ManagerProxy::new(conn)
        .await
        .map_err(|e| format!("logind manager proxy: {e}"))?;
    let mut tried = Vec::new();
    if let Some(id) = session_id.filter(|id| !id.is_empty()) {
        match manager.get_session(id).await {
            Ok(path) => return Ok(path),
            Err(e) => tried.push(format!("GetSession({id}): {e}")),
        }
    }
    match manager.get_session_by_pid(std::process::id()).await {
        Ok(path) => return Ok(path),
        Err(e) => tried.push(format!("GetSessionByPID: {e}")),
    }
    let uid = rustix::process::getuid().as_raw();
    match user_display_session(conn, &manager, uid).await {
        Ok(path) => return Ok(path),
        Err(e) => tried.push(format!("GetUser({uid}).Display: {e}")),
    }
    Err(tried.join("; "))
}

/// The display session of user `uid`, if logind names one (`/` means none).
async fn user_display_session(
    conn: &Connection,
    manager: &ManagerProxy<'_>,
    uid: u32,
) -> zbus::Result<OwnedObjectPath> {
    let user_path = manager.get_user(uid).await?;
    let user = UserProxy::builder(conn).path(user_path)?.build().await?;
    let (_, session) = user.display().await?;
    if session.as_str() == "/" {
        return Err(zbus::Error::Failure(
            "the user has no display session".into(),
        ));
    }
    Ok(session)
}
