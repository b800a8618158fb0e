//! The system calls a demand pager must see: a seccomp filter that raises SIGSYS for them, and the
//! SIGSYS handler that does what the pager needs and then performs the call itself.
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
//!   are not its own to the program's (see [`program_segv_action`]).
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
//! panics). It reads the program's memory only through pages it first made accessible.

use core::cell::UnsafeCell;
use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::pager;
use linux_raw_sys::general as k;

use crate::sys::{self, KernelSigaction};

/// Where the loaders are linked: a call whose instruction pointer has these high 32 bits is the loader's.
const LOADER_IP_HIGH: u32 = 0x3c00;

/// System call numbers the handler dispatches on.
pub(crate) mod nr {
    use linux_raw_sys::general as k;

    pub const READ: u64 = k::__NR_read as u64;
    pub const WRITE: u64 = k::__NR_write as u64;
    pub const STAT: u64 = k::__NR_stat as u64;
    pub const FSTAT: u64 = k::__NR_fstat as u64;
    pub const LSTAT: u64 = k::__NR_lstat as u64;
    pub const MMAP: u64 = k::__NR_mmap as u64;
    pub const MPROTECT: u64 = k::__NR_mprotect as u64;
    pub const MUNMAP: u64 = k::__NR_munmap as u64;
    pub const RT_SIGACTION: u64 = k::__NR_rt_sigaction as u64;
    pub const RT_SIGPROCMASK: u64 = k::__NR_rt_sigprocmask as u64;
    pub const PREAD64: u64 = k::__NR_pread64 as u64;
    pub const PWRITE64: u64 = k::__NR_pwrite64 as u64;
    pub const READV: u64 = k::__NR_readv as u64;
    pub const WRITEV: u64 = k::__NR_writev as u64;
    pub const PIPE: u64 = k::__NR_pipe as u64;
    pub const MREMAP: u64 = k::__NR_mremap as u64;
    pub const MADVISE: u64 = k::__NR_madvise as u64;
    pub const GETCWD: u64 = k::__NR_getcwd as u64;
    pub const READLINK: u64 = k::__NR_readlink as u64;
    pub const SIGALTSTACK: u64 = k::__NR_sigaltstack as u64;
    pub const GETDENTS64: u64 = k::__NR_getdents64 as u64;
    pub const EXIT_GROUP: u64 = k::__NR_exit_group as u64;
    pub const NEWFSTATAT: u64 = k::__NR_newfstatat as u64;
    pub const READLINKAT: u64 = k::__NR_readlinkat as u64;
    pub const PIPE2: u64 = k::__NR_pipe2 as u64;
    pub const GETRANDOM: u64 = k::__NR_getrandom as u64;
    pub const STATX: u64 = k::__NR_statx as u64;
    pub const PKEY_MPROTECT: u64 = k::__NR_pkey_mprotect as u64;
    pub const EXECVE: u64 = k::__NR_execve as u64;
    pub const EXECVEAT: u64 = k::__NR_execveat as u64;
    pub const CLONE: u64 = k::__NR_clone as u64;
    pub const EXIT: u64 = k::__NR_exit as u64;
    pub const CLONE3: u64 = k::__NR_clone3 as u64;
}

/// Classic BPF, as `struct sock_filter`.
#[repr(C)]
#[derive(Copy, Clone)]
struct Insn {
    code: u16,
    jt: u8,
    jf: u8,
    k: u32,
}

const LD_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
const JEQ: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const JGE: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
const JGT: u16 = 0x25; // BPF_JMP | BPF_JGT | BPF_K
const JSET: u16 = 0x45; // BPF_JMP | BPF_JSET | BPF_K
const RET: u16 = 0x06; // BPF_RET | BPF_K
const SECCOMP_RET_ALLOW: u32 = linux_raw_sys::ptrace::SECCOMP_RET_ALLOW;
const SECCOMP_RET_TRAP: u32 = linux_raw_sys::ptrace::SECCOMP_RET_TRAP;
const SECCOMP_RET_ERRNO: u32 = linux_raw_sys::ptrace::SECCOMP_RET_ERRNO;
const ENOSYS: u32 = linux_raw_sys::errno::ENOSYS;
const CLONE_VM: u32 = k::CLONE_VM;
const CLONE_VFORK: u32 = k::CLONE_VFORK;
const AUDIT_ARCH_X86_64: u32 = linux_raw_sys::ptrace::AUDIT_ARCH_X86_64;
/// Offsets in `struct seccomp_data`.
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;
const DATA_IP_HIGH: u32 = 12;
const fn data_arg_low(i: u32) -> u32 {
    16 + 8 * i
}

const MAX_INSNS: usize = 320;

