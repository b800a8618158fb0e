//! `execve` by a demand-paged program.
//!
//! A seccomp filter survives `execve`, and the pager's traps it holds would raise SIGSYS in the new
//! program, which has no handler for them. So an ELF program the demand-paged program executes is
//! started through the pager again (the same binary, with the same paging options): the new process is
//! demand-paged in turn, and its pager handles the inherited traps. The program sees the `argv` it asked
//! for (`--argv0` carries `argv[0]`), its environment and its path as `AT_EXECFN`.
//!
//! What is not an executable ELF file (a missing or non-executable path, a `#!` script) goes to the
//! kernel as asked, so the caller gets the error, or the script's interpreter runs (inheriting the filter:
//! a known limitation).
//!
//! # Safety
//!
//! Runs in the SIGSYS handler: raw calls, fixed buffers, no allocation. The scratch area is shared by all
//! threads under a spin flag; a successful exec never returns to release it, which is fine since the
//! process image is gone.

use core::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};

use crate::pager;
use crate::trap::raw;

/// A descriptor of the pager's own binary, opened before `/proc/self/exe` changed.
static SELF_FD: AtomicI32 = AtomicI32::new(-1);
/// The scratch area for building argv: pointers first, strings from the top down.
static SCRATCH: AtomicUsize = AtomicUsize::new(0);
static SCRATCH_LOCK: AtomicBool = AtomicBool::new(false);
const SCRATCH_SIZE: usize = 256 * 1024;
/// The pager's own leading arguments (`dpager -q --stats ...`), NUL-separated.
static mut PREFIX: [u8; 256] = [0; 256];
static PREFIX_LEN: AtomicUsize = AtomicUsize::new(0);

const AT_EMPTY_PATH: u64 = 0x1000;
const MAX_STRING: u64 = 4096;

/// Records how to start the pager again: its binary (`self_fd`) and leading arguments (NUL-terminated
/// strings, concatenated). Returns false if they do not fit.
///
/// # Safety
///
/// Single-threaded set-up, before the program runs.
pub unsafe fn configure(self_fd: i32, prefix: &[u8]) -> bool {
    // SAFETY: set-up is single-threaded; PREFIX is read only by the handler afterwards.
    let slot = unsafe { &mut *core::ptr::addr_of_mut!(PREFIX) };
    let Some(dest) = slot.get_mut(..prefix.len()) else {
        return false;
    };
    dest.copy_from_slice(prefix);
    PREFIX_LEN.store(prefix.len(), Ordering::Relaxed);
    // SAFETY: a fresh anonymous mapping.
    let area = unsafe {
        rustix::mm::mmap_anonymous(
            core::ptr::null_mut(),
            SCRATCH_SIZE,
            rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
            rustix::mm::MapFlags::PRIVATE | rustix::mm::MapFlags::NORESERVE,
        )
    };
    let Ok(area) = area else { return false };
    SCRATCH.store(area as usize, Ordering::Relaxed);
    SELF_FD.store(self_fd, Ordering::Relaxed);
    true
}

fn read_ptr(addr: u64) -> Option<u64> {
    if addr < 4096 {
        return None;
    }
    // SAFETY: the program passed this array to execve; its image pages were made accessible.
    Some(unsafe { (addr as *const u64).read_unaligned() })
}

/// Makes the path, the argv and envp arrays and their strings accessible where they lie in the image.
pub fn prefault_exec_args(path: u64, argv: u64, envp: u64) {
    pager::ensure_accessible(path, MAX_STRING);
    for array in [argv, envp] {
        let mut i = 0;
        while i < 65536 {
            let slot = array.wrapping_add(8 * i);
            pager::ensure_accessible(slot, 8);
            match read_ptr(slot) {
                Some(0) | None => break,
                Some(s) => pager::ensure_accessible(s, MAX_STRING),
            }
            i += 1;
        }
    }
}

fn c_len(addr: u64) -> usize {
    let mut n = 0;
    // SAFETY: the string was made accessible by prefault_exec_args; it is NUL-terminated as execve requires.
    while n < MAX_STRING as usize && unsafe { (addr as *const u8).add(n).read() } != 0 {
        n += 1;
    }
    n
}

/// Whether `path` names an executable ELF file.
fn is_executable_elf(path: u64) -> bool {
    const ACCESS: u64 = 21;
    const OPEN: u64 = 2;
    const READ: u64 = 0;
    const CLOSE: u64 = 3;
    const X_OK: u64 = 1;
    const O_RDONLY_CLOEXEC: u64 = 0o2000000;
    if raw(ACCESS, &[path, X_OK, 0, 0, 0, 0]) != 0 {
        return false;
    }
    let fd = raw(OPEN, &[path, O_RDONLY_CLOEXEC, 0, 0, 0, 0]);
    if fd < 0 {
        return false;
    }
    let mut magic = [0u8; 4];
    let got = raw(READ, &[fd as u64, magic.as_mut_ptr() as u64, 4, 0, 0, 0]);
    raw(CLOSE, &[fd as u64, 0, 0, 0, 0, 0]);
    got == 4 && magic == *b"\x7fELF"
}

