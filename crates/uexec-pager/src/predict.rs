//! hpager's prediction policies (`--predict=POLICY --pages=N`): which pages to map with a fault.
//!
//! The pager's SIGSEGV handler calls [`Predictor::on_fault`] with the faulting page and the region that
//! holds it, maps the faulting page plus whichever predicted pages are not mapped yet, and reports through
//! [`Predictor::feedback`] how many earlier predictions the program went on to touch. N is the number of
//! pages mapped per fault, the faulting one included, so the fixed policies propose N - 1 pages.
//!
//! # Policies
//! - **`none`**: nothing; every page is a demand fault (dpager's behaviour, the baseline).
//! - **`next`**: the N - 1 pages after the faulting one, cut at the end of the region. The "best public
//!   hpager" of the issue is this policy.
//! - **`stride`**: the classic stride prefetcher: the delta d between the last two faults of this region,
//!   used once it is stable (the same d twice in a row), gives page + d, page + 2d, ... (N - 1 pages).
//!   d may be negative (a backward scan) or larger than one page (a strided walk). Until a stable delta
//!   exists it behaves as `next`.
//! - **`trend`**: the trend detection of the Leap prefetcher (Al Maruf and Chowdhury, "Effectively
//!   Prefetching Remote Memory with Leap", USENIX ATC 2020, Algorithm 1 `FindTrend`): a Boyer-Moore
//!   majority vote over the last H = 8 fault deltas, looking at the newest half first and at
//!   the whole history only when the newest half has no majority. A majority (more than half of the
//!   deltas looked at, and at least two of them) of d gives page + k*d for k = 1..N-1; without one it
//!   behaves as `next`. A vote tolerates the odd stray fault that breaks a plain stride detector.
//! - **`adaptive`**: Linux's swap readahead window (`mm/swap_state.c`, `__swapin_nr_pages` and
//!   `swap_vma_readahead`): the window W starts at N - 1, doubles while the previous predictions were
//!   mostly used (at least three quarters), halves when they were mostly unused (less than half used), and
//!   stays in [0, [`MAX_PREDICT`]]. As in Linux it never shrinks by more than half at a time, and it does
//!   not get stuck at zero: with no feedback to judge by, a fault that continues the trend reopens the
//!   window at one page (Linux checks for an adjacent offset). The step comes from the `trend` vote, so
//!   a backward scan or a strided walk benefits as much as a forward scan. Without a majority it predicts
//!   nothing, as Linux reads nothing ahead (`pages = 1`) on a non-adjacent fault without hits: a random
//!   workload therefore costs at most a few wasted pages, while the window is being halved away.
//!
//! # Fault history
//! A fault history is kept per region (keyed by its `[first, end)`), for the four regions that
//! faulted most recently; a fault in any other region takes over the least recently used history and
//! starts it afresh, so a change of region never mixes deltas from two regions, and a program that
//! alternates between two buffers (a copy from one bss array into another region) keeps both trends.
//!
//! The deltas are those of the program's accesses, not of the faults: predicted pages that were used do
//! not fault, so after a prediction of k pages along d, a fault at page + (k+1)*d is the access stream
//! going on with delta d, and is recorded as d. Recording the raw fault delta (k+1)*d instead would make
//! `stride` and `trend` jump over the pages in between (after `next` with N = 2 a sequential scan faults
//! every second page, and a stride of 2 would skip half the pages).
//!
//! # Where this runs
//! Inside the SIGSEGV handler, while the program's libc owns `%fs`: no allocation, no `std`, no
//! `core::fmt`, no locks, no TLS, and nothing that can panic (no indexing, no unchecked arithmetic, no
//! `unwrap`). The lints below hold the code to that outside tests; there is no `unsafe` at all. The state
//! is a fixed-size value the handler owns; calls are serialised by the handler.
#![cfg_attr(
    not(test),
    deny(
        clippy::panic,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented
    )
)]
#![forbid(unsafe_code)]

/// Most pages one prediction may propose.
pub const MAX_PREDICT: usize = 64;

