//! Reading and validating an x86-64 ELF executable, as the kernel's `fs/binfmt_elf.c` does before it maps
//! anything.
//!
//! The crate owns the rules, not the I/O: the caller reads the first bytes of the file and hands them to
//! [`FileHeader::parse`], reads the program-header table that the header points at, and hands it to
//! [`Image::parse`]. The result says where every loadable segment goes, what the interpreter path is, where
//! the program headers will be in memory and how the address space must be arranged. Every field is
//! treated as hostile: sizes are checked against the file, arithmetic is checked, tables are capped.
//!
//! It is `no_std`, allocation-free and free of `unsafe`, so the loaders can use it before anything of the
//! usual runtime exists, and a fuzzer can drive it directly.
#![no_std]
#![forbid(unsafe_code)]

mod error;
pub mod plan;

pub use error::ElfError;
pub use plan::LoadPlan;

use object::elf::{self, FileHeader64, ProgramHeader64};
use object::LittleEndian as LE;

/// The page size of x86-64 (the kernel's `ELF_MIN_ALIGN`).
pub const PAGE_SIZE: u64 = 4096;
/// One past the highest address a user mapping may reach with 4-level paging (`TASK_SIZE_MAX`).
pub const TASK_SIZE: u64 = (1 << 47) - PAGE_SIZE;
/// Where the kernel puts a PIE that has an interpreter, before randomisation (`ELF_ET_DYN_BASE`,
/// two thirds of the default mapping window, page-aligned).
pub const ET_DYN_BASE: u64 = (TASK_SIZE / 3 * 2) & !(PAGE_SIZE - 1);
/// Size of an ELF file header.
pub const EHDR_SIZE: usize = core::mem::size_of::<FileHeader64<LE>>();
/// Size of one program header.
pub const PHDR_SIZE: usize = core::mem::size_of::<ProgramHeader64<LE>>();
/// The largest program-header table the kernel reads (`load_elf_phdrs` on 6.x: 64 KiB).
pub const MAX_PHDR_TABLE: usize = 65536;
/// The most program headers that fit in [`MAX_PHDR_TABLE`].
pub const MAX_PHNUM: usize = MAX_PHDR_TABLE / PHDR_SIZE;
/// The most loadable segments an image may have. The kernel has no limit of its own but the table's
/// size; real programs have a handful, and each is a region of a demand pager's table, so the limit
/// stays at what the table's old 4 KiB held: an image with more is refused
/// ([`ElfError::TooManySegments`]).
pub const MAX_SEGMENTS: usize = 4096 / PHDR_SIZE;
/// The longest interpreter path accepted, NUL included (`PATH_MAX`).
pub const MAX_INTERP_PATH: usize = 4096;

/// Rounds down to a page boundary.
pub const fn page_down(addr: u64) -> u64 {
    addr & !(PAGE_SIZE - 1)
}

/// Rounds up to a page boundary, or `None` if that overflows.
pub const fn page_up(addr: u64) -> Option<u64> {
    match addr.checked_add(PAGE_SIZE - 1) {
        Some(a) => Some(page_down(a)),
        None => None,
    }
}

/// Whether the image is placed at its link-time addresses or at a load bias the loader chooses.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `ET_EXEC`: fixed addresses.
    Exec,
    /// `ET_DYN`: a PIE, a static-pie or an interpreter, placed at any page-aligned bias.
    Dyn,
}

/// The part of the ELF file header a loader needs, validated.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct FileHeader {
    pub kind: Kind,
    /// `e_entry`, unbiased.
    pub entry: u64,
    /// File offset of the program-header table.
    pub phoff: u64,
    /// Number of program headers (at most [`MAX_PHNUM`]).
    pub phnum: u16,
}

