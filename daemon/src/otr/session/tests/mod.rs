//! Tests of the session state machine: a relay harness that wires two [`Session`]s back to back
//! the way a 7.x server does (signalling to the other side, `t:"otr"` messages to both sides
//! including the sender's echo, ack re-broadcasts to both), plus single-session checks.

mod forged;
mod messaging;
mod native_refresh;
mod protections;
mod transitions;

use super::*;
use crate::engine::{EventKind, SchemePreference, SessionState};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::{json, Value};
use std::collections::VecDeque;

pub(super) const ROOM: &str = "Kd9fPq2WxYz7mN3aT";
pub(super) const A_UID: &str = "aLiCe7yNSKqG3mZ2p";
pub(super) const B_UID: &str = "BobX8dR4tWq2nJ5hE";
pub(super) const T0: i64 = 1_735_732_800_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    A,
    B,
}

impl Side {
    fn other(self) -> Self {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
    fn uid(self) -> &'static str {
        match self {
            Side::A => A_UID,
            Side::B => B_UID,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Side::A => "alice",
            Side::B => "bob",
        }
    }
}

pub(super) fn ctx(me: Side) -> RoomContext {
    RoomContext {
        room_id: ROOM.into(),
        my_uid: me.uid().into(),
        peer_uid: me.other().uid().into(),
        peer_username: me.other().name().into(),
    }
}

/// The server as both sessions see it.
pub(super) struct Relay {
    pub a: Session,
    pub b: Session,
    pub now: i64,
    pub rng: StdRng,
    /// Every output each side produced, in order.
    pub log_a: Vec<Output>,
    pub log_b: Vec<Output>,
    /// While false, nothing a side emits reaches the server (a dropped connection).
    pub connected: bool,
    /// While false, ack re-broadcasts are lost.
    pub deliver_acks: bool,
    queue: VecDeque<(Side, Input)>,
}

impl Relay {
    pub fn new(a: SessionPolicy, b: SessionPolicy) -> Self {
        Self {
            a: Session::new(ctx(Side::A), a),
            b: Session::new(ctx(Side::B), b),
            now: T0,
            rng: StdRng::seed_from_u64(42),
            log_a: Vec::new(),
            log_b: Vec::new(),
            connected: true,
            deliver_acks: true,
            queue: VecDeque::new(),
        }
    }

    pub fn default_pair() -> Self {
        Self::new(SessionPolicy::default(), SessionPolicy::default())
    }

    pub fn session(&mut self, side: Side) -> &mut Session {
        match side {
            Side::A => &mut self.a,
            Side::B => &mut self.b,
        }
    }

    pub fn log(&self, side: Side) -> &Vec<Output> {
        match side {
            Side::A => &self.log_a,
            Side::B => &self.log_b,
        }
    }

    /// A user command on `side`, then everything it causes, until the network is quiet.
    pub fn cmd(&mut self, side: Side, input: Input) -> Result<(), SessionError> {
        let now = self.now;
        let out = {
            let (s, rng) = match side {
                Side::A => (&mut self.a, &mut self.rng),
                Side::B => (&mut self.b, &mut self.rng),
            };
            s.handle(input, now, rng)?
        };
        self.route(side, out);
        self.pump();
        Ok(())
    }

    /// One input straight to `side`, outputs returned instead of relayed.
    pub fn direct(&mut self, side: Side, input: Input) -> Result<Vec<Output>, SessionError> {
        let now = self.now;
        let (s, rng) = match side {
            Side::A => (&mut self.a, &mut self.rng),
            Side::B => (&mut self.b, &mut self.rng),
        };
        s.handle(input, now, rng)
    }

    /// A network or timer input on `side`, then everything it causes.
    pub fn feed(&mut self, side: Side, input: Input) {
        self.queue.push_back((side, input));
        self.pump();
    }

    /// Advances the clock and ticks both sides.
    pub fn advance(&mut self, ms: i64) {
        self.now += ms;
        self.feed(Side::A, Input::Tick);
        self.feed(Side::B, Input::Tick);
    }

    fn pump(&mut self) {
        while let Some((side, input)) = self.queue.pop_front() {
            let now = self.now;
            let (s, rng) = match side {
                Side::A => (&mut self.a, &mut self.rng),
                Side::B => (&mut self.b, &mut self.rng),
            };
            let out = s
                .handle(input, now, rng)
                .expect("network inputs never fail");
            self.route(side, out);
        }
    }

