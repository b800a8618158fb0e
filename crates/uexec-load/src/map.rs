//! Mapping an executable's loadable segments into the current process, as `elf_load` in the kernel's
//! `fs/binfmt_elf.c` does, and reporting every mapping to an [`Observer`].
//!
//! The whole span of the image is first reserved as one inaccessible mapping with `MAP_FIXED_NOREPLACE`
//! (or, for a position-independent image, wherever the kernel finds room), so a program that would land
//! on the loader or on anything else already mapped is refused before any of it is mapped. Then the
//! pieces of uexec-elf's load plan ([`uexec_elf::plan`], which says which pages come from the file, which
//! are zeroed and which are anonymous) are mapped inside the reservation with `MAP_FIXED`; a page that
//! two segments share is rebuilt with both segments' bytes; the plan's holes are unmapped again, leaving
//! the holes the kernel leaves.
//!
//! # Safety
//!
//! Mapping with `MAP_FIXED` replaces whatever was there; this module only does so inside a reservation it
//! made itself, so it can never clobber the loader.

use core::ffi::c_void;
use rustix::fd::BorrowedFd;
use rustix::io::Errno;
use rustix::mm::{MapFlags, MprotectFlags, ProtFlags};
use uexec_elf::plan::{self, Piece};
use uexec_elf::{page_down, Image, Kind, LoadPlan, Prot, Segment, PAGE_SIZE, TASK_SIZE};

use crate::error::LoadError;
use crate::file::ElfFile;

/// Which image a mapping belongs to.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Who {
    Program,
    Interpreter,
}

/// What a mapping is for.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// The inaccessible reservation of the image's whole span.
    Reserve,
    /// The file-backed pages of the loadable segment with this program-header index.
    Segment(u16),
    /// The anonymous (bss) pages of that segment.
    Bss(u16),
    /// A page the segment shares with the one before it, rewritten to hold both.
    SharedPage(u16),
    /// A hole between segments, given back.
    Hole,
    /// The initial stack.
    Stack,
}

/// Where a mapping's bytes come from.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// Pages of the file, starting at this (page-aligned) offset.
    File { offset: u64 },
    /// Zero-filled memory.
    Anonymous,
    /// Nothing: the range was unmapped.
    Unmapped,
}

/// One mapping made for the program.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct MapEvent {
    pub who: Who,
    pub addr: u64,
    pub len: u64,
    pub prot: Prot,
    pub source: Source,
    pub role: Role,
}

/// Receives every mapping as it is made.
pub trait Observer {
    fn mapped(&mut self, event: &MapEvent);
}

/// An observer that ignores everything.
pub struct Quiet;

impl Observer for Quiet {
    fn mapped(&mut self, _: &MapEvent) {}
}

/// Where to put a position-independent image.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Placement {
    /// Wherever mmap finds room.
    Anywhere,
    /// At this load bias if the range is free, else anywhere.
    Prefer(u64),
}

/// A mapped image.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Mapped {
    /// What was added to every address of the file (0 for `ET_EXEC`).
    pub bias: u64,
    /// The entry point in memory.
    pub entry: u64,
    /// The program headers in memory (AT_PHDR), or 0 if no segment holds them.
    pub phdr: u64,
    /// One past the highest segment byte in memory.
    pub end: u64,
}

fn prot_flags(prot: Prot) -> ProtFlags {
    let mut flags = ProtFlags::empty();
    if prot.read {
        flags |= ProtFlags::READ;
    }
    if prot.write {
        flags |= ProtFlags::WRITE;
    }
    if prot.exec {
        flags |= ProtFlags::EXEC;
    }
    flags
}

fn mprotect_flags(prot: Prot) -> MprotectFlags {
    MprotectFlags::from_bits_truncate(prot_flags(prot).bits())
}

const NONE: Prot = Prot {
    read: false,
    write: false,
    exec: false,
};
const READ_WRITE: Prot = Prot {
    read: true,
    write: true,
    exec: false,
};

