//! The loader's own image, and letting go of its file.
//!
//! The kernel lets `/proc/PID/exe` be changed (`PR_SET_MM_MAP` with `exe_fd`, for checkpoint/restore
//! capable callers) only while no mapping of the current executable remains. The loader's segments are
//! mappings of the loader's file. [`set_exe`] lets go of them for the one call and maps the read-only
//! ones back: a trampoline on a page of its own unmaps them, makes the call and maps them again from the
//! loader's file (the kernel checks only at the moment of the change), while the writable ones, whose
//! bytes the loader has changed, are replaced by anonymous copies beforehand. Where that cannot be done,
//! [`detach_from_file`] replaces every segment with an anonymous copy of the same bytes and protection,
//! moved into place with `mremap`. Either way the exe link can then name the program, as it does after a
//! real exec (and programs that re-execute `/proc/self/exe`, as busybox does, run themselves again
//! rather than the loader).
//!
//! Copying is what start-up pays for: each page copied costs a page allocation, a 4 KiB copy and a
//! page-table move (a pager's 26 file-backed pages were about 80 µs of its start-up, issue 8); mapping
//! the text back from the page cache costs a few faults.
//!
//! # Safety
//!
//! Replacing the mapping the running code comes from is sound because the copy is byte-identical and
//! `mremap` swaps it in atomically: the instruction after the `syscall` is the same in both. The
//! trampoline runs from its own page while the loader's code is unmapped and returns only after the
//! same file bytes are mapped back at the same addresses (read-only segments, never written since
//! exec); if a mapping fails it ends the process, since there is no code to return to.

use core::ffi::c_void;
use linux_raw_sys::general as k;
use object::elf::{ProgramHeader64, PT_LOAD, PT_PHDR};
use object::LittleEndian as LE;
use rustix::fd::AsRawFd;
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::mm::{MapFlags, MprotectFlags, MremapFlags, ProtFlags};
use uexec_elf::{page_down, page_up};

use crate::handover::MmMap;
use crate::stack::at;
use crate::startup::Startup;

/// Replaces every segment of the loader's own file by an anonymous copy.
///
/// The segments are contiguous pages (the loaders are linked that way), so one populated anonymous
/// mapping takes the copy of the span, each segment's part gets its protection, and one `mremap` swaps
/// it in: a handful of system calls and no page faults. The pages past the file part of the highest
/// segment (its bss) are anonymous already, so the copy stops where that segment's file bytes end: each
/// page copied costs a page allocation, a 4 KiB copy and a page-table move.
pub fn detach_from_file(startup: &Startup) -> Result<(), Errno> {
    let (low, high) = span(startup)
        .map(|(start, len)| (start, start + len))
        .ok_or(Errno::NOENT)?;
    let phdrs = own_phdrs(startup).ok_or(Errno::NOENT)?;
    let bias = own_bias(startup, phdrs);
    let loads = || phdrs.iter().filter(|p| p.p_type.get(LE) == PT_LOAD);
    let start_of = |p: &ProgramHeader64<LE>| p.p_vaddr.get(LE).wrapping_add(bias);
    let range = |p: &ProgramHeader64<LE>| {
        let start = start_of(p);
        (
            page_down(start),
            page_up(start.wrapping_add(p.p_memsz.get(LE))).unwrap_or(u64::MAX),
        )
    };
    // Every page of the span must belong to a segment, or the copy would map what was a hole.
    let covered: u64 = loads().map(|p| range(p).1 - range(p).0).sum();
    if covered != high - low {
        return Err(Errno::INVAL);
    }
    let top = file_top(phdrs, bias, low, high);
    if top == low {
        return Err(Errno::INVAL);
    }
    detach_span(phdrs, bias, low, top)
}

