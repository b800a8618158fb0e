//! Checkpoint capture: on a signal, write an image (docs/checkpoint.md) of the running process to a
//! file and let the process go on undisturbed.
//!
//! [`install`] is called once, before the program runs, by whoever hosts the program (a loader, or
//! the preload library): it records where the image goes and which parts of the address space and
//! which descriptors are the host's own, maps a scratch area and installs the handler. The handler
//! ([`on_checkpoint`]) takes the registers and FPU state from its own signal frame, reads
//! `/proc/self/{stat,auxv,maps,pagemap,mem,fd}`, and streams the records through [`writer::Writer`] into
//! `IMAGE.tmp`, which it renames over `IMAGE` only when the image is complete: a failed or interrupted
//! checkpoint leaves the previous image whole.
//!
//! Code here runs in a signal handler: raw system calls (rustix's linux_raw backend), atomics and the
//! fixed scratch area only; no allocator, locks, TLS or panics.
#![cfg_attr(not(test), no_std)]

pub mod frame;
pub mod procfs;
pub mod sys;
mod writer;

use core::cell::UnsafeCell;
use core::ffi::CStr;
use core::fmt::Write as _;
use core::sync::atomic::{AtomicBool, Ordering};

use linux_raw_sys::general as k;
use rustix::fd::{BorrowedFd, OwnedFd};
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::mm::{MapFlags, ProtFlags};
use uexec_ckpt::{flags, tag, PAGE_SIZE};

use sys::KernelSigaction;
use writer::Writer;

/// Most host ranges or descriptors a host may declare.
const MAX_HOST: usize = 8;
/// Longest image path, NUL included.
const PATH_MAX: usize = 4096;
/// Most regular files an image may hold (what urestart reopens).
pub const MAX_FILES: usize = 1024;

/// Where the image goes and what is not the program's.
pub struct Config<'a> {
    /// The host's name, for messages (`apager`, `urestart`...).
    pub tool: &'static str,
    /// The checkpoint signal.
    pub signal: u32,
    /// The image's path; a relative one is taken from the current directory at [`install`].
    pub image: &'a CStr,
    /// Address ranges that are the host's, never saved.
    pub host_ranges: &'a [(u64, u64)],
    /// Mappings containing one of these addresses are the host's (its stack, say).
    pub host_addresses: &'a [u64],
    /// Descriptors that are the host's.
    pub host_fds: &'a [i32],
    /// Where to map the scratch area (`None`: where the kernel likes).
    pub scratch_at: Option<u64>,
    /// For a host that virtualises part of the process (a demand pager), how to see it as the
    /// program does.
    pub hooks: Option<&'static Hooks>,
}

/// An alternate signal stack: `ss_sp`, `ss_flags`, `ss_size`.
pub type AltStack = (u64, u32, u64);

/// What a host that keeps part of the process virtual provides, so that the image holds what the
/// program would see natively. Each runs in the handler, under its rules.
pub struct Hooks {
    /// Called first: make every page hold, and be protected as, what the program would see.
    pub prepare: fn(),
    /// The program's disposition of a signal, given the real one.
    pub sigaction: fn(u32, KernelSigaction) -> KernelSigaction,
    /// The program's blocked set, given the real one of the interrupted thread.
    pub sigmask: fn(u64) -> u64,
    /// The program's alternate stack (sp, flags, size), given the real one.
    pub altstack: fn(AltStack) -> AltStack,
}

/// Why [`install`] failed.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum InstallError {
    /// Too many host ranges, addresses or descriptors, or an image path too long.
    TooMuch,
    /// The signal cannot carry a checkpoint (SIGKILL, SIGSTOP, out of range).
    BadSignal,
    /// A system call failed.
    Os(Errno),
}

struct State {
    tool: &'static str,
    signal: u32,
    path: [u8; PATH_MAX],
    ranges: [(u64, u64); MAX_HOST + 1],
    addresses: [u64; MAX_HOST],
    fds: [i32; MAX_HOST],
    scratch: u64,
    hooks: Option<&'static Hooks>,
}

struct Shared(UnsafeCell<State>);
// SAFETY: written only by `install`, before the handler exists; read-only afterwards.
unsafe impl Sync for Shared {}

static STATE: Shared = Shared(UnsafeCell::new(State {
    tool: "",
    signal: 0,
    path: [0; PATH_MAX],
    ranges: [(0, 0); MAX_HOST + 1],
    addresses: [0; MAX_HOST],
    fds: [-1; MAX_HOST],
    scratch: 0,
    hooks: None,
}));
static BUSY: AtomicBool = AtomicBool::new(false);

