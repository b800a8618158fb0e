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
//! Runs in the SIGSYS handler: raw calls, fixed buffers, no allocation, no lock. The new argv is built
//! on the handler's stack (a pager stack, see `crate::threads`), so nothing is left behind in memory
//! when the exec succeeds: the child of a `vfork` shares its parent's memory, and a lock it took before
//! an exec that never returns would stay taken for the parent (the second `system()` hung on one).
//! An argv too long for the stack array goes in a mapping of its own, unmapped if the exec fails; after
//! a successful exec from a `vfork` child that mapping stays in the parent (a leak of one mapping per
//! such exec of more than [`ARGS_ON_STACK`] arguments).

use core::ffi::CStr;

use linux_raw_sys::general as k;

use crate::grant;
use crate::lock::Once;
use crate::sys::raw;
use crate::usermem::read_word;

/// Room for the pager's leading arguments: a few options and a `--log-append` path.
const PREFIX_ROOM: usize = 4096 + 256;

/// How to start the pager again, recorded by [`configure`].
struct Relaunch {
    /// The pager's own binary, by path (a descriptor kept for it would be one the program sees).
    self_path: [u8; MAX_STRING as usize],
    /// The pager's own leading arguments (`dpager -q --stats ...`), NUL-separated.
    prefix: [u8; PREFIX_ROOM],
    prefix_len: usize,
    /// The program's absolute path, NUL-terminated: what `/proc/self/exe` names natively (it names the
    /// pager when the pager could not point it at the program, as for an unprivileged user).
    program: [u8; MAX_STRING as usize],
}

static RELAUNCH: Once<Relaunch> = Once::new(Relaunch {
    self_path: [0; MAX_STRING as usize],
    prefix: [0; PREFIX_ROOM],
    prefix_len: 0,
    program: [0; MAX_STRING as usize],
});

const MAX_STRING: u64 = 4096;
/// Pointers of the new argv kept on the handler's stack (16 KiB).
pub const ARGS_ON_STACK: usize = 2048;
/// Most of the pager's own leading arguments.
const MAX_PREFIX: usize = 8;

/// Records how to start the pager again: its binary (`self_path`) and leading arguments (NUL-terminated
/// strings, concatenated), and the program's path (made absolute here, before the program can change
/// directory). Returns false if they do not fit.
///
/// # Safety
///
/// Single-threaded set-up, before the program runs.
pub unsafe fn configure(
    self_path: &core::ffi::CStr,
    prefix: &[u8],
    program: &core::ffi::CStr,
) -> bool {
    RELAUNCH.init(|r| fill(r, self_path, prefix, program))
}

fn fill(
    r: &mut Relaunch,
    self_path: &core::ffi::CStr,
    prefix: &[u8],
    program: &core::ffi::CStr,
) -> bool {
    let absolute = &mut r.program;
    let program = program.to_bytes();
    let mut at = 0;
    if !program.starts_with(b"/") {
        const GETCWD: u64 = k::__NR_getcwd as u64;
        let n = raw(
            GETCWD,
            &[
                absolute.as_mut_ptr() as u64,
                absolute.len() as u64,
                0,
                0,
                0,
                0,
            ],
        );
        // getcwd's length counts the NUL.
        let Some(len) = usize::try_from(n).ok().and_then(|n| n.checked_sub(1)) else {
            return false;
        };
        at = len;
        let Some(slash) = absolute.get_mut(at) else {
            return false;
        };
        *slash = b'/';
        at += 1;
    }
    let Some(dest) = absolute.get_mut(at..at + program.len() + 1) else {
        return false;
    };
    let Some((last, name)) = dest.split_last_mut() else {
        return false;
    };
    name.copy_from_slice(program);
    *last = 0;
    let slot = &mut r.prefix;
    // The last byte stays NUL, so every part is terminated.
    let Some(dest) = slot
        .get_mut(..prefix.len())
        .filter(|_| prefix.len() < PREFIX_ROOM)
    else {
        return false;
    };
    dest.copy_from_slice(prefix);
    if prefix.split(|&b| b == 0).filter(|p| !p.is_empty()).count() > MAX_PREFIX {
        return false;
    }
    r.prefix_len = prefix.len();
    let own = &mut r.self_path;
    let path = self_path.to_bytes_with_nul();
    let Some(dest) = own.get_mut(..path.len()) else {
        return false;
    };
    dest.copy_from_slice(path);
    true
}

