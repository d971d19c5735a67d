//! Issue 17 end to end: every kind of login a real Rocket.Chat account needs, with real `otrd` and
//! `otrctl` processes against rcsim — password (REST login, then DDP resume), LDAP-only users
//! (the server's REST rewrite, and the DDP fallback), TOTP from `totp_command` and given with
//! `otrctl login` (codes computed here per RFC 6238), a wrong code (refused once, never sent
//! again), e-mail 2FA, a personal access token for a 2FA account, an expired token ("log in
//! again", no reconnect storm), the EE DDP endpoint that takes only resume logins, and the 9.0
//! mode's REST-only paths.

use anyhow::{bail, ensure, Context};
use otrd_e2e::daemon::{bin_path, config_for, Daemon};
use otrd_e2e::otr::{dm_id, password, sim_config, user_id, wait_logged_in, WAIT};
use otrd_proto::v1::{ConnectionState, GetStatusRequest, GetStatusResponse};
use rcsim::config::totp;
use rcsim::{Credential, SimConfig};
use serde_json::Value;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The TOTP secret of alice's authenticator app.
const SECRET: &[u8] = b"alice-totp-secret-0123";

fn base() -> SimConfig {
    sim_config(&["alice", "bob"], &[("alice", "bob")])
}

fn with_totp(mut cfg: SimConfig) -> SimConfig {
    cfg.users[0].totp_secret = Some(Credential::new(String::from_utf8_lossy(SECRET)));
    cfg
}

async fn start(cfg: SimConfig) -> anyhow::Result<rcsim::SimHandle> {
    rcsim::start(cfg, "127.0.0.1:0".parse()?).await
}

/// otrd for alice with her password and `extra` config.
async fn alice(sim: &rcsim::SimHandle, extra: &str) -> anyhow::Result<Daemon> {
    Daemon::start(&config_for(
        &sim.http_url(),
        "alice",
        &password("alice"),
        extra,
    ))
    .await
}

async fn status(d: &Daemon) -> anyhow::Result<GetStatusResponse> {
    Ok(d.client()
        .await?
        .get_status(GetStatusRequest {})
        .await?
        .into_inner())
}

