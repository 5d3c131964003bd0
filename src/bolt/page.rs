//! bbolt pages: the 16-byte header every page starts with, and zero-copy views over branch and
//! leaf elements. Mirrors etcd-io/bbolt `page.go` (1.3.x) / `internal/common/page.go` (1.4).
//!
//! ```text
//! page header (16 bytes, little-endian)
//! off size field
//!   0    8 id        page id (0 inside an inline bucket)
//!   8    2 flags     0x01 branch, 0x02 leaf, 0x04 meta, 0x10 freelist
//!  10    2 count     elements (branch/leaf) or ids (freelist, 0xFFFF = count in first u64)
//!  12    4 overflow  additional contiguous pages this page spans
//!
//! branch element (16 bytes)            leaf element (16 bytes)
//! off size field                       off size field
//!   0    4 pos   (from element start)    0    4 flags (0x01 = nested bucket)
//!   4    4 ksize                         4    4 pos   (from element start)
//!   8    8 pgid  child page              8    4 ksize
//!                                       12    4 vsize  (value follows the key)
//! ```
//!
//! Every offset and length is checked against the page's bytes before use: a corrupt page is an
//! error value naming the page, never a panic.

use std::fmt;

/// Size of the page header.
pub const PAGE_HEADER_SIZE: usize = 16;
/// Size of one branch or leaf element.
pub const ELEMENT_SIZE: usize = 16;

const OFF_ID: usize = 0;
const OFF_FLAGS: usize = OFF_ID + 8;
const OFF_COUNT: usize = OFF_FLAGS + 2;
const OFF_OVERFLOW: usize = OFF_COUNT + 2;
const _: () = assert!(OFF_OVERFLOW + 4 == PAGE_HEADER_SIZE);

pub const FLAG_BRANCH: u16 = 0x01;
pub const FLAG_LEAF: u16 = 0x02;
pub const FLAG_META: u16 = 0x04;
pub const FLAG_FREELIST: u16 = 0x10;

/// Leaf element flag: the value is a nested bucket (16-byte bucket header, maybe inline page).
pub const LEAF_FLAG_BUCKET: u32 = 0x01;

/// A page number.
#[doc(alias = "pgid")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PageId(pub u64);

impl fmt::Display for PageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A transaction id.
#[doc(alias = "txid")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TxId(pub u64);

impl fmt::Display for TxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

pub(crate) fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(off..off + 2)?.try_into().ok()?))
}

pub(crate) fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

pub(crate) fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(off..off + 8)?.try_into().ok()?))
}

/// The name bbolt's messages use for a page type.
pub fn type_name(flags: u16) -> String {
    if flags & FLAG_BRANCH != 0 {
        "branch".into()
    } else if flags & FLAG_LEAF != 0 {
        "leaf".into()
    } else if flags & FLAG_META != 0 {
        "meta".into()
    } else if flags & FLAG_FREELIST != 0 {
        "freelist".into()
    } else {
        format!("unknown<{flags:02x}>")
    }
}

/// A decoded page header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageHeader {
    pub id: PageId,
    pub flags: u16,
    pub count: u16,
    pub overflow: u32,
}

impl PageHeader {
    pub fn decode(b: &[u8]) -> Option<PageHeader> {
        Some(PageHeader {
            id: PageId(u64_at(b, OFF_ID)?),
            flags: u16_at(b, OFF_FLAGS)?,
            count: u16_at(b, OFF_COUNT)?,
            overflow: u32_at(b, OFF_OVERFLOW)?,
        })
    }

    pub fn encode(&self, b: &mut [u8]) {
        b[OFF_ID..OFF_ID + 8].copy_from_slice(&self.id.0.to_le_bytes());
        b[OFF_FLAGS..OFF_FLAGS + 2].copy_from_slice(&self.flags.to_le_bytes());
        b[OFF_COUNT..OFF_COUNT + 2].copy_from_slice(&self.count.to_le_bytes());
        b[OFF_OVERFLOW..OFF_OVERFLOW + 4].copy_from_slice(&self.overflow.to_le_bytes());
    }

