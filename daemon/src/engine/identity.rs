//! The engine's side of identity and trust: which native identity sessions use, remembering peers'
//! fingerprints on first use, raising the alarm when one changes (and holding that session
//! unverified: nothing is sent until the user decides), GetFingerprint and TrustPeer.

use super::core::Engine;
use super::types::*;
use crate::identity::{IdentityStore, TrustDecision, TrustStore};
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

    /// The trust level to show for a room's native session, from the trust store.
    pub(super) fn trust_for(&self, room_id: &str) -> Option<Trust> {
        let session = self.sessions.get(room_id)?;
        let (fp, _) = session.native_peer()?;
        let trust = self.identity.trust.as_ref()?;
        Some(trust.trust_of(&session.context().peer_username, &fp))
    }

    /// A native session just got established: remember the peer on first use, or raise the alarm.
    pub(super) fn observe_identity(&mut self, room_id: &str) {
        let Some(session) = self.sessions.get(room_id) else {
            return;
        };
        let Some((fp, _)) = session.native_peer() else {
            return;
        };
        let peer = session.context().peer_username.clone();
        let Some(trust) = self.identity.trust.as_mut() else {
            return;
        };
        match trust.observe(&peer, &fp) {
            Ok(TrustDecision::Changed { previous }) => {
                tracing::warn!(peer = %peer, "peer identity changed");
                self.emit(EventKind::Alarm {
                    peer: peer.clone(),
                    room_id: room_id.to_owned(),
                    code: "fingerprint_changed".into(),
                    message: format!(
                        "{peer}'s identity changed (was {previous}, now {fp}). This can mean a new \
                         installation — or a server substituting keys. Nothing will be sent in this \
                         session until you compare fingerprints and run `otrctl trust {peer}`, or end it."
                    ),
                });
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "cannot record the peer's identity"),
        }
    }

    /// Refuses to send in a session whose peer identity changed and was not yet accepted.
    pub(super) fn check_not_held(&self, room_id: &str, peer: &PeerRef) -> Result<(), EngineError> {
        if self.trust_for(room_id) == Some(Trust::Changed) {
            return Err(EngineError::FailedPrecondition(format!(
                "{peer}'s identity changed; compare fingerprints (`otrctl fingerprint {peer}`) and \
                 run `otrctl trust {peer}` before sending — nothing was sent"
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
        let record = self.identity.trust.as_ref().and_then(|t| t.get(&username));
        let (peer_fp, trust, previous) = match (&live, record) {
            (Some((fp, _)), _) => {
                let trust = self
                    .identity
                    .trust
                    .as_ref()
                    .map_or(Trust::Unknown, |t| t.trust_of(&username, fp));
                let previous = match (trust, record) {
                    (Trust::Changed, Some(r)) => Fingerprint::from_hex(&r.fingerprint)
                        .map(|f| f.to_string())
                        .unwrap_or_default(),
                    _ => String::new(),
                };
                (fp.to_string(), trust, previous)
            }
            (None, Some(r)) => {
                let fp = Fingerprint::from_hex(&r.fingerprint)
                    .map(|f| f.to_string())
                    .unwrap_or_default();
                (
                    fp,
                    if r.verified {
                        Trust::Verified
                    } else {
                        Trust::Unverified
                    },
                    String::new(),
                )
            }
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

    pub(super) fn trust_peer(
        &mut self,
        peer: &PeerRef,
        fingerprint: &str,
    ) -> Result<FingerprintInfo, EngineError> {
        let info = self.fingerprint(Some(peer))?;
        if info.peer_fingerprint.is_empty() {
            return Err(EngineError::FailedPrecondition(format!(
                "no identity seen for {peer} yet; start a native session first"
            )));
        }
        let wanted = if fingerprint.trim().is_empty() {
            info.peer_fingerprint.as_str()
        } else {
            fingerprint
        };
        let fp = parse_fingerprint(wanted).ok_or_else(|| {
            EngineError::InvalidArgument(format!("`{wanted}` is not a fingerprint"))
        })?;
        if fp.to_string() != info.peer_fingerprint {
            return Err(EngineError::FailedPrecondition(format!(
                "that fingerprint is not {peer}'s current one ({}); nothing was trusted",
                info.peer_fingerprint
            )));
        }
        let trust = self
            .identity
            .trust
            .as_mut()
            .ok_or_else(|| EngineError::FailedPrecondition(self.identity.why_not.clone()))?;
        trust
            .verify(&info.peer, &fp)
            .map_err(|e| EngineError::FailedPrecondition(e.to_string()))?;
        if let Some(room_id) = self.room_id_of(peer) {
            self.emit_session_state(&room_id, "identity verified by the user");
        }
        self.fingerprint(Some(peer))
    }
}

/// Accepts a fingerprint with or without group spaces, any case.
fn parse_fingerprint(s: &str) -> Option<Fingerprint> {
    let hex: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    Fingerprint::from_hex(&hex.to_uppercase())
}
