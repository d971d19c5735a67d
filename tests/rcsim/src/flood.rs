//! A third user flooding another user's path B (PROTOCOL.md §12.3): anyone who shares any room
//! with the victim may write `stream-notify-room-users` `<rid>/video-conference`, and the server
//! relays it to the victim's own user stream with no sender attached. The flood writes forged
//! otrd envelopes of every bad kind through a real logged-in [`UserClient`] at a fixed rate —
//! oversized, too many items, malformed runs and claims, bogus fragments, probes (forged and in
//! the flooder's own name), garbage ciphertexts and stock signals claiming to be the victim's
//! peer, replays, and things that are not envelopes at all.
//!
//! One flood "item" is one forged frame (one method call); [`FloodStats`] also counts the
//! envelope items inside them. The simulator's rate limiter would hold one user to about two
//! calls a second: switch it off (`SimHandle::set_rate_limits(false)`) to stand for many
//! accounts, or a server whose admin raised the limits.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use serde_json::{json, Value};
use tokio::task::JoinHandle;

use crate::user_client::UserClient;

/// Who floods whom, and whose session the forged frames pretend to belong to.
#[derive(Debug, Clone)]
pub struct FloodTarget {
    /// A room the flooder shares with the victim: the writes go to `<room>/video-conference`.
    pub shared_room: String,
    /// The flooder's own uid (its probes in the shared room are in its own name).
    pub flooder_uid: String,
    /// The victim's real session room, which forged frames name.
    pub session_room: String,
    /// The victim's peer in that room, whom forged frames claim to come from.
    pub peer_uid: String,
}

/// The kinds of forged frame, sent in turn ([`SCHEDULE`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloodKind {
    /// One message item of 20 KiB (over any sane frame bound).
    Oversized,
    /// 100 ack items in one envelope (the bound is 64).
    TooManyItems,
    /// A `run` of 300 characters.
    BadRun,
    /// `from` and `room` of over 200 bytes.
    LongClaims,
    /// The first of 64 pieces of a fragment group that never completes.
    BogusFragment,
    /// A probe claiming to come from the peer in the session room.
    ForgedProbe,
    /// A probe in the flooder's own name in the shared room (a probe the victim may answer).
    OwnProbe,
    /// Eight message items claiming the peer, random bytes as ciphertext.
    GarbageCiphertext,
    /// Stock `handshake` (refresh), `end` and `deny` items claiming the peer.
    ForgedSignals,
    /// An `otrd` member that is not an envelope (wrong version, or a string).
    NotAnEnvelope,
    /// The previous frame again, byte for byte (same run and sequence number).
    Replay,
}

/// One round of the flood: mostly small frames, the large kinds rarer, so 1,000 frames a second
/// stay a couple of MB a second.
pub const SCHEDULE: [FloodKind; 20] = {
    use FloodKind::*;
    [
        GarbageCiphertext,
        ForgedProbe,
        OwnProbe,
        ForgedSignals,
        BadRun,
        Oversized,
        GarbageCiphertext,
        LongClaims,
        NotAnEnvelope,
        Replay,
        BogusFragment,
        ForgedProbe,
        GarbageCiphertext,
        TooManyItems,
        ForgedSignals,
        OwnProbe,
        NotAnEnvelope,
        BogusFragment,
        GarbageCiphertext,
        Replay,
    ]
};

/// What a flood sent.
#[derive(Debug, Clone, Default)]
pub struct FloodStats {
    /// Frames (method calls) written.
    pub frames: u64,
    /// Envelope items inside them.
    pub items: u64,
    /// Bytes of the method frames.
    pub bytes: u64,
    /// How long it ran.
    pub elapsed: Duration,
}

