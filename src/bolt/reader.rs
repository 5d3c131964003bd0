//! Read-only access to a bbolt file: open (meta selection, page-size detection), page reads
//! through a small window cache, point lookups, and a bounded depth-first walk of every bucket.
//!
//! Never opens the file for writing and never takes a lock, so reading the `member/snap/db` of
//! a running etcd does not block (bbolt's read-only open would wait forever for etcd's lock).
//! Pages are read with positioned reads into windows, a few of which are kept, so memory stays
//! bounded whatever the file size. A window is what the walk is about to need, not a blind
//! read-ahead: when the walk enters a branch page it plans one read for each run of children
//! that lie close together and in ascending order in the file. A database whose pages bbolt
//! reused from its freelist has its leaves out of file order (a long-running etcd's does), and
//! fixed 1 MiB read-ahead windows read such a file ten times over; planned runs read it about
//! once.
//!
//! Mirrors the open path of etcd-io/bbolt `db.go` (`Open`, `mmap`, `meta()`), `bucket.go`
//! and `cursor.go`.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::rc::Rc;

use crate::buf::AlignedBuf;

use super::check::{short_hex, Integrity, KeyOrder, Problem, Problems};
use super::freelist;
use super::meta::{Meta, MetaError, META_SIZE, NO_FREELIST};
use super::page::{u64_at, NodePage, PageError, PageHeader, PageId, PAGE_HEADER_SIZE};
use super::BoltError;

/// Anything we can read bytes from at an offset: a file, or bytes in memory (tests).
pub trait ReadAt: Sync {
    fn size(&self) -> u64;
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
}

/// A file opened for reading, with its size taken once at open.
pub struct FileSource {
    file: File,
    size: u64,
}

impl FileSource {
    pub fn open(path: &Path) -> io::Result<FileSource> {
        // Not File::open: a FIFO would block it forever.
        let file = crate::fsutil::open_regular(path)?;
        let meta = file.metadata()?;
        Ok(FileSource {
            size: meta.len(),
            file,
        })
    }
}

impl ReadAt for FileSource {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        FileExt::read_exact_at(&self.file, buf, offset)
    }
}

impl<T: ReadAt + ?Sized> ReadAt for &T {
    fn size(&self) -> u64 {
        (**self).size()
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        (**self).read_exact_at(buf, offset)
    }
}

