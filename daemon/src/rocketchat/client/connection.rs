//! The connection task: the one owner of the websocket. It connects, logs in, probes the
//! server, re-issues subscriptions, routes method results and stream events, keeps the
//! heartbeat, and reconnects with backoff — until shut down or until the credentials are
//! refused (then it stops trying: no retry storm).

use super::link::Link;
use super::twofactor::CodeGate;
use super::{
    rest, Client, ClientConfig, ClientEvent, Command, Counters, Inner, LinkState, LoginInfo,
    RestAuth, SessionInfo, SubscriptionId,
};
use crate::engine::ConnectionState;
use crate::rocketchat::backoff::Backoff;
use crate::rocketchat::ddp::{self, ServerFrame};
use crate::rocketchat::RcError;
use crate::secure::SecretString;
use futures::StreamExt;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Builds the handle and starts the task.
pub(super) fn spawn(cfg: ClientConfig) -> (Client, mpsc::Receiver<ClientEvent>) {
    let (events_tx, events_rx) = mpsc::channel(1024);
    let (cmd_tx, cmd_rx) = mpsc::channel(256);
    let (codes_tx, codes_rx) = mpsc::channel(1);
    let (state_tx, state_rx) = watch::channel(LinkState::default());
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let auth = Arc::new(RwLock::new(None));
    let counters = Arc::new(Counters::default());
    let http = reqwest::Client::builder().build().ok();
    let endpoints = rest::endpoints(&cfg.server_url);
    let base = endpoints
        .as_ref()
        .map(|(b, _)| b.clone())
        .unwrap_or_default();
    let inner = Inner {
        commands: cmd_tx,
        codes: codes_tx,
        state: state_rx,
        shutdown: shutdown_tx,
        auth: auth.clone(),
        http: http.clone(),
        base_url: base.clone(),
        method_timeout: cfg.method_timeout,
        next_sub: AtomicU64::new(1),
        counters: counters.clone(),
        method_missing: std::sync::atomic::AtomicBool::new(false),
    };
    let task = Task {
        backoff: Backoff::new(cfg.backoff),
        cfg,
        base,
        ws_url: String::new(),
        http,
        commands: cmd_rx,
        events: events_tx,
        state: state_tx,
        auth,
        counters,
        subs: BTreeMap::new(),
        pending: HashMap::new(),
        next_id: 1,
        resume: None,
        fresh_token: false,
        rest_absent: false,
        ldap: false,
        rest_username: None,
        login_info: LoginInfo::default(),
        pending_second_factor: None,
        second_factor_used: None,
        ddp_code: None,
        gate: CodeGate::default(),
        codes: codes_rx,
    };
    tokio::spawn(task.run(endpoints, shutdown_rx));
    (
        Client {
            inner: Arc::new(inner),
        },
        events_rx,
    )
}

/// Why a connection ended.
pub(super) enum Outcome {
    /// Lost or failed; retry after a backoff.
    Lost(String),
    /// Credentials refused; stop.
    AuthFailed(String),
    /// Log in again at once, without backoff (the token expired; a code was obtained).
    Retry(String),
    /// Every handle is gone.
    Closed,
}

struct Sub {
    name: String,
    params: Vec<Value>,
    ready: bool,
    /// The `subscribe` caller still waiting for `ready` / `nosub`.
    waiter: Option<oneshot::Sender<Result<(), RcError>>>,
}

struct Pending {
    method: String,
    reply: oneshot::Sender<Result<Option<Value>, RcError>>,
}

pub(super) struct Task {
    pub(super) cfg: ClientConfig,
    pub(super) base: String,
    pub(super) ws_url: String,
    pub(super) http: Option<reqwest::Client>,
    pub(super) commands: mpsc::Receiver<Command>,
    pub(super) events: mpsc::Sender<ClientEvent>,
    pub(super) state: watch::Sender<LinkState>,
    pub(super) auth: Arc<RwLock<Option<RestAuth>>>,
    pub(super) counters: Arc<Counters>,
    /// Every live subscription, re-issued on each reconnect.
    subs: BTreeMap<SubscriptionId, Sub>,
    /// Method calls waiting for their `result`, by DDP id.
    pending: HashMap<String, Pending>,
    /// Method ids are never reused, not even across connections.
    pub(super) next_id: u64,
    /// The token from the last password login, tried first on reconnect.
    pub(super) resume: Option<SecretString>,
    /// `resume` was just issued by a REST login (a refusal then is not retried at once).
    pub(super) fresh_token: bool,
    /// The server has no REST login: DDP login is the fallback.
    pub(super) rest_absent: bool,
    /// The DDP fallback uses the LDAP login form.
    pub(super) ldap: bool,
    /// Our username as the REST login's `me` said.
    pub(super) rest_username: Option<String>,
    /// How the current token was obtained.
    pub(super) login_info: LoginInfo,
    /// A DDP login asked for a second factor: obtained before the next connection.
    pub(super) pending_second_factor: Option<super::auth::SecondFactor>,
    /// The second factor a DDP fallback login asked for.
    pub(super) second_factor_used: Option<super::auth::TwoFactorMethod>,
    /// The code for the next DDP fallback login.
    pub(super) ddp_code: Option<super::twofactor::Code>,
    /// Refused codes and the pace of attempts (kept across connections).
    pub(super) gate: CodeGate,
    /// Codes handed in by front-ends.
    pub(super) codes: mpsc::Receiver<super::twofactor::Submission>,
    pub(super) backoff: Backoff,
}

