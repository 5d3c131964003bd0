//! Replaying the revision log offline: a base snapshot's bbolt file and the events after it
//! become the database etcd had at the last event's revision, written by our own bbolt writer
//! (no etcd runs, no gRPC, no transaction per revision).
//!
//! The `key` bucket is keyed by revision, and every event's revision is after the base's, so
//! the events are appended at the end of the bucket, each as etcd wrote it
//! ([`Event::key_bucket_entry`]): one copy-on-write commit of the bucket's rightmost path.
//! Nothing else changes (etcd takes the current revision from the last key at boot); the data
//! dir is then written by `snapshot restore`, which sets the consistent index and term.
//!
//! Not done here yet: the `lease` bucket (grants and revocations from lease records) and the
//! compaction marks of the live cluster.

use std::fs::OpenOptions;
use std::path::Path;

use super::segment::Event;
use crate::bolt::writer::Writer;
use crate::bolt::{bucket_entries, bucket_sequence, set_bucket, BoltError, Db, Entry};
use crate::etcd::schema;

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Bolt(#[from] BoltError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("the base has no `key` bucket: not an etcd snapshot")]
    NoKeyBucket,
    #[error("event at revision {main}/{sub} does not come after revision {after}/{after_sub}: the events are out of order or overlap the base")]
    OutOfOrder {
        main: i64,
        sub: u32,
        after: i64,
        after_sub: u32,
    },
}

/// What a replay did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replayed {
    pub events: usize,
    /// The revision the database is at now (the last event's), if there was one.
    pub revision: Option<i64>,
}

/// Append `events` (in revision order, all after the base's last) to the `key` bucket of the
/// bbolt file at `path`, in one commit.
pub fn replay(path: &Path, events: &[Event]) -> Result<Replayed, ReplayError> {
    check_order(events)?;
    let mut db = Db::open_file(path)?;
    let meta = *db.meta();
    let root = db.root();
    let mut top = bucket_entries(&mut db, &root)?;
    let key_bucket = top
        .iter()
        .find(|e| e.key == schema::BUCKET_KEY && e.bucket)
        .ok_or(ReplayError::NoKeyBucket)?
        .value
        .clone();
    let bucket =
        crate::bolt::reader::bucket_root(&key_bucket).map_err(|reason| BoltError::Corrupted {
            page: meta.root,
            reason,
        })?;
    let added: Vec<Entry> = events
        .iter()
        .map(|e| {
            let (key, value) = e.key_bucket_entry();
            Entry {
                key,
                value,
                bucket: false,
            }
        })
        .collect();
    let mut w = Writer::new(&meta);
    let value = w.append_all(&mut db, &bucket, added, bucket_sequence(&key_bucket))?;
    set_bucket(&mut top, schema::BUCKET_KEY, value);
    let new_root = w.tree(&top);
    drop(db);
    let io = |source| ReplayError::Io {
        path: path.display().to_string(),
        source,
    };
    let file = OpenOptions::new().write(true).open(path).map_err(io)?;
    w.commit(&file, &meta, new_root).map_err(io)?;
    Ok(Replayed {
        events: events.len(),
        revision: events.last().map(|e| e.main),
    })
}

/// Revisions strictly ascending by (main, sub).
fn check_order(events: &[Event]) -> Result<(), ReplayError> {
    match events
        .windows(2)
        .find(|w| (w[0].main, w[0].sub) >= (w[1].main, w[1].sub))
    {
        Some(w) => Err(ReplayError::OutOfOrder {
            main: w[1].main,
            sub: w[1].sub,
            after: w[0].main,
            after_sub: w[0].sub,
        }),
        None => Ok(()),
    }
}
