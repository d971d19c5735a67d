//! One websocket connection at `/websocket`: registers itself, sends Meteor's hello, runs the
//! heartbeat, audits every inbound frame, and processes DDP messages the way Meteor's livedata
//! server does (`connect`, `ping`/`pong`, `method`, `sub`, `unsub`, protocol errors). All replies
//! and events go out through the connection's writer channel so they keep their order.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket};
use serde_json::Value;
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

use crate::audit::Transport;
use crate::ddp;
use crate::methods;
use crate::sim::Sim;
use crate::state::{Conn, ConnId, Out};
use crate::streams;

/// DDP versions Meteor supports, preferred first.
const SUPPORTED_VERSIONS: [&str; 3] = ["1", "pre2", "pre1"];

/// What the loop should do after a frame.
enum Flow {
    Continue,
    Close,
}

/// Serves one upgraded websocket until it closes or is dropped.
pub async fn serve(sim: Arc<Sim>, mut socket: WebSocket) {
    let conn = sim.next_conn_id();
    let (tx, mut rx) = unbounded_channel();
    sim.lock().conns.insert(
        conn,
        Conn {
            tx: tx.clone(),
            user: None,
            subs: Vec::new(),
            presence_uids: HashSet::new(),
        },
    );
    tracing::debug!(conn, "websocket opened");
    let mut session: Option<String> = None;
    let heartbeat = Duration::from_millis(sim.cfg.heartbeat_ms);
    let mut last_inbound = Instant::now();
    let mut pinged = false;

    if socket
        .send(Message::Text(ddp::server_hello().into()))
        .await
        .is_ok()
    {
        loop {
            let wait = if heartbeat.is_zero() {
                Duration::from_secs(3600)
            } else if pinged {
                heartbeat * 2
            } else {
                heartbeat
            };
            let deadline = tokio::time::Instant::from_std(last_inbound + wait);
            tokio::select! {
                inbound = socket.recv() => {
                    let text = match inbound {
                        Some(Ok(Message::Text(t))) => t.to_string(),
                        Some(Ok(Message::Binary(b))) => String::from_utf8_lossy(&b).into_owned(),
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                        Some(Ok(Message::Close(_))) | None => break,
                        Some(Err(e)) => {
                            tracing::debug!(conn, error = %e, "websocket read failed");
                            break;
                        }
                    };
                    last_inbound = Instant::now();
                    pinged = false;
                    let user = sim.lock().conns.get(&conn).and_then(|c| c.user.clone());
                    sim.audit.client(Some(conn), Transport::Ws, user, text.clone());
                    if let Flow::Close = handle_frame(&sim, conn, &tx, &mut session, &text) {
                        // Let the writer flush what handle_frame queued (e.g. `failed`).
                        while let Ok(Out::Text(t)) = rx.try_recv() {
                            let _ = socket.send(Message::Text(t.into())).await;
                        }
                        break;
                    }
                }
                out = rx.recv() => match out {
                    Some(Out::Text(t)) => {
                        if socket.send(Message::Text(t.into())).await.is_err() {
                            break;
                        }
                    }
                    Some(Out::Close) | None => {
                        let _ = socket.send(Message::Close(None)).await;
                        break;
                    }
                },
                _ = tokio::time::sleep_until(deadline) => {
                    if pinged {
                        tracing::debug!(conn, "heartbeat timeout");
                        break;
                    }
                    pinged = true;
                    if socket.send(Message::Text(ddp::ping().into())).await.is_err() {
                        break;
                    }
                }
            }
        }
    }
    let user = sim.lock().conns.remove(&conn).and_then(|c| c.user);
    tracing::debug!(conn, "websocket closed");
    if let Some(uid) = user {
        sim.refresh_presence(&uid);
    }
}

fn send(tx: &UnboundedSender<Out>, frame: String) {
    // The receiver lives as long as the connection loop; a send error means it is ending.
    let _ = tx.send(Out::Text(frame));
}