/// Where a conditional jump goes.
#[derive(Copy, Clone)]
enum To {
    Next,
    /// Skip this many instructions.
    Skip(u8),
    Trap,
    Allow,
    /// A label placed with [`Program::label`] (forward jumps only).
    Label(usize),
}

/// Most ranges the filter checks arguments against.
pub const MAX_RANGES: usize = 4;

/// A straight-line filter program with two exits at its end: `TRAP` then `ALLOW`.
struct Program {
    insns: [Insn; MAX_INSNS],
    targets: [(To, To); MAX_INSNS],
    len: usize,
    labels: [usize; 8],
}

impl Program {
    const fn new() -> Self {
        Self {
            insns: [Insn {
                code: 0,
                jt: 0,
                jf: 0,
                k: 0,
            }; MAX_INSNS],
            targets: [(To::Next, To::Next); MAX_INSNS],
            len: 0,
            labels: [0; 8],
        }
    }

    fn label(&mut self, id: usize) {
        if let Some(slot) = self.labels.get_mut(id) {
            *slot = self.len;
        }
    }

    fn emit(&mut self, code: u16, k: u32, jt: To, jf: To) {
        if let (Some(insn), Some(targets)) =
            (self.insns.get_mut(self.len), self.targets.get_mut(self.len))
        {
            *insn = Insn {
                code,
                jt: 0,
                jf: 0,
                k,
            };
            *targets = (jt, jf);
            self.len += 1;
        }
    }

    fn load(&mut self, offset: u32) {
        self.emit(LD_ABS, offset, To::Next, To::Next);
    }

    /// Appends the two exits and turns the symbolic jump targets into offsets.
    fn finish(&mut self) -> &[Insn] {
        let trap = self.len;
        let labels = self.labels;
        let mut too_far = false;
        for (i, (insn, targets)) in self
            .insns
            .iter_mut()
            .zip(self.targets)
            .enumerate()
            .take(trap)
        {
            let mut resolve = |t: To| -> u8 {
                let offset = match t {
                    To::Next => 0,
                    To::Skip(n) => usize::from(n),
                    To::Trap => trap - i - 1,
                    To::Allow => trap - i,
                    To::Label(id) => labels.get(id).map_or(0, |&at| at.saturating_sub(i + 1)),
                };
                too_far |= offset > usize::from(u8::MAX);
                offset as u8
            };
            insn.jt = resolve(targets.0);
            insn.jf = resolve(targets.1);
        }
        if too_far {
            // A jump that does not fit in 8 bits: refuse to build a filter that would misbehave.
            self.len = 0;
            return &[];
        }
        self.emit(RET, SECCOMP_RET_TRAP, To::Next, To::Next);
        self.emit(RET, SECCOMP_RET_ALLOW, To::Next, To::Next);
        self.insns.get(..self.len).unwrap_or(&[])
    }
}

