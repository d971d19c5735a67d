//! When a reconnect finds the server's capabilities changed — a 7.x server upgraded to 8.x,
//! `OTR_Enable` switched off (or on) — everything the engine built on the old ones goes.
//!
//! Sessions, outboxes and subscriptions are all shaped by one decision, whether the server has
//! the 7.x OTR relay (`SessionInfo::server.otr_relay`): a session's policy (`ensure_session`),
//! how its frames travel (`outbox`: the relay's methods, or paths A/B once probed) and which
//! streams bring frames in. When it flips:
//!
//! - every outbox is aborted with what it still holds, and every room's path is forgotten;
//! - held messages and pending Starts fail, saying why;
//! - every session ends as EndAllSessions ends it (`end_all`), the peer told only where the new
//!   transport reaches it (on 8.x, nowhere before a probe: the peer's daemon sees the same change
//!   at its own reconnect), and the sessions are removed, so the next one for a room is built by
//!   `ensure_session` for the new server;
//! - the transport's subscriptions ([`TransportSubs`]) are ended and made again for the new one.
//!
//! Beyond the engine, the client refuses any 7.x relay call on a login without the relay
//! (`Client::call_relay`), so a frame that was already waiting in a relay outbox when the
//! connection dropped cannot reach an 8.x server either.

use super::core::{Engine, Internal};
use super::status::SessionTally;
use super::types::*;
use crate::rocketchat::{Client, ServerCapabilities, SubscriptionId};
use crate::transport::realtime;
use serde_json::json;

/// The subscriptions that depend on the server's capabilities: the relay's `<uid>/otr`, or,
/// without it, path B's `<uid>/video-conference` and path A's `<rid>/user-activity` per DM.
/// Subscribing happens in spawned tasks; each reports its ids with the generation it was made
/// for, and ids of an older generation (made for capabilities that have changed since) are
/// ended as they arrive.
#[derive(Debug, Default)]
pub(super) struct TransportSubs {
    /// Bumped at every capability change.
    generation: u64,
    /// The current generation's subscriptions.
    ids: Vec<SubscriptionId>,
}

impl TransportSubs {
    /// The generation new subscriptions are made for.
    pub(super) fn generation(&self) -> u64 {
        self.generation
    }
}

/// Whether what the engine built for `old` is wrong for `new`. Only the relay decision shapes
/// sessions, outboxes and subscriptions; a version change that keeps it changes nothing built.
/// A capability probe that failed counts as "no relay" (`ServerCapabilities::unknown`): when the
/// relay cannot be confirmed, nothing may be sent through it.
pub(super) fn changed(old: &ServerCapabilities, new: &ServerCapabilities) -> bool {
    old.otr_relay != new.otr_relay
}

/// Follows the user-level stream the transport needs: the 7.x relay's `<uid>/otr`, or path B's
/// `<uid>/video-conference` (otrd ↔ otrd without the relay).
pub(super) async fn follow_user_stream(
    client: &Client,
    uid: &str,
    relay: bool,
) -> Option<SubscriptionId> {
    let (params, what) = if relay {
        (
            vec![json!(format!("{uid}/otr")), super::inbound::stream_opts()],
            "OTR signalling",
        )
    } else {
        (realtime::path_b::subscribe_params(uid), "path B")
    };
    match client.subscribe("stream-notify-user", params).await {
        Ok(id) => Some(id),
        Err(e) => {
            tracing::warn!(error = %e, "cannot follow {what}");
            None
        }
    }
}

/// Follows path A in one DM (servers without the relay).
pub(super) async fn follow_path_a(client: &Client, room_id: &str) -> Option<SubscriptionId> {
    match client
        .subscribe(
            "stream-notify-room",
            realtime::path_a::subscribe_params(room_id),
        )
        .await
    {
        Ok(id) => Some(id),
        Err(e) => {
            tracing::warn!(room = %room_id, error = %e, "cannot follow path A");
            None
        }
    }
}

