//! The trust store: which identity keys (devices) each peer has shown, which of them the user
//! accepted or verified, and who that peer is (server, user id, username).
//!
//! Records follow people, not names: they are keyed by server, our own account's user id and the
//! peer's user id, so two accounts or servers sharing a data directory never see each other's
//! records, and a username taken over by another account is not mistaken for the old one.
//!
//! Each peer has a set of devices (identity fingerprints). The first device of a new peer is
//! remembered on first use (accepted, unverified). A device never seen before for a known peer is
//! *pending*: the session is held until the user accepts it (trust stays unverified, like
//! accepting a changed safety number) or verifies it (the fingerprint compared, or the SAS of the
//! live session confirmed). Once accepted, switching between a peer's devices raises nothing.
//!
//! `trust.json` (0600, replaced atomically on every change) holds only public data:
//! `{"version":2,"servers":{URL:{ACCOUNT_UID:{PEER_UID:{"username","first_seen_ms",
//! "devices":{FP:{"first_seen_ms","accepted","verified"}}}}}}}`. A version-1 file (records keyed
//! by username only) is read as "unclaimed" records: the first account that meets a peer of that
//! username with no record of its own adopts the record, and it is gone from the pool.

use super::{files, IdentityError, TRUST_FILE};
use crate::engine::Trust;
use crate::otr::native::Fingerprint;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

const VERSION: u32 = 2;

/// Whom a record is about: the server, our account there, and the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerId<'a> {
    /// The server URL (as configured; a trailing `/` is ignored).
    pub server: &'a str,
    /// Our own user id on that server.
    pub account_uid: &'a str,
    /// The peer's user id (from the room, never from a payload).
    pub uid: &'a str,
    /// The peer's current username.
    pub username: &'a str,
}

/// One identity key a peer has shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRecord {
    /// When it was first seen (ms since the epoch).
    pub first_seen_ms: u64,
    /// The user lets sessions with this key send (first use, or an explicit accept or verify).
    pub accepted: bool,
    /// The user compared the fingerprint or the SAS.
    pub verified: bool,
}

/// What the store remembers about one peer (one user id on one server, for one of our accounts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerRecord {
    /// The username last seen for this user id.
    pub username: String,
    /// When the peer was first seen.
    pub first_seen_ms: u64,
    /// Identity fingerprints (64 uppercase hex digits) and what the user decided about each.
    pub devices: BTreeMap<String, DeviceRecord>,
}

impl PeerRecord {
    /// The accepted device seen most recently first (what "the previous key" means to a person).
    pub fn latest_accepted(&self) -> Option<Fingerprint> {
        self.devices
            .iter()
            .filter(|(_, d)| d.accepted)
            .max_by_key(|(_, d)| d.first_seen_ms)
            .and_then(|(fp, _)| Fingerprint::from_hex(fp))
    }

    /// The trust of one of this peer's keys.
    fn trust_of(&self, fingerprint: &Fingerprint) -> Trust {
        match self.devices.get(&fingerprint.to_hex()) {
            Some(d) if d.accepted && d.verified => Trust::Verified,
            Some(d) if d.accepted => Trust::Unverified,
            // Pending, or not even recorded yet: a key the user did not let in.
            _ => Trust::Changed,
        }
    }
}

/// The verdict on an identity seen in a native session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustDecision {
    /// First time this peer was seen; its key is remembered (accepted, unverified).
    New,
    /// One of the peer's accepted keys.
    Same {
        /// Whether the user verified it.
        verified: bool,
    },
    /// A key not seen before for a known peer (or a known username under a new user id): the
    /// session is held until the user accepts or verifies it.
    NewDevice {
        /// The peer's latest accepted key, if any.
        previous: Option<Fingerprint>,
    },
    /// A key seen before and still not accepted: still held.
    Pending {
        /// The peer's latest accepted key, if any.
        previous: Option<Fingerprint>,
    },
}

/// Something about the peer's account the user should hear of, besides the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityNotice {
    /// A known user id now has another username.
    Renamed {
        /// The username remembered.
        from: String,
        /// The username now.
        to: String,
    },
    /// A known username now belongs to another user id (a recreated account, or someone else).
    UserIdChanged {
        /// The user id remembered for that username.
        previous_uid: String,
    },
}

/// What [`TrustStore::observe`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// About the key.
    pub decision: TrustDecision,
    /// About the account.
    pub notices: Vec<IdentityNotice>,
}

/// A version-1 record (keyed by username only), kept until an account adopts it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct UnclaimedRecord {
    fingerprint: String,
    first_seen_ms: u64,
    verified: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    changed_to: Option<String>,
}

type Peers = BTreeMap<String, PeerRecord>;

#[derive(Debug, Default, Serialize, Deserialize)]
struct TrustFile {
    version: u32,
    /// server URL → our account's user id → peer user id → record.
    #[serde(default)]
    servers: BTreeMap<String, BTreeMap<String, Peers>>,
    /// Version-1 records by username, not yet adopted by an account.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    unclaimed: BTreeMap<String, UnclaimedRecord>,
}