/// The calls that take pointers the kernel dereferences, with how many leading arguments to check (the
/// highest pointer argument's position + 1). Calls not listed are never trapped for their arguments:
/// an image page they alone would touch first gets EFAULT (none of the common ones).
const POINTER_CALLS: &[(u64, usize)] = &[
    (nr(k::__NR_read), 2), // read(fd, buf, n)
    (nr(k::__NR_write), 2),
    (nr(k::__NR_pread64), 2),
    (nr(k::__NR_pwrite64), 2),
    (nr(k::__NR_readv), 2), // readv(fd, iov, n)
    (nr(k::__NR_writev), 2),
    (nr(k::__NR_futex), 1),  // futex(uaddr, ...)
    (nr(k::__NR_open), 1),   // open(path)
    (nr(k::__NR_openat), 2), // openat(dirfd, path)
    (nr(k::__NR_stat), 2),   // stat(path, buf)
    (nr(k::__NR_fstat), 2),  // fstat(fd, buf)
    (nr(k::__NR_lstat), 2),
    (nr(k::__NR_newfstatat), 3), // newfstatat(dirfd, path, buf)
    (nr(k::__NR_statx), 5),      // statx(dirfd, path, flags, mask, buf)
    (nr(k::__NR_access), 1),
    (nr(k::__NR_faccessat), 2),
    (nr(k::__NR_faccessat2), 2),
    (nr(k::__NR_pipe), 1),
    (nr(k::__NR_pipe2), 1),
    (nr(k::__NR_poll), 1),  // poll(fds)
    (nr(k::__NR_ppoll), 4), // ppoll(fds, n, ts, mask)
    (nr(k::__NR_select), 5),
    (nr(k::__NR_pselect6), 6),
    (nr(k::__NR_nanosleep), 2),       // nanosleep(req, rem)
    (nr(k::__NR_clock_nanosleep), 4), // clock_nanosleep(clock, flags, req, rem)
    (nr(k::__NR_clock_gettime), 2),   // clock_gettime(clock, ts)
    (nr(k::__NR_clock_getres), 2),
    (nr(k::__NR_gettimeofday), 2),
    (nr(k::__NR_time), 1),
    (nr(k::__NR_uname), 1),
    (nr(k::__NR_getcwd), 1),
    (nr(k::__NR_chdir), 1),
    (nr(k::__NR_readlink), 2),   // readlink(path, buf)
    (nr(k::__NR_readlinkat), 3), // readlinkat(dirfd, path, buf)
    (nr(k::__NR_getdents64), 2), // getdents64(fd, buf)
    (nr(k::__NR_getdents), 2),
    (nr(k::__NR_rename), 2),
    (nr(k::__NR_renameat), 4),
    (nr(k::__NR_renameat2), 4),
    (nr(k::__NR_mkdir), 1),
    (nr(k::__NR_mkdirat), 2),
    (nr(k::__NR_rmdir), 1),
    (nr(k::__NR_unlink), 1),
    (nr(k::__NR_unlinkat), 2),
    (nr(k::__NR_link), 2),
    (nr(k::__NR_linkat), 4),
    (nr(k::__NR_symlink), 2),
    (nr(k::__NR_symlinkat), 3),
    (nr(k::__NR_chmod), 1),
    (nr(k::__NR_fchmodat), 2),
    (nr(k::__NR_chown), 1),
    (nr(k::__NR_fchownat), 2),
    (nr(k::__NR_utimensat), 3),
    (nr(k::__NR_statfs), 2),
    (nr(k::__NR_fstatfs), 2),
    (nr(k::__NR_ioctl), 3), // ioctl(fd, req, arg)
    (nr(k::__NR_fcntl), 3), // fcntl(fd, cmd, arg)
    (nr(k::__NR_getrlimit), 2),
    (nr(k::__NR_setrlimit), 2),
    (nr(k::__NR_prlimit64), 4), // prlimit64(pid, res, new, old)
    (nr(k::__NR_getrusage), 2),
    (nr(k::__NR_sysinfo), 1),
    (nr(k::__NR_times), 1),
    (nr(k::__NR_wait4), 4), // wait4(pid, status, options, rusage)
    (nr(k::__NR_waitid), 4),
    (nr(k::__NR_getrandom), 1),
    (nr(k::__NR_connect), 2),
    (nr(k::__NR_accept), 3),
    (nr(k::__NR_accept4), 3),
    (nr(k::__NR_bind), 2),
    (nr(k::__NR_sendto), 5),
    (nr(k::__NR_recvfrom), 6),
    (nr(k::__NR_sendmsg), 2),
    (nr(k::__NR_recvmsg), 2),
    (nr(k::__NR_getsockname), 3),
    (nr(k::__NR_getpeername), 3),
    (nr(k::__NR_socketpair), 4),
    (nr(k::__NR_setsockopt), 4),
    (nr(k::__NR_getsockopt), 5),
    (nr(k::__NR_epoll_wait), 2),
    (nr(k::__NR_epoll_pwait), 2),
    (nr(k::__NR_epoll_ctl), 4),
    (nr(k::__NR_sendfile), 3), // sendfile(out, in, offset)
    (nr(k::__NR_rt_sigpending), 1),
    (nr(k::__NR_rt_sigtimedwait), 3),
    (nr(k::__NR_rt_sigsuspend), 1),
    (nr(k::__NR_getitimer), 2),
    (nr(k::__NR_setitimer), 3),
    (nr(k::__NR_mmap), 1), // mmap(addr): the program takes over image pages
    (nr(k::__NR_mprotect), 1),
    (nr(k::__NR_munmap), 1),
    (nr(k::__NR_mremap), 1),
    (nr(k::__NR_madvise), 1),
    (nr(k::__NR_pkey_mprotect), 1),
];

const fn nr(call: u32) -> u64 {
    call as u64
}

/// Label ids: `CHECK + k` checks arguments k-1 down to 0; `CLONE_FLAGS` looks at `clone`'s flags.
const CHECK: usize = 0;
const CLONE_FLAGS: usize = 7;

