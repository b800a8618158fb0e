//! User-space demand paging for the uexec loaders (dpager, hpager), and the one place that installs it.
//!
//! One file per job, and the imports run one way (checked by `tests/imports.rs`): each group below
//! imports only from the groups before it.
//! 1. [`sys`] (the kernel ABI), [`lock`] (the one lock, the write-once cell), [`text`] (fixed-buffer
//!    lines), [`regions`] (the region table), [`predict`] (hpager's predictors), [`window`] (the
//!    window prediction accuracy is judged in), `bpf` (the pure BPF program builder).
//! 2. [`usermem`] (the program's memory, through the kernel), `calls` (the filter's system-call
//!    table), [`dispatch`] (syscall user dispatch), [`state`] (the shared pager state).
//! 3. [`report`] (log lines, statistics, the pager's last words).
//! 4. [`grant`] (page granting).
//! 5. [`filter`] (the seccomp filter), [`masks`] (the per-thread signal masks), [`fatal`] (`--stats`
//!    for a program killed by a signal).
//! 6. [`actions`] (the program's signal actions), [`threads`] (pager stacks, `clone`), [`exec`]
//!    (`execve` through the pager).
//! 7. [`segv`] and [`sigsys`], the two handlers, which nothing imports; and [`install`], here.
//!
//! `no_std`, allocation-free, and panic-free on every path the handlers take.
#![no_std]

pub mod actions;
#[forbid(unsafe_code)]
mod bpf;
#[forbid(unsafe_code)]
mod calls;
pub mod dispatch;
pub mod exec;
pub mod fatal;
pub mod filter;
pub mod grant;
pub mod lock;
pub mod masks;
pub mod predict;
pub mod regions;
pub mod report;
pub mod segv;
pub mod sigsys;
pub mod state;
pub mod sys;
pub mod text;
pub mod threads;
pub mod usermem;
pub mod window;

pub use state::{Config, SetupError, Stats};

use uexec_elf::Image;

/// Sets the pager up for `image` loaded at `bias`, in this order: the pager state and region table;
/// `first_page` (the entry point's page, for dpager) made accessible; the main thread's pager stack;
/// the SIGSEGV handler; with `--stats`, the handlers for fatal signals; the SIGSYS handler; SIGSEGV
/// and SIGSYS unblocked; then syscall user dispatch, or the seccomp filter where the kernel has no
/// dispatch. Every handler exists before anything can raise its signal, and the state they read is
/// complete before the first of them.
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
    // SAFETY: per this function's contract.
    unsafe { state::init(image, bias, config) }?;
    if let Some(page) = first_page {
        grant::start(page);
    }
    threads::install_main_stack().map_err(SetupError::Signal)?;
    segv::install().map_err(SetupError::Signal)?;
    if config.stats {
        // SAFETY: single-threaded set-up; the statistics exist.
        unsafe { fatal::install() };
    }
    // SAFETY: single-threaded set-up, after the pager state and the main thread's pager stack.
    unsafe { sigsys::install() }.map_err(SetupError::Signal)?;
    masks::take_over();
    filter::configure(filter::ranges(state::regions()).get(), config.stats);
    let (start, end) = filter::LOADER_RANGE;
    if dispatch::enter(start, end - start) {
        return Ok(());
    }
    filter::attach().map_err(SetupError::Signal)
}
