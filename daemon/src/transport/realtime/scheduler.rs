//! Every room's outgoing queue on the realtime relays and the one budget they share: which call
//! goes next, when, and what each outcome means for the messages in it. Pure logic on a clock
//! the caller passes in; [`super::outgoing`] runs it against the network.
//!
//! - **Order**: one call per room and path at a time, items in the order written.
//! - **When**: a queue whose next frame holds a control item (`end`, `deny`) goes as soon as any
//!   call is left, the reserve included; one with a handshake or probe as soon as a data call is
//!   left; a full frame likewise; a partly filled frame of messages and acks after the pacing
//!   gap ([`super::pacing`]), which is zero while the budget is ample.
//! - **Fairness**: within a room, acknowledgements for the peer and our own messages share the
//!   frames in the order written; rooms take turns, least recently served first (then oldest
//!   waiting first), so a paste in one room does not hold a lone message in another behind all
//!   of it; control frames, then handshakes and probes, before everything.
//! - **Outcomes**: accepted → the frame's messages are reported sent; `too-many-requests` → the
//!   method waits `timeToReset` and the same envelope goes again, counted; lost with the
//!   connection → up to [`ATTEMPTS`] tries, then failed; anything else → failed. A message still
//!   waiting when it could no longer be acknowledged within the delivery bound is reported
//!   failed, and never sent.
//! - **Back-pressure**: a room whose oldest message has waited [`REPORT_AFTER`] is reported (how
//!   many wait, since when), again at most every [`REPORT_EVERY`] while the count changes, and
//!   once more when no message has waited for [`REPORT_AFTER`].

use super::envelope::Item;
use super::pacing::{Budget, Limits};
use super::queue::{Packed, Pushed, Queued, Reported, RoomQueue};
use super::{path_a, path_b, Class, Path};
use crate::engine::{Backlog, RelayBudget};
use crate::transport::Report;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Tries of one envelope when the connection drops or the call times out.
pub const ATTEMPTS: u32 = 4;

/// A room's messages are reported waiting once the oldest has waited this long (longer than the
/// pacing gap usually holds a message), and reported no longer waiting once none has for as long.
pub const REPORT_AFTER: Duration = Duration::from_secs(2);

/// While they wait, at most one report per room this often (when the count changed).
pub const REPORT_EVERY: Duration = Duration::from_secs(5);

/// A message still queued this long before its delivery bound could not be acknowledged in time
/// (the peer paces its acknowledgements too): it is reported failed instead of sent.
const ACK_MARGIN: Duration = Duration::from_secs(5);

/// A room and the path its queue goes on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomKey {
    /// The room.
    pub room_id: String,
    /// The path.
    pub path: Path,
}

/// The method a path's calls go to.
pub fn method(path: Path) -> &'static str {
    match path {
        Path::A => path_a::METHOD,
        Path::B => path_b::METHOD,
    }
}

/// A call to make now.
#[derive(Debug)]
pub struct Dispatch {
    /// Whose.
    pub key: RoomKey,
    /// The envelope and what its outcome decides.
    pub packed: Packed,
}

/// How a call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallOutcome {
    /// The server took it.
    Accepted,
    /// `too-many-requests`, with the server's `timeToReset`.
    RateLimited(Duration),
    /// The connection dropped, or no answer in time: try again.
    Lost(String),
    /// Refused for another reason.
    Failed(String),
}

/// What the scheduler needs to know besides the limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    /// The server's limits and our share.
    pub limits: Limits,
    /// The session's delivery bound (`[policy] delivery_timeout_secs`).
    pub delivery_bound: Duration,
    /// How long a sent message's resends are dropped (the session's resend interval).
    pub resend_grace: Duration,
}

/// Every queue and the budget.
#[derive(Debug)]
pub struct Scheduler {
    settings: Settings,
    budget: Budget,
    rooms: BTreeMap<RoomKey, RoomQueue>,
    /// Messages reported failed for want of budget, per method.
    expired: BTreeMap<&'static str, u64>,
    /// The login the counts are for (`ClientStats::logins`).
    login: u64,
}

impl Scheduler {
    /// Empty queues, an unspent budget.
    pub fn new(settings: Settings) -> Self {
        Self {
            budget: Budget::new(settings.limits),
            settings,
            rooms: BTreeMap::new(),
            expired: BTreeMap::new(),
            login: 0,
        }
    }