/// Performs the program's `execve(path, argv, envp)`, through the pager when it is an ELF program.
/// `mask` is the program's blocked set, which the new process inherits (not the handler's).
pub fn through_pager(path: u64, argv: u64, envp: u64, mask: u64) -> i64 {
    const EXECVE: u64 = 59;
    const EXECVEAT: u64 = 322;
    let direct = || raw(EXECVE, &[path, argv, envp, 0, 0, 0]);
    let self_fd = SELF_FD.load(Ordering::Relaxed);
    let scratch = SCRATCH.load(Ordering::Relaxed);
    if self_fd < 0 || scratch == 0 || !is_executable_elf(path) {
        return direct();
    }
    while SCRATCH_LOCK.swap(true, Ordering::Acquire) {
        core::hint::spin_loop();
    }
    let result = match build_argv(scratch, path, argv) {
        Some(new_argv) => {
            let mut saved = 0u64;
            raw(
                14,
                &[
                    2,
                    &mask as *const u64 as u64,
                    &mut saved as *mut u64 as u64,
                    8,
                    0,
                    0,
                ],
            );
            raw(
                EXECVEAT,
                &[
                    self_fd as u64,
                    c"".as_ptr() as u64,
                    new_argv,
                    envp,
                    AT_EMPTY_PATH,
                    0,
                ],
            );
            // Only a failure returns; put the handler's mask back and let the kernel judge the original
            // call instead.
            raw(14, &[2, &saved as *const u64 as u64, 0, 8, 0, 0]);
            direct()
        }
        None => direct(),
    };
    SCRATCH_LOCK.store(false, Ordering::Release);
    result
}

/// Writes `[pager args..., --argv0, argv[0], --, path, argv[1]..., NULL]` into the scratch area.
fn build_argv(scratch: usize, path: u64, argv: u64) -> Option<u64> {
    let pointers = scratch as *mut u64;
    let max_pointers = SCRATCH_SIZE / 2 / 8;
    let mut count = 0usize;
    let mut strings = scratch + SCRATCH_SIZE / 2;
    let strings_end = scratch + SCRATCH_SIZE;
    let mut push = |value: u64| -> Option<()> {
        if count >= max_pointers {
            return None;
        }
        // SAFETY: count < max_pointers keeps the write inside the first half of the scratch area.
        unsafe { pointers.add(count).write(value) };
        count += 1;
        Some(())
    };
    // Copies the concatenation of `parts` and a NUL into the string half; returns its address.
    let mut copy_parts = |parts: &[&[u8]]| -> Option<u64> {
        let at = strings;
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let end = at.checked_add(len + 1)?;
        if end > strings_end {
            return None;
        }
        let mut cursor = at;
        for part in parts {
            // SAFETY: [at, end) lies in the second half of the scratch area.
            unsafe { core::ptr::copy_nonoverlapping(part.as_ptr(), cursor as *mut u8, part.len()) };
            cursor += part.len();
        }
        // SAFETY: as above.
        unsafe { (cursor as *mut u8).write(0) };
        strings = end;
        Some(at as u64)
    };
    let mut copy = |bytes: &[u8]| copy_parts(&[bytes]);
    // SAFETY: PREFIX is written only during set-up.
    let prefix = unsafe { &*core::ptr::addr_of!(PREFIX) };
    let prefix = prefix.get(..PREFIX_LEN.load(Ordering::Relaxed))?;
    let mut prefix_ptrs = [0u64; 8];
    let mut n = 0;
    for part in prefix.split(|&b| b == 0).filter(|p| !p.is_empty()) {
        *prefix_ptrs.get_mut(n)? = copy(part)?;
        n += 1;
    }
    for &p in prefix_ptrs.get(..n)? {
        push(p)?;
    }
    let argv0 = read_ptr(argv).filter(|&p| p != 0).unwrap_or(path);
    push(copy(b"--argv0")?)?;
    push(argv0)?;
    push(copy(b"--")?)?;
    // execve does not search PATH: a bare name means the current directory.
    // SAFETY: the path was made accessible and is NUL-terminated.
    let path_bytes = unsafe { core::slice::from_raw_parts(path as *const u8, c_len(path)) };
    if path_bytes.starts_with(b"/proc/self/") || path_bytes.starts_with(b"/proc/thread-self/") {
        // Names this process's files (busybox re-executes /proc/self/exe): resolve them here, since in
        // the new process they would name the pager's.
        let mut target = [0u8; 4096];
        let n = raw(
            89,
            &[
                path,
                target.as_mut_ptr() as u64,
                target.len() as u64,
                0,
                0,
                0,
            ],
        );
        let target = target.get(..usize::try_from(n).ok()?)?;
        push(copy(target)?)?;
    } else if path_bytes.contains(&b'/') {
        push(path)?;
    } else {
        push(copy_parts(&[b"./", path_bytes])?)?;
    }
    let mut i = 1;
    loop {
        let arg = read_ptr(argv.wrapping_add(8 * i))?;
        if arg == 0 {
            break;
        }
        push(arg)?;
        i += 1;
    }
    push(0)?;
    Some(scratch as u64)
}
