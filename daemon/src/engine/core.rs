//! The engine task: its state, its inputs (commands, the connection's events, I/O outcomes, a
//! clock tick) and the loop that serialises them. Sessions are pure state machines
//! (`otr::session`); the engine feeds them and hands their frames to each room's outbox, so no
//! session ever waits on the network and ending a thousand of them is one pass over a map.

use super::events::EventLog;
use super::handle::{Command, EngineHandle};
use super::held::{AfterResolve, HeldMessages};
use super::identity::Identity;
use super::parked::ParkedSignals;
use super::rooms::RoomRegistry;
use super::status::SessionTally;
use super::types::*;
use crate::config::{Config, MemlockPolicy};
use crate::otr::session::Session;
use crate::rocketchat::{self, Client, ClientConfig, ClientEvent, Credentials, DirectRoom};
use crate::secure::SecureRng;
use crate::transport::{Outbox, Report};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, watch};

/// How often session timers (invitation and handshake timeouts, resends, delivery bound) run.
const TICK: Duration = Duration::from_millis(500);

/// What the engine needs to run.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The parsed config file.
    pub config: Config,
    /// How to log in; `None` runs without a server (every server-bound command says so).
    pub credentials: Option<Credentials>,
    /// Where the identity key and trust store live (`$XDG_DATA_HOME/otrd/`); `None` runs
    /// legacy-only.
    pub state_dir: Option<std::path::PathBuf>,
}