/// Which parts of an image are left inaccessible, to be made accessible page by page by a demand pager.
///
/// Lazy pages are mapped with their final contents (file pages from the file, the bss tail of the last
/// file page zeroed, the rest anonymous) but `PROT_NONE`: the kernel's view of the address space is the
/// one it would have natively, so the program's own `mprotect`, `munmap` and `madvise` on pages it never
/// touched behave as they would natively, and the pager only changes protections.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Laziness {
    /// File-backed pages (text, rodata, initialised data).
    pub file: bool,
    /// Anonymous pages (bss).
    pub anon: bool,
}

impl Laziness {
    /// Everything mapped accessible at once.
    pub const EAGER: Self = Self {
        file: false,
        anon: false,
    };
}

/// Maps `file`'s loadable segments and reports each mapping to `observer`.
pub fn map_image(
    file: &ElfFile,
    placement: Placement,
    who: Who,
    laziness: Laziness,
    observer: &mut dyn Observer,
) -> Result<Mapped, LoadError> {
    let image = &file.image;
    let (low, high) = image.span();
    let len = high - low;
    let bias = reserve(image, placement, low, len)?;
    let mut mapper = Mapper {
        fd: file.fd(),
        bias,
        who,
        laziness,
        observer,
    };
    mapper.report(
        low.wrapping_add(bias),
        len,
        NONE,
        Source::Anonymous,
        Role::Reserve,
    );

    // The page arithmetic is uexec-elf's load plan, which a pager's region table is built from too.
    let plan = LoadPlan::of(image);
    let segments = image.segments();
    for (i, segment) in segments.iter().enumerate() {
        for piece in plan.pieces_of(segment.index) {
            mapper.map_piece(piece)?;
        }
        if plan.shared_pages().iter().any(|shared| shared.segment == i) {
            let earlier = segments.get(..i).unwrap_or(&[]);
            mapper.restore_shared_page(segment, earlier)?;
        }
    }
    // Give back the holes between segments.
    for &(start, end) in plan.holes() {
        mapper.unmap(start + bias, end - start)?;
    }

    let entry = image.entry.wrapping_add(bias);
    if entry >= TASK_SIZE {
        return Err(LoadError::Elf(uexec_elf::ElfError::EntryOutsideUserSpace));
    }
    Ok(Mapped {
        bias,
        entry,
        phdr: image.phdr_vaddr.map_or(0, |p| p.wrapping_add(bias)),
        end: image.end().wrapping_add(bias),
    })
}

/// Reserves `[low, low + len)` (plus the bias for a position-independent image); returns the bias.
fn reserve(image: &Image, placement: Placement, low: u64, len: u64) -> Result<u64, LoadError> {
    let flags = MapFlags::PRIVATE | MapFlags::NORESERVE;
    match (image.kind, placement) {
        (Kind::Exec, _) => reserve_fixed(low, len, flags).map(|()| 0),
        (Kind::Dyn, Placement::Prefer(bias)) => {
            let at = low.wrapping_add(bias);
            match at.checked_add(len) {
                Some(end) if end <= TASK_SIZE && reserve_fixed(at, len, flags).is_ok() => Ok(bias),
                _ => reserve_anywhere(image, low, len, flags),
            }
        }
        (Kind::Dyn, Placement::Anywhere) => reserve_anywhere(image, low, len, flags),
    }
}

fn reserve_fixed(addr: u64, len: u64, flags: MapFlags) -> Result<(), LoadError> {
    let flags = flags | MapFlags::FIXED_NOREPLACE;
    // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping; it fails with EEXIST instead.
    let got = unsafe {
        rustix::mm::mmap_anonymous(addr as *mut c_void, len as usize, ProtFlags::empty(), flags)
    };
    match got {
        Ok(p) if p as u64 == addr => Ok(()),
        Ok(p) => {
            // A kernel older than 4.17 took the flag as a hint and put the mapping elsewhere.
            // SAFETY: `p` is the mapping just made, of `len` bytes, which nothing else refers to.
            let _ = unsafe { rustix::mm::munmap(p, len as usize) };
            Err(LoadError::Overlaps { addr, len })
        }
        Err(Errno::EXIST) => Err(LoadError::Overlaps { addr, len }),
        Err(errno) => Err(LoadError::Map { errno, addr, len }),
    }
}

