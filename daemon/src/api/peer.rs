//! Only the daemon's own uid may talk to it.
//!
//! The server reads each accepted connection's credentials with `SO_PEERCRED` (tonic does this on
//! accept for a `tokio::net::UnixStream` and puts them in every request's extensions as
//! [`UdsConnectInfo`]). [`PeerCheck`] runs in front of every service — ours, health and
//! reflection — and fails each call from any other uid with PERMISSION_DENIED, so the client is
//! told why instead of seeing a dropped connection. Refusals are logged with the uid and pid.

use tonic::transport::server::UdsConnectInfo;
use tonic::{Request, Status};

/// The credential check, as a tonic interceptor.
#[derive(Debug, Clone, Copy)]
pub struct PeerCheck {
    /// The only uid served: the daemon's own effective uid, or another in tests.
    expected_uid: u32,
}

impl PeerCheck {
    /// Serves only `expected_uid`.
    pub fn new(expected_uid: u32) -> Self {
        Self { expected_uid }
    }

    /// Lets the request through when its connection belongs to the expected uid.
    #[allow(clippy::result_large_err)] // tonic's interceptor signature
    pub fn check<T>(&self, req: Request<T>) -> Result<Request<T>, Status> {
        let cred = req
            .extensions()
            .get::<UdsConnectInfo>()
            .and_then(|info| info.peer_cred);
        match cred {
            Some(cred) if cred.uid() == self.expected_uid => Ok(req),
            Some(cred) => {
                tracing::warn!(
                    uid = cred.uid(),
                    pid = cred.pid(),
                    expected_uid = self.expected_uid,
                    "refused a call from another user"
                );
                Err(Status::permission_denied(format!(
                    "otrd serves only its own user (uid {}); this connection is from uid {}",
                    self.expected_uid,
                    cred.uid()
                )))
            }
            None => {
                tracing::warn!("refused a call whose peer credentials could not be read");
                Err(Status::permission_denied(
                    "otrd could not read this connection's credentials, so it refuses it",
                ))
            }
        }
    }
}

impl tonic::service::Interceptor for PeerCheck {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        self.check(req)
    }
}
