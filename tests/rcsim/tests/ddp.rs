//! DDP basics: connect, login (password, resume, PAT, refused), protocol errors, presence,
//! dropping connections.
mod common;

use common::*;
use rcsim::Credential;
use serde_json::json;

#[tokio::test]
async fn password_login_resume_and_bad_credentials() {
    let sim = sim(demo_with(|c| {
        c.users[0]
            .personal_access_tokens
            .push(Credential::new("pat-token-for-me"));
    }))
    .await;
    let mut c = Ddp::connect(&sim.ws_url()).await;
    let bad = c.login("me", "wrong").await;
    assert_eq!(bad["error"]["error"], 403);
    assert_eq!(bad["error"]["reason"], "Incorrect password");
    assert_eq!(bad["error"]["message"], "Incorrect password [403]");
    let unknown = c.login("nobody", "x").await;
    assert_eq!(unknown["error"]["reason"], "User not found");
    let ok = c.login("me", "demo").await;
    assert_eq!(ok["result"]["id"], ME);
    assert_eq!(ok["result"]["type"], "password");
    assert!(ok["result"]["tokenExpires"]["$date"].is_i64());
    let token = ok["result"]["token"].as_str().expect("token").to_string();

    let mut c2 = Ddp::connect(&sim.ws_url()).await;
    let r = c2.call("login", json!([{"resume": token}])).await;
    assert_eq!(r["result"]["id"], ME);
    assert_eq!(r["result"]["type"], "resume");
    let r = c2
        .call("login", json!([{"resume": "pat-token-for-me"}]))
        .await;
    assert_eq!(r["result"]["id"], ME);
    let r = c2.call("login", json!([{"resume": "nope"}])).await;
    assert_eq!(r["error"]["error"], 403);

    sim.refuse_logins(true);
    let r = c2.login("me", "demo").await;
    assert_eq!(r["error"]["reason"], "Login forbidden");
}

#[tokio::test]
async fn protocol_errors_keep_the_connection() {
    let sim = sim(SimConfig::demo()).await;
    let mut c = Ddp::connect(&sim.ws_url()).await;
    c.send_text("{not json".into()).await;
    let e = c.wait(|f| f["msg"] == "error").await;
    assert_eq!(e["reason"], "Parse error");
    c.send(json!({"msg":"ping","id":"p1"})).await;
    let p = c.wait(|f| f["msg"] == "pong").await;
    assert_eq!(p["id"], "p1");
    let r = c.call("noSuchMethod", json!([])).await;
    assert_eq!(r["error"]["error"], 404);
    assert_eq!(r["error"]["reason"], "Method 'noSuchMethod' not found");
    let n = c.sub("no-such-pub", json!([])).await;
    assert_eq!(n["msg"], "nosub");
}

use rcsim::SimConfig;

#[tokio::test]
async fn presence_follows_ddp_login_and_disconnect() {
    let sim = sim(SimConfig::demo()).await;
    let mut watcher = Ddp::login_as(&sim.ws_url(), "me", "demo").await;
    watcher.sub_ok("stream-notify-logged", "user-status").await;
    let r = watcher
        .sub(
            "stream-user-presence",
            json!(["", {"added": [ECHO], "removed": []}]),
        )
        .await;
    assert_eq!(r["msg"], "ready");

    let echo = Ddp::login_as(&sim.ws_url(), "echo", "echo").await;
    let online = watcher.event("stream-notify-logged", "user-status").await;
    assert_eq!(online["fields"]["args"][0][0], ECHO);
    assert_eq!(online["fields"]["args"][0][2], 1);
    let p = watcher
        .wait(|f| f["collection"] == "stream-user-presence")
        .await;
    assert_eq!(p["id"], ECHO);
    assert_eq!(p["fields"]["args"][0][1], 1);

    drop(echo);
    let offline = watcher.event("stream-notify-logged", "user-status").await;
    assert_eq!(offline["fields"]["args"][0][2], 0);

    sim.set_presence("echo", rcsim::Status::Busy)
        .expect("known user");
    let busy = watcher.event("stream-notify-logged", "user-status").await;
    assert_eq!(busy["fields"]["args"][0][2], 3);
}

#[tokio::test]
async fn drop_all_connections_closes_sockets() {
    let sim = sim(SimConfig::demo()).await;
    let mut a = Ddp::login_as(&sim.ws_url(), "me", "demo").await;
    let mut b = Ddp::connect(&sim.ws_url()).await;
    assert_eq!(sim.drop_all_connections(), 2);
    a.wait_closed().await;
    b.wait_closed().await;
}

#[tokio::test]
async fn oversized_frame_closes_the_socket() {
    let sim = sim(demo_with(|c| c.max_ws_frame_bytes = 1024)).await;
    let mut c = Ddp::connect(&sim.ws_url()).await;
    c.send(
        json!({"msg":"method","method":"sendMessage","id":"1","params":[{"msg":"x".repeat(2048)}]}),
    )
    .await;
    c.wait_closed().await;
}

#[tokio::test]
async fn duplicate_and_delayed_events() {
    let sim = sim(SimConfig::demo()).await;
    let mut me = Ddp::login_as(&sim.ws_url(), "me", "demo").await;
    me.sub_ok("stream-room-messages", DM).await;
    let msg = |id: &str| json!([{"_id": id, "rid": DM, "msg": "c", "t": "otr"}]);

    sim.set_duplicate_events(true);
    me.call("sendMessage", msg("dup1")).await;
    let first = me.event("stream-room-messages", DM).await;
    let second = me.event("stream-room-messages", DM).await;
    assert_eq!(first, second);
    sim.set_duplicate_events(false);

    // Undelayed, the echo is queued before the method result; delayed, it comes after.
    sim.set_event_delay(std::time::Duration::from_millis(300));
    me.call("sendMessage", msg("late1")).await;
    assert!(
        me.seen(|f| f["msg"] == "changed").is_empty(),
        "event was not delayed"
    );
    let ev = me.event("stream-room-messages", DM).await;
    assert_eq!(ev["fields"]["args"][0]["_id"], "late1");
}