/// Reserves room for the image wherever mmap puts it, aligned to the image's largest `p_align`.
fn reserve_anywhere(image: &Image, low: u64, len: u64, flags: MapFlags) -> Result<u64, LoadError> {
    let align = image.max_align;
    let padded = len.checked_add(align - PAGE_SIZE).ok_or(LoadError::Map {
        errno: Errno::NOMEM,
        addr: 0,
        len,
    })?;
    // SAFETY: without MAP_FIXED the kernel picks an unused range.
    let base = unsafe {
        rustix::mm::mmap_anonymous(
            core::ptr::null_mut(),
            padded as usize,
            ProtFlags::empty(),
            flags,
        )
    }
    .map_err(|errno| LoadError::Map {
        errno,
        addr: 0,
        len: padded,
    })? as u64;
    let start = (base + align - 1) & !(align - 1);
    let end = start + len;
    // SAFETY: both ranges are the unneeded ends of the reservation just made.
    unsafe {
        if start > base {
            let _ = rustix::mm::munmap(base as *mut c_void, (start - base) as usize);
        }
        if base + padded > end {
            let _ = rustix::mm::munmap(end as *mut c_void, (base + padded - end) as usize);
        }
    }
    Ok(start.wrapping_sub(low))
}

struct Mapper<'a> {
    fd: BorrowedFd<'a>,
    bias: u64,
    who: Who,
    laziness: Laziness,
    observer: &'a mut dyn Observer,
}

