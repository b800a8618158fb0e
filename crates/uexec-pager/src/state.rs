//! The pager's shared state, written once at set-up: configuration, region table, counters.
//!
//! Built by [`init`]; the prediction state lives behind the crate's lock.
//!
//! At set-up the lazy parts of the program's segments (see `uexec_elf::LoadPlan::lazy_pieces`) become
//! regions: their pages are already mapped with their final contents but `PROT_NONE`, and
//! [`crate::grant`] makes them accessible as they are touched.
//!
//! # Safety
//!
//! Everything here is written by [`init`] before any handler exists and is read-only afterwards (but
//! for atomics and the prediction state, behind [`Lock`]), so the handlers may read it.

use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicU8, Ordering};
use rustix::mm::{MapFlags, MprotectFlags, ProtFlags};
use uexec_elf::{Image, PAGE_SIZE};

use crate::lock::{Lock, Once};
use crate::predict::{Policy, Predictor, MAX_PREDICT};
use crate::regions::{Region, RegionTable};

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

/// What [`crate::install`] needs to know.
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

/// The program's name for log lines (NUL-padded), once set up.
pub(crate) fn program_name() -> &'static [u8] {
    PROGRAM_NAME.get().map_or(&[], |n| n)
}

/// The predictor and the pages it predicted last, behind a [`Lock`] (faults in several threads take
/// turns; the critical section is a few system calls).
pub(crate) struct Prediction {
    pub(crate) predictor: Predictor,
    /// Pages predicted at the last fault, not yet judged used or unused.
    pub(crate) pending: [u64; MAX_PREDICT],
    pub(crate) pending_len: usize,
}

static PREDICTION: Lock<Option<Prediction>> = Lock::new(None);

/// Runs `f` on the prediction state, if there is one; returns whether there was.
pub(crate) fn with_prediction(f: impl FnOnce(&mut Prediction)) -> bool {
    PREDICTION.with(|p| p.as_mut().map(f).is_some())
}

pub(crate) struct State {
    pub(crate) table: RegionTable,
    pub(crate) tool: &'static str,
    pub(crate) log_fd: AtomicI32,
    pub(crate) stats: Stats,
    /// The last fault judged a race with another thread (tid and page), to tell a retry from a loop.
    pub(crate) last_retry: AtomicU64,
    /// Whether to print statistics at exit.
    pub(crate) print_stats: bool,
}

/// The one pager of the process: written by [`init`] before the handlers are installed, read-only (but
/// for its atomics) afterwards.
static PAGER: Once<Option<State>> = Once::new(None);

pub(crate) fn state() -> Option<&'static State> {
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

/// Whether hpager's prediction is on.
pub(crate) fn predicting() -> bool {
    PREDICTING.load(Ordering::Relaxed)
}

/// Set by [`init`] when there is a predictor.
static PREDICTING: AtomicBool = AtomicBool::new(false);

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

/// Builds the pager's state for `image` loaded at `bias`: the region table (the load plan's lazy
/// pieces, by the laziness of `config`), its large bss regions prepared, the program's name, the
/// counters and the predictor.
///
/// # Safety
///
/// Must be called once, before the program runs and before any other thread exists; the lazy parts of
/// `image` must have been mapped `PROT_NONE` at `bias` by `uexec_load` with the same laziness.
pub(crate) unsafe fn init(image: &Image, bias: u64, config: &Config) -> Result<(), SetupError> {
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
    Ok(())
}

/// The regions of the table, once installed.
pub(crate) fn regions() -> &'static [Region] {
    table().map_or(&[], |t| t.regions())
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
