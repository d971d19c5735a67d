//! What the load benchmarks run against: rcsim in-process, real `otrd` processes on temporary
//! sockets (so RSS and locked bytes are the daemon's own), gRPC clients.

use anyhow::{bail, Context, Result};
use otrd_proto::v1::otrd_client::OtrdClient;
use otrd_proto::v1::{ConnectionState, GetStatusRequest, GetStatusResponse, ListRoomsRequest};
use rcsim::{SimConfig, SimHandle, UserConfig};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;
use tonic::transport::{Channel, Endpoint, Uri};

/// A gRPC client on a daemon's socket.
pub type Client = OtrdClient<Channel>;

/// Username of the `i`-th generated user; every password is `pw`.
pub fn user(i: usize) -> String {
    format!("u{i:05}")
}

/// An rcsim with `me` plus `users` generated users, each with a DM to `me`; rate limits off
/// unless `limits` (the benchmarks measure otrd, not the simulated limiter).
pub async fn sim(users: usize, limits: bool) -> Result<SimHandle> {
    let mut cfg = SimConfig::default();
    cfg.rate_limits.enabled = limits;
    cfg.users
        .push(UserConfig::new("meUid00000000001", "me", "pw"));
    for i in 0..users {
        cfg.users
            .push(UserConfig::new(&format!("uid{i:013}"), &user(i), "pw"));
        cfg.dms.push(rcsim::DmConfig {
            id: String::new(),
            usernames: ["me".into(), user(i)],
        });
    }
    rcsim::start(cfg, "127.0.0.1:0".parse()?).await
}

/// A running `otrd` process.
pub struct Daemon {
    child: Child,
    _dir: TempDir,
    /// Its API socket.
    pub socket: PathBuf,
}

fn otrd_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe.parent().context("no exe dir")?.join("otrd");
    if !path.exists() {
        bail!(
            "{} is missing: run scripts/bench (it builds otrd first)",
            path.display()
        );
    }
    Ok(path)
}

impl Daemon {
    /// Starts `otrd` logged in to `url` as `username` (password "pw") and waits until GetStatus
    /// says connected and its DM list is loaded (a condition, polled; at most `within`).
    pub async fn start(
        url: &str,
        username: &str,
        auto_accept: bool,
        within: Duration,
    ) -> Result<Daemon> {
        Self::start_with(url, username, auto_accept, "", within).await
    }

    /// [`Daemon::start`] with more config TOML after the `[policy]` table (e.g. `[transport]`).
    pub async fn start_with(
        url: &str,
        username: &str,
        auto_accept: bool,
        extra_config: &str,
        within: Duration,
    ) -> Result<Daemon> {
        let dir = tempfile::tempdir()?;
        let config = dir.path().join("config.toml");
        std::fs::write(
            &config,
            format!(
                "[server]\nurl = \"{url}\"\n\n[account]\nusername = \"{username}\"\npassword_command = \"printf %s pw\"\n\n\
                 [policy]\nauto_accept = {auto_accept}\n\n{extra_config}\n"
            ),
        )?;
        let runtime = dir.path().join("run");
        std::fs::create_dir(&runtime)?;
        let socket = runtime.join("otrd").join("otrd.sock");
        let log = std::fs::File::create(dir.path().join("otrd.log"))?;
        let child = Command::new(otrd_binary()?)
            .arg("--config")
            .arg(&config)
            .arg("--socket")
            .arg(&socket)
            .env("XDG_DATA_HOME", dir.path().join("data"))
            .env("XDG_RUNTIME_DIR", &runtime)
            .env(
                "RUST_LOG",
                std::env::var("OTRD_BENCH_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting otrd")?;
        let mut d = Daemon {
            child,
            _dir: dir,
            socket,
        };
        let deadline = Instant::now() + within;
        let mut log_checked = Instant::now();
        loop {
            if let Some(status) = d.child.try_wait()? {
                bail!("otrd exited early ({status}): {}", d.log());
            }
            if let Ok(mut c) = d.client().await {
                // Connected, and the DM list loaded (signals for unknown rooms are ignored).
                if let Ok(s) = c.get_status(GetStatusRequest {}).await {
                    if s.get_ref().connection == ConnectionState::Connected as i32
                        && c.list_rooms(ListRoomsRequest {})
                            .await
                            .is_ok_and(|r| !r.get_ref().rooms.is_empty())
                    {
                        return Ok(d);
                    }
                }
            }
            if Instant::now() > deadline {
                bail!("otrd not connected within {within:?}: {}", d.log());
            }
            // A refused frame (e.g. a DM list over the client's 1 MiB frame limit) repeats on
            // every reconnect: report it now rather than at the deadline.
            if log_checked.elapsed() > Duration::from_secs(1) {
                log_checked = Instant::now();
                if d.log().contains("larger than max_frame_bytes") {
                    bail!("otrd refuses the server's frames: {}", d.log());
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The process id (for `/proc/<pid>/stat`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A fresh client (its own connection).
    pub async fn client(&self) -> Result<Client> {
        connect(&self.socket).await
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("otrd.log")).unwrap_or_default()
    }

    /// VmRSS from /proc/PID/status, in KiB.
    pub fn rss_kib(&self) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        status
            .lines()
            .find_map(|l| {
                l.strip_prefix("VmRSS:")?
                    .trim()
                    .strip_suffix("kB")?
                    .trim()
                    .parse()
                    .ok()
            })
            .context("no VmRSS")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A tonic channel over a Unix socket.
pub async fn connect(socket: &Path) -> Result<Client> {
    let path = socket.to_owned();
    // The URI is a placeholder: the connector dials the socket.
    let channel = Endpoint::try_from("http://[::]:50051")?
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(path).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
            }
        }))
        .await?;
    Ok(OtrdClient::new(channel))
}

/// GetStatus.
pub async fn status(c: &mut Client) -> Result<GetStatusResponse> {
    Ok(c.get_status(GetStatusRequest {}).await?.into_inner())
}