/// Makes the path, the argv and envp arrays and their strings accessible where they lie in the image.
pub fn prefault_exec_args(path: u64, argv: u64, envp: u64) {
    grant::ensure_accessible(path, MAX_STRING);
    for array in [argv, envp] {
        let mut i = 0;
        while i < 65536 {
            let slot = array.wrapping_add(8 * i);
            grant::ensure_accessible(slot, 8);
            match read_word(slot) {
                Some(0) | None => break,
                Some(s) => grant::ensure_accessible(s, MAX_STRING),
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
    /// The first bytes of the file (`BINPRM_BUF_SIZE`).
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

    /// Ends the interpreter's path with a NUL in place (it is followed by a blank or the newline, never
    /// by the argument), so that [`Self::interp_c`] can be passed to the kernel.
    fn terminate_interp(&mut self) {
        if let Some(b) = self.line.get_mut(self.interp.1) {
            *b = 0;
        }
    }

    /// The interpreter's path as a C string; after [`Self::terminate_interp`].
    fn interp_c(&self) -> Option<u64> {
        (self.line.get(self.interp.1) == Some(&0))
            .then(|| self.line.get(self.interp.0..).map(|s| s.as_ptr() as u64))?
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
        // SAFETY: the path was made accessible and is NUL-terminated (read_head opened it).
        let path = unsafe { CStr::from_ptr(path as *const core::ffi::c_char) };
        return loadable(path, false).then_some(Target::Elf);
    }
    let mut shebang = Shebang::parse(line, len)?;
    let mut interp = [0u8; 256];
    let name = shebang.interp();
    interp.get_mut(..name.len())?.copy_from_slice(name);
    let mut magic = [0u8; 4];
    let got = read_head(interp.as_ptr() as u64, &mut magic)?;
    if got != 4 || magic != *b"\x7fELF" {
        return None;
    }
    let interp = CStr::from_bytes_until_nul(&interp).ok()?;
    if !loadable(interp, false) {
        return None;
    }
    shebang.terminate_interp();
    Some(Target::Script(shebang))
}

/// Whether the pager would load the ELF file at `path`: its file header and program headers pass
/// `uexec_elf`'s checks, it does not lie where the loader does, and its `PT_INTERP`, if any, names a
/// file that passes them too (an interpreter's own `PT_INTERP` is ignored, as by the kernel). What
/// fails here is left to the kernel's `execve`, which refuses it (`ENOEXEC`, `ELIBBAD`, `ENOENT`...)
/// to the caller, who goes on, or runs it (a 32-bit program, which the filter does not trap):
/// validated before the point of no return, as the kernel validates.
fn loadable(path: &CStr, is_interpreter: bool) -> bool {
    use rustix::fs::{Mode, OFlags};
    use uexec_elf::{interpreter_path, FileHeader, Image, Kind, EHDR_SIZE, MAX_PHDR_TABLE};
    /// The loaders' own range (`LOADER_IP_HIGH` in filter.rs): a fixed-address program there is refused.
    const LOADER: (u64, u64) = (0x3c00_0000_0000, 0x3c01_0000_0000);
    let Ok(fd) = rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()) else {
        return false;
    };
    let Ok(stat) = rustix::fs::fstat(&fd) else {
        return false;
    };
    let size = stat.st_size as u64;
    let read_at = |buf: &mut [u8], offset: u64| {
        let mut done = 0;
        while let Some(rest) = buf.get_mut(done..).filter(|r| !r.is_empty()) {
            match rustix::io::pread(&fd, rest, offset + done as u64) {
                Ok(0) | Err(_) => break,
                Ok(n) => done += n,
            }
        }
        done
    };
    let mut head = [0u8; EHDR_SIZE];
    let got = read_at(&mut head, 0);
    let Ok(header) = FileHeader::parse(head.get(..got).unwrap_or(&[]), size) else {
        return false;
    };
    // Tables up to a page (every real program's) on this stack, the pager's; larger ones (the kernel
    // reads up to MAX_PHDR_TABLE) in a mapping of their own, so that two nested checks (a program and
    // its interpreter) stay small.
    let table_len = header.phdr_table_len();
    let mut small = [0u8; 4096];
    let mut mapped = None;
    if table_len > small.len() {
        match Spill::new(table_len.min(MAX_PHDR_TABLE)) {
            Some(buffer) => mapped = Some(buffer),
            None => return false,
        }
    }
    let table = match mapped.as_mut() {
        Some(buffer) => buffer.bytes(),
        None => small.get_mut(..table_len).unwrap_or(&mut []),
    };
    if table.len() != table_len || read_at(table, header.phoff) != table.len() {
        return false;
    }
    let Ok(image) = Image::parse(&header, table, size) else {
        return false;
    };
    let (low, high) = image.span();
    if image.kind == Kind::Exec && low < LOADER.1 && high > LOADER.0 {
        return false;
    }
    match image.interp {
        Some(range) if !is_interpreter => {
            let mut bytes = [0u8; uexec_elf::MAX_INTERP_PATH];
            let Some(bytes) = usize::try_from(range.len)
                .ok()
                .and_then(|len| bytes.get_mut(..len))
            else {
                return false;
            };
            if read_at(bytes, range.offset) != bytes.len()
                || interpreter_path(bytes, range.segment).is_err()
            {
                return false;
            }
            // The path ends at its first NUL; NUL padding may follow (checked above).
            CStr::from_bytes_until_nul(bytes).is_ok_and(|interp| loadable(interp, true))
        }
        _ => true,
    }
}

/// An anonymous mapping for what is too large for the handler's stack (a long argv, a large
/// program-header table), unmapped on drop (an `execve` that succeeds never returns to drop it).
struct Spill {
    addr: *mut core::ffi::c_void,
    len: usize,
}

impl Spill {
    fn new(len: usize) -> Option<Self> {
        // SAFETY: without MAP_FIXED the kernel picks an unused range.
        let addr = unsafe {
            rustix::mm::mmap_anonymous(
                core::ptr::null_mut(),
                len,
                rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                rustix::mm::MapFlags::PRIVATE,
            )
        }
        .ok()?;
        Some(Self { addr, len })
    }

    fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: the mapping is `len` writable bytes, owned by this buffer, and used by one caller.
        unsafe { core::slice::from_raw_parts_mut(self.addr.cast::<u8>(), self.len) }
    }

    fn words(&mut self) -> &mut [u64] {
        // SAFETY: as for `bytes`; the mapping is page-aligned and zeroed, valid as u64s.
        unsafe { core::slice::from_raw_parts_mut(self.addr.cast::<u64>(), self.len / 8) }
    }
}

impl Drop for Spill {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, no longer referred to.
        let _ = unsafe { rustix::mm::munmap(self.addr, self.len) };
    }
}