/// Where the file-backed part of the span `[low, high)` ends: the kernel maps a segment's whole pages
/// past its file bytes anonymously, and those of the highest segment end the span.
fn file_top(phdrs: &[ProgramHeader64<LE>], bias: u64, low: u64, high: u64) -> u64 {
    let start_of = |p: &ProgramHeader64<LE>| p.p_vaddr.get(LE).wrapping_add(bias);
    phdrs
        .iter()
        .filter(|p| p.p_type.get(LE) == PT_LOAD)
        .max_by_key(|p| start_of(p))
        .and_then(|p| page_up(start_of(p).wrapping_add(p.p_filesz.get(LE))))
        .map_or(high, |end| end.clamp(low, high))
}

fn own_phdrs(startup: &Startup) -> Option<&'static [ProgramHeader64<LE>]> {
    let (phdr, phnum) = (startup.aux(at::PHDR)?, startup.aux(at::PHNUM)?);
    // SAFETY: at::PHDR and at::PHNUM describe the loader's own program headers, mapped for its lifetime.
    Some(unsafe { core::slice::from_raw_parts(phdr as *const ProgramHeader64<LE>, phnum as usize) })
}

fn own_bias(startup: &Startup, phdrs: &[ProgramHeader64<LE>]) -> u64 {
    let phdr = startup.aux(at::PHDR).unwrap_or(0);
    phdrs
        .iter()
        .find(|p| p.p_type.get(LE) == PT_PHDR)
        .map_or(0, |p| phdr.wrapping_sub(p.p_vaddr.get(LE)))
}

/// The page range `(start, len)` the loader's own segments cover.
pub fn span(startup: &Startup) -> Option<(u64, u64)> {
    let phdrs = own_phdrs(startup)?;
    let bias = own_bias(startup, phdrs);
    let loads = || phdrs.iter().filter(|p| p.p_type.get(LE) == PT_LOAD);
    let low = loads()
        .map(|p| page_down(p.p_vaddr.get(LE).wrapping_add(bias)))
        .min()?;
    let high = loads()
        .map(|p| {
            page_up(
                p.p_vaddr
                    .get(LE)
                    .wrapping_add(bias)
                    .wrapping_add(p.p_memsz.get(LE)),
            )
            .unwrap_or(u64::MAX)
        })
        .max()?;
    Some((low, high - low))
}

/// Copies `[low, high)`, a part of the loader's contiguous segments, to anonymous memory with each
/// segment's protection, and swaps the copy in.
fn detach_span(phdrs: &[ProgramHeader64<LE>], bias: u64, low: u64, high: u64) -> Result<(), Errno> {
    let loads = || phdrs.iter().filter(|p| p.p_type.get(LE) == PT_LOAD);
    // Each segment's pages, clipped to the part copied.
    let range = |p: &ProgramHeader64<LE>| {
        let start = p.p_vaddr.get(LE).wrapping_add(bias);
        let end = page_up(start.wrapping_add(p.p_memsz.get(LE))).unwrap_or(u64::MAX);
        (page_down(start).clamp(low, high), end.clamp(low, high))
    };
    let len = (high - low) as usize;
    // SAFETY: a fresh anonymous mapping, populated so the copy below takes no faults.
    let copy = unsafe {
        rustix::mm::mmap_anonymous(
            core::ptr::null_mut(),
            len,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::PRIVATE | MapFlags::POPULATE,
        )
    }?;
    // SAFETY: [low, high) is the loader's own image, all of it readable (checked contiguous above); the
    // copy is a distinct writable mapping of the same length.
    unsafe { core::ptr::copy_nonoverlapping(low as *const u8, copy.cast::<u8>(), len) };
    for p in loads() {
        let (start, end) = range(p);
        if start == end {
            continue;
        }
        let flags = p.p_flags.get(LE);
        let mut prot = MprotectFlags::empty();
        if flags & object::elf::PF_R != 0 {
            prot |= MprotectFlags::READ;
        }
        if flags & object::elf::PF_W != 0 {
            prot |= MprotectFlags::WRITE;
        }
        if flags & object::elf::PF_X != 0 {
            prot |= MprotectFlags::EXEC;
        }
        let at = copy
            .cast::<u8>()
            .wrapping_add((start - low) as usize)
            .cast::<c_void>();
        // SAFETY: a part of the copy made above.
        unsafe { rustix::mm::mprotect(at, (end - start) as usize, prot) }?;
    }
    // SAFETY: swaps the identical copy over the loader's own image in one step (see the module docs).
    unsafe { rustix::mm::mremap_fixed(copy, len, len, MremapFlags::MAYMOVE, low as *mut c_void) }?;
    Ok(())
}

