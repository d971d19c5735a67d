//! Seeded pseudo-random and mutated inputs for every decoder that reads network data: none may
//! panic. (The `fuzz/` crate does the same open-ended with libFuzzer on nightly.)

use super::{ddp, ejson, presence};
use serde_json::Value;

/// xorshift64*: deterministic, so a failure reproduces from the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const SEEDS: &[&str] = &[
    r#"{"server_id":"0"}"#,
    r#"{"msg":"connected","session":"nq3ZtKwA8sYfJ2xPd"}"#,
    r#"{"msg":"ping","id":"x"}"#,
    r#"{"msg":"result","id":"1","result":{"id":"aLiCe7yNSKqG3mZ2p","token":"Z5","tokenExpires":{"$date":1743508800000},"type":"resume"}}"#,
    r#"{"msg":"result","id":"9","error":{"isClientSafe":true,"error":"too-many-requests","reason":"x","details":{"timeToReset":12.5}}}"#,
    r#"{"msg":"ready","subs":["sub-otr-1"]}"#,
    r#"{"msg":"nosub","id":"s","error":{"error":"not-allowed","message":"[not-allowed]"}}"#,
    r#"{"msg":"changed","collection":"stream-user-presence","id":"B","fields":{"uid":"B","args":[["bob",1,""]],"eventName":"B"}}"#,
    r#"{"msg":"changed","collection":"stream-room-messages","id":"id","fields":{"eventName":"Kd9","args":[{"_id":"h","msg":"{\"$binary\":\"AAECAwQF\"}","t":"otr","ts":{"$date":1735732800456}}]}}"#,
    r#"{"$binary":"CwoJCAcGBQQDAgEAUqyxpibYR/Igx8Da6T+9XGL0aFCpUgGKBRu2NVbNH0lZ8WTDFlWaFdVSS36QJJzcZpyBOsj+/vHPTo1gvGd5p8915UYgU9KigbaILSxh2tTArM5wnw=="}"#,
    r#"{"$date":-1e400}"#,
];

const ALPHABET: &[u8] = br#"{}[]":,\$ 0123456789.eE-+truefalsnulmsgidbinarydate=/AZaz"#;

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..=rng.below(4) {
        match rng.below(6) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 if !v.is_empty() => {
                let i = rng.below(v.len());
                v.remove(i);
            }
            2 => {
                let i = rng.below(v.len() + 1);
                v.insert(i, ALPHABET[rng.below(ALPHABET.len())]);
            }
            3 => v.truncate(rng.below(v.len() + 1)),
            4 => {
                let other = SEEDS[rng.below(SEEDS.len())].as_bytes();
                let (a, b) = (rng.below(v.len() + 1), rng.below(other.len() + 1));
                v.truncate(a);
                v.extend_from_slice(&other[b..]);
            }
            _ => {
                let n = rng.below(64);
                v = (0..n)
                    .map(|_| ALPHABET[rng.below(ALPHABET.len())])
                    .collect();
            }
        }
    }
    v
}

fn exercise(text: &str) {
    if let Ok(ddp::ServerFrame::Result { error: Some(e), .. }) = ddp::decode_server_frame(text) {
        let _ = (e.code(), e.time_to_reset_ms(), e.to_string());
    }
    if let Ok(bytes) = ejson::decode_binary_string(text) {
        assert_eq!(
            ejson::decode_binary_string(&ejson::encode_binary_string(&bytes)),
            Ok(bytes)
        );
    }
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        let _ = ejson::decode_date(&v);
        let _ = ejson::decode_binary(&v);
        if let Some(args) = v.as_array() {
            let _ = presence::parse_presence_event("B", args);
            let _ = presence::parse_presence_event("user-status", args);
        }
        let args = v
            .pointer("/fields/args")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let _ = presence::parse_presence_event("B", &args);
    }
}

#[test]
fn decoders_survive_thousands_of_mutated_inputs() {
    let mut rng = Rng(0x0DD0_5EED_1234_5678);
    for round in 0..6000 {
        let seed = SEEDS[round % SEEDS.len()].as_bytes();
        let bytes = mutate(&mut rng, seed);
        exercise(&String::from_utf8_lossy(&bytes));
    }
    for s in SEEDS {
        exercise(s);
    }
}
