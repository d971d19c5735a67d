//! Building blocks for the attack tests (issue 15): a daemon's events collected from a second
//! WatchEvents stream that is always read ([`EventLog`], so nothing is missed while a test waits
//! on something else or a flood makes the daemon chatty), a [`Party`] (a real otrd with its
//! log), message delivery with a deadline, and [`Findings`] — every broken promise of a run
//! listed at once, so a failing attack test says everything that went wrong, not only the first.

use crate::daemon::Daemon;
use crate::otr::Node;
use anyhow::{bail, Context};
use otrd_proto::v1::event::Kind;
use otrd_proto::v1::{Direction, Mode, SessionState, WatchEventsRequest};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Every event one daemon emitted since the log was attached, read by a background task.
pub struct EventLog {
    events: Arc<Mutex<Vec<Kind>>>,
    count: watch::Receiver<usize>,
    task: JoinHandle<()>,
}

impl EventLog {
    /// Opens a WatchEvents stream of its own on `daemon` and starts collecting.
    pub async fn attach(daemon: &Daemon) -> anyhow::Result<Self> {
        let mut stream = daemon
            .client()
            .await?
            .watch_events(WatchEventsRequest {
                include_scrollback: false,
            })
            .await?
            .into_inner();
        let events: Arc<Mutex<Vec<Kind>>> = Arc::default();
        let (tx, count) = watch::channel(0);
        let sink = events.clone();
        let task = tokio::spawn(async move {
            while let Ok(Some(event)) = stream.message().await {
                let Some(kind) = event.kind else { continue };
                let n = {
                    let mut v = sink.lock().unwrap_or_else(|e| e.into_inner());
                    v.push(kind);
                    v.len()
                };
                let _ = tx.send(n);
            }
        });
        Ok(Self {
            events,
            count,
            task,
        })
    }

