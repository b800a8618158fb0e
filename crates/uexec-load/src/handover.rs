//! The jump into the program: the register state a fresh `execve` leaves (`ELF_PLAT_INIT` and
//! `start_thread` in the kernel): every general register but `rsp` zero, `rflags` with only the
//! always-one bit and IF, a freshly initialised x87 unit, MXCSR at its reset value and the SSE registers
//! zero. `%fs` and `%gs` are left alone: the loader never sets them, so they are still the zero exec gave.
//!
//! # Safety
//!
//! This is the point of no return: after it the loader's Rust code never runs again (in apager), so
//! nothing it owns may still be needed except memory mappings.

use core::sync::atomic::{AtomicU64, Ordering};

/// Where the final `jmp` goes: kept in memory, because no register may hold it.
static ENTRY: AtomicU64 = AtomicU64::new(0);
/// MXCSR's value after reset and after exec: all exceptions masked, round to nearest.
static MXCSR_INIT: u32 = 0x1f80;

/// Switches to the program's stack and jumps to its entry point with a clean register file.
///
/// # Safety
///
/// `sp` must be a stack built by [`crate::stack::build`] in a live mapping, `entry` the entry point of a
/// fully mapped program, and every file descriptor and resource of the loader that the program must not
/// see already released.
pub unsafe fn jump(entry: u64, sp: u64) -> ! {
    ENTRY.store(entry, Ordering::Relaxed);
    // SAFETY: per the contract the new stack and program are ready. The only write to the new stack is
    // the `push` of a zero into the zero-filled word below `sp`, which leaves memory as it was.
    unsafe {
        core::arch::asm!(
            "mov rsp, rdi",                  // the program's stack; argc is at [rsp]
            "fninit",                        // x87: control word 0x37f, empty tags
            "ldmxcsr [rip + {mxcsr}]",       // MXCSR = 0x1f80
            "pxor xmm0, xmm0",
            "pxor xmm1, xmm1",
            "pxor xmm2, xmm2",
            "pxor xmm3, xmm3",
            "pxor xmm4, xmm4",
            "pxor xmm5, xmm5",
            "pxor xmm6, xmm6",
            "pxor xmm7, xmm7",
            "pxor xmm8, xmm8",
            "pxor xmm9, xmm9",
            "pxor xmm10, xmm10",
            "pxor xmm11, xmm11",
            "pxor xmm12, xmm12",
            "pxor xmm13, xmm13",
            "pxor xmm14, xmm14",
            "pxor xmm15, xmm15",
            "xor eax, eax",
            "xor ebx, ebx",
            "xor ecx, ecx",
            "xor edx, edx",                  // libc takes a non-zero rdx as an exit hook
            "xor esi, esi",
            "xor edi, edi",
            "xor ebp, ebp",                  // marks the outermost frame
            "xor r8d, r8d",
            "xor r9d, r9d",
            "xor r10d, r10d",
            "xor r11d, r11d",
            "xor r12d, r12d",
            "xor r13d, r13d",
            "xor r14d, r14d",
            "xor r15d, r15d",
            "push rax",                      // the xors set ZF and PF: clear all flags (IF stays)
            "popfq",
            "jmp qword ptr [rip + {entry}]",
            in("rdi") sp,
            mxcsr = sym MXCSR_INIT,
            entry = sym ENTRY,
            options(noreturn),
        )
    }
}
