//! The bbolt file format, read-only (and, for restore, the pieces a writer needs). Written from
//! the format facts in docs/format.md; see each module for the layout it owns.

pub mod check;
pub mod entries;
pub mod freelist;
pub mod meta;
pub mod page;
pub mod reader;
pub mod writer;

pub use check::{Problem, Problems};
pub use entries::{bucket_entries, bucket_sequence, set_bucket, Entry};
pub use meta::{Meta, MetaError};
pub use page::{PageError, PageId, TxId};
pub use reader::{BucketRoot, Db, FileSource, ReadAt, Visitor};

/// Why a bbolt file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BoltError {
    #[error(transparent)]
    Io(std::io::Error),
    #[error("not a bbolt database: {0}")]
    NotBolt(String),
    #[error("meta page {page}: {reason}")]
    Meta { page: u8, reason: MetaError },
    #[error("page {page}: {reason}")]
    Corrupted { page: PageId, reason: PageError },
    #[error("truncated: the database needs {needed} bytes but the file has {size}")]
    Truncated { needed: u64, size: u64 },
    #[error("cannot append key {key}: it does not sort after the bucket's last key")]
    AppendOutOfOrder { key: String },
}