/// Scratch layout (offsets into the area).
const AUXV_AT: usize = 4 << 10;
const RSEQ_AT: usize = 8 << 10;
/// Directory entries (2 KiB), then paths (readlink, getcwd: up to PATH_MAX).
const TEXT_AT: usize = 12 << 10;
/// `PATH.tmp.PID`.
const TMP_NAME_AT: usize = 20 << 10;
/// One flag per page of a chunk: whether it may hold data.
const MAYBE_AT: usize = 28 << 10;
const PAGEMAP_AT: usize = 32 << 10;
const WRITE_BUF_AT: usize = 64 << 10;
const WRITE_BUF_LEN: usize = 64 << 10;
const BOUNCE_AT: usize = 128 << 10;
/// Pages read or judged at a time.
/// Pages read or judged at a time: also the longest run, and so, with `urestart --lazy`, the largest
/// piece of a region mapped from the image file in one mapping.
const CHUNK_PAGES: usize = 2048;
const MAPS_AT: usize = BOUNCE_AT + CHUNK_PAGES * 4096;
const SCRATCH_LEN: usize = 48 << 20;

fn state() -> &'static State {
    // SAFETY: see `Shared`.
    unsafe { &*STATE.0.get() }
}

/// The signals `--ckpt-signal` accepts by name (with or without `SIG`), besides numbers.
const SIGNAL_NAMES: &[(&[u8], u32)] = &[
    (b"HUP", 1),
    (b"INT", 2),
    (b"QUIT", 3),
    (b"USR1", 10),
    (b"USR2", 12),
    (b"PIPE", 13),
    (b"ALRM", 14),
    (b"TERM", 15),
    (b"CONT", 18),
    (b"TSTP", 20),
    (b"TTIN", 21),
    (b"TTOU", 22),
    (b"URG", 23),
    (b"XCPU", 24),
    (b"XFSZ", 25),
    (b"VTALRM", 26),
    (b"PROF", 27),
    (b"WINCH", 28),
    (b"IO", 29),
    (b"PWR", 30),
];

/// Parses a checkpoint signal: a name (`USR2`, `SIGUSR2`), a number, or `RTMIN+N`. Signals a
/// checkpoint cannot use (KILL, STOP, the pagers' SEGV and SYS, others that report faults) are
/// refused.
pub fn signal_by_name(text: &[u8]) -> Option<u32> {
    let name = text.strip_prefix(b"SIG").unwrap_or(text);
    let number = if let Some(n) = name.strip_prefix(b"RTMIN+") {
        34 + core::str::from_utf8(n).ok()?.parse::<u32>().ok()?
    } else if name == b"RTMIN" {
        34
    } else if let Some(&(_, n)) = SIGNAL_NAMES.iter().find(|(s, _)| *s == name) {
        n
    } else {
        core::str::from_utf8(name).ok()?.parse::<u32>().ok()?
    };
    // 4 ILL, 5 TRAP, 6 ABRT, 7 BUS, 8 FPE, 9 KILL, 11 SEGV, 17 CHLD, 19 STOP, 31 SYS.
    let unusable = [4, 5, 6, 7, 8, 9, 11, 17, 19, 31];
    ((1..=64).contains(&number) && !unusable.contains(&number)).then_some(number)
}

/// Installs the checkpoint handler for `config.signal`.
///
/// # Safety
///
/// Call once, single-threaded, before the program runs; the host's code (this crate's) must stay
/// mapped for as long as the program runs.
pub unsafe fn install(config: &Config<'_>) -> Result<(), InstallError> {
    let sig = config.signal;
    if sig == 0 || sig > 64 || sig == k::SIGKILL || sig == k::SIGSTOP {
        return Err(InstallError::BadSignal);
    }
    if config.host_ranges.len() > MAX_HOST
        || config.host_addresses.len() > MAX_HOST
        || config.host_fds.len() > MAX_HOST
    {
        return Err(InstallError::TooMuch);
    }
    // SAFETY: per the contract, nothing else runs yet.
    let st = unsafe { &mut *STATE.0.get() };
    st.tool = config.tool;
    st.signal = sig;
    st.hooks = config.hooks;
    // Made absolute now: the program may change directory before it is checkpointed.
    let end =
        sys::absolute_path(config.image.to_bytes(), &mut st.path).ok_or(InstallError::TooMuch)?;
    if end + 1 > PATH_MAX {
        return Err(InstallError::TooMuch);
    }
    for (slot, r) in st.ranges.iter_mut().zip(config.host_ranges) {
        *slot = *r;
    }
    for (slot, a) in st.addresses.iter_mut().zip(config.host_addresses) {
        *slot = *a;
    }
    for (slot, fd) in st.fds.iter_mut().zip(config.host_fds) {
        *slot = *fd;
    }
    let (hint, fixed) = match config.scratch_at {
        Some(at) => (at as *mut core::ffi::c_void, MapFlags::FIXED_NOREPLACE),
        None => (core::ptr::null_mut(), MapFlags::empty()),
    };
    // SAFETY: a fresh private mapping, at a free address (FIXED_NOREPLACE) or where the kernel likes.
    let scratch = unsafe {
        rustix::mm::mmap_anonymous(
            hint,
            SCRATCH_LEN,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::PRIVATE | MapFlags::NORESERVE | fixed,
        )
    }
    .map_err(InstallError::Os)? as u64;
    st.scratch = scratch;
    st.ranges[MAX_HOST] = (scratch, scratch + SCRATCH_LEN as u64);
    install_handler(sig).map_err(InstallError::Os)
}

