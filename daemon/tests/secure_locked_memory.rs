//! The global locked-memory arena as the daemon uses it, observed from outside: `VmLck` in
//! `/proc/self/status`, and the byte counts for 10,000 sessions. Its own test binary, so no other
//! test allocates keys meanwhile; the tests in it take `SERIAL` for the same reason.

use std::sync::Mutex;

use otrd::secure::{arena_stats, arena_status, LockedKey};

static SERIAL: Mutex<()> = Mutex::new(());

/// Keys a realistic session holds at once (ratchet root, two chain keys, DH private, two more).
const KEYS_PER_SESSION: usize = 6;
const SESSIONS: usize = 10_000;
const EIGHT_MIB: u64 = 8 * 1024 * 1024;

/// `VmLck` of this process in bytes.
fn vm_lck() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmLck:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn session_keys(n: usize) -> Vec<[LockedKey<32>; KEYS_PER_SESSION]> {
    (0..n)
        .map(|s| std::array::from_fn(|k| LockedKey::new(&mut [(s + k) as u8; 32])))
        .collect()
}

#[test]
fn vmlck_grows_with_many_keys() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let status = arena_status();
    if !status.locked {
        println!("skipping: mlock is not permitted here ({})", status.detail);
        return;
    }
    let before = vm_lck().expect("VmLck in /proc/self/status");
    // Chunks are kept once mapped, so first use up what is free, then 512 KiB more: at least
    // eight new chunks must be mapped and locked.
    let stats = arena_stats();
    let free_keys = (stats.mapped_bytes - stats.in_use_bytes) as usize / 32;
    let sessions = (free_keys + 512 * 1024 / 32).div_ceil(KEYS_PER_SESSION);
    let keys = session_keys(sessions);
    let after = vm_lck().expect("VmLck in /proc/self/status");
    assert!(
        after >= before + 512 * 1024,
        "VmLck went from {before} to {after} bytes"
    );
    assert!(arena_status().locked_bytes >= after - before);
    drop(keys);
}

#[test]
fn ten_thousand_sessions_fit_in_the_default_memlock_limit() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let before = arena_stats();
    let keys = session_keys(SESSIONS);
    let during = arena_stats();
    let added = during.mapped_bytes - before.mapped_bytes;
    assert!(
        during.mapped_bytes <= EIGHT_MIB,
        "{} arena bytes for {SESSIONS} sessions",
        during.mapped_bytes
    );
    assert!(during.in_use_bytes - before.in_use_bytes == (SESSIONS * KEYS_PER_SESSION * 32) as u64);
    println!(
        "{SESSIONS} sessions × {KEYS_PER_SESSION} keys: {added} bytes mapped, {} bytes locked, \
         {} bytes per session",
        during.locked_bytes,
        added / SESSIONS as u64
    );
    let status = arena_status();
    if status.locked {
        assert_eq!(during.locked_bytes, during.mapped_bytes);
        assert_eq!(status.locked_bytes, during.locked_bytes);
    } else {
        println!(
            "mlock not permitted here ({}); mapped bytes only",
            status.detail
        );
    }
    drop(keys);
    assert_eq!(arena_stats().in_use_bytes, before.in_use_bytes);
}
