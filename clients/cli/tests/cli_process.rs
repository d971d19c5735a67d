//! otrctl as a process against the real API server (otrd's own `serve_with` on a temp socket):
//! output, `--json`, and exit statuses.

use otrd::api::{ServeOptions, ServerSocket};
use otrd::config::Config;
use otrd::engine::{self, Command, EngineConfig, EngineError, EngineHandle, Event, EventKind};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{broadcast, mpsc, oneshot};

const WAIT: Duration = Duration::from_secs(20);
const OTRCTL: &str = env!("CARGO_BIN_EXE_otrctl");

struct Server {
    socket: PathBuf,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), otrd::api::ApiError>>,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start(engine: EngineHandle, options: ServeOptions) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("otrd/otrd.sock");
        let (listener, _file) = ServerSocket::bind(&socket).expect("bind").into_parts();
        Self::serve(dir, socket, listener, engine, options)
    }

    fn serve(
        dir: tempfile::TempDir,
        socket: PathBuf,
        listener: tokio::net::UnixListener,
        engine: EngineHandle,
        options: ServeOptions,
    ) -> Self {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(otrd::api::serve_with(
            listener,
            engine,
            options,
            async move {
                let _ = stopped.await;
            },
        ));
        Self {
            socket,
            stop,
            task,
            _dir: dir,
        }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("server stopped in time")
            .expect("no panic")
            .expect("clean stop");
    }
}

fn real_engine() -> EngineHandle {
    let mut config = Config::default();
    config.server.url = "https://chat.example.invalid".into();
    config.account.username = "alice".into();
    engine::spawn(EngineConfig::offline(config)).0
}