    pub fn is_branch(&self) -> bool {
        self.flags & FLAG_BRANCH != 0
    }

    pub fn is_leaf(&self) -> bool {
        self.flags & FLAG_LEAF != 0
    }
}

/// A branch or leaf page (or an inline bucket's page image) over its bytes, header included.
#[derive(Debug, Clone, Copy)]
pub struct NodePage<'a> {
    pub header: PageHeader,
    data: &'a [u8],
}

/// One element of a leaf page.
#[derive(Debug, Clone, Copy)]
pub struct LeafElement<'a> {
    pub flags: u32,
    pub key: &'a [u8],
    pub value: &'a [u8],
}

impl LeafElement<'_> {
    pub fn is_bucket(&self) -> bool {
        self.flags & LEAF_FLAG_BUCKET != 0
    }
}

/// One element of a branch page.
#[derive(Debug, Clone, Copy)]
pub struct BranchElement<'a> {
    pub key: &'a [u8],
    pub child: PageId,
}

/// Why a page, or a bucket header, could not be read: the place within it and the cause.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    #[error("page shorter than its header")]
    ShortHeader,
    #[error("invalid type: {}", type_name(*.0))]
    InvalidType(u16),
    #[error("invalid type: {} (expected freelist)", type_name(*.0))]
    NotFreelist(u16),
    #[error("{count} elements do not fit in {len} bytes")]
    TableOverflow { count: u16, len: usize },
    #[error("element {0} missing")]
    ElementMissing(usize),
    #[error("element {0}: position overflows")]
    PositionOverflow(usize),
    #[error("element {0}: size overflows")]
    SizeOverflow(usize),
    #[error("element {index}: bytes {start}..{end} lie outside the page ({len} bytes)")]
    ElementOutside {
        index: usize,
        start: usize,
        end: usize,
        len: usize,
    },
    #[error("freelist count missing")]
    FreelistCountMissing,
    #[error("freelist count {0} is impossible")]
    FreelistCountImpossible(u64),
    #[error("freelist of {0} ids does not fit in its page")]
    FreelistOverflow(u64),
    #[error("bucket value shorter than its 16-byte header")]
    ShortBucketHeader,
    #[error("inline bucket without a page")]
    InlineWithoutPage,
    #[error("out of bounds: high-water mark {0}")]
    OutOfBounds(PageId),
    #[error("overflow of {overflow} pages runs past the high-water mark {hwm}")]
    OverflowPastEnd { overflow: u32, hwm: PageId },
    #[error("expected a leaf page")]
    NotALeaf,
    #[error("empty branch page")]
    EmptyBranch,
    #[error("page reached twice")]
    ReachedTwice,
    #[error("tree deeper than {0} levels")]
    TooDeep(usize),
    #[error("bucket {name}: {reason}")]
    Bucket {
        name: String,
        reason: Box<PageError>,
    },
    #[error("inline bucket: {0}")]
    InlineBucket(Box<PageError>),
}

impl<'a> NodePage<'a> {
    /// View `data` (the page's whole span) as a branch or leaf page; the reason is returned when
    /// the header says something else or the element table does not fit.
    pub fn new(data: &'a [u8]) -> Result<NodePage<'a>, PageError> {
        let header = PageHeader::decode(data).ok_or(PageError::ShortHeader)?;
        if !header.is_branch() && !header.is_leaf() {
            return Err(PageError::InvalidType(header.flags));
        }
        let table = PAGE_HEADER_SIZE + header.count as usize * ELEMENT_SIZE;
        if table > data.len() {
            return Err(PageError::TableOverflow {
                count: header.count,
                len: data.len(),
            });
        }
        Ok(NodePage { header, data })
    }

    pub fn count(&self) -> usize {
        self.header.count as usize
    }

    fn slice(&self, elem_off: usize, pos: u32, len: u32, i: usize) -> Result<&'a [u8], PageError> {
        let start = elem_off
            .checked_add(pos as usize)
            .ok_or(PageError::PositionOverflow(i))?;
        let end = start
            .checked_add(len as usize)
            .ok_or(PageError::SizeOverflow(i))?;
        self.data.get(start..end).ok_or(PageError::ElementOutside {
            index: i,
            start,
            end,
            len: self.data.len(),
        })
    }