/// Most read-only segments [`set_exe`] maps back; a loader with more is copied instead.
const MAX_READ_ONLY: usize = 4;

/// Layout of the remap trampoline's data block (see `remap_trampoline`).
mod slot {
    /// The `struct prctl_mm_map` to set, `exe_fd` included.
    pub const MAP: usize = 0;
    /// The loader's own file, readable, to map the read-only segments back from.
    pub const FD: usize = 104;
    /// `[start, start + len)`: the read-only segments' pages, unmapped for the call.
    pub const UNMAP: usize = 112;
    /// How many entries of `SEGMENTS` are used.
    pub const COUNT: usize = 128;
    /// `MAX_READ_ONLY` entries of (address, length, protection, file offset).
    pub const SEGMENTS: usize = 136;
    pub const SEGMENT: usize = 32;
    pub const SIZE: usize = SEGMENTS + super::MAX_READ_ONLY * SEGMENT;
}

unsafe extern "C" {
    /// The remap trampoline's data block and its end, labels inside `remap_trampoline`.
    static uexec_remap_data: u8;
    static uexec_remap_end: u8;
}

/// Position-independent code, copied to a fresh page before it runs: everything it reads is in its own
/// data block, addressed relative to `rip`. Returns the result of the `prctl` (or of a failed `munmap`,
/// which leaves the loader as it was); ends the process if a segment cannot be mapped back.
#[unsafe(naked)]
unsafe extern "C" fn remap_trampoline() -> i64 {
    core::arch::naked_asm!(
        "jmp 2f",
        ".balign 8",
        ".globl uexec_remap_data",
        "uexec_remap_data:",
        ".zero {size}", // filled in by set_exe (see `slot`)
        "2:",
        "mov eax, {nr_munmap}", // munmap(the read-only segments)
        "mov rdi, [rip + uexec_remap_data + {unmap}]",
        "mov rsi, [rip + uexec_remap_data + {unmap} + 8]",
        "syscall",
        "test rax, rax",
        "jnz 9f", // nothing unmapped: return the error
        "push rbx",
        "push r12",
        "push r13",
        "mov eax, {nr_prctl}", // prctl(PR_SET_MM, PR_SET_MM_MAP, &map, sizeof map, 0)
        "mov edi, {pr_set_mm}",
        "mov esi, {pr_set_mm_map}",
        "lea rdx, [rip + uexec_remap_data + {map}]",
        "mov r10d, {mm_map_size}",
        "xor r8d, r8d",
        "syscall",
        "mov rbx, rax", // the result, returned below
        "lea r12, [rip + uexec_remap_data + {segments}]",
        "mov r13, [rip + uexec_remap_data + {count}]",
        "3:",
        "test r13, r13",
        "jz 4f",
        "mov eax, {nr_mmap}", // mmap(address, length, prot, MAP_PRIVATE | MAP_FIXED, fd, offset)
        "mov rdi, [r12]",
        "mov rsi, [r12 + 8]",
        "mov rdx, [r12 + 16]",
        "mov r10d, {private_fixed}",
        "mov r8, [rip + uexec_remap_data + {fd}]",
        "mov r9, [r12 + 24]",
        "syscall",
        "cmp rax, [r12]",
        "jne 8f",
        "add r12, {segment}",
        "dec r13",
        "jmp 3b",
        "4:",
        "mov rax, rbx",
        "pop r13",
        "pop r12",
        "pop rbx",
        "9:",
        "ret",
        "8:",
        "mov eax, {nr_exit_group}", // exit_group(126): the loader's code is gone
        "mov edi, 126",
        "syscall",
        "ud2",
        ".globl uexec_remap_end",
        "uexec_remap_end:",
        size = const slot::SIZE,
        map = const slot::MAP,
        fd = const slot::FD,
        unmap = const slot::UNMAP,
        count = const slot::COUNT,
        segments = const slot::SEGMENTS,
        segment = const slot::SEGMENT,
        nr_munmap = const k::__NR_munmap,
        nr_prctl = const k::__NR_prctl,
        pr_set_mm = const linux_raw_sys::prctl::PR_SET_MM,
        pr_set_mm_map = const linux_raw_sys::prctl::PR_SET_MM_MAP,
        mm_map_size = const core::mem::size_of::<MmMap>(),
        nr_mmap = const k::__NR_mmap,
        nr_exit_group = const k::__NR_exit_group,
        private_fixed = const k::MAP_PRIVATE | k::MAP_FIXED,
    )
}

