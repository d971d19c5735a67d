//! A server whose OTR capabilities change under a live connection (issue 15, item 7): the 7.x
//! server a session runs on goes down and comes back, on the same address, as 8.x — or as 7.x
//! with `OTR_Enable` switched off. Every session ends, nothing ever goes through the 7.x relay on
//! the new server (not even a message written while it was down), and a new session finds a
//! realtime path, so the transport's subscriptions were made again.

mod support;

use otrd::engine::{
    self, Direction, EventKind, PeerRef, SchemePreference, SessionState, TransportKind,
};
use otrd::secure::SecretString;
use serde_json::Value;
use support::engine::{account, connected, wait_event, wait_session_state, ENGINE_WAIT};
use tokio::sync::broadcast;

/// Events up to and including the first matching `pred` (fails after [`ENGINE_WAIT`]).
async fn events_until(
    rx: &mut broadcast::Receiver<engine::Event>,
    mut pred: impl FnMut(&EventKind) -> bool,
) -> Vec<EventKind> {
    let deadline = tokio::time::Instant::now() + ENGINE_WAIT;
    let mut seen = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(e)) => {
                let done = pred(&e.kind);
                seen.push(e.kind);
                if done {
                    return seen;
                }
            }
            Ok(Err(e)) => panic!("event stream failed: {e}"),
            Err(_) => panic!("no matching event within {ENGINE_WAIT:?}; saw {seen:?}"),
        }
    }
}

/// Every DDP method a client called, as `(method, params)`, and every raw client record.
fn methods(audit: &rcsim::Audit) -> Vec<(String, Vec<Value>)> {
    audit
        .client
        .iter()
        .filter_map(|r| {
            let v: Value = serde_json::from_str(&r.data).ok()?;
            (v.get("msg")? == "method").then(|| {
                let params = v["params"].as_array().cloned().unwrap_or_default();
                (v["method"].as_str().unwrap_or("").to_owned(), params)
            })
        })
        .collect()
}

async fn established_state(rx: &mut broadcast::Receiver<engine::Event>) -> Option<TransportKind> {
    match wait_session_state(rx, SessionState::Established).await {
        EventKind::State { transport, .. } => transport,
        _ => None,
    }
}

/// Runs a native session on 7.x, then serves `after` on the same address.
async fn capabilities_change_to(after: rcsim::SimConfig) {
    let sim7 = rcsim::start(
        rcsim::SimConfig::demo(),
        "127.0.0.1:0".parse().expect("addr"),
    )
    .await
    .expect("sim");
    let addr = sim7.addr();
    let url = sim7.http_url();
    let dir = tempfile::tempdir().expect("tmp");
    let (me, _t1) = engine::spawn(account(&url, "me", "demo", false, Some(dir.path())));
    let (echo, _t2) = engine::spawn(account(&url, "echo", "echo", true, Some(dir.path())));
    connected(&me).await;
    connected(&echo).await;
    let (_, mut me_ev) = me.watch(false).await.expect("watch");
    let (_, mut echo_ev) = echo.watch(false).await.expect("watch");
    let echo_ref = || PeerRef::Username("echo".into());
    me.start(echo_ref(), SchemePreference::Native)
        .await
        .expect("start");
    for rx in [&mut me_ev, &mut echo_ev] {
        assert_eq!(established_state(rx).await, Some(TransportKind::OtrRelay));
    }
    // The initiator's `user_joined_otr` (REST chat.otr) belongs to the 7.x server: let it land
    // there before the server is swapped, or it races onto the new one.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !sim7
        .audit()
        .client
        .iter()
        .any(|r| r.data.contains("chat.otr"))
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no user_joined_otr on 7.x"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }

    // The server goes away; a message written meanwhile waits in the room's relay outbox.
    sim7.shutdown().await;
    wait_event(&mut me_ev, |k| {
        matches!(k, EventKind::Connection { state, .. } if *state != engine::ConnectionState::Connected)
    })
    .await;
    let secret = "written while the server was away";
    me.send(echo_ref(), SecretString::from(secret))
        .await
        .expect("queued in the established session");

    let sim = rcsim::start(after, addr).await.expect("the new server");
    for rx in [&mut me_ev, &mut echo_ev] {
        let seen = events_until(
            rx,
            |k| matches!(k, EventKind::Error { code, .. } if code == "server_changed"),
        )
        .await;
        assert!(
            seen.iter().any(|k| matches!(
                k,
                EventKind::State {
                    state: SessionState::Ended,
                    ..
                }
            )),
            "the session was not ended: {seen:?}"
        );
    }
    assert!(me.list_sessions().await.expect("sessions").is_empty());
    let status = me.status().await.expect("status");
    assert_eq!(
        status.native_transports,
        vec![TransportKind::UserActivity, TransportKind::VideoConference]
    );
    assert_eq!((status.session_count, status.established_count), (0, 0));

    // A new session is built for the new server and finds path A (its subscription was redone).
    me.start(echo_ref(), SchemePreference::Auto)
        .await
        .expect("start again");
    // Path A normally; when the peer's path-A subscription on the new server is not up yet
    // when the probe goes, the probe falls back to B — a realtime relay either way, never the
    // removed 7.x relay (seen 6 in 15 runs on a loaded machine).
    for rx in [&mut me_ev, &mut echo_ev] {
        let transport = established_state(rx).await;
        assert!(
            matches!(
                transport,
                Some(TransportKind::UserActivity | TransportKind::VideoConference)
            ),
            "{transport:?}"
        );
    }
    let sent = me
        .send(echo_ref(), SecretString::from("after the change"))
        .await
        .expect("send");
    let got = wait_event(&mut echo_ev, |k| {
        matches!(
            k,
            EventKind::Message {
                direction: Direction::In,
                ..
            }
        )
    })
    .await;
    let EventKind::Message { text, .. } = got else {
        unreachable!()
    };
    assert_eq!(text.expose(), "after the change");
    wait_event(
        &mut me_ev,
        |k| matches!(k, EventKind::Delivered { id, .. } if *id == sent.id),
    )
    .await;

    // Nothing went the old way on the new server.
    let audit = sim.audit();
    for (method, _) in methods(&audit) {
        assert!(
            !matches!(
                method.as_str(),
                "sendMessage" | "updateOTRAck" | "deleteOldOTRMessages" | "stream-notify-user"
            ),
            "{method} was called on a server without the OTR relay"
        );
    }
    assert!(!audit.client.iter().any(|r| r.data.contains("chat.otr")));
    assert!(audit.stored.is_empty(), "stored: {:?}", audit.stored);
    assert!(!audit.contains(secret));
    // Path B's user stream was followed again as well.
    let me_uid = sim.user_id("me").expect("uid");
    let b_stream = format!("{me_uid}/video-conference");
    assert!(
        audit
            .client
            .iter()
            .any(|r| r.data.contains("\"sub\"") && r.data.contains(&b_stream)),
        "no subscription to {b_stream}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_to_8x_ends_every_session_and_nothing_reaches_the_removed_relay() {
    let mut cfg = rcsim::SimConfig::demo();
    cfg.mode = rcsim::Mode::V8;
    capabilities_change_to(cfg).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otr_enable_switched_off_ends_every_session_and_moves_to_the_realtime_paths() {
    let mut cfg = rcsim::SimConfig::demo();
    cfg.otr_enable = false;
    capabilities_change_to(cfg).await;
}
