//! What must hold before a restart may change anything: the image's regions clear of what the
//! restarting process keeps, the vDSO and vvar of this kernel laid out as the image's were (the
//! program holds pointers into its vDSO, which is moved, not copied), and the CPU able to load the
//! saved FPU state. Pure: the process's facts come in as arguments.

use uexec_capture::procfs::Mapping;
use uexec_ckpt::{flags, Image};

/// Why an image cannot be restarted here.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// A region `[start, end)` overlaps what the restarting process keeps (urestart itself).
    Overlap { start: u64, end: u64 },
    /// The vDSO or vvar mappings differ in number, names, sizes or placement from this kernel's.
    VdsoLayout,
    /// The saved FPU state uses XSAVE features this CPU or kernel does not enable.
    XFeatures { saved: u64, enabled: u64 },
}

impl core::fmt::Display for Refusal {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Refusal::Overlap { start, end } => write!(
                f,
                "region {start:#x}-{end:#x} would overlap urestart itself"
            ),
            Refusal::VdsoLayout => f.write_str(
                "the image's vDSO and vvar pages are laid out differently from this kernel's (checkpointed under another kernel?)",
            ),
            Refusal::XFeatures { saved, enabled } => write!(
                f,
                "the saved FPU state needs XSAVE features {saved:#x}, this machine enables {enabled:#x}"
            ),
        }
    }
}

/// The vDSO-type mappings of a process, by name (`[vvar]`, `[vvar_vclock]`, `[vdso]`), at most four.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Special<'a> {
    pub entries: [(&'a [u8], u64, u64); 4],
    pub len: usize,
}

impl<'a> Special<'a> {
    pub fn push(&mut self, name: &'a [u8], start: u64, end: u64) -> bool {
        match self.entries.get_mut(self.len) {
            Some(slot) => {
                *slot = (name, start, end);
                self.len += 1;
                true
            }
            None => false,
        }
    }
    pub fn iter(&self) -> impl Iterator<Item = &(&'a [u8], u64, u64)> {
        self.entries.iter().take(self.len)
    }
    /// The lowest start, which relative placements are measured from.
    pub fn low(&self) -> u64 {
        self.iter().map(|e| e.1).min().unwrap_or(0)
    }
}

/// The special mappings in a process's `maps` lines.
pub fn special_of_maps<'a>(maps: impl Iterator<Item = Option<Mapping<'a>>>) -> Option<Special<'a>> {
    let mut s = Special::default();
    for m in maps.flatten() {
        if matches!(m.path, b"[vdso]" | b"[vvar]" | b"[vvar_vclock]")
            && !s.push(m.path, m.start, m.end)
        {
            return None;
        }
    }
    Some(s)
}

/// The special regions an image records.
pub fn special_of_image<'a>(image: &Image<'a>) -> Option<Special<'a>> {
    let mut s = Special::default();
    for r in image.regions() {
        if r.flags & (flags::VDSO | flags::VVAR) != 0 && !s.push(r.path, r.start, r.end) {
            return None;
        }
    }
    Some(s)
}

/// The image's vDSO layout must be this kernel's, shifted: same names, sizes and distances. An image
/// without any (a kernel booted with `vdso=0`) is accepted; the restarted program never used one.
pub fn vdso_layout(saved: &Special<'_>, now: &Special<'_>) -> Result<(), Refusal> {
    if saved.len == 0 {
        return Ok(());
    }
    if saved.len != now.len {
        return Err(Refusal::VdsoLayout);
    }
    let (s0, n0) = (saved.low(), now.low());
    for &(name, start, end) in saved.iter() {
        let matching = now
            .iter()
            .any(|&(n, s, e)| n == name && e - s == end - start && s - n0 == start - s0);
        if !matching {
            return Err(Refusal::VdsoLayout);
        }
    }
    Ok(())
}

/// Every region must lie clear of `keep` (ranges the restarting process keeps).
pub fn clear_of(image: &Image<'_>, keep: &[(u64, u64)]) -> Result<(), Refusal> {
    for r in image.regions() {
        if r.flags & (flags::VDSO | flags::VVAR) != 0 {
            continue;
        }
        if keep.iter().any(|&(lo, hi)| r.start < hi && lo < r.end) {
            return Err(Refusal::Overlap {
                start: r.start,
                end: r.end,
            });
        }
    }
    Ok(())
}

/// The saved FPU state must use only features `enabled` (XCR0) allows.
pub fn xfeatures(image: &Image<'_>, enabled: u64) -> Result<(), Refusal> {
    let saved = uexec_capture::frame::xfeatures(image.registers.xsave);
    if saved & !enabled != 0 {
        return Err(Refusal::XFeatures { saved, enabled });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn special(entries: &[(&'static [u8], u64, u64)]) -> Special<'static> {
        let mut s = Special::default();
        for &(n, a, b) in entries {
            assert!(s.push(n, a, b));
        }
        s
    }

    #[test]
    fn the_vdso_may_move_but_not_change_shape() {
        let saved = special(&[
            (b"[vvar]", 0x7f00_0000_0000, 0x7f00_0000_4000),
            (b"[vvar_vclock]", 0x7f00_0000_4000, 0x7f00_0000_6000),
            (b"[vdso]", 0x7f00_0000_6000, 0x7f00_0000_8000),
        ]);
        let moved = special(&[
            (b"[vvar]", 0x7ffd_0000_0000, 0x7ffd_0000_4000),
            (b"[vvar_vclock]", 0x7ffd_0000_4000, 0x7ffd_0000_6000),
            (b"[vdso]", 0x7ffd_0000_6000, 0x7ffd_0000_8000),
        ]);
        assert_eq!(vdso_layout(&saved, &moved), Ok(()));
        let bigger = special(&[
            (b"[vvar]", 0x7ffd_0000_0000, 0x7ffd_0000_4000),
            (b"[vvar_vclock]", 0x7ffd_0000_4000, 0x7ffd_0000_6000),
            (b"[vdso]", 0x7ffd_0000_6000, 0x7ffd_0000_9000),
        ]);
        assert_eq!(vdso_layout(&saved, &bigger), Err(Refusal::VdsoLayout));
        let fewer = special(&[
            (b"[vvar]", 0x7ffd_0000_0000, 0x7ffd_0000_4000),
            (b"[vdso]", 0x7ffd_0000_6000, 0x7ffd_0000_8000),
        ]);
        assert_eq!(vdso_layout(&saved, &fewer), Err(Refusal::VdsoLayout));
        let swapped = special(&[
            (b"[vdso]", 0x7ffd_0000_0000, 0x7ffd_0000_2000),
            (b"[vvar]", 0x7ffd_0000_2000, 0x7ffd_0000_6000),
            (b"[vvar_vclock]", 0x7ffd_0000_6000, 0x7ffd_0000_8000),
        ]);
        assert_eq!(vdso_layout(&saved, &swapped), Err(Refusal::VdsoLayout));
        assert_eq!(vdso_layout(&Special::default(), &moved), Ok(()));
    }
}
