//! The prediction-accuracy window: the pages predicted at each of the last [`WINDOW`] faults.
//!
//! Each batch is kept until that many more demand faults have happened.
//!
//! A predicted page counts as used if the program touched it before the pager made [`WINDOW`] more
//! demand faults, and as waste otherwise: a page first touched much later would have been faulted in
//! then anyway, and keeping it mapped all that time is what prediction costs. (Counting a page used
//! if it was touched at any time before exit made every prediction look right on a scan that
//! eventually touches every page.) The caller advances the window once per demand fault with the
//! pages predicted at it, possibly none, and judges the batch that falls out with `mincore`; at exit
//! it judges what is left, which had fewer than [`WINDOW`] faults after it.
//!
//! Pure bookkeeping in a fixed array: no allocation, no system call, nothing that can panic (the
//! lints below hold it to that outside tests): usable in the fault handler.

#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(
        clippy::panic,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects,
        clippy::unreachable
    )
)]

use crate::predict::MAX_PREDICT;

/// Demand faults after which a prediction is judged (the K of the report and `--stats`).
pub const WINDOW: usize = 32;

/// The pages predicted at one demand fault.
#[derive(Copy, Clone)]
pub struct Batch {
    pages: [u64; MAX_PREDICT],
    len: usize,
}

impl Batch {
    const EMPTY: Batch = Batch {
        pages: [0; MAX_PREDICT],
        len: 0,
    };

    /// The batch's pages.
    pub fn pages(&self) -> &[u64] {
        self.pages.get(..self.len).unwrap_or(&[])
    }
}

/// The last [`WINDOW`] batches, oldest first from `next`.
pub struct Window {
    batches: [Batch; WINDOW],
    /// Where the next batch goes: the slot of the oldest one.
    next: usize,
}

impl Default for Window {
    fn default() -> Self {
        Self::new()
    }
}

impl Window {
    pub const fn new() -> Self {
        Self {
            batches: [Batch::EMPTY; WINDOW],
            next: 0,
        }
    }

    /// Records the pages predicted at this demand fault (at most [`MAX_PREDICT`] are kept) and returns
    /// the batch predicted [`WINDOW`] demand faults ago, now due to be judged.
    pub fn advance(&mut self, predicted: &[u64]) -> Batch {
        let mut batch = Batch::EMPTY;
        let n = predicted.len().min(MAX_PREDICT);
        if let (Some(dest), Some(src)) = (batch.pages.get_mut(..n), predicted.get(..n)) {
            dest.copy_from_slice(src);
        }
        batch.len = n;
        let slot = self.next;
        let after = slot.saturating_add(1);
        self.next = if after < WINDOW { after } else { 0 };
        match self.batches.get_mut(slot) {
            Some(old) => core::mem::replace(old, batch),
            None => Batch::EMPTY,
        }
    }

    /// Takes every batch still waiting, oldest first, leaving the window empty.
    pub fn drain(&mut self, mut judge: impl FnMut(&[u64])) {
        let (newer, older) = self.batches.split_at_mut(self.next.min(WINDOW));
        for slot in older.iter_mut().chain(newer.iter_mut()) {
            let batch = core::mem::replace(slot, Batch::EMPTY);
            if batch.len > 0 {
                judge(batch.pages());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec;
    use std::vec::Vec;

    #[test]
    fn a_batch_falls_due_after_window_more_faults() {
        let mut w = Window::new();
        assert!(w.advance(&[10, 11]).pages().is_empty());
        for fault in 1..WINDOW {
            assert!(w.advance(&[]).pages().is_empty(), "fault {fault}");
        }
        assert_eq!(w.advance(&[20]).pages(), &[10, 11]);
        let mut left = Vec::new();
        w.drain(|pages| left.push(pages.to_vec()));
        assert_eq!(left, vec![vec![20]]);
        left.clear();
        w.drain(|pages| left.push(pages.to_vec()));
        assert!(left.is_empty(), "drained twice");
    }

    #[test]
    fn drain_gives_the_oldest_first() {
        let mut w = Window::new();
        for i in 0..(WINDOW as u64 + 3) {
            w.advance(&[i]);
        }
        let mut order = Vec::new();
        w.drain(|pages| order.push(pages[0]));
        let expected: Vec<u64> = (3..WINDOW as u64 + 3).collect();
        assert_eq!(order, expected);
    }

    #[test]
    fn at_most_max_predict_pages_are_kept() {
        let mut w = Window::new();
        let many: Vec<u64> = (0..MAX_PREDICT as u64 + 10).collect();
        w.advance(&many);
        let mut kept = 0;
        w.drain(|pages| kept = pages.len());
        assert_eq!(kept, MAX_PREDICT);
    }
}
