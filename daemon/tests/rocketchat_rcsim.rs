//! The Rocket.Chat client against rcsim, the Rocket.Chat simulator: login and capability
//! detection (7.x, 8.x, OTR disabled), refused logins, reconnect with subscriptions restored,
//! rooms, users, presence, rate limits and oversized frames.

mod support;

use otrd::engine::{ConnectionState, Presence};
use otrd::rocketchat::{
    parse_presence_event, BackoffPolicy, Client, ClientConfig, ClientEvent, Credentials, RcError,
    SessionInfo,
};
use rcsim::{Limit, Mode, SimConfig, SimHandle, Status};
use serde_json::json;
use std::time::Duration;
use support::{wait_event, wait_logged_in, wait_state};
use tokio::sync::mpsc;

async fn sim(cfg: SimConfig) -> SimHandle {
    rcsim::start(cfg, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("rcsim starts")
}

fn config(sim: &SimHandle, username: &str, password: &str) -> ClientConfig {
    let creds = Credentials::Password {
        username: username.into(),
        password: password.into(),
    };
    let mut cfg = ClientConfig::new(sim.http_url(), creds);
    cfg.method_timeout = Duration::from_secs(5);
    cfg.backoff = BackoffPolicy {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(200),
        multiplier: 2.0,
        jitter: 0.1,
    };
    cfg
}

async fn login(
    sim: &SimHandle,
    user: &str,
    pw: &str,
) -> (Client, mpsc::Receiver<ClientEvent>, SessionInfo) {
    let (client, mut events) = Client::spawn(config(sim, user, pw));
    let info = wait_logged_in(&mut events).await;
    (client, events, info)
}

#[tokio::test]
async fn seven_x_with_otr_relays_and_rooms_resolve() {
    let sim = sim(SimConfig::demo()).await;
    let (client, mut events, info) = login(&sim, "me", "demo").await;
    assert_eq!(info.username, "me");
    assert_eq!(Some(info.user_id.clone()), sim.user_id("me"));
    assert_eq!(info.server.version, "7.10.0");
    assert_eq!(info.server.otr_enable, Some(true));
    assert!(info.server.otr_relay, "{:?}", info.server.reason);

    let echo_id = sim.user_id("echo").expect("echo exists");
    let rooms = client.list_direct_rooms().await.expect("rooms");
    assert_eq!(rooms.len(), 1);
    assert_eq!(rooms[0].peer_of(&info.user_id), Some(echo_id.as_str()));
    let opened = client.open_direct_room("echo").await.expect("open dm");
    assert_eq!(opened.room_id, rooms[0].room_id);
    assert!(matches!(
        client.open_direct_room("nobody").await,
        Err(RcError::Method { .. })
    ));

    let echo = client.user_by_username("echo").await.expect("users.info");
    assert_eq!(echo.user_id, echo_id);
    assert_eq!(
        client.user_by_id(&echo_id).await.expect("by id").username,
        "echo"
    );

    // echo has no connection: offline (missing from users.presence).
    let p = client
        .presence(std::slice::from_ref(&echo_id))
        .await
        .expect("presence");
    assert_eq!(p.get(&echo_id), Some(&Presence::Offline));
    sim.set_presence("echo", Status::Away)
        .expect("set presence");
    let p = client
        .presence(std::slice::from_ref(&echo_id))
        .await
        .expect("presence");
    assert_eq!(p.get(&echo_id), Some(&Presence::Away));

    client
        .follow_presence(std::slice::from_ref(&echo_id))
        .await
        .expect("follow presence");
    sim.set_presence("echo", Status::Busy)
        .expect("set presence");
    let ev = wait_event(&mut events, "presence event", |e| match e {
        ClientEvent::Stream {
            collection,
            event_name,
            args,
        } if collection == "stream-user-presence" => {
            parse_presence_event(event_name, args) == Some((echo_id.clone(), Presence::Busy))
        }
        _ => false,
    })
    .await;
    assert!(matches!(ev, ClientEvent::Stream { .. }));

    let body = client.rest_get("me", &[]).await.expect("rest get");
    assert_eq!(body["username"], "me");
    client.shutdown().await;
}

#[tokio::test]
async fn eight_x_says_otr_was_removed() {
    let sim = sim(SimConfig {
        mode: Mode::V8,
        ..SimConfig::demo()
    })
    .await;
    let (client, _events, info) = login(&sim, "me", "demo").await;
    assert!(!info.server.otr_relay);
    assert_eq!(info.server.major, Some(8));
    assert_eq!(info.server.otr_enable, None);
    assert_eq!(
        info.server.reason.as_deref(),
        Some("this server runs Rocket.Chat 8.0.0, which removed OTR")
    );
    client.shutdown().await;
}

#[tokio::test]
async fn otr_disabled_is_explained() {
    let sim = sim(SimConfig {
        otr_enable: false,
        ..SimConfig::demo()
    })
    .await;
    let (client, _events, info) = login(&sim, "me", "demo").await;
    assert!(!info.server.otr_relay);
    assert_eq!(
        info.server.reason.as_deref(),
        Some("the administrator disabled OTR on this server (OTR_Enable is off)")
    );
    // The stock relay's user stream is refused accordingly.
    let refused = client
        .subscribe(
            "stream-notify-user",
            vec![json!(format!("{}/otr", info.user_id)), json!(false)],
        )
        .await;
    assert!(matches!(refused, Err(RcError::NoSub { .. })), "{refused:?}");
    client.shutdown().await;
}

#[tokio::test]
async fn bad_password_is_auth_failed_without_a_retry_storm() {
    let sim = sim(SimConfig::demo()).await;
    let (client, mut events) = Client::spawn(config(&sim, "me", "wrong"));
    let detail = wait_state(&mut events, ConnectionState::AuthFailed).await;
    assert!(detail.contains("Incorrect password"), "{detail}");
    assert!(
        !detail.contains("wrong"),
        "the password is never in a message: {detail}"
    );
    assert!(matches!(
        client.call("rooms/get", vec![]).await,
        Err(RcError::AuthFailed(_))
    ));
    // Asserting an absence needs a window: with a 20 ms backoff a storm would be obvious.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let audit = sim.audit();
    let count = |needle: &str| {
        audit
            .client
            .iter()
            .filter(|r| r.data.contains(needle))
            .count()
    };
    // One REST login (the password goes there first), no DDP password login after it.
    assert_eq!(count("POST /api/v1/login"), 1);
    assert_eq!(count(r#""method":"login""#), 0);
    client.shutdown().await;
}

#[tokio::test]
async fn reconnects_after_drop_with_subscriptions_restored() {
    let sim = sim(SimConfig::demo()).await;
    let (me, mut events, info) = login(&sim, "me", "demo").await;
    let (echo, _echo_events, echo_info) = login(&sim, "echo", "echo").await;
    let stream = format!("{}/otr", info.user_id);
    me.subscribe(
        "stream-notify-user",
        vec![json!(stream), json!({"useCollection": false, "args": []})],
    )
    .await
    .expect("subscribe");

    assert!(sim.drop_all_connections() >= 2);
    wait_state(&mut events, ConnectionState::Reconnecting).await;
    let again = wait_logged_in(&mut events).await;
    assert_eq!(again.user_id, info.user_id);
    assert_eq!(me.stats().logins, 2);

    // echo reconnects too; its event reaches me only through the restored subscription.
    let rid = me.open_direct_room("echo").await.expect("dm").room_id;
    let payload = json!({"roomId": rid, "userId": echo_info.user_id});
    echo.call(
        "stream-notify-user",
        vec![json!(stream), json!("end"), payload],
    )
    .await
    .expect("notify");
    let ev = wait_event(
        &mut events,
        "the end event",
        |e| matches!(e, ClientEvent::Stream { event_name, .. } if *event_name == stream),
    )
    .await;
    let ClientEvent::Stream { args, .. } = ev else {
        unreachable!()
    };
    assert_eq!(args[0], "end");
    // The reconnect logged in with the resume token, not the password again.
    let resumes = sim
        .audit()
        .client
        .iter()
        .filter(|r| r.data.contains(r#""resume""#))
        .count();
    assert!(resumes >= 1);
    me.shutdown().await;
    echo.shutdown().await;
}

#[tokio::test]
async fn rate_limited_calls_are_retried() {
    let mut cfg = SimConfig::demo();
    cfg.rate_limits.stream_per_connection = Limit {
        count: 1,
        window_ms: 300,
    };
    let sim = sim(cfg).await;
    let (me, _events, info) = login(&sim, "me", "demo").await;
    let echo_id = sim.user_id("echo").expect("echo");
    let payload = json!({"roomId": "r", "userId": info.user_id});
    let target = json!(format!("{echo_id}/otr"));
    for _ in 0..3 {
        me.call(
            "stream-notify-user",
            vec![target.clone(), json!("end"), payload.clone()],
        )
        .await
        .expect("retried until the window reset");
    }
    let calls = sim
        .audit()
        .client
        .iter()
        .filter(|r| r.data.contains("stream-notify-user"))
        .count();
    assert!(calls > 3, "some calls were refused and resent: {calls}");
    me.shutdown().await;
}

#[tokio::test]
async fn an_oversized_event_costs_one_reconnect() {
    let sim = sim(SimConfig::demo()).await;
    let mut cfg = config(&sim, "me", "demo");
    cfg.max_frame_bytes = 4096;
    let (me, mut events) = Client::spawn(cfg);
    let info = wait_logged_in(&mut events).await;
    let (echo, _e, _) = login(&sim, "echo", "echo").await;
    let stream = format!("{}/otr", info.user_id);
    me.subscribe("stream-notify-user", vec![json!(stream), json!(false)])
        .await
        .expect("sub");
    let big = json!({"roomId": "r", "userId": "x", "publicKey": "k".repeat(10_000)});
    echo.call(
        "stream-notify-user",
        vec![json!(stream), json!("handshake"), big],
    )
    .await
    .expect("send");
    let detail = wait_state(&mut events, ConnectionState::Reconnecting).await;
    assert!(detail.contains("larger than allowed"), "{detail}");
    wait_logged_in(&mut events).await;
    assert_eq!(me.stats().oversized_frames, 1);
    // Still usable, subscription included.
    let small = json!({"roomId": "r", "userId": "x"});
    echo.call(
        "stream-notify-user",
        vec![json!(stream), json!("end"), small],
    )
    .await
    .expect("send");
    wait_event(
        &mut events,
        "the small event",
        |e| matches!(e, ClientEvent::Stream { args, .. } if args.first() == Some(&json!("end"))),
    )
    .await;
    me.shutdown().await;
    echo.shutdown().await;
}

/// A code handed in through the client: what front-ends' SubmitLoginCode reaches. The attacker's
/// side first: no code asked for, junk and oversized codes, a refused code handed in again — all
/// answered without a server attempt; then the right code logs in.
#[tokio::test]
async fn two_factor_codes_are_checked_before_any_attempt_and_a_refused_one_is_never_resent() {
    let secret = "me-totp-secret";
    let mut cfg = SimConfig::demo();
    cfg.users[0].totp_secret = Some(rcsim::Credential::new(secret));
    let sim = sim(cfg).await;
    let (client, mut events) = Client::spawn(config(&sim, "me", "demo"));
    let rest_logins = || {
        sim.audit()
            .client
            .iter()
            .filter(|r| r.data.starts_with("POST /api/v1/login"))
            .count()
    };
    let detail = wait_state(&mut events, ConnectionState::TwoFactorRequired).await;
    assert!(
        detail.starts_with("two-factor code required (totp)"),
        "{detail}"
    );
    let (method, _) = client.code_wanted().expect("a code is wanted");
    assert_eq!(method.as_str(), "totp");
    assert_eq!(rest_logins(), 1, "one code-less attempt");
    for junk in ["", "   ", &"9".repeat(65)] {
        let e = client.submit_code(junk.into()).await;
        assert_eq!(e, Err("that is not a code".into()), "{junk:?}");
    }
    let now = rcsim::config::totp::now_secs();
    let window: Vec<String> = [now - 30, now, now + 30]
        .iter()
        .map(|t| rcsim::config::totp::code_at(secret.as_bytes(), *t))
        .collect();
    let wrong = ["111111", "222222", "333333"]
        .into_iter()
        .find(|c| !window.iter().any(|w| w == c))
        .expect("a wrong code");
    let e = client.submit_code(wrong.into()).await.expect_err("refused");
    assert!(e.contains("totp-invalid"), "{e}");
    assert_eq!(rest_logins(), 2);
    let e = client
        .submit_code(format!(" {wrong}\n").as_str().into())
        .await
        .expect_err("refused again");
    assert!(e.contains("already refused"), "{e}");
    assert_eq!(rest_logins(), 2, "a refused code is never sent again");
    let good = rcsim::config::totp::code_now(secret.as_bytes());
    assert_eq!(
        client.submit_code(good.as_str().into()).await,
        Ok("logged in".into())
    );
    let info = wait_logged_in(&mut events).await;
    assert_eq!(
        info.login.describe(),
        "password (REST login, then DDP resume); two-factor totp"
    );
    assert!(client.code_wanted().is_none());
    assert_eq!(
        client.submit_code(good.as_str().into()).await,
        Err("no two-factor code is asked for right now".into())
    );
    client.shutdown().await;
}
