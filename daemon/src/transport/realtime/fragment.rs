//! Fragmentation of item lists larger than [`MAX_PAYLOAD`] and their bounded reassembly.
//!
//! A peer cannot make the daemon buffer without limit: per peer (room) at most
//! [`Limits::groups`] groups in flight, [`Limits::bytes`] bytes buffered, [`Limits::fragments`]
//! pieces per group, and a group older than [`Limits::max_age_ms`] is dropped. A truncated or
//! forged piece only ever loses its own group: it never reaches a session.

use super::envelope::{Fragment, Item, MAX_PAYLOAD};
use std::collections::HashMap;

/// Reassembly bounds, per peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Groups in flight.
    pub groups: usize,
    /// Bytes buffered across groups.
    pub bytes: usize,
    /// Pieces per group.
    pub fragments: u32,
    /// Age after which an incomplete group is dropped.
    pub max_age_ms: i64,
}

impl Default for Limits {
    fn default() -> Self {
        // 64 × 8 KiB = 512 KiB: far above any chat message, far below anything that hurts.
        Self {
            groups: 4,
            bytes: 1024 * 1024,
            fragments: 64,
            max_age_ms: 30_000,
        }
    }
}

/// Splits serialised items into pieces of at most [`MAX_PAYLOAD`] bytes (on char boundaries).
pub fn split(json: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < json.len() {
        let mut end = (start + MAX_PAYLOAD).min(json.len());
        while !json.is_char_boundary(end) {
            end -= 1;
        }
        out.push(json[start..end].to_owned());
        start = end;
    }
    out
}

/// Why a piece was dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FragmentError {
    /// Index out of range, count over the bound, or a count that changed within a group.
    #[error("fragment out of bounds")]
    OutOfBounds,
    /// Too much buffered for this peer.
    #[error("too much fragmented data in flight")]
    Overflow,
    /// The reassembled text is not an item list.
    #[error("reassembled fragments are not an item list")]
    Malformed,
}

#[derive(Debug)]
struct Group {
    n: u32,
    pieces: HashMap<u32, String>,
    bytes: usize,
    started_ms: i64,
}

/// Groups in flight, keyed by (peer key, run, group id).
#[derive(Debug, Default)]
pub struct Reassembler {
    limits: Limits,
    groups: HashMap<(String, String, u64), Group>,
}