impl Mapper<'_> {
    fn report(&mut self, addr: u64, len: u64, prot: Prot, source: Source, role: Role) {
        let event = MapEvent {
            who: self.who,
            addr,
            len,
            prot,
            source,
            role,
        };
        self.observer.mapped(&event);
    }

    /// Maps one piece of the plan: file pages (the tail of the last one zeroed if the plan says so) or
    /// anonymous pages, with their final protection, or `PROT_NONE` if left to a pager.
    fn map_piece(&mut self, piece: &Piece) -> Result<(), LoadError> {
        let start = piece.start + self.bias;
        let len = piece.end - piece.start;
        match piece.source {
            plan::Source::File { offset, zero_from } => {
                let final_prot = if self.laziness.file { NONE } else { piece.prot };
                // Pages to zero are mapped writable (never executable) for that, and get their own
                // protection afterwards.
                let map_prot = if zero_from.is_some() {
                    READ_WRITE
                } else {
                    final_prot
                };
                // SAFETY: the range lies in the reservation made for this image (checked by Image::parse
                // and `reserve`), so MAP_FIXED replaces only that.
                unsafe {
                    rustix::mm::mmap(
                        start as *mut c_void,
                        len as usize,
                        prot_flags(map_prot),
                        MapFlags::PRIVATE | MapFlags::FIXED,
                        self.fd,
                        offset,
                    )
                }
                .map_err(|errno| LoadError::Map {
                    errno,
                    addr: start,
                    len,
                })?;
                if let Some(zero_from) = zero_from {
                    let from = zero_from + self.bias;
                    // SAFETY: [from, start + len) is inside the writable mapping just made.
                    unsafe {
                        core::ptr::write_bytes(from as *mut u8, 0, (start + len - from) as usize)
                    };
                    if map_prot != final_prot {
                        self.protect(start, len, final_prot)?;
                    }
                }
                self.report(
                    start,
                    len,
                    final_prot,
                    Source::File { offset },
                    Role::Segment(piece.segment),
                );
            }
            plan::Source::Anonymous => {
                let prot = if self.laziness.anon { NONE } else { piece.prot };
                // SAFETY: as above, inside this image's reservation.
                unsafe {
                    rustix::mm::mmap_anonymous(
                        start as *mut c_void,
                        len as usize,
                        prot_flags(prot),
                        MapFlags::PRIVATE | MapFlags::FIXED,
                    )
                }
                .map_err(|errno| LoadError::Map {
                    errno,
                    addr: start,
                    len,
                })?;
                self.report(
                    start,
                    len,
                    prot,
                    Source::Anonymous,
                    Role::Bss(piece.segment),
                );
            }
        }
        Ok(())
    }

    /// When `segment`'s first page also holds the end of earlier segments, mapping `segment` replaced
    /// their bytes on that page: put them back (file bytes from the file, the rest zero), and give the
    /// page the union of the protections unless that would make it writable and executable.
    fn restore_shared_page(
        &mut self,
        segment: &Segment,
        earlier: &[Segment],
    ) -> Result<(), LoadError> {
        let page = page_down(segment.vaddr);
        let page_end = page + PAGE_SIZE;
        let sharing = earlier.iter().filter(|s| s.end() > page);
        let mut union = segment.prot;
        let mut any = false;
        for other in sharing.clone() {
            any = true;
            union.read |= other.prot.read;
            union.write |= other.prot.write;
            union.exec |= other.prot.exec;
        }
        if !any {
            return Ok(());
        }
        let addr = page + self.bias;
        self.protect(addr, PAGE_SIZE, READ_WRITE)?;
        for other in sharing {
            let from = other.vaddr.max(page);
            let file_to = other.file_end().min(page_end);
            if file_to > from {
                let offset = other.offset + (from - other.vaddr);
                // SAFETY: [from, file_to) lies in the page made writable above.
                let dest = unsafe {
                    core::slice::from_raw_parts_mut(
                        (from + self.bias) as *mut u8,
                        (file_to - from) as usize,
                    )
                };
                let want = dest.len();
                let got =
                    rustix::io::pread(self.fd, dest, offset).map_err(|errno| LoadError::Map {
                        errno,
                        addr,
                        len: PAGE_SIZE,
                    })?;
                if got != want {
                    return Err(LoadError::Map {
                        errno: Errno::IO,
                        addr,
                        len: PAGE_SIZE,
                    });
                }
            }
            let zero_from = other.file_end().max(page);
            let zero_to = other.end().min(page_end);
            if zero_to > zero_from {
                // SAFETY: [zero_from, zero_to) lies in the page made writable above.
                unsafe {
                    core::ptr::write_bytes(
                        (zero_from + self.bias) as *mut u8,
                        0,
                        (zero_to - zero_from) as usize,
                    )
                };
            }
        }
        let prot = if union.write
            && union.exec
            && !earlier
                .iter()
                .chain([segment])
                .any(|s| s.prot.write && s.prot.exec)
        {
            segment.prot
        } else {
            union
        };
        self.protect(addr, PAGE_SIZE, prot)?;
        self.report(
            addr,
            PAGE_SIZE,
            prot,
            Source::Anonymous,
            Role::SharedPage(segment.index),
        );
        Ok(())
    }

    fn protect(&mut self, addr: u64, len: u64, prot: Prot) -> Result<(), LoadError> {
        // SAFETY: only pages of this image's reservation are passed here.
        unsafe { rustix::mm::mprotect(addr as *mut c_void, len as usize, mprotect_flags(prot)) }
            .map_err(|errno| LoadError::Map { errno, addr, len })
    }

    fn unmap(&mut self, addr: u64, len: u64) -> Result<(), LoadError> {
        // SAFETY: a hole inside this image's reservation; nothing refers to it.
        unsafe { rustix::mm::munmap(addr as *mut c_void, len as usize) }
            .map_err(|errno| LoadError::Map { errno, addr, len })?;
        self.report(addr, len, NONE, Source::Unmapped, Role::Hole);
        Ok(())
    }
}
