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
use crate::buf::{AlignedWriter, ALIGN};

const EINVAL: i32 = rustix::io::Errno::INVAL.raw_os_error();

/// Bytes per write: whole blocks, large enough that a synchronous direct write keeps up.
const CHUNK: usize = 2 << 20;

/// What a save writes its file through: an [`AlignedWriter`] whose full, page-aligned buffers
/// go to the disk with `O_DIRECT`.
pub type DirectWriter = AlignedWriter<DirectFile>;

/// [`DirectWriter`] into `temp`.
pub fn direct_writer(temp: TempFile) -> DirectWriter {
    AlignedWriter::with_capacity(CHUNK, DirectFile::new(temp))
}

/// A [`TempFile`] written with `O_DIRECT` for as long as every write is whole aligned blocks
/// from an aligned buffer: the first write that is not (the tail, or a flush in between), or
/// that the filesystem refuses, turns it off for good, so the file's offset never needs to be
/// aligned again.
pub struct DirectFile {
    temp: TempFile,
    direct: bool,
}

impl DirectFile {
    fn new(mut temp: TempFile) -> DirectFile {
        let direct = temp.file().is_some_and(|f| set_direct(f, true).is_ok());
        DirectFile { temp, direct }
    }

    /// The temporary, to commit.
    pub fn into_temp(self) -> TempFile {
        self.temp
    }
}

impl Write for DirectFile {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let Some(file) = self.temp.file() else {
            return Err(io::Error::other("the temporary file is already committed"));
        };
        let whole = (data.as_ptr() as usize) % ALIGN == 0 && data.len() % ALIGN == 0;
        if self.direct && !whole {
            set_direct(file, false)?;
            self.direct = false;
        }
        match file.write(data) {
            // Refused (or an earlier short direct write left the offset unaligned): the rest
            // goes through the page cache from where the last write ended.
            Err(e) if self.direct && e.raw_os_error() == Some(EINVAL) => {
                set_direct(file, false)?;
                self.direct = false;
                file.write(data)
            }
            r => r,
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.temp.flush()
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
            let mut w = direct_writer(TempFile::beside(&dest, 0o600).unwrap());
            for piece in data.chunks(1_000_003) {
                w.write_all(piece).unwrap();
            }
            w.flush().unwrap();
            w.into_inner().unwrap().into_temp().commit(&dest).unwrap();
            assert!(std::fs::read(&dest).unwrap() == data, "{}", dest.display());
        }
    }
}
