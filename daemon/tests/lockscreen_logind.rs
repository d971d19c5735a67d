//! The lock-screen watcher against a real `dbus-daemon` on a private bus, with a fake logind
//! (`org.freedesktop.login1`) served by this test: each of `Lock`, `LockedHint = true` and
//! `PrepareForSleep(true)` must reach the channel. Skips (with a message) when `dbus-daemon` is not
//! installed — Debian package `dbus`.

use std::process::Stdio;
use std::time::Duration;

use otrd::lockscreen::{watch, LockReason};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::time::timeout;
use zbus::object_server::SignalEmitter;
use zbus::zvariant::OwnedObjectPath;
use zbus::{interface, Connection};

const MANAGER_PATH: &str = "/org/freedesktop/login1";
const SESSION_PATH: &str = "/org/freedesktop/login1/session/_31";
const WAIT: Duration = Duration::from_secs(10);

/// A private bus: the daemon process and the directory holding its socket and config.
struct Bus {
    /// Killed on drop.
    _daemon: Child,
    /// Removed on drop.
    _dir: tempfile::TempDir,
    /// Where clients connect.
    address: String,
}

/// Starts `dbus-daemon` with a config that allows everything; `None` when it is not installed.
async fn start_bus() -> Option<Bus> {
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
struct FakeManager;

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
    async fn prepare_for_sleep(emitter: &SignalEmitter<'_>, start: bool) -> zbus::Result<()>;
}

/// The fake `org.freedesktop.login1.Session` for session 1.
struct FakeSession {
    locked_hint: bool,
}

#[interface(name = "org.freedesktop.login1.Session")]
impl FakeSession {
    #[zbus(property)]
    async fn locked_hint(&self) -> bool {
        self.locked_hint
    }

    #[zbus(signal)]
    async fn lock(emitter: &SignalEmitter<'_>) -> zbus::Result<()>;
}

/// Serves the fake logind on the bus under its real name.
async fn serve_fake_logind(address: &str) -> Connection {
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

async fn next_reason(rx: &mut mpsc::Receiver<LockReason>) -> LockReason {
    timeout(WAIT, rx.recv())
        .await
        .expect("a lock reason arrives in time")
        .expect("watcher still running")
}

#[tokio::test]
async fn lock_locked_hint_and_sleep_each_reach_the_channel() {
    let Some(bus) = start_bus().await else { return };
    let logind = serve_fake_logind(&bus.address).await;
    let (tx, mut rx) = mpsc::channel(8);
    let handle = watch(Some(bus.address.clone()), tx)
        .await
        .expect("watcher starts");
    assert_eq!(handle.session_path(), Some(SESSION_PATH));

    let server = logind.object_server();
    let session = server
        .interface::<_, FakeSession>(SESSION_PATH)
        .await
        .expect("session iface");
    let manager = server
        .interface::<_, FakeManager>(MANAGER_PATH)
        .await
        .expect("manager iface");

    FakeSession::lock(session.signal_emitter())
        .await
        .expect("emit Lock");
    assert_eq!(next_reason(&mut rx).await, LockReason::Lock);

    session.get_mut().await.locked_hint = true;
    session
        .get()
        .await
        .locked_hint_changed(session.signal_emitter())
        .await
        .expect("emit LockedHint change");
    assert_eq!(next_reason(&mut rx).await, LockReason::LockedHint);

    // Waking up (`false`) is not a lock; only the `true` that follows must arrive.
    FakeManager::prepare_for_sleep(manager.signal_emitter(), false)
        .await
        .expect("emit PrepareForSleep(false)");
    FakeManager::prepare_for_sleep(manager.signal_emitter(), true)
        .await
        .expect("emit PrepareForSleep(true)");
    assert_eq!(next_reason(&mut rx).await, LockReason::Sleep);
    assert!(rx.try_recv().is_err(), "no extra events");
    assert!(handle.is_running());
}

#[tokio::test]
async fn unreachable_bus_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().expect("temp dir");
    let address = format!("unix:path={}", dir.path().join("absent.sock").display());
    let (tx, _rx) = mpsc::channel(1);
    let err = watch(Some(address), tx).await.expect_err("no bus there");
    assert!(err.to_string().contains("connecting"), "{err}");
    let (tx, _rx) = mpsc::channel(1);
    assert!(watch(Some("not an address".into()), tx).await.is_err());
}
