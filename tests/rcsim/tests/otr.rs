//! 7.x OTR relays: `<uid>/otr` user stream rules, `sendMessage` `t:"otr"` (not stored), and
//! `updateOTRAck` (strict check, re-emit shapes).
mod common;

use common::*;
use rcsim::{AckShape, Mode, SimConfig};
use serde_json::{json, Value};

fn otr_message() -> Value {
    json!({"_id":"hRfXbqWcTPQ6JkYzN","rid":DM,"msg":"{\"$binary\":\"AAECAw==\"}","t":"otr"})
}

#[tokio::test]
async fn notify_user_otr_relay_excludes_caller_and_checks_reader() {
    let sim = sim(SimConfig::demo()).await;
    let mut me = Ddp::login_as(&sim.ws_url(), "me", "demo").await;
    let mut echo = Ddp::login_as(&sim.ws_url(), "echo", "echo").await;
    echo.sub_ok("stream-notify-user", &format!("{ECHO}/otr"))
        .await;
    let refused = me
        .sub("stream-notify-user", json!([format!("{ECHO}/otr"), false]))
        .await;
    assert_eq!(refused["msg"], "nosub");
    assert_eq!(refused["error"]["error"], "not-allowed");

    let payload = json!({"roomId": DM, "userId": ME, "publicKey": "{\"kty\":\"EC\"}"});
    let r = me
        .call(
            "stream-notify-user",
            json!([format!("{ECHO}/otr"), "handshake", payload]),
        )
        .await;
    assert!(
        r.get("result").is_none() && r.get("error").is_none(),
        "empty result expected: {r}"
    );
    let ev = echo
        .event("stream-notify-user", &format!("{ECHO}/otr"))
        .await;
    assert_eq!(ev["id"], "id");
    assert_eq!(ev["fields"]["args"], json!(["handshake", payload]));

    // A second connection of echo writing to echo's own stream: the caller is skipped.
    let mut echo2 = Ddp::login_as(&sim.ws_url(), "echo", "echo").await;
    echo2
        .sub_ok("stream-notify-user", &format!("{ECHO}/otr"))
        .await;
    echo2
        .call(
            "stream-notify-user",
            json!([format!("{ECHO}/otr"), "end", {"roomId": DM, "userId": ECHO}]),
        )
        .await;
    let ev = echo
        .event("stream-notify-user", &format!("{ECHO}/otr"))
        .await;
    assert_eq!(ev["fields"]["args"][0], "end");
    // Barrier: a later event from `me` reaches echo2; the self-sent `end` must not precede it.
    me.call(
        "stream-notify-user",
        json!([format!("{ECHO}/otr"), "deny", {"roomId": DM, "userId": ME}]),
    )
    .await;
    let first = echo2
        .event("stream-notify-user", &format!("{ECHO}/otr"))
        .await;
    assert_eq!(first["fields"]["args"][0], "deny");
}

#[tokio::test]
async fn otr_disabled_refuses_subscription_and_handshake() {
    let sim = sim(demo_with(|c| c.otr_enable = false)).await;
    let mut me = Ddp::login_as(&sim.ws_url(), "me", "demo").await;
    let r = me
        .sub(
            "stream-notify-user",
            json!([format!("{ME}/otr"), {"useCollection": false, "args": []}]),
        )
        .await;
    assert_eq!(r["msg"], "nosub");
    assert_eq!(r["error"]["error"], "not-allowed");
    let (_, s) = http(
        sim.addr(),
        "GET",
        "/api/v1/settings.public?_id=OTR_Enable",
        None,
        None,
    )
    .await;
    assert_eq!(s["settings"][0]["value"], false);
}

