//! The load plan: the page arithmetic of mapping an image's loadable segments, as the kernel's
//! `elf_load` does it, computed once for everyone who needs it. The mapper (`uexec_load::map`) maps
//! exactly these pieces; a demand pager's region table (`uexec_pager`) is built from
//! [`LoadPlan::lazy_pieces`]. Pure: no system calls, no `unsafe`, addresses unbiased.
//!
//! For each segment, in order:
//! - the pages holding file bytes, `[page_down(p_vaddr), page_up(p_vaddr + p_filesz))`, come from the
//!   file at `page_down(p_offset)`; when the segment is writable and has a bss starting inside the last
//!   of them, the rest of that page is zeroed (the kernel's `padzero`, whose failure on a read-only page
//!   `elf_load` ignores: a read-only segment keeps the file's bytes there);
//! - the pages past them up to `page_up(p_vaddr + p_memsz)` are anonymous;
//! - when its first page also holds the end of earlier segments, that page is shared: mapping this
//!   segment replaced their bytes there, so the mapper rebuilds it with every segment's bytes, and a
//!   pager leaves it alone (it is never lazy);
//! - the pages between one segment's last page and the next one's first are a hole, unmapped.

use crate::{page_down, page_up, Image, Prot, MAX_SEGMENTS, PAGE_SIZE};

/// Where a piece's bytes come from.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// The file, from this page-aligned offset; with `zero_from`, the bytes from that address to the
    /// end of the piece read as zero.
    File { offset: u64, zero_from: Option<u64> },
    /// Zero-filled memory.
    Anonymous,
}

/// A page-aligned range of one segment and where its bytes come from.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Piece {
    /// Index of the segment's program header.
    pub segment: u16,
    pub start: u64,
    pub end: u64,
    pub prot: Prot,
    pub source: Source,
}

/// A page where a segment begins that also holds the end of earlier segments.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct SharedPage {
    pub page: u64,
    /// Position in [`Image::segments`] of the segment that begins there (the earlier ones end there).
    pub segment: usize,
}

const NO_PIECE: Piece = Piece {
    segment: 0,
    start: 0,
    end: 0,
    prot: Prot {
        read: false,
        write: false,
        exec: false,
    },
    source: Source::Anonymous,
};

/// Every piece, shared page and hole of a load.
#[derive(Clone, Debug)]
pub struct LoadPlan {
    pieces: [Piece; 2 * MAX_SEGMENTS],
    piece_count: usize,
    shared: [SharedPage; MAX_SEGMENTS],
    shared_count: usize,
    holes: [(u64, u64); MAX_SEGMENTS],
    hole_count: usize,
}

impl LoadPlan {
    /// The plan for `image` (whose segments are validated: sorted, not overlapping, no overflow).
    pub fn of(image: &Image) -> Self {
        let mut plan = Self {
            pieces: [NO_PIECE; 2 * MAX_SEGMENTS],
            piece_count: 0,
            shared: [SharedPage {
                page: 0,
                segment: 0,
            }; MAX_SEGMENTS],
            shared_count: 0,
            holes: [(0, 0); MAX_SEGMENTS],
            hole_count: 0,
        };
        let segments = image.segments();
        for (i, s) in segments.iter().enumerate() {
            let first = page_down(s.vaddr);
            let file_end = s.file_end();
            let mut anon_start = first;
            if s.filesz > 0 {
                let file_pages_end = page_up(file_end).unwrap_or(u64::MAX);
                let pad = s.prot.write && s.memsz > s.filesz && file_end < file_pages_end;
                plan.push_piece(Piece {
                    segment: s.index,
                    start: first,
                    end: file_pages_end,
                    prot: s.prot,
                    source: Source::File {
                        offset: page_down(s.offset),
                        zero_from: pad.then_some(file_end),
                    },
                });
                anon_start = file_pages_end;
            }
            let anon_end = page_up(s.end()).unwrap_or(u64::MAX);
            if anon_end > anon_start {
                plan.push_piece(Piece {
                    segment: s.index,
                    start: anon_start,
                    end: anon_end,
                    prot: s.prot,
                    source: Source::Anonymous,
                });
            }
            let earlier = segments.get(..i).unwrap_or(&[]);
            if earlier.iter().any(|e| e.end() > first) {
                if let Some(slot) = plan.shared.get_mut(plan.shared_count) {
                    *slot = SharedPage {
                        page: first,
                        segment: i,
                    };
                    plan.shared_count += 1;
                }
            }
        }
        for pair in segments.windows(2) {
            if let [before, after] = pair {
                let start = page_up(before.end()).unwrap_or(u64::MAX);
                let end = page_down(after.vaddr);
                if end > start {
                    if let Some(slot) = plan.holes.get_mut(plan.hole_count) {
                        *slot = (start, end);
                        plan.hole_count += 1;
                    }
                }
            }
        }
        plan
    }

    fn push_piece(&mut self, piece: Piece) {
        if let Some(slot) = self.pieces.get_mut(self.piece_count) {
            *slot = piece;
            self.piece_count += 1;
        }
    }

    /// Every piece, in address order.
    pub fn pieces(&self) -> &[Piece] {
        self.pieces.get(..self.piece_count).unwrap_or(&[])
    }

    /// The pieces of the segment with program-header index `segment`.
    pub fn pieces_of(&self, segment: u16) -> impl Iterator<Item = &Piece> {
        self.pieces().iter().filter(move |p| p.segment == segment)
    }

    /// The shared pages, in address order.
    pub fn shared_pages(&self) -> &[SharedPage] {
        self.shared.get(..self.shared_count).unwrap_or(&[])
    }

    /// The holes between segments, in address order.
    pub fn holes(&self) -> &[(u64, u64)] {
        self.holes.get(..self.hole_count).unwrap_or(&[])
    }

    /// The pieces a demand pager may leave inaccessible: every piece without the shared pages it
    /// holds (the mapper rebuilt and protected them: the first page of the later segment and the last
    /// of the earlier ones), file offsets moved along; pieces left empty are left out.
    pub fn lazy_pieces(&self) -> impl Iterator<Item = Piece> + '_ {
        let shared = |page: u64| self.shared_pages().iter().any(|s| s.page == page);
        self.pieces().iter().filter_map(move |p| {
            let skip = if shared(p.start) { PAGE_SIZE } else { 0 };
            let start = p.start + skip;
            let end = if p.end > start && shared(p.end - PAGE_SIZE) {
                p.end - PAGE_SIZE
            } else {
                p.end
            };
            let source = match p.source {
                Source::File { offset, zero_from } => Source::File {
                    offset: offset + skip,
                    zero_from,
                },
                Source::Anonymous => Source::Anonymous,
            };
            (end > start).then_some(Piece {
                start,
                end,
                source,
                ..*p
            })
        })
    }
}
