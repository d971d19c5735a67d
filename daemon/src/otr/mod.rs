//! OTR session logic and the two schemes (pure, no I/O).
//!
//! - [`legacy`] — the stock Rocket.Chat client's scheme, byte for byte (PROTOCOL.md §1–2): ECDH
//!   P-256 key pairs exported as browser JWKs, SHA-256-truncated AES-128 keys, AES-GCM envelopes in
//!   EJSON `{"$binary":…}` strings, and the inner plaintext JSON of messages and acks.
//! - [`ids`] — Meteor `Random.id` tokens: message ids and ack tokens.
//! - [`session`] — the per-room state machine ([`session::Session`]): inputs from the user, the
//!   signalling stream and the room stream go in, outputs for the engine to perform come out. It
//!   never touches a socket or a clock; the engine feeds it `now_ms` and a CSPRNG.
//!
//! - [`native`] — the otrd-to-otrd scheme: 3DH with key confirmation over the handshake
//!   transcript, Signal's Double Ratchet, SAS and instance tags.
//!
//! The native otrd-to-otrd scheme plugs into [`session`] at the extension points documented in
//! `session/scheme.rs` (handshake offer/answer members named `"otrd"`, and a cipher variant).

pub mod ids;
pub mod legacy;
pub mod native;
pub mod session;
