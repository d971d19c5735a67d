//! Runs a real `otrd` process on a temporary socket and talks to it like a front-end would:
//! through the real tonic client and through `otrctl` processes.

use anyhow::{bail, Context};
use otrd_proto::v1::otrd_client::OtrdClient;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;
use tonic::transport::Channel;

/// Path of a workspace binary (`otrd`, `otrctl`, `rcsim`) next to the running test executable.
/// The test command builds them first (`cargo build --workspace --bins`).
pub fn bin_path(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .context("test executable has no target directory")?;
    let path = dir.join(name);
    if !path.exists() {
        bail!(
            "{} is missing: build the binaries first (`cargo build --workspace --bins`)",
            path.display()
        );
    }
    Ok(path)
}

/// A running `otrd` with its own config, state and socket in a temporary directory.
pub struct Daemon {
    child: Child,
    /// Holds config, state and socket; removed on drop.
    pub dir: TempDir,
    /// The API socket.
    pub socket: PathBuf,
}

impl Daemon {
    /// Writes `config_toml`, starts `otrd --config … --socket …` and waits until it answers
    /// GetStatus (a condition, not a sleep), for at most 20 s.
    pub async fn start(config_toml: &str) -> anyhow::Result<Self> {
        Self::start_with_args(config_toml, &[]).await
    }

    /// Like [`Daemon::start`] with extra `otrd` arguments.
    pub async fn start_with_args(config_toml: &str, extra: &[&str]) -> anyhow::Result<Self> {
        Self::start_with_env(config_toml, extra, &[]).await
    }

    /// Like [`Daemon::start_with_args`] with extra environment variables for `otrd` (e.g.
    /// `DBUS_SYSTEM_BUS_ADDRESS` pointing at a private bus with a fake logind).
    pub async fn start_with_env(
        config_toml: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let config = dir.path().join("config.toml");
        std::fs::write(&config, config_toml)?;
        let runtime = dir.path().join("run");
        std::fs::create_dir(&runtime)?;
        let socket = runtime.join("otrd").join("otrd.sock");
        let log = std::fs::File::create(dir.path().join("otrd.log"))?;
        let child = Command::new(bin_path("otrd")?)
            .arg("--config")
            .arg(&config)
            .arg("--socket")
            .arg(&socket)
            .args(extra)
            .env("XDG_DATA_HOME", dir.path().join("data"))
            .env("XDG_RUNTIME_DIR", &runtime)
            .env("XDG_CONFIG_HOME", dir.path().join("config"))
            .env_remove("OTRD_SOCKET")
            .env("RUST_LOG", "otrd=debug,info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting otrd")?;
        let mut daemon = Self { child, dir, socket };
        daemon.wait_ready(Duration::from_secs(20)).await?;
        Ok(daemon)
    }

    async fn wait_ready(&mut self, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("otrd exited early ({status}); log:\n{}", self.log());
            }
            if let Ok(mut c) = self.client().await {
                if c.get_status(otrd_proto::v1::GetStatusRequest {})
                    .await
                    .is_ok()
                {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "otrd did not answer within {within:?}; log:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The otrd process id (for `/proc/<pid>/status`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A fresh gRPC client on the daemon's socket.
    pub async fn client(&self) -> anyhow::Result<OtrdClient<Channel>> {
        connect(&self.socket).await
    }

    /// Runs `otrctl --socket <ours> args…` to completion.
    pub fn otrctl(&self, args: &[&str]) -> anyhow::Result<Output> {
        Ok(Command::new(bin_path("otrctl")?)
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .stdin(Stdio::null())
            .output()?)
    }

    /// The daemon's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("otrd.log")).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn terminate(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                bail!("otrd did not stop within 10 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client on `socket` by the rule every front-end uses ([`otrd_proto::socket`]): the directory,
/// the socket and the serving process must be ours before a byte is sent.
pub async fn connect(socket: &Path) -> anyhow::Result<OtrdClient<Channel>> {
    Ok(otrd_proto::socket::connect(socket).await?)
}

/// A config file for a daemon logging in to `url` as `user` with `password`.
pub fn config_for(url: &str, user: &str, password: &str, extra: &str) -> String {
    format!(
        "[server]\nurl = \"{url}\"\n\n[account]\nusername = \"{user}\"\npassword_command = \"printf %s {password}\"\n\n{extra}\n"
    )
}
