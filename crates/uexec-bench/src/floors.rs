//! The floors a demand pager's fault is measured against, taken inside this process in the same
//! run as the workloads (absolute times drift several-fold on a shared machine; ratios taken
//! together do not).
//!
//! - **delivery**: one SIGSEGV delivered and returned from. A load from a `PROT_NONE` page
//!   faults; the handler (`SA_SIGINFO | SA_ONSTACK`, every signal blocked, as dpager installs
//!   its own) moves the saved `rip` past the two-byte load and returns, so the load is skipped,
//!   not retried. This is a real page fault turned into a signal, the path a dpager fault takes
//!   up to its handler (exception entry, the kernel's VMA lookup finding no access, the signal
//!   frame with its XSAVE area, `rt_sigreturn`), where `raise()` or `kill` would measure a
//!   system call instead of the exception and the failed fault lookup.
//! - **mprotect**: one `mprotect(PROT_READ | PROT_WRITE)` of one page of a large `PROT_NONE`
//!   anonymous mapping, the page right after the ones already granted *and touched* (one mapping
//!   grows, the other shrinks: what a sequential scan asks of dpager). Each page is written after
//!   its `mprotect`, outside the timed part: next to populated pages the call costs about twice
//!   what it costs among untouched ones, and a pager's grants are always of the first kind. The
//!   mapping is prepared as a pager's bss is (see `uexec_pager::state::prepare_anon`): committed
//!   and with an `anon_vma` (the call is then about as cheap as in a `MAP_NORESERVE` mapping).
//! - **mprotect split**: the same, but each page with an untouched `PROT_NONE` page on both
//!   sides, so each call splits a mapping in three (what a scattered scan asks until grants
//!   coarsen).
//! - **populate**: `madvise(MADV_POPULATE_WRITE)` of one page just granted (what the pager may do
//!   instead of letting the retried access fault).
//! - **minimal pager**: what a pager with nothing to decide costs per fault: each page of a
//!   prepared `PROT_NONE` mapping written once, under a handler that makes the faulting page
//!   writable with one `mprotect` and returns (the write is retried), less **anon touch**. It
//!   exceeds delivery + mprotect by what the kernel adds around them (the retried fault after a
//!   change of the mappings, caches and TLB refilled after the signal), which no pager built on
//!   `mprotect` avoids; a pager's own cost is its excess over this one.
//! - **anon touch**: the first write to a page of a fresh private anonymous mapping (the
//!   zero-fill fault native pays for every bss page, and dpager pays too on the retried access).
//! - **file touch**: the first read of a page of a private mapping of a file whose pages are in
//!   the page cache, each page mapped on its own so that each fault maps one page (no
//!   fault-around: the situation of a file page dpager granted alone).
//!
//! Each floor is a batch of [`BATCH`] operations timed with the monotonic clock (the mprotect and
//! populate floors call by call, the clock's own cost taken off); the touch floors divide by the
//! minor faults `getrusage` counted, not by the pages touched. A dpager fault costs at least
//! delivery + mprotect more than the native first touch of the same page.

use std::ffi::c_void;
use std::fs::File;
use std::io::Write as _;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::stats;

/// Operations per floor sample.
pub const BATCH: usize = 8192;
const PAGE: usize = 4096;

/// One sample of every floor, in microseconds per operation.
#[derive(Copy, Clone, Debug, Default)]
pub struct Sample {
    pub delivery: f64,
    pub mprotect: f64,
    pub mprotect_split: f64,
    pub populate: f64,
    /// A minimal pager's cost per fault over the native first touch.
    pub minimal_pager: f64,
    pub anon_touch: f64,
    pub file_touch: f64,
}

/// The medians of many samples.
#[derive(Copy, Clone, Debug)]
pub struct Floors {
    pub samples: usize,
    /// Each floor's median over the samples.
    pub median: Sample,
}