/// (Re)installs the handler for `sig` (a restarted program gets it back this way).
pub fn install_handler(sig: u32) -> Result<(), Errno> {
    let action = KernelSigaction {
        handler: on_checkpoint as *const () as u64,
        flags: u64::from(k::SA_SIGINFO | k::SA_ONSTACK | k::SA_RESTART | k::SA_RESTORER),
        restorer: sys::restore_rt as *const () as u64,
        mask: !0,
    };
    // SAFETY: the handler follows the signal-handler rules and stays mapped (install's contract).
    match unsafe { sys::rt_sigaction(sig, Some(&action), None) } {
        0 => Ok(()),
        e => Err(Errno::from_raw_os_error(-e as i32)),
    }
}

/// The checkpoint signal's handler.
extern "C" fn on_checkpoint(_sig: i32, _info: *mut core::ffi::c_void, uc: *mut core::ffi::c_void) {
    if BUSY.swap(true, Ordering::Acquire) {
        return;
    }
    // SAFETY: the kernel passes this handler its own signal frame's ucontext.
    let frame = unsafe { core::slice::from_raw_parts(uc as *const u8, frame::UC_SIZE) };
    if let Err(failure) = capture(frame) {
        report(failure);
    }
    BUSY.store(false, Ordering::Release);
}

/// Why a checkpoint was not written.
#[derive(Copy, Clone, Debug)]
enum Failure {
    Threads(u64),
    Read(&'static str, Errno),
    Unparsable(&'static str),
    Create(Errno),
    Write(Errno),
    Rename(Errno),
    NoFpState,
    InHost,
    RseqUnknown,
    TooManyFiles,
}

struct Line {
    buf: [u8; 512],
    len: usize,
}

impl core::fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let b = s.as_bytes();
        let n = b.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&b[..n]);
        self.len += n;
        Ok(())
    }
}

/// Writes one formatted line (at most 512 bytes) to fd 2 with a single `write`: no allocation, no
/// lock, usable in a signal handler and after the process's memory was rebuilt.
pub fn say(args: core::fmt::Arguments<'_>) {
    let mut line = Line {
        buf: [0; 512],
        len: 0,
    };
    let _ = line.write_fmt(args);
    // SAFETY: fd 2 is only borrowed for this write.
    let _ = rustix::io::write(unsafe { BorrowedFd::borrow_raw(2) }, &line.buf[..line.len]);
}

fn report(failure: Failure) {
    let tool = state().tool;
    let path = Lossy(until_nul(&state().path));
    match failure {
        Failure::Threads(n) => say(format_args!(
            "{tool}: checkpoint refused: the program has {n} threads; only single-threaded programs are checkpointed ({path} unchanged)\n"
        )),
        Failure::Read(what, e) => say(format_args!("{tool}: checkpoint not written: cannot read {what}: {e} ({path} unchanged)\n")),
        Failure::Unparsable(what) => say(format_args!("{tool}: checkpoint not written: cannot parse {what} ({path} unchanged)\n")),
        Failure::Create(e) => say(format_args!("{tool}: checkpoint not written: cannot create a temporary file beside {path}: {e}\n")),
        Failure::Write(e) => say(format_args!("{tool}: checkpoint not written: writing the image: {e} ({path} unchanged)\n")),
        Failure::Rename(e) => say(format_args!("{tool}: checkpoint not written: cannot rename the image to {path}: {e}\n")),
        Failure::NoFpState => say(format_args!("{tool}: checkpoint not written: the signal frame has no FPU state\n")),
        Failure::InHost => say(format_args!("{tool}: checkpoint not written: the signal came while {tool}'s own code ran; send it again ({path} unchanged)\n")),
        Failure::RseqUnknown => say(format_args!("{tool}: checkpoint not written: the program's rseq registration could not be found ({path} unchanged)\n")),
        Failure::TooManyFiles => say(format_args!("{tool}: checkpoint not written: more than {MAX_FILES} open files ({path} unchanged)\n")),
    }
}

