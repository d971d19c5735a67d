//! The notifier's loop: invitations become notifications, their buttons become Accept or
//! Decline on the engine, answered invitations withdraw their notifications.

use super::proxy::{ActionInvokedStream, NotificationClosedStream, NotificationsProxy};
use crate::engine::{EngineHandle, Event, EventKind, PeerRef, SessionState};
use futures::StreamExt;
use std::collections::HashMap;
use tokio::sync::broadcast::{self, error::RecvError};

/// Shown as the sender of every notification.
const APP_NAME: &str = "otrd";
/// The action keys (the spec's "default" would be a click on the body; we want explicit buttons).
const ACCEPT: &str = "accept";
const DECLINE: &str = "decline";

/// The notifier's state: which notification belongs to which peer's invitation.
pub struct Notifier {
    engine: EngineHandle,
    proxy: NotificationsProxy<'static>,
    /// Notification id → peer username and the invitation event's seq (what Accept names, so
    /// a button pressed late cannot accept an offer that replaced the one shown).
    shown: HashMap<u32, (String, u64)>,
}

impl Notifier {
    /// A notifier with nothing shown yet.
    pub fn new(engine: EngineHandle, proxy: NotificationsProxy<'static>) -> Self {
        Self {
            engine,
            proxy,
            shown: HashMap::new(),
        }
    }

    async fn invitation(&mut self, peer: &str, mode: &str, seq: u64) {
        // Asked each time: the notification server may have been replaced since the last one.
        let actions_supported = match self.proxy.get_capabilities().await {
            Ok(caps) => caps.iter().any(|c| c == "actions"),
            Err(e) => {
                tracing::warn!(error = %e, "notification server did not list its capabilities");
                false
            }
        };
        let actions: &[&str] = if actions_supported {
            &[ACCEPT, "Accept", DECLINE, "Decline"]
        } else {
            &[]
        };
        let summary = format!("{peer} wants to talk off the record");
        let body = if actions_supported {
            format!("{peer} invites you to a private ({mode}) session.")
        } else {
            format!("{peer} invites you to a private ({mode}) session. Answer with `otrctl accept {peer}`.")
        };
        let replaces = self.id_of(peer).unwrap_or(0);
        let mut hints = HashMap::new();
        hints.insert("urgency", zbus::zvariant::Value::U8(2));
        match self
            .proxy
            .notify(APP_NAME, replaces, "", &summary, &body, actions, hints, 0)
            .await
        {
            Ok(id) => {
                tracing::debug!(id, %peer, "invitation notification shown");
                self.shown.insert(id, (peer.to_owned(), seq));
            }
            Err(e) => {
                tracing::warn!(error = %e, %peer, "could not show the invitation notification")
            }
        }
    }

    fn id_of(&self, peer: &str) -> Option<u32> {
        self.shown
            .iter()
            .find(|(_, (p, _))| p.as_str() == peer)
            .map(|(id, _)| *id)
    }

    async fn action(&mut self, id: u32, key: &str) {
        // Signals for other applications' notifications arrive too; only ours have an entry.
        let Some((peer, seq)) = self.shown.remove(&id) else {
            return;
        };
        let who = PeerRef::Username(peer.clone());
        let result = match key {
            ACCEPT => self.engine.accept(who, Some(seq)).await,
            DECLINE => self.engine.decline(who).await,
            other => {
                tracing::debug!(action = %other, "ignoring an unknown notification action");
                return;
            }
        };
        match result {
            Ok(_) => {
                tracing::info!(%peer, action = %key, "invitation answered from a notification")
            }
            Err(e) => {
                tracing::warn!(%peer, action = %key, error = %e, "answering from a notification failed")
            }
        }
    }

    /// The invitation was answered (or dropped) elsewhere: withdraw its notification.
    async fn settled(&mut self, peer: &str) {
        if let Some(id) = self.id_of(peer) {
            self.shown.remove(&id);
            if let Err(e) = self.proxy.close_notification(id).await {
                tracing::debug!(error = %e, id, "closing a stale notification failed");
            }
        }
    }

    async fn event(&mut self, event: Event) {
        match event.kind {
            EventKind::Invitation { peer, mode, .. } => {
                self.invitation(&peer, mode.as_str(), event.seq).await
            }
            EventKind::State { peer, state, .. } if state != SessionState::Requested => {
                self.settled(&peer).await;
            }
            _ => {}
        }
    }
}

/// Runs until the engine's event stream closes.
pub async fn run(
    mut notifier: Notifier,
    mut events: broadcast::Receiver<Event>,
    mut actions: ActionInvokedStream,
    mut closed: NotificationClosedStream,
) {
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(e) => notifier.event(e).await,
                Err(RecvError::Lagged(n)) => tracing::warn!(lost = n, "notifier fell behind the engine's events"),
                Err(RecvError::Closed) => return,
            },
            Some(signal) = actions.next() => match signal.args() {
                Ok(args) => notifier.action(args.id, &args.action_key).await,
                Err(e) => tracing::debug!(error = %e, "malformed ActionInvoked signal"),
            },
            Some(signal) = closed.next() => {
                if let Ok(args) = signal.args() {
                    notifier.shown.remove(&args.id);
                }
            }
        }
    }
}
