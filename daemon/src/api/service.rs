//! The `otrd.v1.Otrd` service: each RPC converts its request, asks the engine through its
//! [`EngineHandle`], and converts the answer. No state of its own beyond the shutdown flag that
//! ends live event streams.

use super::{convert, events, status::engine_status};
use crate::engine::EngineHandle;
use otrd_proto::v1 as pb;
use otrd_proto::v1::otrd_server::Otrd;
use std::time::Instant;
use tokio::sync::watch;
use tonic::{Request, Response, Status};

/// The gRPC service over the engine.
#[derive(Debug, Clone)]
pub struct OtrdService {
    engine: EngineHandle,
    /// Turns true when the server begins to shut down, so open WatchEvents streams end and the
    /// graceful shutdown does not wait for them forever.
    stopping: watch::Receiver<bool>,
}

impl OtrdService {
    /// A service answering from `engine`; `stopping` ends event streams at shutdown.
    pub fn new(engine: EngineHandle, stopping: watch::Receiver<bool>) -> Self {
        Self { engine, stopping }
    }
}

type Reply<T> = Result<Response<T>, Status>;

fn session_reply(
    result: Result<crate::engine::SessionInfo, crate::engine::EngineError>,
) -> Reply<pb::SessionResponse> {
    let session = result.map_err(engine_status)?;
    Ok(Response::new(pb::SessionResponse {
        session: Some(convert::session(&session)),
    }))
}

#[tonic::async_trait]
impl Otrd for OtrdService {
    async fn get_status(&self, _: Request<pb::GetStatusRequest>) -> Reply<pb::GetStatusResponse> {
        let status = self.engine.status().await.map_err(engine_status)?;
        Ok(Response::new(convert::status(status)))
    }

    async fn list_rooms(&self, _: Request<pb::ListRoomsRequest>) -> Reply<pb::ListRoomsResponse> {
        let rooms = self.engine.list_rooms().await.map_err(engine_status)?;
        Ok(Response::new(pb::ListRoomsResponse {
            rooms: rooms.iter().map(convert::room).collect(),
        }))
    }

    async fn list_sessions(
        &self,
        _: Request<pb::ListSessionsRequest>,
    ) -> Reply<pb::ListSessionsResponse> {
        let sessions = self.engine.list_sessions().await.map_err(engine_status)?;
        Ok(Response::new(pb::ListSessionsResponse {
            sessions: sessions.iter().map(convert::session).collect(),
        }))
    }

    async fn start_session(
        &self,
        req: Request<pb::StartSessionRequest>,
    ) -> Reply<pb::SessionResponse> {
        let req = req.into_inner();
        let peer = convert::peer_ref(req.peer)?;
        let scheme = convert::scheme(req.scheme)?;
        session_reply(self.engine.start(peer, scheme).await)
    }

    async fn accept_session(&self, req: Request<pb::PeerRequest>) -> Reply<pb::SessionResponse> {
        let req = req.into_inner();
        let peer = convert::peer_ref(req.peer)?;
        let seq = (req.invitation_seq != 0).then_some(req.invitation_seq);
        session_reply(self.engine.accept(peer, seq).await)
    }

    async fn decline_session(&self, req: Request<pb::PeerRequest>) -> Reply<pb::SessionResponse> {
        let peer = convert::peer_ref(req.into_inner().peer)?;
        session_reply(self.engine.decline(peer).await)
    }

    async fn refresh_session(&self, req: Request<pb::PeerRequest>) -> Reply<pb::SessionResponse> {
        let peer = convert::peer_ref(req.into_inner().peer)?;
        session_reply(self.engine.refresh(peer).await)
    }

    async fn end_session(&self, req: Request<pb::PeerRequest>) -> Reply<pb::SessionResponse> {
        let peer = convert::peer_ref(req.into_inner().peer)?;
        session_reply(self.engine.end(peer).await)
    }

    async fn end_all_sessions(
        &self,
        _: Request<pb::EndAllSessionsRequest>,
    ) -> Reply<pb::EndAllSessionsResponse> {
        let started = Instant::now();
        let ended = self.engine.end_all().await.map_err(engine_status)?;
        let elapsed_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        tracing::info!(ended, elapsed_us, "ended every session on request");
        Ok(Response::new(pb::EndAllSessionsResponse {
            ended,
            elapsed_us,
        }))
    }

