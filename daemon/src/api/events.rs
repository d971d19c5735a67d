//! WatchEvents: fans the engine's events out to one client as a server stream.
//!
//! The gRPC stream reads the engine's broadcast receiver itself: hyper polls it, converts each
//! event and writes it, with no task or channel in between (each such hop cost a wake-up on the
//! way from the engine to the socket, on the path of every message event). When the client goes
//! away hyper drops the stream, and with it the receiver. A watcher too slow for the broadcast
//! buffer (HTTP/2 flow control stops the polling) is told how many events it lost with an `error`
//! event (code `lagged`) instead of being dropped; gaps in `seq` say the same.

use super::convert;
use crate::engine::{now_ms, Event, EventKind};
use futures::stream::{self, BoxStream, StreamExt};
use otrd_proto::v1 as pb;
use tokio::sync::{broadcast, watch};
use tonic::Status;

/// The stream type WatchEvents returns.
pub type EventStream = BoxStream<'static, Result<pb::Event, Status>>;

/// The newest event seq from before the latest screen lock, read when an event is about to go out.
type Watermark = Box<dyn Fn() -> u64 + Send + Sync>;

/// What the stream holds between items.
struct Watch {
    lock_watermark: Watermark,
    /// An item read while dropping withheld events, to yield after the report.
    pending: Option<Result<pb::Event, Status>>,
    scrollback: std::vec::IntoIter<Event>,
    live: broadcast::Receiver<Event>,
    stopping: watch::Receiver<bool>,
    /// An error went out; the stream ends.
    ended: bool,
}

/// Yields `scrollback`, then live events from `live`, until the client disconnects (the stream
/// is dropped), the engine stops, or `stopping` turns true (server shutdown; the client gets
/// UNAVAILABLE).
///
/// A watcher that stopped reading (a paused front-end, a suspended terminal) still has the events
/// of before a screen lock waiting in its receiver; message events (the plaintext) at or below
/// `lock_watermark()` are dropped instead of delivered after the lock, with an `error` event
/// (code `locked`) saying how many, ahead of the next event.
pub fn stream(
    scrollback: Vec<Event>,
    live: broadcast::Receiver<Event>,
    stopping: watch::Receiver<bool>,
    lock_watermark: impl Fn() -> u64 + Send + Sync + 'static,
) -> EventStream {
    let state = Watch {
        lock_watermark: Box::new(lock_watermark),
        pending: None,
        scrollback: scrollback.into_iter(),
        live,
        stopping,
        ended: false,
    };
    stream::unfold(state, |mut w| async move {
        if w.ended {
            return None;
        }
        if let Some(event) = w.scrollback.next() {
            return Some((Ok(convert::event(&event)), w));
        }
        if let Some(next) = w.pending.take() {
            w.ended = next.is_err();
            return Some((next, w));
        }
        let mut dropped = 0u64;
        let item = loop {
            let received = tokio::select! {
                _ = w.stopping.wait_for(|s| *s) => {
                    break Err(Status::unavailable("the daemon is shutting down"));
                }
                received = w.live.recv() => received,
            };
            match received {
                // Plaintext from before a lock that this watcher had not read: never delivered.
                Ok(event) if is_plaintext(&event) && event.seq <= (w.lock_watermark)() => {
                    dropped += 1;
                }
                Ok(event) => break Ok(convert::event(&event)),
                Err(broadcast::error::RecvError::Lagged(lost)) => {
                    tracing::warn!(lost, "a watcher lagged behind and lost events");
                    break Ok(lagged(lost));
                }
                Err(broadcast::error::RecvError::Closed) => {
                    break Err(Status::unavailable("the daemon is shutting down"));
                }
            }
        };
        if dropped > 0 {
            tracing::info!(
                dropped,
                "message events from before the lock withheld from a watcher"
            );
            w.pending = Some(item);
            return Some((Ok(withheld(dropped)), w));
        }
        w.ended = item.is_err();
        Some((item, w))
    })
    .boxed()
}

/// Whether the event carries message text.
fn is_plaintext(event: &Event) -> bool {
    matches!(event.kind, EventKind::Message { .. })
}

/// The event telling a watcher that messages from before the screen lock were withheld.
fn withheld(count: u64) -> pb::Event {
    pb::Event {
        seq: 0,
        ts_ms: now_ms(),
        replay: false,
        kind: Some(pb::event::Kind::Error(pb::ErrorEvent {
            code: "locked".into(),
            message: format!(
                "{count} message events from before the screen lock were withheld (not delivered)"
            ),
            ..Default::default()
        })),
    }
}

