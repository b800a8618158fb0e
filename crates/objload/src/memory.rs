//! The memory an image lives in: one anonymous mapping, placed near what its 32-bit references reach.
//!
//! A mapping is born writable and not executable ([`Writable`]); the linker fills it, then
//! [`Writable::seal`] gives each part its final protection and returns a [`Mapping`] that offers no
//! mutable access. So the types themselves keep the image from ever being writable and executable at once.
//! [`place`] picks the address: a free gap in `/proc/self/maps` as close as possible to the targets, and
//! within ±2 GiB of all of them; the mapping is made there with `MAP_FIXED_NOREPLACE`, which never replaces
//! an existing mapping.
//!
//! # Safety
//! The unsafe blocks call `mmap`, `mprotect` and `munmap` on ranges this module created and owns, and build
//! a slice over the mapping while it is readable and writable and uniquely borrowed.

use std::ffi::c_void;
use std::ptr::NonNull;

use rustix::io::Errno;
use rustix::mm::{MapFlags, MprotectFlags, ProtFlags};

use crate::error::Error;

/// The final protection of a part of an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Protection {
    ReadExecute,
    Read,
    ReadWrite,
}

/// A sealed mapping: its protections are final; it is unmapped on drop.
#[derive(Debug)]
pub(crate) struct Mapping {
    addr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value; no thread-affine state is attached to it.
unsafe impl Send for Mapping {}
// SAFETY: a sealed mapping offers no mutable access through `&self`.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// The first address.
    pub(crate) fn addr(&self) -> u64 {
        self.addr.as_ptr() as u64
    }

    /// The length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `addr..addr+len` was mapped by `Writable::map_at` and is owned by this value alone; nothing
        // refers into it any more (the registry drops an image only when no handle or dependent remains).
        let _ = unsafe { rustix::mm::munmap(self.addr.as_ptr().cast::<c_void>(), self.len) };
    }
}

/// A fresh mapping, readable and writable, not executable.
#[derive(Debug)]
pub(crate) struct Writable {
    map: Mapping,
}

impl Writable {
    /// Maps `len` bytes (a multiple of the page size) of zeroed memory at exactly `addr`, failing with
    /// `EEXIST` if anything is mapped there.
    fn map_at(addr: u64, len: usize) -> Result<Writable, Errno> {
        // SAFETY: `MAP_FIXED_NOREPLACE` never replaces an existing mapping, so no memory anyone holds is
        // affected; the result is checked below.
        let got = unsafe {
            rustix::mm::mmap_anonymous(
                addr as *mut c_void,
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE | MapFlags::FIXED_NOREPLACE,
            )
        }?;
        let addr_ok = got as u64 == addr;
        let map = Mapping {
            addr: NonNull::new(got.cast::<u8>()).ok_or(Errno::NOMEM)?,
            len,
        };
        if !addr_ok {
            // A kernel without MAP_FIXED_NOREPLACE treats the address as a hint; `map` unmaps on drop.
            return Err(Errno::EXIST);
        }
        Ok(Writable { map })
    }

    /// Maps `len` bytes wherever the kernel likes (the last resort of [`place`]).
    fn map_anywhere(len: usize) -> Result<Writable, Errno> {
        // SAFETY: a fresh private anonymous mapping at an address the kernel picks touches no existing memory.
        let got = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE,
            )
        }?;
        Ok(Writable {
            map: Mapping {
                addr: NonNull::new(got.cast::<u8>()).ok_or(Errno::NOMEM)?,
                len,
            },
        })
    }

    /// The first address.
    pub(crate) fn addr(&self) -> u64 {
        self.map.addr()
    }

    /// The whole mapping as bytes.
    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: the mapping is `len` bytes, readable and writable until `seal` consumes `self`, and the
        // `&mut self` borrow makes this the only reference into it.
        unsafe { std::slice::from_raw_parts_mut(self.map.addr.as_ptr(), self.map.len) }
    }

    /// Gives each `(offset, len, protection)` part its final protection. Parts are page-aligned and cover
    /// the mapping; on failure the mapping is released.
    pub(crate) fn seal(self, parts: &[(usize, usize, Protection)]) -> Result<Mapping, Error> {
        for &(offset, len, prot) in parts {
            if len == 0 || prot == Protection::ReadWrite {
                continue;
            }
            let flags = match prot {
                Protection::ReadExecute => MprotectFlags::READ | MprotectFlags::EXEC,
                Protection::Read | Protection::ReadWrite => MprotectFlags::READ,
            };
            let in_bounds = offset
                .checked_add(len)
                .is_some_and(|end| end <= self.map.len);
            if !in_bounds {
                return Err(Error::Memory {
                    what: "protect a part outside the image",
                    errno: Errno::INVAL,
                });
            }
            // SAFETY: `offset..offset+len` lies inside this mapping (checked above) and is page-aligned by
            // the layout; dropping write permission cannot invalidate any Rust reference because `self` is
            // consumed and `bytes_mut` borrows have ended.
            unsafe {
                rustix::mm::mprotect(
                    self.map.addr.as_ptr().add(offset).cast::<c_void>(),
                    len,
                    flags,
                )
            }
            .map_err(|errno| Error::Memory {
                what: "set the image's protections",
                errno,
            })?;
        }
        Ok(self.map)
    }
}

/// The system page size.
pub(crate) fn page_size() -> u64 {
    rustix::param::page_size() as u64
}

