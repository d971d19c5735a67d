//! The scheduler against a simulated clock and a model of the server's rate limiter: the uses of
//! issue 21 (a burst from back-to-back sends, a paste, a script, a steady stream for ten minutes,
//! the peer's acknowledgements, another client of the user typing, a lock in the middle of a
//! paste) each deliver every message in order and never meet a limit. No sleeping: time is a
//! number the harness moves to the next thing that happens.

use super::*;
use crate::transport::realtime::envelope::{Item, Kind};
use serde_json::json;
use std::collections::{HashMap, VecDeque};

const ROOM: &str = "R";

/// Meteor's `DDPRateLimiter` as Rocket.Chat configures it for `stream-*` methods (what rcsim
/// models): a fixed window per rule whose start moves to the first call, by anyone, after the
/// previous window ended; every call counted, refused ones too.
struct Server {
    rules: Vec<Rule>,
    refused: u32,
}

struct Rule {
    by_user: bool,
    limit: u32,
    window: Duration,
    start: Instant,
    counts: HashMap<(String, &'static str), u32>,
}

impl Server {
    /// The default limits, both windows already `phase` old at `t0`.
    fn new(t0: Instant, phase: Duration) -> Self {
        let rule = |by_user, limit| Rule {
            by_user,
            limit,
            window: Duration::from_secs(40),
            start: t0 - phase,
            counts: HashMap::new(),
        };
        Self {
            rules: vec![rule(false, 40), rule(true, 80)],
            refused: 0,
        }
    }

    /// One call of `conn` (of user "me") arriving at `at`: `Some(timeToReset)` when refused.
    fn call(&mut self, conn: &str, method: &'static str, at: Instant) -> Option<Duration> {
        let mut worst: Option<Duration> = None;
        for rule in &mut self.rules {
            if at.duration_since(rule.start) > rule.window {
                rule.counts.clear();
                rule.start = at;
            }
            let who = if rule.by_user { "me" } else { conn };
            let count = rule.counts.entry((who.to_owned(), method)).or_insert(0);
            *count += 1;
            if *count > rule.limit {
                let left = rule.window.saturating_sub(at.duration_since(rule.start));
                worst = Some(worst.map_or(left, |w| w.max(left)));
            }
        }
        if worst.is_some() {
            self.refused += 1;
        }
        worst
    }
}

/// A message item about as large as the native scheme makes one of `text` bytes.
fn message(i: usize, text: usize) -> Item {
    Item {
        k: Kind::Message,
        p: json!({"id": format!("m{i:05}"), "msg": "M".repeat(200 + text * 4 / 3)}),
    }
}

fn ack(i: usize) -> Item {
    Item {
        k: Kind::Ack,
        p: json!({"id": format!("p{i:05}"), "ack": "A".repeat(140)}),
    }
}

fn signal(k: Kind) -> Item {
    Item { k, p: json!({}) }
}

fn settings() -> Settings {
    Settings {
        limits: Limits::default(),
        delivery_bound: Duration::from_secs(60),
        resend_grace: Duration::from_secs(5),
    }
}

/// The scheduler, the clock, the server model and what happened.
struct Run {
    s: Scheduler,
    t0: Instant,
    now: Instant,
    server: Server,
    /// How long a call takes (the server counts it halfway).
    rtt: Duration,
    /// Another client of the same user calling path A's method at these times.
    typing: VecDeque<Instant>,
    arrivals: VecDeque<(Instant, RoomKey, Item)>,
    flying: Vec<(Instant, Dispatch, CallOutcome)>,
    /// Message id → when it was queued.
    queued: HashMap<String, Instant>,
    /// Message ids the server accepted, in order, with the time.
    accepted: Vec<(String, Instant)>,
    reports: Vec<(Instant, Report)>,
    /// Every call: when, which room, what class.
    calls: Vec<(Instant, RoomKey, Class)>,
}

fn key(room: &str) -> RoomKey {
    RoomKey {
        room_id: room.to_owned(),
        path: Path::A,
    }
}

impl Run {
    fn new(phase: Duration) -> Self {
        // Far enough from the process start that windows can be older than the test.
        let t0 = Instant::now() + Duration::from_secs(3600);
        Self {
            s: Scheduler::new(settings()),
            t0,
            now: t0,
            server: Server::new(t0, phase),
            rtt: Duration::from_millis(4),
            typing: VecDeque::new(),
            arrivals: VecDeque::new(),
            flying: Vec::new(),
            queued: HashMap::new(),
            accepted: Vec::new(),
            reports: Vec::new(),
            calls: Vec::new(),
        }
    }

    fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    /// Items arriving for `room` at these times (ms after `t0`), in order.
    fn arrive(&mut self, room: &str, items: impl IntoIterator<Item = (u64, Item)>) {
        let mut all: Vec<(Instant, RoomKey, Item)> = self.arrivals.drain(..).collect();
        all.extend(items.into_iter().map(|(ms, i)| (self.at(ms), key(room), i)));
        all.sort_by_key(|a| a.0);
        self.arrivals = all.into();
    }

    /// Runs until `ms` after `t0`.
    fn until(&mut self, ms: u64) {
        let end = self.at(ms);
        let mut steps = 0u32;
        loop {
            steps += 1;
            assert!(steps < 1_000_000, "the scheduler does not settle");
            let mut next = end;
            if let Some(a) = self.arrivals.front() {
                next = next.min(a.0);
            }
            if let Some(t) = self.typing.front() {
                next = next.min(*t);
            }
            for f in &self.flying {
                next = next.min(f.0);
            }
            if let Some(w) = self.s.next_wake(self.now) {
                next = next.min(w.max(self.now));
            }
            if next >= end && self.now >= end {
                break;
            }
            self.now = next.max(self.now);
            self.step();
            if self.now >= end {
                break;
            }
        }
    }

    fn step(&mut self) {
        let now = self.now;
        while self.typing.front().is_some_and(|t| *t <= now) {
            self.typing.pop_front();
            assert!(
                self.server.call("browser", path_a::METHOD, now).is_none(),
                "the user's browser was refused at {:?}",
                now - self.t0
            );
        }
        while self.arrivals.front().is_some_and(|a| a.0 <= now) {
            let Some((_, key, item)) = self.arrivals.pop_front() else {
                break;
            };
            if item.k == Kind::Message {
                let id = item.p["id"].as_str().unwrap_or_default().to_owned();
                self.queued.entry(id).or_insert(now);
            }
            let pushed = self.s.push(key, item, "frame", now);
            self.reports.extend(pushed.into_iter().map(|r| (now, r)));
        }
        let (done, flying): (Vec<_>, Vec<_>) = self.flying.drain(..).partition(|f| f.0 <= now);
        self.flying = flying;
        for (_, d, outcome) in done {
            let reports = self.s.finished(d, outcome, now);
            for r in reports {
                if let Report::MessageOutcome { id, ok: true, .. } = &r {
                    self.accepted.push((id.clone(), now));
                }
                self.reports.push((now, r));
            }
        }
        let house = self.s.housekeeping(now);
        self.reports.extend(house.into_iter().map(|r| (now, r)));
        for d in self.s.dispatch("me", now) {
            let class = d.packed.class;
            self.calls.push((now, d.key.clone(), class));
            let outcome = match self
                .server
                .call("otrd", method(d.key.path), now + self.rtt / 2)
            {
                Some(wait) => CallOutcome::RateLimited(wait),
                None => CallOutcome::Accepted,
            };
            self.flying.push((now + self.rtt, d, outcome));
        }
    }

    /// Every message of `ids` accepted, in this order, and how long the slowest took.
    fn all_accepted_in_order(&self, ids: &[String]) -> Duration {
        let got: Vec<&String> = self.accepted.iter().map(|(id, _)| id).collect();
        let want: Vec<&String> = ids.iter().collect();
        assert_eq!(got, want, "every message accepted once, in order");
        self.accepted
            .iter()
            .map(|(id, t)| *t - self.queued[id])
            .max()
            .unwrap_or_default()
    }

    fn failures(&self) -> Vec<&Report> {
        self.reports
            .iter()
            .map(|(_, r)| r)
            .filter(|r| {
                matches!(
                    r,
                    Report::MessageOutcome { ok: false, .. } | Report::FrameFailed { .. }
                )
            })
            .collect()
    }