/// The event telling a slow watcher how many events it missed.
fn lagged(lost: u64) -> pb::Event {
    pb::Event {
        seq: 0,
        ts_ms: now_ms(),
        replay: false,
        kind: Some(pb::event::Kind::Error(pb::ErrorEvent {
            code: "lagged".into(),
            message: format!("lagged, {lost} events lost"),
            ..Default::default()
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{ConnectionState, EventKind};
    use std::time::Duration;
    use tokio_stream::StreamExt;

    fn connection(seq: u64) -> Event {
        Event {
            seq,
            ts_ms: 0,
            replay: false,
            kind: EventKind::Connection {
                state: ConnectionState::Connecting,
                detail: String::new(),
            },
        }
    }

    async fn next(s: &mut EventStream) -> Result<pb::Event, Status> {
        tokio::time::timeout(Duration::from_secs(5), s.next())
            .await
            .expect("an item in time")
            .expect("stream still open")
    }

    #[tokio::test]
    async fn scrollback_then_live_then_lag_report() {
        let (tx, rx) = broadcast::channel(2);
        let (_stop_tx, stop) = watch::channel(false);
        let mut replayed = connection(1);
        replayed.replay = true;
        // Overflow the broadcast before the watcher reads: 4 sent into a buffer of 2.
        for seq in 2..=5 {
            tx.send(connection(seq)).expect("receiver exists");
        }
        let mut s = stream(vec![replayed], rx, stop, || 0);
        let first = next(&mut s).await.expect("event");
        assert!(first.replay);
        assert_eq!(first.seq, 1);
        let lag = next(&mut s).await.expect("event");
        match lag.kind {
            Some(pb::event::Kind::Error(e)) => assert_eq!(e.message, "lagged, 2 events lost"),
            other => panic!("expected a lag report, got {other:?}"),
        }
        assert_eq!(next(&mut s).await.expect("event").seq, 4);
        assert_eq!(next(&mut s).await.expect("event").seq, 5);
    }

    fn message(seq: u64, text: &str) -> Event {
        Event {
            seq,
            ts_ms: 0,
            replay: false,
            kind: EventKind::Message {
                peer: "bob".into(),
                room_id: "r".into(),
                direction: crate::engine::Direction::In,
                text: text.into(),
                id: format!("m{seq}"),
                ts_ms: 0,
            },
        }
    }

    /// A watcher that stopped reading before a lock: the messages waiting for it from before the
    /// lock are withheld (with a `locked` report); what comes after the lock is delivered.
    #[tokio::test]
    async fn a_paused_watcher_never_gets_plaintext_from_before_the_lock() {
        let (tx, rx) = broadcast::channel(16);
        let (_stop_tx, stop) = watch::channel(false);
        let watermark = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let read = watermark.clone();
        let mut s = stream(Vec::new(), rx, stop, move || {
            read.load(std::sync::atomic::Ordering::SeqCst)
        });
        tx.send(message(1, "read before the lock")).expect("send");
        assert_eq!(next(&mut s).await.expect("event").seq, 1);
        // The watcher pauses; two messages and a state event arrive; then the lock.
        tx.send(message(2, "secret one")).expect("send");
        tx.send(message(3, "secret two")).expect("send");
        tx.send(connection(4)).expect("send");
        watermark.store(4, std::sync::atomic::Ordering::SeqCst);
        tx.send(message(5, "after the unlock")).expect("send");

        let report = next(&mut s).await.expect("event");
        match report.kind {
            Some(pb::event::Kind::Error(e)) => {
                assert_eq!(e.code, "locked");
                assert!(e.message.starts_with("2 message events"), "{}", e.message);
            }
            other => panic!("expected the withheld report, got {other:?}"),
        }
        assert_eq!(next(&mut s).await.expect("event").seq, 4);
        let after = next(&mut s).await.expect("event");
        assert_eq!(after.seq, 5);
        match after.kind {
            Some(pb::event::Kind::Message(m)) => assert_eq!(m.text, "after the unlock"),
            other => panic!("expected the message, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn shutdown_ends_the_stream_with_unavailable() {
        let (_tx, rx) = broadcast::channel::<Event>(4);
        let (stop_tx, stop) = watch::channel(false);
        let mut s = stream(Vec::new(), rx, stop, || 0);
        stop_tx.send(true).expect("stream task listens");
        let status = next(&mut s).await.expect_err("status");
        assert_eq!(status.code(), tonic::Code::Unavailable);
        let end = tokio::time::timeout(Duration::from_secs(5), s.next())
            .await
            .expect("ends");
        assert!(end.is_none());
    }

    #[tokio::test]
    async fn a_vanished_client_releases_its_receiver() {
        let (tx, rx) = broadcast::channel::<Event>(4);
        let (_stop_tx, stop) = watch::channel(false);
        let s = stream(Vec::new(), rx, stop, || 0);
        assert_eq!(tx.receiver_count(), 1);
        // hyper drops the stream when the client goes away; nothing else holds the receiver.
        drop(s);
        assert_eq!(tx.receiver_count(), 0);
    }
}
