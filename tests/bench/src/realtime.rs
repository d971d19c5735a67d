//! Issue 11's figures: otrd to otrd on Rocket.Chat 8.x over the realtime relays.
//!
//! Two in-process engines (`me` and `echo`, auto-accept) against an in-process rcsim in 8.x mode:
//! a burst of 100 × 256 B messages under rcsim's default rate limits (time until the last one is
//! received and acknowledged, every one in order), and the p50 latency of a 256 B message over
//! path A against the same over the 7.x OTR relay, limits off, in the same run.

use crate::report::{Figure, Target};
use anyhow::{bail, Context, Result};
use otrd::config::{AccountConfig, Config, ServerConfig};
use otrd::engine::{
    self, Direction, EngineConfig, EngineHandle, Event, EventKind, PeerRef, SchemePreference,
    SessionState,
};
use otrd::rocketchat::Credentials;
use otrd::secure::SecretString;
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

const SECTION: &str = "Rocket.Chat 8.x realtime relays";
const WAIT: Duration = Duration::from_secs(20);

/// Both figures. `quick` shrinks the burst and the sample count.
pub async fn run(quick: bool) -> Result<Vec<Figure>> {
    let burst_n = if quick { 10 } else { 100 };
    let rounds = if quick { 3 } else { 40 };
    let burst = burst(burst_n).await.context("burst over path A")?;
    let mut v7 = rcsim::SimConfig::demo();
    v7.rate_limits.enabled = false;
    let relay = p50_latency(v7, rounds)
        .await
        .context("latency over the 7.x relay")?;
    let path_a = p50_latency(v8(false), rounds)
        .await
        .context("latency over path A")?;
    Ok(vec![
        Figure::new(SECTION, "#11", format!("burst of {burst_n} × 256 B over path A, default rate limits, until all acknowledged"), ms(burst), "ms")
            .target(Target::AtMost(5000.0))
            .note("every message received in order, none lost, no error event"),
        Figure::new(SECTION, "#11", "256 B message p50 over path A (limits off)", ms(path_a), "ms")
            .vs("7.x OTR relay p50", ms(relay))
            .target(Target::RatioAtMost(1.2))
            .on_miss("path A adds the envelope and the sender's batching tick; a shorter tick when the queue is idle would close the gap"),
    ])
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn v8(limits: bool) -> rcsim::SimConfig {
    let mut cfg = rcsim::SimConfig::demo();
    cfg.mode = rcsim::Mode::V8;
    cfg.rate_limits.enabled = limits;
    cfg
}

/// Two engines with an established native session, and their event streams.
struct Pair {
    _sim: rcsim::SimHandle,
    me: EngineHandle,
    me_ev: broadcast::Receiver<Event>,
    echo_ev: broadcast::Receiver<Event>,
    _echo: EngineHandle,
    _dir: tempfile::TempDir,
}

fn account(url: &str, user: &str, password: &str, dir: &std::path::Path) -> EngineConfig {
    let mut config = Config {
        server: ServerConfig {
            url: url.to_owned(),
        },
        account: AccountConfig {
            username: user.to_owned(),
            ..AccountConfig::default()
        },
        ..Config::default()
    };
    config.policy.auto_accept = user == "echo";
    EngineConfig {
        config,
        credentials: Some(Credentials::Password {
            username: user.into(),
            password: SecretString::from(password),
        }),
        state_dir: Some(dir.join(user)),
    }
}

async fn ready(h: &EngineHandle) -> Result<()> {
    let deadline = Instant::now() + WAIT;
    loop {
        let connected = h.status().await?.connection == engine::ConnectionState::Connected;
        if connected && !h.list_rooms().await.unwrap_or_default().is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("engine did not log in within {WAIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn next(
    rx: &mut broadcast::Receiver<Event>,
    mut pred: impl FnMut(&EventKind) -> bool,
) -> Result<EventKind> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let e = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .context("no event in time")??;
        if pred(&e.kind) {
            return Ok(e.kind);
        }
    }
}

async fn pair(cfg: rcsim::SimConfig) -> Result<Pair> {
    let sim = rcsim::start(cfg, "127.0.0.1:0".parse()?).await?;
    let url = sim.http_url();
    let dir = tempfile::tempdir()?;
    let (me, _) = engine::spawn(account(&url, "me", "demo", dir.path()));
    let (echo, _) = engine::spawn(account(&url, "echo", "echo", dir.path()));
    ready(&me).await?;
    ready(&echo).await?;
    let (_, mut me_ev) = me.watch(false).await?;
    let (_, echo_ev) = echo.watch(false).await?;
    me.start(PeerRef::Username("echo".into()), SchemePreference::Auto)
        .await?;
    next(&mut me_ev, |k| {
        matches!(
            k,
            EventKind::State {
                state: SessionState::Established,
                ..
            }
        )
    })
    .await?;
    Ok(Pair {
        _sim: sim,
        me,
        me_ev,
        echo_ev,
        _echo: echo,
        _dir: dir,
    })
}

async fn burst(n: usize) -> Result<Duration> {
    let mut p = pair(v8(true)).await?;
    let texts: Vec<String> = (0..n)
        .map(|i| format!("{i:03} {}", "x".repeat(252)))
        .collect();
    let started = Instant::now();
    for t in &texts {
        p.me.send(
            PeerRef::Username("echo".into()),
            SecretString::from(t.as_str()),
        )
        .await?;
    }
    for want in &texts {
        match next(&mut p.echo_ev, |k| {
            matches!(
                k,
                EventKind::Message {
                    direction: Direction::In,
                    ..
                } | EventKind::Error { .. }
            )
        })
        .await?
        {
            EventKind::Message { text, .. } if text.expose() == want => {}
            other => bail!("burst: expected {:?}…, got {other:?}", &want[..3]),
        }
    }
    for _ in 0..n {
        if let EventKind::Error { code, .. } = next(&mut p.me_ev, |k| {
            matches!(k, EventKind::Delivered { .. } | EventKind::Error { .. })
        })
        .await?
        {
            bail!("burst: the sender saw an error: {code}");
        }
    }
    Ok(started.elapsed())
}

async fn p50_latency(cfg: rcsim::SimConfig, rounds: usize) -> Result<Duration> {
    let mut p = pair(cfg).await?;
    let mut samples = Vec::with_capacity(rounds);
    for i in 0..rounds {
        let text = format!("{i:03} {}", "y".repeat(252));
        let t = Instant::now();
        p.me.send(
            PeerRef::Username("echo".into()),
            SecretString::from(text.as_str()),
        )
        .await?;
        next(&mut p.echo_ev, |k| {
            matches!(
                k,
                EventKind::Message {
                    direction: Direction::In,
                    ..
                }
            )
        })
        .await?;
        samples.push(t.elapsed());
    }
    samples.sort();
    samples
        .get(samples.len() / 2)
        .copied()
        .context("no samples")
}
