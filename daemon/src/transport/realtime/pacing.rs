//! What the server lets us call on the realtime relays (PROTOCOL.md §12.4), and how fast to spend
//! it. Meteor counts `stream-*` calls per method in fixed windows — per connection (40 per 40 s by
//! default) and per user (80 per 40 s, shared with the user's browser and phone) — counting
//! refused calls too, and each `too-many-requests` is logged with the user id. So the budget is
//! kept to never reach either limit:
//!
//! - **A log of our own calls per method**, one for this connection and one for the user (which
//!   outlives reconnects: a new connection gets a fresh per-connection count on the server, not a
//!   fresh per-user one). A call is allowed only while fewer than the limit were made in the last
//!   window plus a margin ([`Limits::span`]): the server's windows start wherever its rule last
//!   reset (at the first call of *anyone* after the previous window ended), so a fixed window of
//!   any phase — stretched by network jitter — holds at most what the log allows.
//! - **A share of the per-user limit left to the user's other clients** ([`Limits::others_share`],
//!   half by default): a browser typing in one room renews its indicator every 5 s (8 calls per
//!   window), several rooms and a phone take more.
//! - **A reserve for control frames** ([`Limits::reserve`]): `end` and `deny` may spend the last
//!   few calls, nothing else may, so `otrctl lock` leaves at once even in the middle of a paste.
//! - **A pacing gap** ([`Budget::bulk_ready_at`]): while at least three quarters of the data
//!   budget is free, a call goes at once (an idle session's message does not wait for anything);
//!   below that, a partly filled frame waits after the method's last call for at least the
//!   sustainable spacing (the span over the data calls), growing to four times it as the budget
//!   drains, gathering more messages and acknowledgements into it. (A full frame goes without
//!   the gap: waiting would not fill it further.) "Free" is how fast we have been spending — a
//!   token bucket of the data calls refilled evenly at the sustainable rate, so someone chatting
//!   a message every few seconds is never held — but never more than a quarter above what the
//!   log leaves ([`Budget::pacing_level`]): the server's window still holds the burst that
//!   opened it, and a stream right after a burst must slow below the sustainable rate before
//!   the log itself runs out.
//!
//! Everything here takes the time as an argument, so it is tested against a simulated clock.

use super::Class;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// The server's limits as the config states them (`[transport]`), and the share left to others.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Calls per window the server allows per method and connection.
    pub connection_calls: u32,
    /// Calls per window the server allows per method and user, all of the user's clients
    /// together.
    pub user_calls: u32,
    /// Share of `user_calls` left to the user's other clients, in `[0, 1)`.
    pub others_share: f64,
    /// The server's window.
    pub window: Duration,
}

impl Default for Limits {
    /// Rocket.Chat's defaults (40 per connection and 80 per user per 40 s), half of the user's
    /// budget left to the user's other clients.
    fn default() -> Self {
        Self {
            connection_calls: 40,
            user_calls: 80,
            others_share: 0.5,
            window: Duration::from_secs(40),
        }
    }
}

impl Limits {
    /// Our share of the per-user limit.
    pub fn own_user_calls(&self) -> u32 {
        let share = self.others_share.clamp(0.0, 1.0);
        (f64::from(self.user_calls) * (1.0 - share)).floor() as u32
    }

    /// Calls per [`Limits::span`] we allow ourselves (the smaller of the two limits).
    pub fn limit(&self) -> u32 {
        self.connection_calls.min(self.own_user_calls())
    }

    /// Calls of each span only control frames may use: a tenth of the limit, 1 to 8 (none when
    /// the limit is too small to spare one).
    pub fn reserve(&self) -> u32 {
        let limit = self.limit();
        if limit < 4 {
            0
        } else {
            (limit / 10).clamp(1, 8)
        }
    }

