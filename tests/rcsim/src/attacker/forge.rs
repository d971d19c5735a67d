//! Building and delivering forged signals. A forgery names a victim and the user it claims to
//! come from (in the room of those two, unless told otherwise) and is delivered only to the
//! victim's connections, as the server would relay it — nothing else about it is real: the
//! payload's `userId`, an envelope's `from`, `run` and `seq` are whatever a genuine sender would
//! put there, so a receiver cannot tell it from the peer's own by its shape.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rand::RngCore;
use serde_json::{json, Map, Value};

use super::stock::AttackerKey;
use super::Route;
use crate::config::Mode;
use crate::ddp;
use crate::sim::Sim;

/// Which stock signal to forge (PROTOCOL.md §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForgedSignal {
    /// `handshake` without `refresh` (a new session).
    Handshake,
    /// `handshake` with `refresh: true` (re-key an established session, no prompt on stock).
    RefreshHandshake,
    /// `acknowledge` (a stock client processes one in any state while it holds a key pair).
    Acknowledge,
    /// `deny`.
    Deny,
    /// `end` without any proof.
    End,
    /// `end` with an `otrd.end` member of random bytes where a native session's MAC would be.
    EndWithBogusProof,
}

impl ForgedSignal {
    /// Every kind, for tests that go through all of them.
    pub const ALL: [ForgedSignal; 6] = [
        ForgedSignal::Handshake,
        ForgedSignal::RefreshHandshake,
        ForgedSignal::Acknowledge,
        ForgedSignal::Deny,
        ForgedSignal::End,
        ForgedSignal::EndWithBogusProof,
    ];

    /// The signal type on the wire.
    pub fn wire_kind(self) -> &'static str {
        match self {
            Self::Handshake | Self::RefreshHandshake => "handshake",
            Self::Acknowledge => "acknowledge",
            Self::Deny => "deny",
            Self::End | Self::EndWithBogusProof => "end",
        }
    }

    /// The envelope item kind on paths A and B.
    fn item_kind(self) -> &'static str {
        match self {
            Self::Handshake | Self::RefreshHandshake => "offer",
            Self::Acknowledge => "answer",
            Self::Deny => "deny",
            Self::End | Self::EndWithBogusProof => "end",
        }
    }

    fn carries_key(self) -> bool {
        matches!(
            self,
            Self::Handshake | Self::RefreshHandshake | Self::Acknowledge
        )
    }
}

/// One forged signal to deliver.
#[derive(Debug, Clone)]
pub struct Forgery {
    /// What to forge.
    pub signal: ForgedSignal,
    /// Username of the user whose connections receive it.
    pub victim: String,
    /// Username it claims to come from (`userId`, and an envelope's `from`).
    pub claimed_sender: String,
    /// The room it names; `None` = the DM of victim and claimed sender.
    pub room: Option<String>,
    /// Where it travels.
    pub route: Route,
}

impl Forgery {
    /// `signal` to `victim` claiming to come from `claimed_sender`, in their DM, on the route a
    /// genuine signal would take.
    pub fn new(signal: ForgedSignal, victim: &str, claimed_sender: &str) -> Self {
        Self {
            signal,
            victim: victim.to_owned(),
            claimed_sender: claimed_sender.to_owned(),
            room: None,
            route: Route::Auto,
        }
    }
}

/// What was delivered.
#[derive(Debug, Clone)]
pub struct Forged {
    /// The route used (never `Auto`).
    pub route: Route,
    /// The room named.
    pub room: String,
    /// The attacker's public key in the payload, for key-bearing signals.
    pub public_key: Option<String>,
    /// How many of the victim's connections were subscribed and got it (0 = nobody listened).
    pub delivered: usize,
    /// The whole payload.
    pub payload: Value,
}

/// Why a forgery could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ForgeError {
    /// No such username.
    #[error("unknown user {0:?}")]
    UnknownUser(String),
    /// The two users share no DM (and no room was given).
    #[error("{0} and {1} have no DM")]
    NoRoom(String, String),
    /// AWS-LC refused to make a key pair.
    #[error("cannot generate a P-256 key pair")]
    Key,
}

