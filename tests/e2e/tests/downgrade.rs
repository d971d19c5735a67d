//! Issue 15 end to end, no silent way from native to legacy: rcsim strips the native offer
//! (`MitmMode::StripOffer`) from handshakes between two real `otrd` processes.
//!
//! * First contact, nothing required: the stripped offer still yields a legacy session — the
//!   documented first-contact limitation, pinned here so a change to it is deliberate.
//! * First contact with `require_native` (global `[policy]`, or `[contacts.<user>]` on the
//!   initiator, or on the responder): a clear `native_required` error, never a legacy session,
//!   and the attempt ends (error, timeout or declined) within 15 s.
//! * A peer known to speak native (a native session happened before): the stripped offer is a
//!   `downgrade` alarm and, under the default `refuse` policy, no session; under `warn` a legacy
//!   session with the warning "legacy — the server could read this" in `otrctl sessions`.
//! * Rocket.Chat 8.x (no stock clients, relays only): a stripped offer is refused outright.

use anyhow::Context;
use otrd_e2e::attack::{brief, establish_native, is_state, Findings, Party};
use otrd_e2e::otr::{sim_config, user_id, WAIT};
use otrd_proto::v1::event::Kind;
use otrd_proto::v1::{Mode, SessionState};
use rcsim::MitmMode;
use std::time::{Duration, Instant};

const AUTO_ACCEPT: &str = "[policy]\nauto_accept = true\n";

/// "Promptly": the refusal follows the stripped answer, which takes one round trip.
const PROMPTLY: Duration = Duration::from_secs(10);

/// The attempt must be over (error, timeout or declined) within this of the start.
const SETTLED: Duration = Duration::from_secs(15);

/// The warning `otrctl sessions` shows on a legacy session with a peer known to run otrd.
const LEGACY_WARNING: &str = "legacy — the server could read this";

async fn sim(v8: bool) -> anyhow::Result<rcsim::SimHandle> {
    let mut cfg = sim_config(&["alice", "bob"], &[("alice", "bob")]);
    if v8 {
        cfg.mode = rcsim::Mode::V8;
    }
    rcsim::start(cfg, "127.0.0.1:0".parse()?).await
}

/// States an attempt that did not succeed may end in.
const OVER: [SessionState; 3] = [
    SessionState::Error,
    SessionState::Timeout,
    SessionState::Declined,
];

fn is_over(k: &Kind, peer: &str) -> bool {
    OVER.iter().any(|s| is_state(k, peer, *s))
}

/// An error or alarm event with one of `codes`.
fn has_code(k: &Kind, codes: &[&str]) -> bool {
    match k {
        Kind::Error(e) => codes.contains(&e.code.as_str()),
        Kind::Alarm(a) => codes.contains(&a.code.as_str()),
        _ => false,
    }
}

/// No state change to established in `party`'s log since `mark`.
fn never_established(f: &mut Findings, party: &Party, mark: usize, peer: &str) {
    for k in party.log.since(mark) {
        f.check(!is_state(&k, peer, SessionState::Established), || {
            format!(
                "{} established a session with {peer}: {}",
                party.user(),
                brief(&k)
            )
        });
    }
}

/// `otrctl --json start PEER`, which may succeed (the offer went out) or fail (refused at
/// once): either is fine here; its output goes into failure messages.
fn start(from: &Party, peer: &str) -> anyhow::Result<String> {
    let out = from.node.daemon.otrctl(&["--json", "start", peer])?;
    Ok(format!(
        "exit {:?}: {}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).trim(),
        String::from_utf8_lossy(&out.stderr).trim()
    ))
}

