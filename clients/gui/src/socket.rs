//! Where the daemon's API socket is, and a tonic channel over it.

use otrd_proto::v1::otrd_client::OtrdClient;
use std::path::{Path, PathBuf};
use tonic::transport::{Channel, Endpoint, Uri};

/// Why the socket could not be found or dialled.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// Neither `$OTRD_SOCKET` nor `$XDG_RUNTIME_DIR` is set.
    #[error("cannot find the otrd socket: set OTRD_SOCKET or XDG_RUNTIME_DIR")]
    NoPath,
    /// Connecting failed (daemon not running, permission denied, ...).
    #[error("connecting to {path}: {source}")]
    Connect {
        /// The socket path.
        path: String,
        /// What tonic said.
        source: tonic::transport::Error,
    },
}

/// The socket path: `$OTRD_SOCKET`, else `$XDG_RUNTIME_DIR/otrd/otrd.sock` (as the daemon and
/// `otrctl` resolve it).
pub fn default_path() -> Result<PathBuf, SocketError> {
    if let Some(p) = std::env::var_os("OTRD_SOCKET").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|p| !p.is_empty())
        .map(|dir| PathBuf::from(dir).join("otrd").join("otrd.sock"))
        .ok_or(SocketError::NoPath)
}

/// A gRPC client on the Unix socket at `path`; fails fast when nobody listens there.
pub async fn connect(path: &Path) -> Result<OtrdClient<Channel>, SocketError> {
    let owned = path.to_owned();
    // The URI is a placeholder: the connector dials the socket and ignores it.
    let channel = Endpoint::from_static("http://[::]:50051")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = owned.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(path).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
            }
        }))
        .await
        .map_err(|source| SocketError::Connect {
            path: path.display().to_string(),
            source,
        })?;
    Ok(OtrdClient::new(channel))
}