struct Lossy<'a>(&'a [u8]);
impl core::fmt::Display for Lossy<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for chunk in self.0.utf8_chunks() {
            f.write_str(chunk.valid())?;
            if !chunk.invalid().is_empty() {
                f.write_str("\u{fffd}")?;
            }
        }
        Ok(())
    }
}

fn until_nul(b: &[u8]) -> &[u8] {
    let n = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    &b[..n]
}

fn cstr(b: &[u8]) -> &CStr {
    CStr::from_bytes_until_nul(b).unwrap_or(c"")
}

fn word(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8)
        .and_then(|w| <[u8; 8]>::try_from(w).ok())
        .map_or(0, u64::from_le_bytes)
}

/// Writes the whole image of the interrupted program, whose registers are in `frame`.
fn capture(frame: &[u8]) -> Result<(), Failure> {
    let st = state();
    if let Some(hooks) = st.hooks {
        (hooks.prepare)();
    }
    // SAFETY: the scratch area is this handler's alone (BUSY), mapped at install and never unmapped.
    let scratch = unsafe { core::slice::from_raw_parts_mut(st.scratch as *mut u8, SCRATCH_LEN) };
    let (head, rest) = scratch.split_at_mut(WRITE_BUF_AT);
    let (write_buf, rest) = rest.split_at_mut(WRITE_BUF_LEN);
    let (bounce, maps_area) = rest.split_at_mut(MAPS_AT - BOUNCE_AT);
    let (small, pagemap_area) = head.split_at_mut(PAGEMAP_AT);
    let (stat_buf, small) = small.split_at_mut(AUXV_AT);
    let (auxv_buf, small) = small.split_at_mut(RSEQ_AT - AUXV_AT);
    let (rseq_area, small) = small.split_at_mut(TEXT_AT - RSEQ_AT);
    let (text, small) = small.split_at_mut(TMP_NAME_AT - TEXT_AT);
    let (tmp_name, maybe) = small.split_at_mut(MAYBE_AT - TMP_NAME_AT);
    let stat_text = sys::read_file(c"/proc/self/stat", stat_buf)
        .map_err(|e| Failure::Read("/proc/self/stat", e))?;
    let stat = procfs::stat(stat_text).ok_or(Failure::Unparsable("/proc/self/stat"))?;
    if stat.threads > 1 {
        return Err(Failure::Threads(stat.threads));
    }
    // Interrupted in the host's own code (a loader's handler, urestart's set-up): that state cannot
    // be restarted without the host.
    let rip = word(frame, frame::UC_GREGS + 8 * frame::REG_RIP);
    let rsp = word(frame, frame::UC_GREGS + 8 * frame::REG_RSP);
    if is_host(st, rip, rip + 1) || is_host(st, rsp, rsp + 1) {
        return Err(Failure::InHost);
    }
    let room = maps_area.len();
    let maps = sys::read_file(c"/proc/self/maps", maps_area)
        .map_err(|e| Failure::Read("/proc/self/maps", e))?;
    if maps.len() == room {
        return Err(Failure::Unparsable("/proc/self/maps (too long)"));
    }
    let auxv = sys::read_file(c"/proc/self/auxv", auxv_buf)
        .map_err(|e| Failure::Read("/proc/self/auxv", e))?;
    let auxv = auxv.get(..auxv.len() / 16 * 16).unwrap_or(&[]);
    let auxv = auxv
        .get(..auxv.len().min(uexec_ckpt::MAX_AUXV))
        .unwrap_or(&[]);

    // PATH.tmp.PID, created exclusively: two processes checkpointing to one path (a parent and its
    // child) never write into the same file, and the last rename wins with a whole image.
    let tmp = tmp_path(&st.path, tmp_name).ok_or(Failure::Create(Errno::NAMETOOLONG))?;
    let _ = rustix::fs::unlink(tmp);
    let fd = rustix::fs::open(
        tmp,
        OFlags::WRONLY
            | OFlags::CREATE
            | OFlags::EXCL
            | OFlags::CLOEXEC
            | OFlags::NOFOLLOW
            | OFlags::NONBLOCK,
        Mode::from_raw_mode(0o600),
    )
    .map_err(Failure::Create)?;
    let tmp_fd = rustix::fd::AsRawFd::as_raw_fd(&fd);
    // A write past RLIMIT_FSIZE raises SIGXFSZ, which would kill the program once the handler
    // returns: ignored while the image is written (the failure is reported instead).
    let ignore = KernelSigaction {
        handler: 1, // SIG_IGN
        ..KernelSigaction::default()
    };
    let mut xfsz = KernelSigaction::default();
    // SAFETY: SIG_IGN for SIGXFSZ, put back below.
    unsafe { sys::rt_sigaction(k::SIGXFSZ, Some(&ignore), Some(&mut xfsz)) };
    let result = write_image(
        st,
        frame,
        fd,
        tmp_fd,
        write_buf,
        &stat,
        auxv,
        rseq_area,
        text,
        maps,
        bounce,
        pagemap_area,
        maybe,
    );
    // Blocked signals are never discarded as ignored, so a SIGXFSZ raised meanwhile is pending;
    // setting SIG_IGN again discards it (do_sigaction), then the program's own action returns.
    // SAFETY: SIG_IGN, then the program's own action, as it was.
    unsafe {
        sys::rt_sigaction(k::SIGXFSZ, Some(&ignore), None);
        sys::rt_sigaction(k::SIGXFSZ, Some(&xfsz), None);
    }
    match result {
        Ok(()) => rustix::fs::rename(tmp, cstr(&st.path)).map_err(Failure::Rename),
        Err(e) => {
            let _ = rustix::fs::unlink(tmp);
            Err(e)
        }
    }
}

