//! The region table: the address ranges the pager owns, their protection, and each page's state.
//!
//! Built once, before the fault handler is installed and before the program runs, then only read (and
//! its page states and counters updated through atomics) by the handler. A sorted array answers "which
//! region holds this address" by binary search, behind a one-entry cache of the last region found (the
//! kernel keeps such a cache per process, `mmap_cache`); lookups and cache hits are counted.
//!
//! Each region also counts its *runs*: grants that made pages accessible with no accessible page on
//! either side, each of which split a `PROT_NONE` mapping into three (see [`RegionTable::runs`]).

use core::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use uexec_elf::PAGE_SIZE;

/// The most regions: a file part and an anonymous part for every loadable segment.
pub const MAX_REGIONS: usize = 2 * uexec_elf::MAX_SEGMENTS;

/// A page nobody touched yet.
pub const UNTOUCHED: u8 = 0;
/// A page some thread is making accessible right now.
pub const MAPPING: u8 = 1;
/// A page made accessible on demand or at start, or handed to the program.
pub const MAPPED: u8 = 2;
/// A page made accessible by prediction (hpager), whose use is judged when the program exits.
pub const PREDICTED: u8 = 3;

/// One range the pager owns.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Region {
    /// Page-aligned bounds.
    pub start: u64,
    pub end: u64,
    /// The protection its pages get when touched (`PROT_*` bits).
    pub prot: u32,
    /// File offset of `start`, or `None` for anonymous memory.
    pub file_offset: Option<u64>,
    /// Program-header index of the segment the region belongs to.
    pub segment: u16,
    /// Index of the region's first page in the page-state array.
    pub first_state: usize,
    /// Index of the region in its table.
    pub index: usize,
}

impl Region {
    /// Number of pages.
    pub const fn pages(&self) -> u64 {
        (self.end - self.start) / PAGE_SIZE
    }
}

/// The table, its page states and its lookup counters.
pub struct RegionTable {
    regions: [Region; MAX_REGIONS],
    count: usize,
    /// One byte per page of every region, in region order (a mapping made at set-up).
    states: &'static [AtomicU8],
    cache: AtomicUsize,
    pub lookups: AtomicU64,
    pub hits: AtomicU64,
    /// Per region, grants that bordered no accessible page (each adds up to two VMAs).
    runs: [AtomicU32; MAX_REGIONS],
    /// The same, over all regions.
    pub total_runs: AtomicU64,
}

impl RegionTable {
    /// An empty table whose regions will index into `states`.
    pub const fn new(states: &'static [AtomicU8]) -> Self {
        Self {
            regions: [Region {
                start: 0,
                end: 0,
                prot: 0,
                file_offset: None,
                segment: 0,
                first_state: 0,
                index: 0,
            }; MAX_REGIONS],
            count: 0,
            states,
            cache: AtomicUsize::new(0),
            lookups: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            runs: [const { AtomicU32::new(0) }; MAX_REGIONS],
            total_runs: AtomicU64::new(0),
        }
    }

    /// Adds a region above all earlier ones; returns false if the table or the state array is full or the
    /// region is not above the last one.
    pub fn push(
        &mut self,
        start: u64,
        end: u64,
        prot: u32,
        file_offset: Option<u64>,
        segment: u16,
    ) -> bool {
        let first_state = self
            .regions()
            .last()
            .map_or(0, |r| r.first_state + r.pages() as usize);
        if let Some(last) = self.regions().last() {
            if start < last.end {
                return false;
            }
        }
        let pages = ((end - start) / PAGE_SIZE) as usize;
        if end <= start || first_state + pages > self.states.len() {
            return false;
        }
        let Some(slot) = self.regions.get_mut(self.count) else {
            return false;
        };
        *slot = Region {
            start,
            end,
            prot,
            file_offset,
            segment,
            first_state,
            index: self.count,
        };
        self.count += 1;
        true
    }

    pub fn regions(&self) -> &[Region] {
        self.regions.get(..self.count).unwrap_or(&[])
    }

    /// The region holding `addr`, if the pager owns it.
    pub fn lookup(&self, addr: u64) -> Option<&Region> {
        self.lookups.fetch_add(1, Ordering::Relaxed);
        let regions = self.regions();
        let cached = self.cache.load(Ordering::Relaxed);
        if let Some(r) = regions.get(cached) {
            if r.start <= addr && addr < r.end {
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Some(r);
            }
        }
        let index = regions.partition_point(|r| r.end <= addr);
        let r = regions.get(index).filter(|r| r.start <= addr)?;
        self.cache.store(index, Ordering::Relaxed);
        Some(r)
    }

