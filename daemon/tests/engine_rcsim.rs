//! The engine end to end against rcsim, in-process: two engines (two users) start, accept, chat,
//! refresh and end OTR through the simulated server — and the server never sees a plaintext.
#![allow(clippy::unwrap_used)] // a panic in a test is a failed test

mod support;

use otrd::engine::{self, Direction, EventKind, PeerRef, SchemePreference, SessionState};
use otrd::secure::SecretString;
use support::engine::{account, connected, wait_event};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_engines_chat_over_the_legacy_scheme_and_the_server_sees_no_plaintext() {
    let sim = rcsim::start(rcsim::SimConfig::demo(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let url = sim.http_url();
    let (me, _t1) = engine::spawn(account(&url, "me", "demo", false, None));
    let (echo, _t2) = engine::spawn(account(&url, "echo", "echo", false, None));
    connected(&me).await;
    connected(&echo).await;
    let (_, mut me_ev) = me.watch(false).await.unwrap();
    let (_, mut echo_ev) = echo.watch(false).await.unwrap();

    let info = me
        .start(PeerRef::Username("echo".into()), SchemePreference::Legacy)
        .await
        .unwrap();
    assert_eq!(info.state, SessionState::Establishing);
    wait_event(
        &mut echo_ev,
        |k| matches!(k, EventKind::Invitation { peer, .. } if peer == "me"),
    )
    .await;
    echo.accept(PeerRef::Username("me".into()), None)
        .await
        .unwrap();
    wait_event(&mut me_ev, |k| {
        matches!(
            k,
            EventKind::State {
                state: SessionState::Established,
                ..
            }
        )
    })
    .await;

    let secret = "the eagle lands at midnight ✓";
    let sent = me
        .send(PeerRef::Username("echo".into()), SecretString::from(secret))
        .await
        .unwrap();
    let got = wait_event(&mut echo_ev, |k| {
        matches!(
            k,
            EventKind::Message {
                direction: Direction::In,
                ..
            }
        )
    })
    .await;
    let EventKind::Message { text, id, .. } = got else {
        unreachable!()
    };
    assert_eq!(text.expose(), secret);
    assert_eq!(id, sent.id);
    wait_event(
        &mut me_ev,
        |k| matches!(k, EventKind::Delivered { id, .. } if *id == sent.id),
    )
    .await;

    me.end(PeerRef::Username("echo".into())).await.unwrap();
    wait_event(&mut echo_ev, |k| {
        matches!(
            k,
            EventKind::State {
                state: SessionState::Ended,
                ..
            } | EventKind::State {
                state: SessionState::NotStarted,
                ..
            }
        )
    })
    .await;
    let err = me
        .send(
            PeerRef::Username("echo".into()),
            SecretString::from("after end"),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, engine::EngineError::FailedPrecondition(_)),
        "{err:?}"
    );

    let audit = sim.audit();
    assert!(
        !audit.contains("eagle lands"),
        "plaintext reached the server"
    );
    assert!(!audit.contains("after end"));
    // The only stored trace is the stock client's own system message (`user_joined_otr`, which
    // carries nothing but the username); no OTR message is ever stored.
    for stored in audit.stored_messages() {
        let t = stored.get("t").and_then(|t| t.as_str()).unwrap_or("");
        assert!(t.ends_with("_otr") && t != "otr", "stored: {stored}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_engines_negotiate_native_and_agree_on_fingerprints_and_sas() {
    let sim = rcsim::start(rcsim::SimConfig::demo(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let url = sim.http_url();
    let dir = tempfile::tempdir().unwrap();
    let (me, _t1) = engine::spawn(account(&url, "me", "demo", false, Some(dir.path())));
    let (echo, _t2) = engine::spawn(account(&url, "echo", "echo", true, Some(dir.path())));
    connected(&me).await;
    connected(&echo).await;
    let (_, mut me_ev) = me.watch(false).await.unwrap();
    let (_, mut echo_ev) = echo.watch(false).await.unwrap();

    me.start(PeerRef::Username("echo".into()), SchemePreference::Auto)
        .await
        .unwrap();
    let est = wait_event(&mut me_ev, |k| {
        matches!(
            k,
            EventKind::State {
                state: SessionState::Established,
                ..
            }
        )
    })
    .await;
    let EventKind::State { mode, trust, .. } = est else {
        unreachable!()
    };
    assert_eq!(mode, Some(engine::Mode::Native));
    assert_eq!(
        trust,
        engine::Trust::Unverified,
        "first use is remembered, not verified"
    );
    wait_event(&mut echo_ev, |k| {
        matches!(
            k,
            EventKind::State {
                state: SessionState::Established,
                ..
            }
        )
    })
    .await;

    let mine = me
        .fingerprint(Some(PeerRef::Username("echo".into())))
        .await
        .unwrap();
    let theirs = echo
        .fingerprint(Some(PeerRef::Username("me".into())))
        .await
        .unwrap();
    assert_eq!(mine.peer_fingerprint, theirs.own_fingerprint);
    assert_eq!(theirs.peer_fingerprint, mine.own_fingerprint);
    assert!(!mine.sas.is_empty());
    assert_eq!(mine.sas, theirs.sas);

    let sent = me
        .send(
            PeerRef::Username("echo".into()),
            SecretString::from("native hello"),
        )
        .await
        .unwrap();
    let got = wait_event(&mut echo_ev, |k| {
        matches!(
            k,
            EventKind::Message {
                direction: Direction::In,
                ..
            }
        )
    })
    .await;
    let EventKind::Message { text, .. } = got else {
        unreachable!()
    };
    assert_eq!(text.expose(), "native hello");
    wait_event(
        &mut me_ev,
        |k| matches!(k, EventKind::Delivered { id, .. } if *id == sent.id),
    )
    .await;

    let wrong = me
        .trust(PeerRef::Username("echo".into()), "00".repeat(32))
        .await
        .unwrap_err();
    assert!(
        matches!(wrong, engine::EngineError::FailedPrecondition(_)),
        "{wrong:?}"
    );
    // An empty fingerprint never verifies (issue 16): the user must say what they compared.
    let empty = me
        .trust(PeerRef::Username("echo".into()), String::new())
        .await
        .unwrap_err();
    assert!(
        matches!(empty, engine::EngineError::InvalidArgument(_)),
        "{empty:?}"
    );
    // Accepting is not verifying; a wrong SAS verifies nothing; the compared one does.
    let accepted = me
        .accept_key(PeerRef::Username("echo".into()), String::new())
        .await
        .unwrap();
    assert_eq!(accepted.trust, Some(engine::Trust::Unverified));
    let bad_sas = me
        .confirm_sas(
            PeerRef::Username("echo".into()),
            "0000 0000 0000 0000 0000".into(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(bad_sas, engine::EngineError::FailedPrecondition(_)),
        "{bad_sas:?}"
    );
    let by_sas = me
        .confirm_sas(PeerRef::Username("echo".into()), mine.sas.clone())
        .await
        .unwrap();
    assert_eq!(by_sas.trust, Some(engine::Trust::Verified));
    let trusted = me
        .trust(
            PeerRef::Username("echo".into()),
            mine.peer_fingerprint.clone(),
        )
        .await
        .unwrap();
    assert_eq!(trusted.trust, Some(engine::Trust::Verified));
    assert!(!sim.audit().contains("native hello"));
}