/// Builds the filter: calls from the loader are allowed; some calls are always trapped; the calls in
/// [`POINTER_CALLS`] are trapped when one of their pointer arguments lies in one of `ranges`.
fn build_filter(program: &mut Program, ranges: &[(u64, u64)], trap_exit: bool) {
    program.load(DATA_ARCH);
    program.emit(JEQ, AUDIT_ARCH_X86_64, To::Next, To::Allow);
    program.load(DATA_IP_HIGH);
    program.emit(JEQ, LOADER_IP_HIGH, To::Allow, To::Next);
    program.load(DATA_NR);
    // clone3 hides its flags in memory: the C libraries fall back to clone, whose flags are seen.
    program.emit(JEQ, nr::CLONE3 as u32, To::Next, To::Skip(1));
    program.emit(RET, SECCOMP_RET_ERRNO | ENOSYS, To::Next, To::Next);
    program.emit(JEQ, nr::CLONE as u32, To::Label(CLONE_FLAGS), To::Next);
    for always in [
        nr::RT_SIGACTION,
        nr::RT_SIGPROCMASK,
        nr::SIGALTSTACK,
        nr::EXECVE,
        nr::EXECVEAT,
        nr::EXIT,
    ] {
        program.emit(JEQ, always as u32, To::Trap, To::Next);
    }
    if trap_exit {
        program.emit(JEQ, nr::EXIT_GROUP as u32, To::Trap, To::Next);
    }
    if !ranges.is_empty() {
        for &(call, k) in POINTER_CALLS {
            program.emit(JEQ, call as u32, To::Label(CHECK + k.min(6)), To::Next);
        }
    }
    program.emit(RET, SECCOMP_RET_ALLOW, To::Next, To::Next);
    // A new thread (CLONE_VM without CLONE_VFORK) starts without an alternate stack: trap, to give it
    // one (see crate::threads). fork and vfork keep theirs.
    program.label(CLONE_FLAGS);
    program.load(data_arg_low(0));
    program.emit(JSET, CLONE_VFORK, To::Allow, To::Next);
    program.emit(JSET, CLONE_VM, To::Trap, To::Allow);
    if ranges.is_empty() {
        return;
    }
    for arg in (0..6u32).rev() {
        program.label(CHECK + arg as usize + 1);
        for &(low, high) in ranges {
            let last = high.saturating_sub(1);
            let (low_hi, low_lo) = ((low >> 32) as u32, low as u32);
            let (high_hi, high_lo) = ((last >> 32) as u32, last as u32);
            program.load(data_arg_low(arg) + 4);
            if low_hi == high_hi {
                // Trap if the upper half is the range's and low_lo <= lower half <= high_lo.
                program.emit(JEQ, low_hi, To::Next, To::Skip(3));
                program.load(data_arg_low(arg));
                program.emit(JGE, low_lo, To::Next, To::Skip(1));
                program.emit(JGT, high_lo, To::Next, To::Trap);
            } else {
                // The range crosses a 4 GiB boundary: judge by the upper half alone (over-approximating).
                program.emit(JGE, low_hi, To::Next, To::Skip(1));
                program.emit(JGT, high_hi, To::Next, To::Trap);
            }
        }
    }
    // No pointer argument in any range.
    program.emit(RET, SECCOMP_RET_ALLOW, To::Next, To::Next);
}

/// `struct sock_fprog`.
#[repr(C)]
struct Fprog {
    len: u16,
    filter: *const Insn,
}

/// The program's SIGSEGV action, as it believes it installed it.
struct Virtual(UnsafeCell<KernelSigaction>);

// SAFETY: written only from the SIGSYS handler while a spin flag is held, read from the SIGSEGV handler;
// a torn read can only happen if the program changes its SIGSEGV handler while faulting in another
// thread, as racy natively as here.
unsafe impl Sync for Virtual {}

static PROGRAM_SEGV: Virtual = Virtual(UnsafeCell::new(KernelSigaction {
    handler: 0,
    flags: 0,
    restorer: 0,
    mask: 0,
}));
static PROGRAM_SEGV_LOCK: AtomicBool = AtomicBool::new(false);
static STATS_ON_EXIT: AtomicBool = AtomicBool::new(false);

/// The SIGSEGV action the program asked for (`SIG_DFL` unless it installed one).
pub fn program_segv_action() -> KernelSigaction {
    while PROGRAM_SEGV_LOCK.swap(true, Ordering::Acquire) {
        core::hint::spin_loop();
    }
    // SAFETY: the lock serialises access.
    let action = unsafe { *PROGRAM_SEGV.0.get() };
    PROGRAM_SEGV_LOCK.store(false, Ordering::Release);
    action
}

fn set_program_segv_action(action: KernelSigaction) {
    while PROGRAM_SEGV_LOCK.swap(true, Ordering::Acquire) {
        core::hint::spin_loop();
    }
    // SAFETY: the lock serialises access.
    unsafe { *PROGRAM_SEGV.0.get() = action };
    PROGRAM_SEGV_LOCK.store(false, Ordering::Release);
}

/// Forgets the program's SIGSEGV handler (`SA_RESETHAND` after a delivery).
pub fn reset_program_segv_action() {
    set_program_segv_action(KernelSigaction::default());
}