/// Processes one inbound text frame.
fn handle_frame(
    sim: &Sim,
    conn: ConnId,
    tx: &UnboundedSender<Out>,
    session: &mut Option<String>,
    text: &str,
) -> Flow {
    let Ok(msg) = serde_json::from_str::<Value>(text) else {
        send(tx, ddp::protocol_error("Parse error", None));
        return Flow::Continue;
    };
    let kind = msg.get("msg").and_then(Value::as_str).unwrap_or("");
    if kind.is_empty() {
        send(tx, ddp::protocol_error("Bad request", Some(&msg)));
        return Flow::Continue;
    }
    if kind == "connect" {
        return connect(tx, session, &msg);
    }
    if session.is_none() {
        send(tx, ddp::protocol_error("Must connect first", Some(&msg)));
        return Flow::Continue;
    }
    match kind {
        "ping" => send(tx, ddp::pong(msg.get("id"))),
        "pong" => {}
        "method" => method(sim, conn, tx, &msg),
        "sub" => subscribe(sim, conn, tx, &msg),
        "unsub" => {
            let id = msg.get("id").cloned().unwrap_or(Value::Null);
            streams::unsubscribe(sim, conn, &id);
            send(tx, ddp::nosub(&id, None));
        }
        _ => send(tx, ddp::protocol_error("Bad request", Some(&msg))),
    }
    Flow::Continue
}

fn connect(tx: &UnboundedSender<Out>, session: &mut Option<String>, msg: &Value) -> Flow {
    if session.is_some() {
        send(tx, ddp::protocol_error("Already connected", Some(msg)));
        return Flow::Continue;
    }
    let version = msg.get("version").and_then(Value::as_str);
    let support: Option<Vec<&str>> = msg
        .get("support")
        .and_then(Value::as_array)
        .and_then(|a| a.iter().map(Value::as_str).collect());
    let (Some(version), Some(support)) = (version, support) else {
        send(tx, ddp::failed());
        return Flow::Close;
    };
    if !support.contains(&version) {
        send(tx, ddp::failed());
        return Flow::Close;
    }
    let chosen = support.iter().find(|v| SUPPORTED_VERSIONS.contains(v));
    if chosen != Some(&version) {
        send(tx, ddp::failed());
        return Flow::Close;
    }
    let id = ddp::random_id();
    send(tx, ddp::connected(&id));
    *session = Some(id);
    Flow::Continue
}

fn method(sim: &Sim, conn: ConnId, tx: &UnboundedSender<Out>, msg: &Value) {
    let id = msg.get("id").filter(|v| v.is_string());
    let name = msg.get("method").and_then(Value::as_str);
    let params = match msg.get("params") {
        None => Some(Vec::new()),
        Some(Value::Array(a)) => Some(a.clone()),
        Some(_) => None,
    };
    let (Some(id), Some(name), Some(params)) = (id, name, params) else {
        send(
            tx,
            ddp::protocol_error("Malformed method invocation", Some(msg)),
        );
        return;
    };
    // The 9.0 mode: methods moved to REST are gone from DDP.
    let outcome = match crate::rest::auth::ddp_refuses(sim, name) {
        Some(e) => Err(e),
        None => methods::call(sim, conn, name, &params),
    };
    let frame = match outcome {
        Ok(value) => ddp::result(id, value),
        Err(e) => ddp::result_error(id, &e),
    };
    send(tx, frame);
    send(tx, ddp::updated(id));
}

fn subscribe(sim: &Sim, conn: ConnId, tx: &UnboundedSender<Out>, msg: &Value) {
    let id = msg.get("id").filter(|v| v.is_string());
    let name = msg.get("name").and_then(Value::as_str);
    let params = match msg.get("params") {
        None => Some(Vec::new()),
        Some(Value::Array(a)) => Some(a.clone()),
        Some(_) => None,
    };
    let (Some(id), Some(name), Some(params)) = (id, name, params) else {
        send(tx, ddp::protocol_error("Malformed subscription", Some(msg)));
        return;
    };
    match streams::subscribe(sim, conn, id, name, &params) {
        Ok(()) => send(tx, ddp::ready(id)),
        Err(e) => send(tx, ddp::nosub(id, Some(&e))),
    }
}
