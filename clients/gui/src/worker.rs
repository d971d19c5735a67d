//! The gRPC worker: one tokio task that owns the connection to the daemon. It dials the socket,
//! takes a snapshot, streams `WatchEvents` (with scrollback), polls the room list for presence,
//! runs each [`Request`] from the window as its own task, and reports everything as an
//! [`Update`]. When the daemon goes away it says so and redials with a growing pause.

use crate::model::{Snapshot, Update};
use crate::socket;
use otrd_proto::v1::otrd_client::OtrdClient;
use otrd_proto::v1::{
    peer_ref, AcceptPeerKeyRequest, ConfirmSasRequest, EndAllSessionsRequest,
    GetFingerprintRequest, GetStatusRequest, ListRoomsRequest, ListSessionsRequest, PeerRef,
    PeerRequest, SchemePreference, SendMessageRequest, StartSessionRequest, TrustPeerRequest,
    WatchEventsRequest,
};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tonic::transport::Channel;
use zeroize::Zeroizing;

/// First pause before redialling; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(250);
/// Longest pause between dials, so a restarted daemon is found within a few seconds.
const MAX_BACKOFF: Duration = Duration::from_secs(3);
/// Presence has no event; the room list is polled this often.
const ROOM_POLL: Duration = Duration::from_secs(5);

/// What the window asks the daemon to do. Peers are usernames.
#[derive(Debug, Clone)]
pub enum Request {
    /// StartSession (scheme auto).
    Start(String),
    /// AcceptSession of the invitation with this event seq (0: whatever is pending).
    Accept(String, u64),
    /// DeclineSession.
    Decline(String),
    /// RefreshSession.
    Refresh(String),
    /// EndSession.
    End(String),
    /// EndAllSessions (the Lock-all button).
    EndAll,
    /// SendMessage.
    Send {
        /// To whom.
        peer: String,
        /// The text; wiped when the request is dropped.
        text: Zeroizing<String>,
    },
    /// GetFingerprint for the verification dialog.
    Fingerprint(String),
    /// TrustPeer with the fingerprint the dialog showed ("the fingerprints match").
    Trust {
        /// Whom.
        peer: String,
        /// The fingerprint the user compared.
        fingerprint: String,
    },
    /// ConfirmSas with the SAS the dialog showed ("all five groups match").
    ConfirmSas {
        /// Whom.
        peer: String,
        /// The SAS the user compared.
        sas: String,
    },
    /// AcceptPeerKey: let the shown key in without verifying it.
    AcceptKey {
        /// Whom.
        peer: String,
        /// The fingerprint the dialog showed (the daemon refuses if the key changed since).
        fingerprint: String,
    },
    /// SubmitLoginCode: the two-factor code the daemon's login waits for.
    LoginCode(Zeroizing<String>),
    /// Reload the room list and status now.
    Reload,
}

impl Request {
    /// What the user asked for, in words (for failure notices).
    pub fn describe(&self) -> String {
        match self {
            Self::Start(p) => format!("start a session with {p}"),
            Self::Accept(p, _) => format!("accept {p}'s invitation"),
            Self::Decline(p) => format!("decline {p}'s invitation"),
            Self::Refresh(p) => format!("refresh the session with {p}"),
            Self::End(p) => format!("end the session with {p}"),
            Self::EndAll => "end all sessions".to_owned(),
            Self::Send { peer, .. } => format!("send to {peer}"),
            Self::Fingerprint(p) => format!("get {p}'s fingerprint"),
            Self::Trust { peer, .. } => format!("verify {peer}'s fingerprint"),
            Self::ConfirmSas { peer, .. } => format!("verify {peer} by the SAS"),
            Self::AcceptKey { peer, .. } => format!("accept {peer}'s new key"),
            Self::LoginCode(_) => "log in with the two-factor code".to_owned(),
            Self::Reload => "reload the room list".to_owned(),
        }
    }
}

/// Where updates go: a channel, and a nudge so the window repaints.
#[derive(Clone)]
pub struct Sink {
    tx: mpsc::UnboundedSender<Update>,
    wake: Arc<dyn Fn() + Send + Sync>,
}

impl Sink {
    fn send(&self, update: Update) {
        // The window is gone when this fails; the worker notices through its request channel.
        let _ = self.tx.send(update);
        (self.wake)();
    }
}

/// The window's side of the worker: sending a request never blocks.
#[derive(Debug, Clone)]
pub struct WorkerHandle {
    tx: mpsc::UnboundedSender<Request>,
}