    /// The window our log counts over: the server's window plus a margin (a twentieth, at least
    /// 1 s) for the time between our send and the server's count, which can differ from call to
    /// call.
    pub fn span(&self) -> Duration {
        self.window + (self.window / 20).max(Duration::from_secs(1))
    }

    /// Calls per span open to data (everything but control frames).
    fn data_calls(&self) -> u32 {
        self.limit().saturating_sub(self.reserve())
    }
}

/// Our calls within the last span, oldest first.
#[derive(Debug, Default)]
struct Log {
    calls: VecDeque<Instant>,
}

impl Log {
    fn count(&mut self, now: Instant, span: Duration) -> u32 {
        while self
            .calls
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= span)
        {
            self.calls.pop_front();
        }
        u32::try_from(self.calls.len()).unwrap_or(u32::MAX)
    }

    /// When the count will have dropped below `limit`: the `(len - limit + 1)`-th oldest call
    /// leaves the span then.
    fn below_at(&self, limit: u32, span: Duration) -> Option<Instant> {
        let len = self.calls.len();
        let limit = limit as usize;
        if len < limit {
            return None;
        }
        self.calls.get(len - limit).map(|t| *t + span)
    }
}

/// One method's accounting.
#[derive(Debug, Default)]
struct Method {
    connection: Log,
    user: Log,
    /// The server said `too-many-requests`: nothing goes before its `timeToReset`.
    blocked_until: Option<Instant>,
    /// The last call of any class (what the pacing gap counts from).
    last_call: Option<Instant>,
    /// Recent spending as a token bucket of the data calls, refilled evenly at the sustainable
    /// rate (`None`: full). The log says what the server would count; this says how fast we have
    /// been spending, which is what the pacing gap must answer to.
    pace: Option<(f64, Instant)>,
    calls_total: u64,
    rate_limited_total: u64,
}

/// How one method's budget stands (for GetStatus).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Our calls on this connection within the last span.
    pub connection_calls: u32,
    /// Our calls counted against the user's limit within the last span (earlier connections
    /// included).
    pub user_calls: u32,
    /// Calls made since start.
    pub calls_total: u64,
    /// `too-many-requests` answers since start.
    pub rate_limited_total: u64,
}

/// The budget of every relay method, for one account (it outlives connections).
#[derive(Debug)]
pub struct Budget {
    limits: Limits,
    methods: HashMap<&'static str, Method>,
}

