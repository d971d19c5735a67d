//! Issue 11 end to end: on Rocket.Chat 8.x (rcsim in 8.x mode) two real `otrd` processes, driven
//! by `otrctl`, establish the native scheme over the realtime relays (path A `user-activity`, or
//! path B `video-conference` when A is refused), exchange messages both ways (also a 20 KB text
//! read from stdin, which needs fragments), refresh and end — and the server stores nothing and
//! never sees a plaintext. Starting with a user who has no otrd fails clearly and sends nothing.

use anyhow::{ensure, Context};
use otrd_e2e::daemon::bin_path;
use otrd_e2e::otr::{sim_config, Node};
use otrd_proto::v1::{Mode, SessionState};
use serde_json::Value;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const AUTO_ACCEPT: &str = "[policy]\nauto_accept = true\n";

/// An 8.x simulator with alice, bob and carol (carol never runs otrd) and DMs alice–bob and
/// alice–carol. Display names differ from usernames, so `UI_Use_Real_Name` refuses path A.
async fn sim8(real_name: bool) -> anyhow::Result<rcsim::SimHandle> {
    let mut cfg = sim_config(
        &["alice", "bob", "carol"],
        &[("alice", "bob"), ("alice", "carol")],
    );
    for user in &mut cfg.users {
        user.name = Some(format!("{} Example", user.username.to_uppercase()));
    }
    cfg.mode = rcsim::Mode::V8;
    cfg.ui_use_real_name = real_name;
    rcsim::start(cfg, "127.0.0.1:0".parse()?).await
}

/// `otrctl --json start bob` from alice; both must reach an established native session on
/// `transport`, as shown by `otrctl --json sessions` on both sides.
async fn establish(alice: &mut Node, bob: &mut Node, transport: &str) -> anyhow::Result<()> {
    alice.ctl(&["start", "bob"])?;
    let a = alice.wait_state("bob", SessionState::Established).await?;
    let b = bob.wait_state("alice", SessionState::Established).await?;
    assert_eq!((a.mode, b.mode), (Mode::Native as i32, Mode::Native as i32));
    for node in [&*alice, &*bob] {
        let session = node.ctl(&["sessions"])?;
        assert_eq!(session["transport"], transport, "{}: {session}", node.user);
        assert_eq!(session["mode"], "native", "{}: {session}", node.user);
        assert_eq!(session["state"], "established", "{}: {session}", node.user);
    }
    Ok(())
}

async fn exchange(from: &mut Node, to: &mut Node, text: &str) -> anyhow::Result<()> {
    let id = from.send(&to.user, text)?;
    let (got_id, got) = to.wait_message(&from.user).await?;
    assert_eq!((got_id.as_str(), got.as_str()), (id.as_str(), text));
    from.wait_delivered(&id).await
}

