//! Restarting a checkpointed program in the current process, as `urestart` does.
//!
//! [`check`] holds what is verified before anything changes; [`restore`] is the point of no return.
//! It moves to a stack of its own (the kernel-given one is in the way of the program's addresses),
//! parks this kernel's vDSO and vvar inside the loader range, unmaps everything else but the loader
//! range and the image, maps every region back at its address with its contents and protection,
//! moves the vDSO and vvar to where the program had them (as CRIU does, so that the program's
//! pointers into its vDSO stay good), restores the `/proc` memory-map view, descriptors, working
//! directory, signal dispositions, rseq registration and segment bases, and enters the program with
//! `rt_sigreturn` through a signal frame built from the saved registers and XSAVE area, which also
//! restores the signal mask and the alternate signal stack.
//!
//! After the point of no return a failure cannot be reported to anyone but standard error: one line,
//! and exit status [`FAILED`].
#![cfg_attr(not(test), no_std)]

pub mod check;

use core::cell::UnsafeCell;

use linux_raw_sys::general as k;
use uexec_capture::{frame, sys};
use uexec_ckpt::{flags, Image, NGREG, PAGE_SIZE};

pub use check::{Refusal, Special};

/// Exit status when a restore fails after the point of no return.
pub const FAILED: i32 = 122;

/// Where this kernel's vDSO and vvar wait while the address space is rebuilt (inside the loader range).
const SPECIAL_PARK: u64 = 0x3c00_f000_0000;
/// The top of the user address space with 4-level paging (`TASK_SIZE_MAX`).
const TASK_SIZE: u64 = (1 << 47) - 4096;
/// Most regular files an image may reopen.
pub const MAX_FILES: usize = uexec_capture::MAX_FILES;

/// A descriptor to restore: `temp` is open already (before the point of no return) at a number
/// clear of every target and positioned at its offset (which `dup3` shares); it is moved to `fd`.
#[derive(Copy, Clone, Debug, Default)]
pub struct Reopened {
    pub fd: u32,
    pub temp: i32,
    pub cloexec: bool,
}

/// Everything [`restore`] needs, checked and prepared.
pub struct Plan<'a> {
    pub image: Image<'a>,
    /// The address ranges to keep while rebuilding: the loader range and the image's own mapping.
    pub keep: [(u64, u64); 2],
    /// This kernel's vDSO and vvar in this process.
    pub special_now: Special<'a>,
    pub files: [Reopened; MAX_FILES],
    pub n_files: usize,
    /// The working directory, opened.
    pub cwd_fd: i32,
    /// The image's mapping, released before the program runs.
    pub image_map: (u64, u64),
    /// `--lazy`: the image's descriptor (clear of every target), from which page runs are mapped
    /// instead of copied; the kernel reads each page from the file on first touch.
    pub lazy_fd: Option<i32>,
    /// Reinstall the checkpoint handler for this signal (already set up with uexec_capture::install).
    pub checkpoint_signal: Option<u32>,
}

/// This CPU's enabled XSAVE features (XCR0).
pub fn enabled_xfeatures() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: xgetbv(0) reads XCR0; x86-64 Linux enables OSXSAVE on every CPU with XSAVE, and the
    // kernel's signal frames are XSAVE frames only then (checked by the caller via the frame's magic).
    unsafe {
        core::arch::asm!("xgetbv", in("ecx") 0u32, out("eax") lo, out("edx") hi, options(nomem, nostack));
    }
    u64::from(hi) << 32 | u64::from(lo)
}

#[repr(C, align(64))]
struct FrameArea([u8; FRAME_LEN]);
const FRAME_LEN: usize = 64 + frame::UC_SIZE + 64 + uexec_ckpt::MAX_XSAVE + 64;
struct FrameCell(UnsafeCell<FrameArea>);
// SAFETY: used only by the single thread that restores, once.
unsafe impl Sync for FrameCell {}
static FRAME: FrameCell = FrameCell(UnsafeCell::new(FrameArea([0; FRAME_LEN])));

