//! The SIGSEGV handler: a first touch of a lazy page is granted and the access retried.
//!
//! Any other fault goes to the program's own SIGSEGV handler, or to the default action.
//!
//! Real faults stay real. An address outside every region, or a page already made accessible that
//! faults again with an access its region does not allow (a write into text, say), is not the pager's:
//! the handler restores the default action and returns, so the access faults again and the program dies
//! exactly as it would natively, core dump included.
//!
//! # Safety
//!
//! The handler runs while the program's libc owns `%fs`, possibly with a lock of its allocator held: it
//! uses no TLS, errno, allocator, lock (but the crate's [`crate::lock`], through the prediction),
//! `core::fmt` or panic; only raw system calls, atomics and stack buffers. The state it reads is
//! written once at set-up, before the handler exists.

use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, Ordering};
use linux_raw_sys::general as k;
use uexec_elf::{page_down, PAGE_SIZE};

use crate::actions::{program_segv_action, reset_program_segv_action};
use crate::grant::{demand, Granted};
use crate::masks::held_in_traps;
use crate::regions::{Region, MAPPING, UNTOUCHED};
use crate::report::{cannot_go_on, print_stats};
use crate::state::{state, State};
use crate::sys::{self, KernelSigaction, SigInfo, UC_ERR_OFFSET, UC_SIGMASK_OFFSET};

/// Installs the SIGSEGV handler (the thread must have its pager stack already, see
/// [`crate::threads`]); returns the kernel's error.
pub(crate) fn install() -> Result<(), i64> {
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
        return Err(r);
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
        Ok(_) => match demand(state, region, page) {
            Granted::Yes => {
                populate(region, page, err);
                state.stats.faults.fetch_add(1, Ordering::Relaxed);
            }
            Granted::Gone => give_up(Some(state)),
            Granted::Failed(errno) => cannot_go_on(state, page, errno),
        },
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

/// Not the pager's fault. If the program installed a SIGSEGV handler, run it as the kernel would have
/// (in this very signal frame, with its mask); otherwise restore the default action and return, so the
/// access faults again and the process dies as it would natively.
fn give_up(state: Option<&State>, sig: i32, info: *mut SigInfo, context: *mut c_void) {
    if let Some(state) = state {
        state.stats.real_faults.fetch_add(1, Ordering::Relaxed);
    }
    let action = program_segv_action();
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
    // masks::hold_during_traps): its frame would hold the pager's registers.
    let mask = ((interrupted | action.mask) & !never) | held_in_traps();
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
        reset_program_segv_action();
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
