//! rcsim — a Rocket.Chat server simulator for testing otrd against real websockets and HTTP.
//!
//! It speaks what a Rocket.Chat 7.x (era D, OTR relayed) or 8.x (OTR removed) server speaks, as
//! described in `PROTOCOL.md`: DDP on `/websocket` and REST under `/api`, on one port.
//!
//! Module map:
//! * `config` — `SimConfig` (TOML or Rust): mode, settings, users, DMs, rate limits.
//! * `ddp` — server frames, `Meteor.Error` shape, EJSON dates, Meteor ids.
//! * `state` — users, tokens, rooms, stored messages, live connections and their subscriptions.
//! * `sim` — one server: shared data plus event emission, storage and presence.
//! * `conn` — one websocket: Meteor's livedata protocol handling.
//! * `methods` — DDP methods (login, sendMessage, updateOTRAck, rooms …).
//! * `streams` / `rules` — streamer publications and their read/write rules (7.x and 8.x).
//! * `rest` — the REST endpoints; `admin` — `/_sim/*` test-control endpoints.
//! * `ratelimit`, `audit`, `faults` — Meteor's DDP limiter, the audit log, fault switches.
//! * `mitm` — the key-swapping man in the middle (rewrites OTR signalling in flight, on the 7.x
//!   relay and inside 8.x envelopes).
//! * `attacker` — the server forging stock signals with key pairs of its own, recording what
//!   clients answer and trying to decrypt every OTR ciphertext that passes (issue 15).
//! * `user_client` — a minimal DDP client logged in as a user, for load and attack generators.
//! * `flood` — a third user flooding another user's path B with forged envelopes.
//! * `server` — `start()` and [`SimHandle`].
//! * `stock8` — a model of the stock 8.x web client's typing indicator and video-conference
//!   manager, to show that otrd frames on paths A/B change nothing a stock user sees.
#![warn(missing_docs)]

pub mod attacker;
pub mod audit;
pub mod config;
pub mod ddp;
pub mod faults;
pub mod flood;
pub mod mitm;
pub mod ratelimit;
pub mod rules;
pub mod state;
pub mod stock8;
pub mod user_client;

mod admin;
mod conn;
mod methods;
mod rest;
mod server;
mod sim;
mod streams;

pub use attacker::{AttackReport, ForgedSignal, Forgery, Route};
pub use audit::{Audit, ClientRecord, StoredRecord, Transport};
pub use config::{
    AckShape, Credential, DmConfig, Limit, Mode, RateLimitConfig, SimConfig, Status, UserConfig,
};
pub use mitm::MitmMode;
pub use server::{start, SimHandle};
