//! The SIGSYS handler: it prepares what a trapped call needs, then performs the call itself.
//!
//! For each call the seccomp filter (or syscall user dispatch) traps, it grants the lazy pages the
//! kernel will touch and does what the pager needs (handing pages over, emulating signal calls).
//!
//! Why each is trapped:
//! - Any call with an argument pointing into the program image: the kernel reading or writing an untouched
//!   (still `PROT_NONE`) page would fail with `EFAULT` instead of faulting, so the pages the call may touch
//!   are made accessible first (the buffer's length is taken from the call where it has one). `mprotect`,
//!   `munmap`, `madvise`, `mremap` and `mmap` over image pages hand those pages to the program: from then on
//!   their protection is the program's, and a fault there is real.
//! - `rt_sigprocmask` and `rt_sigaction`: a fault while SIGSEGV (or SIGSYS) is blocked kills the process,
//!   so neither may ever be blocked; they are removed from the masks the program sets. A SIGSEGV handler
//!   the program installs is recorded, not installed: the pager stays the handler, and passes faults that
//!   are not its own to the program's (see [`crate::actions`]).
//! - `sigaltstack`: emulated, since the handler runs on the thread's alternate stack (see
//!   [`crate::threads`]); the pager's own stack is reported as none, as after a real exec.
//! - `exit_group`, when statistics were asked for: they are printed first.
//!
//! The filter allows every call made from the loader's own code (its fixed address range), so the handler
//! performs the trapped call with a plain `syscall` and puts the result in the program's `rax`. A `clone`
//! that makes a thread is trapped but performed after the handler returns, by loader code that gives the
//! new thread a pager stack first; `exit` is trapped to take that stack back (both in
//! [`crate::threads`]); `clone3` gets `ENOSYS` from the filter. `fork`, `vfork` and `rt_sigreturn` are
//! never trapped.
//!
//! # Safety
//!
//! The SIGSYS handler has the constraints of the SIGSEGV handler (no TLS, errno, allocator, locks, fmt,
//! panics). The structures it follows and the values it reads or writes back for the program (iovecs,
//! `msghdr`s, signal sets, `sigaction`/`sigaltstack` structs, argv arrays) go through
//! `process_vm_readv`/`writev` on its own pid after the lazy pages are granted (see
//! [`crate::usermem`]): a garbage pointer gives `EFAULT`, as natively, not a fault in the handler.
//! (execve's path and argument strings are still read directly by `crate::exec`, after being granted.)

use core::ffi::c_void;

use linux_raw_sys::general as k;

use crate::grant;
use crate::masks::{held_in_traps, program_mask};
use crate::sys::{self, nr, raw, reg, reg_ptr, KernelSigaction, SysInfo};
use crate::usermem::{own_pid, peek, read_word};

const SA_NODEFER: u64 = k::SA_NODEFER as u64;
const AT_FDCWD: i32 = k::AT_FDCWD;
const MREMAP_FIXED: u64 = k::MREMAP_FIXED as u64;

/// Installs the SIGSYS handler; returns the kernel's error.
///
/// # Safety
///
/// Single-threaded set-up, after the pager state exists and the thread has its pager stack.
pub(crate) unsafe fn install() -> Result<(), i64> {
    let action = KernelSigaction {
        handler: on_sigsys as *const () as usize,
        // SA_ONSTACK: a trapped call may come from a tiny stack (a goroutine's, a small thread's); every
        // thread has a pager stack (see crate::threads), whose sigaltstack() calls are emulated.
        // SA_NODEFER: the calls are performed inside the handler, where a signal may run a program
        // handler that makes a trapped call of its own; a blocked SIGSYS would kill. Other signals are
        // not blocked, so a blocking call stays interruptible as it is natively.
        flags: sys::SA_SIGINFO | sys::SA_ONSTACK | sys::SA_RESTORER | SA_NODEFER,
        restorer: sys::restore_rt as *const () as usize,
        mask: held_in_traps(),
    };
    // SAFETY: on_sigsys follows the handler contract of this module.
    let r = unsafe { sys::rt_sigaction(sys::SIGSYS, Some(&action), None) };
    if r < 0 {
        return Err(r);
    }
    Ok(())
}

