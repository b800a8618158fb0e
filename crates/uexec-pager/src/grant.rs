//! Page granting: making a region's untouched pages accessible, and handing pages to the program.
//!
//! Pages are granted one by one or coarser as the region fragments, with hpager's predictions, for the
//! SIGSEGV handler and for the kernel (a trapped call about to touch them).
//!
//! A page is claimed before it is granted (its state goes from `UNTOUCHED` to `MAPPING` with a
//! compare-and-swap, so of several threads faulting on it at once exactly one maps it and the others
//! wait), then given the region's protection and logged.
//!
//! **Bounded mappings.** Each `mprotect` of a lone page inside a `PROT_NONE` mapping splits it in three,
//! and the kernel allows a process `vm.max_map_count` (65530) mappings. So every region counts its
//! *runs* (grants that bordered no accessible page) and grants coarser as it fragments, as the
//! kernel's fault-around does: single pages (and hpager's predictions) for its first [`FINE_RUNS`]
//! runs, then the aligned 64 KiB block around the page, then the aligned 2 MiB block, and past
//! [`LARGE_RUNS`] runs (or [`TOTAL_RUNS`] in all regions) the whole gap of untouched pages around
//! it, which splits nothing (hpager keeps predicting at the block grains, granting the block around
//! each predicted page). The pages of a coarse grant are claimed one by one with the same
//! compare-and-swap (the others are left as they are), logged `around`, and cost nothing until
//! touched: they already hold their final contents. A grant the kernel refuses (`ENOMEM`: the program
//! itself is at the limit) is retried as the whole gap, then as the page alone.
//!
//! **The pager's own failure is not the program's.** If even that fails, and the page is still
//! mapped, the pager cannot go on: it says so in one line on stderr and ends the process with
//! [`crate::report::EXIT_PAGER_FAILED`].
//!
//! # Safety
//!
//! Runs in the SIGSEGV and SIGSYS handlers: raw system calls, atomics, the crate's [`crate::lock`]
//! for the prediction state, and stack buffers only.

use core::ffi::c_void;
use core::sync::atomic::Ordering;
use rustix::mm::MprotectFlags;
use uexec_elf::{page_down, PAGE_SIZE};

use crate::predict::MAX_PREDICT;
use crate::regions::{Region, RegionTable, MAPPED, MAPPING, PREDICTED, UNTOUCHED};
use crate::report::{cannot_go_on, log};
use crate::state::{predicting, state, with_prediction, Prediction, State};
use crate::sys::mincore;

/// A region grants pages one at a time (or as predicted) until it has this many runs...
pub const FINE_RUNS: u32 = 1024;
/// ...then aligned 64 KiB blocks until this many...
pub const BLOCK_RUNS: u32 = 2048;
/// ...then aligned 2 MiB blocks until this many, then whole gaps.
pub const LARGE_RUNS: u32 = 3072;
/// Whole gaps in every region once all regions together have this many runs: the pager's splits never
/// add more than about twice as many VMAs.
pub const TOTAL_RUNS: u64 = 6144;

/// Makes the first page of the program (the entry point's page, for dpager) accessible at set-up.
pub(crate) fn start(first_page: u64) {
    if let Some(state) = state() {
        if let Some(region) = state.table.lookup(first_page) {
            claim_and_map(state, region, page_down(first_page), b"start");
        }
    }
}

/// Grants the demand page `page` of `region`, which the SIGSEGV handler claimed: with hpager's
/// prediction (but in a region so fragmented that it grants whole gaps), or as its grain calls for.
pub(crate) fn demand(state: &State, region: &Region, page: u64) -> Granted {
    let grain = grain(&state.table, region);
    if predicting() && grain != Grain::Gap {
        map_with_prediction(state, region, page, grain)
    } else {
        grant(state, region, page, b"demand")
    }
}

/// What became of a claimed demand page.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Granted {
    /// It is accessible.
    Yes,
    /// It is no longer mapped at all: the program removed it; the fault is real.
    Gone,
    /// The kernel refused every grant (this errno) and the page is still there: the pager cannot go on.
    Failed(i32),
}

/// How much a grant in a region makes accessible, by how fragmented the region is.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Grain {
    Page,
    /// The aligned block of this many bytes around the page.
    Block(u64),
    /// Every untouched page between the accessible ones below and above.
    Gap,
}