impl Floors {
    /// The medians of `samples`; `None` when there are none.
    pub fn of(samples: &[Sample]) -> Option<Self> {
        let m = |f: fn(&Sample) -> f64| stats::median(&samples.iter().map(f).collect::<Vec<_>>());
        Some(Self {
            samples: samples.len(),
            median: Sample {
                delivery: m(|s| s.delivery)?,
                mprotect: m(|s| s.mprotect)?,
                mprotect_split: m(|s| s.mprotect_split)?,
                populate: m(|s| s.populate)?,
                minimal_pager: m(|s| s.minimal_pager)?,
                anon_touch: m(|s| s.anon_touch)?,
                file_touch: m(|s| s.file_touch)?,
            },
        })
    }

    /// What a demand fault cannot cost less than, over native: delivery + one mprotect.
    pub fn fault(&self) -> f64 {
        self.median.delivery + self.median.mprotect
    }
}

/// Takes floor samples; owns the page-cache file of the file-touch floor.
pub struct Meter {
    path: PathBuf,
    file: File,
    pub samples: Vec<Sample>,
}

impl Meter {
    /// Creates the file of [`BATCH`] pages in `dir` (written, so its pages are in the cache).
    pub fn new(dir: &Path) -> Result<Self, String> {
        let path = dir.join("floor-file.bin");
        let mut file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| format!("creating {}: {e}", path.display()))?;
        let page = [0x5au8; PAGE];
        for _ in 0..BATCH {
            file.write_all(&page)
                .map_err(|e| format!("writing {}: {e}", path.display()))?;
        }
        Ok(Self {
            path,
            file,
            samples: Vec::new(),
        })
    }

    /// Takes one sample of every floor.
    pub fn sample(&mut self) -> Result<(), String> {
        let anon_touch = touch(None)?.0;
        let s = Sample {
            delivery: delivery()?,
            mprotect: grant(1, false)?,
            mprotect_split: grant(2, false)?,
            populate: grant(1, true)?,
            minimal_pager: minimal_pager()? - anon_touch,
            anon_touch,
            file_touch: touch(Some(self.file.as_raw_fd()))?.0,
        };
        self.samples.push(s);
        Ok(())
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn os_error(what: &str) -> String {
    format!("floors: {what}: {}", std::io::Error::last_os_error())
}

/// A private anonymous mapping, unmapped on drop.
struct Mapping {
    addr: *mut u8,
    len: usize,
}

impl Mapping {
    fn new(pages: usize, prot: i32) -> Result<Self, String> {
        let len = pages * PAGE;
        let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
        // SAFETY: a new mapping where the kernel chooses; nothing else refers to it.
        let addr = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, flags, -1, 0) };
        if addr == libc::MAP_FAILED {
            return Err(os_error("mmap"));
        }
        Ok(Self {
            addr: addr.cast(),
            len,
        })
    }

    /// `pages` pages `PROT_NONE` as a pager leaves its bss: mapped writable (so committed, as
    /// `execve` commits a bss), one page written and emptied again (so it has an `anon_vma`),
    /// then `PROT_NONE`, which keeps both.
    fn prepared(pages: usize) -> Result<Self, String> {
        let len = pages * PAGE;
        let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
        let rw = libc::PROT_READ | libc::PROT_WRITE;
        // SAFETY: a new mapping where the kernel chooses; nothing else refers to it.
        let addr = unsafe { libc::mmap(std::ptr::null_mut(), len, rw, flags, -1, 0) };
        if addr == libc::MAP_FAILED {
            return Err(os_error("mmap"));
        }
        let map = Self {
            addr: addr.cast(),
            len,
        };
        // SAFETY: our own writable mapping; the page reads as zeros again after MADV_DONTNEED.
        unsafe {
            map.addr.write_volatile(1);
            if libc::madvise(addr, PAGE, libc::MADV_DONTNEED) != 0
                || libc::mprotect(addr, len, libc::PROT_NONE) != 0
            {
                return Err(os_error("preparing a mapping"));
            }
        }
        Ok(map)
    }

    fn page(&self, i: usize) -> *mut u8 {
        self.addr.wrapping_add(i * PAGE)
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the mapping is this object's own and nothing points into it any more.
        unsafe { libc::munmap(self.addr.cast(), self.len) };
    }
}