/// Installs the SIGSYS handler and the filter whose argument checks cover `ranges` (at most
/// [`MAX_RANGES`]: the image's lazily mapped, non-executable parts); `stats` traps `exit_group` to print
/// statistics.
///
/// # Safety
///
/// Single-threaded set-up, after [`pager::install`].
pub unsafe fn install(ranges: &[(u64, u64)], stats: bool) -> Result<(), i64> {
    let held = HELD_IN_TRAPS.load(Ordering::Relaxed);
    STATS_ON_EXIT.store(stats, Ordering::Relaxed);
    if stats {
        // SAFETY: single-threaded set-up; the statistics exist.
        unsafe { crate::fatal::install() };
    }
    let action = KernelSigaction {
        handler: on_sigsys as *const () as usize,
        // SA_ONSTACK: a trapped call may come from a tiny stack (a goroutine's, a small thread's); every
        // thread has a pager stack (see crate::threads), whose sigaltstack() calls are emulated.
        // SA_NODEFER: the calls are performed inside the handler, where a signal may run a program
        // handler that makes a trapped call of its own; a blocked SIGSYS would kill. Other signals are
        // not blocked, so a blocking call stays interruptible as it is natively.
        flags: sys::SA_SIGINFO | sys::SA_ONSTACK | sys::SA_RESTORER | SA_NODEFER,
        restorer: sys::restore_rt as *const () as usize,
        mask: held,
    };
    // SAFETY: on_sigsys follows the handler contract of this module.
    let r = unsafe { sys::rt_sigaction(sys::SIGSYS, Some(&action), None) };
    if r < 0 {
        return Err(r);
    }
    // SIGSEGV and SIGSYS may have come blocked (from whoever started the pager, or from the pager that
    // executed this one): unblock them, and remember them as blocked in the program's view.
    let unblock = SIGSET_SEGV_SYS;
    let mut old = 0u64;
    // SAFETY: rt_sigprocmask with pointers to local 8-byte sets.
    unsafe {
        sys::syscall4(
            nr(k::__NR_rt_sigprocmask),
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
    let mut program = Program::new();
    build_filter(
        &mut program,
        ranges.get(..ranges.len().min(MAX_RANGES)).unwrap_or(&[]),
        stats,
    );
    let insns = program.finish();
    if insns.is_empty() {
        return Err(-7); // E2BIG: the filter does not fit its jump offsets
    }
    let fprog = Fprog {
        len: insns.len() as u16,
        filter: insns.as_ptr(),
    };
    const SECCOMP_SET_MODE_FILTER: u64 = linux_raw_sys::ptrace::SECCOMP_SET_MODE_FILTER as u64;
    // SAFETY: fprog points at a valid filter program that outlives the call (the kernel copies it).
    let mut r = unsafe {
        sys::syscall4(
            nr(k::__NR_seccomp),
            SECCOMP_SET_MODE_FILTER,
            0,
            &fprog as *const Fprog as u64,
            0,
        )
    };
    if r == -13 {
        // EACCES: without CAP_SYS_ADMIN a filter needs no_new_privs (which the program then inherits).
        // rustix's typed prctl passes all five arguments (the kernel rejects PR_SET_NO_NEW_PRIVS
        // with EINVAL unless the unused ones are zero). A failure here shows as the retry's EACCES.
        let _ = rustix::thread::set_no_new_privs(true);
        // SAFETY: as above.
        r = unsafe {
            sys::syscall4(
                nr(k::__NR_seccomp),
                SECCOMP_SET_MODE_FILTER,
                0,
                &fprog as *const Fprog as u64,
                0,
            )
        };
    }
    if r < 0 {
        Err(r)
    } else {
        Ok(())
    }
}

/// Offsets in the x86-64 `ucontext_t` of the saved general registers (`uc_mcontext.gregs`).
pub(crate) mod reg {
    pub const R8: usize = 0;
    pub const R9: usize = 1;
    pub const R10: usize = 2;
    pub const R11: usize = 3;
    pub const RDI: usize = 8;
    pub const RSI: usize = 9;
    pub const RDX: usize = 12;
    pub const RAX: usize = 13;
    pub const RSP: usize = 15;
    pub const RIP: usize = 16;
    pub const EFL: usize = 17;
    pub const fn offset(r: usize) -> usize {
        40 + 8 * r
    }
}

/// `siginfo_t` for SIGSYS, as far as it is read.
#[repr(C)]
struct SysInfo {
    signo: i32,
    errno: i32,
    code: i32,
    _pad: i32,
    call_addr: u64,
    syscall: i32,
    arch: u32,
}

pub(crate) unsafe fn reg_ptr(context: *mut c_void, r: usize) -> *mut u64 {
    // SAFETY: per the caller, `context` is the ucontext of the signal being handled.
    unsafe { context.cast::<u8>().add(reg::offset(r)).cast::<u64>() }
}

const SIGSET_SEGV_SYS: u64 = (1 << (sys::SIGSEGV - 1)) | (1 << (sys::SIGSYS - 1));
const SA_NODEFER: u64 = k::SA_NODEFER as u64;
const AT_FDCWD: i32 = k::AT_FDCWD;
const MREMAP_FIXED: u64 = k::MREMAP_FIXED as u64;

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

/// Offset of `uc_sigmask` in the x86-64 `ucontext_t`: after flags, link, stack (40 bytes) and the
/// 256-byte `sigcontext`.
const UC_SIGMASK_OFFSET: usize = 40 + 256;
const EINVAL: i64 = -(linux_raw_sys::errno::EINVAL as i64);
const SIGKILL_SIGSTOP: u64 = (1 << (9 - 1)) | (1 << (19 - 1));

/// The blocked set of the interrupted program as it believes it to be.
fn program_mask(context: *mut c_void) -> u64 {
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
fn sigprocmask(args: &[u64; 6], context: *mut c_void) -> i64 {
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
            return -14;
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
    if old != 0 {
        write_bytes(old, &current);
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
static VIRTUAL_MASKS: [core::sync::atomic::AtomicU64; VIRTUAL_SLOTS] =
    [const { core::sync::atomic::AtomicU64::new(0) }; VIRTUAL_SLOTS];

fn virtual_slots(tid: u32) -> impl Iterator<Item = &'static core::sync::atomic::AtomicU64> {
    let start = tid as usize % VIRTUAL_SLOTS;
    (0..16).filter_map(move |i| VIRTUAL_MASKS.get((start + i) % VIRTUAL_SLOTS))
}

/// Signals that wait while a trapped call is handled ([`hold_during_traps`]).
static HELD_IN_TRAPS: AtomicU64 = AtomicU64::new(0);

/// Makes `sig` wait while the SIGSYS handler runs: the checkpoint signal, whose handler must find the
/// program's own registers in its frame, not the pager's in the middle of a trapped call. (A blocking
/// call performed there delays the checkpoint until it returns.) Call before [`install`].
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

/// Makes the pages the call may touch accessible, does what the pager needs, and performs the call.
fn handle(call: u64, args: [u64; 6], context: *mut c_void) -> i64 {
    prefault(call, &args);
    match call {
        nr::MPROTECT | nr::PKEY_MPROTECT | nr::MUNMAP => pager::hand_over(args[0], args[1]),
        nr::MREMAP | nr::MADVISE => {
            // The pages keep their protection (mremap takes it along): untouched ones, still
            // PROT_NONE, get their region's first, as they have natively.
            pager::ensure_accessible(args[0], args[1]);
            pager::hand_over(args[0], args[1]);
            if call == nr::MREMAP && args[3] & MREMAP_FIXED != 0 {
                // Whatever image pages lay at the destination are replaced.
                pager::hand_over(args[4], args[2]);
            }
        }
        nr::MMAP if args[0] != 0 => pager::hand_over(args[0], args[1]),
        nr::RT_SIGPROCMASK => return sigprocmask(&args, context),
        nr::RT_SIGACTION => return sigaction(args),
        nr::SIGALTSTACK => return crate::threads::sigaltstack(args[0], args[1], context),
        nr::EXIT => crate::threads::exit_thread(args[0]),
        nr::EXIT_GROUP => {
            pager::print_stats();
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

/// Reads a word of the program's memory: a pointer or value it passed to a trapped call. `None` for an
/// address in the first page (NULL and near it).
pub(crate) fn read_word(addr: u64) -> Option<u64> {
    if addr < uexec_elf::PAGE_SIZE {
        return None;
    }
    // SAFETY: only called for pointers the program passed to a call that reads them; the image pages
    // among them were made accessible. A pointer elsewhere would fault here as it faults natively in the
    // program's own libc wrapper — only for a buggy program.
    Some(unsafe { (addr as *const u64).read_unaligned() })
}

fn write_bytes<T>(addr: u64, value: &T) {
    // SAFETY: as for `read_word`: the program passed this pointer for the kernel to write to.
    unsafe {
        core::ptr::copy_nonoverlapping(
            value as *const T as *const u8,
            addr as *mut u8,
            core::mem::size_of::<T>(),
        )
    };
}

/// `rt_sigaction` on the program's behalf: SIGSEGV is recorded, not installed; other masks lose
/// SIGSEGV and SIGSYS.
fn sigaction(mut args: [u64; 6]) -> i64 {
    let sig = args[0] as i32;
    let new = args[1];
    let old = args[2];
    if sig == sys::SIGSEGV {
        let previous = program_segv_action();
        if new != 0 {
            // SAFETY: prefault made the struct accessible if it is in the image; it is the program's.
            let action = unsafe { (new as *const KernelSigaction).read_unaligned() };
            set_program_segv_action(action);
        }
        if old != 0 {
            write_bytes(old, &previous);
        }
        return 0;
    }
    if sig == sys::SIGSYS {
        // The pager needs SIGSYS for itself; a program installing its own seccomp handler is not
        // supported. Report success and keep the pager's.
        if old != 0 {
            write_bytes(old, &KernelSigaction::default());
        }
        return 0;
    }
    let mut copy = KernelSigaction::default();
    if new != 0 {
        // SAFETY: as above.
        copy = unsafe { (new as *const KernelSigaction).read_unaligned() };
        copy.mask &= !SIGSET_SEGV_SYS;
        args[1] = &copy as *const KernelSigaction as u64;
    }
    if STATS_ON_EXIT.load(Ordering::Relaxed) {
        if let Some(result) = crate::fatal::intercept(sig, (new != 0).then_some(copy), old) {
            return result;
        }
    }
    raw(nr::RT_SIGACTION, &args)
}

/// Makes accessible the image pages a call may read or write.
pub(crate) fn prefault(call: u64, args: &[u64; 6]) {
    let sized = |ptr: u64, len: u64| pager::ensure_accessible(ptr, len);
    match call {
        nr::READ | nr::WRITE | nr::PREAD64 | nr::PWRITE64 | nr::GETDENTS64 => {
            sized(args[1], args[2])
        }
        nr::GETCWD | nr::GETRANDOM => sized(args[0], args[1]),
        nr::READLINK => sized(args[1], args[2]),
        nr::READLINKAT => sized(args[2], args[3]),
        nr::READV | nr::WRITEV => {
            sized(args[1], args[2].saturating_mul(16));
            for i in 0..args[2].min(1024) {
                let base = args[1].wrapping_add(16 * i);
                if let (Some(p), Some(l)) = (read_word(base), read_word(base.wrapping_add(8))) {
                    sized(p, l);
                }
            }
        }
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
    // Any of the call's pointer arguments may be a path or a struct: make its page and, when it ends near
    // a page boundary, the next one reachable (longer strings and structs are rare). Only the arguments
    // the filter looked at: the others are not the call's pointers.
    let checked = POINTER_CALLS
        .iter()
        .find(|&&(n, _)| n == call)
        .map_or(args.len(), |&(_, k)| k);
    for &arg in args.iter().take(checked) {
        pager::ensure_accessible(arg, 256);
    }
}

/// Performs a call from the loader's code (which the filter allows).
pub(crate) fn raw(call: u64, args: &[u64; 6]) -> i64 {
    let ret: i64;
    // SAFETY: the program asked for exactly this call with these arguments.
    unsafe {
        core::arch::asm!("syscall", inlateout("rax") call as i64 => ret, in("rdi") args[0], in("rsi") args[1],
            in("rdx") args[2], in("r10") args[3], in("r8") args[4], in("r9") args[5],
            lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    ret
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a classic-BPF filter over `struct seccomp_data` (only the instructions the builder emits).
    fn run(insns: &[Insn], nr: u32, ip: u64, args: [u64; 6]) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr.to_ne_bytes());
        data[4..8].copy_from_slice(&AUDIT_ARCH_X86_64.to_ne_bytes());
        data[8..16].copy_from_slice(&ip.to_ne_bytes());
        for (i, a) in args.iter().enumerate() {
            data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_ne_bytes());
        }
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let insn = insns[pc];
            let k = insn.k;
            pc += 1;
            match insn.code {
                LD_ABS => {
                    acc = u32::from_ne_bytes(data[k as usize..k as usize + 4].try_into().unwrap())
                }
                RET => return k,
                JEQ | JGE | JGT | JSET => {
                    let taken = match insn.code {
                        JEQ => acc == k,
                        JGE => acc >= k,
                        JSET => acc & k != 0,
                        _ => acc > k,
                    };
                    pc += usize::from(if taken { insn.jt } else { insn.jf });
                }
                other => panic!("unexpected BPF code {other:#x}"),
            }
        }
    }

    const USER_IP: u64 = 0x401234;
    const RANGES: [(u64, u64); 2] = [(0x479000, 0x4a1000), (0x4a1000 + 0x1000, 0x4ad000)];

    fn filter() -> Program {
        let mut program = Program::new();
        build_filter(&mut program, &RANGES, true);
        program
    }

    #[test]
    fn pointer_arguments_in_the_ranges_trap_and_others_pass() {
        let mut program = filter();
        let insns = program.finish().to_vec();
        assert!(!insns.is_empty());
        let stack = 0x7ffd_1234_5678;
        // write(fd, buf, n): trapped only for a buffer in a range.
        assert_eq!(
            run(&insns, 1, USER_IP, [3, 0x47a000, 1, 0, 0, 0]),
            SECCOMP_RET_TRAP
        );
        assert_eq!(
            run(&insns, 1, USER_IP, [3, 0x4a2000, 1, 0, 0, 0]),
            SECCOMP_RET_TRAP
        );
        assert_eq!(
            run(&insns, 1, USER_IP, [3, stack, 1, 0, 0, 0]),
            SECCOMP_RET_ALLOW
        );
        assert_eq!(
            run(&insns, 1, USER_IP, [3, 0x4a1800, 1, 0, 0, 0]),
            SECCOMP_RET_ALLOW
        ); // the gap
        assert_eq!(
            run(&insns, 1, USER_IP, [3, 0x4ad000, 1, 0, 0, 0]),
            SECCOMP_RET_ALLOW
        ); // one past
        assert_eq!(
            run(&insns, 1, USER_IP, [3, 0x478fff, 1, 0, 0, 0]),
            SECCOMP_RET_ALLOW
        );
        // Arguments beyond the call's pointer arguments are not looked at.
        assert_eq!(
            run(&insns, 1, USER_IP, [3, stack, 0x47a000, 0x47a000, 0, 0]),
            SECCOMP_RET_ALLOW
        );
        // An unlisted call with range-looking garbage in its registers passes.
        assert_eq!(run(&insns, 110, USER_IP, [0x47a000; 6]), SECCOMP_RET_ALLOW);
        // The loader's own calls always pass; some calls always trap.
        assert_eq!(
            run(&insns, 1, 0x3c00_0000_5000, [3, 0x47a000, 1, 0, 0, 0]),
            SECCOMP_RET_ALLOW
        );
        assert_eq!(
            run(&insns, nr::RT_SIGPROCMASK as u32, USER_IP, [0; 6]),
            SECCOMP_RET_TRAP
        );
        assert_eq!(
            run(&insns, nr::EXIT_GROUP as u32, USER_IP, [0; 6]),
            SECCOMP_RET_TRAP
        );
        // A new thread's clone traps; fork and vfork pass; clone3 is refused with ENOSYS.
        let thread = 0x3d0f00; // CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | ...
        assert_eq!(
            run(&insns, nr::CLONE as u32, USER_IP, [thread, 0, 0, 0, 0, 0]),
            SECCOMP_RET_TRAP
        );
        assert_eq!(
            run(&insns, nr::CLONE as u32, USER_IP, [0x4111, 0, 0, 0, 0, 0]),
            SECCOMP_RET_ALLOW
        ); // CLONE_VM | CLONE_VFORK | SIGCHLD
        assert_eq!(
            run(&insns, nr::CLONE as u32, USER_IP, [0x11, 0, 0, 0, 0, 0]),
            SECCOMP_RET_ALLOW
        ); // fork
        assert_eq!(
            run(&insns, nr::CLONE3 as u32, USER_IP, [0; 6]),
            SECCOMP_RET_ERRNO | ENOSYS
        );
        assert_eq!(
            run(&insns, nr::EXIT as u32, USER_IP, [0; 6]),
            SECCOMP_RET_TRAP
        );
        // statx's buffer is its fifth argument.
        assert_eq!(
            run(&insns, 332, USER_IP, [0, stack, 0, 0, 0x47b000, 0]),
            SECCOMP_RET_TRAP
        );
    }

    #[test]
    fn ranges_across_a_4_gib_boundary_over_approximate() {
        let mut program = Program::new();
        build_filter(
            &mut program,
            &[(0x0000_7fff_ffff_0000, 0x0000_8000_0001_0000)],
            false,
        );
        let insns = program.finish().to_vec();
        assert_eq!(
            run(&insns, 0, USER_IP, [0, 0x0000_7fff_ffff_8000, 1, 0, 0, 0]),
            SECCOMP_RET_TRAP
        );
        assert_eq!(
            run(&insns, 0, USER_IP, [0, 0x0000_8000_0000_8000, 1, 0, 0, 0]),
            SECCOMP_RET_TRAP
        );
        assert_eq!(
            run(&insns, 0, USER_IP, [0, 0x0000_7ffe_0000_0000, 1, 0, 0, 0]),
            SECCOMP_RET_ALLOW
        );
    }

    #[test]
    fn the_largest_filter_fits_its_jumps() {
        let ranges = [
            (0x400000, 0x401000),
            (0x402000, 0x403000),
            (0x1_0000_0000 - 0x1000, 0x1_0000_2000),
            (0x500000, 0x501000),
        ];
        let mut program = Program::new();
        build_filter(&mut program, &ranges, true);
        assert!(!program.finish().is_empty());
    }
}