impl ReadAt for [u8] {
    fn size(&self) -> u64 {
        self.len() as u64
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::UnexpectedEof)?;
        let src = self
            .get(start..start.saturating_add(buf.len()))
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

impl ReadAt for Vec<u8> {
    fn size(&self) -> u64 {
        self.len() as u64
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.as_slice().read_exact_at(buf, offset)
    }
}

/// Bytes of one page span (the page and its overflow pages), shared with the cache.
#[derive(Clone)]
pub struct PageBytes {
    window: Rc<AlignedBuf>,
    start: usize,
    len: usize,
}

impl PageBytes {
    pub fn bytes(&self) -> &[u8] {
        &self.window[self.start..self.start + self.len]
    }
}

/// The longest planned read.
const WINDOW_BYTES: u64 = 1 << 20;
const WINDOWS_KEPT: usize = 8;
/// Children at most this many pages apart (in ascending order) share one planned read: the
/// pages between them are the earlier child's overflow, or a little waste.
const RUN_GAP_PAGES: u64 = 32;
/// bbolt trees are a handful of levels deep; anything deeper is a cycle or corruption.
pub const MAX_DEPTH: usize = 64;

struct Window {
    offset: u64,
    data: Rc<AlignedBuf>,
}

/// Which meta pages were valid at open.
#[derive(Debug, Clone)]
pub struct MetaState {
    /// The meta in use (the valid one with the higher txid).
    pub meta: Meta,
    /// Page (0 or 1) the meta in use came from.
    pub page: u8,
    /// Why each meta page was rejected, if it was.
    pub invalid: Vec<(u8, MetaError)>,
}

/// An open bbolt database.
pub struct Db<S: ReadAt> {
    src: S,
    state: MetaState,
    page_size: usize,
    windows: VecDeque<Window>,
    /// Planned reads not made yet: start offset → end offset.
    plans: HashMap<u64, u64>,
}

/// A bucket to walk: its root page, or its inline page image.
#[derive(Debug, Clone)]
pub enum BucketRoot {
    Page(PageId),
    Inline(Vec<u8>),
}

/// Decode a bucket header (the value of a bucket element): `root` (u64) then `sequence`,
/// followed by the page image when `root` is 0.
pub fn bucket_root(value: &[u8]) -> Result<BucketRoot, PageError> {
    let root = u64_at(value, 0).ok_or(PageError::ShortBucketHeader)?;
    if root == 0 {
        let image = value
            .get(16..)
            .filter(|i| i.len() >= PAGE_HEADER_SIZE)
            .ok_or(PageError::InlineWithoutPage)?;
        Ok(BucketRoot::Inline(image.to_vec()))
    } else {
        Ok(BucketRoot::Page(PageId(root)))
    }
}

/// Receives every entry of every bucket, depth first, keys ascending.
pub trait Visitor {
    /// What the visitor can fail with; reading errors met by the walk convert into it.
    type Error: From<BoltError>;
    /// `path` names the bucket holding the entry (empty: the root bucket). `value` is `None`
    /// for a nested bucket, which is walked right after this call.
    fn entry(
        &mut self,
        path: &[Vec<u8>],
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<(), Self::Error>;
}

impl Db<FileSource> {
    /// Open a file read-only, without locking it.
    pub fn open_file(path: &Path) -> Result<Db<FileSource>, BoltError> {
        let src = FileSource::open(path).map_err(BoltError::Io)?;
        Db::open(src)
    }
}

/// The meta page at `offset`.
fn read_meta<S: ReadAt>(src: &S, offset: u64) -> Result<Meta, MetaError> {
    let mut b = [0u8; PAGE_HEADER_SIZE + META_SIZE];
    src.read_exact_at(&mut b, offset)
        .map_err(|_| MetaError::Short)?;
    Meta::decode(&b[PAGE_HEADER_SIZE..])
}

/// The page size: meta 0's, or where a valid meta 1 is found when meta 0 is damaged.
fn page_size<S: ReadAt>(src: &S) -> Result<u32, BoltError> {
    let e0 = match read_meta(src, 0) {
        Ok(m) => return Ok(m.page_size),
        Err(MetaError::BigEndian) => {
            return Err(BoltError::Meta {
                page: 0,
                reason: MetaError::BigEndian,
            })
        }
        Err(e) => e,
    };
    for i in 0..15 {
        let off = 1024u64 << i;
        if off >= src.size().saturating_sub(1024) {
            break;
        }
        if let Ok(m) = read_meta(src, off) {
            if u64::from(m.page_size) == off {
                return Ok(m.page_size);
            }
        }
    }
    Err(BoltError::Meta {
        page: 0,
        reason: e0,
    })
}

/// Meta pages that were not valid, with why.
type InvalidMetas = Vec<(u8, MetaError)>;

/// The valid meta with the higher txid (its page number), and the invalid ones.
fn select_meta<S: ReadAt>(src: &S, page_size: u32) -> Result<(u8, Meta, InvalidMetas), BoltError> {
    let metas = [read_meta(src, 0), read_meta(src, u64::from(page_size))];
    let mut invalid = Vec::new();
    let mut best: Option<(u8, Meta)> = None;
    for (i, m) in metas.into_iter().enumerate() {
        let page = i as u8;
        match m {
            Ok(m) if m.page_size != page_size => invalid.push((
                page,
                MetaError::PageSize {
                    found: m.page_size,
                    expected: page_size,
                },
            )),
            Ok(m) => {
                if best.is_none_or(|(_, b)| m.txid > b.txid) {
                    best = Some((page, m));
                }
            }
            Err(e) => invalid.push((page, e)),
        }
    }
    match best {
        Some((page, meta)) => Ok((page, meta, invalid)),
        None => {
            let (page, reason) = invalid.swap_remove(0);
            Err(BoltError::Meta { page, reason })
        }
    }
}

impl<S: ReadAt> Db<S> {
    /// Select the meta as bbolt does: find the page size from meta 0 (or, as bbolt 1.3.7+ does,
    /// by probing for meta 1), then use the valid meta with the higher txid.
    pub fn open(src: S) -> Result<Db<S>, BoltError> {
        let size = src.size();
        if size < 2 * 1024 {
            return Err(BoltError::NotBolt(format!(
                "file is {size} bytes, too small for a bbolt database"
            )));
        }
        let page_size = page_size(&src)?;
        let (page, meta, invalid) = select_meta(&src, page_size)?;
        meta.sanity()
            .map_err(|reason| BoltError::Meta { page, reason })?;
        if size < meta.db_size() {
            return Err(BoltError::Truncated {
                needed: meta.db_size(),
                size,
            });
        }
        Ok(Db {
            src,
            page_size: meta.page_size as usize,
            state: MetaState {
                meta,
                page,
                invalid,
            },
            windows: VecDeque::new(),
            plans: HashMap::new(),
        })
    }

