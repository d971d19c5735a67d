//! The locked-memory arena's hot path: allocating and freeing a `LockedKey<32>` (a slot pop, a
//! copy, a zeroize and a slot push), and a whole session's keys. Also prints the arena bytes one
//! session costs, the number that decides how many sessions fit in `RLIMIT_MEMLOCK`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use otrd::secure::{arena_stats, LockedKey};

/// Keys a realistic session holds at once.
const KEYS_PER_SESSION: usize = 6;

fn alloc_free(c: &mut Criterion) {
    c.bench_function("LockedKey<32> new+drop", |b| {
        b.iter(|| {
            let key = LockedKey::new(&mut black_box([7u8; 32]));
            black_box(key.expose()[0]);
        })
    });
    c.bench_function("LockedKey<32> clone+drop", |b| {
        let key = LockedKey::new(&mut [7u8; 32]);
        b.iter(|| black_box(key.clone()))
    });
    c.bench_function("session keys (6 × LockedKey<32>) new+drop", |b| {
        b.iter(|| {
            let keys: [LockedKey<32>; KEYS_PER_SESSION] =
                std::array::from_fn(|i| LockedKey::new(&mut [i as u8; 32]));
            black_box(keys)
        })
    });
}

fn bytes_per_session(_: &mut Criterion) {
    let sessions = 10_000;
    let before = arena_stats();
    let keys: Vec<[LockedKey<32>; KEYS_PER_SESSION]> = (0..sessions)
        .map(|s| std::array::from_fn(|i| LockedKey::new(&mut [(s + i) as u8; 32])))
        .collect();
    let after = arena_stats();
    println!(
        "bytes per session: {} in use, {} mapped ({} sessions, {} bytes locked in all)",
        (after.in_use_bytes - before.in_use_bytes) / sessions as u64,
        (after.mapped_bytes - before.mapped_bytes) / sessions as u64,
        sessions,
        after.locked_bytes
    );
    drop(keys);
}

criterion_group!(benches, alloc_free, bytes_per_session);
criterion_main!(benches);