impl Engine {
    /// Takes the ids of transport subscriptions made for `generation`.
    pub(super) fn on_transport_subscribed(&mut self, generation: u64, ids: Vec<SubscriptionId>) {
        if generation == self.transport_subs.generation {
            self.transport_subs.ids.extend(ids);
            return;
        }
        if let Some(client) = self.client.clone() {
            tokio::spawn(async move {
                for id in ids {
                    client.unsubscribe(id).await;
                }
            });
        }
    }

    /// The login that just happened found other capabilities than the last one (`self.me`
    /// already holds the new ones).
    pub(super) fn on_capabilities_changed(&mut self) {
        let Some(server) = self.me.as_ref().map(|m| m.server.clone()) else {
            return;
        };
        tracing::warn!(
            server_version = %server.version,
            otr_relay = server.otr_relay,
            "the server's OTR capabilities changed; ending every session"
        );
        let why = match &server.reason {
            Some(reason) => format!("the server changed: {reason}"),
            None => "the server changed: it now relays OTR (Rocket.Chat ≤ 7.x with OTR_Enable on)"
                .to_owned(),
        };
        // First, so that nothing below goes out the old way.
        for (_, outbox) in self.outboxes.drain() {
            outbox.abort();
        }
        self.stop_relays();
        self.outbox_paths.clear();
        self.realtime.forget_paths();
        // With this reason, before `end_all` fails them with the lock's.
        self.fail_all_held(&format!("{why}; every OTR session was ended"));
        self.fail_probes(&why);
        let ended = self.end_all();
        // Built for the old server (policy, transport): `ensure_session` makes new ones.
        self.sessions.clear();
        self.tally = SessionTally::default();
        self.status_dirty = true;
        self.redo_transport_subscriptions();
        self.reload_rooms();
        self.emit(EventKind::Error {
            peer: String::new(),
            room_id: String::new(),
            code: "server_changed".into(),
            message: format!("{why}. Every OTR session was ended ({ended} live); start them again"),
            id: String::new(),
        });
    }

    /// Ends the transport subscriptions and makes those the current capabilities need.
    fn redo_transport_subscriptions(&mut self) {
        let old = std::mem::take(&mut self.transport_subs.ids);
        self.transport_subs.generation += 1;
        let generation = self.transport_subs.generation;
        let (Some(client), Some(me)) = (self.client.clone(), self.me.as_ref()) else {
            return;
        };
        let (uid, relay) = (me.user_id.clone(), me.server.otr_relay);
        let rooms: Vec<String> = if relay {
            Vec::new()
        } else {
            self.rooms.all().iter().map(|r| r.room_id.clone()).collect()
        };
        let tx = self.internal_tx.clone();
        tokio::spawn(async move {
            for id in old {
                client.unsubscribe(id).await;
            }
            let mut ids: Vec<SubscriptionId> = Vec::new();
            ids.extend(follow_user_stream(&client, &uid, relay).await);
            for rid in &rooms {
                ids.extend(follow_path_a(&client, rid).await);
            }
            let _ = tx.send(Internal::TransportSubscribed { generation, ids });
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_relay_decision_counts_as_a_change() {
        let v7 = ServerCapabilities::decide("7.10.0", Some(true));
        let v7_next = ServerCapabilities::decide("7.11.2", Some(true));
        let off = ServerCapabilities::decide("7.10.0", Some(false));
        let v8 = ServerCapabilities::decide("8.0.0", None);
        let v8_next = ServerCapabilities::decide("8.1.0", None);
        assert!(changed(&v7, &v8), "upgraded to 8.x");
        assert!(changed(&v7, &off), "OTR_Enable switched off");
        assert!(changed(&off, &v7), "and on again");
        assert!(changed(&v7, &ServerCapabilities::unknown("HTTP 502")));
        assert!(!changed(&v7, &v7_next));
        assert!(!changed(&v8, &v8_next));
        assert!(
            !changed(&off, &v8),
            "neither has the relay: paths A/B either way"
        );
    }
}
