//! `execve` by a demand-paged program.
//!
//! A seccomp filter survives `execve`, and the pager's traps it holds would raise SIGSYS in the new
//! program, which has no handler for them. So an ELF program the demand-paged program executes is
//! started through the pager again (the same binary, with the same paging options): the new process is
//! demand-paged in turn, and its pager handles the inherited traps. The program sees the `argv` it asked
//! for (`--argv0` carries `argv[0]`), its environment and its path as `AT_EXECFN`.
//!
//! A `#!` script whose interpreter is an ELF program is started the way the kernel's `binfmt_script`
//! would: its interpreter, through the pager, with the interpreter's name, the optional argument of the
//! `#!` line and the script's path before the script's own arguments. Anything else (a missing or
//! non-executable path, a script whose interpreter is itself a script) goes to the kernel as asked, so
//! the caller gets the error it would natively.
//!
//! # Safety
//!
//! Runs in the SIGSYS handler: raw calls, fixed buffers, no allocation. The scratch area is shared by all
//! threads under a spin flag; a successful exec never returns to release it, which is fine since the
//! process image is gone.

use core::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};

use crate::pager;
use crate::trap::{raw, read_word};

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

/// Makes the path, the argv and envp arrays and their strings accessible where they lie in the image.
pub fn prefault_exec_args(path: u64, argv: u64, envp: u64) {
    pager::ensure_accessible(path, MAX_STRING);
    for array in [argv, envp] {
        let mut i = 0;
        while i < 65536 {
            let slot = array.wrapping_add(8 * i);
            pager::ensure_accessible(slot, 8);
            match read_word(slot) {
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

/// What an `execve` would run.
// Lives on the handler's stack for one call; there is no allocator to box the script's line.
#[allow(clippy::large_enum_variant)]
enum Target {
    /// An executable ELF file.
    Elf,
    /// A `#!` script whose interpreter is an executable ELF file.
    Script(Shebang),
}

/// The `#!` line of a script, parsed as the kernel's `binfmt_script` does: the interpreter is the
/// first word after `#!`, and the rest of the line, trimmed, is one optional argument.
struct Shebang {
    /// The first bytes of the file (`BINPRM_BUF_SIZE`), then a NUL copy of the interpreter's path.
    line: [u8; 256],
    interp: (usize, usize),
    arg: Option<(usize, usize)>,
}

impl Shebang {
    fn parse(line: [u8; 256], len: usize) -> Option<Self> {
        let bytes = line.get(..len)?.strip_prefix(b"#!")?;
        let end = bytes.iter().position(|&b| b == b'\n')?;
        let text = bytes.get(..end)?;
        let blank = |b: &u8| *b == b' ' || *b == b'\t';
        let start = text.iter().position(|b| !blank(b))?;
        let word_end = text
            .iter()
            .skip(start)
            .position(blank)
            .map_or(text.len(), |n| start + n);
        let rest = text.get(word_end..)?;
        let arg = rest.iter().position(|b| !blank(b)).map(|a| {
            let last = rest.iter().rposition(|b| !blank(b)).unwrap_or(a);
            (2 + word_end + a, 2 + word_end + last + 1)
        });
        Some(Self {
            line,
            interp: (2 + start, 2 + word_end),
            arg,
        })
    }

    fn interp(&self) -> &[u8] {
        self.line.get(self.interp.0..self.interp.1).unwrap_or(&[])
    }

    fn arg(&self) -> Option<&[u8]> {
        self.arg.and_then(|(a, b)| self.line.get(a..b))
    }
}

/// What `path` names, if it is something the pager can start: an executable ELF file, or a script
/// whose interpreter is one.
fn classify(path: u64) -> Option<Target> {
    let mut line = [0u8; 256];
    let len = read_head(path, &mut line)?;
    if line.starts_with(b"\x7fELF") {
        return Some(Target::Elf);
    }
    let shebang = Shebang::parse(line, len)?;
    let mut interp = [0u8; 256];
    let name = shebang.interp();
    interp.get_mut(..name.len())?.copy_from_slice(name);
    let mut magic = [0u8; 4];
    let got = read_head(interp.as_ptr() as u64, &mut magic)?;
    (got == 4 && magic == *b"\x7fELF").then_some(Target::Script(shebang))
}

/// Reads the first bytes of the executable file at the NUL-terminated `path` into `buf`; `None` if
/// it may not be executed or read.
fn read_head(path: u64, buf: &mut [u8]) -> Option<usize> {
    const ACCESS: u64 = 21;
    const OPEN: u64 = 2;
    const READ: u64 = 0;
    const CLOSE: u64 = 3;
    const X_OK: u64 = 1;
    const O_RDONLY_CLOEXEC: u64 = 0o2000000;
    if raw(ACCESS, &[path, X_OK, 0, 0, 0, 0]) != 0 {
        return None;
    }
    let fd = raw(OPEN, &[path, O_RDONLY_CLOEXEC, 0, 0, 0, 0]);
    if fd < 0 {
        return None;
    }
    let got = raw(
        READ,
        &[
            fd as u64,
            buf.as_mut_ptr() as u64,
            buf.len() as u64,
            0,
            0,
            0,
        ],
    );
    raw(CLOSE, &[fd as u64, 0, 0, 0, 0, 0]);
    usize::try_from(got).ok()
}

/// Performs the program's `execve(path, argv, envp)`, through the pager when it is an ELF program.
/// `mask` is the program's blocked set, which the new process inherits (not the handler's).
pub fn through_pager(path: u64, argv: u64, envp: u64, mask: u64) -> i64 {
    const EXECVE: u64 = 59;
    const EXECVEAT: u64 = 322;
    let direct = || raw(EXECVE, &[path, argv, envp, 0, 0, 0]);
    let self_fd = SELF_FD.load(Ordering::Relaxed);
    let scratch = SCRATCH.load(Ordering::Relaxed);
    if self_fd < 0 || scratch == 0 {
        return direct();
    }
    let Some(target) = classify(path) else {
        return direct();
    };
    while SCRATCH_LOCK.swap(true, Ordering::Acquire) {
        core::hint::spin_loop();
    }
    let script = match &target {
        Target::Script(shebang) => Some(shebang),
        Target::Elf => None,
    };
    let result = match build_argv(scratch, path, argv, script) {
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

/// Writes `[pager args..., --argv0, argv[0], --, path, argv[1]..., NULL]` into the scratch area; for a
/// script, `[pager args..., --argv0, INTERP, --, INTERP, [ARG], path, argv[1]..., NULL]`, the argv
/// `binfmt_script` gives the interpreter.
fn build_argv(scratch: usize, path: u64, argv: u64, script: Option<&Shebang>) -> Option<u64> {
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
    if let Some(shebang) = script {
        let interp = copy(shebang.interp())?;
        push(copy(b"--argv0")?)?;
        push(interp)?;
        push(copy(b"--")?)?;
        push(interp)?;
        if let Some(arg) = shebang.arg() {
            push(copy(arg)?)?;
        }
        push(path)?;
        return push_rest(&mut push, argv).map(|()| scratch as u64);
    }
    let argv0 = read_word(argv).filter(|&p| p != 0).unwrap_or(path);
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
    push_rest(&mut push, argv).map(|()| scratch as u64)
}

/// Pushes `argv[1..]` and the terminating NULL.
fn push_rest(push: &mut impl FnMut(u64) -> Option<()>, argv: u64) -> Option<()> {
    let mut i = 1;
    loop {
        let arg = read_word(argv.wrapping_add(8 * i))?;
        if arg == 0 {
            break;
        }
        push(arg)?;
        i += 1;
    }
    push(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &[u8]) -> Option<Shebang> {
        let mut line = [0u8; 256];
        line[..text.len()].copy_from_slice(text);
        Shebang::parse(line, text.len())
    }

    #[test]
    fn shebang_lines_parse_as_binfmt_script_does() {
        let s = parse(b"#!/bin/sh\necho\n").unwrap();
        assert_eq!((s.interp(), s.arg()), (&b"/bin/sh"[..], None));
        let s = parse(b"#!  /usr/bin/env   python3 -u  \nprint()\n").unwrap();
        assert_eq!(
            (s.interp(), s.arg()),
            (&b"/usr/bin/env"[..], Some(&b"python3 -u"[..]))
        );
        let s = parse(b"#!/bin/busybox\tsh\t\n").unwrap();
        assert_eq!(
            (s.interp(), s.arg()),
            (&b"/bin/busybox"[..], Some(&b"sh"[..]))
        );
        assert!(parse(b"#!\n").is_none());
        assert!(parse(b"#!   \n").is_none());
        assert!(parse(b"#!/bin/sh").is_none()); // no end of line within the bytes read
        assert!(parse(b"echo hi\n").is_none());
    }
}