    fn route(&mut self, from: Side, out: Vec<Output>) {
        for o in out {
            match &o {
                Output::Signal { kind, payload } if self.connected => {
                    self.queue.push_back((
                        from.other(),
                        Input::Signal {
                            kind: *kind,
                            payload: payload.clone(),
                        },
                    ));
                }
                Output::SendMessage { id, msg } if self.connected => {
                    let message = self.server_message(from, id, msg);
                    self.queue.push_back((
                        from,
                        Input::SendResult {
                            id: id.clone(),
                            ok: true,
                            detail: String::new(),
                        },
                    ));
                    self.queue.push_back((
                        from,
                        Input::RoomMessage {
                            message: message.clone(),
                        },
                    ));
                    self.queue
                        .push_back((from.other(), Input::RoomMessage { message }));
                }
                Output::SendAck { message, ack } if self.connected && self.deliver_acks => {
                    let mut m = message.clone();
                    m["otrAck"] = Value::String(ack.clone());
                    self.queue
                        .push_back((from, Input::RoomMessage { message: m.clone() }));
                    self.queue
                        .push_back((from.other(), Input::RoomMessage { message: m }));
                }
                _ => {}
            }
            match from {
                Side::A => self.log_a.push(o),
                Side::B => self.log_b.push(o),
            }
        }
    }

    /// What the server broadcasts for a `sendMessage` (era D).
    pub fn server_message(&self, from: Side, id: &str, msg: &str) -> Value {
        json!({
            "_id": id, "rid": ROOM, "msg": msg, "t": "otr", "ts": {"$date": self.now},
            "u": {"_id": from.uid(), "username": from.name(), "name": from.name()}
        })
    }

    /// Both sides established through a full handshake started by `initiator`.
    pub fn established(initiator: Side) -> Self {
        let mut r = Self::default_pair();
        r.cmd(
            initiator,
            Input::Start {
                scheme: SchemePreference::Legacy,
            },
        )
        .expect("start");
        r.cmd(initiator.other(), Input::Accept { seq: None })
            .expect("accept");
        assert_eq!(r.a.state(), SessionState::Established);
        assert_eq!(r.b.state(), SessionState::Established);
        r
    }

    /// Sends `text` from `side`; returns the message id.
    pub fn send(&mut self, side: Side, text: &str) -> String {
        let before = self.log(side).len();
        self.cmd(side, Input::Send { text: text.into() })
            .expect("send");
        sent_message(&self.log(side)[before..])
            .expect("an outgoing message")
            .0
    }
}

#[test]
fn sessions_can_move_between_tasks() {
    fn assert_send<T: Send + 'static>() {}
    assert_send::<Session>();
    assert_send::<Output>();
    assert_send::<Input>();
}

pub(super) fn events(log: &[Output]) -> Vec<&EventKind> {
    log.iter()
        .filter_map(|o| match o {
            Output::Event(e) => Some(e),
            _ => None,
        })
        .collect()
}

pub(super) fn error_codes(log: &[Output]) -> Vec<String> {
    events(log)
        .into_iter()
        .filter_map(|e| match e {
            EventKind::Error { code, .. } => Some(code.clone()),
            _ => None,
        })
        .collect()
}

pub(super) fn received_texts(log: &[Output]) -> Vec<String> {
    events(log)
        .into_iter()
        .filter_map(|e| match e {
            EventKind::Message {
                direction: crate::engine::Direction::In,
                text,
                ..
            } => Some(text.expose().to_owned()),
            _ => None,
        })
        .collect()
}

pub(super) fn delivered_ids(log: &[Output]) -> Vec<String> {
    events(log)
        .into_iter()
        .filter_map(|e| match e {
            EventKind::Delivered { id, .. } => Some(id.clone()),
            _ => None,
        })
        .collect()
}

pub(super) fn signals(log: &[Output]) -> Vec<(SignalKind, Value)> {
    log.iter()
        .filter_map(|o| match o {
            Output::Signal { kind, payload } => Some((*kind, payload.clone())),
            _ => None,
        })
        .collect()
}

pub(super) fn system_messages(log: &[Output]) -> Vec<&'static str> {
    log.iter()
        .filter_map(|o| match o {
            Output::SystemMessage { kind } => Some(*kind),
            _ => None,
        })
        .collect()
}

pub(super) fn count_invitations(log: &[Output]) -> usize {
    events(log)
        .into_iter()
        .filter(|e| matches!(e, EventKind::Invitation { .. }))
        .count()
}
