//! The scheme seam: key material and negotiation behind small types, so the state machine does not
//! care which scheme a session runs.
//!
//! Extension points for the native otrd-to-otrd scheme (`crate::otr::native`):
//! - [`Cipher`] gets a `Native(..)` variant; [`Cipher::seal`] / [`Cipher::open`] dispatch to it.
//! - [`offer`] builds our handshake: today the legacy key pair only; native adds the `"otrd"`
//!   member ([`OwnOffer::ext`]) and keeps its own state in [`OwnOffer`].
//! - [`answer`] answers a peer's offer ([`PeerOffer::ext`] is its `"otrd"` member, if any) and
//!   returns the acknowledge's `"otrd"` answer; [`complete`] finishes ours from the acknowledge.
//! - [`offered_mode`] says what an invitation offers (shown to the user).
//!
//! Stock clients ignore unknown members, so a legacy peer keeps working whatever is added here.

use super::SessionError;
use crate::engine::{Mode, SchemePreference};
use crate::otr::legacy::{self, EphemeralKeyPair, LegacyError, PeerPublicKey, SharedKey};
use crate::secure::SecretBytes;
use rand::{CryptoRng, RngCore};
use serde_json::Value;
use std::fmt;

/// A live session's key material.
pub(super) enum Cipher {
    /// The stock scheme: one AES-128 key, both ways.
    Legacy(SharedKey),
}

impl fmt::Debug for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Legacy(_) => f.write_str("Cipher::Legacy([REDACTED])"),
        }
    }
}

impl Cipher {
    /// The scheme.
    pub(super) fn mode(&self) -> Mode {
        match self {
            Self::Legacy(_) => Mode::Legacy,
        }
    }

    /// Encrypts a plaintext into the string that goes into `msg` or `ack`.
    pub(super) fn seal(
        &mut self,
        plaintext: &SecretBytes,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<String, LegacyError> {
        match self {
            Self::Legacy(key) => legacy::encrypt(key, plaintext.expose(), rng),
        }
    }

    /// Decrypts a `msg` or `ack` string.
    pub(super) fn open(&mut self, envelope: &str) -> Result<SecretBytes, LegacyError> {
        match self {
            Self::Legacy(key) => legacy::decrypt(key, envelope),
        }
    }
}

/// Our half of a handshake, kept until the acknowledge arrives.
pub(super) struct OwnOffer {
    /// The legacy ephemeral key pair (always offered: stock peers need it).
    pub(super) legacy: EphemeralKeyPair,
    /// Our `"otrd"` member, when we offer more than legacy.
    pub(super) ext: Option<Value>,
}

impl fmt::Debug for OwnOffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnOffer").field("legacy", &self.legacy).finish_non_exhaustive()
    }
}

/// A peer's handshake, validated.
#[derive(Debug, Clone)]
pub(super) struct PeerOffer {
    /// Their legacy public key.
    pub(super) key: PeerPublicKey,
    /// `refresh: true` in the handshake.
    pub(super) refresh: bool,
    /// Their `"otrd"` member, if any.
    pub(super) ext: Option<Value>,
}

/// Builds our offer for `pref`. Native is refused until the native scheme is plugged in.
pub(super) fn offer(
    pref: SchemePreference,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<OwnOffer, SessionError> {
    match pref {
        SchemePreference::Native => Err(SessionError::NativeUnavailable),
        // Auto behaves as legacy while no native scheme is built in.
        SchemePreference::Auto | SchemePreference::Legacy => Ok(OwnOffer {
            legacy: EphemeralKeyPair::generate(rng),
            ext: None,
        }),
    }
}

/// What an invitation offers, for the invitation event.
pub(super) fn offered_mode(_offer: &PeerOffer) -> Mode {
    Mode::Legacy
}

/// Our answer to a peer's offer: the live cipher, our public key, and our `"otrd"` answer.
pub(super) fn answer(
    offer: &PeerOffer,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<(Cipher, String, Option<Value>), SessionError> {
    if offer.ext.is_some() {
        tracing::debug!("peer offered the native scheme, which this build lacks; answering legacy");
    }
    let pair = EphemeralKeyPair::generate(rng);
    let key = pair
        .agree(&offer.key)
        .map_err(|e| SessionError::Crypto(e.to_string()))?;
    Ok((Cipher::Legacy(key), pair.public_jwk().to_owned(), None))
}

/// Completes our offer with the peer's acknowledge (`ext` is its `"otrd"` answer).
pub(super) fn complete(
    own: &OwnOffer,
    peer_key: &PeerPublicKey,
    _ext: Option<&Value>,
) -> Result<Cipher, LegacyError> {
    own.legacy.agree(peer_key).map(Cipher::Legacy)
}
