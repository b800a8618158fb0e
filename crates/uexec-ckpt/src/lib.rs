//! The uexec checkpoint image format (docs/checkpoint.md): its layout constants, the checksum, the
//! fixed-size pieces a writer without an allocator emits, and [`parse`], a pure validator that turns
//! any byte slice into either a checked [`Image`] or an [`Error`], without panicking and without
//! `unsafe`.
//!
//! An image is a 32-byte header followed by records. Every record is
//! `tag: u32, reserved: u32 (0), len: u64, payload[len], pad to 8, checksum: u64` where the checksum is
//! [`Checksum`] over the payload (padding excluded). The last record is [`tag::END`]; nothing may follow it.
//! All integers are little-endian.
#![no_std]
#![forbid(unsafe_code)]

/// `"UEXECKPT"`.
pub const MAGIC: [u8; 8] = *b"UEXECKPT";
/// The format version this crate reads and writes.
pub const VERSION: u32 = 1;
/// `EM_X86_64`.
pub const MACHINE_X86_64: u32 = 62;
/// The page size images are written with on x86-64.
pub const PAGE_SIZE: u64 = 4096;
/// Size of the image header.
pub const HEADER_LEN: usize = 32;
/// Size of a record's head (tag, reserved, len).
pub const RECORD_HEAD_LEN: usize = 16;
/// Number of signals a [`tag::SIGNALS`] record describes (1..=64).
pub const NSIG: usize = 64;
/// Number of general registers in `ucontext_t.uc_mcontext.gregs` (`NGREG`).
pub const NGREG: usize = 23;
/// Largest XSAVE area accepted (AMX tiles make it about 11 KiB).
pub const MAX_XSAVE: usize = 16384;
/// Largest path accepted in a record.
pub const MAX_PATH: usize = 4096;
/// Largest saved auxv (the kernel's `saved_auxv` holds fewer bytes).
pub const MAX_AUXV: usize = 1024;

/// Record tags.
pub mod tag {
    pub const REGION: u32 = 1;
    pub const REGISTERS: u32 = 2;
    pub const SIGNALS: u32 = 3;
    pub const MM: u32 = 4;
    pub const RSEQ: u32 = 5;
    pub const CWD: u32 = 6;
    pub const FILE: u32 = 7;
    pub const END: u32 = 0xffff_ffff;
}

/// Region flags.
pub mod flags {
    /// A `MAP_SHARED` mapping (restored as private: see docs/checkpoint.md).
    pub const SHARED: u32 = 1;
    /// Backed by a file (the path and offset are informational; contents are always stored).
    pub const FILE: u32 = 2;
    /// The vDSO: no contents, the restarting kernel's own is moved here.
    pub const VDSO: u32 = 4;
    /// A vvar page group (`[vvar]`, `[vvar_vclock]`): no contents, moved with the vDSO.
    pub const VVAR: u32 = 8;
    /// `[heap]`.
    pub const HEAP: u32 = 16;
    /// `[stack]`.
    pub const STACK: u32 = 32;
    /// Every flag this version knows.
    pub const KNOWN: u32 = SHARED | FILE | VDSO | VVAR | HEAP | STACK;
}

/// Protection bits, as `PROT_*`.
pub mod prot {
    pub const READ: u32 = 1;
    pub const WRITE: u32 = 2;
    pub const EXEC: u32 = 4;
}

/// The checksum of every record, streaming. FNV-1a, which version 1 drafts used, handles a byte per
/// multiply and ran at under 1 GB/s here, slower than copying the image; this one keeps four
/// independent lanes of 64-bit words (each word multiplied, added, rotated and multiplied again), so a
/// gigabyte region costs about what reading it does. Bytes past the last whole 32-byte block, the
/// lanes and the length are folded into one value at the end, which is then mixed so that every input
/// bit reaches every output bit. Any change of one word changes its lane (each step is a bijection of
/// the lane's state); it is meant to catch corruption, not tampering.
#[derive(Copy, Clone, Debug)]
pub struct Checksum {
    lanes: [u64; 4],
    pending: [u8; 32],
    pending_len: usize,
    total: u64,
}

