//! Issue 15 end to end: the server itself attacks an established native session between two real
//! `otrd` processes. rcsim's attacker forges stock signals — a `handshake` with and without
//! `refresh: true` carrying a P-256 key of its own, an `acknowledge` with another, a `deny`, an
//! `end` bare and with a bogus proof — into both users' streams, each claiming to come from the
//! other, on the route a genuine signal takes (the `<uid>/otr` relay on 7.x, an envelope on path
//! A on 8.x). It then derives every stock key it could share with either side and tries them on
//! every ciphertext that follows.
//!
//! After each forgery: messages still go both ways and are delivered, both sessions stay
//! established and native with no state change, each user gets a `forged_signal` alarm naming
//! the signal and the claimed sender, neither daemon sends a signal in answer, and the server
//! decrypted nothing. A native refresh between the two daemons still works and stays native.

use anyhow::{ensure, Context};
use otrd_e2e::attack::{brief, deliver, establish_native, Findings, Party};
use otrd_e2e::otr::{sim_config, WAIT};
use otrd_proto::v1::event::Kind;
use otrd_proto::v1::{Mode, SessionState};
use rcsim::{ForgedSignal, Forgery};
use std::time::Duration;

const AUTO_ACCEPT: &str = "[policy]\nauto_accept = true\n";

/// After a forgery a message must still get through well within this.
const AFTER: Duration = Duration::from_secs(10);

/// The alarm comes with the forged signal: once messages went both ways it must be there.
const ALARM: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy)]
enum Server {
    /// Rocket.Chat 7.x, OTR relayed: signals on `<uid>/otr`.
    V7,
    /// Rocket.Chat 8.x: otrd ↔ otrd over the realtime relays (path A here).
    V8,
}

async fn sim(server: Server) -> anyhow::Result<rcsim::SimHandle> {
    let mut cfg = sim_config(&["alice", "bob"], &[("alice", "bob")]);
    if let Server::V8 = server {
        cfg.mode = rcsim::Mode::V8;
    }
    rcsim::start(cfg, "127.0.0.1:0".parse()?).await
}

/// Forges each of `signals` into both sides of an established native session, then checks every
/// promise of issue 15 and reports all that were broken.
async fn forgeries_change_nothing(server: Server, signals: &[ForgedSignal]) -> anyhow::Result<()> {
    let sim = sim(server).await?;
    let url = sim.http_url();
    let alice = Party::start(&url, "alice", AUTO_ACCEPT).await?;
    let bob = Party::start(&url, "bob", AUTO_ACCEPT).await?;
    establish_native(&alice, &bob).await?;
    deliver(&alice, &bob, "before the forgery", WAIT).await?;
    deliver(&bob, &alice, "answer before the forgery", WAIT).await?;

    let marks = [alice.log.len(), bob.log.len()];
    for &signal in signals {
        for (victim, claimed) in [(&alice, &bob), (&bob, &alice)] {
            let forged = sim.forge(&Forgery::new(signal, victim.user(), claimed.user()))?;
            // A forgery no connection received would prove nothing.
            ensure!(
                forged.delivered > 0,
                "{signal:?} for {} reached no connection on {:?}",
                victim.user(),
                forged.route
            );
        }
    }

    let mut f = Findings::default();
    let sides = [(&alice, &bob, marks[0]), (&bob, &alice, marks[1])];
    for (i, (from, to)) in [(&alice, &bob), (&bob, &alice), (&alice, &bob)]
        .into_iter()
        .enumerate()
    {
        let text = format!("after the forgery #{i}, {} to {}", from.user(), to.user());
        f.result(deliver(from, to, &text, AFTER).await);
    }
    let mut kinds: Vec<&str> = signals.iter().map(|s| s.wire_kind()).collect();
    kinds.dedup();
    for (me, peer, mark) in sides {
        for &kind in &kinds {
            let alarm = me
                .log
                .wait_since(mark, ALARM, |k| {
                    matches!(k, Kind::Alarm(a) if a.code == "forged_signal"
                        && a.message.contains(kind) && a.message.contains(peer.user()))
                })
                .await;
            f.result(alarm.with_context(|| {
                format!(
                    "{}: no `forged_signal` alarm naming `{kind}` and {}",
                    me.user(),
                    peer.user()
                )
            }));
        }
        match me.session_with(peer.user()) {
            Ok(s) => f.check(s["state"] == "established" && s["mode"] == "native", || {
                format!("{}: the session with {} is now {s}", me.user(), peer.user())
            }),
            Err(e) => f.check(false, || format!("{e:#}")),
        }
        for k in me.log.since(mark) {
            if let Kind::State(s) = &k {
                f.check(
                    s.state == SessionState::Established as i32 && s.mode == Mode::Native as i32,
                    || format!("{}: the session changed: {}", me.user(), brief(&k)),
                );
            }
        }
    }

    let report = sim.attack_report();
    for a in &report.answers {
        f.check(false, || {
            let key = if a.public_key.is_some() {
                " carrying a new publicKey"
            } else {
                ""
            };
            format!(
                "{} sent `{}`{key} on {:?} after the forgery: {}",
                a.from_uid, a.kind, a.route, a.payload
            )
        });
    }
    f.check(report.decrypted.is_empty(), || {
        format!(
            "the server decrypted {} ciphertext(s) with its forged keys: {:?}",
            report.decrypted.len(),
            report
                .decrypted
                .iter()
                .map(|d| (&d.from_uid, &d.what, &d.plaintext))
                .collect::<Vec<_>>()
        )
    });
    // The attacker was on the path: it saw the messages it then failed to read.
    f.check(report.ciphertexts_after_forgery >= 3, || {
        format!(
            "the attacker saw only {} ciphertexts after its forgery",
            report.ciphertexts_after_forgery
        )
    });
    eprintln!(
        "{server:?} {signals:?}: forged {}, stock keys seen {}, keys held {}, ciphertexts tried {}",
        report.forged, report.victim_keys, report.keys, report.ciphertexts_after_forgery
    );
    f.finish(&format!("forged {signals:?} on {server:?}"))
}

