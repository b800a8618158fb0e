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

/// What a call of this layer returns when it fails: NULL for a pointer, -1 for an `int`.
trait Failed {
    const FAILED: Self;
}

impl Failed for c_int {
    const FAILED: c_int = -1;
}

impl Failed for *mut c_void {
    const FAILED: *mut c_void = std::ptr::null_mut();
}

/// The C return value of `r`: its value; or, once its message is left for `objload_last_error`, the
/// failure value (NULL or -1). Every function of this layer ends here, so that none forgets the message.
fn c_return<T: Failed>(r: Result<T, Error>) -> T {
    r.unwrap_or_else(|e| {
        let text = e.to_string().replace('\0', " ");
        LAST_ERROR.with(|m| *m.borrow_mut() = CString::new(text).unwrap_or_default());
        T::FAILED
    })
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
    c_return(r.map(|p| {
        let entry = p.entry() as *mut c_void;
        PROGRAMS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(p);
        entry
    }))
}

/// `int objload_unload_program(void *entry)`: unloads the program whose `main` is at `entry`; 0 or -1.
#[no_mangle]
pub extern "C" fn objload_unload_program(entry: *mut c_void) -> c_int {
    let program = {
        let mut programs = PROGRAMS.lock().unwrap_or_else(PoisonError::into_inner);
        let at = programs.iter().position(|p| p.entry() == entry as usize);
        at.map(|at| programs.swap_remove(at))
    };
    c_return(
        program
            .map(|p| {
                drop(p);
                0
            })
            .ok_or(Error::InvalidArgument {
                what: "no program loaded by objload_load_program has that entry",
            }),
    )
}

/// `int objload_load_library(const char *path)`: loads a library; 0, or -1.
///
/// # Safety
/// `path` is null or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn objload_load_library(path_: *const c_char) -> c_int {
    // SAFETY: forwarded caller contract.
    let r = unsafe { arg(path_, "path is NULL") }.and_then(|p| crate::load_library(path(p)));
    c_return(r.map(|()| 0))
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
    c_return(r.map(|h| {
        let addr = h.addr() as *mut c_void;
        HANDLES
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(h);
        addr
    }))
}

/// `int objload_release_function(const char *name)`: drops one reference taken by
/// `objload_find_library_function(name)`; 0, or -1 if none is held.
///
/// # Safety
/// `name` is null or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn objload_release_function(name: *const c_char) -> c_int {
    // SAFETY: forwarded caller contract.
    let r = unsafe { arg(name, "name is NULL") }.and_then(|n| {
        let n = n.to_bytes();
        let handle = {
            let mut handles = HANDLES.lock().unwrap_or_else(PoisonError::into_inner);
            let at = handles.iter().rposition(|h| h.name().as_bytes() == n);
            at.map(|at| handles.swap_remove(at))
        };
        handle.map(drop).ok_or(Error::InvalidArgument {
            what: "no reference to that function is held",
        })
    });
    c_return(r.map(|()| 0))
}

/// `int objload_unload_library(const char *path)`: unloads a library; 0, or -1.
///
/// # Safety
/// `path` is null or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn objload_unload_library(path_: *const c_char) -> c_int {
    // SAFETY: forwarded caller contract.
    let r = unsafe { arg(path_, "path is NULL") }.and_then(|p| crate::unload_library(path(p)));
    c_return(r.map(|()| 0))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The message `objload_last_error` gives now.
    fn last_error() -> String {
        // SAFETY: objload_last_error returns a pointer to this thread's NUL-terminated message, valid
        // until the next call of this layer on this thread; it is copied before any other call.
        unsafe { CStr::from_ptr(objload_last_error()) }
            .to_string_lossy()
            .into_owned()
    }

    /// `f(s)` with `s` as a C string, NULL for `None`.
    fn call<R>(f: unsafe extern "C" fn(*const c_char) -> R, s: Option<&CStr>) -> R {
        let p = s.map_or(std::ptr::null(), CStr::as_ptr);
        // SAFETY: `p` is null or a NUL-terminated string that outlives the call, which is all every
        // function of this layer asks.
        unsafe { f(p) }
    }

    /// Asserts that the last message contains `part`.
    #[track_caller]
    fn says(part: &str) {
        let m = last_error();
        assert!(
            m.contains(part),
            "objload_last_error() = {m:?}, expected {part:?} in it"
        );
    }

    #[test]
    fn every_failure_returns_null_or_minus_one_and_leaves_its_message() {
        let missing = Some(c"/nonexistent/objload-capi-test.o");
        let name = Some(c"objload_capi_test_no_such_function");
        assert!(call(objload_load_program, None).is_null());
        says("path is NULL");
        assert!(call(objload_load_program, missing).is_null());
        says("objload-capi-test.o");
        assert_eq!(call(objload_load_library, None), -1);
        says("path is NULL");
        assert_eq!(call(objload_load_library, missing), -1);
        says("objload-capi-test.o");
        assert_eq!(call(objload_unload_library, None), -1);
        says("path is NULL");
        assert!(call(objload_find_library_function, None).is_null());
        says("name is NULL");
        assert!(call(objload_find_library_function, name).is_null());
        says("objload_capi_test_no_such_function");
        assert_eq!(call(objload_release_function, None), -1);
        says("name is NULL");
        assert_eq!(call(objload_release_function, name), -1);
        says("no reference to that function is held");
        assert_eq!(objload_unload_program(std::ptr::null_mut()), -1);
        says("no program loaded by objload_load_program has that entry");
    }

    #[test]
    fn the_message_is_per_thread() {
        assert_eq!(call(objload_load_library, None), -1);
        let other = std::thread::spawn(last_error).join().expect("thread");
        assert_eq!(other, "");
        says("path is NULL");
    }
}
