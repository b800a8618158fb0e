//! The crate's shared cells: its one lock, and values written once at set-up.
//!
//! [`Lock`] is a spin lock, usable in a signal handler; [`Once`] holds a value written once at set-up
//! and read-only afterwards. No `static mut` elsewhere.
//!
//! # Safety
//!
//! `Lock<T>` is `Sync` because every access to the value goes through [`Lock::with`], which holds the
//! flag for the length of the closure: at most one `&mut T` exists at a time. A handler that interrupts
//! a holder on the same thread would spin forever, so a critical section must not be entered from code
//! a handler of this crate can interrupt while it is held (the sections here are short runs of
//! system calls or copies, entered only with SIGSEGV and SIGSYS blocked or from those handlers).
//!
//! `Once<T>` is `Sync` because the value is written only by the one caller of [`Once::init`] that
//! moved the state from `EMPTY` to `WRITING`, and handed out as `&T` only after that caller stored
//! `READY` (release; readers load it with acquire), never to be written again.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU8, Ordering};

/// A value behind a spin flag.
pub struct Lock<T> {
    held: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: see the module note: `with` gives exclusive access, so sharing the lock shares no `&mut T`;
// `T: Send` because the value is handed from thread to thread.
unsafe impl<T: Send> Sync for Lock<T> {}

impl<T> Lock<T> {
    pub const fn new(value: T) -> Self {
        Self {
            held: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    /// Runs `f` on the value with the lock held, and returns what it returns.
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        while self.held.swap(true, Ordering::Acquire) {
            core::hint::spin_loop();
        }
        // SAFETY: the flag was false and is now ours, so no other `&mut T` exists until it is released.
        let result = f(unsafe { &mut *self.value.get() });
        self.held.store(false, Ordering::Release);
        result
    }
}

impl<T: Copy> Lock<T> {
    /// A copy of the value.
    pub fn get(&self) -> T {
        self.with(|v| *v)
    }

    /// Replaces the value.
    pub fn set(&self, value: T) {
        self.with(|v| *v = value);
    }
}

const EMPTY: u8 = 0;
const WRITING: u8 = 1;
const READY: u8 = 2;
const FAILED: u8 = 3;

/// A value filled in once, at set-up, and read-only afterwards (shared reads, without a lock).
pub struct Once<T> {
    state: AtomicU8,
    value: UnsafeCell<T>,
}

// SAFETY: see the module note: one writer before `READY`, only shared reads after it.
unsafe impl<T: Send + Sync> Sync for Once<T> {}

impl<T> Once<T> {
    /// A cell holding `initial` (not yet readable).
    pub const fn new(initial: T) -> Self {
        Self {
            state: AtomicU8::new(EMPTY),
            value: UnsafeCell::new(initial),
        }
    }

    /// Fills the value in place with `f`; it becomes readable if `f` returns true. Only the first call
    /// runs `f` (later ones return false), so a failed fill stays unreadable.
    pub fn init(&self, f: impl FnOnce(&mut T) -> bool) -> bool {
        if self
            .state
            .compare_exchange(EMPTY, WRITING, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        // SAFETY: this call moved the state to WRITING, so it is the only one ever to write, and no
        // reader gets a reference before READY.
        let ok = f(unsafe { &mut *self.value.get() });
        self.state
            .store(if ok { READY } else { FAILED }, Ordering::Release);
        ok
    }

    /// The value, once [`Once::init`] has filled it.
    pub fn get(&self) -> Option<&T> {
        // SAFETY: READY is stored after the last write (release/acquire), and nothing writes again.
        (self.state.load(Ordering::Acquire) == READY).then(|| unsafe { &*self.value.get() })
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    #[test]
    fn with_gives_the_value_and_keeps_writes() {
        static L: Lock<u32> = Lock::new(1);
        assert_eq!(
            L.with(|v| {
                *v += 1;
                *v * 10
            }),
            20
        );
        assert_eq!(L.get(), 2);
        L.set(7);
        assert_eq!(L.get(), 7);
    }

    #[test]
    fn once_is_readable_after_a_successful_init_only() {
        let failed = Once::new(0u32);
        assert!(failed.get().is_none());
        assert!(!failed.init(|v| {
            *v = 1;
            false
        }));
        assert!(failed.get().is_none());
        assert!(!failed.init(|_| true), "a second init never runs");
        let good = Once::new(0u32);
        assert!(good.init(|v| {
            *v = 5;
            true
        }));
        assert_eq!(good.get(), Some(&5));
        assert!(!good.init(|v| {
            *v = 6;
            true
        }));
        assert_eq!(good.get(), Some(&5));
    }

    #[test]
    fn threads_take_turns() {
        static L: Lock<(u64, u64)> = Lock::new((0, 0));
        let handles: std::vec::Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(|| {
                    for _ in 0..10_000 {
                        // A torn update would leave the two halves different.
                        L.with(|(a, b)| {
                            *a += 1;
                            *b = *a;
                        });
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(L.get(), (40_000, 40_000));
    }
}