#[tokio::test]
async fn otr_send_message_is_relayed_not_stored_on_7x() {
    let sim = sim(SimConfig::demo()).await;
    let mut me = Ddp::login_as(&sim.ws_url(), "me", "demo").await;
    let mut echo = Ddp::login_as(&sim.ws_url(), "echo", "echo").await;
    me.sub_ok("stream-room-messages", DM).await;
    echo.sub_ok("stream-room-messages", DM).await;
    let r = me.call("sendMessage", json!([otr_message()])).await;
    let m = &r["result"];
    assert_eq!(m["_id"], "hRfXbqWcTPQ6JkYzN");
    assert_eq!(m["t"], "otr");
    assert!(m["ts"]["$date"].is_i64());
    assert_eq!(m["u"], json!({"_id": ME, "username": "me", "name": "Me"}));
    for c in [&mut me, &mut echo] {
        let ev = c.event("stream-room-messages", DM).await;
        let args = ev["fields"]["args"].as_array().expect("args").clone();
        assert_eq!(args.len(), 3);
        assert_eq!(&args[0], m);
        assert_eq!(args[1]["type"], "user");
        assert_eq!(args[2]["uids"], json!([ME, ECHO]));
    }
    let audit = sim.audit();
    assert!(audit.stored_messages().is_empty());
    assert!(audit.contains("AAECAw=="), "client bytes are audited");

    // Oversized: result without `result`, ephemeral error on <uid>/message.
    me.sub_ok("stream-notify-user", &format!("{ME}/message"))
        .await;
    let big = json!({"_id":"big","rid":DM,"msg":"x".repeat(5001),"t":"otr"});
    let r = me.call("sendMessage", json!([big])).await;
    assert!(r.get("result").is_none() && r.get("error").is_none(), "{r}");
    let eph = me
        .event("stream-notify-user", &format!("{ME}/message"))
        .await;
    assert_eq!(
        eph["fields"]["args"][0]["msg"],
        "error-message-size-exceeded"
    );
}

#[tokio::test]
async fn otr_send_message_is_stored_on_8x() {
    let sim = sim(demo_with(|c| c.mode = Mode::V8)).await;
    let mut me = Ddp::login_as(&sim.ws_url(), "me", "demo").await;
    me.sub_ok("stream-room-messages", DM).await;
    me.call("sendMessage", json!([otr_message()])).await;
    let ev = me.event("stream-room-messages", DM).await;
    assert_eq!(ev["fields"]["args"].as_array().map(Vec::len), Some(1));
    let stored = sim.audit().stored_messages();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["_id"], "hRfXbqWcTPQ6JkYzN");
    let r = me.call("updateOTRAck", json!([{}])).await;
    assert_eq!(r["error"]["error"], 404);
    assert_eq!(r["error"]["reason"], "Method 'updateOTRAck' not found");
}

async fn ack_flow(shape: AckShape) -> Value {
    let sim = sim(demo_with(|c| c.ack_shape = shape)).await;
    let mut me = Ddp::login_as(&sim.ws_url(), "me", "demo").await;
    let mut echo = Ddp::login_as(&sim.ws_url(), "echo", "echo").await;
    me.sub_ok("stream-room-messages", DM).await;
    let sent = me.call("sendMessage", json!([otr_message()])).await["result"].clone();
    me.event("stream-room-messages", DM).await;

    let mut extra = sent.clone();
    extra["otrAck"] = json!("x");
    let r = echo
        .call("updateOTRAck", json!([{"message": extra, "ack": "A"}]))
        .await;
    assert_eq!(r["error"]["reason"], "Match failed");
    assert_eq!(r["error"]["error"], 400);

    let r = echo
        .call(
            "updateOTRAck",
            json!([{"message": sent, "ack": "{\"$binary\":\"CwoJ\"}"}]),
        )
        .await;
    assert!(r.get("error").is_none(), "{r}");
    let ev = me.event("stream-room-messages", DM).await;
    let args = ev["fields"]["args"].as_array().expect("args").clone();
    assert_eq!(args.len(), 1);
    args[0].clone()
}

#[tokio::test]
async fn update_otr_ack_strict_check_and_otr_ack_shape() {
    let m = ack_flow(AckShape::OtrAck).await;
    assert_eq!(m["otrAck"], "{\"$binary\":\"CwoJ\"}");
    assert_eq!(m["_id"], "hRfXbqWcTPQ6JkYzN");
}

#[tokio::test]
async fn update_otr_ack_era_c_shape() {
    let m = ack_flow(AckShape::OtrDotAck).await;
    assert_eq!(m["otr"]["ack"], "{\"$binary\":\"CwoJ\"}");
    assert!(m.get("otrAck").is_none());
}
