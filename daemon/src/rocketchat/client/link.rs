//! One open websocket and its frame-level chores: answering server pings, skipping frames
//! that are not DDP (counted, never logged with content), refusing oversized messages.

use super::connection::Outcome;
use super::Counters;
use crate::rocketchat::ddp::{self, ServerFrame};
use futures::{SinkExt, StreamExt};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub(super) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// One open websocket, with frame-level chores: pongs, skipping junk, counting.
pub(super) struct Link {
    pub(super) ws: Ws,
    pub(super) counters: Arc<Counters>,
    /// When anything last arrived (the heartbeat's clock).
    pub(super) last_rx: Instant,
}

impl Link {
    pub(super) async fn send(&mut self, text: String) -> Result<(), Outcome> {
        self.ws
            .send(Message::text(text))
            .await
            .map_err(|e| Outcome::Lost(format!("could not send: {e}")))
    }

    /// Reads frames until one the caller cares about arrives, or `deadline`.
    pub(super) async fn next_until(
        &mut self,
        deadline: Instant,
        step: &str,
    ) -> Result<ServerFrame, Outcome> {
        loop {
            let item = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .map_err(|_| Outcome::Lost(format!("no answer to {step} in time")))?;
            if let Some(frame) = self.on_message(item).await? {
                return Ok(frame);
            }
        }
    }

    /// One websocket read → a DDP frame for the caller, or `None` when it was handled here
    /// (server ping) or skipped (malformed, not DDP).
    pub(super) async fn on_message(
        &mut self,
        item: Option<Result<Message, tungstenite::Error>>,
    ) -> Result<Option<ServerFrame>, Outcome> {
        let msg = match item {
            None => return Err(Outcome::Lost("the server closed the connection".into())),
            Some(Err(tungstenite::Error::Capacity(_))) => {
                self.counters.oversized.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("refused a websocket message larger than max_frame_bytes");
                return Err(Outcome::Lost(
                    "the server sent a message larger than allowed".into(),
                ));
            }
            Some(Err(e)) => return Err(Outcome::Lost(format!("connection error: {e}"))),
            Some(Ok(m)) => m,
        };
        self.last_rx = Instant::now();
        let text = match msg {
            Message::Text(t) => t,
            Message::Close(_) => {
                return Err(Outcome::Lost("the server closed the connection".into()))
            }
            Message::Binary(_) => {
                self.counters.malformed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("skipping a binary websocket message (DDP is text)");
                return Ok(None);
            }
            _ => return Ok(None),
        };
        match ddp::decode_server_frame(text.as_str()) {
            Err(e) => {
                self.counters.malformed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, len = text.len(), "skipping a malformed DDP frame");
                Ok(None)
            }
            Ok(ServerFrame::Ping { id }) => {
                self.send(ddp::pong_frame(id.as_deref())).await?;
                Ok(None)
            }
            Ok(ServerFrame::Other) => Ok(None),
            Ok(frame) => Ok(Some(frame)),
        }
    }
}
