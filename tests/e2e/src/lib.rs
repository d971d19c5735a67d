//! Helpers shared by the end-to-end tests: real `otrd` processes on temporary sockets
//! ([`daemon`]), the real API server in-process on a temporary socket ([`api`]), the stock web
//! client's behaviour in Node ([`stock_peer`]), and waiting on event streams with deadlines
//! ([`events`]).

pub mod api;
pub mod daemon;
pub mod events;
pub mod stock_peer;
