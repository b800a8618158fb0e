//! The ELF-validation fuzz harness: reads arbitrary files with the loaders' own reading code
//! (`uexec_load::file::read_image` and `read_interpreter`, what `ElfFile::open` and
//! `ElfFile::interpreter` run on a descriptor), through an in-memory [`uexec_load::file::Source`], and
//! asserts the invariants the mapping code relies on for every file that is accepted.
//!
//! Used by the libFuzzer target `elf_headers` and by the `quickcheck` binary, which feeds it
//! ELF-shaped inputs from a small PRNG (see [`generate`]) on any toolchain.

use uexec_elf::{
    page_down, page_up, FileHeader, Image, Kind, MAX_INTERP_PATH, MAX_PHDR_TABLE, MAX_PHNUM,
    MAX_SEGMENTS, PAGE_SIZE, PHDR_SIZE, TASK_SIZE,
};
use uexec_load::file::{read_image, read_interpreter, FIRST_READ};


const PT_LOAD: u32 = 1;
const PT_INTERP: u32 = 3;
const PT_GNU_STACK: u32 = 0x6474_e551;

/// `pread` on a file whose first bytes are `file` and whose size is `size` (at least
/// `file.len()`; the rest reads as zeros, as a sparse file does): fills as much of `buf` as the
/// file holds from `offset` and returns how many bytes that was.
fn pread(file: &[u8], size: u64, offset: u64, buf: &mut [u8]) -> usize {
    let size = size.max(file.len() as u64);
    let available = size.saturating_sub(offset);
    let n = usize::try_from(available)
        .unwrap_or(usize::MAX)
        .min(buf.len());
    for (i, byte) in buf.iter_mut().take(n).enumerate() {
        let at = offset + i as u64;
        *byte = usize::try_from(at)
            .ok()
            .and_then(|at| file.get(at))
            .copied()
            .unwrap_or(0);
    }
    n
}

/// A file of `size` bytes whose first bytes are `file` (the rest reads as zeros), as the loader's
/// own reading code ([`uexec_load::file`]) sees it.
struct InMemory<'a> {
    file: &'a [u8],
    size: u64,
}

impl uexec_load::file::Source for InMemory<'_> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize, rustix::io::Errno> {
        Ok(pread(self.file, self.size, offset, buf))
    }
}

/// Validates `file` (a file of `size` bytes, `size >= file.len()`) with the loaders' own reading code
/// (`uexec_load::file::read_image` and `read_interpreter`, which `ElfFile::open` and
/// `ElfFile::interpreter` call) and panics if an accepted file breaks an invariant the loader relies
/// on. Rejections are fine. Returns whether the file was accepted.
pub fn check_file(file: &[u8], size: u64) -> bool {
    let size = size.max(file.len() as u64);
    let src = InMemory { file, size };
    let mut first = [0u8; FIRST_READ];
    let mut table = [0u8; MAX_PHDR_TABLE];
    let Ok(image) = read_image(&src, size, &mut first, &mut table) else {
        return false;
    };
    // The checks below re-derive the header and the raw table from the bytes on their own.
    let got = pread(file, size, 0, &mut first);
    let header = FileHeader::parse(&first[..got], size).expect("an accepted file's header parses");
    check_header(&header, size);
    assert!(!image.segments().is_empty() && image.segments().len() <= MAX_SEGMENTS);

    // The same input gives the same answer (nothing depends on uninitialised or global state).
    let mut first_again = [0u8; FIRST_READ];
    let mut table_again = [0xa5u8; MAX_PHDR_TABLE];
    let again = read_image(&src, size, &mut first_again, &mut table_again)
        .expect("the same file is accepted twice");
    assert_eq!(again.segments(), image.segments());

    let table_len = header.phdr_table_len();
    let mut raw = [0u8; MAX_PHDR_TABLE];
    let raw = &mut raw[..table_len];
    let got = pread(file, size, header.phoff, raw);
    assert_eq!(
        got, table_len,
        "an accepted header's table lies inside the file"
    );
    check_image(&header, raw, &image, size);
    check_plan(&image, size);

    // The interpreter's path: must not panic either way; an accepted one is a NUL-terminated path
    // at the start of a PT_INTERP range that lies inside the file.
    let mut buf = [0u8; MAX_INTERP_PATH];
    let path_len = read_interpreter(&src, &image, &mut buf)
        .ok()
        .flatten()
        .map(|path| path.to_bytes().len());
    if let Some(len) = path_len {
        let range = image.interp.expect("a path was read, so there is a PT_INTERP");
        assert!(range.offset + range.len <= size);
        let n = usize::try_from(range.len).expect("the range fits the buffer");
        // The path is what precedes the first NUL; the range's last byte is NUL.
        assert!(len > 0 && len < n && n <= MAX_INTERP_PATH);
        assert!(buf[len] == 0 && buf[n - 1] == 0);
        assert!(!buf[..len].contains(&0));
    }
    true
}

