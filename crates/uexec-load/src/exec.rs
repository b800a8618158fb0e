//! The whole of an exec, short of the final jump: open and validate the program and its interpreter, map
//! them, build the stack, and give the process the program's break, command line and name.

use core::ffi::{c_void, CStr};
use rustix::fd::{AsRawFd, IntoRawFd};
use rustix::mm::{MapFlags, ProtFlags};
use rustix::process::Resource;
use uexec_elf::{
    page_down, page_up, FileHeader, Image, Kind, Prot, ET_DYN_BASE, MAX_INTERP_PATH, PAGE_SIZE,
    TASK_SIZE,
};

use crate::error::{InterpreterError, LoadError};
use crate::file::{ElfFile, OpenError};
use crate::handover::{MmMap, Release};
use crate::map::{map_image, Laziness, MapEvent, Mapped, Observer, Placement, Role, Source, Who};
use crate::own_image;
use crate::scratch::Scratch;
use crate::stack::{self, at, ProgramAux, StackContents, StackLayout};
use crate::startup::Startup;

/// The kernel's `stack_guard_gap`: no other mapping may come this close below a stack.
const STACK_GUARD: u64 = 256 * PAGE_SIZE;
/// Stack size when `RLIMIT_STACK` is unlimited or absurd.
const DEFAULT_STACK: u64 = 8 << 20;
const MIN_STACK: u64 = 128 << 10;
const MAX_STACK: u64 = 4 << 30;
/// `arch_randomize_brk` for 64-bit tasks: the break starts up to this far above its base (1 GiB since
/// Linux 6.9, 32 MiB before; measured here on 6.18: a static program's break 44 to 989 MiB above its
/// bss in 30 runs).
const BRK_RANDOM_RANGE: u64 = 1 << 30;
/// `arch_mmap_rnd` for 64-bit tasks: 28 bits of pages.
const MMAP_RANDOM_BITS: u32 = 28;
/// `arch_align_stack`: up to this many bytes of random padding below the strings.
const STACK_RANDOM_PAD: u64 = 8192;
/// Where a static-pie program's break starts before randomisation: `ELF_PAGEALIGN(ELF_ET_DYN_BASE)`,
/// one page above [`ET_DYN_BASE`] (which is rounded down). Recent kernels' `load_elf_binary` moves the
/// break of an `ET_DYN` without an interpreter there whether or not it randomises (measured on 6.18
/// under `setarch -R`: a static-pie's first `sbrk(0)` is above 0x555555555000, not after its bss).
const STATIC_PIE_BRK: u64 = (TASK_SIZE / 3 * 2 + PAGE_SIZE - 1) & !(PAGE_SIZE - 1);

/// What to run and how.
pub struct Request<'a, A, E> {
    /// The file to open.
    pub path: &'a CStr,
    /// The name `execve` would have been given (AT_EXECFN), and whose last component names the process.
    pub execfn: &'a CStr,
    pub argv: A,
    pub envp: E,
    /// The loader's own start-up data: the kernel's auxv and platform string are copied from it.
    pub startup: &'a Startup,
    /// Whether to randomise placement like the kernel does with ASLR on.
    pub randomize: bool,
    /// Which of the program's pages to leave for a demand pager (the interpreter is always mapped whole).
    pub laziness: Laziness,
    /// Whether the loader's own code must keep running after the jump (the pagers' fault handlers do).
    /// If not (apager), the loader unmaps itself on the way out ([`Ready::release`]).
    pub loader_stays: bool,
}

/// A process ready to start.
#[derive(Clone, Debug)]
pub struct Ready {
    /// Where execution starts: the interpreter's entry if there is one, else the program's.
    pub entry: u64,
    pub stack: StackLayout,
    pub program: Mapped,
    /// The program's validated headers, for a pager to build its region table from (`None` when
    /// nothing was left lazy).
    pub image: Option<Image>,
    pub interpreter: Option<Mapped>,
    /// For a loader that does not stay: what to give up at the jump
    /// ([`crate::handover::jump_releasing`]).
    pub release: Option<Release>,
}

fn program_error(error: OpenError) -> LoadError {
    match error {
        OpenError::Os(errno) => LoadError::Open(errno),
        OpenError::NotRegularFile => LoadError::NotRegularFile,
        OpenError::Elf(e) => LoadError::Elf(e),
    }
}

fn interpreter_error(error: OpenError) -> LoadError {
    LoadError::Interpreter(match error {
        OpenError::Os(errno) => InterpreterError::Open(errno),
        OpenError::NotRegularFile => InterpreterError::NotRegularFile,
        OpenError::Elf(e) => InterpreterError::Elf(e),
    })
}

/// Random numbers drawn once for everything the kernel randomises.
struct Dice {
    at_random: [u8; 16],
    stack_pad: u64,
    mmap: u64,
    brk: u64,
}

