//! Proves the stock-client test peer speaks what real clients speak, through rcsim: two stock
//! peers log in, one starts OTR, the other accepts, a unicode message is encrypted, delivered and
//! acknowledged, keys are refreshed, and the session is ended. rcsim's era-D strict checks (for
//! example on `updateOTRAck`) mean a peer that drifted from the stock wire format fails here.

use std::time::Duration;

use anyhow::Context;
use otrd_e2e::stock_peer::StockPeer;
use rcsim::{DmConfig, SimConfig, UserConfig};
use serde_json::{json, Value};

/// Generous: two Node processes start on a shared, busy machine.
const WAIT: Duration = Duration::from_secs(15);

fn config() -> SimConfig {
    let mut bob = UserConfig::new("BobUser000000001a", "bob", "bob-secret");
    bob.name = Some("Bob".to_owned());
    let mut carol = UserConfig::new("CarolUser0000001b", "carol", "carol-secret");
    carol.name = Some("Carol".to_owned());
    SimConfig {
        users: vec![bob, carol],
        dms: vec![DmConfig {
            id: "BobCarolDm000001c".to_owned(),
            usernames: ["bob".to_owned(), "carol".to_owned()],
        }],
        ..SimConfig::default()
    }
}

fn is(event: &'static str) -> impl Fn(&Value) -> bool {
    move |e| e["event"] == event
}

fn is_state(state: &'static str) -> impl Fn(&Value) -> bool {
    move |e| e["event"] == "state" && e["state"] == state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stock_peers_establish_exchange_refresh_and_end_through_rcsim() -> anyhow::Result<()> {
    let sim = rcsim::start(config(), "127.0.0.1:0".parse()?).await?;
    let url = sim.http_url();

    let bob = StockPeer::spawn(&url, "bob", "bob-secret", &[]).await?;
    let carol = StockPeer::spawn(&url, "carol", "carol-secret", &["--auto-accept"]).await?;
    assert_eq!(bob.uid(), "BobUser000000001a");
    assert_eq!(bob.room_with("carol").as_deref(), Some("BobCarolDm000001c"));

    // Handshake: bob starts, carol's "person" clicks Yes.
    bob.send(json!({"cmd": "start", "peer": "carol"}))?;
    let invitation = carol.wait_for(WAIT, is("invitation")).await?;
    assert_eq!(invitation["peer"], "bob");
    assert_eq!(invitation["refresh"], false);
    carol.wait_for(WAIT, is_state("ESTABLISHED")).await?;
    bob.wait_for(WAIT, is_state("ESTABLISHED")).await?;
    bob.wait_for(WAIT, |e| {
        e["event"] == "system_message" && e["type"] == "user_joined_otr"
    })
    .await
    .context("the initiator posts user_joined_otr through REST chat.otr")?;

    // An encrypted message with non-ASCII text, acknowledged through rcsim's strict updateOTRAck.
    let text = "Grüße aus Köln ✓ — 鍵 🔑";
    bob.send(json!({"cmd": "send", "peer": "carol", "text": text}))?;
    let sent = bob.wait_for(WAIT, is("sent")).await?;
    assert_eq!(sent["plaintext"], false);
    let received = carol.wait_for(WAIT, is("message")).await?;
    assert_eq!(received["text"], text);
    assert_eq!(received["id"], sent["id"]);
    assert_eq!(received["plaintext"], false);
    let delivered = bob
        .wait_for(WAIT, is("delivered"))
        .await
        .context("the ack must pass rcsim's era-D check and come back as otrAck")?;
    assert_eq!(delivered["id"], sent["id"]);

    // The other direction, after a key refresh that carol auto-accepts without a prompt.
    bob.send(json!({"cmd": "refresh", "peer": "carol"}))?;
    carol.wait_for(WAIT, is("key_refresh")).await?;
    bob.wait_for(WAIT, is_state("ESTABLISHED")).await?;
    carol.send(json!({"cmd": "send", "peer": "bob", "text": "nach dem Schlüsselwechsel"}))?;
    let back = bob.wait_for(WAIT, is("message")).await?;
    assert_eq!(back["text"], "nach dem Schlüsselwechsel");
    carol.wait_for(WAIT, is("delivered")).await?;

    // End: carol sees it while ESTABLISHED and returns to NOT_STARTED.
    bob.send(json!({"cmd": "end", "peer": "carol"}))?;
    carol.wait_for(WAIT, is_state("NOT_STARTED")).await?;
    carol.wait_for(WAIT, is("ended_by_peer")).await?;

    // Nothing readable reached the server, and no OTR chat message was stored.
    let audit = sim.audit();
    assert!(!audit.contains(text), "plaintext reached rcsim");
    assert!(
        !audit.contains("Schlüsselwechsel"),
        "plaintext reached rcsim"
    );
    assert!(
        audit.stored_messages().iter().all(|m| m["t"] != "otr"),
        "an OTR message was persisted"
    );

    bob.quit().await?;
    carol.quit().await?;
    sim.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unaccepted_invitation_times_out_like_the_stock_prompt() -> anyhow::Result<()> {
    let sim = rcsim::start(config(), "127.0.0.1:0".parse()?).await?;
    let url = sim.http_url();
    let bob = StockPeer::spawn(&url, "bob", "bob-secret", &[]).await?;
    let carol = StockPeer::spawn(&url, "carol", "carol-secret", &["--ignore-invitations"]).await?;

    bob.send(json!({"cmd": "start", "peer": "carol"}))?;
    carol.wait_for(WAIT, is("invitation")).await?;
    // Both stock timers are 10 s: the prompt closes, and the initiator's panel gives up.
    carol.wait_for(WAIT, is_state("TIMEOUT")).await?;
    bob.wait_for(WAIT, is_state("TIMEOUT")).await?;

    // The stock fallback: not established, so the text goes out in the clear (otrd must never).
    bob.send(json!({"cmd": "send", "peer": "carol", "text": "plain fallback"}))?;
    assert_eq!(bob.wait_for(WAIT, is("sent")).await?["plaintext"], true);
    let got = carol.wait_for(WAIT, is("message")).await?;
    assert_eq!(got["plaintext"], true);
    assert!(sim.audit().contains("plain fallback"));
    sim.shutdown().await;
    Ok(())
}
