//! The trust store: which identity each peer had when first seen (trust on first use), whether
//! the user verified it, and whether a different one has shown up since.
//!
//! `trust.json` (0600, replaced atomically on every change) holds only public data:
//! `{"version":1,"peers":{"bob":{"fingerprint":"<64 hex>","first_seen_ms":…,"verified":false}}}`,
//! plus `"changed_to"` while a peer presents a different identity than the remembered one. A
//! changed identity never replaces the remembered one silently: only [`TrustStore::verify`] with
//! the new fingerprint does.

use super::{files, IdentityError, TRUST_FILE};
use crate::engine::Trust;
use crate::otr::native::Fingerprint;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

const VERSION: u32 = 1;

/// What the store remembers about one peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerRecord {
    /// The remembered identity's fingerprint (64 uppercase hex digits).
    pub fingerprint: String,
    /// When it was first seen (ms since the epoch).
    pub first_seen_ms: u64,
    /// Whether the user verified it (SAS or fingerprint compared out of band).
    pub verified: bool,
    /// A different fingerprint seen since, awaiting the user's decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed_to: Option<String>,
}

/// The verdict on an identity seen in a native session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustDecision {
    /// First time this peer was seen; the identity is now remembered.
    New,
    /// The remembered identity.
    Same {
        /// Whether the user verified it.
        verified: bool,
    },
    /// A different identity than the remembered one: an alarm.
    Changed {
        /// The remembered fingerprint.
        previous: Fingerprint,
    },
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct TrustFile {
    version: u32,
    peers: BTreeMap<String, PeerRecord>,
}

/// Peers' remembered fingerprints, persisted in `trust.json`.
#[derive(Debug)]
pub struct TrustStore {
    path: PathBuf,
    file: TrustFile,
}

impl TrustStore {
    /// Loads `dir/trust.json` (creating `dir` 0700 if missing); a missing file is an empty store.
    pub fn open(dir: &Path) -> Result<TrustStore, IdentityError> {
        files::ensure_private_dir(dir).map_err(|source| IdentityError::Dir {
            path: dir.to_owned(),
            source,
        })?;
        let path = dir.join(TRUST_FILE);
        let file = match std::fs::read(&path) {
            Ok(bytes) => parse(&bytes).map_err(|reason| IdentityError::CorruptTrust {
                path: path.clone(),
                reason,
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => TrustFile {
                version: VERSION,
                peers: BTreeMap::new(),
            },
            Err(source) => {
                return Err(IdentityError::File {
                    op: "reading",
                    path,
                    source,
                })
            }
        };
        Ok(TrustStore { path, file })
    }

    /// Records an identity seen in a native session with `peer` (a username).
    pub fn observe(
        &mut self,
        peer: &str,
        fingerprint: &Fingerprint,
    ) -> Result<TrustDecision, IdentityError> {
        let hex = fingerprint.to_hex();
        let decision = match self.file.peers.get_mut(peer) {
            None => {
                self.file.peers.insert(
                    peer.to_owned(),
                    PeerRecord {
                        fingerprint: hex,
                        first_seen_ms: files::unix_ms(),
                        verified: false,
                        changed_to: None,
                    },
                );
                TrustDecision::New
            }
            Some(rec) if rec.fingerprint == hex => {
                if rec.changed_to.take().is_none() {
                    return Ok(TrustDecision::Same {
                        verified: rec.verified,
                    });
                }
                TrustDecision::Same {
                    verified: rec.verified,
                }
            }
            Some(rec) => {
                let previous = Fingerprint::from_hex(&rec.fingerprint).ok_or_else(|| {
                    IdentityError::CorruptTrust {
                        path: self.path.clone(),
                        reason: format!("bad fingerprint for {peer}"),
                    }
                })?;
                if rec.changed_to.as_deref() == Some(hex.as_str()) {
                    return Ok(TrustDecision::Changed { previous });
                }
                rec.changed_to = Some(hex);
                TrustDecision::Changed { previous }
            }
        };
        self.save()?;
        Ok(decision)
    }

    /// The user confirms `fingerprint` for `peer`. Refused unless it is the peer's current
    /// identity (the changed one, if a change is pending). A pending change is accepted this way.
    pub fn verify(&mut self, peer: &str, fingerprint: &Fingerprint) -> Result<(), IdentityError> {
        let rec = self
            .file
            .peers
            .get_mut(peer)
            .ok_or_else(|| IdentityError::UnknownPeer {
                peer: peer.to_owned(),
            })?;
        let hex = fingerprint.to_hex();
        let current = rec
            .changed_to
            .clone()
            .unwrap_or_else(|| rec.fingerprint.clone());
        if current != hex {
            return Err(IdentityError::Mismatch {
                peer: peer.to_owned(),
            });
        }
        if rec.changed_to.take().is_some() {
            rec.fingerprint = hex;
            rec.first_seen_ms = files::unix_ms();
        }
        rec.verified = true;
        self.save()
    }

    /// What is remembered about `peer`.
    pub fn get(&self, peer: &str) -> Option<&PeerRecord> {
        self.file.peers.get(peer)
    }

    /// How far `peer`'s identity `fingerprint` is trusted, without recording anything.
    pub fn trust_of(&self, peer: &str, fingerprint: &Fingerprint) -> Trust {
        match self.file.peers.get(peer) {
            None => Trust::Unknown,
            Some(r) if r.fingerprint != fingerprint.to_hex() => Trust::Changed,
            Some(r) if r.verified => Trust::Verified,
            Some(_) => Trust::Unverified,
        }
    }

    /// True when `peer` has spoken the native scheme before (so a legacy-only answer from them is
    /// a possible downgrade).
    pub fn knows_native(&self, peer: &str) -> bool {
        self.file.peers.contains_key(peer)
    }

    /// The file backing the store.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn save(&self) -> Result<(), IdentityError> {
        let bytes = serde_json::to_vec_pretty(&self.file).map_err(|e| IdentityError::File {
            op: "serialising",
            path: self.path.clone(),
            source: io::Error::other(e),
        })?;
        files::write_atomic(&self.path, &bytes).map_err(|source| IdentityError::File {
            op: "writing",
            path: self.path.clone(),
            source,
        })
    }
}

fn parse(bytes: &[u8]) -> Result<TrustFile, String> {
    let file: TrustFile = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if file.version != VERSION {
        return Err(format!("unsupported version {}", file.version));
    }
    for (peer, rec) in &file.peers {
        let bad = Fingerprint::from_hex(&rec.fingerprint).is_none()
            || rec
                .changed_to
                .as_deref()
                .is_some_and(|c| Fingerprint::from_hex(c).is_none());
        if bad {
            return Err(format!("bad fingerprint for {peer}"));
        }
    }
    Ok(file)
}