impl Task {
    async fn run(
        mut self,
        endpoints: Result<(String, String), RcError>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        match endpoints {
            Ok((_, ws)) => self.ws_url = ws,
            Err(e) => {
                let detail = e.to_string();
                self.state
                    .send_modify(|s| s.auth_failed = Some(detail.clone()));
                self.emit_connection(ConnectionState::Disconnected, detail)
                    .await;
                self.finish().await;
                return;
            }
        }
        loop {
            let detail = format!("connecting to {}", self.base);
            self.emit_connection(ConnectionState::Connecting, detail)
                .await;
            let outcome = tokio::select! {
                o = self.connect_and_serve() => o,
                _ = shutdown.wait_for(|s| *s) => break,
            };
            self.on_disconnect(|| RcError::NotConnected);
            match outcome {
                Outcome::Closed => break,
                Outcome::AuthFailed(detail) => {
                    tracing::warn!(detail = %detail, "login refused; not retrying");
                    self.set_auth(None);
                    self.state
                        .send_modify(|s| s.auth_failed = Some(detail.clone()));
                    self.emit_connection(ConnectionState::AuthFailed, detail.clone())
                        .await;
                    self.idle_until_shutdown(&mut shutdown, &detail).await;
                    break;
                }
                Outcome::Retry(detail) => {
                    tracing::info!(detail = %detail, "logging in again");
                    if self.wait_between(&mut shutdown, Duration::ZERO).await {
                        break;
                    }
                }
                Outcome::Lost(detail) => {
                    let delay = self.backoff.next_delay();
                    let detail = format!("{detail}; retrying in {:.1} s", delay.as_secs_f64());
                    tracing::info!(detail = %detail, "connection lost");
                    self.emit_connection(ConnectionState::Reconnecting, detail)
                        .await;
                    if self.wait_between(&mut shutdown, delay).await {
                        break;
                    }
                }
            }
        }
        self.finish().await;
    }

    async fn finish(&mut self) {
        self.on_disconnect(|| RcError::Shutdown);
        for (_, sub) in std::mem::take(&mut self.subs) {
            if let Some(w) = sub.waiter {
                let _ = w.send(Err(RcError::Shutdown));
            }
        }
        self.state.send_modify(|s| s.shut_down = true);
        self.emit_connection(ConnectionState::Disconnected, "shut down".into())
            .await;
    }

    /// Between attempts: answers commands (calls fail fast) until the delay passes.
    /// Returns true on shutdown.
    async fn wait_between(
        &mut self,
        shutdown: &mut watch::Receiver<bool>,
        delay: Duration,
    ) -> bool {
        let until = tokio::time::sleep(delay);
        tokio::pin!(until);
        loop {
            tokio::select! {
                _ = &mut until => return false,
                _ = shutdown.wait_for(|s| *s) => return true,
                cmd = self.commands.recv() => match cmd {
                    None => return true,
                    Some(Command::Call { reply, .. }) => {
                        let _ = reply.send(Err(RcError::NotConnected));
                    }
                    Some(Command::Subscribe { id, name, params, reply }) => {
                        // Issued, and answered, once logged in again.
                        self.subs.insert(id, Sub { name, params, ready: false, waiter: Some(reply) });
                    }
                    Some(Command::Unsubscribe(id)) => {
                        self.subs.remove(&id);
                    }
                },
            }
        }
    }

