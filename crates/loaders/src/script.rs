//! `#!` scripts as PROG, run as the kernel's `binfmt_script` runs them: the first line names an
//! interpreter and at most one argument; the interpreter is loaded instead (through the same loader,
//! so a pager pages it), with `argv` = interpreter, argument (if any), the script's path, then the
//! script's own arguments; `AT_EXECFN` and the process name stay the script's. An interpreter that is
//! itself a script is followed the same way, up to the kernel's depth (`exec_binprm`: 5 levels).
//!
//! The line is read from the first 256 bytes (`BINPRM_BUF_SIZE`): after `#!` and blanks, the
//! interpreter ends at a blank, a newline or the end of the buffer; the argument is the rest of the
//! line, without its leading and trailing blanks, kept whole (spaces included).

use core::ffi::CStr;

use rustix::fs::{Mode, OFlags};

/// `BINPRM_BUF_SIZE`.
pub const LINE: usize = 256;
/// Most `#!` levels before `ELOOP`.
pub const MAX_DEPTH: usize = 5;

/// One `#!` line, split into NUL-terminated pieces inside its own buffer.
pub struct Line {
    buf: [u8; LINE + 2],
    name: (usize, usize),
    arg: Option<(usize, usize)>,
}

impl Line {
    pub const fn empty() -> Self {
        Self {
            buf: [0; LINE + 2],
            name: (0, 0),
            arg: None,
        }
    }

    pub fn name(&self) -> &CStr {
        self.piece(self.name)
    }

    pub fn arg(&self) -> Option<&CStr> {
        self.arg.map(|r| self.piece(r))
    }

    fn piece(&self, (start, end): (usize, usize)) -> &CStr {
        self.buf
            .get(start..=end)
            .and_then(|b| CStr::from_bytes_with_nul(b).ok())
            .unwrap_or(c"")
    }
}

/// Why a script cannot be run.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ScriptError {
    /// `#!` with no interpreter name.
    NoInterpreter,
    /// More than [`MAX_DEPTH`] levels.
    TooDeep,
}

fn blank(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

/// Parses the first bytes of a file into `line`: `Ok(false)` if they do not start with `#!`.
pub fn parse(head: &[u8], line: &mut Line) -> Result<bool, ScriptError> {
    let Some(rest) = head.strip_prefix(b"#!") else {
        return Ok(false);
    };
    let rest = rest.get(..rest.len().min(LINE - 2)).unwrap_or(rest);
    let text_end = rest
        .iter()
        .position(|&c| c == b'\n' || c == 0)
        .unwrap_or(rest.len());
    let text = rest.get(..text_end).unwrap_or(&[]);
    let name_start = text.iter().position(|&c| !blank(c)).unwrap_or(text.len());
    let name_len = text
        .get(name_start..)
        .unwrap_or(&[])
        .iter()
        .position(|&c| blank(c))
        .unwrap_or(text.len() - name_start);
    if name_len == 0 {
        return Err(ScriptError::NoInterpreter);
    }
    let after = &text[name_start + name_len..];
    let arg = {
        let from = after.iter().position(|&c| !blank(c));
        let to = after.iter().rposition(|&c| !blank(c));
        match (from, to) {
            (Some(f), Some(t)) => Some(&after[f..=t]),
            _ => None,
        }
    };
    // buf: NAME \0 ARG \0
    line.buf = [0; LINE + 2];
    let name = &text[name_start..name_start + name_len];
    line.buf[..name.len()].copy_from_slice(name);
    line.name = (0, name.len());
    line.arg = arg.map(|a| {
        let start = name.len() + 1;
        line.buf[start..start + a.len()].copy_from_slice(a);
        (start, start + a.len())
    });
    Ok(true)
}

/// Reads the first [`LINE`] bytes of `path` (nothing if it cannot be opened: the loader then reports
/// the problem as for any program).
pub fn head(path: &CStr, buf: &mut [u8; LINE]) -> usize {
    let Ok(fd) = rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()) else {
        return 0;
    };
    let mut got = 0;
    while let Some(rest) = buf.get_mut(got..).filter(|r| !r.is_empty()) {
        match rustix::io::read(&fd, rest) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    got
}

/// The `#!` lines from `path` on: `lines[..n]`, outermost first; the program to load is the last
/// line's interpreter (or `path` itself when `n` is 0).
pub fn follow(path: &CStr, lines: &mut [Line; MAX_DEPTH]) -> Result<usize, (ScriptError, usize)> {
    let mut n: usize = 0;
    let mut buf = [0u8; LINE];
    loop {
        let current = match n.checked_sub(1).and_then(|i| lines.get(i)) {
            Some(line) => line.name(),
            None => path,
        };
        let got = head(current, &mut buf);
        let mut next = Line::empty();
        match parse(buf.get(..got).unwrap_or(&[]), &mut next) {
            Ok(false) => return Ok(n),
            Ok(true) => {}
            Err(e) => return Err((e, n)),
        }
        let Some(slot) = lines.get_mut(n) else {
            return Err((ScriptError::TooDeep, n));
        };
        *slot = next;
        n += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(head: &[u8]) -> Option<(std::string::String, Option<std::string::String>)> {
        let mut line = Line::empty();
        match parse(head, &mut line) {
            Ok(true) => Some((
                line.name().to_str().unwrap().into(),
                line.arg().map(|a| a.to_str().unwrap().into()),
            )),
            _ => None,
        }
    }

    #[test]
    fn interpreter_and_one_whole_argument() {
        assert_eq!(parsed(b"#!/bin/sh\necho"), Some(("/bin/sh".into(), None)));
        assert_eq!(
            parsed(b"#! /usr/bin/env  python3 -u \nx"),
            Some(("/usr/bin/env".into(), Some("python3 -u".into())))
        );
        assert_eq!(
            parsed(b"#!/bin/busybox\tsh\t\n"),
            Some(("/bin/busybox".into(), Some("sh".into())))
        );
        assert_eq!(parsed(b"#!/bin/sh"), Some(("/bin/sh".into(), None)));
        assert_eq!(parsed(b"\x7fELF"), None);
        let mut line = Line::empty();
        assert_eq!(
            parse(b"#!   \n", &mut line),
            Err(ScriptError::NoInterpreter)
        );
        assert_eq!(parse(b"#!\n", &mut line), Err(ScriptError::NoInterpreter));
        // A line longer than the buffer: the interpreter and what fits of the argument.
        let mut long = b"#!/bin/sh ".to_vec();
        long.resize(400, b'x');
        let (name, arg) = parsed(&long[..LINE]).unwrap();
        assert_eq!(name, "/bin/sh");
        assert_eq!(arg.unwrap().len(), LINE - 2 - 8);
    }
}
