//! Finding the daemon's socket and making sure it is the user's own daemon before a byte is sent:
//! the one client-side rule, used by otrctl (and through it the Neovim plugin), the GUI and the
//! test helpers.
//!
//! The path: `--socket` (or whatever the front-end passes explicitly), else `$OTRD_SOCKET`, else
//! `$XDG_RUNTIME_DIR/otrd/otrd.sock`, else `$TMPDIR/otrd-<uid>/otrd.sock` — the daemon's rule
//! (`otrd::config::paths`), which takes its fallback from [`fallback_path`].
//!
//! The checks, all before a request is written, each refused with an error naming what is wrong:
//! 1. the socket's directory is a real directory (not a symlink), owned by the user, mode 0700 —
//!    what the daemon itself demands before it binds, so nobody else can have put anything in it;
//! 2. the socket is a socket (not a symlink), owned by the user;
//! 3. after connecting, the process on the other end (`SO_PEERCRED`) runs as the user.
//!
//! The third check alone would be enough against an impostor; the first two make the error say
//! which file is wrong, and keep the client from even connecting to a listener someone else made.
//! Every reconnect of a [`channel`] goes through all three again.

use crate::v1::otrd_client::OtrdClient;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

/// The environment variable that names the socket for `otrd` and every front-end.
pub const SOCKET_ENV: &str = "OTRD_SOCKET";

/// Why the client will not talk to (or cannot reach) the daemon.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// Nothing listens there: no socket, no directory, or the connection is refused.
    #[error("otrd is not running (nothing answers on {path})")]
    NotRunning {
        /// The socket tried.
        path: PathBuf,
    },
    /// Something is there, but it is not provably the user's own daemon.
    #[error("refusing to talk to {path}: {reason}")]
    Untrusted {
        /// The socket tried.
        path: PathBuf,
        /// What is wrong, in words.
        reason: String,
    },
    /// The socket could not be inspected or connected to for another reason.
    #[error("cannot connect to otrd at {path}: {reason}")]
    Connect {
        /// The socket tried.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

impl SocketError {
    /// The socket path the error is about.
    pub fn path(&self) -> &Path {
        match self {
            Self::NotRunning { path }
            | Self::Untrusted { path, .. }
            | Self::Connect { path, .. } => path,
        }
    }
}

/// The effective uid of this process: whom the directory, the socket and the daemon must belong to.
pub fn own_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// The socket path from `explicit`, else the environment (see the module docs).
pub fn default_path(explicit: Option<&Path>) -> PathBuf {
    path_from(
        explicit,
        std::env::var_os(SOCKET_ENV).map(PathBuf::from),
        std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from),
        &std::env::temp_dir(),
        own_uid(),
    )
}

/// [`default_path`] with the environment passed in, so the rule can be tested. Empty values count
/// as unset.
pub fn path_from(
    explicit: Option<&Path>,
    otrd_socket: Option<PathBuf>,
    runtime_dir: Option<PathBuf>,
    tmp_dir: &Path,
    uid: u32,
) -> PathBuf {
    let set = |p: &PathBuf| !p.as_os_str().is_empty();
    if let Some(p) = explicit.filter(|p| !p.as_os_str().is_empty()) {
        return p.to_path_buf();
    }
    if let Some(p) = otrd_socket.filter(set) {
        return p;
    }
    match runtime_dir.filter(set) {
        Some(dir) => dir.join("otrd").join("otrd.sock"),
        None => fallback_path(tmp_dir, uid),
    }
}

/// The socket when there is no `XDG_RUNTIME_DIR` (containers, ssh sessions without logind):
/// `<tmp_dir>/otrd-<uid>/otrd.sock`.
pub fn fallback_path(tmp_dir: &Path, uid: u32) -> PathBuf {
    tmp_dir.join(format!("otrd-{uid}")).join("otrd.sock")
}

