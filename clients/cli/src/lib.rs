//! otrctl: the command-line front-end of the otrd daemon.
//!
//! - [`cli`] — the command line (clap), also the source of completions and the man page;
//! - [`connect`] — the gRPC channel over the daemon's Unix socket;
//! - [`run`] — carries out one command;
//! - [`render`] — human and `--json` output of answers;
//! - [`events`] — `watch` events as the contract's JSON objects and as human lines;
//! - [`names`] — the contract's lowercase names of the API's enums;
//! - [`error`] — what went wrong, and the exit status it means.
#![warn(missing_docs)]

pub mod cli;
pub mod connect;
pub mod error;
pub mod events;
pub mod names;
pub mod render;
pub mod run;