impl EngineConfig {
    /// An engine that talks to no server (for API tests and tools that only need the socket).
    pub fn offline(config: Config) -> Self {
        Self {
            config,
            credentials: None,
            state_dir: None,
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Starts the engine task (and, with credentials, the Rocket.Chat connection it owns).
pub fn spawn(cfg: EngineConfig) -> (EngineHandle, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(256);
    let (client, client_events) = match &cfg.credentials {
        Some(creds) => {
            let mut client_cfg = ClientConfig::new(cfg.config.server.url.clone(), creds.clone());
            // Checked when the config was loaded; a command that no longer parses is ignored
            // here and the user is asked for codes instead.
            client_cfg.totp_command = cfg
                .config
                .account
                .totp_command
                .as_deref()
                .and_then(|c| crate::config::SecretCommand::parse(c).ok());
            let (c, ev) = Client::spawn(client_cfg);
            (Some(c), Some(ev))
        }
        None => (None, None),
    };
    let (internal_tx, internal_rx) = mpsc::unbounded_channel();
    let (reports_tx, reports_rx) = mpsc::unbounded_channel();
    let initial = if client.is_some() {
        (
            ConnectionState::Connecting,
            format!("connecting to {}", cfg.config.server.url),
        )
    } else {
        (
            ConnectionState::Disconnected,
            "no Rocket.Chat server configured".to_owned(),
        )
    };
    let mut rng = SecureRng::from_os();
    let identity = Identity::load(cfg.state_dir.as_deref(), &mut rng);
    let relays =
        crate::transport::realtime::Relays::new(relay_settings(&cfg.config), reports_tx.clone());
    let memlock = cfg.config.security.memlock;
    let mut engine = Engine {
        identity,
        log: EventLog::new(cfg.config.policy.scrollback.max(1)),
        cfg,
        client,
        me: None,
        connection: initial,
        rooms: RoomRegistry::default(),
        sessions: HashMap::new(),
        outboxes: HashMap::new(),
        subscribed_rooms: HashSet::new(),
        transport_subs: super::capabilities::TransportSubs::default(),
        realtime: crate::transport::realtime::Realtime::default(),
        relays: relays.clone(),
        relay_task: None,
        held: HeldMessages::default(),
        parked: ParkedSignals::default(),
        following: HashSet::new(),
        probes: HashMap::new(),
        outbox_paths: HashMap::new(),
        followed_presence: HashSet::new(),
        internal_tx,
        reports_tx,
        rng,
        tally: SessionTally::default(),
        status_tx: watch::Sender::new(StatusInfo::default()),
        status_dirty: true,
        api_paths: rocketchat::ApiPaths::default(),
        pending_two_factor: None,
        lock: None,
        lock_watermark: 0,
    };
    engine.publish_status();
    let status = engine.status_tx.subscribe();
    let task = tokio::spawn(engine.run(rx, client_events, internal_rx, reports_rx));
    (EngineHandle::with_status(tx, status, memlock, relays), task)
}

/// The realtime relays' limits and bounds, from the config: the server's limits as
/// `[transport]` states them, the delivery bound of `[policy]`, and the sessions' resend interval
/// (a resend of a message that left less than that ago is dropped: it is not lost, only paced).
fn relay_settings(config: &Config) -> crate::transport::realtime::Settings {
    let t = &config.transport;
    crate::transport::realtime::Settings {
        limits: crate::transport::realtime::Limits {
            connection_calls: t.calls_per_window,
            user_calls: t.user_calls_per_window,
            others_share: t.share_for_other_clients,
            window: Duration::from_secs(t.window_secs),
        },
        delivery_bound: Duration::from_secs(config.policy.delivery_timeout_secs),
        resend_grace: Duration::from_millis(
            u64::try_from(crate::otr::session::SessionPolicy::default().resend_interval_ms)
                .unwrap_or(5_000),
        ),
    }
}

/// Results of work the engine handed to spawned tasks.
pub(super) enum Internal {
    /// The DM list arrived (at login, or after the server said rooms changed).
    RoomsLoaded(Result<Vec<DirectRoom>, String>),
    /// A username was resolved to its DM (created if needed) for a pending Start or for
    /// messages held for OTR.
    Resolved {
        /// The username that was looked up.
        username: String,
        /// The DM or why not.
        result: Result<DirectRoom, String>,
        /// What was waiting for it.
        then: AfterResolve,
    },
    /// Initial presence of peers (`users.presence`).
    Presence(HashMap<String, Presence>),
    /// The message streams of these new DMs are followed (or failed to be): parked signals for
    /// them may go to their sessions now.
    RoomsFollowed(Vec<String>),
    /// Transport subscriptions made for the capabilities of `generation`
    /// (engine/capabilities.rs).
    TransportSubscribed {
        /// What they were made for.
        generation: u64,
        /// The subscriptions.
        ids: Vec<crate::rocketchat::SubscriptionId>,
    },
}

/// The engine's state. Everything here is touched only by the engine task.
pub(super) struct Engine {
    /// Our native identity and the trust store.
    pub(super) identity: Identity,
    pub(super) cfg: EngineConfig,
    /// The connection handle; `None` when running without a server.
    pub(super) client: Option<Client>,
    /// Who we are logged in as and what the server can do; `None` until the first login
    /// (changed only through `set_me`).
    pub(super) me: Option<rocketchat::SessionInfo>,
    /// Connection state and its detail, for GetStatus (changed only through `set_connection`).
    pub(super) connection: (ConnectionState, String),
    /// Our 1:1 DMs.
    pub(super) rooms: RoomRegistry,
    /// One state machine per room that ever had OTR activity.
    pub(super) sessions: HashMap<String, Session>,
    /// One ordered sender per room.
    pub(super) outboxes: HashMap<String, Outbox>,
    /// Rooms whose message stream we subscribed (the client re-subscribes after reconnects).
    pub(super) subscribed_rooms: HashSet<String>,
    /// The subscriptions that depend on the server's capabilities, redone when they change.
    pub(super) transport_subs: super::capabilities::TransportSubs,
    /// Paths A/B (servers without the 7.x relay): inbound checks and each room's chosen path.
    pub(super) realtime: crate::transport::realtime::Realtime,
    /// The realtime relays' queues and budget (paths A/B), shared with the handle for GetStatus.
    pub(super) relays: crate::transport::realtime::Relays,
    /// The task performing the relays' calls, once a login needs it.
    pub(super) relay_task: Option<crate::transport::realtime::RelayTask>,
    /// Messages to `require_otr` contacts waiting for their session.
    pub(super) held: HeldMessages,
    /// Signals for DMs not loaded yet (engine/parked.rs).
    pub(super) parked: ParkedSignals,
    /// New DMs whose message streams are being subscribed to.
    pub(super) following: HashSet<String>,
    /// Starts waiting for the peer's daemon to answer a probe.
    pub(super) probes: HashMap<String, super::realtime::PendingStart>,
    /// The path each realtime outbox was built for.
    pub(super) outbox_paths: HashMap<String, crate::transport::realtime::Path>,
    /// Peers whose presence we follow.
    pub(super) followed_presence: HashSet<String>,
    /// Numbering, fan-out and scrollback of events.
    pub(super) log: EventLog,
    /// Where spawned tasks send their results.
    pub(super) internal_tx: mpsc::UnboundedSender<Internal>,
    /// Where outboxes report.
    pub(super) reports_tx: mpsc::UnboundedSender<Report>,
    /// CSPRNG for keys, IVs and ids (ChaCha12 seeded and reseeded from the kernel).
    pub(super) rng: SecureRng,
    /// Session counts for GetStatus, kept by `feed`.
    pub(super) tally: SessionTally,
    /// Where GetStatus reads from (engine/status.rs).
    pub(super) status_tx: watch::Sender<StatusInfo>,
    /// Something GetStatus reports changed since the last publication.
    pub(super) status_dirty: bool,
    /// The paths the client uses now (GetStatus reports them; re-read at each publish).
    pub(super) api_paths: rocketchat::ApiPaths,
    /// The second factor a login waits for (GetStatus reports it).
    pub(super) pending_two_factor: Option<rocketchat::TwoFactorMethod>,
    /// The screen lock in force, if any (engine/commands.rs `lock`): Start, Accept, auto-accept
    /// and `require_otr` sends are refused until the unlock.
    pub(super) lock: Option<LockState>,
    /// The last event seq before the latest lock (see [`StatusInfo::lock_watermark`]).
    pub(super) lock_watermark: u64,
}

impl Engine {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut client_events: Option<mpsc::Receiver<ClientEvent>>,
        mut internal: mpsc::UnboundedReceiver<Internal>,
        mut reports: mpsc::UnboundedReceiver<Report>,
    ) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(cmd) => self.on_command(cmd),
                    None => break,
                },
                ev = next_client_event(&mut client_events) => match ev {
                    Some(ev) => self.on_client_event(ev),
                    None => client_events = None,
                },
                Some(msg) = internal.recv() => self.on_internal(msg),
                Some(report) = reports.recv() => self.on_report(report),
                _ = tick.tick() => self.on_tick(),
            }
            self.publish_status();
        }
        if let Some(client) = &self.client {
            client.shutdown().await;
        }
    }

    /// Numbers and fans out an event; an ended session's scrollback is wiped here, in one place.
    /// The status is published first: a watcher that sees the event and asks GetStatus must find
    /// the state the event announces.
    /// Returns the event's sequence number.
    pub(super) fn emit(&mut self, kind: EventKind) -> u64 {
        self.publish_status();
        if let EventKind::State { room_id, state, .. } = &kind {
            if matches!(state, SessionState::Ended | SessionState::Error) {
                let room = room_id.clone();
                let seq = self.log.emit(kind);
                self.log.wipe(&room);
                return seq;
            }
        }
        self.log.emit(kind)
    }
}

impl Engine {
    /// Refuses to create keys when memory cannot be locked and the policy says so.
    pub(super) fn check_memory_policy(&self) -> Result<(), EngineError> {
        let m = crate::secure::arena_status();
        if m.locked || self.cfg.config.security.memlock == MemlockPolicy::Warn {
            return Ok(());
        }
        Err(EngineError::FailedPrecondition(format!(
            "memory for keys cannot be locked ({}); refusing to create session keys. Raise \
             LimitMEMLOCK, or set [security] memlock = \"warn\" to go on without locking",
            m.detail
        )))
    }
}

async fn next_client_event(rx: &mut Option<mpsc::Receiver<ClientEvent>>) -> Option<ClientEvent> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
