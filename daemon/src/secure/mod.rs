//! Secrets in memory: zeroizing, redacted types for passwords, tokens and plaintext; keys at rest in
//! locked memory; process hardening.
//!
//! Rule of the house: a secret is never a bare `String` or `Vec<u8>`. Library key types
//! (`x25519-dalek`'s, and AWS-LC's P-256 and AES-GCM objects) are built from a [`LockedKey`]
//! for one operation and dropped (they zeroize themselves; AWS-LC wipes its allocations when it
//! frees them), so key bytes at rest live only in locked memory.
//!
//! - `arena` — mlock'd, non-dumpable chunks cut into small slots; [`arena_status`] for `GetStatus`.
//! - `storage` — an owned slot (or zeroizing heap fallback) that wipes itself on drop.
//! - `secret` — [`SecretString`], [`SecretBytes`], [`LockedKey`].
//! - `locked_buf` — [`LockedBuf`] and [`LockedText`] for variable-length plaintext.
//! - `harden` — [`harden_process`]: no core dumps, not ptrace-able by same-uid processes.
//! - `rng` — [`fill_private`] (private keys, straight from the kernel) and [`SecureRng`], the
//!   user-space CSPRNG for public values (ChaCha12, reseeded from the kernel, on a timer and on lock).
//!
//! All `unsafe` code of the crate lives in this module, each block with a `// SAFETY:` comment.

mod arena;
mod harden;
mod locked_buf;
mod rng;
mod secret;
mod storage;

#[cfg(test)]
mod tests;

pub use arena::{arena_stats, arena_status, ArenaStats};
pub use harden::{harden_process, HardeningReport};
pub use locked_buf::{LockedBuf, LockedText};
pub use rng::{check_kernel_source, fill_private, SecureRng};
pub use secret::{LockedKey, SecretBytes, SecretString};