/// `otrctl refresh` between two daemons re-keys natively: both established native again,
/// messages flow, and the genuine refresh raises no forged-signal alarm.
async fn native_refresh_stays_native(server: Server) -> anyhow::Result<()> {
    let sim = sim(server).await?;
    let url = sim.http_url();
    let alice = Party::start(&url, "alice", AUTO_ACCEPT).await?;
    let bob = Party::start(&url, "bob", AUTO_ACCEPT).await?;
    establish_native(&alice, &bob).await?;
    deliver(&alice, &bob, "before the refresh", WAIT).await?;
    let marks = [alice.log.len(), bob.log.len()];
    alice.node.ctl(&["refresh", "bob"])?;
    let mut f = Findings::default();
    for (me, peer, mark) in [(&alice, &bob, marks[0]), (&bob, &alice, marks[1])] {
        if let Some(s) = f.result(
            me.wait_state(mark, peer.user(), SessionState::Established, WAIT)
                .await,
        ) {
            f.check(s.mode == Mode::Native as i32, || {
                format!(
                    "{}: refreshed to {}",
                    me.user(),
                    brief(&Kind::State(s.clone()))
                )
            });
        }
    }
    f.result(deliver(&bob, &alice, "after the refresh", WAIT).await);
    f.result(deliver(&alice, &bob, "after the refresh, back", WAIT).await);
    for (me, peer, mark) in [(&alice, &bob, marks[0]), (&bob, &alice, marks[1])] {
        if let Some(s) = f.result(me.session_with(peer.user())) {
            f.check(s["mode"] == "native", || format!("{}: {s}", me.user()));
        }
        for k in me.log.since(mark) {
            if let Kind::Alarm(_) = &k {
                f.check(false, || {
                    format!(
                        "{}: alarm during a genuine refresh: {}",
                        me.user(),
                        brief(&k)
                    )
                });
            }
        }
    }
    f.check(sim.attack_report().decrypted.is_empty(), || {
        "the server decrypted something".into()
    });
    f.finish(&format!("native refresh on {server:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v7_forged_refresh_handshake_changes_nothing() -> anyhow::Result<()> {
    forgeries_change_nothing(Server::V7, &[ForgedSignal::RefreshHandshake]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v7_forged_handshake_changes_nothing() -> anyhow::Result<()> {
    forgeries_change_nothing(Server::V7, &[ForgedSignal::Handshake]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v7_forged_acknowledge_changes_nothing() -> anyhow::Result<()> {
    forgeries_change_nothing(Server::V7, &[ForgedSignal::Acknowledge]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v7_forged_deny_changes_nothing() -> anyhow::Result<()> {
    forgeries_change_nothing(Server::V7, &[ForgedSignal::Deny]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v7_forged_end_with_and_without_proof_changes_nothing() -> anyhow::Result<()> {
    forgeries_change_nothing(
        Server::V7,
        &[ForgedSignal::End, ForgedSignal::EndWithBogusProof],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v8_forged_refresh_handshake_changes_nothing() -> anyhow::Result<()> {
    forgeries_change_nothing(Server::V8, &[ForgedSignal::RefreshHandshake]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v8_forged_handshake_changes_nothing() -> anyhow::Result<()> {
    forgeries_change_nothing(Server::V8, &[ForgedSignal::Handshake]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v8_forged_acknowledge_changes_nothing() -> anyhow::Result<()> {
    forgeries_change_nothing(Server::V8, &[ForgedSignal::Acknowledge]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v8_forged_deny_changes_nothing() -> anyhow::Result<()> {
    forgeries_change_nothing(Server::V8, &[ForgedSignal::Deny]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v8_forged_end_with_and_without_proof_changes_nothing() -> anyhow::Result<()> {
    forgeries_change_nothing(
        Server::V8,
        &[ForgedSignal::End, ForgedSignal::EndWithBogusProof],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v7_native_refresh_between_daemons_stays_native() -> anyhow::Result<()> {
    native_refresh_stays_native(Server::V7).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v8_native_refresh_between_daemons_stays_native() -> anyhow::Result<()> {
    native_refresh_stays_native(Server::V8).await
}
