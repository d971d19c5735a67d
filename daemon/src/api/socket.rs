//! The listening Unix socket: taken from systemd (socket activation) or bound by us, safely.
//!
//! Binding, in order:
//! 1. the parent directory is created 0700 and checked (ours, 0700, not a symlink) by
//!    [`paths::ensure_private_dir`];
//! 2. an existing file at the path: a socket nobody answers on (connect gets `ECONNREFUSED`) is
//!    stale and removed; one that answers means another otrd is serving, and we stop; anything
//!    that is not a socket is left alone and refused;
//! 3. the socket is bound and then set to 0600. Access is already decided by step 1: nobody but
//!    us can traverse the 0700 directory, so there is no moment at which another user could
//!    reach the socket, whatever its mode. (Narrowing the umask around `bind` instead would race:
//!    the umask is process-wide, and any thread creating a directory meanwhile would get the
//!    narrowed mode.)
//!
//! Socket activation: when `LISTEN_PID` is our pid and `LISTEN_FDS` is 1, fd 3 is the listener
//! (checked to be a Unix stream socket, marked close-on-exec so secret commands do not inherit it);
//! systemd owns that socket file, so we never remove it.

use crate::config::paths::{self, PathError};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use tokio::net::UnixListener;

/// Why the socket could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// The path or its directory.
    #[error(transparent)]
    Path(#[from] PathError),
    /// A live daemon answers on the path.
    #[error("another otrd is already serving on {0}")]
    AlreadyServing(PathBuf),
    /// Something else is at the path.
    #[error("{0} exists and is not a socket; remove it or choose another --socket")]
    NotASocket(PathBuf),
    /// Inspecting, removing or binding failed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What we were doing.
        action: &'static str,
        /// The socket path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// systemd's environment asks for something we cannot take.
    #[error("socket activation: {0}")]
    Activation(String),
}

/// The server's listener, and whether its file is ours to remove at shutdown.
#[derive(Debug)]
pub struct ServerSocket {
    /// Accepts client connections.
    pub listener: UnixListener,
    /// The path we bound with its inode, or `None` for a systemd-activated listener.
    bound: Option<(PathBuf, u64)>,
}

impl ServerSocket {
    /// Takes the activated listener if systemd passed one, else binds at `explicit` or the default
    /// path (see [`paths::socket_path`]). Must run inside a tokio runtime.
    pub fn open(explicit: Option<&Path>) -> Result<Self, SocketError> {
        if let Some(listener) = activated_listener()? {
            tracing::info!("using the socket-activated listener from systemd");
            return Ok(Self {
                listener,
                bound: None,
            });
        }
        let path = paths::socket_path(explicit)?;
        Self::bind(&path)
    }

    /// Binds a new socket at `path` as described in the module docs.
    pub fn bind(path: &Path) -> Result<Self, SocketError> {
        let uid = rustix::process::geteuid().as_raw();
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .ok_or_else(|| PathError::NoParent(path.to_path_buf()))?;
        paths::ensure_private_dir(dir, uid)?;
        remove_stale(path)?;
        let io_err = |action, source| SocketError::Io {
            action,
            path: path.to_path_buf(),
            source,
        };
        let listener =
            std::os::unix::net::UnixListener::bind(path).map_err(|e| io_err("bind", e))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| io_err("restrict", e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| io_err("configure", e))?;
        let inode = std::fs::symlink_metadata(path)
            .map_err(|e| io_err("inspect", e))?
            .ino();
        let listener = UnixListener::from_std(listener).map_err(|e| io_err("register", e))?;
        tracing::info!(path = %path.display(), "listening");
        Ok(Self {
            listener,
            bound: Some((path.to_path_buf(), inode)),
        })
    }

    /// The path we bound, if we bound one (not for an activated listener).
    pub fn path(&self) -> Option<&Path> {
        self.bound.as_ref().map(|(p, _)| p.as_path())
    }

    /// Splits into the listener and a guard that removes the socket file when asked.
    pub fn into_parts(self) -> (UnixListener, SocketFile) {
        (self.listener, SocketFile { bound: self.bound })
    }
}

/// The socket file we created, to remove at shutdown.
#[derive(Debug)]
pub struct SocketFile {
    bound: Option<(PathBuf, u64)>,
}

impl SocketFile {
    /// Removes the socket file if it is still the one we bound (a newer daemon's is left alone).
    /// Does nothing for a socket-activated listener.
    pub fn remove(self) {
        let Some((path, inode)) = self.bound else {
            return;
        };
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.ino() == inode => {
                if let Err(e) = std::fs::remove_file(&path) {
                    tracing::warn!(path = %path.display(), error = %e, "could not remove the socket");
                }
            }
            _ => {
                tracing::debug!(path = %path.display(), "socket file is no longer ours; left alone")
            }
        }
    }
}

