//! Issue 16 item 8 end to end: a locked screen stays locked. After `otrctl lock`, bob's daemon —
//! configured to auto-accept everyone — does not accept alice's invitation, refuses `start` and
//! `accept` with a clear error, fails a `require_otr` send instead of holding it, and says
//! "locked" in its status; `otrctl unlock` ends that, and the same invitation flow establishes.

use otrd_e2e::otr::{sim_config, Node};
use otrd_proto::v1::SessionState;
use std::time::Duration;

const BOB: &str = "[policy]\nauto_accept = true\n\n[contacts.alice]\nrequire_otr = true\n";

async fn sim() -> anyhow::Result<rcsim::SimHandle> {
    let cfg = sim_config(&["alice", "bob"], &[("alice", "bob")]);
    rcsim::start(cfg, "127.0.0.1:0".parse()?).await
}

fn assert_locked_refusal((code, stderr): (i32, String), what: &str) {
    assert_eq!(code, 1, "{what}: {stderr}");
    assert!(stderr.contains("the screen is locked"), "{what}: {stderr}");
    assert!(stderr.contains("otrctl unlock"), "{what}: {stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_then_an_auto_accept_contact_inviting_is_refused_until_unlock() -> anyhow::Result<()>
{
    let sim = sim().await?;
    let url = sim.http_url();
    let mut alice = Node::start(&url, "alice", "").await?;
    let mut bob = Node::start(&url, "bob", BOB).await?;

    let locked = bob.ctl(&["lock"])?;
    assert_eq!(locked["ended"], 0, "{locked}");
    let status = bob.status().await?;
    assert!(status.locked, "status shows the lock");
    assert_eq!(status.lock_reason, "otrctl lock");
    let status = bob.ctl(&["status"])?;
    assert_eq!(status["locked"], true, "{status}");

    // alice invites; bob's daemon shows the invitation but does not accept it.
    alice.ctl(&["start", "bob"])?;
    bob.wait_invitation("alice").await?;
    let established = bob
        .wait_state_within("alice", SessionState::Established, Duration::from_secs(3))
        .await;
    assert!(established.is_err(), "auto-accepted while locked");
    assert_locked_refusal(bob.ctl_fails(&["accept", "alice"])?, "accept");
    assert_locked_refusal(bob.ctl_fails(&["start", "alice"])?, "start");
    let refused = bob.ctl_fails(&["send", "alice", "sent while locked"])?;
    assert_locked_refusal(refused.clone(), "require_otr send");
    assert!(refused.1.contains("not sent"), "{}", refused.1);

    // Unlocked: status says so, and the invitation is answered as configured.
    let unlocked = bob.ctl(&["unlock"])?;
    assert_eq!(unlocked["was_locked"], true, "{unlocked}");
    assert!(!bob.status().await?.locked);
    bob.ctl(&["accept", "alice"])?;
    bob.wait_state("alice", SessionState::Established).await?;
    alice.wait_state("bob", SessionState::Established).await?;

    // And a fresh invitation after the unlock is auto-accepted again.
    bob.ctl(&["lock"])?;
    bob.ctl(&["unlock"])?;
    alice.ctl(&["start", "bob"])?;
    bob.wait_state("alice", SessionState::Established).await?;
    Ok(())
}
