//! `Sim`: one simulated server — configuration, data (behind one mutex that is never held across
//! an await), audit, faults and rate limiter — plus the operations every protocol surface shares:
//! emitting stream events (through the fault switches), storing messages, and presence changes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use serde_json::{json, Value};
use tokio::sync::mpsc::UnboundedSender;

use crate::attacker::Attacker;
use crate::audit::AuditLog;
use crate::config::{ConfigError, SimConfig, Status};
use crate::ddp::{self, now_ms};
use crate::faults::Faults;
use crate::ratelimit::RateLimiter;
use crate::state::{ConnId, Out, State};

/// One simulated Rocket.Chat server.
#[derive(Debug)]
pub struct Sim {
    /// Behaviour switches (users/dms in it are only the initial set).
    pub cfg: SimConfig,
    /// All data; lock with [`Sim::lock`].
    state: Mutex<State>,
    /// What clients sent and what was stored.
    pub audit: AuditLog,
    /// Fault injection switches.
    pub faults: Faults,
    /// DDP method rate limiter.
    pub limiter: Mutex<RateLimiter>,
    /// The server as an attacker: what it forged, saw and could decrypt (`attacker`).
    pub attacker: Attacker,
    next_conn: AtomicU64,
}

impl Sim {
    /// Builds the server data from the configuration.
    pub fn new(cfg: SimConfig) -> Result<Sim, ConfigError> {
        let mut st = State::default();
        for u in &cfg.users {
            st.add_user(u)
                .map_err(|_| ConfigError::DuplicateUser(u.username.clone()))?;
        }
        for dm in &cfg.dms {
            let mut ids = Vec::new();
            for name in &dm.usernames {
                let u = st
                    .user_by_name(name)
                    .ok_or_else(|| ConfigError::UnknownDmUser {
                        room: dm.id.clone(),
                        username: name.clone(),
                    })?;
                ids.push(u.id.clone());
            }
            st.ensure_dm(Some(&dm.id), &ids[0], &ids[1])
                .map_err(|_| ConfigError::DuplicateUser(dm.id.clone()))?;
        }
        for u in &mut st.users {
            u.announced = Status::Offline;
        }
        let limiter = Mutex::new(RateLimiter::new(&cfg.rate_limits));
        Ok(Sim {
            cfg,
            state: Mutex::new(st),
            audit: AuditLog::default(),
            faults: Faults::default(),
            limiter,
            attacker: Attacker::default(),
            next_conn: AtomicU64::new(1),
        })
    }

    /// Locks the data. A poisoned lock is recovered: the data is plain and stays usable.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A fresh connection id.
    pub fn next_conn_id(&self) -> ConnId {
        self.next_conn.fetch_add(1, Ordering::SeqCst)
    }

