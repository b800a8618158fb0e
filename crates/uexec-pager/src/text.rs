//! Numbers and log lines formatted into fixed buffers, for code that may not use `core::fmt`.
//!
//! (`core::fmt` can panic and is large; the fault handler above all must not use it.)

/// A fixed-capacity byte buffer; writes past the end are dropped.
pub struct Line<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> Line<N> {
    pub const fn new() -> Self {
        Self {
            buf: [0; N],
            len: 0,
        }
    }

    pub fn bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }

    pub fn push(&mut self, bytes: &[u8]) -> &mut Self {
        for &b in bytes {
            if let Some(slot) = self.buf.get_mut(self.len) {
                *slot = b;
                self.len += 1;
            }
        }
        self
    }

    /// `0x` and the hexadecimal digits of `value`, zero-padded to at least `width` digits.
    pub fn hex(&mut self, value: u64, width: usize) -> &mut Self {
        let mut digits = [0u8; 16];
        let mut n = 0;
        let mut v = value;
        loop {
            if let Some(d) = digits.get_mut(n) {
                *d = b"0123456789abcdef"
                    .get((v & 15) as usize)
                    .copied()
                    .unwrap_or(b'?');
            }
            n += 1;
            v >>= 4;
            if v == 0 && n >= width.min(16) {
                break;
            }
        }
        self.push(b"0x");
        while n > 0 {
            n -= 1;
            let d = digits.get(n).copied().unwrap_or(b'?');
            self.push(&[d]);
        }
        self
    }

    /// The decimal digits of `value`.
    pub fn dec(&mut self, value: u64) -> &mut Self {
        let mut digits = [0u8; 20];
        let mut n = 0;
        let mut v = value;
        loop {
            if let Some(d) = digits.get_mut(n) {
                *d = b'0' + (v % 10) as u8;
            }
            n += 1;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        while n > 0 {
            n -= 1;
            let d = digits.get(n).copied().unwrap_or(b'?');
            self.push(&[d]);
        }
        self
    }

    /// Writes the line to `fd` with raw `write`s, ignoring errors.
    pub fn write_to(&self, fd: i32) {
        // SAFETY: the descriptor is only borrowed for these writes; if the program closed it, the write
        // fails harmlessly.
        let fd = unsafe { rustix::fd::BorrowedFd::borrow_raw(fd) };
        let mut rest = self.bytes();
        while !rest.is_empty() {
            match rustix::io::write(fd, rest) {
                Ok(n) if n > 0 => rest = rest.get(n..).unwrap_or(&[]),
                Err(rustix::io::Errno::INTR) => {}
                _ => break,
            }
        }
    }
}

impl<const N: usize> Default for Line<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// The `/proc/PID/maps` notation of `PROT_*` bits.
pub fn prot_str(prot: u32) -> &'static [u8] {
    match prot & 7 {
        0 => b"---",
        1 => b"r--",
        2 => b"-w-",
        3 => b"rw-",
        4 => b"--x",
        5 => b"r-x",
        6 => b"-wx",
        _ => b"rwx",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_the_mapping_log() {
        let mut line = Line::<64>::new();
        line.hex(0x4a8000, 12)
            .push(b" ")
            .hex(0x1000, 0)
            .push(b" ")
            .dec(0)
            .push(b" ")
            .dec(1234567);
        assert_eq!(line.bytes(), b"0x0000004a8000 0x1000 0 1234567");
        let mut short = Line::<4>::new();
        short.push(b"abcdef");
        assert_eq!(short.bytes(), b"abcd");
        assert_eq!(prot_str(5), b"r-x");
    }
}