impl Budget {
    /// An unspent budget under `limits`.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            methods: HashMap::new(),
        }
    }

    /// The limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    fn method(&mut self, method: &'static str) -> &mut Method {
        self.methods.entry(method).or_default()
    }

    /// Calls open to data on `method` now (control frames may also spend the reserve).
    pub fn data_available(&mut self, method: &'static str, now: Instant) -> u32 {
        let (limits, span) = (self.limits, self.limits.span());
        let m = self.method(method);
        let conn_left = limits
            .connection_calls
            .saturating_sub(m.connection.count(now, span));
        let user_left = limits
            .own_user_calls()
            .saturating_sub(m.user.count(now, span));
        conn_left.min(user_left).saturating_sub(limits.reserve())
    }

    /// The earliest time a call of `class` may go on `method` (`now` when it may go now): after
    /// any `too-many-requests` wait, and once both logs leave room for it.
    pub fn earliest(&mut self, method: &'static str, class: Class, now: Instant) -> Instant {
        let (limits, span) = (self.limits, self.limits.span());
        let kept = match class {
            Class::Control => 0,
            Class::Urgent | Class::Bulk => limits.reserve(),
        };
        let allowed = [
            limits.connection_calls.saturating_sub(kept),
            limits.own_user_calls().saturating_sub(kept),
        ];
        let m = self.method(method);
        let mut at = m.blocked_until.map_or(now, |t| t.max(now));
        for (log, allowed) in [&mut m.connection, &mut m.user].into_iter().zip(allowed) {
            log.count(now, span);
            if allowed == 0 {
                // Never open to this class (a limit smaller than the reserve): wait a span and
                // look again rather than spin.
                return at.max(now + span);
            }
            if let Some(t) = log.below_at(allowed, span) {
                at = at.max(t);
            }
        }
        at
    }

    /// How much of the data budget the pacing gap sees as left (module docs): the spending
    /// bucket's level, but no more than a quarter of the data calls above what the log leaves,
    /// so that the gap also opens as the server's window fills up.
    pub fn pacing_level(&mut self, method: &'static str, now: Instant) -> u32 {
        let data = self.limits.data_calls();
        let logged = self.data_available(method, now).saturating_add(data / 4);
        let spent = self.method(method).pace;
        let bucket = pace_tokens(&self.limits, spent, now);
        logged.min(bucket.floor() as u32)
    }

    /// The earliest time a partly filled frame of bulk items (messages, acks) may go: no
    /// earlier than [`Budget::earliest`], and after the pacing gap (module docs).
    pub fn bulk_ready_at(&mut self, method: &'static str, now: Instant) -> Instant {
        let earliest = self.earliest(method, Class::Bulk, now);
        let available = self.pacing_level(method, now);
        let gap = gap(&self.limits, available);
        let last = self.method(method).last_call;
        match last {
            Some(last) if !gap.is_zero() => earliest.max(last + gap),
            _ => earliest,
        }
    }

    /// Counts a call made now (whatever its outcome: the server counts refused calls too).
    pub fn record(&mut self, method: &'static str, now: Instant) {
        let limits = self.limits;
        let m = self.method(method);
        let left = pace_tokens(&limits, m.pace, now);
        m.pace = Some(((left - 1.0).max(0.0), now));
        m.connection.calls.push_back(now);
        m.user.calls.push_back(now);
        m.last_call = Some(now);
        m.calls_total += 1;
    }

    /// The server refused a call with `too-many-requests`: nothing more on `method` for
    /// `time_to_reset`.
    pub fn refused(&mut self, method: &'static str, now: Instant, time_to_reset: Duration) {
        let m = self.method(method);
        let until = now + time_to_reset;
        m.blocked_until = Some(m.blocked_until.map_or(until, |t| t.max(until)));
        m.rate_limited_total += 1;
    }

    /// A new connection: the server counts it from zero, the user's count goes on.
    pub fn new_connection(&mut self) {
        for m in self.methods.values_mut() {
            m.connection.calls.clear();
        }
    }

    /// How `method`'s budget stands now.
    pub fn usage(&mut self, method: &'static str, now: Instant) -> Usage {
        let span = self.limits.span();
        let m = self.method(method);
        Usage {
            connection_calls: m.connection.count(now, span),
            user_calls: m.user.count(now, span),
            calls_total: m.calls_total,
            rate_limited_total: m.rate_limited_total,
        }
    }
}

/// The spending bucket's level at `now` (full when never spent from).
fn pace_tokens(limits: &Limits, pace: Option<(f64, Instant)>, now: Instant) -> f64 {
    let data = f64::from(limits.data_calls());
    match pace {
        None => data,
        Some((tokens, at)) => {
            let per_sec = data / limits.span().as_secs_f64().max(1e-3);
            (tokens + now.saturating_duration_since(at).as_secs_f64() * per_sec).min(data)
        }
    }
}

/// The pacing gap when `available` data calls are left (module docs): none while at least three
/// quarters are free; below, the sustainable spacing (the span over the data calls) times the
/// drained share over the last quarter's — just over one spacing at first, four when none is
/// left.
pub fn gap(limits: &Limits, available: u32) -> Duration {
    let data = limits.data_calls();
    if data == 0 {
        return limits.span();
    }
    let ample = (data * 3).div_ceil(4);
    if available >= ample {
        return Duration::ZERO;
    }
    let spacing = limits.span() / data;
    let drained = data - available.min(data);
    spacing * drained / (data - ample).max(1)
}

#[cfg(test)]
mod tests;
