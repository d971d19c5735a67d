//! REST endpoints, DM creation notifications, chat.otr, audit, and the binary's admin API.
mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::*;
use rcsim::{Mode, SimConfig, UserConfig};
use serde_json::json;

#[tokio::test]
async fn rest_with_ddp_token_and_new_dm_notifications() {
    let sim = sim(SimConfig::demo()).await;
    sim.add_user(UserConfig::new("BobUser00000001e", "bob", "bob"))
        .expect("bob");
    let mut me = Ddp::connect(&sim.ws_url()).await;
    let token = me.login("me", "demo").await["result"]["token"]
        .as_str()
        .expect("token")
        .to_string();
    let mut bob = Ddp::login_as(&sim.ws_url(), "bob", "bob").await;
    bob.sub_ok(
        "stream-notify-user",
        "BobUser00000001e/subscriptions-changed",
    )
    .await;
    bob.sub_ok("stream-notify-user", "BobUser00000001e/rooms-changed")
        .await;
    let auth = Some((ME, token.as_str()));

    let (st, body) = http(sim.addr(), "GET", "/api/v1/im.list", None, None).await;
    assert_eq!(st, 401, "{body}");
    let (st, body) = http(sim.addr(), "GET", "/api/v1/im.list", auth, None).await;
    assert_eq!(st, 200);
    assert_eq!(body["ims"][0]["_id"], DM);
    let (_, body) = http(
        sim.addr(),
        "GET",
        &format!("/api/v1/rooms.info?roomId={DM}"),
        auth,
        None,
    )
    .await;
    assert_eq!(body["room"]["uids"], json!([ME, ECHO]));
    let (_, body) = http(
        sim.addr(),
        "GET",
        "/api/v1/users.info?username=echo",
        auth,
        None,
    )
    .await;
    assert_eq!(body["user"]["_id"], ECHO);
    let (_, body) = http(
        sim.addr(),
        "GET",
        &format!("/api/v1/users.presence?ids={ME},{ECHO}"),
        auth,
        None,
    )
    .await;
    assert_eq!(
        body["users"].as_array().map(Vec::len),
        Some(1),
        "only online users: {body}"
    );
    let (_, body) = http(sim.addr(), "GET", "/api/v1/subscriptions.get", auth, None).await;
    assert_eq!(body["update"][0]["name"], "echo");

    let (st, body) = http(
        sim.addr(),
        "POST",
        "/api/v1/im.create",
        auth,
        Some(json!({"username": "bob"})),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    let rid = body["room"]["_id"].as_str().expect("rid").to_string();
    let ev = bob
        .event(
            "stream-notify-user",
            "BobUser00000001e/subscriptions-changed",
        )
        .await;
    assert_eq!(ev["fields"]["args"][0], "inserted");
    assert_eq!(ev["fields"]["args"][1]["rid"], rid.as_str());
    let ev = bob
        .event("stream-notify-user", "BobUser00000001e/rooms-changed")
        .await;
    assert_eq!(ev["fields"]["args"][1]["_id"], rid.as_str());

    // DDP equivalents.
    let rooms = me.call("rooms/get", json!([])).await;
    assert_eq!(rooms["result"].as_array().map(Vec::len), Some(2));
    let delta = me.call("subscriptions/get", json!([{"$date": 0}])).await;
    assert_eq!(delta["result"]["update"].as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn chat_otr_stores_and_broadcasts_on_7x_only() {
    for mode in [Mode::V7, Mode::V8] {
        let sim = sim(demo_with(|c| c.mode = mode)).await;
        let mut me = Ddp::connect(&sim.ws_url()).await;
        let token = me.login("me", "demo").await["result"]["token"]
            .as_str()
            .expect("token")
            .to_string();
        me.sub_ok("stream-room-messages", DM).await;
        let body = json!({"roomId": DM, "type": "user_joined_otr"});
        let (st, reply) = http(
            sim.addr(),
            "POST",
            "/api/v1/chat.otr",
            Some((ME, &token)),
            Some(body),
        )
        .await;
        if mode == Mode::V8 {
            assert_eq!(st, 404);
            assert!(sim.audit().stored_messages().is_empty());
            continue;
        }
        assert_eq!((st, reply), (200, json!({"success": true})));
        let ev = me.event("stream-room-messages", DM).await;
        assert_eq!(ev["fields"]["args"][0]["t"], "user_joined_otr");
        assert_eq!(ev["fields"]["args"][0]["msg"], "me");
        assert_eq!(sim.audit().stored_messages()[0]["t"], "user_joined_otr");
        let bad = json!({"roomId": DM, "type": "nope"});
        let (st, _) = http(
            sim.addr(),
            "POST",
            "/api/v1/chat.otr",
            Some((ME, &token)),
            Some(bad),
        )
        .await;
        assert_eq!(st, 400);
        // deleteOldOTRMessages wipes the stored system message (the audit keeps its record).
        let r = me.call("deleteOldOTRMessages", json!([DM])).await;
        assert!(r.get("error").is_none());
        assert_eq!(sim.audit().stored_messages().len(), 1);
    }
}

#[tokio::test]
async fn audit_sees_client_bytes_and_http_bodies() {
    let sim = sim(SimConfig::demo()).await;
    let mut me = Ddp::login_as(&sim.ws_url(), "me", "demo").await;
    me.call(
        "stream-notify-user",
        json!([format!("{ECHO}/otr"), "end", {"marker": "unique-7b1f"}]),
    )
    .await;
    http(
        sim.addr(),
        "POST",
        "/api/v1/im.create",
        None,
        Some(json!({"username": "http-marker-42"})),
    )
    .await;
    let a = sim.audit();
    assert!(a.contains("unique-7b1f"));
    assert!(a.contains("http-marker-42"));
    assert!(!a.contains("never-sent-9c2e"));
    assert!(!a.sent_by(ME).is_empty());
}

#[test]
fn binary_prints_one_line_and_serves_admin_api() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rcsim"))
        .args(["--demo", "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn rcsim");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read line");
    let url = line
        .trim()
        .strip_prefix("rcsim listening on http://")
        .map(str::to_string);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let result = rt.block_on(async {
        let addr: std::net::SocketAddr = url.as_deref().expect("ready line").parse().expect("addr");
        let (_, info) = http(addr, "GET", "/api/info", None, None).await;
        assert_eq!(info["success"], true);
        let (st, _) = http(
            addr,
            "POST",
            "/_sim/faults",
            None,
            Some(json!({"delay_ms": 0, "duplicate": false})),
        )
        .await;
        assert_eq!(st, 200);
        let (st, _) = http(
            addr,
            "POST",
            "/_sim/refuse_logins",
            None,
            Some(json!({"refuse": false})),
        )
        .await;
        assert_eq!(st, 200);
        let (st, _) = http(
            addr,
            "POST",
            "/_sim/presence",
            None,
            Some(json!({"username": "echo", "status": "away"})),
        )
        .await;
        assert_eq!(st, 200);
        let (_, dropped) = http(addr, "POST", "/_sim/drop", None, None).await;
        assert_eq!(dropped["success"], true);
        let (_, audit) = http(addr, "GET", "/_sim/audit", None, None).await;
        audit["client"][0]["data"].as_str().map(str::to_string)
    });
    child.kill().expect("kill rcsim");
    let _ = child.wait();
    assert_eq!(result.as_deref(), Some("GET /api/info\n"));
}