/// This thread's minor faults so far.
fn minor_faults() -> u64 {
    // SAFETY: rusage is plain integers (all-zero is valid) and getrusage writes one.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a pointer to a live rusage.
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) };
    u64::try_from(usage.ru_minflt).unwrap_or(0)
}

/// What one reading of the monotonic clock costs, in microseconds.
fn clock_cost() -> f64 {
    let start = Instant::now();
    for _ in 0..BATCH {
        std::hint::black_box(Instant::now());
    }
    start.elapsed().as_secs_f64() * 1e6 / BATCH as f64
}

/// Grants [`BATCH`] pages one by one, every `stride`-th page of a `PROT_NONE` mapping prepared as a
/// pager's bss, and writes each after its grant: microseconds per `mprotect` (or, with `populate`,
/// per `madvise(MADV_POPULATE_WRITE)` of the page just made writable, which then takes no fault).
fn grant(stride: usize, populate: bool) -> Result<f64, String> {
    let map = Mapping::prepared(BATCH * stride)?;
    let mut timed = std::time::Duration::ZERO;
    for i in 0..BATCH {
        let page = map.page(i * stride);
        let start = Instant::now();
        // SAFETY: a page of our own mapping, which nothing else accesses.
        let r = unsafe { libc::mprotect(page.cast(), PAGE, libc::PROT_READ | libc::PROT_WRITE) };
        if r != 0 {
            return Err(os_error("mprotect"));
        }
        if populate {
            let start = Instant::now();
            // SAFETY: advice on a page of our own mapping.
            if unsafe { libc::madvise(page.cast(), PAGE, libc::MADV_POPULATE_WRITE) } != 0 {
                return Err(os_error("madvise(MADV_POPULATE_WRITE)"));
            }
            timed += start.elapsed();
        } else {
            timed += start.elapsed();
        }
        // SAFETY: the page was just made writable.
        unsafe { page.write_volatile(1) };
    }
    Ok((timed.as_secs_f64() * 1e6 / BATCH as f64 - 2.0 * clock_cost()).max(0.0))
}

/// The first access to each of [`BATCH`] pages: a write to an anonymous mapping, or (`fd`) a
/// read of the cached file: microseconds per minor fault, and the faults.
fn touch(fd: Option<i32>) -> Result<(f64, u64), String> {
    // The file's pages each get a mapping of their own, every other page of a reservation: the
    // kernel's fault-around (16 pages, whatever MADV_RANDOM says) stops at the mapping's end, so
    // each fault maps one page, as it does in a page dpager granted alone.
    let stride = if fd.is_some() { 2 } else { 1 };
    let map = Mapping::new(BATCH * stride, libc::PROT_READ | libc::PROT_WRITE)?;
    if let Some(fd) = fd {
        for i in 0..BATCH {
            // SAFETY: MAP_FIXED over a page of our own reservation, which nothing accesses.
            let got = unsafe {
                libc::mmap(
                    map.page(i * stride).cast(),
                    PAGE,
                    libc::PROT_READ,
                    libc::MAP_PRIVATE | libc::MAP_FIXED,
                    fd,
                    (i * PAGE) as libc::off_t,
                )
            };
            if got == libc::MAP_FAILED {
                return Err(os_error("mmap of the file"));
            }
        }
    }
    let before = minor_faults();
    let start = Instant::now();
    let mut sum = 0u8;
    for i in 0..BATCH {
        let p = map.page(i * stride);
        if fd.is_some() {
            // SAFETY: a readable page of our mapping (the file is BATCH pages long).
            sum = sum.wrapping_add(unsafe { p.read_volatile() });
        } else {
            // SAFETY: a writable page of our mapping.
            unsafe { p.write_volatile(1) };
        }
    }
    let elapsed = start.elapsed();
    std::hint::black_box(sum);
    let faults = minor_faults() - before;
    Ok((elapsed.as_secs_f64() * 1e6 / faults.max(1) as f64, faults))
}

