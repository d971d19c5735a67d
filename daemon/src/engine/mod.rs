//! The engine: one task that owns the daemon's state — the Rocket.Chat connection's events, the
//! per-room sessions, the event log — and answers [`Command`]s from front-ends.
//!
//! - `core` — the state and the loop; [`spawn`] starts it.
//! - `handle` — [`EngineHandle`], the front-ends' (and the API's) way in: each call is a
//!   [`Command`] with its own reply channel.
//! - `types` — the domain types the API converts: snapshots, events, errors.
//! - `commands` — front-end commands.
//! - `inbound` — the connection's events, I/O outcomes, timers; performing session outputs.
//! - `events` — numbering, fan-out and scrollback.
//! - `rooms` — our 1:1 DMs.
//! - `realtime` — on a server without the 7.x relay (8.x, or `OTR_Enable` off): probes, path
//!   choice and the outboxes of the realtime relays (`transport::realtime`).
//! - `held` — messages to `require_otr` contacts waiting for their session.
//! - `parked` — signals for a DM not loaded yet, waiting for the DM list.
//! - `identity` — our native identity, the trust store, fingerprint alarms.
//! - `status` — the GetStatus snapshot the engine publishes for handles to read.
//! - `capabilities` — what goes when a reconnect finds the server's capabilities changed, and
//!   the subscriptions that depend on them.

mod capabilities;
mod commands;
mod core;
mod events;
mod handle;
mod held;
mod identity;
mod inbound;
mod parked;
mod realtime;
mod rooms;
mod status;
pub mod types;

pub use self::core::{now_ms, spawn, EngineConfig};
pub use handle::{Command, EngineHandle, SentMessage};
pub use types::*;