impl FileHeader {
    /// Validates the first bytes of a file (at least [`EHDR_SIZE`] of them, if the file has that many) and
    /// that the program-header table it announces lies inside a file of `file_size` bytes.
    pub fn parse(bytes: &[u8], file_size: u64) -> Result<Self, ElfError> {
        let magic_len = bytes.len().min(elf::ELFMAG.len());
        if bytes.is_empty() || bytes.get(..magic_len) != elf::ELFMAG.get(..magic_len) {
            return Err(ElfError::NotElf);
        }
        let Ok((ehdr, _)) = object::pod::from_bytes::<FileHeader64<LE>>(bytes) else {
            return Err(ElfError::TooShort);
        };
        match ehdr.e_ident.class {
            elf::ELFCLASS64 => {}
            elf::ELFCLASS32 => return Err(ElfError::Class32),
            _ => return Err(ElfError::BadClass),
        }
        match ehdr.e_ident.data {
            elf::ELFDATA2LSB => {}
            elf::ELFDATA2MSB => return Err(ElfError::BigEndian),
            _ => return Err(ElfError::BadEncoding),
        }
        let machine = ehdr.e_machine.get(LE);
        if machine != elf::EM_X86_64 {
            return Err(ElfError::WrongMachine(machine));
        }
        let kind = match ehdr.e_type.get(LE) {
            elf::ET_EXEC => Kind::Exec,
            elf::ET_DYN => Kind::Dyn,
            other => return Err(ElfError::NotExecutable(other)),
        };
        let phentsize = ehdr.e_phentsize.get(LE);
        if usize::from(phentsize) != PHDR_SIZE {
            return Err(ElfError::BadPhentsize(phentsize));
        }
        let phnum = ehdr.e_phnum.get(LE);
        if phnum == 0 {
            return Err(ElfError::NoProgramHeaders);
        }
        if usize::from(phnum) > MAX_PHNUM {
            return Err(ElfError::TooManyProgramHeaders(phnum));
        }
        let header = Self {
            kind,
            entry: ehdr.e_entry.get(LE),
            phoff: ehdr.e_phoff.get(LE),
            phnum,
        };
        match header.phoff.checked_add(header.phdr_table_len() as u64) {
            Some(end) if end <= file_size => Ok(header),
            _ => Err(ElfError::PhdrTableOutsideFile),
        }
    }

    /// Size in bytes of the program-header table (at most [`MAX_PHDR_TABLE`]).
    pub const fn phdr_table_len(&self) -> usize {
        self.phnum as usize * PHDR_SIZE
    }
}

/// Memory protection of a segment, from its `p_flags`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub struct Prot {
    pub read: bool,
    pub write: bool,
    pub exec: bool,
}

impl Prot {
    fn from_flags(p_flags: u32) -> Self {
        Self {
            read: p_flags & elf::PF_R != 0,
            write: p_flags & elf::PF_W != 0,
            exec: p_flags & elf::PF_X != 0,
        }
    }

    /// The `rwx` notation of `/proc/PID/maps`.
    pub const fn as_str(self) -> &'static str {
        match (self.read, self.write, self.exec) {
            (false, false, false) => "---",
            (true, false, false) => "r--",
            (false, true, false) => "-w-",
            (true, true, false) => "rw-",
            (false, false, true) => "--x",
            (true, false, true) => "r-x",
            (false, true, true) => "-wx",
            (true, true, true) => "rwx",
        }
    }
}

/// One `PT_LOAD` segment, validated; addresses are unbiased.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub struct Segment {
    /// Index of the segment's program header.
    pub index: u16,
    pub vaddr: u64,
    pub memsz: u64,
    pub offset: u64,
    pub filesz: u64,
    pub prot: Prot,
}

impl Segment {
    /// One past the segment's last byte in memory.
    pub const fn end(&self) -> u64 {
        self.vaddr + self.memsz
    }

    /// One past the last byte that comes from the file.
    pub const fn file_end(&self) -> u64 {
        self.vaddr + self.filesz
    }
}

/// Where the `PT_INTERP` path lies in the file, NUL included.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct InterpRange {
    /// Index of the `PT_INTERP` program header.
    pub segment: u16,
    pub offset: u64,
    pub len: u64,
}