const P1: u64 = 0x9e37_79b1_85eb_ca87;
const P2: u64 = 0xc2b2_ae3d_27d4_eb4f;
const P3: u64 = 0x1656_67b1_9e37_79f9;
const P4: u64 = 0x85eb_ca77_c2b2_ae63;

/// One lane step.
const fn round(lane: u64, word: u64) -> u64 {
    lane.wrapping_add(word.wrapping_mul(P2))
        .rotate_left(31)
        .wrapping_mul(P1)
}

impl Default for Checksum {
    fn default() -> Self {
        Self::new()
    }
}

impl Checksum {
    pub const fn new() -> Self {
        Self {
            lanes: [P1.wrapping_add(P2), P2, 0, 0u64.wrapping_sub(P1)],
            pending: [0; 32],
            pending_len: 0,
            total: 0,
        }
    }

    fn block(&mut self, block: &[u8]) {
        for (lane, word) in self.lanes.iter_mut().zip(block.chunks_exact(8)) {
            let mut w = [0u8; 8];
            w.copy_from_slice(word);
            *lane = round(*lane, u64::from_le_bytes(w));
        }
    }

    pub fn update(&mut self, mut bytes: &[u8]) {
        self.total = self.total.wrapping_add(bytes.len() as u64);
        if self.pending_len > 0 {
            let take = (32 - self.pending_len).min(bytes.len());
            let (now, rest) = bytes.split_at(take);
            if let Some(dest) = self
                .pending
                .get_mut(self.pending_len..self.pending_len + take)
            {
                dest.copy_from_slice(now);
            }
            self.pending_len += take;
            bytes = rest;
            if self.pending_len < 32 {
                return;
            }
            let block = self.pending;
            self.block(&block);
            self.pending_len = 0;
        }
        let mut blocks = bytes.chunks_exact(32);
        for block in &mut blocks {
            self.block(block);
        }
        let tail = blocks.remainder();
        if let Some(dest) = self.pending.get_mut(..tail.len()) {
            dest.copy_from_slice(tail);
        }
        self.pending_len = tail.len();
    }

    pub fn finish(&self) -> u64 {
        let mut h = self.total.wrapping_mul(P4);
        for &lane in &self.lanes {
            h = (h ^ round(0, lane)).wrapping_mul(P1).wrapping_add(P4);
        }
        for &b in self.pending.get(..self.pending_len).unwrap_or(&[]) {
            h = (h ^ u64::from(b).wrapping_mul(P3))
                .rotate_left(11)
                .wrapping_mul(P1);
        }
        h ^= h >> 33;
        h = h.wrapping_mul(P2);
        h ^= h >> 29;
        h = h.wrapping_mul(P3);
        h ^ (h >> 32)
    }
}

/// The checksum of `bytes`.
pub fn checksum(bytes: &[u8]) -> u64 {
    let mut h = Checksum::new();
    h.update(bytes);
    h.finish()
}

/// The image header's bytes.
pub fn header(page_size: u32, ckpt_signal: u32) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    let mut w = Put::new(&mut h);
    w.bytes(&MAGIC);
    w.u32(VERSION);
    w.u32(MACHINE_X86_64);
    w.u32(page_size);
    w.u32(ckpt_signal);
    let sum = checksum(w.written());
    w.u64(sum);
    h
}

/// A record's head, with `len` the payload's length.
pub fn record_head(tag: u32, len: u64) -> [u8; RECORD_HEAD_LEN] {
    let mut h = [0u8; RECORD_HEAD_LEN];
    let mut w = Put::new(&mut h);
    w.u32(tag);
    w.u32(0);
    w.u64(len);
    h
}

/// Padding after a payload of `len` bytes.
pub const fn pad(len: u64) -> u64 {
    (8 - len % 8) % 8
}

