//! The Neovim plugin (clients/nvim) in headless Neovim against a real `otrd --demo`: the Lua
//! script clients/nvim/tests/plugin_test.lua starts a session with `echo`, sends through the chat
//! buffer's prompt, waits for the reply and the delivery mark, ends the session and checks the
//! buffer is wiped, then does the same with :OtrLock. Skipped (with a message) only when `nvim`
//! is not installed; CI installs Debian's `neovim`.

use otrd_e2e::daemon::{bin_path, config_for, Daemon};
use otrd_proto::v1 as pb;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// The whole script's budget; each wait inside it is bounded by 20 s.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

async fn wait_connected(daemon: &Daemon) {
    let mut client = daemon.client().await.expect("client");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let status = client
            .get_status(pb::GetStatusRequest {})
            .await
            .expect("status")
            .into_inner();
        if status.connection() == pb::ConnectionState::Connected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the demo never connected: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn plugin_chats_with_echo_and_wipes_buffers() {
    let Some(nvim) = find_on_path("nvim") else {
        eprintln!(
            "SKIPPED: nvim is not installed (apt-get install neovim); the plugin is untested"
        );
        return;
    };
    let daemon = Daemon::start_with_args(
        &config_for("http://127.0.0.1:9", "me", "x", ""),
        &["--demo"],
    )
    .await
    .expect("otrd --demo starts");
    wait_connected(&daemon).await;

    let otrctl = bin_path("otrctl").expect("otrctl built");
    let bin_dir = otrctl.parent().expect("otrctl has a directory");
    let mut path = vec![bin_dir.to_path_buf()];
    path.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    let path = std::env::join_paths(path).expect("PATH joins");

    let root = repo_root();
    let plugin = root.join("clients/nvim");
    let script = plugin.join("tests/plugin_test.lua");
    let home = tempfile::tempdir().expect("tempdir");
    let run = tokio::process::Command::new(nvim)
        .args(["--headless", "-u", "NONE", "-i", "NONE", "-n"])
        .arg("--cmd")
        .arg(format!("set rtp+={}", plugin.display()))
        .arg("-c")
        .arg(format!("luafile {}", script.display()))
        .env("OTRD_SOCKET", &daemon.socket)
        .env("PATH", path)
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .env("XDG_DATA_HOME", home.path().join("data"))
        .env("XDG_STATE_HOME", home.path().join("state"))
        .env("XDG_CACHE_HOME", home.path().join("cache"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(SCRIPT_TIMEOUT, run)
        .await
        .expect("the nvim script finished in time")
        .expect("nvim runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "plugin test failed ({}):\n{stderr}\n{}\notrd log:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        daemon.log()
    );
    assert!(
        stderr.contains("plugin_test: ok"),
        "the script did not finish:\n{stderr}"
    );
}