/// Reads the first bytes of the executable file at the NUL-terminated `path` into `buf`; `None` if
/// it may not be executed or read.
fn read_head(path: u64, buf: &mut [u8]) -> Option<usize> {
    const ACCESS: u64 = k::__NR_access as u64;
    const OPEN: u64 = k::__NR_open as u64;
    const READ: u64 = k::__NR_read as u64;
    const CLOSE: u64 = k::__NR_close as u64;
    const X_OK: u64 = k::X_OK as u64;
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
    const EXECVE: u64 = k::__NR_execve as u64;
    const RT_SIGPROCMASK: u64 = k::__NR_rt_sigprocmask as u64;
    const SIG_SETMASK: u64 = k::SIG_SETMASK as u64;
    let direct = || raw(EXECVE, &[path, argv, envp, 0, 0, 0]);
    if !crate::usermem::readable_string(path, MAX_STRING as usize) {
        // A path the kernel cannot read: its EFAULT, without reading it here.
        return direct();
    }
    let Some(relaunch) = RELAUNCH.get() else {
        return direct();
    };
    let self_path = relaunch.self_path.as_ptr() as u64;
    // The program re-executing itself: what it runs natively is the program, whatever the link says
    // here (it names the pager when the pager could not point it at the program).
    let runs = if is_own_exe(path) {
        relaunch.program.as_ptr() as u64
    } else {
        path
    };
    let Some(target) = classify(runs) else {
        return direct();
    };
    let script = match &target {
        Target::Script(shebang) => Some(shebang),
        Target::Elf => None,
    };
    // The pager's arguments, `--argv0 X --`, the interpreter and its argument, the path, argv[1..], NULL.
    let needed = MAX_PREFIX + 7 + count_args(argv);
    let mut on_stack = [0u64; ARGS_ON_STACK];
    let mut mapped = None;
    if needed > ARGS_ON_STACK {
        match Spill::new(needed * 8) {
            Some(spill) => mapped = Some(spill),
            None => return direct(),
        }
    }
    let pointers: &mut [u64] = match mapped.as_mut() {
        Some(spill) => spill.words(),
        None => &mut on_stack,
    };
    let mut path_buf = [0u8; MAX_STRING as usize + 8];
    let result = match build_argv(pointers, &mut path_buf, path, argv, script) {
        Some(()) => {
            let mut saved = 0u64;
            raw(
                RT_SIGPROCMASK,
                &[
                    SIG_SETMASK,
                    &mask as *const u64 as u64,
                    &mut saved as *mut u64 as u64,
                    8,
                    0,
                    0,
                ],
            );
            raw(
                EXECVE,
                &[self_path, pointers.as_ptr() as u64, envp, 0, 0, 0],
            );
            // Only a failure returns; put the handler's mask back and let the kernel judge the original
            // call instead.
            raw(
                RT_SIGPROCMASK,
                &[SIG_SETMASK, &saved as *const u64 as u64, 0, 8, 0, 0],
            );
            direct()
        }
        None => direct(),
    };
    drop(mapped);
    result
}

