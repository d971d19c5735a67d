//! Issue 21's figures: otrd to otrd on Rocket.Chat 8.x over the realtime relays, with rcsim's
//! default rate limits (40 calls per 40 s per method and connection, 80 per user), driven the
//! way people and scripts hand messages over — not as one batch:
//!
//! - a burst: 100 × 256 B from 100 back-to-back `otrctl send` processes (each starts when the
//!   one before exited), first send → the last received, every one in order;
//! - a 300-line paste through `otrctl rpc` (what an editor keeps open), one SendMessage per line;
//! - a shell script sending one message every 100 ms (`otrctl send …; sleep 0.1`) for a minute:
//!   how far the last message arrives behind the script's last send;
//! - a single 256 B message in an idle session, p50 over sends 2 s apart (someone chatting: the
//!   budget stays ample), against the same over the 7.x OTR relay in the same run.
//!
//! Each reports the server calls the sender made on `stream-notify-room` and rcsim's
//! `too-many-requests`; the last figure sums the refusals of every scenario (target 0). Each
//! scenario has a fresh rcsim and fresh daemons, so no budget carries over.

mod drive;

use crate::report::{Figure, Target};
use crate::timing::percentiles;
use anyhow::{Context, Result};
use drive::{calls, refused, texts, Pair, ECHO, ME};
use otrd_proto::v1::{peer_ref, PeerRef, SendMessageRequest};
use std::time::{Duration, Instant};

const SECTION: &str = "Rocket.Chat 8.x realtime relays (default rate limits)";
const METHOD: &str = "stream-notify-room";

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Every figure; `quick` shrinks each scenario (CI keeps them working, figures meaningless).
pub async fn run(quick: bool) -> Result<Vec<Figure>> {
    let (burst_n, paste_n, script_s, samples) = if quick {
        (10, 30, 3, 2)
    } else {
        (100, 300, 60, 12)
    };
    let mut figures = Vec::new();
    let mut refusals = 0;

    let (took, r) = burst(burst_n).await.context("the burst")?;
    refusals += r.refused;
    figures.push(
        Figure::new(
            SECTION,
            "#21",
            format!("{burst_n} × 256 B from {burst_n} back-to-back `otrctl send`: first send → all received"),
            ms(took),
            "ms",
        )
        .target(Target::AtMost(10_000.0))
        .note(r.note()),
    );

    let (took, r) = paste(paste_n).await.context("the paste")?;
    refusals += r.refused;
    figures.push(
        Figure::new(
            SECTION,
            "#21",
            format!("{paste_n}-line paste through `otrctl rpc`: first line → all received"),
            ms(took),
            "ms",
        )
        .target(Target::AtMost(30_000.0))
        .note(r.note()),
    );

    let (behind, r) = script(script_s).await.context("the script")?;
    refusals += r.refused;
    figures.push(
        Figure::new(
            SECTION,
            "#21",
            format!(
                "script sending every 100 ms for {script_s} s (`otrctl send`; `sleep 0.1`): last \
                 message received after the last send"
            ),
            ms(behind),
            "ms",
        )
        .note(r.note()),
    );

    let relay = idle_latency(true, samples)
        .await
        .context("idle latency over the 7.x relay")?;
    let path_a = idle_latency(false, samples)
        .await
        .context("idle latency over path A")?;
    figures.push(
        Figure::new(
            SECTION,
            "#21",
            "256 B message in an idle session, SendMessage → received, p50 over path A",
            ms(path_a),
            "ms",
        )
        .vs("7.x OTR relay p50, same run", ms(relay))
        .target(Target::RatioAtMost(1.2))
        .note(format!(
            "{samples} sends 2 s apart on each, default limits: path A's budget stays ample, so \
             each leaves at once."
        ))
        .on_miss(
            "An idle message is sent the moment it is pushed (no tick); a miss is the extra \
             envelope and the relay's hops on a loaded machine.",
        ),
    );

    figures.push(
        Figure::new(
            SECTION,
            "#21",
            "too-many-requests answered by rcsim in all of the above",
            refusals as f64,
            "",
        )
        .target(Target::AtMost(0.0))
        .note("each one would be logged by the server with the user id"),
    );
    Ok(figures)
}