/// Everything a loader needs to map an executable, validated against the file it came from.
#[derive(Clone, Debug)]
pub struct Image {
    pub kind: Kind,
    /// `e_entry`, unbiased.
    pub entry: u64,
    /// Number of program headers (AT_PHNUM).
    pub phnum: u16,
    /// Where the program headers are in memory, unbiased (AT_PHDR less the bias), as the kernel finds it:
    /// `e_phoff` translated through the `PT_LOAD` whose file range holds it; `None` if none does.
    pub phdr_vaddr: Option<u64>,
    /// Where the interpreter's path lies in the file, if there is a `PT_INTERP`.
    pub interp: Option<InterpRange>,
    /// Whether `PT_GNU_STACK` asks for an executable stack.
    pub exec_stack: bool,
    /// The largest power-of-two `p_align` of the loadable segments, at least a page.
    pub max_align: u64,
    segments: [Segment; MAX_SEGMENTS],
    segment_count: usize,
}

impl Image {
    /// Validates the program-header table `table` (the `header.phdr_table_len()` bytes at `header.phoff`)
    /// of a file of `file_size` bytes.
    pub fn parse(header: &FileHeader, table: &[u8], file_size: u64) -> Result<Self, ElfError> {
        let Ok((phdrs, _)) =
            object::pod::slice_from_bytes::<ProgramHeader64<LE>>(table, usize::from(header.phnum))
        else {
            return Err(ElfError::PhdrTableOutsideFile);
        };
        let mut image = Self {
            kind: header.kind,
            entry: header.entry,
            phnum: header.phnum,
            phdr_vaddr: None,
            interp: None,
            exec_stack: false,
            max_align: PAGE_SIZE,
            segments: [Segment::default(); MAX_SEGMENTS],
            segment_count: 0,
        };
        for (index, phdr) in (0u16..).zip(phdrs) {
            match phdr.p_type.get(LE) {
                elf::PT_LOAD => image.add_segment(index, phdr, header.phoff, file_size)?,
                // The kernel uses the first PT_INTERP and ignores any other.
                elf::PT_INTERP if image.interp.is_none() => {
                    let len = phdr.p_filesz.get(LE);
                    if len < 2 || len > MAX_INTERP_PATH as u64 {
                        return Err(ElfError::BadInterpreterPath { segment: index });
                    }
                    let offset = phdr.p_offset.get(LE);
                    match offset.checked_add(len) {
                        Some(end) if end <= file_size => {}
                        _ => return Err(ElfError::SegmentOutsideFile { segment: index }),
                    }
                    image.interp = Some(InterpRange {
                        segment: index,
                        offset,
                        len,
                    });
                }
                elf::PT_GNU_STACK => image.exec_stack = phdr.p_flags.get(LE) & elf::PF_X != 0,
                _ => {}
            }
        }
        if image.segment_count == 0 {
            return Err(ElfError::NoLoadSegment);
        }
        let (low, high) = image.span();
        match image.kind {
            Kind::Exec if image.entry >= TASK_SIZE => return Err(ElfError::EntryOutsideUserSpace),
            Kind::Dyn if high - low > TASK_SIZE => return Err(ElfError::ImageTooLarge),
            _ => {}
        }
        Ok(image)
    }

