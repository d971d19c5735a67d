//! otrctl refuses a socket that is not provably the user's own daemon, before a byte is written:
//! another local user (nobody, through setpriv) sets a trap — a 0777 `$TMPDIR/otrd-$UID` with a
//! listener in it, a socket of theirs in our directory, a symlinked directory, a listener of theirs
//! behind a socket file that is ours — and `otrctl send` must fail naming what is wrong while the
//! trap hears nothing.
//!
//! The listener is this test binary run again as nobody ([`foreign_listener_process`]), so the
//! kernel really records another uid for the directory, the socket and `SO_PEERCRED`. Needs root
//! and setpriv (as `.ci/run` provides); skipped otherwise.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

const WAIT: Duration = Duration::from_secs(20);
const OTRCTL: &str = env!("CARGO_BIN_EXE_otrctl");
const SETPRIV: &str = "/usr/bin/setpriv";
const NOBODY: u32 = 65534;
/// The socket the listener process binds; set only in that process.
const LISTEN_ENV: &str = "OTRD_TEST_FOREIGN_LISTEN";
/// A directory the listener process makes, mode 0777, before it binds.
const MKDIR_ENV: &str = "OTRD_TEST_FOREIGN_MKDIR";
const SECRET: &str = "meet me at the usual place";
/// What the test's own connection sends, to mark the end of the listener's reports.
const PROBE: &[u8] = b"otrd-test-probe";

