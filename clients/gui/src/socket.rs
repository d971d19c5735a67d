//! Where the daemon's API socket is, and a checked tonic channel over it: the rule every
//! front-end shares, [`otrd_proto::socket`] — `$OTRD_SOCKET`, else
//! `$XDG_RUNTIME_DIR/otrd/otrd.sock`, else `$TMPDIR/otrd-$UID/otrd.sock` (as the daemon and
//! `otrctl` resolve it); the directory ours and 0700, the socket ours and the serving process ours,
//! all checked before the window sends anything.

use otrd_proto::v1::otrd_client::OtrdClient;
use std::path::{Path, PathBuf};
use tonic::transport::Channel;

pub use otrd_proto::socket::SocketError;

/// The socket path from the environment.
pub fn default_path() -> PathBuf {
    otrd_proto::socket::default_path(None)
}

/// A gRPC client on the Unix socket at `path`, once the daemon there is known to be the user's
/// own; fails fast when nobody listens there.
pub async fn connect(path: &Path) -> Result<OtrdClient<Channel>, SocketError> {
    otrd_proto::socket::connect(path).await
}
