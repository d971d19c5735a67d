//! The cloneable handle every front-end connection (and the lock watcher) uses to talk to the
//! engine task. Each call sends a [`Command`] carrying its own reply channel, except GetStatus,
//! which reads the snapshot the engine publishes (engine/status.rs) when the handle has one.

use super::types::*;
use crate::config::MemlockPolicy;
use crate::secure::SecretString;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

/// A request to the engine, with the channel its answer goes back on.
#[derive(Debug)]
pub enum Command {
    /// GetStatus.
    Status(oneshot::Sender<StatusInfo>),
    /// ListRooms.
    ListRooms(oneshot::Sender<Result<Vec<RoomInfo>, EngineError>>),
    /// ListSessions.
    ListSessions(oneshot::Sender<Vec<SessionInfo>>),
    /// StartSession.
    Start {
        /// Who.
        peer: PeerRef,
        /// Scheme preference.
        scheme: SchemePreference,
        /// Answer.
        reply: oneshot::Sender<Result<SessionInfo, EngineError>>,
    },
    /// AcceptSession.
    /// The peer, and the invitation event's seq the user saw (`None`: whatever is pending).
    Accept(
        PeerRef,
        Option<u64>,
        oneshot::Sender<Result<SessionInfo, EngineError>>,
    ),
    /// DeclineSession.
    Decline(PeerRef, oneshot::Sender<Result<SessionInfo, EngineError>>),
    /// RefreshSession.
    Refresh(PeerRef, oneshot::Sender<Result<SessionInfo, EngineError>>),
    /// EndSession.
    End(PeerRef, oneshot::Sender<Result<SessionInfo, EngineError>>),
    /// EndAllSessions: returns how many were ended.
    EndAll(oneshot::Sender<u32>),
    /// The screen locked (logind, `otrctl lock`): ends every session like EndAll and keeps the
    /// engine locked — no Start, Accept or auto-accept — until [`Command::Unlock`]. The string
    /// says what locked; returns how many sessions were ended.
    Lock(String, oneshot::Sender<u32>),
    /// The screen unlocked (logind, `otrctl unlock`): returns whether a lock was in force.
    Unlock(oneshot::Sender<bool>),
    /// SendMessage: returns (message id, room id, ts ms).
    Send {
        /// Who.
        peer: PeerRef,
        /// The plaintext.
        text: SecretString,
        /// Answer.
        reply: oneshot::Sender<Result<SentMessage, EngineError>>,
    },
    /// WatchEvents attach: scrollback (if asked) and a live receiver, taken atomically so no
    /// event falls between the two.
    Watch {
        /// Replay scrollback first.
        include_scrollback: bool,
        /// Answer.
        reply: oneshot::Sender<(Vec<Event>, broadcast::Receiver<Event>)>,
    },
    /// GetFingerprint.
    Fingerprint(
        Option<PeerRef>,
        oneshot::Sender<Result<FingerprintInfo, EngineError>>,
    ),
    /// SubmitLoginCode: a two-factor code for the login waiting for one.
    SubmitCode(SecretString, oneshot::Sender<Result<String, EngineError>>),
    /// TrustPeer, ConfirmSas or AcceptPeerKey: the user's decision on the peer's key.
    Trust(
        PeerRef,
        super::identity::KeyDecision,
        oneshot::Sender<Result<FingerprintInfo, EngineError>>,
    ),
}

/// What SendMessage returns.
#[derive(Debug, Clone, PartialEq)]
pub struct SentMessage {
    /// Message id (the `delivered` event carries it).
    pub id: String,
    /// Room id.
    pub room_id: String,
    /// Our timestamp, ms since epoch.
    pub ts_ms: i64,
}

/// Cloneable access to the engine task.
#[derive(Debug, Clone)]
pub struct EngineHandle {
    tx: mpsc::Sender<Command>,
    /// The engine's published status and the memlock policy that words its memory detail;
    /// `None` for an engine that publishes none (test doubles), which is asked instead.
    status: Option<Published>,
}

/// What GetStatus reads without the engine task.
#[derive(Debug, Clone)]
struct Published {
    snapshot: watch::Receiver<StatusInfo>,
    memlock: MemlockPolicy,
    /// The realtime relays' budgets, read at request time.
    relays: crate::transport::realtime::Relays,
}

impl EngineHandle {
    /// Wraps an engine's command channel; GetStatus goes through it as [`Command::Status`].
    pub fn new(tx: mpsc::Sender<Command>) -> Self {
        Self { tx, status: None }
    }

