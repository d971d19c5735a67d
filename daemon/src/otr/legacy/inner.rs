//! The plaintext JSON inside legacy envelopes (PROTOCOL.md §2).
//!
//! Chat message: `{"_id","text","userId","ack","ts":{"$date":ms}}` in exactly that order (EJSON
//! output of the stock client). Ack payload: `{"text":<token acknowledged>,"ack":<new token>}`.
//! Unknown members are ignored on input, as stock clients do, leaving room for otrd extensions.
//!
//! Output is written by `super::json` straight into one exactly sized zeroizing buffer (the same
//! bytes `serde_json` and `JSON.stringify` produce); input is parsed with `serde_json`, which takes
//! any member order, whitespace and escapes a peer may send.

use super::json;
use super::LegacyError;
use crate::secure::{SecretBytes, SecretString};
use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;

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

impl InnerMessage {
    /// The exact plaintext bytes a stock client would produce for this message:
    /// `{"_id":…,"text":…,"userId":…,"ack":…,"ts":{"$date":…}}`.
    pub fn to_plaintext(&self) -> Result<SecretBytes, LegacyError> {
        let text = self.text.expose();
        Ok(json::write_sized(
            &[&self.id, text, &self.user_id, &self.ack],
            r#"{"_id":,"text":,"userId":,"ack":,"ts":{"$date":}}"#.len() + json::I64_MAX_LEN,
            |w| {
                w.raw(r#"{"_id":"#);
                w.string(&self.id);
                w.raw(r#","text":"#);
                w.string(text);
                w.raw(r#","userId":"#);
                w.string(&self.user_id);
                w.raw(r#","ack":"#);
                w.string(&self.ack);
                w.raw(r#","ts":{"$date":"#);
                w.int(self.ts_ms);
                w.raw("}}");
            },
        ))
    }

    /// Parses a decrypted plaintext: the stock client's exact form directly, anything else (other
    /// member order, whitespace, escapes, extra members) with `serde_json`.
    pub fn parse(plaintext: &SecretBytes) -> Result<Self, LegacyError> {
        match Self::parse_canonical(plaintext.expose()) {
            Some(message) => Ok(message),
            None => Self::parse_general(plaintext.expose()),
        }
    }

    /// Any JSON object with the five members, through `serde_json`.
    pub(super) fn parse_general(plaintext: &[u8]) -> Result<Self, LegacyError> {
        let wire: WireIn = serde_json::from_slice(plaintext)
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

impl InnerMessage {
    /// The canonical form `to_plaintext` writes (and stock clients send) without escapes.
    pub(super) fn parse_canonical(bytes: &[u8]) -> Option<Self> {
        let mut r = json::CanonicalReader::new(bytes);
        r.lit(r#"{"_id":"#)?;
        let id = r.string()?;
        r.lit(r#","text":"#)?;
        let text = r.string()?;
        r.lit(r#","userId":"#)?;
        let user_id = r.string()?;
        r.lit(r#","ack":"#)?;
        let ack = r.string()?;
        r.lit(r#","ts":{"$date":"#)?;
        let ts_ms = r.int()?;
        r.lit("}}")?;
        r.end()?;
        Some(Self {
            id: id.to_owned(),
            text: SecretString::new(text.to_owned()),
            user_id: user_id.to_owned(),
            ack: ack.to_owned(),
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
    /// The exact plaintext bytes a stock client would produce: `{"text":…,"ack":…}`.
    pub fn to_plaintext(&self) -> Result<SecretBytes, LegacyError> {
        Ok(json::write_sized(
            &[&self.text, &self.ack],
            r#"{"text":,"ack":}"#.len(),
            |w| {
                w.raw(r#"{"text":"#);
                w.string(&self.text);
                w.raw(r#","ack":"#);
                w.string(&self.ack);
                w.raw("}");
            },
        ))
    }

    /// Parses a decrypted ack plaintext.
    pub fn parse(plaintext: &SecretBytes) -> Result<Self, LegacyError> {
        serde_json::from_slice(plaintext.expose())
            .map_err(|_| LegacyError::Plaintext("not an ack object"))
    }
}