/// `otrctl --json send PEER -` with `text` written to a file and fed to otrctl's stdin (the way
/// a script keeps a long text off the command line); returns the message id.
fn send_from_file(from: &Node, peer: &str, text: &str) -> anyhow::Result<String> {
    let file = from.daemon.dir.path().join("long-message.txt");
    std::fs::write(&file, text)?;
    let mut child = Command::new(bin_path("otrctl")?)
        .arg("--socket")
        .arg(&from.daemon.socket)
        .args(["--json", "send", peer, "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    {
        let mut stdin = child.stdin.take().context("otrctl has no stdin")?;
        stdin.write_all(&std::fs::read(&file)?)?;
    }
    let out = child.wait_with_output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "otrctl send - exited {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    let sent: Value = serde_json::from_str(stdout.trim())
        .with_context(|| format!("otrctl send printed {stdout:?}"))?;
    sent["id"]
        .as_str()
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .with_context(|| format!("send answered without an id: {sent}"))
}

/// Every DDP method name a client called, in order.
fn methods(audit: &rcsim::Audit) -> Vec<String> {
    audit
        .client
        .iter()
        .filter_map(|r| serde_json::from_str::<Value>(&r.data).ok())
        .filter(|v| v["msg"] == "method")
        .filter_map(|v| v["method"].as_str().map(str::to_owned))
        .collect()
}

/// Nothing stored, no OTR method of 7.x, none of `texts` anywhere in the audit.
fn audit_is_clean(sim: &rcsim::SimHandle, texts: &[&str]) -> anyhow::Result<()> {
    let audit = sim.audit();
    for text in texts {
        ensure!(
            !audit.contains(text),
            "plaintext {text:?} reached the server"
        );
    }
    ensure!(
        audit.stored.is_empty(),
        "the server stored {:?}",
        audit.stored
    );
    for method in methods(&audit) {
        ensure!(
            !matches!(
                method.as_str(),
                "sendMessage" | "updateOTRAck" | "deleteOldOTRMessages"
            ),
            "{method} was called on 8.x"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_daemons_go_native_over_user_activity_on_8x_and_the_server_keeps_nothing(
) -> anyhow::Result<()> {
    let sim = sim8(false).await?;
    let url = sim.http_url();
    let mut alice = Node::start(&url, "alice", "").await?;
    let mut bob = Node::start(&url, "bob", AUTO_ACCEPT).await?;

    let status = alice.ctl(&["status"])?;
    assert_eq!(status["otr_available"], false, "{status}");
    let reason = status["otr_unavailable_reason"].as_str().unwrap_or("");
    assert!(
        reason.contains("Rocket.Chat 8") && reason.contains("removed OTR"),
        "{status}"
    );
    assert_eq!(
        status["native_transports"],
        serde_json::json!(["user_activity", "video_conference"]),
        "{status}"
    );

    establish(&mut alice, &mut bob, "user_activity").await?;
    exchange(&mut alice, &mut bob, "grüße aus Zürich — 東京 🚀").await?;
    exchange(&mut bob, &mut alice, "réponse ✓ de bob").await?;
    let long = "twenty kilobytes of secret prose ✓ ".repeat(600);
    assert!(long.len() > 20_000);
    let id = send_from_file(&alice, "bob", &long)?;
    let (got_id, got) = bob.wait_message("alice").await?;
    assert_eq!(got_id, id);
    assert!(got == long, "the 20 KB text arrived changed");
    alice.wait_delivered(&id).await?;

    alice.ctl(&["refresh", "bob"])?;
    alice.wait_state("bob", SessionState::Established).await?;
    bob.wait_state("alice", SessionState::Established).await?;
    exchange(&mut bob, &mut alice, "after the refresh").await?;

    alice.ctl(&["end", "bob"])?;
    bob.wait_state("alice", SessionState::Ended).await?;
    let (code, _) = bob.ctl_fails(&["send", "alice", "after the end"])?;
    assert_eq!(code, 1);

    audit_is_clean(
        &sim,
        &[
            "grüße",
            "réponse",
            "secret prose",
            "after the refresh",
            "after the end",
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_ui_use_real_name_the_session_goes_over_video_conference() -> anyhow::Result<()> {
    let sim = sim8(true).await?;
    let url = sim.http_url();
    let mut alice = Node::start(&url, "alice", "").await?;
    let mut bob = Node::start(&url, "bob", AUTO_ACCEPT).await?;
    establish(&mut alice, &mut bob, "video_conference").await?;
    exchange(&mut alice, &mut bob, "over path b ✓").await?;
    exchange(&mut bob, &mut alice, "b answers ✓").await?;
    alice.ctl(&["end", "bob"])?;
    bob.wait_state("alice", SessionState::Ended).await?;
    audit_is_clean(&sim, &["over path b", "b answers"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_with_a_user_without_otrd_fails_within_the_timeout_and_sends_nothing(
) -> anyhow::Result<()> {
    let sim = sim8(false).await?;
    let alice = Node::start(&sim.http_url(), "alice", "").await?;
    let started = Instant::now();
    let (code, stderr) = alice.ctl_fails(&["start", "carol"])?;
    let took = started.elapsed();
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("carol's client does not speak otrd; Rocket.Chat 8 removed OTR"),
        "{stderr}"
    );
    assert!(took < Duration::from_secs(12), "start took {took:?}");
    let called = methods(&sim.audit());
    assert!(
        !called.iter().any(|m| m == "sendMessage"),
        "sendMessage was called: {called:?}"
    );
    audit_is_clean(&sim, &[])
}
