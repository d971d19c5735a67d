//! `otrd --demo`: the daemon against an embedded Rocket.Chat simulator (rcsim), logged in as `me`,
//! with a simulated contact `echo` that accepts every invitation and answers every message.
//!
//! The contact is not a script: it is a second engine — the same code as the daemon — logged in
//! as `echo` with auto-accept on, plus a loop that sends `echo: <text>` back for each message in.

use crate::config::{AccountConfig, Config, ServerConfig};
use crate::engine::{self, Direction, EngineConfig, EngineHandle, EventKind, PeerRef};
use crate::rocketchat::Credentials;
use crate::secure::SecretString;
use anyhow::Context;
use tokio::task::JoinHandle;

/// The running simulator and contact. Dropping it stops both.
pub struct Demo {
    /// The embedded server.
    pub sim: rcsim::SimHandle,
    /// The engine config for the user's own daemon (`me` on the simulator).
    pub engine_config: EngineConfig,
    /// The contact's engine.
    echo: EngineHandle,
    tasks: Vec<JoinHandle<()>>,
    /// The demo identities' directory, removed on drop.
    _state: tempfile::TempDir,
}

impl Drop for Demo {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The demo user's name on the simulator.
pub const DEMO_USER: &str = "me";
/// The simulated contact.
pub const ECHO_USER: &str = "echo";

/// Starts rcsim on a free loopback port and the `echo` contact; returns the config for `me`.
pub async fn start() -> anyhow::Result<Demo> {
    let sim = rcsim::start(rcsim::SimConfig::demo(), "127.0.0.1:0".parse()?)
        .await
        .context("starting the embedded Rocket.Chat simulator")?;
    let url = sim.http_url();
    // Demo identities are throwaway: they live in a temporary directory, never in the user's
    // real state directory, and vanish with the demo.
    let state = tempfile::tempdir().context("creating the demo's state directory")?;
    let account = |name: &str, password: &str| EngineConfig {
        state_dir: Some(state.path().join(name)),
        config: Config {
            server: ServerConfig { url: url.clone() },
            account: AccountConfig {
                username: name.to_owned(),
                ..AccountConfig::default()
            },
            ..Config::default()
        },
        credentials: Some(Credentials::Password {
            username: name.to_owned(),
            password: SecretString::from(password),
        }),
    };
    let mut echo_cfg = account(ECHO_USER, "echo");
    echo_cfg.config.policy.auto_accept = true;
    let (echo, echo_task) = engine::spawn(echo_cfg);
    let answer_task = tokio::spawn(answer_every_message(echo.clone()));
    wait_until_ready(&echo).await?;
    tracing::info!(server = %url, "demo: simulated Rocket.Chat with contact `echo` is up");
    Ok(Demo {
        sim,
        engine_config: account(DEMO_USER, "demo"),
        echo,
        tasks: vec![echo_task, answer_task],
        _state: state,
    })
}

/// Waits until the contact is logged in and knows its rooms, so an invitation sent right after
/// `otrd --demo` starts is not lost on a contact that is not listening yet.
async fn wait_until_ready(echo: &EngineHandle) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut ticker = tokio::time::interval(std::time::Duration::from_millis(10));
    loop {
        ticker.tick().await;
        let connected = echo
            .status()
            .await
            .map(|s| s.connection == crate::engine::ConnectionState::Connected);
        let has_rooms = echo
            .list_rooms()
            .await
            .map(|r| !r.is_empty())
            .unwrap_or(false);
        if connected.unwrap_or(false) && has_rooms {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("the demo contact did not log in to the embedded simulator within 10 s");
        }
    }
}

/// The contact's behaviour: every message in gets `echo: <text>` back.
async fn answer_every_message(echo: EngineHandle) {
    let Ok((_, mut events)) = echo.watch(false).await else {
        return;
    };
    loop {
        let event = match events.recv().await {
            Ok(e) => e,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(_) => return,
        };
        if let EventKind::Message {
            peer,
            direction: Direction::In,
            text,
            ..
        } = event.kind
        {
            let reply = SecretString::new(format!("echo: {}", text.expose()));
            if let Err(e) = echo.send(PeerRef::Username(peer), reply).await {
                tracing::warn!(error = %e, "demo contact could not answer");
            }
        }
    }
}

impl Demo {
    /// The contact's engine (tests use it to check what the contact saw).
    pub fn echo(&self) -> &EngineHandle {
        &self.echo
    }
}
