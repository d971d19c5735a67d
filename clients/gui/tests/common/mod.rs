//! An in-process daemon for the GUI's tests: the demo (rcsim + the `echo` contact), the user's
//! engine logged in as `me`, and the real gRPC server on a socket in a temporary directory.
#![allow(dead_code)]

use anyhow::{bail, Context};
use otrd::engine::{Direction, EngineHandle, EventKind, PeerRef, SchemePreference, SessionState};
use otrd::secure::SecretString;
use otrd_gui::model::{Update, ViewModel};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// How long any one expected thing may take.
pub const WITHIN: Duration = Duration::from_secs(30);

/// The daemon under test.
pub struct TestDaemon {
    /// The API socket.
    pub socket: PathBuf,
    /// The user's engine (`me`).
    pub engine: EngineHandle,
    /// The simulator and the contact.
    pub demo: otrd::demo::Demo,
    dir: tempfile::TempDir,
    server: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
    engine_task: JoinHandle<()>,
}

impl TestDaemon {
    /// Starts everything and waits until `me` is logged in and sees the room with `echo`.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(|dir| dir.join("otrd").join("otrd.sock")).await
    }

    /// [`TestDaemon::start`] with the socket at `socket(dir)` for the test's private directory
    /// `dir`; the socket's own directory is created 0700, as the daemon makes it.
    pub async fn start_with(socket: impl FnOnce(&Path) -> PathBuf) -> anyhow::Result<Self> {
        use std::os::unix::fs::DirBuilderExt;
        let demo = otrd::demo::start().await?;
        let (engine, engine_task) = otrd::engine::spawn(demo.engine_config.clone());
        let dir = tempfile::tempdir()?;
        let socket = socket(dir.path());
        if let Some(parent) = socket.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)?;
        }
        let mut d = Self {
            socket,
            engine,
            demo,
            dir,
            server: None,
            engine_task,
        };
        d.start_server()?;
        d.wait_for_echo_room().await?;
        Ok(d)
    }

    /// The test's private directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Serves the API on the socket (again).
    pub fn start_server(&mut self) -> anyhow::Result<()> {
        let _ = std::fs::remove_file(&self.socket);
        let listener =
            tokio::net::UnixListener::bind(&self.socket).context("binding the socket")?;
        let (stop, stopped) = oneshot::channel::<()>();
        let engine = self.engine.clone();
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            if let Err(e) = otrd::api::serve(listener, engine, shutdown).await {
                eprintln!("test API server failed: {e}");
            }
        });
        self.server = Some((stop, task));
        Ok(())
    }

    /// Stops the API server (as a daemon restart would) and removes the socket.
    pub async fn stop_server(&mut self) -> anyhow::Result<()> {
        if let Some((stop, task)) = self.server.take() {
            let _ = stop.send(());
            tokio::time::timeout(WITHIN, task)
                .await
                .context("API server did not stop")??;
        }
        let _ = std::fs::remove_file(&self.socket);
        Ok(())
    }

    async fn wait_for_echo_room(&self) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + WITHIN;
        loop {
            // Both sides: an invitation sent before `echo` is subscribed would be lost.
            let sees = |rooms: Result<Vec<otrd::engine::RoomInfo>, _>, peer: &str| {
                rooms.is_ok_and(|r: Vec<otrd::engine::RoomInfo>| r.iter().any(|r| r.peer == peer))
            };
            if sees(self.engine.list_rooms().await, "echo")
                && sees(self.demo.echo().list_rooms().await, "me")
            {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                bail!("`me` never saw the room with echo");
            }
            // Polling the engine (a condition), not hoping a sleep was long enough.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Drives the engine directly: a session with echo, one message out, its echo back, delivered.
    pub async fn establish_and_chat(&self, text: &str) -> anyhow::Result<()> {
        let (_, mut events) = self.engine.watch(false).await?;
        self.engine
            .start(PeerRef::Username("echo".into()), SchemePreference::Auto)
            .await?;
        let settled = wait_event(&mut events, |k| {
            matches!(k, EventKind::State { peer, state, .. }
                if peer == "echo" && !matches!(state, SessionState::Establishing | SessionState::Requested))
        })
        .await
        .context("session with echo not established")?;
        if let EventKind::State { state, detail, .. } = settled {
            if state != SessionState::Established {
                bail!("session with echo {}: {detail}", state.as_str());
            }
        }
        let sent = self
            .engine
            .send(PeerRef::Username("echo".into()), SecretString::from(text))
            .await?;
        let (mut delivered, mut answered) = (false, false);
        let want = format!("echo: {text}");
        while !(delivered && answered) {
            let kind = wait_event(&mut events, |_| true).await?;
            match kind {
                EventKind::Delivered { id, .. } if id == sent.id => delivered = true,
                EventKind::Message {
                    direction: Direction::In,
                    text,
                    ..
                } if text.expose() == want => answered = true,
                _ => {}
            }
        }
        Ok(())
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        if let Some((stop, task)) = self.server.take() {
            let _ = stop.send(());
            task.abort();
        }
        self.engine_task.abort();
    }
}

async fn wait_event(
    events: &mut tokio::sync::broadcast::Receiver<otrd::engine::Event>,
    want: impl Fn(&EventKind) -> bool,
) -> anyhow::Result<EventKind> {
    tokio::time::timeout(WITHIN, async {
        loop {
            match events.recv().await {
                Ok(e) if want(&e.kind) => return Ok(e.kind),
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => bail!("engine events closed: {e}"),
            }
        }
    })
    .await
    .context("timed out waiting for an engine event")?
}

/// Applies updates to `model` until `done` holds, for at most [`WITHIN`].
pub async fn pump(
    model: &mut ViewModel,
    updates: &mut mpsc::UnboundedReceiver<Update>,
    what: &str,
    done: impl Fn(&ViewModel) -> bool,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + WITHIN;
    while !done(model) {
        match tokio::time::timeout_at(deadline, updates.recv()).await {
            Ok(Some(u)) => model.apply(u),
            Ok(None) => bail!("the worker stopped while waiting for: {what}"),
            Err(_) => bail!(
                "timed out waiting for: {what}; notices: {:?}",
                model.notices().collect::<Vec<_>>()
            ),
        }
    }
    Ok(())
}
