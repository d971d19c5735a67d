//! The engine: one task that owns the daemon's state — the Rocket.Chat connection's events, the
//! per-room sessions, the event log — and answers [`Command`]s from front-ends.

mod handle;
pub mod types;

pub use handle::{Command, EngineHandle, SentMessage};
pub use types::*;

mod core;
pub use self::core::{now_ms, spawn, EngineConfig};
