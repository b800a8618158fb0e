//! The pager's state and its SIGSEGV handler.
//!
//! At set-up ([`install`]) the lazy parts of the program's segments (see `uexec_load::Laziness`) become
//! regions: their pages are already mapped with their final contents but `PROT_NONE`. The first touch of
//! such a page faults; the handler finds the region, claims the page (its state goes from `UNTOUCHED` to
//! `MAPPING` with a compare-and-swap, so of several threads faulting on it at once exactly one maps it
//! and the others wait), gives it the region's protection, logs it, and returns to retry the access.
//!
//! **Bounded mappings.** Each `mprotect` of a lone page inside a `PROT_NONE` mapping splits it in three,
//! and the kernel allows a process `vm.max_map_count` (65530) mappings. So every region counts its
//! *runs* (grants that bordered no accessible page) and grants coarser as it fragments, as the
//! kernel's fault-around does: single pages (and hpager's predictions) for its first [`FINE_RUNS`]
//! runs, then the aligned 64 KiB block around the page, then the aligned 2 MiB block, and past
//! [`LARGE_RUNS`] runs (or [`TOTAL_RUNS`] in all regions) the whole gap of untouched pages around
//! it, which splits nothing (hpager keeps predicting at the block grains, granting the block around
//! each predicted page). The pages of a coarse grant are claimed one by one with the same
//! compare-and-swap (the others are left as they are), logged `around`, and cost nothing until
//! touched: they already hold their final contents. A grant the kernel refuses (`ENOMEM`: the program
//! itself is at the limit) is retried as the whole gap, then as the page alone.
//!
//! **The pager's own failure is not the program's.** If even that fails, and the page is still
//! mapped, the pager cannot go on: it says so in one line on stderr and ends the process with
//! [`EXIT_PAGER_FAILED`].
//!
//! Real faults stay real. An address outside every region, or a page already made accessible that
//! faults again with an access its region does not allow (a write into text, say), is not the pager's:
//! the handler restores the default action and returns, so the access faults again and the program dies
//! exactly as it would natively, core dump included.
//!
//! # Safety
//!
//! The handler runs while the program's libc owns `%fs`, possibly with a lock of its allocator held: it
//! uses no TLS, errno, allocator, lock, `core::fmt` or panic; only raw system calls, atomics and stack
//! buffers. The state it reads is written once by [`install`] before the handler exists.

use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicU8, Ordering};
use linux_raw_sys::general as k;
use rustix::mm::{MapFlags, MprotectFlags, ProtFlags};
use uexec_elf::{page_down, Image, PAGE_SIZE};

use crate::lock::{Lock, Once};
use crate::predict::{Policy, Predictor, MAX_PREDICT};
use crate::regions::{Region, RegionTable, MAPPED, MAPPING, PREDICTED, UNTOUCHED};
use crate::sys::{self, KernelSigaction, SigInfo, UC_ERR_OFFSET, UC_SIGMASK_OFFSET};
use crate::text::{prot_str, Line};

/// The exit status of a process whose pager could not go on (a system call it needs failed); neither a
/// shell's 126/127, nor 128 + a signal, nor a status programs commonly use.
pub const EXIT_PAGER_FAILED: i32 = 122;

/// A region grants pages one at a time (or as predicted) until it has this many runs...
pub const FINE_RUNS: u32 = 1024;
/// ...then aligned 64 KiB blocks until this many...
pub const BLOCK_RUNS: u32 = 2048;
/// ...then aligned 2 MiB blocks until this many, then whole gaps.
pub const LARGE_RUNS: u32 = 3072;
/// Whole gaps in every region once all regions together have this many runs: the pager's splits never
/// add more than about twice as many VMAs.
pub const TOTAL_RUNS: u64 = 6144;

/// Counters of what the pager did; all relaxed atomics, shared by every thread.
pub struct Stats {
    /// Faults the pager resolved by mapping a page.
    pub faults: AtomicU64,
    /// Pages made accessible because they were touched.
    pub demand_pages: AtomicU64,
    /// Pages made accessible by prediction.
    pub predicted_pages: AtomicU64,
    /// Pages made accessible along with a demand page by a coarse grant (a fragmented region).
    pub around_pages: AtomicU64,
    /// Faults that were not the pager's and went to the default action.
    pub real_faults: AtomicU64,
    /// Predicted pages later found touched, and found untouched.
    pub predicted_used: AtomicU64,
    pub predicted_unused: AtomicU64,
}

/// What [`install`] needs to know.
pub struct Config {
    /// The tool's name, for log lines (`dpager`).
    pub tool: &'static str,
    /// Where log lines go, or `None` for no log.
    pub log_fd: Option<i32>,
    /// File pages are demand-paged (dpager) or were mapped whole (hpager).
    pub lazy_file: bool,
    /// Anonymous pages are demand-paged.
    pub lazy_anon: bool,
    /// Print statistics when the program exits.
    pub stats: bool,
    /// hpager: the prediction policy and N, the pages mapped per fault.
    pub predict: Option<(Policy, u32)>,
    /// The program's name (its path's last component, as `comm`), for log lines.
    pub program: &'static [u8],
}

/// The program's name in log lines, up to 15 bytes as `comm`.
static PROGRAM_NAME: Once<[u8; 16]> = Once::new([0; 16]);

/// Starts a log line with whose it is: `TOOL[PID NAME]`, so that the lines of a process tree (a
/// pipeline's programs, each paged) can be told apart. The pid is read at each line: a forked child
/// logs its own.
pub fn push_whose<const N: usize>(line: &mut Line<N>, tool: &str) {
    let name: &[u8] = PROGRAM_NAME.get().map_or(&[], |n| n);
    let len = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    line.push(tool.as_bytes())
        .push(b"[")
        .dec(u64::from(
            rustix::process::getpid()
                .as_raw_nonzero()
                .get()
                .unsigned_abs(),
        ))
        .push(b" ")
        .push(name.get(..len).unwrap_or(&[]))
        .push(b"]");
}

/// The predictor and the pages it predicted last, behind a [`Lock`] (faults in several threads take
/// turns; the critical section is a few system calls).
struct Prediction {
    predictor: Predictor,
    /// Pages predicted at the last fault, not yet judged used or unused.
    pending: [u64; MAX_PREDICT],
    pending_len: usize,
}

static PREDICTION: Lock<Option<Prediction>> = Lock::new(None);

/// Runs `f` on the prediction state, if there is one; returns whether there was.
fn with_prediction(f: impl FnOnce(&mut Prediction)) -> bool {
    PREDICTION.with(|p| p.as_mut().map(f).is_some())
}

struct State {
    table: RegionTable,
    tool: &'static str,
    log_fd: AtomicI32,
    stats: Stats,
    /// The last fault judged a race with another thread (tid and page), to tell a retry from a loop.
    last_retry: AtomicU64,
    /// Whether to print statistics at exit.
    print_stats: bool,
}

