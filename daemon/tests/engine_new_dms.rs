//! Sessions in DMs that did not exist a moment ago, in-process against rcsim: many opened at
//! once all establish — each invitee learns of its new DM from the server while the invitation is
//! already on its way, and each acknowledge comes back to a room the inviter has just opened.
#![allow(clippy::unwrap_used)] // a panic in a test is a failed test

mod support;

use otrd::engine::{self, PeerRef, SchemePreference, SessionState};
use support::engine::{account, connected, ENGINE_WAIT};

/// Well past any small bound on signals waiting for rooms. (The bug of acknowledges held while a
/// new room's streams were being subscribed showed only with slow subscriptions, which this test
/// does not make: the quick scale benchmark in CI caught it.)
const PEERS: usize = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_sessions_started_at_once_in_new_dms_all_establish() {
    let mut cfg = rcsim::SimConfig::demo();
    let names: Vec<String> = (0..PEERS).map(|i| format!("peer{i:02}")).collect();
    for (i, name) in names.iter().enumerate() {
        cfg.users.push(rcsim::UserConfig::new(
            &format!("PeerUser{i:09}"),
            name,
            "pw",
        ));
        // Each peer's only DM is with echo (so `connected` can see its room list loaded); the
        // DMs with `me` are created by the starts below.
        cfg.dms.push(rcsim::DmConfig {
            id: String::new(),
            usernames: [name.clone(), "echo".to_string()],
        });
    }
    let sim = rcsim::start(cfg, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    // The server's per-connection method limits would pace 50 invitations past the 10 s answer
    // window; this test is about the new rooms, not about pacing (engine_realtime covers that).
    sim.set_rate_limits(false);
    let url = sim.http_url();
    let (me, _) = engine::spawn(account(&url, "me", "demo", false, None));
    let mut peers = Vec::new();
    for name in &names {
        peers.push(engine::spawn(account(&url, name, "pw", true, None)).0);
    }
    connected(&me).await;
    for p in &peers {
        connected(p).await;
    }

    let starts: Vec<_> = names
        .iter()
        .map(|name| {
            let me = me.clone();
            let peer = PeerRef::Username(name.clone());
            tokio::spawn(async move { me.start(peer, SchemePreference::Auto).await })
        })
        .collect();
    for s in starts {
        s.await.unwrap().unwrap();
    }

    let deadline = tokio::time::Instant::now() + ENGINE_WAIT;
    loop {
        let sessions = me.list_sessions().await.unwrap();
        let established = sessions
            .iter()
            .filter(|s| s.state == SessionState::Established)
            .count();
        if established == PEERS {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{established} of {PEERS} established: {:?}",
            sessions
                .iter()
                .map(|s| (&s.peer, s.state))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
