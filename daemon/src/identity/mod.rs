//! Long-term identity key and the trust store of peers' fingerprints (files under `$XDG_DATA_HOME/otrd/`).
//!
//! * `identity.key` (0600): the account's X25519 private key for the native scheme, as
//!   `"OTRDIK1\n"` followed by the 32 key bytes. Created with `O_EXCL` and mode 0600 (via a temp
//!   file hard-linked into place, so a crash never leaves half a key and two daemons never clobber
//!   each other). A missing file means first run; a corrupt one is renamed aside and replaced by
//!   a new identity with a warning — the daemon never stops over it.
//! * `trust.json` (0600): see [`TrustStore`]. Only public data.
//!
//! The directory is created 0700 if missing (with that mode, never chmod'ed afterwards).

mod files;
mod trust;

pub use trust::{PeerRecord, TrustDecision, TrustStore};

use crate::otr::native::{Fingerprint, LocalIdentity};
use crate::secure::LockedKey;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// File name of the identity key inside the state directory.
pub const IDENTITY_FILE: &str = "identity.key";
/// File name of the trust store inside the state directory.
pub const TRUST_FILE: &str = "trust.json";

const MAGIC: &[u8; 8] = b"OTRDIK1\n";
const FILE_LEN: usize = MAGIC.len() + 32;

/// What went wrong with the state directory or its files.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The state directory could not be created or opened.
    #[error("creating state directory {path}: {source}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Reading or writing a file failed.
    #[error("{op} {path}: {source}")]
    File {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// `trust.json` exists but cannot be parsed. It is left in place: silently starting an empty
    /// store would forget every remembered fingerprint.
    #[error("trust store {path} is corrupt ({reason}); fix or move it aside")]
    CorruptTrust {
        /// The file.
        path: PathBuf,
        /// Why it was rejected.
        reason: String,
    },
    /// `verify` was given a fingerprint that is not the peer's current one.
    #[error("fingerprint for {peer} does not match the one seen in session")]
    Mismatch {
        /// The peer username.
        peer: String,
    },
    /// `verify` for a peer never seen.
    #[error("no identity seen yet for {peer}")]
    UnknownPeer {
        /// The peer username.
        peer: String,
    },
}

/// The loaded identity of this account on this machine.
#[derive(Debug)]
pub struct IdentityStore {
    dir: PathBuf,
    identity: LocalIdentity,
}

impl IdentityStore {
    /// Opens `dir` (creating it 0700 if missing), loading `identity.key` or creating a new one.
    pub fn open(dir: &Path) -> Result<IdentityStore, IdentityError> {
        files::ensure_private_dir(dir).map_err(|source| IdentityError::Dir {
            path: dir.to_owned(),
            source,
        })?;
        let path = dir.join(IDENTITY_FILE);
        let identity = match load(&path) {
            Ok(Some(id)) => id,
            Ok(None) => {
                tracing::info!(path = %path.display(), "no identity key yet; creating one");
                create(&path)?
            }
            Err(reason) => {
                let aside = files::move_aside(&path, files::unix_ms()).map_err(|source| {
                    IdentityError::File {
                        op: "moving aside corrupt",
                        path: path.clone(),
                        source,
                    }
                })?;
                tracing::warn!(
                    path = %path.display(),
                    moved_to = %aside.display(),
                    reason,
                    "identity key unreadable; created a NEW identity — peers will see a changed fingerprint"
                );
                create(&path)?
            }
        };
        tracing::info!(fingerprint = %identity.fingerprint(), "identity loaded");
        Ok(IdentityStore {
            dir: dir.to_owned(),
            identity,
        })
    }

    /// The identity.
    pub fn identity(&self) -> &LocalIdentity {
        &self.identity
    }

    /// Our fingerprint.
    pub fn fingerprint(&self) -> Fingerprint {
        self.identity.fingerprint()
    }

    /// The state directory (where the trust store lives too).
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// `Ok(None)` when the file does not exist; `Err(reason)` when it exists but is unusable.
fn load(path: &Path) -> Result<Option<LocalIdentity>, &'static str> {
    let mut file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(_) => return Err("cannot open"),
    };
    if let Ok(meta) = file.metadata() {
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "identity key is readable by others; it should be 0600");
        }
    }
    let mut buf = Zeroizing::new(Vec::with_capacity(FILE_LEN + 1));
    // Read one byte more than expected so an over-long file is noticed.
    (&mut file)
        .take(FILE_LEN as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|_| "cannot read")?;
    if buf.len() != FILE_LEN || !buf.starts_with(MAGIC) {
        return Err("wrong size or header");
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(&buf[MAGIC.len()..]);
    Ok(Some(LocalIdentity::from_secret(LockedKey::new(&mut key))))
}

fn create(path: &Path) -> Result<LocalIdentity, IdentityError> {
    let identity = LocalIdentity::generate(&mut rand::rngs::OsRng);
    let mut bytes = Zeroizing::new(Vec::with_capacity(FILE_LEN));
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(identity.secret().expose());
    match files::write_new_atomic(path, &bytes) {
        Ok(()) => Ok(identity),
        // Another daemon created one meanwhile: use theirs so both agree.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => match load(path) {
            Ok(Some(id)) => Ok(id),
            _ => Err(IdentityError::File {
                op: "creating identity",
                path: path.to_owned(),
                source: e,
            }),
        },
        Err(source) => Err(IdentityError::File {
            op: "creating identity",
            path: path.to_owned(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests;