/// Version 1 on disk: `{"version":1,"peers":{USERNAME:{…}}}`.
#[derive(Deserialize)]
struct TrustFileV1 {
    peers: BTreeMap<String, UnclaimedRecord>,
}

/// Peers' identities and the user's decisions, persisted in `trust.json`.
#[derive(Debug)]
pub struct TrustStore {
    path: PathBuf,
    file: TrustFile,
}

fn server_key(server: &str) -> &str {
    server.trim_end_matches('/')
}

impl TrustStore {
    /// Loads `dir/trust.json` (creating `dir` 0700 if missing, and checking it: ours, 0700, not
    /// a symlink); a missing file is an empty store.
    pub fn open(dir: &Path) -> Result<TrustStore, IdentityError> {
        files::ensure_private_dir(dir)?;
        let path = dir.join(TRUST_FILE);
        let file = match std::fs::read(&path) {
            Ok(bytes) => parse(&bytes).map_err(|reason| IdentityError::CorruptTrust {
                path: path.clone(),
                reason,
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => TrustFile {
                version: VERSION,
                ..TrustFile::default()
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

    fn peers(&self, peer: &PeerId<'_>) -> Option<&Peers> {
        self.file
            .servers
            .get(server_key(peer.server))?
            .get(peer.account_uid)
    }

    fn peers_mut(&mut self, peer: &PeerId<'_>) -> &mut Peers {
        self.file
            .servers
            .entry(server_key(peer.server).to_owned())
            .or_default()
            .entry(peer.account_uid.to_owned())
            .or_default()
    }

    /// Records an identity seen in an authenticated native session with `peer`.
    pub fn observe(
        &mut self,
        peer: &PeerId<'_>,
        fingerprint: &Fingerprint,
    ) -> Result<Observation, IdentityError> {
        let hex = fingerprint.to_hex();
        let now = files::unix_ms();
        let mut notices = Vec::new();
        let mut changed = false;
        let known_uid = self.peers(peer).is_some_and(|p| p.contains_key(peer.uid));
        if !known_uid {
            // The same username under another user id is not the same person until the user says so.
            let previous_uid = self.peers(peer).and_then(|p| {
                p.iter()
                    .filter(|(_, r)| r.username == peer.username)
                    .max_by_key(|(_, r)| r.first_seen_ms)
                    .map(|(uid, _)| uid.clone())
            });
            let adopted = self.file.unclaimed.remove(peer.username);
            let record = match (&previous_uid, adopted) {
                (Some(previous_uid), _) => {
                    notices.push(IdentityNotice::UserIdChanged {
                        previous_uid: previous_uid.clone(),
                    });
                    PeerRecord {
                        username: peer.username.to_owned(),
                        first_seen_ms: now,
                        devices: BTreeMap::new(),
                    }
                }
                (None, Some(old)) => adopt(peer.username, old),
                (None, None) => {
                    let mut devices = BTreeMap::new();
                    devices.insert(
                        hex.clone(),
                        DeviceRecord {
                            first_seen_ms: now,
                            accepted: true,
                            verified: false,
                        },
                    );
                    let record = PeerRecord {
                        username: peer.username.to_owned(),
                        first_seen_ms: now,
                        devices,
                    };
                    self.peers_mut(peer).insert(peer.uid.to_owned(), record);
                    self.save()?;
                    return Ok(Observation {
                        decision: TrustDecision::New,
                        notices,
                    });
                }
            };
            self.peers_mut(peer).insert(peer.uid.to_owned(), record);
            changed = true;
        }
        let record =
            self.peers_mut(peer)
                .get_mut(peer.uid)
                .ok_or_else(|| IdentityError::UnknownPeer {
                    peer: peer.username.to_owned(),
                })?;
        if record.username != peer.username {
            notices.push(IdentityNotice::Renamed {
                from: std::mem::replace(&mut record.username, peer.username.to_owned()),
                to: peer.username.to_owned(),
            });
            changed = true;
        }
        let previous = record.latest_accepted();
        let decision = match record.devices.get(&hex) {
            Some(d) if d.accepted => TrustDecision::Same {
                verified: d.verified,
            },
            Some(_) => TrustDecision::Pending { previous },
            None => {
                record.devices.insert(
                    hex,
                    DeviceRecord {
                        first_seen_ms: now,
                        accepted: false,
                        verified: false,
                    },
                );
                changed = true;
                TrustDecision::NewDevice { previous }
            }
        };
        if changed {
            self.save()?;
        }
        Ok(Observation { decision, notices })
    }

    fn device_mut(
        &mut self,
        peer: &PeerId<'_>,
        fingerprint: &Fingerprint,
    ) -> Result<&mut DeviceRecord, IdentityError> {
        let unknown = || IdentityError::UnknownPeer {
            peer: peer.username.to_owned(),
        };
        let record = self
            .file
            .servers
            .get_mut(server_key(peer.server))
            .and_then(|a| a.get_mut(peer.account_uid))
            .and_then(|p| p.get_mut(peer.uid))
            .ok_or_else(unknown)?;
        record
            .devices
            .get_mut(&fingerprint.to_hex())
            .ok_or_else(|| IdentityError::Mismatch {
                peer: peer.username.to_owned(),
            })
    }

    /// The user accepts `fingerprint` (a key seen in session) without verifying it: sessions
    /// with it may send again; its trust is unverified (a verified key stays verified).
    pub fn accept(
        &mut self,
        peer: &PeerId<'_>,
        fingerprint: &Fingerprint,
    ) -> Result<(), IdentityError> {
        let device = self.device_mut(peer, fingerprint)?;
        if device.accepted {
            return Ok(());
        }
        device.accepted = true;
        self.save()
    }

    /// The user compared `fingerprint` (or the SAS of a session with it) and it matched.
    /// Refused unless the key was seen in session with this peer.
    pub fn verify(
        &mut self,
        peer: &PeerId<'_>,
        fingerprint: &Fingerprint,
    ) -> Result<(), IdentityError> {
        let device = self.device_mut(peer, fingerprint)?;
        device.accepted = true;
        device.verified = true;
        self.save()
    }

    /// What is remembered about `peer` (by user id).
    pub fn get(&self, peer: &PeerId<'_>) -> Option<&PeerRecord> {
        self.peers(peer)?.get(peer.uid)
    }

    /// The record for a username in an account's scope, when the user id is not at hand (no
    /// room loaded): the most recently first-seen user id with that name.
    pub fn by_username(
        &self,
        server: &str,
        account_uid: &str,
        username: &str,
    ) -> Option<&PeerRecord> {
        self.file
            .servers
            .get(server_key(server))?
            .get(account_uid)?
            .values()
            .filter(|r| r.username == username)
            .max_by_key(|r| r.first_seen_ms)
    }

    /// How far `peer`'s key `fingerprint` is trusted, without recording anything.
    pub fn trust_of(&self, peer: &PeerId<'_>, fingerprint: &Fingerprint) -> Trust {
        match self.get(peer) {
            Some(r) => r.trust_of(fingerprint),
            None => Trust::Unknown,
        }
    }

    /// True when `peer` has spoken the native scheme before (so a legacy-only answer from them is
    /// a possible downgrade): a record for the user id, or an unclaimed version-1 record or
    /// another user id for the username.
    pub fn knows_native(&self, peer: &PeerId<'_>) -> bool {
        self.get(peer).is_some()
            || self.file.unclaimed.contains_key(peer.username)
            || self
                .peers(peer)
                .is_some_and(|p| p.values().any(|r| r.username == peer.username))
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

/// A version-1 record becomes this account's: its key as it was (accepted, verified or not), and
/// a change pending in version 1 as a pending device.
fn adopt(username: &str, old: UnclaimedRecord) -> PeerRecord {
    let mut devices = BTreeMap::new();
    devices.insert(
        old.fingerprint,
        DeviceRecord {
            first_seen_ms: old.first_seen_ms,
            accepted: true,
            verified: old.verified,
        },
    );
    if let Some(pending) = old.changed_to {
        devices.entry(pending).or_insert(DeviceRecord {
            first_seen_ms: old.first_seen_ms.saturating_add(1),
            accepted: false,
            verified: false,
        });
    }
    PeerRecord {
        username: username.to_owned(),
        first_seen_ms: old.first_seen_ms,
        devices,
    }
}

fn parse(bytes: &[u8]) -> Result<TrustFile, String> {
    #[derive(Deserialize)]
    struct Version {
        version: u32,
    }
    let version: Version = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let file = match version.version {
        1 => {
            let v1: TrustFileV1 = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
            TrustFile {
                version: VERSION,
                servers: BTreeMap::new(),
                unclaimed: v1.peers,
            }
        }
        VERSION => serde_json::from_slice(bytes).map_err(|e| e.to_string())?,
        v => return Err(format!("unsupported version {v}")),
    };
    for (name, rec) in &file.unclaimed {
        let bad = Fingerprint::from_hex(&rec.fingerprint).is_none()
            || rec
                .changed_to
                .as_deref()
                .is_some_and(|c| Fingerprint::from_hex(c).is_none());
        if bad {
            return Err(format!("bad fingerprint for {name}"));
        }
    }
    for accounts in file.servers.values() {
        for peers in accounts.values() {
            for rec in peers.values() {
                if rec
                    .devices
                    .keys()
                    .any(|fp| Fingerprint::from_hex(fp).is_none())
                {
                    return Err(format!("bad fingerprint for {}", rec.username));
                }
            }
        }
    }
    Ok(file)
}