    async fn lock(&self, _: Request<pb::LockRequest>) -> Reply<pb::EndAllSessionsResponse> {
        let started = Instant::now();
        let ended = self
            .engine
            .lock("otrctl lock")
            .await
            .map_err(engine_status)?;
        let elapsed_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        tracing::info!(ended, elapsed_us, "locked on request; every session ended");
        Ok(Response::new(pb::EndAllSessionsResponse {
            ended,
            elapsed_us,
        }))
    }

    async fn unlock(&self, _: Request<pb::UnlockRequest>) -> Reply<pb::UnlockResponse> {
        let was_locked = self.engine.unlock().await.map_err(engine_status)?;
        Ok(Response::new(pb::UnlockResponse { was_locked }))
    }

    async fn send_message(
        &self,
        req: Request<pb::SendMessageRequest>,
    ) -> Reply<pb::SendMessageResponse> {
        let req = req.into_inner();
        let peer = convert::peer_ref(req.peer)?;
        let text = convert::send_text(req.text)?;
        let sent = self.engine.send(peer, text).await.map_err(engine_status)?;
        Ok(Response::new(convert::sent(sent)))
    }

    type WatchEventsStream = events::EventStream;

    async fn watch_events(
        &self,
        req: Request<pb::WatchEventsRequest>,
    ) -> Reply<Self::WatchEventsStream> {
        let include_scrollback = req.into_inner().include_scrollback;
        let (scrollback, live) = self
            .engine
            .watch(include_scrollback)
            .await
            .map_err(engine_status)?;
        Ok(Response::new(events::stream(
            scrollback,
            live,
            self.stopping.clone(),
            self.engine.lock_watermark(),
        )))
    }

    async fn get_fingerprint(
        &self,
        req: Request<pb::GetFingerprintRequest>,
    ) -> Reply<pb::GetFingerprintResponse> {
        let peer = convert::optional_peer_ref(req.into_inner().peer)?;
        let info = self.engine.fingerprint(peer).await.map_err(engine_status)?;
        Ok(Response::new(convert::fingerprint(info)))
    }

    async fn submit_login_code(
        &self,
        req: Request<pb::SubmitLoginCodeRequest>,
    ) -> Reply<pb::SubmitLoginCodeResponse> {
        // Moved into a secret at once; the request's own buffer is gone with `req`.
        let code = crate::secure::SecretString::new(req.into_inner().code);
        let detail = self.engine.submit_code(code).await.map_err(engine_status)?;
        Ok(Response::new(pb::SubmitLoginCodeResponse { detail }))
    }

    async fn trust_peer(
        &self,
        req: Request<pb::TrustPeerRequest>,
    ) -> Reply<pb::GetFingerprintResponse> {
        let req = req.into_inner();
        let peer = convert::peer_ref(req.peer)?;
        let info = self
            .engine
            .trust(peer, req.fingerprint.trim().to_owned())
            .await
            .map_err(engine_status)?;
        Ok(Response::new(convert::fingerprint(info)))
    }

    async fn accept_peer_key(
        &self,
        req: Request<pb::AcceptPeerKeyRequest>,
    ) -> Reply<pb::GetFingerprintResponse> {
        let req = req.into_inner();
        let peer = convert::peer_ref(req.peer)?;
        let info = self
            .engine
            .accept_key(peer, req.fingerprint.trim().to_owned())
            .await
            .map_err(engine_status)?;
        Ok(Response::new(convert::fingerprint(info)))
    }

    async fn confirm_sas(
        &self,
        req: Request<pb::ConfirmSasRequest>,
    ) -> Reply<pb::GetFingerprintResponse> {
        let req = req.into_inner();
        let peer = convert::peer_ref(req.peer)?;
        if req.sas.len() > 256 {
            return Err(tonic::Status::invalid_argument("that is not a SAS"));
        }
        let info = self
            .engine
            .confirm_sas(peer, req.sas)
            .await
            .map_err(engine_status)?;
        Ok(Response::new(convert::fingerprint(info)))
    }
}