/// The page the delivery floor faults on; any other fault is not the floor's.
static EXPECTED: AtomicU64 = AtomicU64::new(0);
static DELIVERED: AtomicU64 = AtomicU64::new(0);

/// `mov al, byte ptr [rdi]`: the faulting load, which the handler skips.
const LOAD: [u8; 2] = [0x8a, 0x07];

extern "C" fn skip_load(_sig: i32, info: *mut libc::siginfo_t, context: *mut c_void) {
    // SAFETY: the kernel passes an SA_SIGINFO handler a valid siginfo and ucontext.
    unsafe {
        let uc = context.cast::<libc::ucontext_t>();
        let rip = &mut (*uc).uc_mcontext.gregs[libc::REG_RIP as usize];
        let ours = (*info).si_addr() as u64 == EXPECTED.load(Ordering::Relaxed)
            && (*rip as usize as *const [u8; 2]).read() == LOAD;
        if ours {
            *rip += LOAD.len() as i64;
            DELIVERED.fetch_add(1, Ordering::Relaxed);
        } else {
            // Not ours: the default action, and the access faults again and kills.
            libc::signal(libc::SIGSEGV, libc::SIG_DFL);
        }
    }
}

/// The range the minimal pager's handler grants pages of; a fault elsewhere is not the floor's.
static GRANT_LOW: AtomicU64 = AtomicU64::new(0);
static GRANT_HIGH: AtomicU64 = AtomicU64::new(0);

/// The minimal pager: makes the faulting page of the floor's mapping readable and writable and
/// returns, so that the access is retried.
extern "C" fn grant_page(_sig: i32, info: *mut libc::siginfo_t, _context: *mut c_void) {
    // SAFETY: the kernel passes an SA_SIGINFO handler a valid siginfo.
    let addr = unsafe { (*info).si_addr() } as u64;
    let ours =
        (GRANT_LOW.load(Ordering::Relaxed)..GRANT_HIGH.load(Ordering::Relaxed)).contains(&addr);
    let page = (addr & !(PAGE as u64 - 1)) as *mut c_void;
    // SAFETY: mprotect of a page of the floor's own mapping (errno is clobbered, which the
    // interrupted code, a plain store, does not read); otherwise the default action, and the
    // access faults again and kills.
    unsafe {
        if ours && libc::mprotect(page, PAGE, libc::PROT_READ | libc::PROT_WRITE) == 0 {
            DELIVERED.fetch_add(1, Ordering::Relaxed);
        } else {
            libc::signal(libc::SIGSEGV, libc::SIG_DFL);
        }
    }
}

/// Runs `f` with `handler` as the SIGSEGV handler (`SA_SIGINFO | SA_ONSTACK`, every signal
/// blocked, on an alternate stack of its own, as dpager installs its handler), then puts back the
/// handler and the alternate stack there were; returns what `f` returned and the signals counted.
fn with_handler<T>(
    handler: extern "C" fn(i32, *mut libc::siginfo_t, *mut c_void),
    f: impl FnOnce() -> T,
) -> Result<(T, u64), String> {
    let stack = vec![0u8; 64 << 10];
    let new_stack = libc::stack_t {
        ss_sp: stack.as_ptr() as *mut c_void,
        ss_flags: 0,
        ss_size: stack.len(),
    };
    // SAFETY: zeroed stack_t and sigaction are valid values (null pointers, empty sets).
    let (mut old_stack, mut old_action, mut action): (
        libc::stack_t,
        libc::sigaction,
        libc::sigaction,
    ) = unsafe { std::mem::zeroed() };
    action.sa_sigaction = handler as *const () as usize;
    action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
    // SAFETY: sigaltstack/sigaction with pointers to live locals; the stack outlives its use
    // (the old stack is put back before `stack` is dropped) and the handlers are
    // async-signal-safe.
    unsafe {
        libc::sigfillset(&mut action.sa_mask);
        if libc::sigaltstack(&new_stack, &mut old_stack) != 0 {
            return Err(os_error("sigaltstack"));
        }
        libc::sigaction(libc::SIGSEGV, &action, &mut old_action);
    }
    DELIVERED.store(0, Ordering::Relaxed);
    let result = f();
    // SAFETY: puts back what was there, with pointers to live locals.
    unsafe {
        libc::sigaction(libc::SIGSEGV, &old_action, std::ptr::null_mut());
        libc::sigaltstack(&old_stack, std::ptr::null_mut());
    }
    drop(stack);
    Ok((result, DELIVERED.load(Ordering::Relaxed)))
}

