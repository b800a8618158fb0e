//! Why loading failed, with the exit status a shell would report for it.

use core::fmt;
use rustix::io::Errno;
use uexec_elf::ElfError;

/// What went wrong, and at which step. Small and `Copy`; the command-line edge adds the file name.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum LoadError {
    /// The file could not be opened or read (the errno says why).
    Open(Errno),
    /// It is not a regular file.
    NotRegularFile,
    /// The file is a malformed or unsupported ELF executable.
    Elf(ElfError),
    /// The interpreter named by `PT_INTERP` could not be loaded.
    Interpreter(InterpreterError),
    /// A segment would land on memory that is already mapped (the loader itself, its stack, ...).
    Overlaps { addr: u64, len: u64 },
    /// A mapping system call failed.
    Map { errno: Errno, addr: u64, len: u64 },
}

/// A failure while loading the interpreter, kept apart so the message can say so.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum InterpreterError {
    Open(Errno),
    NotRegularFile,
    Elf(ElfError),
}

impl LoadError {
    /// The status a shell exits with when it cannot run the program: 127 when the file does not exist,
    /// 126 when it exists but cannot be executed.
    pub const fn exit_status(&self) -> i32 {
        match self {
            Self::Open(Errno::NOENT) | Self::Open(Errno::NOTDIR) => 127,
            _ => 126,
        }
    }
}

impl From<ElfError> for LoadError {
    fn from(error: ElfError) -> Self {
        Self::Elf(error)
    }
}

fn describe_errno(f: &mut fmt::Formatter<'_>, errno: Errno) -> fmt::Result {
    let text = match errno {
        Errno::NOENT => "No such file or directory",
        Errno::ACCESS => "Permission denied",
        Errno::ISDIR => "Is a directory",
        Errno::NOTDIR => "Not a directory",
        Errno::NAMETOOLONG => "File name too long",
        Errno::LOOP => "Too many levels of symbolic links",
        Errno::NOMEM => "Cannot allocate memory",
        Errno::PERM => "Operation not permitted",
        Errno::INVAL => "Invalid argument",
        Errno::NODEV => "No such device (the file system does not support mmap)",
        Errno::EXIST => "File exists",
        Errno::IO => "Input/output error",
        Errno::TXTBSY => "Text file busy",
        _ => return write!(f, "error {}", errno.raw_os_error()),
    };
    f.write_str(text)
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Open(errno) => describe_errno(f, errno),
            Self::NotRegularFile => f.write_str("not a regular file"),
            Self::Elf(error) => error.fmt(f),
            Self::Interpreter(InterpreterError::Open(errno)) => {
                f.write_str("cannot open its interpreter: ")?;
                describe_errno(f, errno)
            }
            Self::Interpreter(InterpreterError::NotRegularFile) => {
                f.write_str("its interpreter is not a regular file")
            }
            Self::Interpreter(InterpreterError::Elf(error)) => write!(f, "its interpreter: {error}"),
            Self::Overlaps { addr, len } => write!(
                f,
                "the image at {addr:#x}..{:#x} overlaps memory already in use (the loader, its stack or \
                 another mapping)",
                addr.saturating_add(len)
            ),
            Self::Map { errno, addr, len } => {
                write!(f, "cannot map {addr:#x}..{:#x}: ", addr.saturating_add(len))?;
                describe_errno(f, errno)
            }
        }
    }
}