    /// After a refused login: everything fails with the reason until shutdown.
    async fn idle_until_shutdown(&mut self, shutdown: &mut watch::Receiver<bool>, why: &str) {
        for (_, sub) in std::mem::take(&mut self.subs) {
            if let Some(w) = sub.waiter {
                let _ = w.send(Err(RcError::AuthFailed(why.to_owned())));
            }
        }
        loop {
            tokio::select! {
                _ = shutdown.wait_for(|s| *s) => return,
                cmd = self.commands.recv() => match cmd {
                    None => return,
                    Some(Command::Call { reply, .. }) => {
                        let _ = reply.send(Err(RcError::AuthFailed(why.to_owned())));
                    }
                    Some(Command::Subscribe { reply, .. }) => {
                        let _ = reply.send(Err(RcError::AuthFailed(why.to_owned())));
                    }
                    Some(Command::Unsubscribe(_)) => {}
                },
            }
        }
    }

    async fn connect_and_serve(&mut self) -> Outcome {
        if let Err(o) = self.before_connect().await {
            return o;
        }
        let n = self.cfg.max_frame_bytes;
        let config = WebSocketConfig::default()
            .max_message_size(Some(n))
            .max_frame_size(Some(n));
        let connect =
            tokio_tungstenite::connect_async_with_config(self.ws_url.as_str(), Some(config), true);
        let ws = match tokio::time::timeout(self.cfg.method_timeout, connect).await {
            Err(_) => return Outcome::Lost("timed out opening the websocket".into()),
            Ok(Err(e)) => return Outcome::Lost(format!("could not open the websocket: {e}")),
            Ok(Ok((ws, _response))) => ws,
        };
        let mut link = Link {
            ws,
            counters: self.counters.clone(),
            last_rx: Instant::now(),
        };
        let info = match self.establish(&mut link).await {
            Ok(info) => info,
            Err(o) => return o,
        };
        match self.serve(&mut link, info).await {
            Ok(never) => match never {},
            Err(o) => o,
        }
    }

    async fn serve(&mut self, link: &mut Link, info: SessionInfo) -> Result<Infallible, Outcome> {
        let mut awaiting: HashSet<SubscriptionId> = HashSet::new();
        let frames: Vec<String> = self
            .subs
            .iter_mut()
            .map(|(id, sub)| {
                sub.ready = false;
                awaiting.insert(id.clone());
                ddp::sub_frame(&id.0, &sub.name, &sub.params)
            })
            .collect();
        for f in frames {
            link.send(f).await?;
        }
        let mut announced = false;
        let resub_deadline = Instant::now() + self.cfg.method_timeout;
        let hb = self.cfg.heartbeat;
        let period = (hb.idle.min(hb.timeout) / 4).max(Duration::from_millis(10));
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut ping_sent: Option<Instant> = None;
        loop {
            if !announced && (awaiting.is_empty() || Instant::now() >= resub_deadline) {
                if !awaiting.is_empty() {
                    tracing::warn!(count = awaiting.len(), "subscriptions not ready in time");
                }
                self.announce(&info).await;
                announced = true;
            }
            tokio::select! {
                item = link.ws.next() => {
                    if let Some(frame) = link.on_message(item).await? {
                        self.dispatch(frame, &mut awaiting).await;
                    }
                }
                cmd = self.commands.recv() => match cmd {
                    None => return Err(Outcome::Closed),
                    Some(cmd) => self.command(cmd, link, &info).await?,
                },
                _ = tick.tick() => {
                    if let Some(sent) = ping_sent {
                        if link.last_rx >= sent {
                            ping_sent = None;
                        } else if sent.elapsed() >= hb.timeout {
                            return Err(Outcome::Lost("the server stopped answering pings".into()));
                        }
                    }
                    if ping_sent.is_none() && link.last_rx.elapsed() >= hb.idle {
                        let id = self.method_id();
                        link.send(ddp::ping_frame(&format!("hb-{id}"))).await?;
                        ping_sent = Some(Instant::now());
                    }
                    // Callers that timed out no longer wait for their result.
                    self.pending.retain(|_, p| !p.reply.is_closed());
                }
            }
        }
    }

    async fn announce(&mut self, info: &SessionInfo) {
        self.backoff.reset();
        self.counters.logins.fetch_add(1, Ordering::Relaxed);
        self.state.send_modify(|s| {
            s.session = Some(info.clone());
            s.auth_failed = None;
        });
        let detail = format!("logged in as {}", info.username);
        tracing::info!(user = %info.username, server_version = %info.server.version, "logged in");
        self.emit_connection(ConnectionState::Connected, detail)
            .await;
        self.emit(ClientEvent::LoggedIn(info.clone())).await;
    }

