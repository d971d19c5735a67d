//! The outgoing half of the realtime relays as it runs: one [`Relays`] per account holds the
//! [`Scheduler`] (every room's queue and the budget they share) behind a lock, and one task per
//! login performs the calls it hands out and feeds their outcomes back.
//!
//! Rooms push their frames straight into the scheduler ([`RoomOutbox::push`]) and wake the task;
//! the task sleeps until the scheduler's next due time, a push, or a call's end, whichever comes
//! first — so an idle session's message is sent the moment it is pushed, and nothing polls.
//! Front-ends read the back-pressure and the budget from the same lock ([`Relays::backlog`],
//! [`Relays::budgets`]): a few map lookups, no trip through the engine.

use super::envelope::Item;
use super::scheduler::{method, CallOutcome, Dispatch, RoomKey, Scheduler, Settings};
use super::sender::item_of;
use super::{path_a, path_b, Path};
use crate::engine::{Backlog, RelayBudget};
use crate::rocketchat::{Client, RcError};
use crate::transport::outbox::frame_name;
use crate::transport::{Frame, Report};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinSet;

struct Shared {
    scheduler: Mutex<Scheduler>,
    /// Something was pushed: the task looks at the scheduler again.
    wake: Notify,
    /// Where outcomes go (the engine).
    reports: mpsc::UnboundedSender<Report>,
}

/// The account's realtime relays, cheap to clone: queues and budget outlive logins (the server
/// counts the user's calls across connections).
#[derive(Clone)]
pub struct Relays {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Relays {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relays").finish_non_exhaustive()
    }
}

/// The task of one login; dropping this does not stop it, [`RelayTask::stop`] does.
#[derive(Debug)]
pub struct RelayTask {
    task: tokio::task::AbortHandle,
}

impl RelayTask {
    /// Stops the task; calls on their way are abandoned (their outcome is never reported).
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Relays {
    /// Empty queues and an unspent budget; outcomes go to `reports`.
    pub fn new(settings: Settings, reports: mpsc::UnboundedSender<Report>) -> Self {
        Self {
            shared: Arc::new(Shared {
                scheduler: Mutex::new(Scheduler::new(settings)),
                wake: Notify::new(),
                reports,
            }),
        }
    }

    fn scheduler(&self) -> MutexGuard<'_, Scheduler> {
        // A poisoned lock means a panic elsewhere mid-update; the queues are still consistent
        // enough to go on with (every operation leaves them whole between statements).
        self.shared
            .scheduler
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Starts performing calls over `client` as `my_uid` / `my_username` (one task per login).
    pub fn start(&self, client: Client, my_uid: String, my_username: String) -> RelayTask {
        let shared = Arc::clone(&self.shared);
        let task = tokio::spawn(run(shared, client, my_uid, my_username)).abort_handle();
        RelayTask { task }
    }

    /// The outbox of `room_id` on `path`.
    pub fn outbox(&self, room_id: &str, path: Path) -> RoomOutbox {
        RoomOutbox {
            relays: self.clone(),
            key: RoomKey {
                room_id: room_id.to_owned(),
                path,
            },
        }
    }

    fn push(&self, key: RoomKey, item: Item, what: &'static str) {
        let reports = self.scheduler().push(key, item, what, Instant::now());
        for r in reports {
            // The engine is gone: nothing to tell.
            let _ = self.shared.reports.send(r);
        }
        self.shared.wake.notify_one();
    }

    /// The connection is login number `login` (see [`Scheduler::connection`]).
    pub fn connection(&self, login: u64) {
        self.scheduler().connection(login);
    }

    /// Drops `room_id`'s queues without reports (its transport is gone).
    pub fn abort(&self, room_id: &str) {
        self.scheduler().abort(room_id);
    }

    /// Drops every queue without reports (the server's capabilities changed).
    pub fn clear(&self) {
        self.scheduler().clear();
    }

    /// Drops the messages `room_id` still has waiting: its session ended without our `end`
    /// (see [`Scheduler::drop_messages`]).
    pub fn drop_messages(&self, room_id: &str) {
        let reports = self.scheduler().drop_messages(room_id);
        for r in reports {
            let _ = self.shared.reports.send(r);
        }
    }

    /// `room_id`'s messages waiting for the budget now.
    pub fn backlog(&self, room_id: &str) -> Backlog {
        self.scheduler().backlog(room_id, Instant::now())
    }

    /// Each method's budget and queues now.
    pub fn budgets(&self) -> Vec<RelayBudget> {
        self.scheduler().budgets(Instant::now())
    }
}

/// A room's outbox on one path: frames go into the shared scheduler.
#[derive(Debug, Clone)]
pub struct RoomOutbox {
    relays: Relays,
    key: RoomKey,
}

impl RoomOutbox {
    /// Queues a frame (the stored-message frames of the 7.x relay have no meaning here and are
    /// skipped).
    pub fn push(&self, frame: &Frame) {
        if let Some(item) = item_of(frame) {
            self.relays.push(self.key.clone(), item, frame_name(frame));
        }
    }

