//! Starting the real API server on a temporary socket, and engines to put behind it.
//!
//! The server is `otrd::api::serve_with` itself, on a socket bound by `otrd::api::ServerSocket`;
//! the client is otrctl's own connector. Nothing of the wiring is repeated here.

use otrd::api::{ApiError, ServeOptions, ServerSocket};
use otrd::config::Config;
use otrd::engine::{self, Command, EngineConfig, EngineHandle, Event};
use otrd_proto::v1::otrd_client::OtrdClient;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;
use tonic::transport::Channel;

/// How long any single wait in these tests may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// A config good enough for the engine (it is never used to log in here).
pub fn test_config() -> Config {
    let mut config = Config::default();
    config.server.url = "https://chat.example.invalid".into();
    config.account.username = "alice".into();
    config.account.password_command = Some("true".into());
    config
}

/// The daemon's real engine, with [`test_config`].
pub fn real_engine() -> EngineHandle {
    let (handle, _task) = engine::spawn(EngineConfig::offline(test_config()));
    handle
}

/// An engine double that answers only WatchEvents, from a broadcast the test drives. Every
/// other command is dropped unanswered (the client sees UNAVAILABLE).
pub struct ScriptedEngine {
    /// The handle to give the server.
    pub handle: EngineHandle,
    /// Send events here; every attached watcher receives them.
    pub events: broadcast::Sender<Event>,
    /// One message per WatchEvents attach, after the watcher is subscribed.
    pub attached: mpsc::UnboundedReceiver<()>,
}

impl ScriptedEngine {
    /// Starts the double.
    pub fn start() -> Self {
        Self::with_capacity(64)
    }

    /// Starts the double with room for `capacity` events per watcher that has not read them
    /// (beyond it a watcher lags, as with the real engine's fan-out).
    pub fn with_capacity(capacity: usize) -> Self {
        let (tx, mut rx) = mpsc::channel::<Command>(16);
        let (events, _) = broadcast::channel(capacity);
        let (attached_tx, attached) = mpsc::unbounded_channel();
        let sender = events.clone();
        tokio::spawn(async move {
            while let Some(cmd) = rx.recv().await {
                if let Command::Watch { reply, .. } = cmd {
                    if reply.send((Vec::new(), sender.subscribe())).is_ok() {
                        let _ = attached_tx.send(());
                    }
                }
            }
        });
        Self {
            handle: EngineHandle::new(tx),
            events,
            attached,
        }
    }

    /// Waits until `n` more watchers have attached.
    pub async fn wait_attached(&mut self, n: usize) {
        for _ in 0..n {
            tokio::time::timeout(WAIT, self.attached.recv())
                .await
                .expect("watcher attached in time")
                .expect("engine double running");
        }
    }
}

/// The real API server on a socket in a temporary directory.
pub struct ApiServer {
    /// The socket path.
    pub socket: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), ApiError>>,
    _dir: tempfile::TempDir,
}

impl ApiServer {
    /// Serves `engine` for our own uid.
    pub async fn start(engine: EngineHandle) -> Self {
        Self::start_with(engine, ServeOptions::default()).await
    }

    /// Serves `engine` with `options` (e.g. another expected uid).
    pub async fn start_with(engine: EngineHandle, options: ServeOptions) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("otrd").join("otrd.sock");
        // Bound (and listening) before serve starts: clients may connect at once.
        let (listener, _file) = ServerSocket::bind(&socket).expect("bind").into_parts();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(otrd::api::serve_with(
            listener,
            engine,
            options,
            async move {
                let _ = stopped.await;
            },
        ));
        Self {
            socket,
            stop: Some(stop),
            task,
            _dir: dir,
        }
    }

    /// A client over otrctl's connector.
    pub async fn client(&self) -> OtrdClient<Channel> {
        otrctl::connect::connect(&self.socket)
            .await
            .expect("connects to the test server")
    }

    /// A raw channel (for health and reflection clients).
    pub async fn channel(&self) -> Channel {
        otrctl::connect::channel(&self.socket)
            .await
            .expect("connects to the test server")
    }

    /// Stops the server and waits (bounded) for it to finish.
    pub async fn stop(mut self) -> Result<(), ApiError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(WAIT, &mut self.task)
            .await
            .expect("server stopped in time")
            .expect("server task did not panic")
    }
}
