//! urestart: restarts a program from a checkpoint image (`--ckpt-image` of the loaders, or the preload
//! library), at its own addresses, going on from where it was. `--info` prints the image instead.
//!
//! Everything that can refuse an image is checked before anything changes (the format with every
//! checksum, placement, the vDSO layout, the CPU's XSAVE features, the files and working directory);
//! then uexec-restore rebuilds the process. See docs/checkpoint.md.
#![no_std]
#![no_main]

use core::cell::UnsafeCell;
use core::ffi::CStr;
use core::fmt::Write;

use loaders::checkpoint::{self, LOADER_RANGE};
use loaders::out::{self, FdWriter, Lossy};
use loaders::uexec_load::Startup;
use rustix::fd::IntoRawFd;
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::mm::{MapFlags, ProtFlags};
use uexec_ckpt::{flags, Image, Record};
use uexec_restore::{check, Plan, Refusal, Reopened, MAX_FILES};

loaders::entry!(main);

const TOOL: &str = "urestart";
/// Exit statuses (README): the image does not exist; it cannot be restarted (unreadable, corrupt, of
/// another version or machine, in urestart's way, or its files are gone); a usage error.
const NOT_FOUND: i32 = 127;
const REFUSED: i32 = 126;
const USAGE: i32 = 2;
/// Where the image is mapped (above the loader range, where programs do not go).
const IMAGE_AT: u64 = 0x3c02_0000_0000;

fn help() {
    // SAFETY: fd 1 is borrowed only for these writes.
    let mut out = FdWriter::<1024>::new(unsafe { rustix::stdio::stdout() });
    let _ = write!(
        out,
        "Usage: urestart [OPTIONS] IMAGE\n\
         Restarts the program checkpointed in IMAGE (apager/dpager/hpager --ckpt-image, or\n\
         LD_PRELOAD=libuexec_ckpt.so) at its own addresses; it goes on where it was.\n\n\
         Options:\n      \
               --info             print the image's header, files and regions; restart nothing\n      \
               --lazy             map the saved pages from IMAGE instead of copying them: the\n\
         \x20                        program runs again at once and its pages are read on first\n\
         \x20                        touch (their checksums are not verified; IMAGE must stay)\n      \
               --ckpt-image PATH  where a further checkpoint of the restarted program goes\n\
         \x20                        (default: IMAGE); its signal is the image's\n  \
           -h, --help             print this help\n  \
           -V, --version          print the version\n\n\
         Exit status: the program's own; 127 if IMAGE does not exist, 126 if it cannot be\n\
         restarted (nothing was changed), 122 if restoring failed part way, 2 for usage errors.\n"
    );
    out.flush();
}

struct Args<'a> {
    info: bool,
    lazy: bool,
    image: &'a CStr,
    ckpt_image: Option<&'a CStr>,
}

fn parse_args(startup: &Startup) -> Result<Args<'static>, i32> {
    let mut args = startup.args().skip(1);
    let (mut info, mut lazy, mut ckpt_image, mut image) = (false, false, None, None);
    while let Some(arg) = args.next() {
        match arg.to_bytes() {
            b"-h" | b"--help" => {
                help();
                return Err(0);
            }
            b"-V" | b"--version" => {
                // SAFETY: fd 1 is borrowed only for this write.
                let mut out = FdWriter::<128>::new(unsafe { rustix::stdio::stdout() });
                let _ = writeln!(out, "urestart (uexec) {}", env!("CARGO_PKG_VERSION"));
                out.flush();
                return Err(0);
            }
            b"--info" => info = true,
            b"--lazy" => lazy = true,
            b"--ckpt-image" => match args.next() {
                Some(p) => ckpt_image = Some(p),
                None => {
                    out::error_line(TOOL, b"--ckpt-image", "option needs a value");
                    return Err(USAGE);
                }
            },
            b if b.starts_with(b"--ckpt-image=") => {
                ckpt_image = CStr::from_bytes_with_nul(&arg.to_bytes_with_nul()[13..]).ok();
            }
            b if b.starts_with(b"-") && b.len() > 1 => {
                out::error_line(TOOL, b, "unknown option (try --help)");
                return Err(USAGE);
            }
            _ if image.is_some() => {
                out::error_line(TOOL, arg.to_bytes(), "only one IMAGE may be given");
                return Err(USAGE);
            }
            _ => image = Some(arg),
        }
    }
    match image {
        Some(image) => Ok(Args {
            info,
            lazy,
            image,
            ckpt_image,
        }),
        None => {
            out::error_line(TOOL, b"", "missing IMAGE (try --help)");
            Err(USAGE)
        }
    }
}