/// Checks 1 and 2 of the module docs: the socket's directory and the socket file belong to `uid`
/// and nobody else can have placed them. A missing directory or socket is
/// [`SocketError::NotRunning`].
pub fn check_path(path: &Path, uid: u32) -> Result<(), SocketError> {
    let untrusted = |reason: String| SocketError::Untrusted {
        path: path.to_path_buf(),
        reason,
    };
    let inspect = |p: &Path| match std::fs::symlink_metadata(p) {
        Ok(meta) => Ok(meta),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(SocketError::NotRunning {
            path: path.to_path_buf(),
        }),
        Err(e) => Err(SocketError::Connect {
            path: path.to_path_buf(),
            reason: format!("cannot inspect {}: {e}", p.display()),
        }),
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .ok_or_else(|| untrusted("the path has no directory to check".into()))?;
    let shown = dir.display();
    let meta = inspect(dir)?;
    if meta.file_type().is_symlink() {
        return Err(untrusted(format!("its directory {shown} is a symlink")));
    }
    if !meta.is_dir() {
        return Err(untrusted(format!("{shown} is not a directory")));
    }
    if meta.uid() != uid {
        return Err(untrusted(format!(
            "its directory {shown} belongs to uid {}, not to you (uid {uid}); another user may \
             have made it to catch what you send",
            meta.uid()
        )));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode != 0o700 {
        return Err(untrusted(format!(
            "its directory {shown} has mode {mode:03o}, not 700, so others may have placed the \
             socket (fix with `chmod 700 {shown}` once you know what is in it)"
        )));
    }
    let meta = inspect(path)?;
    if meta.file_type().is_symlink() {
        return Err(untrusted("the socket is a symlink".into()));
    }
    if !meta.file_type().is_socket() {
        return Err(untrusted("it is not a socket".into()));
    }
    if meta.uid() != uid {
        return Err(untrusted(format!(
            "the socket belongs to uid {}, not to you (uid {uid})",
            meta.uid()
        )));
    }
    Ok(())
}

/// Check 3: the process that listens on `stream`'s other end runs as `uid`.
pub fn check_peer(stream: &UnixStream, path: &Path, uid: u32) -> Result<(), SocketError> {
    let untrusted = |reason: String| SocketError::Untrusted {
        path: path.to_path_buf(),
        reason,
    };
    let cred = stream
        .peer_cred()
        .map_err(|e| untrusted(format!("cannot learn which user serves it: {e}")))?;
    if cred.uid() != uid {
        return Err(untrusted(format!(
            "the process serving it runs as uid {}, not as you (uid {uid})",
            cred.uid()
        )));
    }
    Ok(())
}

/// Checks the path, connects, and checks the peer: a stream to the user's own daemon, on which
/// nothing has been written yet.
pub async fn connect_stream(path: &Path) -> Result<UnixStream, SocketError> {
    let uid = own_uid();
    check_path(path, uid)?;
    let stream = UnixStream::connect(path)
        .await
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => SocketError::NotRunning {
                path: path.to_path_buf(),
            },
            _ => SocketError::Connect {
                path: path.to_path_buf(),
                reason: e.to_string(),
            },
        })?;
    check_peer(&stream, path, uid)?;
    Ok(stream)
}

/// A gRPC channel to the daemon at `path`, for any service it serves. Connects now, so a missing
/// or untrusted daemon is reported before the caller sends anything; every reconnect is checked
/// the same way.
pub async fn channel(path: &Path) -> Result<Channel, SocketError> {
    // The first connection is made here so its error comes back as it is, not wrapped by tonic.
    let first = Arc::new(Mutex::new(Some(connect_stream(path).await?)));
    let socket = path.to_path_buf();
    // The URI is required by the API but unused: every connection goes to the socket.
    Endpoint::from_static("http://otrd.localhost")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            let first = first.lock().ok().and_then(|mut s| s.take());
            async move {
                let stream = match first {
                    Some(stream) => stream,
                    None => connect_stream(&socket).await.map_err(io::Error::other)?,
                };
                Ok::<_, io::Error>(hyper_util::rt::TokioIo::new(stream))
            }
        }))
        .await
        .map_err(|e| SocketError::Connect {
            path: path.to_path_buf(),
            reason: chain(&e),
        })
}

/// An `otrd.v1` client on [`channel`].
pub async fn connect(path: &Path) -> Result<OtrdClient<Channel>, SocketError> {
    Ok(OtrdClient::new(channel(path).await?))
}

