//! Desktop notifications against a fake notification server on a private D-Bus session bus
//! (`dbus-daemon --session`), with the demo's simulator and `echo` contact inviting `me`.

use anyhow::{bail, Context};
use otrd::config::Config;
use otrd::engine::{EngineHandle, EventKind, PeerRef, SchemePreference, SessionState};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::sync::mpsc;
use zbus::zvariant::OwnedValue;

const WITHIN: Duration = Duration::from_secs(30);

/// A private session bus; killed on drop.
struct Bus {
    child: Child,
    address: String,
}

impl Bus {
    fn start() -> anyhow::Result<Option<Self>> {
        let spawned = Command::new("dbus-daemon")
            .args(["--session", "--print-address", "--nofork"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let stdout = child.stdout.take().context("dbus-daemon stdout")?;
        // The first line is the address; dbus-daemon prints it once it listens.
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let address = line.trim().to_owned();
        if address.is_empty() {
            let _ = child.kill();
            bail!("dbus-daemon printed no address");
        }
        Ok(Some(Self { child, address }))
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One Notify call as the fake server saw it.
#[derive(Debug)]
struct Shown {
    id: u32,
    app_name: String,
    summary: String,
    body: String,
    actions: Vec<String>,
}

/// The fake org.freedesktop.Notifications server.
struct FakeServer {
    capabilities: Vec<String>,
    next_id: u32,
    shown: mpsc::UnboundedSender<Shown>,
}

#[zbus::interface(name = "org.freedesktop.Notifications")]
impl FakeServer {
    #[allow(clippy::too_many_arguments)]
    fn notify(
        &mut self,
        app_name: String,
        _replaces_id: u32,
        _app_icon: String,
        summary: String,
        body: String,
        actions: Vec<String>,
        _hints: HashMap<String, OwnedValue>,
        _expire_timeout: i32,
    ) -> u32 {
        self.next_id += 1;
        let _ = self.shown.send(Shown {
            id: self.next_id,
            app_name,
            summary,
            body,
            actions,
        });
        self.next_id
    }

    fn get_capabilities(&self) -> Vec<String> {
        self.capabilities.clone()
    }

    fn close_notification(&self, _id: u32) {}

    fn get_server_information(&self) -> (String, String, String, String) {
        ("fake".into(), "otrd tests".into(), "1".into(), "1.2".into())
    }
}

struct Setup {
    _bus: Bus,
    server: zbus::Connection,
    shown: mpsc::UnboundedReceiver<Shown>,
    engine: EngineHandle,
    demo: otrd::demo::Demo,
    _engine_task: tokio::task::JoinHandle<()>,
}

async fn setup(capabilities: &[&str]) -> anyhow::Result<Option<Setup>> {
    let Some(bus) = Bus::start()? else {
        eprintln!("SKIPPED: dbus-daemon not found (Debian: apt-get install dbus)");
        return Ok(None);
    };
    let (tx, shown) = mpsc::unbounded_channel();
    let fake = FakeServer {
        capabilities: capabilities.iter().map(|c| c.to_string()).collect(),
        next_id: 0,
        shown: tx,
    };
    let server = zbus::connection::Builder::address(bus.address.as_str())?
        .name("org.freedesktop.Notifications")?
        .serve_at("/org/freedesktop/Notifications", fake)?
        .build()
        .await?;
    let demo = otrd::demo::start().await?;
    let (engine, engine_task) = otrd::engine::spawn(demo.engine_config.clone());
    wait_logged_in(&engine, demo.echo()).await?;
    otrd::notify::spawn(engine.clone(), Some(bus.address.clone())).await?;
    Ok(Some(Setup {
        _bus: bus,
        server,
        shown,
        engine,
        demo,
        _engine_task: engine_task,
    }))
}

/// Both `me` and `echo` are logged in and see their room (an invitation sent before `me` is
/// subscribed would be lost).
async fn wait_logged_in(engine: &EngineHandle, echo: &EngineHandle) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + WITHIN;
    let sees = |rooms: Result<Vec<otrd::engine::RoomInfo>, _>, peer: &str| {
        rooms.is_ok_and(|r: Vec<otrd::engine::RoomInfo>| r.iter().any(|r| r.peer == peer))
    };
    while !(sees(engine.list_rooms().await, "echo") && sees(echo.list_rooms().await, "me")) {
        if tokio::time::Instant::now() > deadline {
            bail!("`me` and `echo` never both logged in");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

async fn next_shown(rx: &mut mpsc::UnboundedReceiver<Shown>) -> anyhow::Result<Shown> {
    tokio::time::timeout(WITHIN, rx.recv())
        .await
        .context("no Notify call")?
        .context("fake server gone")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invitation_notifies_and_accept_action_establishes() -> anyhow::Result<()> {
    let Some(mut s) = setup(&["body", "actions"]).await? else {
        return Ok(());
    };
    let (_, mut events) = s.engine.watch(false).await?;
    s.demo
        .echo()
        .start(PeerRef::Username("me".into()), SchemePreference::Auto)
        .await?;
    let shown = next_shown(&mut s.shown).await?;
    assert_eq!(shown.app_name, "otrd");
    assert!(
        shown.summary.contains("echo"),
        "summary names the peer: {shown:?}"
    );
    assert_eq!(shown.actions, ["accept", "Accept", "decline", "Decline"]);

    invoke(&s.server, shown.id, "accept").await?;
    let state = wait_state(&mut events, "echo").await?;
    assert_eq!(
        state,
        SessionState::Established,
        "accepting from the notification"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decline_action_declines_and_the_peer_is_told() -> anyhow::Result<()> {
    let Some(mut s) = setup(&["actions"]).await? else {
        return Ok(());
    };
    let (_, mut echo_events) = s.demo.echo().watch(false).await?;
    s.demo
        .echo()
        .start(PeerRef::Username("me".into()), SchemePreference::Auto)
        .await?;
    let shown = next_shown(&mut s.shown).await?;
    invoke(&s.server, shown.id, "decline").await?;
    let state = wait_state(&mut echo_events, "me").await?;
    assert_eq!(state, SessionState::Declined);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_actions_capability_the_notification_has_no_buttons() -> anyhow::Result<()> {
    let Some(mut s) = setup(&["body"]).await? else {
        return Ok(());
    };
    s.demo
        .echo()
        .start(PeerRef::Username("me".into()), SchemePreference::Auto)
        .await?;
    let shown = next_shown(&mut s.shown).await?;
    assert!(shown.actions.is_empty(), "{shown:?}");
    assert!(shown.body.contains("otrctl accept echo"), "{shown:?}");
    Ok(())
}

#[test]
fn notifications_are_on_by_default_and_can_be_switched_off() -> anyhow::Result<()> {
    assert!(Config::default().notifications.enabled);
    let off: Config = toml::from_str("[notifications]\nenabled = false\n")?;
    assert!(!off.notifications.enabled);
    Ok(())
}

async fn invoke(server: &zbus::Connection, id: u32, action: &str) -> anyhow::Result<()> {
    server
        .emit_signal(
            None::<()>,
            "/org/freedesktop/Notifications",
            "org.freedesktop.Notifications",
            "ActionInvoked",
            &(id, action),
        )
        .await?;
    Ok(())
}

/// The first state `peer`'s session settles in (anything but establishing or requested).
async fn wait_state(
    events: &mut tokio::sync::broadcast::Receiver<otrd::engine::Event>,
    want_peer: &str,
) -> anyhow::Result<SessionState> {
    tokio::time::timeout(WITHIN, async {
        loop {
            match events.recv().await {
                Ok(e) => {
                    if let EventKind::State { peer, state, .. } = e.kind {
                        let settled =
                            !matches!(state, SessionState::Establishing | SessionState::Requested);
                        if peer == want_peer && settled {
                            return Ok(state);
                        }
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => bail!("events closed: {e}"),
            }
        }
    })
    .await
    .context("no settled session state")?
}
