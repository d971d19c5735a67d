//! Helpers shared by the end-to-end tests: real `otrd` processes on temporary sockets
//! ([`daemon`]), the real API server in-process on a temporary socket ([`api`]), the stock web
//! client's behaviour in Node ([`stock_peer`]), waiting on event streams with deadlines
//! ([`events`]), a fake logind on a private bus ([`logind`]), and OTR sessions between real daemons and peers through rcsim ([`otr`]).
//! The attack tests (issue 15) add always-read event logs, delivery with deadlines and lists of
//! findings ([`attack`]).

pub mod api;
pub mod attack;
pub mod daemon;
pub mod events;
pub mod logind;
pub mod otr;
pub mod stock_peer;
