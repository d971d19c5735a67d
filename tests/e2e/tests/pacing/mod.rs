//! Helpers of the 8.x pacing tests (issue 21): an 8.x simulator with the default rate limits,
//! an event recorder that never lags (a test that stops reading for a while must not lose what a
//! burst produced), the ways users hand messages to otrd (separate `otrctl send` processes, a
//! shell script, the `otrctl rpc` bridge an editor uses), a second connection of the same user
//! typing in other rooms, and the checks every scenario ends with.

use anyhow::{bail, ensure, Context};
use otrd::rocketchat::{Client, ClientConfig, Credentials};
use otrd::secure::SecretString;
use otrd_e2e::daemon::bin_path;
use otrd_e2e::otr::{dm_id, password, sim_config, Node};
use otrd_proto::v1::event::Kind;
use otrd_proto::v1::{Direction, SessionState, WatchEventsRequest};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// An 8.x simulator with rcsim's default rate limits: alice, bob, carol and dave, DMs alice–bob
/// (where OTR happens), alice–carol and alice–dave (where alice's browser types).
pub async fn sim8() -> anyhow::Result<rcsim::SimHandle> {
    let mut cfg = sim_config(
        &["alice", "bob", "carol", "dave"],
        &[("alice", "bob"), ("alice", "carol"), ("alice", "dave")],
    );
    cfg.mode = rcsim::Mode::V8;
    ensure!(cfg.rate_limits.enabled, "the default limits are on");
    rcsim::start(cfg, "127.0.0.1:0".parse()?).await
}

/// Alice and bob (auto-accepting) with an established native session over path A.
pub async fn pair(sim: &rcsim::SimHandle) -> anyhow::Result<(Node, Node)> {
    let url = sim.http_url();
    let mut alice = Node::start(&url, "alice", "").await?;
    let mut bob = Node::start(&url, "bob", "[policy]\nauto_accept = true\n").await?;
    alice.ctl(&["start", "bob"])?;
    alice.wait_state("bob", SessionState::Established).await?;
    bob.wait_state("alice", SessionState::Established).await?;
    let session = alice.ctl(&["sessions"])?;
    ensure!(session["transport"] == "user_activity", "{session}");
    Ok((alice, bob))
}

