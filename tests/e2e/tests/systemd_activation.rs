//! Under systemd: otrd takes a socket-activated listener (LISTEN_FDS) instead of binding, and tells
//! the service manager `READY=1` on NOTIFY_SOCKET once it serves.

use otrd_e2e::daemon::{bin_path, connect};
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Kills the child on drop so a failed assertion leaves nothing running.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn socket_activation_and_ready_notification() -> anyhow::Result<()> {
    let Ok(activate) = which("systemd-socket-activate") else {
        eprintln!("skipped: systemd-socket-activate is not installed (Debian package `systemd`)");
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    // The socket's directory is private, as systemd's DirectoryMode=0700 makes it: clients refuse
    // any other.
    let run = dir.path().join("run");
    std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o700).create(&run)?;
    let activated = run.join("activated.sock");
    // A different --socket path: if otrd bound it itself instead of taking fd 3, the activated
    // socket would never answer.
    let unused = dir.path().join("not-used").join("otrd.sock");
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path)?;
    notify.set_read_timeout(Some(Duration::from_secs(20)))?;

    let _child = Child(
        Command::new(activate)
            .arg("-l")
            .arg(&activated)
            // systemd-socket-activate passes only the variables it is told to.
            .arg("-E")
            .arg(format!("NOTIFY_SOCKET={}", notify_path.display()))
            .arg(bin_path("otrd")?)
            .arg("--demo")
            .arg("--socket")
            .arg(&unused)
            .env("NOTIFY_SOCKET", &notify_path)
            .env("XDG_DATA_HOME", dir.path().join("data"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );

    // systemd-socket-activate starts otrd on the first connection, as systemd does.
    let socket = activated.clone();
    let status = tokio::spawn(async move {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut client = loop {
            match connect(&socket).await {
                Ok(c) => break c,
                Err(e) if Instant::now() > deadline => {
                    anyhow::bail!("activated socket never answered: {e}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        Ok(client
            .get_status(otrd_proto::v1::GetStatusRequest {})
            .await?
            .into_inner())
    });
    let message = tokio::task::spawn_blocking(move || -> anyhow::Result<String> {
        let mut buf = [0u8; 256];
        let n = notify.recv(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf[..n]).to_string())
    })
    .await??;
    assert!(
        message.lines().any(|l| l == "READY=1"),
        "notification was {message:?}"
    );
    let status = status.await??;
    assert_eq!(status.api_version, otrd_proto::API_VERSION);
    assert!(
        !unused.exists(),
        "otrd bound its own socket despite socket activation"
    );
    Ok(())
}

fn which(name: &str) -> anyhow::Result<std::path::PathBuf> {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()?;
    anyhow::ensure!(out.status.success(), "{name} not found");
    Ok(String::from_utf8(out.stdout)?.trim().into())
}
