//! Issue 4 end to end: a real `otrd` (driven by `otrctl` processes, watched over gRPC) and the
//! stock web client's OTR (the Node test peer) through rcsim, in both directions: either side
//! starts; unicode and a 3,500-byte text both ways with `delivered` on both sides; refresh and end
//! by either side; deny both ways; timeouts both ways; and the audit shows the server never saw a
//! plaintext or a private key, and stored nothing OTR.

use std::time::Duration;

use otrd_e2e::otr::{
    assert_server_saw_nothing, identity_private_key, password, sim_config, Node, WAIT,
};
use otrd_e2e::stock_peer::StockPeer;
use otrd_proto::v1::SessionState;
use serde_json::{json, Value};

/// The stock client's prompt and handshake windows are 10 s; a little slack for a busy machine.
const PROTOCOL_TIMEOUT: Duration = Duration::from_secs(16);

const UNICODE: &str = "Grüße aus Köln ✓ — 鍵 🔑 «ça va?»";

fn is(event: &'static str) -> impl Fn(&Value) -> bool {
    move |e| e["event"] == event
}

fn is_state(state: &'static str) -> impl Fn(&Value) -> bool {
    move |e| e["event"] == "state" && e["state"] == state
}

/// 3,500 bytes of UTF-8 (multi-byte characters included), different per `tag`.
fn long_text(tag: &str) -> String {
    let mut s = format!("{tag}: ");
    while s.len() < 3_490 {
        s.push_str("lorem ipsum ∑ ");
    }
    while s.len() < 3_500 {
        s.push('.');
    }
    assert_eq!(s.len(), 3_500);
    s
}

async fn stock(url: &str, user: &str, args: &[&str]) -> anyhow::Result<StockPeer> {
    StockPeer::spawn(url, user, &password(user), args).await
}

/// otrd sends `text` with `otrctl send`; the stock peer shows it decrypted with the same id and
/// otrd reports it delivered.
async fn otrd_to_stock(alice: &mut Node, bob: &StockPeer, text: &str) -> anyhow::Result<()> {
    let id = alice.send("bob", text)?;
    let got = bob
        .wait_for(WAIT, |e| e["event"] == "message" && e["id"] == id.as_str())
        .await?;
    assert_eq!(got["text"], text);
    assert_eq!(got["plaintext"], false);
    alice.wait_delivered(&id).await
}

