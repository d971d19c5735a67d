//! What the 8.x figures run on: rcsim with its default limits (8.x mode, or 7.x for the
//! reference), two real `otrd` processes with an established session, an event recorder per
//! daemon, and the ways users hand messages over — one `otrctl send` process per message, a
//! shell script with `sleep`, the `otrctl rpc` bridge an editor keeps open.

use crate::harness::{Client, Daemon};
use anyhow::{bail, ensure, Context, Result};
use otrd_proto::v1::event::Kind;
use otrd_proto::v1::{
    peer_ref, Direction, PeerRef, SessionState, StartSessionRequest, WatchEventsRequest,
};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The bound of any one wait.
const WAIT: Duration = Duration::from_secs(120);

/// rcsim with `me` and `echo` (password "pw", as the harness logs in) and their DM, default
/// rate limits on; 8.x unless `v7`.
pub async fn sim(v7: bool) -> Result<rcsim::SimHandle> {
    let mut cfg = rcsim::SimConfig::default();
    cfg.users
        .push(rcsim::UserConfig::new("meUid00000000001", "me", "pw"));
    cfg.users
        .push(rcsim::UserConfig::new("echoUid000000001", "echo", "pw"));
    cfg.dms.push(rcsim::DmConfig {
        id: "dm-me-echo".into(),
        usernames: ["me".into(), "echo".into()],
    });
    if !v7 {
        cfg.mode = rcsim::Mode::V8;
    }
    ensure!(cfg.rate_limits.enabled, "default limits");
    rcsim::start(cfg, "127.0.0.1:0".parse()?).await
}

/// `me`'s user id in [`sim`].
pub const ME: &str = "meUid00000000001";
/// `echo`'s user id in [`sim`].
pub const ECHO: &str = "echoUid000000001";

/// Two daemons on `sim` with an established session, each with a recorder.
pub struct Pair {
    /// The sender.
    pub me: Daemon,
    /// The receiver (auto-accepts); kept so its process lives as long as the pair.
    pub _echo: Daemon,
    /// `me`'s events.
    pub me_events: Recorder,
    /// `echo`'s events.
    pub echo_events: Recorder,
}

fn peer(name: &str) -> Option<PeerRef> {
    Some(PeerRef {
        target: Some(peer_ref::Target::Username(name.into())),
    })
}

impl Pair {
    /// Starts both daemons and the session (`me` starts it).
    pub async fn start(sim: &rcsim::SimHandle) -> Result<Self> {
        let url = sim.http_url();
        let me = Daemon::start(&url, "me", false, Duration::from_secs(30)).await?;
        let echo = Daemon::start(&url, "echo", true, Duration::from_secs(30)).await?;
        let me_events = Recorder::attach(&me).await?;
        let echo_events = Recorder::attach(&echo).await?;
        me.client()
            .await?
            .start_session(StartSessionRequest {
                peer: peer("echo"),
                scheme: 0,
            })
            .await?;
        for (rec, who) in [(&me_events, "echo"), (&echo_events, "me")] {
            rec.until(Duration::from_secs(30), "established", |events| {
                events.iter().any(|(_, k)| {
                    matches!(k, Kind::State(s)
                        if s.peer == who && s.state == SessionState::Established as i32)
                })
            })
            .await?;
        }
        Ok(Self {
            me,
            _echo: echo,
            me_events,
            echo_events,
        })
    }

    /// Waits until echo has every one of `ids` from me, in this order and no other, me saw each
    /// delivered, and neither saw an error event; returns when the last one arrived.
    pub async fn delivered_in_order(&self, ids: &[String]) -> Result<Instant> {
        let n = ids.len();
        self.echo_events
            .until(WAIT, "every message received", |events| {
                received(events).len() >= n
            })
            .await?;
        let got = received(&self.echo_events.events());
        let got_ids: Vec<&String> = got.iter().map(|(id, _)| id).collect();
        ensure!(
            got_ids == ids.iter().collect::<Vec<_>>(),
            "received out of order, twice or not at all"
        );
        self.me_events
            .until(WAIT, "every message delivered", |events| {
                let done: std::collections::HashSet<&str> = events
                    .iter()
                    .filter_map(|(_, k)| match k {
                        Kind::Delivered(d) => Some(d.id.as_str()),
                        _ => None,
                    })
                    .collect();
                ids.iter().all(|id| done.contains(id.as_str()))
            })
            .await?;
        for rec in [&self.me_events, &self.echo_events] {
            let errors: Vec<String> = rec
                .events()
                .into_iter()
                .filter_map(|(_, k)| match k {
                    Kind::Error(e) => Some(format!("{}: {}", e.code, e.message)),
                    _ => None,
                })
                .collect();
            ensure!(errors.is_empty(), "error events: {errors:?}");
        }
        got.last().map(|(_, t)| *t).context("nothing received")
    }

    /// A gRPC client of `me`.
    pub async fn me_client(&self) -> Result<Client> {
        self.me.client().await
    }
}

/// Incoming messages, in arrival order: (id, when).
pub fn received(events: &[(Instant, Kind)]) -> Vec<(String, Instant)> {
    events
        .iter()
        .filter_map(|(t, k)| match k {
            Kind::Message(m) if m.direction == Direction::In as i32 => Some((m.id.clone(), *t)),
            _ => None,
        })
        .collect()
}

