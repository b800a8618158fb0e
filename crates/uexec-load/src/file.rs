//! Opening an executable and reading what the kernel reads before it maps anything: the file header, the
//! program-header table, and the interpreter's path.

use core::ffi::CStr;
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{Access, FileType, Mode, OFlags};
use rustix::io::Errno;
use uexec_elf::{interpreter_path, ElfError, FileHeader, Image, MAX_INTERP_PATH, MAX_PHDR_TABLE};

use crate::scratch::Scratch;

/// How much of the file is read up front: enough for the header and, nearly always, the program headers.
pub const FIRST_READ: usize = 4096;

/// The first bytes of the file being opened, and its program-header table when that lies further on.
static FIRST: Scratch<FIRST_READ> = Scratch::new();
static TABLE: Scratch<MAX_PHDR_TABLE> = Scratch::new();

/// Why a file could not be opened as an executable, before its contents are judged.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum OpenError {
    Os(Errno),
    NotRegularFile,
    Elf(ElfError),
}

/// An open, validated executable: the descriptor stays open until its segments are mapped.
pub struct ElfFile {
    fd: OwnedFd,
    /// Size of the file in bytes.
    pub size: u64,
    pub image: Image,
}

impl ElfFile {
    /// Opens `path` as `execve` would: it must be a regular file the caller may execute, and a valid
    /// x86-64 ELF executable. Nothing is mapped.
    pub fn open(path: &CStr) -> Result<Self, OpenError> {
        rustix::fs::access(path, Access::EXEC_OK).map_err(OpenError::Os)?;
        let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
            .map_err(OpenError::Os)?;
        let stat = rustix::fs::fstat(&fd).map_err(OpenError::Os)?;
        match FileType::from_raw_mode(stat.st_mode) {
            FileType::RegularFile => {}
            FileType::Directory => return Err(OpenError::Os(Errno::ISDIR)),
            _ => return Err(OpenError::NotRegularFile),
        }
        let size = u64::try_from(stat.st_size).map_err(|_| OpenError::NotRegularFile)?;

        // SAFETY: files are opened one at a time while loading, and nothing of FIRST or TABLE is kept
        // past this call (Image::parse copies what it needs).
        let (first, table) = unsafe { (FIRST.borrow(), TABLE.borrow()) };
        let image = read_image(&fd.as_fd(), size, first, table)?;
        Ok(Self { fd, size, image })
    }

    /// Gives up the file, keeping its descriptor open.
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }

    /// The descriptor, for mapping.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Reads the `PT_INTERP` path into `buf`; `Ok(None)` for a program without one.
    pub fn interpreter<'b>(
        &self,
        buf: &'b mut [u8; MAX_INTERP_PATH],
    ) -> Result<Option<&'b CStr>, OpenError> {
        read_interpreter(&self.fd(), &self.image, buf)
    }
}

/// Where an executable's bytes are read from: its descriptor, or bytes in memory (the fuzz harness
/// reads its inputs through this code, not a copy of it).
pub trait Source {
    /// Reads from `offset` until `buf` is full or the file ends; returns how many bytes were read.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize, Errno>;
}

impl Source for BorrowedFd<'_> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize, Errno> {
        read_fully(*self, buf, offset)
    }
}

/// Reads and validates what the kernel reads of a file of `size` bytes before it maps anything: the
/// file header from its first [`FIRST_READ`] bytes (read into `first`) and the program-header table,
/// taken from `first` when it lies there, else read into `table`.
pub fn read_image(
    src: &impl Source,
    size: u64,
    first: &mut [u8; FIRST_READ],
    table: &mut [u8; MAX_PHDR_TABLE],
) -> Result<Image, OpenError> {
    let got = src.read_at(first, 0).map_err(OpenError::Os)?;
    let bytes = first.get(..got).unwrap_or(&[]);
    let header = FileHeader::parse(bytes, size).map_err(OpenError::Elf)?;

    // The header checked that the table lies inside the file and fits in MAX_PHDR_TABLE bytes.
    let table_len = header.phdr_table_len();
    let start = usize::try_from(header.phoff).unwrap_or(usize::MAX);
    match start
        .checked_add(table_len)
        .and_then(|end| bytes.get(start..end))
    {
        Some(in_first) => Image::parse(&header, in_first, size),
        None => {
            let table = table.get_mut(..table_len).unwrap_or(&mut []);
            let got = src.read_at(table, header.phoff).map_err(OpenError::Os)?;
            Image::parse(&header, table.get(..got).unwrap_or(&[]), size)
        }
    }
    .map_err(OpenError::Elf)
}

/// Reads `image`'s `PT_INTERP` path into `buf` and checks it as the kernel does (its last byte NUL, NUL
/// padding allowed before that); `Ok(None)` for a program without one.
pub fn read_interpreter<'b>(
    src: &impl Source,
    image: &Image,
    buf: &'b mut [u8; MAX_INTERP_PATH],
) -> Result<Option<&'b CStr>, OpenError> {
    let Some(range) = image.interp else {
        return Ok(None);
    };
    // Image::parse checked 2 <= len <= MAX_INTERP_PATH and that the range lies inside the file.
    let len = usize::try_from(range.len)
        .unwrap_or(MAX_INTERP_PATH)
        .min(MAX_INTERP_PATH);
    let dest = buf.get_mut(..len).unwrap_or(&mut []);
    let got = src.read_at(dest, range.offset).map_err(OpenError::Os)?;
    let index = range.segment;
    let bytes = dest.get(..got).unwrap_or(&[]);
    interpreter_path(bytes, index).map_err(OpenError::Elf)?;
    // The path ends at its first NUL (NUL padding may follow, as the kernel allows).
    CStr::from_bytes_until_nul(bytes)
        .map(Some)
        .map_err(|_| OpenError::Elf(ElfError::BadInterpreterPath { segment: index }))
}

/// `pread` until `buf` is full or the file ends; returns how many bytes were read.
fn read_fully(fd: BorrowedFd<'_>, buf: &mut [u8], offset: u64) -> Result<usize, Errno> {
    let mut done = 0;
    while let Some(rest) = buf.get_mut(done..) {
        if rest.is_empty() {
            break;
        }
        let at = offset.saturating_add(done as u64);
        match rustix::io::pread(fd, rest, at) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}
