//! One task per room that performs that room's frames strictly in order (a handshake before the
//! first message, messages in the order they were written) and reports what happened.

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

/// The sending side of a room's queue. Dropping it ends the task once the queue is drained;
/// [`Outbox::abort`] ends it at once, with what it still holds.
#[derive(Debug, Clone)]
pub struct Outbox {
    tx: mpsc::UnboundedSender<Frame>,
    /// The room's task, for [`Outbox::abort`].
    task: tokio::task::AbortHandle,
}

impl Outbox {
    /// Starts the room's task.
    pub fn spawn(client: Client, room: RoomAddr, reports: mpsc::UnboundedSender<Report>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(client, room, rx, reports)).abort_handle();
        Self { tx, task }
    }

    /// Starts the room's task on a realtime path (A or B): frames that queue up share a call.
    pub fn spawn_realtime(
        route: super::realtime::sender::Route,
        reports: mpsc::UnboundedSender<Report>,
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(super::realtime::sender::run(route, rx, reports)).abort_handle();
        Self { tx, task }
    }

    /// Queues a frame; false if the room's task is gone.
    pub fn push(&self, frame: Frame) -> bool {
        self.tx.send(frame).is_ok()
    }

    /// Ends the room's task now, dropping every frame it has not sent (the transport it was
    /// built for is gone: the server's capabilities changed). A call already handed to the
    /// connection may still complete; the client refuses relay calls on a server without the
    /// relay (`Client::call_relay`).
    pub fn abort(&self) {
        self.task.abort();
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
