//! GetStatus answers from the snapshot the engine publishes (issue 2), and that snapshot is never
//! older than what a client has already been told: right after an answer or an event, GetStatus
//! reports the state it announced. Nothing here polls: each check is one read, made at once.
#![allow(clippy::unwrap_used)] // a panic in a test is a failed test

mod support;

use otrd::engine::{self, ConnectionState, EventKind, PeerRef, SchemePreference, SessionState};
use support::engine::{account, connected, wait_event, wait_session_state};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_status_is_current_right_after_each_answer_and_event() {
    let sim = rcsim::start(rcsim::SimConfig::demo(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let url = sim.http_url();
    let (me, _t1) = engine::spawn(account(&url, "me", "demo", false, None));
    let (echo, _t2) = engine::spawn(account(&url, "echo", "echo", true, None));
    connected(&me).await;
    connected(&echo).await;
    let (_, mut me_ev) = me.watch(false).await.unwrap();
    let (_, mut echo_ev) = echo.watch(false).await.unwrap();
    let s = me.status().await.unwrap();
    assert_eq!((s.session_count, s.established_count), (0, 0));
    assert_eq!(s.account, "me");
    assert!(!s.account_user_id.is_empty(), "logged in: {s:?}");

    // The answer to StartSession: the session counts at once.
    let info = me
        .start(PeerRef::Username("echo".into()), SchemePreference::Legacy)
        .await
        .unwrap();
    assert_eq!(info.state, SessionState::Establishing);
    let s = me.status().await.unwrap();
    // echo auto-accepts: on a loaded machine its answer can land between our two calls, so the
    // session may already be established — but it must already count.
    assert_eq!(s.session_count, 1);
    assert!(s.established_count <= 1, "{s:?}");

    // The `established` event: the count follows before the event reaches anyone, on both sides
    // (the peer's session was created and established by the network, not by an RPC).
    wait_session_state(&mut me_ev, SessionState::Established).await;
    let s = me.status().await.unwrap();
    assert_eq!((s.session_count, s.established_count), (1, 1));
    wait_session_state(&mut echo_ev, SessionState::Established).await;
    assert_eq!(echo.status().await.unwrap().established_count, 1);

    // The answer to EndSession, and the peer's `ended` event.
    me.end(PeerRef::Username("echo".into())).await.unwrap();
    assert_eq!(me.status().await.unwrap().established_count, 0);
    wait_event(&mut echo_ev, |k| {
        matches!(
            k,
            EventKind::State {
                state: SessionState::Ended | SessionState::NotStarted,
                ..
            }
        )
    })
    .await;
    assert_eq!(echo.status().await.unwrap().established_count, 0);

    // A dropped connection: the `reconnecting` event and GetStatus agree (the first retry waits
    // at least 400 ms, so nothing newer can have happened yet), and so do they once back.
    assert!(sim.drop_all_connections() >= 2);
    let lost = wait_event(&mut me_ev, |k| {
        matches!(k, EventKind::Connection { state, .. } if *state != ConnectionState::Connected)
    })
    .await;
    let EventKind::Connection { state, detail } = lost else {
        unreachable!()
    };
    let s = me.status().await.unwrap();
    assert_eq!((s.connection, s.connection_detail), (state, detail));
    wait_event(&mut me_ev, |k| {
        matches!(k, EventKind::Connection { state, .. } if *state == ConnectionState::Connected)
    })
    .await;
    assert_eq!(
        me.status().await.unwrap().connection,
        ConnectionState::Connected
    );
}
