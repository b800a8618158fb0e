//! The pager's state and its SIGSEGV handler.
//!
//! At set-up ([`install`]) the lazy parts of the program's segments (see `uexec_load::Laziness`) become
//! regions: their pages are already mapped with their final contents but `PROT_NONE`. The first touch of
//! such a page faults; the handler finds the region, claims the page (its state goes from `UNTOUCHED` to
//! `MAPPING` with a compare-and-swap, so of several threads faulting on it at once exactly one maps it
//! and the others wait), gives it the region's protection, logs it, and returns to retry the access.
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

use core::cell::UnsafeCell;
use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicU8, Ordering};
use rustix::mm::{MapFlags, MprotectFlags, ProtFlags};
use uexec_elf::{page_down, page_up, Image, PAGE_SIZE};

use crate::regions::{Region, RegionTable, MAPPED, MAPPING, UNTOUCHED};
use crate::sys::{self, KernelSigaction, SignalStack};
use crate::text::{prot_str, Line};

/// Counters of what the pager did; all relaxed atomics, shared by every thread.
pub struct Stats {
    /// Faults the pager resolved by mapping a page.
    pub faults: AtomicU64,
    /// Pages made accessible because they were touched.
    pub demand_pages: AtomicU64,
    /// Pages made accessible by prediction.
    pub predicted_pages: AtomicU64,
    /// Faults that were not the pager's and went to the default action.
    pub real_faults: AtomicU64,
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
}

struct State {
    table: RegionTable,
    tool: &'static str,
    log_fd: AtomicI32,
    stats: Stats,
    /// The last fault judged a race with another thread (tid and page), to tell a retry from a loop.
    last_retry: AtomicU64,
}

/// The one pager of the process: written by `install` before the handler is installed, read-only (but
/// for its atomics) afterwards.
struct Global(UnsafeCell<Option<State>>);

// SAFETY: written only by `install`, which runs single-threaded before any handler or program thread
// exists; every later access is a shared read of fields that are atomics or never change.
unsafe impl Sync for Global {}

static PAGER: Global = Global(UnsafeCell::new(None));
/// Set once `install` has finished writing `PAGER`.
static READY: AtomicBool = AtomicBool::new(false);

fn state() -> Option<&'static State> {
    if !READY.load(Ordering::Acquire) {
        return None;
    }
    // SAFETY: READY is set after the last write to PAGER (release/acquire), and PAGER is never written
    // again.
    unsafe { (*PAGER.0.get()).as_ref() }
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

    let segments = image.segments();
    for (i, s) in segments.iter().enumerate() {
        // A first page shared with the segment before was rebuilt and protected at load: not lazy.
        let shared = i > 0
            && segments
                .get(i - 1)
                .is_some_and(|p| p.end() > page_down(s.vaddr));
        let skip = if shared { PAGE_SIZE } else { 0 };
        let first = page_down(s.vaddr) + skip;
        let file_end = if s.filesz > 0 {
            page_up(s.file_end()).unwrap_or(u64::MAX)
        } else {
            page_down(s.vaddr)
        };
        let end = page_up(s.end()).unwrap_or(u64::MAX);
        let prot = prot_bits(s.prot);
        if config.lazy_file && file_end > first {
            let offset = page_down(s.offset) + skip;
            if !table.push(first + bias, file_end + bias, prot, Some(offset), s.index) {
                return Err(SetupError::TooManyRegions);
            }
        }
        let anon_start = file_end.max(first);
        if config.lazy_anon
            && end > anon_start
            && !table.push(anon_start + bias, end + bias, prot, None, s.index)
        {
            return Err(SetupError::TooManyRegions);
        }
    }

    let state = State {
        table,
        tool: config.tool,
        log_fd: AtomicI32::new(config.log_fd.unwrap_or(-1)),
        stats: Stats {
            faults: AtomicU64::new(0),
            demand_pages: AtomicU64::new(0),
            predicted_pages: AtomicU64::new(0),
            real_faults: AtomicU64::new(0),
        },
        last_retry: AtomicU64::new(0),
    };
    // SAFETY: single-threaded set-up per the contract; nothing reads PAGER before READY is set.
    unsafe { *PAGER.0.get() = Some(state) };
    READY.store(true, Ordering::Release);

    if let (Some(page), Some(state)) = (first_page, self::state()) {
        if let Some(region) = state.table.lookup(page) {
            claim_and_map(state, region, page_down(page), b"start");
        }
    }
    install_handler()
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

