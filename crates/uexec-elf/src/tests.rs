//! Unit tests: one synthetic file per way an executable can be malformed, each expecting its own error.
//!
//! The files are built byte by byte here (not by the code under test), starting from a minimal valid
//! static executable and breaking one field at a time.

extern crate std;
use std::vec::Vec;

use super::*;

const PT_LOAD: u32 = 1;
const PT_INTERP: u32 = 3;
const PT_PHDR: u32 = 6;
const PT_GNU_STACK: u32 = 0x6474_e551;
const PF_X: u32 = 1;
const PF_W: u32 = 2;
const PF_R: u32 = 4;

#[derive(Clone, Copy)]
struct Phdr {
    p_type: u32,
    flags: u32,
    offset: u64,
    vaddr: u64,
    filesz: u64,
    memsz: u64,
    align: u64,
}

const fn load(flags: u32, offset: u64, vaddr: u64, filesz: u64, memsz: u64) -> Phdr {
    Phdr {
        p_type: PT_LOAD,
        flags,
        offset,
        vaddr,
        filesz,
        memsz,
        align: PAGE_SIZE,
    }
}

/// A file: ELF header fields that tests tweak, the program headers, and the total file size.
#[derive(Clone)]
struct Elf {
    ident: [u8; 16],
    e_type: u16,
    machine: u16,
    entry: u64,
    phoff: u64,
    phentsize: u16,
    phnum: Option<u16>,
    phdrs: Vec<Phdr>,
    size: usize,
}

impl Elf {
    /// A static ET_EXEC with text, rodata and data+bss, program headers right after the ELF header.
    fn valid() -> Self {
        let mut ident = [0u8; 16];
        ident[..4].copy_from_slice(b"\x7fELF");
        ident[4] = 2; // ELFCLASS64
        ident[5] = 1; // ELFDATA2LSB
        ident[6] = 1; // EV_CURRENT
        Self {
            ident,
            e_type: 2,
            machine: 62,
            entry: 0x401000,
            phoff: 64,
            phentsize: 56,
            phnum: None,
            phdrs: std::vec![
                Phdr {
                    p_type: PT_PHDR,
                    flags: PF_R,
                    offset: 64,
                    vaddr: 0x400040,
                    filesz: 280,
                    memsz: 280,
                    align: 8
                },
                load(PF_R, 0, 0x400000, 0x1000, 0x1000),
                load(PF_R | PF_X, 0x1000, 0x401000, 0x800, 0x800),
                load(PF_R, 0x2000, 0x402000, 0x100, 0x100),
                load(PF_R | PF_W, 0x2f00, 0x403f00, 0x200, 0x5000),
                Phdr {
                    p_type: PT_GNU_STACK,
                    flags: PF_R | PF_W,
                    offset: 0,
                    vaddr: 0,
                    filesz: 0,
                    memsz: 0,
                    align: 16
                },
            ],
            size: 0x3100,
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&self.ident);
        out.extend_from_slice(&self.e_type.to_le_bytes());
        out.extend_from_slice(&self.machine.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&self.entry.to_le_bytes());
        out.extend_from_slice(&self.phoff.to_le_bytes());
        out.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
        out.extend_from_slice(&0u32.to_le_bytes()); // e_flags
        out.extend_from_slice(&64u16.to_le_bytes()); // e_ehsize
        out.extend_from_slice(&self.phentsize.to_le_bytes());
        let phnum = self.phnum.unwrap_or(self.phdrs.len() as u16);
        out.extend_from_slice(&phnum.to_le_bytes());
        out.extend_from_slice(&[0; 6]); // e_shentsize, e_shnum, e_shstrndx
        assert_eq!(out.len(), 64);
        let mut table = Vec::new();
        for p in &self.phdrs {
            table.extend_from_slice(&p.p_type.to_le_bytes());
            table.extend_from_slice(&p.flags.to_le_bytes());
            for field in [p.offset, p.vaddr, p.vaddr, p.filesz, p.memsz, p.align] {
                table.extend_from_slice(&field.to_le_bytes());
            }
        }
        let phoff = self.phoff as usize;
        let end = self.size.max(64);
        out.resize(end.max(phoff.saturating_add(table.len()).min(1 << 20)), 0);
        if let Some(dest) = phoff
            .checked_add(table.len())
            .and_then(|end| out.get_mut(phoff..end))
        {
            dest.copy_from_slice(&table);
        }
        out.truncate(self.size);
        out
    }

