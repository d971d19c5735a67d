//! Building blocks for the OTR end-to-end tests: a simulated server with named users and DMs, a
//! real `otrd` logged in to it with its WatchEvents stream, `otrctl --json` runs that must succeed
//! (or must fail), and waits for session states, messages and acks — every wait bounded.

use crate::daemon::{config_for, Daemon};
use crate::events::wait_for;
use anyhow::{bail, ensure, Context};
use otrd_proto::v1::event::Kind;
use otrd_proto::v1::{
    Direction, Event, GetStatusRequest, ListRoomsRequest, SessionState, WatchEventsRequest,
};
use rcsim::{DmConfig, SimConfig, UserConfig};
use serde_json::Value;
use std::time::{Duration, Instant};
use tonic::Streaming;

/// The bound of any single wait for a network round trip in these tests (generous: the machine
/// is shared and Node starts slowly). Protocol timeouts (10 s) are waited for with their own bound.
pub const WAIT: Duration = Duration::from_secs(20);

/// The environment variable that runs the suites built on [`sim_config`] against another server
/// generation: `9` is rcsim's 9.0 mode (DDP carries only `login {resume}`, streams and presence;
/// rooms and DMs over REST). scripts/test runs the legacy and 8.x native suites once more so.
pub const SERVER_GENERATION_ENV: &str = "OTRD_E2E_SERVER";

/// A simulator config with `users` (username = password with a `-pw` suffix) and a DM for each
/// pair in `dms`. User ids are derived from the names so tests can predict them. With
/// `OTRD_E2E_SERVER=9` the simulator runs in its 9.0 mode ([`SERVER_GENERATION_ENV`]).
pub fn sim_config(users: &[&str], dms: &[(&str, &str)]) -> SimConfig {
    SimConfig {
        rest_only_ddp: std::env::var(SERVER_GENERATION_ENV).is_ok_and(|v| v.trim() == "9"),
        users: users
            .iter()
            .map(|u| UserConfig::new(&user_id(u), u, &password(u)))
            .collect(),
        dms: dms
            .iter()
            .map(|(a, b)| DmConfig {
                id: format!("dm-{a}-{b}"),
                usernames: [(*a).to_owned(), (*b).to_owned()],
            })
            .collect(),
        ..SimConfig::default()
    }
}

/// The id [`sim_config`] gives `username` (17 characters, like Meteor ids).
pub fn user_id(username: &str) -> String {
    format!("{username:x<12}Uid00").chars().take(17).collect()
}

/// The password [`sim_config`] gives `username`.
pub fn password(username: &str) -> String {
    format!("{username}-pw")
}

/// The DM room id [`sim_config`] gives the pair.
pub fn dm_id(a: &str, b: &str) -> String {
    format!("dm-{a}-{b}")
}

/// A real otrd logged in as `user`, with a live WatchEvents stream.
pub struct Node {
    /// The process.
    pub daemon: Daemon,
    /// Events since just after login.
    pub events: Streaming<Event>,
    /// Who it is logged in as.
    pub user: String,
}

impl Node {
    /// Starts otrd for `user` on the simulator at `url` with extra config TOML, and waits until
    /// it is connected and knows at least one DM room.
    pub async fn start(url: &str, user: &str, extra_config: &str) -> anyhow::Result<Node> {
        Self::start_with_env(url, user, extra_config, &[]).await
    }

