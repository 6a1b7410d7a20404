//! Large byte buffers kept from one request for the next.
//!
//! A page of records is read into one buffer (the Sync node's answer) and
//! translated into another (the client's), each about half a megabyte for
//! 1,000 records. Allocated fresh each time, such buffers come from memory
//! the allocator has just handed back to the kernel, and every page of them
//! is faulted in again. Kept here instead, they are reused as they are.
//!
//! The answer is written by its worker (or, for a client that reads slowly,
//! finished by a thread of its own) and the next page is read
//! by whichever worker is free, so the spares are shared by all threads
//! (not per thread). Only buffers of [`MIN`] to [`MAX`] bytes
//! are kept, at most [`KEPT`] bytes in all: what stays allocated when the
//! server is idle is bounded.

use std::sync::Mutex;

/// Smaller buffers are cheap to allocate: not kept.
pub const MIN: usize = 64 * 1024;
/// Larger buffers (a page of unusually large records) are not kept.
pub const MAX: usize = 2 * 1024 * 1024;
/// Most bytes kept in spare buffers, all together.
pub const KEPT: usize = 4 * 1024 * 1024;

static SPARE: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

fn spares() -> std::sync::MutexGuard<'static, Vec<Vec<u8>>> {
    crate::concurrency::lock(&SPARE)
}

/// An empty buffer with room for `capacity` bytes: the smallest spare that
/// has it, else a new one.
pub fn take(capacity: usize) -> Vec<u8> {
    if capacity >= MIN {
        let mut spare = spares();
        let best = spare
            .iter()
            .enumerate()
            .filter(|(_, b)| b.capacity() >= capacity)
            .min_by_key(|(_, b)| b.capacity())
            .map(|(i, _)| i);
        if let Some(i) = best {
            return spare.swap_remove(i);
        }
    }
    Vec::with_capacity(capacity)
}

/// Keep `buf` for a later [`take`] if its size is worth keeping and there
/// is room; else free it.
pub fn give(mut buf: Vec<u8>) {
    if !(MIN..=MAX).contains(&buf.capacity()) {
        return;
    }
    buf.clear();
    let mut spare = spares();
    let kept: usize = spare.iter().map(Vec::capacity).sum();
    if kept + buf.capacity() <= KEPT {
        spare.push(buf);
    }
}

/// A buffer that goes back to the spares when dropped (a response body,
/// dropped once written).
#[derive(Debug, Default)]
pub struct Recycled(pub Vec<u8>);

impl AsRef<[u8]> for Recycled {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Recycled {
    fn drop(&mut self) {
        give(std::mem::take(&mut self.0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spares are shared by the whole test binary: this is the only test
    /// that takes or gives buffers of a kept size.
    #[test]
    fn spares_are_reused_and_bounded() {
        let a = take(100 * 1024);
        let ptr = a.as_ptr();
        drop(Recycled(a));
        // The same memory comes back, empty, for a request that fits.
        let b = take(80 * 1024);
        assert_eq!((b.as_ptr(), b.len()), (ptr, 0));
        // Nothing fits: a new buffer.
        let c = take(200 * 1024);
        assert_ne!(c.as_ptr(), ptr);
        give(b);
        give(c);
        // Small and huge buffers are not kept; the total is bounded.
        give(Vec::with_capacity(1024));
        give(Vec::with_capacity(MAX + 1));
        for _ in 0..2 * KEPT / MAX {
            give(Vec::with_capacity(MAX));
        }
        let spare = spares();
        let kept: usize = spare.iter().map(Vec::capacity).sum();
        assert!(kept <= KEPT, "{kept}");
        assert!(spare.iter().all(|b| (MIN..=MAX).contains(&b.capacity())));
        assert!(spare.iter().all(Vec::is_empty));
    }
}
