//! Every RPC of otrd.v1 through the real server and the real client, against the real engine
//! running without a server (`EngineConfig::offline`).
//!
//! Local commands must succeed; server-bound ones must be refused with a code a client can act
//! on and a message. Sessions against a live server are covered by the rcsim end-to-end tests.

use otrd_e2e::api::{real_engine, ApiServer};
use otrd_proto::v1 as pb;
use tonic::Code;

fn bob() -> Option<pb::PeerRef> {
    Some(pb::PeerRef {
        target: Some(pb::peer_ref::Target::Username("bob".into())),
    })
}

/// Refused with one of `codes` and a message for people.
fn refused<T: std::fmt::Debug>(
    rpc: &str,
    result: Result<tonic::Response<T>, tonic::Status>,
    codes: &[Code],
) {
    match result {
        Ok(r) => panic!("{rpc} succeeded without a server: {r:?}"),
        Err(status) => {
            assert!(codes.contains(&status.code()), "{rpc}: {status:?}");
            assert!(
                !status.message().is_empty(),
                "{rpc}: refused without a message"
            );
        }
    }
}

/// What a command about a peer with no session may say when there is no server.
const NO_SESSION: &[Code] = &[Code::Unavailable, Code::NotFound, Code::FailedPrecondition];

#[tokio::test]
async fn status_reports_versions_and_the_config() {
    let server = ApiServer::start(real_engine()).await;
    let mut client = server.client().await;
    let status = client
        .get_status(pb::GetStatusRequest {})
        .await
        .expect("GetStatus works")
        .into_inner();
    assert_eq!(status.api_version, otrd_proto::API_VERSION);
    assert_eq!(status.daemon_version, env!("CARGO_PKG_VERSION"));
    assert_eq!(status.account, "alice");
    assert_eq!(status.server_url, "https://chat.example.invalid");
    assert!(status.memory.is_some());
    server.stop().await.expect("clean stop");
}

#[tokio::test]
async fn every_rpc_answers_with_a_code_a_client_can_act_on() {
    let server = ApiServer::start(real_engine()).await;
    let mut c = server.client().await;

    let sessions = c
        .list_sessions(pb::ListSessionsRequest {})
        .await
        .expect("ListSessions works");
    assert!(sessions.into_inner().sessions.is_empty());
    let ended = c
        .end_all_sessions(pb::EndAllSessionsRequest {})
        .await
        .expect("EndAllSessions works")
        .into_inner();
    assert_eq!(ended.ended, 0);

    refused(
        "ListRooms",
        c.list_rooms(pb::ListRoomsRequest {}).await,
        &[Code::Unavailable],
    );
    let start = pb::StartSessionRequest {
        peer: bob(),
        scheme: pb::SchemePreference::Legacy.into(),
    };
    refused(
        "StartSession",
        c.start_session(start).await,
        &[Code::Unavailable],
    );
    let peer = || pb::PeerRequest {
        peer: bob(),
        invitation_seq: 0,
    };
    refused("AcceptSession", c.accept_session(peer()).await, NO_SESSION);
    refused(
        "DeclineSession",
        c.decline_session(peer()).await,
        NO_SESSION,
    );
    refused(
        "RefreshSession",
        c.refresh_session(peer()).await,
        NO_SESSION,
    );
    refused("EndSession", c.end_session(peer()).await, NO_SESSION);
    let send = pb::SendMessageRequest {
        peer: bob(),
        text: "hello".into(),
    };
    refused("SendMessage", c.send_message(send).await, NO_SESSION);
    // An offline engine has no state directory, so no identity: both say so.
    refused(
        "GetFingerprint",
        c.get_fingerprint(pb::GetFingerprintRequest { peer: None })
            .await,
        &[Code::FailedPrecondition],
    );
    let trust = pb::TrustPeerRequest {
        peer: bob(),
        fingerprint: String::new(),
    };
    refused(
        "TrustPeer",
        c.trust_peer(trust).await,
        &[Code::FailedPrecondition],
    );
    let watch = c
        .watch_events(pb::WatchEventsRequest {
            include_scrollback: true,
        })
        .await;
    assert!(watch.is_ok(), "WatchEvents attaches: {:?}", watch.err());

    // The watch stream is still open: stopping must not wait for it.
    server
        .stop()
        .await
        .expect("clean stop with a watcher attached");
}

#[tokio::test]
async fn requests_without_a_peer_are_invalid_arguments() {
    let server = ApiServer::start(real_engine()).await;
    let mut c = server.client().await;
    let no_peer = c
        .accept_session(pb::PeerRequest {
            peer: None,
            invitation_seq: 0,
        })
        .await
        .expect_err("no peer");
    assert_eq!(no_peer.code(), Code::InvalidArgument);
    assert!(no_peer.message().contains("peer"), "{}", no_peer.message());
    let empty = pb::SendMessageRequest {
        peer: bob(),
        text: "   ".into(),
    };
    let err = c.send_message(empty).await.expect_err("empty text");
    assert_eq!(err.code(), Code::InvalidArgument);
    let bad_scheme = pb::StartSessionRequest {
        peer: bob(),
        scheme: 17,
    };
    let err = c
        .start_session(bad_scheme)
        .await
        .expect_err("unknown scheme");
    assert_eq!(err.code(), Code::InvalidArgument);
    server.stop().await.expect("clean stop");
}

#[tokio::test]
async fn health_reports_the_service_serving() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};
    let server = ApiServer::start(real_engine()).await;
    let mut health = HealthClient::new(server.channel().await);
    let reply = health
        .check(HealthCheckRequest {
            service: "otrd.v1.Otrd".into(),
        })
        .await
        .expect("health check answers")
        .into_inner();
    assert_eq!(reply.status(), ServingStatus::Serving);
    server.stop().await.expect("clean stop");
}

#[tokio::test]
async fn reflection_lists_the_service() {
    use tokio_stream::StreamExt;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;

    let server = ApiServer::start(real_engine()).await;
    let mut reflection = ServerReflectionClient::new(server.channel().await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut replies = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection answers")
        .into_inner();
    let reply = replies
        .next()
        .await
        .expect("one reply")
        .expect("reply is ok");
    let Some(MessageResponse::ListServicesResponse(list)) = reply.message_response else {
        panic!("unexpected reflection reply {reply:?}");
    };
    let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    assert!(names.iter().any(|n| n == "otrd.v1.Otrd"), "{names:?}");
    assert!(
        names.iter().any(|n| n == "grpc.health.v1.Health"),
        "{names:?}"
    );
    server.stop().await.expect("clean stop");
}