    /// Like [`Node::start`] with extra environment variables for otrd.
    pub async fn start_with_env(
        url: &str,
        user: &str,
        extra_config: &str,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Node> {
        let config = config_for(url, user, &password(user), extra_config);
        let daemon = Daemon::start_with_env(&config, &[], env).await?;
        wait_logged_in(&daemon).await?;
        let events = daemon
            .client()
            .await?
            .watch_events(WatchEventsRequest {
                include_scrollback: false,
            })
            .await?
            .into_inner();
        Ok(Node {
            daemon,
            events,
            user: user.to_owned(),
        })
    }

    /// `otrctl --json ARGS…`, which must exit 0; returns its last JSON line.
    pub fn ctl(&self, args: &[&str]) -> anyhow::Result<Value> {
        otrctl_json(&self.daemon, args)
    }

    /// `otrctl ARGS…`, which must fail; returns its exit code and stderr.
    pub fn ctl_fails(&self, args: &[&str]) -> anyhow::Result<(i32, String)> {
        let out = self.daemon.otrctl(args)?;
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        ensure!(
            !out.status.success(),
            "otrctl {args:?} succeeded but should have failed; stdout: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        Ok((out.status.code().unwrap_or(-1), stderr))
    }

    /// Waits for the session with `peer` to reach `state`; returns the state change.
    pub async fn wait_state(
        &mut self,
        peer: &str,
        state: SessionState,
    ) -> anyhow::Result<otrd_proto::v1::StateChange> {
        self.wait_state_within(peer, state, WAIT).await
    }

    /// [`Node::wait_state`] with its own bound (for protocol timeouts).
    pub async fn wait_state_within(
        &mut self,
        peer: &str,
        state: SessionState,
        within: Duration,
    ) -> anyhow::Result<otrd_proto::v1::StateChange> {
        let kind = wait_for(
            &mut self.events,
            within,
            |k| matches!(k, Kind::State(s) if s.peer == peer && s.state == state as i32),
        )
        .await
        .with_context(|| format!("{}: waiting for {peer} to be {state:?}", self.user))?;
        match kind {
            Kind::State(s) => Ok(s),
            _ => bail!("not a state change"),
        }
    }

    /// Waits for an incoming message from `peer`; returns (id, text).
    pub async fn wait_message(&mut self, peer: &str) -> anyhow::Result<(String, String)> {
        let kind = wait_for(&mut self.events, WAIT, |k| {
            matches!(k, Kind::Message(m) if m.peer == peer && m.direction == Direction::In as i32)
        })
        .await
        .with_context(|| format!("{}: waiting for a message from {peer}", self.user))?;
        match kind {
            Kind::Message(m) => Ok((m.id, m.text)),
            _ => bail!("not a message"),
        }
    }

    /// Waits for the `delivered` event of message `id`.
    pub async fn wait_delivered(&mut self, id: &str) -> anyhow::Result<()> {
        wait_for(
            &mut self.events,
            WAIT,
            |k| matches!(k, Kind::Delivered(d) if d.id == id),
        )
        .await
        .with_context(|| format!("{}: waiting for delivery of {id}", self.user))?;
        Ok(())
    }

    /// Waits for an invitation from `peer`.
    pub async fn wait_invitation(&mut self, peer: &str) -> anyhow::Result<()> {
        wait_for(
            &mut self.events,
            WAIT,
            |k| matches!(k, Kind::Invitation(i) if i.peer == peer),
        )
        .await
        .with_context(|| format!("{}: waiting for an invitation from {peer}", self.user))?;
        Ok(())
    }

    /// `otrctl --json send PEER TEXT`; returns the message id.
    pub fn send(&self, peer: &str, text: &str) -> anyhow::Result<String> {
        let sent = self.ctl(&["send", peer, text])?;
        sent["id"]
            .as_str()
            .filter(|id| !id.is_empty())
            .map(str::to_owned)
            .with_context(|| format!("send answered without an id: {sent}"))
    }

    /// GetStatus over gRPC.
    pub async fn status(&self) -> anyhow::Result<otrd_proto::v1::GetStatusResponse> {
        Ok(self
            .daemon
            .client()
            .await?
            .get_status(GetStatusRequest {})
            .await?
            .into_inner())
    }
}

/// Runs `otrctl --json ARGS…` against `daemon`; it must exit 0. Returns the last JSON line.
pub fn otrctl_json(daemon: &Daemon, args: &[&str]) -> anyhow::Result<Value> {
    let mut full = vec!["--json"];
    full.extend_from_slice(args);
    let out = daemon.otrctl(&full)?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "otrctl {args:?} exited {:?}; stderr: {}; stdout: {stdout}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .with_context(|| format!("otrctl {args:?} printed nothing"))?;
    serde_json::from_str(last).with_context(|| format!("otrctl {args:?} printed {last:?}"))
}

/// Polls GetStatus/ListRooms until the daemon is connected and knows a DM room (bounded).
pub async fn wait_logged_in(daemon: &Daemon) -> anyhow::Result<()> {
    let deadline = Instant::now() + WAIT;
    let mut client = daemon.client().await?;
    loop {
        let status = client.get_status(GetStatusRequest {}).await?.into_inner();
        if status.connection == otrd_proto::v1::ConnectionState::Connected as i32 {
            if let Ok(rooms) = client.list_rooms(ListRoomsRequest {}).await {
                if !rooms.into_inner().rooms.is_empty() {
                    return Ok(());
                }
            }
        }
        if Instant::now() > deadline {
            bail!(
                "otrd did not log in within {WAIT:?}: {status:?}; log:\n{}",
                daemon.log()
            );
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Polls `cond` (an async check) until it holds, failing after `within` with `what`.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut cond: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let deadline = Instant::now() + within;
    loop {
        if cond().await? {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("not within {within:?}: {what}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Checks the simulator's audit for what the server must never see: none of `texts` (plaintexts)
/// anywhere a client sent or the server stored; no private key (no JWK with a `d` member, and
/// none of `private_keys` in hex or base64); and no stored `t:"otr"` message.
pub fn assert_server_saw_nothing(
    audit: &rcsim::Audit,
    texts: &[&str],
    private_keys: &[Vec<u8>],
) -> anyhow::Result<()> {
    use base64::Engine as _;
    for text in texts {
        ensure!(
            !audit.contains(text),
            "plaintext {text:?} reached the server"
        );
    }
    for key in private_keys {
        let forms = [
            key.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            base64::engine::general_purpose::STANDARD.encode(key),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key),
        ];
        for form in forms {
            ensure!(!audit.contains(&form), "a private key reached the server");
        }
    }
    let mut jwks = 0;
    for record in &audit.client {
        if let Ok(v) = serde_json::from_str::<Value>(&record.data) {
            jwks += check_jwks(&v)?;
        }
        // HTTP records are "METHOD path\nbody".
        if let Some((_, body)) = record.data.split_once('\n') {
            if let Ok(v) = serde_json::from_str::<Value>(body) {
                jwks += check_jwks(&v)?;
            }
        }
    }
    ensure!(
        jwks > 0,
        "no public key was ever sent: the audit saw no handshake"
    );
    for stored in audit.stored_messages() {
        ensure!(stored["t"] != "otr", "an OTR message was stored: {stored}");
    }
    Ok(())
}

/// Counts the JWKs inside `v` (also JSON strings holding a JWK) and fails on a private one.
fn check_jwks(v: &Value) -> anyhow::Result<usize> {
    Ok(match v {
        Value::String(s) if s.contains("\"kty\"") => match serde_json::from_str::<Value>(s) {
            Ok(inner) => check_jwks(&inner)?,
            Err(_) => 0,
        },
        Value::Object(o) if o.contains_key("kty") => {
            ensure!(
                !o.contains_key("d"),
                "a private JWK reached the server: {v}"
            );
            1
        }
        Value::Object(o) => o.values().map(check_jwks).sum::<anyhow::Result<usize>>()?,
        Value::Array(a) => a.iter().map(check_jwks).sum::<anyhow::Result<usize>>()?,
        _ => 0,
    })
}

/// The 32-byte identity private key of a daemon (`$XDG_DATA_HOME/otrd/identity.key`: an 8-byte
/// magic then the key), to prove it never reaches the server.
pub fn identity_private_key(daemon: &Daemon) -> anyhow::Result<Vec<u8>> {
    let path = daemon.dir.path().join("data/otrd/identity.key");
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    ensure!(
        bytes.len() == 40,
        "unexpected identity file length {}",
        bytes.len()
    );
    Ok(bytes[8..].to_vec())
}
