//! The loaders' whole runtime: the process entry point, the panic handler, exit, and the memory
//! functions the compiler calls. There is no libc underneath.
//!
//! Nothing here may use TLS (there is none: `%fs` is zero), allocate (there is no allocator) or unwind.
//!
//! # Safety
//!
//! `_start` is entered by the kernel with the initial stack in `rsp`; the memory functions follow the C
//! contracts the compiler relies on.

/// Defines the process entry point `_start` of a loader binary, calling `$main(&Startup) -> i32` and
/// exiting with the status it returns.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        #[unsafe(naked)]
        #[unsafe(no_mangle)]
        /// The process entry point: the kernel jumps here with argc at `[rsp]`.
        pub extern "C" fn _start() -> ! {
            core::arch::naked_asm!(
                "xor ebp, ebp",      // the outermost frame
                "mov rdi, rsp",      // the initial stack, for Startup
                "and rsp, -16",      // the ABI's call alignment
                "call {start}",
                "ud2",
                start = sym __uexec_start,
            )
        }

        extern "C" fn __uexec_start(sp: *const usize) -> ! {
            // SAFETY: `sp` is the initial stack pointer the kernel gave `_start`, which nothing moves.
            let startup = unsafe { $crate::uexec_load::Startup::from_initial_stack(sp) };
            $crate::rt::exit($main(&startup))
        }
    };
}

/// Ends the process (all threads) with `status`.
pub fn exit(status: i32) -> ! {
    // SAFETY: exit_group takes one integer and does not return.
    unsafe {
        core::arch::asm!("syscall", in("rax") linux_raw_sys::general::__NR_exit_group,
            in("rdi") status, options(noreturn, nostack));
    }
}

/// The current program break (`brk(0)`).
pub fn current_brk() -> u64 {
    let brk: u64;
    // SAFETY: brk(0) only queries; rcx and r11 are clobbered by `syscall`.
    unsafe {
        core::arch::asm!("syscall", inlateout("rax") u64::from(linux_raw_sys::general::__NR_brk) => brk,
            in("rdi") 0u64,
            lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    brk
}

/// Whether the kernel randomised this process's layout: it moves the break of a randomised ELF program
/// at least a page past the end of its bss, and leaves it right there otherwise (no ASLR, or
/// `setarch -R`). The loader randomises the program's layout in the same cases.
pub fn kernel_randomizes() -> bool {
    unsafe extern "C" {
        /// End of the loader's bss, defined by the linker.
        static _end: u8;
    }
    let end = core::ptr::addr_of!(_end) as u64;
    current_brk() != uexec_elf::page_up(end).unwrap_or(end)
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    // A panic is a loader bug: say so with nothing but a raw write, then die by trap.
    let _ = rustix::io::write(
        // SAFETY: fd 2 is used only for this one write.
        unsafe { rustix::stdio::stderr() },
        b"uexec: internal error (panic); please report this\n",
    );
    // SAFETY: ud2 raises SIGILL, which ends the process.
    unsafe { core::arch::asm!("ud2", options(noreturn, nostack)) }
}

/// The C memory functions the compiler emits calls to. `rep movsb`/`rep stosb` are fast on every
/// x86-64 made since Ivy Bridge (ERMS), and keep these free of loops LLVM would turn back into calls.
#[cfg(not(test))]
mod mem {
    /// # Safety
    /// `dest` and `src` must be valid for `n` bytes and must not overlap.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn memcpy(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
        // SAFETY: per the C contract of memcpy.
        unsafe {
            core::arch::asm!("rep movsb", inout("rcx") n => _, inout("rdi") dest => _,
                inout("rsi") src => _, options(nostack, preserves_flags));
        }
        dest
    }

    /// # Safety
    /// `dest` and `src` must be valid for `n` bytes; they may overlap.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn memmove(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
        if (dest as usize).wrapping_sub(src as usize) >= n {
            // SAFETY: dest does not start inside [src, src + n): a forward copy is safe.
            return unsafe { memcpy(dest, src, n) };
        }
        // SAFETY: copy backwards with the direction flag set, restoring it as the ABI requires.
        unsafe {
            core::arch::asm!("std", "rep movsb", "cld", inout("rcx") n => _,
                inout("rdi") dest.add(n).wrapping_sub(1) => _,
                inout("rsi") src.add(n).wrapping_sub(1) => _, options(nostack));
        }
        dest
    }

    /// # Safety
    /// `dest` must be valid for `n` bytes.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn memset(dest: *mut u8, c: i32, n: usize) -> *mut u8 {
        // SAFETY: per the C contract of memset.
        unsafe {
            core::arch::asm!("rep stosb", inout("rcx") n => _, inout("rdi") dest => _,
                in("al") c as u8, options(nostack, preserves_flags));
        }
        dest
    }

    /// # Safety
    /// `a` and `b` must be valid for `n` bytes.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
        for i in 0..n {
            // SAFETY: i < n, within both buffers.
            let (x, y) = unsafe { (a.add(i).read_volatile(), b.add(i).read_volatile()) };
            if x != y {
                return i32::from(x) - i32::from(y);
            }
        }
        0
    }

    /// # Safety
    /// `s` must point at a NUL-terminated string.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn strlen(s: *const u8) -> usize {
        let mut n = 0;
        // SAFETY: per the contract, every byte up to and including the NUL is readable.
        while unsafe { s.add(n).read_volatile() } != 0 {
            n += 1;
        }
        n
    }

    /// # Safety
    /// As `memcmp`.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
        // SAFETY: same contract.
        unsafe { memcmp(a, b, n) }
    }
}

/// The loaders never allocate; the `object` crate they read ELF structures with links `alloc` all the
/// same, so a global allocator must exist. This one refuses every request, which turns any allocation
/// into an allocation-failure abort instead of silent use of memory the program might want.
#[cfg(not(test))]
struct NoAllocator;

// SAFETY: `alloc` always returns null, which GlobalAlloc allows as a failure; `dealloc` is never called
// with a pointer this allocator returned, because it returns none.
#[cfg(not(test))]
unsafe impl core::alloc::GlobalAlloc for NoAllocator {
    unsafe fn alloc(&self, _: core::alloc::Layout) -> *mut u8 {
        core::ptr::null_mut()
    }
    unsafe fn dealloc(&self, _: *mut u8, _: core::alloc::Layout) {}
}

#[cfg(not(test))]
#[global_allocator]
static ALLOCATOR: NoAllocator = NoAllocator;