/// `PATH.tmp.PID` in `buf`.
fn tmp_path<'b>(path: &[u8], buf: &'b mut [u8]) -> Option<&'b CStr> {
    let path = until_nul(path);
    let mut line = Line {
        buf: [0; 512],
        len: 0,
    };
    let _ = write!(line, ".tmp.{}", rustix::process::getpid().as_raw_nonzero());
    let suffix = line.buf.get(..line.len)?;
    let end = path.len() + suffix.len();
    buf.get_mut(..path.len())?.copy_from_slice(path);
    buf.get_mut(path.len()..end)?.copy_from_slice(suffix);
    *buf.get_mut(end)? = 0;
    CStr::from_bytes_with_nul(buf.get(..=end)?).ok()
}

/// Writes the records of the image to `fd`.
#[allow(clippy::too_many_arguments)]
fn write_image(
    st: &State,
    frame: &[u8],
    fd: OwnedFd,
    tmp_fd: i32,
    write_buf: &mut [u8],
    stat: &procfs::Stat,
    auxv: &[u8],
    rseq_area: &mut [u8],
    text: &mut [u8],
    maps: &[u8],
    bounce: &mut [u8],
    pagemap_area: &mut [u8],
    maybe: &mut [u8],
) -> Result<(), Failure> {
    let mut w = Writer::new(fd, write_buf);
    w.header(&uexec_ckpt::header(PAGE_SIZE as u32, st.signal));
    registers(&mut w, frame)?;
    signals(&mut w, st.signal);
    w.begin(tag::MM);
    let mut mm = stat.mm;
    mm[5] = sys::current_brk();
    for f in mm {
        w.u64(f);
    }
    w.u64(auxv.len() as u64);
    w.put(auxv);
    w.end();
    match probe_rseq(rseq_area) {
        Rseq::None => {}
        Rseq::At(addr, len, sig) => {
            w.begin(tag::RSEQ);
            w.u64(addr);
            w.u32(len);
            w.u32(sig);
            w.end();
        }
        // A restarted program would believe it registered while it is not.
        Rseq::Unknown => return Err(Failure::RseqUnknown),
    }
    match sys::getcwd(text) {
        Ok(n) => {
            w.begin(tag::CWD);
            w.put(text.get(..n).unwrap_or(&[]));
            w.end();
        }
        Err(e) => {
            return Err(Failure::Read(
                "the working directory",
                Errno::from_raw_os_error(-e as i32),
            ))
        }
    }
    files(&mut w, tmp_fd, text)?;
    let mem = rustix::fs::open(
        c"/proc/self/mem",
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Failure::Read("/proc/self/mem", e))?;
    let pagemap = rustix::fs::open(
        c"/proc/self/pagemap",
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Failure::Read("/proc/self/pagemap", e))?;
    for m in procfs::mappings(maps) {
        let m = m.ok_or(Failure::Unparsable("/proc/self/maps"))?;
        if is_host(st, m.start, m.end) || m.end > 1 << 47 {
            continue;
        }
        region(&mut w, &m, &mem, &pagemap, bounce, pagemap_area, maybe);
    }
    w.begin(tag::END);
    w.end();
    let fd = w.finish().map_err(Failure::Write)?;
    drop(fd);
    Ok(())
}