/// Fault deltas kept per region for `stride`, `trend` and `adaptive` (Leap's `H`).
const HISTORY: usize = 8;

/// Regions whose fault history is kept at the same time.
const STREAMS: usize = 4;

/// `MAX_PREDICT` as the window's type.
const MAX_WINDOW: u32 = MAX_PREDICT as u32;

/// A prediction policy, as named on the command line (`--predict=NAME`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Policy {
    /// No prediction.
    None,
    /// The following pages.
    Next,
    /// The delta between the last two faults, once stable.
    Stride,
    /// The majority delta of the last faults (Leap).
    Trend,
    /// A window that follows the feedback (Linux swap readahead), along the majority delta.
    Adaptive,
}

impl Policy {
    /// Every policy, in the order of the documentation.
    const ALL: [Policy; 5] = [
        Policy::None,
        Policy::Next,
        Policy::Stride,
        Policy::Trend,
        Policy::Adaptive,
    ];

    /// The policy called `name` (ASCII, case-insensitive), or `None` for an unknown name.
    pub fn parse(name: &[u8]) -> Option<Policy> {
        Self::ALL.iter().copied().find(|p| {
            let known = p.name().as_bytes();
            known.len() == name.len()
                && known
                    .iter()
                    .zip(name)
                    .all(|(k, c)| *k == c.to_ascii_lowercase())
        })
    }

    /// The name `parse` accepts, in lower case.
    pub const fn name(self) -> &'static str {
        match self {
            Policy::None => "none",
            Policy::Next => "next",
            Policy::Stride => "stride",
            Policy::Trend => "trend",
            Policy::Adaptive => "adaptive",
        }
    }
}

/// The fault history of one region, and what was last predicted in it.
#[derive(Copy, Clone)]
struct Stream {
    /// Whether this slot holds a region at all.
    live: bool,
    /// The region, `[first, end)` in page numbers.
    first: u64,
    end: u64,
    /// Whether `last` holds a fault yet.
    has_last: bool,
    /// The page of the last fault in the region.
    last: u64,
    /// The last `len` deltas, oldest first, right-aligned: the newest is the last element.
    hist: [i64; HISTORY],
    len: usize,
    /// The step and the number of pages of the last prediction made in this region.
    pred_step: i64,
    pred_count: u64,
    /// `adaptive`'s window, in pages.
    window: u32,
    /// Feedback received since the last fault of this region.
    used: u32,
    unused: u32,
    /// When the region last faulted, to find the least recently used slot.
    stamp: u64,
}

impl Stream {
    const EMPTY: Stream = Stream {
        live: false,
        first: 0,
        end: 0,
        has_last: false,
        last: 0,
        hist: [0; HISTORY],
        len: 0,
        pred_step: 0,
        pred_count: 0,
        window: 0,
        used: 0,
        unused: 0,
        stamp: 0,
    };

    /// The deltas recorded so far, oldest first.
    fn deltas(&self) -> &[i64] {
        let from = HISTORY.saturating_sub(self.len);
        self.hist.get(from..).unwrap_or(&[])
    }

    /// Appends a delta, forgetting the oldest once the history is full.
    fn push(&mut self, delta: i64) {
        let mut hist = [0; HISTORY];
        for (to, from) in hist.iter_mut().zip(self.hist.iter().skip(1)) {
            *to = *from;
        }
        if let Some(newest) = hist.last_mut() {
            *newest = delta;
        }
        self.hist = hist;
        self.len = self.len.saturating_add(1).min(HISTORY);
    }

    /// The newest delta, if any.
    fn newest(&self) -> Option<i64> {
        self.deltas().last().copied()
    }

    /// `stride`'s delta: the newest one, if the one before it is the same.
    fn stable(&self) -> Option<i64> {
        match self.deltas() {
            [.., a, b] if a == b => Some(*b),
            _ => None,
        }
    }

