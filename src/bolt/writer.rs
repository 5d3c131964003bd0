//! A copy-on-write commit for an existing bbolt file, enough for `snapshot restore`: rewrite a
//! few small buckets and the root bucket, or append one key at the end of a large bucket, on
//! new pages past the high-water mark, then publish them with a new meta (next txid, written
//! to page `txid % 2`). Untouched pages are never rewritten, so a 1 GB database is written
//! once, by the copy, plus a handful of pages.
//!
//! Mirrors the commit path of etcd-io/bbolt `tx.go` (`Commit`, `writeMeta`), `node.go`
//! (`write`, `split`) and `bucket.go` (`inlineable`, `write`). Freed pages are not recorded: the
//! new meta says the freelist is not persisted (as etcd on Linux always writes), and bbolt
//! rebuilds it from reachability when it opens the file.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use super::entries::{bucket_entries, corrupt, leaf_entries_of, Entry};
use super::meta::{Meta, NO_FREELIST};
use super::page::{
    NodePage, PageError, PageHeader, PageId, TxId, ELEMENT_SIZE, FLAG_BRANCH, FLAG_LEAF,
    LEAF_FLAG_BUCKET, PAGE_HEADER_SIZE,
};
use super::reader::{BucketRoot, Db, ReadAt, MAX_DEPTH};
use super::BoltError;

/// Pages of one commit, allocated from the old high-water mark up.
pub struct Writer {
    page_size: usize,
    next: u64,
    pages: Vec<(PageId, Vec<u8>)>,
}

impl Writer {
    pub fn new(meta: &Meta) -> Writer {
        Writer {
            page_size: meta.page_size as usize,
            next: meta.pgid.0,
            pages: Vec::new(),
        }
    }

    /// Write a node image (header id filled in here) on freshly allocated pages.
    fn place(&mut self, mut image: Vec<u8>) -> PageId {
        let pages = image.len().div_ceil(self.page_size).max(1);
        image.resize(pages * self.page_size, 0);
        let id = PageId(self.next);
        self.next += pages as u64;
        image[..8].copy_from_slice(&id.0.to_le_bytes());
        image[12..16].copy_from_slice(&((pages - 1) as u32).to_le_bytes());
        self.pages.push((id, image));
        id
    }

    /// A bucket's tree on new pages: leaves, then branch levels until one root remains.
    pub fn tree(&mut self, entries: &[Entry]) -> PageId {
        let mut level: Vec<(Vec<u8>, PageId)> = self.leaves(entries);
        while level.len() > 1 {
            level = self.branches(&level);
        }
        match level.first() {
            Some((_, id)) => *id,
            None => self.place(leaf_image(&[])),
        }
    }

    fn leaves(&mut self, entries: &[Entry]) -> Vec<(Vec<u8>, PageId)> {
        let mut out = Vec::new();
        for chunk in split(entries, self.page_size, |e| e.key.len() + e.value.len()) {
            let first = chunk[0].key.clone();
            let refs: Vec<&Entry> = chunk.iter().collect();
            out.push((first, self.place(leaf_image(&refs))));
        }
        out
    }

    fn branches(&mut self, children: &[(Vec<u8>, PageId)]) -> Vec<(Vec<u8>, PageId)> {
        let mut out = Vec::new();
        for chunk in split(children, self.page_size, |c| c.0.len()) {
            let first = chunk[0].0.clone();
            out.push((first, self.place(branch_image(chunk))));
        }
        out
    }

    /// The value of a bucket element holding `entries`: inline when bbolt would inline it
    /// (no nested buckets, at most a quarter page), else a header pointing at new pages.
    pub fn bucket_value(&mut self, entries: &[Entry], sequence: u64) -> Vec<u8> {
        let size: usize = PAGE_HEADER_SIZE
            + entries
                .iter()
                .map(|e| ELEMENT_SIZE + e.key.len() + e.value.len())
                .sum::<usize>();
        let mut value = Vec::with_capacity(16 + size);
        if size <= self.page_size / 4 && !entries.iter().any(|e| e.bucket) {
            value.extend_from_slice(&0u64.to_le_bytes());
            value.extend_from_slice(&sequence.to_le_bytes());
            let refs: Vec<&Entry> = entries.iter().collect();
            value.extend_from_slice(&leaf_image(&refs));
        } else {
            let root = self.tree(entries);
            value.extend_from_slice(&root.0.to_le_bytes());
            value.extend_from_slice(&sequence.to_le_bytes());
        }
        value
    }

