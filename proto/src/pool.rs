//! Payload buffers for large frames, used again once a frame is dropped.
//!
//! A large frame (a file chunk, a video frame) is assembled in a buffer of
//! its own, which its blob then owns (no copy). Without a pool each such
//! frame is a fresh allocation of 64 KiB–1 MiB: the allocator hands such
//! sizes out as pages the kernel has not backed yet (or gives them back
//! between frames), so every byte of a download was first a page fault:
//! about 120,000 faults and a fifth of the receiving client's CPU time per
//! GiB. A [`BufferPool`] keeps a few of those buffers: a frame's blob gives
//! its buffer back when the last [`bytes::Bytes`] pointing into it is
//! dropped, wherever that happens, and the decoder takes it for the next
//! large frame.
//!
//! What a pool keeps idle is bounded: at most its `keep` buffers, none
//! larger than [`POOLED_MAX`]. Several decoders may share one pool.

use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;

/// The largest buffer a pool keeps (a larger frame's buffer is freed).
pub const POOLED_MAX: usize = 1024 * 1024;

/// A bounded set of idle payload buffers; cloning it gives another handle
/// to the same set.
#[derive(Clone, Debug)]
pub struct BufferPool {
    inner: Arc<Inner>,
}

struct Inner {
    free: Mutex<Vec<Vec<u8>>>,
    keep: usize,
}

impl std::fmt::Debug for Inner {
    /// Counts only: idle buffers hold earlier frames' bytes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BufferPool")
            .field("idle", &self.lock().len())
            .field("keep", &self.keep)
            .finish()
    }
}

impl BufferPool {
    /// A pool keeping at most `keep` idle buffers (each at most
    /// [`POOLED_MAX`] bytes).
    pub fn new(keep: usize) -> BufferPool {
        BufferPool {
            inner: Arc::new(Inner {
                free: Mutex::new(Vec::with_capacity(keep)),
                keep,
            }),
        }
    }

    /// How many buffers are idle in the pool now.
    pub fn idle(&self) -> usize {
        self.inner.lock().len()
    }

    /// An empty buffer with room for `len` bytes: an idle one that holds
    /// `len` and at most twice as much, else a new one of exactly `len`.
    /// (Any idle one would let a peer have small frames sit in 1 MiB
    /// buffers, many times what the limits count: they count lengths.)
    pub(crate) fn take(&self, len: usize) -> Vec<u8> {
        let fits = |b: &Vec<u8>| b.capacity() >= len && b.capacity() / 2 <= len;
        let reused = if len <= POOLED_MAX {
            let mut free = self.inner.lock();
            free.iter().rposition(fits).map(|i| free.swap_remove(i))
        } else {
            None
        };
        let mut buf = reused.unwrap_or_default();
        buf.clear();
        buf.reserve_exact(len);
        buf
    }

    /// Keeps `buf` for a later frame, or frees it when the pool is full or
    /// the buffer too large.
    pub(crate) fn give(&self, buf: Vec<u8>) {
        self.inner.give(buf);
    }

    /// `buf` as the bytes of a blob; its buffer comes back to this pool
    /// when the last `Bytes` sharing it is dropped.
    pub(crate) fn blob(&self, buf: Vec<u8>) -> Bytes {
        Bytes::from_owner(Returning {
            buf,
            pool: self.inner.clone(),
        })
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Vec<u8>>> {
        self.free.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn give(&self, buf: Vec<u8>) {
        if buf.capacity() == 0 || buf.capacity() > POOLED_MAX {
            return;
        }
        let mut free = self.lock();
        if free.len() < self.keep {
            free.push(buf);
        }
    }
}

/// A buffer that goes back to its pool when dropped.
struct Returning {
    buf: Vec<u8>,
    pool: Arc<Inner>,
}

impl AsRef<[u8]> for Returning {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Returning {
    fn drop(&mut self) {
        self.pool.give(std::mem::take(&mut self.buf));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_blob_gives_its_buffer_back_for_the_next_frame() {
        let pool = BufferPool::new(2);
        let mut buf = pool.take(256 * 1024);
        buf.extend_from_slice(&[7u8; 1000]);
        let at = buf.as_ptr();
        let blob = pool.blob(buf);
        let part = blob.slice(10..20);
        drop(blob);
        // Still shared by a slice: not back yet.
        assert_eq!(pool.idle(), 0);
        assert_eq!(part.as_ref(), &[7u8; 10]);
        drop(part);
        assert_eq!(pool.idle(), 1);
        let again = pool.take(200 * 1024);
        assert_eq!(again.as_ptr(), at, "the same buffer, not a new one");
        assert!(again.is_empty());
    }

    #[test]
    fn a_small_frame_never_takes_a_buffer_much_larger_than_itself() {
        let pool = BufferPool::new(4);
        pool.give(Vec::with_capacity(POOLED_MAX));
        pool.give(Vec::with_capacity(100 * 1024));
        // 65 KiB: not the 1 MiB one (which would hold 16 times what the
        // frame's length says), but the 100 KiB one.
        let small = pool.take(65 * 1024);
        assert_eq!(small.capacity(), 100 * 1024);
        let smaller = pool.take(65 * 1024);
        assert!(
            smaller.capacity() < 2 * 65 * 1024,
            "a new buffer of its size"
        );
        assert_eq!(pool.idle(), 1, "the 1 MiB one stays for a large frame");
        assert!(pool.take(POOLED_MAX).capacity() == POOLED_MAX);
        assert_eq!(pool.idle(), 0);
        assert!(format!("{pool:?}").contains("idle: 0"));
    }

    #[test]
    fn a_pool_keeps_at_most_its_count_and_no_large_buffers() {
        let pool = BufferPool::new(2);
        for _ in 0..5 {
            pool.give(Vec::with_capacity(1024));
        }
        assert_eq!(pool.idle(), 2);
        let pool = BufferPool::new(2);
        pool.give(Vec::with_capacity(POOLED_MAX + 1));
        pool.give(Vec::new());
        assert_eq!(pool.idle(), 0);
    }
}