    /// Wraps the real engine's command channel and its published status.
    pub(super) fn with_status(
        tx: mpsc::Sender<Command>,
        snapshot: watch::Receiver<StatusInfo>,
        memlock: MemlockPolicy,
        relays: crate::transport::realtime::Relays,
    ) -> Self {
        Self {
            tx,
            status: Some(Published {
                snapshot,
                memlock,
                relays,
            }),
        }
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, EngineError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| EngineError::ShuttingDown)?;
        rx.await.map_err(|_| EngineError::ShuttingDown)
    }

    /// GetStatus: the engine's latest snapshot with the arena's memory state read now, without
    /// waiting on the engine task (issue 2's unary budget); the engine publishes before any event
    /// or answer goes out, so the snapshot is never older than what the caller has seen.
    pub async fn status(&self) -> Result<StatusInfo, EngineError> {
        let Some(published) = &self.status else {
            return self.ask(Command::Status).await;
        };
        // A stopped engine answers nothing, as it would through the channel.
        if self.tx.is_closed() {
            return Err(EngineError::ShuttingDown);
        }
        let mut status = published.snapshot.borrow().clone();
        status.memory = super::status::memory_status(published.memlock);
        status.relays = super::status::relay_budgets(&status, &published.relays);
        Ok(status)
    }

    /// ListRooms.
    pub async fn list_rooms(&self) -> Result<Vec<RoomInfo>, EngineError> {
        self.ask(Command::ListRooms).await?
    }

    /// ListSessions.
    pub async fn list_sessions(&self) -> Result<Vec<SessionInfo>, EngineError> {
        self.ask(Command::ListSessions).await
    }

    /// StartSession.
    pub async fn start(
        &self,
        peer: PeerRef,
        scheme: SchemePreference,
    ) -> Result<SessionInfo, EngineError> {
        self.ask(|reply| Command::Start {
            peer,
            scheme,
            reply,
        })
        .await?
    }

    /// AcceptSession; `seq` names the invitation the user saw (see `Input::Accept`).
    pub async fn accept(
        &self,
        peer: PeerRef,
        seq: Option<u64>,
    ) -> Result<SessionInfo, EngineError> {
        self.ask(|r| Command::Accept(peer, seq, r)).await?
    }

    /// DeclineSession.
    pub async fn decline(&self, peer: PeerRef) -> Result<SessionInfo, EngineError> {
        self.ask(|r| Command::Decline(peer, r)).await?
    }

    /// RefreshSession.
    pub async fn refresh(&self, peer: PeerRef) -> Result<SessionInfo, EngineError> {
        self.ask(|r| Command::Refresh(peer, r)).await?
    }

    /// EndSession.
    pub async fn end(&self, peer: PeerRef) -> Result<SessionInfo, EngineError> {
        self.ask(|r| Command::End(peer, r)).await?
    }

    /// EndAllSessions: how many sessions were ended.
    pub async fn end_all(&self) -> Result<u32, EngineError> {
        self.ask(Command::EndAll).await
    }

    /// SubmitLoginCode: answers once the server took the code or refused it.
    pub async fn submit_code(&self, code: SecretString) -> Result<String, EngineError> {
        self.ask(|r| Command::SubmitCode(code, r)).await?
    }

    /// The screen locked: every session ends and none starts or is accepted until
    /// [`EngineHandle::unlock`]; `reason` says what locked. How many sessions were ended.
    pub async fn lock(&self, reason: &str) -> Result<u32, EngineError> {
        let reason = reason.to_owned();
        self.ask(|r| Command::Lock(reason, r)).await
    }

    /// The screen unlocked: sessions may start again. Whether a lock was in force.
    pub async fn unlock(&self) -> Result<bool, EngineError> {
        self.ask(Command::Unlock).await
    }

    /// The newest event seq from before the latest lock, read now (0 for an engine that publishes
    /// no status, such as a test double): message events at or below it that a watcher has not
    /// read yet are never delivered.
    pub fn lock_watermark(&self) -> impl Fn() -> u64 + Send + Sync + 'static {
        let status = self.status.as_ref().map(|p| p.snapshot.clone());
        move || status.as_ref().map_or(0, |s| s.borrow().lock_watermark)
    }

    /// SendMessage (fails closed unless established).
    pub async fn send(
        &self,
        peer: PeerRef,
        text: SecretString,
    ) -> Result<SentMessage, EngineError> {
        self.ask(|reply| Command::Send { peer, text, reply })
            .await?
    }

    /// WatchEvents attach.
    pub async fn watch(
        &self,
        include_scrollback: bool,
    ) -> Result<(Vec<Event>, broadcast::Receiver<Event>), EngineError> {
        self.ask(|reply| Command::Watch {
            include_scrollback,
            reply,
        })
        .await
    }

    /// GetFingerprint.
    pub async fn fingerprint(&self, peer: Option<PeerRef>) -> Result<FingerprintInfo, EngineError> {
        self.ask(|r| Command::Fingerprint(peer, r)).await?
    }

    /// TrustPeer: verifies the peer's key with the fingerprint the user compared (an empty one
    /// is refused: it never verifies).
    pub async fn trust(
        &self,
        peer: PeerRef,
        fingerprint: String,
    ) -> Result<FingerprintInfo, EngineError> {
        let decision = super::identity::KeyDecision::VerifyFingerprint(fingerprint);
        self.ask(|r| Command::Trust(peer, decision, r)).await?
    }

    /// ConfirmSas: verifies the peer's key because the user compared this session's SAS.
    pub async fn confirm_sas(
        &self,
        peer: PeerRef,
        sas: String,
    ) -> Result<FingerprintInfo, EngineError> {
        let decision = super::identity::KeyDecision::ConfirmSas(sas);
        self.ask(|r| Command::Trust(peer, decision, r)).await?
    }

    /// AcceptPeerKey: lets the peer's key send without verifying it (optionally pinned to a
    /// fingerprint).
    pub async fn accept_key(
        &self,
        peer: PeerRef,
        fingerprint: String,
    ) -> Result<FingerprintInfo, EngineError> {
        let decision = super::identity::KeyDecision::Accept(fingerprint);
        self.ask(|r| Command::Trust(peer, decision, r)).await?
    }
}
