//! What the kernel handed the loader itself: its arguments, environment and auxiliary vector, read from
//! the initial stack pointer its `_start` received.
//!
//! # Safety
//!
//! [`Startup::from_initial_stack`] trusts the pointer it is given to be the kernel-built initial stack;
//! everything after that reads memory the kernel wrote and nobody frees.

use core::ffi::{c_char, CStr};

/// The loader's own process start-up data.
#[derive(Copy, Clone, Debug)]
pub struct Startup {
    argc: usize,
    argv: *const *const c_char,
    envp: *const *const c_char,
    auxv: &'static [[u64; 2]],
}

/// The strings of a NULL-terminated pointer array, such as argv or envp.
#[derive(Copy, Clone, Debug)]
pub struct CStrArray {
    next: *const *const c_char,
}

impl Iterator for CStrArray {
    type Item = &'static CStr;

    fn next(&mut self) -> Option<&'static CStr> {
        // SAFETY: `next` walks a NULL-terminated array of pointers to NUL-terminated strings that the
        // kernel built on the initial stack (the invariant of `Startup::from_initial_stack`), and stops
        // at the NULL.
        unsafe {
            let ptr = *self.next;
            if ptr.is_null() {
                return None;
            }
            self.next = self.next.add(1);
            Some(CStr::from_ptr(ptr))
        }
    }
}

impl Startup {
    /// Reads the loader's initial stack.
    ///
    /// # Safety
    ///
    /// `sp` must be the stack pointer the kernel passed to the process entry point, and that memory must
    /// stay untouched for the life of the process.
    pub unsafe fn from_initial_stack(sp: *const usize) -> Self {
        // SAFETY: per the contract, `sp` points at argc, followed by argc argv pointers and a NULL, the
        // envp pointers and a NULL, then the auxv pairs ending with AT_NULL.
        unsafe {
            let argc = *sp;
            let argv = sp.add(1).cast::<*const c_char>();
            let envp = argv.add(argc + 1);
            let mut end = envp;
            while !(*end).is_null() {
                end = end.add(1);
            }
            let auxv_start = end.add(1).cast::<[u64; 2]>();
            let mut count = 0;
            while (*auxv_start.add(count))[0] != crate::stack::at::NULL {
                count += 1;
            }
            Self {
                argc,
                argv,
                envp,
                auxv: core::slice::from_raw_parts(auxv_start, count),
            }
        }
    }

    /// The loader's arguments, `argv[0]` first.
    pub fn args(&self) -> CStrArray {
        CStrArray { next: self.argv }
    }

    /// Number of arguments.
    pub fn argc(&self) -> usize {
        self.argc
    }

    /// The environment, as the loader received it.
    pub fn env(&self) -> CStrArray {
        CStrArray { next: self.envp }
    }

    /// Value of an environment variable.
    pub fn getenv(&self, name: &[u8]) -> Option<&'static [u8]> {
        self.env().find_map(|var| {
            let bytes = var.to_bytes();
            let rest = bytes.strip_prefix(name)?;
            rest.strip_prefix(b"=")
        })
    }

    /// The auxiliary vector, without its AT_NULL terminator.
    pub fn auxv(&self) -> &'static [[u64; 2]] {
        self.auxv
    }

    /// One auxv value.
    pub fn aux(&self, key: u64) -> Option<u64> {
        self.auxv.iter().find(|e| e[0] == key).map(|e| e[1])
    }

    /// The string an auxv entry points at (AT_PLATFORM, AT_EXECFN, ...).
    pub fn aux_str(&self, key: u64) -> Option<&'static CStr> {
        let ptr = self.aux(key).filter(|&p| p != 0)? as *const c_char;
        // SAFETY: the kernel's string-valued auxv entries point at NUL-terminated strings on the initial
        // stack, which stays mapped.
        Some(unsafe { CStr::from_ptr(ptr) })
    }
}
