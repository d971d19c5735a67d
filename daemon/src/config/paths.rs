//! Every path the daemon uses, in one place, and how its private directories are made.
//!
//! - config file: `--config`, else `$XDG_CONFIG_HOME/otrd/config.toml`;
//! - socket: `--socket`, else `$OTRD_SOCKET`, else `$XDG_RUNTIME_DIR/otrd/otrd.sock`, else (no
//!   runtime directory, as in containers and ssh sessions without logind)
//!   `$TMPDIR/otrd-<uid>/otrd.sock` — a per-user directory that, like every private directory
//!   here, is created 0700 and refused if it is a symlink, someone else's, or open to others
//!   (the way tmux and ssh-agent do it), so another local user cannot pre-create or hijack it;
//! - state (identity key, trust store): `$XDG_DATA_HOME/otrd/`.
//!
//! Private directories are created with mode 0700 at creation (never chmod'ed afterwards) and then
//! checked: a directory that is a symlink, belongs to someone else, or is open to others is refused.

use directories::BaseDirs;
use std::fs::DirBuilder;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The environment variable that overrides the socket path for `otrd` and `otrctl`.
pub const SOCKET_ENV: &str = "OTRD_SOCKET";

/// Why a path could not be worked out or a private directory could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    /// No home directory, so no XDG base directories.
    #[error("cannot find the home directory to derive the XDG directories from")]
    NoHome,
    /// The socket path has no parent directory.
    #[error("the socket path {0} has no parent directory")]
    NoParent(PathBuf),
    /// Creating or inspecting a directory failed.
    #[error("cannot create or inspect directory {path}: {source}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The directory exists but is not safe to keep secrets or a socket in.
    #[error("refusing to use directory {path}: {reason}")]
    Unsafe {
        /// The directory.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

fn base_dirs() -> Result<BaseDirs, PathError> {
    BaseDirs::new().ok_or(PathError::NoHome)
}

/// `$XDG_CONFIG_HOME/otrd/config.toml`.
pub fn default_config_file() -> Result<PathBuf, PathError> {
    Ok(base_dirs()?.config_dir().join("otrd").join("config.toml"))
}

/// `$XDG_DATA_HOME/otrd/`: identity keys and the trust store.
pub fn state_dir() -> Result<PathBuf, PathError> {
    Ok(base_dirs()?.data_dir().join("otrd"))
}

/// The socket path from `--socket`, `$OTRD_SOCKET` or `$XDG_RUNTIME_DIR`, in that order.
pub fn socket_path(explicit: Option<&Path>) -> Result<PathBuf, PathError> {
    socket_path_from(
        explicit,
        std::env::var_os(SOCKET_ENV).map(PathBuf::from),
        std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from),
    )
}

/// [`socket_path`] with the environment passed in, so the rule can be tested. Empty values count
/// as unset.
pub fn socket_path_from(
    explicit: Option<&Path>,
    otrd_socket: Option<PathBuf>,
    runtime_dir: Option<PathBuf>,
) -> Result<PathBuf, PathError> {
    let non_empty = |p: &PathBuf| !p.as_os_str().is_empty();
    if let Some(p) = explicit.filter(|p| !p.as_os_str().is_empty()) {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = otrd_socket.filter(non_empty) {
        return Ok(p);
    }
    match runtime_dir.filter(non_empty) {
        Some(dir) => Ok(dir.join("otrd").join("otrd.sock")),
        None => Ok(fallback_socket(rustix::process::geteuid().as_raw())),
    }
}

/// The socket path when there is no `XDG_RUNTIME_DIR`: `$TMPDIR/otrd-<uid>/otrd.sock`, from the
/// rule every front-end uses ([`otrd_proto::socket::fallback_path`]), so they look where we bind.
pub fn fallback_socket(uid: u32) -> PathBuf {
    otrd_proto::socket::fallback_path(&std::env::temp_dir(), uid)
}

/// Creates `dir` (and missing parents) with mode 0700, then checks that it is a real directory
/// (not a symlink), owned by `uid`, with mode exactly 0700.
pub fn ensure_private_dir(dir: &Path, uid: u32) -> Result<(), PathError> {
    let io = |source| PathError::Io {
        path: dir.to_path_buf(),
        source,
    };
    match DirBuilder::new().recursive(true).mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io(e)),
    }
    let meta = std::fs::symlink_metadata(dir).map_err(io)?;
    let unsafe_dir = |reason: String| PathError::Unsafe {
        path: dir.to_path_buf(),
        reason,
    };
    if meta.file_type().is_symlink() {
        return Err(unsafe_dir("it is a symlink".into()));
    }
    if !meta.is_dir() {
        return Err(unsafe_dir("it is not a directory".into()));
    }
    if meta.uid() != uid {
        return Err(unsafe_dir(format!(
            "it belongs to uid {}, not to uid {uid}",
            meta.uid()
        )));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode != 0o700 {
        return Err(unsafe_dir(format!(
            "its mode is {mode:03o}, not 700 (run `chmod 700 {}`)",
            dir.display()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Option<PathBuf> {
        Some(PathBuf::from(s))
    }

    #[test]
    fn socket_path_precedence() {
        let flag = PathBuf::from("/flag.sock");
        assert_eq!(
            socket_path_from(Some(&flag), p("/env.sock"), p("/run/user/1")).expect("path"),
            flag
        );
        assert_eq!(
            socket_path_from(None, p("/env.sock"), p("/run/user/1")).expect("path"),
            PathBuf::from("/env.sock")
        );
        assert_eq!(
            socket_path_from(None, p(""), p("/run/user/1")).expect("path"),
            PathBuf::from("/run/user/1/otrd/otrd.sock")
        );
    }

    #[test]
    fn no_runtime_dir_falls_back_to_a_per_user_directory() {
        let uid = rustix::process::geteuid().as_raw();
        let path = socket_path_from(None, None, p("")).expect("fallback");
        assert_eq!(path, fallback_socket(uid));
        assert!(path
            .parent()
            .is_some_and(|d| d.ends_with(format!("otrd-{uid}"))));
    }

    #[test]
    fn private_dir_is_created_0700_and_checked() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let uid = rustix::process::geteuid().as_raw();
        let dir = tmp.path().join("a/b");
        ensure_private_dir(&dir, uid).expect("created");
        let mode = std::fs::metadata(&dir).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        ensure_private_dir(&dir, uid).expect("existing is fine");

        let err = ensure_private_dir(&dir, uid + 1).expect_err("wrong owner");
        assert!(err.to_string().contains("belongs to uid"), "{err}");

        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let err = ensure_private_dir(&dir, uid).expect_err("open mode");
        assert!(err.to_string().contains("755"), "{err}");

        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&dir, &link).expect("symlink");
        let err = ensure_private_dir(&link, uid).expect_err("symlink");
        assert!(err.to_string().contains("symlink"), "{err}");
    }
}