impl WorkerHandle {
    /// Queues a request for the worker.
    pub fn request(&self, request: Request) {
        // Fails only when the runtime is shutting down with the window.
        let _ = self.tx.send(request);
    }
}

/// Starts the worker on the current tokio runtime. Updates arrive on the returned receiver;
/// `wake` runs after each one (the window asks egui for a repaint). The worker stops when every
/// [`WorkerHandle`] is dropped.
pub fn spawn(
    socket: PathBuf,
    wake: Arc<dyn Fn() + Send + Sync>,
) -> (WorkerHandle, mpsc::UnboundedReceiver<Update>) {
    let (req_tx, req_rx) = mpsc::unbounded_channel();
    let (up_tx, up_rx) = mpsc::unbounded_channel();
    tokio::spawn(run(socket, req_rx, Sink { tx: up_tx, wake }));
    (WorkerHandle { tx: req_tx }, up_rx)
}

/// How a connection ended.
enum Ended {
    /// The window is gone: stop.
    Closed,
    /// The daemon is gone (or never answered); `connected` says if it ever did this time.
    Lost { reason: String, connected: bool },
}

async fn run(socket: PathBuf, mut requests: mpsc::UnboundedReceiver<Request>, sink: Sink) {
    let mut backoff = MIN_BACKOFF;
    loop {
        sink.send(Update::Connecting);
        match connection(&socket, &mut requests, &sink).await {
            Ended::Closed => return,
            Ended::Lost { reason, connected } => {
                tracing::info!(%reason, "otrd unreachable; retrying");
                sink.send(Update::Disconnected { reason });
                if connected {
                    backoff = MIN_BACKOFF;
                }
            }
        }
        // While waiting, requests fail at once rather than queue up behind the outage.
        let pause = tokio::time::sleep(backoff);
        tokio::pin!(pause);
        loop {
            tokio::select! {
                () = &mut pause => break,
                request = requests.recv() => match request {
                    None => return,
                    Some(r) => sink.send(Update::Failed {
                        action: r.describe(),
                        message: "not connected to otrd".to_owned(),
                    }),
                },
            }
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

fn lost(reason: impl std::fmt::Display, connected: bool) -> Ended {
    Ended::Lost {
        reason: reason.to_string(),
        connected,
    }
}

/// One connection: snapshot, then events, requests and polls until something breaks.
async fn connection(
    socket: &std::path::Path,
    requests: &mut mpsc::UnboundedReceiver<Request>,
    sink: &Sink,
) -> Ended {
    let mut client = match socket::connect(socket).await {
        Ok(c) => c,
        Err(e) => return lost(e, false),
    };
    // Attach first, so nothing happens between the snapshot and the stream that we miss.
    let mut events = match client
        .watch_events(WatchEventsRequest {
            include_scrollback: true,
        })
        .await
    {
        Ok(r) => r.into_inner(),
        Err(s) => return lost(status_text(&s), false),
    };
    let snapshot = match snapshot(&mut client, sink).await {
        Ok(s) => s,
        Err(s) => return lost(status_text(&s), false),
    };
    sink.send(Update::Connected(Box::new(snapshot)));
    let mut poll = tokio::time::interval(ROOM_POLL);
    poll.tick().await;
    loop {
        tokio::select! {
            event = events.message() => match event {
                Ok(Some(e)) => sink.send(Update::Event(e)),
                Ok(None) => return lost("the daemon closed the event stream", true),
                Err(s) => return lost(status_text(&s), true),
            },
            request = requests.recv() => match request {
                None => return Ended::Closed,
                Some(r) => {
                    tokio::spawn(perform(client.clone(), r, sink.clone()));
                }
            },
            _ = poll.tick() => {
                tokio::spawn(perform(client.clone(), Request::Reload, sink.clone()));
            }
        }
    }
}

/// Status, rooms and sessions. A room list the daemon cannot give yet (not logged in to the
/// server) is empty, with a notice, rather than a failed connection.
async fn snapshot(
    client: &mut OtrdClient<Channel>,
    sink: &Sink,
) -> Result<Snapshot, tonic::Status> {
    let status = client.get_status(GetStatusRequest {}).await?.into_inner();
    let rooms = match client.list_rooms(ListRoomsRequest {}).await {
        Ok(r) => r.into_inner().rooms,
        Err(s) => {
            sink.send(Update::Failed {
                action: "list rooms".into(),
                message: status_text(&s),
            });
            Vec::new()
        }
    };
    let sessions = client
        .list_sessions(ListSessionsRequest {})
        .await?
        .into_inner()
        .sessions;
    Ok(Snapshot {
        status,
        rooms,
        sessions,
    })
}

fn peer(name: &str) -> Option<PeerRef> {
    Some(PeerRef {
        target: Some(peer_ref::Target::Username(name.to_owned())),
    })
}

fn peer_request(name: &str) -> PeerRequest {
    PeerRequest {
        peer: peer(name),
        invitation_seq: 0,
    }
}

/// The words of a gRPC status, for people.
fn status_text(s: &tonic::Status) -> String {
    if s.message().is_empty() {
        format!("{:?}", s.code())
    } else {
        s.message().to_owned()
    }
}

/// Runs one request and reports its result.
async fn perform(mut client: OtrdClient<Channel>, request: Request, sink: Sink) {
    let action = request.describe();
    // The background poll fails quietly (e.g. not logged in to the server yet).
    let quiet = matches!(request, Request::Reload);
    let result: Result<Option<Update>, tonic::Status> = async {
        Ok(match request {
            Request::Start(p) => {
                let req = StartSessionRequest {
                    peer: peer(&p),
                    scheme: SchemePreference::Auto.into(),
                };
                client
                    .start_session(req)
                    .await?
                    .into_inner()
                    .session
                    .map(Update::Session)
            }
            Request::Accept(p, seq) => {
                let req = PeerRequest {
                    invitation_seq: seq,
                    ..peer_request(&p)
                };
                session(client.accept_session(req).await?)
            }
            Request::Decline(p) => session(client.decline_session(peer_request(&p)).await?),
            Request::Refresh(p) => session(client.refresh_session(peer_request(&p)).await?),
            Request::End(p) => session(client.end_session(peer_request(&p)).await?),
            Request::EndAll => {
                let r = client
                    .end_all_sessions(EndAllSessionsRequest {})
                    .await?
                    .into_inner();
                Some(Update::EndedAll { ended: r.ended })
            }
            Request::Send { peer: p, mut text } => {
                // The text moves into the request; the sent line arrives as a message event.
                let req = SendMessageRequest {
                    peer: peer(&p),
                    text: std::mem::take(&mut *text),
                };
                client.send_message(req).await?;
                None
            }
            Request::Fingerprint(p) => {
                match client
                    .get_fingerprint(GetFingerprintRequest { peer: peer(&p) })
                    .await
                {
                    Ok(r) => Some(Update::Fingerprint(r.into_inner())),
                    // The dialog opens either way and says why there is nothing to compare.
                    Err(s) => Some(Update::FingerprintUnavailable {
                        peer: p,
                        reason: status_text(&s),
                    }),
                }
            }
            Request::Trust {
                peer: p,
                fingerprint,
            } => {
                let r = client
                    .trust_peer(TrustPeerRequest {
                        peer: peer(&p),
                        fingerprint,
                    })
                    .await?;
                Some(Update::Fingerprint(r.into_inner()))
            }
            Request::ConfirmSas { peer: p, sas } => {
                let r = client
                    .confirm_sas(ConfirmSasRequest {
                        peer: peer(&p),
                        sas,
                    })
                    .await?;
                Some(Update::Fingerprint(r.into_inner()))
            }
            Request::AcceptKey {
                peer: p,
                fingerprint,
            } => {
                let r = client
                    .accept_peer_key(AcceptPeerKeyRequest {
                        peer: peer(&p),
                        fingerprint,
                    })
                    .await?;
                Some(Update::Fingerprint(r.into_inner()))
            }
            Request::LoginCode(mut code) => {
                // The code moves into the request; the connection event says what followed.
                let req = otrd_proto::v1::SubmitLoginCodeRequest {
                    code: std::mem::take(&mut *code),
                };
                client.submit_login_code(req).await?;
                None
            }
            Request::Reload => {
                let rooms = client
                    .list_rooms(ListRoomsRequest {})
                    .await?
                    .into_inner()
                    .rooms;
                sink.send(Update::Rooms(rooms));
                Some(Update::Status(Box::new(
                    client.get_status(GetStatusRequest {}).await?.into_inner(),
                )))
            }
        })
    }
    .await;
    match result {
        Ok(Some(update)) => sink.send(update),
        Ok(None) => {}
        Err(s) if quiet => tracing::debug!(error = %status_text(&s), "room poll failed"),
        Err(s) => sink.send(Update::Failed {
            action,
            message: status_text(&s),
        }),
    }
}

fn session(r: tonic::Response<otrd_proto::v1::SessionResponse>) -> Option<Update> {
    r.into_inner().session.map(Update::Session)
}
