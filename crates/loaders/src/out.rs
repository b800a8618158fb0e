//! Output without an allocator: a fixed buffer that `core::fmt` writes into and that is flushed to a file
//! descriptor with raw `write`s.

use core::fmt;
use rustix::fd::BorrowedFd;

/// A buffered writer to a file descriptor. Lines longer than the buffer are written in pieces.
pub struct FdWriter<'fd, const N: usize> {
    fd: BorrowedFd<'fd>,
    buf: [u8; N],
    len: usize,
}

impl<'fd, const N: usize> FdWriter<'fd, N> {
    pub const fn new(fd: BorrowedFd<'fd>) -> Self {
        Self {
            fd,
            buf: [0; N],
            len: 0,
        }
    }

    /// Writes out everything buffered. Errors are ignored: there is nowhere left to report them.
    pub fn flush(&mut self) {
        let mut start = 0;
        while let Some(rest) = self.buf.get(start..self.len) {
            if rest.is_empty() {
                break;
            }
            match rustix::io::write(self.fd, rest) {
                Ok(0) => break,
                Ok(n) => start += n,
                Err(rustix::io::Errno::INTR) => {}
                Err(_) => break,
            }
        }
        self.len = 0;
    }
}

impl<const N: usize> fmt::Write for FdWriter<'_, N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut bytes = s.as_bytes();
        while !bytes.is_empty() {
            if self.len == N {
                self.flush();
            }
            let room = N - self.len;
            let take = room.min(bytes.len());
            let (now, later) = bytes.split_at(take);
            if let Some(dest) = self.buf.get_mut(self.len..self.len + take) {
                dest.copy_from_slice(now);
            }
            self.len += take;
            bytes = later;
        }
        Ok(())
    }
}

/// Shows bytes (a path, an argument) as text, replacing what is not UTF-8.
pub struct Lossy<'a>(pub &'a [u8]);

impl fmt::Display for Lossy<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            f.write_str(chunk.valid())?;
            if !chunk.invalid().is_empty() {
                f.write_str("\u{fffd}")?;
            }
        }
        Ok(())
    }
}

/// Writes `tool: what: message` and a newline to standard error.
pub fn error_line(tool: &str, what: &[u8], message: impl fmt::Display) {
    use fmt::Write;
    // SAFETY: fd 2 is borrowed only for these writes.
    let mut err = FdWriter::<512>::new(unsafe { rustix::stdio::stderr() });
    let _ = if what.is_empty() {
        writeln!(err, "{tool}: {message}")
    } else {
        writeln!(err, "{tool}: {}: {message}", Lossy(what))
    };
    err.flush();
}
