//! `LockedStorage`: an owned, zero-on-drop byte region — an arena slot when one fits, else a
//! zeroizing heap buffer (counted by the arena as unlocked). The typed wrappers (`LockedKey`,
//! `LockedBuf`, `LockedText`) are built on it, so this is the only place slot pointers are used.
#![allow(unsafe_code)]

use std::ptr::NonNull;

use zeroize::Zeroize;

use super::arena::{class_for, Arena, MAX_SLOT};

/// Where the bytes live.
enum Place {
    /// A slot of the arena; `class` is its size class index.
    Slot {
        /// The arena that owns the slot (arenas live for the whole process).
        arena: &'static Arena,
        /// Start of the slot.
        ptr: NonNull<u8>,
        /// Size class index, needed to free it.
        class: usize,
    },
    /// Too big for a slot, or no chunk could be mapped: a heap buffer wiped on drop.
    Heap {
        /// The arena whose heap-fallback counter includes these bytes.
        arena: &'static Arena,
        /// The bytes.
        bytes: Box<[u8]>,
    },
}

/// An owned byte region of at least `len` bytes, zero-filled at creation and zeroized on drop.
pub(crate) struct LockedStorage {
    /// The memory.
    place: Place,
    /// Bytes the owner asked for; the slot may be larger (the excess stays zero).
    len: usize,
}

// SAFETY: `LockedStorage` owns its slot exclusively, like a `Box<[u8]>`: no other handle to the same
// bytes exists, shared access through `&self` is read-only, and the arena it frees into is `Sync`
// (a `Mutex`). So sending it to or sharing it with another thread is as sound as for a `Box`.
unsafe impl Send for LockedStorage {}
// SAFETY: see `Send` above; `&LockedStorage` only hands out `&[u8]`.
unsafe impl Sync for LockedStorage {}

impl LockedStorage {
    /// `len` zero bytes in `arena`.
    pub(crate) fn zeroed(arena: &'static Arena, len: usize) -> Self {
        let slot = class_for(len)
            .filter(|_| len > 0 && len <= MAX_SLOT)
            .and_then(|class| arena.alloc(class).map(|ptr| (ptr, class)));
        let place = match slot {
            Some((ptr, class)) => Place::Slot { arena, ptr, class },
            None => {
                arena.note_heap(len, true);
                Place::Heap {
                    arena,
                    bytes: vec![0u8; len].into_boxed_slice(),
                }
            }
        };
        Self { place, len }
    }

    /// A copy of `src` in `arena`.
    pub(crate) fn copy_of(arena: &'static Arena, src: &[u8]) -> Self {
        let mut storage = Self::zeroed(arena, src.len());
        storage.bytes_mut().copy_from_slice(src);
        storage
    }

    /// A second copy of these bytes in the same arena, without passing through the stack.
    pub(crate) fn duplicate(&self) -> Self {
        let arena = match &self.place {
            Place::Slot { arena, .. } | Place::Heap { arena, .. } => *arena,
        };
        Self::copy_of(arena, self.bytes())
    }

    /// The `len` bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        match &self.place {
            // SAFETY: the slot is `SIZE_CLASSES[class] >= len` bytes of a live mapping (chunks
            // are never unmapped), initialised (zero-filled), and owned by `self`; the borrow of
            // `self` keeps it from being freed or written while the slice is alive.
            Place::Slot { ptr, .. } => unsafe {
                std::slice::from_raw_parts(ptr.as_ptr(), self.len)
            },
            Place::Heap { bytes, .. } => bytes,
        }
    }

    /// The `len` bytes, writable.
    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        match &mut self.place {
            // SAFETY: as in `bytes`, and `&mut self` makes this the only borrow of the slot.
            Place::Slot { ptr, .. } => unsafe {
                std::slice::from_raw_parts_mut(ptr.as_ptr(), self.len)
            },
            Place::Heap { bytes, .. } => bytes,
        }
    }

    /// The first `N` bytes as an array reference.
    ///
    /// # Safety
    /// The storage must have been created with a length of at least `N`.
    pub(crate) unsafe fn array_unchecked<const N: usize>(&self) -> &[u8; N] {
        debug_assert!(self.len >= N);
        // SAFETY: `bytes()` is `len >= N` initialised bytes (caller's contract) borrowed from
        // `self`; `[u8; N]` has alignment 1, so the cast pointer is valid for the same lifetime.
        unsafe { &*self.bytes().as_ptr().cast::<[u8; N]>() }
    }

    /// Bytes the owner asked for.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// True when the bytes live in an arena slot (locked if the arena could lock).
    pub(crate) fn in_arena(&self) -> bool {
        matches!(self.place, Place::Slot { .. })
    }

    /// Where the slot starts, so a test can look at it after the owner is dropped.
    #[cfg(test)]
    pub(crate) fn slot_addr(&self) -> Option<(*const u8, usize)> {
        match &self.place {
            Place::Slot { ptr, class, .. } => {
                Some((ptr.as_ptr(), super::arena::SIZE_CLASSES[*class]))
            }
            Place::Heap { .. } => None,
        }
    }
}

impl Drop for LockedStorage {
    fn drop(&mut self) {
        match &mut self.place {
            Place::Slot { arena, ptr, class } => {
                // SAFETY: the slot came from `arena.alloc(*class)`, is freed only here (drop runs
                // once), and `&mut self` guarantees no borrow of it is alive.
                unsafe { arena.free(*ptr, *class) };
            }
            Place::Heap { arena, bytes } => {
                bytes.zeroize();
                arena.note_heap(bytes.len(), false);
            }
        }
    }
}