/// A little-endian writer into a fixed buffer; writes past its end are dropped (and
/// [`Put::overflowed`] says so).
pub struct Put<'a> {
    buf: &'a mut [u8],
    len: usize,
    overflow: bool,
}

impl<'a> Put<'a> {
    pub fn new(buf: &'a mut [u8]) -> Self {
        Self {
            buf,
            len: 0,
            overflow: false,
        }
    }
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        match self.buf.get_mut(self.len..self.len.saturating_add(b.len())) {
            Some(dest) => {
                dest.copy_from_slice(b);
                self.len += b.len();
            }
            None => self.overflow = true,
        }
        self
    }
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.bytes(&v.to_le_bytes())
    }
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.bytes(&v.to_le_bytes())
    }
    /// Zeros up to the next multiple of 8.
    pub fn align8(&mut self) -> &mut Self {
        let n = pad(self.len as u64) as usize;
        self.bytes(&[0u8; 8][..n])
    }
    pub fn written(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn overflowed(&self) -> bool {
        self.overflow
    }
}

/// Why an image was refused.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// Shorter than its header or a record says: the image was cut off.
    Truncated,
    /// Not a uexec image.
    BadMagic,
    /// Written by another format version.
    WrongVersion(u32),
    /// Written on another machine.
    WrongMachine(u32),
    /// Written with another page size.
    WrongPageSize(u32),
    /// A checksum does not match: the header, or the record at this offset.
    Checksum(u64),
    /// A record is malformed (bad length, unknown flag, run outside its region...), at this offset.
    Malformed(u64),
    /// Regions overlap, are out of order, or are not page-aligned, at this offset.
    BadRegion(u64),
    /// A record that must appear once is missing (its tag).
    Missing(u32),
    /// A record that may appear once appears again, at this offset.
    Duplicate(u64),
    /// Bytes after the end record.
    TrailingData,
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Error::Truncated => f.write_str("truncated image"),
            Error::BadMagic => f.write_str("not a uexec checkpoint image"),
            Error::WrongVersion(v) => write!(f, "image format version {v}, expected {VERSION}"),
            Error::WrongMachine(m) => write!(
                f,
                "image for machine {m}, this is x86-64 ({MACHINE_X86_64})"
            ),
            Error::WrongPageSize(p) => write!(f, "image page size {p}, expected {PAGE_SIZE}"),
            Error::Checksum(0) => f.write_str("corrupted image: header checksum mismatch"),
            Error::Checksum(at) => write!(
                f,
                "corrupted image: checksum mismatch in the record at offset {at}"
            ),
            Error::Malformed(at) => write!(f, "malformed record at offset {at}"),
            Error::BadRegion(at) => write!(
                f,
                "bad region at offset {at} (misaligned, out of order or overlapping)"
            ),
            Error::Missing(t) => write!(f, "image lacks a record of type {t}"),
            Error::Duplicate(at) => write!(f, "repeated record at offset {at}"),
            Error::TrailingData => f.write_str("data after the end record"),
        }
    }
}

/// A little-endian reader over a slice; every read checks bounds.
#[derive(Copy, Clone, Debug)]
struct Get<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Get<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf, at: 0 }
    }
    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let b = self.buf.get(self.at..end)?;
        self.at = end;
        Some(b)
    }
    fn u32(&mut self) -> Option<u32> {
        let b = self.bytes(4)?;
        Some(u32::from_le_bytes(b.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        let b = self.bytes(8)?;
        Some(u64::from_le_bytes(b.try_into().ok()?))
    }
    fn rest(&self) -> &'a [u8] {
        self.buf.get(self.at..).unwrap_or(&[])
    }
    fn align8(&mut self) -> Option<()> {
        self.bytes(pad(self.at as u64) as usize).map(|_| ())
    }
}

