//! The loader's error type: every way a load, lookup or unload can fail, as a value.
//!
//! Parsing inside the crate uses the small `Copy` [`Malformed`] (a static message); it is widened into
//! [`Error`] with the file or archive member it came from. [`Error`] carries names, sections and offsets
//! because the issue asks for them in the message; its `Display` prints one line per problem, so a
//! command-line tool can print it as is.

use std::fmt;
use std::path::PathBuf;

/// A structural problem in an object or archive: what was wrong, as a fixed message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

/// What `object`'s reader said (its own messages are static too, but only reachable through `Display`).
pub(crate) fn object_error(e: object::read::Error) -> String {
    e.to_string()
}

/// Why an operation of the loader failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be read.
    Io {
        /// The path as given.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// `load_library` on a path that is already loaded.
    AlreadyLoaded {
        /// The library's path.
        path: PathBuf,
    },
    /// The library defines a function that another loaded library already defines.
    DuplicateFunction {
        /// The function's name.
        name: String,
        /// The library that already defines it.
        defined_by: PathBuf,
    },
    /// Two members of one library (or two strong symbols of one object) define the same global symbol.
    MultipleDefinition {
        /// The symbol's name.
        name: String,
        /// The member that defined it first.
        first: String,
        /// The member that defined it again.
        second: String,
    },
    /// `find_library_function` found no loaded library defining the name.
    FunctionNotFound {
        /// The name looked up.
        name: String,
    },
    /// `unload_library` on a path that is not loaded.
    NotLoaded {
        /// The path as given.
        path: PathBuf,
    },
    /// `unload_library` refused: something still needs the library.
    InUse {
        /// The library's path.
        path: PathBuf,
        /// Loaded libraries that resolved symbols against it.
        needed_by: Vec<PathBuf>,
        /// Loaded programs that resolved symbols against it.
        programs: usize,
        /// Function handles still held by callers.
        handles: usize,
    },
    /// The object is for another machine, class or byte order.
    WrongMachine {
        /// The file or archive member.
        member: String,
        /// What it is for, e.g. "EM_AARCH64 (183)".
        found: String,
    },
    /// The object is not relocatable (an executable or shared object, say).
    NotRelocatable {
        /// The file or archive member.
        member: String,
        /// Its `e_type`.
        e_type: u16,
    },
    /// The object or archive is truncated or malformed.
    Malformed {
        /// The file or archive member.
        member: String,
        /// What was wrong.
        what: String,
    },
    /// Symbols that no object of the load, nor the host, nor an earlier library defines.
    UndefinedSymbols {
        /// The file being loaded.
        path: String,
        /// Every missing name, in the order first referenced.
        names: Vec<String>,
    },
    /// A relocation type the loader does not implement.
    UnsupportedRelocation {
        /// The file or archive member.
        member: String,
        /// The section the relocation patches.
        section: String,
        /// Offset of the patched field within that section.
        offset: u64,
        /// The relocation type's spec name (or its number).
        r_type: String,
    },
    /// A relocation's value does not fit its field.
    OutOfRange {
        /// The file or archive member.
        member: String,
        /// The section the relocation patches.
        section: String,
        /// Offset of the patched field within that section.
        offset: u64,
        /// The relocation type's spec name.
        r_type: &'static str,
        /// The symbol it refers to.
        symbol: String,
    },
    /// Thread-local storage, which the loader refuses.
    ThreadLocal {
        /// The file or archive member.
        member: String,
        /// The TLS section, symbol or relocation met first.
        what: String,
    },
    /// `load_program` on something that defines no `main`.
    NoMain {
        /// The path.
        path: String,
    },
    /// The host executable could not be inspected or does not match the running image.
    Host {
        /// What went wrong.
        what: String,
    },
    /// The operating system refused memory for the image.
    Memory {
        /// What was asked for.
        what: &'static str,
        /// The errno.
        errno: rustix::io::Errno,
    },
    /// No free address range where the image's 32-bit references can reach their targets.
    NoPlacement {
        /// The file being loaded.
        path: String,
        /// The bytes needed.
        size: u64,
    },
    /// A name or path handed to the C layer was not valid.
    InvalidArgument {
        /// What was wrong.
        what: &'static str,
    },
}

impl Error {
    pub(crate) fn malformed(member: &str, m: Malformed) -> Self {
        Error::Malformed {
            member: member.to_owned(),
            what: m.0.to_owned(),
        }
    }
}

const RANGE_ADVICE: &str = "recompile with -fPIC, or with -mcmodel=large for code placed anywhere";

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Error::AlreadyLoaded { path } => write!(f, "{}: library is already loaded", path.display()),
            Error::DuplicateFunction { name, defined_by } => write!(
                f,
                "function `{name}` is already defined by loaded library {}",
                defined_by.display()
            ),
            Error::MultipleDefinition { name, first, second } => {
                write!(f, "{second}: symbol `{name}` is already defined by {first}")
            }
            Error::FunctionNotFound { name } => {
                write!(f, "function `{name}` is not defined by any loaded library")
            }
            Error::NotLoaded { path } => write!(f, "{}: library is not loaded", path.display()),
            Error::InUse { path, needed_by, programs, handles } => {
                write!(f, "{}: cannot unload, still in use:", path.display())?;
                let mut sep = " ";
                for lib in needed_by {
                    write!(f, "{sep}needed by library {}", lib.display())?;
                    sep = ", ";
                }
                if *programs > 0 {
                    write!(f, "{sep}needed by {programs} loaded program(s)")?;
                    sep = ", ";
                }
                if *handles > 0 {
                    write!(f, "{sep}{handles} function handle(s) held")?;
                }
                Ok(())
            }
            Error::WrongMachine { member, found } => {
                write!(f, "{member}: object is for {found}, not x86-64 ELF64 little-endian")
            }
            Error::NotRelocatable { member, e_type } => {
                write!(f, "{member}: not a relocatable object (e_type {e_type}, expected ET_REL)")
            }
            Error::Malformed { member, what } => write!(f, "{member}: malformed: {what}"),
            Error::UndefinedSymbols { path, names } => {
                for (i, name) in names.iter().enumerate() {
                    if i > 0 {
                        writeln!(f)?;
                    }
                    write!(f, "{path}: undefined symbol `{name}`")?;
                }
                Ok(())
            }
            Error::UnsupportedRelocation { member, section, offset, r_type } => write!(
                f,
                "{member}: unsupported relocation {r_type} in section {section} at offset {offset:#x}"
            ),
            Error::OutOfRange { member, section, offset, r_type, symbol } => write!(
                f,
                "{member}: relocation {r_type} against `{symbol}` in section {section} at offset \
                 {offset:#x} is out of range; {RANGE_ADVICE}"
            ),
            Error::ThreadLocal { member, what } => {
                write!(f, "{member}: thread-local storage is not supported ({what})")
            }
            Error::NoMain { path } => write!(f, "{path}: defines no `main`"),
            Error::Host { what } => write!(f, "host executable: {what}"),
            Error::Memory { what, errno } => write!(f, "cannot {what}: {errno}"),
            Error::NoPlacement { path, size } => write!(
                f,
                "{path}: no free {size}-byte range within 32-bit reach of its targets; {RANGE_ADVICE}"
            ),
            Error::InvalidArgument { what } => write!(f, "invalid argument: {what}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