    fn calls_of(&self, class: Class) -> usize {
        self.calls.iter().filter(|c| c.2 == class).count()
    }
}

fn ids(items: &[(u64, Item)]) -> Vec<String> {
    items
        .iter()
        .filter(|(_, i)| i.k == Kind::Message)
        .map(|(_, i)| i.p["id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The phases of the server's window at the test's start that the scenarios run under.
const PHASES_MS: [u64; 4] = [0, 13_000, 27_000, 39_500];

#[test]
fn an_idle_sessions_message_leaves_the_moment_it_is_pushed() {
    let mut run = Run::new(Duration::ZERO);
    let now = run.now;
    run.s.push(key(ROOM), message(0, 256), "message", now);
    let d = run.s.dispatch("me", now);
    assert_eq!(d.len(), 1, "no tick, no hold");
    assert_eq!(d[0].packed.messages, ["m00000"]);
}

#[test]
fn a_burst_of_100_back_to_back_sends_arrives_within_seconds_in_few_calls() {
    for phase in PHASES_MS {
        let mut run = Run::new(Duration::from_millis(phase));
        // 100 × 256 B from 100 `otrctl send` processes, one every 5 ms.
        let burst: Vec<(u64, Item)> = (0..100).map(|i| (i as u64 * 5, message(i, 256))).collect();
        let want = ids(&burst);
        run.arrive(ROOM, burst);
        run.until(60_000);
        let slowest = run.all_accepted_in_order(&want);
        assert!(
            slowest < Duration::from_secs(8),
            "phase {phase}: {slowest:?}"
        );
        assert_eq!(run.server.refused, 0, "phase {phase}");
        assert!(
            run.calls.len() <= 24,
            "phase {phase}: {} calls",
            run.calls.len()
        );
        assert!(run.failures().is_empty());
    }
}

#[test]
fn a_paste_of_300_lines_arrives_within_the_budget_packed() {
    for phase in PHASES_MS {
        let mut run = Run::new(Duration::from_millis(phase));
        let paste: Vec<(u64, Item)> = (0..300).map(|i| (i as u64 / 2, message(i, 60))).collect();
        let want = ids(&paste);
        run.arrive(ROOM, paste);
        run.until(60_000);
        let slowest = run.all_accepted_in_order(&want);
        assert!(
            slowest < Duration::from_secs(20),
            "phase {phase}: {slowest:?}"
        );
        assert_eq!(run.server.refused, 0, "phase {phase}");
        assert!(
            run.calls.len() <= 30,
            "phase {phase}: {} calls",
            run.calls.len()
        );
    }
}

#[test]
fn a_script_sending_every_100_ms_for_a_minute_never_meets_the_limit() {
    for phase in PHASES_MS {
        let mut run = Run::new(Duration::from_millis(phase));
        let script: Vec<(u64, Item)> = (0..600).map(|i| (i as u64 * 100, message(i, 30))).collect();
        let want = ids(&script);
        run.arrive(ROOM, script);
        run.until(120_000);
        let slowest = run.all_accepted_in_order(&want);
        assert!(
            slowest < Duration::from_secs(6),
            "phase {phase}: {slowest:?}"
        );
        assert_eq!(run.server.refused, 0, "phase {phase}");
        assert_eq!(run.calls_of(Class::Control), 0);
    }
}

#[test]
fn one_message_a_second_for_ten_minutes_keeps_the_reserve_and_a_short_wait() {
    let mut run = Run::new(Duration::from_millis(21_000));
    let steady: Vec<(u64, Item)> = (0..600)
        .map(|i| (i as u64 * 1_000, message(i, 120)))
        .collect();
    let want = ids(&steady);
    run.arrive(ROOM, steady);
    run.until(660_000);
    let slowest = run.all_accepted_in_order(&want);
    assert!(slowest < Duration::from_secs(5), "{slowest:?}");
    assert_eq!(run.server.refused, 0);
    // Never more than the data budget in any span: the reserve was never needed.
    let span = Limits::default().span();
    for (i, (t, _, _)) in run.calls.iter().enumerate() {
        let within = run.calls[i..]
            .iter()
            .take_while(|c| c.0 < *t + span)
            .count();
        assert!(
            within <= 36,
            "{within} calls within a span from {:?}",
            *t - run.t0
        );
    }
}

#[test]
fn the_peers_acks_and_our_messages_share_the_frames_and_both_flow() {
    let mut run = Run::new(Duration::from_millis(5_000));
    // We send every 200 ms while acknowledging the peer's messages, which come every 150 ms.
    let mut items: Vec<(u64, Item)> = (0..300).map(|i| (i as u64 * 200, message(i, 80))).collect();
    items.extend((0..400).map(|i| (i as u64 * 150, ack(i))));
    items.sort_by_key(|(t, _)| *t);
    let want = ids(&items);
    run.arrive(ROOM, items);
    run.until(120_000);
    let slowest = run.all_accepted_in_order(&want);
    assert!(slowest < Duration::from_secs(6), "{slowest:?}");
    assert_eq!(run.server.refused, 0);
    assert!(run.failures().is_empty(), "every ack left too");
}

#[test]
fn rooms_take_turns_so_a_paste_does_not_hold_a_lone_message_elsewhere() {
    let mut run = Run::new(Duration::ZERO);
    // Three rooms pasting at once, and a fourth with a single message a little later.
    for room in ["R1", "R2", "R3"] {
        run.arrive(room, (0..80).map(|i| (i as u64 * 3, message(i, 60))));
    }
    run.arrive("R4", [(1_500, message(9_999, 20))]);
    run.until(90_000);
    assert_eq!(run.accepted.len(), 241);
    assert_eq!(run.server.refused, 0);
    let lone = run
        .accepted
        .iter()
        .find(|(id, _)| id == "m09999")
        .map(|(_, t)| *t - run.at(1_500))
        .unwrap_or_default();
    assert!(
        lone < Duration::from_secs(5),
        "the lone message waited {lone:?}"
    );
}

#[test]
fn a_room_with_a_long_backlog_gives_way_to_one_served_less_recently() {
    let mut s = Scheduler::new(settings());
    let t0 = Instant::now();
    // R1's backlog is older and would fill many frames.
    for i in 0..200 {
        s.push(key("R1"), message(i, 256), "message", t0);
    }
    let t1 = t0 + Duration::from_millis(10);
    s.push(key("R2"), message(1_000, 256), "message", t1);
    let order: Vec<String> = s
        .dispatch("me", t1)
        .into_iter()
        .map(|d| d.key.room_id)
        .collect();
    assert_eq!(order, ["R1", "R2"], "both go while the budget is ample");
    let mut s = Scheduler::new(settings());
    for i in 0..200 {
        s.push(key("R1"), message(i, 256), "message", t0);
    }
    let d = s.dispatch("me", t0).pop().expect("R1 first");
    s.finished(d, CallOutcome::Accepted, t0);
    for i in 0..20 {
        s.push(key("R2"), message(1_000 + i, 256), "message", t1);
    }
    // Spend the budget down to one data call (two full frames wait for it).
    for _ in 0..34 {
        s.budget.record(path_a::METHOD, t1);
    }
    let next: Vec<String> = s
        .dispatch("me", t1)
        .into_iter()
        .map(|d| d.key.room_id)
        .collect();
    assert_eq!(next, ["R2"], "R1 was served last; R2 has not been yet");
}

#[test]
fn the_users_browser_typing_elsewhere_keeps_its_share() {
    for phase in PHASES_MS {
        let mut run = Run::new(Duration::from_millis(phase));
        // The browser renews its typing indicator every 5 s, in several rooms at once: a call
        // every 1.5 s on the same method, for two minutes — while we paste, then script.
        run.typing = (0..80).map(|s| run.at(s * 1_500 + 500)).collect();
        let mut items: Vec<(u64, Item)> =
            (0..300).map(|i| (i as u64 / 2, message(i, 60))).collect();
        items.extend((300..900).map(|i| (10_000 + (i as u64 - 300) * 100, message(i, 30))));
        let want = ids(&items);
        run.arrive(ROOM, items);
        run.until(130_000);
        run.all_accepted_in_order(&want);
        assert_eq!(run.server.refused, 0, "phase {phase}");
    }
}

#[test]
fn a_lock_in_the_middle_of_a_paste_leaves_at_once_and_fails_what_waits() {
    let mut run = Run::new(Duration::ZERO);
    // A long paste of large lines drains the data budget...
    run.arrive(ROOM, (0..2_000).map(|i| (i as u64 / 4, message(i, 400))));
    run.until(20_000);
    assert_eq!(run.s.budget.data_available(path_a::METHOD, run.now), 0);
    assert!(run.s.backlog(ROOM, run.now).queued > 0);
    // ...then the lock: the session's `end`.
    let lock = run.now;
    let delivered_before = run.accepted.len();
    run.arrive(ROOM, [(20_000, signal(Kind::End))]);
    run.until(21_000);
    let end_call = run
        .calls
        .iter()
        .find(|c| c.2 == Class::Control)
        .map(|c| c.0)
        .expect("the end went out");
    assert!(
        end_call - lock <= run.rtt,
        "the end waited {:?}",
        end_call - lock
    );
    run.until(80_000);
    assert_eq!(run.server.refused, 0);
    // Every message is either accepted or reported failed, none both, none lost.
    let failed: Vec<&String> = run
        .failures()
        .into_iter()
        .filter_map(|r| match r {
            Report::MessageOutcome { id, ok: false, .. } => Some(id),
            _ => None,
        })
        .collect();
    assert!(run.accepted.len() >= delivered_before);
    assert_eq!(run.accepted.len() + failed.len(), 2_000);
    assert_eq!(run.s.backlog(ROOM, run.now), Backlog::default());
    assert_eq!(
        run.calls.last().map(|c| c.2),
        Some(Class::Control),
        "nothing after the end"
    );
}

#[test]
fn handshakes_and_probes_do_not_wait_for_the_pacing_gap() {
    let mut run = Run::new(Duration::ZERO);
    run.arrive(ROOM, (0..200).map(|i| (i as u64, message(i, 200))));
    run.until(3_000);
    let now = run.now;
    assert!(
        run.s.budget.bulk_ready_at(path_a::METHOD, now) > now,
        "bulk is held"
    );
    run.arrive("S", [(3_000, signal(Kind::Probe))]);
    run.until(3_000 + 10);
    assert!(
        run.calls
            .iter()
            .any(|c| c.1.room_id == "S" && c.0 <= now + run.rtt),
        "the probe went at once"
    );
}

#[test]
fn too_many_requests_sends_the_same_envelope_again_after_the_wait() {
    let mut run = Run::new(Duration::ZERO);
    // Another client used the whole per-user budget: our first call is refused.
    for _ in 0..80 {
        run.server.call("phone", path_a::METHOD, run.t0);
    }
    run.server.refused = 0;
    run.arrive(ROOM, [(1, message(0, 20))]);
    run.until(2);
    let first = run.calls.len();
    assert_eq!(first, 1);
    run.until(60_000);
    assert_eq!(
        run.server.refused, 1,
        "refused once, then waited for the reset"
    );
    assert_eq!(run.accepted.len(), 1);
    let usage = run.s.budget.usage(path_a::METHOD, run.now);
    assert_eq!(usage.rate_limited_total, 1);
    let second = run.calls[1].0;
    assert!(
        second >= run.at(40_000),
        "not before timeToReset: {:?}",
        second - run.t0
    );
}

#[test]
fn a_call_lost_with_the_connection_is_retried_then_reported_failed() {
    let mut s = Scheduler::new(settings());
    let t0 = Instant::now();
    s.push(key(ROOM), message(0, 20), "message", t0);
    s.push(key(ROOM), signal(Kind::Offer), "handshake", t0);
    let mut now = t0;
    for attempt in 1..ATTEMPTS {
        let d = s.dispatch("me", now).pop().expect("a call");
        assert!(s
            .finished(d, CallOutcome::Lost("gone".into()), now)
            .is_empty());
        assert!(s.dispatch("me", now).is_empty(), "backs off");
        now += Duration::from_millis(250) * attempt;
    }
    let d = s.dispatch("me", now).pop().expect("last try");
    let reports = s.finished(d, CallOutcome::Lost("gone".into()), now);
    assert!(matches!(&reports[0], Report::MessageOutcome { id, ok: false, .. } if id == "m00000"));
    assert!(matches!(
        &reports[1],
        Report::FrameFailed {
            what: "handshake",
            ..
        }
    ));
}

#[test]
fn a_message_that_cannot_leave_within_the_delivery_bound_is_reported_failed_never_sent() {
    let mut s = Scheduler::new(settings());
    let t0 = Instant::now();
    // The server asks for a long wait (another client spent the user's budget).
    s.push(key(ROOM), message(0, 20), "message", t0);
    let d = s.dispatch("me", t0).pop().expect("call");
    s.finished(d, CallOutcome::RateLimited(Duration::from_secs(120)), t0);
    s.push(key(ROOM), message(1, 20), "message", t0);
    let wake = s.next_wake(t0).expect("a wake-up");
    assert!(
        wake <= t0 + Duration::from_secs(55),
        "for the expiry: {:?}",
        wake - t0
    );
    let at_bound = t0 + Duration::from_secs(55);
    let reports = s.housekeeping(at_bound);
    let failed: Vec<&str> = reports
        .iter()
        .filter_map(|r| match r {
            Report::MessageOutcome {
                id,
                ok: false,
                detail,
                ..
            } => {
                assert!(detail.contains("delivery bound"), "{detail}");
                Some(id.as_str())
            }
            _ => None,
        })
        .collect();
    assert_eq!(failed, ["m00000", "m00001"]);
    assert!(
        s.dispatch("me", t0 + Duration::from_secs(130)).is_empty(),
        "never sent late"
    );
    let b = s.budgets(at_bound);
    assert_eq!(b[0].expired_total, 2);
    assert_eq!(b[0].rate_limited_total, 1);
}

#[test]
fn back_pressure_is_reported_once_it_lasts_updated_sparingly_and_cleared() {
    let mut run = Run::new(Duration::ZERO);
    run.arrive(ROOM, (0..2_000).map(|i| (i as u64 * 4, message(i, 300))));
    run.until(200_000);
    let backlog: Vec<(Instant, Backlog)> = run
        .reports
        .iter()
        .filter_map(|(t, r)| match r {
            Report::Backlog { backlog, .. } => Some((*t, *backlog)),
            _ => None,
        })
        .collect();
    assert!(backlog.len() >= 3, "{backlog:?}");
    let (first_at, first) = backlog[0];
    assert!(first.queued > 0 && first.waited_ms >= 2_000, "{first:?}");
    assert!(first_at - run.t0 < Duration::from_secs(10));
    assert!(
        backlog
            .windows(2)
            .all(|w| w[1].0 - w[0].0 >= REPORT_EVERY || w[1].1.queued == 0),
        "no more than one per {REPORT_EVERY:?}: {backlog:?}"
    );
    assert_eq!(
        backlog.last().map(|b| b.1),
        Some(Backlog::default()),
        "cleared at the end"
    );
    assert_eq!(run.accepted.len() + run.failures().len(), 2_000);
}

#[test]
fn a_new_connection_lets_resends_go_and_counts_from_zero() {
    let mut s = Scheduler::new(settings());
    let t0 = Instant::now();
    s.connection(0);
    s.push(key(ROOM), message(0, 20), "message", t0);
    let d = s.dispatch("me", t0).pop().expect("call");
    s.finished(d, CallOutcome::Accepted, t0);
    s.push(key(ROOM), message(0, 20), "message", t0);
    assert!(
        s.dispatch("me", t0).is_empty(),
        "a resend moments later is dropped"
    );
    s.connection(1);
    s.connection(1);
    s.push(key(ROOM), message(0, 20), "message", t0);
    assert_eq!(s.dispatch("me", t0).len(), 1, "after a reconnect it goes");
    let b = s.budgets(t0);
    assert_eq!((b[0].connection_calls, b[0].user_calls), (1, 2));
}

#[test]
fn a_session_that_ended_without_our_end_leaves_no_message_behind() {
    let mut s = Scheduler::new(settings());
    let t0 = Instant::now();
    for i in 0..100 {
        s.push(key(ROOM), message(i, 256), "message", t0);
    }
    s.push(key(ROOM), ack(0), "acknowledgement", t0);
    s.push(key("other"), message(500, 10), "message", t0);
    let first = s.dispatch("me", t0);
    assert_eq!(first.len(), 2, "one call per room");
    let reports = s.drop_messages(ROOM);
    assert!(!reports.is_empty());
    assert!(reports.iter().all(
        |r| matches!(r, Report::MessageOutcome { ok: false, room_id, .. } if room_id == ROOM)
    ));
    let on_its_way: usize = first
        .iter()
        .filter(|d| d.key.room_id == ROOM)
        .map(|d| d.packed.messages.len())
        .sum();
    assert_eq!(reports.len() + on_its_way, 100);
    assert_eq!(s.backlog("other", t0).queued, 1, "other rooms keep theirs");
    for d in first {
        s.finished(d, CallOutcome::Accepted, t0);
    }
    // The acknowledgement still goes (the peer's message did arrive).
    let rest = s.dispatch("me", t0 + Duration::from_secs(60));
    assert!(rest
        .iter()
        .all(|d| d.packed.messages.is_empty() && d.key.room_id == ROOM));
}
