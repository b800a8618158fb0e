//! Calls into loaded code that may fault or run too long, without taking the shell down with it.
//!
//! Each guarded call runs on a thread of its own. The shell installs handlers for the fault signals
//! (SIGSEGV, SIGBUS, SIGFPE, SIGILL) and for SIGINT, on the alternate stack std gives every thread it
//! starts. A fault on the call's thread, or a Ctrl-C while a call runs (the SIGINT handler forwards it
//! to the call's thread as [`STOP_SIGNAL`]), records what happened in atomics and ends that one
//! thread with a raw `exit`: the called code never runs again, and the shell thread, which waits for
//! the call's result, sees the record instead and reports it. A fault anywhere else, or SIGINT when no
//! call runs, gets the default action, as if objsh had no handler.
//!
//! What is given up: the ended thread's stack and whatever the called code held (memory, a lock, a
//! descriptor) stay as they were, so the shell marks the library unsafe to call until it is loaded
//! again. The handlers touch only atomics and make raw system calls.

use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// The signal the SIGINT handler sends to the call's thread to end it.
const STOP_SIGNAL: i32 = libc::SIGUSR2;
const FAULTS: [i32; 4] = [libc::SIGSEGV, libc::SIGBUS, libc::SIGFPE, libc::SIGILL];

/// Thread id of the running call's thread; 0 when no call runs.
static CALL_TID: AtomicI32 = AtomicI32::new(0);
/// The signal that ended the call (0: none yet), and the faulting address.
static ENDED_BY: AtomicI32 = AtomicI32::new(0);
static FAULT_ADDR: AtomicUsize = AtomicUsize::new(0);

/// How a guarded call ended.
pub enum Outcome<T> {
    Returned(T),
    /// A fault signal on the call's thread, at this address.
    Faulted {
        signal: i32,
        addr: usize,
    },
    /// Ctrl-C during the call.
    Interrupted,
}

fn gettid() -> i32 {
    // SAFETY: gettid has no arguments and cannot fail.
    unsafe { libc::syscall(libc::SYS_gettid) as i32 }
}

/// Ends the calling thread only (not the process), without unwinding or running destructors.
fn exit_thread() -> ! {
    // SAFETY: SYS_exit ends this thread; nothing after it runs.
    unsafe { libc::syscall(libc::SYS_exit, 0) };
    unreachable_loop()
}

fn unreachable_loop() -> ! {
    loop {
        core::hint::spin_loop();
    }
}

/// Restores the default action for `sig` (async-signal-safe: one system call).
fn default_action(sig: i32) {
    // SAFETY: SIG_DFL for a signal we own; no memory is involved.
    unsafe { libc::signal(sig, libc::SIG_DFL) };
}

extern "C" fn on_fault(sig: i32, info: *mut libc::siginfo_t, _context: *mut libc::c_void) {
    let call = CALL_TID.load(Ordering::Acquire);
    if call != 0 && call == gettid() {
        // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
        let addr = unsafe { (*info).si_addr() } as usize;
        FAULT_ADDR.store(addr, Ordering::Relaxed);
        ENDED_BY.store(sig, Ordering::Release);
        exit_thread();
    }
    // Not the call's: returning re-executes the faulting instruction under the default action.
    default_action(sig);
}

extern "C" fn on_interrupt(_sig: i32, _info: *mut libc::siginfo_t, _context: *mut libc::c_void) {
    let call = CALL_TID.load(Ordering::Acquire);
    if call == 0 {
        default_action(libc::SIGINT);
        // SAFETY: raise is async-signal-safe; SIGINT is delivered with its default action on return.
        unsafe { libc::raise(libc::SIGINT) };
        return;
    }
    if call == gettid() {
        ENDED_BY.store(libc::SIGINT, Ordering::Release);
        exit_thread();
    }
    // SAFETY: tgkill to a thread of this process, with a signal whose handler is installed.
    unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), call, STOP_SIGNAL) };
}

extern "C" fn on_stop(_sig: i32, _info: *mut libc::siginfo_t, _context: *mut libc::c_void) {
    if CALL_TID.load(Ordering::Acquire) == gettid() {
        ENDED_BY.store(libc::SIGINT, Ordering::Release);
        exit_thread();
    }
}

fn install(sig: i32, handler: extern "C" fn(i32, *mut libc::siginfo_t, *mut libc::c_void)) {
    // SAFETY: a zeroed sigaction is valid; the handler is an extern "C" function with the
    // SA_SIGINFO signature that stays valid for the life of the process.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handler as usize;
        action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(sig, &action, std::ptr::null_mut());
    }
}

/// Installs the handlers; called once, before the first guarded call.
pub fn install_handlers() {
    for sig in FAULTS {
        install(sig, on_fault);
    }
    install(libc::SIGINT, on_interrupt);
    install(STOP_SIGNAL, on_stop);
}

/// Runs `f` on a thread of its own and waits for it to return, fault or be interrupted.
pub fn run<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Outcome<T> {
    ENDED_BY.store(0, Ordering::Release);
    let (tx, rx) = mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("objsh-call".to_owned())
        .spawn(move || {
            CALL_TID.store(gettid(), Ordering::Release);
            let value = f();
            CALL_TID.store(0, Ordering::Release);
            let _ = tx.send(value);
        });
    if spawned.is_err() {
        return Outcome::Interrupted;
    }
    // An ended thread never sends nor drops its sender: wait for either the value or the record.
    let outcome = loop {
        match rx.recv_timeout(Duration::from_millis(5)) {
            Ok(value) => break Outcome::Returned(value),
            Err(mpsc::RecvTimeoutError::Disconnected) => break Outcome::Interrupted,
            Err(mpsc::RecvTimeoutError::Timeout) => match ENDED_BY.load(Ordering::Acquire) {
                0 => continue,
                libc::SIGINT => break Outcome::Interrupted,
                signal => {
                    break Outcome::Faulted {
                        signal,
                        addr: FAULT_ADDR.load(Ordering::Relaxed),
                    }
                }
            },
        }
    };
    CALL_TID.store(0, Ordering::Release);
    outcome
}

/// The signal's name, as `kill -l` prints it with the SIG prefix.
pub fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGILL => "SIGILL",
        libc::SIGINT => "SIGINT",
        _ => "a signal",
    }
}
