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
//! panics). The structures it follows and the values it reads or writes back for the program (iovecs,
//! `msghdr`s, signal sets, `sigaction`/`sigaltstack` structs, argv arrays) go through
//! `process_vm_readv`/`writev` on its own pid after the lazy pages are granted (see [`peek`]): a garbage
//! pointer gives `EFAULT`, as natively, not a fault in the handler. (execve's path and argument strings
//! are still read directly by `crate::exec`, after being granted.)

use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::lock::{Lock, Once};
use crate::pager;
use linux_raw_sys::general as k;

use crate::sys::{self, nr, raw, reg, reg_ptr, KernelSigaction, SysInfo, UC_SIGMASK_OFFSET};

/// Where the loaders are linked: a call whose instruction pointer has these high 32 bits is the loader's.
const LOADER_IP_HIGH: u32 = 0x3c00;


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

const MAX_INSNS: usize = 400;
/// Labels a program may place: the fixed ones below [`FIRST_FREE_LABEL`], then one per subtree of the
/// call-number tree.
const MAX_LABELS: usize = 192;
const UNPLACED: usize = usize::MAX;

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

/// A straight-line filter program with two exits at its end: `TRAP` then `ALLOW`. A program that
/// overflows, uses an unplaced label, jumps backwards or further than 8 bits allow is refused by
/// [`Program::finish`].
struct Program {
    insns: [Insn; MAX_INSNS],
    targets: [(To, To); MAX_INSNS],
    len: usize,
    labels: [usize; MAX_LABELS],
    next_label: usize,
    overflow: bool,
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
            labels: [UNPLACED; MAX_LABELS],
            next_label: FIRST_FREE_LABEL,
            overflow: false,
        }
    }

    /// A fresh label id, to be placed later.
    fn new_label(&mut self) -> usize {
        let id = self.next_label;
        self.next_label += 1;
        self.overflow |= id >= MAX_LABELS;
        id
    }

    fn label(&mut self, id: usize) {
        match self.labels.get_mut(id) {
            Some(slot) => *slot = self.len,
            None => self.overflow = true,
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
        } else {
            self.overflow = true;
        }
    }

    fn load(&mut self, offset: u32) {
        self.emit(LD_ABS, offset, To::Next, To::Next);
    }

    /// Appends the two exits and turns the symbolic jump targets into offsets; empty if the program
    /// cannot be built as written.
    fn finish(&mut self) -> &[Insn] {
        let trap = self.len;
        let labels = self.labels;
        let mut bad = self.overflow || trap + 2 > MAX_INSNS;
        for (i, (insn, targets)) in self
            .insns
            .iter_mut()
            .zip(self.targets)
            .enumerate()
            .take(trap)
        {
            let mut resolve = |t: To| -> u8 {
                let offset = match t {
                    To::Next => Some(0),
                    To::Skip(n) => Some(usize::from(n)),
                    To::Trap => Some(trap - i - 1),
                    To::Allow => Some(trap - i),
                    To::Label(id) => labels
                        .get(id)
                        .filter(|&&at| at != UNPLACED && at > i)
                        .map(|&at| at - i - 1),
                };
                match offset {
                    Some(offset) if offset <= usize::from(u8::MAX) => offset as u8,
                    _ => {
                        bad = true;
                        0
                    }
                }
            };
            insn.jt = resolve(targets.0);
            insn.jf = resolve(targets.1);
        }
        if bad {
            // A jump that does not fit in 8 bits (or goes nowhere): refuse to build a filter that would
            // misbehave.
            self.len = 0;
            return &[];
        }
        self.emit(RET, SECCOMP_RET_TRAP, To::Next, To::Next);
        self.emit(RET, SECCOMP_RET_ALLOW, To::Next, To::Next);
        self.insns.get(..self.len).unwrap_or(&[])
    }
}

