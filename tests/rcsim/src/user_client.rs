//! A minimal DDP client logged in as one user over a real websocket: what a third user's browser
//! (or script) would be to the server. Load and attack generators ([`crate::flood`]) write
//! through it, so what they send goes through the simulator's own websocket handling, audit,
//! rate limiter and stream rules like anybody else's — never around them.
//!
//! Calls are fire-and-forget ([`UserClient::call`]) or awaited ([`UserClient::call_wait`]); a
//! background task answers the server's pings and counts results, errors and rate-limit refusals.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use crate::state::sha256_hex;

/// How long login may take.
const LOGIN_WAIT: Duration = Duration::from_secs(10);

/// Answers to awaited calls, by method id.
type Pending = Arc<Mutex<HashMap<String, oneshot::Sender<Value>>>>;

/// Counters of what the server answered.
#[derive(Debug, Default)]
pub struct CallStats {
    /// `result` frames without an error.
    pub results: AtomicU64,
    /// `result` frames with an error (any).
    pub errors: AtomicU64,
    /// Of the errors, `too-many-requests`.
    pub rate_limited: AtomicU64,
}

/// One logged-in user's connection.
pub struct UserClient {
    uid: String,
    out: mpsc::UnboundedSender<Message>,
    next_id: AtomicU64,
    pending: Pending,
    stats: Arc<CallStats>,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

impl std::fmt::Debug for UserClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserClient")
            .field("uid", &self.uid)
            .finish_non_exhaustive()
    }
}

impl UserClient {
    /// Connects to `ws_url` (`ws://…/websocket`) and logs in with a password (sent as its
    /// SHA-256 digest, as Meteor clients do).
    pub async fn login(ws_url: &str, username: &str, password: &str) -> anyhow::Result<Self> {
        let (ws, _) = tokio_tungstenite::connect_async(ws_url)
            .await
            .with_context(|| format!("connecting to {ws_url}"))?;
        let (mut sink, mut stream) = ws.split();
        let send = |v: Value| Message::text(v.to_string());
        sink.send(send(
            json!({"msg": "connect", "version": "1", "support": ["1"]}),
        ))
        .await?;
        sink.send(send(
            json!({"msg": "method", "method": "login", "id": "login",
            "params": [{"user": {"username": username},
                        "password": {"digest": sha256_hex(password), "algorithm": "sha-256"}}]}),
        ))
        .await?;
        let uid = tokio::time::timeout(LOGIN_WAIT, async {
            while let Some(frame) = stream.next().await {
                let Message::Text(t) = frame? else { continue };
                let v: Value = serde_json::from_str(t.as_str()).unwrap_or(Value::Null);
                if v["msg"] == "result" && v["id"] == "login" {
                    return match v["result"]["id"].as_str() {
                        Some(id) => Ok(id.to_owned()),
                        None => bail!("login as {username} refused: {}", v["error"]),
                    };
                }
            }
            bail!("connection closed during login")
        })
        .await
        .context("login timed out")??;

        let (out, mut rx) = mpsc::unbounded_channel::<Message>();
        let writer = tokio::spawn(async move {
            while let Some(m) = rx.recv().await {
                if sink.send(m).await.is_err() {
                    return;
                }
            }
        });
        let pending: Pending = Arc::default();
        let stats = Arc::new(CallStats::default());
        let reader = tokio::spawn(read_loop(
            stream,
            out.clone(),
            pending.clone(),
            stats.clone(),
        ));
        Ok(Self {
            uid,
            out,
            next_id: AtomicU64::new(1),
            pending,
            stats,
            reader,
            writer,
        })
    }

    /// The user id the server gave at login.
    pub fn uid(&self) -> &str {
        &self.uid
    }

    /// Counters of the server's answers so far.
    pub fn stats(&self) -> &CallStats {
        &self.stats
    }

    /// Sends a method call without waiting for its result; false when the connection is gone.
    pub fn call(&self, method: &str, params: Value) -> bool {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed).to_string();
        self.send_call(&id, method, params)
    }

    /// Sends a method call and waits (at most `within`) for its `result` frame.
    pub async fn call_wait(
        &self,
        method: &str,
        params: Value,
        within: Duration,
    ) -> anyhow::Result<Value> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed).to_string();
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), tx);
        if !self.send_call(&id, method, params) {
            bail!("connection closed");
        }
        tokio::time::timeout(within, rx)
            .await
            .with_context(|| format!("no result for {method} within {within:?}"))?
            .context("connection closed before the result")
    }

    /// Sends a method call whose params array is already serialised (generators that build many
    /// frames keep one serialisation per frame); fire-and-forget like [`Self::call`].
    pub fn send_raw(&self, method: &str, params_json: &str) -> bool {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let method = Value::from(method);
        let frame =
            format!(r#"{{"msg":"method","method":{method},"id":"{id}","params":{params_json}}}"#);
        self.out.send(Message::text(frame)).is_ok()
    }

    fn send_call(&self, id: &str, method: &str, params: Value) -> bool {
        let frame = json!({"msg": "method", "method": method, "id": id, "params": params});
        self.out.send(Message::text(frame.to_string())).is_ok()
    }
}

impl Drop for UserClient {
    fn drop(&mut self) {
        self.reader.abort();
        self.writer.abort();
    }
}

async fn read_loop(
    mut stream: futures::stream::SplitStream<
        tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
    >,
    out: mpsc::UnboundedSender<Message>,
    pending: Pending,
    stats: Arc<CallStats>,
) {
    while let Some(Ok(frame)) = stream.next().await {
        let Message::Text(t) = frame else { continue };
        let Ok(v) = serde_json::from_str::<Value>(t.as_str()) else {
            continue;
        };
        match v["msg"].as_str() {
            Some("ping") => {
                let mut pong = json!({"msg": "pong"});
                if let Some(id) = v.get("id") {
                    pong["id"] = id.clone();
                }
                let _ = out.send(Message::text(pong.to_string()));
            }
            Some("result") => {
                if v.get("error").is_some() {
                    stats.errors.fetch_add(1, Ordering::Relaxed);
                    if v["error"]["error"] == "too-many-requests" {
                        stats.rate_limited.fetch_add(1, Ordering::Relaxed);
                    }
                } else {
                    stats.results.fetch_add(1, Ordering::Relaxed);
                }
                let waiter = v["id"]
                    .as_str()
                    .and_then(|id| pending.lock().unwrap_or_else(|e| e.into_inner()).remove(id));
                if let Some(tx) = waiter {
                    let _ = tx.send(v);
                }
            }
            _ => {}
        }
    }
}
