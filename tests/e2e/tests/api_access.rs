//! Only the daemon's own uid is served: a connection whose peer credentials carry another uid is
//! refused with PERMISSION_DENIED on every service.
//!
//! The refusal is driven by telling the real server to expect a different uid than ours; the
//! process test in `clients/cli/tests/` runs otrctl as a genuinely different user when root (its
//! client refuses first: the socket directory is not its own).

use otrd::api::ServeOptions;
use otrd_e2e::api::{real_engine, ApiServer};
use otrd_proto::v1 as pb;
use tonic::Code;

#[tokio::test]
async fn another_uid_is_refused_on_every_service() {
    let own = rustix::process::geteuid().as_raw();
    let options = ServeOptions {
        expected_uid: own.wrapping_add(1),
    };
    let server = ApiServer::start_with(real_engine(), options).await;
    let mut client = server.client().await;
    let err = client
        .get_status(pb::GetStatusRequest {})
        .await
        .expect_err("refused");
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(
        err.message().contains(&format!("from uid {own}")),
        "{}",
        err.message()
    );

    let err = client
        .watch_events(pb::WatchEventsRequest::default())
        .await
        .expect_err("refused");
    assert_eq!(err.code(), Code::PermissionDenied);

    let mut health = tonic_health::pb::health_client::HealthClient::new(server.channel().await);
    let err = health
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .expect_err("health refused too");
    assert_eq!(err.code(), Code::PermissionDenied);
    server.stop().await.expect("clean stop");
}

#[tokio::test]
async fn our_own_uid_is_served() {
    let server = ApiServer::start_with(real_engine(), ServeOptions::default()).await;
    let mut client = server.client().await;
    client
        .get_status(pb::GetStatusRequest {})
        .await
        .expect("served");
    server.stop().await.expect("clean stop");
}