struct PlanCell(UnsafeCell<Option<Plan<'static>>>);
// SAFETY: urestart is single-threaded.
unsafe impl Sync for PlanCell {}
static PLAN: PlanCell = PlanCell(UnsafeCell::new(None));

struct Buf<const N: usize>(UnsafeCell<[u8; N]>);
// SAFETY: urestart is single-threaded; each buffer has one user.
unsafe impl<const N: usize> Sync for Buf<N> {}
static MAPS: Buf<{ 64 << 10 }> = Buf(UnsafeCell::new([0; 64 << 10]));

fn main(startup: &Startup) -> i32 {
    let args = match parse_args(startup) {
        Ok(a) => a,
        Err(status) => return status,
    };
    let name = args.image.to_bytes();
    let refuse = |message: &dyn core::fmt::Display| {
        out::error_line(TOOL, name, message);
        REFUSED
    };
    let fd = match rustix::fs::open(args.image, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()) {
        Ok(fd) => fd,
        Err(e) => {
            out::error_line(TOOL, name, e);
            return if e == Errno::NOENT {
                NOT_FOUND
            } else {
                REFUSED
            };
        }
    };
    let size = match rustix::fs::fstat(&fd) {
        Ok(st) if st.st_size > 0 => st.st_size as usize,
        Ok(_) => return refuse(&uexec_ckpt::Error::Truncated),
        Err(e) => return refuse(&e),
    };
    // SAFETY: a fresh private read-only mapping of the image at a free address (or where the kernel likes).
    let map = unsafe {
        rustix::mm::mmap(
            IMAGE_AT as *mut core::ffi::c_void,
            size,
            ProtFlags::READ,
            if args.lazy {
                MapFlags::PRIVATE
            } else {
                MapFlags::PRIVATE | MapFlags::POPULATE
            },
            &fd,
            0,
        )
    };
    let map = match map {
        Ok(p) => p as u64,
        Err(e) => return refuse(&e),
    };
    // SAFETY: the mapping is `size` readable bytes and stays mapped until the restore lets it go.
    let bytes: &'static [u8] = unsafe { core::slice::from_raw_parts(map as *const u8, size) };
    let verify = if args.lazy && !args.info {
        uexec_ckpt::Verify::AllButPages
    } else {
        uexec_ckpt::Verify::Everything
    };
    let image = match uexec_ckpt::parse_with(bytes, verify) {
        Ok(image) => image,
        Err(e) => return refuse(&e),
    };
    if args.info {
        info(name, &image);
        return 0;
    }
    let map_span = (
        map,
        map + uexec_elf::page_up(size as u64).unwrap_or(u64::MAX),
    );
    let keep = [LOADER_RANGE, map_span];
    if let Err(r) = check::clear_of(&image, &keep) {
        return refuse(&r);
    }
    // SAFETY: MAPS is this function's alone.
    let maps_buf = unsafe { &mut *MAPS.0.get() };
    let maps = match uexec_capture::sys::read_file(c"/proc/self/maps", maps_buf) {
        Ok(m) => m,
        Err(e) => return refuse(&e),
    };
    let Some(special_now) = check::special_of_maps(uexec_capture::procfs::mappings(maps)) else {
        return refuse(&Refusal::VdsoLayout);
    };
    let Some(saved) = check::special_of_image(&image) else {
        return refuse(&Refusal::VdsoLayout);
    };
    if let Err(r) = check::vdso_layout(&saved, &special_now) {
        return refuse(&r);
    }
    if let Err(r) = check::xfeatures(&image, uexec_restore::enabled_xfeatures()) {
        return refuse(&r);
    }
    let mut files = [Reopened::default(); MAX_FILES];
    let mut n_files = 0;
    // Temporary descriptors start above every target, so moving one into place never closes another.
    let highest = image.files().map(|f| f.fd).max().unwrap_or(0);
    for f in image.files() {
        let Some(slot) = files.get_mut(n_files) else {
            return refuse(&"too many open files in the image");
        };
        let path = match cpath(f.path) {
            Some(p) => p,
            None => return refuse(&"a file path is too long"),
        };
        let reopen = OFlags::from_bits_retain(f.flags)
            & !(OFlags::CREATE | OFlags::EXCL | OFlags::TRUNC | OFlags::CLOEXEC | OFlags::NOCTTY);
        let opened = rustix::fs::open(path.as_cstr(), reopen | OFlags::CLOEXEC, Mode::empty())
            .and_then(|fd| rustix::io::fcntl_dupfd_cloexec(&fd, highest as i32 + 1));
        // Positioned now, on the temporary descriptor (the one moved into place shares its offset):
        // a failure is a refusal, before anything changed. An O_PATH descriptor has no offset.
        let positioned = opened.and_then(|temp| {
            if !reopen.contains(OFlags::PATH) {
                rustix::fs::seek(&temp, rustix::fs::SeekFrom::Start(f.offset))?;
            }
            Ok(temp)
        });
        match positioned {
            Ok(temp) => {
                *slot = Reopened {
                    fd: f.fd,
                    temp: temp.into_raw_fd(),
                    cloexec: f.flags & linux_raw_sys::general::O_CLOEXEC != 0,
                };
                n_files += 1;
            }
            Err(e) => {
                out::error_line(TOOL, name, FileRefusal(f.fd, f.path, e));
                return REFUSED;
            }
        }
    }
    let cwd = match cpath(image.cwd).map(|p| {
        rustix::fs::open(
            p.as_cstr(),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
    }) {
        // Above every target too, so that moving the files into place cannot close it.
        Some(Ok(fd)) => match rustix::io::fcntl_dupfd_cloexec(&fd, highest as i32 + 1) {
            Ok(fd) => fd,
            Err(e) => return refuse(&e),
        },
        Some(Err(e)) => {
            out::error_line(TOOL, name, CwdRefusal(image.cwd, e));
            return REFUSED;
        }
        None => return refuse(&"the working directory's path is too long"),
    };
    let signal = image.ckpt_signal;
    let request = checkpoint::Request {
        image: args.ckpt_image.unwrap_or(args.image),
        signal,
    };
    if args.lazy {
        if let Err(why) = lazy_fits(&image, &fd) {
            return refuse(&why);
        }
    }
    // No signal from here on: a checkpoint signal now would find urestart, not the program
    // (rt_sigreturn gives the program its own mask).
    let all: u64 = !0;
    // SAFETY: rt_sigprocmask with a pointer to a local 8-byte set.
    unsafe {
        uexec_capture::sys::syscall6(
            linux_raw_sys::general::__NR_rt_sigprocmask,
            u64::from(linux_raw_sys::general::SIG_BLOCK),
            &all as *const u64 as u64,
            0,
            8,
            0,
            0,
        )
    };
    // SAFETY: single-threaded; urestart's code stays mapped (in the kept loader range).
    if let Err(status) = unsafe { checkpoint::install(TOOL, &request, &[], &[], None) } {
        return status;
    }
    // The mapping outlives the descriptor, whose number may be one of the program's; --lazy keeps
    // one, clear of every target, to map pages from.
    let lazy_fd = if args.lazy {
        match rustix::io::fcntl_dupfd_cloexec(&fd, highest as i32 + 1) {
            Ok(high) => Some(high.into_raw_fd()),
            Err(e) => return refuse(&e),
        }
    } else {
        None
    };
    drop(fd);
    // SAFETY: PLAN is written once here and read by the restore, which never returns.
    let plan = unsafe { &mut *PLAN.0.get() };
    *plan = Some(Plan {
        image,
        keep,
        special_now,
        files,
        n_files,
        cwd_fd: cwd.into_raw_fd(),
        image_map: map_span,
        lazy_fd,
        checkpoint_signal: Some(signal),
    });
    let Some(plan) = plan.as_ref() else {
        return REFUSED;
    };
    // SAFETY: the plan was checked against this process, which runs nothing else.
    unsafe { uexec_restore::restore(plan) }
}

/// `--lazy` maps every stored run separately from the image: refused before anything changes when
/// that would pass `vm.max_map_count`, or when the image's file system refuses executable mappings
/// (a `noexec` mount) and some run needs one.
fn lazy_fits(image: &Image<'_>, fd: &rustix::fd::OwnedFd) -> Result<(), &'static str> {
    let mut buf = [0u8; 32];
    let limit = uexec_capture::sys::read_file(c"/proc/sys/vm/max_map_count", &mut buf)
        .ok()
        .and_then(|b| core::str::from_utf8(b).ok()?.trim().parse::<u64>().ok())
        .unwrap_or(65530);
    let (mut mappings, mut exec) = (0u64, false);
    for r in image.regions() {
        let runs = r.runs().count() as u64;
        mappings += 1 + 2 * runs;
        exec |= runs > 0 && r.prot & 4 != 0;
    }
    // Room for urestart's own mappings and the program's growth.
    if mappings + 1024 > limit {
        return Err(
            "--lazy would need more mappings than vm.max_map_count allows; restart without --lazy",
        );
    }
    if exec {
        // SAFETY: a fresh private mapping of the image's first page, unmapped at once.
        let probe = unsafe {
            rustix::mm::mmap(
                core::ptr::null_mut(),
                4096,
                ProtFlags::READ | ProtFlags::EXEC,
                MapFlags::PRIVATE,
                fd,
                0,
            )
        };
        match probe {
            // SAFETY: the page just mapped, used by nothing.
            Ok(p) => unsafe {
                let _ = rustix::mm::munmap(p, 4096);
            },
            Err(_) => {
                return Err("the image's file system refuses executable mappings (noexec); restart without --lazy")
            }
        }
    }
    Ok(())
}

struct FileRefusal<'a>(u32, &'a [u8], Errno);
impl core::fmt::Display for FileRefusal<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "cannot reopen descriptor {} ({}): {}",
            self.0,
            Lossy(self.1),
            self.2
        )
    }
}