impl Dice {
    fn roll(randomize: bool) -> Self {
        let mut bytes = [0u8; 40];
        let mut filled = 0;
        while filled < bytes.len() {
            match rustix::rand::getrandom(
                bytes.get_mut(filled..).unwrap_or(&mut []),
                rustix::rand::GetRandomFlags::empty(),
            ) {
                Ok(n) => filled += n,
                Err(rustix::io::Errno::INTR) => {}
                // No entropy source at all: keep the zeros rather than fail the exec.
                Err(_) => break,
            }
        }
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(bytes.get(16 + 8 * i..24 + 8 * i).unwrap_or(&[0; 8]));
            u64::from_ne_bytes(w)
        };
        let mut at_random = [0u8; 16];
        at_random.copy_from_slice(bytes.get(..16).unwrap_or(&[0; 16]));
        if !randomize {
            return Self {
                at_random,
                stack_pad: 0,
                mmap: 0,
                brk: 0,
            };
        }
        Self {
            at_random,
            stack_pad: word(0) % STACK_RANDOM_PAD,
            mmap: (word(1) & ((1 << MMAP_RANDOM_BITS) - 1)) * PAGE_SIZE,
            brk: (word(2) % (BRK_RANDOM_RANGE / PAGE_SIZE)) * PAGE_SIZE,
        }
    }
}

/// Loads the program described by `request`, reporting each mapping to `observer`.
pub fn load<'a, 's, A, E>(
    request: Request<'a, A, E>,
    observer: &mut dyn Observer,
) -> Result<Ready, LoadError>
where
    A: Iterator<Item = &'s CStr> + Clone,
    E: Iterator<Item = &'s CStr> + Clone,
{
    let program = ElfFile::open(request.path).map_err(program_error)?;
    static INTERP_PATH: Scratch<MAX_INTERP_PATH> = Scratch::new();
    // SAFETY: loading is single-threaded and `load` is INTERP_PATH's only user.
    let interp_path = unsafe { INTERP_PATH.borrow() };
    let interpreter = match program.interpreter(interp_path).map_err(program_error)? {
        Some(path) => {
            let interp = ElfFile::open(path).map_err(interpreter_error)?;
            if interp.image.interp.is_some() {
                return Err(interpreter_error(OpenError::Elf(
                    uexec_elf::ElfError::NestedInterpreter,
                )));
            }
            Some(interp)
        }
        None => None,
    };
    let dice = Dice::roll(request.randomize);

    // load_elf_binary: a PIE with an interpreter goes to ELF_ET_DYN_BASE plus randomisation; a static-pie
    // (a "loader") and the interpreter go to the top of the mmap area.
    let mmap_top = request.startup.aux(at::SYSINFO_EHDR).and_then(vdso_end);
    let placement = match (program.image.kind, &interpreter) {
        (Kind::Dyn, Some(_)) => {
            let align = program.image.max_align;
            let base = (ET_DYN_BASE + dice.mmap) & !(align - 1);
            Placement::Prefer(page_down(base.wrapping_sub(program.image.span().0)))
        }
        _ => top_of_mmap_area(mmap_top, &program.image),
    };
    let mapped = map_image(
        &program,
        placement,
        Who::Program,
        request.laziness,
        observer,
    )?;
    let interp_mapped = match &interpreter {
        Some(interp) => {
            let placement = top_of_mmap_area(mmap_top, &interp.image);
            Some(map_image(
                interp,
                placement,
                Who::Interpreter,
                Laziness::EAGER,
                observer,
            )?)
        }
        None => None,
    };

    let (stack_mem, stack_top) = map_stack(program.image.exec_stack, observer)?;
    let platform = request.startup.aux_str(at::PLATFORM);
    let base_platform = request.startup.aux_str(at::BASE_PLATFORM);
    let layout = stack::build(
        stack_mem,
        stack_top,
        StackContents {
            argv: request.argv,
            envp: request.envp,
            execfn: request.execfn,
            kernel_auxv: request.startup.auxv(),
            platform,
            base_platform,
            program: ProgramAux {
                phdr: mapped.phdr,
                phnum: u64::from(program.image.phnum),
                entry: mapped.entry,
                base: interp_mapped.map_or(0, |m| m.bias),
            },
            random: dice.at_random,
            random_pad: dice.stack_pad,
        },
    )
    .map_err(|_| LoadError::Open(rustix::io::Errno::TOOBIG))?;

    // The break: right after the program's bss, with the kernel's gap and randomisation; a static-pie's
    // break is moved to ELF_ET_DYN_BASE (page-aligned up), out of the mmap area, randomised or not.
    let brk_base = match (program.image.kind, &interpreter, request.randomize) {
        (Kind::Dyn, None, _) => STATIC_PIE_BRK,
        (_, _, true) => page_up(mapped.end).unwrap_or(mapped.end) + PAGE_SIZE,
        (_, _, false) => page_up(mapped.end).unwrap_or(mapped.end),
    };
    let brk = brk_base + dice.brk;
    let map = mm_map(&program, &mapped, &layout, brk);
    set_comm(request.execfn);

    let entry = interp_mapped.map_or(mapped.entry, |m| m.entry);
    // Dropping the files closes them: the program's first open() returns the lowest free descriptor.
    drop(interpreter);
    let lazy = request.laziness != Laziness::EAGER;
    let image = lazy.then(|| program.image.clone());
    let release = match (
        request.loader_stays,
        map,
        own_image::span(request.startup),
        old_stack(request.startup),
    ) {
        (false, Some(map), Some(image), Some(old_stack)) => {
            // The descriptor stays open for PR_SET_MM_MAP's exe_fd; the trampoline closes it.
            let fd = program.into_fd().into_raw_fd() as u32;
            Some(Release {
                image,
                old_stack,
                map: MmMap { exe_fd: fd, ..map },
            })
        }
        (_, map, _, _) => {
            if let Some(map) = map {
                set_mm_map(&program, map, request.startup);
            }
            drop(program);
            None
        }
    };
    Ok(Ready {
        image,
        entry,
        stack: layout,
        program: mapped,
        interpreter: interp_mapped,
        release,
    })
}

