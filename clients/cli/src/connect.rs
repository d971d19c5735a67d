//! The gRPC channel to otrd over its Unix socket.
//!
//! The socket path follows the daemon's rule: `--socket`, else `$OTRD_SOCKET`, else
//! `$XDG_RUNTIME_DIR/otrd/otrd.sock`, else `$TMPDIR/otrd-<uid>/otrd.sock` (otrd's `config::paths` owns the same rule for the daemon).

use crate::error::CliError;
use hyper_util::rt::TokioIo;
use otrd_proto::v1::otrd_client::OtrdClient;
use std::path::{Path, PathBuf};
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};
use tower::service_fn;

/// The socket path from `--socket`/`$OTRD_SOCKET` (clap merges both into `explicit`) or
/// `$XDG_RUNTIME_DIR`.
pub fn socket_path(explicit: Option<&Path>) -> Result<PathBuf, CliError> {
    if let Some(p) = explicit.filter(|p| !p.as_os_str().is_empty()) {
        return Ok(p.to_path_buf());
    }
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => Ok(PathBuf::from(dir).join("otrd").join("otrd.sock")),
        // Same per-user fallback as the daemon (`config::paths::fallback_socket`).
        None => Ok(std::env::temp_dir()
            .join(format!("otrd-{}", rustix::process::geteuid().as_raw()))
            .join("otrd.sock")),
    }
}

/// Connects to the daemon at `path` now (not lazily), so a missing daemon is reported before
/// any command runs.
pub async fn connect(path: &Path) -> Result<OtrdClient<Channel>, CliError> {
    Ok(OtrdClient::new(channel(path).await?))
}

/// A channel to the daemon at `path`, for any service it serves (health, reflection too).
pub async fn channel(path: &Path) -> Result<Channel, CliError> {
    let socket = path.to_path_buf();
    // The URI is required by the API but unused: every connection goes to the socket.
    let endpoint = Endpoint::from_static("http://otrd.localhost");
    endpoint
        .connect_with_connector(service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(socket).await?)) }
        }))
        .await
        .map_err(|e| classify(path, &e))
}

/// A missing or refusing socket means no daemon; anything else is a connection problem.
fn classify(path: &Path, err: &(dyn std::error::Error + 'static)) -> CliError {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
                    CliError::NotRunning {
                        path: path.to_path_buf(),
                    }
                }
                _ => CliError::Connect {
                    path: path.to_path_buf(),
                    reason: io.to_string(),
                },
            };
        }
        cause = e.source();
    }
    CliError::Connect {
        path: path.to_path_buf(),
        reason: err.to_string(),
    }
}
