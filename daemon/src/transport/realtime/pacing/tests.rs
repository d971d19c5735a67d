use super::*;

const M: &str = "stream-notify-room";

fn at(t0: Instant, ms: u64) -> Instant {
    t0 + Duration::from_millis(ms)
}

#[test]
fn the_defaults_follow_the_server_and_leave_half_the_users_budget() {
    let l = Limits::default();
    assert_eq!(l.own_user_calls(), 40, "half of 80 left to the browser");
    assert_eq!(l.limit(), 40);
    assert_eq!(l.reserve(), 4);
    assert_eq!(l.span(), Duration::from_secs(42));
    let tight = Limits {
        connection_calls: 40,
        user_calls: 80,
        others_share: 0.75,
        window: Duration::from_secs(40),
    };
    assert_eq!((tight.own_user_calls(), tight.limit()), (20, 20));
    let tiny = Limits {
        connection_calls: 3,
        ..Limits::default()
    };
    assert_eq!(tiny.reserve(), 0, "nothing to spare");
}

#[test]
fn data_stops_at_the_reserve_and_control_frames_may_spend_it() {
    let mut b = Budget::new(Limits::default());
    let t0 = Instant::now();
    for i in 0..36 {
        assert_eq!(b.earliest(M, Class::Bulk, at(t0, i)), at(t0, i), "call {i}");
        b.record(M, at(t0, i));
    }
    let now = at(t0, 100);
    assert_eq!(b.data_available(M, now), 0);
    // The 37th data call waits until the first one leaves the span.
    assert_eq!(
        b.earliest(M, Class::Urgent, now),
        t0 + Limits::default().span()
    );
    // Control frames spend the reserve, at once.
    for i in 0..4 {
        assert_eq!(b.earliest(M, Class::Control, now), now, "control {i}");
        b.record(M, now);
    }
    assert!(
        b.earliest(M, Class::Control, now) > now,
        "the limit itself holds"
    );
    // Another method has its own budget.
    assert_eq!(
        b.earliest("stream-notify-room-users", Class::Bulk, now),
        now
    );
    // A span later everything is free again.
    let later = now + Limits::default().span();
    assert_eq!(b.data_available(M, later), 36);
}

#[test]
fn the_users_count_outlives_a_reconnect_and_the_connections_does_not() {
    let limits = Limits {
        connection_calls: 40,
        user_calls: 120,
        others_share: 0.5,
        window: Duration::from_secs(40),
    };
    assert_eq!((limits.own_user_calls(), limits.reserve()), (60, 4));
    let mut b = Budget::new(limits);
    let t0 = Instant::now();
    for _ in 0..36 {
        b.record(M, t0);
    }
    assert_eq!(b.data_available(M, t0), 0, "the connection's limit");
    b.new_connection();
    // The server counts the new connection from zero; our share of the user's limit has 60 - 36
    // calls left, 20 of them for data.
    assert_eq!(b.data_available(M, t0), 20);
    let usage = b.usage(M, t0);
    assert_eq!((usage.connection_calls, usage.user_calls), (0, 36));
    assert_eq!(usage.calls_total, 36);
}

#[test]
fn the_pacing_gap_is_zero_while_the_budget_is_ample_then_steep() {
    let l = Limits::default();
    assert_eq!(gap(&l, 36), Duration::ZERO);
    assert_eq!(gap(&l, 27), Duration::ZERO, "three quarters free");
    let spacing = l.span() / 36;
    assert!(
        gap(&l, 26) > spacing,
        "below three quarters: at least the sustainable spacing"
    );
    assert_eq!(gap(&l, 18), spacing * 2);
    assert_eq!(gap(&l, 0), spacing * 4);
    assert!((1..36).all(|a| gap(&l, a - 1) >= gap(&l, a)), "monotonic");
}

