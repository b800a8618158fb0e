//! Pager stacks: an alternate signal stack of the pager's own for every thread of the program.
//!
//! So the SIGSEGV and SIGSYS handlers do not write their signal frames on the program's stacks (a
//! goroutine's 2 KiB stack, a thread made with a 16 KiB stack).
//!
//! The kernel clears the alternate stack of a thread created with `CLONE_VM` but not `CLONE_VFORK`
//! (`copy_process`), so every new thread would start without one. The filter traps exactly those
//! `clone` calls. The SIGSYS handler does not perform them: it takes a stack from a pool, fills a
//! [`CloneSlot`] with what the child will need, and resumes the program at a stub of the loader's own
//! code ([`clone_stubs`]) that makes the same call with the same registers. The child's first
//! instructions install its stack and continue at the program's return address, with the registers the
//! kernel would have given it (`rax` 0, `rcx` the return address, `r11` the flags); the parent goes on
//! there too. `clone3`, whose flags lie in memory the filter cannot read, is answered `ENOSYS` by the
//! filter itself, and the C libraries fall back to `clone`.
//!
//! The program's own `sigaltstack` calls are honoured ([`sigaltstack`]): a stack it installs is the
//! thread's real alternate stack from then on (Go gives every thread one), the pager's stack is reported
//! as none, as after `execve`, and a thread that disables its stack gets the pager's back. A thread's
//! pager stack returns to the pool when the thread calls `exit` (trapped for that, [`exit_thread`]).
//!
//! # Safety
//!
//! Runs in the SIGSYS handler: atomics, raw system calls and fixed tables only. The stubs run on the
//! child's fresh stack before anything else and touch no memory but their own slot.

use core::arch::naked_asm;
use core::ffi::c_void;
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

use linux_raw_sys::errno;
use linux_raw_sys::general as k;
use rustix::mm::{MapFlags, MprotectFlags, ProtFlags};
use uexec_elf::PAGE_SIZE;

use crate::sys::{nr, raw, reg, reg_ptr, SignalStack, UC_STACK_OFFSET};
use crate::usermem::{read_word, write_bytes};

/// Usable size of one pager stack; a guard page lies below it. Enough for two nested kernel frames of
/// AVX-512 state (3.4 KiB each) and the handlers' own buffers.
pub const STACK_SIZE: usize = 128 * 1024;
/// Most threads that can hold a pager stack at once; a `clone` beyond fails with `EAGAIN`.
const MAX_STACKS: usize = 1024;
/// Stacks handed to a thread whose id is not known yet.
const TAKEN: u32 = u32::MAX;

/// Base (guard page included) of each stack ever mapped, 0 for a slot not mapped yet.
static BASES: [AtomicUsize; MAX_STACKS] = [const { AtomicUsize::new(0) }; MAX_STACKS];
/// Who holds each stack: 0 free, [`TAKEN`], or the thread id.
static OWNERS: [AtomicU32; MAX_STACKS] = [const { AtomicU32::new(0) }; MAX_STACKS];

const SS_ONSTACK: i32 = k::SS_ONSTACK as i32;
const SS_DISABLE: i32 = k::SS_DISABLE as i32;
const SS_AUTODISARM: i32 = k::SS_AUTODISARM as i32;
const MINSIGSTKSZ: usize = k::MINSIGSTKSZ as usize;
const EAGAIN: i64 = -(errno::EAGAIN as i64);
const EFAULT: i64 = -(errno::EFAULT as i64);
const EINVAL: i64 = -(errno::EINVAL as i64);
const ENOMEM: i64 = -(errno::ENOMEM as i64);
const EPERM: i64 = -(errno::EPERM as i64);

fn tid() -> u32 {
    rustix::thread::gettid().as_raw_nonzero().get() as u32
}

/// Takes a free stack (mapping it on first use); returns its index and the stack to install.
fn take_stack() -> Option<(usize, SignalStack)> {
    for (i, owner) in OWNERS.iter().enumerate() {
        if owner
            .compare_exchange(0, TAKEN, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            continue;
        }
        let base = BASES.get(i)?;
        if base.load(Ordering::Acquire) == 0 {
            let Some(mapped) = map_stack() else {
                owner.store(0, Ordering::Release);
                return None;
            };
            base.store(mapped, Ordering::Release);
        }
        return Some((i, stack_at(base.load(Ordering::Acquire))));
    }
    None
}

fn stack_at(base: usize) -> SignalStack {
    SignalStack {
        sp: base + PAGE_SIZE as usize,
        flags: 0,
        size: STACK_SIZE,
    }
}

