//! The whole daemon in-process (`otrd::daemon::run_until`): socket modes, refusing a second
//! daemon, and a shutdown that ends sessions and removes the socket.

use otrd::daemon::{run_until, Options};
use otrd_e2e::api::WAIT;
use otrd_proto::v1 as pb;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use tokio::sync::oneshot;

const CONFIG: &str = r#"
[server]
url = "https://chat.example.invalid"

[account]
username = "alice"
password_command = "printf %s s3cret"
"#;

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p)
        .expect("exists")
        .permissions()
        .mode()
        & 0o777
}

/// Waits until the daemon answers GetStatus on `socket` (bounded).
async fn wait_serving(
    socket: &Path,
) -> otrd_proto::v1::otrd_client::OtrdClient<tonic::transport::Channel> {
    tokio::time::timeout(WAIT, async {
        loop {
            if let Ok(mut c) = otrctl::connect::connect(socket).await {
                if c.get_status(pb::GetStatusRequest {}).await.is_ok() {
                    return c;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("daemon serving in time")
}

#[tokio::test]
async fn daemon_serves_with_private_socket_and_cleans_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, CONFIG).expect("config");
    let socket = dir.path().join("run/otrd/otrd.sock");
    let opts = Options {
        config: Some(config.clone()),
        socket: Some(socket.clone()),
        demo: false,
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let daemon = tokio::spawn(run_until(opts.clone(), async move {
        let _ = stopped.await;
    }));
    let mut client = wait_serving(&socket).await;
    assert_eq!(mode(socket.parent().expect("dir")), 0o700);
    assert_eq!(mode(&socket), 0o600);

    let second = run_until(opts, std::future::pending())
        .await
        .expect_err("second daemon refused");
    assert!(
        second
            .to_string()
            .contains("another otrd is already serving on"),
        "{second:#}"
    );
    assert!(
        socket.exists(),
        "the refused daemon must not remove the live socket"
    );

    let status = client
        .get_status(pb::GetStatusRequest {})
        .await
        .expect("still served");
    assert_eq!(status.into_inner().account, "alice");

    stop.send(()).expect("daemon running");
    tokio::time::timeout(WAIT, daemon)
        .await
        .expect("daemon stopped in time")
        .expect("no panic")
        .expect("clean exit");
    assert!(!socket.exists(), "socket removed at shutdown");
}

#[tokio::test]
async fn config_errors_stop_the_daemon_before_it_binds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, format!("{CONFIG}\n[policy]\nauto_acept = true\n")).expect("config");
    let socket = dir.path().join("run/otrd.sock");
    let opts = Options {
        config: Some(config.clone()),
        socket: Some(socket.clone()),
        demo: false,
    };
    let err = run_until(opts, std::future::pending())
        .await
        .expect_err("bad config");
    let text = format!("{err:#}");
    assert!(
        text.contains(&format!("{}:10:", config.display())),
        "{text}"
    );
    assert!(text.contains("auto_acept"), "{text}");
    assert!(!socket.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_serves_the_simulated_account_without_a_config_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("run/otrd.sock");
    let opts = Options {
        config: Some(dir.path().join("no-such-config.toml")),
        socket: Some(socket.clone()),
        demo: true,
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let daemon = tokio::spawn(run_until(opts, async move {
        let _ = stopped.await;
    }));
    let mut client = wait_serving(&socket).await;
    let status = client
        .get_status(pb::GetStatusRequest {})
        .await
        .expect("status")
        .into_inner();
    assert_eq!(status.account, otrd::demo::DEMO_USER);
    stop.send(()).expect("daemon running");
    tokio::time::timeout(WAIT, daemon)
        .await
        .expect("daemon stopped in time")
        .expect("no panic")
        .expect("clean exit");
    assert!(!socket.exists(), "socket removed at shutdown");
}