struct CwdRefusal<'a>(&'a [u8], Errno);
impl core::fmt::Display for CwdRefusal<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "cannot enter the working directory {}: {}",
            Lossy(self.0),
            self.1
        )
    }
}

/// A path from an image, NUL-terminated in a buffer of its own.
struct CPath {
    buf: [u8; 4097],
}
impl CPath {
    fn as_cstr(&self) -> &CStr {
        CStr::from_bytes_until_nul(&self.buf).unwrap_or(c"")
    }
}
fn cpath(path: &[u8]) -> Option<CPath> {
    let mut c = CPath { buf: [0; 4097] };
    c.buf.get_mut(..path.len())?.copy_from_slice(path);
    Some(c)
}

/// `--info`: the image as text.
fn info(name: &[u8], image: &Image<'_>) {
    // SAFETY: fd 1 is borrowed only for these writes.
    let mut out = FdWriter::<4096>::new(unsafe { rustix::stdio::stdout() });
    let regs = &image.registers;
    let _ = writeln!(out, "image: {}", Lossy(name));
    let _ = writeln!(
        out,
        "format: version {}, x86-64, page size {}, checkpoint signal {}",
        uexec_ckpt::VERSION,
        image.page_size,
        image.ckpt_signal
    );
    let _ = writeln!(
        out,
        "registers: rip {:#x} rsp {:#x} fs_base {:#x} sigmask {:#x} fpu {} bytes (xfeatures {:#x})",
        regs.gregs[uexec_capture::frame::REG_RIP],
        regs.gregs[uexec_capture::frame::REG_RSP],
        regs.fs_base,
        regs.sigmask,
        regs.xsave.len(),
        uexec_capture::frame::xfeatures(regs.xsave)
    );
    if regs.altstack.1 & 2 == 0 {
        let _ = writeln!(
            out,
            "altstack: {:#x} size {:#x}",
            regs.altstack.0, regs.altstack.2
        );
    }
    let m = image.mm.fields;
    let _ = writeln!(
        out,
        "mm: code {:#x}-{:#x} data {:#x}-{:#x} brk {:#x}-{:#x} stack {:#x} auxv {} bytes",
        m[0],
        m[1],
        m[2],
        m[3],
        m[4],
        m[5],
        m[6],
        image.mm.auxv.len()
    );
    match image.rseq {
        Some(r) => {
            let _ = writeln!(out, "rseq: {:#x} len {} sig {:#x}", r.addr, r.len, r.sig);
        }
        None => {
            let _ = writeln!(out, "rseq: none");
        }
    }
    let _ = writeln!(out, "cwd: {}", Lossy(image.cwd));
    let handled = (1..=uexec_ckpt::NSIG)
        .filter(|&s| image.signals.get(s).is_some_and(|a| a.handler > 1))
        .count();
    let _ = writeln!(out, "signals: {handled} with handlers");
    let (mut regions, mut stored) = (0u64, 0u64);
    for record in image.records() {
        match record {
            Record::File(f) => {
                let _ = writeln!(
                    out,
                    "file: fd {} flags {:#o} offset {} size {} {}",
                    f.fd,
                    f.flags,
                    f.offset,
                    f.size,
                    Lossy(f.path)
                );
            }
            Record::Region(r) => {
                regions += 1;
                stored += r.stored();
                let p = |bit: u32, c: char| if r.prot & bit != 0 { c } else { '-' };
                let kind = if r.flags & flags::SHARED != 0 {
                    's'
                } else {
                    'p'
                };
                let _ = writeln!(
                    out,
                    "region: {:#014x}-{:#014x} {}{}{}{} {:>8} pages, {:>8} stored  {}",
                    r.start,
                    r.end,
                    p(1, 'r'),
                    p(2, 'w'),
                    p(4, 'x'),
                    kind,
                    (r.end - r.start) / uexec_ckpt::PAGE_SIZE,
                    r.stored() / uexec_ckpt::PAGE_SIZE,
                    Lossy(r.path)
                );
            }
            Record::Other(_) => {}
        }
    }
    let _ = writeln!(
        out,
        "total: {regions} regions, {} pages stored ({stored} bytes)",
        stored / uexec_ckpt::PAGE_SIZE
    );
    out.flush();
}