    /// Add `entry` after the last key of the bucket rooted at `root` (its key must sort after
    /// every key there): copy-on-write of the rightmost path only.
    pub fn append<S: ReadAt>(
        &mut self,
        db: &mut Db<S>,
        root: &BucketRoot,
        entry: Entry,
        sequence: u64,
    ) -> Result<Vec<u8>, BoltError> {
        self.append_all(db, root, vec![entry], sequence)
    }

    /// Add `added` (in strictly ascending key order, every key after the bucket's last) at the
    /// end of the bucket rooted at `root`: the rightmost leaf and the new entries are laid out
    /// on new leaves, and the rightmost path of branches is rebuilt above them. Returns the new
    /// bucket value.
    pub fn append_all<S: ReadAt>(
        &mut self,
        db: &mut Db<S>,
        root: &BucketRoot,
        added: Vec<Entry>,
        sequence: u64,
    ) -> Result<Vec<u8>, BoltError> {
        if let Some(w) = added.windows(2).find(|w| w[0].key >= w[1].key) {
            return Err(BoltError::AppendOutOfOrder {
                key: super::check::short_hex(&w[1].key),
            });
        }
        let id = match root {
            BucketRoot::Inline(_) => {
                let mut entries = bucket_entries(db, root)?;
                if let (Some(last), Some(first)) = (entries.last(), added.first()) {
                    if last.key >= first.key {
                        return Err(BoltError::AppendOutOfOrder {
                            key: super::check::short_hex(&first.key),
                        });
                    }
                }
                entries.extend(added);
                return Ok(self.bucket_value(&entries, sequence));
            }
            BucketRoot::Page(id) => *id,
        };
        // Branch pages on the way down, each with its children.
        let mut path: Vec<Vec<(Vec<u8>, PageId)>> = Vec::new();
        let mut current = id;
        let leaf_entries = loop {
            if path.len() > MAX_DEPTH {
                return Err(corrupt(current, PageError::TooDeep(MAX_DEPTH)));
            }
            let bytes = db.page(current)?;
            let page = NodePage::new(bytes.bytes()).map_err(|r| corrupt(current, r))?;
            if page.header.is_leaf() {
                break leaf_entries_of(&page, current)?;
            }
            let mut children = Vec::with_capacity(page.count());
            for i in 0..page.count() {
                let e = page.branch(i).map_err(|r| corrupt(current, r))?;
                children.push((e.key.to_vec(), e.child));
            }
            let Some(&(_, last)) = children.last() else {
                return Err(corrupt(current, PageError::EmptyBranch));
            };
            path.push(children);
            current = last;
        };
        if let (Some(last), Some(first)) = (leaf_entries.last(), added.first()) {
            if last.key >= first.key {
                return Err(BoltError::AppendOutOfOrder {
                    key: super::check::short_hex(&first.key),
                });
            }
        }
        let mut entries = leaf_entries;
        entries.extend(added);
        let mut level = self.leaves(&entries);
        while let Some(mut children) = path.pop() {
            children.pop();
            children.extend(level);
            level = self.branches(&children);
        }
        while level.len() > 1 {
            level = self.branches(&level);
        }
        let root = level.first().map(|(_, id)| *id).unwrap_or(id);
        let mut value = Vec::with_capacity(16);
        value.extend_from_slice(&root.0.to_le_bytes());
        value.extend_from_slice(&sequence.to_le_bytes());
        Ok(value)
    }

    /// Write the new pages, sync, then publish them with a meta for `root`; sync again.
    /// Returns the new meta.
    pub fn commit(self, file: &File, old: &Meta, root: PageId) -> io::Result<Meta> {
        self.commit_with(file, old, root, true)
    }

    /// [`Writer::commit`] of a scratch file that nobody opens before it is synced whole (and
    /// that is deleted if we stop first): the same writes, no syncs.
    pub fn commit_unsynced(self, file: &File, old: &Meta, root: PageId) -> io::Result<Meta> {
        self.commit_with(file, old, root, false)
    }