    /// `trend`'s delta: the majority of the newest half of the history, else of all of it (Leap).
    fn trend(&self) -> Option<i64> {
        let all = self.deltas();
        let half = all.len().min(HISTORY / 2);
        let newest = all.get(all.len().saturating_sub(half)..).unwrap_or(&[]);
        majority(newest).or_else(|| {
            if all.len() > half {
                majority(all)
            } else {
                None
            }
        })
    }

    /// `adaptive`'s window update, from the feedback gathered since the last fault (Linux's
    /// `__swapin_nr_pages`, with the hit count replaced by the used/unused split).
    fn adapt(&mut self, trend: Option<i64>) {
        let (used, unused) = (self.used, self.unused);
        self.used = 0;
        self.unused = 0;
        let total = used.saturating_add(unused);
        if total == 0 {
            // Nothing to judge by: reopen a closed window when this fault continues the trend.
            if self.window == 0 && trend.is_some() && self.newest() == trend {
                self.window = 1;
            }
        } else if unused.saturating_mul(4) <= total {
            self.window = match self.window {
                0 => 1,
                w => w.saturating_mul(2).min(MAX_WINDOW),
            };
        } else if used.saturating_mul(2) < total {
            self.window = self.window.checked_div(2).unwrap_or(0);
        }
    }
}

/// Boyer-Moore majority vote: the value held by more than half of `v`, if there is one and it has at
/// least two votes (one delta is not a trend) and is not zero (a refault of the same page).
fn majority(v: &[i64]) -> Option<i64> {
    let mut candidate = 0i64;
    let mut count = 0usize;
    for &x in v {
        if count == 0 {
            candidate = x;
            count = 1;
        } else if x == candidate {
            count = count.saturating_add(1);
        } else {
            count = count.saturating_sub(1);
        }
    }
    let votes = v.iter().filter(|&&x| x == candidate).count();
    (count > 0 && candidate != 0 && votes >= 2 && votes.saturating_mul(2) > v.len())
        .then_some(candidate)
}

/// `page + k*step`, if that is a page number at all.
fn offset(page: u64, step: i64, k: u64) -> Option<u64> {
    let by = i128::from(step).checked_mul(i128::from(k))?;
    u64::try_from(i128::from(page).checked_add(by)?).ok()
}

/// `to - from` as a delta, if it fits.
fn delta(from: u64, to: u64) -> Option<i64> {
    i64::try_from(i128::from(to).checked_sub(i128::from(from))?).ok()
}

/// Writes `page + k*step` for k = 1..=count into `out`, stopping at the first page outside
/// `[first, end)` (the later ones are further out) or when `out` is full. Returns how many.
fn emit(
    page: u64,
    first: u64,
    end: u64,
    step: i64,
    count: u32,
    out: &mut [u64; MAX_PREDICT],
) -> usize {
    let mut n = 0usize;
    if step == 0 {
        return 0;
    }
    for k in 1..=u64::from(count) {
        let Some(p) = offset(page, step, k) else {
            break;
        };
        if p < first || p >= end {
            break;
        }
        let Some(slot) = out.get_mut(n) else { break };
        *slot = p;
        n = n.saturating_add(1);
    }
    n
}

/// One predictor per process (the handler serialises calls with a spin flag; you need not be thread-safe).
pub struct Predictor {
    policy: Policy,
    /// N, clamped to `1..=MAX_PREDICT + 1`.
    pages: u32,
    streams: [Stream; STREAMS],
    /// Counts faults, to stamp the streams.
    clock: u64,
    /// The stream that made the last non-empty prediction: feedback belongs to it.
    fed: usize,
}

impl Predictor {
    /// `pages`: N, the number of pages mapped per fault including the faulting one (N = 2 or 3 are the
    /// defaults to compare; accept 1..=MAX_PREDICT+1, clamp otherwise). For Adaptive, N is the initial
    /// window and the window then grows/shrinks between 1 and MAX_PREDICT.
    pub const fn new(policy: Policy, pages: u32) -> Self {
        let pages = if pages < 1 {
            1
        } else if pages > MAX_WINDOW.saturating_add(1) {
            MAX_WINDOW.saturating_add(1)
        } else {
            pages
        };
        Predictor {
            policy,
            pages,
            streams: [Stream::EMPTY; STREAMS],
            clock: 0,
            fed: STREAMS,
        }
    }