/// A checked image.
#[derive(Copy, Clone, Debug)]
pub struct Image<'a> {
    pub page_size: u32,
    /// The checkpoint signal the image was taken with.
    pub ckpt_signal: u32,
    /// The records (validated), header excluded.
    records: &'a [u8],
    pub registers: Registers<'a>,
    pub signals: Signals<'a>,
    pub mm: Mm<'a>,
    pub rseq: Option<Rseq>,
    pub cwd: &'a [u8],
}

/// One stored run of pages: `data` is `data.len() / page_size` pages starting at page `first` of its
/// region.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Run<'a> {
    pub first: u64,
    pub data: &'a [u8],
    /// Where `data` starts in the image file: a multiple of the page size, so that a run can be
    /// mapped from the file (`urestart --lazy`).
    pub file_offset: u64,
}

/// A region record.
#[derive(Copy, Clone, Debug)]
pub struct Region<'a> {
    pub start: u64,
    pub end: u64,
    pub prot: u32,
    pub flags: u32,
    pub offset: u64,
    /// The file or pseudo-file name from /proc/self/maps (may be empty).
    pub path: &'a [u8],
    runs: &'a [u8],
    /// Offset in the image file of `runs[0]`.
    runs_at: u64,
    page_size: u64,
}

impl<'a> Region<'a> {
    /// The stored runs of pages; pages not in a run are zero.
    pub fn runs(&self) -> Runs<'a> {
        Runs {
            get: Get::new(self.runs),
            page_size: self.page_size,
            at: self.runs_at,
        }
    }
    /// Bytes stored for the region.
    pub fn stored(&self) -> u64 {
        self.runs().map(|r| r.data.len() as u64).sum()
    }
}

/// Iterator over a region's runs.
#[derive(Clone, Debug)]
pub struct Runs<'a> {
    get: Get<'a>,
    page_size: u64,
    /// Offset in the image file of the start of `get`'s slice.
    at: u64,
}

/// Zero bytes between a run's head and its data, which starts at a page boundary of the file.
fn run_padding(file_offset: u64, page_size: u64) -> u64 {
    (page_size - file_offset % page_size) % page_size
}

impl<'a> Iterator for Runs<'a> {
    type Item = Run<'a>;
    fn next(&mut self) -> Option<Run<'a>> {
        let first = self.get.u64()?;
        let count = self.get.u64()?;
        let here = self.at + self.get.at as u64;
        self.get.bytes(run_padding(here, self.page_size) as usize)?;
        let file_offset = self.at + self.get.at as u64;
        let len = count.checked_mul(self.page_size)?;
        let data = self.get.bytes(usize::try_from(len).ok()?)?;
        Some(Run {
            first,
            data,
            file_offset,
        })
    }
}

/// The registers at the moment of the checkpoint signal, from its signal frame.
#[derive(Copy, Clone, Debug)]
pub struct Registers<'a> {
    pub uc_flags: u64,
    /// `uc_mcontext.gregs` (glibc's `REG_*` order: r8..r15, rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp,
    /// rip, eflags, csgsfs, err, trapno, oldmask, cr2).
    pub gregs: [u64; NGREG],
    pub sigmask: u64,
    /// The alternate signal stack: `ss_sp`, `ss_flags`, `ss_size`.
    pub altstack: (u64, u32, u64),
    pub fs_base: u64,
    pub gs_base: u64,
    /// The complete XSAVE area of the frame (`extended_size` bytes, FP_XSTATE_MAGIC2 included).
    pub xsave: &'a [u8],
}

/// Signal dispositions, as the kernel's `struct sigaction` (handler, flags, restorer, mask) for
/// signals 1..=64.
#[derive(Copy, Clone, Debug)]
pub struct Signals<'a> {
    raw: &'a [u8],
}

/// One signal's disposition.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Action {
    pub handler: u64,
    pub flags: u64,
    pub restorer: u64,
    pub mask: u64,
}

