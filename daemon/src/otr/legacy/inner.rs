//! The plaintext JSON inside legacy envelopes (PROTOCOL.md §2).
//!
//! Chat message: `{"_id","text","userId","ack","ts":{"$date":ms}}` in exactly that order (EJSON
//! output of the stock client). Ack payload: `{"text":<token acknowledged>,"ack":<new token>}`.
//! Unknown members are ignored on input, as stock clients do, leaving room for otrd extensions.

use super::LegacyError;
use crate::secure::{SecretBytes, SecretString};
use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;
use zeroize::Zeroizing;

/// A decrypted (or to-be-encrypted) chat message.
#[derive(Clone, PartialEq)]
pub struct InnerMessage {
    /// Same as the outer message `_id`.
    pub id: String,
    /// The user's text.
    pub text: SecretString,
    /// The sender's user id.
    pub user_id: String,
    /// The token the receiver echoes back in its ack.
    pub ack: String,
    /// Sender's clock, ms since the epoch.
    pub ts_ms: i64,
}

impl fmt::Debug for InnerMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InnerMessage")
            .field("id", &self.id)
            .field("text", &self.text)
            .field("user_id", &self.user_id)
            .field("ts_ms", &self.ts_ms)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct WireOut<'a> {
    #[serde(rename = "_id")]
    id: &'a str,
    text: &'a str,
    #[serde(rename = "userId")]
    user_id: &'a str,
    ack: &'a str,
    ts: DateOut,
}

#[derive(Serialize)]
struct DateOut {
    #[serde(rename = "$date")]
    date: i64,
}

#[derive(Deserialize)]
struct WireIn {
    #[serde(rename = "_id")]
    id: String,
    text: SecretText,
    #[serde(rename = "userId")]
    user_id: String,
    ack: String,
    ts: DateIn,
}

#[derive(Deserialize)]
struct DateIn {
    #[serde(rename = "$date")]
    date: serde_json::Number,
}

/// Deserializes straight into a zeroizing string, so a half-parsed message is still wiped.
struct SecretText(SecretString);

impl<'de> Deserialize<'de> for SecretText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self(SecretString::new(String::deserialize(d)?)))
    }
}

/// Serializes into a buffer sized for the worst-case escaping, so it is never reallocated.
fn to_secret_json(value: &impl Serialize, text_len: usize) -> Result<SecretBytes, LegacyError> {
    let mut buf = Zeroizing::new(Vec::with_capacity(text_len * 6 + 256));
    serde_json::to_writer(&mut *buf, value)
        .map_err(|_| LegacyError::Plaintext("cannot serialize"))?;
    Ok(SecretBytes::new(std::mem::take(&mut *buf)))
}

impl InnerMessage {
    /// The exact plaintext bytes a stock client would produce for this message.
    pub fn to_plaintext(&self) -> Result<SecretBytes, LegacyError> {
        let wire = WireOut {
            id: &self.id,
            text: self.text.expose(),
            user_id: &self.user_id,
            ack: &self.ack,
            ts: DateOut { date: self.ts_ms },
        };
        to_secret_json(
            &wire,
            self.text.len() + self.id.len() + self.user_id.len() + self.ack.len(),
        )
    }

    /// Parses a decrypted plaintext.
    pub fn parse(plaintext: &SecretBytes) -> Result<Self, LegacyError> {
        let wire: WireIn = serde_json::from_slice(plaintext.expose())
            .map_err(|_| LegacyError::Plaintext("not a chat message object"))?;
        let ts_ms = wire
            .ts
            .date
            .as_i64()
            .or_else(|| {
                wire.ts
                    .date
                    .as_f64()
                    .filter(|f| f.is_finite())
                    .map(|f| f as i64)
            })
            .ok_or(LegacyError::Plaintext("ts is not a date"))?;
        Ok(Self {
            id: wire.id,
            text: wire.text.0,
            user_id: wire.user_id,
            ack: wire.ack,
            ts_ms,
        })
    }
}

/// An ack's plaintext: the token being acknowledged and a fresh (unused) one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckPayload {
    /// The `ack` token of the message acknowledged.
    pub text: String,
    /// A new random token (stock clients never use it).
    pub ack: String,
}

impl AckPayload {
    /// The exact plaintext bytes a stock client would produce.
    pub fn to_plaintext(&self) -> Result<SecretBytes, LegacyError> {
        to_secret_json(self, self.text.len() + self.ack.len())
    }

    /// Parses a decrypted ack plaintext.
    pub fn parse(plaintext: &SecretBytes) -> Result<Self, LegacyError> {
        serde_json::from_slice(plaintext.expose())
            .map_err(|_| LegacyError::Plaintext("not an ack object"))
    }
}
