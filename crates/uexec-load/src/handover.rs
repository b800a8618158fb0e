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
use linux_raw_sys::general as k;

/// The register reset both ways into the program end with (after the stack switch and the x87/MXCSR
/// reset): SSE registers and every general register but `rsp` zero, then `rflags` cleared (the `xor`s
/// set ZF and PF; a `push` of the zero `rax` and `popfq` clear them, IF stays). The `push` writes a
/// zero into the zero-filled word below the program's `sp`, leaving memory as it was.
macro_rules! zero_registers {
    () => {
        concat!(
            "pxor xmm0, xmm0\n",
            "pxor xmm1, xmm1\n",
            "pxor xmm2, xmm2\n",
            "pxor xmm3, xmm3\n",
            "pxor xmm4, xmm4\n",
            "pxor xmm5, xmm5\n",
            "pxor xmm6, xmm6\n",
            "pxor xmm7, xmm7\n",
            "pxor xmm8, xmm8\n",
            "pxor xmm9, xmm9\n",
            "pxor xmm10, xmm10\n",
            "pxor xmm11, xmm11\n",
            "pxor xmm12, xmm12\n",
            "pxor xmm13, xmm13\n",
            "pxor xmm14, xmm14\n",
            "pxor xmm15, xmm15\n",
            "xor eax, eax\n",
            "xor ebx, ebx\n",
            "xor ecx, ecx\n",
            "xor edx, edx\n", // libc takes a non-zero rdx as an exit hook
            "xor esi, esi\n",
            "xor edi, edi\n",
            "xor ebp, ebp\n", // marks the outermost frame
            "xor r8d, r8d\n",
            "xor r9d, r9d\n",
            "xor r10d, r10d\n",
            "xor r11d, r11d\n",
            "xor r12d, r12d\n",
            "xor r13d, r13d\n",
            "xor r14d, r14d\n",
            "xor r15d, r15d\n",
            "push rax\n",
            "popfq",
        )
    };
}

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
            zero_registers!(),
            "jmp qword ptr [rip + {entry}]",
            in("rdi") sp,
            mxcsr = sym MXCSR_INIT,
            entry = sym ENTRY,
            options(noreturn),
        )
    }
}

/// The kernel's `struct prctl_mm_map` (`include/uapi/linux/prctl.h`).
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct MmMap {
    pub start_code: u64,
    pub end_code: u64,
    pub start_data: u64,
    pub end_data: u64,
    pub start_brk: u64,
    pub brk: u64,
    pub start_stack: u64,
    pub arg_start: u64,
    pub arg_end: u64,
    pub env_start: u64,
    pub env_end: u64,
    pub auxv: u64,
    pub auxv_size: u32,
    pub exe_fd: u32,
}

/// What the loader gives up on its way out (apager): its own image and stack are unmapped, the
/// program's `/proc` view is set with `exe_fd` naming the program when the kernel allows it (else
/// without), and the program's descriptor is closed. All of it is done by a trampoline copied to a page
/// of its own, since the code doing it is unmapped on the way.
#[derive(Copy, Clone, Debug)]
pub struct Release {
    /// The loader's image `[start, start + len)`.
    pub image: (u64, u64),
    /// The stack the kernel gave the loader.
    pub old_stack: (u64, u64),
    /// The `/proc` view; `exe_fd` is the program's descriptor.
    pub map: MmMap,
}

/// Layout of the trampoline's data block (see `release_trampoline`).
mod slot {
    pub const ENTRY: usize = 0;
    pub const MXCSR: usize = 8;
    pub const MAP_WITH_EXE: usize = 16;
    pub const MAP_WITHOUT_EXE: usize = 120;
    pub const IMAGE: usize = 224;
    pub const OLD_STACK: usize = 240;
    pub const EXE_FD: usize = 256;
    pub const SIZE: usize = 264;
}

unsafe extern "C" {
    /// The trampoline's data block and its end, labels inside `release_trampoline`.
    static uexec_trampoline_data: u8;
    static uexec_trampoline_end: u8;
}