/// The stock peer sends `text` encrypted; otrd shows it and the stock peer sees the ack.
async fn stock_to_otrd(alice: &mut Node, bob: &StockPeer, text: &str) -> anyhow::Result<()> {
    bob.send(json!({"cmd": "send", "peer": "alice", "text": text}))?;
    let sent = bob.wait_for(WAIT, is("sent")).await?;
    assert_eq!(
        sent["plaintext"], false,
        "the stock peer was not established"
    );
    let (id, got) = alice.wait_message("bob").await?;
    assert_eq!(got, text);
    assert_eq!(id, sent["id"].as_str().unwrap_or_default());
    let delivered = bob.wait_for(WAIT, is("delivered")).await?;
    assert_eq!(delivered["id"], sent["id"]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otrd_starts_chats_refreshes_and_ends_with_a_stock_client() -> anyhow::Result<()> {
    let sim = rcsim::start(
        sim_config(&["alice", "bob"], &[("alice", "bob")]),
        "127.0.0.1:0".parse()?,
    )
    .await?;
    let url = sim.http_url();
    let bob = stock(&url, "bob", &["--auto-accept"]).await?;
    let mut alice = Node::start(&url, "alice", "").await?;

    let started = alice.ctl(&["start", "bob"])?;
    assert_eq!(started["state"], "establishing", "{started}");
    bob.wait_for(WAIT, is("invitation")).await?;
    bob.wait_for(WAIT, is_state("ESTABLISHED")).await?;
    let est = alice.wait_state("bob", SessionState::Established).await?;
    assert_eq!(
        est.mode,
        otrd_proto::v1::Mode::Legacy as i32,
        "a stock peer means legacy"
    );
    let sessions = alice.ctl(&["sessions"])?;
    assert_eq!(sessions["state"], "established");
    assert_eq!(sessions["mode"], "legacy");

    let long_a = long_text("from otrd");
    let long_b = long_text("from the browser");
    otrd_to_stock(&mut alice, &bob, UNICODE).await?;
    otrd_to_stock(&mut alice, &bob, &long_a).await?;
    stock_to_otrd(&mut alice, &bob, "ÀÉÎÕÜ ← stock → 日本語").await?;
    stock_to_otrd(&mut alice, &bob, &long_b).await?;

    // Refresh by otrd: the stock client re-keys without a prompt.
    alice.ctl(&["refresh", "bob"])?;
    bob.wait_for(WAIT, is("key_refresh")).await?;
    alice.wait_state("bob", SessionState::Established).await?;
    otrd_to_stock(&mut alice, &bob, "after otrd's refresh").await?;
    stock_to_otrd(&mut alice, &bob, "answer after otrd's refresh").await?;

    // Refresh by the stock client: otrd re-keys without asking the user.
    bob.send(json!({"cmd": "refresh", "peer": "alice"}))?;
    alice.wait_state("bob", SessionState::Established).await?;
    bob.wait_for(WAIT, is_state("ESTABLISHED")).await?;
    stock_to_otrd(&mut alice, &bob, "after the browser's refresh").await?;
    otrd_to_stock(&mut alice, &bob, "answer after the browser's refresh").await?;

    // End by otrd: the stock client sees `end` and goes back to NOT_STARTED.
    let ended = alice.ctl(&["end", "bob"])?;
    assert_eq!(ended["state"], "ended");
    bob.wait_for(WAIT, is("ended_by_peer")).await?;
    // Fail closed: no session, so nothing is sent — not even in plaintext.
    let (code, stderr) = alice.ctl_fails(&["send", "bob", "must never leave"])?;
    assert_eq!(code, 1, "{stderr}");

    let key = identity_private_key(&alice.daemon)?;
    let texts = [
        UNICODE,
        &long_a,
        &long_a[..20],
        &long_b,
        &long_b[..20],
        "stock → 日本語",
        "after otrd's refresh",
        "answer after otrd's refresh",
        "after the browser's refresh",
        "answer after the browser's refresh",
        "must never leave",
    ];
    assert_server_saw_nothing(&sim.audit(), &texts, &[key])?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stock_client_starts_otrd_accepts_and_the_stock_client_ends() -> anyhow::Result<()> {
    let sim = rcsim::start(
        sim_config(&["alice", "bob"], &[("alice", "bob")]),
        "127.0.0.1:0".parse()?,
    )
    .await?;
    let url = sim.http_url();
    let bob = stock(&url, "bob", &[]).await?;
    let mut alice = Node::start(&url, "alice", "").await?;

    bob.send(json!({"cmd": "start", "peer": "alice"}))?;
    alice.wait_invitation("bob").await?;
    let accepted = alice.ctl(&["accept", "bob"])?;
    assert_eq!(accepted["state"], "established", "{accepted}");
    bob.wait_for(WAIT, is_state("ESTABLISHED")).await?;

    stock_to_otrd(&mut alice, &bob, UNICODE).await?;
    otrd_to_stock(&mut alice, &bob, &long_text("otrd as responder")).await?;
    stock_to_otrd(&mut alice, &bob, &long_text("browser as initiator")).await?;

    bob.send(json!({"cmd": "end", "peer": "alice"}))?;
    let ended = alice.wait_state("bob", SessionState::Ended).await?;
    assert!(
        ended.detail.contains("bob"),
        "who ended it: {}",
        ended.detail
    );
    let (code, _) = alice.ctl_fails(&["send", "bob", "after the peer ended"])?;
    assert_eq!(code, 1);

    let key = identity_private_key(&alice.daemon)?;
    assert_server_saw_nothing(
        &sim.audit(),
        &[
            UNICODE,
            "otrd as responder",
            "browser as initiator",
            "after the peer ended",
        ],
        &[key],
    )?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deny_both_ways() -> anyhow::Result<()> {
    let sim = rcsim::start(
        sim_config(&["alice", "bob"], &[("alice", "bob")]),
        "127.0.0.1:0".parse()?,
    )
    .await?;
    let url = sim.http_url();
    let bob = stock(&url, "bob", &[]).await?;
    let mut alice = Node::start(&url, "alice", "").await?;

    // Before any session, sending fails closed.
    let (code, _) = alice.ctl_fails(&["send", "bob", "no session yet"])?;
    assert_eq!(code, 1);

    // otrd invites, the person at the stock client says No.
    alice.ctl(&["start", "bob"])?;
    bob.wait_for(WAIT, is("invitation")).await?;
    bob.send(json!({"cmd": "decline", "peer": "alice"}))?;
    let declined = alice.wait_state("bob", SessionState::Declined).await?;
    assert!(declined.detail.contains("declined"), "{}", declined.detail);

    // The stock client invites, otrd's user declines: the stock panel shows DECLINED.
    bob.send(json!({"cmd": "start", "peer": "alice"}))?;
    alice.wait_invitation("bob").await?;
    let answer = alice.ctl(&["decline", "bob"])?;
    assert_eq!(answer["state"], "declined");
    bob.wait_for(WAIT, is_state("DECLINED")).await?;
    // Nothing pending any more: a second decline or an accept is refused.
    let (code, _) = alice.ctl_fails(&["accept", "bob"])?;
    assert_eq!(code, 1);
    assert!(!sim.audit().contains("no session yet"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_invitations_time_out_both_ways() -> anyhow::Result<()> {
    let cfg = sim_config(
        &["alice", "bob", "carol"],
        &[("alice", "bob"), ("alice", "carol")],
    );
    let sim = rcsim::start(cfg, "127.0.0.1:0".parse()?).await?;
    let url = sim.http_url();
    // bob is away from the keyboard; carol invites otrd's user, who never answers.
    let bob = stock(&url, "bob", &["--ignore-invitations"]).await?;
    let carol = stock(&url, "carol", &[]).await?;
    let mut alice = Node::start(&url, "alice", "").await?;

    alice.ctl(&["start", "bob"])?;
    carol.send(json!({"cmd": "start", "peer": "alice"}))?;
    bob.wait_for(WAIT, is("invitation")).await?;
    alice.wait_invitation("carol").await?;

    // Both windows run at once (10 s each).
    let timed_out = alice
        .wait_state_within("bob", SessionState::Timeout, PROTOCOL_TIMEOUT)
        .await?;
    assert_eq!(timed_out.peer, "bob");
    carol
        .wait_for(PROTOCOL_TIMEOUT, is_state("TIMEOUT"))
        .await?;
    bob.wait_for(WAIT, is_state("TIMEOUT")).await?;
    // A timed-out start cannot be used to send.
    let (code, _) = alice.ctl_fails(&["send", "bob", "into the void"])?;
    assert_eq!(code, 1);
    assert!(!sim.audit().contains("into the void"));
    Ok(())
}