/// One past the end of the vDSO whose ELF header is at `addr`.
fn vdso_end(addr: u64) -> Option<u64> {
    if addr == 0 || !addr.is_multiple_of(PAGE_SIZE) {
        return None;
    }
    // SAFETY: AT_SYSINFO_EHDR points at the vDSO's ELF header, at the start of a readable mapping at
    // least a page long that is never unmapped.
    let bytes = unsafe { core::slice::from_raw_parts(addr as *const u8, PAGE_SIZE as usize) };
    let header = FileHeader::parse(bytes, PAGE_SIZE).ok()?;
    let start = usize::try_from(header.phoff).ok()?;
    let table = bytes.get(start..)?.get(..header.phdr_table_len())?;
    let image = Image::parse(&header, table, u64::MAX).ok()?;
    let (low, high) = image.span();
    addr.checked_add(high - low)
}

/// Where the kernel puts an image it maps first into a fresh address space (a static-pie, or the
/// interpreter): at the top of the mmap area, so that nothing is ever mapped right after its end (mmap
/// only places mappings below the top). In the loader's process the vDSO already took the top, so the
/// image goes right above it instead: the space after the image stays as empty as it is natively.
fn top_of_mmap_area(mmap_top: Option<u64>, image: &Image) -> Placement {
    let Some(top) = mmap_top else {
        return Placement::Anywhere;
    };
    let align = image.max_align;
    match top.checked_add(align - 1) {
        Some(t) => Placement::Prefer((t & !(align - 1)).wrapping_sub(image.span().0)),
        None => Placement::Anywhere,
    }
}

/// Maps the new stack below a guard gap and returns it as a byte slice with its top address.
fn map_stack(
    exec: bool,
    observer: &mut dyn Observer,
) -> Result<(&'static mut [u8], u64), LoadError> {
    let size = match rustix::process::getrlimit(Resource::Stack).current {
        Some(limit) if limit <= MAX_STACK => page_up(limit).unwrap_or(DEFAULT_STACK).max(MIN_STACK),
        _ => DEFAULT_STACK,
    };
    let total = size + STACK_GUARD;
    let map_error = |errno| LoadError::Map {
        errno,
        addr: 0,
        len: total,
    };
    // SAFETY: without MAP_FIXED the kernel picks an unused range.
    let base = unsafe {
        rustix::mm::mmap_anonymous(
            core::ptr::null_mut(),
            total as usize,
            ProtFlags::empty(),
            MapFlags::PRIVATE | MapFlags::NORESERVE,
        )
    }
    .map_err(map_error)? as u64;
    let stack = base + STACK_GUARD;
    let prot = Prot {
        read: true,
        write: true,
        exec,
    };
    let mut flags = ProtFlags::READ | ProtFlags::WRITE;
    if exec {
        flags |= ProtFlags::EXEC;
    }
    // SAFETY: replaces the upper part of the reservation just made, which nothing else uses.
    unsafe {
        rustix::mm::mmap_anonymous(
            stack as *mut c_void,
            size as usize,
            flags,
            MapFlags::PRIVATE | MapFlags::FIXED | MapFlags::NORESERVE | MapFlags::STACK,
        )
    }
    .map_err(map_error)?;
    observer.mapped(&MapEvent {
        who: Who::Program,
        addr: stack,
        len: size,
        prot,
        source: Source::Anonymous,
        role: Role::Stack,
    });
    // SAFETY: the mapping is readable, writable, `size` bytes long, and owned by nothing else; it is never
    // unmapped, so the slice may live as long as the process.
    let mem = unsafe { core::slice::from_raw_parts_mut(stack as *mut u8, size as usize) };
    Ok((mem, stack + size))
}

