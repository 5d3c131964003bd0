//! etcd's backend schema inside a bbolt file: bucket names, revision keys, meta keys, members;
//! the membership a restore creates; the `snapshot status` walk; and the database edits of a
//! restore.

pub mod k8s;
pub mod keyspace;
pub mod restore;
pub mod restore_membership;
pub mod schema;
pub mod status;
pub mod stored_members;

use crate::bolt::{BoltError, PageError, Problems};

/// Why a snapshot could not be read as an etcd database.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error(transparent)]
    Bolt(#[from] BoltError),
    #[error("integrity check failed, {} found: {problems}", plural(problems.len(), "problem"))]
    Integrity { problems: Problems },
    #[error("reading for the sha256 check: {0}")]
    Trailer(std::io::Error),
    #[error("the sha256 check stopped unexpectedly")]
    HashThread,
    #[error("counting the live keys stopped unexpectedly")]
    LiveKeyThread,
    #[error("cannot get hash of bucket {0}: the root holds a plain key")]
    PlainKeyInRoot(String),
    #[error("key bucket: key {0} is not a revision")]
    NotARevision(String),
    #[error("key bucket: value at revision {0} is not a KeyValue")]
    NotAKeyValue(i64),
    #[error("{bucket} bucket: {reason}")]
    Bucket {
        bucket: &'static str,
        reason: PageError,
    },
    #[error("members bucket, key {key}: member JSON: {reason}")]
    Member { key: String, reason: String },
}

pub(crate) fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}
