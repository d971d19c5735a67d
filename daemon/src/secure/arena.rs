//! The locked-memory arena: a few mlock'd, `MADV_DONTDUMP` chunks carved into fixed-size slots.
//!
//! Why an arena and not one `mlock` per key: `RLIMIT_MEMLOCK` is typically 8 MiB and the kernel
//! locks whole pages, so locking every 32-byte key on its own page would cap the daemon at ~2,000
//! keys. Here 64 KiB chunks are mapped, locked and marked non-dumpable once, then cut into slots of
//! a few power-of-two size classes handed out from free lists. A freed slot is zeroized before it
//! goes back on its list, and chunks are kept for the life of the process (they are small, and a
//! kept chunk means the next session does not need another `mlock`).
//!
//! When `mlock` is refused (limit too low, `EPERM`) the arena keeps working from unlocked pages and
//! remembers why, so `GetStatus` can tell the user instead of the daemon refusing to run.
#![allow(unsafe_code)]

use std::ptr::NonNull;
use std::sync::{Mutex, MutexGuard, OnceLock};

use rustix::mm::{self, Advice, MapFlags, ProtFlags};
use rustix::process::{getrlimit, Resource};
use zeroize::Zeroize;

use crate::engine::MemoryStatus;

/// Slot sizes. Every allocation is rounded up to one of these; all are powers of two so a slot
/// aligned to its own size is aligned for anything a key type needs.
pub(crate) const SIZE_CLASSES: [usize; 8] = [32, 64, 128, 256, 512, 1024, 2048, 4096];

/// The largest request the arena serves; bigger secrets fall back to a zeroizing heap buffer.
pub(crate) const MAX_SLOT: usize = SIZE_CLASSES[SIZE_CLASSES.len() - 1];

/// Bytes mapped (and locked) at a time. A multiple of every page size Linux uses on x86-64/arm64.
const CHUNK_BYTES: usize = 64 * 1024;

/// The size class index serving `len` bytes, or `None` when `len` is too big for the arena.
pub(crate) fn class_for(len: usize) -> Option<usize> {
    SIZE_CLASSES.iter().position(|&size| size >= len)
}

/// A counters snapshot of one arena, for status reports and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ArenaStats {
    /// Bytes of chunks mapped from the kernel.
    pub mapped_bytes: u64,
    /// Of those, bytes mlock'd.
    pub locked_bytes: u64,
    /// Bytes of slots currently holding secrets (rounded up to the slot size).
    pub in_use_bytes: u64,
    /// Bytes of secrets too big for a slot (or allocated when mapping failed), kept in zeroizing
    /// heap buffers instead: these are not locked.
    pub heap_fallback_bytes: u64,
    /// Number of chunks mapped.
    pub chunks: u64,
}

/// One mapped region.
struct Chunk {
    /// Start of the mapping; page aligned.
    base: NonNull<u8>,
    /// Length of the mapping in bytes.
    len: usize,
}

/// Everything behind the arena's mutex.
struct Inner {
    /// Every chunk ever mapped; never unmapped, so slot pointers stay valid for the process.
    chunks: Vec<Chunk>,
    /// Bytes of the newest chunk already carved into slots; the rest is fresh.
    cursor: usize,
    /// Free slots per size class; each is zero-filled.
    free: [Vec<NonNull<u8>>; SIZE_CLASSES.len()],
    /// Counters reported by [`ArenaStats`].
    stats: ArenaStats,
    /// Why the last failed `mlock` failed; `None` while every chunk is locked.
    lock_failure: Option<String>,
    /// Why `MADV_DONTDUMP` was refused, if it was.
    dontdump_failure: Option<String>,
    /// Why mapping a chunk failed, if it did (allocations then fall back to the heap).
    map_failure: Option<String>,
}

// SAFETY: the raw pointers in `Inner` point into mappings owned by the arena itself (not into any
// thread-local or borrowed memory); they are only dereferenced by the owner of a slot or under the
// arena's mutex, so moving `Inner` between threads is sound.
unsafe impl Send for Inner {}

/// A pool of locked slots. The daemon uses one, [`global`]; tests make private ones so their byte
/// counts are not disturbed by other tests running in parallel.
pub struct Arena {
    /// All mutable state; held only for the few instructions of a free-list push/pop.
    inner: Mutex<Inner>,
}

/// The process-wide arena every [`super::LockedKey`] lives in.
pub(crate) fn global() -> &'static Arena {
    static ARENA: OnceLock<Arena> = OnceLock::new();
    ARENA.get_or_init(Arena::new)
}

/// The global arena's status, as `GetStatus` reports it.
pub fn arena_status() -> MemoryStatus {
    global().status()
}

/// The global arena's counters.
pub fn arena_stats() -> ArenaStats {
    global().stats()
}