    /// Queues an item for `key`; returns what must be reported at once (messages an `end`
    /// dropped).
    pub fn push(
        &mut self,
        key: RoomKey,
        item: Item,
        what: &'static str,
        now: Instant,
    ) -> Vec<Report> {
        let room_id = key.room_id.clone();
        let queue = self
            .rooms
            .entry(key)
            .or_insert_with(|| RoomQueue::new(&room_id));
        match queue.push(
            Queued::new(item, what, now),
            now,
            self.settings.resend_grace,
        ) {
            Pushed::Queued | Pushed::Coalesced => Vec::new(),
            Pushed::Ended { dropped } => dropped
                .into_iter()
                .map(|id| Report::MessageOutcome {
                    room_id: room_id.clone(),
                    id,
                    ok: false,
                    detail: "the session ended before the message could leave (it was waiting \
                             for the server's rate limit)"
                        .into(),
                })
                .collect(),
        }
    }

    /// The calls to make now, already counted against the budget; `from` is our uid.
    pub fn dispatch(&mut self, from: &str, now: Instant) -> Vec<Dispatch> {
        type Candidate = (Class, Option<Instant>, Instant, RoomKey, bool);
        let mut candidates: Vec<Candidate> = self
            .rooms
            .iter()
            .filter(|(_, q)| !q.in_flight() && q.retry_at.is_none_or(|t| t <= now))
            .filter_map(|(key, q)| {
                let peek = q.peek()?;
                Some((peek.class, q.served, q.oldest()?, key.clone(), peek.full))
            })
            .collect();
        // Control first, then handshakes and probes; then the room served least recently (never
        // first), then the oldest waiting.
        candidates.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        let mut out = Vec::new();
        for (class, _, _, key, full) in candidates {
            let m = method(key.path);
            if self.budget.earliest(m, class, now) > now {
                continue;
            }
            if class == Class::Bulk && !full && self.budget.bulk_ready_at(m, now) > now {
                continue;
            }
            let Some(queue) = self.rooms.get_mut(&key) else {
                continue;
            };
            let Some(packed) = queue.take(from) else {
                continue;
            };
            queue.served = Some(now);
            self.budget.record(m, now);
            out.push(Dispatch { key, packed });
        }
        out
    }

    /// A call made by [`Scheduler::dispatch`] ended; returns what to report.
    pub fn finished(&mut self, d: Dispatch, outcome: CallOutcome, now: Instant) -> Vec<Report> {
        let Dispatch { key, mut packed } = d;
        let grace = self.settings.resend_grace;
        let Some(queue) = self.rooms.get_mut(&key) else {
            return Vec::new(); // aborted meanwhile
        };
        let detail = match outcome {
            CallOutcome::Accepted => {
                queue.landed(&packed, true, now, grace);
                queue.retry_at = None;
                if !packed.decides() {
                    return Vec::new();
                }
                return packed
                    .messages
                    .into_iter()
                    .map(|id| Report::MessageOutcome {
                        room_id: key.room_id.clone(),
                        id,
                        ok: true,
                        detail: String::new(),
                    })
                    .collect();
            }
            CallOutcome::RateLimited(wait) => {
                tracing::info!(
                    room = %key.room_id,
                    method = method(key.path),
                    wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                    "the server said too-many-requests; the frame goes again after its wait"
                );
                self.budget.refused(method(key.path), now, wait);
                queue.landed(&packed, false, now, grace);
                queue.requeue(packed);
                return Vec::new();
            }
            CallOutcome::Lost(detail) => {
                queue.landed(&packed, false, now, grace);
                packed.attempts += 1;
                if packed.attempts < ATTEMPTS {
                    tracing::debug!(room = %key.room_id, error = %detail, attempt = packed.attempts, "realtime frame not sent; retrying");
                    queue.retry_at = Some(now + Duration::from_millis(250) * packed.attempts);
                    queue.requeue(packed);
                    return Vec::new();
                }
                detail
            }
            CallOutcome::Failed(detail) => {
                queue.landed(&packed, false, now, grace);
                detail
            }
        };
        tracing::warn!(room = %key.room_id, error = %detail, "realtime frame not sent");
        if let Some((group, _)) = packed.group {
            queue.drop_group(group);
        }
        let room_id = key.room_id;
        let mut reports: Vec<Report> = packed
            .messages
            .into_iter()
            .map(|id| Report::MessageOutcome {
                room_id: room_id.clone(),
                id,
                ok: false,
                detail: detail.clone(),
            })
            .collect();
        reports.extend(packed.others.into_iter().map(|what| Report::FrameFailed {
            room_id: room_id.clone(),
            what,
            detail: detail.clone(),
        }));
        reports
    }

