//! Smoke test: the real `otrd-gui` binary under Xvfb against an in-process daemon, capturing
//! itself (`OTRD_GUI_SCREENSHOT`). Checks the PNG has the window's size and is not blank.
//! With `OTRD_GUI_UPDATE_SCREENSHOTS=1` the captures also replace `screenshots/*.png`.

mod common;

use anyhow::{bail, Context};
use common::TestDaemon;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// The window's inner size in `main.rs`, in pixels at Xvfb's scale of 1.
const SIZE: (u32, u32) = (900, 600);

fn xvfb_run() -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join("xvfb-run"))
        .find(|p| p.exists())
}

/// Runs the GUI for `scene` against `daemon`; returns the PNG path (in `dir`).
async fn capture(daemon: &TestDaemon, scene: &str, dir: &Path) -> anyhow::Result<PathBuf> {
    let Some(xvfb) = xvfb_run() else {
        bail!("no xvfb-run")
    };
    let png = dir.join(format!("{scene}.png"));
    let log_path = dir.join(format!("{scene}.log"));
    let log_file = std::fs::File::create(&log_path)?;
    let mut child = tokio::process::Command::new(xvfb)
        .args(["-a", "-s", "-screen 0 1024x768x24"])
        .arg(env!("CARGO_BIN_EXE_otrd-gui"))
        .env("OTRD_SOCKET", &daemon.socket)
        .env("OTRD_GUI_SCREENSHOT", &png)
        .env("OTRD_GUI_SCENE", scene)
        .env("OTRD_GUI_SELECT", "echo")
        .env("LIBGL_ALWAYS_SOFTWARE", "1")
        .env_remove("WAYLAND_DISPLAY")
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .kill_on_drop(true)
        .spawn()
        .context("starting xvfb-run otrd-gui")?;
    let waited = tokio::time::timeout(Duration::from_secs(90), child.wait()).await;
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    match waited {
        Err(_) => {
            child.kill().await?;
            bail!(
                "otrd-gui did not capture {scene} within 90 s; its log:\n{}",
                log()
            );
        }
        Ok(status) => {
            let status = status?;
            if !status.success() {
                bail!(
                    "otrd-gui failed for {scene} ({status}); its log:\n{}",
                    log()
                );
            }
        }
    }
    check_png(&png).with_context(|| format!("checking {scene}.png; log:\n{}", log()))?;
    if std::env::var_os("OTRD_GUI_UPDATE_SCREENSHOTS").is_some() {
        let keep = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("screenshots")
            .join(format!("{scene}.png"));
        std::fs::copy(&png, &keep)?;
    }
    Ok(png)
}

/// The expected size, and a picture rather than a blank frame: many distinct colours.
fn check_png(path: &Path) -> anyhow::Result<()> {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path)?));
    let mut reader = decoder.read_info()?;
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf)?;
    assert_eq!((info.width, info.height), SIZE, "window size");
    let bytes_per_pixel = info.color_type.samples();
    let colours: HashSet<&[u8]> = buf[..info.buffer_size()].chunks(bytes_per_pixel).collect();
    assert!(
        colours.len() > 50,
        "only {} distinct colours: blank frame?",
        colours.len()
    );
    Ok(())
}

fn skip() -> bool {
    if xvfb_run().is_none() {
        eprintln!(
            "SKIPPED: xvfb-run not found (Debian: apt-get install xvfb xauth libgl1-mesa-dri)"
        );
        return true;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renders_an_established_session_with_echo() -> anyhow::Result<()> {
    if skip() {
        return Ok(());
    }
    let daemon = TestDaemon::start().await?;
    daemon
        .establish_and_chat("hello from the smoke test")
        .await?;
    let dir = tempfile::tempdir()?;
    capture(&daemon, "chat", dir.path()).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renders_the_verification_dialog() -> anyhow::Result<()> {
    if skip() {
        return Ok(());
    }
    let daemon = TestDaemon::start().await?;
    daemon
        .establish_and_chat("shall we compare fingerprints?")
        .await?;
    let dir = tempfile::tempdir()?;
    capture(&daemon, "verify", dir.path()).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renders_an_invitation_prompt() -> anyhow::Result<()> {
    if skip() {
        return Ok(());
    }
    let daemon = TestDaemon::start().await?;
    daemon
        .demo
        .echo()
        .start(
            otrd::engine::PeerRef::Username("me".into()),
            otrd::engine::SchemePreference::Auto,
        )
        .await?;
    let dir = tempfile::tempdir()?;
    capture(&daemon, "invite", dir.path()).await?;
    Ok(())
}