/// The one pager of the process: written by `install` before the handler is installed, read-only (but
/// for its atomics) afterwards.
static PAGER: Once<Option<State>> = Once::new(None);

fn state() -> Option<&'static State> {
    PAGER.get().and_then(Option::as_ref)
}

/// The counters, once installed.
pub fn stats() -> Option<&'static Stats> {
    state().map(|s| &s.stats)
}

/// The region table, once installed.
pub fn table() -> Option<&'static RegionTable> {
    state().map(|s| &s.table)
}

fn prot_bits(prot: uexec_elf::Prot) -> u32 {
    u32::from(prot.read) | (u32::from(prot.write) << 1) | (u32::from(prot.exec) << 2)
}

/// Why set-up failed.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SetupError {
    Map(rustix::io::Errno),
    TooManyRegions,
    Signal(i64),
}

/// Builds the region table for `image` loaded at `bias`, makes `first_page` (the entry point's page, for
/// dpager) accessible, and installs the SIGSEGV handler on an alternate stack.
///
/// # Safety
///
/// Must be called once, before the program runs and before any other thread exists; the lazy parts of
/// `image` must have been mapped `PROT_NONE` at `bias` by `uexec_load` with the same laziness.
pub unsafe fn install(
    image: &Image,
    bias: u64,
    config: &Config,
    first_page: Option<u64>,
) -> Result<(), SetupError> {
    // One state byte per page of the image's span is enough for every region.
    let (low, high) = image.span();
    let pages = ((high - low) / PAGE_SIZE) as usize;
    let arena = map_anon(pages.max(1))?;
    // SAFETY: the arena is a fresh, zeroed, private mapping of `pages` bytes that is never unmapped;
    // AtomicU8 has the layout of u8 and zero is UNTOUCHED.
    let states = unsafe { core::slice::from_raw_parts(arena as *const AtomicU8, pages.max(1)) };
    let mut table = RegionTable::new(states);

    // The regions are the load plan's lazy pieces, exactly as uexec_load mapped them (shared pages,
    // which it rebuilt and protected, left out).
    for piece in uexec_elf::LoadPlan::of(image).lazy_pieces() {
        let (lazy, offset) = match piece.source {
            uexec_elf::plan::Source::File { offset, .. } => (config.lazy_file, Some(offset)),
            uexec_elf::plan::Source::Anonymous => (config.lazy_anon, None),
        };
        let (start, end) = (piece.start + bias, piece.end + bias);
        if lazy && !table.push(start, end, prot_bits(piece.prot), offset, piece.segment) {
            return Err(SetupError::TooManyRegions);
        }
    }

    for region in table.regions() {
        if region.file_offset.is_none() && region.prot & 2 != 0 && region.pages() >= PREPARED_PAGES
        {
            // SAFETY: the region is untouched lazy bss of the image, mapped PROT_NONE at load, which
            // nothing else uses yet.
            unsafe { prepare_anon(region) }?;
        }
    }

    let base = config
        .program
        .rsplit(|&b| b == b'/')
        .next()
        .unwrap_or(config.program);
    PROGRAM_NAME.init(|name| {
        let n = base.len().min(15);
        if let (Some(dest), Some(src)) = (name.get_mut(..n), base.get(..n)) {
            dest.copy_from_slice(src);
        }
        true
    });
    let state = State {
        table,
        tool: config.tool,
        log_fd: AtomicI32::new(config.log_fd.unwrap_or(-1)),
        stats: Stats {
            faults: AtomicU64::new(0),
            demand_pages: AtomicU64::new(0),
            predicted_pages: AtomicU64::new(0),
            around_pages: AtomicU64::new(0),
            real_faults: AtomicU64::new(0),
            predicted_used: AtomicU64::new(0),
            predicted_unused: AtomicU64::new(0),
        },
        last_retry: AtomicU64::new(0),
        print_stats: config.stats,
    };
    PREDICTING.store(config.predict.is_some(), Ordering::Relaxed);
    let prediction = config.predict.map(|(policy, pages)| Prediction {
        predictor: Predictor::new(policy, pages),
        pending: [0; MAX_PREDICT],
        pending_len: 0,
    });
    PREDICTION.with(|p| *p = prediction);
    PAGER.init(|slot| {
        *slot = Some(state);
        true
    });

    if let (Some(page), Some(state)) = (first_page, self::state()) {
        if let Some(region) = state.table.lookup(page) {
            claim_and_map(state, region, page_down(page), b"start");
        }
    }
    install_handler()?;
    let ranges = trap_ranges(state_table_regions());
    // SAFETY: still single-threaded set-up, after the pager state exists.
    unsafe { crate::trap::install(ranges.get(), config.stats) }.map_err(SetupError::Signal)
}

/// The smallest bss region [`prepare_anon`] prepares: a smaller one takes too few faults to repay the
/// four system calls and the fault at start-up.
const PREPARED_PAGES: u64 = 64;

/// Gives the lazy bss `region` (untouched, `PROT_NONE`) the kernel state the first write would give
/// it, without leaving a page behind: its memory is committed as native bss is at `execve` (the
/// mapping is accounted, `VM_ACCOUNT`), and it has an `anon_vma`. Every piece a grant later splits
/// off shares that `anon_vma`, so accessible neighbours merge back into one mapping, as the kernel
/// merges only mappings of one `anon_vma`; without it each faulted piece gets its own and the
/// mappings stay split (thousands after a scattered scan, each fault then slower to find its
/// mapping), and every grant pays the commit charge again. The whole region is made writable
/// (one mapping, charged), one byte is written, the page is emptied again with `MADV_DONTNEED` (a
/// private anonymous page reads as zeros afterwards), and the region goes back to `PROT_NONE`,
/// which keeps both the charge and the `anon_vma`. If the kernel refuses the commitment, the region
/// is left as it was.
///
/// # Safety
///
/// `region` must be anonymous, untouched and unused by anything else.
unsafe fn prepare_anon(region: &Region) -> Result<(), SetupError> {
    let (start, len) = (
        region.start as *mut c_void,
        region.pages() as usize * PAGE_SIZE as usize,
    );
    let rw = MprotectFlags::READ | MprotectFlags::WRITE;
    // SAFETY: per the contract, only this region's protection changes.
    if unsafe { rustix::mm::mprotect(start, len, rw) }.is_err() {
        // Refused (RLIMIT_DATA, say): left as it is, each grant is charged on its own, and a grant
        // the kernel refuses for good ends the pager as `cannot_go_on` says.
        return Ok(());
    }
    // SAFETY: the region's first page is writable now and holds zeros; a zero is written, so the
    // contents are unchanged whether or not MADV_DONTNEED then frees the page.
    unsafe {
        start.cast::<u8>().write_volatile(0);
        let _ = rustix::mm::madvise(start, PAGE_SIZE as usize, rustix::mm::Advice::LinuxDontNeed);
    }
    // SAFETY: as above.
    unsafe { rustix::mm::mprotect(start, len, MprotectFlags::empty()) }.map_err(SetupError::Map)
}