fn check_header(header: &FileHeader, size: u64) {
    assert!(header.phnum >= 1 && usize::from(header.phnum) <= MAX_PHNUM);
    assert_eq!(
        header.phdr_table_len(),
        usize::from(header.phnum) * PHDR_SIZE
    );
    assert!(header.phdr_table_len() <= MAX_PHDR_TABLE);
    let end = header
        .phoff
        .checked_add(header.phdr_table_len() as u64)
        .expect("phdr table end overflows");
    assert!(
        end <= size,
        "phdr table [{:#x}, {end:#x}) outside a file of {size:#x} bytes",
        header.phoff
    );
}

/// The `p_type` and fields of program header `index` of `table`, read independently of `uexec_elf`.
fn raw_phdr(table: &[u8], index: usize) -> (u32, [u64; 6]) {
    let at = index * PHDR_SIZE;
    let u32_at = |o: usize| u32::from_le_bytes(table[at + o..at + o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(table[at + o..at + o + 8].try_into().unwrap());
    // p_type, p_flags, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_align
    (
        u32_at(0),
        [
            u64_at(8),
            u64_at(16),
            u64_at(32),
            u64_at(40),
            u64_at(48),
            u64::from(u32_at(4)),
        ],
    )
}

fn check_image(header: &FileHeader, table: &[u8], image: &Image, size: u64) {
    let segments = image.segments();
    assert_eq!(image.kind, header.kind);
    assert_eq!(image.entry, header.entry);
    assert_eq!(image.phnum, header.phnum);
    assert!(!segments.is_empty(), "an accepted image has a PT_LOAD");

    // Every PT_LOAD header is one segment, in table order, with its fields unchanged.
    let loads: Vec<(usize, [u64; 6])> = (0..usize::from(header.phnum))
        .map(|i| (i, raw_phdr(table, i)))
        .filter(|(_, (p_type, _))| *p_type == PT_LOAD)
        .map(|(i, (_, f))| (i, f))
        .collect();
    assert_eq!(
        loads.len(),
        segments.len(),
        "every PT_LOAD becomes a segment"
    );
    for (s, (index, [offset, vaddr, filesz, memsz, _align, flags])) in segments.iter().zip(&loads) {
        assert_eq!(usize::from(s.index), *index);
        assert_eq!(
            (s.offset, s.vaddr, s.filesz, s.memsz),
            (*offset, *vaddr, *filesz, *memsz)
        );
        assert_eq!(
            (s.prot.read, s.prot.write, s.prot.exec),
            (flags & 4 != 0, flags & 2 != 0, flags & 1 != 0)
        );
    }

    for s in segments {
        let file_end = s
            .offset
            .checked_add(s.filesz)
            .expect("segment file end overflows");
        assert!(
            file_end <= size,
            "segment {} file range ends at {file_end:#x} past {size:#x}",
            s.index
        );
        assert!(s.memsz >= s.filesz, "segment {}: memsz < filesz", s.index);
        assert_eq!(
            s.vaddr % PAGE_SIZE,
            s.offset % PAGE_SIZE,
            "segment {}: vaddr and offset disagree",
            s.index
        );
        let end = s.vaddr.checked_add(s.memsz).expect("segment end overflows");
        let end_page = page_up(end).expect("segment end rounds up past the address space");
        // The mapper's own arithmetic: the file part starts at page_down(offset), mapped at
        // page_down(vaddr), and the file bytes end inside the segment.
        assert!(
            page_down(s.offset) <= s.offset
                && s.offset - page_down(s.offset) == s.vaddr - page_down(s.vaddr)
        );
        assert_eq!(s.end(), end);
        assert!(s.file_end() <= s.end());
        if image.kind == Kind::Exec {
            assert!(
                end_page <= TASK_SIZE,
                "ET_EXEC segment {} ends at {end_page:#x} past TASK_SIZE",
                s.index
            );
        }
    }
    for pair in segments.windows(2) {
        assert!(pair[0].vaddr <= pair[1].vaddr, "segments not sorted");
        assert!(
            pair[0].end() <= pair[1].vaddr,
            "segments {} and {} overlap",
            pair[0].index,
            pair[1].index
        );
    }

    let (low, high) = image.span();
    assert!(high >= low, "span [{low:#x}, {high:#x}) inverted");
    assert_eq!(low % PAGE_SIZE, 0);
    assert_eq!(high % PAGE_SIZE, 0);
    assert!(low <= segments[0].vaddr && segments.last().unwrap().end() <= high);
    match image.kind {
        Kind::Exec => {
            assert!(high <= TASK_SIZE);
            assert!(image.entry < TASK_SIZE);
        }
        Kind::Dyn => assert!(high - low <= TASK_SIZE),
    }
    assert_eq!(image.end(), segments.last().unwrap().end());

    assert!(
        image.max_align.is_power_of_two()
            && image.max_align >= PAGE_SIZE
            && image.max_align <= TASK_SIZE / 4
    );
    if let Some(phdr) = image.phdr_vaddr {
        assert!(
            segments
                .iter()
                .any(|s| s.vaddr <= phdr && phdr - s.vaddr < s.filesz),
            "AT_PHDR {phdr:#x} outside every segment's file bytes"
        );
    }
    if let Some(interp) = image.interp {
        assert!(interp.len >= 2 && interp.len <= MAX_INTERP_PATH as u64);
        assert!(interp
            .offset
            .checked_add(interp.len)
            .is_some_and(|end| end <= size));
        assert_eq!(raw_phdr(table, usize::from(interp.segment)).0, PT_INTERP);
    }
    if let Some(cd) = image.code_and_data() {
        assert!(cd.start_code < cd.end_code);
        assert!(cd.end_code <= high && cd.end_data <= high);
    }
}

/// xorshift64*: a small, fixed-seed PRNG, enough to vary inputs reproducibly.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (`n > 0`), near enough.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }
}

/// A value a field might hold: mostly plausible (small, page multiples, near the edges the
/// validator checks), sometimes anything.
fn interesting(rng: &mut Rng, near: u64) -> u64 {
    const EDGES: &[u64] = &[
        0,
        1,
        PAGE_SIZE - 1,
        PAGE_SIZE,
        PAGE_SIZE + 1,
        0x40_0000,
        TASK_SIZE - PAGE_SIZE,
        TASK_SIZE - 1,
        TASK_SIZE,
        TASK_SIZE + 1,
        1 << 47,
        u64::MAX / 2,
        u64::MAX - PAGE_SIZE,
        u64::MAX - PAGE_SIZE + 1,
        u64::MAX - 1,
        u64::MAX,
    ];
    match rng.below(8) {
        0 => EDGES[rng.below(EDGES.len() as u64) as usize],
        1 => rng.next_u64(),
        2 => near.wrapping_add(rng.below(3)).wrapping_sub(1),
        3 => near.wrapping_add(rng.below(4) * PAGE_SIZE),
        _ => near.wrapping_add(rng.below(0x4000)),
    }
}

/// An ELF-shaped file: a well-formed x86-64 header and program-header table with fields drawn
/// from [`interesting`], then a few random corruptions; and the size the file claims (at least
/// its length). Fully random bytes would almost never get past the magic number.
pub fn generate(rng: &mut Rng) -> (Vec<u8>, u64) {
    let phnum = if rng.chance(16) {
        rng.below(80)
    } else {
        1 + rng.below(8)
    };
    let phoff = match rng.below(6) {
        0 => rng.below(0x2000),
        1 => interesting(rng, 64),
        _ => 64,
    };
    let body = match rng.below(4) {
        0 => rng.below(64),
        1 => 0x1000 + rng.below(0x3000),
        _ => 64 + phnum * PHDR_SIZE as u64 + rng.below(0x200),
    };
    let len = usize::try_from(body.min(0x6000)).unwrap();
    let mut file = vec![0u8; len];
    let put = |file: &mut Vec<u8>, at: u64, bytes: &[u8]| {
        for (i, b) in bytes.iter().enumerate() {
            if let Some(slot) = usize::try_from(at)
                .ok()
                .and_then(|a| a.checked_add(i))
                .and_then(|a| file.get_mut(a))
            {
                *slot = *b;
            }
        }
    };
    // e_ident, e_type, e_machine, e_version, e_entry, e_phoff, e_shoff, e_flags, e_ehsize,
    // e_phentsize, e_phnum.
    put(&mut file, 0, b"\x7fELF\x02\x01\x01");
    let e_type: u16 = if rng.chance(2) { 2 } else { 3 };
    put(&mut file, 16, &e_type.to_le_bytes());
    put(&mut file, 18, &62u16.to_le_bytes());
    put(&mut file, 20, &1u32.to_le_bytes());
    put(&mut file, 24, &interesting(rng, 0x40_1000).to_le_bytes());
    put(&mut file, 32, &phoff.to_le_bytes());
    put(&mut file, 52, &64u16.to_le_bytes());
    let phentsize: u16 = if rng.chance(32) {
        rng.below(128) as u16
    } else {
        PHDR_SIZE as u16
    };
    put(&mut file, 54, &phentsize.to_le_bytes());
    put(&mut file, 56, &(phnum as u16).to_le_bytes());

    // Segments laid out one after another (mostly valid), fields sometimes pushed to the edges.
    let base = if e_type == 2 { 0x40_0000 } else { 0 };
    let mut vaddr: u64 = base + rng.below(4) * PAGE_SIZE;
    let mut offset: u64 = 0;
    for i in 0..phnum {
        let p_type = match rng.below(10) {
            0 => PT_INTERP,
            1 => PT_GNU_STACK,
            2 => rng.below(8) as u32,
            _ => PT_LOAD,
        };
        // Mostly inside a file of `len` bytes (or of the larger size a sparse tail may give).
        let filesz = match rng.below(8) {
            0 => interesting(rng, 0),
            1 => rng.below(0x3000),
            _ => rng.below(len as u64 / 2 + 1),
        };
        let memsz = match rng.below(8) {
            0 => interesting(rng, filesz),
            1 => filesz,
            _ => filesz.wrapping_add(rng.below(0x8000)),
        };
        let this_vaddr = if rng.chance(8) {
            interesting(rng, vaddr)
        } else {
            vaddr
        };
        let this_offset = if rng.chance(8) {
            interesting(rng, offset)
        } else {
            offset
        };
        let align = if rng.chance(4) {
            1u64 << rng.below(64)
        } else {
            PAGE_SIZE
        };
        let mut phdr = Vec::with_capacity(PHDR_SIZE);
        phdr.extend_from_slice(&p_type.to_le_bytes());
        phdr.extend_from_slice(&(rng.below(8) as u32).to_le_bytes());
        for v in [this_offset, this_vaddr, this_vaddr, filesz, memsz, align] {
            phdr.extend_from_slice(&v.to_le_bytes());
        }
        put(&mut file, phoff.wrapping_add(i * PHDR_SIZE as u64), &phdr);
        vaddr = page_up(this_vaddr.wrapping_add(memsz))
            .unwrap_or(0)
            .wrapping_add(PAGE_SIZE)
            + this_offset % PAGE_SIZE;
        offset = this_offset.wrapping_add(filesz);
        vaddr = page_down(vaddr) + offset % PAGE_SIZE;
    }
    // An interpreter path somewhere, sometimes.
    if rng.chance(4) && file.len() > 0x200 {
        let at = 0x100 + rng.below(0x80) as usize;
        let path: &[u8] = if rng.chance(2) {
            b"/lib64/ld-linux-x86-64.so.2\0"
        } else {
            b"/x"
        };
        put(&mut file, at as u64, path);
    }
    // Corruptions, in one input in two: flip bytes, truncate.
    let flips = if rng.chance(2) { 0 } else { 1 + rng.below(4) };
    for _ in 0..flips {
        if !file.is_empty() {
            let at = rng.below(file.len() as u64) as usize;
            file[at] ^= 1 << rng.below(8);
        }
    }
    if rng.chance(16) {
        file.truncate(rng.below(file.len() as u64 + 1) as usize);
    }
    let size = match rng.below(4) {
        0 => file.len() as u64 + interesting(rng, 0) % (1 << 40),
        _ => file.len() as u64,
    };
    (file, size)
}

/// The load plan of an accepted image: page-aligned pieces inside the span, in order, never
/// overlapping, each inside its segment's pages; file pieces inside the file's pages; a zeroed tail
/// only in a writable segment's last file page; lazy pieces a subset that avoids every shared page.
fn check_plan(image: &Image, size: u64) {
    let plan = uexec_elf::LoadPlan::of(image);
    let (low, high) = image.span();
    let mut last_end = low;
    for piece in plan.pieces() {
        assert!(
            piece.start % PAGE_SIZE == 0 && piece.end % PAGE_SIZE == 0 && piece.start < piece.end
        );
        assert!(piece.start >= low && piece.end <= high);
        // Only a shared page may be covered twice (the last of one segment, the first of the next).
        assert!(
            piece.start >= last_end || plan.shared_pages().iter().any(|s| s.page == piece.start),
            "pieces overlap at {:#x}",
            piece.start
        );
        last_end = last_end.max(piece.end);
        let segment = image
            .segments()
            .iter()
            .find(|s| s.index == piece.segment)
            .expect("a piece of a known segment");
        assert!(piece.start >= page_down(segment.vaddr));
        assert!(piece.end <= page_up(segment.end()).expect("checked"));
        if let uexec_elf::plan::Source::File { offset, zero_from } = piece.source {
            assert_eq!(offset % PAGE_SIZE, 0);
            assert!(offset <= size, "file piece past the file");
            if let Some(z) = zero_from {
                assert!(segment.prot.write && z == segment.file_end() && z < piece.end);
            }
        }
    }
    for lazy in plan.lazy_pieces() {
        assert!(plan
            .pieces()
            .iter()
            .any(|p| p.segment == lazy.segment && p.start <= lazy.start && lazy.end <= p.end));
        for shared in plan.shared_pages() {
            assert!(shared.page < lazy.start || shared.page >= lazy.end);
        }
    }
}