    pub fn meta(&self) -> &Meta {
        &self.state.meta
    }

    pub fn meta_state(&self) -> &MetaState {
        &self.state
    }

    pub fn source(&self) -> &S {
        &self.src
    }

    pub fn page_size(&self) -> usize {
        self.page_size
    }

    /// The bytes of page `id` and its overflow pages. The span must lie below the high-water
    /// mark.
    pub fn page(&mut self, id: PageId) -> Result<PageBytes, BoltError> {
        let hwm = self.state.meta.pgid;
        if id >= hwm {
            return Err(BoltError::Corrupted {
                page: id,
                reason: PageError::OutOfBounds(hwm),
            });
        }
        let ps = self.page_size as u64;
        let offset = id.0 * ps;
        let head = self.read(offset, PAGE_HEADER_SIZE)?;
        let header = PageHeader::decode(head.bytes()).ok_or(BoltError::Corrupted {
            page: id,
            reason: PageError::ShortHeader,
        })?;
        let pages = u64::from(header.overflow) + 1;
        if id.0 + pages > hwm.0 {
            return Err(BoltError::Corrupted {
                page: id,
                reason: PageError::OverflowPastEnd {
                    overflow: header.overflow,
                    hwm,
                },
            });
        }
        let len = (pages * ps) as usize;
        // Most often the window the header came from holds the whole span.
        if head.start + len <= head.window.len() {
            return Ok(PageBytes { len, ..head });
        }
        self.read(offset, len)
    }

    /// Read `len` bytes at `offset` through the window cache.
    fn read(&mut self, offset: u64, len: usize) -> Result<PageBytes, BoltError> {
        let end = offset + len as u64;
        let planned = self.plans.remove(&offset).unwrap_or(0);
        if let Some(pos) = self
            .windows
            .iter()
            .position(|w| w.offset <= offset && end <= w.offset + w.data.len() as u64)
        {
            let w = &self.windows[pos];
            return Ok(PageBytes {
                window: w.data.clone(),
                start: (offset - w.offset) as usize,
                len,
            });
        }
        // A planned run, or the page (a header read brings the whole first page); never past
        // the database proper (a trailer or file slack follows).
        let limit = self.state.meta.db_size().min(self.src.size());
        let want = (end.max(planned).max(offset + self.page_size as u64))
            .min(limit)
            .saturating_sub(offset) as usize;
        if want < len {
            return Err(BoltError::Truncated {
                needed: end,
                size: self.src.size(),
            });
        }
        // Reuse the oldest window's buffer when nobody holds it any more: fresh 1 MiB
        // allocations would page-fault on every read. Page-aligned, so that the kernel's copy
        // runs at full speed (see crate::buf).
        let mut reused = None;
        if self.windows.len() >= WINDOWS_KEPT {
            if let Some(old) = self.windows.pop_front() {
                reused = Rc::try_unwrap(old.data).ok();
            }
        }
        let mut data = match reused {
            Some(mut b) => {
                b.resize(want);
                b
            }
            // Room for the longest planned read, so that reusing it never reallocates (a
            // fresh buffer page-faults on its first read); untouched pages cost nothing.
            None => {
                let mut b = AlignedBuf::new(want.max(WINDOW_BYTES as usize));
                b.resize(want);
                b
            }
        };
        self.src
            .read_exact_at(&mut data, offset)
            .map_err(BoltError::Io)?;
        let data = Rc::new(data);
        self.windows.push_back(Window {
            offset,
            data: data.clone(),
        });
        Ok(PageBytes {
            window: data,
            start: 0,
            len,
        })
    }