impl FloodStats {
    /// Frames per second achieved.
    pub fn rate(&self) -> f64 {
        self.frames as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// A running flood; [`Flood::stop`] ends it.
pub struct Flood {
    stop: Arc<AtomicBool>,
    frames: Arc<AtomicU64>,
    task: JoinHandle<FloodStats>,
}

impl Flood {
    /// Starts writing `per_second` forged frames a second through `client` (a user in
    /// `target.shared_room`).
    pub fn start(client: Arc<UserClient>, target: FloodTarget, per_second: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let frames = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(run(
            client,
            target,
            per_second,
            stop.clone(),
            frames.clone(),
        ));
        Self { stop, frames, task }
    }

    /// Frames written so far.
    pub fn frames_sent(&self) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }

    /// Stops the flood; returns what it sent.
    pub async fn stop(self) -> FloodStats {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap_or_default()
    }
}

async fn run(
    client: Arc<UserClient>,
    target: FloodTarget,
    per_second: u32,
    stop: Arc<AtomicBool>,
    frames: Arc<AtomicU64>,
) -> FloodStats {
    let mut gen = Generator::new(target);
    let mut stats = FloodStats::default();
    let started = Instant::now();
    // Paced against the clock, not per tick: a late tick is caught up, so the rate holds.
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let due = (started.elapsed().as_secs_f64() * f64::from(per_second)) as u64;
        while stats.frames < due {
            let kind = SCHEDULE[(stats.frames % SCHEDULE.len() as u64) as usize];
            let (params, items) = gen.frame(kind);
            stats.bytes += params.len() as u64;
            stats.items += items;
            stats.frames += 1;
            frames.store(stats.frames, Ordering::Relaxed);
            if !client.send_raw("stream-notify-room-users", &params) {
                stats.elapsed = started.elapsed();
                return stats;
            }
        }
    }
    stats.elapsed = started.elapsed();
    stats
}

/// Builds the forged frames.
struct Generator {
    target: FloodTarget,
    rng: StdRng,
    seq: u64,
    /// 20 KiB of base64 for the oversized frame, made once.
    big: String,
    last: Option<(String, u64)>,
    /// Alternates the two shapes of [`FloodKind::NotAnEnvelope`].
    flip: bool,
}

impl Generator {
    fn new(target: FloodTarget) -> Self {
        let mut rng = StdRng::from_entropy();
        let mut blob = vec![0u8; 15 * 1024];
        rng.fill_bytes(&mut blob);
        Self {
            target,
            rng,
            seq: 0,
            big: STANDARD.encode(blob),
            last: None,
            flip: false,
        }
    }

    /// The method params (serialised) and the number of envelope items for one frame.
    fn frame(&mut self, kind: FloodKind) -> (String, u64) {
        if kind == FloodKind::Replay {
            if let Some(last) = self.last.clone() {
                return last;
            }
        }
        let t = self.target.clone();
        let (from, room) = (t.peer_uid.as_str(), t.session_room.as_str());
        let otrd = match kind {
            FloodKind::Oversized => {
                let msg = json!({ "$binary": self.big }).to_string();
                let m = item("message", json!({"id": self.id(), "msg": msg}));
                self.envelope(from, room, vec![m])
            }
            FloodKind::TooManyItems => {
                let items = (0..100)
                    .map(|_| item("ack", json!({"id": self.id(), "ack": self.garbage(40)})))
                    .collect();
                self.envelope(from, room, items)
            }
            FloodKind::BadRun => {
                let m = self.message();
                let mut env = self.envelope(from, room, vec![m]);
                env["run"] = json!("x".repeat(300));
                env
            }
            FloodKind::LongClaims => {
                let long_from = format!("{from}{}", "x".repeat(200));
                let long_room = format!("{room}{}", "y".repeat(200));
                let m = self.message();
                self.envelope(&long_from, &long_room, vec![m])
            }
            FloodKind::BogusFragment => {
                let mut env = self.envelope(from, room, Vec::new());
                let d = &self.big[..4096];
                env["frag"] = json!({"id": self.rng.next_u64(), "i": 0, "n": 64, "d": d});
                env
            }
            FloodKind::ForgedProbe => {
                let p = item("probe", json!({"nonce": self.nonce()}));
                self.envelope(from, room, vec![p])
            }
            FloodKind::OwnProbe => {
                let p = item("probe", json!({"nonce": self.nonce()}));
                self.envelope(&t.flooder_uid, &t.shared_room, vec![p])
            }
            FloodKind::GarbageCiphertext => {
                let items = (0..8).map(|_| self.message()).collect();
                self.envelope(from, room, items)
            }
            FloodKind::ForgedSignals => {
                let base = json!({"roomId": room, "userId": from});
                let mut offer = base.clone();
                offer["publicKey"] = json!(FORGED_JWK);
                offer["refresh"] = json!(true);
                self.envelope(
                    from,
                    room,
                    vec![
                        item("offer", offer),
                        item("end", base.clone()),
                        item("deny", base),
                    ],
                )
            }
            FloodKind::NotAnEnvelope => {
                self.flip = !self.flip;
                if self.flip {
                    json!({"v": 9, "from": from, "room": room, "junk": self.garbage(64)})
                } else {
                    json!("not an envelope")
                }
            }
            FloodKind::Replay => {
                let m = self.message();
                self.envelope(from, room, vec![m])
            }
        };
        let items = otrd["items"].as_array().map_or(0, |a| a.len() as u64);
        let params = json!([
            format!("{}/video-conference", t.shared_room),
            {"action": "otrd", "params": {}, "otrd": otrd},
        ])
        .to_string();
        self.last = Some((params.clone(), items));
        (params, items)
    }

