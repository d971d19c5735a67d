//! Zeroizing secret newtypes with a `Debug` that never shows the content.
#![allow(unsafe_code)]

use std::fmt;
use zeroize::Zeroize;

use super::arena::{self, Arena};
use super::storage::LockedStorage;

/// A secret text: a password, a token, a message's plaintext. Zeroized on drop; `Debug` prints
/// `[REDACTED]`. Cloning copies the secret (both copies zeroize independently).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps a string; the caller's copy moves in and is zeroized when this drops.
    pub fn new(s: String) -> Self {
        Self(s)
    }

    /// The secret text. Keep the borrow short and never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Drop for SecretString {
    fn drop(&mut self) {
        // Moving the buffer out of the `String` is free and keeps it the same allocation.
        wipe_vec(&mut std::mem::take(&mut self.0).into_bytes());
    }
}

/// Zeroizes a byte buffer's whole allocation (contents and spare capacity) and empties it.
///
/// `zeroize`'s `Vec` impl wipes element by element with volatile stores (a byte per cycle); the
/// slice impls it uses here clear in bulk behind an optimisation barrier instead, which the
/// crate documents as equally unremovable, and are several times faster on message-sized
/// buffers (wiping was a noticeable part of a legacy message's cost).
pub(crate) fn wipe_vec(v: &mut Vec<u8>) {
    v.spare_capacity_mut().zeroize();
    v.as_mut_slice().zeroize();
    v.clear();
}

impl From<String> for SecretString {
    fn from(s: String) -> Self {
        Self::new(s)
    }
}

impl From<&str> for SecretString {
    fn from(s: &str) -> Self {
        Self::new(s.to_owned())
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

/// Secret bytes of variable length (plaintext buffers, derived material). Zeroized on drop.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    /// Wraps a buffer; it is zeroized when this drops.
    pub fn new(v: Vec<u8>) -> Self {
        Self(v)
    }

    /// An empty buffer of `capacity` bytes, to be filled in place without reallocating (a
    /// reallocation would leave a copy of the secret behind in freed memory).
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self(Vec::with_capacity(capacity))
    }

    /// The buffer, for filling in place. Callers must stay within the capacity.
    pub(crate) fn vec_mut(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }

    /// The secret bytes.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Drop for SecretBytes {
    fn drop(&mut self) {
        wipe_vec(&mut self.0);
    }
}

impl From<Vec<u8>> for SecretBytes {
    fn from(v: Vec<u8>) -> Self {
        Self::new(v)
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[REDACTED {} bytes]", self.0.len())
    }
}

/// A fixed-size key at rest (a private scalar, a chain key, an AES key). Zeroized on drop.
///
/// The bytes live in a slot of the locked-memory arena (mlock'd, excluded from core dumps); keys
/// larger than the biggest slot (4 KiB) use a zeroizing heap buffer, counted as unlocked in
/// [`super::arena_status`]. Callers only ever see `expose()`.
pub struct LockedKey<const N: usize>(LockedStorage);

impl<const N: usize> LockedKey<N> {
    /// Moves `bytes` into protected storage and zeroizes the caller's array.
    pub fn new(bytes: &mut [u8; N]) -> Self {
        Self::new_in(arena::global(), bytes)
    }

    /// As [`Self::new`], in a given arena (tests use private arenas to observe the bytes).
    pub(crate) fn new_in(arena: &'static Arena, bytes: &mut [u8; N]) -> Self {
        let key = Self(LockedStorage::copy_of(arena, bytes));
        bytes.zeroize();
        key
    }

    /// The key bytes, for building a library key type for one operation.
    pub fn expose(&self) -> &[u8; N] {
        // SAFETY: the storage was created in `new_in` from an `[u8; N]`, so it is `N` bytes long.
        unsafe { self.0.array_unchecked::<N>() }
    }

    /// Overwrites the key in place with `bytes` and zeroizes the caller's array: a key that moves
    /// on every message (a ratchet chain key) keeps its slot instead of taking a new one.
    pub fn replace(&mut self, bytes: &mut [u8; N]) {
        self.0.bytes_mut().copy_from_slice(bytes);
        bytes.zeroize();
    }

    /// The storage, for tests that look at the slot after drop.
    #[cfg(test)]
    pub(crate) fn storage(&self) -> &LockedStorage {
        &self.0
    }
}

impl<const N: usize> Clone for LockedKey<N> {
    fn clone(&self) -> Self {
        Self(self.0.duplicate())
    }
}

impl<const N: usize> fmt::Debug for LockedKey<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LockedKey<{N}>([REDACTED])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let s = SecretString::from("hunter2");
        assert_eq!(format!("{s:?}"), "[REDACTED]");
        let b = SecretBytes::from(b"hunter2".to_vec());
        assert!(!format!("{b:?}").contains("hunter2"));
        let mut raw = *b"0123456789abcdef";
        let k = LockedKey::new(&mut raw);
        assert_eq!(raw, [0u8; 16], "the caller's copy is wiped");
        assert!(!format!("{k:?}").contains("0123"));
        assert_eq!(k.expose(), b"0123456789abcdef");
    }

    #[test]
    fn wipe_vec_clears_contents_and_spare_capacity() {
        let mut v = Vec::with_capacity(64);
        v.extend_from_slice(b"very secret words");
        let cap = v.capacity();
        wipe_vec(&mut v);
        assert!(v.is_empty());
        assert_eq!(
            v.capacity(),
            cap,
            "same allocation, not freed and reallocated"
        );
        // SAFETY (test): the allocation is still owned by `v` and was fully written by the wipe.
        let whole = unsafe { std::slice::from_raw_parts(v.as_ptr(), cap) };
        assert!(whole.iter().all(|&b| b == 0));
    }
}
