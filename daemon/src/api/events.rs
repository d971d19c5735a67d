//! WatchEvents: fans the engine's events out to one client as a server stream.
//!
//! The gRPC stream reads the engine's broadcast receiver itself: hyper polls it, converts each
//! event and writes it, with no task or channel in between (each such hop cost a wake-up on the
//! way from the engine to the socket, on the path of every message event). When the client goes
//! away hyper drops the stream, and with it the receiver. A watcher too slow for the broadcast
//! buffer (HTTP/2 flow control stops the polling) is told how many events it lost with an `error`
//! event (code `lagged`) instead of being dropped; gaps in `seq` say the same.

use super::convert;
use crate::engine::{now_ms, Event};
use futures::stream::{self, BoxStream, StreamExt};
use otrd_proto::v1 as pb;
use tokio::sync::{broadcast, watch};
use tonic::Status;

/// The stream type WatchEvents returns.
pub type EventStream = BoxStream<'static, Result<pb::Event, Status>>;

/// What the stream holds between items.
struct Watch {
    scrollback: std::vec::IntoIter<Event>,
    live: broadcast::Receiver<Event>,
    stopping: watch::Receiver<bool>,
    /// An error went out; the stream ends.
    ended: bool,
}

/// Yields `scrollback`, then live events from `live`, until the client disconnects (the stream
/// is dropped), the engine stops, or `stopping` turns true (server shutdown; the client gets
/// UNAVAILABLE).
pub fn stream(
    scrollback: Vec<Event>,
    live: broadcast::Receiver<Event>,
    stopping: watch::Receiver<bool>,
) -> EventStream {
    let state = Watch {
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
        let item = tokio::select! {
            _ = w.stopping.wait_for(|s| *s) => {
                Err(Status::unavailable("the daemon is shutting down"))
            }
            received = w.live.recv() => match received {
                Ok(event) => Ok(convert::event(&event)),
                Err(broadcast::error::RecvError::Lagged(lost)) => {
                    tracing::warn!(lost, "a watcher lagged behind and lost events");
                    Ok(lagged(lost))
                }
                Err(broadcast::error::RecvError::Closed) => {
                    Err(Status::unavailable("the daemon is shutting down"))
                }
            },
        };
        w.ended = item.is_err();
        Some((item, w))
    })
    .boxed()
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
        let mut s = stream(vec![replayed], rx, stop);
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

    #[tokio::test]
    async fn shutdown_ends_the_stream_with_unavailable() {
        let (_tx, rx) = broadcast::channel::<Event>(4);
        let (stop_tx, stop) = watch::channel(false);
        let mut s = stream(Vec::new(), rx, stop);
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
        let s = stream(Vec::new(), rx, stop);
        assert_eq!(tx.receiver_count(), 1);
        // hyper drops the stream when the client goes away; nothing else holds the receiver.
        drop(s);
        assert_eq!(tx.receiver_count(), 0);
    }
}
