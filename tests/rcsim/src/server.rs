//! Starting a simulator on a socket and controlling it from Rust: [`start`] serves DDP
//! (`/websocket`), REST (`/api`) and test control (`/_sim`) on one port and returns a
//! [`SimHandle`] for the audit and fault injection. HTTP requests are audited by a middleware.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::body::{to_bytes, Body};
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::audit::{Audit, Transport};
use crate::config::{SimConfig, Status, UserConfig};
use crate::sim::Sim;
use crate::{admin, conn, rest};

/// Largest HTTP body the audit middleware buffers.
const MAX_HTTP_BODY: usize = 16 * 1024 * 1024;

/// Starts a simulator bound to `bind` (use port 0 for an ephemeral port).
pub async fn start(cfg: SimConfig, bind: SocketAddr) -> anyhow::Result<SimHandle> {
    let sim = Arc::new(Sim::new(cfg).context("building simulator state")?);
    let listener = TcpListener::bind(bind)
        .await
        .with_context(|| format!("binding rcsim to {bind}"))?;
    let addr = listener
        .local_addr()
        .context("reading rcsim local address")?;
    let app = router(sim.clone());
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        // A real server's frames are not held back by Nagle's algorithm waiting on delayed ACKs
        // (that alone added ~40 ms to every relayed event on loopback).
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "cannot set TCP_NODELAY");
            }
        });
        let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
            let _ = rx.await;
        });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "rcsim server stopped with an error");
        }
    });
    tracing::info!(%addr, "rcsim listening");
    Ok(SimHandle {
        sim,
        addr,
        shutdown: Some(tx),
        task: Some(task),
    })
}

fn router(sim: Arc<Sim>) -> Router {
    Router::new()
        .route("/websocket", get(websocket))
        .merge(rest::router())
        .fallback(|| async { rest::not_found() })
        .layer(middleware::from_fn_with_state(sim.clone(), audit_http))
        .merge(admin::router())
        .with_state(sim)
}

async fn websocket(State(sim): State<Arc<Sim>>, ws: WebSocketUpgrade) -> Response {
    let max = sim.cfg.max_ws_frame_bytes;
    ws.max_frame_size(max)
        .max_message_size(max)
        .on_upgrade(move |socket| conn::serve(sim, socket))
}