/// Whether the NUL-terminated `path` (made accessible) is `/proc/self/exe` or `/proc/thread-self/exe`.
fn is_own_exe(path: u64) -> bool {
    // SAFETY: the path was made accessible and is NUL-terminated.
    let bytes = unsafe { core::slice::from_raw_parts(path as *const u8, c_len(path)) };
    bytes == b"/proc/self/exe" || bytes == b"/proc/thread-self/exe"
}

/// The number of entries of the NULL-terminated array `argv` (what `execve` would count).
fn count_args(argv: u64) -> usize {
    let mut n = 0;
    while read_word(argv.wrapping_add(8 * n as u64)).is_some_and(|p| p != 0) {
        n += 1;
    }
    n
}

/// Writes `[pager args..., --argv0, argv[0], --, path, argv[1]..., NULL]` into `pointers`; for a
/// script, `[pager args..., --argv0, INTERP, --, INTERP, [ARG], path, argv[1]..., NULL]`, the argv
/// `binfmt_script` gives the interpreter. Strings that are not already somewhere (`./` + a bare path,
/// the target of a `/proc/self/` link) go in `path_buf`.
fn build_argv(
    pointers: &mut [u64],
    path_buf: &mut [u8],
    path: u64,
    argv: u64,
    script: Option<&Shebang>,
) -> Option<()> {
    let mut count = 0usize;
    let mut push = |value: u64| -> Option<()> {
        *pointers.get_mut(count)? = value;
        count += 1;
        Some(())
    };
    let relaunch = RELAUNCH.get()?;
    let prefix = &relaunch.prefix;
    let len = relaunch.prefix_len;
    let mut start = 0;
    while start < len {
        let end = prefix.get(start..len)?.iter().position(|&b| b == 0)? + start;
        if end > start {
            // NUL-terminated inside PREFIX.
            push(prefix.get(start..)?.as_ptr() as u64)?;
        }
        start = end + 1;
    }
    let argv0 = c"--argv0".as_ptr() as u64;
    let dashes = c"--".as_ptr() as u64;
    if let Some(shebang) = script {
        // The interpreter's path, NUL-terminated, in the shebang's own buffer.
        let interp = shebang.interp_c()?;
        push(argv0)?;
        push(interp)?;
        push(dashes)?;
        push(interp)?;
        if let Some(arg) = shebang.arg() {
            let copy = path_buf.get_mut(..arg.len() + 1)?;
            copy.get_mut(..arg.len())?.copy_from_slice(arg);
            *copy.last_mut()? = 0;
            push(copy.as_ptr() as u64)?;
        }
        push(path)?;
        return push_rest(&mut push, argv);
    }
    push(argv0)?;
    push(read_word(argv).filter(|&p| p != 0).unwrap_or(path))?;
    push(dashes)?;
    // execve does not search PATH: a bare name means the current directory.
    // SAFETY: the path was made accessible and is NUL-terminated.
    let path_bytes = unsafe { core::slice::from_raw_parts(path as *const u8, c_len(path)) };
    if is_own_exe(path) {
        let program = &relaunch.program;
        push(program.as_ptr() as u64)?;
    } else if path_bytes.starts_with(b"/proc/self/")
        || path_bytes.starts_with(b"/proc/thread-self/")
    {
        // Names this process's files (busybox re-executes /proc/self/exe): resolve them here, since in
        // the new process they would name the pager's.
        const READLINK: u64 = k::__NR_readlink as u64;
        let room = path_buf.len() as u64 - 1;
        let n = raw(
            READLINK,
            &[path, path_buf.as_mut_ptr() as u64, room, 0, 0, 0],
        );
        *path_buf.get_mut(usize::try_from(n).ok()?)? = 0;
        push(path_buf.as_ptr() as u64)?;
    } else if path_bytes.contains(&b'/') {
        push(path)?;
    } else {
        let copy = path_buf.get_mut(..path_bytes.len() + 3)?;
        copy.get_mut(..2)?.copy_from_slice(b"./");
        copy.get_mut(2..2 + path_bytes.len())?
            .copy_from_slice(path_bytes);
        *copy.last_mut()? = 0;
        push(copy.as_ptr() as u64)?;
    }
    push_rest(&mut push, argv)
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