    pub fn leaf(&self, i: usize) -> Result<LeafElement<'a>, PageError> {
        let off = PAGE_HEADER_SIZE + i * ELEMENT_SIZE;
        let field = |o| u32_at(self.data, off + o).ok_or(PageError::ElementMissing(i));
        let (flags, pos, ksize, vsize) = (field(0)?, field(4)?, field(8)?, field(12)?);
        let key = self.slice(off, pos, ksize, i)?;
        let value_pos = pos
            .checked_add(ksize)
            .ok_or(PageError::PositionOverflow(i))?;
        let value = self.slice(off, value_pos, vsize, i)?;
        Ok(LeafElement { flags, key, value })
    }

    pub fn branch(&self, i: usize) -> Result<BranchElement<'a>, PageError> {
        let off = PAGE_HEADER_SIZE + i * ELEMENT_SIZE;
        let missing = PageError::ElementMissing(i);
        let pos = u32_at(self.data, off).ok_or(missing.clone())?;
        let ksize = u32_at(self.data, off + 4).ok_or(missing.clone())?;
        let child = u64_at(self.data, off + 8).ok_or(missing)?;
        Ok(BranchElement {
            key: self.slice(off, pos, ksize, i)?,
            child: PageId(child),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A leaf page image with the given entries, laid out as bbolt writes it.
    pub(crate) fn leaf_image(entries: &[(&[u8], &[u8], u32)]) -> Vec<u8> {
        let mut b = vec![0u8; PAGE_HEADER_SIZE + entries.len() * ELEMENT_SIZE];
        PageHeader {
            id: PageId(0),
            flags: FLAG_LEAF,
            count: entries.len() as u16,
            overflow: 0,
        }
        .encode(&mut b);
        for (i, (k, v, flags)) in entries.iter().enumerate() {
            let off = PAGE_HEADER_SIZE + i * ELEMENT_SIZE;
            let pos = (b.len() - off) as u32;
            b[off..off + 4].copy_from_slice(&flags.to_le_bytes());
            b[off + 4..off + 8].copy_from_slice(&pos.to_le_bytes());
            b[off + 8..off + 12].copy_from_slice(&(k.len() as u32).to_le_bytes());
            b[off + 12..off + 16].copy_from_slice(&(v.len() as u32).to_le_bytes());
            b.extend_from_slice(k);
            b.extend_from_slice(v);
        }
        b
    }

    #[test]
    fn leaf_round_trip() {
        let img = leaf_image(&[(b"a", b"1", 0), (b"bb", b"", 0)]);
        let page = NodePage::new(&img).unwrap();
        assert_eq!(page.count(), 2);
        let e = page.leaf(1).unwrap();
        assert_eq!((e.key, e.value), (&b"bb"[..], &b""[..]));
    }

    #[test]
    fn corrupt_leaf_is_an_error_not_a_panic() {
        let img = leaf_image(&[(b"a", b"1", 0)]);
        for cut in 0..img.len() {
            if let Ok(p) = NodePage::new(&img[..cut]) {
                let _ = p.leaf(0);
            }
        }
        let mut bad = img.clone();
        bad[PAGE_HEADER_SIZE + 4..PAGE_HEADER_SIZE + 8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(NodePage::new(&bad).unwrap().leaf(0).is_err());
        let mut bad = img;
        bad[8] = FLAG_META as u8;
        assert_eq!(
            NodePage::new(&bad).unwrap_err().to_string(),
            "invalid type: meta"
        );
    }
}
