//! otrd-gui: a desktop window onto the otrd daemon.
//!
//! Three parts, each with one job, joined by channels:
//!
//! - [`model`] — the view model: pure state. It applies the daemon's events and RPC results and
//!   answers what to show (peers, chat lines, the privacy of a conversation, dialogs). No I/O.
//! - [`worker`] — the gRPC task on a tokio runtime: connects to the daemon's socket (and
//!   reconnects), runs the RPCs the window asks for, and streams `WatchEvents`; everything it
//!   learns goes to the view model as an [`model::Update`].
//! - [`ui`] — egui rendering: draws the view model and turns clicks into [`worker::Request`]s.
//!   It never waits on the daemon.
//!
//! [`socket`] finds and dials the daemon's Unix socket; [`capture`] saves a PNG of the window
//! for the smoke test and the README screenshots.
#![warn(missing_docs)]

pub mod capture;
pub mod model;
pub mod socket;
pub mod ui;
pub mod worker;
