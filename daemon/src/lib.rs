//! otrd: off-the-record direct messages on Rocket.Chat, as a per-user daemon.
//!
//! How the crate is laid out — each module owns its data and talks to the others over channels:
//!
//! - [`config`] — the TOML config file, XDG paths, and the commands that yield secrets.
//! - [`secure`] — zeroizing secret types, locked (mlock'd, non-dumpable) memory for keys and
//!   scrollback, process hardening.
//! - [`rocketchat`] — the DDP/REST client: frames, EJSON, login, subscriptions, reconnect, rooms,
//!   presence and server capabilities. One task owns the connection.
//! - [`transport`] — how session frames travel through the server (the 7.x OTR relay, or the
//!   realtime relays Rocket.Chat 8.x still has).
//! - [`otr`] — pure logic: the legacy (stock client) and native schemes and the per-room session
//!   state machine. No I/O, testable without sockets.
//! - [`identity`] — the long-term identity key and the trust store (files, mode 0600).
//! - [`lockscreen`] — watches logind (D-Bus) and ends every session on lock or sleep.
//! - [`engine`] — the task that owns every session and the event log and answers front-ends.
//! - `demo` — `otrd --demo`: an embedded rcsim and a contact that answers.
//! - [`api`] — the gRPC service on the Unix socket: peer credentials, event fan-out.
//! - [`daemon`] — the `otrd` program: startup, signals, systemd readiness, graceful shutdown.
#![warn(missing_docs)]

pub mod api;
pub mod config;
pub mod daemon;
#[cfg(feature = "demo")]
pub mod demo;
pub mod engine;
pub mod identity;
pub mod lockscreen;
pub mod otr;
pub mod rocketchat;
pub mod secure;
pub mod transport;
