//! The engine task (first cut: status and events; sessions are wired in by the sessions work).

use super::handle::{Command, EngineHandle};
use super::types::*;
use crate::config::Config;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::{broadcast, mpsc};

/// What the engine needs to run.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The parsed config file.
    pub config: Config,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Starts the engine task; the handle is how everything else talks to it.
pub fn spawn(cfg: EngineConfig) -> (EngineHandle, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(256);
    let (events, _) = broadcast::channel(1024);
    let engine = Engine { cfg, events, seq: 0 };
    let task = tokio::spawn(engine.run(rx));
    (EngineHandle::new(tx), task)
}

struct Engine {
    cfg: EngineConfig,
    /// Live fan-out to every watcher; a lagging watcher loses events (it sees the gap in `seq`).
    events: broadcast::Sender<Event>,
    seq: u64,
}

impl Engine {
    async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        while let Some(cmd) = rx.recv().await {
            self.handle(cmd);
        }
    }

    fn unimplemented() -> EngineError {
        EngineError::Unimplemented("OTR sessions are not built into this daemon yet".into())
    }

    fn handle(&mut self, cmd: Command) {
        // A dropped reply channel means the client went away: nothing to do.
        match cmd {
            Command::Status(r) => {
                let _ = r.send(self.status());
            }
            Command::ListRooms(r) => {
                let _ = r.send(Err(EngineError::Unimplemented(
                    "room listing needs the Rocket.Chat connection, not built yet".into(),
                )));
            }
            Command::ListSessions(r) => {
                let _ = r.send(Vec::new());
            }
            Command::Start { reply, .. } => {
                let _ = reply.send(Err(Self::unimplemented()));
            }
            Command::Accept(_, r) | Command::Decline(_, r) | Command::Refresh(_, r) | Command::End(_, r) => {
                let _ = r.send(Err(Self::unimplemented()));
            }
            Command::EndAll(r) => {
                let _ = r.send(0);
            }
            Command::Send { reply, .. } => {
                let _ = reply.send(Err(Self::unimplemented()));
            }
            Command::Watch { reply, .. } => {
                let _ = reply.send((Vec::new(), self.events.subscribe()));
            }
            Command::Fingerprint(_, r) | Command::Trust(_, _, r) => {
                let _ = r.send(Err(EngineError::Unimplemented(
                    "identity keys arrive with the native protocol".into(),
                )));
            }
        }
    }

    #[allow(dead_code)]
    fn emit(&mut self, kind: EventKind) {
        self.seq += 1;
        let _ = self.events.send(Event { seq: self.seq, ts_ms: now_ms(), replay: false, kind });
    }

    fn status(&self) -> StatusInfo {
        StatusInfo {
            server_url: self.cfg.config.server.url.clone(),
            account: self.cfg.config.account.username.clone(),
            account_user_id: String::new(),
            connection: ConnectionState::Disconnected,
            connection_detail: "the Rocket.Chat connection is not built yet".into(),
            server_version: String::new(),
            otr_available: false,
            otr_unavailable_reason: "not connected to the server".into(),
            native_transports: Vec::new(),
            memory: MemoryStatus::default(),
            session_count: 0,
            established_count: 0,
            instance_tag: String::new(),
        }
    }
}
