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
//! The `lease` bucket follows the lease records in order: a lease record puts the lease (its
//! ID as 8 big-endian bytes, `leasepb.Lease{ID, TTL}`), a lease end removes it; etcd attaches
//! each key to its lease from the key's own `lease` field at boot.
//!
//! A compaction record marks the same compaction in the `meta` bucket (`scheduledCompactRev`
//! and `finishedCompactRev`, raised, never lowered): etcd's `hashkv --rev R` hashes only what
//! is newer than the compaction (and what it keeps), so a restored store answers as the live one
//! did. The older revisions stay in the file; etcd treats them as compacted.

use std::fs::OpenOptions;
use std::path::Path;

use super::segment::{Event, Record};
use crate::bolt::writer::Writer;
use crate::bolt::{bucket_entries, bucket_sequence, set_bucket, BoltError, Db, Entry};
use crate::etcd::schema;
use crate::proto::Message;

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
    /// Leases in the `lease` bucket afterwards.
    pub leases: usize,
    /// Keys last written by these events on a lease the log never saw granted (granted and
    /// gone between two flushes): etcd keeps such a key, attached to nothing.
    pub detached: usize,
    /// The revision the database is at now (the last event's), if there was one.
    pub revision: Option<i64>,
}

/// Apply `records` to the bbolt file at `path` in one commit (see [`Replay`]).
pub fn replay(path: &Path, records: Vec<Record>) -> Result<Replayed, ReplayError> {
    let mut r = Replay::new(path);
    r.apply(records)?;
    Ok(r.finish())
}

/// A replay segment by segment: one commit per [`Replay::apply`], so that memory holds one
/// segment at a time, whatever the length of the log.
pub struct Replay {
    path: std::path::PathBuf,
    /// The last change applied: each next one must come after it.
    last: Option<(i64, u32)>,
    /// The lease of each key whose last change put it on one, for the detached count.
    last_lease: std::collections::HashMap<Vec<u8>, i64>,
    events: usize,
    /// The lease bucket's keys after the last commit.
    leases: Vec<Vec<u8>>,
}

impl Replay {
    pub fn new(path: &Path) -> Replay {
        Replay {
            path: path.to_path_buf(),
            last: None,
            last_lease: Default::default(),
            events: 0,
            leases: Vec::new(),
        }
    }

    /// Apply `records` in one commit: the events (in revision order, after everything applied
    /// so far and after the base's last) appended to the `key` bucket, the lease records to
    /// the `lease` bucket, a compaction to the `meta` bucket's marks; progress records say
    /// nothing to the database.
    pub fn apply(&mut self, records: Vec<Record>) -> Result<(), ReplayError> {
        // The events become key-bucket entries as they are taken; the other records are few.
        let mut added: Vec<Entry> = Vec::new();
        let mut others: Vec<Record> = Vec::new();
        for r in records {
            let Record::Event(e) = r else {
                others.push(r);
                continue;
            };
            check_order(self.last, &e)?;
            self.last = Some((e.main, e.sub));
            let lease = match &e.change {
                super::segment::Change::Put { lease, .. } => *lease,
                super::segment::Change::Delete => 0,
            };
            let (key, value) = e.key_bucket_entry();
            // Only keys on a lease can be detached.
            if lease != 0 {
                self.last_lease.insert(e.key, lease);
            } else if !self.last_lease.is_empty() {
                self.last_lease.remove(&e.key);
            }
            added.push(Entry {
                key,
                value,
                bucket: false,
            });
        }
        self.events += added.len();
        self.leases = commit(&self.path, added, &others)?;
        Ok(())
    }

    pub fn finish(self) -> Replayed {
        Replayed {
            events: self.events,
            leases: self.leases.len(),
            detached: detached(&self.last_lease, &self.leases),
            revision: self.last.map(|(main, _)| main),
        }
    }
}

/// One commit of the base file: `added` appended to the key bucket, `others` applied to the
/// lease and meta buckets. Returns the lease bucket's keys.
fn commit(path: &Path, added: Vec<Entry>, others: &[Record]) -> Result<Vec<Vec<u8>>, ReplayError> {
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
    let mut w = Writer::new(&meta);
    let value = w.append_all(&mut db, &bucket, added, bucket_sequence(&key_bucket))?;
    set_bucket(&mut top, schema::BUCKET_KEY, value);
    let leases = leases_after(&mut db, &top, others)?;
    let keys: Vec<Vec<u8>> = leases.iter().map(|e| e.key.clone()).collect();
    set_bucket(&mut top, schema::BUCKET_LEASE, w.bucket_value(&leases, 0));
    if let Some(meta_bucket) = compacted_meta(&mut db, &top, others)? {
        set_bucket(
            &mut top,
            schema::BUCKET_META,
            w.bucket_value(&meta_bucket, 0),
        );
    }
    top.sort_by(|a, b| a.key.cmp(&b.key));
    let new_root = w.tree(&top);
    drop(db);
    let io = |source| ReplayError::Io {
        path: path.display().to_string(),
        source,
    };
    let file = OpenOptions::new().write(true).open(path).map_err(io)?;
    // The working copy is synced once, whole, when the restore moves it into place.
    w.commit_unsynced(&file, &meta, new_root).map_err(io)?;
    Ok(keys)
}

