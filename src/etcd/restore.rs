//! The database half of a restore, as etcdutl 3.5 does it (etcd-io/etcd
//! etcdutl/snapshot/v3_snapshot.go `saveDB`, server/storage/schema `UnsafeCreateMetaBucket`,
//! membership `mustSaveMemberToBackend`), but verified while copying:
//!
//! 1. [`copy_verified`]: copy the database (without its trailer) while hashing it on one
//!    thread and writing on another, and run the `snapshot status` walk (integrity check,
//!    revision, whether it holds Kubernetes data) on the input at the same time.
//! 2. [`edit_db`]: a copy-on-write commit on the copy: `members` = the new membership,
//!    `members_removed` emptied, `meta/consistent_index` = N and `meta/term` = 1, and with a
//!    bump a marker revision `last + B` in `key` plus `meta/scheduledCompactRev` (etcd 3.6's
//!    `--bump-revision --mark-compacted`).
//!
//! The WAL and `.snap` are `wal/` and `snap/`; the directory handling is the command's.

use std::fs::OpenOptions;
use std::io::{self, Write};

use crate::buf::AlignedBuf;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::schema::{self, Revision};
use super::status::{self, Checks, SnapshotStatus, TRAILER_LEN};
use super::stored_members::{member_json, Membership};
use super::SnapshotError;
use crate::bolt::reader::bucket_root;
use crate::bolt::writer::Writer;
use crate::bolt::{bucket_entries, bucket_sequence as sequence, set_bucket, Entry};
use crate::bolt::{BoltError, Db, FileSource, ReadAt};
use crate::units::hex_id;

const COPY_CHUNK: usize = 1 << 20;
/// Buffers that go round between the reading (hashing) thread and the writing one.
const COPY_BUFFERS: usize = 4;

/// Why the database of a restore could not be built.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("reading the snapshot: {0}")]
    Read(io::Error),
    #[error(
        "fails verification: its sha256 trailer does not match the database (nothing was restored)"
    )]
    TrailerMismatch,
    #[error("the {0} thread stopped unexpectedly")]
    Thread(&'static str),
}

impl From<BoltError> for RestoreError {
    fn from(e: BoltError) -> RestoreError {
        RestoreError::Snapshot(SnapshotError::Bolt(e))
    }
}

fn io_at<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> RestoreError + 'a {
    move |source| RestoreError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// Copy the first `db_len` bytes of `src` (the database without its trailer) to a new file
/// `dest`, verifying the sha256 trailer when `verify`, while the status walk checks the input.
/// Nothing is cleaned up here: `dest` lives in the caller's temporary directory.
/// `copied` is told the bytes copied so far, every MiB (a progress line on a terminal).
pub fn copy_verified(
    src: &FileSource,
    dest: &Path,
    db_len: u64,
    verify: bool,
    copied: &(dyn Fn(u64) + Sync),
) -> Result<SnapshotStatus, RestoreError> {
    let checks = Checks {
        integrity: true,
        hash: false,
        user_keys: false,
    };
    let (copied, status) = std::thread::scope(|scope| {
        let copy = scope.spawn(|| copy_hashing(src, dest, db_len, verify, copied));
        let status = status::status(src, checks);
        let copied = copy.join().unwrap_or(Err(RestoreError::Thread("copy")));
        (copied, status)
    });
    let status = status?;
    if let Some(digest) = copied? {
        let mut expected = [0u8; TRAILER_LEN as usize];
        src.read_exact_at(&mut expected, db_len)
            .map_err(RestoreError::Read)?;
        if digest != expected {
            return Err(RestoreError::TrailerMismatch);
        }
    }
    Ok(status)
}

/// Copy `db_len` bytes of `src` to `dest`, hashing them when `verify`. Reading and hashing run
/// on this thread while another writes, so SHA-256 overlaps the disk instead of adding to it.
/// The data is made durable by the commit that follows (its first fsync covers the file).
fn copy_hashing(
    src: &FileSource,
    dest: &Path,
    db_len: u64,
    verify: bool,
    copied: &(dyn Fn(u64) + Sync),
) -> Result<Option<[u8; 32]>, RestoreError> {
    use std::sync::mpsc::sync_channel;
    let mut out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dest)
        .map_err(io_at("creating", dest))?;
    let (full_tx, full_rx) = sync_channel::<(AlignedBuf, usize)>(COPY_BUFFERS);
    let (empty_tx, empty_rx) = sync_channel::<AlignedBuf>(COPY_BUFFERS);
    for _ in 0..COPY_BUFFERS {
        let _ = empty_tx.send(AlignedBuf::new(COPY_CHUNK));
    }
    std::thread::scope(|scope| {
        let writer = scope.spawn(move || -> Result<(), RestoreError> {
            for (buf, n) in full_rx {
                out.write_all(&buf[..n]).map_err(io_at("writing", dest))?;
                // The reader may be gone after an error; nothing to return the buffer to then.
                let _ = empty_tx.send(buf);
            }
            Ok(())
        });
        let mut hasher = verify.then(Sha256::new);
        let mut pos = 0u64;
        let read = (|| -> Result<(), RestoreError> {
            while pos < db_len {
                let Ok(mut buf) = empty_rx.recv() else {
                    // The writer stopped: its error is reported below.
                    return Ok(());
                };
                let n = (db_len - pos).min(COPY_CHUNK as u64) as usize;
                src.read_exact_at(&mut buf[..n], pos)
                    .map_err(RestoreError::Read)?;
                if let Some(h) = hasher.as_mut() {
                    h.update(&buf[..n]);
                }
                if full_tx.send((buf, n)).is_err() {
                    return Ok(());
                }
                pos += n as u64;
                copied(pos);
            }
            Ok(())
        })();
        drop(full_tx);
        let written = writer.join().unwrap_or(Err(RestoreError::Thread("writer")));
        read?;
        written?;
        Ok(hasher.map(|h| h.finalize().into()))
    })
}

