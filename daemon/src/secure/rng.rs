//! [`SecureRng`]: the daemon's CSPRNG for private keys, IVs, tokens and ids.
//!
//! ChaCha12 in user space, seeded from the kernel (`getrandom`) and reseeded from it after every
//! 64 KiB of output and after a `fork` — the construction of rand's `ThreadRng`, but `Send`, so the
//! engine task can own one. Why not the kernel for every draw: a `getrandom` syscall costs
//! ~0.35 µs, more than the rest of a legacy message's IV handling together, while a ChaCha
//! keystream seeded with 256 bits from the kernel is indistinguishable from it for any feasible
//! attacker. The reseeding bounds what a leaked generator state reveals: the state holds the
//! ChaCha key, so it gives away the output since the last reseed and up to the next one (64 KiB
//! each way at most), but nothing drawn under an earlier or a later seed.
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

/// The daemon's cryptographically secure generator (see the module docs).
pub struct SecureRng(ReseedingRng<ChaCha12Core, OsRng>);

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
            Ok(core) => Self(ReseedingRng::new(core, RESEED_AFTER, OsRng)),
            Err(e) => panic!("the kernel's random source (getrandom) failed: {e}"),
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
        self.0.next_u32()
    }

    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.0.fill_bytes(dest)
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        self.0.try_fill_bytes(dest)
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
    }
}