/// The calls that take pointers the kernel dereferences, with how many leading arguments to check (the
/// highest pointer argument's position + 1). The calls that also reach buffers through memory are in
/// [`INDIRECT_CALLS`] instead. Calls not listed are never trapped for their arguments:
/// an image page they alone would touch first gets EFAULT (none of the common ones).
const POINTER_CALLS: &[(u64, usize)] = &[
    (nr(k::__NR_read), 2), // read(fd, buf, n)
    (nr(k::__NR_write), 2),
    (nr(k::__NR_pread64), 2),
    (nr(k::__NR_pwrite64), 2),
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
    (nr(k::__NR_io_setup), 2),      // io_setup(n, ctxp)
    (nr(k::__NR_io_getevents), 5),  // io_getevents(ctx, min, n, events, timeout)
    (nr(k::__NR_io_pgetevents), 6), // io_pgetevents(..., timeout, sig)
    (nr(k::__NR_mmap), 1),          // mmap(addr): the program takes over image pages
    (nr(k::__NR_mprotect), 1),
    (nr(k::__NR_munmap), 1),
    (nr(k::__NR_mremap), 1),
    (nr(k::__NR_madvise), 1),
    (nr(k::__NR_pkey_mprotect), 1),
];

const fn nr(call: u32) -> u64 {
    call as u64
}

/// The calls whose buffers are reached through a pointer in memory (an iovec array, a `msghdr`, ...),
/// with how many leading arguments are direct pointers. The filter cannot see where the buffers are, so
/// while lazy ranges exist these calls are always trapped, wherever their arguments point; the handler
/// follows the structures (see [`prepare_indirect`]).
const INDIRECT_CALLS: &[(u64, usize)] = &[
    (nr(k::__NR_readv), 2), // readv(fd, iov, n)
    (nr(k::__NR_writev), 2),
    (nr(k::__NR_preadv), 2),
    (nr(k::__NR_pwritev), 2),
    (nr(k::__NR_preadv2), 2),
    (nr(k::__NR_pwritev2), 2),
    (nr(k::__NR_sendmsg), 2), // sendmsg(fd, msg, flags)
    (nr(k::__NR_recvmsg), 2),
    (nr(k::__NR_sendmmsg), 2),          // sendmmsg(fd, msgvec, n, flags)
    (nr(k::__NR_recvmmsg), 5),          // recvmmsg(fd, msgvec, n, flags, timeout)
    (nr(k::__NR_process_vm_readv), 4),  // (pid, local_iov, n, remote_iov, n, flags)
    (nr(k::__NR_process_vm_writev), 4), //
    (nr(k::__NR_vmsplice), 2),          // vmsplice(fd, iov, n, flags)
    (nr(k::__NR_futex_waitv), 4),       // futex_waitv(waiters, n, flags, timeout, clock)
    (nr(k::__NR_io_submit), 3),         // io_submit(ctx, n, iocbpp)
];

/// What the filter does with one system-call number (from the program's code).
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
enum Action {
    Allow,
    Trap,
    /// `clone3`: `ENOSYS`.
    Enosys,
    /// `clone`: trapped when it makes a thread.
    CloneFlags,
    /// Trapped when one of the first `k` (1..=6) arguments lies in a range.
    Check(u8),
}

/// Fixed label ids: `CHECK + k` checks arguments k-1 down to 0 (after the loader test), `ARG + a`
/// starts the range test of argument a.
const CHECK: usize = 0; // 1..=6 used
const ARG: usize = 7; // 0..=5
const CLONE_FLAGS: usize = 13;
const TRAP_FROM_PROGRAM: usize = 14;
const ENOSYS_FROM_PROGRAM: usize = 15;
const ALLOW_AFTER_TREE: usize = 16;
const FIRST_FREE_LABEL: usize = 17;

/// Most distinct call numbers the filter names.
const MAX_CALLS: usize = 160;

/// The calls the filter names, sorted by number, with what it does with each; every other number is
/// allowed.
struct CallTable {
    calls: [(u32, Action); MAX_CALLS],
    len: usize,
}