    /// Expiry and back-pressure reports due now (module docs).
    pub fn housekeeping(&mut self, now: Instant) -> Vec<Report> {
        let mut reports = Vec::new();
        let cutoff = self.expiry_age();
        for (key, queue) in &mut self.rooms {
            if let Some(cutoff) = now.checked_sub(cutoff) {
                let expired = queue.expire(cutoff);
                if !expired.is_empty() {
                    let m = method(key.path);
                    *self.expired.entry(m).or_default() += expired.len() as u64;
                    tracing::warn!(
                        room = %key.room_id,
                        messages = expired.len(),
                        "messages could not leave within the delivery bound (the server's rate \
                         limit); reported failed"
                    );
                    let bound = self.settings.delivery_bound.as_secs();
                    reports.extend(expired.into_iter().map(|id| Report::MessageOutcome {
                        room_id: key.room_id.clone(),
                        id,
                        ok: false,
                        detail: format!(
                            "it could not leave within the delivery bound ({bound} s): it waited \
                             for the server's rate limit on {m}"
                        ),
                    }));
                }
            }
            let waiting = queue.waiting();
            let waited = waiting
                .oldest
                .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
            let backlog = Backlog {
                queued: waiting.messages,
                waited_ms: u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
            };
            let report = |backlog: Backlog| Report::Backlog {
                room_id: key.room_id.clone(),
                backlog,
            };
            match &mut queue.reported {
                None => {
                    if waiting.messages > 0 && waited >= REPORT_AFTER {
                        reports.push(report(backlog));
                        queue.reported = Some(Reported {
                            count: waiting.messages,
                            at: now,
                            empty_since: None,
                        });
                    }
                }
                Some(r) if waiting.messages == 0 => {
                    let since = *r.empty_since.get_or_insert(now);
                    if now.saturating_duration_since(since) >= REPORT_AFTER {
                        reports.push(report(Backlog::default()));
                        queue.reported = None;
                    }
                }
                Some(r) => {
                    r.empty_since = None;
                    if r.count != waiting.messages
                        && now.saturating_duration_since(r.at) >= REPORT_EVERY
                    {
                        reports.push(report(backlog));
                        r.count = waiting.messages;
                        r.at = now;
                    }
                }
            }
        }
        reports
    }

    /// How old a queued message may get before it is reported failed.
    fn expiry_age(&self) -> Duration {
        let bound = self.settings.delivery_bound;
        bound.saturating_sub(ACK_MARGIN.min(bound / 4))
    }

    /// When [`Scheduler::dispatch`] or [`Scheduler::housekeeping`] next has something to do
    /// (`None`: nothing waits).
    pub fn next_wake(&mut self, now: Instant) -> Option<Instant> {
        let expiry = self.expiry_age();
        let mut wake: Option<Instant> = None;
        let mut at = |t: Instant| wake = Some(wake.map_or(t, |w| w.min(t)));
        for (key, queue) in &self.rooms {
            let waiting = queue.waiting();
            match (queue.reported, waiting.oldest) {
                (None, Some(oldest)) => at(oldest + REPORT_AFTER),
                (Some(r), None) => at(r.empty_since.map_or(now, |t| t + REPORT_AFTER)),
                (Some(r), Some(_)) if r.count != waiting.messages => at(r.at + REPORT_EVERY),
                _ => {}
            }
            if let Some(oldest) = waiting.oldest {
                at(oldest + expiry);
            }
            if queue.in_flight() {
                continue;
            }
            let Some(peek) = queue.peek() else {
                continue;
            };
            let m = method(key.path);
            let mut t = queue.retry_at.map_or(now, |r| r.max(now));
            t = t.max(self.budget.earliest(m, peek.class, now));
            if peek.class == Class::Bulk && !peek.full {
                t = t.max(self.budget.bulk_ready_at(m, now));
            }
            at(t);
        }
        wake
    }