fn is_host(st: &State, start: u64, end: u64) -> bool {
    st.ranges
        .iter()
        .any(|&(lo, hi)| lo < hi && start < hi && lo < end)
        || st
            .addresses
            .iter()
            .any(|&a| a != 0 && start <= a && a < end)
}

/// The REGISTERS record, from the handler's signal frame.
fn registers(w: &mut Writer<'_>, uc: &[u8]) -> Result<(), Failure> {
    let fp = word(uc, frame::UC_FPSTATE);
    if fp == 0 {
        return Err(Failure::NoFpState);
    }
    // SAFETY: the kernel's frame points `fpstate` at its FP area, at least the FXSAVE area long.
    let fx = unsafe { core::slice::from_raw_parts(fp as *const u8, frame::FX_SIZE) };
    let fp_len = frame::fp_area_len(fx).clamp(frame::FX_SIZE, uexec_ckpt::MAX_XSAVE);
    if fp_len < frame::FX_SIZE + 64 {
        return Err(Failure::NoFpState);
    }
    // SAFETY: `extended_size` bytes of FP area are in the frame (the kernel wrote them).
    let fp_area = unsafe { core::slice::from_raw_parts(fp as *const u8, fp_len) };
    w.begin(tag::REGISTERS);
    w.u64(word(uc, frame::UC_FLAGS));
    for i in 0..uexec_ckpt::NGREG {
        w.u64(word(uc, frame::UC_GREGS + 8 * i));
    }
    let mut mask = word(uc, frame::UC_SIGMASK);
    let mut altstack = (
        word(uc, frame::UC_STACK_SP),
        word(uc, frame::UC_STACK_FLAGS) as u32,
        word(uc, frame::UC_STACK_SIZE),
    );
    if let Some(hooks) = state().hooks {
        mask = (hooks.sigmask)(mask);
        altstack = (hooks.altstack)(altstack);
    }
    w.u64(mask);
    w.u64(altstack.0);
    w.u64(u64::from(altstack.1));
    w.u64(altstack.2);
    w.u64(sys::segment_base(sys::ARCH_GET_FS));
    w.u64(sys::segment_base(sys::ARCH_GET_GS));
    w.u64(fp_len as u64);
    w.put(fp_area);
    w.align8();
    w.end();
    Ok(())
}

/// The SIGNALS record: the program's disposition of every signal; the checkpoint signal's own is
/// recorded as the default (the program never set it).
fn signals(w: &mut Writer<'_>, ours: u32) {
    w.begin(tag::SIGNALS);
    for sig in 1..=uexec_ckpt::NSIG as u32 {
        let a = if sig == ours {
            KernelSigaction::default()
        } else {
            let real = sys::sigaction_of(sig).unwrap_or_default();
            match state().hooks {
                Some(hooks) => (hooks.sigaction)(sig, real),
                None => real,
            }
        };
        for v in [a.handler, a.flags, a.restorer, a.mask] {
            w.u64(v);
        }
    }
    w.end();
}

/// glibc's and the kernel selftests' rseq signature on x86.
const RSEQ_SIG: u32 = 0x5305_3053;
const RSEQ_FLAG_UNREGISTER: u32 = 1;

/// Finds the thread's rseq registration, which the kernel does not report to the thread itself.
///
/// Registering our own scratch area tells whether there is one: it succeeds only if there is not
/// (and is undone at once). If there is, registering its exact address, length and signature again
/// answers EBUSY and any other address EINVAL, so the words around the thread pointer (where glibc
/// keeps its `struct rseq`) are tried in turn; nothing is registered or written meanwhile.
fn probe_rseq(area: &mut [u8]) -> Rseq {
    let own = (area.as_mut_ptr() as u64 + 31) & !31;
    // SAFETY: `own` is 32 bytes of the scratch area, which stays mapped; it is unregistered at once.
    let r = unsafe { sys::rseq(own, 32, 0, RSEQ_SIG) };
    if r == 0 {
        // SAFETY: undoes the registration just made.
        unsafe { sys::rseq(own, 32, RSEQ_FLAG_UNREGISTER, RSEQ_SIG) };
        return Rseq::None;
    }
    if r != -(linux_raw_sys::errno::EINVAL as i64) {
        // No rseq in this kernel (ENOSYS), or it is refused to us: nothing to restore either.
        return Rseq::None;
    }
    let tp = sys::segment_base(sys::ARCH_GET_FS) & !31;
    let low = tp.saturating_sub(8192);
    let found = (0..(8192 + 8192) / 32)
        .map(|i| low + 32 * i)
        .find_map(|addr| {
            // SAFETY: a registration exists, so this call registers nothing: it only compares.
            let r = unsafe { sys::rseq(addr, 32, 0, RSEQ_SIG) };
            (r == -(linux_raw_sys::errno::EBUSY as i64)).then_some((addr, 32, RSEQ_SIG))
        });
    match found {
        Some((addr, len, sig)) => Rseq::At(addr, len, sig),
        // There is one, of another length or signature, or away from the thread pointer.
        None => Rseq::Unknown,
    }
}

