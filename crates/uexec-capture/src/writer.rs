//! Writes an image file record by record through a fixed buffer, without an allocator: each record's
//! payload is checksummed as it streams past, and its head, whose length is known only at the end, is
//! patched in place (in the buffer, or with `pwrite` once flushed).

use rustix::fd::{AsFd, OwnedFd};
use rustix::io::Errno;
use uexec_ckpt::{pad, record_head, Checksum, RECORD_HEAD_LEN};

pub struct Writer<'b> {
    fd: OwnedFd,
    buf: &'b mut [u8],
    len: usize,
    /// File offset of `buf[0]`.
    flushed: u64,
    record_at: u64,
    tag: u32,
    payload: u64,
    sum: Checksum,
    /// A region record's layout checksum: its payload but the run data ([`Writer::put_data`]).
    layout: Checksum,
    error: Option<Errno>,
}

fn write_all(fd: &OwnedFd, mut bytes: &[u8]) -> Result<(), Errno> {
    while !bytes.is_empty() {
        match rustix::io::write(fd.as_fd(), bytes) {
            Ok(0) => return Err(Errno::NOSPC),
            Ok(n) => bytes = bytes.get(n..).unwrap_or(&[]),
            Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl<'b> Writer<'b> {
    pub fn new(fd: OwnedFd, buf: &'b mut [u8]) -> Self {
        Self {
            fd,
            buf,
            len: 0,
            flushed: 0,
            record_at: 0,
            tag: 0,
            payload: 0,
            sum: Checksum::new(),
            layout: Checksum::new(),
            error: None,
        }
    }

    fn offset(&self) -> u64 {
        self.flushed + self.len as u64
    }

    fn flush(&mut self) {
        if self.error.is_none() {
            if let Err(e) = write_all(&self.fd, self.buf.get(..self.len).unwrap_or(&[])) {
                self.error = Some(e);
            }
        }
        self.flushed += self.len as u64;
        self.len = 0;
    }

    /// Appends bytes outside any checksum (the header, record heads and checksums).
    fn raw(&mut self, mut bytes: &[u8]) {
        if bytes.len() >= self.buf.len() {
            self.flush();
            if self.error.is_none() {
                if let Err(e) = write_all(&self.fd, bytes) {
                    self.error = Some(e);
                }
            }
            self.flushed += bytes.len() as u64;
            return;
        }
        while !bytes.is_empty() {
            let room = self.buf.len() - self.len;
            if room == 0 {
                self.flush();
                continue;
            }
            let n = room.min(bytes.len());
            let (now, rest) = bytes.split_at(n);
            if let Some(dest) = self.buf.get_mut(self.len..self.len + n) {
                dest.copy_from_slice(now);
            }
            self.len += n;
            bytes = rest;
        }
    }

    pub fn header(&mut self, bytes: &[u8]) {
        self.raw(bytes);
    }

    /// Starts a record; its length is filled in by [`Writer::end`].
    pub fn begin(&mut self, tag: u32) {
        self.record_at = self.offset();
        self.tag = tag;
        self.payload = 0;
        self.sum = Checksum::new();
        self.layout = Checksum::new();
        self.raw(&record_head(tag, 0));
    }

    /// Appends payload bytes.
    pub fn put(&mut self, bytes: &[u8]) {
        self.layout.update(bytes);
        self.put_data(bytes);
    }

    /// Appends a region's page data: payload, but not part of its layout checksum.
    pub fn put_data(&mut self, bytes: &[u8]) {
        self.sum.update(bytes);
        self.payload += bytes.len() as u64;
        self.raw(bytes);
    }

    /// Ends a region's payload with its layout checksum (everything put so far but the data).
    pub fn layout_trailer(&mut self) {
        let sum = self.layout.finish();
        self.put_data(&sum.to_le_bytes());
    }

    pub fn u32(&mut self, v: u32) {
        self.put(&v.to_le_bytes());
    }

    pub fn u64(&mut self, v: u64) {
        self.put(&v.to_le_bytes());
    }

    /// Zero bytes up to the next multiple of 8 of the payload (inside it).
    pub fn align8(&mut self) {
        let n = pad(self.payload) as usize;
        self.put(&[0u8; 8][..n]);
    }

    /// Zero payload bytes up to the next page boundary of the file: a run's data starts there.
    pub fn pad_to_page(&mut self) {
        static ZEROS: [u8; 4096] = [0; 4096];
        let n = (4096 - self.offset() % 4096) % 4096;
        self.put(&ZEROS[..n as usize]);
    }

    /// Ends the record: padding, checksum, and its head's length.
    pub fn end(&mut self) {
        let n = pad(self.payload) as usize;
        self.raw(&[0u8; 8][..n]);
        let sum = self.sum.finish();
        self.raw(&sum.to_le_bytes());
        let head = record_head(self.tag, self.payload);
        if self.record_at >= self.flushed {
            let at = (self.record_at - self.flushed) as usize;
            if let Some(dest) = self.buf.get_mut(at..at + RECORD_HEAD_LEN) {
                dest.copy_from_slice(&head);
            }
        } else {
            // Part of the head may still be in the buffer: flush it first, then patch the file.
            self.flush();
            if self.error.is_some() {
                return;
            }
            if let Err(e) = rustix::io::pwrite(self.fd.as_fd(), &head, self.record_at) {
                self.error = Some(e);
            }
        }
    }

    /// Flushes and hands back the descriptor, or the first error.
    pub fn finish(mut self) -> Result<OwnedFd, Errno> {
        self.flush();
        match self.error {
            Some(e) => Err(e),
            None => Ok(self.fd),
        }
    }
}