impl Signals<'_> {
    /// The disposition of `signal` (1..=64).
    pub fn get(&self, signal: usize) -> Option<Action> {
        let at = signal.checked_sub(1)?.checked_mul(32)?;
        let mut g = Get::new(self.raw.get(at..at.checked_add(32)?)?);
        Some(Action {
            handler: g.u64()?,
            flags: g.u64()?,
            restorer: g.u64()?,
            mask: g.u64()?,
        })
    }
}

/// The process's memory-map description (`PR_SET_MM_MAP` fields) and its saved auxv.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Mm<'a> {
    /// start_code, end_code, start_data, end_data, start_brk, brk, start_stack, arg_start, arg_end,
    /// env_start, env_end, in that order.
    pub fields: [u64; 11],
    pub auxv: &'a [u8],
}

impl Mm<'_> {
    pub fn brk(&self) -> u64 {
        self.fields[5]
    }
    pub fn start_brk(&self) -> u64 {
        self.fields[4]
    }
}

/// The rseq registration (address 0: none known).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Rseq {
    pub addr: u64,
    pub len: u32,
    pub sig: u32,
}

/// A regular file open on descriptor `fd` (3 or more).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct File<'a> {
    pub fd: u32,
    /// The `open` flags (`F_GETFL`), close-on-exec as `O_CLOEXEC`.
    pub flags: u32,
    pub offset: u64,
    /// The file's size when checkpointed (informational).
    pub size: u64,
    pub path: &'a [u8],
}

/// A record, as [`Image::records`] yields it.
#[derive(Copy, Clone, Debug)]
pub enum Record<'a> {
    Region(Region<'a>),
    File(File<'a>),
    Other(u32),
}

/// Size of a [`tag::REGISTERS`] payload without its XSAVE bytes.
pub const REGISTERS_FIXED: usize = 8 + NGREG * 8 + 8 + 24 + 8 + 8 + 8;
/// Size of a [`tag::SIGNALS`] payload.
pub const SIGNALS_LEN: usize = NSIG * 32;
/// Size of a [`tag::MM`] payload without its auxv bytes.
pub const MM_FIXED: usize = 11 * 8 + 8;
/// Size of a [`tag::RSEQ`] payload.
pub const RSEQ_LEN: usize = 16;
/// Size of a [`tag::FILE`] payload without its path.
pub const FILE_FIXED: usize = 4 + 4 + 8 + 8 + 8;
/// Size of a [`tag::REGION`] payload before its path.
pub const REGION_FIXED: usize = 8 + 8 + 4 + 4 + 8 + 8;

/// One record as stored: tag, payload, offset of its head.
#[derive(Copy, Clone, Debug)]
struct Raw<'a> {
    tag: u32,
    payload: &'a [u8],
    at: u64,
}

/// Walks records from `get`, checking each one's framing and checksum.
fn next_raw<'a>(get: &mut Get<'a>, base: u64, verify: Verify) -> Result<Raw<'a>, Error> {
    let at = base + get.at as u64;
    let tag = get.u32().ok_or(Error::Truncated)?;
    let reserved = get.u32().ok_or(Error::Truncated)?;
    let len = get.u64().ok_or(Error::Truncated)?;
    if reserved != 0 {
        return Err(Error::Malformed(at));
    }
    let len = usize::try_from(len).map_err(|_| Error::Truncated)?;
    let payload = get.bytes(len).ok_or(Error::Truncated)?;
    let padding = get
        .bytes(pad(len as u64) as usize)
        .ok_or(Error::Truncated)?;
    if padding.iter().any(|&b| b != 0) {
        return Err(Error::Malformed(at));
    }
    let sum = get.u64().ok_or(Error::Truncated)?;
    let trusted = verify == Verify::AllButPages && tag == tag::REGION;
    if !trusted && sum != checksum(payload) {
        return Err(Error::Checksum(at));
    }
    Ok(Raw { tag, payload, at })
}