    fn commit_with(
        mut self,
        file: &File,
        old: &Meta,
        root: PageId,
        sync: bool,
    ) -> io::Result<Meta> {
        self.pages.sort_by_key(|(id, _)| *id);
        let ps = self.page_size as u64;
        for (id, image) in &self.pages {
            file.write_all_at(image, id.0 * ps)?;
        }
        if sync {
            file.sync_data()?;
        }
        let meta = Meta {
            root,
            freelist: NO_FREELIST,
            pgid: PageId(self.next),
            txid: TxId(old.txid.0 + 1),
            ..*old
        };
        let slot = meta.txid.0 % 2;
        file.write_all_at(&meta.encode_page(slot), slot * ps)?;
        if sync {
            file.sync_data()?;
        }
        Ok(meta)
    }
}

/// Group items into pages: as many as fit in one page, at least one (a larger one gets
/// overflow pages).
fn split<T>(items: &[T], page_size: usize, data: impl Fn(&T) -> usize) -> Vec<&[T]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut size = PAGE_HEADER_SIZE;
    for (i, item) in items.iter().enumerate() {
        let add = ELEMENT_SIZE + data(item);
        if i > start && size + add > page_size {
            out.push(&items[start..i]);
            start = i;
            size = PAGE_HEADER_SIZE;
        }
        size += add;
    }
    if start < items.len() {
        out.push(&items[start..]);
    }
    out
}

fn leaf_image(entries: &[&Entry]) -> Vec<u8> {
    let n = entries.len();
    let mut b = vec![0u8; PAGE_HEADER_SIZE + n * ELEMENT_SIZE];
    PageHeader {
        id: PageId(0),
        flags: FLAG_LEAF,
        count: n as u16,
        overflow: 0,
    }
    .encode(&mut b);
    for (i, e) in entries.iter().enumerate() {
        let off = PAGE_HEADER_SIZE + i * ELEMENT_SIZE;
        let pos = (b.len() - off) as u32;
        let flags = if e.bucket { LEAF_FLAG_BUCKET } else { 0 };
        b[off..off + 4].copy_from_slice(&flags.to_le_bytes());
        b[off + 4..off + 8].copy_from_slice(&pos.to_le_bytes());
        b[off + 8..off + 12].copy_from_slice(&(e.key.len() as u32).to_le_bytes());
        b[off + 12..off + 16].copy_from_slice(&(e.value.len() as u32).to_le_bytes());
        b.extend_from_slice(&e.key);
        b.extend_from_slice(&e.value);
    }
    b
}

fn branch_image(children: &[(Vec<u8>, PageId)]) -> Vec<u8> {
    let n = children.len();
    let mut b = vec![0u8; PAGE_HEADER_SIZE + n * ELEMENT_SIZE];
    PageHeader {
        id: PageId(0),
        flags: FLAG_BRANCH,
        count: n as u16,
        overflow: 0,
    }
    .encode(&mut b);
    for (i, (key, child)) in children.iter().enumerate() {
        let off = PAGE_HEADER_SIZE + i * ELEMENT_SIZE;
        let pos = (b.len() - off) as u32;
        b[off..off + 4].copy_from_slice(&pos.to_le_bytes());
        b[off + 4..off + 8].copy_from_slice(&(key.len() as u32).to_le_bytes());
        b[off + 8..off + 16].copy_from_slice(&child.0.to_le_bytes());
        b.extend_from_slice(key);
    }
    b
}

/// `n` entries `k000000`, `k000001`, … whose values are `value_len` bytes.
#[cfg(test)]
pub(crate) fn numbered_entries(n: u32, value_len: usize) -> Vec<Entry> {
    (0..n)
        .map(|i| Entry {
            key: format!("k{i:06}").into_bytes(),
            value: vec![b'v'; value_len],
            bucket: false,
        })
        .collect()
}