/// Every event of a daemon since it was attached, with the time it arrived, read by a task of
/// its own so nothing is lost however long the test looks elsewhere.
pub struct Recorder {
    seen: Arc<Mutex<Vec<(Instant, Kind)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Recorder {
    /// Attaches a new WatchEvents stream to `node`'s daemon.
    pub async fn attach(node: &Node) -> anyhow::Result<Self> {
        let mut stream = node
            .daemon
            .client()
            .await?
            .watch_events(WatchEventsRequest {
                include_scrollback: false,
            })
            .await?
            .into_inner();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        let task = tokio::spawn(async move {
            while let Ok(Some(event)) = stream.message().await {
                if let (Some(kind), Ok(mut seen)) = (event.kind, sink.lock()) {
                    seen.push((Instant::now(), kind));
                }
            }
        });
        Ok(Self { seen, task })
    }

    /// What arrived so far.
    pub fn events(&self) -> Vec<(Instant, Kind)> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Waits until `f` finds what it looks for in the events so far (checked every 20 ms),
    /// failing after `within` with `what`.
    pub async fn until<T>(
        &self,
        within: Duration,
        what: &str,
        mut f: impl FnMut(&[(Instant, Kind)]) -> Option<T>,
    ) -> anyhow::Result<T> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(found) = f(&self.events()) {
                return Ok(found);
            }
            if Instant::now() > deadline {
                bail!("not within {within:?}: {what}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Incoming messages from `peer`, in arrival order: (id, text, when).
pub fn received(events: &[(Instant, Kind)], peer: &str) -> Vec<(String, String, Instant)> {
    events
        .iter()
        .filter_map(|(t, k)| match k {
            Kind::Message(m) if m.peer == peer && m.direction == Direction::In as i32 => {
                Some((m.id.clone(), m.text.clone(), *t))
            }
            _ => None,
        })
        .collect()
}

/// Error events: (code, message id, message).
pub fn errors(events: &[(Instant, Kind)]) -> Vec<(String, String, String)> {
    events
        .iter()
        .filter_map(|(_, k)| match k {
            Kind::Error(e) => Some((e.code.clone(), e.id.clone(), e.message.clone())),
            _ => None,
        })
        .collect()
}

/// Waits until `to` has received every one of `ids` from `from` — exactly these, in this
/// order — and `from` saw each delivered; neither may see an error event. Returns when the
/// last one arrived.
pub async fn all_delivered_in_order(
    from: &Recorder,
    to: &Recorder,
    from_user: &str,
    ids: &[String],
    within: Duration,
) -> anyhow::Result<Instant> {
    let what = format!("{} messages from {from_user}", ids.len());
    let last = to
        .until(within, &what, |events| {
            let got = received(events, from_user);
            (got.len() >= ids.len()).then(|| got.last().map(|(_, _, t)| *t))
        })
        .await
        .with_context(|| {
            let got = received(&to.events(), from_user);
            format!("{} of {} arrived", got.len(), ids.len())
        })?
        .context("no message")?;
    let got: Vec<String> = received(&to.events(), from_user)
        .into_iter()
        .map(|(id, _, _)| id)
        .collect();
    ensure!(got == ids, "arrived out of order, twice or not at all");
    from.until(within, "every message delivered", |events| {
        let delivered: std::collections::HashSet<&str> = events
            .iter()
            .filter_map(|(_, k)| match k {
                Kind::Delivered(d) => Some(d.id.as_str()),
                _ => None,
            })
            .collect();
        ids.iter()
            .all(|id| delivered.contains(id.as_str()))
            .then_some(())
    })
    .await?;
    for (who, rec) in [("sender", from), ("receiver", to)] {
        let errors = errors(&rec.events());
        ensure!(errors.is_empty(), "the {who} saw error events: {errors:?}");
    }
    Ok(last)
}

/// The simulator's rate limiter refused nothing (the real server would have logged each
/// refusal with the user id).
pub async fn no_too_many_requests(sim: &rcsim::SimHandle) -> anyhow::Result<()> {
    let refused = rcsim::ratelimit::fetch_refused(&sim.http_url()).await?;
    ensure!(refused.is_empty(), "too-many-requests: {refused:?}");
    Ok(())
}

/// Calls of `method` by `user_id` in the audit.
pub fn calls_of(sim: &rcsim::SimHandle, user_id: &str, method: &str) -> usize {
    sim.audit()
        .sent_by(user_id)
        .into_iter()
        .filter_map(|r| serde_json::from_str::<Value>(&r.data).ok())
        .filter(|v| v["msg"] == "method" && v["method"] == method)
        .count()
}

/// `n` lines of about `len` characters, numbered so order is visible.
pub fn lines(prefix: &str, n: usize, len: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let head = format!("{prefix} {i:04} ");
            let fill = "abcdefghij".repeat(len / 10 + 1);
            format!("{head}{}", &fill[..len.saturating_sub(head.len())])
        })
        .collect()
}

/// What the blocking drivers below need of a node (they run on a thread of their own, so the
/// event recorders keep reading meanwhile).
#[derive(Debug, Clone)]
pub struct Socket {
    /// The daemon's API socket.
    pub path: PathBuf,
    /// A directory of the node's for the drivers' files.
    pub dir: PathBuf,
}

impl Socket {
    /// `node`'s.
    pub fn of(node: &Node) -> Self {
        Self {
            path: node.daemon.socket.clone(),
            dir: node.daemon.dir.path().to_owned(),
        }
    }
}

/// The id `otrctl --json send` printed.
fn sent_id(line: &str) -> anyhow::Result<String> {
    let v: Value = serde_json::from_str(line).with_context(|| format!("send printed {line:?}"))?;
    v["id"]
        .as_str()
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .with_context(|| format!("send printed {line}"))
}

/// One `otrctl --json send PEER TEXT` process per text, back to back (each waits for the one
/// before to exit, as a shell loop does); returns the ids in order.
pub fn send_each(socket: &Socket, peer: &str, texts: &[String]) -> anyhow::Result<Vec<String>> {
    let otrctl = bin_path("otrctl")?;
    texts
        .iter()
        .map(|text| {
            let out = Command::new(&otrctl)
                .arg("--socket")
                .arg(&socket.path)
                .args(["--json", "send", peer, text])
                .stdin(Stdio::null())
                .output()?;
            ensure!(
                out.status.success(),
                "otrctl send failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            sent_id(String::from_utf8_lossy(&out.stdout).trim())
        })
        .collect()
}

/// A shell script that sends `texts` with `otrctl --json send`, sleeping `every_ms` between
/// sends (what `while …; do otrctl send …; sleep 0.1; done` does); returns the ids in order.
pub fn script(
    socket: &Socket,
    peer: &str,
    texts: &[String],
    every_ms: u64,
) -> anyhow::Result<Vec<String>> {
    let list = socket.dir.join("script-lines.txt");
    std::fs::write(&list, texts.join("\n") + "\n")?;
    let otrctl = bin_path("otrctl")?;
    let sleep = format!("{}.{:03}", every_ms / 1000, every_ms % 1000);
    let body = format!(
        "while IFS= read -r line; do \"$0\" --socket \"$1\" --json send \"$2\" \"$line\" \
         || exit 1; sleep {sleep}; done < \"$3\""
    );
    let out = Command::new("sh")
        .arg("-c")
        .arg(body)
        .arg(&otrctl)
        .arg(&socket.path)
        .arg(peer)
        .arg(&list)
        .stdin(Stdio::null())
        .output()?;
    ensure!(
        out.status.success(),
        "the script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(sent_id)
        .collect()
}

/// The `otrctl rpc` bridge an editor keeps open, fed one SendMessage per line of a paste; each
/// answer is read before the next line goes (so the order is the paste's). Stops at the first
/// refused send (the session ended) and returns the ids sent until then.
pub fn paste(socket: &Socket, peer: &str, texts: &[String]) -> anyhow::Result<Vec<String>> {
    let mut child = Command::new(bin_path("otrctl")?)
        .arg("--socket")
        .arg(&socket.path)
        .arg("rpc")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut stdin = child.stdin.take().context("no stdin")?;
    let mut stdout = BufReader::new(child.stdout.take().context("no stdout")?);
    let mut ids = Vec::new();
    for (i, text) in texts.iter().enumerate() {
        let request = json!({"id": i, "method": "SendMessage",
            "params": {"peer": {"username": peer}, "text": text}});
        writeln!(stdin, "{request}")?;
        stdin.flush()?;
        let mut answer = String::new();
        stdout.read_line(&mut answer)?;
        let v: Value = serde_json::from_str(&answer)
            .with_context(|| format!("otrctl rpc answered {answer:?}"))?;
        match v["result"]["id"].as_str() {
            Some(id) => ids.push(id.to_owned()),
            None => break,
        }
    }
    drop(stdin);
    child.wait()?;
    Ok(ids)
}

/// A second connection of the same user — their browser — typing in other rooms the whole
/// time, as the stock client's `UserAction` does: the indicator of the room being typed in is
/// renewed every 5 s, the user switches between two rooms every 2.5 s (so each is renewed
/// every 5 s, and both stay shown), and typing stops in both at the end.
pub struct Typist {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<u32>>,
}

impl Typist {
    /// Logs in as `user` on the simulator at `url` and starts typing in `rooms`.
    pub fn start(url: &str, user: &str, rooms: Vec<String>) -> Self {
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let credentials = Credentials::Password {
            username: user.to_owned(),
            password: SecretString::from(password(user).as_str()),
        };
        let (url, user) = (url.to_owned(), user.to_owned());
        let task = tokio::spawn(async move {
            let (client, _events) = Client::spawn(ClientConfig::new(url, credentials));
            let typing = |room: &str, activities: Value| {
                vec![
                    json!(format!("{room}/user-activity")),
                    json!(user),
                    activities,
                    json!({}),
                ]
            };
            let mut calls = 0u32;
            let mut tick = tokio::time::interval(Duration::from_millis(2_500));
            'typing: for room in rooms.iter().cycle() {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stopped.changed() => break 'typing,
                }
                client
                    .call("stream-notify-room", typing(room, json!(["user-typing"])))
                    .await?;
                calls += 1;
            }
            for room in &rooms {
                client
                    .call("stream-notify-room", typing(room, json!([])))
                    .await?;
                calls += 1;
            }
            client.shutdown().await;
            Ok(calls)
        });
        Self { stop, task }
    }

    /// Stops typing; returns how many calls the browser made.
    pub async fn stop(self) -> anyhow::Result<u32> {
        let _ = self.stop.send(true);
        self.task.await?
    }
}

/// Alice's browser, typing in her DMs with carol and dave.
pub fn alices_browser(sim: &rcsim::SimHandle) -> Typist {
    Typist::start(
        &sim.http_url(),
        "alice",
        vec![dm_id("alice", "carol"), dm_id("alice", "dave")],
    )
}