    /// Plan the reads of a branch page's children: one read for each run of children that
    /// follow each other closely in the file, each at most [`WINDOW_BYTES`]. The last child of
    /// a run is planned as one page; its overflow, if any, is read when it is met.
    fn plan(&mut self, children: &[(Vec<u8>, PageId)]) {
        let ps = self.page_size as u64;
        // Below the high-water mark, so no offset overflows (the file holds every page below
        // it); a child past it is reported when it is met.
        let hwm = self.state.meta.pgid.0;
        let mut i = 0;
        while i < children.len() {
            let start = children[i].1 .0;
            let mut last = start;
            let mut j = i + 1;
            while let Some((_, PageId(next))) = children.get(j) {
                if start >= hwm
                    || *next >= hwm
                    || *next <= last
                    || *next - last > RUN_GAP_PAGES
                    || (*next - start) * ps >= WINDOW_BYTES
                {
                    break;
                }
                last = *next;
                j += 1;
            }
            if j - i > 1 {
                self.plans.insert(start * ps, (last + 1) * ps);
            }
            i = j;
        }
    }

    /// The root bucket of the database.
    pub fn root(&self) -> BucketRoot {
        BucketRoot::Page(self.state.meta.root)
    }

    /// Look up `key` in the top-level bucket `bucket`. Corruption met on the way is an error.
    pub fn get(&mut self, bucket: &[u8], key: &[u8]) -> Result<Option<Vec<u8>>, BoltError> {
        let root = self.root();
        let Some((flags, value)) = self.lookup(&root, bucket)? else {
            return Ok(None);
        };
        if flags & super::page::LEAF_FLAG_BUCKET == 0 {
            return Ok(None);
        }
        let sub = bucket_root(&value).map_err(|reason| BoltError::Corrupted {
            page: self.state.meta.root,
            reason: PageError::Bucket {
                name: String::from_utf8_lossy(bucket).into_owned(),
                reason: Box::new(reason),
            },
        })?;
        Ok(self
            .lookup(&sub, key)?
            .filter(|(flags, _)| flags & super::page::LEAF_FLAG_BUCKET == 0)
            .map(|(_, v)| v))
    }

    fn lookup(
        &mut self,
        root: &BucketRoot,
        key: &[u8],
    ) -> Result<Option<(u32, Vec<u8>)>, BoltError> {
        let mut id = match root {
            BucketRoot::Inline(image) => {
                let page = NodePage::new(image).map_err(|reason| BoltError::Corrupted {
                    page: PageId(0),
                    reason: PageError::InlineBucket(Box::new(reason)),
                })?;
                return find_in_leaf(&page, key, PageId(0));
            }
            BucketRoot::Page(id) => *id,
        };
        for _ in 0..MAX_DEPTH {
            let bytes = self.page(id)?;
            let page = NodePage::new(bytes.bytes())
                .map_err(|reason| BoltError::Corrupted { page: id, reason })?;
            if page.header.is_leaf() {
                return find_in_leaf(&page, key, id);
            }
            // The last branch element whose key is <= key (or the first).
            let mut next = None;
            for i in 0..page.count() {
                let e = page
                    .branch(i)
                    .map_err(|reason| BoltError::Corrupted { page: id, reason })?;
                if next.is_none() || e.key <= key {
                    next = Some(e.child);
                }
                if e.key > key {
                    break;
                }
            }
            id = next.ok_or(BoltError::Corrupted {
                page: id,
                reason: PageError::EmptyBranch,
            })?;
        }
        Err(BoltError::Corrupted {
            page: id,
            reason: PageError::TooDeep(MAX_DEPTH),
        })
    }