fn state_table_regions() -> &'static [Region] {
    table().map_or(&[], |t| t.regions())
}

/// Up to [`crate::trap::MAX_RANGES`] address ranges, for the seccomp filter's argument checks.
struct Ranges {
    list: [(u64, u64); crate::trap::MAX_RANGES],
    len: usize,
}

impl Ranges {
    fn get(&self) -> &[(u64, u64)] {
        self.list.get(..self.len).unwrap_or(&[])
    }
}

/// The lazily mapped regions the kernel may be handed pointers into: all but executable ones (a call
/// rarely passes a pointer into code), adjacent ones joined; if there are still too many, the closest are
/// merged, which only traps a little more than needed.
fn trap_ranges(regions: &[Region]) -> Ranges {
    let mut out = Ranges {
        list: [(0, 0); crate::trap::MAX_RANGES],
        len: 0,
    };
    let mut pending: Option<(u64, u64)> = None;
    let push = |out: &mut Ranges, r: (u64, u64)| {
        if out.len == out.list.len() {
            // Full: extend the last range over this one.
            if let Some(last) = out.list.last_mut() {
                last.1 = r.1;
            }
        } else if let Some(slot) = out.list.get_mut(out.len) {
            *slot = r;
            out.len += 1;
        }
    };
    for r in regions.iter().filter(|r| r.prot & 4 == 0) {
        pending = match pending {
            Some((start, end)) if end == r.start => Some((start, r.end)),
            Some(done) => {
                push(&mut out, done);
                Some((r.start, r.end))
            }
            None => Some((r.start, r.end)),
        };
    }
    if let Some(done) = pending {
        push(&mut out, done);
    }
    out
}

fn map_anon(len: usize) -> Result<*mut c_void, SetupError> {
    // SAFETY: without MAP_FIXED the kernel picks an unused range.
    unsafe {
        rustix::mm::mmap_anonymous(
            core::ptr::null_mut(),
            len.next_multiple_of(PAGE_SIZE as usize),
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::PRIVATE | MapFlags::NORESERVE,
        )
    }
    .map_err(SetupError::Map)
}

/// Installs the SIGSEGV handler, with the main thread on a pager stack (see [`crate::threads`]).
fn install_handler() -> Result<(), SetupError> {
    crate::threads::install_main_stack().map_err(SetupError::Signal)?;
    let action = KernelSigaction {
        handler: on_segv as *const () as usize,
        // SA_SIGINFO: the handler needs si_addr and the context; SA_ONSTACK: a fault on a full program
        // stack still has somewhere to run; SA_RESTORER: there is no libc to provide the restorer.
        // Not SA_NODEFER: a fault inside the handler itself is a bug and must kill.
        flags: sys::SA_SIGINFO | sys::SA_ONSTACK | sys::SA_RESTORER,
        restorer: sys::restore_rt as *const () as usize,
        // Every other signal waits while the pager works: a program handler running on top of it could
        // touch an untouched page while SIGSEGV is blocked, which kills. (The program's own SIGSEGV
        // handler, when the pager passes it a fault, runs with the program's mask instead.)
        mask: u64::MAX,
    };
    // SAFETY: on_segv follows the handler contract described in the module documentation.
    let r = unsafe { sys::rt_sigaction(sys::SIGSEGV, Some(&action), None) };
    if r < 0 {
        return Err(SetupError::Signal(r));
    }
    Ok(())
}

const SEGV_MAPERR: i32 = 1;
/// Page-fault error-code bits.
const PF_WRITE: u64 = 1 << 1;
const PF_INSTR: u64 = 1 << 4;

/// Whether an access with page-fault error code `err` is allowed by `prot`.
fn allowed(err: u64, prot: u32) -> bool {
    if err & PF_INSTR != 0 {
        prot & 4 != 0
    } else if err & PF_WRITE != 0 {
        prot & 2 != 0
    } else {
        prot & 1 != 0
    }
}

extern "C" fn on_segv(sig: i32, info: *mut SigInfo, context: *mut c_void) {
    let give_up = |state: Option<&State>| give_up(state, sig, info, context);
    // SAFETY: the kernel passes a valid siginfo and ucontext to an SA_SIGINFO handler.
    let (addr, code, err) = unsafe {
        let err = context
            .cast::<u8>()
            .add(UC_ERR_OFFSET)
            .cast::<u64>()
            .read_unaligned();
        ((*info).addr, (*info).code, err)
    };
    let Some(state) = state() else {
        return give_up(None);
    };
    let Some(region) = state.table.lookup(addr) else {
        return give_up(Some(state));
    };
    let page = page_down(addr);
    let Some(slot) = state.table.state(region, page) else {
        return give_up(Some(state));
    };
    match slot.compare_exchange(UNTOUCHED, MAPPING, Ordering::Acquire, Ordering::Acquire) {
        Ok(_) => {
            let grain = grain(&state.table, region);
            let granted = if predicting() && grain != Grain::Gap {
                map_with_prediction(state, region, page, grain)
            } else {
                grant(state, region, page, b"demand")
            };
            match granted {
                Granted::Yes => {
                    populate(region, page, err);
                    state.stats.faults.fetch_add(1, Ordering::Relaxed);
                }
                Granted::Gone => give_up(Some(state)),
                Granted::Failed(errno) => cannot_go_on(state, page, errno),
            }
        }
        Err(MAPPING) => {
            // Another thread is mapping this very page: wait for it, then retry the access.
            while slot.load(Ordering::Acquire) == MAPPING {
                core::hint::spin_loop();
            }
        }
        Err(_) => {
            // The page was already made accessible. Either this thread faulted before another one
            // finished mapping it (retry), or the access is one the page does not allow, or the program
            // changed or removed the page itself (real). A retry that faults again at the same page in
            // the same thread is real too.
            if code == SEGV_MAPERR || !allowed(err, region.prot) {
                return give_up(Some(state));
            }
            let tid = rustix::thread::gettid().as_raw_nonzero().get() as u64;
            let key = (tid << 36) ^ (page >> 12);
            if state.last_retry.swap(key, Ordering::Relaxed) == key {
                state.last_retry.store(0, Ordering::Relaxed);
                give_up(Some(state));
            }
        }
    }
}

/// Whether the kernel populates pages on request (`MADV_POPULATE_WRITE`, Linux 5.14); cleared the
/// first time it answers `EINVAL`.
static POPULATE: AtomicBool = AtomicBool::new(true);

