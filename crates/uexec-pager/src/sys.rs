//! The kernel ABI: every raw `syscall` of the crate, the numbers, and the signal-frame layouts.
//!
//! The layouts the kernel hands a signal handler (`siginfo_t`, `ucontext_t`) are checked at compile
//! time.
//!
//! # Safety
//!
//! Every function here is a thin wrapper whose contract is the kernel's; none touches errno or TLS, so
//! all may run in a signal handler. The layouts are x86-64's (`arch/x86/include/uapi/asm/sigcontext.h`,
//! `include/uapi/asm-generic/ucontext.h`, `siginfo.h`); the `const` assertions below pin each offset the
//! handlers read. (The clone stubs of `crate::threads` are naked code with their own `syscall`s: they
//! must run on the new thread's registers.)

use core::arch::naked_asm;
use core::ffi::c_void;

use linux_raw_sys::general as k;

pub const SIGSEGV: i32 = k::SIGSEGV as i32;
pub const SIGSYS: i32 = k::SIGSYS as i32;
pub const SA_SIGINFO: u64 = k::SA_SIGINFO as u64;
pub const SA_ONSTACK: u64 = k::SA_ONSTACK as u64;
pub const SA_RESTORER: u64 = k::SA_RESTORER as u64;
pub const SIG_DFL: usize = 0;

/// `struct sigaction` as the kernel's `rt_sigaction` reads it on x86-64.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default)]
pub struct KernelSigaction {
    pub handler: usize,
    pub flags: u64,
    pub restorer: usize,
    pub mask: u64,
}

/// `stack_t`.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default)]
pub struct SignalStack {
    pub sp: usize,
    pub flags: i32,
    pub size: usize,
}

