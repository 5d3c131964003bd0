//! Page-aligned byte buffers for bulk reads and writes.
//!
//! The kernel copies page cache into a user buffer (`_copy_to_iter`) several times slower when
//! the buffer starts a few bytes past a cache line, which is where the allocator puts a plain
//! `vec![0u8; 1 << 20]` (its header comes first): on the 2-core AMD EPYC machines CI runs on,
//! reading 1 GB from the page cache took 0.45 s into such a buffer and 0.11 s into an aligned
//! one. Every buffer a snapshot's bytes are read into or written from in bulk is an
//! [`AlignedBuf`]; `house::bulk_buffers_are_aligned` keeps it so.
//!
//! No `unsafe`: the buffer is a window of a slightly larger `Vec` that starts on a
//! [`ALIGN`]-byte boundary. A fresh buffer is zero-filled by `calloc`, so untouched pages cost
//! nothing.

use std::io::{self, BufRead, Read, Write};

/// Where every bulk buffer starts: a page boundary (also a cache-line boundary).
pub const ALIGN: usize = 4096;

/// A zero-initialised byte buffer whose first byte is [`ALIGN`]-aligned.
pub struct AlignedBuf {
    raw: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    pub fn new(len: usize) -> AlignedBuf {
        let raw = vec![0u8; len + ALIGN];
        let start = raw.as_ptr().align_offset(ALIGN);
        AlignedBuf { raw, start, len }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Make it `len` bytes long, keeping the alignment (a larger size reallocates).
    pub fn resize(&mut self, len: usize) {
        if self.start + len > self.raw.len() {
            *self = AlignedBuf::new(len);
        } else {
            self.len = len;
        }
    }
}

impl std::ops::Deref for AlignedBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.raw[self.start..self.start + self.len]
    }
}

impl std::ops::DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.raw[self.start..self.start + self.len]
    }
}

/// `BufReader` with an aligned buffer: what a decoder reads a snapshot file through.
pub struct AlignedReader<R> {
    inner: R,
    buf: AlignedBuf,
    pos: usize,
    filled: usize,
}

impl<R: Read> AlignedReader<R> {
    pub fn with_capacity(capacity: usize, inner: R) -> AlignedReader<R> {
        AlignedReader {
            inner,
            buf: AlignedBuf::new(capacity),
            pos: 0,
            filled: 0,
        }
    }
}

impl<R: Read> Read for AlignedReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        // A read at least as large as the buffer bypasses it, as BufReader's does.
        if self.pos == self.filled && out.len() >= self.buf.len() {
            return self.inner.read(out);
        }
        let n = {
            let available = self.fill_buf()?;
            let n = available.len().min(out.len());
            out[..n].copy_from_slice(&available[..n]);
            n
        };
        self.consume(n);
        Ok(n)
    }
}

impl<R: Read> BufRead for AlignedReader<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos == self.filled {
            self.filled = self.inner.read(&mut self.buf)?;
            self.pos = 0;
        }
        Ok(&self.buf[self.pos..self.filled])
    }

    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.filled);
    }
}

/// `BufWriter` with an aligned buffer: what a snapshot file is written through.
pub struct AlignedWriter<W: Write> {
    inner: W,
    buf: AlignedBuf,
    filled: usize,
}

impl<W: Write> AlignedWriter<W> {
    pub fn with_capacity(capacity: usize, inner: W) -> AlignedWriter<W> {
        AlignedWriter {
            inner,
            buf: AlignedBuf::new(capacity),
            filled: 0,
        }
    }

    fn flush_buf(&mut self) -> io::Result<()> {
        if self.filled > 0 {
            self.inner.write_all(&self.buf[..self.filled])?;
            self.filled = 0;
        }
        Ok(())
    }

    /// Write what is buffered and give the writer back.
    pub fn into_inner(mut self) -> io::Result<W> {
        self.flush_buf()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for AlignedWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.filled == self.buf.len() {
            self.flush_buf()?;
        }
        let n = (self.buf.len() - self.filled).min(data.len());
        self.buf[self.filled..self.filled + n].copy_from_slice(&data[..n]);
        self.filled += n;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flush_buf()?;
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_buffer_starts_on_a_page_boundary() {
        for len in [0, 1, 4095, 4096, 1 << 20, (1 << 20) + 7] {
            let mut b = AlignedBuf::new(len);
            assert_eq!(b.as_ptr() as usize % ALIGN, 0, "{len}");
            assert_eq!(b.len(), len);
            assert!(b.iter().all(|&x| x == 0));
            b.resize(len / 2);
            assert_eq!(b.as_ptr() as usize % ALIGN, 0);
            b.resize(len * 2 + 1);
            assert_eq!(b.as_ptr() as usize % ALIGN, 0);
            assert_eq!(b.len(), len * 2 + 1);
        }
    }

    #[test]
    fn reader_and_writer_pass_every_byte() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 31 % 251) as u8).collect();
        let mut r = AlignedReader::with_capacity(4096, &data[..]);
        let mut back = Vec::new();
        let mut small = [0u8; 1000];
        loop {
            let n = r.read(&mut small).unwrap();
            if n == 0 {
                break;
            }
            back.extend_from_slice(&small[..n]);
        }
        assert_eq!(back, data);
        let mut w = AlignedWriter::with_capacity(4096, Vec::new());
        for chunk in data.chunks(777) {
            w.write_all(chunk).unwrap();
        }
        assert_eq!(w.into_inner().unwrap(), data);
    }
}
