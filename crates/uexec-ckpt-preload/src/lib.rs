//! `libuexec_ckpt.so`: checkpointing for a program started natively, `LD_PRELOAD=libuexec_ckpt.so
//! PROG`. A constructor, run by ld.so before the program's `main`, installs uexec-capture's handler:
//! the image goes to `$UEXEC_CKPT_IMAGE` (default `./mycheckpoint`, relative to the directory the
//! program started in), the signal is `$UEXEC_CKPT_SIGNAL` (a name or number, default USR2).
//! `urestart IMAGE` restarts it, as it restarts images taken under the loaders.
//!
//! Everything here runs before `main`, once; the handler itself is uexec-capture's.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;

/// Where the scratch area goes if that address is free (it is in a native process: it is the
/// loaders' range, where nothing else is mapped); else wherever the kernel likes.
const SCRATCH_AT: u64 = 0x3c00_8000_0000;

fn init() {
    let image = std::env::var_os("UEXEC_CKPT_IMAGE")
        .filter(|v| !v.is_empty())
        .map_or_else(|| b"./mycheckpoint".to_vec(), |v| v.as_bytes().to_vec());
    let signal = match std::env::var_os("UEXEC_CKPT_SIGNAL") {
        None => 12,
        Some(v) => match uexec_capture::signal_by_name(v.as_bytes()) {
            Some(s) => s,
            None => {
                eprintln!(
                    "libuexec_ckpt: UEXEC_CKPT_SIGNAL={}: not a signal that can carry a checkpoint; none installed",
                    v.to_string_lossy()
                );
                return;
            }
        },
    };
    let Ok(image) = CString::new(image) else {
        eprintln!(
            "libuexec_ckpt: UEXEC_CKPT_IMAGE holds a NUL byte; no checkpoint handler installed"
        );
        return;
    };
    for scratch_at in [Some(SCRATCH_AT), None] {
        let config = uexec_capture::Config {
            tool: "libuexec_ckpt",
            signal,
            image: &image,
            host_ranges: &[],
            host_addresses: &[],
            host_fds: &[],
            scratch_at,
            hooks: None,
        };
        // SAFETY: ld.so runs constructors once, before main and before the program can start threads;
        // this library stays loaded for the life of the process (nothing dlcloses a preload).
        match unsafe { uexec_capture::install(&config) } {
            Ok(()) => return,
            Err(uexec_capture::InstallError::Os(_)) if scratch_at.is_some() => continue,
            Err(e) => {
                eprintln!("libuexec_ckpt: no checkpoint handler installed: {e:?}");
                return;
            }
        }
    }
}

/// The constructor: ld.so calls every `.init_array` entry of a loaded library before `main`.
#[used]
#[unsafe(link_section = ".init_array")]
static CONSTRUCTOR: extern "C" fn() = {
    extern "C" fn constructor() {
        init();
    }
    constructor
};
