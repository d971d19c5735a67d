//! Variable-length secrets in locked memory: `LockedBuf` (bytes) and `LockedText` (UTF-8), for
//! scrollback and other plaintext kept while a session lives.
#![allow(unsafe_code)]

use std::fmt;

use zeroize::Zeroize;

use super::arena::{self, Arena, MAX_SLOT};
use super::storage::LockedStorage;

/// Secret bytes of any length, zeroized on drop. Up to [`LockedBuf::MAX_LOCKED`] bytes live in a
/// locked arena slot; longer buffers use a zeroizing heap buffer, reported as unlocked by
/// [`super::arena_status`].
pub struct LockedBuf(LockedStorage);

impl LockedBuf {
    /// The longest buffer kept in locked memory.
    pub const MAX_LOCKED: usize = MAX_SLOT;

    /// A locked copy of `bytes`. The caller still owns (and should wipe) its own copy.
    pub fn from_slice(bytes: &[u8]) -> Self {
        Self::from_slice_in(arena::global(), bytes)
    }

    /// As [`Self::from_slice`], in a given arena.
    pub(crate) fn from_slice_in(arena: &'static Arena, bytes: &[u8]) -> Self {
        Self(LockedStorage::copy_of(arena, bytes))
    }

    /// Moves a buffer in: its bytes are copied to locked memory and the vector is zeroized.
    pub fn from_vec(mut bytes: Vec<u8>) -> Self {
        let buf = Self::from_slice(&bytes);
        bytes.zeroize();
        buf
    }

    /// The secret bytes. Keep the borrow short and never log them.
    pub fn expose(&self) -> &[u8] {
        self.0.bytes()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.len() == 0
    }

    /// True when the bytes are in an arena slot rather than the heap fallback.
    pub fn is_in_arena(&self) -> bool {
        self.0.in_arena()
    }

    /// The storage, for tests that look at the slot after drop.
    #[cfg(test)]
    pub(crate) fn storage(&self) -> &LockedStorage {
        &self.0
    }
}

impl Clone for LockedBuf {
    fn clone(&self) -> Self {
        Self(self.0.duplicate())
    }
}

impl PartialEq for LockedBuf {
    /// Constant-time in the content, so comparing secrets leaks only their lengths.
    fn eq(&self, other: &Self) -> bool {
        use subtle::ConstantTimeEq;
        self.expose().ct_eq(other.expose()).into()
    }
}

impl Eq for LockedBuf {}

impl fmt::Debug for LockedBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LockedBuf([REDACTED {} bytes])", self.len())
    }
}

/// Secret UTF-8 text (a message's plaintext in scrollback) in locked memory; see [`LockedBuf`].
#[derive(Clone, PartialEq, Eq)]
pub struct LockedText(LockedBuf);

impl LockedText {
    /// A locked copy of `text`. The caller still owns (and should wipe) its own copy.
    pub fn new(text: &str) -> Self {
        Self(LockedBuf::from_slice(text.as_bytes()))
    }

    /// Moves a string in: its bytes are copied to locked memory and the string is zeroized.
    pub fn from_string(mut text: String) -> Self {
        let locked = Self::new(&text);
        text.zeroize();
        locked
    }

    /// The secret text. Keep the borrow short and never log it.
    pub fn expose(&self) -> &str {
        // SAFETY: the bytes were copied from a `&str` in `new` (the only constructor) and are
        // never written afterwards, so they are valid UTF-8.
        unsafe { std::str::from_utf8_unchecked(self.0.expose()) }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// True when the text is in an arena slot rather than the heap fallback.
    pub fn is_in_arena(&self) -> bool {
        self.0.is_in_arena()
    }
}

impl From<&str> for LockedText {
    fn from(text: &str) -> Self {
        Self::new(text)
    }
}

impl From<String> for LockedText {
    fn from(text: String) -> Self {
        Self::from_string(text)
    }
}

impl fmt::Debug for LockedText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LockedText([REDACTED {} bytes])", self.len())
    }
}