/// Ends syscall user dispatch (see crate::dispatch): attaches the filter, then turns dispatch off, so
/// that no call of the program's goes unseen. If the kernel refuses the filter the pager cannot go on.
fn leave_dispatch() {
    if let Err(e) = crate::filter::attach() {
        crate::report::cannot_attach_filter(e);
    }
    crate::dispatch::leave();
}

extern "C" fn on_sigsys(_sig: i32, info: *mut SysInfo, context: *mut c_void) {
    // SAFETY: an SA_SIGINFO handler gets a valid siginfo and ucontext.
    let (call, args) = unsafe {
        let r = |n| reg_ptr(context, n).read();
        (
            (*info).syscall as u64,
            [
                r(reg::RDI),
                r(reg::RSI),
                r(reg::RDX),
                r(reg::R10),
                r(reg::R8),
                r(reg::R9),
            ],
        )
    };
    // SAFETY: as above.
    let (code, arch, after) = unsafe { ((*info).code, (*info).arch, (*info).call_addr) };
    if code == crate::dispatch::SYS_USER_DISPATCH
        && (crate::dispatch::spend() || crate::dispatch::must_leave(call, arch))
    {
        // The filter takes over; the program executes its `syscall` (or `int 0x80`, also two bytes)
        // again, under it. Dispatch left rax holding the call number, as at the instruction.
        leave_dispatch();
        // SAFETY: as above; the saved rip and rax are the interrupted program's.
        unsafe {
            reg_ptr(context, reg::RIP).write(after.wrapping_sub(2));
            reg_ptr(context, reg::RAX).write(call);
        }
        return;
    }
    if call == nr::CLONE {
        // Performed by a stub after this handler returns, unless it cannot be.
        if let Err(e) = crate::threads::redirect_clone(context) {
            // SAFETY: as above.
            unsafe { reg_ptr(context, reg::RAX).write(e as u64) };
        }
        return;
    }
    let result = handle(call, args, context);
    // SAFETY: as above; writing rax sets the trapped call's return value.
    unsafe { reg_ptr(context, reg::RAX).write(result as u64) };
}

/// Makes the pages the call may touch accessible, does what the pager needs, and performs the call.
fn handle(call: u64, args: [u64; 6], context: *mut c_void) -> i64 {
    prefault(call, &args);
    match call {
        nr::MPROTECT | nr::PKEY_MPROTECT | nr::MUNMAP => grant::hand_over(args[0], args[1]),
        nr::MREMAP | nr::MADVISE => {
            // The pages keep their protection (mremap takes it along): untouched ones, still
            // PROT_NONE, get their region's first, as they have natively.
            grant::ensure_accessible(args[0], args[1]);
            grant::hand_over(args[0], args[1]);
            if call == nr::MREMAP && args[3] & MREMAP_FIXED != 0 {
                // Whatever image pages lay at the destination are replaced.
                grant::hand_over(args[4], args[2]);
            }
        }
        nr::MMAP if args[0] != 0 => grant::hand_over(args[0], args[1]),
        nr::RT_SIGPROCMASK => return crate::masks::sigprocmask(&args, context),
        nr::RT_SIGACTION => return crate::actions::sigaction(args),
        nr::SIGALTSTACK => return crate::threads::sigaltstack(args[0], args[1], context),
        nr::EXIT => crate::threads::exit_thread(args[0]),
        nr::EXIT_GROUP => {
            crate::report::print_stats();
            sys::exit_group(args[0] as i32);
        }
        nr::EXECVE => {
            return crate::exec::through_pager(args[0], args[1], args[2], program_mask(context))
        }
        nr::EXECVEAT if args[0] as i32 == AT_FDCWD && args[4] == 0 => {
            return crate::exec::through_pager(args[1], args[2], args[3], program_mask(context));
        }
        _ => {}
    }
    raw(call, &args)
}

