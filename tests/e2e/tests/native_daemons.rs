//! Issue 5 end to end: two real `otrd` processes negotiate the native scheme through rcsim,
//! exchange messages both ways with acks, and agree on fingerprints and the SAS; a key-swapping
//! server (rcsim's man in the middle) never yields a silently established native session; and
//! duplicated, replayed, reflected, reordered and forged traffic is handled without a duplicate
//! message shown and without breaking the session.

use otrd_e2e::events::wait_for;
use otrd_e2e::otr::{
    assert_server_saw_nothing, dm_id, eventually, identity_private_key, password, sim_config,
    user_id, Node, WAIT,
};
use otrd_e2e::stock_peer::StockPeer;
use otrd_proto::v1::event::Kind;
use otrd_proto::v1::{Direction, Mode, SessionState};
use rcsim::MitmMode;
use serde_json::{json, Value};

const AUTO_ACCEPT: &str = "[policy]\nauto_accept = true\n";

async fn sim() -> anyhow::Result<rcsim::SimHandle> {
    let cfg = sim_config(
        &["alice", "bob", "mallory"],
        &[("alice", "bob"), ("alice", "mallory")],
    );
    rcsim::start(cfg, "127.0.0.1:0".parse()?).await
}

/// alice starts (otrctl), bob auto-accepts; both must report an established native session.
async fn establish_native(alice: &mut Node, bob: &mut Node) -> anyhow::Result<()> {
    alice.ctl(&["start", "bob"])?;
    let a = alice.wait_state("bob", SessionState::Established).await?;
    let b = bob.wait_state("alice", SessionState::Established).await?;
    assert_eq!((a.mode, b.mode), (Mode::Native as i32, Mode::Native as i32));
    Ok(())
}

async fn exchange(from: &mut Node, to: &mut Node, text: &str) -> anyhow::Result<String> {
    let id = from.send(&to.user, text)?;
    let (got_id, got) = to.wait_message(&from.user).await?;
    assert_eq!((got_id.as_str(), got.as_str()), (id.as_str(), text));
    from.wait_delivered(&id).await?;
    Ok(id)
}

/// The next incoming message `to` shows must be `text` (anything shown before it — a duplicate,
/// a replay — fails the test).
async fn next_message_is(to: &mut Node, text: &str) -> anyhow::Result<()> {
    let kind = wait_for(
        &mut to.events,
        WAIT,
        |k| matches!(k, Kind::Message(m) if m.direction == Direction::In as i32),
    )
    .await?;
    let Kind::Message(m) = kind else {
        unreachable!("filtered")
    };
    assert_eq!(
        m.text, text,
        "a message was shown that should not have been"
    );
    Ok(())
}

/// Waits for a security alarm (or error) at `node`; returns its code.
async fn wait_alarm(node: &mut Node) -> anyhow::Result<String> {
    let kind = wait_for(&mut node.events, WAIT, |k| matches!(k, Kind::Alarm(_))).await?;
    let Kind::Alarm(a) = kind else {
        unreachable!("filtered")
    };
    Ok(a.code)
}

/// The `sendMessage` payload (`params[0]`) alice sent for message `id`.
fn sent_payload(audit: &rcsim::Audit, id: &str) -> Option<Value> {
    audit
        .client
        .iter()
        .filter_map(|r| serde_json::from_str::<Value>(&r.data).ok())
        .find(|v| v["method"] == "sendMessage" && v["params"][0]["_id"] == id)
        .map(|v| v["params"][0].clone())
}

