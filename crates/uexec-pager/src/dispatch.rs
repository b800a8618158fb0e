//! Syscall user dispatch at start-up: how the pager sees the program's calls before its filter exists.
//!
//! (`PR_SET_SYSCALL_USER_DISPATCH`, Linux 5.11+; the filter is [`crate::filter`]'s.)
//!
//! Attaching a seccomp filter is the largest single cost of a pager's start-up: the kernel translates
//! and JIT-compiles the program, builds its per-number action cache with interrupts off, and frees the
//! compiled code again at exit (about 80 µs on the 2-vCPU machines of docs/benchmarks.md, a third of a
//! `-nostdlib` hello world's whole run under apager). Syscall user dispatch costs one `prctl`: every
//! system call made outside the loader's address range raises SIGSYS (`si_code` `SYS_USER_DISPATCH`),
//! and the same handler that serves the filter's traps makes the call from the loader's code.
//!
//! Dispatch traps every call, the filter only the ones that need the pager, so dispatch is the cheaper
//! of the two only for the first few calls: after [`BUDGET`] calls, or at the first call that must not
//! be made from inside a signal handler (see [`must_leave`]), the handler attaches the filter, turns
//! dispatch off and makes the program execute its `syscall` instruction again, now under the filter.
//! A program that makes a handful of calls (a hello world makes 2 to 15) never pays for the filter; one
//! that makes many pays [`BUDGET`] signal deliveries more than before (about the cost of the filter,
//! the classic bound of paying rent until buying would have been cheaper).
//!
//! Dispatch is per thread and is left before any thread, child process or new program exists: `clone`,
//! `clone3`, `fork`, `vfork`, `execve` and `execveat` are among the calls that end it; and before the
//! program has a signal stack of its own (`sigaltstack` ends it too), so the handler that attaches the
//! filter always runs on the pager's own stack.

use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use linux_raw_sys::general as k;
use linux_raw_sys::prctl as p;

/// Calls served by dispatch before the filter is attached.
pub const BUDGET: u32 = 32;

/// `si_code` of a SIGSYS raised by syscall user dispatch.
pub const SYS_USER_DISPATCH: i32 = k::SYS_USER_DISPATCH as i32;

static ON: AtomicBool = AtomicBool::new(false);
static SERVED: AtomicU32 = AtomicU32::new(0);

/// Turns dispatch on for this thread: calls from outside `[start, start + len)` raise SIGSYS. Returns
/// false if the kernel refuses (too old, or built without it), for the caller to attach the filter.
pub fn enter(start: u64, len: u64) -> bool {
    // prctl(PR_SET_SYSCALL_USER_DISPATCH, ON, offset, len, selector = NULL: always dispatch).
    let r = prctl5(
        p::PR_SET_SYSCALL_USER_DISPATCH,
        p::PR_SYS_DISPATCH_ON as u64,
        start,
        len,
        0,
    );
    let on = r == 0;
    ON.store(on, Ordering::Relaxed);
    on
}

/// Turns dispatch off for this thread (the filter has taken over).
pub fn leave() {
    let _ = prctl5(
        p::PR_SET_SYSCALL_USER_DISPATCH,
        p::PR_SYS_DISPATCH_OFF as u64,
        0,
        0,
        0,
    );
    ON.store(false, Ordering::Relaxed);
}

/// Whether dispatch is on.
pub fn on() -> bool {
    ON.load(Ordering::Relaxed)
}

/// Counts one dispatched call; true once the budget is spent.
pub fn spend() -> bool {
    SERVED.fetch_add(1, Ordering::Relaxed) >= BUDGET
}

/// Whether a dispatched call must be left to the filter rather than made from the handler: calls whose
/// effect depends on being made from the program's own context (`rt_sigreturn` restores the frame on
/// the stack it is made from; a new thread or a `vfork` child would start inside the handler), calls
/// that make another process or program (each starts under the filter, as every later call does),
/// calls that change how calls are filtered (`seccomp`, `prctl`: the pager's filter goes first),
/// `sigaltstack` (once the program has a signal stack of its own the handler runs on it, and building
/// the filter there takes about 20 KiB of stack: more than the Go runtime's 32 KiB signal stacks leave;
/// a Go program under dpager hung 3 runs in 10 with its heap overwritten below one), and calls of
/// another ABI (`int 0x80`, whose numbers are i386's).
pub fn must_leave(call: u64, arch: u32) -> bool {
    const AUDIT_ARCH_X86_64: u32 = linux_raw_sys::ptrace::AUDIT_ARCH_X86_64;
    if arch != AUDIT_ARCH_X86_64 {
        return true;
    }
    matches!(
        call as u32,
        k::__NR_rt_sigreturn
            | k::__NR_clone
            | k::__NR_clone3
            | k::__NR_fork
            | k::__NR_vfork
            | k::__NR_execve
            | k::__NR_execveat
            | k::__NR_seccomp
            | k::__NR_prctl
            | k::__NR_sigaltstack
    )
}

fn prctl5(option: u32, a: u64, b: u64, c: u64, d: u64) -> i64 {
    // prctl with scalar arguments (the selector is NULL); it reads no memory of ours.
    crate::sys::raw(k::__NR_prctl as u64, &[u64::from(option), a, b, c, d, 0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_calls_that_cannot_be_made_from_the_handler_leave_dispatch() {
        let x86_64 = linux_raw_sys::ptrace::AUDIT_ARCH_X86_64;
        for call in [
            k::__NR_rt_sigreturn,
            k::__NR_clone,
            k::__NR_clone3,
            k::__NR_fork,
            k::__NR_vfork,
            k::__NR_execve,
            k::__NR_execveat,
            k::__NR_seccomp,
            k::__NR_prctl,
            k::__NR_sigaltstack,
        ] {
            assert!(must_leave(call.into(), x86_64), "call {call}");
        }
        for call in [
            k::__NR_write,
            k::__NR_exit_group,
            k::__NR_restart_syscall,
            k::__NR_mmap,
        ] {
            assert!(!must_leave(call.into(), x86_64), "call {call}");
        }
        // i386's write (4) is x86-64's stat: another ABI always goes to the filter.
        assert!(must_leave(4, linux_raw_sys::ptrace::AUDIT_ARCH_I386));
    }
}