/// The meta of an empty database of 4 KiB pages, for a writer to start from.
#[cfg(test)]
pub(crate) fn fresh_meta() -> Meta {
    Meta {
        page_size: 4096,
        flags: 0,
        root: PageId(3),
        sequence: 0,
        freelist: NO_FREELIST,
        pgid: PageId(4),
        txid: TxId(1),
        checksum: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bolt::reader::Visitor;
    use crate::bolt::FileSource;

    const EXAMPLE: &[u8] = include_bytes!("../../examples/k8s-small.db");

    /// (bucket path, key, value) of every entry.
    type Seen = Vec<(Vec<Vec<u8>>, Vec<u8>, Option<Vec<u8>>)>;
    struct Collect(Seen);
    impl Visitor for Collect {
        type Error = BoltError;
        fn entry(
            &mut self,
            path: &[Vec<u8>],
            key: &[u8],
            value: Option<&[u8]>,
        ) -> Result<(), BoltError> {
            self.0
                .push((path.to_vec(), key.to_vec(), value.map(<[u8]>::to_vec)));
            Ok(())
        }
    }

    fn all(db: &mut Db<FileSource>) -> Seen {
        let mut c = Collect(Vec::new());
        let problems = db.walk(&mut c, true).unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        c.0
    }

    /// Rewrite one small bucket and append to the big one; our reader must see exactly the
    /// edits, and the integrity check must pass.
    #[test]
    fn commit_rewrites_buckets_and_appends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        std::fs::write(&path, &EXAMPLE[..EXAMPLE.len() - 32]).unwrap();
        let mut db = Db::open_file(&path).unwrap();
        let before = all(&mut db);
        let meta = *db.meta();

        let root = db.root();
        let mut top = bucket_entries(&mut db, &root).unwrap();
        let mut w = Writer::new(&meta);
        for e in top.iter_mut() {
            if e.key == b"members" {
                let entries = vec![Entry {
                    key: b"abc".to_vec(),
                    value: b"{}".to_vec(),
                    bucket: false,
                }];
                e.value = w.bucket_value(&entries, 0);
            }
            if e.key == b"key" {
                let r = crate::bolt::reader::bucket_root(&e.value).unwrap();
                let mut k = vec![0x7f; 8];
                k.extend_from_slice(b"_\0\0\0\0\0\0\0\0");
                e.value = w
                    .append(
                        &mut db,
                        &r,
                        Entry {
                            key: k,
                            value: Vec::new(),
                            bucket: false,
                        },
                        0,
                    )
                    .unwrap();
            }
        }
        let new_root = w.tree(&top);
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        let new_meta = w.commit(&file, &meta, new_root).unwrap();
        assert_eq!(new_meta.txid.0, meta.txid.0 + 1);

        let mut db = Db::open_file(&path).unwrap();
        assert_eq!(db.meta().txid, new_meta.txid);
        let after = all(&mut db);
        let members: Vec<_> = after
            .iter()
            .filter(|(p, ..)| p.first().map(Vec::as_slice) == Some(&b"members"[..]))
            .collect();
        assert_eq!(members.len(), 1);
        assert_eq!(members[0].1, b"abc");
        let keys_before = before
            .iter()
            .filter(|(p, ..)| p.len() == 1 && p[0] == b"key")
            .count();
        let keys_after = after
            .iter()
            .filter(|(p, ..)| p.len() == 1 && p[0] == b"key")
            .count();
        assert_eq!(keys_after, keys_before + 1);
        // Everything outside `members` and the appended key is unchanged.
        let strip = |v: &Seen| {
            v.iter()
                .filter(|(p, k, _)| {
                    !(p.first().map(Vec::as_slice) == Some(&b"members"[..])
                        || k.first() == Some(&0x7f))
                })
                .filter(|(p, ..)| !p.is_empty())
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(strip(&before), strip(&after));
    }

    #[test]
    fn many_entries_make_branches() {
        let entries = numbered_entries(5000, 50);
        let meta = fresh_meta();
        let mut w = Writer::new(&meta);
        let root = w.tree(&entries);
        assert!(w.next > 4 + 70, "expected many pages, got {}", w.next);
        assert!(root.0 >= 4);
        let big = w.bucket_value(&entries[..3], 0);
        assert_eq!(
            u64::from_le_bytes(big[..8].try_into().unwrap()),
            0,
            "small bucket inline"
        );
    }
}
