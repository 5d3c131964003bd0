//! The entries of one bucket, read whole: the small buckets restore edits (`members`, `meta`,
//! the root bucket) and what the writer rewrites. Bounded as every walk is (depth, each page
//! reached once).

use super::page::{NodePage, PageError, PageId};
use super::reader::{BucketRoot, Db, ReadAt, MAX_DEPTH};
use super::BoltError;

/// One key/value of a bucket (a nested bucket when `bucket` is set: `value` is its header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub bucket: bool,
}

pub(super) fn corrupt(page: PageId, reason: PageError) -> BoltError {
    BoltError::Corrupted { page, reason }
}

pub(super) fn leaf_entries_of(page: &NodePage<'_>, id: PageId) -> Result<Vec<Entry>, BoltError> {
    (0..page.count())
        .map(|i| {
            let e = page.leaf(i).map_err(|r| corrupt(id, r))?;
            Ok(Entry {
                key: e.key.to_vec(),
                value: e.value.to_vec(),
                bucket: e.is_bucket(),
            })
        })
        .collect()
}

/// Every entry of one bucket, in key order, without descending into nested buckets. For the
/// small buckets restore edits (and the root bucket).
pub fn bucket_entries<S: ReadAt>(
    db: &mut Db<S>,
    root: &BucketRoot,
) -> Result<Vec<Entry>, BoltError> {
    match root {
        BucketRoot::Inline(image) => {
            let page = NodePage::new(image)
                .map_err(|r| corrupt(PageId(0), PageError::InlineBucket(Box::new(r))))?;
            leaf_entries_of(&page, PageId(0))
        }
        BucketRoot::Page(id) => {
            let mut out = Vec::new();
            let mut visited = std::collections::BTreeSet::new();
            collect(db, *id, 0, &mut visited, &mut out)?;
            Ok(out)
        }
    }
}

fn collect<S: ReadAt>(
    db: &mut Db<S>,
    id: PageId,
    depth: usize,
    visited: &mut std::collections::BTreeSet<PageId>,
    out: &mut Vec<Entry>,
) -> Result<(), BoltError> {
    if depth > MAX_DEPTH {
        return Err(corrupt(id, PageError::TooDeep(MAX_DEPTH)));
    }
    if !visited.insert(id) {
        return Err(corrupt(id, PageError::ReachedTwice));
    }
    let bytes = db.page(id)?;
    let page = NodePage::new(bytes.bytes()).map_err(|r| corrupt(id, r))?;
    if page.header.is_leaf() {
        out.extend(leaf_entries_of(&page, id)?);
        return Ok(());
    }
    let children: Vec<PageId> = (0..page.count())
        .map(|i| page.branch(i).map(|e| e.child).map_err(|r| corrupt(id, r)))
        .collect::<Result<_, _>>()?;
    drop(bytes);
    for child in children {
        collect(db, child, depth + 1, visited, out)?;
    }
    Ok(())
}

/// Replace (or add) the top-level bucket `name` with the bucket value `value`.
pub fn set_bucket(top: &mut Vec<Entry>, name: &[u8], value: Vec<u8>) {
    match top.iter_mut().find(|e| e.key == name) {
        Some(e) => e.value = value,
        None => top.push(Entry {
            key: name.to_vec(),
            value,
            bucket: true,
        }),
    }
}

/// A bucket's sequence number (bytes 8..16 of its header).
pub fn bucket_sequence(bucket_value: &[u8]) -> u64 {
    bucket_value
        .get(8..16)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .unwrap_or(0)
}
