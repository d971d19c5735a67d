//! The engine's side of identity and trust: which native identity sessions use, remembering peers'
//! fingerprints on first use, raising the alarm when one changes (and holding that session
//! unverified: nothing is sent until the user decides), GetFingerprint and TrustPeer.

use super::core::Engine;
use super::types::*;
use crate::identity::{IdentityNotice, IdentityStore, PeerId, TrustDecision, TrustStore};
use crate::otr::native::{Fingerprint, InstanceTag};
use crate::otr::session::NativeSetup;
use std::path::Path;

/// What the engine knows about its own identity.
pub(super) struct Identity {
    /// Used by every new session; `None` means legacy only.
    pub native: Option<NativeSetup>,
    /// Peers' remembered fingerprints; `None` when there is no state directory.
    pub trust: Option<TrustStore>,
    /// Why native is off, for people (empty when on).
    pub why_not: String,
}

impl Identity {
    /// Loads (or creates) the identity key and trust store in `state_dir`. Without a directory,
    /// or when it cannot be used, the daemon runs legacy-only and says why.
    pub fn load(
        state_dir: Option<&Path>,
        rng: &mut (impl rand::RngCore + rand::CryptoRng),
    ) -> Self {
        let Some(dir) = state_dir else {
            return Self::legacy_only("no state directory for an identity key".into());
        };
        let opened = IdentityStore::open(dir).and_then(|id| Ok((id, TrustStore::open(dir)?)));
        match opened {
            Ok((id, trust)) => Self {
                native: Some(NativeSetup {
                    identity: id.identity().clone(),
                    tag: InstanceTag::random(rng),
                }),
                trust: Some(trust),
                why_not: String::new(),
            },
            Err(e) => {
                tracing::error!(error = %e, dir = %dir.display(), "identity unavailable; native scheme off");
                Self::legacy_only(format!("identity unavailable: {e}"))
            }
        }
    }

    fn legacy_only(why_not: String) -> Self {
        Self {
            native: None,
            trust: None,
            why_not,
        }
    }
}

/// The user's decision on a peer's key, for [`Engine::decide_key`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyDecision {
    /// TrustPeer: the fingerprint the user compared (required; empty never verifies).
    VerifyFingerprint(String),
    /// ConfirmSas: the SAS the user compared, all five groups, of the live native session.
    ConfirmSas(String),
    /// AcceptPeerKey: let the key in unverified; optionally pinned to a fingerprint.
    Accept(String),
}

/// Whom the trust store's record is about, owned (the engine builds it from a room).
struct PeerKey {
    server: String,
    account_uid: String,
    uid: String,
    username: String,
}

impl PeerKey {
    fn id(&self) -> PeerId<'_> {
        PeerId {
            server: &self.server,
            account_uid: &self.account_uid,
            uid: &self.uid,
            username: &self.username,
        }
    }
}

impl Engine {
    /// Our fingerprint, or why there is none.
    fn own_fingerprint(&self) -> Result<String, EngineError> {
        self.identity
            .native
            .as_ref()
            .map(|n| n.identity.fingerprint().to_string())
            .ok_or_else(|| EngineError::FailedPrecondition(self.identity.why_not.clone()))
    }

    /// This run's instance tag, hex (empty without native).
    pub(super) fn instance_tag(&self) -> String {
        self.identity
            .native
            .as_ref()
            .map(|n| n.tag.to_hex())
            .unwrap_or_default()
    }

    /// Why the native scheme is off (empty when on), for GetStatus.
    pub(super) fn native_unavailable(&self) -> String {
        self.identity.why_not.clone()
    }

    /// The trust store's key for a room's peer: this server, our account, the room's other uid.
    fn peer_key(&self, room_id: &str) -> Option<PeerKey> {
        let account_uid = match (self.sessions.get(room_id), &self.me) {
            (Some(s), _) => s.context().my_uid.clone(),
            (None, Some(me)) => me.user_id.clone(),
            (None, None) => return None,
        };
        let room = self.rooms.get(room_id);
        let (uid, username) = match (self.sessions.get(room_id), room) {
            (Some(s), _) => (
                s.context().peer_uid.clone(),
                s.context().peer_username.clone(),
            ),
            (None, Some(r)) => (r.peer_uid.clone(), r.peer_username.clone()),
            (None, None) => return None,
        };
        Some(PeerKey {
            server: self.cfg.config.server.url.clone(),
            account_uid,
            uid,
            username,
        })
    }

    /// True when the room's peer spoke the native scheme before (a downgrade is possible).
    pub(super) fn knows_native(&self, room_id: &str) -> bool {
        match (self.peer_key(room_id), self.identity.trust.as_ref()) {
            (Some(key), Some(trust)) => trust.knows_native(&key.id()),
            _ => false,
        }
    }