/// Records every HTTP request line, query and body (not `/_sim`, not the upgrade request body).
async fn audit_http(State(sim): State<Arc<Sim>>, req: Request, next: Next) -> Response {
    let user = req
        .headers()
        .get("x-user-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let line = format!("{} {}", req.method(), req.uri());
    if req.uri().path() == "/websocket" {
        sim.audit.client(None, Transport::Http, user, line);
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let bytes = match to_bytes(body, MAX_HTTP_BODY).await {
        Ok(b) => b,
        Err(_) => {
            sim.audit.client(None, Transport::Http, user, line);
            return rest::too_large();
        }
    };
    let data = format!("{line}\n{}", String::from_utf8_lossy(&bytes));
    sim.audit.client(None, Transport::Http, user, data);
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// Control handle of a running simulator. Dropping it stops the server.
#[derive(Debug)]
pub struct SimHandle {
    sim: Arc<Sim>,
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl SimHandle {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>` (REST base; `GET {http_url}/api/info`).
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `ws://<addr>/websocket` (DDP endpoint).
    pub fn ws_url(&self) -> String {
        format!("ws://{}/websocket", self.addr)
    }

    /// Snapshot of everything clients sent and everything stored so far.
    pub fn audit(&self) -> Audit {
        self.sim.audit.snapshot()
    }

    /// Closes every websocket; returns how many were open.
    pub fn drop_all_connections(&self) -> usize {
        self.sim.drop_all_connections()
    }

    /// Number of open websockets.
    pub fn connection_count(&self) -> usize {
        self.sim.lock().conns.len()
    }

    /// Makes every login fail with 403 "Login forbidden" (or stops doing so).
    pub fn refuse_logins(&self, refuse: bool) {
        self.sim.faults.set_refuse_logins(refuse);
    }

    /// Delays every stream event by `delay` (zero = off).
    pub fn set_event_delay(&self, delay: Duration) {
        self.sim.faults.set_event_delay(delay);
    }

    /// Announces no new DM to its members (they learn of it only by listing their rooms).
    pub fn set_quiet_new_dms(&self, quiet: bool) {
        self.sim.faults.set_quiet_new_dms(quiet);
    }

    /// Sends every stream event twice.
    pub fn set_duplicate_events(&self, duplicate: bool) {
        self.sim.faults.set_duplicate_events(duplicate);
    }

    /// Makes the server a man in the middle of OTR signalling (see [`crate::mitm`]).
    pub fn set_mitm(&self, mode: crate::MitmMode) {
        self.sim.faults.set_mitm(mode);
    }

    /// How many signalling payloads the man in the middle has changed so far.
    pub fn mitm_rewrites(&self) -> u64 {
        self.sim.faults.mitm_rewrites()
    }

    /// Holds every `stream-room-messages` event from now on, until [`Self::release_held_reversed`].
    pub fn hold_room_messages(&self) {
        self.sim.faults.hold_room_messages();
    }

    /// Stops holding and delivers the held room-message events newest first (reordered);
    /// returns how many there were.
    pub fn release_held_reversed(&self) -> usize {
        self.sim.release_held_reversed()
    }

    /// Direct DDP injection, as a malicious server or relay could do: emits `args` on
    /// `collection`/`event` to every subscriber (e.g. replaying a captured OTR message on
    /// `stream-room-messages` `<rid>`).
    pub fn inject_stream_event(&self, collection: &str, event: &str, args: serde_json::Value) {
        self.sim.emit(collection, event, &args, None);
    }

    /// The server as an attacker: forges `f` into the victim's stream (see [`crate::attacker`]).
    /// Fails for unknown users or a room that cannot be found; `Forged::delivered` says how
    /// many of the victim's connections were listening.
    pub fn forge(&self, f: &crate::attacker::Forgery) -> anyhow::Result<crate::attacker::Forged> {
        Ok(crate::attacker::forge::forge(&self.sim, f)?)
    }

    /// What the attacker forged, saw answered and decrypted so far.
    pub fn attack_report(&self) -> crate::attacker::AttackReport {
        self.sim.attacker.report()
    }

    /// Switches the DDP rate limiter on or off.
    pub fn set_rate_limits(&self, enabled: bool) {
        self.sim
            .limiter
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .set_enabled(enabled);
    }

    /// Forces a user's presence (broadcast to presence subscribers) until cleared.
    pub fn set_presence(&self, username: &str, status: Status) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.sim.set_presence(username, Some(status)),
            "unknown user {username:?}"
        );
        Ok(())
    }

    /// Returns a user's presence to connection-driven behaviour.
    pub fn clear_presence(&self, username: &str) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.sim.set_presence(username, None),
            "unknown user {username:?}"
        );
        Ok(())
    }

    /// Adds a user; returns its id.
    pub fn add_user(&self, user: UserConfig) -> anyhow::Result<String> {
        Ok(self.sim.lock().add_user(&user)?)
    }

    /// Creates (or finds) the DM between two usernames, announcing a new room to both users on
    /// `subscriptions-changed` / `rooms-changed`; returns the room id.
    pub fn add_dm(&self, a: &str, b: &str) -> anyhow::Result<String> {
        let (rid, created) = {
            let mut st = self.sim.lock();
            let ua = st
                .user_by_name(a)
                .map(|u| u.id.clone())
                .context("unknown first user")?;
            let ub = st
                .user_by_name(b)
                .map(|u| u.id.clone())
                .context("unknown second user")?;
            st.ensure_dm(None, &ua, &ub)?
        };
        if created {
            self.sim.announce_new_dm(&rid);
        }
        Ok(rid)
    }

    /// A user's id by username.
    pub fn user_id(&self, username: &str) -> Option<String> {
        self.sim.lock().user_by_name(username).map(|u| u.id.clone())
    }

    /// Stops the server and closes every connection.
    pub async fn shutdown(mut self) {
        self.stop();
        if let Some(task) = self.task.take() {
            if tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
            {
                tracing::warn!("rcsim did not stop within 5 s");
            }
        }
    }

    fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.sim.drop_all_connections();
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.stop();
    }
}
