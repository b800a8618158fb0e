//! The program's memory, read and written through the kernel for the SIGSYS handler.
//!
//! Words, structures and strings the program passed to a trapped call are copied with
//! `process_vm_readv`/`writev` on the own process, so that a bad pointer gives `EFAULT` as natively
//! instead of a fault in the handler.

use crate::sys::{nr, raw};

/// Copies the program's memory at `addr` into `words`, as far as it is readable; returns the number of
/// bytes copied.
///
/// The handler never dereferences a pointer the program passed: a garbage one would fault inside the
/// handler (killing the program where natively the call returns `EFAULT`), and one into a lazy page not
/// yet granted would too. `process_vm_readv` on the own process copies like the kernel's own
/// `copy_from_user`: an unmapped or `PROT_NONE` page ends the copy with `EFAULT` or a short count. It
/// needs no privilege for the own process (the access check passes for the same thread group). The
/// alternative, reading directly after checking the region table and granting, would still fault on
/// memory outside the image (the stack, the heap, garbage). Callers grant the lazy pages first
/// (`grant::ensure_accessible`), so a structure in untouched bss reads as it does natively.
pub(crate) fn peek(addr: u64, words: &mut [u64]) -> usize {
    let len = core::mem::size_of_val(words);
    if addr < uexec_elf::PAGE_SIZE || len == 0 {
        return 0;
    }
    let local = [words.as_mut_ptr() as u64, len as u64];
    let remote = [addr, len as u64];
    let copied = raw(
        nr::PROCESS_VM_READV,
        &[
            own_pid(),
            local.as_ptr() as u64,
            1,
            remote.as_ptr() as u64,
            1,
            0,
        ],
    );
    usize::try_from(copied).unwrap_or(0)
}

/// The process id, asked each time: after a `fork` (never trapped) the child has a new one.
pub(crate) fn own_pid() -> u64 {
    raw(nr::GETPID, &[0; 6]) as u64
}

/// Reads a word of the program's memory: a pointer or value it passed to a trapped call. `None` where
/// the kernel would fail with `EFAULT` (the first page, unmapped or inaccessible memory): see [`peek`].
pub(crate) fn read_word(addr: u64) -> Option<u64> {
    let mut word = [0u64];
    (peek(addr, &mut word) == 8).then_some(word[0])
}

/// Writes `value` into the program's memory at `addr` as the kernel would (`process_vm_writev` on the
/// own process: a read-only, unmapped or inaccessible page fails instead of faulting, see [`peek`]).
/// Whether it was all written.
pub(crate) fn write_bytes<T>(addr: u64, value: &T) -> bool {
    let len = core::mem::size_of::<T>() as u64;
    if addr < uexec_elf::PAGE_SIZE {
        return false;
    }
    let local = [value as *const T as u64, len];
    let remote = [addr, len];
    let written = raw(
        nr::PROCESS_VM_WRITEV,
        &[
            own_pid(),
            local.as_ptr() as u64,
            1,
            remote.as_ptr() as u64,
            1,
            0,
        ],
    );
    written == len as i64
}

/// Whether the program's memory at `addr` holds a NUL-terminated string (within `max` bytes, or `max`
/// readable bytes without one), checked through [`peek`]: execve's path is then read directly.
pub(crate) fn readable_string(addr: u64, max: usize) -> bool {
    let mut chunk = [0u64; 8];
    let mut done = 0;
    while done < max {
        // A copy that runs into unreadable memory stops short at the page boundary; the next one,
        // from there, copies nothing.
        let got = peek(addr.wrapping_add(done as u64), &mut chunk);
        if got == 0 {
            return false;
        }
        if chunk
            .iter()
            .flat_map(|w| w.to_ne_bytes())
            .take(got)
            .any(|b| b == 0)
        {
            return true;
        }
        done += got;
    }
    true
}
