//! What went wrong, and which exit status says so.
//!
//! Exit statuses: 0 the command did what it says; 1 it did not (the daemon refused or failed);
//! 2 the daemon is not running (or its socket cannot be found); 3 the daemon does not support the
//! command yet; 64 the command line is wrong.

use std::path::PathBuf;

/// Exit status: the command failed.
pub const EXIT_FAILED: u8 = 1;
/// Exit status: no daemon answers on the socket.
pub const EXIT_NOT_RUNNING: u8 = 2;
/// Exit status: the daemon does not support this yet.
pub const EXIT_UNSUPPORTED: u8 = 3;
/// Exit status: bad command line (sysexits' EX_USAGE).
pub const EXIT_USAGE: u8 = 64;

/// Why an otrctl command did not do what it says.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Nothing listens on the socket.
    #[error("otrd is not running (nothing answers on {path}); start it with `otrd`, or `systemctl --user start otrd.socket`")]
    NotRunning {
        /// The socket tried.
        path: PathBuf,
    },
    /// Something listens where the daemon should, but it is not provably the user's own: the
    /// directory, the socket or the serving process belongs to someone else. Nothing was sent.
    #[error("refusing to talk to {path}: {reason}; nothing was sent")]
    Untrusted {
        /// The socket tried.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The socket exists but could not be used.
    #[error("cannot connect to otrd at {path}: {reason}")]
    Connect {
        /// The socket tried.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The daemon answered with an error.
    #[error("{}", describe(.0))]
    Status(#[from] tonic::Status),
    /// Reading stdin or writing stdout failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// otrctl itself is broken (e.g. its embedded API description does not load).
    #[error("internal error: {0}")]
    Internal(String),
    /// A bad argument caught before asking the daemon.
    #[error("{0}")]
    Usage(String),
}

fn describe(status: &tonic::Status) -> String {
    use tonic::Code;
    let msg = status.message();
    match status.code() {
        Code::Unimplemented => format!("the daemon does not support this yet: {msg}"),
        Code::PermissionDenied => format!("permission denied: {msg}"),
        Code::NotFound => format!("not found: {msg}"),
        Code::Unavailable => format!("unavailable: {msg}"),
        _ => msg.to_owned(),
    }
}

impl CliError {
    /// The exit status this error means.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::NotRunning { .. } => EXIT_NOT_RUNNING,
            Self::Status(s) if s.code() == tonic::Code::Unimplemented => EXIT_UNSUPPORTED,
            Self::Usage(_) => EXIT_USAGE,
            _ => EXIT_FAILED,
        }
    }
}