impl Arena {
    /// A new arena with its first chunk mapped, so whether locking works is known at start-up.
    pub(crate) fn new() -> Self {
        let arena = Self {
            inner: Mutex::new(Inner {
                chunks: Vec::new(),
                cursor: 0,
                free: Default::default(),
                stats: ArenaStats::default(),
                lock_failure: None,
                dontdump_failure: None,
                map_failure: None,
            }),
        };
        arena.lock().map_chunk();
        arena
    }

    /// A private arena that lives for the rest of the process (slots borrow it `'static`).
    #[cfg(test)]
    pub(crate) fn leaked() -> &'static Self {
        Box::leak(Box::new(Self::new()))
    }

    /// The state; a panic while holding the lock cannot leave the free lists inconsistent (every
    /// update is a single push/pop plus counters), so a poisoned lock is simply taken over.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A zero-filled slot of size class `class`, or `None` when no memory could be mapped.
    pub(crate) fn alloc(&self, class: usize) -> Option<NonNull<u8>> {
        let mut inner = self.lock();
        let slot = match inner.free[class].pop() {
            Some(slot) => slot,
            None => inner.carve(class)?,
        };
        inner.stats.in_use_bytes += SIZE_CLASSES[class] as u64;
        Some(slot)
    }

    /// Zeroizes the slot and returns it to its free list.
    ///
    /// # Safety
    /// `slot` must come from `self.alloc(class)` with the same `class`, must not have been freed
    /// already, and no reference into it may outlive this call.
    pub(crate) unsafe fn free(&self, slot: NonNull<u8>, class: usize) {
        let size = SIZE_CLASSES[class];
        // SAFETY: per this function's contract the slot is `size` bytes of our mapping, owned by
        // the caller until now, with no outstanding references.
        let bytes = unsafe { std::slice::from_raw_parts_mut(slot.as_ptr(), size) };
        // Volatile writes plus a fence: the wipe is not optimised away as a dead store.
        bytes.zeroize();
        let mut inner = self.lock();
        inner.stats.in_use_bytes -= size as u64;
        inner.free[class].push(slot);
    }

    /// Records `len` bytes of secrets held on the heap instead of in a slot.
    pub(crate) fn note_heap(&self, len: usize, allocated: bool) {
        let mut inner = self.lock();
        if allocated {
            inner.stats.heap_fallback_bytes += len as u64;
        } else {
            inner.stats.heap_fallback_bytes -= len as u64;
        }
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> ArenaStats {
        self.lock().stats
    }

    /// The arena's status with the current `RLIMIT_MEMLOCK`.
    pub fn status(&self) -> MemoryStatus {
        let inner = self.lock();
        let limit = getrlimit(Resource::Memlock).current;
        let stats = inner.stats;
        let locked = inner.lock_failure.is_none() && inner.map_failure.is_none();
        let mut detail = match (&inner.lock_failure, &inner.map_failure) {
            (_, Some(why)) => format!(
                "mapping locked memory failed ({why}); secrets fall back to zeroizing heap \
                 buffers that may be swapped"
            ),
            (Some(why), None) => format!(
                "mlock failed ({why}); {} of {} arena bytes are unlocked and may be swapped. \
                 Raise RLIMIT_MEMLOCK (systemd: LimitMEMLOCK=) to lock them",
                stats.mapped_bytes - stats.locked_bytes,
                stats.mapped_bytes
            ),
            (None, None) => format!(
                "{} bytes in {} chunk(s) mlock'd and excluded from core dumps",
                stats.locked_bytes, stats.chunks
            ),
        };
        if let Some(why) = &inner.dontdump_failure {
            detail.push_str(&format!("; MADV_DONTDUMP refused ({why})"));
        }
        if stats.heap_fallback_bytes > 0 {
            detail.push_str(&format!(
                "; {} bytes of oversized secrets in unlocked zeroizing heap buffers",
                stats.heap_fallback_bytes
            ));
        }
        MemoryStatus {
            locked,
            in_use_bytes: stats.in_use_bytes,
            locked_bytes: stats.locked_bytes,
            limit_bytes: limit.unwrap_or(0),
            detail,
        }
    }

    /// Reads `len` bytes at `ptr` with volatile loads, so a test can look at a freed slot.
    ///
    /// # Safety
    /// `ptr..ptr+len` must lie inside one of this arena's chunks.
    #[cfg(test)]
    pub(crate) unsafe fn peek(&self, ptr: *const u8, len: usize) -> Vec<u8> {
        let inner = self.lock();
        let inside = inner.chunks.iter().any(|c| {
            let start = c.base.as_ptr() as usize;
            (ptr as usize) >= start && (ptr as usize) + len <= start + c.len
        });
        assert!(inside, "peek outside the arena");
        // SAFETY: the range is inside a live mapping of this arena (checked above; chunks are
        // never unmapped) and every byte of a mapping is initialised (zero-filled by mmap).
        (0..len)
            .map(|i| unsafe { std::ptr::read_volatile(ptr.add(i)) })
            .collect()
    }
}

