//! Long-term identity key and the trust store of peers' fingerprints (files under `$XDG_DATA_HOME/otrd/`).
//!
//! * `identity.key` (0600): the account's X25519 private key for the native scheme, as
//!   `"OTRDIK1\n"` followed by the 32 key bytes. Created with `O_EXCL` and mode 0600 (via a temp
//!   file hard-linked into place, so a crash never leaves half a key and two daemons never clobber
//!   each other). A missing file means first run. An existing one is opened with `O_NOFOLLOW`
//!   (a symlink is refused) and refused when it is not a regular file of ours or when group or
//!   others have any access to it. Any I/O error opening or reading it is an error, never a reason
//!   to make a new identity: the engine runs without the native scheme and says why in status,
//!   until the user fixes the file. Only a file that reads fine but holds no key (wrong size or
//!   header) is renamed aside and replaced, with a warning.
//! * `trust.json` (0600): see [`TrustStore`]. Only public data.
//!
//! The directory is created 0700 if missing (with that mode, never chmod'ed afterwards) and then
//! checked as the socket directory is: a real directory (not a symlink), ours, mode 0700.

mod files;
mod trust;

pub use trust::{
    DeviceRecord, IdentityNotice, Observation, PeerId, PeerRecord, TrustDecision, TrustStore,
};

use crate::otr::native::{Fingerprint, LocalIdentity};
use crate::secure::LockedKey;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
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
    /// The state directory could not be created, or is not safe for a private key.
    #[error("state directory: {0}")]
    Dir(#[from] crate::config::paths::PathError),
    /// `identity.key` exists but may not be used as it is (symlink, not ours, readable by others).
    #[error("refusing identity key {path}: {reason}")]
    UnsafeKey {
        /// The file.
        path: PathBuf,
        /// What is wrong, and how to fix it.
        reason: String,
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
        files::ensure_private_dir(dir)?;
        let path = dir.join(IDENTITY_FILE);
        let identity = match load(&path)? {
            Loaded::Key(id) => id,
            Loaded::Missing => {
                tracing::info!(path = %path.display(), "no identity key yet; creating one");
                create(&path)?
            }
            Loaded::Garbled(reason) => {
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

/// What `identity.key` held.
enum Loaded {
    /// A key.
    Key(LocalIdentity),
    /// No file: first run.
    Missing,
    /// A private regular file of ours that reads fine but holds no key.
    Garbled(&'static str),
}

/// Opens `identity.key` without following a symlink and checks it before reading a byte of it.
/// I/O errors and unsafe files are errors (see the module docs), never `Missing`.
fn load(path: &Path) -> Result<Loaded, IdentityError> {
    let io_err = |op, source| IdentityError::File {
        op,
        path: path.to_owned(),
        source,
    };
    let unsafe_key = |reason: String| IdentityError::UnsafeKey {
        path: path.to_owned(),
        reason,
    };
    let mut file = match fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Loaded::Missing),
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
            return Err(unsafe_key(
                "it is a symlink; put the key file itself there".into(),
            ))
        }
        Err(e) => return Err(io_err("opening", e)),
    };
    let meta = file.metadata().map_err(|e| io_err("inspecting", e))?;
    if !meta.is_file() {
        return Err(unsafe_key("it is not a regular file".into()));
    }
    let uid = rustix::process::geteuid().as_raw();
    if meta.uid() != uid {
        return Err(unsafe_key(format!(
            "it belongs to uid {}, not to uid {uid}",
            meta.uid()
        )));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(unsafe_key(format!(
            "its mode is {mode:03o}: others may have read it. If they could, make a new identity \
             (move the file away); otherwise run `chmod 600 {}`",
            path.display()
        )));
    }
    let mut buf = Zeroizing::new(Vec::with_capacity(FILE_LEN + 1));
    // Read one byte more than expected so an over-long file is noticed.
    (&mut file)
        .take(FILE_LEN as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|e| io_err("reading", e))?;
    if buf.len() != FILE_LEN || !buf.starts_with(MAGIC) {
        return Ok(Loaded::Garbled("wrong size or header"));
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(&buf[MAGIC.len()..]);
    Ok(Loaded::Key(LocalIdentity::from_secret(LockedKey::new(
        &mut key,
    ))))
}

fn create(path: &Path) -> Result<LocalIdentity, IdentityError> {
    let identity = LocalIdentity::generate(&mut rand::rngs::OsRng);
    let mut bytes = Zeroizing::new(Vec::with_capacity(FILE_LEN));
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(identity.secret().expose());
    match files::write_new_atomic(path, &bytes) {
        Ok(()) => Ok(identity),
        // Another daemon created one meanwhile: use theirs so both agree.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => match load(path)? {
            Loaded::Key(id) => Ok(id),
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