/// The program's code, data, break, argument, environment and auxv addresses, as `/proc/PID/{stat,
/// cmdline,environ,auxv}` and `brk()` see them, for `PR_SET_MM_MAP` (which needs no privilege).
/// `None` for an image without executable segments, which the kernel would refuse.
fn mm_map(program: &ElfFile, mapped: &Mapped, layout: &StackLayout, brk: u64) -> Option<MmMap> {
    let ranges = program.image.code_and_data()?;
    let bias = mapped.bias;
    Some(MmMap {
        start_code: ranges.start_code.wrapping_add(bias),
        end_code: ranges.end_code.wrapping_add(bias),
        start_data: ranges.start_data.wrapping_add(bias),
        end_data: ranges.end_data.wrapping_add(bias),
        start_brk: brk,
        brk,
        start_stack: layout.sp,
        arg_start: layout.arg_start,
        arg_end: layout.arg_end,
        env_start: layout.env_start,
        env_end: layout.env_end,
        auxv: layout.auxv,
        auxv_size: layout.auxv_len as u32,
        exe_fd: u32::MAX,
    })
}

/// Applies `map` now, for a loader that stays. It also points `/proc/PID/exe` at the program when the
/// kernel allows it (a caller capable of checkpoint/restore): the first attempt fails with `EBUSY`
/// while the loader's own file is mapped, so the loader then lets go of it
/// for the call ([`own_image::set_exe`]). Without the capability the link keeps naming the
/// loader; if the kernel refuses the rest too, the program still runs, with the loader's break.
fn set_mm_map(program: &ElfFile, map: MmMap, startup: &Startup) {
    let configure = |map: &MmMap| {
        // SAFETY: every address describes memory of the new process image; the kernel copies the auxv
        // and does not keep the pointer.
        unsafe { sys_prctl_mm_map(map) }
    };
    let with_exe = MmMap {
        exe_fd: program.fd().as_raw_fd() as u32,
        ..map
    };
    match configure(&with_exe) {
        0 => return,
        EBUSY if own_image::set_exe(startup, &with_exe) == 0 => return,
        _ => {}
    }
    let _ = configure(&map);
}

const EBUSY: i64 = -(linux_raw_sys::errno::EBUSY as i64);

/// `prctl(PR_SET_MM, PR_SET_MM_MAP, map, sizeof *map, 0)` (rustix has no wrapper for `PR_SET_MM_MAP`;
/// the fifth argument is passed explicitly, the prctl defect of issue 8).
///
/// # Safety
///
/// The addresses in `map` must describe the current process's new image.
pub unsafe fn sys_prctl_mm_map(map: &MmMap) -> i64 {
    let ret: i64;
    // SAFETY: per the contract; rcx and r11 are clobbered by `syscall`.
    unsafe {
        core::arch::asm!("syscall", inlateout("rax") i64::from(linux_raw_sys::general::__NR_prctl) => ret,
            in("rdi") u64::from(linux_raw_sys::prctl::PR_SET_MM),
            in("rsi") u64::from(linux_raw_sys::prctl::PR_SET_MM_MAP),
            in("rdx") map as *const MmMap, in("r10") core::mem::size_of::<MmMap>(), in("r8") 0u64,
            lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    ret
}

/// The stack the kernel gave the loader: it ends 8 bytes after the loader's AT_EXECFN string, and nothing
/// else is mapped within the 8 MiB below that (the kernel keeps the mmap area at least 128 MiB away).
fn old_stack(startup: &Startup) -> Option<(u64, u64)> {
    const WINDOW: u64 = 8 << 20;
    let execfn = startup.aux_str(at::EXECFN)?;
    let end = execfn.as_ptr() as u64 + execfn.to_bytes_with_nul().len() as u64 + 8;
    let top = page_up(end)?;
    Some((top - WINDOW, WINDOW))
}

/// Names the process after the program, as `begin_new_exec` does (`/proc/PID/comm`).
fn set_comm(execfn: &CStr) {
    let bytes = execfn.to_bytes();
    let base = bytes.rsplit(|&b| b == b'/').next().unwrap_or(bytes);
    let mut name = [0u8; 16];
    let len = base.len().min(15);
    if let (Some(dest), Some(src)) = (name.get_mut(..len), base.get(..len)) {
        dest.copy_from_slice(src);
    }
    if let Ok(name) = CStr::from_bytes_until_nul(&name) {
        let _ = rustix::thread::set_name(name);
    }
}