/// Waits until `party`'s session with `peer` is no longer established (a peer told of the
/// refusal ends its half), at most `within`.
async fn ends_up_not_established(party: &Party, peer: &str, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        let established = party
            .session_with(peer)
            .is_ok_and(|s| s["state"] == "established");
        if !established {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The initiator requires native (its config `alice_config`); the server strips its offer on
/// first contact; bob auto-accepts what he sees, a stock offer.
async fn initiator_requiring_native_refuses(alice_config: &str) -> anyhow::Result<()> {
    let sim = sim(false).await?;
    sim.set_mitm(MitmMode::StripOffer);
    let url = sim.http_url();
    let alice = Party::start(&url, "alice", alice_config).await?;
    let bob = Party::start(&url, "bob", AUTO_ACCEPT).await?;
    let (ma, mb) = (alice.log.len(), bob.log.len());
    let started = Instant::now();
    let out = start(&alice, "bob")?;

    let mut f = Findings::default();
    let refused = alice
        .log
        .wait_since(ma, PROMPTLY, |k| {
            matches!(k, Kind::Error(e) if e.code == "native_required")
                || matches!(k, Kind::Alarm(a) if a.code == "downgrade")
        })
        .await;
    f.result(refused.with_context(|| format!("alice: no `native_required` error (start: {out})")));
    let left = SETTLED.saturating_sub(started.elapsed());
    f.result(
        alice
            .log
            .wait_since(ma, left, |k| is_over(k, "bob"))
            .await
            .context("alice: the attempt did not end in error or timeout within 15 s"),
    );
    never_established(&mut f, &alice, ma, "bob");
    f.check(sim.mitm_rewrites() >= 1, || {
        "the server stripped nothing".into()
    });
    f.check(
        alice
            .node
            .ctl_fails(&["send", "bob", "must not go out"])
            .is_ok(),
        || "alice could send to bob".into(),
    );
    // bob saw a stock offer and may have answered it; alice's refusal must not leave him a session.
    f.check(
        ends_up_not_established(&bob, "alice", SETTLED).await,
        || {
            let seen: Vec<String> = bob.log.since(mb).iter().map(brief).collect();
            format!("bob still holds an established session with alice: {seen:?}")
        },
    );
    f.check(!sim.audit().contains("must not go out"), || {
        "a plaintext reached the server".into()
    });
    f.finish("initiator with require_native, offer stripped")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_contact_stripped_without_require_native_still_gives_legacy() -> anyhow::Result<()> {
    // The documented first-contact limitation: nothing tells either side that the other runs otrd.
    let sim = sim(false).await?;
    sim.set_mitm(MitmMode::StripOffer);
    let url = sim.http_url();
    let alice = Party::start(&url, "alice", "").await?;
    let bob = Party::start(&url, "bob", AUTO_ACCEPT).await?;
    let (ma, mb) = (alice.log.len(), bob.log.len());
    alice.node.ctl(&["start", "bob"])?;
    let a = alice
        .wait_state(ma, "bob", SessionState::Established, WAIT)
        .await?;
    let b = bob
        .wait_state(mb, "alice", SessionState::Established, WAIT)
        .await?;
    assert_eq!((a.mode, b.mode), (Mode::Legacy as i32, Mode::Legacy as i32));
    assert!(sim.mitm_rewrites() >= 1, "the server stripped nothing");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_contact_stripped_with_global_require_native_is_an_error_not_legacy(
) -> anyhow::Result<()> {
    initiator_requiring_native_refuses("[policy]\nrequire_native = true\n").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_contact_stripped_with_require_native_for_the_contact_is_an_error_not_legacy(
) -> anyhow::Result<()> {
    initiator_requiring_native_refuses("[contacts.bob]\nrequire_native = true\n").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_responder_requiring_native_refuses_a_stripped_offer() -> anyhow::Result<()> {
    let sim = sim(false).await?;
    sim.set_mitm(MitmMode::StripOffer);
    let url = sim.http_url();
    let alice = Party::start(&url, "alice", "").await?;
    let bob = Party::start(
        &url,
        "bob",
        "[policy]\nauto_accept = true\n\n[contacts.alice]\nrequire_native = true\n",
    )
    .await?;
    let (ma, mb) = (alice.log.len(), bob.log.len());
    let started = Instant::now();
    alice.node.ctl(&["start", "bob"])?;

    let mut f = Findings::default();
    f.result(
        bob.log
            .wait_since(mb, PROMPTLY, |k| has_code(k, &["native_required"]))
            .await
            .context("bob: no `native_required` error for the stock offer"),
    );
    let accept = bob.node.ctl_fails(&["accept", "alice"]);
    f.check(accept.is_ok(), || {
        "bob's explicit accept of the stock offer succeeded".into()
    });
    let left = SETTLED.saturating_sub(started.elapsed());
    f.result(
        alice
            .log
            .wait_since(ma, left, |k| is_over(k, "bob"))
            .await
            .context("alice: the attempt did not end within 15 s"),
    );
    never_established(&mut f, &alice, ma, "bob");
    never_established(&mut f, &bob, mb, "alice");
    // Nothing went back that the server could use: no stock acknowledge from bob.
    let bob_uid = user_id("bob");
    let acks = sim
        .audit()
        .sent_by(&bob_uid)
        .iter()
        .filter(|r| r.data.contains("stream-notify-user") && r.data.contains("\"acknowledge\""))
        .count();
    f.check(acks == 0, || format!("bob sent {acks} acknowledge(s)"));
    f.finish("responder with require_native, offer stripped")
}

/// alice and bob have a native session once, end it, then the server strips the next offer.
async fn known_native_then_stripped(
    config: &str,
) -> anyhow::Result<(rcsim::SimHandle, Party, Party)> {
    let sim = sim(false).await?;
    let url = sim.http_url();
    let alice = Party::start(&url, "alice", config).await?;
    let bob = Party::start(&url, "bob", &format!("{config}auto_accept = true\n")).await?;
    establish_native(&alice, &bob).await?;
    let mb = bob.log.len();
    alice.node.ctl(&["end", "bob"])?;
    bob.wait_state(mb, "alice", SessionState::Ended, WAIT)
        .await?;
    sim.set_mitm(MitmMode::StripOffer);
    Ok((sim, alice, bob))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_native_peer_stripped_later_is_a_downgrade_alarm_and_no_session(
) -> anyhow::Result<()> {
    let (sim, alice, bob) = known_native_then_stripped("[policy]\n").await?;
    let (ma, mb) = (alice.log.len(), bob.log.len());
    let started = Instant::now();
    let out = start(&alice, "bob")?;

    let mut f = Findings::default();
    f.result(
        bob.log
            .wait_since(
                mb,
                PROMPTLY,
                |k| matches!(k, Kind::Alarm(a) if a.code == "downgrade"),
            )
            .await
            .with_context(|| format!("bob: no `downgrade` alarm (alice's start: {out})")),
    );
    let left = SETTLED.saturating_sub(started.elapsed());
    f.result(
        alice
            .log
            .wait_since(ma, left, |k| is_over(k, "bob"))
            .await
            .context("alice: the attempt did not end within 15 s"),
    );
    never_established(&mut f, &alice, ma, "bob");
    never_established(&mut f, &bob, mb, "alice");
    f.check(sim.mitm_rewrites() >= 1, || {
        "the server stripped nothing".into()
    });
    f.finish("known native peer, offer stripped, downgrade = refuse")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_downgrade_warn_a_stripped_known_native_peer_goes_legacy_with_a_warning(
) -> anyhow::Result<()> {
    let (sim, alice, bob) = known_native_then_stripped("[policy]\ndowngrade = \"warn\"\n").await?;
    let (ma, mb) = (alice.log.len(), bob.log.len());
    alice.node.ctl(&["start", "bob"])?;

    let mut f = Findings::default();
    for (me, peer, mark) in [(&alice, "bob", ma), (&bob, "alice", mb)] {
        f.result(
            me.log
                .wait_since(
                    mark,
                    PROMPTLY,
                    |k| matches!(k, Kind::Alarm(a) if a.code == "downgrade"),
                )
                .await
                .with_context(|| format!("{}: no `downgrade` alarm", me.user())),
        );
        if let Some(s) = f.result(
            me.wait_state(mark, peer, SessionState::Established, WAIT)
                .await,
        ) {
            f.check(s.mode == Mode::Legacy as i32, || {
                format!("{}: {}", me.user(), brief(&Kind::State(s.clone())))
            });
        }
        if let Some(s) = f.result(me.session_with(peer)) {
            f.check(s["warning"] == LEGACY_WARNING, || {
                format!(
                    "{}: `otrctl sessions` shows no legacy warning: {s}",
                    me.user()
                )
            });
        }
    }
    f.check(sim.mitm_rewrites() >= 1, || {
        "the server stripped nothing".into()
    });
    f.finish("known native peer, offer stripped, downgrade = warn")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_8x_a_stripped_offer_is_refused_outright() -> anyhow::Result<()> {
    // No stock client speaks OTR on 8.x: a legacy offer there can only be an attack.
    let sim = sim(true).await?;
    sim.set_mitm(MitmMode::StripOffer);
    let url = sim.http_url();
    let alice = Party::start(&url, "alice", "").await?;
    let bob = Party::start(&url, "bob", AUTO_ACCEPT).await?;
    let (ma, mb) = (alice.log.len(), bob.log.len());
    let started = Instant::now();
    let out = start(&alice, "bob")?;

    let mut f = Findings::default();
    f.result(
        alice
            .log
            .wait_since(ma, SETTLED, |k| is_over(k, "bob"))
            .await
            .with_context(|| format!("alice: the attempt did not end within 15 s (start: {out})")),
    );
    // Whatever the two sides saw in the meantime, neither may have made a session of it.
    never_established(&mut f, &alice, ma, "bob");
    never_established(&mut f, &bob, mb, "alice");
    let left = SETTLED.saturating_sub(started.elapsed());
    f.check(ends_up_not_established(&bob, "alice", left).await, || {
        "bob holds an established session with alice".into()
    });
    // bob is the one who sees the stripped (stock) offer: he must say why he refused it.
    f.result(
        bob.log
            .wait_since(mb, PROMPTLY, |k| {
                has_code(k, &["downgrade", "native_required"])
            })
            .await
            .context("bob: no `downgrade` alarm for the stock offer"),
    );
    f.check(sim.mitm_rewrites() >= 1, || {
        "the server stripped nothing on 8.x".into()
    });
    f.finish("8.x, offer stripped")
}