/// The room-stream event the server would relay for `payload` as sent by `sender`.
fn relayed(payload: &Value, sender: &str) -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    json!([{
        "_id": payload["_id"], "rid": payload["rid"], "msg": payload["msg"], "t": "otr",
        "ts": {"$date": now}, "u": {"_id": user_id(sender), "username": sender, "name": sender}
    }])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_daemons_go_native_chat_with_acks_and_agree_on_fingerprints_and_sas(
) -> anyhow::Result<()> {
    let sim = sim().await?;
    let url = sim.http_url();
    let mut alice = Node::start(&url, "alice", "").await?;
    let mut bob = Node::start(&url, "bob", "").await?;

    alice.ctl(&["start", "bob"])?;
    bob.wait_invitation("alice").await?;
    let accepted = bob.ctl(&["accept", "alice"])?;
    assert_eq!(
        accepted["state"], "establishing",
        "native waits for key confirmation: {accepted}"
    );
    let est = alice.wait_state("bob", SessionState::Established).await?;
    assert_eq!(est.mode, Mode::Native as i32);
    bob.wait_state("alice", SessionState::Established).await?;

    exchange(&mut alice, &mut bob, "native hello ✓").await?;
    exchange(&mut bob, &mut alice, "native answer 🔐").await?;
    exchange(&mut alice, &mut bob, &"ß".repeat(1_750)).await?;

    let a = alice.ctl(&["fingerprint", "bob"])?;
    let b = bob.ctl(&["fingerprint", "alice"])?;
    assert_eq!(a["peer_fingerprint"], b["own_fingerprint"]);
    assert_eq!(b["peer_fingerprint"], a["own_fingerprint"]);
    assert_ne!(a["own_fingerprint"], b["own_fingerprint"]);
    assert!(a["sas"].as_str().is_some_and(|s| !s.is_empty()), "{a}");
    assert_eq!(a["sas"], b["sas"]);
    assert_eq!(a["trust"], "unverified");
    // A bare `trust` verifies nothing (issue 16); the SAS both sides read does.
    let (code, _) = alice.ctl_fails(&["trust", "bob"])?;
    assert_eq!(code, 1);
    let sas = a["sas"].as_str().unwrap_or_default().to_owned();
    let trusted = alice.ctl(&["trust", "bob", "--sas", &sas])?;
    assert_eq!(trusted["trust"], "verified");

    let keys = [
        identity_private_key(&alice.daemon)?,
        identity_private_key(&bob.daemon)?,
    ];
    assert_server_saw_nothing(
        &sim.audit(),
        &["native hello", "native answer", &"ß".repeat(1_750)],
        &keys,
    )?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_swapping_server_is_caught_by_key_confirmation() -> anyhow::Result<()> {
    let sim = sim().await?;
    let url = sim.http_url();
    let mut alice = Node::start(&url, "alice", "").await?;
    let bob = Node::start(&url, "bob", AUTO_ACCEPT).await?;
    sim.set_mitm(MitmMode::ReplaceKeys);

    alice.ctl(&["start", "bob"])?;
    let code = wait_alarm(&mut alice).await?;
    assert_eq!(code, "key_confirmation_failed");
    assert!(sim.mitm_rewrites() >= 2, "the attack did not run");
    alice.wait_state("bob", SessionState::Error).await?;
    // Neither side ever holds an established session, and nothing can be sent.
    for node in [&alice, &bob] {
        assert_eq!(node.status().await?.established_count, 0, "{}", node.user);
    }
    let (code, _) = alice.ctl_fails(&["send", "bob", "under attack"])?;
    assert_eq!(code, 1);
    let (code, _) = bob.ctl_fails(&["send", "alice", "under attack"])?;
    assert_eq!(code, 1);
    assert!(!sim.audit().contains("under attack"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_stripping_the_native_offer_is_refused_as_a_downgrade() -> anyhow::Result<()> {
    let sim = sim().await?;
    let url = sim.http_url();
    let mut alice = Node::start(&url, "alice", "").await?;
    let mut bob = Node::start(&url, "bob", AUTO_ACCEPT).await?;
    // First contact is native: both trust stores now know the other speaks native.
    establish_native(&mut alice, &mut bob).await?;
    alice.ctl(&["end", "bob"])?;
    bob.wait_state("alice", SessionState::Ended).await?;

    sim.set_mitm(MitmMode::StripOffer);
    alice.ctl(&["start", "bob"])?;
    // bob sees only a stock offer from a peer known to speak native: told, and refused outright
    // (`[policy] downgrade = "refuse"`, the default) — nothing to accept, nothing answered.
    assert_eq!(wait_alarm(&mut bob).await?, "downgrade");
    assert!(sim.mitm_rewrites() >= 1, "the attack did not run");
    let sessions = bob.ctl(&["sessions"])?;
    assert_eq!(sessions["state"], "ended", "{sessions}");
    let (code, _) = bob.ctl_fails(&["accept", "alice"])?;
    assert_eq!(code, 1, "no invitation was kept to accept");
    // alice's native offer was never answered: it times out, nothing is established.
    alice.wait_state("bob", SessionState::Timeout).await?;
    eventually(WAIT, "no established session left", || {
        let (a, b) = (&alice, &bob);
        async move { Ok(a.status().await?.established_count + b.status().await?.established_count == 0) }
    })
    .await?;
    let (code, _) = alice.ctl_fails(&["send", "bob", "downgraded"])?;
    assert_eq!(code, 1);
    assert!(!sim.audit().contains("downgraded"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_identity_for_a_known_peer_raises_fingerprint_changed_and_holds_sends(
) -> anyhow::Result<()> {
    let sim = sim().await?;
    let url = sim.http_url();
    let mut alice = Node::start(&url, "alice", "").await?;
    let mut bob = Node::start(&url, "bob", AUTO_ACCEPT).await?;
    establish_native(&mut alice, &mut bob).await?;
    let first = alice.ctl(&["fingerprint", "bob"])?;
    bob.daemon.terminate()?;
    alice.wait_state("bob", SessionState::Ended).await?;

    // bob comes back with a fresh state directory: a new identity key.
    let mut bob = Node::start(&url, "bob", AUTO_ACCEPT).await?;
    alice.ctl(&["start", "bob"])?;
    let code = wait_alarm(&mut alice).await?;
    assert_eq!(code, "fingerprint_changed");
    let now = alice.ctl(&["fingerprint", "bob"])?;
    assert_eq!(now["trust"], "changed");
    assert_eq!(now["previous_fingerprint"], first["peer_fingerprint"]);
    assert_ne!(now["peer_fingerprint"], first["peer_fingerprint"]);
    let (code, stderr) = alice.ctl_fails(&["send", "bob", "held until verified"])?;
    assert_eq!(code, 1);
    assert!(stderr.contains("identity changed"), "{stderr}");
    assert!(!sim.audit().contains("held until verified"));

    // The command the alarm used to suggest verifies nothing now (issue 16): no fingerprint, no
    // SAS, nothing compared. The key stays held.
    let (code, stderr) = alice.ctl_fails(&["trust", "bob"])?;
    assert_ne!(code, 0);
    assert!(stderr.contains("compared"), "{stderr}");
    assert_eq!(alice.ctl(&["fingerprint", "bob"])?["trust"], "changed");
    let (_, stderr) = alice.ctl_fails(&["send", "bob", "still held"])?;
    assert!(stderr.contains("identity changed"), "{stderr}");
    // A fingerprint that is not the session's key verifies nothing either.
    let wrong = first["peer_fingerprint"].as_str().unwrap_or_default();
    alice.ctl_fails(&["trust", "bob", wrong])?;
    assert_eq!(alice.ctl(&["fingerprint", "bob"])?["trust"], "changed");

    // Accepting the new key lets it send, unverified — like accepting a changed safety number.
    let accepted = alice.ctl(&["accept-key", "bob"])?;
    assert_eq!(accepted["trust"], "unverified", "{accepted}");
    exchange(&mut alice, &mut bob, "accepted, not verified").await?;

    // The fingerprint compared over another channel verifies it.
    let fp = now["peer_fingerprint"].as_str().unwrap_or_default();
    let verified = alice.ctl(&["trust", "bob", fp])?;
    assert_eq!(verified["trust"], "verified", "{verified}");
    exchange(&mut alice, &mut bob, "verified again").await?;
    assert!(!sim.audit().contains("still held"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicated_replayed_reflected_reordered_and_forged_traffic_changes_nothing(
) -> anyhow::Result<()> {
    let sim = sim().await?;
    let url = sim.http_url();
    let mut alice = Node::start(&url, "alice", "").await?;
    let mut bob = Node::start(&url, "bob", AUTO_ACCEPT).await?;
    establish_native(&mut alice, &mut bob).await?;
    let rid = dm_id("alice", "bob");

    // Duplicated: every stream event twice. Each message is shown once.
    sim.set_duplicate_events(true);
    let dup = exchange(&mut alice, &mut bob, "sent once, relayed twice").await?;
    exchange(&mut bob, &mut alice, "answer relayed twice").await?;
    sim.set_duplicate_events(false);
    alice.send("bob", "sentinel 1")?;
    next_message_is(&mut bob, "sentinel 1").await?;

    // Replayed by the server: alice's message again, as if freshly relayed.
    let payload = sent_payload(&sim.audit(), &dup)
        .ok_or_else(|| anyhow::anyhow!("no sendMessage for {dup}"))?;
    sim.inject_stream_event("stream-room-messages", &rid, relayed(&payload, "alice"));
    // Reflected: alice's own ciphertext presented to alice as if bob sent it.
    sim.inject_stream_event("stream-room-messages", &rid, relayed(&payload, "bob"));
    alice.send("bob", "sentinel 2")?;
    next_message_is(&mut bob, "sentinel 2").await?;
    bob.send("alice", "sentinel 3")?;
    next_message_is(&mut alice, "sentinel 3").await?;

    // Reordered: three messages held by the relay, then delivered newest first. (Meteor's rate
    // limiter would refuse a burst of sendMessage and the daemon would resend later: off here.)
    sim.set_rate_limits(false);
    sim.hold_room_messages();
    let texts = ["first", "second", "third"];
    let mut ids = Vec::new();
    for t in texts {
        ids.push(alice.send("bob", t)?);
    }
    eventually(WAIT, "all three reached the server", || {
        let audit = sim.audit();
        let n = ids
            .iter()
            .filter(|id| sent_payload(&audit, id).is_some())
            .count();
        async move { Ok(n == 3) }
    })
    .await?;
    let held = sim.release_held_reversed();
    assert!(held >= 3, "only {held} room events were held");
    let mut shown = Vec::new();
    for _ in 0..3 {
        shown.push(bob.wait_message("alice").await?.1);
    }
    assert_eq!(
        shown,
        ["third", "second", "first"],
        "each shown once, as they arrived"
    );
    // Acks come back in the order bob read the messages: collect all three, in any order.
    let mut acked = std::collections::HashSet::new();
    while acked.len() < ids.len() {
        let kind = wait_for(
            &mut alice.events,
            WAIT,
            |k| matches!(k, Kind::Delivered(d) if ids.contains(&d.id) && !acked.contains(&d.id)),
        )
        .await?;
        if let Kind::Delivered(d) = kind {
            acked.insert(d.id);
        }
    }

    // Forged signalling from a third user (mallory, a stock client): a handshake and an `end` in
    // mallory's own name for the alice–bob room, and an acknowledge claiming to be bob.
    let mallory = StockPeer::spawn(&url, "mallory", &password("mallory"), &[]).await?;
    let to_alice = user_id("alice");
    for (kind, from) in [
        ("handshake", "mallory"),
        ("end", "mallory"),
        ("acknowledge", "bob"),
    ] {
        mallory.send(json!({"cmd": "send_raw_signal", "to_uid": to_alice, "type": kind, "payload": {
            "roomId": rid, "userId": user_id(from),
            "publicKey": r#"{"crv":"P-256","ext":true,"key_ops":[],"kty":"EC","x":"ioJoe5tCZv1VU__TKiPc9bAEJYCWqsAWfyHaokLB1Vo","y":"OtKF0OsmPtW135H8sOG8L6y11nxGPmgFnGGM4ldtDJE"}"#
        }}))?;
        mallory
            .wait_for(WAIT, |e| e["event"] == "signal_sent")
            .await?;
    }
    let kind = wait_for(
        &mut alice.events,
        WAIT,
        |k| matches!(k, Kind::Error(e) if e.code == "forged_event"),
    )
    .await?;
    assert!(matches!(kind, Kind::Error(_)));

    // The session is intact both ways, and nothing was shown twice.
    exchange(&mut alice, &mut bob, "still fine").await?;
    exchange(&mut bob, &mut alice, "still fine too").await?;
    assert_eq!(alice.status().await?.established_count, 1);
    Ok(())
}
