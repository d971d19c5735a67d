//! WatchEvents in the bridge: one task owns the event stream and, when a new WatchEvents
//! replaces it, hands over to the new stream without losing or repeating a live event.
//!
//! Why a handover and not "open the new stream, then stop the old one": the daemon numbers its
//! events (`seq`) and sends a live event only to the streams attached when it was emitted. An
//! event emitted just before the new stream attached is on the old stream only, and may still be
//! in flight (in the socket, or waiting for stdout) when the new stream's answer arrives. Stopping
//! the old stream then drops it for good: session states are not scrollback, so the new stream
//! never brings them back. The Neovim plugin re-attaches whenever it opens a chat buffer, right
//! after StartSession, which is exactly when the session's `established` event comes; losing it
//! left the plugin showing a session "waiting for echo to accept" that the daemon had established.
//!
//! So the old stream is read until it has delivered everything the new one will not: the new
//! stream's live events wait until the old stream reaches the first of them (both carry every
//! event emitted after the new one attached, in order), and from then on only the new stream is
//! read. Replayed scrollback (`replay`) and lag notices (`seq` 0) are not live events: they pass
//! straight through. [`Merge`] holds that bookkeeping apart from the streams.

use super::protocol::{self, Call, Line};
use prost_reflect::DynamicMessage;
use std::collections::VecDeque;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;
use tonic::codec::Streaming;
use tonic::transport::Channel;
use tonic::{Code, Status};

/// WatchEvents calls waiting for the watch task; the bridge stops reading input while it is full.
const CALL_QUEUE: usize = 8;

/// The running watch task; stopped when dropped, so abandoning the bridge can never leave a
/// stream feeding the output behind its back.
pub(super) struct Watcher {
    calls: mpsc::Sender<Call>,
    task: JoinHandle<()>,
}

impl Watcher {
    /// Starts the task that opens WatchEvents streams on `channel` and writes to `out`.
    pub(super) fn spawn(channel: Channel, out: mpsc::Sender<Line>) -> Self {
        let (calls, rx) = mpsc::channel(CALL_QUEUE);
        let task = tokio::spawn(run(channel, rx, out));
        Self { calls, task }
    }

    /// Hands a WatchEvents call to the task: answered once attached, then it replaces the
    /// stream in use.
    pub(super) async fn watch(&self, call: Call) {
        // The task only ends when aborted (by `stop`/drop), never before the sender goes.
        let _ = self.calls.send(call).await;
    }

