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

use crate::startup::Startup;

const AT_PHDR: u64 = 3;
const AT_PHNUM: u64 = 5;

/// Replaces every segment of the loader's own file by an anonymous copy.
pub fn detach_from_file(startup: &Startup) -> Result<(), Errno> {
    let (Some(phdr), Some(phnum)) = (startup.aux(AT_PHDR), startup.aux(AT_PHNUM)) else {
        return Err(Errno::NOENT);
    };
    // SAFETY: AT_PHDR and AT_PHNUM describe the loader's own program headers, mapped for its lifetime.
    let phdrs =
        unsafe { core::slice::from_raw_parts(phdr as *const ProgramHeader64<LE>, phnum as usize) };
    let bias = phdrs
        .iter()
        .find(|p| p.p_type.get(LE) == PT_PHDR)
        .map_or(0, |p| phdr.wrapping_sub(p.p_vaddr.get(LE)));
    for p in phdrs.iter().filter(|p| p.p_type.get(LE) == PT_LOAD) {
        let start = page_down(p.p_vaddr.get(LE).wrapping_add(bias));
        let end = page_up(
            p.p_vaddr
                .get(LE)
                .wrapping_add(bias)
                .wrapping_add(p.p_memsz.get(LE)),
        )
        .ok_or(Errno::INVAL)?;
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
        replace_with_copy(start, end - start, prot)?;
    }
    Ok(())
}

fn replace_with_copy(start: u64, len: u64, prot: MprotectFlags) -> Result<(), Errno> {
    let len = len as usize;
    // SAFETY: a fresh anonymous mapping.
    let copy = unsafe {
        rustix::mm::mmap_anonymous(
            core::ptr::null_mut(),
            len,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::PRIVATE,
        )
    }?;
    // SAFETY: [start, start + len) is a readable segment of the loader (read-only segments included), and
    // the copy is a distinct writable mapping of the same length.
    unsafe {
        core::ptr::copy_nonoverlapping(start as *const u8, copy.cast::<u8>(), len);
        rustix::mm::mprotect(copy, len, prot)?;
        rustix::mm::mremap_fixed(copy, len, len, MremapFlags::MAYMOVE, start as *mut c_void)?;
    }
    Ok(())
}