/// Removes a stale socket at `path`; refuses a live one or a non-socket.
fn remove_stale(path: &Path) -> Result<(), SocketError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(SocketError::Io {
                action: "inspect",
                path: path.to_path_buf(),
                source,
            })
        }
    };
    if !meta.file_type().is_socket() {
        return Err(SocketError::NotASocket(path.to_path_buf()));
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(SocketError::AlreadyServing(path.to_path_buf())),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            tracing::info!(path = %path.display(), "removing a stale socket");
            std::fs::remove_file(path).map_err(|source| SocketError::Io {
                action: "remove the stale socket",
                path: path.to_path_buf(),
                source,
            })
        }
        Err(source) => Err(SocketError::Io {
            action: "probe the existing socket",
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// What the systemd environment says about socket activation.
#[derive(Debug, PartialEq, Eq)]
enum Activation {
    /// Not activated (or meant for another process).
    None,
    /// Exactly one fd for us.
    One,
}

fn activation_from(
    listen_pid: Option<&str>,
    listen_fds: Option<&str>,
    our_pid: u32,
) -> Result<Activation, SocketError> {
    let (Some(pid), Some(fds)) = (listen_pid, listen_fds) else {
        return Ok(Activation::None);
    };
    if pid.trim().parse::<u32>().ok() != Some(our_pid) {
        return Ok(Activation::None);
    }
    match fds.trim().parse::<u32>() {
        Ok(1) => Ok(Activation::One),
        Ok(n) => Err(SocketError::Activation(format!(
            "systemd passed {n} sockets; otrd takes exactly one (check otrd.socket)"
        ))),
        Err(_) => Err(SocketError::Activation(format!(
            "LISTEN_FDS is not a number: {fds:?}"
        ))),
    }
}

fn activated_listener() -> Result<Option<UnixListener>, SocketError> {
    let pid = std::env::var("LISTEN_PID").ok();
    let fds = std::env::var("LISTEN_FDS").ok();
    let our_pid = std::process::id();
    if activation_from(pid.as_deref(), fds.as_deref(), our_pid)? == Activation::None {
        return Ok(None);
    }
    // `from_env` clears LISTEN_PID/LISTEN_FDS so no child inherits them; it validates that fd 3
    // is a Unix stream socket and marks it close-on-exec.
    let taken = listenfd::ListenFd::from_env()
        .take_unix_listener(0)
        .map_err(|e| {
            SocketError::Activation(format!("fd 3 is not a listening Unix socket: {e}"))
        })?;
    std::env::remove_var("LISTEN_FDNAMES");
    let Some(listener) = taken else {
        return Err(SocketError::Activation("fd 3 was already taken".into()));
    };
    let activation_err = |e: io::Error| SocketError::Activation(format!("cannot use fd 3: {e}"));
    listener.set_nonblocking(true).map_err(activation_err)?;
    UnixListener::from_std(listener)
        .map(Some)
        .map_err(activation_err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p)
            .expect("meta")
            .permissions()
            .mode()
            & 0o777
    }

    #[tokio::test]
    async fn binds_0600_in_a_0700_dir_and_removes_it() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("run/otrd/otrd.sock");
        let socket = ServerSocket::bind(&path).expect("binds");
        assert_eq!(mode(path.parent().expect("dir")), 0o700);
        assert_eq!(mode(&path), 0o600);
        assert_eq!(socket.path(), Some(path.as_path()));
        let (_listener, file) = socket.into_parts();
        file.remove();
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn a_live_socket_is_refused_and_a_stale_one_replaced() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("otrd/otrd.sock");
        let first = ServerSocket::bind(&path).expect("binds");
        let err = ServerSocket::bind(&path).expect_err("live socket");
        assert_eq!(
            err.to_string(),
            format!("another otrd is already serving on {}", path.display())
        );
        // Dropping the listener without removing the file leaves a stale socket behind.
        drop(first);
        assert!(path.exists());
        let second = ServerSocket::bind(&path).expect("stale socket replaced");
        assert_eq!(mode(&path), 0o600);
        drop(second);
    }

    #[tokio::test]
    async fn a_regular_file_is_never_removed() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("otrd");
        std::fs::create_dir(&dir).expect("dir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        let path = dir.join("otrd.sock");
        std::fs::write(&path, b"keep me").expect("file");
        let err = ServerSocket::bind(&path).expect_err("not a socket");
        assert!(matches!(err, SocketError::NotASocket(_)), "{err}");
        assert_eq!(std::fs::read(&path).expect("still there"), b"keep me");
    }

    #[tokio::test]
    async fn an_open_directory_is_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("shared");
        std::fs::create_dir(&dir).expect("dir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let err = ServerSocket::bind(&dir.join("otrd.sock")).expect_err("open dir");
        assert!(err.to_string().contains("not 700"), "{err}");
    }

    #[test]
    fn activation_env_rules() {
        assert_eq!(
            activation_from(None, None, 10).expect("ok"),
            Activation::None
        );
        assert_eq!(
            activation_from(Some("11"), Some("1"), 10).expect("ok"),
            Activation::None
        );
        assert_eq!(
            activation_from(Some("10"), Some("1"), 10).expect("ok"),
            Activation::One
        );
        assert!(activation_from(Some("10"), Some("2"), 10).is_err());
        assert!(activation_from(Some("10"), Some("x"), 10).is_err());
    }
}