/// The loader's own file, readable, to map its read-only segments back from.
///
/// Opened by the name the kernel executed (AT_EXECFN, relative to the current directory, which the
/// loader has not changed) when that file's page at `offset` is the loader's page at `low` byte for byte
/// (its first segment maps it, read-only, never written); else through `/proc/self/exe`. The name is
/// tried first because the first look at `/proc/self` is one of the slowest calls of a start-up (about
/// 30 us: it builds the process's procfs entries); the comparison rules out a `#!` script (AT_EXECFN
/// then names the script) and a file replaced since the exec.
fn open_own_file(startup: &Startup, low: u64, offset: u64) -> Option<rustix::fd::OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::CLOEXEC;
    let by_name = startup
        .aux_str(at::EXECFN)
        .filter(|name| !name.to_bytes().is_empty())
        .and_then(|name| rustix::fs::open(name, flags, Mode::empty()).ok())
        .filter(|file| {
            let mut page = [0u8; uexec_elf::PAGE_SIZE as usize];
            // SAFETY: `low` is the start of the loader's first segment, a mapped, readable page.
            let own = unsafe { core::slice::from_raw_parts(low as *const u8, page.len()) };
            matches!(rustix::io::pread(file, &mut page, offset), Ok(n) if n == page.len())
                && page == *own
        });
    by_name.or_else(|| rustix::fs::open(c"/proc/self/exe", flags, Mode::empty()).ok())
}

/// `PR_SET_MM_MAP` with `map` (whose `exe_fd` names the program) for a loader that stays mapped: lets go
/// of the loader's file for the call as the module docs describe, and returns the call's result (0 on
/// success). The loader's code runs on from the same addresses either way.
pub fn set_exe(startup: &Startup, map: &MmMap) -> i64 {
    match remap_around(startup, map) {
        Some(result) => result,
        None => match detach_from_file(startup) {
            // SAFETY: `map` describes the new process image (the caller's contract).
            Ok(()) => unsafe { crate::exec::sys_prctl_mm_map(map) },
            Err(errno) => -i64::from(errno.raw_os_error()),
        },
    }
}

