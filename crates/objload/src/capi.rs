//! The C-callable layer: the four calls of the crate with C types, on the process-wide registry.
//!
//! ```c
//! void *objload_load_program(const char *path);          /* main's address, or NULL */
//! int   objload_load_library(const char *path);          /* 0, or -1 */
//! void *objload_find_library_function(const char *name); /* the address, or NULL */
//! int   objload_unload_library(const char *path);        /* 0, or -1 */
//! const char *objload_last_error(void);                  /* why the last call on this thread failed */
//! int   objload_release_function(const char *name);      /* drops a reference taken by find */
//! int   objload_unload_program(void *entry);             /* unloads a program loaded by this layer */
//! ```
//! Errors are never crashes: a failed call returns NULL or -1 and leaves a message, retrievable on the same
//! thread until the next call, through `objload_last_error`. Each successful
//! `objload_find_library_function` holds a reference on the library (it cannot be unloaded under the
//! caller) until the matching `objload_release_function`. A program loaded here stays loaded until
//! `objload_unload_program`. `include/objload.h` declares these.
//!
//! # Safety
//! Every function takes C strings from the caller; each dereferences them only after a null check, under
//! the contract stated on the function.

use std::cell::RefCell;
use std::ffi::{c_char, c_int, c_void, CStr, CString, OsStr};
use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;
use std::sync::{Mutex, PoisonError};

use crate::{Error, FunctionHandle, Program};

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

static HANDLES: Mutex<Vec<FunctionHandle>> = Mutex::new(Vec::new());
static PROGRAMS: Mutex<Vec<Program>> = Mutex::new(Vec::new());

fn fail(e: &Error) {
    let text = e.to_string().replace('\0', " ");
    LAST_ERROR.with(|m| *m.borrow_mut() = CString::new(text).unwrap_or_default());
}

/// # Safety
/// `s` is null or a NUL-terminated string valid for the call.
unsafe fn arg<'a>(s: *const c_char, what: &'static str) -> Result<&'a CStr, Error> {
    if s.is_null() {
        return Err(Error::InvalidArgument { what });
    }
    // SAFETY: not null, and NUL-terminated and valid per the caller's contract.
    Ok(unsafe { CStr::from_ptr(s) })
}

fn path(s: &CStr) -> &Path {
    Path::new(OsStr::from_bytes(s.to_bytes()))
}

/// `void *objload_load_program(const char *path)`: loads the object or archive at `path`, runs its
/// constructors and returns the address of its `main`, or NULL.
///
/// # Safety
/// `path` is null or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn objload_load_program(path_: *const c_char) -> *mut c_void {
    // SAFETY: forwarded caller contract.
    let r = unsafe { arg(path_, "path is NULL") }.and_then(|p| crate::load_program(path(p)));
    match r {
        Ok(p) => {
            let entry = p.entry() as *mut c_void;
            PROGRAMS
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(p);
            entry
        }
        Err(e) => {
            fail(&e);
            std::ptr::null_mut()
        }
    }
}

/// `int objload_unload_program(void *entry)`: unloads the program whose `main` is at `entry`; 0 or -1.
#[no_mangle]
pub extern "C" fn objload_unload_program(entry: *mut c_void) -> c_int {
    let program = {
        let mut programs = PROGRAMS.lock().unwrap_or_else(PoisonError::into_inner);
        let at = programs.iter().position(|p| p.entry() == entry as usize);
        at.map(|at| programs.swap_remove(at))
    };
    match program {
        Some(p) => {
            drop(p);
            0
        }
        None => {
            fail(&Error::InvalidArgument {
                what: "no program loaded by objload_load_program has that entry",
            });
            -1
        }
    }
}

/// `int objload_load_library(const char *path)`: loads a library; 0, or -1.
///
/// # Safety
/// `path` is null or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn objload_load_library(path_: *const c_char) -> c_int {
    // SAFETY: forwarded caller contract.
    match unsafe { arg(path_, "path is NULL") }.and_then(|p| crate::load_library(path(p))) {
        Ok(()) => 0,
        Err(e) => {
            fail(&e);
            -1
        }
    }
}

/// `void *objload_find_library_function(const char *name)`: the function's address, or NULL. Holds a
/// reference on its library until `objload_release_function(name)`.
///
/// # Safety
/// `name` is null or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn objload_find_library_function(name: *const c_char) -> *mut c_void {
    // SAFETY: forwarded caller contract.
    let r = unsafe { arg(name, "name is NULL") }.and_then(|n| {
        let n = n.to_str().map_err(|_| Error::FunctionNotFound {
            name: n.to_string_lossy().into_owned(),
        })?;
        crate::find_library_function(n)
    });
    match r {
        Ok(h) => {
            let addr = h.addr() as *mut c_void;
            HANDLES
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(h);
            addr
        }
        Err(e) => {
            fail(&e);
            std::ptr::null_mut()
        }
    }
}

/// `int objload_release_function(const char *name)`: drops one reference taken by
/// `objload_find_library_function(name)`; 0, or -1 if none is held.
///
/// # Safety
/// `name` is null or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn objload_release_function(name: *const c_char) -> c_int {
    // SAFETY: forwarded caller contract.
    let n = match unsafe { arg(name, "name is NULL") } {
        Ok(n) => n.to_bytes(),
        Err(e) => {
            fail(&e);
            return -1;
        }
    };
    let handle = {
        let mut handles = HANDLES.lock().unwrap_or_else(PoisonError::into_inner);
        let at = handles.iter().rposition(|h| h.name().as_bytes() == n);
        at.map(|at| handles.swap_remove(at))
    };
    match handle {
        Some(h) => {
            drop(h);
            0
        }
        None => {
            fail(&Error::InvalidArgument {
                what: "no reference to that function is held",
            });
            -1
        }
    }
}

/// `int objload_unload_library(const char *path)`: unloads a library; 0, or -1.
///
/// # Safety
/// `path` is null or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn objload_unload_library(path_: *const c_char) -> c_int {
    // SAFETY: forwarded caller contract.
    match unsafe { arg(path_, "path is NULL") }.and_then(|p| crate::unload_library(path(p))) {
        Ok(()) => 0,
        Err(e) => {
            fail(&e);
            -1
        }
    }
}

/// `const char *objload_last_error(void)`: the message of the last failed call on this thread ("" if
/// none). The pointer is valid until the next call of this layer on the same thread.
#[no_mangle]
pub extern "C" fn objload_last_error() -> *const c_char {
    LAST_ERROR.with(|m| m.borrow().as_ptr())
}

/// Addresses of the C layer, for a host executable to reference so that its linker keeps every function
/// (loaded objects find them in the executable's symbol table).
pub fn exports() -> [usize; 7] {
    [
        objload_load_program as *const () as usize,
        objload_load_library as *const () as usize,
        objload_find_library_function as *const () as usize,
        objload_unload_library as *const () as usize,
        objload_last_error as *const () as usize,
        objload_release_function as *const () as usize,
        objload_unload_program as *const () as usize,
    ]
}