async fn otrctl(socket: &Path, args: &[&str]) -> Output {
    let run = tokio::process::Command::new(OTRCTL)
        .arg("--socket")
        .arg(socket)
        .args(args)
        .env_remove("OTRD_SOCKET")
        .stdin(Stdio::null())
        .output();
    tokio::time::timeout(WAIT, run)
        .await
        .expect("otrctl finished in time")
        .expect("otrctl runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_for_people_and_as_json() {
    let server = Server::start(real_engine(), ServeOptions::default()).await;
    let out = otrctl(&server.socket, &["status"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("(API v1)"), "{stdout}");
    assert!(stdout.contains("alice"), "{stdout}");

    let out = otrctl(&server.socket, &["--json", "status"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one JSON object per line: {stdout}");
    let v: serde_json::Value = serde_json::from_str(lines[0]).expect("valid JSON");
    assert_eq!(v["api_version"], 1);
    assert_eq!(v["account"], "alice");
    assert_eq!(v["connection"], "disconnected");

    let out = otrctl(&server.socket, &["--json", "sessions"]).await;
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty(), "no sessions, no lines");

    let out = otrctl(&server.socket, &["end", "--all"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("ended 0 session"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_commands_exit_3_with_a_message() {
    let (engine, _events, _attached) = scripted_engine();
    let server = Server::start(engine, ServeOptions::default()).await;
    for args in [&["start", "bob"][..], &["accept", "bob"], &["fingerprint"]] {
        let out = otrctl(&server.socket, args).await;
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {stderr}");
        assert!(
            stderr.contains("the daemon does not support this yet: scripted"),
            "{stderr}"
        );
        assert!(out.stdout.is_empty(), "nothing printed as if it worked");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_exit_1_with_the_reason() {
    // The real engine without a server: starting a session cannot work.
    let server = Server::start(real_engine(), ServeOptions::default()).await;
    let out = otrctl(&server.socket, &["start", "bob", "--legacy"]).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("unavailable: "), "{stderr}");
    assert!(out.stdout.is_empty());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_reads_the_text_from_stdin() {
    let server = Server::start(real_engine(), ServeOptions::default()).await;
    let mut child = tokio::process::Command::new(OTRCTL)
        .args(["--socket"])
        .arg(&server.socket)
        .args(["send", "bob", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("otrctl runs");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"a secret line\n").await.expect("write");
    drop(stdin);
    let out = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .expect("in time")
        .expect("output");
    // No session exists: the daemon refuses (not yet supported, or not established) — never 0.
    let code = out.status.code();
    assert!(
        matches!(code, Some(1) | Some(3)),
        "{code:?} {}",
        text(&out.stderr)
    );
    assert!(
        !text(&out.stderr).contains("a secret line"),
        "the text is never echoed"
    );
    server.stop().await;
}

#[tokio::test]
async fn no_daemon_exits_2_and_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = dir.path().join("run");
    std::fs::create_dir(&run).expect("mkdir");
    std::fs::set_permissions(&run, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .expect("chmod");
    let out = otrctl(&run.join("none.sock"), &["status"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("otrd is not running"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test]
async fn bad_command_lines_exit_64_and_generators_work() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("none.sock");
    assert_eq!(otrctl(&sock, &["frobnicate"]).await.status.code(), Some(64));
    assert_eq!(otrctl(&sock, &["end"]).await.status.code(), Some(64));
    let out = otrctl(&sock, &["completions", "bash"]).await;
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("otrctl"));
    let out = otrctl(&sock, &["man"]).await;
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains(".TH otrctl"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_uid_is_refused_with_permission_denied() {
    let own = rustix::process::geteuid().as_raw();
    let options = ServeOptions {
        expected_uid: own.wrapping_add(1),
    };
    let server = Server::start(real_engine(), options).await;
    let out = otrctl(&server.socket, &["status"]).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("permission denied"), "{stderr}");
    assert!(stderr.contains(&format!("from uid {own}")), "{stderr}");
    server.stop().await;
}

/// As root: a genuinely different user (nobody, via setpriv) can reach the socket — the test opens
/// the directory and socket to everyone on purpose — but its otrctl refuses the daemon first: the
/// directory is not nobody's (the client-side rule, `otrd_proto::socket`). The server's own
/// credential check is `another_uid_is_refused_with_permission_denied` above; the client-side
/// traps are in `untrusted_socket.rs`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_of_another_user_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let setpriv = Path::new("/usr/bin/setpriv");
    if rustix::process::geteuid().as_raw() != 0 || !setpriv.exists() {
        eprintln!("skipped: needs root and setpriv to run a process as another user");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let socket = dir.path().join("open.sock");
    let listener = tokio::net::UnixListener::bind(&socket).expect("bind");
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    // nobody may not be able to reach the build directory: run a copy from the open directory.
    let binary = dir.path().join("otrctl");
    std::fs::copy(OTRCTL, &binary).expect("copy otrctl");
    std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).expect("chmod");

    let server = Server::serve(
        dir,
        socket.clone(),
        listener,
        real_engine(),
        ServeOptions::default(),
    );
    let run = tokio::process::Command::new(setpriv)
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&binary)
        .arg("--socket")
        .arg(&socket)
        .arg("status")
        .stdin(Stdio::null())
        .output();
    let out = tokio::time::timeout(WAIT, run)
        .await
        .expect("in time")
        .expect("setpriv runs");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("refusing to talk to"), "{stderr}");
    assert!(
        stderr.contains("belongs to uid 0, not to you (uid 65534)"),
        "{stderr}"
    );
    server.stop().await;
}

async fn next_json(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
) -> serde_json::Value {
    let line = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .expect("a line in time")
        .expect("read")
        .expect("a line");
    serde_json::from_str(&line).expect("JSON line")
}

/// An engine double: WatchEvents from a broadcast the test drives; Start, Accept and Fingerprint
/// answered UNIMPLEMENTED; everything else dropped unanswered.
fn scripted_engine() -> (
    EngineHandle,
    broadcast::Sender<Event>,
    mpsc::UnboundedReceiver<()>,
) {
    let (tx, mut rx) = mpsc::channel::<Command>(8);
    let (events, _) = broadcast::channel(16);
    let (attached_tx, attached) = mpsc::unbounded_channel();
    let sender = events.clone();
    tokio::spawn(async move {
        while let Some(cmd) = rx.recv().await {
            let unsupported = || EngineError::Unimplemented("scripted".into());
            match cmd {
                Command::Watch { reply, .. } => {
                    let subscribed = reply.send((Vec::new(), sender.subscribe())).is_ok();
                    if subscribed {
                        let _ = attached_tx.send(());
                    }
                }
                Command::Start { reply, .. } | Command::Accept(_, _, reply) => {
                    let _ = reply.send(Err(unsupported()));
                }
                Command::Fingerprint(_, reply) => {
                    let _ = reply.send(Err(unsupported()));
                }
                _ => {}
            }
        }
    });
    (EngineHandle::new(tx), events, attached)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_json_prints_the_contract_events() {
    let (engine, events, mut attached) = scripted_engine();
    let server = Server::start(engine, ServeOptions::default()).await;
    let mut child = tokio::process::Command::new(OTRCTL)
        .arg("--socket")
        .arg(&server.socket)
        .args(["--json", "watch"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("otrctl runs");
    tokio::time::timeout(WAIT, attached.recv())
        .await
        .expect("attached in time")
        .expect("engine up");

    let event = |seq, kind| Event {
        seq,
        ts_ms: 5,
        replay: false,
        kind,
    };
    events
        .send(event(
            1,
            EventKind::State {
                peer: "bob".into(),
                room_id: "r1".into(),
                state: engine::SessionState::Established,
                mode: Some(engine::Mode::Native),
                transport: Some(engine::TransportKind::OtrRelay),
                trust: engine::Trust::Unverified,
                detail: String::new(),
                warning: None,
                backlog: None,
            },
        ))
        .expect("watcher");
    events
        .send(event(
            2,
            EventKind::Message {
                peer: "bob".into(),
                room_id: "r1".into(),
                direction: engine::Direction::In,
                text: "hello there".into(),
                id: "m1".into(),
                ts_ms: 99,
            },
        ))
        .expect("watcher");
    events
        .send(event(
            3,
            EventKind::Delivered {
                peer: "bob".into(),
                room_id: "r1".into(),
                id: "m0".into(),
            },
        ))
        .expect("watcher");

    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let state = next_json(&mut lines).await;
    assert_eq!(state["type"], "state");
    assert_eq!(state["peer"], "bob");
    assert_eq!(state["state"], "established");
    assert_eq!(state["mode"], "native");
    let message = next_json(&mut lines).await;
    assert_eq!(message["type"], "message");
    assert_eq!(message["direction"], "in");
    assert_eq!(message["text"], "hello there");
    assert_eq!(message["id"], "m1");
    assert_eq!(message["ts"], 99);
    let delivered = next_json(&mut lines).await;
    assert_eq!(delivered["type"], "delivered");
    assert_eq!(delivered["id"], "m0");

    // The daemon going away is not success for a watcher.
    server.stop().await;
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("exits in time")
        .expect("status");
    assert_eq!(status.code(), Some(1));
}
