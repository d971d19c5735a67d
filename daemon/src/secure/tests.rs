//! Tests of the arena and the locked types. Byte counts are checked on private arenas so that other
//! tests allocating keys in parallel (in the global arena) cannot disturb them.
#![allow(unsafe_code)]

use super::arena::{Arena, SIZE_CLASSES};
use super::locked_buf::{LockedBuf, LockedText};
use super::secret::LockedKey;

/// Keys a realistic session holds at once (ratchet root, two chain keys, DH private, two header
/// or AES keys).
const KEYS_PER_SESSION: usize = 6;
const SESSIONS: usize = 10_000;

#[test]
fn freed_key_slot_is_zero() {
    let arena = Arena::leaked();
    let mut raw = [0xA5u8; 32];
    let key = LockedKey::new_in(arena, &mut raw);
    assert_eq!(raw, [0u8; 32], "the caller's copy is wiped");
    let (ptr, len) = key
        .storage()
        .slot_addr()
        .expect("a 32-byte key lives in a slot");
    // SAFETY: the pointer is a slot of `arena`, which is never unmapped.
    assert_eq!(
        unsafe { arena.peek(ptr, 32) },
        vec![0xA5u8; 32],
        "key is in the slot"
    );
    drop(key);
    // SAFETY: as above; the private arena has no other users, so the slot is not reused.
    assert_eq!(
        unsafe { arena.peek(ptr, len) },
        vec![0u8; len],
        "wiped after drop"
    );
}

#[test]
fn freed_clone_and_buffer_slots_are_zero() {
    let arena = Arena::leaked();
    let mut raw = [0x5Au8; 16];
    let key = LockedKey::new_in(arena, &mut raw);
    let copy = key.clone();
    assert_eq!(copy.expose(), &[0x5Au8; 16]);
    let (kptr, klen) = key.storage().slot_addr().expect("slot");
    let (cptr, clen) = copy.storage().slot_addr().expect("slot");
    assert_ne!(kptr, cptr, "a clone has its own slot");
    let buf = LockedBuf::from_slice_in(arena, &[0x77u8; 700]);
    let (bptr, blen) = buf
        .storage()
        .slot_addr()
        .expect("700 bytes fit a 1 KiB slot");
    drop((key, copy, buf));
    for (ptr, len) in [(kptr, klen), (cptr, clen), (bptr, blen)] {
        // SAFETY: slots of the private `arena`, never unmapped, not reused by anyone.
        assert!(unsafe { arena.peek(ptr, len) }.iter().all(|&b| b == 0));
    }
    assert_eq!(arena.stats().in_use_bytes, 0);
}

#[test]
fn freed_slots_are_reused() {
    let arena = Arena::leaked();
    let first = LockedKey::new_in(arena, &mut [1u8; 32]);
    let (ptr, _) = first.storage().slot_addr().expect("slot");
    drop(first);
    let second = LockedKey::new_in(arena, &mut [2u8; 32]);
    assert_eq!(second.storage().slot_addr().map(|s| s.0), Some(ptr));
    assert_eq!(second.expose(), &[2u8; 32]);
}

#[test]
fn ten_thousand_sessions_fit_in_eight_mib() {
    let arena = Arena::leaked();
    let keys: Vec<LockedKey<32>> = (0..SESSIONS * KEYS_PER_SESSION)
        .map(|i| {
            let mut raw = [(i % 251) as u8; 32];
            LockedKey::new_in(arena, &mut raw)
        })
        .collect();
    let stats = arena.stats();
    let needed = (SESSIONS * KEYS_PER_SESSION * 32) as u64;
    assert_eq!(stats.in_use_bytes, needed);
    assert_eq!(stats.heap_fallback_bytes, 0);
    assert!(
        stats.mapped_bytes <= 8 * 1024 * 1024,
        "{} bytes mapped for {SESSIONS} sessions",
        stats.mapped_bytes
    );
    // Overhead is at most one partly used chunk.
    assert!(stats.mapped_bytes - needed < 64 * 1024);
    let status = arena.status();
    if status.locked {
        assert_eq!(stats.locked_bytes, stats.mapped_bytes);
    } else {
        println!(
            "mlock not permitted here ({}); counted mapped bytes only",
            status.detail
        );
    }
    assert!(keys
        .iter()
        .enumerate()
        .all(|(i, k)| k.expose()[0] == (i % 251) as u8));
}

#[test]
fn mixed_sizes_share_chunks_without_overlap() {
    let arena = Arena::leaked();
    let mut bufs = Vec::new();
    for round in 0..200u8 {
        for &size in &SIZE_CLASSES {
            let len = size - usize::from(round % 3);
            bufs.push((round, LockedBuf::from_slice_in(arena, &vec![round; len])));
        }
    }
    for (round, buf) in &bufs {
        assert!(
            buf.expose().iter().all(|b| b == round),
            "slots do not overlap"
        );
        assert!(buf.is_in_arena());
    }
}

#[test]
fn oversized_buffers_use_the_heap_and_are_counted() {
    let arena = Arena::leaked();
    let big = LockedBuf::from_slice_in(arena, &vec![9u8; LockedBuf::MAX_LOCKED + 1]);
    assert!(!big.is_in_arena());
    assert_eq!(big.expose().len(), LockedBuf::MAX_LOCKED + 1);
    assert_eq!(
        arena.stats().heap_fallback_bytes,
        LockedBuf::MAX_LOCKED as u64 + 1
    );
    assert!(arena.status().detail.contains("heap"));
    drop(big);
    assert_eq!(arena.stats().heap_fallback_bytes, 0);
}

#[test]
fn debug_is_redacted() {
    let key = LockedKey::new(&mut [7u8; 32]);
    assert_eq!(format!("{key:?}"), "LockedKey<32>([REDACTED])");
    let buf = LockedBuf::from_slice(b"hunter2");
    assert!(!format!("{buf:?}").contains("hunter2"));
    let text = LockedText::new("attack at dawn");
    assert!(!format!("{text:?}").contains("dawn"));
    assert_eq!(text.expose(), "attack at dawn");
    assert_eq!(LockedText::from(String::from("héllo")).expose(), "héllo");
    assert!(LockedText::new("").is_empty());
}

#[test]
fn keys_cross_threads() {
    let key = LockedKey::new(&mut [3u8; 32]);
    let handle = std::thread::spawn(move || *key.expose());
    assert_eq!(handle.join().ok(), Some([3u8; 32]));
}

#[test]
fn status_reports_locked_bytes() {
    let arena = Arena::leaked();
    let _key = LockedKey::new_in(arena, &mut [1u8; 32]);
    let status = arena.status();
    assert_eq!(status.in_use_bytes, 32);
    if status.locked {
        assert!(status.locked_bytes >= 64 * 1024);
        assert!(status.detail.contains("mlock'd"));
    } else {
        assert_eq!(status.locked_bytes, 0);
        assert!(status.detail.contains("mlock failed"), "{}", status.detail);
    }
}
