//! A driver for the stock-client test peer (`tests/stock-peer/stock-peer.mjs`): a Node.js process
//! that behaves like the stock Rocket.Chat web client's OTR, built from browser primitives only.
//!
//! The peer is driven by JSON lines on its stdin and reports JSON lines on its stdout; this type
//! starts it, waits for its `ready` event, sends commands and waits for events with timeouts.
//! Installing its npm dependencies is not this type's job (CI runs
//! `npm ci --prefix tests/stock-peer`); a missing `node_modules` is reported as an error saying so.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, Mutex};

/// How long `spawn` waits for the peer to log in and report `ready`.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// A running stock peer. Dropping it kills the Node process.
pub struct StockPeer {
    /// Kept so the process lives as long as this value (`kill_on_drop`).
    child: Child,
    /// Lines for the writer task, which owns the child's stdin; unbounded so `send` never blocks.
    commands: mpsc::UnboundedSender<String>,
    /// Parsed stdout lines from the reader task; closed when the process exits.
    events: Mutex<mpsc::UnboundedReceiver<Value>>,
    /// The `ready` event (carries `uid`, `username` and the DM `rooms`).
    ready: Value,
}

/// The directory holding `stock-peer.mjs` and its `package.json`.
pub fn stock_peer_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("stock-peer")
}

impl StockPeer {
    /// Start `node stock-peer.mjs --url <http_url> --user <user> --password <password> <extra_args>`
    /// and wait (up to 20 s) for its `ready` event.
    ///
    /// The Node binary is `node` from `PATH`, or `$OTRD_NODE` when set.
    pub async fn spawn(
        http_url: &str,
        user: &str,
        password: &str,
        extra_args: &[&str],
    ) -> anyhow::Result<StockPeer> {
        let dir = stock_peer_dir();
        if !dir.join("node_modules").join("ejson").is_dir()
            || !dir.join("node_modules").join("ws").is_dir()
        {
            bail!(
                "the stock peer's npm dependencies are not installed in {}: run `npm ci --prefix tests/stock-peer`",
                dir.display()
            );
        }
        let node = std::env::var("OTRD_NODE").unwrap_or_else(|_| "node".to_owned());
        let mut child = Command::new(&node)
            .arg(dir.join("stock-peer.mjs"))
            .args(["--url", http_url, "--user", user, "--password", password])
            .args(extra_args)
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| {
                format!("starting `{node}` for the stock peer (is Node.js 20 installed?)")
            })?;

        let mut stdin = child.stdin.take().context("stock peer stdin")?;
        let stdout = child.stdout.take().context("stock peer stdout")?;

        let (commands, mut command_rx) = mpsc::unbounded_channel::<String>();
        tokio::spawn(async move {
            while let Some(line) = command_rx.recv().await {
                if stdin.write_all(line.as_bytes()).await.is_err() || stdin.flush().await.is_err() {
                    break;
                }
            }
        });

        let (event_tx, events) = mpsc::unbounded_channel::<Value>();
        let who = user.to_owned();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                match serde_json::from_str::<Value>(&line) {
                    Ok(event) => {
                        if event_tx.send(event).is_err() {
                            break;
                        }
                    }
                    Err(_) => eprintln!("stock peer {who}: non-JSON output line: {line}"),
                }
            }
        });

        let mut peer = StockPeer {
            child,
            commands,
            events: Mutex::new(events),
            ready: Value::Null,
        };
        let ready = peer
            .wait_for(READY_TIMEOUT, |e| {
                e["event"] == "ready" || (e["event"] == "error" && e["message"].is_string())
            })
            .await
            .with_context(|| format!("stock peer {user} did not become ready"))?;
        if ready["event"] != "ready" {
            bail!("stock peer {user} failed to start: {}", ready["message"]);
        }
        peer.ready = ready;
        Ok(peer)
    }

    /// The `ready` event: `{"event":"ready","uid":..,"username":..,"rooms":[{rid,peer,peer_uid}]}`.
    pub fn ready(&self) -> &Value {
        &self.ready
    }

    /// The peer's own user id.
    pub fn uid(&self) -> &str {
        self.ready["uid"].as_str().unwrap_or_default()
    }

    /// The DM room id shared with `peer_username`, if the peer knew it at start.
    pub fn room_with(&self, peer_username: &str) -> Option<String> {
        self.ready["rooms"]
            .as_array()?
            .iter()
            .find(|r| r["peer"] == peer_username)
            .and_then(|r| r["rid"].as_str())
            .map(str::to_owned)
    }

    /// Send one command, e.g. `json!({"cmd":"start","peer":"alice"})`.
    pub fn send(&self, cmd: Value) -> anyhow::Result<()> {
        self.commands
            .send(format!("{cmd}\n"))
            .map_err(|_| anyhow!("the stock peer's stdin is closed"))
    }

    /// The next event, or an error when none arrives within `timeout` or the process has exited.
    pub async fn next_event(&self, timeout: Duration) -> anyhow::Result<Value> {
        let mut events = self.events.lock().await;
        match tokio::time::timeout(timeout, events.recv()).await {
            Ok(Some(event)) => Ok(event),
            Ok(None) => bail!("the stock peer exited"),
            Err(_) => bail!("no event from the stock peer within {timeout:?}"),
        }
    }

    /// Consume events until one satisfies `predicate` and return it; unmatched events are
    /// discarded. Fails after `timeout` overall, naming the last events seen.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        predicate: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut skipped: Vec<Value> = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_event(left).await {
                Ok(event) if predicate(&event) => return Ok(event),
                Ok(event) => {
                    if skipped.len() == 8 {
                        skipped.remove(0);
                    }
                    skipped.push(event);
                }
                Err(e) => {
                    let seen: Vec<String> = skipped.iter().map(Value::to_string).collect();
                    return Err(e.context(format!(
                        "waiting for a matching event; last events skipped: [{}]",
                        seen.join(", ")
                    )));
                }
            }
        }
    }

    /// Ask the peer to quit and wait (briefly) for it to exit; `Drop` kills it otherwise.
    pub async fn quit(mut self) -> anyhow::Result<()> {
        self.send(serde_json::json!({"cmd": "quit"}))?;
        match tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await {
            Ok(status) => {
                status.context("waiting for the stock peer")?;
                Ok(())
            }
            Err(_) => bail!("the stock peer did not exit after quit"),
        }
    }
}

impl Drop for StockPeer {
    fn drop(&mut self) {
        // kill_on_drop also does this; starting the kill here makes it prompt and explicit.
        let _ = self.child.start_kill();
    }
}
