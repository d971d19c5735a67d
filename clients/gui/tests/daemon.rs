//! The worker and the view model against a real daemon (in-process demo + gRPC server).

mod common;

use common::{pump, TestDaemon};
use otrd_gui::model::{Delivery, Link, Privacy, ViewModel};
use otrd_gui::worker::{self, Request};
use otrd_proto::v1::{Direction, SessionState};
use std::sync::Arc;
use zeroize::Zeroizing;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_send_see_echo_and_delivered_mark() -> anyhow::Result<()> {
    let daemon = TestDaemon::start().await?;
    let (worker, mut updates) = worker::spawn(daemon.socket.clone(), Arc::new(|| {}));
    let mut m = ViewModel::new();
    pump(&mut m, &mut updates, "connected with echo listed", |m| {
        m.link() == Link::Connected && m.peer("echo").is_some()
    })
    .await?;
    assert_eq!(
        m.peer("echo").map(|p| p.privacy()),
        Some(Privacy::Plaintext)
    );
    m.select("echo");

    worker.request(Request::Start("echo".into()));
    pump(&mut m, &mut updates, "session with echo established", |m| {
        m.peer("echo")
            .is_some_and(|p| p.state == SessionState::Established)
    })
    .await?;
    assert_eq!(
        m.peer("echo").map(|p| p.privacy()),
        Some(Privacy::PrivateUnverified)
    );

    worker.request(Request::Send {
        peer: "echo".into(),
        text: Zeroizing::new("hello there".into()),
    });
    pump(&mut m, &mut updates, "delivered mark and the echo", |m| {
        let chat = m.chat("echo");
        chat.iter().any(|l| {
            l.direction == Direction::Out
                && l.text.as_str() == "hello there"
                && l.delivery == Delivery::Delivered
        }) && chat
            .iter()
            .any(|l| l.direction == Direction::In && l.text.as_str() == "echo: hello there")
    })
    .await?;

    // The verification dialog: both fingerprints and the SAS, then Trust turns it green.
    worker.request(Request::Fingerprint("echo".into()));
    pump(&mut m, &mut updates, "fingerprints and SAS", |m| {
        m.verification().is_some_and(|v| {
            v.peer == "echo"
                && !v.own_fingerprint.is_empty()
                && !v.peer_fingerprint.is_empty()
                && !v.sas.is_empty()
        })
    })
    .await?;
    let fingerprint = m
        .verification()
        .map(|v| v.peer_fingerprint.clone())
        .unwrap_or_default();
    worker.request(Request::Trust {
        peer: "echo".into(),
        fingerprint,
    });
    pump(&mut m, &mut updates, "private and verified", |m| {
        m.peer("echo")
            .is_some_and(|p| p.privacy() == Privacy::PrivateVerified)
    })
    .await?;

    worker.request(Request::End("echo".into()));
    pump(&mut m, &mut updates, "session ended and wiped", |m| {
        m.peer("echo")
            .is_some_and(|p| p.privacy() == Privacy::Ended)
            && m.chat("echo").is_empty()
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shows_disconnected_and_reconnects_when_the_daemon_comes_back() -> anyhow::Result<()> {
    let mut daemon = TestDaemon::start().await?;
    let (worker, mut updates) = worker::spawn(daemon.socket.clone(), Arc::new(|| {}));
    let mut m = ViewModel::new();
    pump(&mut m, &mut updates, "connected", |m| {
        m.link() == Link::Connected
    })
    .await?;

    daemon.stop_server().await?;
    pump(&mut m, &mut updates, "disconnected", |m| {
        matches!(m.link(), Link::Disconnected { .. })
    })
    .await?;
    // Requests while down fail at once with a notice instead of hanging.
    worker.request(Request::Start("echo".into()));
    pump(&mut m, &mut updates, "refusal notice", |m| {
        m.notices()
            .any(|n| n.text.contains("not connected to otrd"))
    })
    .await?;

    daemon.start_server()?;
    pump(&mut m, &mut updates, "reconnected", |m| {
        m.link() == Link::Connected && m.peer("echo").is_some()
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invitation_from_echo_prompts_and_accept_establishes() -> anyhow::Result<()> {
    let daemon = TestDaemon::start().await?;
    let (worker, mut updates) = worker::spawn(daemon.socket.clone(), Arc::new(|| {}));
    let mut m = ViewModel::new();
    pump(&mut m, &mut updates, "connected", |m| {
        m.link() == Link::Connected
    })
    .await?;
    daemon
        .demo
        .echo()
        .start(
            otrd::engine::PeerRef::Username("me".into()),
            otrd::engine::SchemePreference::Auto,
        )
        .await?;
    pump(&mut m, &mut updates, "invitation from echo", |m| {
        m.invitations().any(|i| i.peer == "echo")
    })
    .await?;
    m.answered("echo");
    worker.request(Request::Accept("echo".into(), 0));
    pump(&mut m, &mut updates, "established after accepting", |m| {
        m.peer("echo")
            .is_some_and(|p| p.state == SessionState::Established)
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_keeps_the_session_and_lock_all_ends_it() -> anyhow::Result<()> {
    let daemon = TestDaemon::start().await?;
    daemon.establish_and_chat("before the lock").await?;
    let (worker, mut updates) = worker::spawn(daemon.socket.clone(), Arc::new(|| {}));
    let mut m = ViewModel::new();
    pump(
        &mut m,
        &mut updates,
        "established session and its scrollback",
        |m| {
            m.peer("echo")
                .is_some_and(|p| p.state == SessionState::Established)
                && m.chat("echo")
                    .iter()
                    .any(|l| l.text.as_str() == "echo: before the lock")
        },
    )
    .await?;
    // Refresh re-keys natively: the session stays established (and usable) throughout, and
    // says so when the new keys are confirmed.
    worker.request(Request::Refresh("echo".into()));
    pump(&mut m, &mut updates, "keys refreshed", |m| {
        m.peer("echo")
            .is_some_and(|p| p.state == SessionState::Established && p.detail == "keys refreshed")
    })
    .await?;
    worker.request(Request::Send {
        peer: "echo".into(),
        text: Zeroizing::new("after refresh".into()),
    });
    pump(&mut m, &mut updates, "echo after the refresh", |m| {
        m.chat("echo")
            .iter()
            .any(|l| l.text.as_str() == "echo: after refresh")
    })
    .await?;
    assert!(
        !m.notices().any(|n| n.error),
        "{:?}",
        m.notices().collect::<Vec<_>>()
    );
    worker.request(Request::EndAll);
    pump(
        &mut m,
        &mut updates,
        "lock-all notice and ended session",
        |m| {
            m.notices().any(|n| n.text.starts_with("Locked: 1 session"))
                && m.peer("echo")
                    .is_some_and(|p| p.privacy() == Privacy::Ended)
        },
    )
    .await?;
    assert!(
        !m.notices().any(|n| n.error),
        "{:?}",
        m.notices().collect::<Vec<_>>()
    );
    Ok(())
}