/// Rounds `v` up to a multiple of `align` (a power of two); `None` on overflow.
pub(crate) fn align_up(v: u64, align: u64) -> Option<u64> {
    Some(v.checked_add(align - 1)? & !(align - 1))
}

/// How far a 32-bit PC-relative field reaches, less a margin for addends and the image's own size.
const REACH: u64 = (1 << 31) - (16 << 20);
/// Room left free above `[heap]` so that `brk` can still grow.
const HEAP_ROOM: u64 = 256 << 20;
/// Lowest address considered (above `vm.mmap_min_addr` and the null page region).
const LOWEST: u64 = 1 << 20;
/// Highest user address on x86-64 with 4-level paging.
const HIGHEST: u64 = 0x7fff_ffff_f000;

/// Free gaps of the address space, from `/proc/self/maps`.
fn free_gaps() -> Vec<(u64, u64)> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let mut used: Vec<(u64, u64)> = maps
        .lines()
        .filter_map(|line| {
            let range = line.split_whitespace().next()?;
            let (lo, hi) = range.split_once('-')?;
            let lo = u64::from_str_radix(lo, 16).ok()?;
            let mut hi = u64::from_str_radix(hi, 16).ok()?;
            if line.ends_with("[heap]") {
                hi = hi.saturating_add(HEAP_ROOM);
            }
            Some((lo, hi))
        })
        .collect();
    used.sort_unstable();
    let mut gaps = Vec::new();
    let mut cursor = LOWEST;
    for (lo, hi) in used {
        if lo > cursor {
            gaps.push((cursor, lo));
        }
        cursor = cursor.max(hi);
    }
    if cursor < HIGHEST {
        gaps.push((cursor, HIGHEST));
    }
    gaps
}

/// The address in a free gap closest to `[lo, hi)` from which every byte of a `len`-byte image is within
/// [`REACH`] of every byte of `[lo, hi)`.
fn best_address(gaps: &[(u64, u64)], lo: u64, hi: u64, len: u64, page: u64) -> Option<u64> {
    let window_lo = hi.saturating_sub(REACH);
    let window_hi = lo.checked_add(REACH)?;
    let centre = lo / 2 + hi / 2;
    let mut best: Option<u64> = None;
    for &(g_lo, g_hi) in gaps {
        let first = align_up(g_lo.max(window_lo), page)?;
        let Some(last) = g_hi.min(window_hi).checked_sub(len) else {
            continue;
        };
        let last = last & !(page - 1);
        if first > last {
            continue;
        }
        let want = centre.saturating_sub(len / 2) & !(page - 1);
        let a = want.clamp(first, last);
        if best.is_none_or(|b| a.abs_diff(centre) < b.abs_diff(centre)) {
            best = Some(a);
        }
    }
    best
}

/// Maps a `len`-byte image (page multiple) within reach of each range of `wishes`, tried in order; if none
/// can be met, anywhere (relocations that then do not reach fail with their own error).
pub(crate) fn place(wishes: &[(u64, u64)], len: u64) -> Result<Writable, Error> {
    let page = page_size();
    let size = usize::try_from(len).map_err(|_| Error::Memory {
        what: "map the image",
        errno: Errno::NOMEM,
    })?;
    for &(lo, hi) in wishes {
        // Another thread may take the gap between reading the maps and mapping: try again a few times.
        for _ in 0..8 {
            let Some(addr) = best_address(&free_gaps(), lo, hi, len, page) else {
                break;
            };
            match Writable::map_at(addr, size) {
                Ok(w) => return Ok(w),
                Err(Errno::EXIST) => continue,
                Err(errno) => {
                    return Err(Error::Memory {
                        what: "map the image",
                        errno,
                    })
                }
            }
        }
    }
    Writable::map_anywhere(size).map_err(|errno| Error::Memory {
        what: "map the image",
        errno,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_address_stays_within_reach_and_close() {
        let page = 4096;
        let host = (0x5555_0000_0000, 0x5555_0010_0000);
        let gaps = [
            (0x1000_0000, 0x5554_ff00_0000),
            (0x5555_0020_0000, 0x7000_0000_0000),
        ];
        let a = best_address(&gaps, host.0, host.1, 0x10000, page).unwrap_or(0);
        assert!(a + 0x10000 <= 0x5554_ff00_0000 || a >= 0x5555_0020_0000);
        assert!(a >= host.1 - REACH && a + 0x10000 <= host.0 + REACH);
        assert!(
            a.abs_diff(host.0) < 0x200_0000,
            "placed far from the host: {a:#x}"
        );
        // No gap within reach: nothing.
        assert_eq!(
            best_address(&[(0x1000, 0x2000_0000)], host.0, host.1, 0x1000, page),
            None
        );
    }

    #[test]
    fn mappings_start_writable_and_seal_to_their_protection() {
        let page = page_size() as usize;
        let Ok(mut w) = place(&[], 2 * page as u64) else {
            panic!("cannot map")
        };
        w.bytes_mut()[0] = 0xc3;
        let sealed = w.seal(&[
            (0, page, Protection::ReadExecute),
            (page, page, Protection::ReadWrite),
        ]);
        let m = sealed.unwrap_or_else(|e| panic!("{e}"));
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
        let line = maps
            .lines()
            .find(|l| l.starts_with(&format!("{:x}-", m.addr())))
            .unwrap_or_else(|| panic!("mapping not in /proc/self/maps"));
        assert!(line.contains(" r-xp "), "{line}");
    }
}