fn region<'a>(raw: &Raw<'a>, page_size: u64) -> Result<Region<'a>, Error> {
    let bad = Error::Malformed(raw.at);
    let mut g = Get::new(raw.payload);
    let start = g.u64().ok_or(bad)?;
    let end = g.u64().ok_or(bad)?;
    let prot = g.u32().ok_or(bad)?;
    let flags = g.u32().ok_or(bad)?;
    let offset = g.u64().ok_or(bad)?;
    let path_len = g.u64().ok_or(bad)?;
    if path_len > MAX_PATH as u64 || prot & !7 != 0 || flags & !flags::KNOWN != 0 {
        return Err(bad);
    }
    let path = g.bytes(path_len as usize).ok_or(bad)?;
    let padding = g.bytes(pad(path_len) as usize).ok_or(bad)?;
    if padding.iter().any(|&b| b != 0) || path.contains(&0) {
        return Err(bad);
    }
    if start % page_size != 0 || end % page_size != 0 || end <= start || end > (1 << 47) {
        return Err(Error::BadRegion(raw.at));
    }
    let runs_at = raw.at + RECORD_HEAD_LEN as u64 + g.at as u64;
    // The payload ends with the layout checksum: everything before it but the run data.
    let rest = g.rest();
    let Some(split) = rest.len().checked_sub(8) else {
        return Err(bad);
    };
    let (runs, trailer) = rest.split_at(split);
    let mut layout = Checksum::new();
    layout.update(raw.payload.get(..g.at).unwrap_or(&[]));
    let r = Region {
        start,
        end,
        prot,
        flags,
        offset,
        path,
        runs,
        runs_at,
        page_size,
    };
    // Runs: inside the region, in order, not overlapping, and exactly covering the rest of the payload.
    let pages = (end - start) / page_size;
    let mut get = Get::new(r.runs);
    let mut next_free = 0u64;
    while !get.rest().is_empty() {
        let head = get.bytes(16).ok_or(bad)?;
        layout.update(head);
        let mut h = Get::new(head);
        let (first, count) = (h.u64().ok_or(bad)?, h.u64().ok_or(bad)?);
        let stop = first.checked_add(count).ok_or(bad)?;
        if count == 0 || first < next_free || stop > pages {
            return Err(bad);
        }
        let padding = run_padding(runs_at + get.at as u64, page_size);
        let zeros = get.bytes(padding as usize).ok_or(bad)?;
        if zeros.iter().any(|&b| b != 0) {
            return Err(bad);
        }
        layout.update(zeros);
        let len = count.checked_mul(page_size).ok_or(bad)?;
        get.bytes(usize::try_from(len).map_err(|_| bad)?)
            .ok_or(bad)?;
        next_free = stop;
    }
    if trailer != layout.finish().to_le_bytes() {
        return Err(Error::Checksum(raw.at));
    }
    if flags & (flags::VDSO | flags::VVAR) != 0 && !r.runs.is_empty() {
        return Err(bad);
    }
    Ok(r)
}

fn registers<'a>(raw: &Raw<'a>) -> Result<Registers<'a>, Error> {
    let bad = Error::Malformed(raw.at);
    let mut g = Get::new(raw.payload);
    let uc_flags = g.u64().ok_or(bad)?;
    let mut gregs = [0u64; NGREG];
    for r in gregs.iter_mut() {
        *r = g.u64().ok_or(bad)?;
    }
    let sigmask = g.u64().ok_or(bad)?;
    let ss_sp = g.u64().ok_or(bad)?;
    let ss_flags = g.u64().ok_or(bad)?;
    let ss_size = g.u64().ok_or(bad)?;
    let fs_base = g.u64().ok_or(bad)?;
    let gs_base = g.u64().ok_or(bad)?;
    let xsave_len = g.u64().ok_or(bad)?;
    if xsave_len < 512 + 64 || xsave_len > MAX_XSAVE as u64 {
        return Err(bad);
    }
    let xsave = g.bytes(xsave_len as usize).ok_or(bad)?;
    g.align8().ok_or(bad)?;
    if !g.rest().is_empty() || ss_flags > u64::from(u32::MAX) {
        return Err(bad);
    }
    Ok(Registers {
        uc_flags,
        gregs,
        sigmask,
        altstack: (ss_sp, ss_flags as u32, ss_size),
        fs_base,
        gs_base,
        xsave,
    })
}

