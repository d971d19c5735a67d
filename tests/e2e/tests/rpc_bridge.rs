//! `otrctl rpc`, the JSON-lines bridge: every RPC through a real `otrd --demo` (rcsim and the
//! answering contact `echo`), malformed lines, events interleaved with answers, end of input;
//! and, in-process against an engine double, that a slow call does not hold up another.

use otrd::engine::{Command, EngineHandle, SentMessage, SessionInfo, SessionState, Trust};
use otrd_e2e::api::{ApiServer, ScriptedEngine, WAIT};
use otrd_e2e::daemon::{bin_path, config_for, Daemon};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::sync::{mpsc, oneshot};

/// A running `otrctl rpc` with its pipes.
struct Bridge {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Lines<BufReader<ChildStdout>>,
    /// Event lines read while looking for an answer, in order.
    events: VecDeque<Value>,
    /// Every line read, for failure messages.
    transcript: Vec<String>,
}

impl Bridge {
    fn spawn(socket: &std::path::Path) -> Self {
        let mut child = tokio::process::Command::new(bin_path("otrctl").expect("otrctl built"))
            .arg("--socket")
            .arg(socket)
            .arg("rpc")
            .env_remove("OTRD_SOCKET")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("otrctl rpc starts");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("stdout piped")).lines();
        Self {
            child,
            stdin,
            stdout,
            events: VecDeque::new(),
            transcript: Vec::new(),
        }
    }

    async fn write_raw(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(line.as_bytes()).await.expect("write");
        stdin.write_all(b"\n").await.expect("write");
        stdin.flush().await.expect("flush");
    }

    async fn send(&mut self, id: Value, method: &str, params: Value) {
        let line = json!({"id": id, "method": method, "params": params}).to_string();
        self.write_raw(&line).await;
    }

    /// The next line of output (bounded wait).
    async fn line(&mut self) -> Value {
        let line = tokio::time::timeout(WAIT, self.stdout.next_line())
            .await
            .unwrap_or_else(|_| panic!("a line in time; so far:\n{}", self.transcript.join("\n")))
            .expect("read")
            .unwrap_or_else(|| panic!("output ended; so far:\n{}", self.transcript.join("\n")));
        self.transcript.push(line.clone());
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    }

    /// Reads until the answer to `id`, keeping events aside. Returns the whole answer line.
    async fn answer(&mut self, id: &Value) -> Value {
        loop {
            let line = self.line().await;
            if line.get("event").is_some() {
                self.events.push_back(line["event"].clone());
            } else if line.get("id") == Some(id) {
                return line;
            } else {
                panic!("unexpected line while waiting for {id}: {line}");
            }
        }
    }

    /// Calls `method` and returns its `result`, failing on an error answer.
    async fn call(&mut self, id: u64, method: &str, params: Value) -> Value {
        self.send(json!(id), method, params).await;
        let answer = self.answer(&json!(id)).await;
        assert!(answer.get("error").is_none(), "{method} failed: {answer}");
        answer["result"].clone()
    }

    /// Calls `method` and returns its error's code, failing on a result.
    async fn call_err(&mut self, id: u64, method: &str, params: Value) -> String {
        self.send(json!(id), method, params).await;
        let answer = self.answer(&json!(id)).await;
        answer["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("{method} should fail: {answer}"))
            .to_owned()
    }

    /// The first event (already read or still to come) matching `want`; earlier ones are dropped.
    async fn event(&mut self, what: &str, want: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            while let Some(e) = self.events.pop_front() {
                if want(&e) {
                    return e;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no {what} event in time; so far:\n{}",
                self.transcript.join("\n")
            );
            let line = self.line().await;
            match line.get("event") {
                Some(e) => self.events.push_back(e.clone()),
                None => panic!("unexpected line while waiting for {what}: {line}"),
            }
        }
    }

    /// Closes stdin and waits for the exit status.
    async fn finish(mut self) -> (std::process::ExitStatus, Vec<Value>) {
        drop(self.stdin.take());
        let mut rest = Vec::new();
        while let Ok(Some(line)) = tokio::time::timeout(WAIT, self.stdout.next_line())
            .await
            .expect("output ends in time")
        {
            rest.push(serde_json::from_str(&line).expect("JSON"));
        }
        let status = tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("exits in time")
            .expect("wait");
        (status, rest)
    }
}