const STACK_LEN: usize = 256 << 10;
#[repr(C, align(16))]
struct StackArea([u8; STACK_LEN]);
struct StackCell(UnsafeCell<StackArea>);
// SAFETY: used only by the single thread that restores, once.
unsafe impl Sync for StackCell {}
static STACK: StackCell = StackCell(UnsafeCell::new(StackArea([0; STACK_LEN])));

/// Writes `urestart: cannot restore: WHAT (error E)` and ends the process.
fn fail(what: &str, err: i64) -> ! {
    uexec_capture::say(format_args!(
        "urestart: cannot restore: {what} (error {})\n",
        err.unsigned_abs()
    ));
    sys::exit_group(FAILED)
}

fn call(nr: u32, a: u64, b: u64, c: u64, d: u64, e: u64) -> i64 {
    // SAFETY: only called below with arguments that describe this restore's own memory and descriptors.
    unsafe { sys::syscall6(nr, a, b, c, d, e, 0) }
}

fn must(what: &str, r: i64) -> i64 {
    if r < 0 && r > -4096 {
        fail(what, r);
    }
    r
}

/// Rebuilds the program of `plan` in this process and enters it.
///
/// # Safety
///
/// `plan` must have been checked ([`check`]) against this process, which must be single-threaded and
/// run nothing but this restore: every mapping outside `plan.keep` is destroyed.
pub unsafe fn restore(plan: &Plan<'_>) -> ! {
    let top = (STACK.0.get() as u64 + STACK_LEN as u64) & !15;
    // SAFETY: switches to the restore stack (in this binary's bss, inside the kept loader range) and
    // calls `rebuild`, which never returns; `plan` stays valid (it lives in the caller's static).
    unsafe {
        core::arch::asm!(
            "mov rsp, {top}",
            "call {rebuild}",
            "ud2",
            top = in(reg) top,
            rebuild = sym rebuild,
            in("rdi") plan as *const Plan<'_>,
            options(noreturn),
        )
    }
}