fn mm<'a>(raw: &Raw<'a>) -> Result<Mm<'a>, Error> {
    let bad = Error::Malformed(raw.at);
    let mut g = Get::new(raw.payload);
    let mut fields = [0u64; 11];
    for f in fields.iter_mut() {
        *f = g.u64().ok_or(bad)?;
    }
    let auxv_len = g.u64().ok_or(bad)?;
    if auxv_len > MAX_AUXV as u64 || auxv_len % 16 != 0 {
        return Err(bad);
    }
    let auxv = g.bytes(auxv_len as usize).ok_or(bad)?;
    if !g.rest().is_empty() {
        return Err(bad);
    }
    Ok(Mm { fields, auxv })
}

fn file<'a>(raw: &Raw<'a>) -> Result<File<'a>, Error> {
    let bad = Error::Malformed(raw.at);
    let mut g = Get::new(raw.payload);
    let fd = g.u32().ok_or(bad)?;
    let flags = g.u32().ok_or(bad)?;
    let offset = g.u64().ok_or(bad)?;
    let size = g.u64().ok_or(bad)?;
    let path_len = g.u64().ok_or(bad)?;
    if fd < 3 || fd > i32::MAX as u32 || path_len == 0 || path_len > MAX_PATH as u64 {
        return Err(bad);
    }
    let path = g.bytes(path_len as usize).ok_or(bad)?;
    if !g.rest().is_empty() || path.contains(&0) {
        return Err(bad);
    }
    Ok(File {
        fd,
        flags,
        offset,
        size,
        path,
    })
}

/// Validates a whole image: header, every record's framing and checksum, the contents of each record,
/// region order, the presence of the records a restart needs, and the end record.
pub fn parse(bytes: &[u8]) -> Result<Image<'_>, Error> {
    parse_with(bytes, Verify::Everything)
}

/// How much of an image [`parse_with`] checksums.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Verify {
    /// Every record.
    Everything,
    /// Every record, but of the regions only their layout (addresses, protection, flags, path, run
    /// heads: the layout checksum at the end of each region record), not their page data: for a lazy
    /// restart, which must not read every page before the program runs again.
    AllButPages,
}

