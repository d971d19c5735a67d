//! The `otrd` program: startup, serving and graceful shutdown, as a library function so tests can
//! run the whole daemon in-process.
//!
//! Startup: load the config, take or bind the socket, start the engine, serve the API, tell
//! systemd `READY=1`. Shutdown (SIGTERM/SIGINT, or the future given to [`run_until`]): end every
//! session first — keys are wiped before anything else happens — then stop the server, then remove
//! the socket file we bound.

mod credentials;
mod lock;
mod logging;
mod notify;
mod signals;

pub use logging::init_tracing;

use crate::api::{self, ServerSocket};
use crate::config::{self, paths};
use crate::engine::{self, EngineConfig};
use anyhow::Context;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::oneshot;

/// How long shutdown waits for the engine to end every session before going on regardless.
const END_ALL_TIMEOUT: Duration = Duration::from_secs(10);

/// What `otrd`'s command line asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// `--config PATH`; default `$XDG_CONFIG_HOME/otrd/config.toml`.
    pub config: Option<PathBuf>,
    /// `--socket PATH`; default `$OTRD_SOCKET`, then `$XDG_RUNTIME_DIR/otrd/otrd.sock`.
    pub socket: Option<PathBuf>,
    /// `--demo`: run against an embedded simulated server with a contact that answers.
    pub demo: bool,
}

#[cfg(feature = "demo")]
async fn start_demo() -> anyhow::Result<crate::demo::Demo> {
    let demo = crate::demo::start().await?;
    tracing::info!(
        user = crate::demo::DEMO_USER,
        contact = crate::demo::ECHO_USER,
        "demo mode: try `otrctl start {}`",
        crate::demo::ECHO_USER
    );
    Ok(demo)
}

/// Without the `demo` feature there is nothing to start; the type stands in for the demo.
#[cfg(not(feature = "demo"))]
async fn start_demo() -> anyhow::Result<NoDemo> {
    anyhow::bail!("this otrd was built without the `demo` feature, so --demo is not available")
}

#[cfg(not(feature = "demo"))]
struct NoDemo {
    engine_config: EngineConfig,
}

/// Desktop notifications for invitations (org.freedesktop.Notifications on the session bus);
/// without a session bus the daemon runs on and says so.
async fn start_notifications(
    enabled: bool,
    engine: engine::EngineHandle,
) -> Option<tokio::task::JoinHandle<()>> {
    if !enabled {
        return None;
    }
    match crate::notify::spawn(engine, None).await {
        Ok(task) => Some(task),
        Err(e) => {
            tracing::info!(error = %e, "no desktop notifications (no session bus or notification server)");
            None
        }
    }
}

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run(opts: Options) -> anyhow::Result<()> {
    let signal = signals::shutdown_signal().context("cannot install the signal handlers")?;
    run_until(opts, signal).await
}

/// Runs the daemon until `shutdown` completes.
pub async fn run_until(opts: Options, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    // Without the kernel's randomness no key can be made: say so and stop, before anything starts.
    crate::secure::check_kernel_source().map_err(|e| {
        anyhow::anyhow!("the kernel's random source (getrandom) failed: {e}; no keys can be made")
    })?;
    // Bound before the engine starts, so it fails fast when another otrd serves (the socket is
    // bound in its 0700 directory, then set to 0600: see api::socket).
    let (engine_config, demo, socket) = if opts.demo {
        let socket = ServerSocket::open(opts.socket.as_deref())?;
        let demo = start_demo().await?;
        let engine_config = demo.engine_config.clone();
        (engine_config, Some(demo), socket)
    } else {
        let config_path = match opts.config {
            Some(path) => path,
            None => paths::default_config_file()?,
        };
        let config = config::load(&config_path)?;
        tracing::info!(config = %config_path.display(), server = %config.server.url, "config loaded");
        let socket = ServerSocket::open(opts.socket.as_deref())?;
        let credentials = credentials::obtain(&config, &config_path).await?;
        let state_dir = paths::state_dir()?;
        let engine_config = EngineConfig {
            config,
            credentials: Some(credentials),
            state_dir: Some(state_dir),
        };
        (engine_config, None, socket)
    };
    let (listener, socket_file) = socket.into_parts();

    let lock_on_screen_lock = engine_config.config.security.lock_on_screen_lock;
    let notifications = engine_config.config.notifications.enabled;
    let (engine, engine_task) = engine::spawn(engine_config);
    let lock_watch = lock::start(lock_on_screen_lock, engine.clone()).await;
    let notifier = start_notifications(notifications, engine.clone()).await;
    let (stop_server, server_stopped) = oneshot::channel::<()>();
    let mut server = tokio::spawn(api::serve(listener, engine.clone(), async move {
        // A dropped sender also means stop.
        let _ = server_stopped.await;
    }));
    notify::ready();
    tracing::info!(version = env!("CARGO_PKG_VERSION"), "otrd is serving");

    let early_exit = tokio::select! {
        () = shutdown => None,
        joined = &mut server => Some(joined),
    };
    notify::stopping();
    match tokio::time::timeout(END_ALL_TIMEOUT, engine.end_all()).await {
        Ok(Ok(ended)) => tracing::info!(ended, "ended every session before shutting down"),
        Ok(Err(e)) => tracing::warn!(error = %e, "could not end the sessions at shutdown"),
        Err(_) => tracing::error!("the engine did not end the sessions in time"),
    }
    let _ = stop_server.send(());
    let joined = match early_exit {
        Some(joined) => joined,
        None => server.await,
    };
    socket_file.remove();
    // Everything holding an engine handle goes first, so the engine can stop.
    drop(lock_watch);
    if let Some(task) = notifier {
        task.abort();
    }
    drop(engine);
    // The engine stops once every handle is gone; bounded, so a stuck engine cannot hang exit.
    if tokio::time::timeout(END_ALL_TIMEOUT, engine_task)
        .await
        .is_err()
    {
        tracing::warn!("the engine did not stop in time");
    }
    // The simulated server and contact outlive our own engine, so its sessions end cleanly.
    drop(demo);
    joined.context("the API server task failed")??;
    tracing::info!("otrd stopped");
    Ok(())
}
