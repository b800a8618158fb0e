//! The seccomp filter: built over the image's lazy ranges, and attached.
//!
//! It is built from the system-call table ([`crate::calls`]) with the BPF builder ([`crate::bpf`]).
//!
//! # Safety
//!
//! [`attach`] may run in the SIGSYS handler (when syscall user dispatch ends): it uses the stack, raw
//! system calls and the ranges written once at set-up only.

use core::sync::atomic::{AtomicBool, Ordering};

use linux_raw_sys::general as k;

use crate::bpf::{
    data_arg_low, Program, To, DATA_ARCH, DATA_IP_HIGH, DATA_NR, JEQ, JGE, JGT, JSET, RET,
    SECCOMP_RET_ALLOW,
};
use crate::calls::{Action, CallTable, MAX_CALLS};
use crate::lock::Once;
use crate::regions::Region;
use crate::sys;

/// Where the loaders are linked: a call whose instruction pointer has these high 32 bits is the loader's.
const LOADER_IP_HIGH: u32 = 0x3c00;
const SECCOMP_RET_ERRNO: u32 = linux_raw_sys::ptrace::SECCOMP_RET_ERRNO;
const ENOSYS: u32 = linux_raw_sys::errno::ENOSYS;
const CLONE_VM: u32 = k::CLONE_VM;
const CLONE_VFORK: u32 = k::CLONE_VFORK;
const AUDIT_ARCH_X86_64: u32 = linux_raw_sys::ptrace::AUDIT_ARCH_X86_64;

/// Most ranges the filter checks arguments against.
pub const MAX_RANGES: usize = 4;

/// Fixed label ids: `CHECK + k` checks arguments k-1 down to 0 (after the loader test), `ARG + a`
/// starts the range test of argument a.
const CHECK: usize = 0; // 1..=6 used
const ARG: usize = 7; // 0..=5
const CLONE_FLAGS: usize = 13;
const TRAP_FROM_PROGRAM: usize = 14;
const ENOSYS_FROM_PROGRAM: usize = 15;
const ALLOW_AFTER_TREE: usize = 16;
const FIRST_FREE_LABEL: usize = 17;

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
        program.fail();
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
/// [`crate::calls::POINTER_CALLS`] are trapped when one of their pointer arguments lies in one of `ranges`, and
/// those in [`crate::calls::INDIRECT_CALLS`] whenever there is a range at all.
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
    filter: *const crate::bpf::Insn,
}

/// The loaders' address range (see [`LOADER_IP_HIGH`]): calls made from there are the pager's.
pub(crate) const LOADER_RANGE: (u64, u64) = (
    (LOADER_IP_HIGH as u64) << 32,
    (LOADER_IP_HIGH as u64 + 1) << 32,
);

/// The filter's ranges, kept from [`configure`] for [`attach`], and how many are used.
static FILTER_RANGES: Once<([(u64, u64); MAX_RANGES], usize)> =
    Once::new(([(0, 0); MAX_RANGES], 0));
/// Whether the filter traps `exit_group` (to print statistics first).
static TRAP_EXIT: AtomicBool = AtomicBool::new(false);

/// Keeps the filter's argument-check ranges (the first [`MAX_RANGES`] of `ranges`: the image's lazily
/// mapped, non-executable parts, see [`ranges`]) and whether it traps `exit_group`, for [`attach`].
/// Single-threaded set-up.
pub(crate) fn configure(ranges: &[(u64, u64)], trap_exit: bool) {
    TRAP_EXIT.store(trap_exit, Ordering::Relaxed);
    let ranges = ranges.get(..ranges.len().min(MAX_RANGES)).unwrap_or(&[]);
    FILTER_RANGES.init(|kept| {
        for (slot, &range) in kept.0.iter_mut().zip(ranges) {
            *slot = range;
        }
        kept.1 = ranges.len();
        true
    });
}

/// Builds the filter over the ranges [`configure`] was given and attaches it; returns the kernel's
/// error. Called at set-up, or from the SIGSYS handler when syscall user dispatch ends (see
/// crate::dispatch).
pub(crate) fn attach() -> Result<(), i64> {
    let (list, len) = FILTER_RANGES.get().unwrap_or(&([(0, 0); MAX_RANGES], 0));
    let mut program = Program::new(FIRST_FREE_LABEL);
    build_filter(
        &mut program,
        list.get(..*len).unwrap_or(&[]),
        TRAP_EXIT.load(Ordering::Relaxed),
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
            k::__NR_seccomp as u64,
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
                k::__NR_seccomp as u64,
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

/// Up to [`MAX_RANGES`] address ranges, for the seccomp filter's argument checks.
pub(crate) struct Ranges {
    list: [(u64, u64); MAX_RANGES],
    len: usize,
}

impl Ranges {
    pub(crate) fn get(&self) -> &[(u64, u64)] {
        self.list.get(..self.len).unwrap_or(&[])
    }
}

/// The lazily mapped regions the kernel may be handed pointers into: all but executable ones (a call
/// rarely passes a pointer into code), adjacent ones joined; if there are still too many, the closest are
/// merged, which only traps a little more than needed.
pub(crate) fn ranges(regions: &[Region]) -> Ranges {
    let mut out = Ranges {
        list: [(0, 0); MAX_RANGES],
        len: 0,
    };
    let mut pending: Option<(u64, u64)> = None;
    let push = |out: &mut Ranges, r: (u64, u64)| {
        if out.len == out.list.len() {
            // Full: extend the last range over this one.
            if let Some(last) = out.list.last_mut() {
                last.1 = r.1;
            }
        } else if let Some(slot) = out.list.get_mut(out.len) {
            *slot = r;
            out.len += 1;
        }
    };
    for r in regions.iter().filter(|r| r.prot & 4 == 0) {
        pending = match pending {
            Some((start, end)) if end == r.start => Some((start, r.end)),
            Some(done) => {
                push(&mut out, done);
                Some((r.start, r.end))
            }
            None => Some((r.start, r.end)),
        };
    }
    if let Some(done) = pending {
        push(&mut out, done);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpf::{run, walk, MAX_INSNS, SECCOMP_RET_TRAP};
    use crate::calls::{INDIRECT_CALLS, POINTER_CALLS};
    use crate::sys::nr;

    const USER_IP: u64 = 0x401234;
    /// Two ranges further apart than [`JOIN_GAP`], so that the filter checks both.
    const RANGES: [(u64, u64); 2] = [(0x479000, 0x4a1000), (0x14a2000, 0x14ad000)];

    fn filter() -> Program {
        let mut program = Program::new(FIRST_FREE_LABEL);
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
        let mut program = Program::new(FIRST_FREE_LABEL);
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
        let mut program = Program::new(FIRST_FREE_LABEL);
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
        let mut program = Program::new(FIRST_FREE_LABEL);
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
            let mut program = Program::new(FIRST_FREE_LABEL);
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
        let mut program = Program::new(FIRST_FREE_LABEL);
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
}