extern "C" fn rebuild(plan: *const Plan<'_>) -> ! {
    // SAFETY: `restore` passes its live plan.
    let plan = unsafe { &*plan };
    // No signal may run while the address space is half built; rt_sigreturn sets the program's mask.
    let all: u64 = !0;
    must(
        "blocking signals",
        call(
            k::__NR_rt_sigprocmask,
            u64::from(k::SIG_BLOCK),
            &all as *const u64 as u64,
            0,
            8,
            0,
        ),
    );

    // 1. Park this kernel's vDSO and vvar inside the loader range, keeping their relative placement.
    let low_now = plan.special_now.low();
    for &(_, start, end) in plan.special_now.iter() {
        let park = SPECIAL_PARK + (start - low_now);
        must(
            "moving the vDSO",
            call(
                k::__NR_mremap,
                start,
                end - start,
                end - start,
                u64::from(k::MREMAP_MAYMOVE | k::MREMAP_FIXED),
                park,
            ),
        );
    }

    // 2. Unmap everything else but what is kept.
    let mut keep = plan.keep;
    keep.sort_unstable();
    let mut from = 0u64;
    for &(lo, hi) in keep.iter().chain(core::iter::once(&(TASK_SIZE, TASK_SIZE))) {
        if lo > from {
            must(
                "clearing the address space",
                call(k::__NR_munmap, from, lo - from, 0, 0, 0),
            );
        }
        from = from.max(hi);
    }

    // 3. Every region, with its contents and protection.
    for r in plan.image.regions() {
        if r.flags & (flags::VDSO | flags::VVAR) != 0 {
            continue;
        }
        let len = r.end - r.start;
        let mut map_flags = u64::from(k::MAP_PRIVATE | k::MAP_ANONYMOUS | k::MAP_FIXED);
        if r.flags & flags::STACK != 0 {
            map_flags |= u64::from(k::MAP_GROWSDOWN);
        }
        let rw = u64::from(k::PROT_READ | k::PROT_WRITE);
        if let Some(fd) = plan.lazy_fd.filter(|_| r.flags & flags::STACK == 0) {
            // --lazy: zero pages anonymous, each run a private mapping of the image file, all with
            // the region's own protection; the kernel reads a page from the file on first touch.
            let prot = u64::from(r.prot);
            must(
                "mapping a region",
                call(k::__NR_mmap, r.start, len, prot, map_flags, u64::MAX),
            );
            let file_flags = u64::from(k::MAP_PRIVATE | k::MAP_FIXED);
            for run in r.runs() {
                let dest = r.start + run.first * PAGE_SIZE;
                let n = run.data.len() as u64;
                // SAFETY: replaces part of the region just mapped with the image file's pages.
                let mapped = unsafe {
                    sys::syscall6(
                        k::__NR_mmap,
                        dest,
                        n,
                        prot,
                        file_flags,
                        fd as u64,
                        run.file_offset,
                    )
                };
                must("mapping pages from the image", mapped);
            }
            continue;
        }
        must(
            "mapping a region",
            call(k::__NR_mmap, r.start, len, rw, map_flags, u64::MAX),
        );
        for run in r.runs() {
            let dest = r.start + run.first * PAGE_SIZE;
            // SAFETY: `dest..dest + len` lies inside the region just mapped writable (the parser checked
            // that every run lies inside its region), and the image mapping is kept.
            unsafe {
                core::ptr::copy_nonoverlapping(run.data.as_ptr(), dest as *mut u8, run.data.len());
            }
        }
        if u64::from(r.prot) != rw {
            must(
                "protecting a region",
                call(k::__NR_mprotect, r.start, len, u64::from(r.prot), 0, 0),
            );
        }
    }

    // 4. The vDSO and vvar to where the program had them.
    if let Some(saved) = check::special_of_image(&plan.image) {
        for &(name, start, end) in saved.iter() {
            if let Some(&(_, now_start, _)) = plan.special_now.iter().find(|e| e.0 == name) {
                let park = SPECIAL_PARK + (now_start - low_now);
                must(
                    "moving the vDSO into place",
                    call(
                        k::__NR_mremap,
                        park,
                        end - start,
                        end - start,
                        u64::from(k::MREMAP_MAYMOVE | k::MREMAP_FIXED),
                        start,
                    ),
                );
            }
        }
    }

    // 5. The /proc view of the memory map and the break.
    let f = plan.image.mm.fields;
    let auxv = plan.image.mm.auxv;
    let map = uexec_load::handover::MmMap {
        start_code: f[0],
        end_code: f[1],
        start_data: f[2],
        end_data: f[3],
        start_brk: f[4],
        brk: f[5],
        start_stack: f[6],
        arg_start: f[7],
        arg_end: f[8],
        env_start: f[9],
        env_end: f[10],
        auxv: auxv.as_ptr() as u64,
        auxv_size: auxv.len() as u32,
        exe_fd: u32::MAX,
    };
    // SAFETY: every address is the restored program's; the kernel copies the auxv.
    must("setting the memory map (PR_SET_MM_MAP)", unsafe {
        uexec_load::exec::sys_prctl_mm_map(&map)
    });

    // 6. Descriptors, then the working directory; the image is let go.
    for file in plan.files.iter().take(plan.n_files) {
        let cloexec = if file.cloexec {
            u64::from(k::O_CLOEXEC)
        } else {
            0
        };
        must(
            "reopening a file",
            call(
                k::__NR_dup3,
                file.temp as u64,
                u64::from(file.fd),
                cloexec,
                0,
                0,
            ),
        );
    }
    for file in plan.files.iter().take(plan.n_files) {
        call(k::__NR_close, file.temp as u64, 0, 0, 0, 0);
    }
    must(
        "entering the working directory",
        call(k::__NR_fchdir, plan.cwd_fd as u64, 0, 0, 0, 0),
    );
    call(k::__NR_close, plan.cwd_fd as u64, 0, 0, 0, 0);

    // 7. Signal dispositions; the checkpoint signal stays uexec's.
    for sig in 1..=uexec_ckpt::NSIG as u32 {
        if sig == k::SIGKILL || sig == k::SIGSTOP {
            continue;
        }
        if let Some(a) = plan.image.signals.get(sig as usize) {
            let action = sys::KernelSigaction {
                handler: a.handler,
                flags: a.flags,
                restorer: a.restorer,
                mask: a.mask,
            };
            // SAFETY: the program's own handlers, in its restored memory.
            unsafe { sys::rt_sigaction(sig, Some(&action), None) };
        }
    }
    if let Some(sig) = plan.checkpoint_signal {
        let _ = uexec_capture::install_handler(sig);
    }

    // 8. rseq, and the segment bases (no TLS of ours is used from here on, nor before).
    if let Some(r) = plan.image.rseq.filter(|r| r.addr != 0) {
        // SAFETY: the program's own registration, in its restored memory.
        unsafe { sys::rseq(r.addr, r.len, 0, r.sig) };
    }
    let regs = &plan.image.registers;
    call(k::__NR_arch_prctl, sys::ARCH_SET_FS, regs.fs_base, 0, 0, 0);
    if regs.gs_base != 0 {
        call(k::__NR_arch_prctl, sys::ARCH_SET_GS, regs.gs_base, 0, 0, 0);
    }

    // 9. The signal frame: ucontext, then the XSAVE area 64-byte aligned after it.
    // SAFETY: FRAME is used by this thread alone, once.
    let area = unsafe { &mut (*FRAME.0.get()).0 };
    let uc_at = 64usize;
    let fp_at = (uc_at + frame::UC_SIZE + 63) & !63;
    let put = |area: &mut [u8], at: usize, v: u64| {
        if let Some(d) = area.get_mut(at..at + 8) {
            d.copy_from_slice(&v.to_le_bytes());
        }
    };
    let base = area.as_ptr() as u64;
    put(area, uc_at + frame::UC_FLAGS, regs.uc_flags);
    put(area, uc_at + frame::UC_STACK_SP, regs.altstack.0);
    put(
        area,
        uc_at + frame::UC_STACK_FLAGS,
        u64::from(regs.altstack.1),
    );
    put(area, uc_at + frame::UC_STACK_SIZE, regs.altstack.2);
    for (i, &g) in regs.gregs.iter().enumerate().take(NGREG) {
        put(area, uc_at + frame::UC_GREGS + 8 * i, g);
    }
    put(area, uc_at + frame::UC_FPSTATE, base + fp_at as u64);
    put(area, uc_at + frame::UC_SIGMASK, regs.sigmask);
    if let Some(d) = area.get_mut(fp_at..fp_at + regs.xsave.len()) {
        d.copy_from_slice(regs.xsave);
    }
    // The image goes last: the auxv, registers and runs above were read from it.
    call(
        k::__NR_munmap,
        plan.image_map.0,
        plan.image_map.1 - plan.image_map.0,
        0,
        0,
        0,
    );
    if let Some(fd) = plan.lazy_fd {
        call(k::__NR_close, fd as u64, 0, 0, 0, 0);
    }
    let uc = base + uc_at as u64;
    // SAFETY: rt_sigreturn reads the ucontext at rsp and resumes the program with its registers, FPU
    // state, mask and alternate stack; it does not return here.
    unsafe {
        core::arch::asm!("mov rsp, {uc}", "syscall", "ud2", uc = in(reg) uc,
            in("rax") u64::from(k::__NR_rt_sigreturn), options(noreturn));
    }
}
