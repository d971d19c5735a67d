//! Native peers for the 8.x cases: on Rocket.Chat 8.x only otrd talks to otrd, so every session
//! of the daemon under test needs a peer that speaks the native scheme over the realtime relays.
//! Each peer is the daemon's own engine (auto-accept, its own identity under a temporary state
//! directory, logged in as its own rcsim user); N of them run in a child process (this binary
//! with `--native-peers-of URL --peers N --peers-from K`), so their work never shares the
//! benchmark's runtime or its CPU accounting. The child prints `ready N` once every engine is
//! connected and knows its DM.

use anyhow::{bail, Context, Result};
use otrd::config::{AccountConfig, Config, MemlockPolicy, ServerConfig, TransportConfig};
use otrd::engine::{self, ConnectionState, EngineConfig, EngineHandle};
use otrd::rocketchat::Credentials;
use otrd::secure::SecretString;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Pacing of the realtime relays for every daemon in these cases: the benchmark's rcsim runs
/// without rate limits, and at the default 40 calls per 40 s establishing 100 sessions would take
/// minutes. The flood's own cost is what is measured, not the pacer.
pub const FAST_TRANSPORT: &str =
    "[transport]\ncalls_per_window = 100000\nuser_calls_per_window = 200000\nwindow_secs = 1\n";

/// The child process with the peers; killed on drop.
pub struct NativePeers {
    child: Child,
}

impl NativePeers {
    /// Starts peers `harness::user(first..first + n)` against rcsim at `url` and waits until all
    /// are online (at most `within`).
    pub fn start(url: &str, first: usize, n: usize, within: Duration) -> Result<Self> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(["--native-peers-of", url, "--peers"])
            .arg(n.to_string())
            .arg("--peers-from")
            .arg(first.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting the native peer process")?;
        let stdout = child.stdout.take().context("native peers' stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut peers = Self { child };
        match rx.recv_timeout(within) {
            Ok(line) if line == format!("ready {n}") => Ok(peers),
            Ok(line) => bail!("native peers: {line}"),
            Err(_) => {
                let status = peers.child.try_wait()?;
                bail!("native peers not ready within {within:?} (process status {status:?})")
            }
        }
    }
}

impl Drop for NativePeers {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The child's main: `n` engines from user `first` on, until killed.
pub async fn serve(url: &str, first: usize, n: usize) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let handles: Vec<EngineHandle> = (first..first + n)
        .map(|i| spawn(url, &crate::harness::user(i), dir.path()))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60 + n as u64 / 5);
    for h in &handles {
        loop {
            let online = h.status().await?.connection == ConnectionState::Connected
                && !h.list_rooms().await.unwrap_or_default().is_empty();
            if online {
                break;
            }
            if Instant::now() > deadline {
                println!("failed: a peer did not come online");
                bail!("a peer did not come online");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    println!("ready {n}");
    std::future::pending::<()>().await;
    Ok(())
}

fn spawn(url: &str, user: &str, state: &std::path::Path) -> EngineHandle {
    let mut config = Config {
        server: ServerConfig {
            url: url.to_owned(),
        },
        account: AccountConfig {
            username: user.to_owned(),
            ..AccountConfig::default()
        },
        transport: TransportConfig {
            calls_per_window: 100_000,
            user_calls_per_window: 200_000,
            window_secs: 1,
            ..TransportConfig::default()
        },
        ..Config::default()
    };
    config.policy.auto_accept = true;
    // A hundred engines in one process share one RLIMIT_MEMLOCK.
    config.security.memlock = MemlockPolicy::Warn;
    let (handle, _task) = engine::spawn(EngineConfig {
        config,
        credentials: Some(Credentials::Password {
            username: user.into(),
            password: SecretString::from("pw"),
        }),
        state_dir: Some(state.join(user)),
    });
    handle
}
