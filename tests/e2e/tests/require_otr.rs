//! `[contacts.bob] require_otr = true` end to end: a real `otrd` driven by `otrctl` processes and
//! the stock web client's OTR (the Node test peer) through rcsim. `otrctl send bob TEXT` with no
//! session starts OTR and exits 0 once the text went out encrypted; a declined or unanswered
//! invitation, or `otrctl lock`, makes it exit non-zero naming bob and the outcome; a contact
//! without `require_otr` still fails at once. The audit shows the server never saw a plaintext.

use std::process::Output;
use std::time::Duration;

use anyhow::Context;
use otrd_e2e::daemon::bin_path;
use otrd_e2e::otr::WAIT;
use otrd_e2e::otr::{assert_server_saw_nothing, identity_private_key, password, sim_config, Node};
use otrd_e2e::stock_peer::StockPeer;
use serde_json::Value;
use tokio::task::JoinHandle;

/// The stock client's prompt and handshake windows are 10 s; a little slack for a busy machine.
const PROTOCOL_TIMEOUT: Duration = Duration::from_secs(16);

const REQUIRE_BOB: &str = "[contacts.bob]\nrequire_otr = true\n";

fn is(event: &'static str) -> impl Fn(&Value) -> bool {
    move |e| e["event"] == event
}

async fn stock(url: &str, user: &str, args: &[&str]) -> anyhow::Result<StockPeer> {
    StockPeer::spawn(url, user, &password(user), args).await
}

/// `otrctl ARGS…` on `node`'s socket, running in the background (a held send blocks until its
/// session is settled).
fn otrctl_in_background(
    node: &Node,
    args: &[&str],
) -> anyhow::Result<JoinHandle<std::io::Result<Output>>> {
    let mut cmd = tokio::process::Command::new(bin_path("otrctl")?);
    cmd.arg("--socket")
        .arg(&node.daemon.socket)
        .args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    Ok(tokio::spawn(async move { cmd.output().await }))
}

/// Waits (bounded) for a background otrctl; it must have failed. Returns its stderr.
async fn failed(
    run: JoinHandle<std::io::Result<Output>>,
    within: Duration,
) -> anyhow::Result<String> {
    let out = tokio::time::timeout(within, run)
        .await
        .context("otrctl did not finish in time")???;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    anyhow::ensure!(
        out.status.code() == Some(1),
        "otrctl should exit 1, got {:?}; stdout {}; stderr {stderr}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout)
    );
    Ok(stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_without_a_session_starts_otr_and_the_peer_gets_it_encrypted() -> anyhow::Result<()> {
    let sim = rcsim::start(
        sim_config(
            &["alice", "bob", "carol"],
            &[("alice", "bob"), ("alice", "carol")],
        ),
        "127.0.0.1:0".parse()?,
    )
    .await?;
    let url = sim.http_url();
    let bob = stock(&url, "bob", &["--auto-accept"]).await?;
    let _carol = stock(&url, "carol", &["--auto-accept"]).await?;
    let mut alice = Node::start(&url, "alice", REQUIRE_BOB).await?;

    let text = "held until OTR — ✓ 鍵";
    let id = alice.send("bob", text)?;
    let got = bob
        .wait_for(WAIT, |e| e["event"] == "message" && e["id"] == id.as_str())
        .await?;
    assert_eq!(got["text"], text);
    assert_eq!(got["plaintext"], false);
    alice.wait_delivered(&id).await?;

    // carol has no require_otr: no session, so the send fails at once and starts nothing.
    let (code, stderr) = alice.ctl_fails(&["send", "carol", "carol never gets this"])?;
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("no OTR session with carol"), "{stderr}");
    let status = alice.status().await?;
    assert_eq!(
        (status.session_count, status.established_count),
        (1, 1),
        "only bob's session"
    );

    let key = identity_private_key(&alice.daemon)?;
    assert_server_saw_nothing(&sim.audit(), &[text, "carol never gets this"], &[key])?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_invitation_fails_the_send_and_nothing_leaves() -> anyhow::Result<()> {
    let sim = rcsim::start(
        sim_config(&["alice", "bob"], &[("alice", "bob")]),
        "127.0.0.1:0".parse()?,
    )
    .await?;
    let url = sim.http_url();
    let bob = stock(&url, "bob", &[]).await?;
    let alice = Node::start(&url, "alice", REQUIRE_BOB).await?;

    let send = otrctl_in_background(&alice, &["send", "bob", "declined, never sent"])?;
    bob.wait_for(WAIT, is("invitation")).await?;
    bob.send(serde_json::json!({"cmd": "decline", "peer": "alice"}))?;
    let stderr = failed(send, WAIT).await?;
    assert!(
        stderr.contains("OTR with bob was not established"),
        "{stderr}"
    );
    assert!(stderr.contains("declined"), "{stderr}");
    assert!(stderr.contains("the message was not sent"), "{stderr}");

    let key = identity_private_key(&alice.daemon)?;
    assert_server_saw_nothing(&sim.audit(), &["declined, never sent"], &[key])?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_invitation_times_out_the_send() -> anyhow::Result<()> {
    let sim = rcsim::start(
        sim_config(&["alice", "bob"], &[("alice", "bob")]),
        "127.0.0.1:0".parse()?,
    )
    .await?;
    let url = sim.http_url();
    let bob = stock(&url, "bob", &["--ignore-invitations"]).await?;
    let alice = Node::start(&url, "alice", REQUIRE_BOB).await?;

    let send = otrctl_in_background(&alice, &["send", "bob", "into the void"])?;
    bob.wait_for(WAIT, is("invitation")).await?;
    let stderr = failed(send, PROTOCOL_TIMEOUT).await?;
    assert!(
        stderr.contains("OTR with bob was not established"),
        "{stderr}"
    );
    assert!(stderr.contains("timeout"), "{stderr}");
    assert!(!sim.audit().contains("into the void"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_fails_a_held_send_at_once() -> anyhow::Result<()> {
    let sim = rcsim::start(
        sim_config(&["alice", "bob"], &[("alice", "bob")]),
        "127.0.0.1:0".parse()?,
    )
    .await?;
    let url = sim.http_url();
    let bob = stock(&url, "bob", &["--ignore-invitations"]).await?;
    let alice = Node::start(&url, "alice", REQUIRE_BOB).await?;

    let send = otrctl_in_background(&alice, &["send", "bob", "held across a lock"])?;
    bob.wait_for(WAIT, is("invitation")).await?;
    alice.ctl(&["lock"])?;
    // Well within the 10 s invitation window: the lock, not a timeout, ended it.
    let stderr = failed(send, Duration::from_secs(5)).await?;
    assert!(stderr.contains("every session was ended"), "{stderr}");
    assert!(stderr.contains("bob"), "{stderr}");
    assert!(!sim.audit().contains("held across a lock"));
    Ok(())
}