/// Not a test of its own: the body of the attacker's listener when this binary is run as nobody
/// with [`LISTEN_ENV`] set (does nothing otherwise). It reports on stdout `LISTENER ready`, then
/// `LISTENER conn N` for each connection once it closes, N the bytes it received (`LISTENER probe`
/// for the test's own [`PROBE`]).
#[test]
fn foreign_listener_process() {
    use std::io::{Read, Write};
    let Some(socket) = std::env::var_os(LISTEN_ENV).map(PathBuf::from) else {
        return;
    };
    if let Some(dir) = std::env::var_os(MKDIR_ENV) {
        std::fs::create_dir(&dir).expect("attacker mkdir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    }
    let listener = std::os::unix::net::UnixListener::bind(&socket).expect("attacker bind");
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let mut out = std::io::stdout();
    let _ = writeln!(out, "LISTENER ready");
    let _ = out.flush();
    for conn in listener.incoming() {
        let Ok(mut conn) = conn else { continue };
        let _ = conn.set_read_timeout(Some(WAIT));
        let mut heard = Vec::new();
        let _ = conn.read_to_end(&mut heard);
        if heard == PROBE {
            let _ = writeln!(out, "LISTENER probe");
        } else {
            let _ = writeln!(out, "LISTENER conn {}", heard.len());
        }
        let _ = out.flush();
    }
}

fn privileged() -> bool {
    if rustix::process::geteuid().as_raw() != 0 || !Path::new(SETPRIV).exists() {
        eprintln!("skipped: needs root and setpriv to run a listener as another user");
        return false;
    }
    true
}

/// A shared temporary directory like /tmp (1777), with a copy of this binary nobody can run.
struct Scene {
    tmp: tempfile::TempDir,
    binary: PathBuf,
}

impl Scene {
    fn new() -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o1777))
            .expect("chmod");
        let binary = tmp.path().join("listener");
        std::fs::copy(std::env::current_exe().expect("exe"), &binary).expect("copy");
        std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        Self { tmp, binary }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// A directory of ours, 0700, as the daemon makes it.
    fn private_dir(&self, name: &str) -> PathBuf {
        let dir = self.path(name);
        std::fs::create_dir(&dir).expect("mkdir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        dir
    }

    /// Starts nobody's listener on `socket`, making `mkdir` (0777) first if given.
    async fn listener(&self, socket: &Path, mkdir: Option<&Path>) -> Listener {
        let mut cmd = tokio::process::Command::new(SETPRIV);
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&self.binary)
            .args([
                "foreign_listener_process",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(LISTEN_ENV, socket)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        if let Some(dir) = mkdir {
            cmd.env(MKDIR_ENV, dir);
        }
        let mut child = cmd.spawn().expect("setpriv runs");
        let stdout = child.stdout.take().expect("piped");
        let mut listener = Listener {
            _child: child,
            lines: BufReader::new(stdout).lines(),
        };
        assert_eq!(listener.next().await, "ready");
        listener
    }
}

struct Listener {
    _child: tokio::process::Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl Listener {
    async fn next(&mut self) -> String {
        loop {
            let line = tokio::time::timeout(WAIT, self.lines.next_line())
                .await
                .expect("the listener reports in time")
                .expect("read")
                .expect("the listener is running");
            // libtest's own "test … ... " may precede the first report on its line.
            if let Some(at) = line.find("LISTENER ") {
                return line[at + "LISTENER ".len()..].to_owned();
            }
        }
    }

    /// The bytes each connection before now brought: the test connects once itself and sends
    /// [`PROBE`], and collects the reports up to the probe's, which comes last — otrctl has exited
    /// by then, and the listener serves one connection at a time in order.
    async fn heard(&mut self, socket: &Path) -> Vec<usize> {
        use std::io::Write;
        let mut probe = std::os::unix::net::UnixStream::connect(socket).expect("probe connects");
        probe.write_all(PROBE).expect("probe writes");
        drop(probe);
        let mut heard = Vec::new();
        loop {
            let report = self.next().await;
            if report == "probe" {
                return heard;
            }
            let n: usize = report
                .strip_prefix("conn ")
                .and_then(|n| n.parse().ok())
                .expect("a connection report");
            heard.push(n);
        }
    }
}

/// Runs `otrctl send bob SECRET` with `TMPDIR=tmpdir` and (unless `None`) `--socket`, with no
/// `XDG_RUNTIME_DIR` or `OTRD_SOCKET`; returns its exit status and stderr.
async fn otrctl_send(socket: Option<&Path>, tmpdir: &Path) -> (Option<i32>, String) {
    let mut cmd = tokio::process::Command::new(OTRCTL);
    if let Some(socket) = socket {
        cmd.arg("--socket").arg(socket);
    }
    cmd.args(["send", "bob", SECRET])
        .env_remove("OTRD_SOCKET")
        .env_remove("XDG_RUNTIME_DIR")
        .env("TMPDIR", tmpdir)
        .stdin(Stdio::null());
    let out = tokio::time::timeout(WAIT, cmd.output())
        .await
        .expect("otrctl finished in time")
        .expect("otrctl runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !stderr.contains(SECRET),
        "the text is never echoed: {stderr}"
    );
    (out.status.code(), stderr)
}

fn assert_refused(code: Option<i32>, stderr: &str, what: &str) {
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("refusing to talk to"), "{stderr}");
    assert!(stderr.contains(what), "expected {what:?} in: {stderr}");
    assert!(stderr.contains("nothing was sent"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tmp_fallback_directory_made_by_another_user_is_refused_and_hears_nothing() {
    if !privileged() {
        return;
    }
    let scene = Scene::new();
    // Our uid is 0: the attacker made `$TMPDIR/otrd-0` first, open to all, and listens in it.
    let dir = scene.path("otrd-0");
    let socket = dir.join("otrd.sock");
    let mut trap = scene.listener(&socket, Some(&dir)).await;

    let (code, stderr) = otrctl_send(None, scene.tmp.path()).await;
    assert_refused(
        code,
        &stderr,
        &format!("belongs to uid {NOBODY}, not to you (uid 0)"),
    );
    assert!(stderr.contains(&dir.display().to_string()), "{stderr}");
    assert_eq!(trap.heard(&socket).await, Vec::<usize>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_of_another_user_in_our_directory_is_refused_and_hears_nothing() {
    if !privileged() {
        return;
    }
    let scene = Scene::new();
    let theirs = scene.path("theirs");
    let mut trap = scene
        .listener(&theirs.join("otrd.sock"), Some(&theirs))
        .await;
    // Their socket ends up in our 0700 directory (the inode keeps listening when renamed).
    let ours = scene.private_dir("ours").join("otrd.sock");
    std::fs::rename(theirs.join("otrd.sock"), &ours).expect("rename");

    let (code, stderr) = otrctl_send(Some(&ours), scene.tmp.path()).await;
    assert_refused(
        code,
        &stderr,
        &format!("the socket belongs to uid {NOBODY}"),
    );
    assert_eq!(trap.heard(&ours).await, Vec::<usize>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlinked_fallback_directory_is_refused_and_hears_nothing() {
    if !privileged() {
        return;
    }
    let scene = Scene::new();
    let theirs = scene.path("theirs");
    let mut trap = scene
        .listener(&theirs.join("otrd.sock"), Some(&theirs))
        .await;
    let link = scene.path("otrd-0");
    std::os::unix::fs::symlink(&theirs, &link).expect("symlink");
    std::os::unix::fs::lchown(&link, Some(NOBODY), Some(NOBODY)).expect("lchown");

    let (code, stderr) = otrctl_send(None, scene.tmp.path()).await;
    assert_refused(code, &stderr, "is a symlink");
    assert_eq!(
        trap.heard(&theirs.join("otrd.sock")).await,
        Vec::<usize>::new()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_of_another_user_behind_our_socket_file_is_refused_after_connecting() {
    if !privileged() {
        return;
    }
    let scene = Scene::new();
    let theirs = scene.path("theirs");
    let mut trap = scene
        .listener(&theirs.join("otrd.sock"), Some(&theirs))
        .await;
    // Directory and socket file pass every check on disk; only SO_PEERCRED tells.
    let ours = scene.private_dir("ours").join("otrd.sock");
    std::fs::rename(theirs.join("otrd.sock"), &ours).expect("rename");
    std::os::unix::fs::chown(&ours, Some(0), Some(0)).expect("chown");

    let (code, stderr) = otrctl_send(Some(&ours), scene.tmp.path()).await;
    assert_refused(
        code,
        &stderr,
        &format!("the process serving it runs as uid {NOBODY}, not as you (uid 0)"),
    );
    // otrctl connected (that is how it learnt the peer's uid), then hung up without a byte.
    assert_eq!(trap.heard(&ours).await, vec![0]);
}
