//! Test helpers: a minimal DDP client over tokio-tungstenite and a raw HTTP/1.1 client, both
//! waiting on conditions with timeouts (never sleep-and-hope).
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use rcsim::{SimConfig, SimHandle};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long any single wait may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(5);

pub async fn sim(cfg: SimConfig) -> SimHandle {
    let bind: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    rcsim::start(cfg, bind).await.expect("start rcsim")
}

/// Demo config (me/demo, echo/echo, DM) with the given tweak applied.
pub fn demo_with(f: impl FnOnce(&mut SimConfig)) -> SimConfig {
    let mut cfg = SimConfig::demo();
    f(&mut cfg);
    cfg
}

pub const ME: &str = "MeUser0000000001a";
pub const ECHO: &str = "EchoUser00000001b";
pub const DM: &str = "DemoDmRoom000001c";

pub struct Ddp {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next: u64,
    backlog: VecDeque<Value>,
    pub closed: bool,
}

impl Ddp {
    /// Opens the socket and completes `connect`.
    pub async fn connect(url: &str) -> Ddp {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("ws connect");
        let mut c = Ddp {
            ws,
            next: 0,
            backlog: VecDeque::new(),
            closed: false,
        };
        let hello = c.next_frame().await.expect("hello");
        assert_eq!(hello, json!({"server_id": "0"}));
        c.send(json!({"msg":"connect","version":"1","support":["1","pre2","pre1"]}))
            .await;
        let f = c.wait(|f| f["msg"] == "connected").await;
        assert!(f["session"].is_string());
        c
    }

    /// Connects and logs in with a password.
    pub async fn login_as(url: &str, user: &str, password: &str) -> Ddp {
        let mut c = Ddp::connect(url).await;
        let r = c.login(user, password).await;
        assert!(r["result"]["token"].is_string(), "login failed: {r}");
        c
    }

    pub async fn send(&mut self, v: Value) {
        self.send_text(v.to_string()).await;
    }

    pub async fn send_text(&mut self, t: String) {
        self.ws
            .send(Message::Text(t.into()))
            .await
            .expect("ws send");
    }

    /// Next parsed frame from the socket (answers server pings), `None` when closed.
    async fn next_frame(&mut self) -> Option<Value> {
        loop {
            let m = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("timed out waiting for a frame");
            match m {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(&t).expect("server sent JSON");
                    if v["msg"] == "ping" {
                        self.send(json!({"msg":"pong"})).await;
                        continue;
                    }
                    return Some(v);
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    self.closed = true;
                    return None;
                }
                Some(Ok(_)) => continue,
            }
        }
    }

    /// Waits for the first frame matching `pred` (earlier non-matching frames are kept).
    pub async fn wait(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.backlog.iter().position(&pred) {
            return self.backlog.remove(i).expect("index valid");
        }
        loop {
            let f = self
                .next_frame()
                .await
                .expect("connection closed while waiting");
            if pred(&f) {
                return f;
            }
            self.backlog.push_back(f);
        }
    }

    /// Frames received so far (buffered) matching `pred`.
    pub fn seen(&self, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        self.backlog.iter().filter(|f| pred(f)).cloned().collect()
    }

    /// Waits until the server closes the socket.
    pub async fn wait_closed(&mut self) {
        while !self.closed {
            if let Some(f) = self.next_frame().await {
                self.backlog.push_back(f);
            }
        }
    }

    /// Calls a method and returns its `result` frame (the `updated` frame is consumed too).
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = format!("m{}", self.next);
        self.send(json!({"msg":"method","method":method,"id":id,"params":params}))
            .await;
        let r = self
            .wait(|f| f["msg"] == "result" && f["id"] == id.as_str())
            .await;
        self.wait(|f| f["msg"] == "updated" && f["methods"][0] == id.as_str())
            .await;
        r
    }

    pub async fn login(&mut self, user: &str, password: &str) -> Value {
        let digest = sha256_hex(password);
        self.call(
            "login",
            json!([{"user":{"username":user},"password":{"digest":digest,"algorithm":"sha-256"}}]),
        )
        .await
    }

    /// Subscribes; returns the `ready` or `nosub` frame.
    pub async fn sub(&mut self, name: &str, params: Value) -> Value {
        self.next += 1;
        let id = format!("s{}", self.next);
        self.send(json!({"msg":"sub","id":id,"name":name,"params":params}))
            .await;
        self.wait(|f| {
            (f["msg"] == "ready" && f["subs"][0] == id.as_str())
                || (f["msg"] == "nosub" && f["id"] == id.as_str())
        })
        .await
    }

    /// Subscribes to a stream event and asserts `ready`.
    pub async fn sub_ok(&mut self, name: &str, event: &str) {
        let r = self
            .sub(name, json!([event, {"useCollection": false, "args": []}]))
            .await;
        assert_eq!(
            r["msg"], "ready",
            "subscription {name} {event} refused: {r}"
        );
    }

    /// Waits for a stream event on `collection`/`event`.
    pub async fn event(&mut self, collection: &str, event: &str) -> Value {
        let (c, e) = (collection.to_string(), event.to_string());
        self.wait(move |f| {
            f["msg"] == "changed"
                && f["collection"] == c.as_str()
                && f["fields"]["eventName"] == e.as_str()
        })
        .await
    }
}

pub fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A raw HTTP/1.1 request; returns (status, parsed JSON body).
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    auth: Option<(&str, &str)>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut s = TcpStream::connect(addr).await.expect("tcp connect");
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n", body.len());
    if let Some((uid, token)) = auth {
        req.push_str(&format!("X-User-Id: {uid}\r\nX-Auth-Token: {token}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(&body);
    s.write_all(req.as_bytes()).await.expect("http write");
    let mut buf = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut buf))
        .await
        .expect("http timeout")
        .expect("http read");
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status: u16 = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let (head, rest) = text.split_once("\r\n\r\n").expect("http head");
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((len, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(len.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}