/// Maps one stack with an inaccessible guard page below it; returns the base.
fn map_stack() -> Option<usize> {
    let len = STACK_SIZE + PAGE_SIZE as usize;
    // SAFETY: without MAP_FIXED the kernel picks an unused range.
    let base = unsafe {
        rustix::mm::mmap_anonymous(
            core::ptr::null_mut(),
            len,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::PRIVATE | MapFlags::NORESERVE,
        )
    }
    .ok()?;
    // SAFETY: the first page of the mapping just made, used by nothing.
    if unsafe { rustix::mm::mprotect(base, PAGE_SIZE as usize, MprotectFlags::empty()) }.is_err() {
        // SAFETY: the mapping just made, used by nothing.
        let _ = unsafe { rustix::mm::munmap(base, len) };
        return None;
    }
    Some(base as usize)
}

/// The index of the pager stack whose usable part starts at `sp`, if it is one.
fn index_of(sp: usize) -> Option<usize> {
    if sp == 0 {
        return None;
    }
    BASES
        .iter()
        .position(|b| b.load(Ordering::Acquire) + PAGE_SIZE as usize == sp)
}

/// Whether `sp` is the start of one of the pager's stacks.
pub fn is_pager_stack(sp: usize) -> bool {
    index_of(sp).is_some()
}

fn owned_by(tid: u32) -> Option<usize> {
    OWNERS.iter().position(|o| o.load(Ordering::Acquire) == tid)
}

/// Gives the calling (main) thread a pager stack, at set-up. Returns the stack installed.
pub(crate) fn install_main_stack() -> Result<SignalStack, i64> {
    let (i, stack) = take_stack().ok_or(ENOMEM)?;
    if let Some(owner) = OWNERS.get(i) {
        owner.store(tid(), Ordering::Release);
    }
    // SAFETY: the stack is a mapping of the pager's own, reserved for this thread.
    let r = unsafe { crate::sys::sigaltstack(&stack) };
    if r < 0 {
        return Err(r);
    }
    Ok(stack)
}

/// What a child needs between its `clone` and its first instruction of the program's. `refs` counts
/// the parent and the child, each of which drops its reference once it has read what it needs.
/// The stubs read the fields at the offsets given: keep them in step.
#[repr(C, align(64))]
struct CloneSlot {
    /// 0 free; 2 while both the parent and the child have still to read the slot.
    refs: AtomicU64, // 0
    /// The program's return address (after its `syscall`).
    rip: AtomicU64, // 8
    rdi: AtomicU64,    // 16
    rsi: AtomicU64,    // 24
    rflags: AtomicU64, // 32
    /// The child's `stack_t`.
    ss_sp: AtomicU64, // 40
    ss_flags: AtomicU64, // 48
    ss_size: AtomicU64, // 56
}

const SLOTS: usize = 64;
/// Bytes of code per stub in [`clone_stubs`] (`.balign`).
const STUB_BYTES: usize = 128;

static CLONE_SLOTS: [CloneSlot; SLOTS] = [const {
    CloneSlot {
        refs: AtomicU64::new(0),
        rip: AtomicU64::new(0),
        rdi: AtomicU64::new(0),
        rsi: AtomicU64::new(0),
        rflags: AtomicU64::new(0),
        ss_sp: AtomicU64::new(0),
        ss_flags: AtomicU64::new(0),
        ss_size: AtomicU64::new(0),
    }
}; SLOTS];

const _: () = assert!(core::mem::size_of::<CloneSlot>() == 64);

/// `SLOTS` stubs, one every [`STUB_BYTES`]: stub `i` performs the `clone` with the program's registers,
/// then the parent reads its return address and flags from slot `i`, drops its reference and returns
/// to the program; the child goes to [`install_and_return`] with `i` in `r11`.
#[unsafe(naked)]
unsafe extern "C" fn clone_stubs() {
    naked_asm!(
        ".set uexec_clone_i, 0",
        ".rept 64",
        ".balign 128",
        "syscall",
        "mov r11d, uexec_clone_i",
        "test rax, rax",
        "jz {child}",
        "mov rcx, qword ptr [rip + {slots} + 64 * uexec_clone_i + 8]",
        "js 1f",
        "mov r11, qword ptr [rip + {slots} + 64 * uexec_clone_i + 32]",
        "lock dec qword ptr [rip + {slots} + 64 * uexec_clone_i]",
        "jmp rcx",
        // The call failed: no child will read the slot.
        "1:",
        "mov r11, qword ptr [rip + {slots} + 64 * uexec_clone_i + 32]",
        "mov qword ptr [rip + {slots} + 64 * uexec_clone_i], 0",
        "jmp rcx",
        ".set uexec_clone_i, uexec_clone_i + 1",
        ".endr",
        child = sym install_and_return,
        slots = sym CLONE_SLOTS,
    )
}

