//! The window finds the daemon where otrctl does when there is no `XDG_RUNTIME_DIR` (ssh sessions,
//! containers): `$TMPDIR/otrd-$UID/otrd.sock`. Its own test binary, because it sets the process's
//! environment.

mod common;

use common::{pump, TestDaemon};
use otrd_gui::model::{Link, ViewModel};
use otrd_gui::{socket, worker};
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_runtime_dir_the_window_finds_the_tmp_fallback() -> anyhow::Result<()> {
    let uid = otrd_proto::socket::own_uid();
    let daemon =
        TestDaemon::start_with(|dir| dir.join(format!("otrd-{uid}")).join("otrd.sock")).await?;
    std::env::remove_var("OTRD_SOCKET");
    std::env::remove_var("XDG_RUNTIME_DIR");
    std::env::set_var("TMPDIR", daemon.dir());

    let path = socket::default_path();
    assert_eq!(path, daemon.socket);
    let (_worker, mut updates) = worker::spawn(path, Arc::new(|| {}));
    let mut m = ViewModel::new();
    pump(
        &mut m,
        &mut updates,
        "connected through the fallback",
        |m| m.link() == Link::Connected && m.peer("echo").is_some(),
    )
    .await?;
    Ok(())
}
