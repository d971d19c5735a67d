//! Ending a session with the demo contact `echo` and starting the next one at once, many times
//! in a row: the restart's handshake lands while echo is still handling the `end` (or right
//! behind it), which is where a restart race between two daemons would show. Every round must
//! be established on both sides with the same keys: a message goes out and echo's answer comes
//! back decrypted.
//!
//! Written while chasing the Neovim plugin's "second session stays establishing" flake; the
//! daemons were not the cause (the plugin's `otrctl rpc` bridge lost the `established` event,
//! see tests/e2e/tests/rpc_bridge.rs), and this keeps it that way for the daemon side.

use anyhow::{bail, Context};
use otrd::engine::{Direction, Event, EventKind, PeerRef, SchemePreference, SessionState};
use otrd::secure::SecretString;
use std::time::Duration;
use tokio::sync::broadcast;

/// Restarts in a row. Each round costs `me` three `stream-notify-user` calls (handshake, native
/// confirmation, end) and the simulator allows 40 per connection in 40 s, as Rocket.Chat does:
/// more rounds would wait on the server's rate limit, not on the daemons.
const ROUNDS: usize = 12;
/// Bound on each wait.
const WITHIN: Duration = Duration::from_secs(20);

fn echo() -> PeerRef {
    PeerRef::Username(otrd::demo::ECHO_USER.into())
}

/// The next event matching `want`; a session with echo failing (declined, timed out, error) or
/// any error event fails at once, with what it said.
async fn until(
    rx: &mut broadcast::Receiver<Event>,
    what: &str,
    want: impl Fn(&EventKind) -> bool,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + WITHIN;
    let mut seen = Vec::new();
    loop {
        let event = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .with_context(|| format!("no {what} within {WITHIN:?}; saw {seen:#?}"))??;
        if want(&event.kind) {
            return Ok(());
        }
        match &event.kind {
            EventKind::State {
                state: SessionState::Declined | SessionState::Timeout | SessionState::Error,
                detail,
                ..
            } => bail!("waiting for {what}: the session failed: {detail}"),
            EventKind::Error { code, message, .. } => {
                bail!("waiting for {what}: error {code}: {message}")
            }
            EventKind::Alarm { code, message, .. } => {
                bail!("waiting for {what}: alarm {code}: {message}")
            }
            _ => {}
        }
        seen.push(event.kind);
    }
}

/// Both `me` and `echo` see their DM (an invitation sent before that would be lost).
async fn wait_ready(
    me: &otrd::engine::EngineHandle,
    demo: &otrd::demo::Demo,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + WITHIN;
    let sees = |rooms: Result<Vec<otrd::engine::RoomInfo>, _>, peer: &str| {
        rooms.is_ok_and(|r: Vec<otrd::engine::RoomInfo>| r.iter().any(|r| r.peer == peer))
    };
    while !(sees(me.list_rooms().await, otrd::demo::ECHO_USER)
        && sees(demo.echo().list_rooms().await, otrd::demo::DEMO_USER))
    {
        if tokio::time::Instant::now() > deadline {
            bail!("`me` and `echo` never both logged in");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_then_immediate_restart_with_echo_always_establishes() -> anyhow::Result<()> {
    let demo = otrd::demo::start().await?;
    let (me, _task) = otrd::engine::spawn(demo.engine_config.clone());
    wait_ready(&me, &demo).await?;
    let (_, mut rx) = me.watch(false).await?;
    for round in 0..ROUNDS {
        me.start(echo(), SchemePreference::Auto)
            .await
            .with_context(|| format!("round {round}: start"))?;
        until(&mut rx, &format!("round {round}: established"), |k| {
            matches!(
                k,
                EventKind::State {
                    state: SessionState::Established,
                    ..
                }
            )
        })
        .await?;
        let text = format!("round {round}");
        me.send(echo(), SecretString::new(text.clone()))
            .await
            .with_context(|| format!("round {round}: send"))?;
        let answer = format!("echo: {text}");
        until(&mut rx, &format!("round {round}: echo's answer"), |k| {
            matches!(k, EventKind::Message { direction: Direction::In, text, .. }
                if text.expose() == answer)
        })
        .await?;
        // End and, without waiting for echo to take it in, start the next round.
        me.end(echo())
            .await
            .with_context(|| format!("round {round}: end"))?;
    }
    Ok(())
}