    /// A demand fault at page number `page` (address >> 12) inside the region whose page numbers are
    /// [first, end). Writes the predicted page numbers into `out` and returns how many. Every predicted
    /// page is inside [first, end), differs from `page`, and appears once. The caller drops any that are
    /// already mapped before mapping the rest, and tells you via `feedback` how earlier predictions fared.
    ///
    /// A `page` outside `[first, end)` predicts nothing and leaves the state alone.
    pub fn on_fault(
        &mut self,
        page: u64,
        first: u64,
        end: u64,
        out: &mut [u64; MAX_PREDICT],
    ) -> usize {
        if self.policy == Policy::None || page < first || page >= end {
            return 0;
        }
        self.clock = self.clock.wrapping_add(1);
        let index = self.stream(first, end);
        let fixed = self.pages.saturating_sub(1);
        let (policy, clock) = (self.policy, self.clock);
        let Some(s) = self.streams.get_mut(index) else {
            return 0;
        };
        s.stamp = clock;

        // The access delta that led here (see the module documentation).
        if let Some(raw) = delta(s.last, page).filter(|_| s.has_last) {
            let continued = s.pred_count > 0
                && offset(s.last, s.pred_step, s.pred_count.saturating_add(1)) == Some(page);
            let d = if continued { s.pred_step } else { raw };
            if d != 0 {
                s.push(d);
            }
        }
        s.last = page;
        s.has_last = true;

        let (step, count) = match policy {
            Policy::None => (0, 0),
            Policy::Next => (1, fixed),
            Policy::Stride => (s.stable().unwrap_or(1), fixed),
            Policy::Trend => (s.trend().unwrap_or(1), fixed),
            Policy::Adaptive => {
                let trend = s.trend();
                s.adapt(trend);
                match trend {
                    Some(d) => (d, s.window),
                    None => (0, 0),
                }
            }
        };
        let n = emit(page, first, end, step, count, out);
        s.pred_step = step;
        s.pred_count = u64::try_from(n).unwrap_or(0);
        if n > 0 {
            self.fed = index;
        }
        n
    }

    /// Whether [`Self::feedback`] changes anything: only `adaptive` learns from it, so for the other
    /// policies a caller can skip measuring (a `mincore` per fault).
    pub fn wants_feedback(&self) -> bool {
        self.policy == Policy::Adaptive
    }

    /// How many of the pages predicted at earlier faults were touched by the program since the last call
    /// (`used`) and how many were found untouched (`unused`), e.g. measured by the caller with mincore().
    ///
    /// The counts are credited to the region of the last non-empty prediction; only `adaptive` uses them.
    pub fn feedback(&mut self, used: u32, unused: u32) {
        if let Some(s) = self.streams.get_mut(self.fed) {
            s.used = s.used.saturating_add(used);
            s.unused = s.unused.saturating_add(unused);
        }
    }

