//! Buffers for the loading phase, kept in .bss rather than on the stack.
//!
//! The loader's stack pages are faulted in one by one as a frame first reaches them, and a zeroed
//! 4 KiB array on the stack costs a page fault (and a memset) even where only a few bytes of it are
//! used. A .bss buffer is already zero and costs a fault only for the pages actually written: a path
//! search or an interpreter path touches one. Loading is single-threaded, and each buffer has one user.
//!
//! # Safety
//!
//! [`Scratch::borrow`] hands out a mutable reference to a static: sound only while nothing else holds
//! one to the same buffer, which each caller states.

use core::cell::UnsafeCell;

/// A static byte buffer for single-threaded loading code. Any alignment will do: the ELF headers read
/// into one are viewed in place through `object`'s unaligned types (the workspace enables its
/// `unaligned` feature), so where the linker puts a buffer cannot break loading.
pub struct Scratch<const N: usize>(UnsafeCell<[u8; N]>);

// SAFETY: the buffers are used only while loading, before the program (and so any other thread) runs,
// and each has a single user at a time (the contract of `borrow`).
unsafe impl<const N: usize> Sync for Scratch<N> {}

impl<const N: usize> Scratch<N> {
    pub const fn new() -> Self {
        Self(UnsafeCell::new([0; N]))
    }

    /// The buffer.
    ///
    /// # Safety
    ///
    /// No other reference to this buffer may be alive while the returned one is used.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn borrow(&self) -> &mut [u8; N] {
        // SAFETY: exclusive per the caller's contract.
        unsafe { &mut *self.0.get() }
    }
}

impl<const N: usize> Default for Scratch<N> {
    fn default() -> Self {
        Self::new()
    }
}