/// After the demand page `page` of `region` was granted for an access with page-fault error code
/// `err`: if it was a read of a writable anonymous (bss) page, populates the page for writing now.
/// Natively such a read maps the shared zero page and the write that usually follows (`x += ...`)
/// faults again to copy it; under the pager the retried read would take that first fault and the
/// write the second, so one system call replaces two faults (the page is then the program's own
/// rather than the zero page, which costs a page of memory if it is only ever read). A write fault is
/// left to the retried access: one fault is cheaper than the system call. Failure is harmless: the
/// access then faults as usual.
fn populate(region: &Region, page: u64, err: u64) {
    let read_of_bss =
        err & (PF_WRITE | PF_INSTR) == 0 && region.prot & 2 != 0 && region.file_offset.is_none();
    if !read_of_bss || !POPULATE.load(Ordering::Relaxed) {
        return;
    }
    // SAFETY: advice on one page of the program image that was just made writable; populating
    // changes no contents.
    let r = unsafe {
        sys::syscall4(
            k::__NR_madvise as u64,
            page,
            PAGE_SIZE,
            u64::from(k::MADV_POPULATE_WRITE),
            0,
        )
    };
    if r == -i64::from(linux_raw_sys::errno::EINVAL) {
        POPULATE.store(false, Ordering::Relaxed);
    }
}

/// What became of a claimed demand page.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Granted {
    /// It is accessible.
    Yes,
    /// It is no longer mapped at all: the program removed it; the fault is real.
    Gone,
    /// The kernel refused every grant (this errno) and the page is still there: the pager cannot go on.
    Failed(i32),
}

/// How much a grant in a region makes accessible, by how fragmented the region is.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Grain {
    Page,
    /// The aligned block of this many bytes around the page.
    Block(u64),
    /// Every untouched page between the accessible ones below and above.
    Gap,
}

fn grain(table: &RegionTable, region: &Region) -> Grain {
    let runs = table.runs(region);
    if table.total_runs.load(Ordering::Relaxed) >= TOTAL_RUNS || runs >= LARGE_RUNS {
        Grain::Gap
    } else if runs >= BLOCK_RUNS {
        Grain::Block(2 << 20)
    } else if runs >= FINE_RUNS {
        Grain::Block(64 << 10)
    } else {
        Grain::Page
    }
}

/// The bounds `[low, high)` of the grant `grain` calls for around `page` in `region`.
fn span(table: &RegionTable, region: &Region, page: u64, grain: Grain) -> (u64, u64) {
    match grain {
        Grain::Page => (page, page + PAGE_SIZE),
        Grain::Block(size) => {
            let low = page & !(size - 1);
            (
                low.max(region.start),
                low.saturating_add(size).min(region.end),
            )
        }
        Grain::Gap => {
            let untouched = |at: u64| {
                table
                    .state(region, at)
                    .is_some_and(|s| s.load(Ordering::Relaxed) == UNTOUCHED)
            };
            let mut low = page;
            while low > region.start && untouched(low - PAGE_SIZE) {
                low -= PAGE_SIZE;
            }
            let mut high = page + PAGE_SIZE;
            while high < region.end && untouched(high) {
                high += PAGE_SIZE;
            }
            (low, high)
        }
    }
}

/// Makes the page `page` of `region`, whose state the caller set to MAPPING, accessible together with
/// the untouched pages the region's fragmentation calls for ([`grain`]); if the kernel refuses, tries
/// the whole gap around the page, then the page alone.
fn grant(state: &State, region: &Region, page: u64, why: &[u8]) -> Granted {
    let first = span(&state.table, region, page, grain(&state.table, region));
    let errno = match grant_span(state, region, page, first, why) {
        Ok(()) => return Granted::Yes,
        Err(errno) => errno,
    };
    recover(state, region, page, first, why, errno)
}

/// After the grant `tried` of the claimed page `page` failed with `errno`: the whole gap (which splits
/// no mapping), then the page alone (a smaller commitment of memory), then the verdict.
fn recover(
    state: &State,
    region: &Region,
    page: u64,
    tried: (u64, u64),
    why: &[u8],
    errno: i32,
) -> Granted {
    let mut errno = errno;
    let gap = span(&state.table, region, page, Grain::Gap);
    for retry in [gap, (page, page + PAGE_SIZE)] {
        if retry == tried {
            continue;
        }
        match grant_span(state, region, page, retry, why) {
            Ok(()) => return Granted::Yes,
            Err(e) => errno = e,
        }
    }
    let mut one = [0u8; 1];
    if let Some(slot) = state.table.state(region, page) {
        slot.store(MAPPED, Ordering::Release);
    }
    if mincore(page, 1, &mut one) {
        Granted::Failed(errno)
    } else {
        Granted::Gone
    }
}