/// Polls GetStatus until the connection is in `state`; returns that status.
async fn wait_connection(d: &Daemon, state: ConnectionState) -> anyhow::Result<GetStatusResponse> {
    let deadline = Instant::now() + WAIT;
    loop {
        let s = status(d).await?;
        if s.connection == state as i32 {
            return Ok(s);
        }
        if Instant::now() > deadline {
            bail!("never {state:?}: {s:?}; log:\n{}", d.log());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// How many audited client records contain `needle`.
fn count(sim: &rcsim::SimHandle, needle: &str) -> usize {
    sim.audit()
        .client
        .iter()
        .filter(|r| r.data.contains(needle))
        .count()
}

/// Every DDP `login` frame alice's daemon sent, as JSON.
fn ddp_logins(sim: &rcsim::SimHandle) -> Vec<Value> {
    sim.audit()
        .client
        .iter()
        .filter_map(|r| serde_json::from_str::<Value>(&r.data).ok())
        .filter(|v| v["msg"] == "method" && v["method"] == "login")
        .collect()
}

/// The current code, and one the server would refuse (not in its ±1 step window).
fn codes() -> (String, String) {
    let now = totp::now_secs();
    let good = totp::code_at(SECRET, now);
    let window: Vec<String> = [now - 60, now - 30, now, now + 30, now + 60]
        .iter()
        .map(|t| totp::code_at(SECRET, *t))
        .collect();
    let wrong = (0..1000u32)
        .map(|n| format!("{:06}", (n * 7919) % 1_000_000))
        .find(|c| !window.contains(c))
        .unwrap_or_default();
    (good, wrong)
}

/// `otrctl login` with the code on stdin (off the command line); returns (success, output).
fn login_via_stdin(d: &Daemon, code: &str) -> anyhow::Result<(bool, String)> {
    let mut child = Command::new(bin_path("otrctl")?)
        .arg("--socket")
        .arg(&d.socket)
        .arg("login")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(format!("{code}\n").as_bytes())?;
    let out = child.wait_with_output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.success(), text))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_logs_in_over_rest_then_resumes_over_ddp_and_after_a_drop() -> anyhow::Result<()> {
    let sim = start(base()).await?;
    let d = alice(&sim, "").await?;
    wait_logged_in(&d).await?;
    let s = status(&d).await?;
    assert_eq!(s.login_method, "password (REST login, then DDP resume)");
    assert_eq!(s.server_generation, "7.x");
    assert!(s.api_paths.contains("DDP rooms/get"), "{}", s.api_paths);
    assert_eq!(count(&sim, "POST /api/v1/login"), 1);
    let logins = ddp_logins(&sim);
    ensure!(
        logins
            .iter()
            .all(|l| l["params"][0].get("resume").is_some()),
        "DDP saw a non-resume login: {logins:?}"
    );
    // A reconnect resumes: no new REST login, no password on DDP.
    sim.drop_all_connections();
    tokio::time::sleep(Duration::from_millis(200)).await;
    wait_logged_in(&d).await?;
    assert_eq!(count(&sim, "POST /api/v1/login"), 1);
    assert!(ddp_logins(&sim).len() >= 2);
    let text = String::from_utf8_lossy(&d.otrctl(&["status"])?.stdout).into_owned();
    assert!(text.contains("logged in:   password (REST login"), "{text}");
    assert!(
        !d.log().contains(&password("alice")),
        "the password is in the log"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ldap_only_user_logs_in_through_the_rest_rewrite_and_the_ddp_fallback(
) -> anyhow::Result<()> {
    let mut cfg = base();
    cfg.ldap_enable = true;
    cfg.users[0].ldap = true;
    let sim = start(cfg.clone()).await?;
    let d = alice(&sim, "").await?;
    wait_logged_in(&d).await?;
    assert_eq!(
        status(&d).await?.login_method,
        "LDAP (REST login, then DDP resume)"
    );
    drop(d);
    // Without REST login: the DDP password login says "no password set", the LDAP form works.
    cfg.no_rest_login = true;
    let sim = start(cfg).await?;
    let d = alice(&sim, "").await?;
    wait_logged_in(&d).await?;
    assert_eq!(
        status(&d).await?.login_method,
        "LDAP (DDP login; no REST login)"
    );
    let logins = ddp_logins(&sim);
    assert_eq!(logins.len(), 2, "{logins:?}");
    assert!(logins[0]["params"][0]["password"]["digest"].is_string());
    assert_eq!(logins[1]["params"][0]["ldap"], true);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totp_from_totp_command_and_no_new_code_on_reconnect() -> anyhow::Result<()> {
    let sim = start(with_totp(base())).await?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("code");
    std::fs::write(&file, codes().0)?;
    let config = config_for(&sim.http_url(), "alice", &password("alice"), "").replace(
        "[account]\n",
        &format!("[account]\ntotp_command = \"cat {}\"\n", file.display()),
    );
    let d = Daemon::start(&config).await?;
    wait_logged_in(&d).await?;
    let s = status(&d).await?;
    assert_eq!(
        s.login_method,
        "password (REST login, then DDP resume); two-factor totp"
    );
    assert_eq!(s.two_factor, "totp");
    // First a code-less attempt (the server says which factor), then one with the code.
    assert_eq!(count(&sim, "POST /api/v1/login"), 2);
    std::fs::write(&file, "garbage")?;
    sim.drop_all_connections();
    tokio::time::sleep(Duration::from_millis(200)).await;
    wait_logged_in(&d).await?;
    assert_eq!(count(&sim, "POST /api/v1/login"), 2, "resume needs no code");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totp_given_with_otrctl_login_and_a_wrong_code_is_never_sent_twice() -> anyhow::Result<()> {
    let sim = start(with_totp(base())).await?;
    let d = alice(&sim, "").await?;
    let s = wait_connection(&d, ConnectionState::TwoFactorRequired).await?;
    assert!(
        s.connection_detail
            .starts_with("two-factor code required (totp)"),
        "{}",
        s.connection_detail
    );
    assert!(s.connection_detail.contains("otrctl login"));
    assert_eq!(s.two_factor, "totp");
    let json = String::from_utf8_lossy(&d.otrctl(&["--json", "status"])?.stdout).into_owned();
    assert!(
        json.contains(r#""connection":"two_factor_required""#),
        "{json}"
    );
    let (good, wrong) = codes();
    // A wrong code: refused with the server's reason, and the daemon keeps asking.
    let (ok, out) = login_via_stdin(&d, &wrong)?;
    assert!(!ok, "a wrong code was accepted: {out}");
    assert!(out.contains("totp-invalid"), "{out}");
    let attempts = count(&sim, "POST /api/v1/login");
    let s = wait_connection(&d, ConnectionState::TwoFactorRequired).await?;
    assert!(
        s.connection_detail.contains("refused the code"),
        "{}",
        s.connection_detail
    );
    // The same wrong code again is refused by otrd itself: nothing reaches the server.
    let out = d.otrctl(&["login", &wrong])?;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already refused"));
    assert_eq!(count(&sim, "POST /api/v1/login"), attempts);
    // The right code logs in.
    let (ok, out) = login_via_stdin(&d, &good)?;
    assert!(ok, "{out}\n{}", d.log());
    wait_logged_in(&d).await?;
    assert_eq!(status(&d).await?.two_factor, "totp");
    assert!(
        !d.log().contains(&good) && !d.log().contains(&wrong),
        "a code is in the log"
    );
    // Bounded: the code-less attempt, the wrong code, the right one.
    assert_eq!(count(&sim, "POST /api/v1/login"), 3);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_two_factor_says_a_code_was_sent_and_takes_it() -> anyhow::Result<()> {
    let outbox = tempfile::tempdir()?;
    let mut cfg = base();
    cfg.users[0].email_2fa = true;
    cfg.email_outbox = Some(outbox.path().to_owned());
    let sim = start(cfg).await?;
    let d = alice(&sim, "").await?;
    let s = wait_connection(&d, ConnectionState::TwoFactorRequired).await?;
    assert!(
        s.connection_detail
            .starts_with("two-factor code required (email)"),
        "{}",
        s.connection_detail
    );
    assert!(s.connection_detail.contains("sent a code to your e-mail"));
    let code = std::fs::read_to_string(outbox.path().join("alice.code"))?;
    let out = d.otrctl(&["login", &format!("{}-{}", &code[..3], &code[3..])])?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_logged_in(&d).await?;
    let s = status(&d).await?;
    assert_eq!(s.two_factor, "email");
    assert!(
        s.login_method.ends_with("two-factor email"),
        "{}",
        s.login_method
    );
    Ok(())
}

/// A config logging alice in with a token from `token_command`.
fn token_config(sim: &rcsim::SimHandle, token: &str) -> String {
    format!(
        "[server]\nurl = \"{}\"\n\n[account]\nusername = \"alice\"\nuser_id = \"{}\"\ntoken_command = \"printf %s {token}\"\n",
        sim.http_url(),
        user_id("alice")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_personal_access_token_logs_a_2fa_account_in_without_a_code() -> anyhow::Result<()> {
    let mut cfg = with_totp(base());
    cfg.users[0].personal_access_tokens = vec![Credential::new("alice-pat-0123456789")];
    let sim = start(cfg).await?;
    let d = Daemon::start(&token_config(&sim, "alice-pat-0123456789")).await?;
    wait_logged_in(&d).await?;
    let s = status(&d).await?;
    assert_eq!(s.login_method, "token (DDP resume)");
    assert_eq!(s.two_factor, "");
    assert_eq!(count(&sim, "POST /api/v1/login"), 0);
    assert!(
        !d.log().contains("alice-pat-0123456789"),
        "the token is in the log"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_says_log_in_again_without_a_reconnect_storm() -> anyhow::Result<()> {
    let mut cfg = base();
    cfg.users[0].expired_tokens = vec![Credential::new("alice-old-session-token")];
    let sim = start(cfg).await?;
    let d = Daemon::start(&token_config(&sim, "alice-old-session-token")).await?;
    let s = wait_connection(&d, ConnectionState::AuthFailed).await?;
    assert!(
        s.connection_detail.starts_with("log in again"),
        "{}",
        s.connection_detail
    );
    assert!(s.connection_detail.contains("logged out by the server"));
    // An absence needs a window: a reconnect loop would log in again within it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(ddp_logins(&sim).len(), 1);
    assert_eq!(
        status(&d).await?.connection,
        ConnectionState::AuthFailed as i32
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ee_ddp_endpoint_and_the_9_0_mode_take_only_resume_logins() -> anyhow::Result<()> {
    let mut cfg = base();
    cfg.ddp_resume_only = true;
    let sim = start(cfg).await?;
    let d = alice(&sim, "").await?;
    wait_logged_in(&d).await?;
    assert!(ddp_logins(&sim)
        .iter()
        .all(|l| l["params"][0].get("resume").is_some()));
    drop(d);
    // 9.0: rooms come from REST rooms.get, status says so; DDP methods gone.
    let mut cfg = base();
    cfg.mode = rcsim::Mode::V8;
    cfg.rest_only_ddp = true;
    let sim = start(cfg).await?;
    let d = alice(&sim, "").await?;
    wait_logged_in(&d).await?;
    let s = status(&d).await?;
    assert_eq!(s.server_version, "9.0.0");
    assert_eq!(s.server_generation, "9.x (REST only)");
    assert!(s.api_paths.contains("REST rooms.get"), "{}", s.api_paths);
    assert!(count(&sim, "GET /api/v1/rooms.get") >= 1);
    assert_eq!(count(&sim, r#""method":"rooms/get""#), 0);
    let rooms = d.otrctl(&["--json", "rooms"])?;
    assert!(String::from_utf8_lossy(&rooms.stdout).contains(&dm_id("alice", "bob")));
    Ok(())
}