    fn add_segment(
        &mut self,
        index: u16,
        phdr: &ProgramHeader64<LE>,
        phoff: u64,
        file_size: u64,
    ) -> Result<(), ElfError> {
        let segment = Segment {
            index,
            vaddr: phdr.p_vaddr.get(LE),
            memsz: phdr.p_memsz.get(LE),
            offset: phdr.p_offset.get(LE),
            filesz: phdr.p_filesz.get(LE),
            prot: Prot::from_flags(phdr.p_flags.get(LE)),
        };
        let error = |make: fn(u16) -> ElfError| Err(make(index));
        match segment.offset.checked_add(segment.filesz) {
            Some(end) if end <= file_size => {}
            _ => return error(|segment| ElfError::SegmentOutsideFile { segment }),
        }
        if segment.memsz < segment.filesz {
            return error(|segment| ElfError::MemszBelowFilesz { segment });
        }
        if segment.vaddr % PAGE_SIZE != segment.offset % PAGE_SIZE {
            return error(|segment| ElfError::Misaligned { segment });
        }
        let Some(end) = segment.vaddr.checked_add(segment.memsz).and_then(page_up) else {
            return error(|segment| ElfError::SegmentWraps { segment });
        };
        if self.kind == Kind::Exec && end > TASK_SIZE {
            return error(|segment| ElfError::SegmentInKernelSpace { segment });
        }
        if let Some(previous) = self.segments().last() {
            if segment.vaddr < previous.end() {
                return error(|segment| ElfError::SegmentsOverlap { segment });
            }
        }
        let align = phdr.p_align.get(LE);
        if align.is_power_of_two() && align > self.max_align && align <= TASK_SIZE / 4 {
            self.max_align = align;
        }
        // As `load_elf_binary`: the last PT_LOAD whose file bytes hold e_phoff says where the table is.
        if segment.offset <= phoff && phoff - segment.offset < segment.filesz {
            self.phdr_vaddr = Some(segment.vaddr + (phoff - segment.offset));
        }
        match self.segments.get_mut(self.segment_count) {
            Some(slot) => {
                *slot = segment;
                self.segment_count += 1;
                Ok(())
            }
            None => Err(ElfError::TooManySegments),
        }
    }

    /// The loadable segments, in ascending address order.
    pub fn segments(&self) -> &[Segment] {
        self.segments.get(..self.segment_count).unwrap_or(&[])
    }

    /// The page-aligned range `[low, high)` the loadable segments cover, unbiased.
    pub fn span(&self) -> (u64, u64) {
        let segments = self.segments();
        let low = segments.first().map_or(0, |s| page_down(s.vaddr));
        // Ends were checked not to overflow when rounded up.
        let high = segments
            .last()
            .and_then(|s| page_up(s.end()))
            .unwrap_or(low);
        (low, high)
    }

    /// The code and data ranges `load_elf_binary` records for `/proc/PID/stat` (unbiased): code from the
    /// lowest executable segment to the end of the highest one's file bytes, data from the highest
    /// segment's start to the end of the highest file bytes. `None` when no segment is executable.
    pub fn code_and_data(&self) -> Option<CodeAndData> {
        let mut ranges = CodeAndData {
            start_code: u64::MAX,
            end_code: 0,
            start_data: 0,
            end_data: 0,
        };
        for s in self.segments() {
            if s.prot.exec {
                ranges.start_code = ranges.start_code.min(s.vaddr);
                ranges.end_code = ranges.end_code.max(s.file_end());
            }
            ranges.start_data = ranges.start_data.max(s.vaddr);
            ranges.end_data = ranges.end_data.max(s.file_end());
        }
        (ranges.start_code < ranges.end_code).then_some(ranges)
    }

    /// One past the highest byte of any segment, unbiased: where the kernel starts the program break.
    pub fn end(&self) -> u64 {
        self.segments().last().map_or(0, Segment::end)
    }
}

/// The `mm->start_code` .. `mm->end_data` values of a process.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct CodeAndData {
    pub start_code: u64,
    pub end_code: u64,
    pub start_data: u64,
    pub end_data: u64,
}

/// Checks an interpreter path read from the file range [`Image::interp`] and returns it without its NUL.
/// As `load_elf_binary`, only the range's last byte must be NUL; the path is what comes before the
/// first one (so NUL padding after it is accepted), and must not be empty.
pub fn interpreter_path(bytes: &[u8], segment: u16) -> Result<&[u8], ElfError> {
    match bytes.split_last() {
        Some((0, _)) => {
            let len = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
            match bytes.get(..len) {
                Some(path) if !path.is_empty() => Ok(path),
                _ => Err(ElfError::BadInterpreterPath { segment }),
            }
        }
        _ => Err(ElfError::BadInterpreterPath { segment }),
    }
}

#[cfg(test)]
mod tests;