    /// Runs both stages the way a loader does: header from the first bytes, then the table it names.
    fn parse(&self) -> Result<Image, ElfError> {
        let bytes = self.bytes();
        let size = bytes.len() as u64;
        let header = FileHeader::parse(&bytes, size)?;
        let start = header.phoff as usize;
        let table = &bytes[start..start + header.phdr_table_len()];
        Image::parse(&header, table, size)
    }
}

fn with(change: impl FnOnce(&mut Elf)) -> Result<Image, ElfError> {
    let mut elf = Elf::valid();
    change(&mut elf);
    elf.parse()
}

#[test]
fn valid_static_executable() {
    let image = Elf::valid().parse().unwrap();
    assert_eq!(image.kind, Kind::Exec);
    assert_eq!(image.entry, 0x401000);
    assert_eq!(image.phnum, 6);
    assert_eq!(image.phdr_vaddr, Some(0x400040));
    assert_eq!(image.segments().len(), 4);
    assert_eq!(image.span(), (0x400000, 0x409000));
    assert_eq!(image.end(), 0x408f00);
    assert!(!image.exec_stack);
    let data = image.segments()[3];
    assert_eq!((data.index, data.prot.as_str()), (4, "rw-"));
    assert_eq!(image.segments()[1].prot.as_str(), "r-x");
    let ranges = image.code_and_data().unwrap();
    assert_eq!((ranges.start_code, ranges.end_code), (0x401000, 0x401800));
    assert_eq!((ranges.start_data, ranges.end_data), (0x403f00, 0x404100));
}

#[test]
fn empty_file_and_other_formats_are_not_elf() {
    assert_eq!(FileHeader::parse(b"", 0), Err(ElfError::NotElf));
    assert_eq!(
        FileHeader::parse(b"#!/bin/sh\necho hi\n", 18),
        Err(ElfError::NotElf)
    );
    assert_eq!(FileHeader::parse(b"\x7fELX", 4), Err(ElfError::NotElf));
}

#[test]
fn truncated_header() {
    let bytes = Elf::valid().bytes();
    for len in [1, 3, 4, 16, 63] {
        assert_eq!(
            FileHeader::parse(&bytes[..len], len as u64),
            Err(ElfError::TooShort),
            "len {len}"
        );
    }
}

#[test]
fn wrong_class_encoding_machine_type() {
    assert_eq!(with(|e| e.ident[4] = 1).unwrap_err(), ElfError::Class32);
    assert_eq!(with(|e| e.ident[4] = 7).unwrap_err(), ElfError::BadClass);
    assert_eq!(with(|e| e.ident[5] = 2).unwrap_err(), ElfError::BigEndian);
    assert_eq!(with(|e| e.ident[5] = 0).unwrap_err(), ElfError::BadEncoding);
    assert_eq!(
        with(|e| e.machine = 183).unwrap_err(),
        ElfError::WrongMachine(183)
    );
    assert_eq!(
        with(|e| e.e_type = 1).unwrap_err(),
        ElfError::NotExecutable(1)
    );
    assert_eq!(
        with(|e| e.e_type = 4).unwrap_err(),
        ElfError::NotExecutable(4)
    );
    assert_eq!(
        with(|e| e.e_type = 0).unwrap_err(),
        ElfError::NotExecutable(0)
    );
    assert!(ElfError::NotExecutable(1).message().contains("ET_REL"));
    assert!(ElfError::NotExecutable(4).message().contains("ET_CORE"));
}

#[test]
fn program_header_table_checks() {
    assert_eq!(
        with(|e| e.phentsize = 32).unwrap_err(),
        ElfError::BadPhentsize(32)
    );
    assert_eq!(
        with(|e| e.phnum = Some(0)).unwrap_err(),
        ElfError::NoProgramHeaders
    );
    assert_eq!(
        with(|e| e.phnum = Some(1171)).unwrap_err(),
        ElfError::TooManyProgramHeaders(1171)
    );
    assert_eq!(
        with(|e| e.phnum = Some(0xffff)).unwrap_err(),
        ElfError::TooManyProgramHeaders(0xffff)
    );
    assert_eq!(
        with(|e| e.phoff = 0x3000).unwrap_err(),
        ElfError::PhdrTableOutsideFile
    );
    assert_eq!(
        with(|e| e.phoff = u64::MAX - 8).unwrap_err(),
        ElfError::PhdrTableOutsideFile
    );
    // The table itself cut short by the end of the file.
    assert_eq!(
        with(|e| e.size = 64 + 56 * 3).unwrap_err(),
        ElfError::PhdrTableOutsideFile
    );
}