    /// Drops `room_id`'s queues (both paths) without reports: the transport they were for is
    /// gone. A call on its way still lands, and is then ignored.
    pub fn abort(&mut self, room_id: &str) {
        self.rooms.retain(|k, _| k.room_id != room_id);
    }

    /// Drops every queue (see [`Scheduler::abort`]); the budget stays, it is the user's.
    pub fn clear(&mut self) {
        self.rooms.clear();
    }

    /// The connection is login number `login` (`ClientStats::logins`); when that is a new one,
    /// the server counts its calls from zero, and a message "sent" on the old one may have been
    /// lost with it, so its resends go again. Idempotent: the engine (before the sessions resend)
    /// and the task (before its next call) both say so.
    pub fn connection(&mut self, login: u64) {
        if login == self.login {
            return;
        }
        self.login = login;
        self.budget.new_connection();
        for queue in self.rooms.values_mut() {
            queue.forget_sent();
        }
    }

    /// `room_id`'s queues (one per path), found in the ordered map without a scan: ListSessions
    /// asks for every session's.
    fn queues_of<'a>(&'a self, room_id: &str) -> impl Iterator<Item = &'a RoomQueue> + 'a {
        let key = |path| RoomKey {
            room_id: room_id.to_owned(),
            path,
        };
        self.rooms
            .range(key(Path::A)..=key(Path::B))
            .map(|(_, q)| q)
    }

    /// The back-pressure of `room_id` now (both paths).
    pub fn backlog(&self, room_id: &str, now: Instant) -> Backlog {
        let mut b = Backlog::default();
        for queue in self.queues_of(room_id) {
            let w = queue.waiting();
            b.queued = b.queued.saturating_add(w.messages);
            let waited = w
                .oldest
                .map_or(0, |t| now.saturating_duration_since(t).as_millis());
            b.waited_ms = b.waited_ms.max(u64::try_from(waited).unwrap_or(u64::MAX));
        }
        b
    }

    /// Drops the messages `room_id` still has waiting (its session ended without our `end`: the
    /// peer ended it, or it failed); returns their failure reports (the session has reported them
    /// already, and ignores these). Acknowledgements and signals stay.
    pub fn drop_messages(&mut self, room_id: &str) -> Vec<Report> {
        let key = |path| RoomKey {
            room_id: room_id.to_owned(),
            path,
        };
        let mut reports = Vec::new();
        for (_, queue) in self.rooms.range_mut(key(Path::A)..=key(Path::B)) {
            reports.extend(
                queue
                    .drop_messages()
                    .into_iter()
                    .map(|id| Report::MessageOutcome {
                        room_id: room_id.to_owned(),
                        id,
                        ok: false,
                        detail: "the session ended before the message could leave".into(),
                    }),
            );
        }
        reports
    }

    /// Each method's budget and queues (GetStatus).
    pub fn budgets(&mut self, now: Instant) -> Vec<RelayBudget> {
        let limits = *self.budget.limits();
        [Path::A, Path::B]
            .into_iter()
            .map(|path| {
                let m = method(path);
                let usage = self.budget.usage(m, now);
                let mut queued_messages = 0u32;
                let mut queued_items = 0u32;
                let mut oldest: Option<Instant> = None;
                for (_, q) in self.rooms.iter().filter(|(k, _)| k.path == path) {
                    let w = q.waiting();
                    queued_messages = queued_messages.saturating_add(w.messages);
                    queued_items = queued_items.saturating_add(w.items);
                    if let Some(t) = w.oldest {
                        oldest = Some(oldest.map_or(t, |o| o.min(t)));
                    }
                }
                RelayBudget {
                    method: m,
                    transport: path.kind(),
                    connection_calls: usage.connection_calls,
                    connection_limit: limits.connection_calls,
                    user_calls: usage.user_calls,
                    user_limit: limits.own_user_calls(),
                    reserve: limits.reserve(),
                    window_ms: u64::try_from(limits.span().as_millis()).unwrap_or(u64::MAX),
                    queued_messages,
                    queued_items,
                    oldest_wait_ms: oldest.map_or(0, |t| {
                        u64::try_from(now.saturating_duration_since(t).as_millis())
                            .unwrap_or(u64::MAX)
                    }),
                    calls_total: usage.calls_total,
                    rate_limited_total: usage.rate_limited_total,
                    expired_total: self.expired.get(m).copied().unwrap_or(0),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
