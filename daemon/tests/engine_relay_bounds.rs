//! Third-user input on the 8.x relays, seen from the engine (issue 15, item 6): probes that a
//! user sharing a room with us writes on path B in a peer's name are answered at most once per
//! room and path in the window, and never while our own probe for that room is pending — while
//! two daemons that start at the same moment still find each other.

mod support;

use otrd::engine::{
    self, Direction, EngineHandle, EventKind, PeerRef, SchemePreference, SessionState,
    TransportKind,
};
use otrd::rocketchat::{Client, ClientConfig, Credentials};
use otrd::secure::SecretString;
use serde_json::{json, Value};
use std::time::Duration;
use support::engine::{account, connected, wait_event, wait_session_state, ENGINE_WAIT};

/// The demo DM between me and echo.
const ROOM: &str = "DemoDmRoom000001c";

fn sim_config() -> rcsim::SimConfig {
    let mut cfg = rcsim::SimConfig::demo();
    cfg.mode = rcsim::Mode::V8;
    cfg
}

/// Adds carol, who shares a DM with echo (not with me), and logs her in.
fn carol(sim: &rcsim::SimHandle) -> (Client, String) {
    sim.add_user(rcsim::UserConfig::new(
        "CarolUser0000001d",
        "carol",
        "carol",
    ))
    .expect("carol");
    let room = sim.add_dm("carol", "echo").expect("dm");
    let (client, mut events) = Client::spawn(ClientConfig::new(
        sim.http_url(),
        Credentials::Password {
            username: "carol".into(),
            password: SecretString::from("carol"),
        },
    ));
    tokio::spawn(async move { while events.recv().await.is_some() {} });
    (client, room)
}

/// A probe envelope claiming `from` for `room`, numbered `seq` in one well-formed run.
fn probe(from: &str, room: &str, seq: u64) -> Value {
    json!({"v": 1, "from": from, "room": room, "run": "00000000c0c0c0c0", "seq": seq,
        "items": [{"k": "probe", "p": {"nonce": format!("n{seq}")}}]})
}

/// carol writes `envelope` on path B in her room with echo (the server relays it to echo).
async fn on_b(carol: &Client, carol_room: &str, envelope: Value) {
    carol
        .call(
            "stream-notify-room-users",
            vec![
                json!(format!("{carol_room}/video-conference")),
                json!({"action": "otrd", "params": {}, "otrd": envelope}),
            ],
        )
        .await
        .expect("the server relays it");
}

/// The rooms echo answered probes for, as `(room, method)`, in order.
fn answers(sim: &rcsim::SimHandle) -> Vec<(String, String)> {
    let echo = sim.user_id("echo").expect("uid");
    sim.audit()
        .client
        .iter()
        .filter(|r| r.user.as_deref() == Some(echo.as_str()) || r.user.as_deref() == Some("echo"))
        .filter_map(|r| {
            let v: Value = serde_json::from_str(&r.data).ok()?;
            let method = v.get("method")?.as_str()?.to_owned();
            let params = v["params"].as_array()?;
            let envelope = match method.as_str() {
                "stream-notify-room" => params.get(3)?.get("otrd")?,
                "stream-notify-room-users" => params.get(1)?.get("otrd")?,
                _ => return None,
            };
            let acks = envelope["items"]
                .as_array()?
                .iter()
                .any(|i| i["k"] == "probe_ack");
            acks.then(|| (envelope["room"].as_str().unwrap_or("").to_owned(), method))
        })
        .collect()
}