/// Position-independent code, copied to a fresh page before it runs: everything it reads is in its own
/// data block, addressed relative to `rip`. Entered with the program's stack pointer in `rdi`.
#[unsafe(naked)]
unsafe extern "C" fn release_trampoline() {
    core::arch::naked_asm!(
        "jmp 2f",
        ".balign 8",
        ".globl uexec_trampoline_data",
        "uexec_trampoline_data:",
        ".zero {size}", // filled in by jump_releasing (see `slot`)
        "2:",
        "mov rsp, rdi", // the program's stack from here on
        "mov eax, {nr_munmap}", // munmap(loader image)
        "mov rdi, [rip + uexec_trampoline_data + {image}]",
        "mov rsi, [rip + uexec_trampoline_data + {image} + 8]",
        "syscall",
        "mov eax, {nr_munmap}", // munmap(loader's stack)
        "mov rdi, [rip + uexec_trampoline_data + {old_stack}]",
        "mov rsi, [rip + uexec_trampoline_data + {old_stack} + 8]",
        "syscall",
        "mov eax, {nr_prctl}", // prctl(PR_SET_MM, PR_SET_MM_MAP, &map, sizeof map, 0)
        "mov edi, {pr_set_mm}",
        "mov esi, {pr_set_mm_map}",
        "lea rdx, [rip + uexec_trampoline_data + {with_exe}]",
        "mov r10d, {mm_map_size}",
        "xor r8d, r8d",
        "syscall",
        "test rax, rax",
        "jz 3f",
        "mov eax, {nr_prctl}", // not allowed to set exe: the rest alone
        "mov edi, {pr_set_mm}",
        "mov esi, {pr_set_mm_map}",
        "lea rdx, [rip + uexec_trampoline_data + {without_exe}]",
        "mov r10d, {mm_map_size}",
        "xor r8d, r8d",
        "syscall",
        "3:",
        "mov eax, {nr_close}", // close(the program's descriptor)
        "mov rdi, [rip + uexec_trampoline_data + {exe_fd}]",
        "syscall",
        "fninit",
        "ldmxcsr [rip + uexec_trampoline_data + {mxcsr}]",
        zero_registers!(),
        "jmp qword ptr [rip + uexec_trampoline_data + {entry}]",
        ".globl uexec_trampoline_end",
        "uexec_trampoline_end:",
        size = const slot::SIZE,
        entry = const slot::ENTRY,
        mxcsr = const slot::MXCSR,
        with_exe = const slot::MAP_WITH_EXE,
        without_exe = const slot::MAP_WITHOUT_EXE,
        image = const slot::IMAGE,
        old_stack = const slot::OLD_STACK,
        exe_fd = const slot::EXE_FD,
        nr_munmap = const k::__NR_munmap,
        nr_prctl = const k::__NR_prctl,
        pr_set_mm = const linux_raw_sys::prctl::PR_SET_MM,
        pr_set_mm_map = const linux_raw_sys::prctl::PR_SET_MM_MAP,
        mm_map_size = const core::mem::size_of::<MmMap>(),
        nr_close = const k::__NR_close,
    )
}

/// A copy of position-independent trampoline code on a fresh page of its own, to be filled in
/// ([`Self::put`]) and then made executable ([`Self::seal`]). The code is `[code, end)` of this
/// binary's text, with its data block starting at `data`; everything it reads is in that block.
pub(crate) struct TrampolinePage {
    page: *mut u8,
    data_offset: usize,
}

impl TrampolinePage {
    /// Maps the page and copies the code; `None` if it does not fit a page or no page is to be had.
    pub(crate) fn new(code: usize, data: usize, end: usize) -> Option<Self> {
        let page = uexec_elf::PAGE_SIZE as usize;
        let len = end.checked_sub(code).filter(|&len| len <= page)?;
        let data_offset = data.checked_sub(code).filter(|&d| d <= len)?;
        // SAFETY: a fresh anonymous page; without MAP_FIXED the kernel picks an unused range.
        let mapped = unsafe {
            rustix::mm::mmap_anonymous(
                core::ptr::null_mut(),
                page,
                rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                rustix::mm::MapFlags::PRIVATE,
            )
        }
        .ok()?
        .cast::<u8>();
        // SAFETY: `len` bytes of this binary's text (checked to fit), into the fresh writable page.
        unsafe { core::ptr::copy_nonoverlapping(code as *const u8, mapped, len) };
        Some(Self {
            page: mapped,
            data_offset,
        })
    }