#[test]
fn a_partly_filled_frame_waits_for_the_gap_after_the_last_call() {
    let mut b = Budget::new(Limits::default());
    let t0 = Instant::now();
    for i in 0..9 {
        b.record(M, at(t0, i));
    }
    // 27 left: still ample.
    assert_eq!(b.bulk_ready_at(M, at(t0, 9)), at(t0, 9));
    b.record(M, at(t0, 9));
    let ready = b.bulk_ready_at(M, at(t0, 10));
    assert_eq!(ready, at(t0, 9) + gap(b.limits(), 26));
    assert!(ready > at(t0, 10));
    // Urgent items and control frames do not wait for the gap.
    assert_eq!(b.earliest(M, Class::Urgent, at(t0, 10)), at(t0, 10));
}

#[test]
fn too_many_requests_blocks_the_method_for_its_wait_and_is_counted() {
    let mut b = Budget::new(Limits::default());
    let t0 = Instant::now();
    b.record(M, t0);
    b.refused(M, t0, Duration::from_secs(7));
    for class in [Class::Bulk, Class::Urgent, Class::Control] {
        assert_eq!(b.earliest(M, class, t0), at(t0, 7_000), "{class:?}");
    }
    assert_eq!(b.earliest(M, Class::Control, at(t0, 8_000)), at(t0, 8_000));
    assert_eq!(b.usage(M, t0).rate_limited_total, 1);
}

#[test]
fn no_fixed_window_of_any_phase_sees_more_than_the_limit() {
    // Spend as fast as the budget allows, every class mixed, for five minutes.
    let l = Limits::default();
    let mut b = Budget::new(l);
    let t0 = Instant::now();
    let mut now = t0;
    let mut calls = Vec::new();
    let end = t0 + Duration::from_secs(300);
    let mut i = 0u32;
    while now < end {
        let class = [Class::Bulk, Class::Urgent, Class::Control][(i % 3) as usize];
        i += 1;
        let t = b.earliest(M, class, now);
        b.record(M, t);
        calls.push(t);
        now = t;
    }
    for phase_ms in (0..40_000).step_by(250) {
        let start = t0 + Duration::from_millis(phase_ms);
        let mut counts = std::collections::HashMap::new();
        for c in calls.iter().filter(|c| **c >= start) {
            let w = c.duration_since(start).as_millis() / 40_000;
            *counts.entry(w).or_insert(0u32) += 1;
        }
        let worst = counts.values().max().copied().unwrap_or(0);
        assert!(worst <= l.limit(), "phase {phase_ms} ms: {worst}");
    }
}

#[test]
fn a_message_every_few_seconds_is_never_held_and_a_fast_stream_is() {
    let mut b = Budget::new(Limits::default());
    let t0 = Instant::now();
    // Five minutes of chat, a message every 3 s: 14 calls in every span, each at once.
    for i in 0..100 {
        let t = at(t0, i * 3_000);
        assert_eq!(b.bulk_ready_at(M, t), t, "message {i}");
        b.record(M, t);
    }
    // Two a second is faster than the budget sustains: within a window, frames wait to fill.
    let t1 = at(t0, 400_000);
    let held = (0..60).any(|i| {
        let t = t1 + Duration::from_millis(500) * i;
        let ready = b.bulk_ready_at(M, t);
        b.record(M, t);
        ready > t
    });
    assert!(held);
}

#[test]
fn right_after_a_burst_the_log_opens_the_gap_even_with_the_spending_refilled() {
    let mut b = Budget::new(Limits::default());
    let t0 = Instant::now();
    for _ in 0..20 {
        b.record(M, t0);
    }
    // 30 s later the spending bucket is full again, but the server's window still holds the
    // burst: 16 left by the log, so the gap is open.
    let t = at(t0, 30_000);
    assert_eq!(b.pacing_level(M, t), 16 + 9);
    b.record(M, t);
    let next = at(t0, 30_001);
    assert!(
        b.bulk_ready_at(M, next) > next,
        "the next partial frame waits"
    );
}