/// Makes accessible the image pages a call may read or write.
fn prefault(call: u64, args: &[u64; 6]) {
    let sized = |ptr: u64, len: u64| grant::ensure_accessible(ptr, len);
    match call {
        nr::READ | nr::WRITE | nr::PREAD64 | nr::PWRITE64 | nr::GETDENTS64 => {
            sized(args[1], args[2])
        }
        nr::GETCWD | nr::GETRANDOM => sized(args[0], args[1]),
        nr::READLINK => sized(args[1], args[2]),
        nr::READLINKAT => sized(args[2], args[3]),
        nr::POLL | nr::PPOLL => sized(args[0], args[1].saturating_mul(8)),
        nr::EPOLL_WAIT | nr::EPOLL_PWAIT => sized(args[1], args[2].saturating_mul(12)),
        nr::IO_GETEVENTS | nr::IO_PGETEVENTS => sized(args[3], args[2].saturating_mul(32)),
        nr::STAT | nr::LSTAT => sized(args[1], 144),
        nr::FSTAT => sized(args[1], 144),
        nr::NEWFSTATAT => sized(args[2], 144),
        nr::STATX => sized(args[4], 256),
        nr::PIPE | nr::PIPE2 => sized(args[0], 8),
        nr::EXECVE => crate::exec::prefault_exec_args(args[0], args[1], args[2]),
        nr::EXECVEAT => crate::exec::prefault_exec_args(args[1], args[2], args[3]),
        nr::SIGALTSTACK => {
            // The kernel writes signal frames onto the new stack later, from no system call the pager
            // sees: all of it must be accessible now.
            sized(args[0], 24);
            if let (Some(sp), Some(size)) =
                (read_word(args[0]), read_word(args[0].wrapping_add(16)))
            {
                sized(sp, size);
            }
        }
        _ => {}
    }
    prepare_indirect(call, args);
    // Any of the call's pointer arguments may be a path or a struct: make its page and, when it ends near
    // a page boundary, the next one reachable (longer strings and structs are rare). Only the arguments
    // the filter looked at (or that are direct pointers): the others are not the call's pointers.
    let checked = crate::calls::pointer_args(call).unwrap_or(args.len());
    for &arg in args.iter().take(checked) {
        grant::ensure_accessible(arg, 256);
    }
}

/// Most entries of an iovec array the kernel takes (`UIO_MAXIOV`), of an `mmsghdr` vector, and the
/// most `iocb`s of one `io_submit` followed.
const IOV_MAX: u64 = 1024;
/// Most waiters of a `futex_waitv`.
const FUTEX_WAITV_MAX: u64 = 128;
/// iovec entries copied at once (1 KiB of the handler's stack).
const IOV_CHUNK: usize = 64;