/// [`BATCH`] loads from a `PROT_NONE` page, each delivered as SIGSEGV and skipped.
fn delivery() -> Result<f64, String> {
    let map = Mapping::new(1, libc::PROT_NONE)?;
    EXPECTED.store(map.addr as u64, Ordering::Relaxed);
    let (elapsed, delivered) = with_handler(skip_load, || {
        let start = Instant::now();
        for _ in 0..BATCH {
            // SAFETY: the load faults; the handler skips it (al keeps a garbage value, which is
            // discarded).
            unsafe {
                std::arch::asm!(".byte 0x8a, 0x07", in("rdi") map.addr, out("al") _, options(nostack));
            }
        }
        start.elapsed()
    })?;
    if delivered != BATCH as u64 {
        return Err(format!(
            "floors: {delivered} signals delivered for {BATCH} loads"
        ));
    }
    Ok(elapsed.as_secs_f64() * 1e6 / BATCH as f64)
}

/// A write to each of [`BATCH`] pages of a `PROT_NONE` mapping prepared as a pager's bss, under
/// [`grant_page`]: microseconds per page, the first touch included.
fn minimal_pager() -> Result<f64, String> {
    let map = Mapping::prepared(BATCH)?;
    GRANT_LOW.store(map.addr as u64, Ordering::Relaxed);
    GRANT_HIGH.store(map.addr as u64 + map.len as u64, Ordering::Relaxed);
    let (elapsed, granted) = with_handler(grant_page, || {
        let start = Instant::now();
        for i in 0..BATCH {
            // SAFETY: a page of our mapping, which the handler makes writable.
            unsafe { map.page(i).write_volatile(1) };
        }
        start.elapsed()
    })?;
    if granted != BATCH as u64 {
        return Err(format!(
            "floors: {granted} pages granted for {BATCH} writes"
        ));
    }
    Ok(elapsed.as_secs_f64() * 1e6 / BATCH as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every floor runs: the handler skips exactly BATCH loads (else `sample` fails), and the
    /// file is removed with the meter.
    #[test]
    fn a_sample_of_every_floor() {
        let dir = std::env::temp_dir().join(format!("uexec-floors-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut meter = Meter::new(&dir).unwrap();
        meter.sample().unwrap();
        meter.sample().unwrap();
        let f = Floors::of(&meter.samples).unwrap();
        assert_eq!(f.samples, 2);
        for v in [
            f.median.delivery,
            f.median.mprotect,
            f.median.mprotect_split,
            f.median.anon_touch,
            f.median.file_touch,
        ] {
            assert!(v > 0.0 && v.is_finite(), "{f:?}");
        }
        drop(meter);
        assert!(!dir.join("floor-file.bin").exists());
        std::fs::remove_dir(&dir).unwrap();
    }

    /// The touch floors take one fault per page: no fault-around on the file, no huge page.
    #[test]
    fn touch_floors_fault_once_per_page() {
        let dir = std::env::temp_dir().join(format!("uexec-touch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let meter = Meter::new(&dir).unwrap();
        let (_, anon) = touch(None).unwrap();
        let (_, file) = touch(Some(meter.file.as_raw_fd())).unwrap();
        drop(meter);
        std::fs::remove_dir(&dir).unwrap();
        let batch = BATCH as u64;
        assert!(
            (batch..batch + 64).contains(&anon),
            "{anon} anonymous faults"
        );
        assert!((batch..batch + 64).contains(&file), "{file} file faults");
    }
}