impl CallTable {
    fn new(lazy: bool, trap_exit: bool) -> Self {
        let mut table = Self {
            calls: [(0, Action::Allow); MAX_CALLS],
            len: 0,
        };
        // The later entries for a number win: the always-trapped calls over the pointer checks.
        if lazy {
            for &(call, k) in POINTER_CALLS {
                table.set(call, Action::Check(k.clamp(1, 6) as u8));
            }
            for &(call, _) in INDIRECT_CALLS {
                table.set(call, Action::Trap);
            }
        }
        for always in [
            nr::RT_SIGACTION,
            nr::RT_SIGPROCMASK,
            nr::SIGALTSTACK,
            nr::EXECVE,
            nr::EXECVEAT,
            nr::EXIT,
        ] {
            table.set(always, Action::Trap);
        }
        if trap_exit {
            table.set(nr::EXIT_GROUP, Action::Trap);
        }
        table.set(nr::CLONE, Action::CloneFlags);
        table.set(nr::CLONE3, Action::Enosys);
        table
    }

    /// Inserts or replaces, keeping the table sorted.
    fn set(&mut self, call: u64, action: Action) {
        let call = call as u32;
        let used = self.calls.get(..self.len).unwrap_or(&[]);
        match used.binary_search_by_key(&call, |&(n, _)| n) {
            Ok(i) => {
                if let Some(slot) = self.calls.get_mut(i) {
                    slot.1 = action;
                }
            }
            Err(i) if self.len < MAX_CALLS => {
                self.calls.copy_within(i..self.len, i + 1);
                if let Some(slot) = self.calls.get_mut(i) {
                    *slot = (call, action);
                }
                self.len += 1;
            }
            Err(_) => {}
        }
    }

    #[cfg(test)]
    fn action(&self, call: u32) -> Action {
        let used = self.calls.get(..self.len).unwrap_or(&[]);
        match used.binary_search_by_key(&call, |&(n, _)| n) {
            Ok(i) => used.get(i).map_or(Action::Allow, |&(_, a)| a),
            Err(_) => Action::Allow,
        }
    }

    /// The call-number line cut into intervals of one action: `(first number, action)`, the first at 0;
    /// each runs to the next one's first number.
    fn intervals(&self, out: &mut [(u32, Action); 2 * MAX_CALLS + 1]) -> usize {
        fn push(out: &mut [(u32, Action)], len: &mut usize, start: u32, action: Action) {
            let last = len.checked_sub(1).and_then(|l| out.get(l)).map(|&(_, a)| a);
            if last != Some(action) {
                if let Some(slot) = out.get_mut(*len) {
                    *slot = (start, action);
                    *len += 1;
                }
            }
        }
        let mut len = 0usize;
        let mut next = 0u32; // the first number not yet in an interval
        for &(call, action) in self.calls.get(..self.len).unwrap_or(&[]) {
            if call > next {
                push(out, &mut len, next, Action::Allow);
            }
            push(out, &mut len, call, action);
            next = call.saturating_add(1);
        }
        push(out, &mut len, next, Action::Allow);
        len
    }
}

fn target(action: Action) -> To {
    match action {
        Action::Allow => To::Label(ALLOW_AFTER_TREE),
        Action::Trap => To::Label(TRAP_FROM_PROGRAM),
        Action::Enosys => To::Label(ENOSYS_FROM_PROGRAM),
        Action::CloneFlags => To::Label(CLONE_FLAGS),
        Action::Check(k) => To::Label(CHECK + usize::from(k)),
    }
}

/// Emits a binary search over `intervals` (at least two), with the call number in the accumulator:
/// each test is one `JGE` on an interval's first number, and a side holding one interval jumps straight
/// to that interval's action. The subtrees are laid out in preorder, so every jump is forward.
fn emit_tree(program: &mut Program, intervals: &[(u32, Action)], depth: usize) {
    let mid = intervals.len() / 2;
    let (Some(left), Some(right), Some(&(split, _))) = (
        intervals.get(..mid),
        intervals.get(mid..),
        intervals.get(mid),
    ) else {
        return;
    };
    if depth > 16 {
        program.overflow = true;
        return;
    }
    let side = |part: &[(u32, Action)]| match part {
        [(_, action)] => Some(target(*action)),
        _ => None,
    };
    match (side(left), side(right)) {
        (Some(l), Some(r)) => program.emit(JGE, split, r, l),
        (Some(l), None) => {
            program.emit(JGE, split, To::Next, l);
            emit_tree(program, right, depth + 1);
        }
        (None, Some(r)) => {
            program.emit(JGE, split, r, To::Next);
            emit_tree(program, left, depth + 1);
        }
        (None, None) => {
            let right_label = program.new_label();
            program.emit(JGE, split, To::Label(right_label), To::Next);
            emit_tree(program, left, depth + 1);
            program.label(right_label);
            emit_tree(program, right, depth + 1);
        }
    }
}