/// Makes accessible the buffers of the calls that reach them through memory ([`crate::calls::INDIRECT_CALLS`]):
/// each structure is granted, then copied out with [`peek`] (which cannot fault), then followed.
/// Bounded as the kernel bounds the calls; what cannot be read is left for the kernel to refuse.
fn prepare_indirect(call: u64, args: &[u64; 6]) {
    match call {
        nr::READV
        | nr::WRITEV
        | nr::PREADV
        | nr::PWRITEV
        | nr::PREADV2
        | nr::PWRITEV2
        | nr::VMSPLICE => prepare_iovecs(args[1], args[2]),
        nr::SENDMSG | nr::RECVMSG => prepare_msghdr(args[1]),
        nr::SENDMMSG | nr::RECVMMSG => {
            // struct mmsghdr: a msghdr and the length the kernel writes back, 64 bytes.
            let count = args[2].min(IOV_MAX);
            grant::ensure_accessible(args[1], count * 64);
            for i in 0..count {
                prepare_msghdr(args[1].wrapping_add(64 * i));
            }
        }
        nr::PROCESS_VM_READV | nr::PROCESS_VM_WRITEV => {
            prepare_iovecs(args[1], args[2]);
            let remote = args[4].min(IOV_MAX);
            grant::ensure_accessible(args[3], remote * 16);
            // The remote buffers are the program's own only when it names itself.
            if args[0] as u32 == own_pid() as u32 {
                prepare_iovecs(args[3], remote);
            }
        }
        nr::FUTEX_WAITV => {
            // struct futex_waitv { u64 val; u64 uaddr; u32 flags; u32 reserved; }
            let count = args[1].min(FUTEX_WAITV_MAX);
            grant::ensure_accessible(args[0], count * 24);
            for i in 0..count {
                let mut waiter = [0u64; 3];
                if peek(args[0].wrapping_add(24 * i), &mut waiter) < 24 {
                    break;
                }
                grant::ensure_accessible(waiter[1], 8);
            }
        }
        nr::IO_SUBMIT => {
            let count = args[1].min(IOV_MAX);
            grant::ensure_accessible(args[2], count * 8);
            let mut done = 0;
            while done < count {
                let mut pointers = [0u64; IOV_CHUNK];
                let n = (count - done).min(IOV_CHUNK as u64) as usize;
                let Some(chunk) = pointers.get_mut(..n) else {
                    break;
                };
                let got = peek(args[2].wrapping_add(8 * done), chunk) / 8;
                for &iocb in chunk.iter().take(got) {
                    prepare_iocb(iocb);
                }
                if got < n {
                    break;
                }
                done += n as u64;
            }
        }
        _ => {}
    }
}

/// An iovec array of `count` entries and the buffers it names.
fn prepare_iovecs(iov: u64, count: u64) {
    let count = count.min(IOV_MAX);
    grant::ensure_accessible(iov, count * 16);
    let mut done = 0;
    while done < count {
        let mut entries = [0u64; 2 * IOV_CHUNK];
        let n = (count - done).min(IOV_CHUNK as u64) as usize;
        let Some(chunk) = entries.get_mut(..2 * n) else {
            break;
        };
        let got = peek(iov.wrapping_add(16 * done), chunk) / 16;
        for entry in chunk.chunks_exact(2).take(got) {
            if let [base, len] = *entry {
                grant::ensure_accessible(base, len);
            }
        }
        if got < n {
            break;
        }
        done += n as u64;
    }
}

/// A `struct msghdr` (56 bytes: name, namelen, iov, iovlen, control, controllen, flags) and what it
/// names; the kernel writes the lengths and flags back.
fn prepare_msghdr(msg: u64) {
    grant::ensure_accessible(msg, 56);
    let mut header = [0u64; 7];
    if peek(msg, &mut header) < 56 {
        return;
    }
    grant::ensure_accessible(header[0], header[1] & 0xffff_ffff);
    grant::ensure_accessible(header[4], header[5]);
    prepare_iovecs(header[2], header[3]);
}

/// A `struct iocb` (64 bytes; the opcode at 16, the buffer at 24, its length or iovec count at 32).
fn prepare_iocb(iocb: u64) {
    const PREAD: u64 = 0;
    const PWRITE: u64 = 1;
    const PREADV: u64 = 7;
    const PWRITEV: u64 = 8;
    grant::ensure_accessible(iocb, 64);
    let mut block = [0u64; 8];
    if peek(iocb, &mut block) < 64 {
        return;
    }
    match block[2] & 0xffff {
        PREAD | PWRITE => grant::ensure_accessible(block[3], block[4]),
        PREADV | PWRITEV => prepare_iovecs(block[3], block[4]),
        _ => {}
    }
}
