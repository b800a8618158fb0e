//! The per-thread signal masks as the program believes them, and `rt_sigprocmask` on its behalf.
//!
//! SIGSEGV and SIGSYS are never really blocked (a fault while SIGSEGV is blocked kills), so the bits
//! the program asked for are kept here per thread; also the signals held while a trapped call is
//! handled.
//!
//! # Safety
//!
//! Runs in the SIGSYS and SIGSEGV handlers: atomics, raw system calls and the ucontext the kernel
//! passed only.

use core::ffi::c_void;
use core::sync::atomic::{AtomicU64, Ordering};

use linux_raw_sys::general as k;

use crate::sys::{self, UC_SIGMASK_OFFSET};
use crate::usermem::{read_word, write_bytes};

/// SIGSEGV and SIGSYS, as a signal set.
pub(crate) const SIGSET_SEGV_SYS: u64 = (1 << (sys::SIGSEGV - 1)) | (1 << (sys::SIGSYS - 1));
const EINVAL: i64 = -(linux_raw_sys::errno::EINVAL as i64);
const EFAULT: i64 = -(linux_raw_sys::errno::EFAULT as i64);
const SIGKILL_SIGSTOP: u64 = (1 << (9 - 1)) | (1 << (19 - 1));

/// At set-up: SIGSEGV and SIGSYS may have come blocked (from whoever started the pager, or from the
/// pager that executed this one): unblocks them, and remembers them as blocked in the program's view.
pub(crate) fn take_over() {
    let unblock = SIGSET_SEGV_SYS;
    let mut old = 0u64;
    // SAFETY: rt_sigprocmask with pointers to local 8-byte sets.
    unsafe {
        sys::syscall4(
            k::__NR_rt_sigprocmask as u64,
            1,
            &unblock as *const u64 as u64,
            &mut old as *mut u64 as u64,
            8,
        )
    };
    set_virtual_blocked(
        rustix::thread::gettid().as_raw_nonzero().get() as u32,
        old & SIGSET_SEGV_SYS,
    );
}

/// The blocked set of the interrupted program as it believes it to be.
pub(crate) fn program_mask(context: *mut c_void) -> u64 {
    let tid = rustix::thread::gettid().as_raw_nonzero().get() as u32;
    // SAFETY: `context` is the ucontext of the SIGSYS being handled.
    let saved = unsafe {
        context
            .cast::<u8>()
            .add(UC_SIGMASK_OFFSET)
            .cast::<u64>()
            .read_unaligned()
    };
    saved | virtual_blocked(tid)
}

/// `rt_sigprocmask` on the program's behalf. Inside the handler the blocked set is the handler's, and
/// the kernel restores the interrupted one from the signal frame when the handler returns: so the call is
/// answered from, and applied to, the mask saved in the frame (`uc_sigmask`). SIGSEGV and SIGSYS are
/// never blocked.
pub(crate) fn sigprocmask(args: &[u64; 6], context: *mut c_void) -> i64 {
    const SIG_BLOCK: u64 = k::SIG_BLOCK as u64;
    const SIG_UNBLOCK: u64 = k::SIG_UNBLOCK as u64;
    const SIG_SETMASK: u64 = k::SIG_SETMASK as u64;
    let (how, set, old, size) = (args[0], args[1], args[2], args[3]);
    if size != 8 {
        return EINVAL;
    }
    // SAFETY: `context` is the ucontext of the SIGSYS being handled.
    let saved = unsafe { context.cast::<u8>().add(UC_SIGMASK_OFFSET).cast::<u64>() };
    let tid = rustix::thread::gettid().as_raw_nonzero().get() as u32;
    // The mask as the program believes it is: the real one plus the SIGSEGV/SIGSYS it asked to block.
    // SAFETY: as above.
    let current = unsafe { saved.read_unaligned() } | virtual_blocked(tid);
    let new = if set != 0 {
        let Some(set) = read_word(set) else {
            return EFAULT;
        };
        match how {
            SIG_BLOCK => Some(current | set),
            SIG_UNBLOCK => Some(current & !set),
            SIG_SETMASK => Some(set),
            _ => return EINVAL,
        }
    } else {
        None
    };
    if old != 0 && !write_bytes(old, &current) {
        return EFAULT;
    }
    if let Some(new) = new {
        set_virtual_blocked(tid, new & SIGSET_SEGV_SYS);
        // SAFETY: as above.
        unsafe { saved.write_unaligned(new & !SIGSET_SEGV_SYS & !SIGKILL_SIGSTOP) };
    }
    0
}

/// Per thread, the SIGSEGV and SIGSYS bits the program asked to block (and that stay unblocked): a small
/// open-addressed table of `tid << 32 | bits`, so that reading the mask back gives what was set.
const VIRTUAL_SLOTS: usize = 256;
static VIRTUAL_MASKS: [AtomicU64; VIRTUAL_SLOTS] = [const { AtomicU64::new(0) }; VIRTUAL_SLOTS];

fn virtual_slots(tid: u32) -> impl Iterator<Item = &'static AtomicU64> {
    let start = tid as usize % VIRTUAL_SLOTS;
    (0..16).filter_map(move |i| VIRTUAL_MASKS.get((start + i) % VIRTUAL_SLOTS))
}

/// Signals that wait while a trapped call is handled ([`hold_during_traps`]).
static HELD_IN_TRAPS: AtomicU64 = AtomicU64::new(0);

/// Makes `sig` wait while the SIGSYS handler runs: the checkpoint signal, whose handler must find the
/// program's own registers in its frame, not the pager's in the middle of a trapped call. (A blocking
/// call performed there delays the checkpoint until it returns.) Call before [`crate::install`].
pub fn hold_during_traps(sig: u32) {
    if (1..=64).contains(&sig) {
        HELD_IN_TRAPS.fetch_or(1 << (sig - 1), Ordering::Relaxed);
    }
}

/// The signals [`hold_during_traps`] holds.
pub fn held_in_traps() -> u64 {
    HELD_IN_TRAPS.load(Ordering::Relaxed)
}

/// The SIGSEGV and SIGSYS bits the calling thread asked to block (the kernel's mask never has them).
pub fn program_blocked() -> u64 {
    virtual_blocked(rustix::thread::gettid().as_raw_nonzero().get() as u32)
}

fn virtual_blocked(tid: u32) -> u64 {
    virtual_slots(tid)
        .map(|slot| slot.load(Ordering::Relaxed))
        .find(|&v| (v >> 32) as u32 == tid)
        .map_or(0, |v| v & SIGSET_SEGV_SYS)
}

fn set_virtual_blocked(tid: u32, bits: u64) {
    for slot in virtual_slots(tid) {
        let v = slot.load(Ordering::Relaxed);
        if (v >> 32) as u32 == tid {
            slot.store(
                if bits == 0 {
                    0
                } else {
                    (u64::from(tid) << 32) | bits
                },
                Ordering::Relaxed,
            );
            return;
        }
    }
    if bits == 0 {
        return;
    }
    for slot in virtual_slots(tid) {
        if slot
            .compare_exchange(
                0,
                (u64::from(tid) << 32) | bits,
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .is_ok()
        {
            return;
        }
    }
}
