//! `--stats` for a program killed by a signal.
//!
//! While the program leaves a signal whose default action ends the process at `SIG_DFL`, the pager
//! holds a handler for it that prints the statistics, restores `SIG_DFL` and raises the signal again,
//! so the process still dies of it (core dump included). The program sees `SIG_DFL` when it asks
//! (`rt_sigaction` is trapped, see [`intercept`]), and whatever it installs itself is installed for
//! real. Only with `--stats`; SIGKILL cannot be caught.
//!
//! # Safety
//!
//! The handler has the constraints of the other handlers: raw system calls and atomics only.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use linux_raw_sys::general as k;

use crate::sys::{self, KernelSigaction};

/// Set by [`install`]: whether this module holds signals at all (`--stats`).
static ON: AtomicBool = AtomicBool::new(false);

/// Signals the pager holds for the program (bit `sig - 1`), the program's own action being SIG_DFL.
static CAUGHT: AtomicU64 = AtomicU64::new(0);

/// Whether `sig`'s default action ends the process (SIGSEGV and SIGSYS are the pager's own already).
const fn ends_process(sig: i32) -> bool {
    matches!(sig, 1..=8 | 10 | 12..=16 | 24..=27 | 29 | 30 | 34..=64)
}

fn bit(sig: i32) -> u64 {
    1u64 << (sig - 1)
}

fn ours() -> KernelSigaction {
    KernelSigaction {
        handler: on_fatal as *const () as usize,
        flags: sys::SA_SIGINFO | sys::SA_RESTORER,
        restorer: sys::restore_rt as *const () as usize,
        mask: 0,
    }
}

/// Takes over every terminating signal whose disposition is `SIG_DFL` now.
///
/// # Safety
///
/// Single-threaded set-up, after the statistics exist.
pub unsafe fn install() {
    ON.store(true, Ordering::Relaxed);
    for sig in (1..=64).filter(|&s| ends_process(s)) {
        let mut old = KernelSigaction::default();
        // SAFETY: a query only.
        if unsafe { sys::rt_sigaction(sig, None, Some(&mut old)) } != 0
            || old.handler != sys::SIG_DFL
        {
            continue;
        }
        // SAFETY: on_fatal follows this module's handler contract.
        if unsafe { sys::rt_sigaction(sig, Some(&ours()), None) } == 0 {
            CAUGHT.fetch_or(bit(sig), Ordering::Relaxed);
        }
    }
}

/// `rt_sigaction(sig, new, old)` on the program's behalf for a signal this module may hold (only after
/// [`install`], that is with `--stats`); `None` if the call is none of its business. `new` has had SIGSEGV and SIGSYS removed from its mask already.
pub fn intercept(sig: i32, new: Option<KernelSigaction>, old: u64) -> Option<i64> {
    if !ON.load(Ordering::Relaxed) || !ends_process(sig) {
        return None;
    }
    let caught = CAUGHT.load(Ordering::Relaxed) & bit(sig) != 0;
    let mut real_old = KernelSigaction::default();
    let result = match new {
        // SIG_DFL asked: hold the signal (again).
        Some(action) if action.handler == sys::SIG_DFL => {
            // SAFETY: on_fatal follows this module's handler contract.
            let r = unsafe { sys::rt_sigaction(sig, Some(&ours()), Some(&mut real_old)) };
            if r == 0 {
                CAUGHT.fetch_or(bit(sig), Ordering::Relaxed);
            }
            r
        }
        // Anything else is the program's: install it for real.
        Some(action) => {
            // SAFETY: the program's own action, as it asked.
            let r = unsafe { sys::rt_sigaction(sig, Some(&action), Some(&mut real_old)) };
            if r == 0 {
                CAUGHT.fetch_and(!bit(sig), Ordering::Relaxed);
            }
            r
        }
        // SAFETY: a query only.
        None => unsafe { sys::rt_sigaction(sig, None, Some(&mut real_old)) },
    };
    if result == 0 && old != 0 {
        let reported = if caught {
            KernelSigaction::default()
        } else {
            real_old
        };
        // SAFETY: the program passed `old` for the kernel to write a sigaction into; its image pages
        // were made accessible by the prefault.
        unsafe { (old as *mut KernelSigaction).write_unaligned(reported) };
    }
    Some(result)
}

extern "C" fn on_fatal(sig: i32, _info: *mut core::ffi::c_void, _context: *mut core::ffi::c_void) {
    crate::report::print_stats();
    let default = KernelSigaction {
        handler: sys::SIG_DFL,
        flags: sys::SA_RESTORER,
        restorer: sys::restore_rt as *const () as usize,
        mask: 0,
    };
    // SAFETY: SIG_DFL is always a sound disposition.
    unsafe { sys::rt_sigaction(sig, Some(&default), None) };
    CAUGHT.fetch_and(!bit(sig), Ordering::Relaxed);
    let set = bit(sig);
    let pid = rustix::process::getpid().as_raw_nonzero().get() as u64;
    let tid = rustix::thread::gettid().as_raw_nonzero().get() as u64;
    // SAFETY: unblock the signal, then send it to this thread: it is delivered, with its default action,
    // as this call returns.
    unsafe {
        sys::syscall4(
            k::__NR_rt_sigprocmask as u64,
            k::SIG_UNBLOCK as u64,
            &set as *const u64 as u64,
            0,
            8,
        );
        sys::syscall4(k::__NR_tgkill as u64, pid, tid, sig as u64, 0);
    }
}
