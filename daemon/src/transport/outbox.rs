//! A room's outbox: its frames leave strictly in order (a handshake before the first message,
//! messages in the order they were written) and what happened is reported. On the 7.x relay one
//! task per room performs them; on the realtime relays of 8.x they go into the account's shared
//! scheduler ([`super::realtime::Relays`]), which paces every room under one budget.

use super::{relay, Frame, RoomAddr};
use crate::rocketchat::{Client, RcError};
use tokio::sync::mpsc;

/// An outcome the engine must know about.
#[derive(Debug)]
pub enum Report {
    /// The server's verdict on a chat message (not sent when the connection dropped meanwhile:
    /// the session resends after the reconnect instead).
    MessageOutcome {
        /// Room.
        room_id: String,
        /// Message id.
        id: String,
        /// Accepted by the server.
        ok: bool,
        /// Why not.
        detail: String,
    },
    /// Messages of a room wait for the realtime relays' rate limit (or no longer do:
    /// `backlog.queued == 0`).
    Backlog {
        /// Room.
        room_id: String,
        /// How many, since when.
        backlog: crate::engine::Backlog,
    },
    /// Some other frame failed.
    FrameFailed {
        /// Room.
        room_id: String,
        /// What was being sent.
        what: &'static str,
        /// Why.
        detail: String,
    },
}

/// The sending side of a room's queue. Dropping it ends the room's task (7.x relay) once its
/// queue is drained, or leaves the shared scheduler to drain it (realtime); [`Outbox::abort`]
/// drops what it still holds at once.
#[derive(Debug, Clone)]
pub struct Outbox {
    inner: Inner,
}

#[derive(Debug, Clone)]
enum Inner {
    /// The 7.x relay: the room's own task.
    Relay {
        tx: mpsc::UnboundedSender<Frame>,
        /// The room's task, for [`Outbox::abort`].
        task: tokio::task::AbortHandle,
    },
    /// Path A or B: the account's scheduler.
    Realtime(super::realtime::RoomOutbox),
}

impl Outbox {
    /// Starts the room's task on the 7.x relay.
    pub fn spawn(client: Client, room: RoomAddr, reports: mpsc::UnboundedSender<Report>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(client, room, rx, reports)).abort_handle();
        Self {
            inner: Inner::Relay { tx, task },
        }
    }

    /// The room's outbox on a realtime path (A or B): frames that queue up share a call.
    pub fn realtime(outbox: super::realtime::RoomOutbox) -> Self {
        Self {
            inner: Inner::Realtime(outbox),
        }
    }

    /// Queues a frame; false if the room's task is gone.
    pub fn push(&self, frame: Frame) -> bool {
        match &self.inner {
            Inner::Relay { tx, .. } => tx.send(frame).is_ok(),
            Inner::Realtime(outbox) => {
                outbox.push(&frame);
                true
            }
        }
    }

    /// Ends the room's sending now, dropping every frame not sent (the transport it was built
    /// for is gone: the server's capabilities changed). A call already handed to the
    /// connection may still complete; the client refuses relay calls on a server without the
    /// relay (`Client::call_relay`).
    pub fn abort(&self) {
        match &self.inner {
            Inner::Relay { task, .. } => task.abort(),
            Inner::Realtime(outbox) => outbox.abort(),
        }
    }
}

async fn run(
    client: Client,
    room: RoomAddr,
    mut rx: mpsc::UnboundedReceiver<Frame>,
    reports: mpsc::UnboundedSender<Report>,
) {
    while let Some(frame) = rx.recv().await {
        let result = relay::send(&client, &room, &frame).await;
        let report = match (&frame, result) {
            (_, Ok(())) if !matches!(frame, Frame::Message { .. }) => None,
            (Frame::Message { id, .. }, Ok(())) => Some(Report::MessageOutcome {
                room_id: room.room_id.clone(),
                id: id.clone(),
                ok: true,
                detail: String::new(),
            }),
            // Lost with the connection: the session resends on reconnect, same id and ciphertext.
            (Frame::Message { .. }, Err(relay::RelayError::Call(RcError::NotConnected))) => None,
            (Frame::Message { id, .. }, Err(e)) => Some(Report::MessageOutcome {
                room_id: room.room_id.clone(),
                id: id.clone(),
                ok: false,
                detail: e.to_string(),
            }),
            (other, Err(e)) => {
                tracing::warn!(room = %room.room_id, what = frame_name(other), error = %e, "frame not sent");
                Some(Report::FrameFailed {
                    room_id: room.room_id.clone(),
                    what: frame_name(other),
                    detail: e.to_string(),
                })
            }
            (_, Ok(())) => None,
        };
        if let Some(report) = report {
            if reports.send(report).is_err() {
                break;
            }
        }
    }
}

pub(crate) fn frame_name(frame: &Frame) -> &'static str {
    match frame {
        Frame::Signal { kind, .. } => kind.as_str(),
        Frame::Message { .. } => "message",
        Frame::Ack { .. } => "acknowledgement",
        Frame::System { .. } => "system message",
        Frame::DeleteOld => "deleteOldOTRMessages",
    }
}