/// An error and its causes on one line.
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(e) = cause {
        let next = e.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        cause = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn some(s: &str) -> Option<PathBuf> {
        Some(PathBuf::from(s))
    }

    #[test]
    fn path_precedence_and_the_tmp_fallback() {
        let tmp = Path::new("/tmp");
        let flag = PathBuf::from("/f/flag.sock");
        let path = |e: Option<&Path>, s, r| path_from(e, s, r, tmp, 1000);
        assert_eq!(path(Some(&flag), some("/e.sock"), some("/run/u")), flag);
        assert_eq!(
            path(None, some("/e.sock"), some("/run/u")),
            PathBuf::from("/e.sock")
        );
        assert_eq!(
            path(Some(Path::new("")), some(""), some("/run/u")),
            PathBuf::from("/run/u/otrd/otrd.sock")
        );
        assert_eq!(
            path(None, None, some("")),
            PathBuf::from("/tmp/otrd-1000/otrd.sock")
        );
        assert_eq!(path(None, None, None), fallback_path(tmp, 1000));
    }

    fn private_dir(tmp: &Path, name: &str) -> PathBuf {
        let dir = tmp.join(name);
        std::fs::create_dir(&dir).expect("mkdir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        dir
    }

    fn refusal(err: SocketError) -> String {
        match err {
            SocketError::Untrusted { reason, .. } => reason,
            other => panic!("expected a refusal, got {other}"),
        }
    }

    #[tokio::test]
    async fn an_open_directory_is_refused_before_connecting() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = private_dir(tmp.path(), "otrd");
        let sock = dir.join("otrd.sock");
        let listener = tokio::net::UnixListener::bind(&sock).expect("bind");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let reason = refusal(connect_stream(&sock).await.expect_err("open dir"));
        assert!(reason.contains("has mode 777, not 700"), "{reason}");
        // Nothing connected at all.
        let accepted =
            tokio::time::timeout(std::time::Duration::from_millis(200), listener.accept());
        assert!(accepted.await.is_err(), "the client connected anyway");
    }

    #[tokio::test]
    async fn symlinks_other_owners_and_non_sockets_are_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let uid = own_uid();
        let dir = private_dir(tmp.path(), "real");
        let sock = dir.join("otrd.sock");
        let _listener = tokio::net::UnixListener::bind(&sock).expect("bind");
        check_path(&sock, uid).expect("our own socket passes");

        let reason = refusal(check_path(&sock, uid.wrapping_add(1)).expect_err("other uid"));
        assert!(reason.contains("belongs to uid"), "{reason}");

        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&dir, &link).expect("symlink");
        let reason = refusal(check_path(&link.join("otrd.sock"), uid).expect_err("symlink dir"));
        assert!(reason.contains("is a symlink"), "{reason}");

        let sock_link = dir.join("link.sock");
        std::os::unix::fs::symlink(&sock, &sock_link).expect("symlink");
        let reason = refusal(check_path(&sock_link, uid).expect_err("symlink socket"));
        assert!(reason.contains("socket is a symlink"), "{reason}");

        let file = dir.join("file.sock");
        std::fs::write(&file, b"").expect("file");
        let reason = refusal(check_path(&file, uid).expect_err("not a socket"));
        assert!(reason.contains("not a socket"), "{reason}");

        let missing = check_path(&tmp.path().join("none/otrd.sock"), uid).expect_err("missing");
        assert!(
            matches!(missing, SocketError::NotRunning { .. }),
            "{missing}"
        );
    }

    #[tokio::test]
    async fn a_peer_of_another_uid_is_refused_and_hears_nothing() {
        use tokio::io::AsyncReadExt;
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = private_dir(tmp.path(), "otrd");
        let sock = dir.join("otrd.sock");
        let listener = tokio::net::UnixListener::bind(&sock).expect("bind");
        let client = UnixStream::connect(&sock).await.expect("connect");
        let uid = own_uid();
        check_peer(&client, &sock, uid).expect("our own daemon passes");
        let reason = refusal(check_peer(&client, &sock, uid.wrapping_add(1)).expect_err("peer"));
        assert!(
            reason.contains("the process serving it runs as uid"),
            "{reason}"
        );
        drop(client);
        let (mut server, _) = listener.accept().await.expect("accept");
        let mut heard = Vec::new();
        server.read_to_end(&mut heard).await.expect("read");
        assert!(heard.is_empty());
    }
}
