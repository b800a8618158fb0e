//! The program's signal actions as it believes them, and `rt_sigaction` on its behalf.
//!
//! The SIGSEGV handler it installs is recorded, not installed, and kept aside for the pager's handler
//! to call (see [`program_segv_action`]).
//!
//! # Safety
//!
//! Runs in the SIGSYS and SIGSEGV handlers: raw system calls, the crate's [`Lock`] and copies
//! through [`crate::usermem`] only.

use crate::lock::Lock;
use crate::masks::SIGSET_SEGV_SYS;
use crate::sys::{self, nr, raw, KernelSigaction};
use crate::usermem::{peek, write_bytes};

const EFAULT: i64 = -(linux_raw_sys::errno::EFAULT as i64);

/// The program's SIGSEGV action, as it believes it installed it: written from the SIGSYS handler, read
/// from the SIGSEGV handler.
static PROGRAM_SEGV: Lock<KernelSigaction> = Lock::new(KernelSigaction {
    handler: 0,
    flags: 0,
    restorer: 0,
    mask: 0,
});

/// The SIGSEGV action the program asked for (`SIG_DFL` unless it installed one).
pub fn program_segv_action() -> KernelSigaction {
    PROGRAM_SEGV.get()
}

fn set_program_segv_action(action: KernelSigaction) {
    PROGRAM_SEGV.set(action);
}

/// Forgets the program's SIGSEGV handler (`SA_RESETHAND` after a delivery).
pub fn reset_program_segv_action() {
    set_program_segv_action(KernelSigaction::default());
}

/// Reads a `KernelSigaction` from the program's memory (see [`peek`]).
fn read_action(addr: u64) -> Option<KernelSigaction> {
    let mut words = [0u64; 4];
    (peek(addr, &mut words) == 32).then(|| KernelSigaction {
        handler: words[0] as usize,
        flags: words[1],
        restorer: words[2] as usize,
        mask: words[3],
    })
}

/// `rt_sigaction` on the program's behalf: SIGSEGV is recorded, not installed; other masks lose
/// SIGSEGV and SIGSYS.
pub(crate) fn sigaction(mut args: [u64; 6]) -> i64 {
    let sig = args[0] as i32;
    let new = args[1];
    let old = args[2];
    if sig == sys::SIGSEGV {
        let previous = program_segv_action();
        if new != 0 {
            let Some(action) = read_action(new) else {
                return EFAULT;
            };
            set_program_segv_action(action);
        }
        if old != 0 && !write_bytes(old, &previous) {
            return EFAULT;
        }
        return 0;
    }
    if sig == sys::SIGSYS {
        // The pager needs SIGSYS for itself; a program installing its own seccomp handler is not
        // supported. Report success and keep the pager's.
        if old != 0 && !write_bytes(old, &KernelSigaction::default()) {
            return EFAULT;
        }
        return 0;
    }
    let mut copy = KernelSigaction::default();
    if new != 0 {
        let Some(action) = read_action(new) else {
            return EFAULT;
        };
        copy = action;
        copy.mask &= !SIGSET_SEGV_SYS;
        args[1] = &copy as *const KernelSigaction as u64;
    }
    if let Some(result) = crate::fatal::intercept(sig, (new != 0).then_some(copy), old) {
        return result;
    }
    raw(nr::RT_SIGACTION, &args)
}