/// Polls echo's answers until `pred` holds (a condition with a deadline, not a sleep).
async fn answers_until(
    sim: &rcsim::SimHandle,
    what: &str,
    pred: impl Fn(&[(String, String)]) -> bool,
) -> Vec<(String, String)> {
    let deadline = tokio::time::Instant::now() + ENGINE_WAIT;
    loop {
        let got = answers(sim);
        if pred(&got) {
            return got;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: {got:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether echo has sent its own probe for `room` on path A.
fn probed(sim: &rcsim::SimHandle, room: &str) -> bool {
    let needle = format!("{room}/user-activity");
    sim.audit()
        .client
        .iter()
        .any(|r| r.data.contains(&needle) && r.data.contains("\"probe\""))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_probes_are_answered_once_per_window_and_never_while_ours_is_pending() {
    let sim = rcsim::start(sim_config(), "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("sim");
    let url = sim.http_url();
    let dir = tempfile::tempdir().expect("tmp");
    // Only echo runs a daemon: me never answers, so echo's own probe stays pending.
    let (echo, _t) = engine::spawn(account(&url, "echo", "echo", false, Some(dir.path())));
    connected(&echo).await;
    let (carol, carol_room) = carol(&sim);
    let carol_uid = sim.user_id("carol").expect("uid");
    let me_uid = sim.user_id("me").expect("uid");
    tokio::time::timeout(ENGINE_WAIT, async {
        while !echo
            .list_rooms()
            .await
            .unwrap_or_default()
            .iter()
            .any(|r| r.room_id == carol_room)
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("echo knows the DM with carol");

    // Echo starts with me: its probe on path A is pending (for 4 s).
    let start = {
        let echo = echo.clone();
        tokio::spawn(async move {
            echo.start(PeerRef::Username("me".into()), SchemePreference::Auto)
                .await
        })
    };
    tokio::time::timeout(ENGINE_WAIT, async {
        while !probed(&sim, ROOM) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("echo probes path A");
    // carol, in me's name, probes path B meanwhile: not answered. Then carol probes for her own
    // room: answered, and processed after the forgery, so the forgery's answer would be there.
    on_b(&carol, &carol_room, probe(&me_uid, ROOM, 1)).await;
    on_b(&carol, &carol_room, probe(&carol_uid, &carol_room, 2)).await;
    let got = answers_until(&sim, "carol's probe answered", |a| {
        a.iter().any(|(room, _)| *room == carol_room)
    })
    .await;
    assert!(
        !got.iter().any(|(room, _)| room == ROOM),
        "answered while our own probe was pending: {got:?}"
    );
    // Nobody answers echo: its Start fails (A, then B).
    let failed = start.await.expect("task");
    assert!(failed.is_err(), "{failed:?}");

    // Now nothing is pending: of three probes in a row in me's name, one is answered.
    for seq in 3..6 {
        on_b(&carol, &carol_room, probe(&me_uid, ROOM, seq)).await;
    }
    // A probe from carol on path A of her room (a fresh room and path) comes last.
    carol
        .call(
            "stream-notify-room",
            vec![
                json!(format!("{carol_room}/user-activity")),
                json!("carol"),
                json!([]),
                json!({"otrd": probe(&carol_uid, &carol_room, 6)}),
            ],
        )
        .await
        .expect("path A write");
    let got = answers_until(&sim, "carol's path A probe answered", |a| {
        a.iter()
            .any(|(room, m)| *room == carol_room && m == "stream-notify-room")
    })
    .await;
    let for_room: Vec<_> = got.iter().filter(|(room, _)| room == ROOM).collect();
    assert_eq!(for_room.len(), 1, "{got:?}");
    carol.shutdown().await;
}

async fn say(
    from: &EngineHandle,
    to: &str,
    to_ev: &mut tokio::sync::broadcast::Receiver<engine::Event>,
    text: &str,
) {
    from.send(PeerRef::Username(to.into()), SecretString::from(text))
        .await
        .expect("send");
    let got = wait_event(to_ev, |k| {
        matches!(
            k,
            EventKind::Message {
                direction: Direction::In,
                ..
            }
        )
    })
    .await;
    let EventKind::Message { text: got, .. } = got else {
        unreachable!()
    };
    assert_eq!(got.expose(), text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_daemons_that_start_at_the_same_moment_still_meet() {
    let sim = rcsim::start(sim_config(), "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("sim");
    let url = sim.http_url();
    let dir = tempfile::tempdir().expect("tmp");
    // Auto-accept: the glare loser answers the winner's offer without asking its user.
    let (me, _t1) = engine::spawn(account(&url, "me", "demo", true, Some(dir.path())));
    let (echo, _t2) = engine::spawn(account(&url, "echo", "echo", true, Some(dir.path())));
    connected(&me).await;
    connected(&echo).await;
    // Let the path subscriptions (issued right after the room list) land.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_, mut me_ev) = me.watch(false).await.expect("watch");
    let (_, mut echo_ev) = echo.watch(false).await.expect("watch");
    // Events reach each daemon late, so both probes are out before either arrives: each probes
    // while the other's probe is pending. Neither answers; each takes the other's probe as the
    // answer, and the sessions' glare rule keeps one offer.
    sim.set_event_delay(Duration::from_millis(500));
    let (a, b) = tokio::join!(
        me.start(PeerRef::Username("echo".into()), SchemePreference::Auto),
        echo.start(PeerRef::Username("me".into()), SchemePreference::Auto)
    );
    a.expect("me starts");
    b.expect("echo starts");
    for rx in [&mut me_ev, &mut echo_ev] {
        let est = wait_session_state(rx, SessionState::Established).await;
        let EventKind::State { transport, .. } = est else {
            unreachable!()
        };
        assert_eq!(transport, Some(TransportKind::UserActivity));
    }
    sim.set_event_delay(Duration::ZERO);
    say(&me, "echo", &mut echo_ev, "glare resolved").await;
    say(&echo, "me", &mut me_ev, "both ways").await;
}
