//! The few raw system calls rustix does not offer outside its libc-runtime API: signal actions, the
//! alternate signal stack, exit, and their restorer. Each is one `syscall` instruction.
//!
//! # Safety
//!
//! Every function here is a thin wrapper whose contract is the kernel's; none touches errno or TLS, so
//! all may run in a signal handler.

use core::arch::naked_asm;

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
