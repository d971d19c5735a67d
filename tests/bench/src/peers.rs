//! The scale run's peers: a lightweight load generator imitating N stock clients with auto-accept.
//!
//! Each peer is one plain DDP websocket (a few KB) logged in to rcsim as its own user and
//! subscribed to its `<uid>/otr` signalling stream; invitations are answered by a pure
//! `otrd::otr::session::Session` (legacy scheme, auto-accept) whose outputs are performed as DDP
//! method calls, fire-and-forget. No engine, HTTP client or TLS stack per peer, so 10,000 fit.
//!
//! The peers run in a child process (this binary with `--peers-of URL --peers N`): one process
//! holding both ends of 10,000 loopback sockets would exceed the usual 20,000-descriptor limit.
//! The child prints `ready N` on stdout once every peer is logged in and subscribed.

use anyhow::{bail, Context, Result};
use futures::{SinkExt, StreamExt};
use otrd::otr::session::{Input, Output, RoomContext, Session, SessionPolicy, SignalKind};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

/// Peers connecting at once (keeps rcsim's accept backlog and the CPU share reasonable).
const CONNECTING: usize = 128;

/// The child process running the peers; killed on drop.
pub struct PeerProcess {
    child: Child,
}

impl PeerProcess {
    /// Starts `n` peers (users `harness::user(0..n)`) against rcsim at `http_url` and waits until
    /// all are logged in and subscribed (at most `within`).
    pub fn start(http_url: &str, n: usize, within: Duration) -> Result<PeerProcess> {
        let mut child = Command::new(std::env::current_exe()?)
            .arg("--peers-of")
            .arg(http_url)
            .arg("--peers")
            .arg(n.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting the peer process")?;
        let stdout = child.stdout.take().context("peer process stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut p = PeerProcess { child };
        match rx.recv_timeout(within) {
            Ok(line) if line == format!("ready {n}") => Ok(p),
            Ok(line) => bail!("peer process: {line}"),
            Err(_) => {
                let status = p.child.try_wait()?;
                bail!("peers not ready within {within:?} (process status {status:?})")
            }
        }
    }
}

impl Drop for PeerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The child's main: runs `n` peers until killed. Prints `ready n` or `failed: …`.
pub async fn serve(http_url: &str, n: usize) -> Result<()> {
    let ws_url = format!(
        "ws://{}/websocket",
        http_url.strip_prefix("http://").unwrap_or(http_url)
    );
    let ready = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Semaphore::new(CONNECTING));
    let (fail_tx, mut fail_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    for i in 0..n {
        let (url, ready, gate, fail) =
            (ws_url.clone(), ready.clone(), gate.clone(), fail_tx.clone());
        tokio::spawn(async move {
            if let Err(e) = peer(&url, &crate::harness::user(i), &ready, &gate).await {
                let _ = fail.send(format!("peer {i}: {e:#}"));
            }
        });
    }
    drop(fail_tx);
    let t = Instant::now();
    loop {
        if let Ok(msg) = fail_rx.try_recv() {
            println!("failed: {msg}");
            bail!(msg);
        }
        if ready.load(Ordering::Relaxed) == n {
            println!("ready {n}");
            eprintln!(
                "otrd-bench: {n} peers online in {:.1} s",
                t.elapsed().as_secs_f64()
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Runs until the parent kills the process; a peer that fails later is reported on stderr.
    while let Some(msg) = fail_rx.recv().await {
        eprintln!("otrd-bench: {msg}");
    }
    std::future::pending::<()>().await;
    Ok(())
}

fn frame(v: Value) -> Message {
    Message::text(v.to_string())
}

/// One peer: connect, log in, subscribe, then answer signalling until the socket closes.
async fn peer(url: &str, username: &str, ready: &AtomicUsize, gate: &Semaphore) -> Result<()> {
    let permit = gate.acquire().await?;
    // Small buffers: the frames here are a few hundred bytes.
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), true)
        .await
        .context("websocket")?;
    ws.send(frame(
        json!({"msg": "connect", "version": "1", "support": ["1"]}),
    ))
    .await?;
    ws.send(frame(
        json!({"msg": "method", "method": "login", "id": "login",
        "params": [{"user": {"username": username}, "password": "pw"}]}),
    ))
    .await?;
    let mut uid: Option<String> = None;
    let mut session: Option<Session> = None;
    let mut calls = 0u64;
    let mut rng = rand::rngs::OsRng;
    let mut permit = Some(permit);
    while let Some(msg) = ws.next().await {
        let text = match msg? {
            Message::Text(t) => t,
            Message::Close(_) => break,
            _ => continue,
        };
        let v: Value = serde_json::from_str(text.as_str()).context("DDP frame")?;
        match v["msg"].as_str() {
            Some("ping") => ws.send(frame(json!({"msg": "pong"}))).await?,
            Some("result") if v["id"] == "login" => {
                let id = v["result"]["id"].as_str().context("login refused")?;
                ws.send(frame(
                    json!({"msg": "sub", "id": "otr", "name": "stream-notify-user",
                    "params": [format!("{id}/otr"), {"useCollection": false, "args": []}]}),
                ))
                .await?;
                uid = Some(id.to_owned());
            }
            Some("ready") => {
                ready.fetch_add(1, Ordering::Relaxed);
                permit.take();
            }
            Some("nosub") => bail!("subscription refused: {}", v["error"]),
            Some("changed") if v["collection"] == "stream-notify-user" => {
                let Some(my_uid) = uid.as_deref() else {
                    continue;
                };
                let args = &v["fields"]["args"];
                let Some(kind) = args[0].as_str().and_then(SignalKind::from_wire) else {
                    continue;
                };
                let payload = args[1].clone();
                let s = session.get_or_insert_with(|| {
                    Session::new(
                        RoomContext {
                            room_id: payload["roomId"].as_str().unwrap_or_default().to_owned(),
                            my_uid: my_uid.to_owned(),
                            peer_uid: payload["userId"].as_str().unwrap_or_default().to_owned(),
                            peer_username: "me".into(),
                        },
                        SessionPolicy::new(true, 60_000),
                    )
                });
                let now = now_ms();
                let outputs = s
                    .handle(Input::Signal { kind, payload }, now, &mut rng)
                    .unwrap_or_default();
                let ctx = s.context().clone();
                for out in outputs {
                    let (method, params) = match out {
                        Output::Signal { kind, payload } => (
                            "stream-notify-user",
                            json!([format!("{}/otr", ctx.peer_uid), kind.as_str(), payload]),
                        ),
                        Output::DeleteOldMessages => ("deleteOldOTRMessages", json!([ctx.room_id])),
                        Output::SendAck { message, ack } => {
                            ("updateOTRAck", json!([{"message": message, "ack": ack}]))
                        }
                        Output::SendMessage { id, msg } => (
                            "sendMessage",
                            json!([{"_id": id, "rid": ctx.room_id, "msg": msg, "t": "otr"}]),
                        ),
                        // A responder posts no system messages; front-end events have no reader.
                        Output::SystemMessage { .. } | Output::Event(_) => continue,
                    };
                    calls += 1;
                    ws.send(frame(json!({"msg": "method", "method": method,
                        "id": calls.to_string(), "params": params})))
                        .await?;
                }
            }
            _ => {}
        }
    }
    if permit.is_some() {
        bail!("connection closed before the peer was ready");
    }
    Ok(())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