    fn envelope(&mut self, from: &str, room: &str, items: Vec<Value>) -> Value {
        self.seq += 1;
        let run = format!("{:016x}", self.rng.next_u64());
        let mut env = json!({"v": 1, "from": from, "room": room, "run": run, "seq": self.seq});
        if !items.is_empty() {
            env["items"] = Value::Array(items);
        }
        env
    }

    fn message(&mut self) -> Value {
        item("message", json!({"id": self.id(), "msg": self.garbage(96)}))
    }

    /// `{"$binary": …}` of `n` random bytes: the shape of a ciphertext, opening under no key.
    fn garbage(&mut self, n: usize) -> String {
        let mut b = vec![0u8; n];
        self.rng.fill_bytes(&mut b);
        json!({ "$binary": STANDARD.encode(b) }).to_string()
    }

    fn id(&mut self) -> String {
        (0..17)
            .map(|_| {
                char::from(
                    b"23456789ABCDEFGHJKLMNPQRSTWXYZabcdefghijkmnopqrstuvwxyz"
                        [self.rng.gen_range(0..55)],
                )
            })
            .collect()
    }

    fn nonce(&mut self) -> String {
        format!("{:016x}{:016x}", self.rng.next_u64(), self.rng.next_u64())
    }
}

fn item(k: &str, p: Value) -> Value {
    json!({"k": k, "p": p})
}

/// A valid P-256 key (PROTOCOL.md §1.6, vector A) for forged offers: parsing it costs the
/// receiver a real import, as a fresh attacker key would.
const FORGED_JWK: &str = r#"{"crv":"P-256","ext":true,"key_ops":[],"kty":"EC","x":"ioJoe5tCZv1VU__TKiPc9bAEJYCWqsAWfyHaokLB1Vo","y":"OtKF0OsmPtW135H8sOG8L6y11nxGPmgFnGGM4ldtDJE"}"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_builds_a_path_b_frame_of_bounded_size() {
        let mut g = Generator::new(FloodTarget {
            shared_room: "S".into(),
            flooder_uid: "M".into(),
            session_room: "R".into(),
            peer_uid: "B".into(),
        });
        let mut total = 0;
        for kind in SCHEDULE {
            let (params, _) = g.frame(kind);
            let v: Value = serde_json::from_str(&params).expect("JSON");
            assert_eq!(v[0], "S/video-conference");
            assert_eq!(v[1]["action"], "otrd");
            assert!(params.len() < 32 * 1024, "{kind:?}: {}", params.len());
            total += params.len();
        }
        assert!(
            total / SCHEDULE.len() < 4096,
            "average frame {} B",
            total / SCHEDULE.len()
        );
        let (a, _) = g.frame(FloodKind::GarbageCiphertext);
        let (b, _) = g.frame(FloodKind::Replay);
        assert_eq!(a, b, "a replay repeats the previous frame exactly");
        let (_, n) = g.frame(FloodKind::TooManyItems);
        assert_eq!(n, 100);
    }
}