/// Installs the stack of slot `r11` as the thread's alternate stack, restores `rdi`/`rsi` (the
/// `sigaltstack` call used them), `rcx` and `r11` as `syscall` leaves them, drops a reference to the
/// slot and continues at the program's return address with `rax` 0. A new thread's first code, and
/// where a program's own `sigaltstack` call is completed: the kernel refuses to change the stack from
/// a handler running on it, so the handler leaves the change to this code, run after it returns.
#[unsafe(naked)]
unsafe extern "C" fn install_and_return() {
    naked_asm!(
        "shl r11, 6",
        "lea rcx, [rip + {slots}]",
        "add r11, rcx",
        "lea rdi, [r11 + 40]",
        "xor esi, esi",
        "mov eax, {sigaltstack}", // sigaltstack(&slot.ss, NULL)
        "syscall",
        "lea rax, [rdi - 40]",
        "mov rsi, qword ptr [rax + 24]",
        "mov rcx, qword ptr [rax + 8]",
        "mov r11, qword ptr [rax + 32]",
        "mov rdi, qword ptr [rax + 16]",
        "lock dec qword ptr [rax]",
        "xor eax, eax",
        "jmp rcx",
        slots = sym CLONE_SLOTS,
        sigaltstack = const k::__NR_sigaltstack,
    )
}