/// What a scenario cost on the server.
struct Cost {
    /// Calls the sender made on path A's method (handshake and probe included).
    sender_calls: usize,
    /// Calls the receiver made (its acknowledgements).
    receiver_calls: usize,
    /// Refusals.
    refused: usize,
    /// Messages.
    messages: usize,
}

impl Cost {
    async fn of(sim: &rcsim::SimHandle, messages: usize) -> Result<Self> {
        Ok(Self {
            sender_calls: calls(sim, ME, METHOD),
            receiver_calls: calls(sim, ECHO, METHOD),
            refused: refused(sim).await?,
            messages,
        })
    }

    fn note(&self) -> String {
        format!(
            "{} messages, every one received in order, no error event; server calls on {METHOD}: \
             {} by the sender (probe and handshake included), {} by the receiver \
             (acknowledgements); too-many-requests: {}",
            self.messages, self.sender_calls, self.receiver_calls, self.refused
        )
    }
}

async fn burst(n: usize) -> Result<(Duration, Cost)> {
    let sim = drive::sim(false).await?;
    let pair = Pair::start(&sim).await?;
    let socket = pair.me.socket.clone();
    let all = texts("burst", n, 256);
    let started = Instant::now();
    let ids = tokio::task::spawn_blocking(move || drive::send_each(&socket, &all)).await??;
    let last = pair.delivered_in_order(&ids).await?;
    Ok((last - started, Cost::of(&sim, n).await?))
}

async fn paste(n: usize) -> Result<(Duration, Cost)> {
    let sim = drive::sim(false).await?;
    let pair = Pair::start(&sim).await?;
    let socket = pair.me.socket.clone();
    let all = texts("paste", n, 60);
    let started = Instant::now();
    let ids = tokio::task::spawn_blocking(move || drive::paste(&socket, &all)).await??;
    let last = pair.delivered_in_order(&ids).await?;
    Ok((last - started, Cost::of(&sim, n).await?))
}

async fn script(secs: u64) -> Result<(Duration, Cost)> {
    let sim = drive::sim(false).await?;
    let pair = Pair::start(&sim).await?;
    let socket = pair.me.socket.clone();
    let dir = tempfile::tempdir()?;
    let path = dir.path().to_owned();
    // Ten rounds a second, each one `otrctl send` and a 100 ms sleep (so a little over `secs`).
    let all = texts("tick", secs as usize * 10, 40);
    let ids =
        tokio::task::spawn_blocking(move || drive::script(&socket, &path, &all, 100)).await??;
    let ended = Instant::now();
    let last = pair.delivered_in_order(&ids).await?;
    Ok((
        last.saturating_duration_since(ended),
        Cost::of(&sim, ids.len()).await?,
    ))
}

/// p50 of SendMessage → received for `samples` messages 2 s apart.
async fn idle_latency(v7: bool, samples: usize) -> Result<Duration> {
    let sim = drive::sim(v7).await?;
    let pair = Pair::start(&sim).await?;
    let mut c = pair.me_client().await?;
    let mut lat = Vec::with_capacity(samples);
    for (i, text) in texts("idle", samples, 256).into_iter().enumerate() {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let t = Instant::now();
        let id = c
            .send_message(SendMessageRequest {
                peer: Some(PeerRef {
                    target: Some(peer_ref::Target::Username("echo".into())),
                }),
                text,
            })
            .await?
            .into_inner()
            .id;
        pair.echo_events
            .until(Duration::from_secs(20), "the idle message", |events| {
                drive::received(events).len() > i
            })
            .await?;
        let got = drive::received(&pair.echo_events.events());
        let (got_id, at) = got.get(i).cloned().context("no message")?;
        anyhow::ensure!(got_id == id, "another message arrived");
        lat.push(at - t);
    }
    Ok(percentiles(&mut lat).p50)
}
