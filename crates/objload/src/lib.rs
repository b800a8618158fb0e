//! objload: loads relocatable x86-64 ELF objects (`.o`) and `ar` archives (`.a`) into the running process and
//! links them against it, so that a process can take in compiled code it has never seen.
//!
//! Four calls, on a process-wide [`Registry`] (a [`Registry`] value of your own gives the same calls on a
//! private set of libraries):
//! - [`load_program`]: link an object or archive that defines `main`, and get a [`Program`] to run;
//! - [`load_library`]: link an object, or an archive as one library of all its members, and record every
//!   global function it defines;
//! - [`find_library_function`]: a function of a loaded library, by name, as a [`FunctionHandle`] that keeps
//!   the library loaded while held;
//! - [`unload_library`]: forget a library's functions, run its destructors and release its memory.
//!
//! The same calls exist for C in [`capi`] (`objload_load_program`, …, with `objload_last_error`).
//! Symbols resolve against the loaded object itself, then the host executable's symbol table (checked to be
//! the running build by its GNU build-id), then the host's dynamic symbols, then libraries loaded earlier.
//! See `docs/objload.md` for the design, the relocation table and the limits.
//!
//! Constructors and destructors of loaded code run outside the process-wide registry's lock, so they may
//! call these functions themselves.

mod archive;
pub mod capi;
mod error;
mod host;
mod link;
mod memory;
mod object_file;
mod registry;
mod reloc;

use std::path::Path;
use std::sync::{LazyLock, Mutex, MutexGuard, PoisonError};

pub use error::Error;
pub use link::Export;
pub use object_file::Inspection;
pub use registry::{FunctionHandle, Library, LibraryInfo, Program, Registry};

static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(|| Mutex::new(Registry::new()));

fn registry() -> MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Loads the object or archive at `path`, which must define `main`, and runs its constructors.
/// Dropping the [`Program`] runs its destructors and unloads it.
pub fn load_program(path: impl AsRef<Path>) -> Result<Program, Error> {
    let program = registry().prepare_program(path.as_ref())?;
    Registry::construct_program(&program);
    Ok(program)
}

/// Like [`load_program`], from an object or archive held in memory, named `name` in messages.
pub fn load_program_bytes(name: &str, data: &[u8]) -> Result<Program, Error> {
    let program = registry().prepare_program_bytes(name, data)?;
    Registry::construct_program(&program);
    Ok(program)
}

/// Loads the object or archive at `path` as a library, records its global functions and runs its
/// constructors. Nothing is recorded if it fails.
pub fn load_library(path: impl AsRef<Path>) -> Result<(), Error> {
    let lib = {
        let mut reg = registry();
        let lib = reg.prepare_library(path.as_ref())?;
        reg.commit(&lib);
        lib
    };
    Registry::construct(&lib);
    Ok(())
}

/// The global function `name` of a loaded library.
pub fn find_library_function(name: &str) -> Result<FunctionHandle, Error> {
    registry().find_library_function(name)
}

/// Unloads the library loaded from `path`; refused while anything depends on it.
pub fn unload_library(path: impl AsRef<Path>) -> Result<(), Error> {
    let lib = registry().remove_library(path.as_ref())?;
    // The registry's lock is released: destructors may call back into objload.
    drop(lib);
    Ok(())
}

/// The libraries loaded in the process-wide registry.
pub fn libraries() -> Vec<LibraryInfo> {
    registry().libraries()
}

/// Parses and validates an object or archive without loading it: what the fuzz target exercises.
pub fn inspect(data: &[u8]) -> Result<Inspection, Error> {
    let mut out = Inspection::default();
    for m in archive::members("input", data)? {
        let obj = object_file::ObjectFile::parse(&archive::member_label("input", &m), m.data)?;
        out.add(&obj);
    }
    Ok(out)
}