    /// Walk every bucket depth first, calling `visitor` for each entry in key order. Structural
    /// problems (bad page types, offsets, repeated pages, and with `check` the key order and
    /// the freelist) are collected and the damaged subtree is skipped; they are returned in
    /// the outcome. Errors from the visitor and I/O errors stop the walk.
    pub fn walk<V: Visitor>(&mut self, visitor: &mut V, check: bool) -> Result<Problems, V::Error> {
        let mut integrity = Integrity::new(self.state.meta.pgid);
        if check {
            self.load_freelist(&mut integrity)?;
        }
        let mut w = Walk {
            path: Vec::new(),
            visitor,
            integrity,
            check,
        };
        let root = self.root();
        self.walk_bucket(&root, &mut w)?;
        Ok(w.integrity.finish(check))
    }

    /// [`Db::walk`] with the integrity check, the meta pages that are not valid counted among
    /// its problems: what `snapshot status` refuses, and every other read path too.
    pub fn walk_checked<V: Visitor>(&mut self, visitor: &mut V) -> Result<Problems, V::Error> {
        let mut problems = Problems::default();
        for (page, reason) in &self.meta_state().invalid {
            problems.list.push(Problem::Meta {
                page: *page,
                reason: reason.clone(),
            });
        }
        let found = self.walk(visitor, true)?;
        problems.list.extend(found.list);
        problems.more += found.more;
        Ok(problems)
    }

