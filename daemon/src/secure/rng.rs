//! [`SecureRng`]: the daemon's CSPRNG for IVs, nonces, tags and ids; [`fill_private`] for keys.
//!
//! **Private keys never come from a user-space generator.** Identity, ephemeral, ratchet and
//! legacy P-256 private keys and the SAS secret are drawn with [`fill_private`], straight from the
//! kernel (`getrandom`) into the caller's buffer, which goes into locked memory at once. So no
//! generator state in ordinary (swappable, dumpable) memory can recompute a past or future key.
//! A syscall per key costs ~0.35 µs, nothing beside the Diffie-Hellman that follows.
//!
//! **Everything else** (legacy IVs, random ids, instance tags, jitter) comes from [`SecureRng`]:
//! ChaCha12 in user space, seeded from the kernel and reseeded from it after every 64 KiB of
//! output, after a `fork`, every [`RESEED_EVERY`] and on every lock ([`SecureRng::reseed`]) —
//! the construction of rand's `ThreadRng`, but `Send`, so the engine task can own one. Why not the
//! kernel for every draw: a legacy message's IV would cost more than the rest of its handling.
//! Its outputs are public values (an IV is sent in the clear), and the reseeding bounds what a
//! leaked state reveals to the outputs between two reseeds.
//!
//! If a reseed fails (the kernel refuses `getrandom`, which does not happen once it has been
//! seeded), the generator keeps going from its current state and tries again at the next
//! threshold, as `ThreadRng` does.

use rand::rngs::adapter::ReseedingRng;
use rand::rngs::OsRng;
use rand::{CryptoRng, RngCore, SeedableRng};
use rand_chacha::ChaCha12Core;
use std::fmt;

/// Bytes of output after which the state is replaced by a fresh seed from the kernel.
const RESEED_AFTER: u64 = 64 * 1024;

/// Time after which the next draw reseeds first, however little was drawn.
pub const RESEED_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Fills `out` straight from the kernel: for private keys (see the module docs).
///
/// # Panics
/// When `getrandom` fails, which it does not once it has answered: the daemon checks it at
/// start-up ([`check_kernel_source`]) and stops with a clear error there. Going on without a key
/// source would be far worse than stopping.
pub fn fill_private(out: &mut [u8]) {
    if let Err(e) = OsRng.try_fill_bytes(out) {
        panic!("the kernel's random source (getrandom) failed: {e}");
    }
}

/// The daemon's cryptographically secure generator (see the module docs).
pub struct SecureRng {
    inner: ReseedingRng<ChaCha12Core, OsRng>,
    /// When the state was last replaced from the kernel.
    seeded: std::time::Instant,
}

impl SecureRng {
    /// A generator seeded from the kernel.
    ///
    /// # Panics
    /// When the kernel refuses to give randomness (as `StdRng::from_entropy` would): without it
    /// no key can be made, and carrying on with a guessable seed would be far worse. The daemon
    /// calls [`check_kernel_source`] before it starts the engine, so there a refusal is a clear
    /// start-up error instead (once `getrandom` has answered, it does not fail later).
    pub fn from_os() -> Self {
        match ChaCha12Core::from_rng(OsRng) {
            Ok(core) => Self {
                inner: ReseedingRng::new(core, RESEED_AFTER, OsRng),
                seeded: std::time::Instant::now(),
            },
            Err(e) => panic!("the kernel's random source (getrandom) failed: {e}"),
        }
    }

    /// Replaces the state with a fresh seed from the kernel now (on lock; and by the timer).
    pub fn reseed(&mut self) {
        if let Err(e) = self.inner.reseed() {
            tracing::warn!(error = %e, "reseeding the generator failed; it goes on from its state");
        }
        self.seeded = std::time::Instant::now();
    }

    fn reseed_if_due(&mut self) {
        if self.seeded.elapsed() >= RESEED_EVERY {
            self.reseed();
        }
    }
}

/// Draws from the kernel's random source once: the daemon's start-up check that keys can be made.
pub fn check_kernel_source() -> Result<(), rand::Error> {
    let mut probe = zeroize::Zeroizing::new([0u8; 32]);
    OsRng.try_fill_bytes(probe.as_mut())
}

impl RngCore for SecureRng {
    fn next_u32(&mut self) -> u32 {
        self.reseed_if_due();
        self.inner.next_u32()
    }

    fn next_u64(&mut self) -> u64 {
        self.reseed_if_due();
        self.inner.next_u64()
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.reseed_if_due();
        self.inner.fill_bytes(dest)
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        self.reseed_if_due();
        self.inner.try_fill_bytes(dest)
    }
}

impl CryptoRng for SecureRng {}

impl fmt::Debug for SecureRng {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecureRng([REDACTED state])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_differ_and_survive_many_reseeds() {
        let mut a = SecureRng::from_os();
        let mut b = SecureRng::from_os();
        let (mut x, mut y) = ([0u8; 32], [0u8; 32]);
        a.fill_bytes(&mut x);
        b.fill_bytes(&mut y);
        assert_ne!(x, y, "two generators seeded from the kernel");
        // Several reseed thresholds' worth of output: no repetition across a reseed boundary.
        let mut seen = std::collections::HashSet::new();
        for _ in 0..(4 * RESEED_AFTER as usize / 32) {
            a.fill_bytes(&mut x);
            assert!(seen.insert(x), "a 32-byte draw repeated");
        }
        assert!(!format!("{a:?}").contains(&format!("{:?}", &x[..4])));
        a.reseed();
        a.fill_bytes(&mut y);
        assert!(seen.insert(y));
    }

    #[test]
    fn private_keys_cannot_be_recomputed_from_a_copy_of_the_generator() {
        use rand::rngs::StdRng;
        // An attacker who read the generator's state (a core, swap) replays it: identical
        // generators, yet every private key differs, since keys come from the kernel.
        let (mut one, mut two) = (StdRng::seed_from_u64(7), StdRng::seed_from_u64(7));
        let a = crate::otr::native::LocalIdentity::generate(&mut one);
        let b = crate::otr::native::LocalIdentity::generate(&mut two);
        assert_ne!(a.public(), b.public());
        let p = crate::otr::legacy::EphemeralKeyPair::generate(&mut one).expect("pair");
        let q = crate::otr::legacy::EphemeralKeyPair::generate(&mut two).expect("pair");
        assert_ne!(p.public_jwk(), q.public_jwk());
        let (mut x, mut y) = ([0u8; 32], [0u8; 32]);
        fill_private(&mut x);
        fill_private(&mut y);
        assert_ne!(x, y);
    }
}
