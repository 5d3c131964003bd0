//! Writing a large temporary around the page cache.
//!
//! A snapshot written through the page cache costs a kernel copy of every byte
//! (`copy_folio_from_iter_atomic`: a fifth of a 1 GB save's CPU, and two fifths of a save to
//! S3, whose read-back copy is written too) and then waits in the final fsync for the dirty
//! pages to reach the disk. With `O_DIRECT` the disk reads our page-aligned buffer itself, and
//! the fsync has only the metadata left. The buffer is written in whole 4 KiB blocks; the tail
//! (a snapshot ends with its 32-byte trailer) goes through the page cache once `O_DIRECT` is
//! cleared. A filesystem that refuses `O_DIRECT` (older tmpfs, some FUSE and network ones) gets
//! ordinary writes: same bytes, same fsync, only the copy.

use std::io::{self, Write};

use rustix::fs::{fcntl_getfl, fcntl_setfl, OFlags};

use super::TempFile;
use crate::buf::{AlignedBuf, ALIGN};

const EINVAL: i32 = rustix::io::Errno::INVAL.raw_os_error();

/// Bytes per write: whole blocks, large enough that a synchronous direct write keeps up.
const CHUNK: usize = 2 << 20;

/// A buffered writer into a [`TempFile`] that writes its full buffers with `O_DIRECT`.
pub struct DirectWriter {
    temp: TempFile,
    buf: AlignedBuf,
    filled: usize,
    direct: bool,
}

impl DirectWriter {
    pub fn new(mut temp: TempFile) -> DirectWriter {
        let direct = temp.file().is_some_and(|f| set_direct(f, true).is_ok());
        DirectWriter {
            temp,
            buf: AlignedBuf::new(CHUNK),
            filled: 0,
            direct,
        }
    }

    /// Write the buffer; a direct write the filesystem refuses is made again without.
    fn flush_buf(&mut self) -> io::Result<()> {
        let data = &self.buf[..self.filled];
        let Some(file) = self.temp.file() else {
            return Err(io::Error::other("the temporary file is already committed"));
        };
        if self.direct && data.len() % ALIGN != 0 {
            set_direct(file, false)?;
            self.direct = false;
        }
        let mut done = 0;
        while done < data.len() {
            match file.write(&data[done..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // Refused (or a short direct write left the offset unaligned): the rest goes
                // through the page cache from where the last write ended.
                Err(e) if self.direct && e.raw_os_error() == Some(EINVAL) => {
                    set_direct(file, false)?;
                    self.direct = false;
                }
                Err(e) => return Err(e),
            }
        }
        self.filled = 0;
        Ok(())
    }

    /// Write what is buffered (the tail through the page cache) and give the temporary back.
    pub fn into_inner(mut self) -> io::Result<TempFile> {
        self.flush_buf()?;
        Ok(self.temp)
    }
}

impl Write for DirectWriter {
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
        // Buffered bytes stay until a whole chunk or the end: a flush in between would make
        // the rest of the file unaligned for direct writes.
        Ok(())
    }
}

fn set_direct(file: &std::fs::File, on: bool) -> io::Result<()> {
    let flags = fcntl_getfl(file)?;
    let flags = if on {
        flags | OFlags::DIRECT
    } else {
        flags - OFlags::DIRECT
    };
    fcntl_setfl(file, flags)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every byte lands where it belongs, across whole chunks and a tail of a few bytes, written
    /// in pieces of any size; and the same where the filesystem refuses `O_DIRECT`.
    #[test]
    fn writes_every_byte_in_whole_blocks_and_a_tail() {
        let data: Vec<u8> = (0..(2 * CHUNK + 4096 + 32) as u32)
            .map(|i| (i * 7 % 253) as u8)
            .collect();
        let shm = std::path::Path::new("/dev/shm");
        let dirs = [
            Some(tempfile::tempdir().unwrap()),
            tempfile::tempdir_in(shm).ok(),
        ];
        for dir in dirs.iter().flatten() {
            let dest = dir.path().join("snapshot.db");
            let mut w = DirectWriter::new(TempFile::beside(&dest, 0o600).unwrap());
            for piece in data.chunks(1_000_003) {
                w.write_all(piece).unwrap();
            }
            w.flush().unwrap();
            w.into_inner().unwrap().commit(&dest).unwrap();
            assert!(std::fs::read(&dest).unwrap() == data, "{}", dest.display());
        }
    }
}
