//! The server as attacker (issue 15) and the third-user flood, over real websockets: forgeries
//! reach only the victim's connections, on the 7.x relay or inside an envelope on the path the
//! claimed sender uses; what the victim answers is recorded with its key; the man in the middle
//! strips native offers inside 8.x envelopes; a flood written through a user's own connection
//! arrives on the victim's path B.
mod common;

use std::sync::Arc;

use common::*;
use rcsim::flood::{Flood, FloodTarget};
use rcsim::user_client::UserClient;
use rcsim::{ForgedSignal, Forgery, MitmMode, Mode, Route};
use serde_json::json;

#[tokio::test]
async fn a_forgery_reaches_only_the_victim_and_its_answer_is_recorded() {
    let sim = sim(demo_with(|_| {})).await;
    let mut me = Ddp::login_as(&sim.ws_url(), "me", "demo").await;
    let mut echo = Ddp::login_as(&sim.ws_url(), "echo", "echo").await;
    me.sub_ok("stream-notify-user", &format!("{ME}/otr")).await;
    echo.sub_ok("stream-notify-user", &format!("{ECHO}/otr"))
        .await;

    let forged = sim
        .forge(&Forgery::new(ForgedSignal::RefreshHandshake, "me", "echo"))
        .expect("forge");
    assert_eq!((forged.route, forged.delivered), (Route::OtrStream, 1));
    let f = me.event("stream-notify-user", &format!("{ME}/otr")).await;
    let args = &f["fields"]["args"];
    assert_eq!(args[0], "handshake");
    assert_eq!(args[1]["userId"], ECHO, "claims to be echo");
    assert_eq!(args[1]["roomId"], DM);
    assert_eq!(args[1]["refresh"], true);
    assert_eq!(
        args[1]["publicKey"].as_str(),
        forged.public_key.as_deref(),
        "carries the attacker's key"
    );

    // The victim answers as a stock client would: an acknowledge with a new key, to echo.
    let key = rcsim::attacker::stock::AttackerKey::generate().expect("key");
    me.call(
        "stream-notify-user",
        json!([format!("{ECHO}/otr"), "acknowledge",
            {"roomId": DM, "userId": ME, "publicKey": key.public_jwk()}]),
    )
    .await;
    echo.event("stream-notify-user", &format!("{ECHO}/otr"))
        .await;
    assert!(
        echo.seen(|f| f["fields"]["args"][0] == "handshake")
            .is_empty(),
        "the forgery went to echo too"
    );
    let report = sim.attack_report();
    assert_eq!(report.forged, 1);
    let answers = report.answers_from(ME);
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].kind, "acknowledge");
    assert!(answers[0].public_key.is_some());
    assert_eq!(report.keys, 1, "one forged key × one victim key");
}

#[tokio::test]
async fn on_8x_a_forgery_travels_in_an_envelope_on_the_claimed_senders_path() {
    let sim = sim(demo_with(|c| c.mode = Mode::V8)).await;
    let mut me = Ddp::login_as(&sim.ws_url(), "me", "demo").await;
    let mut echo = Ddp::login_as(&sim.ws_url(), "echo", "echo").await;
    me.sub_ok("stream-notify-user", &format!("{ME}/video-conference"))
        .await;
    // echo talks to me on path B: the attacker learns that from echo's own envelope.
    echo.call(
        "stream-notify-room-users",
        json!([format!("{DM}/video-conference"), {"action": "otrd", "params": {},
            "otrd": {"v": 1, "from": ECHO, "room": DM, "run": "0123456789abcdef", "seq": 1,
                     "items": [{"k": "probe", "p": {"nonce": "n"}}]}}]),
    )
    .await;
    me.event("stream-notify-user", &format!("{ME}/video-conference"))
        .await;

    let forged = sim
        .forge(&Forgery::new(ForgedSignal::EndWithBogusProof, "me", "echo"))
        .expect("forge");
    assert_eq!((forged.route, forged.delivered), (Route::PathB, 1));
    let f = me
        .event("stream-notify-user", &format!("{ME}/video-conference"))
        .await;
    let env = &f["fields"]["args"][0]["otrd"];
    assert_eq!(env["from"], ECHO);
    assert_eq!(env["room"], DM);
    assert_eq!(env["run"].as_str().map(str::len), Some(16));
    assert_eq!(env["items"][0]["k"], "end");
    assert!(env["items"][0]["p"]["otrd"]["end"].is_string());
}

#[tokio::test]
async fn strip_offer_removes_the_native_offer_inside_a_path_a_envelope() {
    let sim = sim(demo_with(|c| c.mode = Mode::V8)).await;
    let mut me = Ddp::login_as(&sim.ws_url(), "me", "demo").await;
    let mut echo = Ddp::login_as(&sim.ws_url(), "echo", "echo").await;
    echo.sub_ok("stream-notify-room", &format!("{DM}/user-activity"))
        .await;
    sim.set_mitm(MitmMode::StripOffer);
    me.call(
        "stream-notify-room",
        json!([format!("{DM}/user-activity"), "me", [], {"otrd": {"v": 1, "from": ME,
            "room": DM, "run": "0123456789abcdef", "seq": 1,
            "items": [{"k": "offer", "p": {"roomId": DM, "userId": ME, "publicKey": "{}",
                                          "otrd": {"v": 2}}}]}}]),
    )
    .await;
    let f = echo
        .event("stream-notify-room", &format!("{DM}/user-activity"))
        .await;
    let offer = &f["fields"]["args"][2]["otrd"]["items"][0]["p"];
    assert!(offer.get("otrd").is_none(), "native offer kept: {offer}");
    assert_eq!(offer["publicKey"], "{}");
    assert_eq!(sim.mitm_rewrites(), 1);
}

#[tokio::test]
async fn a_flood_through_a_users_own_connection_arrives_on_the_victims_path_b() {
    let sim = sim(demo_with(|c| c.mode = Mode::V8)).await;
    sim.set_rate_limits(false);
    let mut me = Ddp::login_as(&sim.ws_url(), "me", "demo").await;
    me.sub_ok("stream-notify-user", &format!("{ME}/video-conference"))
        .await;
    let echo = Arc::new(
        UserClient::login(&sim.ws_url(), "echo", "echo")
            .await
            .expect("login"),
    );
    assert_eq!(echo.uid(), ECHO);
    let flood = Flood::start(
        echo.clone(),
        FloodTarget {
            shared_room: DM.into(),
            flooder_uid: ECHO.into(),
            session_room: "SomeOtherRoom0001".into(),
            peer_uid: "SomeoneElse000001".into(),
        },
        400,
    );
    for _ in 0..40 {
        me.event("stream-notify-user", &format!("{ME}/video-conference"))
            .await;
    }
    let stats = flood.stop().await;
    assert!(
        stats.frames >= 40 && stats.items > stats.frames,
        "{stats:?}"
    );
    let sent = sim
        .audit()
        .sent_by(ECHO)
        .iter()
        .filter(|r| r.data.contains("stream-notify-room-users"))
        .count();
    // Through the server's front door: the audit saw the flooder's own calls.
    assert!(
        sent >= 40,
        "the audit saw {sent} of {} frames",
        stats.frames
    );
}