/// Every event of a daemon since attaching, with its arrival time, read by its own task.
pub struct Recorder {
    seen: Arc<Mutex<Vec<(Instant, Kind)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Recorder {
    async fn attach(d: &Daemon) -> Result<Self> {
        let mut stream = d
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
            while let Ok(Some(e)) = stream.message().await {
                if let (Some(kind), Ok(mut seen)) = (e.kind, sink.lock()) {
                    seen.push((Instant::now(), kind));
                }
            }
        });
        Ok(Self { seen, task })
    }

    /// The events so far.
    pub fn events(&self) -> Vec<(Instant, Kind)> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Waits (checking every 5 ms) until `cond` holds, at most `within`.
    pub async fn until(
        &self,
        within: Duration,
        what: &str,
        mut cond: impl FnMut(&[(Instant, Kind)]) -> bool,
    ) -> Result<()> {
        let deadline = Instant::now() + within;
        while !cond(&self.events()) {
            if Instant::now() > deadline {
                bail!("not within {within:?}: {what}");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `otrctl` next to this binary (`scripts/bench` and the test build put it there).
pub fn otrctl() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe.parent().context("no exe dir")?.join("otrctl");
    if !path.exists() {
        bail!(
            "{} is missing: run scripts/bench (it builds otrctl first)",
            path.display()
        );
    }
    Ok(path)
}

fn sent_id(line: &str) -> Result<String> {
    let v: Value = serde_json::from_str(line).with_context(|| format!("send printed {line:?}"))?;
    v["id"]
        .as_str()
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .with_context(|| format!("send printed {line}"))
}

/// One `otrctl --json send echo TEXT` process per text, each after the one before exited.
pub fn send_each(socket: &PathBuf, texts: &[String]) -> Result<Vec<String>> {
    let otrctl = otrctl()?;
    texts
        .iter()
        .map(|text| {
            let out = Command::new(&otrctl)
                .arg("--socket")
                .arg(socket)
                .args(["--json", "send", "echo", text])
                .stdin(Stdio::null())
                .output()?;
            ensure!(
                out.status.success(),
                "otrctl send: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            sent_id(String::from_utf8_lossy(&out.stdout).trim())
        })
        .collect()
}

/// A shell loop: `otrctl --json send echo "$line"; sleep 0.1` per line of `texts`.
pub fn script(
    socket: &PathBuf,
    dir: &std::path::Path,
    texts: &[String],
    every_ms: u64,
) -> Result<Vec<String>> {
    let list = dir.join("script-lines.txt");
    std::fs::write(&list, texts.join("\n") + "\n")?;
    let sleep = format!("{}.{:03}", every_ms / 1000, every_ms % 1000);
    let body = format!(
        "while IFS= read -r line; do \"$0\" --socket \"$1\" --json send echo \"$line\" || exit 1; \
         sleep {sleep}; done < \"$2\""
    );
    let out = Command::new("sh")
        .arg("-c")
        .arg(body)
        .arg(otrctl()?)
        .arg(socket)
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

/// A paste through `otrctl rpc`: one SendMessage per line, each answer read before the next.
pub fn paste(socket: &PathBuf, texts: &[String]) -> Result<Vec<String>> {
    let mut child = Command::new(otrctl()?)
        .arg("--socket")
        .arg(socket)
        .arg("rpc")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut stdin = child.stdin.take().context("no stdin")?;
    let mut stdout = BufReader::new(child.stdout.take().context("no stdout")?);
    let mut ids = Vec::with_capacity(texts.len());
    for (i, text) in texts.iter().enumerate() {
        let request = json!({"id": i, "method": "SendMessage",
            "params": {"peer": {"username": "echo"}, "text": text}});
        writeln!(stdin, "{request}")?;
        stdin.flush()?;
        let mut answer = String::new();
        stdout.read_line(&mut answer)?;
        let v: Value = serde_json::from_str(&answer)?;
        let id = v["result"]["id"]
            .as_str()
            .with_context(|| format!("otrctl rpc answered {answer}"))?;
        ids.push(id.to_owned());
    }
    drop(stdin);
    child.wait()?;
    Ok(ids)
}

/// `n` texts of `len` bytes, numbered.
pub fn texts(prefix: &str, n: usize, len: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let head = format!("{prefix} {i:05} ");
            let fill = "abcdefghij".repeat(len / 10 + 1);
            format!("{head}{}", &fill[..len.saturating_sub(head.len())])
        })
        .collect()
}

/// Calls of `method` the user `uid` made, from rcsim's audit.
pub fn calls(sim: &rcsim::SimHandle, uid: &str, method: &str) -> usize {
    sim.audit()
        .sent_by(uid)
        .into_iter()
        .filter_map(|r| serde_json::from_str::<Value>(&r.data).ok())
        .filter(|v| v["msg"] == "method" && v["method"] == method)
        .count()
}

/// `too-many-requests` rcsim answered so far.
pub async fn refused(sim: &rcsim::SimHandle) -> Result<usize> {
    Ok(rcsim::ratelimit::fetch_refused(&sim.http_url())
        .await?
        .len())
}