#[test]
fn segment_file_range_outside_the_file() {
    assert_eq!(
        with(|e| e.size = 0x3000).unwrap_err(),
        ElfError::SegmentOutsideFile { segment: 4 }
    );
    assert_eq!(
        with(|e| e.phdrs[2].offset = u64::MAX - 0xfff).unwrap_err(),
        ElfError::SegmentOutsideFile { segment: 2 }
    );
}

#[test]
fn memsz_below_filesz() {
    assert_eq!(
        with(|e| e.phdrs[4].memsz = 0x100).unwrap_err(),
        ElfError::MemszBelowFilesz { segment: 4 }
    );
}

#[test]
fn address_and_offset_must_be_congruent() {
    assert_eq!(
        with(|e| e.phdrs[2].vaddr += 8).unwrap_err(),
        ElfError::Misaligned { segment: 2 }
    );
}

#[test]
fn segments_in_kernel_space_or_wrapping() {
    assert_eq!(
        with(|e| {
            e.phdrs[4].vaddr = TASK_SIZE - 0x100;
            e.phdrs[4].offset = 0x2f00;
        })
        .unwrap_err(),
        ElfError::SegmentInKernelSpace { segment: 4 }
    );
    assert_eq!(
        with(|e| {
            e.phdrs[4].vaddr = 0xffff_ffff_ffff_ff00;
            e.phdrs[4].memsz = 0x1000;
        })
        .unwrap_err(),
        ElfError::SegmentWraps { segment: 4 }
    );
}

#[test]
fn overlapping_or_unsorted_segments() {
    assert_eq!(
        with(|e| e.phdrs[3].vaddr = 0x401000).unwrap_err(),
        ElfError::SegmentsOverlap { segment: 3 }
    );
    assert_eq!(
        with(|e| e.phdrs.swap(2, 3)).unwrap_err(),
        ElfError::SegmentsOverlap { segment: 3 }
    );
}

#[test]
fn two_segments_may_share_a_page() {
    // Data starting on the page where rodata ends, at a different file delta.
    let image = with(|e| {
        e.phdrs[4].vaddr = 0x402f00;
    })
    .unwrap();
    assert_eq!(image.segments()[2].end(), 0x402100);
    assert_eq!(image.segments()[3].vaddr, 0x402f00);
}

#[test]
fn no_loadable_segment() {
    assert_eq!(
        with(|e| e.phdrs.retain(|p| p.p_type != PT_LOAD)).unwrap_err(),
        ElfError::NoLoadSegment
    );
}

#[test]
fn entry_must_be_a_user_address() {
    assert_eq!(
        with(|e| e.entry = 0xffff_ffff_8100_0000).unwrap_err(),
        ElfError::EntryOutsideUserSpace
    );
}

#[test]
fn position_independent_image() {
    let image = with(|e| {
        e.e_type = 3;
        for p in &mut e.phdrs {
            p.vaddr = p.vaddr.saturating_sub(0x400000);
        }
        e.phdrs[1].align = 0x20_0000;
        e.entry = 0x1000;
    })
    .unwrap();
    assert_eq!(image.kind, Kind::Dyn);
    assert_eq!(image.span(), (0, 0x9000));
    assert_eq!(image.max_align, 0x20_0000);
    assert_eq!(image.phdr_vaddr, Some(0x40));
}

#[test]
fn position_independent_image_larger_than_user_space() {
    let result = with(|e| {
        e.e_type = 3;
        e.phdrs[1].vaddr = 0;
        e.phdrs[4].vaddr = TASK_SIZE - 0x100 + 0x1000;
        e.phdrs[4].offset = 0x2f00;
        e.phdrs[4].vaddr = page_down(e.phdrs[4].vaddr) + 0xf00;
    });
    assert_eq!(result.unwrap_err(), ElfError::ImageTooLarge);
}

