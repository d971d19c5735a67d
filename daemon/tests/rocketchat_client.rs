//! The Rocket.Chat client's connection behaviour against a minimal scripted DDP server:
//! login, heartbeats both ways, malformed and oversized frames, reconnect with resume and
//! re-subscription, refused logins, rate-limited calls.

mod support;

use otrd::engine::ConnectionState;
use otrd::rocketchat::{
    BackoffPolicy, Client, ClientConfig, ClientEvent, Credentials, HeartbeatPolicy, RcError,
};

use serde_json::json;
use std::time::Duration;
use support::mini_ddp::{Control, MiniServer, PASSWORD, USER_ID};
use support::{wait_event, wait_logged_in, wait_state};

fn config(url: &str, password: &str) -> ClientConfig {
    let mut cfg = ClientConfig::new(
        url,
        Credentials::Password {
            username: "alice-bot".into(),
            password: password.into(),
        },
    );
    cfg.method_timeout = Duration::from_secs(5);
    cfg.backoff = BackoffPolicy {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(200),
        multiplier: 2.0,
        jitter: 0.1,
    };
    cfg
}

#[tokio::test]
async fn logs_in_answers_pings_and_survives_malformed_frames() {
    let server = MiniServer::start().await;
    let (client, mut events) = Client::spawn(config(&server.url, PASSWORD));
    wait_state(&mut events, ConnectionState::Connecting).await;
    let info = wait_logged_in(&mut events).await;
    assert_eq!(info.user_id, USER_ID);
    assert_eq!(info.username, "alice-bot");
    // No REST here: the probe reports that it could not tell, and OTR relay is off.
    assert!(!info.server.otr_relay);
    assert!(info.server.reason.is_some());
    assert_eq!(
        client.session().map(|s| s.user_id),
        Some(USER_ID.to_owned())
    );

    let got = client
        .call("echo", vec![json!({"a": 1})])
        .await
        .expect("echo");
    assert_eq!(got, Some(json!({"a": 1})));
    assert_eq!(client.call("void", vec![]).await.expect("void"), None);
    match client.call("nope", vec![]).await {
        Err(RcError::Method { method, error }) => {
            assert_eq!(method, "nope");
            assert_eq!(error.code(), "404");
        }
        other => panic!("expected a method error, got {other:?}"),
    }

    server.send(Control::Raw(r#"{"msg":"ping","id":"p-7"}"#.into()));
    server
        .wait_for("a pong echoing p-7", |l| {
            l.pongs.contains(&Some("p-7".into()))
        })
        .await;
    server.send(Control::Raw(r#"{"msg":"ping"}"#.into()));
    server
        .wait_for("a pong without id", |l| l.pongs.contains(&None))
        .await;

    for junk in [
        "not json",
        "[1,2,3]",
        r#"{"msg":"result"}"#,
        r#"{"msg":"ready","subs":7}"#,
    ] {
        server.send(Control::Raw(junk.into()));
    }
    server.send(Control::Binary(vec![0xff, 0x00]));
    let got = client
        .call("echo", vec![json!("still here")])
        .await
        .expect("echo after junk");
    assert_eq!(got, Some(json!("still here")));
    assert_eq!(client.stats().malformed_frames, 5);
    assert_eq!(
        server.log().connections,
        1,
        "junk must not cost the connection"
    );

    let ids = server.log().method_ids;
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "method ids are unique");
    client.shutdown().await;
    wait_state(&mut events, ConnectionState::Disconnected).await;
    assert!(matches!(
        client.call("echo", vec![]).await,
        Err(RcError::Shutdown)
    ));
}

#[tokio::test]
async fn reconnects_with_resume_and_restores_subscriptions() {
    let server = MiniServer::start().await;
    let (client, mut events) = Client::spawn(config(&server.url, PASSWORD));
    wait_logged_in(&mut events).await;
    let sub = client
        .subscribe(
            "stream-notify-user",
            vec![json!(format!("{USER_ID}/otr")), json!(false)],
        )
        .await
        .expect("subscribe");

    // A call in flight when the link drops fails with NotConnected.
    let c2 = client.clone();
    let hanging = tokio::spawn(async move { c2.call("hang", vec![]).await });
    server
        .wait_for("the hanging call", |l| l.method_ids.len() >= 2)
        .await;
    server.send(Control::Drop);
    assert!(matches!(
        hanging.await.expect("join"),
        Err(RcError::NotConnected)
    ));

    wait_state(&mut events, ConnectionState::Reconnecting).await;
    wait_logged_in(&mut events).await;
    let log = server.log();
    assert_eq!(log.logins, vec!["password", "resume"]);
    assert!(
        log.subs.contains(&(2, "stream-notify-user".into())),
        "re-subscribed: {log:?}"
    );

    // Events flow on the restored subscription.
    server.send(Control::Raw(
        json!({"msg":"changed","collection":"stream-notify-user","id":"id",
               "fields":{"eventName":format!("{USER_ID}/otr"),"args":["end",{"roomId":"r","userId":"B"}]}})
        .to_string(),
    ));
    let ev = wait_event(&mut events, "stream event", |e| {
        matches!(e, ClientEvent::Stream { .. })
    })
    .await;
    let ClientEvent::Stream {
        collection,
        event_name,
        args,
    } = ev
    else {
        unreachable!()
    };
    assert_eq!(collection, "stream-notify-user");
    assert_eq!(event_name, format!("{USER_ID}/otr"));
    assert_eq!(args[0], "end");

    // The server ending a ready subscription is reported.
    server.send(Control::Raw(json!({"msg":"nosub","id":sub.0}).to_string()));
    let ev = wait_event(&mut events, "subscription lost", |e| {
        matches!(e, ClientEvent::SubscriptionLost { .. })
    })
    .await;
    let ClientEvent::SubscriptionLost { id, name, .. } = ev else {
        unreachable!()
    };
    assert_eq!((id, name.as_str()), (sub, "stream-notify-user"));

    match client.subscribe("forbidden", vec![]).await {
        Err(RcError::NoSub { name, error }) => {
            assert_eq!(name, "forbidden");
            assert!(error.contains("not-allowed"), "{error}");
        }
        other => panic!("expected NoSub, got {other:?}"),
    }
    // After another reconnect, neither the lost nor the refused subscription comes back.
    server.send(Control::Drop);
    wait_state(&mut events, ConnectionState::Reconnecting).await;
    wait_logged_in(&mut events).await;
    let subs_on_3 = server.log().subs.iter().filter(|(c, _)| *c == 3).count();
    assert_eq!(subs_on_3, 0);
    client.shutdown().await;
}

#[tokio::test]
async fn bad_password_stops_retrying() {
    let server = MiniServer::start().await;
    let (client, mut events) = Client::spawn(config(&server.url, "wrong"));
    let detail = wait_state(&mut events, ConnectionState::AuthFailed).await;
    assert!(detail.contains("Incorrect password"), "{detail}");
    assert!(!detail.contains("wrong"));
    match client.call("echo", vec![]).await {
        Err(RcError::AuthFailed(why)) => assert!(why.contains("403")),
        other => panic!("expected AuthFailed, got {other:?}"),
    }
    // With a 20 ms backoff a retry storm would show up within this window; asserting an
    // absence needs some waiting.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let log = server.log();
    assert_eq!(log.logins, vec!["bad"]);
    assert_eq!(log.connections, 1);
    client.shutdown().await;
}

#[tokio::test]
async fn a_silent_server_is_detected_by_our_ping() {
    let server = MiniServer::start().await;
    let mut cfg = config(&server.url, PASSWORD);
    cfg.heartbeat = HeartbeatPolicy {
        idle: Duration::from_millis(150),
        timeout: Duration::from_millis(300),
    };
    let (client, mut events) = Client::spawn(cfg);
    wait_logged_in(&mut events).await;
    server
        .wait_for("our own ping", |l| l.client_pings >= 1)
        .await;
    server.send(Control::Freeze);
    let detail = wait_state(&mut events, ConnectionState::Reconnecting).await;
    assert!(detail.contains("stopped answering pings"), "{detail}");
    wait_logged_in(&mut events).await;
    assert_eq!(server.log().connections, 2);
    client.shutdown().await;
}

#[tokio::test]
async fn oversized_frames_are_refused_and_counted() {
    let server = MiniServer::start().await;
    let mut cfg = config(&server.url, PASSWORD);
    cfg.max_frame_bytes = 4096;
    let (client, mut events) = Client::spawn(cfg);
    wait_logged_in(&mut events).await;
    let big = json!({"msg":"changed","collection":"stream-x","id":"id","fields":{"eventName":"e","args":["x".repeat(10_000)]}});
    server.send(Control::Raw(big.to_string()));
    let detail = wait_state(&mut events, ConnectionState::Reconnecting).await;
    assert!(detail.contains("larger than allowed"), "{detail}");
    wait_logged_in(&mut events).await;
    assert_eq!(client.stats().oversized_frames, 1);
    let got = client
        .call("echo", vec![json!(1)])
        .await
        .expect("echo after reconnect");
    assert_eq!(got, Some(json!(1)));
    client.shutdown().await;
}

#[tokio::test]
async fn rate_limited_calls_are_retried_not_surfaced() {
    let server = MiniServer::start().await;
    let (client, mut events) = Client::spawn(config(&server.url, PASSWORD));
    wait_logged_in(&mut events).await;
    let got = client
        .call("limited", vec![])
        .await
        .expect("retried after timeToReset");
    assert_eq!(got, Some(json!("finally")));
    let calls = server.log().method_ids.len();
    assert_eq!(calls, 3, "login + limited + retry");
    client.shutdown().await;
}

#[tokio::test]
async fn a_bad_url_is_reported_not_retried() {
    let (client, mut events) = Client::spawn(config("ftp://example.com", PASSWORD));
    let detail = wait_state(&mut events, ConnectionState::Disconnected).await;
    assert!(detail.contains("not http(s)"), "{detail}");
    assert!(matches!(
        client.call("echo", vec![]).await,
        Err(RcError::AuthFailed(_))
    ));
}

#[tokio::test]
async fn relay_calls_are_refused_unsent_on_a_login_without_the_relay() {
    let server = MiniServer::start().await;
    let (client, mut events) = Client::spawn(config(&server.url, PASSWORD));
    let info = wait_logged_in(&mut events).await;
    // No REST here: the relay cannot be confirmed, so the login has none.
    assert!(!info.server.otr_relay);
    let before = server.log().method_ids.len();
    let message = json!({"_id": "m1", "rid": "R", "msg": "?OTR", "t": "otr"});
    match client.call_relay("sendMessage", vec![message]).await {
        Err(RcError::NoRelay { method }) => assert_eq!(method, "sendMessage"),
        other => panic!("expected NoRelay, got {other:?}"),
    }
    match client
        .rest_post_relay("/api/v1/chat.otr", json!({"roomId": "R", "type": "x"}))
        .await
    {
        Err(RcError::NoRelay { method }) => assert_eq!(method, "/api/v1/chat.otr"),
        other => panic!("expected NoRelay, got {other:?}"),
    }
    // An ordinary call still goes out, after the refused one: that one never reached the server.
    let echoed = client.call("echo", vec![json!(1)]).await.expect("echo");
    assert_eq!(echoed, Some(json!(1)));
    assert_eq!(server.log().method_ids.len(), before + 1);
}
