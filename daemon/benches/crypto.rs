//! Criterion micro-benchmarks of the crypto paths and the DDP decoder, for local investigation:
//! `cargo bench -p otrd --bench crypto`. The report with ratios against Node, OpenSSL and the
//! raw curve operations comes from `scripts/bench` (tests/bench), which times the same cases.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

#[path = "../../tests/bench/src/cases.rs"]
#[allow(dead_code)] // the op counts are used by the report only
mod cases;

fn legacy(c: &mut Criterion) {
    let key = cases::legacy_key();
    let mut rng = cases::rng();
    let mut g = c.benchmark_group("legacy_message_roundtrip");
    for size in cases::SIZES {
        let msg = cases::inner_message(size);
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::from_parameter(size), &msg, |b, msg| {
            b.iter(|| cases::legacy_roundtrip(&key, msg, &mut rng))
        });
    }
    g.finish();
    let mut buf = vec![0u8; 256];
    c.bench_function("aes128gcm_seal_256", |b| {
        b.iter(|| cases::aead_seal(&[9u8; 16], &mut buf))
    });
}

fn native(c: &mut Criterion) {
    let mut g = c.benchmark_group("native_message_roundtrip");
    for size in cases::SIZES {
        let mut pair = cases::native_pair();
        let pt = cases::text(size).into_bytes();
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function(BenchmarkId::from_parameter(size), |b| {
            b.iter(|| cases::native_roundtrip(&mut pair, &pt))
        });
    }
    g.finish();
    let mut pair = cases::native_pair();
    let pt = cases::text(256).into_bytes();
    c.bench_function("native_pingpong_256", |b| {
        b.iter(|| cases::native_pingpong(&mut pair, &pt))
    });
}

fn handshakes(c: &mut Criterion) {
    let jwk = cases::p256_peer_jwk();
    let mut rng = cases::rng();
    c.bench_function("p256_handshake_one_side", |b| {
        b.iter(|| cases::p256_handshake(&jwk, &mut rng))
    });
    let parties = cases::native_parties();
    c.bench_function("native_handshake_both_sides", |b| {
        b.iter(|| cases::native_handshake(&parties))
    });
    let secret = cases::x25519_secret();
    let peer = x25519_dalek::PublicKey::from(&cases::x25519_secret());
    c.bench_function("x25519_basepoint", |b| {
        b.iter(|| cases::x25519_basepoint(&secret))
    });
    c.bench_function("x25519_dh", |b| b.iter(|| cases::x25519_dh(&secret, &peer)));
}

fn ddp(c: &mut Criterion) {
    let frame = cases::ddp_otr_frame();
    c.bench_function("ddp_decode_4k_otr_changed", |b| {
        b.iter(|| cases::ddp_decode(&frame))
    });
    c.bench_function("json_parse_4k_otr_changed", |b| {
        b.iter(|| cases::json_parse(&frame))
    });
}

criterion_group!(benches, legacy, native, handshakes, ddp);
criterion_main!(benches);
