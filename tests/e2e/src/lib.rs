//! Helpers shared by the end-to-end tests.
//!
//! - [`stock_peer`]: drives the Node.js test peer that behaves like the stock Rocket.Chat web
//!   client's OTR, to prove interop with what real clients speak.

pub mod stock_peer;
