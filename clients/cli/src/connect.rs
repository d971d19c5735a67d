//! The gRPC channel to otrd over its Unix socket.
//!
//! Where the socket is and whether the daemon on it is the user's own is decided by the rule all
//! front-ends share, [`otrd_proto::socket`]: `--socket`, else `$OTRD_SOCKET`, else
//! `$XDG_RUNTIME_DIR/otrd/otrd.sock`, else `$TMPDIR/otrd-$UID/otrd.sock`; the directory must be
//! ours and 0700 (not a symlink), the socket ours, and the process serving it ours
//! (`SO_PEERCRED`) — all checked before a request is written.

use crate::error::CliError;
use otrd_proto::socket::{self, SocketError};
use otrd_proto::v1::otrd_client::OtrdClient;
use std::path::{Path, PathBuf};
use tonic::transport::Channel;

/// The socket path from `--socket`/`$OTRD_SOCKET` (clap merges both into `explicit`),
/// `$XDG_RUNTIME_DIR` or the `$TMPDIR` fallback.
pub fn socket_path(explicit: Option<&Path>) -> Result<PathBuf, CliError> {
    Ok(socket::default_path(explicit))
}

/// Connects to the daemon at `path` now (not lazily), so a missing or untrusted daemon is
/// reported before any command runs.
pub async fn connect(path: &Path) -> Result<OtrdClient<Channel>, CliError> {
    Ok(OtrdClient::new(channel(path).await?))
}

/// A checked channel to the daemon at `path`, for any service it serves (health, reflection too).
pub async fn channel(path: &Path) -> Result<Channel, CliError> {
    socket::channel(path).await.map_err(CliError::from)
}

impl From<SocketError> for CliError {
    fn from(err: SocketError) -> Self {
        match err {
            SocketError::NotRunning { path } => CliError::NotRunning { path },
            SocketError::Untrusted { path, reason } => CliError::Untrusted { path, reason },
            SocketError::Connect { path, reason } => CliError::Connect { path, reason },
        }
    }
}