    async fn dispatch(&mut self, frame: ServerFrame, awaiting: &mut HashSet<SubscriptionId>) {
        match frame {
            ServerFrame::Result { id, result, error } => {
                if let Some(p) = self.pending.remove(&id) {
                    let outcome = match error {
                        Some(error) => Err(RcError::Method {
                            method: p.method,
                            error: Box::new(error),
                        }),
                        None => Ok(result),
                    };
                    let _ = p.reply.send(outcome);
                }
            }
            ServerFrame::Ready { subs } => {
                for id in subs {
                    let id = SubscriptionId(id);
                    awaiting.remove(&id);
                    if let Some(sub) = self.subs.get_mut(&id) {
                        sub.ready = true;
                        if let Some(w) = sub.waiter.take() {
                            let _ = w.send(Ok(()));
                        }
                    }
                }
            }
            ServerFrame::NoSub { id, error } => {
                let id = SubscriptionId(id);
                awaiting.remove(&id);
                // Absent: we unsubscribed it ourselves.
                let Some(sub) = self.subs.remove(&id) else {
                    return;
                };
                let error = error
                    .map(|e| e.to_string())
                    .unwrap_or_else(|| "the server ended the subscription".into());
                tracing::warn!(name = %sub.name, error = %error, "subscription refused or ended");
                match sub.waiter {
                    Some(w) => {
                        let _ = w.send(Err(RcError::NoSub {
                            name: sub.name,
                            error,
                        }));
                    }
                    None => {
                        self.emit(ClientEvent::SubscriptionLost {
                            id,
                            name: sub.name,
                            error,
                        })
                        .await;
                    }
                }
            }
            ServerFrame::Changed {
                collection,
                mut fields,
                ..
            } if collection.starts_with("stream-") => {
                let event_name = fields
                    .get("eventName")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                // Moved, not copied: the args are the message, user and room documents.
                let args = match fields.get_mut("args").map(Value::take) {
                    Some(Value::Array(a)) => a,
                    _ => Vec::new(),
                };
                self.emit(ClientEvent::Stream {
                    collection,
                    event_name,
                    args,
                })
                .await;
            }
            ServerFrame::Error { reason } => {
                tracing::warn!(reason = %reason, "the server reported a DDP protocol error");
            }
            _ => {}
        }
    }

    /// Performs a caller's request on the current link; `info` is this login's.
    async fn command(
        &mut self,
        cmd: Command,
        link: &mut Link,
        info: &SessionInfo,
    ) -> Result<(), Outcome> {
        match cmd {
            Command::Call {
                method,
                relay_only: true,
                reply,
                ..
            } if !info.server.otr_relay => {
                tracing::debug!(%method, "7.x relay call refused: this server has no OTR relay");
                let _ = reply.send(Err(RcError::NoRelay { method }));
                Ok(())
            }
            Command::Call {
                method,
                params,
                reply,
                ..
            } => {
                let id = self.method_id();
                let frame = ddp::method_frame(&id, &method, &params);
                self.pending.insert(id, Pending { method, reply });
                link.send(frame).await
            }
            Command::Subscribe {
                id,
                name,
                params,
                reply,
            } => {
                let frame = ddp::sub_frame(&id.0, &name, &params);
                self.subs.insert(
                    id,
                    Sub {
                        name,
                        params,
                        ready: false,
                        waiter: Some(reply),
                    },
                );
                link.send(frame).await
            }
            Command::Unsubscribe(id) => match self.subs.remove(&id) {
                Some(_) => link.send(ddp::unsub_frame(&id.0)).await,
                None => Ok(()),
            },
        }
    }

    pub(super) fn method_id(&mut self) -> String {
        let id = self.next_id;
        self.next_id += 1;
        id.to_string()
    }

    /// The link is gone: pending calls fail, the session is no longer current.
    fn on_disconnect(&mut self, err: impl Fn() -> RcError) {
        for (_, p) in self.pending.drain() {
            let _ = p.reply.send(Err(err()));
        }
        for sub in self.subs.values_mut() {
            sub.ready = false;
        }
        self.state.send_modify(|s| s.session = None);
    }

    pub(super) fn set_auth(&self, auth: Option<RestAuth>) {
        match self.auth.write() {
            Ok(mut g) => *g = auth,
            Err(p) => *p.into_inner() = auth,
        }
    }

    pub(super) async fn emit_connection(&self, state: ConnectionState, detail: String) {
        self.emit(ClientEvent::Connection { state, detail }).await;
    }

    pub(super) async fn emit(&self, ev: ClientEvent) {
        // Back-pressure rather than loss; a dropped receiver means nobody listens any more.
        let _ = self.events.send(ev).await;
    }
}
