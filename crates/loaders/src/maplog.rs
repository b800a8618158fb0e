//! The mapping log: one line per mapping made for the program, in the format README.md documents:
//!
//! ```text
//! apager: map 0x000000400000 0x1000 r-- file@0x0 segment[1]
//! apager: map 0x0000004c5000 0x2000 rw- anon bss[4]
//! apager: map 0x7f1c2a3f0000 0x800000 rw- anon stack
//! apager: unmap 0x000000402000 0x1000 --- none hole
//! ```
//!
//! Fields: tool, operation (`map` or `unmap`), start address, size (both hexadecimal), protection as in
//! `/proc/PID/maps`, source (`file@OFFSET` or `anon` or `none`), and role (`reserve`, `segment[N]`,
//! `bss[N]`, `shared[N]`, `hole`, `stack`; N is the program-header index), prefixed with `interp:` for
//! the interpreter's mappings.

use core::fmt::Write;
use uexec_load::{MapEvent, Observer, Role, Source, Who};

use crate::out::FdWriter;

/// Writes one line per mapping to its descriptor.
pub struct MapLog<'fd> {
    tool: &'static str,
    /// For a pager: the pid and program name each line carries (`dpager[PID NAME]:`), since its
    /// program's children are paged too and log to the same place.
    whose: Option<(u32, &'fd [u8])>,
    out: FdWriter<'fd, 512>,
}

impl<'fd> MapLog<'fd> {
    pub const fn new(tool: &'static str, fd: rustix::fd::BorrowedFd<'fd>) -> Self {
        Self {
            tool,
            whose: None,
            out: FdWriter::new(fd),
        }
    }

    /// Lines say `TOOL[PID NAME]:` (NAME: the program's last path component, up to 15 bytes).
    pub fn with_whose(mut self, program: &'fd [u8]) -> Self {
        let base = program.rsplit(|&b| b == b'/').next().unwrap_or(program);
        let pid = rustix::process::getpid()
            .as_raw_nonzero()
            .get()
            .unsigned_abs();
        self.whose = Some((pid, base.get(..base.len().min(15)).unwrap_or(base)));
        self
    }

    pub fn flush(&mut self) {
        self.out.flush();
    }
}

impl Observer for MapLog<'_> {
    fn mapped(&mut self, e: &MapEvent) {
        let op = if e.source == Source::Unmapped {
            "unmap"
        } else {
            "map"
        };
        let _ = match self.whose {
            Some((pid, name)) => {
                write!(self.out, "{}[{pid} {}]", self.tool, crate::out::Lossy(name))
            }
            None => write!(self.out, "{}", self.tool),
        };
        let _ = write!(
            self.out,
            ": {op} {:#014x} {:#x} {} ",
            e.addr,
            e.len,
            e.prot.as_str()
        );
        let _ = match e.source {
            Source::File { offset } => write!(self.out, "file@{offset:#x} "),
            Source::Anonymous => write!(self.out, "anon "),
            Source::Unmapped => write!(self.out, "none "),
        };
        if e.who == Who::Interpreter {
            let _ = write!(self.out, "interp:");
        }
        let _ = match e.role {
            Role::Reserve => writeln!(self.out, "reserve"),
            Role::Segment(i) => writeln!(self.out, "segment[{i}]"),
            Role::Bss(i) => writeln!(self.out, "bss[{i}]"),
            Role::SharedPage(i) => writeln!(self.out, "shared[{i}]"),
            Role::Hole => writeln!(self.out, "hole"),
            Role::Stack => writeln!(self.out, "stack"),
        };
        // A pager's log may be shared with the pagers of the program's children (O_APPEND): one
        // write per line, so that theirs cannot cut one. apager's lines go out when the buffer fills.
        if self.whose.is_some() {
            self.out.flush();
        }
    }
}