/// Takes a free clone slot with `refs` readers and fills it from the trapped call's registers, with
/// `stack` as the alternate stack to install; returns its index.
fn fill_slot(context: *mut c_void, refs: u64, stack: &SignalStack) -> Option<usize> {
    let (i, slot) = CLONE_SLOTS.iter().enumerate().find(|(_, s)| {
        s.refs
            .compare_exchange(0, refs, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    })?;
    // SAFETY: `context` is the ucontext of the SIGSYS being handled.
    let r = |n| unsafe { reg_ptr(context, n).read() };
    slot.rip.store(r(reg::RIP), Ordering::Relaxed);
    slot.rdi.store(r(reg::RDI), Ordering::Relaxed);
    slot.rsi.store(r(reg::RSI), Ordering::Relaxed);
    slot.rflags.store(r(reg::EFL), Ordering::Relaxed);
    slot.ss_sp.store(stack.sp as u64, Ordering::Relaxed);
    slot.ss_flags
        .store(stack.flags as u32 as u64, Ordering::Relaxed);
    slot.ss_size.store(stack.size as u64, Ordering::Release);
    Some(i)
}

/// Sends a trapped `clone(CLONE_VM, ...)` through a stub: on success the program is resumed there
/// (nothing to return); otherwise the error for the call.
pub(crate) fn redirect_clone(context: *mut c_void) -> Result<(), i64> {
    let Some((index, stack)) = take_stack() else {
        return Err(EAGAIN);
    };
    let Some(i) = fill_slot(context, 2, &stack) else {
        if let Some(owner) = OWNERS.get(index) {
            owner.store(0, Ordering::Release);
        }
        return Err(EAGAIN);
    };
    let stubs = (clone_stubs as *const () as usize).next_multiple_of(STUB_BYTES);
    // SAFETY: as above; the program resumes at stub `i` with its own registers and `rax` the call.
    unsafe {
        reg_ptr(context, reg::RIP).write((stubs + i * STUB_BYTES) as u64);
        reg_ptr(context, reg::RAX).write(nr::CLONE);
    }
    Ok(())
}

/// Makes the program, once the handler returns, install `stack` through [`install_and_return`] before
/// it goes on after its trapped call.
fn install_on_return(context: *mut c_void, stack: &SignalStack) -> Result<(), i64> {
    let i = fill_slot(context, 1, stack).ok_or(ENOMEM)?;
    // SAFETY: `context` is the ucontext of the SIGSYS being handled; r11 is the slot's index, as the
    // code there expects (the program's r11 is clobbered by its `syscall` anyway, and restored).
    unsafe {
        reg_ptr(context, reg::RIP).write(install_and_return as *const () as u64);
        reg_ptr(context, reg::R11).write(i as u64);
    }
    Ok(())
}

fn read_stack(addr: u64) -> Option<SignalStack> {
    Some(SignalStack {
        sp: read_word(addr)? as usize,
        flags: read_word(addr.wrapping_add(8))? as i32,
        size: read_word(addr.wrapping_add(16))? as usize,
    })
}

/// `sigaltstack(new, old)` on the program's behalf. The handler runs on the thread's alternate stack,
/// where the kernel refuses any change (`EPERM`, and a changed `uc_stack` in the frame is ignored too):
/// the checks are made here, as the kernel's `do_sigaltstack` makes them, and the change itself is
/// made by [`install_and_return`] once the handler has returned.
pub(crate) fn sigaltstack(new: u64, old: u64, context: *mut c_void) -> i64 {
    // SAFETY: `context` is the ucontext of the SIGSYS being handled; uc_stack is a stack_t.
    let uc_stack = unsafe {
        context
            .cast::<u8>()
            .add(UC_STACK_OFFSET)
            .cast::<SignalStack>()
    };
    // SAFETY: as above.
    let current = unsafe { uc_stack.read_unaligned() };
    // SAFETY: as above.
    let sp = unsafe { reg_ptr(context, reg::RSP).read() } as usize;
    let own = is_pager_stack(current.sp);
    let program_view = if own || current.flags & SS_DISABLE != 0 || current.size == 0 {
        SignalStack {
            sp: 0,
            flags: SS_DISABLE,
            size: 0,
        }
    } else {
        let on = sp > current.sp && sp - current.sp <= current.size;
        SignalStack {
            flags: if on { SS_ONSTACK } else { 0 },
            ..current
        }
    };
    let mut install = None;
    if new != 0 {
        let Some(asked) = read_stack(new) else {
            return EFAULT;
        };
        if program_view.flags == SS_ONSTACK {
            return EPERM;
        }
        let mode = asked.flags & !SS_AUTODISARM;
        if mode != 0 && mode != SS_ONSTACK && mode != SS_DISABLE {
            return EINVAL;
        }
        let tid = tid();
        if mode == SS_DISABLE {
            // The thread gets its pager stack back: the one it holds, or a new one.
            let held = owned_by(tid).or_else(|| index_of(current.sp));
            let stack = match held {
                Some(i) => BASES.get(i).map(|b| stack_at(b.load(Ordering::Acquire))),
                None => take_stack().map(|(i, s)| {
                    if let Some(o) = OWNERS.get(i) {
                        o.store(tid, Ordering::Release);
                    }
                    s
                }),
            };
            install = Some(stack.unwrap_or(SignalStack {
                sp: 0,
                flags: SS_DISABLE,
                size: 0,
            }));
        } else {
            if asked.size < MINSIGSTKSZ {
                return ENOMEM;
            }
            // The pager's stack stays reserved for this thread, for when it disables its own.
            if let Some(o) = index_of(current.sp).and_then(|i| OWNERS.get(i)) {
                o.store(tid, Ordering::Release);
            }
            install = Some(asked);
        }
    }
    if old != 0 && !write_stack(old, &program_view) {
        return EFAULT;
    }
    match install {
        Some(stack) => install_on_return(context, &stack).map_or_else(|e| e, |()| 0),
        None => 0,
    }
}

fn write_stack(addr: u64, stack: &SignalStack) -> bool {
    // Through the kernel, so that a bad pointer gives EFAULT, as natively, instead of a fault here.
    write_bytes(addr, stack)
}

/// The program's `exit(code)` from one thread: its pager stack goes back to the pool, then the thread
/// ends. The stack may be the one this handler runs on: after the store that frees it, nothing but
/// the `exit` system call runs.
pub(crate) fn exit_thread(code: u64) -> ! {
    let mut current = SignalStack::default();
    raw(
        k::__NR_sigaltstack as u64,
        &[0, &mut current as *mut SignalStack as u64, 0, 0, 0, 0],
    );
    let held = index_of(current.sp).or_else(|| owned_by(tid()));
    let owner = held
        .and_then(|i| OWNERS.get(i))
        .map_or(core::ptr::null(), |o| o.as_ptr() as *const u32);
    // SAFETY: `owner` is null or one of OWNERS, a u32 that lives for the whole process.
    unsafe { crate::sys::release_and_exit(owner, code) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stubs_are_where_the_handler_computes_them() {
        // Stub i starts STUB_BYTES * i past the first 128-byte boundary of the function: each one is
        // `syscall` (0f 05) then `mov r11d, i` (41 bb i32).
        let first = (clone_stubs as *const () as usize).next_multiple_of(STUB_BYTES);
        for i in [0usize, 1, 17, SLOTS - 1] {
            let at = first + i * STUB_BYTES;
            // SAFETY: reading the loader's own code, inside clone_stubs.
            let code = unsafe { core::slice::from_raw_parts(at as *const u8, 7) };
            assert_eq!(&code[..3], &[0x0f, 0x05, 0x41], "stub {i}");
            assert_eq!(code[3], 0xbb, "stub {i}");
            assert_eq!(code[4], i as u8, "stub {i}");
        }
    }
}