    /// Writes `bytes` at offset `at` of the copy's data block.
    pub(crate) fn put(&self, at: usize, bytes: &[u8]) {
        let start = self.data_offset + at;
        if start + bytes.len() <= uexec_elf::PAGE_SIZE as usize {
            // SAFETY: inside the page mapped writable by `new`, which nothing else uses yet.
            unsafe {
                core::ptr::copy_nonoverlapping(bytes.as_ptr(), self.page.add(start), bytes.len())
            };
        }
    }

    /// Makes the page executable (and no longer writable); returns where the code starts, or `None`
    /// (the page is then unmapped) if the kernel refuses.
    pub(crate) fn seal(self) -> Option<*mut u8> {
        let rx = rustix::mm::MprotectFlags::READ | rustix::mm::MprotectFlags::EXEC;
        let page = uexec_elf::PAGE_SIZE as usize;
        // SAFETY: the page mapped by `new`.
        match unsafe { rustix::mm::mprotect(self.page.cast(), page, rx) } {
            Ok(()) => Some(self.page),
            Err(_) => {
                // SAFETY: the page mapped by `new`, unused.
                let _ = unsafe { rustix::mm::munmap(self.page.cast(), page) };
                None
            }
        }
    }
}

/// Like [`jump`], but first gives up the loader itself as [`Release`] describes, so that nothing of the
/// loader's stays in the process but the one page of the trampoline.
///
/// # Safety
///
/// As for [`jump`]; besides, nothing of the loader's image or original stack may be needed by the
/// program (apager: its code never runs again), and `release.map.exe_fd` must be an open descriptor
/// the trampoline may close.
pub unsafe fn jump_releasing(entry: u64, sp: u64, release: &Release) -> ! {
    let start = release_trampoline as *const () as usize;
    let data = core::ptr::addr_of!(uexec_trampoline_data) as usize;
    let end = core::ptr::addr_of!(uexec_trampoline_end) as usize;
    let Some(tramp) = TrampolinePage::new(start, data, end) else {
        // No page for the trampoline: keep the loader mapped and go the plain way.
        // SAFETY: per this function's contract, which includes jump's.
        unsafe { jump(entry, sp) }
    };
    let without = MmMap {
        exe_fd: u32::MAX,
        ..release.map
    };
    tramp.put(slot::ENTRY, &entry.to_ne_bytes());
    tramp.put(slot::MXCSR, &u64::from(MXCSR_INIT).to_ne_bytes());
    tramp.put(slot::MAP_WITH_EXE, mm_map_bytes(&release.map));
    tramp.put(slot::MAP_WITHOUT_EXE, mm_map_bytes(&without));
    tramp.put(slot::IMAGE, &release.image.0.to_ne_bytes());
    tramp.put(slot::IMAGE + 8, &release.image.1.to_ne_bytes());
    tramp.put(slot::OLD_STACK, &release.old_stack.0.to_ne_bytes());
    tramp.put(slot::OLD_STACK + 8, &release.old_stack.1.to_ne_bytes());
    tramp.put(slot::EXE_FD, &u64::from(release.map.exe_fd).to_ne_bytes());
    let Some(tramp) = tramp.seal() else {
        // SAFETY: as above.
        unsafe { jump(entry, sp) }
    };
    // SAFETY: the page holds a sealed copy of `release_trampoline`, its data filled in: a function of
    // this type, which unmaps the loader and jumps to `entry` on `sp`.
    unsafe {
        let target: extern "C" fn(u64) -> ! = core::mem::transmute(tramp);
        target(sp)
    }
}

/// The bytes of `map`, as the kernel reads them.
pub(crate) fn mm_map_bytes(map: &MmMap) -> &[u8] {
    // SAFETY: MmMap is repr(C), 104 bytes of plain integers with no padding.
    unsafe {
        core::slice::from_raw_parts(
            map as *const MmMap as *const u8,
            core::mem::size_of::<MmMap>(),
        )
    }
}