    /// The slot holding the history of `[first, end)`: the one already there, else the least recently
    /// used one, started afresh.
    fn stream(&mut self, first: u64, end: u64) -> usize {
        let mut oldest = 0usize;
        let mut oldest_stamp = u64::MAX;
        for (i, s) in self.streams.iter().enumerate() {
            if s.live && s.first == first && s.end == end {
                return i;
            }
            let stamp = if s.live { s.stamp } else { 0 };
            if stamp < oldest_stamp {
                oldest = i;
                oldest_stamp = stamp;
            }
        }
        let window = self.pages.saturating_sub(1);
        if let Some(s) = self.streams.get_mut(oldest) {
            *s = Stream {
                live: true,
                first,
                end,
                window,
                ..Stream::EMPTY
            };
        }
        if self.fed == oldest {
            self.fed = STREAMS;
        }
        oldest
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use std::vec::Vec;

    /// The region of the simulations: 65,536 pages (256 MiB, the bss of the benchmarks), at an
    /// address like a real bss.
    const FIRST: u64 = 0x0005_5555_5600;
    const PAGES: u64 = 65_536;
    const END: u64 = FIRST + PAGES;

    /// What one simulated run measured.
    #[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
    struct Run {
        touches: u64,
        faults: u64,
        /// Pages mapped because they were predicted (predictions of pages already mapped excluded).
        predicted: u64,
        /// Predicted pages touched before the next fault, as `feedback` reports them.
        used: u64,
        /// Predicted pages still untouched at the next fault (or at the end): the waste.
        unused: u64,
        /// Predicted pages never touched at all.
        never: u64,
    }

    /// Runs `touches` (page numbers in `[first, end)`) against `p` with an explicit set of mapped pages,
    /// as hpager would: a touch of an unmapped page faults; before each `on_fault` the predictor hears
    /// how the pages mapped by the previous prediction fared. Checks every prediction on the way.
    fn simulate(p: &mut Predictor, first: u64, end: u64, touches: &[u64]) -> Run {
        let size = usize::try_from(end - first).unwrap();
        let mut mapped = std::vec![false; size];
        let mut touched = std::vec![false; size];
        let mut by_prediction = std::vec![false; size];
        let mut pending: Vec<usize> = Vec::new();
        let mut run = Run::default();
        let mut out = [0u64; MAX_PREDICT];
        for &page in touches {
            let i = usize::try_from(page - first).unwrap();
            run.touches += 1;
            if !mapped[i] {
                run.faults += 1;
                let used = pending.iter().filter(|&&j| touched[j]).count() as u32;
                let unused = pending.len() as u32 - used;
                run.used += u64::from(used);
                run.unused += u64::from(unused);
                pending.clear();
                p.feedback(used, unused);

                out.fill(u64::MAX);
                let n = p.on_fault(page, first, end, &mut out);
                check(page, first, end, &out, n);
                mapped[i] = true;
                for &q in &out[..n] {
                    let j = usize::try_from(q - first).unwrap();
                    if !mapped[j] {
                        mapped[j] = true;
                        by_prediction[j] = true;
                        pending.push(j);
                        run.predicted += 1;
                    }
                }
            }
            touched[i] = true;
        }
        let used = pending.iter().filter(|&&j| touched[j]).count() as u64;
        run.used += used;
        run.unused += pending.len() as u64 - used;
        run.never = (0..size)
            .filter(|&j| by_prediction[j] && !touched[j])
            .count() as u64;
        assert_eq!(run.used + run.unused, run.predicted);
        run
    }

    /// The promises of `on_fault`: inside the region, never the faulting page, no duplicates.
    fn check(page: u64, first: u64, end: u64, out: &[u64; MAX_PREDICT], n: usize) {
        assert!(n <= MAX_PREDICT);
        let got = &out[..n];
        for (k, &q) in got.iter().enumerate() {
            assert!(
                q >= first && q < end,
                "{q:#x} outside [{first:#x}, {end:#x})"
            );
            assert_ne!(q, page);
            assert!(!got[..k].contains(&q), "{q:#x} predicted twice");
        }
    }

    fn sequential() -> Vec<u64> {
        (FIRST..END).collect()
    }

    fn backward() -> Vec<u64> {
        (FIRST..END).rev().collect()
    }

    /// Every 8th page.
    fn strided() -> Vec<u64> {
        (FIRST..END).step_by(8).collect()
    }

    /// One page in 64.
    fn sparse() -> Vec<u64> {
        (FIRST..END).step_by(64).collect()
    }

    /// Every page once, in an order shuffled by xorshift64 with a fixed seed (Fisher-Yates).
    fn random() -> Vec<u64> {
        let mut v: Vec<u64> = (FIRST..END).collect();
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for i in (1..v.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let j = (x % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
        v
    }

    fn run(policy: Policy, pages: u32, touches: &[u64]) -> Run {
        simulate(&mut Predictor::new(policy, pages), FIRST, END, touches)
    }

    const ALL: [Policy; 5] = Policy::ALL;

    #[test]
    fn names_round_trip() {
        for p in ALL {
            assert_eq!(Policy::parse(p.name().as_bytes()), Some(p));
        }
        assert_eq!(Policy::parse(b"ADAPTIVE"), Some(Policy::Adaptive));
        assert_eq!(Policy::parse(b""), None);
        assert_eq!(Policy::parse(b"nex"), None);
        assert_eq!(Policy::parse(b"next "), None);
    }

    #[test]
    fn pages_are_clamped() {
        assert_eq!(Predictor::new(Policy::Next, 0).pages, 1);
        assert_eq!(Predictor::new(Policy::Next, 1).pages, 1);
        assert_eq!(Predictor::new(Policy::Next, 65).pages, 65);
        assert_eq!(Predictor::new(Policy::Next, u32::MAX).pages, 65);
        let mut out = [0; MAX_PREDICT];
        let mut p = Predictor::new(Policy::Next, u32::MAX);
        assert_eq!(p.on_fault(FIRST, FIRST, END, &mut out), MAX_PREDICT);
        let mut p = Predictor::new(Policy::Next, 0);
        assert_eq!(p.on_fault(FIRST, FIRST, END, &mut out), 0);
    }

    /// Every policy, every pattern, N = 1, 2, 3 and the largest: the outputs keep their promises (checked
    /// inside `simulate`), and with the pages counted as `simulate` counts them nothing is lost.
    #[test]
    fn every_output_keeps_the_promises() {
        let patterns = [sequential(), backward(), strided(), sparse(), random()];
        for policy in ALL {
            for pages in [1, 2, 3, 65] {
                for touches in &patterns {
                    let r = run(policy, pages, touches);
                    assert!(r.faults >= 1 && r.faults <= r.touches);
                    if policy == Policy::None || pages == 1 && policy != Policy::Adaptive {
                        assert_eq!(
                            (r.faults, r.predicted),
                            (r.touches, 0),
                            "{policy:?} N={pages}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn edges_of_the_region_and_of_the_page_numbers() {
        let mut out = [0; MAX_PREDICT];
        // Near the end: nothing beyond it.
        let mut p = Predictor::new(Policy::Next, 3);
        assert_eq!(p.on_fault(END - 2, FIRST, END, &mut out), 1);
        assert_eq!(out[0], END - 1);
        assert_eq!(p.on_fault(END - 1, FIRST, END, &mut out), 0);
        // A fault outside the region, or an empty region: nothing, and no panic.
        assert_eq!(p.on_fault(END, FIRST, END, &mut out), 0);
        assert_eq!(p.on_fault(FIRST - 1, FIRST, END, &mut out), 0);
        assert_eq!(p.on_fault(FIRST, FIRST, FIRST, &mut out), 0);
        // A backward trend at page 0 and a forward one at the top of u64 stay in range.
        for policy in ALL {
            let mut p = Predictor::new(policy, 65);
            for page in [3, 2, 1, 0] {
                let n = p.on_fault(page, 0, 16, &mut out);
                check(page, 0, 16, &out, n);
            }
            let mut p = Predictor::new(policy, 65);
            for page in [u64::MAX - 4, u64::MAX - 3, u64::MAX - 2, u64::MAX - 1] {
                let n = p.on_fault(page, u64::MAX - 8, u64::MAX, &mut out);
                check(page, u64::MAX - 8, u64::MAX, &out, n);
            }
            // Deltas that do not fit an i64, and a refault of the same page.
            let mut p = Predictor::new(policy, 65);
            for page in [0, u64::MAX - 1, 0, 0, u64::MAX - 1, u64::MAX - 1] {
                let n = p.on_fault(page, 0, u64::MAX, &mut out);
                check(page, 0, u64::MAX, &out, n);
            }
        }
    }

    #[test]
    fn none_predicts_nothing() {
        for touches in [sequential(), random()] {
            let r = run(Policy::None, 3, &touches);
            assert_eq!((r.faults, r.predicted), (r.touches, 0));
        }
    }

    #[test]
    fn next_with_two_pages_halves_sequential_faults() {
        let r = run(Policy::Next, 2, &sequential());
        assert_eq!(r.faults, PAGES / 2);
        assert_eq!((r.predicted, r.unused), (PAGES / 2, 0));
        let r = run(Policy::Next, 3, &sequential());
        assert_eq!(r.faults, PAGES.div_ceil(3));
        // Backward, the page after is always mapped already: no gain, no waste.
        let r = run(Policy::Next, 2, &backward());
        assert_eq!((r.faults, r.predicted), (PAGES, 0));
    }

    #[test]
    fn stride_catches_the_strided_pattern() {
        for (pages, touches) in [
            (2, strided()),
            (3, strided()),
            (2, sparse()),
            (3, sparse()),
            (2, backward()),
        ] {
            let r = run(Policy::Stride, pages, &touches);
            let n = u64::from(pages);
            // A few faults to find the stride, then one fault per N touches; the only waste is what the
            // `next` fallback predicted before the stride was known.
            assert!(r.faults <= r.touches.div_ceil(n) + 3, "N={pages}: {r:?}");
            assert!(r.unused <= 2 * (n - 1), "N={pages}: {r:?}");
        }
        // `next` cannot do this.
        let r = run(Policy::Next, 2, &strided());
        assert_eq!(r.faults, r.touches);
    }

    #[test]
    fn trend_catches_backward() {
        for pages in [2u32, 3] {
            let n = u64::from(pages);
            let r = run(Policy::Trend, pages, &backward());
            assert!(r.faults <= PAGES.div_ceil(n) + 3, "N={pages}: {r:?}");
            assert_eq!(r.unused, 0, "N={pages}: {r:?}");
            let r = run(Policy::Trend, pages, &strided());
            assert!(r.faults <= r.touches.div_ceil(n) + 3, "N={pages}: {r:?}");
        }
    }

    /// Leap's point: one stray fault in a steady walk does not break the trend, where it breaks a stride.
    #[test]
    fn trend_survives_a_stray_fault() {
        let mut out = [0; MAX_PREDICT];
        let mut p = Predictor::new(Policy::Trend, 2);
        for page in [100, 96, 92, 88, 84] {
            p.on_fault(page, 0, 1000, &mut out);
        }
        // 80 would be the next; a stray fault at 500, then back on the walk at 76.
        p.on_fault(500, 0, 1000, &mut out);
        assert_eq!(p.on_fault(76, 0, 1000, &mut out), 1);
        assert_eq!(out[0], 72);
        let mut p = Predictor::new(Policy::Stride, 2);
        for page in [100, 96, 92, 88, 84, 500, 76] {
            p.on_fault(page, 0, 1000, &mut out);
        }
        assert_eq!(out[0], 77);
    }

    #[test]
    fn adaptive_needs_16_times_fewer_faults_on_a_scan() {
        for pages in [2, 3] {
            for touches in [sequential(), backward()] {
                let none = run(Policy::None, pages, &touches);
                let r = run(Policy::Adaptive, pages, &touches);
                assert!(r.faults * 16 <= none.faults, "N={pages}: {r:?}");
                assert!(r.unused * 10 <= r.predicted, "N={pages}: {r:?}");
            }
            // A strided or sparse walk gains as much: the window runs along the majority delta.
            for touches in [strided(), sparse()] {
                let r = run(Policy::Adaptive, pages, &touches);
                assert!(r.faults * 8 <= r.touches, "N={pages}: {r:?}");
                assert!(r.unused * 10 <= r.predicted, "N={pages}: {r:?}");
            }
        }
    }

    /// On a uniform shuffle no fault delta ever wins a majority, so `adaptive` predicts nothing at all
    /// (no waste out of no predictions). The fixed policies, for contrast, waste nearly all they predict
    /// by the time of the next fault. `adaptive_shrinks_quickly_when_a_scan_turns_random` is the case
    /// where the window is open when the randomness starts.
    #[test]
    fn adaptive_wastes_at_most_a_tenth_on_random() {
        for pages in [2, 3, 65] {
            let r = run(Policy::Adaptive, pages, &random());
            assert!(r.unused * 10 <= r.predicted, "N={pages}: {r:?}");
            assert!(r.unused <= 2 * (u64::from(pages) - 1), "N={pages}: {r:?}");
            let next = run(Policy::Next, pages, &random());
            assert!(next.unused * 10 > next.predicted * 9, "N={pages}: {next:?}");
        }
    }

    /// A scan that turns random with the window wide open: the window must close within a few faults.
    #[test]
    fn adaptive_shrinks_quickly_when_a_scan_turns_random() {
        let scan = PAGES / 2;
        let mut touches: Vec<u64> = (FIRST..FIRST + scan).collect();
        touches.extend(random().into_iter().filter(|&q| q >= FIRST + scan));
        let r = run(Policy::Adaptive, 2, &touches);
        // The scan alone predicts ~scan pages; the random half may waste what a closing window of
        // 64 + 32 + 16 + 8 + 4 + 2 + 1 pages holds while the majority vote still sees the scan.
        assert!(r.unused <= 2 * MAX_PREDICT as u64, "{r:?}");
        assert!(r.unused * 10 <= r.predicted, "{r:?}");
    }

    /// Two regions faulting alternately (a copy from one buffer into another) keep their own trends;
    /// a region never seen before starts with an empty history.
    #[test]
    fn history_is_kept_per_region() {
        let (a, b) = (0x1000u64, 0x9000u64);
        let mut touches = Vec::new();
        for i in 0..4096 {
            touches.push(a + i);
            touches.push(b + 4095 - i);
        }
        let mut p = Predictor::new(Policy::Adaptive, 2);
        let mut out = [0; MAX_PREDICT];
        let mut mapped = std::collections::HashSet::new();
        let mut faults = 0;
        for &q in &touches {
            if mapped.insert(q) {
                faults += 1;
                let (first, end) = if q < b { (a, a + 4096) } else { (b, b + 4096) };
                let n = p.on_fault(q, first, end, &mut out);
                check(q, first, end, &out, n);
                p.feedback(n as u32, 0);
                mapped.extend(out[..n].iter().copied());
            }
        }
        assert!(faults * 16 <= touches.len(), "{faults} faults");

        // A new region: no delta from the old one's last fault.
        let mut p = Predictor::new(Policy::Stride, 2);
        for q in [10, 20, 30] {
            p.on_fault(q, 0, 100, &mut out);
        }
        assert_eq!(p.on_fault(40, 0, 100, &mut out), 1);
        assert_eq!(out[0], 50);
        assert_eq!(p.on_fault(140, 100, 200, &mut out), 1);
        assert_eq!(out[0], 141, "a fresh region falls back to next");
        // More regions than slots: each still behaves, the oldest history is dropped.
        for r in 0..3 * STREAMS as u64 {
            let base = 1000 + r * 100;
            for k in 0..4 {
                let n = p.on_fault(base + 10 * k, base, base + 100, &mut out);
                check(base + 10 * k, base, base + 100, &out, n);
            }
            assert_eq!(out[0], base + 40);
        }
    }

    /// Feedback that arrives when nothing was predicted, or huge counts, is harmless.
    #[test]
    fn stray_feedback() {
        let mut p = Predictor::new(Policy::Adaptive, 2);
        p.feedback(u32::MAX, u32::MAX);
        let mut out = [0; MAX_PREDICT];
        for q in 0..4 {
            p.feedback(u32::MAX, 0);
            let n = p.on_fault(q * 2, 0, 1 << 20, &mut out);
            check(q * 2, 0, 1 << 20, &out, n);
        }
        p.feedback(0, u32::MAX);
        p.feedback(0, u32::MAX);
        let n = p.on_fault(100, 0, 1 << 20, &mut out);
        check(100, 0, 1 << 20, &out, n);
    }
}