/// What [`probe_rseq`] found.
enum Rseq {
    None,
    At(u64, u32, u32),
    Unknown,
}

/// FILE records for the regular files open on descriptors 3 and up; other kinds are reported and left
/// out (a restarted program finds those descriptors closed).
fn files(w: &mut Writer<'_>, tmp_fd: i32, text: &mut [u8]) -> Result<(), Failure> {
    let st = state();
    let dir = rustix::fs::open(
        c"/proc/self/fd",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Failure::Read("/proc/self/fd", e))?;
    let dir_fd = rustix::fd::AsRawFd::as_raw_fd(&dir);
    let (dirbuf, text) = text.split_at_mut(2048);
    // SAFETY: `dirbuf` is plain bytes; RawDir only writes into it.
    let dirbuf = unsafe {
        core::slice::from_raw_parts_mut(
            dirbuf.as_mut_ptr().cast::<core::mem::MaybeUninit<u8>>(),
            dirbuf.len(),
        )
    };
    let mut entries = rustix::fs::RawDir::new(&dir, dirbuf);
    let mut saved = 0;
    while let Some(entry) = entries.next() {
        let Ok(entry) = entry else { break };
        let name = entry.file_name();
        let Some(fd) = core::str::from_utf8(name.to_bytes())
            .ok()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if fd < 3 || fd == dir_fd || fd == tmp_fd || st.fds.contains(&fd) {
            continue;
        }
        // SAFETY: the descriptor is open (listed) and only borrowed for these queries.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let Ok(n) = rustix::fs::readlinkat_raw(&dir, name, &mut *text) else {
            continue;
        };
        let path: &[u8] = text.get(..n).unwrap_or(&[]);
        let Ok(stat) = rustix::fs::fstat(borrowed) else {
            continue;
        };
        let regular =
            rustix::fs::FileType::from_raw_mode(stat.st_mode) == rustix::fs::FileType::RegularFile;
        let deleted = path.ends_with(b" (deleted)");
        if !regular || deleted || path.first() != Some(&b'/') {
            let why = if deleted {
                "its file was deleted"
            } else {
                "not a regular file"
            };
            say(format_args!(
                "{}: checkpoint: descriptor {fd} ({}) not saved: {why}\n",
                st.tool,
                Lossy(path)
            ));
            continue;
        }
        let status = rustix::fs::fcntl_getfl(borrowed).map_or(0, |f| f.bits());
        let cloexec = rustix::io::fcntl_getfd(borrowed)
            .is_ok_and(|f| f.contains(rustix::io::FdFlags::CLOEXEC));
        let offset = rustix::fs::seek(borrowed, rustix::fs::SeekFrom::Current(0)).unwrap_or(0);
        saved += 1;
        if saved > MAX_FILES {
            return Err(Failure::TooManyFiles);
        }
        w.begin(tag::FILE);
        w.u32(fd as u32);
        w.u32(status | if cloexec { k::O_CLOEXEC } else { 0 });
        w.u64(offset);
        w.u64(stat.st_size as u64);
        w.u64(path.len() as u64);
        w.put(path);
        w.end();
    }
    drop(dir);
    Ok(())
}

/// `/proc/self/pagemap` bits: the page is in memory, or in swap.
const PM_PRESENT: u64 = 1 << 63;
const PM_SWAPPED: u64 = 1 << 62;

fn is_zero(page: &[u8]) -> bool {
    let (pre, words, post) = {
        // SAFETY: every bit pattern is a valid u64.
        unsafe { page.align_to::<u64>() }
    };
    pre.iter().all(|&b| b == 0) && words.iter().all(|&w| w == 0) && post.iter().all(|&b| b == 0)
}