fn echo() -> Value {
    json!({"peer": {"username": "echo"}})
}

async fn demo_daemon() -> Daemon {
    Daemon::start_with_args(
        &config_for("http://127.0.0.1:9", "me", "x", ""),
        &["--demo"],
    )
    .await
    .expect("otrd --demo starts")
}

/// Polls GetStatus through the bridge until the demo account is logged in.
async fn wait_connected(bridge: &mut Bridge) {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut id = 1000;
    loop {
        id += 1;
        let status = bridge.call(id, "GetStatus", json!({})).await;
        if status["connection"] == "CONNECTION_STATE_CONNECTED" {
            assert_eq!(status["apiVersion"], 1, "{status}");
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never connected: {status}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Polls ListSessions through the bridge until the session with echo is established.
async fn wait_established_with_echo(bridge: &mut Bridge) {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut id = 2000;
    loop {
        id += 1;
        let sessions = bridge.call(id, "ListSessions", json!({})).await;
        let established = sessions["sessions"].as_array().is_some_and(|all| {
            all.iter()
                .any(|s| s["peer"] == "echo" && s["state"] == "SESSION_STATE_ESTABLISHED")
        });
        if established {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never established: {sessions}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn every_rpc_through_a_real_daemon() {
    let daemon = demo_daemon().await;
    let mut b = Bridge::spawn(&daemon.socket);

    let attached = b
        .call(1, "WatchEvents", json!({"includeScrollback": true}))
        .await;
    assert_eq!(attached, json!({}));
    wait_connected(&mut b).await;

    let rooms = b.call(2, "ListRooms", json!({})).await;
    assert!(rooms["rooms"].is_array(), "{rooms}");

    let started = b.call(3, "StartSession", echo()).await;
    assert_eq!(started["session"]["peer"], "echo", "{started}");
    b.event("established", |e| {
        e["state"]["peer"] == "echo" && e["state"]["state"] == "SESSION_STATE_ESTABLISHED"
    })
    .await;

    let sessions = b.call(4, "ListSessions", json!({})).await;
    let listed = sessions["sessions"].as_array().expect("sessions array");
    assert!(
        listed
            .iter()
            .any(|s| s["peer"] == "echo" && s["state"] == "SESSION_STATE_ESTABLISHED"),
        "{sessions}"
    );

    let sent = b
        .call(
            5,
            "SendMessage",
            json!({"peer": {"username": "echo"}, "text": "hi over json"}),
        )
        .await;
    let id = sent["id"].as_str().expect("message id").to_owned();
    assert!(!id.is_empty());
    b.event("own message", |e| {
        e["message"]["id"] == id.as_str() && e["message"]["direction"] == "DIRECTION_OUT"
    })
    .await;
    b.event("delivered", |e| e["delivered"]["id"] == id.as_str())
        .await;
    b.event("the reply", |e| {
        e["message"]["direction"] == "DIRECTION_IN" && e["message"]["text"] == "echo: hi over json"
    })
    .await;

    let refreshed = b.call(6, "RefreshSession", echo()).await;
    assert_eq!(refreshed["session"]["peer"], "echo", "{refreshed}");

    let own = b.call(7, "GetFingerprint", json!({})).await;
    assert!(
        own["ownFingerprint"]
            .as_str()
            .is_some_and(|f| !f.is_empty()),
        "{own}"
    );
    let theirs = b.call(8, "GetFingerprint", echo()).await;
    assert_eq!(theirs["peer"], "echo", "{theirs}");
    // Verifying needs what the user compared: the fingerprint (an empty one is refused).
    assert_eq!(
        b.call_err(90, "TrustPeer", echo()).await,
        "INVALID_ARGUMENT"
    );
    let accepted = b.call(91, "AcceptPeerKey", echo()).await;
    assert_eq!(accepted["trust"], "TRUST_UNVERIFIED", "{accepted}");
    let mut compared = echo();
    compared["fingerprint"] = theirs["peerFingerprint"].clone();
    let trusted = b.call(9, "TrustPeer", compared).await;
    assert_eq!(trusted["trust"], "TRUST_VERIFIED", "{trusted}");

    // No invitation is pending from echo: the daemon refuses, and the code comes through.
    assert_eq!(
        b.call_err(10, "AcceptSession", echo()).await,
        "FAILED_PRECONDITION"
    );
    assert_eq!(
        b.call_err(11, "DeclineSession", echo()).await,
        "FAILED_PRECONDITION"
    );

    let ended = b.call(12, "EndSession", echo()).await;
    assert_eq!(ended["session"]["peer"], "echo", "{ended}");
    b.event("ended", |e| {
        e["state"]["peer"] == "echo" && e["state"]["state"] == "SESSION_STATE_ENDED"
    })
    .await;

    let all = b.call(13, "EndAllSessions", json!({})).await;
    assert!(all["ended"].is_u64(), "{all}");
    // uint64 follows the JSON mapping: a string.
    assert!(all["elapsedUs"].is_string(), "{all}");

    let (status, rest) = b.finish().await;
    assert!(status.success(), "{status}: {rest:?}");
}

#[tokio::test]
async fn malformed_lines_get_error_lines_and_the_bridge_goes_on() {
    let daemon = demo_daemon().await;
    let mut b = Bridge::spawn(&daemon.socket);
    let null = Value::Null;
    for bad in [
        "this is not json",
        "[1,2,3]",
        "{\"method\":42}",
        "\"GetStatus\"",
    ] {
        b.write_raw(bad).await;
        let answer = b.answer(&null).await;
        assert_eq!(
            answer["error"]["code"], "INVALID_ARGUMENT",
            "{bad}: {answer}"
        );
    }
    b.write_raw("").await; // blank lines are ignored, not answered
    assert_eq!(
        b.call_err(1, "NoSuchMethod", json!({})).await,
        "UNIMPLEMENTED"
    );
    assert_eq!(
        b.call_err(2, "SendMessage", json!({"peer": "echo", "text": "x"}))
            .await,
        "INVALID_ARGUMENT"
    );
    assert_eq!(
        b.call_err(
            3,
            "StartSession",
            json!({"peer": {"username": "echo"}, "scheme": "SCHEME_BOGUS"})
        )
        .await,
        "INVALID_ARGUMENT"
    );
    // String ids are echoed as given.
    b.send(json!("status-1"), "GetStatus", json!({})).await;
    let answer = b.answer(&json!("status-1")).await;
    assert_eq!(answer["result"]["apiVersion"], 1, "{answer}");
    // A request the daemon refuses (no session with echo): an error with the gRPC code name.
    assert_eq!(
        b.call_err(
            4,
            "SendMessage",
            json!({"peer": {"username": "echo"}, "text": "x"})
        )
        .await,
        "FAILED_PRECONDITION"
    );
    let (status, _) = b.finish().await;
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn end_of_input_answers_what_is_in_flight_and_exits_zero() {
    let daemon = demo_daemon().await;
    let mut b = Bridge::spawn(&daemon.socket);
    b.send(json!(1), "GetStatus", json!({})).await;
    b.send(json!(2), "ListSessions", json!({})).await;
    let (status, rest) = b.finish().await;
    assert!(status.success(), "{status}");
    let mut ids: Vec<_> = rest.iter().map(|l| l["id"].clone()).collect();
    ids.sort_by_key(|v| v.as_u64());
    assert_eq!(ids, vec![json!(1), json!(2)], "{rest:?}");
}

#[tokio::test]
async fn events_interleave_with_answers_and_a_new_watch_replays_scrollback() {
    let daemon = demo_daemon().await;
    let mut b = Bridge::spawn(&daemon.socket);
    wait_connected(&mut b).await;
    // Not watching yet: answers only.
    b.call(1, "StartSession", echo()).await;
    b.call(2, "WatchEvents", json!({})).await;
    // The session may have been established before the watch attached (its event then went to
    // nobody), so the condition is read from ListSessions, not from an event.
    wait_established_with_echo(&mut b).await;
    b.call(
        3,
        "SendMessage",
        json!({"peer": {"username": "echo"}, "text": "one"}),
    )
    .await;
    let reply = b
        .event("the reply", |e| e["message"]["text"] == "echo: one")
        .await;
    assert_eq!(reply["replay"], false);
    assert!(reply["seq"].is_string(), "uint64 seq is a string: {reply}");
    // Ask for a status while events flow: its answer comes on the same stream, in between.
    let status = b.call(4, "GetStatus", json!({})).await;
    assert_eq!(status["establishedCount"], 1, "{status}");

    // Re-attaching with scrollback replays the conversation, flagged as replay.
    b.call(5, "WatchEvents", json!({"include_scrollback": true}))
        .await;
    let replayed = b
        .event("replayed reply", |e| {
            e["replay"] == true && e["message"]["text"] == "echo: one"
        })
        .await;
    assert_eq!(replayed["message"]["peer"], "echo");
    let (status, _) = b.finish().await;
    assert!(status.success(), "{status}");
}

/// An engine double: StartSession answers only when the test says so; SendMessage at once.
fn slow_start_engine() -> (EngineHandle, mpsc::UnboundedReceiver<oneshot::Sender<()>>) {
    let (tx, mut rx) = mpsc::channel::<Command>(16);
    let (release_tx, release_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(cmd) = rx.recv().await {
            match cmd {
                Command::Start { reply, .. } => {
                    let (go, wait) = oneshot::channel::<()>();
                    let _ = release_tx.send(go);
                    tokio::spawn(async move {
                        let _ = wait.await;
                        let _ = reply.send(Ok(SessionInfo {
                            room_id: "r1".into(),
                            peer: "bob".into(),
                            peer_user_id: "u-bob".into(),
                            state: SessionState::Establishing,
                            mode: None,
                            transport: None,
                            trust: Trust::Unverified,
                            initiator: true,
                            since_ms: 1,
                            detail: String::new(),
                            pending_messages: 0,
                            invitation_seq: None,
                            warning: None,
                            seq: 0,
                            backlog: Default::default(),
                        }));
                    });
                }
                Command::Send { reply, .. } => {
                    let _ = reply.send(Ok(SentMessage {
                        id: "m1".into(),
                        room_id: "r1".into(),
                        ts_ms: 2,
                    }));
                }
                _ => {}
            }
        }
    });
    (EngineHandle::new(tx), release_rx)
}

async fn next_line(lines: &mut Lines<BufReader<tokio::io::DuplexStream>>) -> Value {
    let line = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .expect("a line in time")
        .expect("read")
        .expect("open");
    serde_json::from_str(&line).expect("JSON")
}

#[tokio::test]
async fn a_slow_call_does_not_hold_up_the_next() {
    let (engine, mut started) = slow_start_engine();
    let server = ApiServer::start(engine).await;
    let api = otrctl::rpc::protocol::Api::load().expect("descriptor");
    let (mut to_bridge, bridge_in) = tokio::io::duplex(4096);
    let (bridge_out, from_bridge) = tokio::io::duplex(4096);
    let bridge = tokio::spawn(otrctl::rpc::serve(
        api,
        server.channel().await,
        bridge_in,
        bridge_out,
    ));
    let mut lines = BufReader::new(from_bridge).lines();

    to_bridge
        .write_all(b"{\"id\":1,\"method\":\"StartSession\",\"params\":{\"peer\":{\"username\":\"bob\"}}}\n")
        .await
        .expect("write");
    let release = tokio::time::timeout(WAIT, started.recv())
        .await
        .expect("StartSession reached the engine")
        .expect("engine running");
    to_bridge
        .write_all(b"{\"id\":2,\"method\":\"SendMessage\",\"params\":{\"peer\":{\"username\":\"bob\"},\"text\":\"hi\"}}\n")
        .await
        .expect("write");
    let first = next_line(&mut lines).await;
    assert_eq!(
        first["id"], 2,
        "SendMessage answered while StartSession waits: {first}"
    );
    assert_eq!(first["result"]["id"], "m1");
    release.send(()).expect("StartSession still waiting");
    let second = next_line(&mut lines).await;
    assert_eq!(second["id"], 1, "{second}");
    assert_eq!(
        second["result"]["session"]["state"],
        "SESSION_STATE_ESTABLISHING"
    );

    drop(to_bridge);
    tokio::time::timeout(WAIT, bridge)
        .await
        .expect("bridge ends at end of input")
        .expect("no panic")
        .expect("clean end");
    server.stop().await.expect("server stops");
}

/// A numbered live event, as the engine's log would emit it (`detail` carries the number).
fn numbered(seq: u64) -> otrd::engine::Event {
    otrd::engine::Event {
        seq,
        ts_ms: 1,
        replay: false,
        kind: otrd::engine::EventKind::State {
            peer: "bob".into(),
            room_id: "r1".into(),
            state: SessionState::Established,
            mode: None,
            transport: None,
            trust: Trust::Unverified,
            detail: seq.to_string(),
            warning: None,
            backlog: None,
        },
    }
}

/// The Neovim plugin's second-session flake: a re-attaching WatchEvents must not lose the events
/// the old stream still carried. Events emitted before the new stream attached exist on the old
/// stream only; here the client has not read its output yet, so they are still inside the bridge
/// (its output queue and the old stream) when the new stream attaches. Stopping the old stream
/// then dropped them (a session's `established` state among them, in the real flake). Every
/// event must come out exactly once, in order, across the switch.
#[tokio::test]
async fn a_new_watch_loses_nothing_the_old_stream_still_carried() {
    /// More than the bridge's output queue (256 lines) and our unread pipe hold together.
    const BEFORE: u64 = 600;
    const AFTER: u64 = 5;
    let mut engine = ScriptedEngine::with_capacity(4096);
    let server = ApiServer::start(engine.handle.clone()).await;
    let api = otrctl::rpc::protocol::Api::load().expect("descriptor");
    let (mut to_bridge, bridge_in) = tokio::io::duplex(4096);
    let (bridge_out, from_bridge) = tokio::io::duplex(1024);
    let bridge = tokio::spawn(otrctl::rpc::serve(
        api,
        server.channel().await,
        bridge_in,
        bridge_out,
    ));

    to_bridge
        .write_all(b"{\"id\":1,\"method\":\"WatchEvents\",\"params\":{}}\n")
        .await
        .expect("write");
    engine.wait_attached(1).await;
    for seq in 1..=BEFORE {
        engine.events.send(numbered(seq)).expect("a watcher");
    }
    // Re-attach (the plugin does this when it opens a chat buffer) while all that is unread.
    to_bridge
        .write_all(
            b"{\"id\":2,\"method\":\"WatchEvents\",\"params\":{\"includeScrollback\":true}}\n",
        )
        .await
        .expect("write");
    engine.wait_attached(1).await;
    for seq in BEFORE + 1..=BEFORE + AFTER {
        engine.events.send(numbered(seq)).expect("a watcher");
    }

    let mut lines = BufReader::new(from_bridge).lines();
    let mut seen = Vec::new();
    let mut answered = Vec::new();
    while seen.last() != Some(&(BEFORE + AFTER)) {
        let line = next_line(&mut lines).await;
        if let Some(event) = line.get("event") {
            let seq = event["seq"].as_str().and_then(|s| s.parse::<u64>().ok());
            let detail = event["state"]["detail"]
                .as_str()
                .and_then(|s| s.parse().ok());
            assert_eq!(seq, detail, "{line}");
            seen.push(seq.expect("a numbered event"));
        } else {
            assert!(line.get("error").is_none(), "{line}");
            answered.push(line["id"].clone());
        }
    }
    assert_eq!(answered, vec![json!(1), json!(2)], "both watches answered");
    let want: Vec<u64> = (1..=BEFORE + AFTER).collect();
    if seen != want {
        let missing: Vec<u64> = want.iter().copied().filter(|s| !seen.contains(s)).collect();
        panic!(
            "events lost or repeated across the re-attach: {} seen for {} emitted; missing {:?}",
            seen.len(),
            want.len(),
            missing
        );
    }

    // From now on one stream: a new event comes once.
    engine
        .events
        .send(numbered(BEFORE + AFTER + 1))
        .expect("a watcher");
    let line = next_line(&mut lines).await;
    assert_eq!(
        line["event"]["seq"],
        (BEFORE + AFTER + 1).to_string(),
        "{line}"
    );
    drop(to_bridge);
    tokio::time::timeout(WAIT, bridge)
        .await
        .expect("bridge ends at end of input")
        .expect("no panic")
        .expect("clean end");
    let rest = lines.next_line().await.expect("read");
    assert!(rest.is_none(), "nothing after the last event: {rest:?}");
    server.stop().await.expect("server stops");
}
