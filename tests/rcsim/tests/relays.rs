//! 8.x behaviour and the realtime relays of §12: dropped user-stream writes, path A
//! (`user-activity`), path B (`notify-room-users` fan-out), and the stream rate limits.
mod common;

use common::*;
use rcsim::{Limit, Mode};
use serde_json::json;

#[tokio::test]
async fn v8_drops_otr_writes_with_empty_result() {
    let sim = sim(demo_with(|c| c.mode = Mode::V8)).await;
    let mut me = Ddp::login_as(&sim.ws_url(), "me", "demo").await;
    let mut echo = Ddp::login_as(&sim.ws_url(), "echo", "echo").await;
    // 8.x still lets a user read its own `<uid>/otr` (§3.3); it is the writes that vanish.
    echo.sub_ok("stream-notify-user", &format!("{ECHO}/otr"))
        .await;
    echo.sub_ok(
        "stream-notify-user",
        &format!("{ECHO}/subscriptions-changed"),
    )
    .await;
    echo.sub_ok("stream-notify-user", &format!("{ECHO}/video-conference"))
        .await;

    let r = me
        .call(
            "stream-notify-user",
            json!([format!("{ECHO}/otr"), "handshake", {"roomId": DM}]),
        )
        .await;
    assert!(r.get("result").is_none() && r.get("error").is_none(), "{r}");
    let r = me
        .call(
            "stream-notify-user",
            json!([format!("{ECHO}/subscriptions-changed"), "x"]),
        )
        .await;
    assert!(r.get("result").is_none() && r.get("error").is_none(), "{r}");
    // Barrier: a path-B event sent afterwards arrives; nothing dropped may precede it.
    me.call(
        "stream-notify-room-users",
        json!([format!("{DM}/video-conference"), {"action": "otrd", "params": {}}]),
    )
    .await;
    echo.event("stream-notify-user", &format!("{ECHO}/video-conference"))
        .await;
    assert!(
        echo.seen(|f| f["msg"] == "changed").is_empty(),
        "dropped writes were relayed"
    );

    let (_, s) = http(
        sim.addr(),
        "GET",
        "/api/v1/settings.public?_id=OTR_Enable",
        None,
        None,
    )
    .await;
    assert_eq!(
        s,
        json!({"settings": [], "count": 0, "offset": 0, "total": 0, "success": true})
    );
    let (_, info) = http(sim.addr(), "GET", "/api/info", None, None).await;
    assert_eq!(info["version"], "8.0.0");
}

#[tokio::test]
async fn path_a_user_activity_rules() {
    for mode in [Mode::V7, Mode::V8] {
        let sim = sim(demo_with(|c| c.mode = mode)).await;
        let mut me = Ddp::login_as(&sim.ws_url(), "me", "demo").await;
        let mut echo = Ddp::login_as(&sim.ws_url(), "echo", "echo").await;
        let event = format!("{DM}/user-activity");
        echo.sub_ok("stream-notify-room", &event).await;
        me.sub_ok("stream-notify-room", &event).await;

        // Wrong name: dropped silently.
        let r = me
            .call(
                "stream-notify-room",
                json!([event, "echo", [], {"otrd": "spoof"}]),
            )
            .await;
        assert!(r.get("error").is_none());
        let envelope = json!({"otrd": {"v": 1, "n": mode == Mode::V8}});
        me.call("stream-notify-room", json!([event, "me", [], envelope]))
            .await;
        let ev = echo.event("stream-notify-room", &event).await;
        assert_eq!(
            ev["fields"]["args"],
            json!(["me", [], envelope]),
            "first event must be the valid one"
        );
        assert!(
            me.seen(|f| f["msg"] == "changed").is_empty(),
            "caller must not get its own event"
        );
    }
}

#[tokio::test]
async fn path_a_real_name_and_non_member() {
    let sim = sim(demo_with(|c| c.ui_use_real_name = true)).await;
    sim.add_user(rcsim::UserConfig::new("Outsider00000001d", "out", "out"))
        .expect("user");
    let mut me = Ddp::login_as(&sim.ws_url(), "me", "demo").await;
    let mut out = Ddp::login_as(&sim.ws_url(), "out", "out").await;
    let mut echo = Ddp::login_as(&sim.ws_url(), "echo", "echo").await;
    let event = format!("{DM}/user-activity");
    let r = out.sub("stream-notify-room", json!([event, false])).await;
    assert_eq!(r["msg"], "nosub");
    echo.sub_ok("stream-notify-room", &event).await;
    out.call("stream-notify-room", json!([event, "out", []]))
        .await;
    me.call("stream-notify-room", json!([event, "me", [], {"n": 1}]))
        .await;
    me.call("stream-notify-room", json!([event, "Me", [], {"n": 2}]))
        .await;
    let ev = echo.event("stream-notify-room", &event).await;
    assert_eq!(ev["fields"]["args"], json!(["Me", [], {"n": 2}]));
}

