//! Engines in-process against rcsim: their config, waiting for them to log in, and waiting on
//! their events (shared by the engine_* tests).

use otrd::config::{AccountConfig, Config, ServerConfig};
use otrd::engine::{self, EngineConfig, EngineHandle, EventKind, SessionState};
use otrd::rocketchat::Credentials;
use otrd::secure::SecretString;
use std::time::Duration;
use tokio::sync::broadcast;

/// How long any one expected engine event may take.
pub const ENGINE_WAIT: Duration = Duration::from_secs(15);

/// An engine logging in to `url` as `user`; its identity under `state`/`user` when given.
pub fn account(
    url: &str,
    user: &str,
    password: &str,
    auto_accept: bool,
    state: Option<&std::path::Path>,
) -> EngineConfig {
    let mut config = Config {
        server: ServerConfig {
            url: url.to_owned(),
        },
        account: AccountConfig {
            username: user.to_owned(),
            ..AccountConfig::default()
        },
        ..Config::default()
    };
    config.policy.auto_accept = auto_accept;
    EngineConfig {
        config,
        credentials: Some(Credentials::Password {
            username: user.into(),
            password: SecretString::from(password),
        }),
        state_dir: state.map(|d| d.join(user)),
    }
}

/// The next event matching `pred`; fails after [`ENGINE_WAIT`].
pub async fn wait_event(
    rx: &mut broadcast::Receiver<engine::Event>,
    mut pred: impl FnMut(&EventKind) -> bool,
) -> EventKind {
    let deadline = tokio::time::Instant::now() + ENGINE_WAIT;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(e)) if pred(&e.kind) => return e.kind,
            Ok(Ok(_)) => continue,
            Ok(Err(e)) => panic!("event stream failed: {e}"),
            Err(_) => panic!("no matching event within {ENGINE_WAIT:?}"),
        }
    }
}

/// The next session state change to `want` (any peer).
pub async fn wait_session_state(
    rx: &mut broadcast::Receiver<engine::Event>,
    want: SessionState,
) -> EventKind {
    wait_event(
        rx,
        |k| matches!(k, EventKind::State { state, .. } if *state == want),
    )
    .await
}

/// Waits until the engine is logged in and its DM list is loaded (polled: a condition, with a
/// deadline).
pub async fn connected(h: &EngineHandle) {
    let deadline = tokio::time::Instant::now() + ENGINE_WAIT;
    loop {
        let s = h.status().await.expect("status");
        if s.connection == engine::ConnectionState::Connected
            && !h.list_rooms().await.unwrap_or_default().is_empty()
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not connected: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