    /// Stops watching and waits until the task has stopped.
    pub(super) async fn stop(mut self) {
        self.task.abort();
        // An aborted task's JoinError is the expected outcome.
        let _ = (&mut self.task).await;
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Most live events held from the new stream while the old one catches up (the daemon's own
/// fan-out keeps as many per watcher).
const MAX_HELD: usize = 4096;

type Events = Streaming<DynamicMessage>;

async fn run(channel: Channel, mut calls: mpsc::Receiver<Call>, out: mpsc::Sender<Line>) {
    // `old` is read only during a handover; `current` is the stream the last WatchEvents opened.
    let mut old: Option<Events> = None;
    let mut current: Option<Events> = None;
    let mut merge = Merge::default();
    loop {
        let lines = tokio::select! {
            call = calls.recv() => {
                let Some(call) = call else { return };
                match open(channel.clone(), &call).await {
                    Ok(events) => {
                        if let Some(previous) = current.replace(events) {
                            // A handover already under way keeps its old stream (it covers the
                            // abandoned middle one); otherwise the replaced stream becomes old.
                            if old.is_none() {
                                old = Some(previous);
                            }
                            merge.begin();
                        }
                        vec![protocol::attached(&call.id)]
                    }
                    // The stream in use (if any) keeps running.
                    Err(status) => vec![protocol::error(&call.id, status.code(), status.message())],
                }
            }
            item = next(&mut old) => match item {
                Some(Ok(event)) => {
                    let (seq, replay) = numbering(&event);
                    let (events, done) = merge.on_old(seq, replay, event);
                    if done {
                        old = None;
                    }
                    events.iter().map(protocol::event).collect()
                }
                // The old stream ended first (the daemon stops it only when going away): the new
                // one carries on with what it held.
                Some(Err(_)) | None => {
                    old = None;
                    merge.finish().iter().map(protocol::event).collect()
                }
            },
            item = next(&mut current) => match item {
                Some(Ok(event)) => {
                    let (seq, replay) = numbering(&event);
                    let (events, done) = merge.on_new(seq, replay, event);
                    if done {
                        old = None;
                    }
                    events.iter().map(protocol::event).collect()
                }
                ended => {
                    // Whatever the old stream still had goes with it: the client is told the
                    // watch ended and attaches again (to a daemon whose `seq` may start over).
                    old = None;
                    current = None;
                    merge = Merge::default();
                    vec![match ended {
                        Some(Err(status)) => {
                            let msg = format!("the event stream ended: {}", status.message());
                            protocol::watch_ended(status.code(), &msg)
                        }
                        _ => protocol::watch_ended(
                            Code::Unavailable,
                            "the event stream ended (otrd is shutting down)",
                        ),
                    }]
                }
            },
        };
        for line in lines {
            if out.send(line).await.is_err() {
                return;
            }
        }
    }
}

/// Opens a WatchEvents stream (attached once this returns: the daemon subscribes before it
/// answers).
async fn open(channel: Channel, call: &Call) -> Result<Events, Status> {
    let (mut grpc, codec) = super::prepared(channel, call).await?;
    let response = grpc
        .server_streaming(
            tonic::Request::new(call.request.clone()),
            super::path(call)?,
            codec,
        )
        .await?;
    Ok(response.into_inner())
}

/// The next item of a stream, or never when there is none.
async fn next(events: &mut Option<Events>) -> Option<Result<DynamicMessage, Status>> {
    match events {
        Some(events) => events.next().await,
        None => std::future::pending().await,
    }
}

/// An event's `seq` and `replay` (0 and false when absent).
fn numbering(event: &DynamicMessage) -> (u64, bool) {
    let seq = event
        .get_field_by_name("seq")
        .and_then(|v| v.as_u64())
        .unwrap_or(0);
    let replay = event
        .get_field_by_name("replay")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    (seq, replay)
}

/// Which events to forward, from the stream in use and (during a handover) the old one.
#[derive(Debug)]
pub(crate) struct Merge<T> {
    /// Highest live `seq` forwarded since the streams were opened; 0 before the first.
    last_live: u64,
    /// During a handover, the new stream's live events not forwarded yet, oldest first.
    held: VecDeque<(u64, T)>,
    /// An old stream is still being read.
    handing_over: bool,
}

impl<T> Default for Merge<T> {
    fn default() -> Self {
        Self {
            last_live: 0,
            held: VecDeque::new(),
            handing_over: false,
        }
    }
}

/// A numbered live event (not a replay, not a lag notice, which has `seq` 0).
fn live(seq: u64, replay: bool) -> bool {
    seq != 0 && !replay
}

impl<T> Merge<T> {
    /// A new stream replaced the one in use. If a handover was already under way, the stream it
    /// was handing over to is gone: its held events are dropped (the old stream, attached
    /// earlier, carries them too).
    pub(crate) fn begin(&mut self) {
        self.held.clear();
        self.handing_over = true;
    }

    /// An event from the old stream: what to forward, and whether the handover is complete
    /// (the old stream can go).
    pub(crate) fn on_old(&mut self, seq: u64, replay: bool, event: T) -> (Vec<T>, bool) {
        let mut out = self.pass(seq, replay, event);
        if self.handing_over && self.caught_up() {
            out.extend(self.finish());
            return (out, true);
        }
        (out, false)
    }

    /// The old stream has forwarded the new stream's first live event: from there on the new
    /// stream carries everything.
    fn caught_up(&self) -> bool {
        self.held
            .front()
            .is_some_and(|(first, _)| *first <= self.last_live)
    }

    /// An event from the stream in use: what to forward, and whether a handover just completed.
    pub(crate) fn on_new(&mut self, seq: u64, replay: bool, event: T) -> (Vec<T>, bool) {
        if !self.handing_over || !live(seq, replay) {
            return (self.pass(seq, replay, event), false);
        }
        self.held.push_back((seq, event));
        // The old stream may already have passed it. An old stream this far behind is stuck (it
        // carries every event the new one does, in order): it is given up rather than holding
        // events without bound.
        if self.caught_up() || self.held.len() > MAX_HELD {
            return (self.finish(), true);
        }
        (Vec::new(), false)
    }

    /// The handover is over (the old stream caught up or ended): the held events not already
    /// forwarded by the old stream, in order.
    pub(crate) fn finish(&mut self) -> Vec<T> {
        self.handing_over = false;
        let held = std::mem::take(&mut self.held);
        held.into_iter()
            .filter_map(|(seq, event)| self.pass_live(seq, event))
            .collect()
    }

    /// Forwards non-live events, and live ones not forwarded yet.
    fn pass(&mut self, seq: u64, replay: bool, event: T) -> Vec<T> {
        if !live(seq, replay) {
            return vec![event];
        }
        self.pass_live(seq, event).into_iter().collect()
    }

    fn pass_live(&mut self, seq: u64, event: T) -> Option<T> {
        if seq <= self.last_live {
            return None; // already forwarded (the other stream had it too)
        }
        self.last_live = seq;
        Some(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_stream_forwards_everything_once() {
        let mut m = Merge::default();
        assert_eq!(m.on_new(1, false, 1).0, vec![1]);
        assert_eq!(m.on_new(2, false, 2).0, vec![2]);
        // Lag notices and replays are not numbered live events.
        assert_eq!(m.on_new(0, false, 0).0, vec![0]);
        assert_eq!(m.on_new(1, true, 101).0, vec![101]);
        assert_eq!(m.on_new(3, false, 3).0, vec![3]);
    }

    #[test]
    fn events_only_the_old_stream_had_are_forwarded_before_the_new_streams() {
        let mut m = Merge::default();
        assert_eq!(m.on_new(1, false, 1).0, vec![1]);
        // Re-attach: 2 and 3 were emitted before the new stream attached (old stream only, not
        // read yet); 4 and 5 after (both streams). The new stream is faster.
        m.begin();
        assert_eq!(m.on_new(1, true, 101), (vec![101], false), "replay passes");
        assert_eq!(m.on_new(4, false, 4), (vec![], false));
        assert_eq!(m.on_new(5, false, 5), (vec![], false));
        assert_eq!(m.on_old(2, false, 2), (vec![2], false));
        assert_eq!(m.on_old(3, false, 3), (vec![3], false));
        // The old stream reaches the new stream's first: everything held goes, once.
        assert_eq!(m.on_old(4, false, 4), (vec![4, 5], true));
        assert_eq!(m.on_new(6, false, 6), (vec![6], false));
    }

    #[test]
    fn a_new_stream_behind_the_old_one_completes_at_once() {
        let mut m = Merge::default();
        assert_eq!(m.on_new(1, false, 1).0, vec![1]);
        m.begin();
        assert_eq!(m.on_old(2, false, 2), (vec![2], false));
        assert_eq!(m.on_old(3, false, 3), (vec![3], false));
        // The new stream attached before 3: the old one already forwarded it.
        assert_eq!(m.on_new(3, false, 3), (vec![], true));
        assert_eq!(m.on_new(4, false, 4), (vec![4], false));
    }

    #[test]
    fn the_old_stream_ending_releases_what_was_held() {
        let mut m = Merge::default();
        m.on_new(1, false, 1);
        m.begin();
        m.on_new(3, false, 3);
        assert_eq!(m.on_old(2, false, 2), (vec![2], false));
        assert_eq!(m.finish(), vec![3]);
        assert_eq!(m.on_new(4, false, 4), (vec![4], false));
    }

    #[test]
    fn a_stuck_old_stream_is_given_up_after_a_bound() {
        let mut m = Merge::default();
        m.on_new(1, false, 1);
        m.begin();
        let last = 2 + MAX_HELD as u64;
        for seq in 2..last {
            assert_eq!(m.on_new(seq, false, seq), (vec![], false));
        }
        let (released, done) = m.on_new(last, false, last);
        assert!(done);
        assert_eq!(released, (2..=last).collect::<Vec<_>>());
    }

    #[test]
    fn a_third_watch_during_a_handover_keeps_the_oldest_stream() {
        let mut m = Merge::default();
        m.on_new(1, false, 1);
        m.begin();
        m.on_new(3, false, 3); // the middle stream, about to be replaced
        m.begin();
        assert_eq!(m.on_new(4, false, 4), (vec![], false));
        assert_eq!(m.on_old(2, false, 2), (vec![2], false));
        assert_eq!(m.on_old(3, false, 3), (vec![3], false));
        assert_eq!(m.on_old(4, false, 4), (vec![4], true));
    }
}
