//! Test support shared by the rocketchat integration tests.
#![allow(dead_code)]

pub mod engine;
pub mod mini_ddp;

use otrd::engine::ConnectionState;
use otrd::rocketchat::ClientEvent;
use std::time::Duration;
use tokio::sync::mpsc;

/// How long any single expected event may take.
pub const WAIT: Duration = Duration::from_secs(10);

/// Receives events until `pred` matches one (returned), failing after [`WAIT`].
pub async fn wait_event(
    rx: &mut mpsc::Receiver<ClientEvent>,
    what: &str,
    mut pred: impl FnMut(&ClientEvent) -> bool,
) -> ClientEvent {
    let fut = async {
        while let Some(ev) = rx.recv().await {
            if pred(&ev) {
                return Some(ev);
            }
        }
        None
    };
    match tokio::time::timeout(WAIT, fut).await {
        Ok(Some(ev)) => ev,
        Ok(None) => panic!("event channel closed while waiting for {what}"),
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// Waits for a `Connection` event in `state`; returns its detail.
pub async fn wait_state(rx: &mut mpsc::Receiver<ClientEvent>, state: ConnectionState) -> String {
    let ev = wait_event(
        rx,
        state.as_str(),
        |e| matches!(e, ClientEvent::Connection { state: s, .. } if *s == state),
    )
    .await;
    match ev {
        ClientEvent::Connection { detail, .. } => detail,
        _ => String::new(),
    }
}

/// Waits for the next `LoggedIn`.
pub async fn wait_logged_in(rx: &mut mpsc::Receiver<ClientEvent>) -> otrd::rocketchat::SessionInfo {
    match wait_event(rx, "LoggedIn", |e| matches!(e, ClientEvent::LoggedIn(_))).await {
        ClientEvent::LoggedIn(info) => info,
        _ => unreachable!("filtered above"),
    }
}
