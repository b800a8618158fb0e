//! `--ckpt-image` and `--ckpt-signal`: installing uexec-capture's handler for a program a loader runs,
//! with the loader's own pages, stack and descriptors declared as the host's so that no image holds
//! them. (`urestart` installs the same handler in a restarted program.)

use core::ffi::CStr;

use crate::out;

/// The checkpoint signal unless `--ckpt-signal` names another.
pub const DEFAULT_SIGNAL: u32 = 12; // SIGUSR2

/// The address range the loader binaries (apager, dpager, hpager, urestart) are linked into, and which
/// their own mappings (scratch areas, the restarting image) use. No program's mapping may lie here:
/// the loaders refuse such programs, and urestart such images.
pub const LOADER_RANGE: (u64, u64) = (0x3c00_0000_0000, 0x3c01_0000_0000);

/// Where the capture handler's scratch area goes: inside [`LOADER_RANGE`], clear of the loader's image.
pub const SCRATCH_AT: u64 = 0x3c00_8000_0000;

/// What the command line asked for.
#[derive(Copy, Clone, Debug)]
pub struct Request {
    pub image: &'static CStr,
    pub signal: u32,
}

/// Exit status when the handler cannot be installed (the program has not started).
pub const SETUP_FAILED: i32 = 126;

/// Installs the checkpoint handler. `host_addresses` are addresses inside mappings of the loader's
/// (its kernel-given stack), `host_fds` its descriptors. Reports a failure as one line.
///
/// # Safety
///
/// Call once, single-threaded, just before the program starts; the loader's code must stay mapped.
pub unsafe fn install(
    tool: &'static str,
    request: &Request,
    host_addresses: &[u64],
    host_fds: &[i32],
    hooks: Option<&'static uexec_capture::Hooks>,
) -> Result<(), i32> {
    let config = uexec_capture::Config {
        tool,
        signal: request.signal,
        image: request.image,
        host_ranges: &[LOADER_RANGE],
        host_addresses,
        host_fds,
        scratch_at: Some(SCRATCH_AT),
        hooks,
    };
    // SAFETY: per this function's contract.
    match unsafe { uexec_capture::install(&config) } {
        Ok(()) => Ok(()),
        Err(e) => {
            let why = match e {
                uexec_capture::InstallError::TooMuch => "path too long",
                uexec_capture::InstallError::BadSignal => "this signal cannot carry a checkpoint",
                uexec_capture::InstallError::Os(_) => "cannot install the checkpoint handler",
            };
            out::error_line(tool, request.image.to_bytes(), why);
            Err(SETUP_FAILED)
        }
    }
}

/// How a checkpoint sees a paged program as the program sees itself: every lazy page granted first
/// (contents and final protection), the SIGSEGV action and the SIGSEGV/SIGSYS bits of the mask the
/// program set (the pager keeps both virtual), SIGSYS as the program left it (the default), and no
/// alternate stack where the thread runs on the pager's.
pub static PAGER_HOOKS: uexec_capture::Hooks = uexec_capture::Hooks {
    prepare: uexec_pager::grant::grant_all,
    sigaction: pager_sigaction,
    sigmask: pager_sigmask,
    altstack: pager_altstack,
};

fn pager_sigaction(
    sig: u32,
    real: uexec_capture::sys::KernelSigaction,
) -> uexec_capture::sys::KernelSigaction {
    let from = |a: uexec_pager::sys::KernelSigaction| uexec_capture::sys::KernelSigaction {
        handler: a.handler as u64,
        flags: a.flags,
        restorer: a.restorer as u64,
        mask: a.mask,
    };
    match sig as i32 {
        uexec_pager::sys::SIGSEGV => from(uexec_pager::actions::program_segv_action()),
        uexec_pager::sys::SIGSYS => uexec_capture::sys::KernelSigaction::default(),
        _ => real,
    }
}

fn pager_sigmask(real: u64) -> u64 {
    real | uexec_pager::masks::program_blocked()
}

fn pager_altstack(real: (u64, u32, u64)) -> (u64, u32, u64) {
    if uexec_pager::threads::is_pager_stack(real.0 as usize) {
        (0, linux_raw_sys::general::SS_DISABLE, 0)
    } else {
        real
    }
}

/// The calling thread's alternate signal stack (its start), 0 if none.
pub fn current_altstack() -> u64 {
    let mut old = [0u64; 3];
    // SAFETY: sigaltstack(NULL, &old) only writes the 24-byte stack_t.
    unsafe {
        uexec_capture::sys::syscall6(
            linux_raw_sys::general::__NR_sigaltstack,
            0,
            old.as_mut_ptr() as u64,
            0,
            0,
            0,
            0,
        )
    };
    old[0]
}
