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
//! each key to its lease from the key's own `lease` field at boot. Not done here yet: the
//! compaction marks of the live cluster.

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
    /// The revision the database is at now (the last event's), if there was one.
    pub revision: Option<i64>,
}

/// Apply `records` to the bbolt file at `path` in one commit: the events (in revision order,
/// all after the base's last) appended to the `key` bucket, the lease records to the `lease`
/// bucket; progress records say nothing to the database.
pub fn replay(path: &Path, records: &[Record]) -> Result<Replayed, ReplayError> {
    let events: Vec<Event> = records
        .iter()
        .filter_map(|r| match r {
            Record::Event(e) => Some(e.clone()),
            _ => None,
        })
        .collect();
    let events = events.as_slice();
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
    let leases = leases_after(&mut db, &top, records)?;
    let lease_count = leases.len();
    set_bucket(&mut top, schema::BUCKET_LEASE, w.bucket_value(&leases, 0));
    top.sort_by(|a, b| a.key.cmp(&b.key));
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
        leases: lease_count,
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

/// The `lease` bucket after the lease records: the base's leases, each record applied in order.
fn leases_after<S: crate::bolt::ReadAt>(
    db: &mut Db<S>,
    top: &[Entry],
    records: &[Record],
) -> Result<Vec<Entry>, ReplayError> {
    let mut leases: std::collections::BTreeMap<Vec<u8>, Vec<u8>> = match top
        .iter()
        .find(|e| e.key == schema::BUCKET_LEASE && e.bucket)
    {
        Some(e) => {
            let root = crate::bolt::reader::bucket_root(&e.value).map_err(|reason| {
                BoltError::Corrupted {
                    page: db.meta().root,
                    reason,
                }
            })?;
            bucket_entries(db, &root)?
                .into_iter()
                .map(|e| (e.key, e.value))
                .collect()
        }
        None => Default::default(),
    };
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
    Ok(leases
        .into_iter()
        .map(|(key, value)| Entry {
            key,
            value,
            bucket: false,
        })
        .collect())
}
