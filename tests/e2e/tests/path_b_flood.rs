//! Issue 15 end to end, third-user input on the 8.x relays: alice and bob (real `otrd` processes)
//! talk natively over path B (`UI_Use_Real_Name` refuses path A) while mallory — a third user who
//! only shares a DM with alice — floods alice's path B through her own logged-in websocket with
//! about 1,000 forged frames a second (`rcsim::flood`: oversized, too many items, bad runs and
//! claims, bogus fragments, forged and own probes, garbage ciphertexts and stock signals claiming
//! to be bob, replays, non-envelopes).
//!
//! While the flood runs: every message between alice and bob is delivered, exactly once and
//! within a few seconds; alice answers at most about one probe per room every couple of seconds
//! (her rate-limit budget is not mallory's to spend); then `otrctl lock` ends the session — alice
//! reports it ended and bob is told — asserted by events, not by a timing budget (that is the
//! benchmark's job).

use anyhow::Context;
use otrd_e2e::attack::{deliver, establish_native, Findings, Party};
use otrd_e2e::otr::{eventually, password, sim_config, user_id, WAIT};
use otrd_proto::v1::event::Kind;
use otrd_proto::v1::{Direction, SessionState};
use rcsim::flood::{Flood, FloodTarget};
use rcsim::user_client::UserClient;
use std::sync::Arc;
use std::time::{Duration, Instant};

const AUTO_ACCEPT: &str = "[policy]\nauto_accept = true\n";

/// Forged frames per second.
const RATE: u32 = 1_000;

/// Messages each way while the flood runs.
const MESSAGES: usize = 8;

/// Each message through the flood must be shown and acknowledged within this. Without a flood it
/// takes milliseconds; one that needs the sender's resends to get past the flood (tens of
/// seconds) is as good as lost to the person waiting for it.
const THROUGH: Duration = Duration::from_secs(5);

/// How long the flood runs before the first message.
const WARM_UP: Duration = Duration::from_secs(3);

/// How long the flood runs at least (the messages and the lock happen inside it).
const FLOOD_AT_LEAST: Duration = Duration::from_secs(5);

/// An 8.x simulator where path A is refused (display names differ and `UI_Use_Real_Name` is on),
/// so alice and bob talk over path B, the one a third user can write to. Rate limits off: one
/// user is held to two calls a second; the flood stands for many accounts.
async fn sim() -> anyhow::Result<rcsim::SimHandle> {
    let mut cfg = sim_config(
        &["alice", "bob", "mallory"],
        &[("alice", "bob"), ("alice", "mallory")],
    );
    for user in &mut cfg.users {
        user.name = Some(format!("{} Example", user.username.to_uppercase()));
    }
    cfg.mode = rcsim::Mode::V8;
    cfg.ui_use_real_name = true;
    let sim = rcsim::start(cfg, "127.0.0.1:0".parse()?).await?;
    sim.set_rate_limits(false);
    Ok(sim)
}

