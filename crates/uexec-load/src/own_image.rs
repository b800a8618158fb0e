//! The loader's own image, and letting go of its file.
//!
//! The kernel lets `/proc/PID/exe` be changed (`PR_SET_MM_MAP` with `exe_fd`, for checkpoint/restore
//! capable callers) only while no mapping of the current executable remains. The loader's segments are
//! mappings of the loader's file; [`detach_from_file`] replaces each with an anonymous copy of the same
//! bytes and protection, moved into place with `mremap`, so that the exe link can then name the program,
//! as it does after a real exec (and programs that re-execute `/proc/self/exe`, as busybox does, run
//! themselves again rather than the loader).
//!
//! # Safety
//!
//! Replacing the mapping the running code comes from is sound because the copy is byte-identical and
//! `mremap` swaps it in atomically: the instruction after the `syscall` is the same in both.

use core::ffi::c_void;
use object::elf::{ProgramHeader64, PT_LOAD, PT_PHDR};
use object::LittleEndian as LE;
use rustix::io::Errno;
use rustix::mm::{MapFlags, MprotectFlags, MremapFlags, ProtFlags};
use uexec_elf::{page_down, page_up};

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
    // The kernel maps a segment's whole pages past its file bytes anonymously; those of the highest
    // segment end the span and are left where they are.
    let top = loads()
        .max_by_key(|p| start_of(p))
        .and_then(|p| page_up(start_of(p).wrapping_add(p.p_filesz.get(LE))))
        .map_or(high, |end| end.clamp(low, high));
    if top == low {
        return Err(Errno::INVAL);
    }
    detach_span(phdrs, bias, low, top)
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