/// Joins ranges less than this far apart: the gap is the image's own (its code, between its lazy
/// parts), and a pointer there only costs a trap that prepares nothing, while each range costs the
/// filter five instructions per argument.
const JOIN_GAP: u64 = 16 << 20;

/// `ranges` sorted and joined where closer than [`JOIN_GAP`].
fn joined(ranges: &[(u64, u64)]) -> ([(u64, u64); MAX_RANGES], usize) {
    let mut sorted = [(0u64, 0u64); MAX_RANGES];
    let n = ranges.len().min(MAX_RANGES);
    for (slot, &r) in sorted.iter_mut().zip(ranges) {
        *slot = r;
    }
    if let Some(used) = sorted.get_mut(..n) {
        used.sort_unstable();
    }
    let mut out = [(0u64, 0u64); MAX_RANGES];
    let mut len = 0usize;
    for &(low, high) in sorted.get(..n).unwrap_or(&[]) {
        match len.checked_sub(1).and_then(|l| out.get_mut(l)) {
            Some(last) if low <= last.1.saturating_add(JOIN_GAP) => last.1 = last.1.max(high),
            _ => {
                if let Some(slot) = out.get_mut(len) {
                    *slot = (low, high);
                    len += 1;
                }
            }
        }
    }
    (out, len)
}

