//! The lock-screen watcher against a real `dbus-daemon` on a private bus, with the fake logind
//! (`org.freedesktop.login1`) of `otrd_e2e::logind`: each of `Lock`, `LockedHint = true` and
//! `PrepareForSleep(true)` must reach the channel. Skips (with a message) when `dbus-daemon` is not
//! installed — Debian package `dbus`.

use std::time::Duration;

use otrd::lockscreen::{watch, LockReason};
use otrd_e2e::logind::{
    serve_fake_logind, start_bus, FakeManager, FakeSession, MANAGER_PATH, SESSION_PATH,
};
use tokio::sync::mpsc;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(10);

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

    // And the unlocks: the session's `Unlock` signal and `LockedHint` turning false.
    FakeSession::unlock(session.signal_emitter())
        .await
        .expect("emit Unlock");
    let unlock = next_reason(&mut rx).await;
    assert_eq!(unlock, LockReason::Unlock);
    assert!(unlock.is_unlock());
    session.get_mut().await.locked_hint = false;
    session
        .get()
        .await
        .locked_hint_changed(session.signal_emitter())
        .await
        .expect("emit LockedHint change");
    assert_eq!(next_reason(&mut rx).await, LockReason::UnlockedHint);
    assert!(!LockReason::Sleep.is_unlock() && !LockReason::LockedHint.is_unlock());
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