    /// The trust level to show for a room's native session, from the trust store.
    pub(super) fn trust_for(&self, room_id: &str) -> Option<Trust> {
        let session = self.sessions.get(room_id)?;
        let (fp, _) = session.native_peer()?;
        let trust = self.identity.trust.as_ref()?;
        let key = self.peer_key(room_id)?;
        Some(trust.trust_of(&key.id(), &fp))
    }

    /// A native session just got established: remember the peer on first use, or raise the alarm
    /// (a key not seen before, a renamed user id, a username under a new user id).
    pub(super) fn observe_identity(&mut self, room_id: &str) {
        let Some((fp, _)) = self.sessions.get(room_id).and_then(|s| s.native_peer()) else {
            return;
        };
        let Some(key) = self.peer_key(room_id) else {
            return;
        };
        let Some(trust) = self.identity.trust.as_mut() else {
            return;
        };
        let observation = match trust.observe(&key.id(), &fp) {
            Ok(o) => o,
            Err(e) => {
                tracing::error!(error = %e, "cannot record the peer's identity");
                return;
            }
        };
        let peer = key.username.clone();
        for notice in observation.notices {
            let (code, message) = match notice {
                IdentityNotice::Renamed { from, to } => (
                    "username_changed",
                    format!(
                        "the account known as {from} (user id {}) is now called {to}. Its identity \
                         key decides trust, not its name; check that {to} is who you expect.",
                        key.uid
                    ),
                ),
                IdentityNotice::UserIdChanged { previous_uid } => (
                    "user_id_changed",
                    format!(
                        "{peer} is now another account (user id {}, was {previous_uid}): a deleted \
                         and recreated account, or someone else using the name. Nothing will be \
                         sent until you check who this is and verify or accept their key.",
                        key.uid
                    ),
                ),
            };
            tracing::warn!(peer = %peer, code, "peer account changed");
            self.emit(EventKind::Alarm {
                peer: peer.clone(),
                room_id: room_id.to_owned(),
                code: code.into(),
                message,
            });
        }
        let previous = match observation.decision {
            TrustDecision::NewDevice { previous } | TrustDecision::Pending { previous } => previous,
            TrustDecision::New | TrustDecision::Same { .. } => return,
        };
        tracing::warn!(peer = %peer, "peer presents an identity key not accepted yet");
        let was = previous
            .map(|p| format!(" (the key you knew: {p})"))
            .unwrap_or_default();
        self.emit(EventKind::Alarm {
            peer: peer.clone(),
            room_id: room_id.to_owned(),
            code: "fingerprint_changed".into(),
            message: format!(
                "{peer} presents a new identity key {fp}{was}. It can be a new device or \
                 installation of {peer}'s — or a server substituting keys. Nothing will be sent \
                 in this session until you decide. Compare first, over another channel (in \
                 person, by phone): `otrctl fingerprint {peer}` shows the fingerprint and the \
                 session's SAS. If they match, `otrctl trust {peer} FINGERPRINT` (or \
                 `otrctl trust {peer} --sas \"ALL FIVE GROUPS\"`) verifies it; \
                 `otrctl accept-key {peer}` lets it in unverified; `otrctl end {peer}` ends the \
                 session."
            ),
        });
    }

    /// Refuses to send in a session whose peer key was not accepted (or verified) yet.
    pub(super) fn check_not_held(&self, room_id: &str, peer: &PeerRef) -> Result<(), EngineError> {
        if self.trust_for(room_id) == Some(Trust::Changed) {
            return Err(EngineError::FailedPrecondition(format!(
                "{peer}'s identity changed (a key you have not accepted); compare fingerprints \
                 (`otrctl fingerprint {peer}`), then `otrctl trust {peer} FINGERPRINT` to verify \
                 or `otrctl accept-key {peer}` to accept it unverified — nothing was sent"
            )));
        }
        Ok(())
    }

