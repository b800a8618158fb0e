//! The filter's system-call table: the calls the seccomp filter names and what it does with each.
//!
//! Each named call is allowed, trapped, answered `ENOSYS`, trapped when it makes a thread (`clone`),
//! or trapped when one of its first pointer arguments lies in a lazy range.

use linux_raw_sys::general as k;

use crate::sys::nr;

/// The calls that take pointers the kernel dereferences, with how many leading arguments to check (the
/// highest pointer argument's position + 1). The calls that also reach buffers through memory are in
/// [`INDIRECT_CALLS`] instead. Calls not listed are never trapped for their arguments:
/// an image page they alone would touch first gets EFAULT (none of the common ones).
pub(crate) const POINTER_CALLS: &[(u64, usize)] = &[
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
/// follows the structures (see `sigsys::prepare_indirect`).
pub(crate) const INDIRECT_CALLS: &[(u64, usize)] = &[
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
pub(crate) enum Action {
    Allow,
    Trap,
    /// `clone3`: `ENOSYS`.
    Enosys,
    /// `clone`: trapped when it makes a thread.
    CloneFlags,
    /// Trapped when one of the first `k` (1..=6) arguments lies in a range.
    Check(u8),
}

/// Most distinct call numbers the filter names.
pub(crate) const MAX_CALLS: usize = 160;

/// The calls the filter names, sorted by number, with what it does with each; every other number is
/// allowed.
pub(crate) struct CallTable {
    calls: [(u32, Action); MAX_CALLS],
    len: usize,
}

impl CallTable {
    pub(crate) fn new(lazy: bool, trap_exit: bool) -> Self {
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
    pub(crate) fn action(&self, call: u32) -> Action {
        let used = self.calls.get(..self.len).unwrap_or(&[]);
        match used.binary_search_by_key(&call, |&(n, _)| n) {
            Ok(i) => used.get(i).map_or(Action::Allow, |&(_, a)| a),
            Err(_) => Action::Allow,
        }
    }

    /// The call-number line cut into intervals of one action: `(first number, action)`, the first at 0;
    /// each runs to the next one's first number.
    pub(crate) fn intervals(&self, out: &mut [(u32, Action); 2 * MAX_CALLS + 1]) -> usize {
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

/// How many leading arguments of `call` the filter checks for pointers into the lazy ranges (or that
/// are direct pointers of a call it always traps), if the call is in [`POINTER_CALLS`] or
/// [`INDIRECT_CALLS`].
pub(crate) fn pointer_args(call: u64) -> Option<usize> {
    POINTER_CALLS
        .iter()
        .chain(INDIRECT_CALLS)
        .find(|&&(n, _)| n == call)
        .map(|&(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every call number the filter can meet.
    const NUMBERS: core::ops::Range<u32> = 0..600;

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
}