fn grain(table: &RegionTable, region: &Region) -> Grain {
    let runs = table.runs(region);
    if table.total_runs.load(Ordering::Relaxed) >= TOTAL_RUNS || runs >= LARGE_RUNS {
        Grain::Gap
    } else if runs >= BLOCK_RUNS {
        Grain::Block(2 << 20)
    } else if runs >= FINE_RUNS {
        Grain::Block(64 << 10)
    } else {
        Grain::Page
    }
}

/// The bounds `[low, high)` of the grant `grain` calls for around `page` in `region`.
fn span(table: &RegionTable, region: &Region, page: u64, grain: Grain) -> (u64, u64) {
    match grain {
        Grain::Page => (page, page + PAGE_SIZE),
        Grain::Block(size) => {
            let low = page & !(size - 1);
            (
                low.max(region.start),
                low.saturating_add(size).min(region.end),
            )
        }
        Grain::Gap => {
            let untouched = |at: u64| {
                table
                    .state(region, at)
                    .is_some_and(|s| s.load(Ordering::Relaxed) == UNTOUCHED)
            };
            let mut low = page;
            while low > region.start && untouched(low - PAGE_SIZE) {
                low -= PAGE_SIZE;
            }
            let mut high = page + PAGE_SIZE;
            while high < region.end && untouched(high) {
                high += PAGE_SIZE;
            }
            (low, high)
        }
    }
}

/// Makes the page `page` of `region`, whose state the caller set to MAPPING, accessible together with
/// the untouched pages the region's fragmentation calls for ([`grain`]); if the kernel refuses, tries
/// the whole gap around the page, then the page alone.
fn grant(state: &State, region: &Region, page: u64, why: &[u8]) -> Granted {
    let first = span(&state.table, region, page, grain(&state.table, region));
    let errno = match grant_span(state, region, page, first, why) {
        Ok(()) => return Granted::Yes,
        Err(errno) => errno,
    };
    recover(state, region, page, first, why, errno)
}

/// After the grant `tried` of the claimed page `page` failed with `errno`: the whole gap (which splits
/// no mapping), then the page alone (a smaller commitment of memory), then the verdict.
fn recover(
    state: &State,
    region: &Region,
    page: u64,
    tried: (u64, u64),
    why: &[u8],
    errno: i32,
) -> Granted {
    let mut errno = errno;
    let gap = span(&state.table, region, page, Grain::Gap);
    for retry in [gap, (page, page + PAGE_SIZE)] {
        if retry == tried {
            continue;
        }
        match grant_span(state, region, page, retry, why) {
            Ok(()) => return Granted::Yes,
            Err(e) => errno = e,
        }
    }
    let mut one = [0u8; 1];
    if let Some(slot) = state.table.state(region, page) {
        slot.store(MAPPED, Ordering::Release);
    }
    if mincore(page, 1, &mut one) {
        Granted::Failed(errno)
    } else {
        Granted::Gone
    }
}