/// Builds `f` and delivers it to the victim's connections.
pub(crate) fn forge(sim: &Sim, f: &Forgery) -> Result<Forged, ForgeError> {
    let (victim_uid, sender_uid, sender_label, room) = {
        let st = sim.lock();
        let victim = st
            .user_by_name(&f.victim)
            .ok_or_else(|| ForgeError::UnknownUser(f.victim.clone()))?;
        let sender = st
            .user_by_name(&f.claimed_sender)
            .ok_or_else(|| ForgeError::UnknownUser(f.claimed_sender.clone()))?;
        let room = match &f.room {
            Some(r) => r.clone(),
            None => st
                .dm_between(&victim.id, &sender.id)
                .map(|r| r.id.clone())
                .ok_or_else(|| ForgeError::NoRoom(f.victim.clone(), f.claimed_sender.clone()))?,
        };
        // Path A's args[0] is what the server checks: the display name under UI_Use_Real_Name.
        let label = if sim.cfg.ui_use_real_name {
            sender.name.clone()
        } else {
            sender.username.clone()
        };
        (victim.id.clone(), sender.id.clone(), label, room)
    };
    let route = match f.route {
        Route::Auto if sim.cfg.mode == Mode::V7 && sim.cfg.otr_enable => Route::OtrStream,
        Route::Auto => sim
            .attacker
            .path_of(&room, &sender_uid)
            .unwrap_or(Route::PathA),
        r => r,
    };

    let mut payload = Map::new();
    payload.insert("roomId".into(), json!(room));
    payload.insert("userId".into(), json!(sender_uid));
    let mut public_key = None;
    if f.signal.carries_key() {
        let key = AttackerKey::generate().ok_or(ForgeError::Key)?;
        public_key = Some(key.public_jwk().to_owned());
        payload.insert("publicKey".into(), json!(key.public_jwk()));
        sim.attacker.add_own_key(key);
    }
    if f.signal == ForgedSignal::RefreshHandshake {
        payload.insert("refresh".into(), json!(true));
    }
    if f.signal == ForgedSignal::EndWithBogusProof {
        payload.insert(
            "otrd".into(),
            json!({ "end": STANDARD.encode(random::<32>()) }),
        );
    }
    let payload = Value::Object(payload);

    let (collection, event, args) = match route {
        // `Auto` was resolved above.
        Route::OtrStream | Route::Auto => (
            "stream-notify-user",
            format!("{victim_uid}/otr"),
            json!([f.signal.wire_kind(), payload]),
        ),
        Route::PathA => (
            "stream-notify-room",
            format!("{room}/user-activity"),
            json!([sender_label, [], { "otrd": envelope(f.signal, &sender_uid, &room, &payload) }]),
        ),
        Route::PathB => (
            "stream-notify-user",
            format!("{victim_uid}/video-conference"),
            json!([{ "action": "otrd", "params": {},
                     "otrd": envelope(f.signal, &sender_uid, &room, &payload) }]),
        ),
    };
    let targets: Vec<_> = {
        let st = sim.lock();
        st.conns
            .values()
            .filter(|c| {
                c.user.as_deref() == Some(victim_uid.as_str())
                    && c.subs
                        .iter()
                        .any(|s| s.name == collection && s.event == event)
            })
            .map(|c| c.tx.clone())
            .collect()
    };
    let delivered = targets.len();
    tracing::info!(victim = %f.victim, claimed = %f.claimed_sender, kind = f.signal.wire_kind(), ?route, delivered, "attacker forged a signal");
    sim.attacker.count_forgery();
    sim.deliver(targets, ddp::stream_event(collection, &event, &args));
    Ok(Forged {
        route,
        room,
        public_key,
        delivered,
        payload,
    })
}

/// An otrd envelope as the claimed sender's daemon would write it: a fresh run (16 hex digits,
/// like the daemon's own), sequence 1, one item.
fn envelope(signal: ForgedSignal, from: &str, room: &str, payload: &Value) -> Value {
    let run: String = random::<8>().iter().map(|b| format!("{b:02x}")).collect();
    json!({
        "v": 1, "from": from, "room": room, "run": run, "seq": 1,
        "items": [{ "k": signal.item_kind(), "p": payload }],
    })
}

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    rand::thread_rng().fill_bytes(&mut b);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_wire_and_items() {
        let kinds: Vec<_> = ForgedSignal::ALL.iter().map(|s| s.wire_kind()).collect();
        assert_eq!(
            kinds,
            [
                "handshake",
                "handshake",
                "acknowledge",
                "deny",
                "end",
                "end"
            ]
        );
        let env = envelope(ForgedSignal::Acknowledge, "B", "R", &json!({"roomId": "R"}));
        assert_eq!(env["items"][0]["k"], "answer");
        assert_eq!(env["run"].as_str().map(str::len), Some(16));
    }
}
