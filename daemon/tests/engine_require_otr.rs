//! `[contacts.<user>] require_otr = true`, in-process against rcsim: SendMessage without a session
//! starts OTR, holds the message and sends it encrypted once established; a declined invitation,
//! EndAllSessions or 8.x without an otrd peer fail it with the peer and the outcome; at most 64
//! wait per peer; and a contact without it still fails at once. The server never sees a held text.
#![allow(clippy::unwrap_used)] // a panic in a test is a failed test

mod support;

use otrd::config::ContactPolicy;
use otrd::engine::{
    self, Direction, EngineConfig, EngineError, EngineHandle, EventKind, PeerRef, SentMessage,
};
use otrd::secure::SecretString;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use support::engine::{account, connected, wait_event, ENGINE_WAIT};

fn requiring_otr(mut cfg: EngineConfig, peer: &str) -> EngineConfig {
    cfg.config.contacts.insert(
        peer.to_owned(),
        ContactPolicy {
            require_otr: Some(true),
            ..ContactPolicy::default()
        },
    );
    cfg
}

fn to_echo() -> PeerRef {
    PeerRef::Username("echo".into())
}

fn text(s: &str) -> SecretString {
    SecretString::from(s)
}

async fn sim(cfg: rcsim::SimConfig) -> rcsim::SimHandle {
    rcsim::start(cfg, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

/// `me` (requiring OTR with echo unless `plain`) and `echo`, both logged in.
async fn pair(url: &str, plain: bool, echo_auto_accept: bool) -> (EngineHandle, EngineHandle) {
    let me_cfg = account(url, "me", "demo", false, None);
    let me_cfg = if plain {
        me_cfg
    } else {
        requiring_otr(me_cfg, "echo")
    };
    let (me, _) = engine::spawn(me_cfg);
    let (echo, _) = engine::spawn(account(url, "echo", "echo", echo_auto_accept, None));
    connected(&me).await;
    connected(&echo).await;
    (me, echo)
}

/// The incoming message texts `rx` shows, until `n` arrived.
async fn received(
    rx: &mut tokio::sync::broadcast::Receiver<engine::Event>,
    n: usize,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    while out.len() < n {
        if let EventKind::Message { text, id, .. } = wait_event(rx, |k| {
            matches!(
                k,
                EventKind::Message {
                    direction: Direction::In,
                    ..
                }
            )
        })
        .await
        {
            out.push((id, text.expose().to_owned()));
        }
    }
    out
}

fn failed_precondition(r: Result<SentMessage, EngineError>) -> String {
    match r {
        Err(EngineError::FailedPrecondition(m)) => m,
        other => panic!("expected FAILED_PRECONDITION, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_messages_start_otr_and_go_out_encrypted_in_order_once_established() {
    let sim = sim(rcsim::SimConfig::demo()).await;
    let (me, echo) = pair(&sim.http_url(), false, true).await;
    let (_, mut echo_ev) = echo.watch(false).await.unwrap();
    assert_eq!(me.status().await.unwrap().session_count, 0);

    // Three sends at once, before any session: all wait for the one Start, then go in order.
    let mut held = Vec::new();
    for i in 0..3 {
        let mut f = Box::pin({
            let me = me.clone();
            async move { me.send(to_echo(), text(&format!("held secret #{i}"))).await }
        });
        assert!(poll_once(&mut f).await.is_pending(), "#{i} is held");
        held.push(f);
    }
    let mut ids = Vec::new();
    for f in held {
        let sent = tokio::time::timeout(ENGINE_WAIT, f).await.unwrap();
        ids.push(sent.expect("sent once established").id);
    }
    let got = received(&mut echo_ev, 3).await;
    let want: Vec<(String, String)> = ids
        .into_iter()
        .enumerate()
        .map(|(i, id)| (id, format!("held secret #{i}")))
        .collect();
    assert_eq!(got, want, "the peer got each answer's message, in order");
    assert_eq!(me.status().await.unwrap().established_count, 1);

    // Established now: the next one goes at once, as for any contact.
    let sent = me.send(to_echo(), text("direct")).await.unwrap();
    assert_eq!(
        received(&mut echo_ev, 1).await[0],
        (sent.id, "direct".into())
    );
    assert!(!sim.audit().contains("held secret"));
    assert!(!sim.audit().contains("direct"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contact_without_require_otr_still_fails_at_once_and_nothing_starts() {
    let sim = sim(rcsim::SimConfig::demo()).await;
    let (me, _echo) = pair(&sim.http_url(), true, true).await;
    let why = failed_precondition(me.send(to_echo(), text("not without a session")).await);
    assert!(why.contains("no OTR session with echo"), "{why}");
    assert!(
        me.list_sessions().await.unwrap().is_empty(),
        "nothing was started"
    );
    assert!(!sim.audit().contains("not without a session"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_invitation_fails_the_held_message_with_the_peer_and_the_outcome() {
    let sim = sim(rcsim::SimConfig::demo()).await;
    let (me, echo_h) = pair(&sim.http_url(), false, false).await;
    let (_, mut echo_ev) = echo_h.watch(false).await.unwrap();
    let send = tokio::spawn({
        let me = me.clone();
        async move { me.send(to_echo(), text("declined secret")).await }
    });
    wait_event(
        &mut echo_ev,
        |k| matches!(k, EventKind::Invitation { peer, .. } if peer == "me"),
    )
    .await;
    echo_h
        .decline(PeerRef::Username("me".into()))
        .await
        .unwrap();
    let why = failed_precondition(
        tokio::time::timeout(ENGINE_WAIT, send)
            .await
            .unwrap()
            .unwrap(),
    );
    assert!(why.contains("OTR with echo was not established"), "{why}");
    assert!(why.contains("declined"), "{why}");
    assert!(why.contains("the message was not sent"), "{why}");
    assert!(!sim.audit().contains("declined secret"));
}

/// Polls `f` once (its command reaches the engine's channel) and returns whether it finished.
async fn poll_once<T>(f: &mut Pin<Box<impl Future<Output = T>>>) -> Poll<T> {
    std::future::poll_fn(|cx| Poll::Ready(f.as_mut().poll(cx))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_64_wait_per_peer_and_end_all_fails_them_all() {
    let sim = sim(rcsim::SimConfig::demo()).await;
    // echo never answers (no auto-accept): the held messages wait for its invitation window.
    let (me, _echo) = pair(&sim.http_url(), false, false).await;
    let mut held = Vec::new();
    for i in 0..64 {
        let mut f = Box::pin({
            let me = me.clone();
            async move { me.send(to_echo(), text(&format!("lock me {i}"))).await }
        });
        assert!(poll_once(&mut f).await.is_pending(), "#{i} is held");
        held.push(f);
        // A fresh cooperative budget, so each command is queued on its first poll.
        tokio::task::yield_now().await;
    }
    let why = failed_precondition(me.send(to_echo(), text("lock me 64")).await);
    assert!(
        why.contains("64 messages already wait for OTR with echo"),
        "{why}"
    );

    assert_eq!(me.end_all().await.unwrap(), 1, "the invitation was ended");
    for f in held {
        let why = failed_precondition(tokio::time::timeout(ENGINE_WAIT, f).await.unwrap());
        assert!(why.contains("every session was ended"), "{why}");
        assert!(why.contains("echo"), "{why}");
    }
    assert!(!sim.audit().contains("lock me"));
}

/// `me` requires OTR with carol, who has no DM with `me` yet (her only DM, with echo, is how the
/// test sees her subscriptions in place: `connected` waits for a loaded room list). A send to
/// carol opens the DM, starts OTR and arrives encrypted; with `quiet_new_dms` the server never
/// announces the new DM, so carol's daemon learns of it only by reloading its DM list.
async fn carol_gets_a_held_message_in_a_new_dm(quiet_new_dms: bool, message: &str) {
    let mut cfg = rcsim::SimConfig::demo();
    cfg.users.push(rcsim::UserConfig::new(
        "CarolUser0000001d",
        "carol",
        "carol",
    ));
    cfg.dms.push(rcsim::DmConfig {
        id: String::new(),
        usernames: ["carol".to_string(), "echo".to_string()],
    });
    let sim = sim(cfg).await;
    sim.set_quiet_new_dms(quiet_new_dms);
    let url = sim.http_url();
    let (me, _) = engine::spawn(requiring_otr(
        account(&url, "me", "demo", false, None),
        "carol",
    ));
    let (carol, _) = engine::spawn(account(&url, "carol", "carol", true, None));
    connected(&me).await;
    connected(&carol).await;
    let (_, mut carol_ev) = carol.watch(false).await.unwrap();
    let sent = tokio::time::timeout(
        ENGINE_WAIT,
        me.send(PeerRef::Username("carol".into()), text(message)),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        received(&mut carol_ev, 1).await[0],
        (sent.id, message.into())
    );
    assert!(!sim.audit().contains(message));
    assert!(carol
        .list_rooms()
        .await
        .unwrap()
        .iter()
        .any(|r| r.peer == "me"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_without_a_dm_gets_one_and_the_message_waits_for_it() {
    carol_gets_a_held_message_in_a_new_dm(false, "to a new DM").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_8x_without_an_otrd_peer_the_held_message_fails_and_nothing_is_sent() {
    let mut cfg = rcsim::SimConfig::demo();
    cfg.mode = rcsim::Mode::V8;
    let sim = sim(cfg).await;
    let dir = tempfile::tempdir().unwrap();
    // Native needs an identity; echo runs no daemon at all.
    let (me, _) = engine::spawn(requiring_otr(
        account(&sim.http_url(), "me", "demo", false, Some(dir.path())),
        "echo",
    ));
    connected(&me).await;
    let why = failed_precondition(
        tokio::time::timeout(
            ENGINE_WAIT,
            me.send(to_echo(), text("no otrd on the other side")),
        )
        .await
        .unwrap(),
    );
    assert!(
        why.contains("echo's client does not speak otrd"),
        "the probe's outcome: {why}"
    );
    assert!(why.contains("the message was not sent"), "{why}");
    assert!(!sim.audit().contains("no otrd on the other side"));
}

/// The invitation comes in a DM the invitee does not know yet (the server never announces it):
/// it waits for the DM list instead of being dropped, and the held message still arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invitation_in_an_unannounced_dm_waits_for_the_dm_list() {
    carol_gets_a_held_message_in_a_new_dm(true, "in an unannounced DM").await;
}
