//! Section 2 (issue 2): a unary RPC against a raw Unix-socket echo of the same payload size,
//! WatchEvents fan-out of one message to 1, 10 and 100 watchers, and the idle daemon's RSS.

use crate::harness::{self, Client, Daemon};
use crate::report::{Figure, Target};
use crate::timing::{percentiles, Percentiles};
use anyhow::{bail, Context, Result};
use otrd_proto::v1::{event, peer_ref, Direction, PeerRef, SendMessageRequest, WatchEventsRequest};
use prost::Message as _;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;

const S: &str = "IPC (Unix socket)";

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Idle RSS of a connected daemon.
pub fn idle_rss(kib: u64) -> Figure {
    Figure::new(S, "#2", "idle daemon RSS (connected to rcsim, no sessions)", kib as f64 / 1024.0, "MiB")
        .target(Target::AtMost(15.0))
        .on_miss(
            "The daemon runs on one thread since 2026-12-02, so worker stacks are no longer part of \
             it; on 2026-12-02 the daemon of the commit before gave 15.7–15.9 MiB in the same runs, so \
             the miss predates that change. Not yet broken down (binary text, rustls/reqwest, tonic).",
        )
}

/// GetStatus round trips against a raw echo of the response's size.
///
/// Both are measured the way otrctl calls: from one thread with a current-thread runtime, each to
/// a server that is not on that thread (otrd is its own process; the echo gets its own thread and
/// runtime), so both round trips cross the same kind of boundary. On the benchmark's shared
/// two-worker runtime, where tonic's buffer and connection tasks and the echo's two ends happened
/// to land (one worker or both) decided most of either figure, not the IPC.
pub async fn unary(daemon: &Daemon, rounds: usize) -> Result<Figure> {
    let socket = daemon.socket.clone();
    let (size, mut rpc, mut echo) = tokio::task::spawn_blocking(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(unary_samples(&socket, rounds))
    })
    .await??;
    let (rpc, echo) = (percentiles(&mut rpc), percentiles(&mut echo));
    Ok(Figure::new(S, "#2", format!("GetStatus unary RPC p50 ({size} B response)"), us(rpc.p50), "µs")
        .vs(format!("raw Unix-socket echo of {size} B, p50"), us(echo.p50))
        .target(Target::RatioAtMost(3.0))
        .note(format!(
            "p99: RPC {:.0} µs, echo {:.0} µs. Client on a current-thread runtime, as otrctl; the echo \
             server on its own thread.",
            us(rpc.p99),
            us(echo.p99)
        ))
        .on_miss(
            "A gRPC call is HTTP/2 framing and HPACK on both sides, and on the client tonic's buffer and \
             connection tasks; the echo is two syscalls. GetStatus itself is answered from the status the \
             engine publishes, without a hop through the engine task.",
        ))
}

/// The response size, then `rounds` GetStatus and `rounds` echo round trips.
async fn unary_samples(
    socket: &Path,
    rounds: usize,
) -> Result<(usize, Vec<Duration>, Vec<Duration>)> {
    let mut c = harness::connect(socket).await?;
    let size = harness::status(&mut c).await?.encoded_len();
    let mut rpc = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        harness::status(&mut c).await?;
        rpc.push(t.elapsed());
    }
    let echo = echo_round_trips(size, rounds).await?;
    Ok((size, rpc, echo))
}

/// Echo round trips of `size` bytes to a server on its own thread and runtime.
async fn echo_round_trips(size: usize, rounds: usize) -> Result<Vec<Duration>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("echo.sock");
    // Bound (and listening) here, so the connect below cannot race the server thread.
    let listener = std::os::unix::net::UnixListener::bind(&path)?;
    listener.set_nonblocking(true)?;
    let server = std::thread::spawn(move || -> std::io::Result<()> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async move {
            let (mut s, _) = UnixListener::from_std(listener)?.accept().await?;
            let mut buf = vec![0u8; size];
            loop {
                if s.read_exact(&mut buf).await.is_err() {
                    return Ok(());
                }
                s.write_all(&buf).await?;
            }
        })
    });
    let mut s = UnixStream::connect(&path).await?;
    let out = vec![7u8; size];
    let mut back = vec![0u8; size];
    let mut v = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        s.write_all(&out).await?;
        s.read_exact(&mut back).await?;
        v.push(t.elapsed());
    }
    drop(s);
    server
        .join()
        .map_err(|_| anyhow::anyhow!("the echo server panicked"))??;
    Ok(v)
}

/// The peer reference for a username.
pub fn peer(name: &str) -> Option<PeerRef> {
    Some(PeerRef {
        target: Some(peer_ref::Target::Username(name.into())),
    })
}

/// Opens a watcher that forwards (text, arrival time) of every chat message in `direction`.
pub async fn watcher(
    mut c: Client,
    direction: Direction,
) -> Result<mpsc::UnboundedReceiver<(String, Instant)>> {
    let mut stream = c
        .watch_events(WatchEventsRequest {
            include_scrollback: false,
        })
        .await?
        .into_inner();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(e)) = stream.message().await {
            if let Some(event::Kind::Message(m)) = e.kind {
                if m.direction == direction as i32 && tx.send((m.text, Instant::now())).is_err() {
                    return;
                }
            }
        }
    });
    Ok(rx)
}

/// SendMessage on `sender` to `to`, `rounds` times; latency until each of `watchers` watchers
/// of `sender` sees the outgoing message.
pub async fn fanout(
    sender: &Daemon,
    to: &str,
    watchers: usize,
    rounds: usize,
) -> Result<Percentiles> {
    let mut rxs = Vec::with_capacity(watchers);
    for _ in 0..watchers {
        rxs.push(watcher(sender.client().await?, Direction::Out).await?);
    }
    let mut c = sender.client().await?;
    let mut lat = Vec::with_capacity(watchers * rounds);
    for round in 0..rounds {
        let text = format!("fan-out {watchers} #{round} {}", "x".repeat(200));
        let t = Instant::now();
        c.send_message(SendMessageRequest {
            peer: peer(to),
            text: text.clone(),
        })
        .await?;
        for rx in &mut rxs {
            loop {
                let (got, at) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
                    .await
                    .context("watcher saw no message within 10 s")?
                    .context("watcher ended")?;
                if got == text {
                    lat.push(at - t);
                    break;
                }
            }
        }
    }
    if lat.is_empty() {
        bail!("no fan-out samples");
    }
    Ok(percentiles(&mut lat))
}

/// The fan-out figures for 1, 10 and 100 watchers.
pub fn fanout_figures(results: &[(usize, Percentiles)]) -> Vec<Figure> {
    let base = results.first().map(|(_, p)| p.p50).unwrap_or_default();
    results
        .iter()
        .map(|(n, p)| {
            Figure::new(
                S,
                "#7",
                format!("WatchEvents fan-out, {n} watcher(s): SendMessage → event, p50"),
                ms(p.p50),
                "ms",
            )
            .vs("1 watcher, p50", ms(base))
            .note(format!("p99 {:.2} ms.", ms(p.p99)))
        })
        .collect()
}