/// [`parse`], checksumming what `verify` says.
pub fn parse_with(bytes: &[u8], verify: Verify) -> Result<Image<'_>, Error> {
    let mut g = Get::new(bytes);
    let magic = g.bytes(8).ok_or(Error::Truncated)?;
    if magic != MAGIC {
        return Err(Error::BadMagic);
    }
    let version = g.u32().ok_or(Error::Truncated)?;
    let machine = g.u32().ok_or(Error::Truncated)?;
    let page_size = g.u32().ok_or(Error::Truncated)?;
    let ckpt_signal = g.u32().ok_or(Error::Truncated)?;
    let sum = g.u64().ok_or(Error::Truncated)?;
    if version != VERSION {
        return Err(Error::WrongVersion(version));
    }
    if machine != MACHINE_X86_64 {
        return Err(Error::WrongMachine(machine));
    }
    if u64::from(page_size) != PAGE_SIZE {
        return Err(Error::WrongPageSize(page_size));
    }
    if sum != checksum(bytes.get(..HEADER_LEN - 8).unwrap_or(&[])) {
        return Err(Error::Checksum(0));
    }
    let records = g.rest();
    let mut get = Get::new(records);
    let (mut regs, mut sigs, mut mmr, mut rseq, mut cwd) = (None, None, None, None, None);
    let mut last_end = 0u64;
    let mut fds_seen = 0u64; // bitmap of small fds, to refuse duplicates among 3..63
    loop {
        let raw = next_raw(&mut get, HEADER_LEN as u64, verify)?;
        let dup = Error::Duplicate(raw.at);
        match raw.tag {
            tag::END => {
                if !raw.payload.is_empty() {
                    return Err(Error::Malformed(raw.at));
                }
                break;
            }
            tag::REGION => {
                let r = region(&raw, u64::from(page_size))?;
                if r.start < last_end {
                    return Err(Error::BadRegion(raw.at));
                }
                last_end = r.end;
            }
            tag::REGISTERS => {
                if regs.replace(registers(&raw)?).is_some() {
                    return Err(dup);
                }
            }
            tag::SIGNALS => {
                if raw.payload.len() != SIGNALS_LEN {
                    return Err(Error::Malformed(raw.at));
                }
                if sigs.replace(Signals { raw: raw.payload }).is_some() {
                    return Err(dup);
                }
            }
            tag::MM => {
                if mmr.replace(mm(&raw)?).is_some() {
                    return Err(dup);
                }
            }
            tag::RSEQ => {
                let mut g = Get::new(raw.payload);
                let bad = Error::Malformed(raw.at);
                let r = Rseq {
                    addr: g.u64().ok_or(bad)?,
                    len: g.u32().ok_or(bad)?,
                    sig: g.u32().ok_or(bad)?,
                };
                if !g.rest().is_empty() {
                    return Err(bad);
                }
                if rseq.replace(r).is_some() {
                    return Err(dup);
                }
            }
            tag::CWD => {
                if raw.payload.is_empty()
                    || raw.payload.len() > MAX_PATH
                    || raw.payload.contains(&0)
                {
                    return Err(Error::Malformed(raw.at));
                }
                if cwd.replace(raw.payload).is_some() {
                    return Err(dup);
                }
            }
            tag::FILE => {
                let f = file(&raw)?;
                if f.fd < 64 {
                    if fds_seen & (1 << f.fd) != 0 {
                        return Err(dup);
                    }
                    fds_seen |= 1 << f.fd;
                }
            }
            _ => return Err(Error::Malformed(raw.at)),
        }
    }
    if !get.rest().is_empty() {
        return Err(Error::TrailingData);
    }
    Ok(Image {
        page_size,
        ckpt_signal,
        records,
        registers: regs.ok_or(Error::Missing(tag::REGISTERS))?,
        signals: sigs.ok_or(Error::Missing(tag::SIGNALS))?,
        mm: mmr.ok_or(Error::Missing(tag::MM))?,
        rseq,
        cwd: cwd.ok_or(Error::Missing(tag::CWD))?,
    })
}

impl<'a> Image<'a> {
    /// The regions and files, in image order (the image is already validated).
    pub fn records(&self) -> Records<'a> {
        Records {
            get: Get::new(self.records),
            page_size: u64::from(self.page_size),
        }
    }
    pub fn regions(&self) -> impl Iterator<Item = Region<'a>> {
        self.records().filter_map(|r| match r {
            Record::Region(r) => Some(r),
            _ => None,
        })
    }
    pub fn files(&self) -> impl Iterator<Item = File<'a>> {
        self.records().filter_map(|r| match r {
            Record::File(f) => Some(f),
            _ => None,
        })
    }
}

/// Iterator over a validated image's records.
#[derive(Clone, Debug)]
pub struct Records<'a> {
    get: Get<'a>,
    page_size: u64,
}

impl<'a> Iterator for Records<'a> {
    type Item = Record<'a>;
    fn next(&mut self) -> Option<Record<'a>> {
        let raw = next_raw(&mut self.get, HEADER_LEN as u64, Verify::AllButPages).ok()?;
        match raw.tag {
            tag::END => None,
            tag::REGION => region(&raw, self.page_size).ok().map(Record::Region),
            tag::FILE => file(&raw).ok().map(Record::File),
            t => Some(Record::Other(t)),
        }
    }
}

#[cfg(test)]
mod tests;
