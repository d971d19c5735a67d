//! A minimal scripted DDP server (tokio-tungstenite) for the client's connection behaviour:
//! connect, login (password digest or resume), ping/pong, subscriptions, a few methods, and
//! controls to inject raw frames, drop or freeze connections. REST is not served (the
//! client's capability probe then reports "unknown", which it must survive).

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, Notify};
use tokio_tungstenite::tungstenite::Message;

/// The only valid password and the token the server hands out.
pub const PASSWORD: &str = "correct horse";
pub const TOKEN: &str = "tok-1";
pub const USER_ID: &str = "aLiCe7yNSKqG3mZ2p";

/// What a test can make every live connection do.
#[derive(Clone, Debug)]
pub enum Control {
    /// Send this text frame.
    Raw(String),
    /// Send this binary frame.
    Binary(Vec<u8>),
    /// Close the connection.
    Drop,
    /// Stop reading and writing (a dead peer with an open socket).
    Freeze,
}

/// What the server saw.
#[derive(Debug, Default, Clone)]
pub struct Log {
    /// Websocket connections accepted.
    pub connections: usize,
    /// `"password"` / `"resume"` / `"bad"` per login attempt, in order.
    pub logins: Vec<String>,
    /// `(connection number, sub name)` per sub frame.
    pub subs: Vec<(usize, String)>,
    /// Ids of pongs received for our pings.
    pub pongs: Vec<Option<String>>,
    /// Pings the client sent.
    pub client_pings: usize,
    /// Method ids seen (to check uniqueness).
    pub method_ids: Vec<String>,
}

pub struct MiniServer {
    pub url: String,
    log: Arc<Mutex<Log>>,
    control: broadcast::Sender<Control>,
    /// Signalled whenever the log changes.
    pub changed: Arc<Notify>,
}

impl MiniServer {
    pub async fn start() -> MiniServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let log = Arc::new(Mutex::new(Log::default()));
        let (control, _) = broadcast::channel(64);
        let changed = Arc::new(Notify::new());
        let (l, c, n) = (log.clone(), control.clone(), changed.clone());
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (l, rx, n) = (l.clone(), c.subscribe(), n.clone());
                tokio::spawn(async move {
                    // A DDP-only server: REST (login, probes) gets the 404 of a server without
                    // that route, so the client falls back to DDP login.
                    let mut head = [0u8; 16];
                    let got = tcp.peek(&mut head).await.unwrap_or(0);
                    if head[..got].starts_with(b"POST ") || head[..got].starts_with(b"GET /api") {
                        let mut tcp = tcp;
                        let _ = tokio::io::AsyncWriteExt::write_all(
                            &mut tcp,
                            b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        )
                        .await;
                        return;
                    }
                    if let Ok(ws) = tokio_tungstenite::accept_async(tcp).await {
                        serve(ws, l, rx, n).await;
                    }
                });
            }
        });
        MiniServer {
            url: format!("http://{addr}"),
            log,
            control,
            changed,
        }
    }

    pub fn log(&self) -> Log {
        self.log.lock().expect("log").clone()
    }

    pub fn send(&self, c: Control) {
        let _ = self.control.send(c);
    }

    /// Waits until `pred(log)` holds (10 s at most).
    pub async fn wait_for(&self, what: &str, pred: impl Fn(&Log) -> bool) {
        let fut = async {
            loop {
                let notified = self.changed.notified();
                if pred(&self.log()) {
                    return;
                }
                notified.await;
            }
        };
        if tokio::time::timeout(super::WAIT, fut).await.is_err() {
            panic!("server never saw {what}: {:?}", self.log());
        }
    }
}

fn digest(pw: &str) -> String {
    Sha256::digest(pw.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn serve(
    mut ws: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    log: Arc<Mutex<Log>>,
    mut control: broadcast::Receiver<Control>,
    changed: Arc<Notify>,
) {
    let conn = {
        let mut l = log.lock().expect("log");
        l.connections += 1;
        l.connections
    };
    changed.notify_waiters();
    let mut limited_once = false;
    loop {
        tokio::select! {
            c = control.recv() => match c {
                Ok(Control::Raw(t)) => { let _ = ws.send(Message::text(t)).await; }
                Ok(Control::Binary(b)) => { let _ = ws.send(Message::binary(b)).await; }
                Ok(Control::Drop) | Err(_) => return,
                Ok(Control::Freeze) => {
                    // Hold the socket open without reading or answering until the client leaves.
                    std::future::pending::<()>().await;
                }
            },
            m = ws.next() => {
                let Some(Ok(Message::Text(t))) = m else {
                    if matches!(m, Some(Ok(_))) { continue; }
                    return;
                };
                let Ok(v) = serde_json::from_str::<Value>(t.as_str()) else { continue };
                let reply = handle(&v, conn, &log, &mut limited_once);
                changed.notify_waiters();
                for r in reply {
                    if ws.send(Message::text(r.to_string())).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

fn handle(v: &Value, conn: usize, log: &Mutex<Log>, limited_once: &mut bool) -> Vec<Value> {
    let mut l = log.lock().expect("log");
    let id = v.get("id").cloned().unwrap_or(Value::Null);
    match v.get("msg").and_then(Value::as_str).unwrap_or_default() {
        "connect" => vec![
            json!({"server_id":"0"}),
            json!({"msg":"connected","session":"s1"}),
        ],
        "ping" => {
            l.client_pings += 1;
            vec![json!({"msg":"pong","id":id})]
        }
        "pong" => {
            l.pongs.push(id.as_str().map(str::to_owned));
            vec![]
        }
        "sub" => {
            let name = v
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            l.subs.push((conn, name.clone()));
            if name == "forbidden" {
                vec![
                    json!({"msg":"nosub","id":id,"error":{"error":"not-allowed","message":"[not-allowed]"}}),
                ]
            } else {
                vec![json!({"msg":"ready","subs":[id]})]
            }
        }
        "method" => {
            l.method_ids
                .push(id.as_str().unwrap_or_default().to_owned());
            let params = v.get("params").cloned().unwrap_or(json!([]));
            match v.get("method").and_then(Value::as_str).unwrap_or_default() {
                "login" => {
                    let p = &params[0];
                    let ok = if p.get("resume").and_then(Value::as_str) == Some(TOKEN) {
                        l.logins.push("resume".into());
                        true
                    } else if p["password"]["digest"].as_str() == Some(digest(PASSWORD).as_str()) {
                        l.logins.push("password".into());
                        true
                    } else {
                        l.logins.push("bad".into());
                        false
                    };
                    if ok {
                        vec![
                            json!({"msg":"result","id":id,"result":{"id":USER_ID,"token":TOKEN,"type":"resume"}}),
                        ]
                    } else {
                        vec![
                            json!({"msg":"result","id":id,"error":{"error":403,"reason":"Incorrect password"}}),
                        ]
                    }
                }
                "echo" => vec![json!({"msg":"result","id":id,"result":params[0]})],
                "void" => vec![
                    json!({"msg":"result","id":id}),
                    json!({"msg":"updated","methods":[id]}),
                ],
                "limited" if !*limited_once => {
                    *limited_once = true;
                    vec![
                        json!({"msg":"result","id":id,"error":{"error":"too-many-requests","reason":"slow down","details":{"timeToReset":100}}}),
                    ]
                }
                "limited" => vec![json!({"msg":"result","id":id,"result":"finally"})],
                "hang" => vec![],
                _ => vec![
                    json!({"msg":"result","id":id,"error":{"error":404,"reason":"Method not found"}}),
                ],
            }
        }
        _ => vec![],
    }
}