    /// The region holding `addr`, without counting the lookup (for the pager's own bookkeeping).
    pub fn find(&self, addr: u64) -> Option<&Region> {
        let regions = self.regions();
        let index = regions.partition_point(|r| r.end <= addr);
        regions.get(index).filter(|r| r.start <= addr)
    }

    /// The start of the first region above `addr`.
    pub fn next_start(&self, addr: u64) -> Option<u64> {
        let regions = self.regions();
        let index = regions.partition_point(|r| r.end <= addr);
        regions.get(index).map(|r| r.start).filter(|&s| s > addr)
    }

    /// Every page state, in region order (for the exit-time accounting of predictions).
    pub fn states(&self) -> &[AtomicU8] {
        self.states
    }

    /// The runs counted for `region` so far.
    pub fn runs(&self, region: &Region) -> u32 {
        self.runs
            .get(region.index)
            .map_or(u32::MAX, |r| r.load(Ordering::Relaxed))
    }

    /// Counts a grant in `region` that bordered no accessible page.
    pub fn count_run(&self, region: &Region) {
        if let Some(r) = self.runs.get(region.index) {
            r.fetch_add(1, Ordering::Relaxed);
        }
        self.total_runs.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether the page at `addr` is in `region` and was made accessible (`MAPPED` or `PREDICTED`).
    pub fn accessible(&self, region: &Region, addr: u64) -> bool {
        addr >= region.start
            && addr < region.end
            && self
                .state(region, addr)
                .is_some_and(|s| matches!(s.load(Ordering::Acquire), MAPPED | PREDICTED))
    }

    /// The state of the page at `addr` in `region` (which must hold it).
    pub fn state(&self, region: &Region, addr: u64) -> Option<&AtomicU8> {
        let index = region.first_state + ((addr - region.start) / PAGE_SIZE) as usize;
        self.states.get(index)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    fn table() -> RegionTable {
        let states: &'static [AtomicU8] =
            std::vec::Vec::leak((0..64).map(|_| AtomicU8::new(0)).collect());
        let mut t = RegionTable::new(states);
        assert!(t.push(0x400000, 0x401000, 1, Some(0), 1));
        assert!(t.push(0x401000, 0x405000, 5, Some(0x1000), 2));
        assert!(t.push(0x406000, 0x408000, 3, Some(0x5000), 3));
        assert!(t.push(0x408000, 0x410000, 3, None, 3));
        t
    }

    #[test]
    fn lookup_finds_the_region_and_counts_cache_hits() {
        let t = table();
        assert_eq!(t.lookup(0x3fffff), None);
        assert_eq!(t.lookup(0x400000).unwrap().segment, 1);
        assert_eq!(t.lookup(0x404fff).unwrap().prot, 5);
        assert_eq!(t.lookup(0x405000), None); // the hole
        assert_eq!(t.lookup(0x40ffff).unwrap().file_offset, None);
        assert_eq!(t.lookup(0x410000), None);
        let before = t.hits.load(Ordering::Relaxed);
        assert!(t.lookup(0x40e000).is_some()); // same region as the last hit
        assert_eq!(t.hits.load(Ordering::Relaxed), before + 1);
        assert_eq!(t.lookups.load(Ordering::Relaxed), 7);
    }

    #[test]
    fn page_states_are_laid_out_region_after_region() {
        let t = table();
        let r = *t.lookup(0x408000).unwrap();
        assert_eq!(r.first_state, 1 + 4 + 2);
        let s = t.state(&r, 0x409fff).unwrap();
        s.store(MAPPED, Ordering::Relaxed);
        assert_eq!(t.states[r.first_state + 1].load(Ordering::Relaxed), MAPPED);
    }

    #[test]
    fn push_refuses_overlap_and_overflow() {
        let mut t = table();
        assert!(!t.push(0x40f000, 0x411000, 3, None, 4));
        assert!(!t.push(0x500000, 0x600000, 3, None, 4)); // 256 pages: more than the 64 states
    }

    #[test]
    fn runs_are_counted_per_region_and_in_total() {
        let t = table();
        let text = *t.lookup(0x401000).unwrap();
        let bss = *t.lookup(0x408000).unwrap();
        assert_eq!((text.index, bss.index), (1, 3));
        t.count_run(&bss);
        t.count_run(&bss);
        t.count_run(&text);
        assert_eq!((t.runs(&text), t.runs(&bss)), (1, 2));
        assert_eq!(t.total_runs.load(Ordering::Relaxed), 3);
        t.state(&bss, 0x409000)
            .unwrap()
            .store(MAPPED, Ordering::Relaxed);
        assert!(t.accessible(&bss, 0x409000));
        assert!(!t.accessible(&bss, 0x40a000));
        assert!(!t.accessible(&bss, 0x407000)); // below the region
    }
}