/// Makes `[low, high)` (which holds the claimed page `page`) accessible: claims its untouched pages,
/// and gives each run of claimed pages the region's protection with one `mprotect`. Pages of a run the
/// kernel refuses go back to UNTOUCHED, except `page`, which stays MAPPING; returns the kernel's errno
/// if `page`'s run was refused.
fn grant_span(
    state: &State,
    region: &Region,
    page: u64,
    (low, high): (u64, u64),
    why: &[u8],
) -> Result<(), i32> {
    let mut result = Ok(());
    let mut run: Option<u64> = None;
    let mut at = low;
    while at <= high {
        let claimed = at < high
            && (at == page
                || state.table.state(region, at).is_some_and(|s| {
                    s.compare_exchange(UNTOUCHED, MAPPING, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                }));
        match (claimed, run) {
            (true, None) => run = Some(at),
            (false, Some(start)) => {
                let demand = (start <= page && page < at).then_some(page);
                if let Err(errno) = protect_claimed(state, region, start, at, demand, why) {
                    if demand.is_some() {
                        result = Err(errno);
                    }
                }
                run = None;
            }
            _ => {}
        }
        at += PAGE_SIZE;
    }
    result
}

/// Gives the claimed pages `[start, end)` the region's protection; on success counts the run if it
/// bordered no accessible page, marks the pages MAPPED, counts and logs them (`demand`, if given, as
/// `why`, the others as `around`). On failure the pages but `demand` go back to UNTOUCHED.
fn protect_claimed(
    state: &State,
    region: &Region,
    start: u64,
    end: u64,
    demand: Option<u64>,
    why: &[u8],
) -> Result<(), i32> {
    let flags = MprotectFlags::from_bits_truncate(region.prot);
    // SAFETY: the run lies in a region of the program image, reserved at load; only its protection
    // changes.
    let result =
        unsafe { rustix::mm::mprotect(start as *mut c_void, (end - start) as usize, flags) };
    let ok = result.is_ok();
    if ok {
        note_run(state, region, start, end);
    }
    let mut at = start;
    while at < end {
        if let Some(slot) = state.table.state(region, at) {
            if ok {
                slot.store(MAPPED, Ordering::Release);
            } else if Some(at) != demand {
                slot.store(UNTOUCHED, Ordering::Release);
            }
        }
        at += PAGE_SIZE;
    }
    if let Err(e) = result {
        return Err(e.raw_os_error());
    }
    let pages = (end - start) / PAGE_SIZE;
    let around = pages - u64::from(demand.is_some());
    if around > 0 {
        state
            .stats
            .around_pages
            .fetch_add(around, Ordering::Relaxed);
    }
    match demand {
        Some(demand) => {
            state.stats.demand_pages.fetch_add(1, Ordering::Relaxed);
            log(state, region, demand, 1, why);
            if demand > start {
                log(
                    state,
                    region,
                    start,
                    (demand - start) / PAGE_SIZE,
                    b"around",
                );
            }
            if demand + PAGE_SIZE < end {
                let rest = (end - demand - PAGE_SIZE) / PAGE_SIZE;
                log(state, region, demand + PAGE_SIZE, rest, b"around");
            }
        }
        None => log(state, region, start, pages, b"around"),
    }
    Ok(())
}

/// Counts `[start, end)`, just made accessible, as a run of `region` if no page next to it is
/// accessible (it split a mapping instead of extending or joining one).
fn note_run(state: &State, region: &Region, start: u64, end: u64) {
    let below = start > region.start && state.table.accessible(region, start - PAGE_SIZE);
    let above = state.table.accessible(region, end);
    if !below && !above {
        state.table.count_run(region);
    }
}

/// Maps the claimed demand page `page` together with the pages the predictor expects next: judges the
/// last prediction (which of its pages the program touched since), asks for the next one, claims those
/// of its pages nobody mapped yet, and makes the demand page and the claimed pages accessible in as few
/// `mprotect`s as runs of adjacent pages allow (one for a forward or backward scan). If the kernel
/// refuses the demand page's run, [`recover`] takes over.
fn map_with_prediction(state: &State, region: &Region, page: u64, grain: Grain) -> Granted {
    if let Grain::Block(_) = grain {
        return map_blocks_with_prediction(state, region, page, grain);
    }
    let mut demand_mapped = Err(0);
    let ran = with_prediction(|p| {
        let mut out = [0u64; MAX_PREDICT];
        let count = next_prediction(p, region, page, &mut out);
        let mut run = Run {
            start: page,
            end: page + PAGE_SIZE,
            demand: Some(page),
        };
        for &number in out.get(..count).unwrap_or(&[]) {
            let Some(addr) = number.checked_mul(PAGE_SIZE) else {
                continue;
            };
            if addr < region.start || addr >= region.end {
                continue;
            }
            let Some(slot) = state.table.state(region, addr) else {
                continue;
            };
            if slot
                .compare_exchange(UNTOUCHED, MAPPING, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                continue;
            }
            if let Some(pending) = p.pending.get_mut(p.pending_len) {
                *pending = addr;
                p.pending_len += 1;
            }
            if addr == run.end {
                run.end += PAGE_SIZE;
            } else if addr + PAGE_SIZE == run.start {
                run.start = addr;
            } else {
                protect_run(state, region, run, &mut demand_mapped);
                run = Run {
                    start: addr,
                    end: addr + PAGE_SIZE,
                    demand: None,
                };
            }
        }
        protect_run(state, region, run, &mut demand_mapped);
    });
    if !ran {
        // No predictor after all (PREDICTING is only set with one): map the page alone.
        return grant(state, region, page, b"demand");
    }
    match demand_mapped {
        Ok(()) => Granted::Yes,
        Err(errno) => recover(
            state,
            region,
            page,
            (page, page + PAGE_SIZE),
            b"demand",
            errno,
        ),
    }
}

/// Judges the last prediction and asks the predictor for the pages to map with the fault at `page` in
/// `region`: their page numbers go in `out`; returns how many.
fn next_prediction(
    p: &mut Prediction,
    region: &Region,
    page: u64,
    out: &mut [u64; MAX_PREDICT],
) -> usize {
    judge_pending(p);
    let first = region.start / PAGE_SIZE;
    let end = region.end / PAGE_SIZE;
    p.predictor.on_fault(page / PAGE_SIZE, first, end, out)
}

/// No page is the demand page of a span granted for a prediction.
const NO_DEMAND: u64 = u64::MAX;

/// [`map_with_prediction`] in a fragmented region: the block around the demand page, and the block
/// around each predicted page nobody claimed yet (claimed page by page like any coarse grant, marked
/// MAPPED and counted as `around`; the predicted pages are still judged at the next fault).
fn map_blocks_with_prediction(state: &State, region: &Region, page: u64, grain: Grain) -> Granted {
    let mut granted = Granted::Yes;
    let ran = with_prediction(|p| {
        let mut out = [0u64; MAX_PREDICT];
        let count = next_prediction(p, region, page, &mut out);
        granted = grant(state, region, page, b"demand");
        if granted != Granted::Yes {
            return;
        }
        for &number in out.get(..count).unwrap_or(&[]) {
            let Some(addr) = number.checked_mul(PAGE_SIZE) else {
                continue;
            };
            if addr < region.start || addr >= region.end {
                continue;
            }
            let untouched = state
                .table
                .state(region, addr)
                .is_some_and(|s| s.load(Ordering::Acquire) == UNTOUCHED);
            if !untouched {
                continue;
            }
            let span = span(&state.table, region, addr, grain);
            // Refused pages went back to UNTOUCHED: they are left to demand.
            let _ = grant_span(state, region, NO_DEMAND, span, b"predict");
            if let Some(pending) = p.pending.get_mut(p.pending_len) {
                *pending = addr;
                p.pending_len += 1;
            }
        }
    });
    if !ran {
        return grant(state, region, page, b"demand");
    }
    granted
}

/// Adjacent pages made accessible with one `mprotect`: predicted pages, and perhaps the demand page.
#[derive(Copy, Clone)]
struct Run {
    start: u64,
    end: u64,
    demand: Option<u64>,
}

/// Makes a run of claimed (MAPPING) pages accessible, then marks the demand page MAPPED and the
/// predicted ones PREDICTED: a thread faulting on one of them meanwhile waits for the run instead of
/// taking its fault for a real one. If the kernel refuses, the predicted pages go back to UNTOUCHED
/// and the demand page stays MAPPING. If the run holds the demand page, `demand` gets the outcome
/// (`Ok`, or the kernel's errno).
fn protect_run(state: &State, region: &Region, run: Run, outcome: &mut Result<(), i32>) {
    if run.end <= run.start {
        return;
    }
    let flags = MprotectFlags::from_bits_truncate(region.prot);
    let len = run.end - run.start;
    // SAFETY: the run lies in a region of the program image; only its protection changes.
    let result = unsafe { rustix::mm::mprotect(run.start as *mut c_void, len as usize, flags) };
    let ok = result.is_ok();
    if ok {
        note_run(state, region, run.start, run.end);
    }
    let mut at = run.start;
    while at < run.end {
        if let Some(slot) = state.table.state(region, at) {
            if Some(at) == run.demand {
                if ok {
                    slot.store(MAPPED, Ordering::Release);
                }
            } else {
                slot.store(if ok { PREDICTED } else { UNTOUCHED }, Ordering::Release);
            }
        }
        at += PAGE_SIZE;
    }
    if let Err(e) = result {
        if run.demand.is_some() {
            *outcome = Err(e.raw_os_error());
        }
        return;
    }
    let predicted = len / PAGE_SIZE - u64::from(run.demand.is_some());
    state
        .stats
        .predicted_pages
        .fetch_add(predicted, Ordering::Relaxed);
    match run.demand {
        Some(demand) => {
            state.stats.demand_pages.fetch_add(1, Ordering::Relaxed);
            log(state, region, demand, 1, b"demand");
            if demand > run.start {
                log(
                    state,
                    region,
                    run.start,
                    (demand - run.start) / PAGE_SIZE,
                    b"predict",
                );
            }
            if demand + PAGE_SIZE < run.end {
                log(
                    state,
                    region,
                    demand + PAGE_SIZE,
                    (run.end - demand - PAGE_SIZE) / PAGE_SIZE,
                    b"predict",
                );
            }
            *outcome = Ok(());
        }
        None => log(state, region, run.start, len / PAGE_SIZE, b"predict"),
    }
}

/// Tells the predictor which of the pages it predicted at the last fault the program has touched since
/// (they are resident: a predicted anonymous page is made accessible, not populated). Only for
/// `adaptive`, the one policy that learns from it: for the others the fault path makes no `mincore`.
fn judge_pending(p: &mut Prediction) {
    if !p.predictor.wants_feedback() {
        // Nothing on the fault path learns from it; `--stats` counts predictions at exit.
        p.pending_len = 0;
        return;
    }
    let pending = p.pending.get(..p.pending_len).unwrap_or(&[]);
    let (Some(&low), Some(&high)) = (pending.iter().min(), pending.iter().max()) else {
        p.pending_len = 0;
        return;
    };
    let mut resident = [0u8; 2 * MAX_PREDICT];
    let span = ((high - low) / PAGE_SIZE + 1) as usize;
    let (mut used, mut unused) = (0u32, 0u32);
    if span <= resident.len() && mincore(low, span, &mut resident) {
        for &addr in pending {
            let touched = resident
                .get(((addr - low) / PAGE_SIZE) as usize)
                .is_some_and(|r| r & 1 != 0);
            if touched {
                used += 1
            } else {
                unused += 1
            }
        }
    } else {
        for &addr in pending {
            let mut one = [0u8; 1];
            if mincore(addr, 1, &mut one) && one[0] & 1 != 0 {
                used += 1
            } else {
                unused += 1
            }
        }
    }
    p.pending_len = 0;
    p.predictor.feedback(used, unused);
}

/// Makes `page` accessible unless it already is; if another thread is making it accessible right now,
/// waits for that (the caller is about to hand the page to the kernel).
fn claim_and_map(state: &State, region: &Region, page: u64, why: &[u8]) {
    let Some(slot) = state.table.state(region, page) else {
        return;
    };
    match slot.compare_exchange(UNTOUCHED, MAPPING, Ordering::Acquire, Ordering::Acquire) {
        Ok(_) => {
            if let Granted::Failed(errno) = grant(state, region, page, why) {
                cannot_go_on(state, page, errno);
            }
        }
        Err(MAPPING) => {
            while slot.load(Ordering::Acquire) == MAPPING {
                core::hint::spin_loop();
            }
        }
        Err(_) => {}
    }
}

/// Makes the image pages in `[addr, addr + len)` accessible, for a system call that is about to read or
/// write them (the kernel gets EFAULT, not a fault, from an inaccessible page).
pub fn ensure_accessible(addr: u64, len: u64) {
    let Some(state) = state() else { return };
    let Some(end) = addr.checked_add(len.min(1 << 30)) else {
        return;
    };
    let mut page = page_down(addr);
    while page < end {
        match state.table.find(page) {
            Some(region) => {
                claim_and_map(state, region, page, b"kernel");
                page += PAGE_SIZE;
            }
            None => match state.table.next_start(page) {
                Some(next) if next < end => page = next,
                _ => break,
            },
        }
    }
}

/// Gives the image pages in `[addr, addr + len)` to the program: it is changing or removing them itself
/// (`mprotect`, `munmap`, ...), so their protection is its own from now on, and faults there are real.
pub fn hand_over(addr: u64, len: u64) {
    let Some(state) = state() else { return };
    let Some(end) = addr.checked_add(len) else {
        return;
    };
    let mut page = page_down(addr);
    while page < end {
        match state.table.find(page) {
            Some(region) => {
                if let Some(slot) = state.table.state(region, page) {
                    slot.store(MAPPED, Ordering::Release);
                }
                page += PAGE_SIZE;
            }
            None => match state.table.next_start(page) {
                Some(next) if next < end => page = next,
                _ => break,
            },
        }
    }
}

/// Grants every untouched page of every region, one grant per untouched gap: a checkpoint must find
/// the program's memory as the program would, with its contents and its own protection, since the
/// restarted program runs without a pager.
pub fn grant_all() {
    let Some(state) = state() else { return };
    for region in state.table.regions() {
        let mut page = region.start;
        while page < region.end {
            let claimed = state.table.state(region, page).is_some_and(|slot| {
                slot.compare_exchange(UNTOUCHED, MAPPING, Ordering::Acquire, Ordering::Acquire)
                    .is_ok()
            });
            if !claimed {
                page += PAGE_SIZE;
                continue;
            }
            let gap = span(&state.table, region, page, Grain::Gap);
            if let Err(errno) = grant_span(state, region, page, gap, b"checkpoint") {
                cannot_go_on(state, page, errno);
            }
            page = gap.1.max(page + PAGE_SIZE);
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use core::sync::atomic::AtomicU8;

    /// A table of one 4 MiB anonymous region at 0x1000000.
    fn table() -> RegionTable {
        let states: &'static [AtomicU8] =
            std::vec::Vec::leak((0..1024).map(|_| AtomicU8::new(0)).collect());
        let mut t = RegionTable::new(states);
        assert!(t.push(0x100_0000, 0x140_0000, 3, None, 2));
        t
    }

    #[test]
    fn grants_grow_coarser_as_a_region_fragments() {
        let t = table();
        let r = *t.lookup(0x100_0000).unwrap();
        assert_eq!(grain(&t, &r), Grain::Page);
        let steps = [
            (FINE_RUNS, Grain::Block(64 << 10)),
            (BLOCK_RUNS, Grain::Block(2 << 20)),
            (LARGE_RUNS, Grain::Gap),
        ];
        let mut runs = 0;
        for (threshold, expected) in steps {
            while runs < threshold - 1 {
                t.count_run(&r);
                runs += 1;
            }
            assert_ne!(grain(&t, &r), expected);
            t.count_run(&r);
            runs += 1;
            assert_eq!(grain(&t, &r), expected, "after {runs} runs");
        }
    }

    #[test]
    fn a_busy_table_grants_whole_gaps_everywhere() {
        let states: &'static [AtomicU8] =
            std::vec::Vec::leak((0..64).map(|_| AtomicU8::new(0)).collect());
        let mut t = RegionTable::new(states);
        assert!(t.push(0x40_0000, 0x41_0000, 5, Some(0), 1));
        assert!(t.push(0x50_0000, 0x51_0000, 3, None, 2));
        let (text, bss) = (*t.lookup(0x40_0000).unwrap(), *t.lookup(0x50_0000).unwrap());
        for _ in 0..TOTAL_RUNS - 1 {
            t.count_run(&text);
        }
        assert_eq!(grain(&t, &bss), Grain::Page);
        t.count_run(&text);
        assert_eq!(grain(&t, &bss), Grain::Gap);
    }

    #[test]
    fn spans_are_aligned_blocks_clamped_to_the_region_or_the_untouched_gap() {
        let t = table();
        let r = *t.lookup(0x100_0000).unwrap();
        let page = 0x123_4000;
        assert_eq!(span(&t, &r, page, Grain::Page), (page, page + PAGE_SIZE));
        assert_eq!(
            span(&t, &r, page, Grain::Block(64 << 10)),
            (0x123_0000, 0x124_0000)
        );
        assert_eq!(
            span(&t, &r, page, Grain::Block(2 << 20)),
            (0x120_0000, 0x140_0000)
        );
        // A 2 MiB block reaching below the region is cut at its start.
        assert_eq!(
            span(&t, &r, 0x100_3000, Grain::Block(8 << 20)),
            (0x100_0000, 0x140_0000)
        );
        // The gap: from the page after the last non-untouched one below to the next one above.
        assert_eq!(span(&t, &r, page, Grain::Gap), (0x100_0000, 0x140_0000));
        t.state(&r, 0x120_0000)
            .unwrap()
            .store(MAPPED, Ordering::Relaxed);
        t.state(&r, 0x130_0000)
            .unwrap()
            .store(MAPPING, Ordering::Relaxed);
        assert_eq!(span(&t, &r, page, Grain::Gap), (0x120_1000, 0x130_0000));
    }
}