    pub(super) fn fingerprint(
        &self,
        peer: Option<&PeerRef>,
    ) -> Result<FingerprintInfo, EngineError> {
        let own = self.own_fingerprint()?;
        let Some(peer) = peer else {
            return Ok(FingerprintInfo {
                own_fingerprint: own,
                ..FingerprintInfo::default()
            });
        };
        let room_id = self.room_id_of(peer);
        let username = match (peer, room_id.as_deref().and_then(|r| self.rooms.get(r))) {
            (_, Some(room)) => room.peer_username.clone(),
            (PeerRef::Username(u), None) => u.clone(),
            (PeerRef::RoomId(r), None) => {
                return Err(EngineError::NotFound(format!("no room {r}")))
            }
        };
        let live = room_id
            .as_deref()
            .and_then(|r| self.sessions.get(r))
            .and_then(|s| s.native_peer());
        let store = self.identity.trust.as_ref();
        let record = match (room_id.as_deref().and_then(|r| self.peer_key(r)), store) {
            (Some(key), Some(t)) => t.get(&key.id()).cloned(),
            (None, Some(t)) => self
                .me
                .as_ref()
                .and_then(|me| t.by_username(&self.cfg.config.server.url, &me.user_id, &username))
                .cloned(),
            _ => None,
        };
        let (peer_fp, trust, previous) = match (&live, &record) {
            (Some((fp, _)), _) => {
                let trust = room_id
                    .as_deref()
                    .and_then(|r| self.trust_for(r))
                    .unwrap_or(Trust::Unknown);
                let previous = match (trust, &record) {
                    (Trust::Changed, Some(r)) => r
                        .latest_accepted()
                        .map(|f| f.to_string())
                        .unwrap_or_default(),
                    _ => String::new(),
                };
                (fp.to_string(), trust, previous)
            }
            (None, Some(r)) => match r.latest_accepted() {
                Some(fp) => {
                    let verified = r.devices.get(&fp.to_hex()).is_some_and(|d| d.verified);
                    let trust = if verified {
                        Trust::Verified
                    } else {
                        Trust::Unverified
                    };
                    (fp.to_string(), trust, String::new())
                }
                None => (String::new(), Trust::Unknown, String::new()),
            },
            (None, None) => (String::new(), Trust::Unknown, String::new()),
        };
        Ok(FingerprintInfo {
            own_fingerprint: own,
            peer: username,
            peer_fingerprint: peer_fp,
            trust: Some(trust),
            sas: live.map(|(_, sas)| sas).unwrap_or_default(),
            previous_fingerprint: previous,
        })
    }

    /// TrustPeer, ConfirmSas and AcceptPeerKey: the user's decision on the key of the peer's
    /// live native session. Verifying needs what the user compared (the fingerprint, or the SAS
    /// of this very session); accepting lets the key send without claiming it was compared.
    pub(super) fn decide_key(
        &mut self,
        peer: &PeerRef,
        decision: &KeyDecision,
    ) -> Result<FingerprintInfo, EngineError> {
        let info = self.fingerprint(Some(peer))?;
        if let KeyDecision::VerifyFingerprint(f) = decision {
            if f.trim().is_empty() {
                return Err(EngineError::InvalidArgument(format!(
                    "verifying needs the fingerprint you compared with {peer} (`otrctl fingerprint \
                     {peer}` shows theirs; compare it over another channel), or the SAS you both \
                     read (`otrctl trust {peer} --sas \"ALL FIVE GROUPS\"`); to let the key in \
                     without verifying, `otrctl accept-key {peer}`. Nothing was trusted"
                )));
            }
        }
        let room_id = self.room_id_of(peer);
        let live = room_id
            .as_deref()
            .and_then(|r| self.sessions.get(r))
            .and_then(|s| s.native_peer());
        let Some((fp, sas)) = live else {
            return Err(EngineError::FailedPrecondition(format!(
                "no native session with {peer}: a key is accepted or verified in session (start \
                 one with `otrctl start {peer}`); nothing was trusted"
            )));
        };
        let key = room_id
            .as_deref()
            .and_then(|r| self.peer_key(r))
            .ok_or_else(|| EngineError::Internal("session without a room".into()))?;
        let pinned = match decision {
            KeyDecision::VerifyFingerprint(f) | KeyDecision::Accept(f) if !f.trim().is_empty() => {
                Some(f.as_str())
            }
            _ => None,
        };
        if let Some(wanted) = pinned {
            let given = parse_fingerprint(wanted).ok_or_else(|| {
                EngineError::InvalidArgument(format!("`{wanted}` is not a fingerprint"))
            })?;
            if given != fp {
                return Err(EngineError::FailedPrecondition(format!(
                    "that fingerprint is not {peer}'s current one ({}); nothing was trusted",
                    info.peer_fingerprint
                )));
            }
        }
        if let KeyDecision::ConfirmSas(given) = decision {
            if normalise_sas(given) != normalise_sas(&sas) || sas.is_empty() {
                return Err(EngineError::FailedPrecondition(format!(
                    "that is not this session's SAS with {peer} (compare all five groups of \
                     `otrctl fingerprint {peer}`; a refresh makes a new one); nothing was trusted"
                )));
            }
        }
        let trust = self
            .identity
            .trust
            .as_mut()
            .ok_or_else(|| EngineError::FailedPrecondition(self.identity.why_not.clone()))?;
        let (done, detail) = match decision {
            KeyDecision::Accept(_) => (
                trust.accept(&key.id(), &fp),
                "identity accepted by the user (unverified)",
            ),
            _ => (
                trust.verify(&key.id(), &fp),
                "identity verified by the user",
            ),
        };
        done.map_err(|e| EngineError::FailedPrecondition(e.to_string()))?;
        if let Some(room_id) = room_id {
            self.emit_session_state(&room_id, detail);
        }
        self.fingerprint(Some(peer))
    }
}

/// Accepts a fingerprint with or without group spaces, any case.
fn parse_fingerprint(s: &str) -> Option<Fingerprint> {
    let hex: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    Fingerprint::from_hex(&hex.to_uppercase())
}

/// The SAS's digits only: the user may type the groups with any spacing or dashes.
fn normalise_sas(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}