/// `probe_ack` items alice wrote on path B.
fn probe_answers(audit: &rcsim::Audit, alice_uid: &str) -> usize {
    audit
        .sent_by(alice_uid)
        .iter()
        .filter(|r| r.data.contains("stream-notify-room-users"))
        .map(|r| r.data.matches("\"probe_ack\"").count())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_third_user_flooding_path_b_loses_no_message_and_lock_still_ends_the_session(
) -> anyhow::Result<()> {
    let sim = sim().await?;
    let url = sim.http_url();
    let alice = Party::start(&url, "alice", "").await?;
    let bob = Party::start(&url, "bob", AUTO_ACCEPT).await?;
    establish_native(&alice, &bob).await?;
    let session = alice.session_with("bob")?;
    anyhow::ensure!(
        session["transport"] == "video_conference",
        "the session is not on path B: {session}"
    );
    deliver(&alice, &bob, "before the flood", WAIT).await?;
    let probes_before = probe_answers(&sim.audit(), &user_id("alice"));

    let mallory =
        Arc::new(UserClient::login(&sim.ws_url(), "mallory", &password("mallory")).await?);
    let flood = Flood::start(
        mallory.clone(),
        FloodTarget {
            shared_room: "dm-alice-mallory".into(),
            flooder_uid: mallory.uid().to_owned(),
            session_room: "dm-alice-bob".into(),
            peer_uid: user_id("bob"),
        },
        RATE,
    );
    let flooding = Instant::now();
    // Past any burst allowance the victim keeps for a room: the messages below go through a flood
    // that has been on for a while, not its first second.
    eventually(WAIT, "the flood is under way", || {
        let (n, t) = (flood.frames_sent(), flooding.elapsed());
        async move { Ok(n >= u64::from(RATE) && t >= WARM_UP) }
    })
    .await?;

    let mut f = Findings::default();
    let (mb, ma) = (bob.log.len(), alice.log.len());
    for i in 0..MESSAGES {
        let a = deliver(
            &alice,
            &bob,
            &format!("during the flood {i}, alice to bob"),
            THROUGH,
        )
        .await;
        let b = deliver(
            &bob,
            &alice,
            &format!("during the flood {i}, bob to alice"),
            THROUGH,
        )
        .await;
        let failed = a.is_err() || b.is_err();
        f.result(a);
        f.result(b);
        if failed {
            break; // one lost message says it; the rest would only wait out the same deadline
        }
    }
    for (me, peer, mark) in [(&bob, "alice", mb), (&alice, "bob", ma)] {
        let shown = me
            .log
            .since(mark)
            .iter()
            .filter(|k| matches!(k, Kind::Message(m) if m.peer == peer && m.direction == Direction::In as i32))
            .count();
        f.check(shown <= MESSAGES, || {
            format!(
                "{} showed {shown} messages from {peer} for {MESSAGES} sent",
                me.user()
            )
        });
    }
    if let Some(left) = FLOOD_AT_LEAST.checked_sub(flooding.elapsed()) {
        // The lock must also happen under the flood: let it run its minimum first.
        eventually(left + WAIT, "the flood ran its minimum", || {
            let done = flooding.elapsed() >= FLOOD_AT_LEAST;
            async move { Ok(done) }
        })
        .await?;
    }

    let (ma, mb) = (alice.log.len(), bob.log.len());
    f.result(alice.node.ctl(&["lock"]).context("otrctl lock"));
    f.result(alice.wait_state(ma, "bob", SessionState::Ended, WAIT).await);
    f.result(
        bob.wait_state(mb, "alice", SessionState::Ended, WAIT)
            .await
            .context("bob was not told of the lock"),
    );
    let stats = flood.stop().await;
    let flood_secs = stats.elapsed.as_secs_f64();

    // Not a benchmark (that is otrd-bench's path-B flood case), only proof the flood was heavy:
    // on a shared 2-core machine the generator (in this process, with rcsim) gets what is left.
    f.check(stats.rate() >= f64::from(RATE) * 0.3, || {
        format!("the flood ran at only {:.0} frames/s", stats.rate())
    });
    f.check(
        mallory
            .stats()
            .errors
            .load(std::sync::atomic::Ordering::Relaxed)
            == 0,
        || "the server refused some of the flood's calls".into(),
    );
    let answered = probe_answers(&sim.audit(), &user_id("alice")) - probes_before;
    // "At most one probe per room every few seconds": two rooms, generously one per 2 s each.
    let bound = 2 * (1 + (flood_secs / 2.0).ceil() as usize);
    f.check(answered <= bound, || {
        format!(
            "alice answered {answered} probes during {flood_secs:.1} s of flood (bound {bound})"
        )
    });
    f.result(
        alice
            .node
            .status()
            .await
            .context("alice no longer answers GetStatus"),
    );
    eprintln!(
        "flood: {} frames ({} items, {:.1} MB) in {flood_secs:.1} s = {:.0}/s; alice answered {answered} probes",
        stats.frames,
        stats.items,
        stats.bytes as f64 / 1e6,
        stats.rate()
    );
    f.finish("path B flood")
}