#[test]
fn interpreter_and_stack_flags() {
    let image = with(|e| {
        e.phdrs.insert(
            1,
            Phdr {
                p_type: PT_INTERP,
                flags: PF_R,
                offset: 0x2000,
                vaddr: 0x402000,
                filesz: 28,
                memsz: 28,
                align: 1,
            },
        );
        e.phdrs.last_mut().unwrap().flags |= PF_X;
    })
    .unwrap();
    assert_eq!(
        image.interp,
        Some(InterpRange {
            segment: 1,
            offset: 0x2000,
            len: 28
        })
    );
    assert!(image.exec_stack);
    assert_eq!(
        interpreter_path(b"/lib64/ld-linux-x86-64.so.2\0", 1),
        Ok(&b"/lib64/ld-linux-x86-64.so.2"[..])
    );
    assert_eq!(
        interpreter_path(b"/lib64/ld", 1),
        Err(ElfError::BadInterpreterPath { segment: 1 })
    );
    // The kernel opens what comes before the first NUL.
    assert_eq!(interpreter_path(b"/lib\0/ld\0", 1), Ok(&b"/lib"[..]));
    assert_eq!(
        interpreter_path(b"\0", 1),
        Err(ElfError::BadInterpreterPath { segment: 1 })
    );
}

#[test]
fn interpreter_path_size_and_range() {
    let interp = |filesz: u64, offset: u64| {
        with(move |e| {
            e.phdrs.insert(
                1,
                Phdr {
                    p_type: PT_INTERP,
                    flags: PF_R,
                    offset,
                    vaddr: 0,
                    filesz,
                    memsz: filesz,
                    align: 1,
                },
            )
        })
    };
    assert_eq!(
        interp(1, 0x2000).unwrap_err(),
        ElfError::BadInterpreterPath { segment: 1 }
    );
    assert_eq!(
        interp(5000, 0x2000).unwrap_err(),
        ElfError::BadInterpreterPath { segment: 1 }
    );
    assert_eq!(
        interp(28, 0x30f0).unwrap_err(),
        ElfError::SegmentOutsideFile { segment: 1 }
    );
}

#[test]
fn messages_name_the_segment() {
    let text = std::format!("{}", ElfError::Misaligned { segment: 3 });
    assert!(text.starts_with("program header 3: "), "{text}");
    assert_eq!(
        std::format!("{}", ElfError::WrongMachine(40)),
        "built for another machine (need x86-64), e_machine 40"
    );
}

/// The kernel reads a table at any offset (`e_phoff` 0x44 here, not 8-aligned) and up to 64 KiB.
#[test]
fn unaligned_and_large_program_header_tables() {
    let image = with(|e| {
        e.phoff = 0x44;
        e.phdrs[0].offset = 0x44;
        e.phdrs[0].vaddr = 0x400044;
    })
    .unwrap();
    assert_eq!(image.phdr_vaddr, Some(0x400044));
    assert_eq!(image.segments().len(), 4);
    // 100 headers (5.6 KiB): the loads plus PT_NULL padding, the table past the first page.
    let image = with(|e| {
        e.phoff = 0x2100;
        e.phdrs.remove(0);
        e.phdrs.resize(
            100,
            Phdr {
                p_type: 0,
                flags: 0,
                offset: 0,
                vaddr: 0,
                filesz: 0,
                memsz: 0,
                align: 0,
            },
        );
        e.size = 0x2100 + 100 * 56;
        e.phdrs[3].filesz = 0x200;
    })
    .unwrap();
    assert_eq!((image.phnum, image.segments().len()), (100, 4));
}

#[test]
fn more_loadable_segments_than_supported() {
    let err = with(|e| {
        e.phoff = 0x2000;
        e.phdrs.clear();
        for i in 0..(MAX_SEGMENTS as u64 + 1) {
            e.phdrs
                .push(load(PF_R, 0, 0x400000 + i * 0x1000, 0x10, 0x10));
        }
        e.size = 0x2000 + e.phdrs.len() * 56;
    })
    .unwrap_err();
    assert_eq!(err, ElfError::TooManySegments);
}

