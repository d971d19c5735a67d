//! A fake logind (`org.freedesktop.login1`) on a private `dbus-daemon`, for tests of the daemon's
//! lock-screen teardown: start the bus ([`start_bus`], `None` when `dbus-daemon` is not installed —
//! Debian package `dbus`), serve the fake ([`serve_fake_logind`]) and emit its session's `Lock`
//! ([`emit_lock`]). Run otrd with `DBUS_SYSTEM_BUS_ADDRESS` set to [`Bus::address`]. The watcher's own
//! test (`tests/lockscreen_logind.rs`) uses the same fake.
#![allow(missing_docs)]

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::timeout;
use zbus::object_server::SignalEmitter;
use zbus::zvariant::OwnedObjectPath;
use zbus::{interface, Connection};

pub const MANAGER_PATH: &str = "/org/freedesktop/login1";
pub const SESSION_PATH: &str = "/org/freedesktop/login1/session/_31";
const WAIT: Duration = Duration::from_secs(10);

/// A private bus: the daemon process and the directory holding its socket and config.
pub struct Bus {
    /// Killed on drop.
    _daemon: Child,
    /// Removed on drop.
    _dir: tempfile::TempDir,
    /// Where clients connect.
    pub address: String,
}

/// Starts `dbus-daemon` with a config that allows everything; `None` when it is not installed.
pub async fn start_bus() -> Option<Bus> {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("bus.conf");
    let socket = dir.path().join("bus.sock");
    std::fs::write(
        &config,
        format!(
            r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
            socket.display()
        ),
    )
    .expect("write bus config");
    let spawned = Command::new("dbus-daemon")
        .arg(format!("--config-file={}", config.display()))
        .args(["--nofork", "--print-address=1"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let mut daemon = match spawned {
        Ok(child) => child,
        Err(e) => {
            println!("skipping: cannot run dbus-daemon ({e}); install the Debian package `dbus`");
            return None;
        }
    };
    let stdout = daemon.stdout.take().expect("piped stdout");
    let mut line = String::new();
    timeout(WAIT, BufReader::new(stdout).read_line(&mut line))
        .await
        .expect("dbus-daemon printed its address in time")
        .expect("read dbus-daemon address");
    let address = line.trim().to_owned();
    assert!(address.starts_with("unix:"), "address {address:?}");
    Some(Bus {
        _daemon: daemon,
        _dir: dir,
        address,
    })
}

/// The fake `org.freedesktop.login1.Manager`.
pub struct FakeManager;

#[interface(name = "org.freedesktop.login1.Manager")]
impl FakeManager {
    async fn get_session(&self, _session_id: &str) -> OwnedObjectPath {
        OwnedObjectPath::try_from(SESSION_PATH).expect("valid path")
    }

    #[zbus(name = "GetSessionByPID")]
    async fn get_session_by_pid(&self, _pid: u32) -> OwnedObjectPath {
        OwnedObjectPath::try_from(SESSION_PATH).expect("valid path")
    }

    #[zbus(signal)]
    pub async fn prepare_for_sleep(emitter: &SignalEmitter<'_>, start: bool) -> zbus::Result<()>;
}

/// The fake `org.freedesktop.login1.Session` for session 1.
pub struct FakeSession {
    /// The `LockedHint` property; set it, then emit `locked_hint_changed`.
    pub locked_hint: bool,
}

#[interface(name = "org.freedesktop.login1.Session")]
impl FakeSession {
    #[zbus(property)]
    async fn locked_hint(&self) -> bool {
        self.locked_hint
    }

    #[zbus(signal)]
    pub async fn lock(emitter: &SignalEmitter<'_>) -> zbus::Result<()>;

    #[zbus(signal)]
    pub async fn unlock(emitter: &SignalEmitter<'_>) -> zbus::Result<()>;
}

/// Serves the fake logind on the bus under its real name.
pub async fn serve_fake_logind(address: &str) -> Connection {
    zbus::connection::Builder::address(address)
        .expect("bus address")
        .name("org.freedesktop.login1")
        .expect("well-known name")
        .serve_at(MANAGER_PATH, FakeManager)
        .expect("serve manager")
        .serve_at(SESSION_PATH, FakeSession { locked_hint: false })
        .expect("serve session")
        .build()
        .await
        .expect("fake logind connects")
}

/// Emits the fake session's `Lock` signal (what `loginctl lock-session` makes logind send).
pub async fn emit_lock(logind: &Connection) -> zbus::Result<()> {
    let session = logind
        .object_server()
        .interface::<_, FakeSession>(SESSION_PATH)
        .await?;
    FakeSession::lock(session.signal_emitter()).await
}