#[tokio::test]
async fn path_b_fans_out_to_other_members_only() {
    let sim = sim(demo_with(|c| c.mode = Mode::V8)).await;
    let mut me = Ddp::login_as(&sim.ws_url(), "me", "demo").await;
    let mut echo = Ddp::login_as(&sim.ws_url(), "echo", "echo").await;
    me.sub_ok("stream-notify-user", &format!("{ME}/video-conference"))
        .await;
    echo.sub_ok("stream-notify-user", &format!("{ECHO}/video-conference"))
        .await;
    echo.sub_ok("stream-notify-user", &format!("{ECHO}/otr-relay"))
        .await;
    let r = echo
        .sub(
            "stream-notify-room-users",
            json!([format!("{DM}/video-conference"), false]),
        )
        .await;
    assert_eq!(r["msg"], "nosub");

    // Not on the allowlist: refused.
    me.call(
        "stream-notify-room-users",
        json!([format!("{DM}/otr-relay"), {"x": 1}]),
    )
    .await;
    let payload = json!({"action": "otrd", "params": {}, "otrd": {"frame": "abc"}});
    let r = me
        .call(
            "stream-notify-room-users",
            json!([format!("{DM}/video-conference"), payload]),
        )
        .await;
    assert!(r.get("result").is_none() && r.get("error").is_none());
    let ev = echo
        .event("stream-notify-user", &format!("{ECHO}/video-conference"))
        .await;
    assert_eq!(ev["fields"]["args"], json!([payload]));
    assert!(
        echo.seen(|f| f["msg"] == "changed").is_empty(),
        "non-allowlisted event leaked"
    );
    assert!(
        me.seen(|f| f["msg"] == "changed").is_empty(),
        "sender must not be notified"
    );
}

#[tokio::test]
async fn stream_rate_limit_trips_with_too_many_requests() {
    let sim = sim(demo_with(|c| {
        c.rate_limits.stream_per_connection = Limit {
            count: 3,
            window_ms: 60_000,
        };
    }))
    .await;
    let mut me = Ddp::login_as(&sim.ws_url(), "me", "demo").await;
    let event = format!("{DM}/user-activity");
    for _ in 0..3 {
        let r = me
            .call("stream-notify-room", json!([event, "me", []]))
            .await;
        assert!(r.get("error").is_none(), "{r}");
    }
    let r = me
        .call("stream-notify-room", json!([event, "me", []]))
        .await;
    assert_eq!(r["error"]["error"], "too-many-requests");
    let left = r["error"]["details"]["timeToReset"]
        .as_u64()
        .expect("timeToReset");
    assert!(left > 0 && left <= 60_000);
    // The refusal is on record, as the real server logs it with the user id.
    let refused = rcsim::ratelimit::fetch_refused(&sim.http_url())
        .await
        .expect("GET /_sim/rate_limited");
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].method, "stream-notify-room");
    assert!(refused[0].user.is_some());
    // Other methods keep their own budget; switching limits off lets the call through.
    let r = me
        .call(
            "stream-notify-room-users",
            json!([format!("{DM}/video-conference"), {}]),
        )
        .await;
    assert!(r.get("error").is_none());
    sim.set_rate_limits(false);
    let r = me
        .call("stream-notify-room", json!([event, "me", []]))
        .await;
    assert!(r.get("error").is_none());
}

#[tokio::test]
async fn send_message_rate_limit() {
    // Default is 5 per 1 s; a long window makes the sixth call's refusal deterministic.
    let sim = sim(demo_with(|c| {
        c.rate_limits.send_message_per_user = Limit {
            count: 5,
            window_ms: 60_000,
        };
    }))
    .await;
    let mut me = Ddp::login_as(&sim.ws_url(), "me", "demo").await;
    for i in 0..5 {
        let r = me
            .call("sendMessage", json!([{"rid": DM, "msg": format!("m{i}")}]))
            .await;
        assert!(r["result"]["_id"].is_string(), "{r}");
    }
    let r = me
        .call("sendMessage", json!([{"rid": DM, "msg": "m6"}]))
        .await;
    assert_eq!(r["error"]["error"], "too-many-requests");
    assert_eq!(sim.audit().stored_messages().len(), 5);
}