impl Inner {
    /// Cuts a fresh slot of `class` from the newest chunk, mapping a new chunk when it is full.
    fn carve(&mut self, class: usize) -> Option<NonNull<u8>> {
        let size = SIZE_CLASSES[class];
        let chunk_len = self.chunks.last().map_or(0, |c| c.len);
        let start = self.cursor.next_multiple_of(size);
        if self.chunks.is_empty() || start + size > chunk_len {
            // Whatever is left of the old chunk is not wasted: it becomes smaller free slots.
            self.recycle_tail(chunk_len);
            let before = self.chunks.len();
            self.map_chunk();
            if self.chunks.len() == before {
                return None;
            }
        } else {
            self.recycle_tail(start);
        }
        self.carve_fresh(class)
    }

    /// Takes `class` from the newest chunk at `cursor`, which the caller made aligned and in range.
    fn carve_fresh(&mut self, class: usize) -> Option<NonNull<u8>> {
        let size = SIZE_CLASSES[class];
        let chunk = self.chunks.last()?;
        if self.cursor & (size - 1) != 0 || self.cursor + size > chunk.len {
            return None;
        }
        // SAFETY: `cursor + size <= len`, so the offset stays inside the chunk's mapping and the
        // resulting pointer is non-null.
        let slot = unsafe { NonNull::new_unchecked(chunk.base.as_ptr().add(self.cursor)) };
        self.cursor += size;
        Some(slot)
    }

    /// Turns the newest chunk's bytes between the cursor and `end` into free slots of the largest
    /// classes that fit aligned, and moves the cursor to `end`.
    fn recycle_tail(&mut self, end: usize) {
        let Some(base) = self.chunks.last().map(|c| c.base) else {
            return;
        };
        while self.cursor < end {
            let off = self.cursor;
            let Some(class) = (0..SIZE_CLASSES.len())
                .rev()
                .find(|&c| off & (SIZE_CLASSES[c] - 1) == 0 && off + SIZE_CLASSES[c] <= end)
            else {
                // Offsets are always multiples of the smallest class, so this is unreachable;
                // stopping here merely wastes the remainder.
                break;
            };
            // SAFETY: `off + size <= end <= chunk len`: the pointer stays inside the mapping.
            let slot = unsafe { NonNull::new_unchecked(base.as_ptr().add(off)) };
            self.free[class].push(slot);
            self.cursor += SIZE_CLASSES[class];
        }
    }

    /// Maps, locks and marks non-dumpable one more chunk, recording any failure. On success the
    /// cursor points at the start of the new chunk.
    fn map_chunk(&mut self) {
        // SAFETY: a fresh anonymous private mapping at an address the kernel picks aliases no
        // existing Rust object; the pointer it returns is page aligned and `CHUNK_BYTES` long.
        let mapped = unsafe {
            mm::mmap_anonymous(
                std::ptr::null_mut(),
                CHUNK_BYTES,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE,
            )
        };
        let base = match mapped.map(|p| NonNull::new(p.cast::<u8>())) {
            Ok(Some(base)) => base,
            Ok(None) => return self.note_map_failure("mmap returned null".into()),
            Err(e) => return self.note_map_failure(e.to_string()),
        };
        let ptr = base.as_ptr().cast();
        // SAFETY: `ptr..ptr+CHUNK_BYTES` is the mapping just created; mlock only pins its pages.
        match unsafe { mm::mlock(ptr, CHUNK_BYTES) } {
            Ok(()) => self.stats.locked_bytes += CHUNK_BYTES as u64,
            Err(e) => {
                let limit = getrlimit(Resource::Memlock).current;
                let why = format!("{e}, RLIMIT_MEMLOCK {limit:?}");
                if self.lock_failure.is_none() {
                    tracing::warn!(error = %why, "mlock refused; secrets may reach swap");
                }
                self.lock_failure = Some(why);
            }
        }
        // SAFETY: advice on our own mapping; neither changes its contents.
        if let Err(e) = unsafe { mm::madvise(ptr, CHUNK_BYTES, Advice::LinuxDontDump) } {
            tracing::warn!(error = %e, "MADV_DONTDUMP refused");
            self.dontdump_failure = Some(e.to_string());
        }
        // A forked child (password_command) gets zeros here instead of a copy of the keys. Older
        // kernels lack it; exec replaces the image anyway, so a refusal is only worth a debug line.
        // SAFETY: as above, advice on our own mapping.
        if let Err(e) = unsafe { mm::madvise(ptr, CHUNK_BYTES, Advice::LinuxWipeOnFork) } {
            tracing::debug!(error = %e, "MADV_WIPEONFORK refused");
        }
        self.chunks.push(Chunk {
            base,
            len: CHUNK_BYTES,
        });
        self.cursor = 0;
        self.map_failure = None;
        self.stats.mapped_bytes += CHUNK_BYTES as u64;
        self.stats.chunks += 1;
    }

    /// Remembers that no chunk could be mapped (allocations then use the heap).
    fn note_map_failure(&mut self, why: String) {
        tracing::warn!(error = %why, "could not map a locked-memory chunk");
        self.map_failure = Some(why);
    }
}
