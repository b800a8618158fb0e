//! The raw system calls checkpointing needs that rustix does not offer without libc: signal actions,
//! `arch_prctl`, `getcwd`, `rseq`, `brk`, and the restorer a handler returns through. Each is one
//! `syscall` instruction that touches neither errno nor TLS, so all may run in a signal handler.

use core::arch::naked_asm;
use core::ffi::CStr;

use linux_raw_sys::general as k;
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

/// A raw system call; returns the kernel's value (a negative errno on failure).
///
/// # Safety
///
/// The arguments must satisfy the contract of system call `nr`.
pub unsafe fn syscall6(nr: u32, a: u64, b: u64, c: u64, d: u64, e: u64, f: u64) -> i64 {
    let ret: i64;
    // SAFETY: per the caller's contract; rcx and r11 are clobbered by `syscall`.
    unsafe {
        core::arch::asm!("syscall", inlateout("rax") i64::from(nr) => ret, in("rdi") a, in("rsi") b,
            in("rdx") c, in("r10") d, in("r8") e, in("r9") f,
            lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    ret
}

/// `struct sigaction` as the kernel's `rt_sigaction` reads it on x86-64.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelSigaction {
    pub handler: u64,
    pub flags: u64,
    pub restorer: u64,
    pub mask: u64,
}

/// `rt_sigaction(sig, new, old, 8)`.
///
/// # Safety
///
/// `new`, if given, must describe a handler that is sound to run for `sig`.
pub unsafe fn rt_sigaction(
    sig: u32,
    new: Option<&KernelSigaction>,
    old: Option<&mut KernelSigaction>,
) -> i64 {
    let new = new.map_or(0, |n| n as *const _ as u64);
    let old = old.map_or(0, |o| o as *mut _ as u64);
    // SAFETY: both pointers are null or point at sigaction structs of the kernel's layout.
    unsafe { syscall6(k::__NR_rt_sigaction, u64::from(sig), new, old, 8, 0, 0) }
}

/// The disposition of `sig`, or `None` if the kernel refuses to say (an invalid number).
pub fn sigaction_of(sig: u32) -> Option<KernelSigaction> {
    let mut old = KernelSigaction::default();
    // SAFETY: only queries.
    (unsafe { rt_sigaction(sig, None, Some(&mut old)) } == 0).then_some(old)
}

pub const ARCH_SET_GS: u64 = 0x1001;
pub const ARCH_SET_FS: u64 = 0x1002;
pub const ARCH_GET_FS: u64 = 0x1003;
pub const ARCH_GET_GS: u64 = 0x1004;

/// `arch_prctl(ARCH_GET_FS or ARCH_GET_GS)`.
pub fn segment_base(code: u64) -> u64 {
    let mut base = 0u64;
    // SAFETY: the kernel writes one u64 to `base`.
    unsafe {
        syscall6(
            k::__NR_arch_prctl,
            code,
            &mut base as *mut u64 as u64,
            0,
            0,
            0,
            0,
        )
    };
    base
}

/// `getcwd` into `buf`: the path's length without its NUL.
pub fn getcwd(buf: &mut [u8]) -> Result<usize, i64> {
    // SAFETY: the kernel writes at most `buf.len()` bytes.
    let r = unsafe {
        syscall6(
            k::__NR_getcwd,
            buf.as_mut_ptr() as u64,
            buf.len() as u64,
            0,
            0,
            0,
            0,
        )
    };
    if r <= 0 {
        Err(r)
    } else {
        Ok(r as usize - 1)
    }
}

/// `name` made absolute against the current directory into `buf`, NUL-terminated; returns its length
/// without the NUL, or `None` if it does not fit or the directory cannot be read.
pub fn absolute_path(name: &[u8], buf: &mut [u8]) -> Option<usize> {
    let mut len = 0;
    if name.first() != Some(&b'/') {
        len = getcwd(buf).ok()?;
        if buf.get(..len) != Some(b"/") {
            *buf.get_mut(len)? = b'/';
            len += 1;
        }
    }
    let end = len.checked_add(name.len())?;
    buf.get_mut(len..end)?.copy_from_slice(name);
    *buf.get_mut(end)? = 0;
    Some(end)
}

/// `rseq(addr, len, flags, sig)`.
///
/// # Safety
///
/// Registering makes the kernel write to `addr` from then on: it must stay mapped for the thread.
pub unsafe fn rseq(addr: u64, len: u32, flags: u32, sig: u32) -> i64 {
    // SAFETY: per the contract.
    unsafe {
        syscall6(
            k::__NR_rseq,
            addr,
            u64::from(len),
            u64::from(flags),
            u64::from(sig),
            0,
            0,
        )
    }
}

/// The current program break.
pub fn current_brk() -> u64 {
    // SAFETY: brk(0) only queries.
    unsafe { syscall6(k::__NR_brk, 0, 0, 0, 0, 0, 0) as u64 }
}

/// The `sa_restorer` of handlers installed here: returns from the signal frame.
///
/// # Safety
///
/// Never to be called: only its address is given to the kernel as `sa_restorer`, and it runs as a
/// signal handler's return address, with the signal frame at `rsp` (`rt_sigreturn` reads it).
#[unsafe(naked)]
pub unsafe extern "C" fn restore_rt() {
    naked_asm!("mov eax, {n}", "syscall", "ud2", n = const k::__NR_rt_sigreturn)
}

/// Reads a whole small (or pseudo) file into `buf`; returns the bytes read, at most `buf.len()`.
pub fn read_file<'b>(path: &CStr, buf: &'b mut [u8]) -> Result<&'b [u8], Errno> {
    let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())?;
    let mut len = 0;
    while let Some(rest) = buf.get_mut(len..).filter(|r| !r.is_empty()) {
        match rustix::io::read(&fd, rest) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(buf.get(..len).unwrap_or(&[]))
}

/// Ends the process with `status`, from anywhere (a signal handler included).
pub fn exit_group(status: i32) -> ! {
    // SAFETY: exit_group takes one integer and does not return.
    unsafe {
        core::arch::asm!("syscall", in("rax") k::__NR_exit_group, in("rdi") status, options(noreturn, nostack))
    }
}
