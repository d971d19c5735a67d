//! WatchEvents fan-out through the real server: every watcher sees every event, a vanished
//! watcher is noticed, and shutdown ends open streams.

use otrd::engine::{ConnectionState, Event, EventKind};
use otrd_e2e::api::{ApiServer, ScriptedEngine, WAIT};
use otrd_proto::v1 as pb;
use tokio_stream::StreamExt;

fn connection_event(seq: u64) -> Event {
    Event {
        seq,
        ts_ms: 1,
        replay: false,
        kind: EventKind::Connection {
            state: ConnectionState::Connecting,
            detail: "opening the websocket".into(),
        },
    }
}

async fn next(stream: &mut tonic::Streaming<pb::Event>) -> Result<pb::Event, tonic::Status> {
    tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("an event in time")
        .expect("stream open")
}

#[tokio::test]
async fn two_watchers_receive_the_same_events() {
    let mut engine = ScriptedEngine::start();
    let server = ApiServer::start(engine.handle.clone()).await;
    let mut a = server.client().await;
    let mut b = server.client().await;
    let mut sa = a
        .watch_events(pb::WatchEventsRequest::default())
        .await
        .expect("a attaches")
        .into_inner();
    let mut sb = b
        .watch_events(pb::WatchEventsRequest::default())
        .await
        .expect("b attaches")
        .into_inner();
    engine.wait_attached(2).await;

    engine
        .events
        .send(connection_event(1))
        .expect("watchers subscribed");
    engine
        .events
        .send(connection_event(2))
        .expect("watchers subscribed");
    for stream in [&mut sa, &mut sb] {
        for seq in [1, 2] {
            let event = next(stream).await.expect("event");
            assert_eq!(event.seq, seq);
            match event.kind {
                Some(pb::event::Kind::Connection(c)) => {
                    assert_eq!(c.state(), pb::ConnectionState::Connecting);
                    assert_eq!(c.detail, "opening the websocket");
                }
                other => panic!("expected a connection event, got {other:?}"),
            }
        }
    }
    drop((sa, sb));
    server.stop().await.expect("clean stop");
}

#[tokio::test]
async fn a_vanished_watcher_is_noticed() {
    let mut engine = ScriptedEngine::start();
    let server = ApiServer::start(engine.handle.clone()).await;
    let mut client = server.client().await;
    let stream = client
        .watch_events(pb::WatchEventsRequest::default())
        .await
        .expect("attaches")
        .into_inner();
    engine.wait_attached(1).await;
    assert_eq!(engine.events.receiver_count(), 1);
    drop(stream);
    drop(client);
    // The producer task drops its broadcast receiver once the client is gone.
    tokio::time::timeout(WAIT, async {
        while engine.events.receiver_count() > 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the server noticed the watcher left");
    server.stop().await.expect("clean stop");
}

#[tokio::test]
async fn shutdown_ends_open_watch_streams_with_unavailable() {
    let mut engine = ScriptedEngine::start();
    let server = ApiServer::start(engine.handle.clone()).await;
    let mut client = server.client().await;
    let mut stream = client
        .watch_events(pb::WatchEventsRequest::default())
        .await
        .expect("attaches")
        .into_inner();
    engine.wait_attached(1).await;
    let stopping = tokio::spawn(server.stop());
    let status = next(&mut stream)
        .await
        .expect_err("the stream ends with a status");
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert!(
        status.message().contains("shutting down"),
        "{}",
        status.message()
    );
    tokio::time::timeout(WAIT, stopping)
        .await
        .expect("server stopped in time")
        .expect("no panic")
        .expect("clean stop");
}