/// One REGION record. Pages are judged a chunk at a time: a private anonymous page that is neither
/// present nor swapped has never been written and is zero (not read at all); other pages are read (in
/// place when readable anonymous memory, else through `/proc/self/mem`, which also reads what the
/// program made unreadable and never raises SIGBUS) and stored unless all zero.
fn region(
    w: &mut Writer<'_>,
    m: &procfs::Mapping<'_>,
    mem: &OwnedFd,
    pagemap: &OwnedFd,
    bounce: &mut [u8],
    pagemap_buf: &mut [u8],
    maybe: &mut [u8],
) {
    let special = match m.path {
        b"[vdso]" => flags::VDSO,
        b"[vvar]" | b"[vvar_vclock]" => flags::VVAR,
        b"[heap]" => flags::HEAP,
        b"[stack]" => flags::STACK,
        _ => 0,
    };
    let kind = special
        | if m.shared { flags::SHARED } else { 0 }
        | if m.inode != 0 { flags::FILE } else { 0 };
    w.begin(tag::REGION);
    w.u64(m.start);
    w.u64(m.end);
    w.u32(m.prot);
    w.u32(kind);
    w.u64(m.offset);
    let path = m
        .path
        .get(..m.path.len().min(uexec_ckpt::MAX_PATH))
        .unwrap_or(&[]);
    w.u64(path.len() as u64);
    w.put(path);
    w.align8();
    if special & (flags::VDSO | flags::VVAR) == 0 {
        let anonymous = m.inode == 0 && !m.shared;
        // The handler's own stack changes under it while a chunk is checksummed and written: that
        // region is copied to the bounce buffer first, like unreadable ones.
        let here = 0u8;
        let sp = &here as *const u8 as u64;
        let on_it = m.start <= sp && sp < m.end;
        let in_place = anonymous && m.prot & 1 != 0 && !on_it;
        let pages = ((m.end - m.start) / PAGE_SIZE) as usize;
        let mut first = 0;
        while first < pages {
            let n = CHUNK_PAGES.min(pages - first);
            let base = m.start + first as u64 * PAGE_SIZE;
            let len = n * PAGE_SIZE as usize;
            let Some(maybe) = maybe.get_mut(..CHUNK_PAGES) else {
                break;
            };
            maybe.fill(1);
            if anonymous {
                let entries = pagemap_buf.get_mut(..n * 8).unwrap_or(&mut []);
                if rustix::io::pread(pagemap, &mut *entries, base / PAGE_SIZE * 8)
                    .is_ok_and(|r| r == n * 8)
                {
                    for (i, e) in entries.chunks_exact(8).enumerate() {
                        maybe[i] = u8::from(word(e, 0) & (PM_PRESENT | PM_SWAPPED) != 0);
                    }
                }
            }
            if maybe[..n].iter().any(|&b| b != 0) {
                let data: &[u8] = if in_place {
                    // SAFETY: readable anonymous memory of the program, mapped (listed in maps) and not
                    // changing while this thread, its only one, is in the handler.
                    unsafe { core::slice::from_raw_parts(base as *const u8, len) }
                } else {
                    let buf = bounce.get_mut(..len).unwrap_or(&mut []);
                    read_mem(mem, base, buf);
                    buf
                };
                let mut i = 0;
                while i < n {
                    let page = |i: usize| {
                        data.get(i * PAGE_SIZE as usize..(i + 1) * PAGE_SIZE as usize)
                            .unwrap_or(&[])
                    };
                    if maybe[i] == 0 || is_zero(page(i)) {
                        i += 1;
                        continue;
                    }
                    let run_start = i;
                    while i < n && maybe[i] != 0 && !is_zero(page(i)) {
                        i += 1;
                    }
                    w.u64((first + run_start) as u64);
                    w.u64((i - run_start) as u64);
                    w.pad_to_page();
                    w.put_data(
                        data.get(run_start * PAGE_SIZE as usize..i * PAGE_SIZE as usize)
                            .unwrap_or(&[]),
                    );
                }
            }
            first += n;
        }
    }
    w.layout_trailer();
    w.end();
}

/// Reads `buf.len()` bytes of this process's memory at `addr` through `/proc/self/mem`; what cannot
/// be read (a file mapping past its file's end) is left zero.
fn read_mem(mem: &OwnedFd, addr: u64, buf: &mut [u8]) {
    if rustix::io::pread(mem, &mut *buf, addr).is_ok_and(|n| n == buf.len()) {
        return;
    }
    for (i, page) in buf.chunks_mut(PAGE_SIZE as usize).enumerate() {
        if rustix::io::pread(mem, &mut *page, addr + i as u64 * PAGE_SIZE).ok() != Some(page.len())
        {
            page.fill(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_signals_by_name_and_number() {
        assert_eq!(signal_by_name(b"USR2"), Some(12));
        assert_eq!(signal_by_name(b"SIGUSR1"), Some(10));
        assert_eq!(signal_by_name(b"10"), Some(10));
        assert_eq!(signal_by_name(b"RTMIN+2"), Some(36));
        for bad in [
            &b"KILL"[..],
            b"9",
            b"SEGV",
            b"11",
            b"STOP",
            b"0",
            b"65",
            b"USR3",
            b"",
        ] {
            assert_eq!(signal_by_name(bad), None, "{bad:?}");
        }
    }
}
