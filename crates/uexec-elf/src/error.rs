//! The reasons an ELF file is refused.
//!
//! Every error is a small `Copy` value with a fixed message, so that the no_std loaders can report it
//! without allocating; the command-line edge adds the file name.

use core::fmt;

/// Why a file cannot be executed. `segment` fields are indexes into the program-header table.
#[non_exhaustive]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ElfError {
    /// The file is shorter than an ELF file header (64 bytes).
    TooShort,
    /// The first four bytes are not `\x7fELF`.
    NotElf,
    /// `EI_CLASS` is `ELFCLASS32`.
    Class32,
    /// `EI_CLASS` is neither 32- nor 64-bit.
    BadClass,
    /// `EI_DATA` is `ELFDATA2MSB`.
    BigEndian,
    /// `EI_DATA` is neither little- nor big-endian.
    BadEncoding,
    /// `e_machine` is not `EM_X86_64`.
    WrongMachine(u16),
    /// `e_type` is not `ET_EXEC` or `ET_DYN` (a relocatable object, a core dump, ...).
    NotExecutable(u16),
    /// `e_phentsize` is not the size of an `Elf64_Phdr`.
    BadPhentsize(u16),
    /// `e_phnum` is zero.
    NoProgramHeaders,
    /// The program-header table is larger than the kernel accepts (one page).
    TooManyProgramHeaders(u16),
    /// More loadable segments than [`crate::MAX_SEGMENTS`].
    TooManySegments,
    /// The program-header table does not lie inside the file.
    PhdrTableOutsideFile,
    /// A segment's file range does not lie inside the file.
    SegmentOutsideFile { segment: u16 },
    /// A segment's `p_memsz` is smaller than its `p_filesz`.
    MemszBelowFilesz { segment: u16 },
    /// A segment's address and file offset differ modulo the page size.
    Misaligned { segment: u16 },
    /// A segment's address range wraps around the end of the address space.
    SegmentWraps { segment: u16 },
    /// A segment reaches above the highest user address.
    SegmentInKernelSpace { segment: u16 },
    /// A loadable segment starts below the end of the one before it.
    SegmentsOverlap { segment: u16 },
    /// There is no `PT_LOAD` segment.
    NoLoadSegment,
    /// The image spans more than the user address space.
    ImageTooLarge,
    /// The entry point is not a user address.
    EntryOutsideUserSpace,
    /// `PT_INTERP` is empty, longer than `PATH_MAX`, or not NUL-terminated.
    BadInterpreterPath { segment: u16 },
    /// The file names itself as its own interpreter, or the interpreter asks for another one.
    NestedInterpreter,
}

impl ElfError {
    /// A one-line description without the file name.
    pub const fn message(self) -> &'static str {
        match self {
            Self::TooShort => "truncated: shorter than an ELF header",
            Self::NotElf => "not an ELF file",
            Self::Class32 => "32-bit ELF files are not supported (need ELFCLASS64)",
            Self::BadClass => "invalid ELF class",
            Self::BigEndian => "big-endian ELF files are not supported (need little-endian)",
            Self::BadEncoding => "invalid ELF data encoding",
            Self::WrongMachine(_) => "built for another machine (need x86-64)",
            Self::NotExecutable(object::elf::ET_REL) => {
                "a relocatable object (ET_REL), not an executable"
            }
            Self::NotExecutable(object::elf::ET_CORE) => "a core dump (ET_CORE), not an executable",
            Self::NotExecutable(_) => "not an executable ELF type (need ET_EXEC or ET_DYN)",
            Self::BadPhentsize(_) => "program-header entry size is not 56",
            Self::NoProgramHeaders => "no program headers",
            Self::TooManyProgramHeaders(_) => "program-header table is too large",
            Self::TooManySegments => "too many loadable segments (uexec supports 73)",
            Self::PhdrTableOutsideFile => "truncated: program-header table lies outside the file",
            Self::SegmentOutsideFile { .. } => {
                "truncated: segment's file range lies outside the file"
            }
            Self::MemszBelowFilesz { .. } => "segment's memory size is smaller than its file size",
            Self::Misaligned { .. } => {
                "segment's address and file offset are not congruent modulo the page size"
            }
            Self::SegmentWraps { .. } => "segment wraps around the end of the address space",
            Self::SegmentInKernelSpace { .. } => "segment reaches into kernel space",
            Self::SegmentsOverlap { .. } => "loadable segments overlap or are out of order",
            Self::NoLoadSegment => "no loadable (PT_LOAD) segment",
            Self::ImageTooLarge => "loadable segments span more than the user address space",
            Self::EntryOutsideUserSpace => "entry point is not a user-space address",
            Self::BadInterpreterPath { .. } => {
                "PT_INTERP path is empty, too long or not NUL-terminated"
            }
            Self::NestedInterpreter => "the interpreter itself asks for an interpreter",
        }
    }

    /// The program-header index the error is about, if any.
    pub const fn segment(self) -> Option<u16> {
        match self {
            Self::SegmentOutsideFile { segment }
            | Self::MemszBelowFilesz { segment }
            | Self::Misaligned { segment }
            | Self::SegmentWraps { segment }
            | Self::SegmentInKernelSpace { segment }
            | Self::SegmentsOverlap { segment }
            | Self::BadInterpreterPath { segment } => Some(segment),
            _ => None,
        }
    }
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(segment) = self.segment() {
            write!(f, "program header {segment}: ")?;
        }
        f.write_str(self.message())?;
        match *self {
            Self::WrongMachine(m) => write!(f, ", e_machine {m}"),
            Self::NotExecutable(t) => write!(f, ", e_type {t}"),
            Self::BadPhentsize(n) => write!(f, ", it is {n}"),
            Self::TooManyProgramHeaders(n) => write!(f, ", {n} entries"),
            _ => Ok(()),
        }
    }
}