impl Reassembler {
    /// With explicit bounds.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            groups: HashMap::new(),
        }
    }

    /// Adds a piece from `peer` (the room); returns the items once the group is complete.
    pub fn add(
        &mut self,
        peer: &str,
        run: &str,
        frag: Fragment,
        now_ms: i64,
    ) -> Result<Option<Vec<Item>>, FragmentError> {
        self.expire(now_ms);
        if frag.n < 2
            || frag.n > self.limits.fragments
            || frag.i >= frag.n
            || frag.d.len() > MAX_PAYLOAD
        {
            return Err(FragmentError::OutOfBounds);
        }
        let key = (peer.to_owned(), run.to_owned(), frag.id);
        let in_flight = self.groups.keys().filter(|k| k.0 == peer).count();
        let buffered: usize = self
            .groups
            .iter()
            .filter(|(k, _)| k.0 == peer)
            .map(|(_, g)| g.bytes)
            .sum();
        if buffered + frag.d.len() > self.limits.bytes {
            self.groups.remove(&key);
            return Err(FragmentError::Overflow);
        }
        if !self.groups.contains_key(&key) && in_flight >= self.limits.groups {
            return Err(FragmentError::Overflow);
        }
        let group = self.groups.entry(key.clone()).or_insert_with(|| Group {
            n: frag.n,
            pieces: HashMap::new(),
            bytes: 0,
            started_ms: now_ms,
        });
        if group.n != frag.n {
            self.groups.remove(&key);
            return Err(FragmentError::OutOfBounds);
        }
        if group.pieces.contains_key(&frag.i) {
            return Ok(None); // a duplicate piece
        }
        group.bytes += frag.d.len();
        group.pieces.insert(frag.i, frag.d);
        if group.pieces.len() < group.n as usize {
            return Ok(None);
        }
        let Some(mut done) = self.groups.remove(&key) else {
            return Ok(None);
        };
        let mut json = String::with_capacity(done.bytes);
        for i in 0..done.n {
            json.push_str(&done.pieces.remove(&i).unwrap_or_default());
        }
        serde_json::from_str::<Vec<Item>>(&json)
            .map(Some)
            .map_err(|_| FragmentError::Malformed)
    }

    /// Drops groups older than the age bound.
    pub fn expire(&mut self, now_ms: i64) {
        let max = self.limits.max_age_ms;
        self.groups
            .retain(|_, g| now_ms.saturating_sub(g.started_ms) <= max);
    }

    /// Bytes buffered for a peer (for tests and status).
    pub fn buffered(&self, peer: &str) -> usize {
        self.groups
            .iter()
            .filter(|(k, _)| k.0 == peer)
            .map(|(_, g)| g.bytes)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::super::envelope::Kind;
    use super::*;
    use serde_json::json;

    fn big_items() -> (Vec<Item>, String) {
        let items = vec![Item {
            k: Kind::Message,
            p: json!({"id": "m", "msg": "é".repeat(12_000)}),
        }];
        let json = serde_json::to_string(&items).expect("json");
        (items, json)
    }

    fn frags(json: &str, id: u64) -> Vec<Fragment> {
        let pieces = split(json);
        let n = pieces.len() as u32;
        pieces
            .into_iter()
            .enumerate()
            .map(|(i, d)| Fragment {
                id,
                i: i as u32,
                n,
                d,
            })
            .collect()
    }

    #[test]
    fn splits_on_char_boundaries_and_reassembles_in_any_order() {
        let (items, json) = big_items();
        let mut pieces = frags(&json, 1);
        assert!(pieces.len() >= 3);
        assert!(pieces.iter().all(|p| p.d.len() <= MAX_PAYLOAD));
        pieces.reverse();
        let mut r = Reassembler::default();
        let last = pieces.pop().expect("one");
        for p in pieces {
            assert_eq!(r.add("R", "run", p, 0), Ok(None));
        }
        assert_eq!(r.add("R", "run", last, 0), Ok(Some(items)));
        assert_eq!(r.buffered("R"), 0);
    }

    #[test]
    fn truncated_forged_and_excess_pieces_are_bounded() {
        let (_, json) = big_items();
        let mut r = Reassembler::new(Limits {
            groups: 2,
            bytes: 20_000,
            fragments: 8,
            max_age_ms: 1000,
        });
        // A truncated piece: the group completes but does not parse.
        let mut pieces = frags(&json, 1);
        if let Some(last) = pieces.last_mut() {
            last.d.truncate(10);
        }
        let results: Vec<_> = pieces
            .into_iter()
            .map(|p| r.add("R", "run", p, 0))
            .collect();
        assert_eq!(results.last(), Some(&Err(FragmentError::Malformed)));
        // Out of bounds.
        let bad = Fragment {
            id: 2,
            i: 9,
            n: 9,
            d: "x".into(),
        };
        assert_eq!(r.add("R", "run", bad, 0), Err(FragmentError::OutOfBounds));
        // A third group in flight is refused, bytes are bounded.
        for id in 10..12 {
            assert_eq!(
                r.add(
                    "R",
                    "run",
                    Fragment {
                        id,
                        i: 0,
                        n: 4,
                        d: "x".repeat(8000)
                    },
                    0
                ),
                Ok(None)
            );
        }
        assert_eq!(
            r.add(
                "R",
                "run",
                Fragment {
                    id: 12,
                    i: 0,
                    n: 4,
                    d: "x".into()
                },
                0
            ),
            Err(FragmentError::Overflow)
        );
        assert_eq!(
            r.add(
                "R",
                "run",
                Fragment {
                    id: 10,
                    i: 1,
                    n: 4,
                    d: "x".repeat(8000)
                },
                0
            ),
            Err(FragmentError::Overflow)
        );
        // Another peer is not affected; age drops the rest.
        assert_eq!(
            r.add(
                "S",
                "run",
                Fragment {
                    id: 1,
                    i: 0,
                    n: 2,
                    d: "x".into()
                },
                0
            ),
            Ok(None)
        );
        r.expire(5000);
        assert_eq!(r.buffered("R") + r.buffered("S"), 0);
    }
}