    /// Queues a probe or probe answer.
    pub fn push_control(&self, item: Item) {
        let what = match item.k {
            super::envelope::Kind::Probe => "probe",
            _ => "probe answer",
        };
        self.relays.push(self.key.clone(), item, what);
    }

    /// Drops what this room still has queued (both paths), without reports.
    pub fn abort(&self) {
        self.relays.abort(&self.key.room_id);
    }
}

async fn run(shared: Arc<Shared>, client: Client, my_uid: String, my_username: String) {
    let relays = Relays {
        shared: Arc::clone(&shared),
    };
    let mut calls: JoinSet<(Dispatch, CallOutcome)> = JoinSet::new();
    loop {
        let now = Instant::now();
        let (dispatches, wake, reports) = {
            let mut s = relays.scheduler();
            s.connection(client.stats().logins);
            let reports = s.housekeeping(now);
            let dispatches = s.dispatch(&my_uid, now);
            (dispatches, s.next_wake(now), reports)
        };
        for r in reports {
            if shared.reports.send(r).is_err() {
                return; // the engine is gone
            }
        }
        for d in dispatches {
            let (client, username) = (client.clone(), my_username.clone());
            calls.spawn(async move {
                let outcome = perform(&client, &username, &d).await;
                (d, outcome)
            });
        }
        let sleep = async {
            match wake {
                Some(t) => tokio::time::sleep_until(t.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = shared.wake.notified() => {}
            _ = sleep => {}
            Some(done) = calls.join_next(), if !calls.is_empty() => {
                let Ok((d, outcome)) = done else {
                    continue; // a call task cannot panic short of a bug; its frame is lost
                };
                let reports = relays.scheduler().finished(d, outcome, Instant::now());
                for r in reports {
                    if shared.reports.send(r).is_err() {
                        return;
                    }
                }
            }
        }
    }
}

/// One call, without the client's own rate-limit retries (the scheduler counts every call).
async fn perform(client: &Client, my_username: &str, d: &Dispatch) -> CallOutcome {
    let envelope = d.packed.envelope.to_value();
    let params = match d.key.path {
        Path::A => path_a::params(&d.key.room_id, my_username, envelope),
        Path::B => path_b::params(&d.key.room_id, envelope),
    };
    match client.call_once(method(d.key.path), params).await {
        Ok(_) => CallOutcome::Accepted,
        Err(RcError::Method { error, .. }) if error.is_rate_limited() => {
            CallOutcome::RateLimited(crate::rocketchat::rate_limit_wait(&error))
        }
        Err(e @ (RcError::NotConnected | RcError::Timeout { .. })) => {
            CallOutcome::Lost(e.to_string())
        }
        Err(e) => CallOutcome::Failed(e.to_string()),
    }
}