/// The cheap way of [`set_exe`]; `None` when it does not apply (or failed before changing anything),
/// for the caller to copy everything instead.
fn remap_around(startup: &Startup, map: &MmMap) -> Option<i64> {
    let (low, len) = span(startup)?;
    let high = low + len;
    let phdrs = own_phdrs(startup)?;
    let bias = own_bias(startup, phdrs);
    let loads = || phdrs.iter().filter(|p| p.p_type.get(LE) == PT_LOAD);
    let start_of = |p: &ProgramHeader64<LE>| p.p_vaddr.get(LE).wrapping_add(bias);
    let writable = |p: &ProgramHeader64<LE>| p.p_flags.get(LE) & object::elf::PF_W != 0;
    // The read-only segments must be whole file pages below every writable one.
    let mut segments = [[0u64; 4]; MAX_READ_ONLY];
    let mut count = 0;
    let mut ro_high = low;
    for p in loads().filter(|p| !writable(p)) {
        let start = page_down(start_of(p));
        let end = page_up(start_of(p).checked_add(p.p_memsz.get(LE))?)?;
        let offset = p.p_offset.get(LE);
        if p.p_filesz.get(LE) != p.p_memsz.get(LE)
            || start_of(p) % uexec_elf::PAGE_SIZE != offset % uexec_elf::PAGE_SIZE
        {
            return None;
        }
        let flags = p.p_flags.get(LE);
        let mut prot = 0;
        if flags & object::elf::PF_R != 0 {
            prot |= 1; // PROT_READ
        }
        if flags & object::elf::PF_X != 0 {
            prot |= 4; // PROT_EXEC
        }
        *segments.get_mut(count)? = [start, end - start, prot, page_down(offset)];
        count += 1;
        ro_high = ro_high.max(end);
    }
    let rw_low = loads()
        .filter(|p| writable(p))
        .map(|p| page_down(start_of(p)))
        .min()
        .unwrap_or(high);
    let first_ro = segments.first()?[0];
    if count == 0 || first_ro != low || ro_high != rw_low.min(high) {
        return None;
    }
    // Every page of [low, ro_high) must be a read-only segment's, or the munmap would take a hole; and
    // every page of the span a segment's, or the copy of the writable ones would read one.
    let ro_covered: u64 = segments.iter().take(count).map(|s| s[1]).sum();
    let covered: u64 = loads()
        .map(|p| {
            let start = start_of(p);
            page_up(start.wrapping_add(p.p_memsz.get(LE))).unwrap_or(u64::MAX) - page_down(start)
        })
        .sum();
    if ro_covered != ro_high - low || covered != high - low {
        return None;
    }
    let own_file = open_own_file(startup, low, segments.first()?[3])?;
    // The writable segments first (the read-only ones are empty ranges there).
    if ro_high < high {
        let top = file_top(phdrs, bias, low, high);
        if top > ro_high {
            detach_span(phdrs, bias, ro_high, top).ok()?;
        }
    }
    let code = remap_trampoline as *const () as usize;
    let data = core::ptr::addr_of!(uexec_remap_data) as usize;
    let end = core::ptr::addr_of!(uexec_remap_end) as usize;
    let tramp = crate::handover::TrampolinePage::new(code, data, end)?;
    tramp.put(slot::MAP, crate::handover::mm_map_bytes(map));
    tramp.put(slot::FD, &(own_file.as_raw_fd() as u64).to_ne_bytes());
    tramp.put(slot::UNMAP, &low.to_ne_bytes());
    tramp.put(slot::UNMAP + 8, &(ro_high - low).to_ne_bytes());
    tramp.put(slot::COUNT, &(count as u64).to_ne_bytes());
    for (i, segment) in segments.iter().take(count).enumerate() {
        for (j, word) in segment.iter().enumerate() {
            tramp.put(
                slot::SEGMENTS + i * slot::SEGMENT + j * 8,
                &word.to_ne_bytes(),
            );
        }
    }
    let tramp = tramp.seal()?;
    // SAFETY: the page holds a sealed copy of `remap_trampoline`, its data filled in: a function of
    // this type.
    let run: unsafe extern "C" fn() -> i64 = unsafe { core::mem::transmute(tramp) };
    // SAFETY: position-independent, its data filled in; it returns to this code only once the
    // read-only segments are mapped back at the same addresses from the same file (see the module
    // docs).
    let result = Some(unsafe { run() });
    // SAFETY: the trampoline page, no longer used.
    let _ = unsafe { rustix::mm::munmap(tramp.cast(), uexec_elf::PAGE_SIZE as usize) };
    drop(own_file);
    result
}