/// Apply etcd 3.5's restore edits (and the optional revision bump) to the database at `path`.
/// Returns the bumped revision, if any.
pub fn edit_db(
    path: &Path,
    m: &Membership,
    status: &SnapshotStatus,
    bump: Option<u64>,
) -> Result<Option<i64>, RestoreError> {
    let mut db = Db::open_file(path)?;
    let meta = *db.meta();
    let root = db.root();
    let mut top = bucket_entries(&mut db, &root)?;
    let mut w = Writer::new(&meta);

    let mut meta_entries = existing(&mut db, &top, schema::BUCKET_META, "meta")?;
    put(
        &mut meta_entries,
        schema::META_CONSISTENT_INDEX,
        &(m.members.len() as u64).to_be_bytes(),
    );
    put(&mut meta_entries, schema::META_TERM, &1u64.to_be_bytes());
    let bumped = bump.map(|b| {
        status
            .revision
            .saturating_add(i64::try_from(b).unwrap_or(i64::MAX))
    });
    if let Some(rev) = bumped {
        let key_bucket = append_marker(&mut db, &mut w, &top, rev)?;
        set_bucket(&mut top, schema::BUCKET_KEY, key_bucket);
        let marker = marker_key(rev);
        put(&mut meta_entries, schema::META_SCHEDULED_COMPACT, &marker);
    }
    set_bucket(
        &mut top,
        schema::BUCKET_MEMBERS,
        w.bucket_value(&member_entries(m), 0),
    );
    set_bucket(
        &mut top,
        schema::BUCKET_MEMBERS_REMOVED,
        w.bucket_value(&[], 0),
    );
    set_bucket(
        &mut top,
        schema::BUCKET_META,
        w.bucket_value(&meta_entries, 0),
    );
    if !top.iter().any(|e| e.key == schema::BUCKET_CLUSTER) {
        set_bucket(&mut top, schema::BUCKET_CLUSTER, w.bucket_value(&[], 0));
    }
    top.sort_by(|a, b| a.key.cmp(&b.key));
    let new_root = w.tree(&top);
    drop(db);
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_at("opening", path))?;
    w.commit(&file, &meta, new_root)
        .map_err(io_at("writing", path))?;
    Ok(bumped)
}

/// The `members` bucket of the new membership: hex ID → member JSON, in key order.
fn member_entries(m: &Membership) -> Vec<Entry> {
    let mut entries: Vec<Entry> = m
        .members
        .iter()
        .map(|x| Entry {
            key: hex_id(x.id).into_bytes(),
            value: member_json(x).into_bytes(),
            bucket: false,
        })
        .collect();
    entries.sort_by(|a, b| a.key.cmp(&b.key));
    entries
}

fn marker_key(rev: i64) -> Vec<u8> {
    Revision {
        main: rev,
        sub: 0,
        tombstone: false,
    }
    .encode()
}

/// The `key` bucket with the bump's empty marker revision appended (only its rightmost path
/// is rewritten).
fn append_marker<S: ReadAt>(
    db: &mut Db<S>,
    w: &mut Writer,
    top: &[Entry],
    rev: i64,
) -> Result<Vec<u8>, RestoreError> {
    let entry = Entry {
        key: marker_key(rev),
        value: Vec::new(),
        bucket: false,
    };
    Ok(match top.iter().find(|e| e.key == schema::BUCKET_KEY) {
        Some(e) => {
            let r = bucket_root(&e.value).map_err(|reason| SnapshotError::Bucket {
                bucket: "key",
                reason,
            })?;
            w.append(db, &r, entry, sequence(&e.value))?
        }
        None => w.bucket_value(&[entry], 0),
    })
}

/// The entries of top-level bucket `name` (empty when it does not exist).
fn existing<S: ReadAt>(
    db: &mut Db<S>,
    top: &[Entry],
    name: &[u8],
    label: &'static str,
) -> Result<Vec<Entry>, RestoreError> {
    match top.iter().find(|e| e.key == name) {
        Some(e) => {
            let r = bucket_root(&e.value).map_err(|reason| SnapshotError::Bucket {
                bucket: label,
                reason,
            })?;
            Ok(bucket_entries(db, &r)?)
        }
        None => Ok(Vec::new()),
    }
}

/// Insert or replace `key` in sorted entries.
fn put(entries: &mut Vec<Entry>, key: &[u8], value: &[u8]) {
    match entries.binary_search_by(|e| e.key.as_slice().cmp(key)) {
        Ok(i) => entries[i].value = value.to_vec(),
        Err(i) => entries.insert(
            i,
            Entry {
                key: key.to_vec(),
                value: value.to_vec(),
                bucket: false,
            },
        ),
    }
}