/// A raw system call with up to four arguments; returns the kernel's value (negative errno on failure).
///
/// # Safety
///
/// The arguments must satisfy the contract of system call `nr`.
pub unsafe fn syscall4(nr: u64, a: u64, b: u64, c: u64, d: u64) -> i64 {
    let ret: i64;
    // SAFETY: per the caller's contract; rcx and r11 are clobbered by `syscall`.
    unsafe {
        core::arch::asm!("syscall", inlateout("rax") nr as i64 => ret, in("rdi") a, in("rsi") b,
            in("rdx") c, in("r10") d, lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    ret
}

/// `mincore(addr, pages * PAGE_SIZE, vec)`: whether the kernel filled one byte per page into `vec`
/// (false, without a call, if `vec` holds fewer than `pages` bytes).
pub fn mincore(addr: u64, pages: usize, vec: &mut [u8]) -> bool {
    if vec.len() < pages {
        return false;
    }
    // SAFETY: the kernel writes one byte per page into `vec`, which holds at least `pages` bytes.
    unsafe {
        syscall4(
            k::__NR_mincore as u64,
            addr,
            pages as u64 * uexec_elf::PAGE_SIZE,
            vec.as_mut_ptr() as u64,
            0,
        ) == 0
    }
}

/// `rt_sigaction(sig, new, old, 8)`.
///
/// # Safety
///
/// `new`, if given, must describe a handler that is sound to run for `sig`.
pub unsafe fn rt_sigaction(
    sig: i32,
    new: Option<&KernelSigaction>,
    old: Option<&mut KernelSigaction>,
) -> i64 {
    let new = new.map_or(0, |n| n as *const _ as u64);
    let old = old.map_or(0, |o| o as *mut _ as u64);
    // SAFETY: both pointers are null or point at live sigaction structs of the kernel's layout.
    unsafe { syscall4(k::__NR_rt_sigaction as u64, sig as u64, new, old, 8) }
}

/// `sigaltstack(new, NULL)`.
///
/// # Safety
///
/// `new` must describe memory that stays mapped and unused by anything else while it is installed.
pub unsafe fn sigaltstack(new: &SignalStack) -> i64 {
    // SAFETY: per the contract.
    unsafe { syscall4(k::__NR_sigaltstack as u64, new as *const _ as u64, 0, 0, 0) }
}

/// Ends the process with `status`, from anywhere (a signal handler included).
pub fn exit_group(status: i32) -> ! {
    // SAFETY: exit_group takes one integer and does not return.
    unsafe {
        core::arch::asm!("syscall", in("rax") k::__NR_exit_group, in("rdi") status, options(noreturn, nostack))
    }
}

/// Stores 0 at `owner` (unless it is null), then ends the calling thread with `exit(code)`, running
/// nothing in between: the store may free the stack this code runs on.
///
/// # Safety
///
/// `owner` must be null or point at a live, aligned `u32`.
pub unsafe fn release_and_exit(owner: *const u32, code: u64) -> ! {
    // SAFETY: per the contract; after the store only the exit call runs, without touching the stack.
    unsafe {
        core::arch::asm!(
            "test {owner}, {owner}",
            "jz 2f",
            "mov dword ptr [{owner}], 0",
            "2:",
            "mov eax, {exit}",
            "syscall",
            "ud2",
            owner = in(reg) owner,
            in("rdi") code,
            exit = const k::__NR_exit,
            options(noreturn, nostack),
        )
    }
}

/// The `sa_restorer` every handler installed here uses: returns from the signal frame.
///
/// # Safety
///
/// Never to be called: only its address is given to the kernel as `sa_restorer`, and it runs as a
/// signal handler's return address, with the signal frame at `rsp` (`rt_sigreturn` reads it).
#[unsafe(naked)]
pub unsafe extern "C" fn restore_rt() {
    naked_asm!("mov eax, {n}", "syscall", "ud2", n = const k::__NR_rt_sigreturn)
}

/// System call numbers the handler dispatches on.
pub mod nr {
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
    pub const GETPID: u64 = k::__NR_getpid as u64;
    pub const PROCESS_VM_READV: u64 = k::__NR_process_vm_readv as u64;
    pub const PROCESS_VM_WRITEV: u64 = k::__NR_process_vm_writev as u64;
    pub const PREADV: u64 = k::__NR_preadv as u64;
    pub const PWRITEV: u64 = k::__NR_pwritev as u64;
    pub const PREADV2: u64 = k::__NR_preadv2 as u64;
    pub const PWRITEV2: u64 = k::__NR_pwritev2 as u64;
    pub const VMSPLICE: u64 = k::__NR_vmsplice as u64;
    pub const SENDMSG: u64 = k::__NR_sendmsg as u64;
    pub const RECVMSG: u64 = k::__NR_recvmsg as u64;
    pub const SENDMMSG: u64 = k::__NR_sendmmsg as u64;
    pub const RECVMMSG: u64 = k::__NR_recvmmsg as u64;
    pub const FUTEX_WAITV: u64 = k::__NR_futex_waitv as u64;
    pub const IO_SUBMIT: u64 = k::__NR_io_submit as u64;
    pub const IO_GETEVENTS: u64 = k::__NR_io_getevents as u64;
    pub const IO_PGETEVENTS: u64 = k::__NR_io_pgetevents as u64;
    pub const POLL: u64 = k::__NR_poll as u64;
    pub const PPOLL: u64 = k::__NR_ppoll as u64;
    pub const EPOLL_WAIT: u64 = k::__NR_epoll_wait as u64;
    pub const EPOLL_PWAIT: u64 = k::__NR_epoll_pwait as u64;
}

/// Offsets in the x86-64 `ucontext_t` of the saved general registers (`uc_mcontext.gregs`).
pub mod reg {
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
    /// The page-fault error code (`err`), after `eflags` and the segment word.
    pub const ERR: usize = 19;
    pub const fn offset(r: usize) -> usize {
        40 + 8 * r
    }
}

/// The start of `ucontext_t` on x86-64, up to and including the first word of `uc_sigmask`.
#[repr(C)]
pub struct UContext {
    pub flags: u64,
    pub link: u64,
    pub stack: SignalStack,
    /// `uc_mcontext` (`struct sigcontext`): r8..r15, rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp, rip,
    /// eflags, the segment word, err, trapno, oldmask, cr2 (indexed by [`reg`]).
    pub gregs: [u64; 23],
    pub fpstate: u64,
    pub reserved: [u64; 8],
    pub sigmask: u64,
}

/// Offset of `uc_stack` in the x86-64 `ucontext_t`.
pub const UC_STACK_OFFSET: usize = core::mem::offset_of!(UContext, stack);
/// Offset of the page-fault error code (`uc_mcontext.err`).
pub const UC_ERR_OFFSET: usize = reg::offset(reg::ERR);
/// Offset of `uc_sigmask`: after flags, link, stack (40 bytes) and the 256-byte `sigcontext`.
pub const UC_SIGMASK_OFFSET: usize = core::mem::offset_of!(UContext, sigmask);

const _: () = assert!(core::mem::size_of::<SignalStack>() == 24);
const _: () = assert!(core::mem::size_of::<KernelSigaction>() == 32);
const _: () = assert!(core::mem::offset_of!(UContext, stack) == 16);
const _: () = assert!(core::mem::offset_of!(UContext, gregs) == 40);
const _: () = assert!(core::mem::offset_of!(UContext, gregs) + 8 * reg::ERR == 40 + 19 * 8);
const _: () = assert!(core::mem::offset_of!(UContext, sigmask) == 40 + 256);
const _: () = assert!(reg::offset(0) == core::mem::offset_of!(UContext, gregs));

/// `siginfo_t` for SIGSEGV, as far as it is read.
#[repr(C)]
pub struct SigInfo {
    pub signo: i32,
    pub errno: i32,
    pub code: i32,
    _pad: i32,
    pub addr: u64,
}

const _: () = assert!(core::mem::offset_of!(SigInfo, code) == 8);
const _: () = assert!(core::mem::offset_of!(SigInfo, addr) == 16);

/// `siginfo_t` for SIGSYS, as far as it is read.
#[repr(C)]
pub struct SysInfo {
    pub signo: i32,
    pub errno: i32,
    pub code: i32,
    _pad: i32,
    pub call_addr: u64,
    pub syscall: i32,
    pub arch: u32,
}

const _: () = assert!(core::mem::offset_of!(SysInfo, code) == 8);
const _: () = assert!(core::mem::offset_of!(SysInfo, call_addr) == 16);
const _: () = assert!(core::mem::offset_of!(SysInfo, syscall) == 24);
const _: () = assert!(core::mem::offset_of!(SysInfo, arch) == 28);

/// A pointer to saved register `r` (see [`reg`]) in a signal's ucontext.
///
/// # Safety
///
/// `context` must be the ucontext of the signal being handled.
pub unsafe fn reg_ptr(context: *mut c_void, r: usize) -> *mut u64 {
    // SAFETY: per the caller, `context` is the ucontext of the signal being handled.
    unsafe { context.cast::<u8>().add(reg::offset(r)).cast::<u64>() }
}

/// Performs a call from the loader's code (which the filter allows).
pub fn raw(call: u64, args: &[u64; 6]) -> i64 {
    let ret: i64;
    // SAFETY: the program asked for exactly this call with these arguments.
    unsafe {
        core::arch::asm!("syscall", inlateout("rax") call as i64 => ret, in("rdi") args[0], in("rsi") args[1],
            in("rdx") args[2], in("r10") args[3], in("r8") args[4], in("r9") args[5],
            lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    ret
}