/// Keys whose last event puts them on a lease (the map holds only those) that is not in
/// `leases`.
fn detached(last_lease: &std::collections::HashMap<Vec<u8>, i64>, leases: &[Vec<u8>]) -> usize {
    last_lease
        .values()
        .filter(|&&l| !leases.iter().any(|k| *k == l.to_be_bytes()))
        .count()
}

/// Revisions strictly ascending by (main, sub).
fn check_order(last: Option<(i64, u32)>, e: &Event) -> Result<(), ReplayError> {
    match last {
        Some((main, sub)) if (main, sub) >= (e.main, e.sub) => Err(ReplayError::OutOfOrder {
            main: e.main,
            sub: e.sub,
            after: main,
            after_sub: sub,
        }),
        _ => Ok(()),
    }
}

type Map = std::collections::BTreeMap<Vec<u8>, Vec<u8>>;

/// The entries of the top-level bucket `name` (none when it is missing).
fn bucket_map<S: crate::bolt::ReadAt>(
    db: &mut Db<S>,
    top: &[Entry],
    name: &[u8],
) -> Result<Map, ReplayError> {
    let Some(e) = top.iter().find(|e| e.key == name && e.bucket) else {
        return Ok(Map::new());
    };
    let root =
        crate::bolt::reader::bucket_root(&e.value).map_err(|reason| BoltError::Corrupted {
            page: db.meta().root,
            reason,
        })?;
    Ok(bucket_entries(db, &root)?
        .into_iter()
        .map(|e| (e.key, e.value))
        .collect())
}

fn entries(map: Map) -> Vec<Entry> {
    map.into_iter()
        .map(|(key, value)| Entry {
            key,
            value,
            bucket: false,
        })
        .collect()
}

/// The `meta` bucket with both compaction marks raised to the last compaction record, when
/// that is above the base's marks; `None` when nothing changes.
fn compacted_meta<S: crate::bolt::ReadAt>(
    db: &mut Db<S>,
    top: &[Entry],
    records: &[Record],
) -> Result<Option<Vec<Entry>>, ReplayError> {
    let Some(compacted) = records
        .iter()
        .filter_map(|r| match r {
            Record::Compacted { revision, .. } => Some(*revision),
            _ => None,
        })
        .max()
    else {
        return Ok(None);
    };
    let mut meta = bucket_map(db, top, schema::BUCKET_META)?;
    let marked = [
        schema::META_SCHEDULED_COMPACT,
        schema::META_FINISHED_COMPACT,
    ]
    .iter()
    .filter_map(|k| meta.get(*k).and_then(|v| schema::Revision::main_of(v)))
    .max()
    .unwrap_or(0);
    if compacted <= marked {
        return Ok(None);
    }
    let mark = schema::Revision {
        main: compacted,
        sub: 0,
        tombstone: false,
    }
    .encode();
    for k in [
        schema::META_SCHEDULED_COMPACT,
        schema::META_FINISHED_COMPACT,
    ] {
        meta.insert(k.to_vec(), mark.clone());
    }
    Ok(Some(entries(meta)))
}

/// The `lease` bucket after the lease records: the base's leases, each record applied in order.
fn leases_after<S: crate::bolt::ReadAt>(
    db: &mut Db<S>,
    top: &[Entry],
    records: &[Record],
) -> Result<Vec<Entry>, ReplayError> {
    let mut leases = bucket_map(db, top, schema::BUCKET_LEASE)?;
    for r in records {
        match r {
            Record::Lease { id, ttl, .. } => {
                let value = Message::new()
                    .uint(1, *id as u64)
                    .uint(2, *ttl as u64)
                    .finish();
                leases.insert(id.to_be_bytes().to_vec(), value);
            }
            Record::LeaseEnd { id, .. } => {
                leases.remove(id.to_be_bytes().as_slice());
            }
            _ => {}
        }
    }
    Ok(entries(leases))
}