/// Builds the filter: calls from the loader are allowed; some calls are always trapped; the calls in
/// [`POINTER_CALLS`] are trapped when one of their pointer arguments lies in one of `ranges`, and
/// those in [`INDIRECT_CALLS`] whenever there is a range at all.
///
/// Layout, for the kernel's action cache (Linux 5.11+): at attach time the kernel runs the filter
/// once per call number with the arguments unknown, and a number that reaches `ALLOW` having loaded only
/// the architecture and the number is allowed from then on without running the filter. So the number is
/// dispatched first, by a binary search over the named numbers (each emulation walks about 8
/// instructions, not the whole list), and only the paths of named calls load the instruction pointer
/// (to let the loader's own calls through) and the arguments.
fn build_filter(program: &mut Program, ranges: &[(u64, u64)], trap_exit: bool) {
    let (ranges, range_count) = joined(ranges);
    let ranges = ranges.get(..range_count).unwrap_or(&[]);
    let table = CallTable::new(!ranges.is_empty(), trap_exit);
    let mut intervals = [(0u32, Action::Allow); 2 * MAX_CALLS + 1];
    let count = table.intervals(&mut intervals);
    let intervals = intervals.get(..count).unwrap_or(&[]);

    program.load(DATA_ARCH);
    program.emit(
        JEQ,
        AUDIT_ARCH_X86_64,
        To::Next,
        To::Label(ALLOW_AFTER_TREE),
    );
    program.load(DATA_NR);
    emit_tree(program, intervals, 0);
    program.label(ALLOW_AFTER_TREE);
    program.emit(RET, SECCOMP_RET_ALLOW, To::Next, To::Next);

    let used = |action: Action| intervals.iter().any(|&(_, a)| a == action);
    let from_loader = |program: &mut Program, otherwise: To| {
        program.load(DATA_IP_HIGH);
        program.emit(JEQ, LOADER_IP_HIGH, To::Allow, otherwise);
    };
    program.label(TRAP_FROM_PROGRAM);
    from_loader(program, To::Trap);
    if used(Action::Enosys) {
        // clone3 hides its flags in memory: the C libraries fall back to clone, whose flags are seen.
        program.label(ENOSYS_FROM_PROGRAM);
        from_loader(program, To::Next);
        program.emit(RET, SECCOMP_RET_ERRNO | ENOSYS, To::Next, To::Next);
    }
    // A new thread (CLONE_VM without CLONE_VFORK) starts without an alternate stack: trap, to give it
    // one (see crate::threads). fork and vfork keep theirs.
    program.label(CLONE_FLAGS);
    from_loader(program, To::Next);
    program.load(data_arg_low(0));
    program.emit(JSET, CLONE_VFORK, To::Allow, To::Next);
    program.emit(JSET, CLONE_VM, To::Trap, To::Allow);
    if ranges.is_empty() {
        return;
    }
    for k in 1..=6u8 {
        if used(Action::Check(k)) {
            program.label(CHECK + usize::from(k));
            from_loader(program, To::Label(ARG + usize::from(k) - 1));
        }
    }
    for arg in (0..6u32).rev() {
        program.label(ARG + arg as usize);
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

/// The program's SIGSEGV action, as it believes it installed it: written from the SIGSYS handler, read
/// from the SIGSEGV handler.
static PROGRAM_SEGV: Lock<KernelSigaction> = Lock::new(KernelSigaction {
    handler: 0,
    flags: 0,
    restorer: 0,
    mask: 0,
});
static STATS_ON_EXIT: AtomicBool = AtomicBool::new(false);

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
    let ranges = ranges.get(..ranges.len().min(MAX_RANGES)).unwrap_or(&[]);
    FILTER_RANGES.init(|kept| {
        for (slot, &range) in kept.0.iter_mut().zip(ranges) {
            *slot = range;
        }
        kept.1 = ranges.len();
        true
    });
    if crate::dispatch::enter(LOADER_RANGE.0, LOADER_RANGE.1 - LOADER_RANGE.0) {
        return Ok(());
    }
    attach_filter()
}

/// The loaders' address range (see [`LOADER_IP_HIGH`]): calls made from there are the pager's.
const LOADER_RANGE: (u64, u64) = (
    (LOADER_IP_HIGH as u64) << 32,
    (LOADER_IP_HIGH as u64 + 1) << 32,
);

/// The filter's ranges, kept from `install` for [`attach_filter`], and how many are used.
static FILTER_RANGES: Once<([(u64, u64); MAX_RANGES], usize)> = Once::new(([(0, 0); MAX_RANGES], 0));

/// Builds the filter over the ranges `install` was given and attaches it; returns the kernel's error.
/// Called at set-up, or from the SIGSYS handler when syscall user dispatch ends (see crate::dispatch).
fn attach_filter() -> Result<(), i64> {
    let (list, len) = FILTER_RANGES.get().unwrap_or(&([(0, 0); MAX_RANGES], 0));
    let mut program = Program::new();
    build_filter(
        &mut program,
        list.get(..*len).unwrap_or(&[]),
        STATS_ON_EXIT.load(Ordering::Relaxed),
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

/// Ends syscall user dispatch (see crate::dispatch): attaches the filter, then turns dispatch off, so
/// that no call of the program's goes unseen. If the kernel refuses the filter the pager cannot go on.
fn leave_dispatch() {
    if let Err(e) = attach_filter() {
        pager::cannot_attach_filter(e);
    }
    crate::dispatch::leave();
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

const EINVAL: i64 = -(linux_raw_sys::errno::EINVAL as i64);
const EFAULT: i64 = -(linux_raw_sys::errno::EFAULT as i64);
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
/// ([`pager::ensure_accessible`]), so a structure in untouched bss reads as it does natively.
fn peek(addr: u64, words: &mut [u64]) -> usize {
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
fn own_pid() -> u64 {
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
fn sigaction(mut args: [u64; 6]) -> i64 {
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
    let checked = POINTER_CALLS
        .iter()
        .chain(INDIRECT_CALLS)
        .find(|&&(n, _)| n == call)
        .map_or(args.len(), |&(_, k)| k);
    for &arg in args.iter().take(checked) {
        pager::ensure_accessible(arg, 256);
    }
}

/// Most entries of an iovec array the kernel takes (`UIO_MAXIOV`), of an `mmsghdr` vector, and the
/// most `iocb`s of one `io_submit` followed.
const IOV_MAX: u64 = 1024;
/// Most waiters of a `futex_waitv`.
const FUTEX_WAITV_MAX: u64 = 128;
/// iovec entries copied at once (1 KiB of the handler's stack).
const IOV_CHUNK: usize = 64;

/// Makes accessible the buffers of the calls that reach them through memory ([`INDIRECT_CALLS`]):
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
            pager::ensure_accessible(args[1], count * 64);
            for i in 0..count {
                prepare_msghdr(args[1].wrapping_add(64 * i));
            }
        }
        nr::PROCESS_VM_READV | nr::PROCESS_VM_WRITEV => {
            prepare_iovecs(args[1], args[2]);
            let remote = args[4].min(IOV_MAX);
            pager::ensure_accessible(args[3], remote * 16);
            // The remote buffers are the program's own only when it names itself.
            if args[0] as u32 == own_pid() as u32 {
                prepare_iovecs(args[3], remote);
            }
        }
        nr::FUTEX_WAITV => {
            // struct futex_waitv { u64 val; u64 uaddr; u32 flags; u32 reserved; }
            let count = args[1].min(FUTEX_WAITV_MAX);
            pager::ensure_accessible(args[0], count * 24);
            for i in 0..count {
                let mut waiter = [0u64; 3];
                if peek(args[0].wrapping_add(24 * i), &mut waiter) < 24 {
                    break;
                }
                pager::ensure_accessible(waiter[1], 8);
            }
        }
        nr::IO_SUBMIT => {
            let count = args[1].min(IOV_MAX);
            pager::ensure_accessible(args[2], count * 8);
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
    pager::ensure_accessible(iov, count * 16);
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
                pager::ensure_accessible(base, len);
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
    pager::ensure_accessible(msg, 56);
    let mut header = [0u64; 7];
    if peek(msg, &mut header) < 56 {
        return;
    }
    pager::ensure_accessible(header[0], header[1] & 0xffff_ffff);
    pager::ensure_accessible(header[4], header[5]);
    prepare_iovecs(header[2], header[3]);
}

/// A `struct iocb` (64 bytes; the opcode at 16, the buffer at 24, its length or iovec count at 32).
fn prepare_iocb(iocb: u64) {
    const PREAD: u64 = 0;
    const PWRITE: u64 = 1;
    const PREADV: u64 = 7;
    const PWRITEV: u64 = 8;
    pager::ensure_accessible(iocb, 64);
    let mut block = [0u64; 8];
    if peek(iocb, &mut block) < 64 {
        return;
    }
    match block[2] & 0xffff {
        PREAD | PWRITE => pager::ensure_accessible(block[3], block[4]),
        PREADV | PWRITEV => prepare_iovecs(block[3], block[4]),
        _ => {}
    }
}


#[cfg(test)]
mod tests {
    use super::*;

    /// What one run of a filter did.
    struct Walk {
        ret: u32,
        /// Instructions executed.
        steps: usize,
        /// Whether it loaded anything but the architecture and the call number (which makes the
        /// kernel's action cache give up on the number).
        loaded_more: bool,
    }

    /// Runs a classic-BPF filter over `struct seccomp_data` (only the instructions the builder emits).
    fn walk(insns: &[Insn], nr: u32, ip: u64, args: [u64; 6]) -> Walk {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr.to_ne_bytes());
        data[4..8].copy_from_slice(&AUDIT_ARCH_X86_64.to_ne_bytes());
        data[8..16].copy_from_slice(&ip.to_ne_bytes());
        for (i, a) in args.iter().enumerate() {
            data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_ne_bytes());
        }
        let (mut pc, mut acc) = (0usize, 0u32);
        let (mut steps, mut loaded_more) = (0, false);
        loop {
            let insn = insns[pc];
            let k = insn.k;
            pc += 1;
            steps += 1;
            match insn.code {
                LD_ABS => {
                    loaded_more |= k != DATA_NR && k != DATA_ARCH;
                    acc = u32::from_ne_bytes(data[k as usize..k as usize + 4].try_into().unwrap())
                }
                RET => {
                    return Walk {
                        ret: k,
                        steps,
                        loaded_more,
                    }
                }
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

    fn run(insns: &[Insn], nr: u32, ip: u64, args: [u64; 6]) -> u32 {
        walk(insns, nr, ip, args).ret
    }

    const USER_IP: u64 = 0x401234;
    /// Two ranges further apart than [`JOIN_GAP`], so that the filter checks both.
    const RANGES: [(u64, u64); 2] = [(0x479000, 0x4a1000), (0x14a2000, 0x14ad000)];

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
            run(&insns, 1, USER_IP, [3, 0x14a2000, 1, 0, 0, 0]),
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
        ); // the gap
        assert_eq!(
            run(&insns, 1, USER_IP, [3, 0x14ad000, 1, 0, 0, 0]),
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
        // Four ranges too far apart to be joined, one across a 4 GiB boundary.
        let ranges = [
            (0x400000, 0x401000),
            (0x4000000, 0x4001000),
            (0x1_0000_0000 - 0x1000, 0x1_0000_2000),
            (0x7f00_0000_0000, 0x7f00_0010_0000),
        ];
        assert_eq!(joined(&ranges).1, 4);
        let mut program = Program::new();
        build_filter(&mut program, &ranges, true);
        let insns = program.finish().to_vec();
        assert!(!insns.is_empty());
        assert!(insns.len() <= MAX_INSNS);
        for (low, _) in ranges {
            assert_eq!(
                run(&insns, 1, USER_IP, [3, low, 1, 0, 0, 0]),
                SECCOMP_RET_TRAP
            );
            // statx's buffer, the deepest argument check.
            assert_eq!(
                run(&insns, 332, USER_IP, [0, 0, 0, 0, low, 0]),
                SECCOMP_RET_TRAP
            );
        }
    }

    /// Every call number the filter can meet.
    const NUMBERS: core::ops::Range<u32> = 0..600;

    fn named(call: u32) -> bool {
        let calls = POINTER_CALLS
            .iter()
            .chain(INDIRECT_CALLS)
            .map(|&(n, _)| n as u32);
        calls
            .chain(
                [
                    nr::RT_SIGACTION,
                    nr::RT_SIGPROCMASK,
                    nr::SIGALTSTACK,
                    nr::EXECVE,
                    nr::EXECVEAT,
                    nr::EXIT,
                    nr::EXIT_GROUP,
                    nr::CLONE,
                    nr::CLONE3,
                ]
                .map(|n| n as u32),
            )
            .any(|n| n == call)
    }

    #[test]
    fn every_pointer_call_reaches_its_argument_checks() {
        let insns = filter().finish().to_vec();
        let table = CallTable::new(true, true);
        let stack = 0x7ffd_1234_5678;
        for &(call, k) in POINTER_CALLS {
            if table.action(call as u32) != Action::Check(k as u8) {
                continue; // also always trapped
            }
            for arg in 0..6 {
                for (low, high) in RANGES {
                    for inside in [low, high - 1] {
                        let mut args = [stack; 6];
                        args[arg] = inside;
                        let expect = if arg < k {
                            SECCOMP_RET_TRAP
                        } else {
                            SECCOMP_RET_ALLOW
                        };
                        assert_eq!(
                            run(&insns, call as u32, USER_IP, args),
                            expect,
                            "call {call}, argument {arg} at {inside:#x}"
                        );
                        assert_eq!(
                            run(&insns, call as u32, 0x3c00_0000_5000, args),
                            SECCOMP_RET_ALLOW,
                            "call {call} from the loader"
                        );
                    }
                }
            }
            assert_eq!(
                run(&insns, call as u32, USER_IP, [stack; 6]),
                SECCOMP_RET_ALLOW
            );
        }
    }

    #[test]
    fn pointer_to_pointer_calls_trap_whatever_their_arguments_while_ranges_exist() {
        let insns = filter().finish().to_vec();
        let mut program = Program::new();
        build_filter(&mut program, &[], false);
        let without_ranges = program.finish().to_vec();
        assert!(!without_ranges.is_empty());
        for &(call, _) in INDIRECT_CALLS {
            let stack = [0x7ffd_1234_5678; 6];
            assert_eq!(
                run(&insns, call as u32, USER_IP, stack),
                SECCOMP_RET_TRAP,
                "call {call}"
            );
            assert_eq!(
                run(&insns, call as u32, 0x3c00_0000_5000, stack),
                SECCOMP_RET_ALLOW,
                "call {call} from the loader"
            );
            assert_eq!(
                run(&without_ranges, call as u32, USER_IP, [0x47a000; 6]),
                SECCOMP_RET_ALLOW,
                "call {call} without lazy ranges"
            );
        }
    }

    #[test]
    fn unnamed_calls_are_allowed_from_the_number_alone_in_a_few_steps() {
        for trap_exit in [false, true] {
            let mut program = Program::new();
            build_filter(&mut program, &RANGES, trap_exit);
            let insns = program.finish().to_vec();
            let mut longest = 0;
            let mut allowed = 0;
            for call in NUMBERS {
                let w = walk(&insns, call, USER_IP, [0x47a000; 6]);
                longest = longest.max(w.steps);
                if named(call) && (trap_exit || call != nr::EXIT_GROUP as u32) {
                    assert!(w.loaded_more, "call {call} is decided without its checks");
                    continue;
                }
                // What the kernel's cache emulation needs to mark the number always-allowed.
                assert_eq!(w.ret, SECCOMP_RET_ALLOW, "call {call}");
                assert!(!w.loaded_more, "call {call} loads more than its number");
                allowed += 1;
            }
            assert!(allowed > 300, "only {allowed} numbers are allowed outright");
            // Arch test, number load, a balanced search over ~140 intervals, the exit; the named calls'
            // paths add the loader test and the argument checks.
            let unnamed_longest = NUMBERS
                .filter(|&c| !named(c))
                .map(|c| walk(&insns, c, USER_IP, [0; 6]).steps)
                .max()
                .unwrap();
            assert!(
                unnamed_longest <= 12,
                "an unnamed call walks {unnamed_longest} steps"
            );
            assert!(longest < 80, "a call walks {longest} steps");
        }
    }

    #[test]
    fn the_tree_covers_the_line_in_order() {
        let table = CallTable::new(true, true);
        let mut out = [(0u32, Action::Allow); 2 * MAX_CALLS + 1];
        let n = table.intervals(&mut out);
        let intervals = &out[..n];
        assert_eq!(intervals[0].0, 0);
        for pair in intervals.windows(2) {
            assert!(pair[0].0 < pair[1].0, "intervals out of order: {pair:?}");
            assert_ne!(pair[0].1, pair[1].1, "neighbours not merged: {pair:?}");
        }
        for call in NUMBERS {
            let i = intervals.partition_point(|&(start, _)| start <= call) - 1;
            assert_eq!(intervals[i].1, table.action(call), "call {call}");
        }
        // read (0) is named: the line starts with its check, not with an allowed interval.
        assert_eq!(intervals[0].1, Action::Check(2));
    }

    #[test]
    fn close_ranges_are_joined_and_far_ones_kept() {
        let (out, n) = joined(&[
            (0x4a2000, 0x4ad000),
            (0x479000, 0x4a1000),
            (0x7f00_0000_0000, 0x7f00_0001_0000),
        ]);
        assert_eq!(
            &out[..n],
            &[(0x479000, 0x4ad000), (0x7f00_0000_0000, 0x7f00_0001_0000)]
        );
        let mut program = Program::new();
        build_filter(
            &mut program,
            &[(0x479000, 0x4a1000), (0x4a2000, 0x4ad000)],
            false,
        );
        let insns = program.finish().to_vec();
        // The gap between joined ranges traps too (a trap that prepares nothing).
        assert_eq!(
            run(&insns, 1, USER_IP, [3, 0x4a1800, 1, 0, 0, 0]),
            SECCOMP_RET_TRAP
        );
        assert_eq!(
            run(&insns, 1, USER_IP, [3, 0x4ad000, 1, 0, 0, 0]),
            SECCOMP_RET_ALLOW
        );
    }

    #[test]
    fn the_builder_refuses_far_and_dangling_jumps() {
        let mut program = Program::new();
        program.emit(JEQ, 0, To::Trap, To::Next);
        for _ in 0..300 {
            program.load(DATA_NR);
        }
        assert!(
            program.finish().is_empty(),
            "a 300-instruction jump was built"
        );
        let mut program = Program::new();
        program.emit(JEQ, 0, To::Label(FIRST_FREE_LABEL), To::Next);
        assert!(
            program.finish().is_empty(),
            "a jump to an unplaced label was built"
        );
        let mut program = Program::new();
        for _ in 0..MAX_INSNS {
            program.load(DATA_NR);
        }
        assert!(
            program.finish().is_empty(),
            "an overflowing program was built"
        );
    }
}