    /// Hand a persisted freelist to the checker (etcd's unsynced freelist has none).
    fn load_freelist(&mut self, integrity: &mut Integrity) -> Result<(), BoltError> {
        let id = self.meta().freelist;
        if id == NO_FREELIST {
            return Ok(());
        }
        match self.page(id) {
            Ok(bytes) => {
                let overflow = PageHeader::decode(bytes.bytes())
                    .map(|h| h.overflow)
                    .unwrap_or(0);
                integrity.freelist(id, overflow, freelist::decode(bytes.bytes()));
                Ok(())
            }
            Err(BoltError::Corrupted { page, reason }) => {
                integrity.problem(Problem::Freelist { page, reason });
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn walk_bucket<V: Visitor>(
        &mut self,
        root: &BucketRoot,
        w: &mut Walk<'_, V>,
    ) -> Result<(), V::Error> {
        if w.path.len() > MAX_DEPTH {
            w.integrity.problem(Problem::BucketsTooDeep(MAX_DEPTH));
            return Ok(());
        }
        let mut order = KeyOrder::default();
        match root {
            BucketRoot::Inline(image) => match NodePage::new(image) {
                Ok(page) if page.header.is_leaf() => {
                    self.visit_leaf(&page, PageId(0), w, &mut order, None)
                }
                Ok(_) => {
                    let bucket = bucket_name(&w.path);
                    w.integrity.problem(Problem::InlineNotLeaf { bucket });
                    Ok(())
                }
                Err(reason) => {
                    let bucket = bucket_name(&w.path);
                    w.integrity.problem(Problem::InlinePage { bucket, reason });
                    Ok(())
                }
            },
            BucketRoot::Page(id) => self.walk_page(*id, 0, w, &mut order, None),
        }
    }

    fn walk_page<V: Visitor>(
        &mut self,
        id: PageId,
        depth: usize,
        w: &mut Walk<'_, V>,
        order: &mut KeyOrder,
        upper: Option<&[u8]>,
    ) -> Result<(), V::Error> {
        if depth > MAX_DEPTH {
            w.integrity.problem(Problem::Page {
                page: id,
                reason: PageError::TooDeep(MAX_DEPTH),
            });
            return Ok(());
        }
        let bytes = match self.page(id) {
            Ok(b) => b,
            Err(BoltError::Corrupted { page, reason }) => {
                w.integrity.problem(Problem::Page { page, reason });
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        let page = match NodePage::new(bytes.bytes()) {
            Ok(p) => p,
            Err(reason) => {
                w.integrity.problem(Problem::Page { page: id, reason });
                return Ok(());
            }
        };
        if page.header.id != id {
            w.integrity.problem(Problem::WrongHeader {
                page: id,
                says: page.header.id,
            });
            return Ok(());
        }
        if !w.integrity.reach(id, page.header.overflow) {
            return Ok(());
        }
        if page.header.is_leaf() {
            return self.visit_leaf(&page, id, w, order, upper);
        }
        let mut children = Vec::with_capacity(page.count());
        for i in 0..page.count() {
            match page.branch(i) {
                Ok(e) => children.push((e.key.to_vec(), e.child)),
                Err(reason) => {
                    w.integrity.problem(Problem::Page { page: id, reason });
                    return Ok(());
                }
            }
        }
        if children.is_empty() {
            w.integrity.problem(Problem::Page {
                page: id,
                reason: PageError::EmptyBranch,
            });
        }
        drop(bytes);
        self.plan(&children);
        for (i, (key, child)) in children.iter().enumerate() {
            if w.check {
                if i > 0 && children[i - 1].0 >= *key {
                    w.integrity.problem(Problem::BranchOrder {
                        page: id,
                        index: i,
                        key: short_hex(key),
                        previous: short_hex(&children[i - 1].0),
                    });
                }
                order.lower = Some(key.clone());
            }
            let child_upper = children.get(i + 1).map(|(k, _)| k.as_slice()).or(upper);
            self.walk_page(*child, depth + 1, w, order, child_upper)?;
        }
        Ok(())
    }

    fn visit_leaf<V: Visitor>(
        &mut self,
        page: &NodePage<'_>,
        id: PageId,
        w: &mut Walk<'_, V>,
        order: &mut KeyOrder,
        upper: Option<&[u8]>,
    ) -> Result<(), V::Error> {
        for i in 0..page.count() {
            let e = match page.leaf(i) {
                Ok(e) => e,
                Err(reason) => {
                    w.integrity.problem(Problem::Page { page: id, reason });
                    return Ok(());
                }
            };
            if w.check {
                if let Some(rule) = order.admit(e.key, upper) {
                    w.integrity.problem(Problem::KeyOrder {
                        page: id,
                        index: i,
                        key: short_hex(e.key),
                        rule,
                    });
                }
            }
            if e.is_bucket() {
                w.visitor.entry(&w.path, e.key, None)?;
                // The page bytes are ours (a shared window), so recursing here keeps
                // depth-first order without copying the page.
                match bucket_root(e.value) {
                    Ok(root) => {
                        w.path.push(e.key.to_vec());
                        self.walk_bucket(&root, w)?;
                        w.path.pop();
                    }
                    Err(reason) => w.integrity.problem(Problem::Page {
                        page: id,
                        reason: PageError::Bucket {
                            name: short_hex(e.key),
                            reason: Box::new(reason),
                        },
                    }),
                }
            } else {
                w.visitor.entry(&w.path, e.key, Some(e.value))?;
            }
        }
        Ok(())
    }
}

fn find_in_leaf(
    page: &NodePage<'_>,
    key: &[u8],
    id: PageId,
) -> Result<Option<(u32, Vec<u8>)>, BoltError> {
    if !page.header.is_leaf() {
        return Err(BoltError::Corrupted {
            page: id,
            reason: PageError::NotALeaf,
        });
    }
    for i in 0..page.count() {
        let e = page
            .leaf(i)
            .map_err(|reason| BoltError::Corrupted { page: id, reason })?;
        if e.key == key {
            return Ok(Some((e.flags, e.value.to_vec())));
        }
    }
    Ok(None)
}

/// What a walk carries down the tree: where it is, who receives the entries, what it found.
struct Walk<'v, V: Visitor> {
    path: Vec<Vec<u8>>,
    visitor: &'v mut V,
    integrity: Integrity,
    check: bool,
}

/// A bucket's path for problem reports: `key/lease`.
fn bucket_name(path: &[Vec<u8>]) -> String {
    path.iter()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;
    use crate::bolt::entries::Entry;
    use crate::bolt::page::ELEMENT_SIZE;
    use crate::bolt::writer::{fresh_meta, numbered_entries, Writer};

    /// Bytes in memory that count what is read from them.
    struct Counted(Vec<u8>, AtomicU64);
    impl ReadAt for Counted {
        fn size(&self) -> u64 {
            self.0.len() as u64
        }
        fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
            self.1.fetch_add(buf.len() as u64, Ordering::Relaxed);
            self.0.read_exact_at(buf, offset)
        }
    }

    struct Keys(Vec<Vec<u8>>);
    impl Visitor for Keys {
        type Error = BoltError;
        fn entry(&mut self, _: &[Vec<u8>], key: &[u8], _: Option<&[u8]>) -> Result<(), BoltError> {
            self.0.push(key.to_vec());
            Ok(())
        }
    }

    /// A 40 MB database of one-page leaves, as our writer lays it out (leaves in key order).
    fn database() -> Vec<u8> {
        let entries = numbered_entries(20_000, 1500);
        let meta = fresh_meta();
        let mut w = Writer::new(&meta);
        let bucket = Entry {
            key: b"key".to_vec(),
            value: w.bucket_value(&entries, 0),
            bucket: true,
        };
        let root = w.tree(&[bucket]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let file = std::fs::File::create(&path).unwrap();
        w.commit(&file, &meta, root).unwrap();
        std::fs::read(&path).unwrap()
    }

    /// Move every leaf to another place in the file, as bbolt's reuse of freed pages does:
    /// children that follow each other in key order end up far apart.
    fn scatter(mut b: Vec<u8>) -> Vec<u8> {
        let ps = 4096;
        let pages = b.len() / ps;
        let header = |b: &[u8], id: usize| PageHeader::decode(&b[id * ps..]).unwrap();
        let leaves: Vec<usize> = (2..pages)
            .filter(|&id| header(&b, id).is_leaf() && header(&b, id).count >= 2)
            .collect();
        let n = leaves.len();
        let moved = |k: usize| leaves[(k * 7919) % n];
        let old = b.clone();
        for (k, &from) in leaves.iter().enumerate() {
            let to = moved(k);
            b[to * ps..(to + 1) * ps].copy_from_slice(&old[from * ps..(from + 1) * ps]);
            b[to * ps..to * ps + 8].copy_from_slice(&(to as u64).to_le_bytes());
        }
        let slot: HashMap<u64, u64> = (0..n)
            .map(|k| (leaves[k] as u64, moved(k) as u64))
            .collect();
        for id in 2..pages {
            let h = header(&b, id);
            if !h.is_branch() {
                continue;
            }
            for i in 0..usize::from(h.count) {
                let at = id * ps + PAGE_HEADER_SIZE + i * ELEMENT_SIZE + 8;
                let child = u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
                if let Some(to) = slot.get(&child) {
                    b[at..at + 8].copy_from_slice(&to.to_le_bytes());
                }
            }
        }
        b
    }

    fn walk(bytes: Vec<u8>) -> (Vec<Vec<u8>>, u64, u64) {
        let len = bytes.len() as u64;
        let src = Counted(bytes, AtomicU64::new(0));
        let mut db = Db::open(&src).unwrap();
        let mut keys = Keys(Vec::new());
        let problems = db.walk(&mut keys, true).unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        (keys.0, src.1.load(Ordering::Relaxed), len)
    }

    /// The walk reads a database about once whatever the order of its pages in the file; with
    /// 1 MiB read-ahead windows a scattered one was read many times over.
    #[test]
    fn a_walk_reads_each_page_about_once_in_file_order_or_not() {
        let plain = database();
        let (keys, read, len) = walk(plain.clone());
        assert_eq!(keys.len(), 20_001);
        assert!(read <= len + len / 20, "read {read} of {len}");
        let (scattered_keys, read, len) = walk(scatter(plain));
        assert_eq!(scattered_keys, keys);
        assert!(read <= len + len / 20, "scattered: read {read} of {len}");
    }
}