/// Size of the pager's alternate signal stack.
const ALT_STACK: usize = 64 * 1024;

fn install_handler() -> Result<(), SetupError> {
    let stack = map_anon(ALT_STACK)?;
    let ss = SignalStack {
        sp: stack as usize,
        flags: 0,
        size: ALT_STACK,
    };
    // SAFETY: the stack is a fresh mapping used for nothing else and never unmapped.
    let r = unsafe { sys::sigaltstack(&ss) };
    if r < 0 {
        return Err(SetupError::Signal(r));
    }
    let action = KernelSigaction {
        handler: on_segv as *const () as usize,
        // SA_SIGINFO: the handler needs si_addr and the context; SA_ONSTACK: a fault on a full program
        // stack still has somewhere to run; SA_RESTORER: there is no libc to provide the restorer.
        // Not SA_NODEFER: a fault inside the handler itself is a bug and must kill.
        flags: sys::SA_SIGINFO | sys::SA_ONSTACK | sys::SA_RESTORER,
        restorer: sys::restore_rt as *const () as usize,
        mask: 0,
    };
    // SAFETY: on_segv follows the handler contract described in the module documentation.
    let r = unsafe { sys::rt_sigaction(sys::SIGSEGV, Some(&action), None) };
    if r < 0 {
        return Err(SetupError::Signal(r));
    }
    Ok(())
}

/// `siginfo_t` as far as the handler reads it.
#[repr(C)]
struct SigInfo {
    signo: i32,
    errno: i32,
    code: i32,
    _pad: i32,
    addr: u64,
}

const SEGV_MAPERR: i32 = 1;
/// Offset of `uc_mcontext.gregs[REG_ERR]` in the x86-64 `ucontext_t`: 40 bytes of flags, link and
/// stack, then 19 general registers.
const UC_ERR_OFFSET: usize = 40 + 19 * 8;
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

extern "C" fn on_segv(_sig: i32, info: *mut SigInfo, context: *mut c_void) {
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
            if map_claimed(state, region, page, slot, b"demand") {
                state.stats.faults.fetch_add(1, Ordering::Relaxed);
            } else {
                give_up(Some(state));
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

/// Maps the page `page` of `region` whose state the caller set to MAPPING; returns false if the
/// program had removed it.
fn map_claimed(state: &State, region: &Region, page: u64, slot: &AtomicU8, why: &[u8]) -> bool {
    let flags = MprotectFlags::from_bits_truncate(region.prot);
    // SAFETY: the page lies in a region of the program image, reserved at load; only its protection
    // changes.
    let ok =
        unsafe { rustix::mm::mprotect(page as *mut c_void, PAGE_SIZE as usize, flags) }.is_ok();
    slot.store(MAPPED, Ordering::Release);
    if ok {
        state.stats.demand_pages.fetch_add(1, Ordering::Relaxed);
        log(state, region, page, 1, why);
    }
    ok
}

fn claim_and_map(state: &State, region: &Region, page: u64, why: &[u8]) {
    if let Some(slot) = state.table.state(region, page) {
        if slot
            .compare_exchange(UNTOUCHED, MAPPING, Ordering::Acquire, Ordering::Acquire)
            .is_ok()
        {
            map_claimed(state, region, page, slot, why);
        }
    }
}

/// Writes `tool: map ADDR SIZE PROT SOURCE why[N]` for `count` pages from `page`.
fn log(state: &State, region: &Region, page: u64, count: u64, why: &[u8]) {
    let fd = state.log_fd.load(Ordering::Relaxed);
    if fd < 0 {
        return;
    }
    let mut line = Line::<160>::new();
    line.push(state.tool.as_bytes())
        .push(b": map ")
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

/// Not the pager's fault: restore the default action and return, so the access faults again and the
/// process dies as it would natively.
fn give_up(state: Option<&State>) {
    if let Some(state) = state {
        state.stats.real_faults.fetch_add(1, Ordering::Relaxed);
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