    /// Sends a stream event frame to the given writers, applying the delay/duplicate faults.
    pub fn deliver(&self, targets: Vec<UnboundedSender<Out>>, frame: String) {
        if targets.is_empty() {
            return;
        }
        let copies = if self.faults.duplicate_events() { 2 } else { 1 };
        let delay = self.faults.event_delay();
        let send_all = move |targets: &[UnboundedSender<Out>], frame: &str| {
            for tx in targets {
                for _ in 0..copies {
                    // A closed writer means the connection is going away; nothing to do.
                    let _ = tx.send(Out::Text(frame.to_string()));
                }
            }
        };
        if delay.is_zero() {
            send_all(&targets, &frame);
        } else {
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                send_all(&targets, &frame);
            });
        }
    }

    /// Emits `args` on `collection`/`event` to every subscriber except `except`.
    pub fn emit(&self, collection: &str, event: &str, args: &Value, except: Option<ConnId>) {
        let targets = self.lock().subscribers(collection, event, except);
        tracing::debug!(collection, event, targets = targets.len(), "stream event");
        let frame = ddp::stream_event(collection, event, args);
        if collection == "stream-room-messages" {
            // Held (to be released reordered) when the test asked for it.
            if let Some((targets, frame)) = self.faults.try_hold(targets, frame) {
                self.deliver(targets, frame);
            }
            return;
        }
        self.deliver(targets, frame);
    }

    /// Sends every held room-message event, newest first; returns how many were held.
    pub fn release_held_reversed(&self) -> usize {
        let held = self.faults.release_reversed();
        let n = held.len();
        for (targets, frame) in held {
            self.deliver(targets, frame);
        }
        n
    }

    /// Emits on the user stream `<uid>/<event>` (`notifyUser`).
    pub fn notify_user(&self, uid: &str, event: &str, args: &Value) {
        self.emit("stream-notify-user", &format!("{uid}/{event}"), args, None);
    }

    /// Stores a message document in its room and records it in the audit.
    /// Fails (returns false) when the `_id` is already taken.
    pub fn store_message(&self, kind: &str, doc: Value) -> bool {
        let id = doc
            .get("_id")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let rid = doc
            .get("rid")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        {
            let mut st = self.lock();
            if st
                .messages
                .iter()
                .any(|m| m.get("_id").and_then(Value::as_str) == Some(&id))
            {
                return false;
            }
            let now = now_ms();
            if let Some(room) = st.rooms.iter_mut().find(|r| r.id == rid) {
                room.msgs += 1;
                room.lm_ms = Some(now);
                room.updated_ms = now;
            }
            st.messages.push(doc.clone());
        }
        self.audit.stored(kind, doc);
        true
    }

    /// Broadcasts a stored message like the 7.x/8.x DB watcher: `[message]` on the room stream
    /// and on `__my_messages__` for the room's members.
    pub fn broadcast_stored(&self, rid: &str, doc: &Value) {
        let args = json!([doc]);
        self.emit("stream-room-messages", rid, &args, None);
        let targets = {
            let st = self.lock();
            let members = st.room(rid).map(|r| r.uids.clone()).unwrap_or_default();
            st.conns
                .values()
                .filter(|c| {
                    c.user.as_ref().is_some_and(|u| members.contains(u))
                        && c.subs.iter().any(|s| {
                            s.name == "stream-room-messages" && s.event == "__my_messages__"
                        })
                })
                .map(|c| c.tx.clone())
                .collect()
        };
        self.deliver(
            targets,
            ddp::stream_event("stream-room-messages", "__my_messages__", &args),
        );
    }

    /// Recomputes `uid`'s presence and broadcasts it when it changed.
    pub fn refresh_presence(&self, uid: &str) {
        let (presence_targets, logged_targets, presence_frame, logged_frame) = {
            let mut st = self.lock();
            let status = st.effective_status(uid);
            let Some(user) = st.user_mut(uid) else {
                return;
            };
            if user.announced == status {
                return;
            }
            user.announced = status;
            let (username, name) = (user.username.clone(), user.name.clone());
            tracing::debug!(uid, status = status.as_str(), "presence changed");
            let presence_targets: Vec<_> = st
                .conns
                .values()
                .filter(|c| {
                    c.presence_uids.contains(uid)
                        && c.subs.iter().any(|s| s.name == "stream-user-presence")
                })
                .map(|c| c.tx.clone())
                .collect();
            let logged_targets = st.subscribers("stream-notify-logged", "user-status", None);
            let presence_frame = ddp::changed(
                "stream-user-presence",
                uid,
                json!({ "uid": uid, "args": [[username, status.code(), ""]], "eventName": uid }),
            );
            let logged_frame = ddp::stream_event(
                "stream-notify-logged",
                "user-status",
                &json!([[uid, username, status.code(), "", name, ["user"]]]),
            );
            (
                presence_targets,
                logged_targets,
                presence_frame,
                logged_frame,
            )
        };
        self.deliver(presence_targets, presence_frame);
        self.deliver(logged_targets, logged_frame);
    }

    /// Forces a user's status (test harness); returns false for an unknown username.
    pub fn set_presence(&self, username: &str, status: Option<Status>) -> bool {
        let uid = {
            let mut st = self.lock();
            let Some(uid) = st.user_by_name(username).map(|u| u.id.clone()) else {
                return false;
            };
            if let Some(u) = st.user_mut(&uid) {
                u.forced_status = status;
            }
            uid
        };
        self.refresh_presence(&uid);
        true
    }

    /// Asks every connection to close; returns how many were asked.
    pub fn drop_all_connections(&self) -> usize {
        let st = self.lock();
        for c in st.conns.values() {
            let _ = c.tx.send(Out::Close);
        }
        st.conns.len()
    }

    /// Notifies both members of a new DM on `subscriptions-changed` and `rooms-changed`.
    pub fn announce_new_dm(&self, rid: &str) {
        if self.faults.quiet_new_dms() {
            return;
        }
        let events: Vec<(String, Value, Value)> = {
            let st = self.lock();
            let Some(room) = st.room(rid) else {
                return;
            };
            room.uids
                .iter()
                .filter_map(|uid| {
                    let sub = st.subscription_doc(room, uid)?;
                    Some((uid.clone(), sub, st.room_doc(room)))
                })
                .collect()
        };
        for (uid, sub, room) in events {
            self.notify_user(&uid, "subscriptions-changed", &json!(["inserted", sub]));
            self.notify_user(&uid, "rooms-changed", &json!(["inserted", room]));
        }
    }
}