/// As `load_elf_binary`: only the last byte of the `PT_INTERP` range must be NUL.
#[test]
fn interpreter_paths_may_have_nul_padding() {
    assert_eq!(interpreter_path(b"/lib/ld.so\0", 1), Ok(&b"/lib/ld.so"[..]));
    assert_eq!(interpreter_path(b"/tmp/ld\0\0\0\0", 1), Ok(&b"/tmp/ld"[..]));
    assert_eq!(interpreter_path(b"/a\0junk\0", 1), Ok(&b"/a"[..]));
    for bad in [&b"/lib/ld.so"[..], b"\0\0", b"\0", b""] {
        assert_eq!(
            interpreter_path(bad, 1),
            Err(ElfError::BadInterpreterPath { segment: 1 })
        );
    }
}

mod plan {
    use super::*;
    use crate::plan::{Piece, SharedPage, Source};

    const R: Prot = Prot {
        read: true,
        write: false,
        exec: false,
    };
    const RX: Prot = Prot {
        read: true,
        write: false,
        exec: true,
    };
    const RW: Prot = Prot {
        read: true,
        write: true,
        exec: false,
    };

    fn piece(segment: u16, start: u64, end: u64, prot: Prot, source: Source) -> Piece {
        Piece {
            segment,
            start,
            end,
            prot,
            source,
        }
    }
    fn file(offset: u64, zero_from: Option<u64>) -> Source {
        Source::File { offset, zero_from }
    }

    #[test]
    fn pieces_of_a_static_executable() {
        let plan = LoadPlan::of(&Elf::valid().parse().unwrap());
        assert_eq!(
            plan.pieces(),
            [
                piece(1, 0x400000, 0x401000, R, file(0, None)),
                piece(2, 0x401000, 0x402000, RX, file(0x1000, None)),
                piece(3, 0x402000, 0x403000, R, file(0x2000, None)),
                // Data: file pages to page_up(0x404100), the rest of that page zeroed; then bss.
                piece(4, 0x403000, 0x405000, RW, file(0x2000, Some(0x404100))),
                piece(4, 0x405000, 0x409000, RW, Source::Anonymous),
            ]
        );
        assert!(plan.shared_pages().is_empty());
        assert!(plan.holes().is_empty());
        assert_eq!(plan.lazy_pieces().count(), 5);
    }

    #[test]
    fn a_read_only_segment_with_a_bss_keeps_its_last_file_page() {
        let image = with(|e| {
            e.phdrs[2].filesz = 0x7ff; // text one byte short of its memsz
        })
        .unwrap();
        let plan = LoadPlan::of(&image);
        assert_eq!(
            plan.pieces()[1],
            piece(2, 0x401000, 0x402000, RX, file(0x1000, None))
        );
    }

    #[test]
    fn shared_first_pages_and_holes() {
        let image = with(|e| {
            // rodata starts inside text's last page; data moves up, leaving a hole.
            e.phdrs[3] = load(PF_R, 0x1800, 0x401800, 0x100, 0x100);
            e.phdrs[4] = load(PF_R | PF_W, 0x2f00, 0x405f00, 0x200, 0x3000);
        })
        .unwrap();
        let plan = LoadPlan::of(&image);
        assert_eq!(
            plan.shared_pages(),
            [SharedPage {
                page: 0x401000,
                segment: 2
            }]
        );
        assert_eq!(plan.holes(), [(0x402000, 0x405000)]);
        // A pager leaves the shared page alone: text (one page, the shared one) and rodata have nothing
        // lazy left; the first page and data all of theirs.
        let lazy: Vec<_> = plan.lazy_pieces().collect();
        assert_eq!(
            lazy,
            [
                piece(1, 0x400000, 0x401000, R, file(0, None)),
                piece(4, 0x405000, 0x407000, RW, file(0x2000, Some(0x406100))),
                piece(4, 0x407000, 0x409000, RW, Source::Anonymous),
            ]
        );
        // A piece that starts on a shared page loses it, offset moved along.
        let image = with(|e| {
            e.phdrs[3] = load(PF_R, 0x1800, 0x401800, 0x1100, 0x1100);
        })
        .unwrap();
        let lazy: Vec<_> = LoadPlan::of(&image).lazy_pieces().collect();
        assert_eq!(lazy[1], piece(3, 0x402000, 0x403000, R, file(0x2000, None)));
    }
}