    /// How many events so far (a mark for [`Self::since`]).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True before the first event.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The events from `mark` on.
    pub fn since(&self, mark: usize) -> Vec<Kind> {
        self.lock()
            .get(mark..)
            .map(<[Kind]>::to_vec)
            .unwrap_or_default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Kind>> {
        self.events.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The first event from `mark` on satisfying `pred`, waiting at most `within` for it.
    pub async fn wait_since(
        &self,
        mark: usize,
        within: Duration,
        mut pred: impl FnMut(&Kind) -> bool,
    ) -> anyhow::Result<Kind> {
        let deadline = tokio::time::Instant::now() + within;
        let mut count = self.count.clone();
        loop {
            if let Some(k) = self.since(mark).into_iter().find(|k| pred(k)) {
                return Ok(k);
            }
            if tokio::time::timeout_at(deadline, count.changed())
                .await
                .is_err()
            {
                let seen = self.since(mark);
                let tail: Vec<String> = seen.iter().rev().take(8).rev().map(brief).collect();
                bail!(
                    "no matching event within {within:?} ({} since the mark; the last: [{}])",
                    seen.len(),
                    tail.join("; ")
                );
            }
        }
    }
}

impl Drop for EventLog {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A real otrd logged in as a user, with its event log.
pub struct Party {
    /// The daemon, its own WatchEvents stream (unused by the helpers here) and its user.
    pub node: Node,
    /// Everything it emitted since just after login.
    pub log: EventLog,
}

impl Party {
    /// Starts otrd for `user` against the simulator at `url` with extra config TOML.
    pub async fn start(url: &str, user: &str, config: &str) -> anyhow::Result<Self> {
        let node = Node::start(url, user, config).await?;
        let log = EventLog::attach(&node.daemon).await?;
        Ok(Self { node, log })
    }

    /// Its username.
    pub fn user(&self) -> &str {
        &self.node.user
    }

    /// `otrctl --json sessions`: one object per session.
    pub fn sessions(&self) -> anyhow::Result<Vec<Value>> {
        let out = self.node.daemon.otrctl(&["--json", "sessions"])?;
        anyhow::ensure!(
            out.status.success(),
            "otrctl sessions failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).with_context(|| format!("otrctl printed {l:?}")))
            .collect()
    }

    /// The session with `peer` as `otrctl --json sessions` shows it.
    pub fn session_with(&self, peer: &str) -> anyhow::Result<Value> {
        self.sessions()?
            .into_iter()
            .find(|s| s["peer"] == peer)
            .with_context(|| format!("{} has no session with {peer}", self.user()))
    }

    /// Waits for a state change with `peer` to `state`, from `mark` on.
    pub async fn wait_state(
        &self,
        mark: usize,
        peer: &str,
        state: SessionState,
        within: Duration,
    ) -> anyhow::Result<otrd_proto::v1::StateChange> {
        match self
            .log
            .wait_since(mark, within, |k| is_state(k, peer, state))
            .await
            .with_context(|| format!("{}: waiting for {peer} to be {state:?}", self.user()))?
        {
            Kind::State(s) => Ok(s),
            _ => bail!("not a state change"),
        }
    }
}

/// One line for an event (failure messages).
pub fn brief(k: &Kind) -> String {
    match k {
        Kind::State(s) => format!(
            "state {} {:?}/{:?} {:?}",
            s.peer,
            SessionState::try_from(s.state).unwrap_or_default(),
            Mode::try_from(s.mode).unwrap_or_default(),
            s.detail
        ),
        Kind::Message(m) => format!(
            "message {} {} {:?}",
            if m.direction == Direction::In as i32 {
                "from"
            } else {
                "to"
            },
            m.peer,
            m.text
        ),
        Kind::Delivered(d) => format!("delivered {}", d.id),
        Kind::Alarm(a) => format!("ALARM {} {:?}", a.code, a.message),
        Kind::Error(e) => format!("error {} {:?}", e.code, e.message),
        Kind::Invitation(i) => format!("invitation from {}", i.peer),
        other => format!("{other:?}"),
    }
}

/// Whether `k` is a state change with `peer` to `state`.
pub fn is_state(k: &Kind, peer: &str, state: SessionState) -> bool {
    matches!(k, Kind::State(s) if s.peer == peer && s.state == state as i32)
}

/// `a` starts a session with `b` (`otrctl start`); both must reach established native.
pub async fn establish_native(a: &Party, b: &Party) -> anyhow::Result<()> {
    let (ma, mb) = (a.log.len(), b.log.len());
    a.node.ctl(&["start", b.user()])?;
    let sa = a
        .wait_state(ma, b.user(), SessionState::Established, crate::otr::WAIT)
        .await?;
    let sb = b
        .wait_state(mb, a.user(), SessionState::Established, crate::otr::WAIT)
        .await?;
    anyhow::ensure!(
        (sa.mode, sb.mode) == (Mode::Native as i32, Mode::Native as i32),
        "not native: {sa:?} / {sb:?}"
    );
    Ok(())
}

/// `from` sends `text` to `to`; `to` must show it (same id and text) and `from` must see it
/// delivered, each within `within`. Returns the message id.
pub async fn deliver(
    from: &Party,
    to: &Party,
    text: &str,
    within: Duration,
) -> anyhow::Result<String> {
    let (mf, mt) = (from.log.len(), to.log.len());
    let id = from
        .node
        .send(to.user(), text)
        .with_context(|| format!("{} could not send to {}", from.user(), to.user()))?;
    let peer = from.user().to_owned();
    let shown = to
        .log
        .wait_since(mt, within, |k| {
            matches!(k, Kind::Message(m) if m.peer == peer && m.direction == Direction::In as i32 && m.id == id)
        })
        .await
        .with_context(|| format!("{} never showed {text:?} from {}", to.user(), from.user()))?;
    if let Kind::Message(m) = shown {
        anyhow::ensure!(
            m.text == text,
            "{} showed {:?} for {text:?}",
            to.user(),
            m.text
        );
    }
    from.log
        .wait_since(
            mf,
            within,
            |k| matches!(k, Kind::Delivered(d) if d.id == id),
        )
        .await
        .with_context(|| format!("{}: {text:?} never reported delivered", from.user()))?;
    Ok(id)
}

/// Every broken promise of one run, reported together.
#[derive(Debug, Default)]
pub struct Findings(Vec<String>);

impl Findings {
    /// Records `what` unless `ok`.
    pub fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.0.push(what());
        }
    }

    /// Records the error of `r`, if any.
    pub fn result<T>(&mut self, r: anyhow::Result<T>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.0.push(format!("{e:#}"));
                None
            }
        }
    }

    /// Ok when nothing was recorded; otherwise every finding under `title`.
    pub fn finish(self, title: &str) -> anyhow::Result<()> {
        if self.0.is_empty() {
            return Ok(());
        }
        let list: Vec<String> = self.0.iter().map(|f| format!("  - {f}")).collect();
        bail!("{title}: {} finding(s):\n{}", self.0.len(), list.join("\n"))
    }
}