/// Makes `[low, high)` (which holds the claimed page `page`) accessible: claims its untouched pages,
/// and gives each run of claimed pages the region's protection with one `mprotect`. Pages of a run the
/// kernel refuses go back to UNTOUCHED, except `page`, which stays MAPPING; returns the kernel's errno
/// if `page`'s run was refused.
fn grant_span(
    state: &State,
    region: &Region,
    page: u64,
    (low, high): (u64, u64),
    why: &[u8],
) -> Result<(), i32> {
    let mut result = Ok(());
    let mut run: Option<u64> = None;
    let mut at = low;
    while at <= high {
        let claimed = at < high
            && (at == page
                || state.table.state(region, at).is_some_and(|s| {
                    s.compare_exchange(UNTOUCHED, MAPPING, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                }));
        match (claimed, run) {
            (true, None) => run = Some(at),
            (false, Some(start)) => {
                let demand = (start <= page && page < at).then_some(page);
                if let Err(errno) = protect_claimed(state, region, start, at, demand, why) {
                    if demand.is_some() {
                        result = Err(errno);
                    }
                }
                run = None;
            }
            _ => {}
        }
        at += PAGE_SIZE;
    }
    result
}

/// Gives the claimed pages `[start, end)` the region's protection; on success counts the run if it
/// bordered no accessible page, marks the pages MAPPED, counts and logs them (`demand`, if given, as
/// `why`, the others as `around`). On failure the pages but `demand` go back to UNTOUCHED.
fn protect_claimed(
    state: &State,
    region: &Region,
    start: u64,
    end: u64,
    demand: Option<u64>,
    why: &[u8],
) -> Result<(), i32> {
    let flags = MprotectFlags::from_bits_truncate(region.prot);
    // SAFETY: the run lies in a region of the program image, reserved at load; only its protection
    // changes.
    let result =
        unsafe { rustix::mm::mprotect(start as *mut c_void, (end - start) as usize, flags) };
    let ok = result.is_ok();
    if ok {
        note_run(state, region, start, end);
    }
    let mut at = start;
    while at < end {
        if let Some(slot) = state.table.state(region, at) {
            if ok {
                slot.store(MAPPED, Ordering::Release);
            } else if Some(at) != demand {
                slot.store(UNTOUCHED, Ordering::Release);
            }
        }
        at += PAGE_SIZE;
    }
    if let Err(e) = result {
        return Err(e.raw_os_error());
    }
    let pages = (end - start) / PAGE_SIZE;
    let around = pages - u64::from(demand.is_some());
    if around > 0 {
        state
            .stats
            .around_pages
            .fetch_add(around, Ordering::Relaxed);
    }
    match demand {
        Some(demand) => {
            state.stats.demand_pages.fetch_add(1, Ordering::Relaxed);
            log(state, region, demand, 1, why);
            if demand > start {
                log(
                    state,
                    region,
                    start,
                    (demand - start) / PAGE_SIZE,
                    b"around",
                );
            }
            if demand + PAGE_SIZE < end {
                let rest = (end - demand - PAGE_SIZE) / PAGE_SIZE;
                log(state, region, demand + PAGE_SIZE, rest, b"around");
            }
        }
        None => log(state, region, start, pages, b"around"),
    }
    Ok(())
}

/// Counts `[start, end)`, just made accessible, as a run of `region` if no page next to it is
/// accessible (it split a mapping instead of extending or joining one).
fn note_run(state: &State, region: &Region, start: u64, end: u64) {
    let below = start > region.start && state.table.accessible(region, start - PAGE_SIZE);
    let above = state.table.accessible(region, end);
    if !below && !above {
        state.table.count_run(region);
    }
}

/// The pager cannot make `page` accessible (the kernel refused with `errno`) and cannot go on: says so
/// on stderr, prints the statistics if asked, and ends the process with [`EXIT_PAGER_FAILED`] — not
/// with the SIGSEGV the program would be blamed for.
fn cannot_go_on(state: &State, page: u64, errno: i32) -> ! {
    let mut line = Line::<200>::new();
    push_whose(&mut line, state.tool);
    line.push(b": cannot map page ")
        .hex(page, 0)
        .push(b" of the program: mprotect failed (error ")
        .dec(errno.unsigned_abs().into())
        .push(b")\n");
    line.write_to(2);
    print_stats();
    sys::exit_group(EXIT_PAGER_FAILED)
}

/// The kernel refused the seccomp filter when syscall user dispatch ended (see crate::dispatch): the
/// pager can no longer see the program's calls. Says so, as [`cannot_go_on`] does, and ends the process
/// with [`EXIT_PAGER_FAILED`].
pub(crate) fn cannot_attach_filter(error: i64) -> ! {
    let mut line = Line::<200>::new();
    match state() {
        Some(state) => push_whose(&mut line, state.tool),
        None => {
            line.push(b"uexec-pager");
        }
    }
    line.push(b": cannot attach the system-call filter (error ")
        .dec(error.unsigned_abs())
        .push(b")\n");
    line.write_to(2);
    print_stats();
    sys::exit_group(EXIT_PAGER_FAILED)
}

/// Whether hpager's prediction is on.
fn predicting() -> bool {
    PREDICTING.load(Ordering::Relaxed)
}

/// Set by `install` when there is a predictor.
static PREDICTING: AtomicBool = AtomicBool::new(false);

/// Maps the claimed demand page `page` together with the pages the predictor expects next: judges the
/// last prediction (which of its pages the program touched since), asks for the next one, claims those
/// of its pages nobody mapped yet, and makes the demand page and the claimed pages accessible in as few
/// `mprotect`s as runs of adjacent pages allow (one for a forward or backward scan). If the kernel
/// refuses the demand page's run, [`recover`] takes over.
fn map_with_prediction(state: &State, region: &Region, page: u64, grain: Grain) -> Granted {
    if let Grain::Block(_) = grain {
        return map_blocks_with_prediction(state, region, page, grain);
    }
    let mut demand_mapped = Err(0);
    let ran = with_prediction(|p| {
        let mut out = [0u64; MAX_PREDICT];
        let count = next_prediction(p, region, page, &mut out);
        let mut run = Run {
            start: page,
            end: page + PAGE_SIZE,
            demand: Some(page),
        };
        for &number in out.get(..count).unwrap_or(&[]) {
            let Some(addr) = number.checked_mul(PAGE_SIZE) else {
                continue;
            };
            if addr < region.start || addr >= region.end {
                continue;
            }
            let Some(slot) = state.table.state(region, addr) else {
                continue;
            };
            if slot
                .compare_exchange(UNTOUCHED, MAPPING, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                continue;
            }
            if let Some(pending) = p.pending.get_mut(p.pending_len) {
                *pending = addr;
                p.pending_len += 1;
            }
            if addr == run.end {
                run.end += PAGE_SIZE;
            } else if addr + PAGE_SIZE == run.start {
                run.start = addr;
            } else {
                protect_run(state, region, run, &mut demand_mapped);
                run = Run {
                    start: addr,
                    end: addr + PAGE_SIZE,
                    demand: None,
                };
            }
        }
        protect_run(state, region, run, &mut demand_mapped);
    });
    if !ran {
        // No predictor after all (PREDICTING is only set with one): map the page alone.
        return grant(state, region, page, b"demand");
    }
    match demand_mapped {
        Ok(()) => Granted::Yes,
        Err(errno) => recover(
            state,
            region,
            page,
            (page, page + PAGE_SIZE),
            b"demand",
            errno,
        ),
    }
}

/// Judges the last prediction and asks the predictor for the pages to map with the fault at `page` in
/// `region`: their page numbers go in `out`; returns how many.
fn next_prediction(
    p: &mut Prediction,
    region: &Region,
    page: u64,
    out: &mut [u64; MAX_PREDICT],
) -> usize {
    judge_pending(p);
    let first = region.start / PAGE_SIZE;
    let end = region.end / PAGE_SIZE;
    p.predictor.on_fault(page / PAGE_SIZE, first, end, out)
}

/// No page is the demand page of a span granted for a prediction.
const NO_DEMAND: u64 = u64::MAX;

/// [`map_with_prediction`] in a fragmented region: the block around the demand page, and the block
/// around each predicted page nobody claimed yet (claimed page by page like any coarse grant, marked
/// MAPPED and counted as `around`; the predicted pages are still judged at the next fault).
fn map_blocks_with_prediction(state: &State, region: &Region, page: u64, grain: Grain) -> Granted {
    let mut granted = Granted::Yes;
    let ran = with_prediction(|p| {
        let mut out = [0u64; MAX_PREDICT];
        let count = next_prediction(p, region, page, &mut out);
        granted = grant(state, region, page, b"demand");
        if granted != Granted::Yes {
            return;
        }
        for &number in out.get(..count).unwrap_or(&[]) {
            let Some(addr) = number.checked_mul(PAGE_SIZE) else {
                continue;
            };
            if addr < region.start || addr >= region.end {
                continue;
            }
            let untouched = state
                .table
                .state(region, addr)
                .is_some_and(|s| s.load(Ordering::Acquire) == UNTOUCHED);
            if !untouched {
                continue;
            }
            let span = span(&state.table, region, addr, grain);
            // Refused pages went back to UNTOUCHED: they are left to demand.
            let _ = grant_span(state, region, NO_DEMAND, span, b"predict");
            if let Some(pending) = p.pending.get_mut(p.pending_len) {
                *pending = addr;
                p.pending_len += 1;
            }
        }
    });
    if !ran {
        return grant(state, region, page, b"demand");
    }
    granted
}

/// Adjacent pages made accessible with one `mprotect`: predicted pages, and perhaps the demand page.
#[derive(Copy, Clone)]
struct Run {
    start: u64,
    end: u64,
    demand: Option<u64>,
}

/// Makes a run of claimed (MAPPING) pages accessible, then marks the demand page MAPPED and the
/// predicted ones PREDICTED: a thread faulting on one of them meanwhile waits for the run instead of
/// taking its fault for a real one. If the kernel refuses, the predicted pages go back to UNTOUCHED
/// and the demand page stays MAPPING. If the run holds the demand page, `demand` gets the outcome
/// (`Ok`, or the kernel's errno).
fn protect_run(state: &State, region: &Region, run: Run, outcome: &mut Result<(), i32>) {
    if run.end <= run.start {
        return;
    }
    let flags = MprotectFlags::from_bits_truncate(region.prot);
    let len = run.end - run.start;
    // SAFETY: the run lies in a region of the program image; only its protection changes.
    let result = unsafe { rustix::mm::mprotect(run.start as *mut c_void, len as usize, flags) };
    let ok = result.is_ok();
    if ok {
        note_run(state, region, run.start, run.end);
    }
    let mut at = run.start;
    while at < run.end {
        if let Some(slot) = state.table.state(region, at) {
            if Some(at) == run.demand {
                if ok {
                    slot.store(MAPPED, Ordering::Release);
                }
            } else {
                slot.store(if ok { PREDICTED } else { UNTOUCHED }, Ordering::Release);
            }
        }
        at += PAGE_SIZE;
    }
    if let Err(e) = result {
        if run.demand.is_some() {
            *outcome = Err(e.raw_os_error());
        }
        return;
    }
    let predicted = len / PAGE_SIZE - u64::from(run.demand.is_some());
    state
        .stats
        .predicted_pages
        .fetch_add(predicted, Ordering::Relaxed);
    match run.demand {
        Some(demand) => {
            state.stats.demand_pages.fetch_add(1, Ordering::Relaxed);
            log(state, region, demand, 1, b"demand");
            if demand > run.start {
                log(
                    state,
                    region,
                    run.start,
                    (demand - run.start) / PAGE_SIZE,
                    b"predict",
                );
            }
            if demand + PAGE_SIZE < run.end {
                log(
                    state,
                    region,
                    demand + PAGE_SIZE,
                    (run.end - demand - PAGE_SIZE) / PAGE_SIZE,
                    b"predict",
                );
            }
            *outcome = Ok(());
        }
        None => log(state, region, run.start, len / PAGE_SIZE, b"predict"),
    }
}

/// Tells the predictor which of the pages it predicted at the last fault the program has touched since
/// (they are resident: a predicted anonymous page is made accessible, not populated). Only for
/// `adaptive`, the one policy that learns from it: for the others the fault path makes no `mincore`.
fn judge_pending(p: &mut Prediction) {
    if !p.predictor.wants_feedback() {
        // Nothing on the fault path learns from it; `--stats` counts predictions at exit.
        p.pending_len = 0;
        return;
    }
    let pending = p.pending.get(..p.pending_len).unwrap_or(&[]);
    let (Some(&low), Some(&high)) = (pending.iter().min(), pending.iter().max()) else {
        p.pending_len = 0;
        return;
    };
    let mut resident = [0u8; 2 * MAX_PREDICT];
    let span = ((high - low) / PAGE_SIZE + 1) as usize;
    let (mut used, mut unused) = (0u32, 0u32);
    if span <= resident.len() && mincore(low, span, &mut resident) {
        for &addr in pending {
            let touched = resident
                .get(((addr - low) / PAGE_SIZE) as usize)
                .is_some_and(|r| r & 1 != 0);
            if touched {
                used += 1
            } else {
                unused += 1
            }
        }
    } else {
        for &addr in pending {
            let mut one = [0u8; 1];
            if mincore(addr, 1, &mut one) && one[0] & 1 != 0 {
                used += 1
            } else {
                unused += 1
            }
        }
    }
    p.pending_len = 0;
    p.predictor.feedback(used, unused);
}

/// `mincore` over `pages` pages from `addr` into `vec` (which must hold that many bytes).
fn mincore(addr: u64, pages: usize, vec: &mut [u8]) -> bool {
    if vec.len() < pages {
        return false;
    }
    // SAFETY: the kernel writes one byte per page into `vec`, which holds at least `pages` bytes.
    unsafe {
        sys::syscall4(
            k::__NR_mincore as u64,
            addr,
            pages as u64 * PAGE_SIZE,
            vec.as_mut_ptr() as u64,
            0,
        ) == 0
    }
}

/// At exit: how many predicted pages the program touched (resident) and how many it never did.
fn account_predictions(state: &State) {
    let states = state.table.states();
    let mut resident = [0u8; 1024];
    for region in state.table.regions() {
        let pages = region.pages() as usize;
        let mut done = 0;
        while done < pages {
            let chunk = (pages - done).min(resident.len());
            let addr = region.start + done as u64 * PAGE_SIZE;
            let ok = mincore(addr, chunk, &mut resident);
            for i in 0..chunk {
                let predicted = states
                    .get(region.first_state + done + i)
                    .is_some_and(|s| s.load(Ordering::Relaxed) == PREDICTED);
                if predicted {
                    let touched = ok && resident.get(i).is_some_and(|r| r & 1 != 0);
                    let counter = if touched {
                        &state.stats.predicted_used
                    } else {
                        &state.stats.predicted_unused
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            }
            done += chunk;
        }
    }
}

/// Makes `page` accessible unless it already is; if another thread is making it accessible right now,
/// waits for that (the caller is about to hand the page to the kernel).
fn claim_and_map(state: &State, region: &Region, page: u64, why: &[u8]) {
    let Some(slot) = state.table.state(region, page) else {
        return;
    };
    match slot.compare_exchange(UNTOUCHED, MAPPING, Ordering::Acquire, Ordering::Acquire) {
        Ok(_) => {
            if let Granted::Failed(errno) = grant(state, region, page, why) {
                cannot_go_on(state, page, errno);
            }
        }
        Err(MAPPING) => {
            while slot.load(Ordering::Acquire) == MAPPING {
                core::hint::spin_loop();
            }
        }
        Err(_) => {}
    }
}

/// Writes `tool: map ADDR SIZE PROT SOURCE why[N]` for `count` pages from `page`.
fn log(state: &State, region: &Region, page: u64, count: u64, why: &[u8]) {
    let fd = state.log_fd.load(Ordering::Relaxed);
    if fd < 0 {
        return;
    }
    let mut line = Line::<200>::new();
    push_whose(&mut line, state.tool);
    line.push(b": map ")
        .hex(page, 12)
        .push(b" ")
        .hex(count * PAGE_SIZE, 0);
    line.push(b" ").push(prot_str(region.prot)).push(b" ");
    match region.file_offset {
        Some(offset) => line.push(b"file@").hex(offset + (page - region.start), 0),
        None => line.push(b"anon"),
    };
    line.push(b" ")
        .push(why)
        .push(b"[")
        .dec(u64::from(region.segment))
        .push(b"]\n");
    line.write_to(fd);
}

/// Not the pager's fault. If the program installed a SIGSEGV handler, run it as the kernel would have
/// (in this very signal frame, with its mask); otherwise restore the default action and return, so the
/// access faults again and the process dies as it would natively.
fn give_up(state: Option<&State>, sig: i32, info: *mut SigInfo, context: *mut c_void) {
    if let Some(state) = state {
        state.stats.real_faults.fetch_add(1, Ordering::Relaxed);
    }
    let action = crate::trap::program_segv_action();
    if action.handler > 1 {
        run_program_handler(&action, sig, info, context);
        return;
    }
    if state.is_some_and(|s| s.print_stats) {
        print_stats();
    }
    let default = KernelSigaction {
        handler: sys::SIG_DFL,
        flags: sys::SA_RESTORER,
        restorer: sys::restore_rt as *const () as usize,
        mask: 0,
    };
    // SAFETY: SIG_DFL is always a sound disposition.
    unsafe { sys::rt_sigaction(sys::SIGSEGV, Some(&default), None) };
}

/// Calls the program's own SIGSEGV handler from inside the pager's, with the signal frame the kernel
/// built, the blocked set the kernel would give it (the interrupted mask plus its `sa_mask`) and
/// `SA_RESETHAND` honoured. SIGSEGV itself stays deliverable, unlike natively, because the program's
/// handler may touch pages nobody touched yet; a real fault inside it then re-enters it instead of
/// killing at once, and ends the same way (SIGSEGV) when the stack runs out.
fn run_program_handler(
    action: &KernelSigaction,
    sig: i32,
    info: *mut SigInfo,
    context: *mut c_void,
) {
    const SA_RESETHAND: u64 = 0x8000_0000;
    const SIG_SETMASK: u64 = 2;
    let never = (1u64 << (sys::SIGSEGV - 1)) | (1u64 << (sys::SIGSYS - 1));
    // SAFETY: `context` is the ucontext of the SIGSEGV being handled.
    let interrupted = unsafe {
        context
            .cast::<u8>()
            .add(UC_SIGMASK_OFFSET)
            .cast::<u64>()
            .read_unaligned()
    };
    // The checkpoint signal waits while the program's handler runs on the pager's stack (see
    // trap::hold_during_traps): its frame would hold the pager's registers.
    let mask = ((interrupted | action.mask) & !never) | crate::trap::held_in_traps();
    let mut old: u64 = 0;
    // SAFETY: rt_sigprocmask with pointers to local sets of the kernel's size (8 bytes).
    unsafe {
        sys::syscall4(
            k::__NR_rt_sigprocmask as u64,
            SIG_SETMASK,
            &mask as *const u64 as u64,
            &mut old as *mut u64 as u64,
            8,
        )
    };
    if action.flags & SA_RESETHAND != 0 {
        crate::trap::reset_program_segv_action();
    }
    if action.flags & sys::SA_SIGINFO != 0 {
        // SAFETY: the program registered this function as an SA_SIGINFO handler for SIGSEGV; it gets the
        // kernel's own siginfo and ucontext for the fault.
        let handler: extern "C" fn(i32, *mut SigInfo, *mut c_void) =
            unsafe { core::mem::transmute(action.handler) };
        handler(sig, info, context);
    } else {
        // SAFETY: the program registered this function as a plain handler for SIGSEGV.
        let handler: extern "C" fn(i32) = unsafe { core::mem::transmute(action.handler) };
        handler(sig);
    }
    // SAFETY: restores the mask saved above.
    unsafe {
        sys::syscall4(
            k::__NR_rt_sigprocmask as u64,
            SIG_SETMASK,
            &old as *const u64 as u64,
            0,
            8,
        )
    };
}

/// Makes the image pages in `[addr, addr + len)` accessible, for a system call that is about to read or
/// write them (the kernel gets EFAULT, not a fault, from an inaccessible page).
pub fn ensure_accessible(addr: u64, len: u64) {
    let Some(state) = state() else { return };
    let Some(end) = addr.checked_add(len.min(1 << 30)) else {
        return;
    };
    let mut page = page_down(addr);
    while page < end {
        match state.table.find(page) {
            Some(region) => {
                claim_and_map(state, region, page, b"kernel");
                page += PAGE_SIZE;
            }
            None => match state.table.next_start(page) {
                Some(next) if next < end => page = next,
                _ => break,
            },
        }
    }
}

/// Gives the image pages in `[addr, addr + len)` to the program: it is changing or removing them itself
/// (`mprotect`, `munmap`, ...), so their protection is its own from now on, and faults there are real.
pub fn hand_over(addr: u64, len: u64) {
    let Some(state) = state() else { return };
    let Some(end) = addr.checked_add(len) else {
        return;
    };
    let mut page = page_down(addr);
    while page < end {
        match state.table.find(page) {
            Some(region) => {
                if let Some(slot) = state.table.state(region, page) {
                    slot.store(MAPPED, Ordering::Release);
                }
                page += PAGE_SIZE;
            }
            None => match state.table.next_start(page) {
                Some(next) if next < end => page = next,
                _ => break,
            },
        }
    }
}

/// Grants every untouched page of every region, one grant per untouched gap: a checkpoint must find
/// the program's memory as the program would, with its contents and its own protection, since the
/// restarted program runs without a pager.
pub fn grant_all() {
    let Some(state) = state() else { return };
    for region in state.table.regions() {
        let mut page = region.start;
        while page < region.end {
            let claimed = state.table.state(region, page).is_some_and(|slot| {
                slot.compare_exchange(UNTOUCHED, MAPPING, Ordering::Acquire, Ordering::Acquire)
                    .is_ok()
            });
            if !claimed {
                page += PAGE_SIZE;
                continue;
            }
            let gap = span(&state.table, region, page, Grain::Gap);
            if let Err(errno) = grant_span(state, region, page, gap, b"checkpoint") {
                cannot_go_on(state, page, errno);
            }
            page = gap.1.max(page + PAGE_SIZE);
        }
    }
}

/// Writes the statistics line: `TOOL: stats key=value ...`.
pub fn print_stats() {
    let Some(state) = state() else { return };
    if !state.print_stats {
        return;
    }
    account_predictions(state);
    let fd = state.log_fd.load(Ordering::Relaxed);
    let fd = if fd >= 0 { fd } else { 2 };
    let s = &state.stats;
    let (peak_vm, peak_rss) = peak_memory_kib();
    let mut line = Line::<400>::new();
    push_whose(&mut line, state.tool);
    line.push(b": stats");
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    for (key, value) in [
        (&b"faults"[..], load(&s.faults)),
        (b"demand_pages", load(&s.demand_pages)),
        (b"predicted_pages", load(&s.predicted_pages)),
        (b"predicted_used", load(&s.predicted_used)),
        (b"predicted_unused", load(&s.predicted_unused)),
        (b"around_pages", load(&s.around_pages)),
        (b"lookups", load(&state.table.lookups)),
        (b"cache_hits", load(&state.table.hits)),
        (b"real_faults", load(&s.real_faults)),
        (b"vmas", count_vmas()),
        (b"peak_vm_kib", peak_vm),
        (b"peak_rss_kib", peak_rss),
    ] {
        line.push(b" ").push(key).push(b"=").dec(value);
    }
    line.push(b"\n");
    line.write_to(fd);
}

/// The process's mappings (VMAs) now: the lines of `/proc/self/maps`, read in fixed-size pieces (0 if
/// unreadable).
fn count_vmas() -> u64 {
    let Ok(fd) = rustix::fs::open(
        c"/proc/self/maps",
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    ) else {
        return 0;
    };
    let mut buf = [0u8; 4096];
    let mut lines = 0u64;
    loop {
        match rustix::io::read(&fd, &mut buf) {
            Ok(n) if n > 0 => {
                let read = buf.get(..n).unwrap_or(&[]);
                lines += read.iter().filter(|&&b| b == b'\n').count() as u64;
            }
            Err(rustix::io::Errno::INTR) => {}
            _ => break,
        }
    }
    lines
}

/// VmPeak and VmHWM from `/proc/self/status`, in KiB (0 if unreadable).
fn peak_memory_kib() -> (u64, u64) {
    let mut buf = [0u8; 4096];
    let Ok(fd) = rustix::fs::open(
        c"/proc/self/status",
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    ) else {
        return (0, 0);
    };
    let mut len = 0;
    while let Some(rest) = buf.get_mut(len..) {
        match rustix::io::read(&fd, rest) {
            Ok(n) if n > 0 => len += n,
            _ => break,
        }
    }
    let text = buf.get(..len).unwrap_or(&[]);
    let field = |name: &[u8]| -> u64 {
        for line in text.split(|&b| b == b'\n') {
            if let Some(rest) = line.strip_prefix(name) {
                return rest
                    .iter()
                    .filter(|b| b.is_ascii_digit())
                    .fold(0u64, |v, &d| {
                        v.saturating_mul(10).saturating_add(u64::from(d - b'0'))
                    });
            }
        }
        0
    };
    (field(b"VmPeak:"), field(b"VmHWM:"))
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    /// A table of one 4 MiB anonymous region at 0x1000000.
    fn table() -> RegionTable {
        let states: &'static [AtomicU8] =
            std::vec::Vec::leak((0..1024).map(|_| AtomicU8::new(0)).collect());
        let mut t = RegionTable::new(states);
        assert!(t.push(0x100_0000, 0x140_0000, 3, None, 2));
        t
    }

    #[test]
    fn grants_grow_coarser_as_a_region_fragments() {
        let t = table();
        let r = *t.lookup(0x100_0000).unwrap();
        assert_eq!(grain(&t, &r), Grain::Page);
        let steps = [
            (FINE_RUNS, Grain::Block(64 << 10)),
            (BLOCK_RUNS, Grain::Block(2 << 20)),
            (LARGE_RUNS, Grain::Gap),
        ];
        let mut runs = 0;
        for (threshold, expected) in steps {
            while runs < threshold - 1 {
                t.count_run(&r);
                runs += 1;
            }
            assert_ne!(grain(&t, &r), expected);
            t.count_run(&r);
            runs += 1;
            assert_eq!(grain(&t, &r), expected, "after {runs} runs");
        }
    }

    #[test]
    fn a_busy_table_grants_whole_gaps_everywhere() {
        let states: &'static [AtomicU8] =
            std::vec::Vec::leak((0..64).map(|_| AtomicU8::new(0)).collect());
        let mut t = RegionTable::new(states);
        assert!(t.push(0x40_0000, 0x41_0000, 5, Some(0), 1));
        assert!(t.push(0x50_0000, 0x51_0000, 3, None, 2));
        let (text, bss) = (*t.lookup(0x40_0000).unwrap(), *t.lookup(0x50_0000).unwrap());
        for _ in 0..TOTAL_RUNS - 1 {
            t.count_run(&text);
        }
        assert_eq!(grain(&t, &bss), Grain::Page);
        t.count_run(&text);
        assert_eq!(grain(&t, &bss), Grain::Gap);
    }

    #[test]
    fn spans_are_aligned_blocks_clamped_to_the_region_or_the_untouched_gap() {
        let t = table();
        let r = *t.lookup(0x100_0000).unwrap();
        let page = 0x123_4000;
        assert_eq!(span(&t, &r, page, Grain::Page), (page, page + PAGE_SIZE));
        assert_eq!(
            span(&t, &r, page, Grain::Block(64 << 10)),
            (0x123_0000, 0x124_0000)
        );
        assert_eq!(
            span(&t, &r, page, Grain::Block(2 << 20)),
            (0x120_0000, 0x140_0000)
        );
        // A 2 MiB block reaching below the region is cut at its start.
        assert_eq!(
            span(&t, &r, 0x100_3000, Grain::Block(8 << 20)),
            (0x100_0000, 0x140_0000)
        );
        // The gap: from the page after the last non-untouched one below to the next one above.
        assert_eq!(span(&t, &r, page, Grain::Gap), (0x100_0000, 0x140_0000));
        t.state(&r, 0x120_0000)
            .unwrap()
            .store(MAPPED, Ordering::Relaxed);
        t.state(&r, 0x130_0000)
            .unwrap()
            .store(MAPPING, Ordering::Relaxed);
        assert_eq!(span(&t, &r, page, Grain::Gap), (0x120_1000, 0x130_0000));
    }
}
