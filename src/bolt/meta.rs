//! bbolt meta pages (pages 0 and 1). Mirrors etcd-io/bbolt `db.go` `meta` (1.3.x) /
//! `internal/common/meta.go` (1.4).
//!
//! ```text
//! meta, at page offset 16 (after the page header), little-endian
//! off size field
//!   0    4 magic      0xED0CDAED
//!   4    4 version    2
//!   8    4 pageSize
//!  12    4 flags      unused
//!  16    8 root       root bucket's root page
//!  24    8 sequence   root bucket's sequence
//!  32    8 freelist   freelist page, or 0xFFFF_FFFF_FFFF_FFFF when not persisted
//!  40    8 pgid       high-water mark: pages 0..pgid are in use
//!  48    8 txid
//!  56    8 checksum   FNV-1a 64 over bytes 0..56
//! ```

use super::page::{u32_at, u64_at, PageHeader, PageId, TxId, FLAG_META, PAGE_HEADER_SIZE};

pub const MAGIC: u32 = 0xED0C_DAED;
pub const VERSION: u32 = 2;
/// `meta.freelist` when the freelist is not persisted (etcd on Linux).
pub const NO_FREELIST: PageId = PageId(u64::MAX);

const OFF_MAGIC: usize = 0;
const OFF_VERSION: usize = OFF_MAGIC + 4;
const OFF_PAGE_SIZE: usize = OFF_VERSION + 4;
const OFF_FLAGS: usize = OFF_PAGE_SIZE + 4;
const OFF_ROOT: usize = OFF_FLAGS + 4;
const OFF_SEQUENCE: usize = OFF_ROOT + 8;
const OFF_FREELIST: usize = OFF_SEQUENCE + 8;
const OFF_PGID: usize = OFF_FREELIST + 8;
const OFF_TXID: usize = OFF_PGID + 8;
const OFF_CHECKSUM: usize = OFF_TXID + 8;
/// Size of the meta struct.
pub const META_SIZE: usize = OFF_CHECKSUM + 8;
const _: () = assert!(META_SIZE == 64);

/// Smallest and largest page sizes we accept (bbolt allows any; etcd uses the OS page size).
pub const MIN_PAGE_SIZE: u32 = 1024;
pub const MAX_PAGE_SIZE: u32 = 1 << 20;

/// A decoded meta page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub page_size: u32,
    pub flags: u32,
    pub root: PageId,
    pub sequence: u64,
    pub freelist: PageId,
    pub pgid: PageId,
    pub txid: TxId,
    pub checksum: u64,
}

/// Why a meta page was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetaError {
    #[error("too short")]
    Short,
    #[error("big-endian bbolt files are not supported")]
    BigEndian,
    #[error("bad magic {0:#010x} (not a bbolt file)")]
    Magic(u32),
    #[error("version {0} is not bbolt's 2")]
    Version(u32),
    #[error("page size {found} differs from meta 0's {expected}")]
    PageSize { found: u32, expected: u32 },
    #[error("checksum mismatch (stored {stored:#018x}, computed {computed:#018x})")]
    Checksum { stored: u64, computed: u64 },
    #[error("unsupported page size {0}")]
    UnsupportedPageSize(u32),
    #[error("high-water mark {0} is below 3 pages")]
    HighWaterMarkTooLow(PageId),
    #[error("root page {root} outside 2..{hwm} (the high-water mark)")]
    RootOutside { root: PageId, hwm: PageId },
    #[error("freelist page {freelist} outside 2..{hwm}")]
    FreelistOutside { freelist: PageId, hwm: PageId },
}

/// FNV-1a, 64 bit.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

impl Meta {
    /// Decode and validate the meta struct at the start of `b` (page offset 16).
    pub fn decode(b: &[u8]) -> Result<Meta, MetaError> {
        let body = b.get(..META_SIZE).ok_or(MetaError::Short)?;
        let field32 = |o| u32_at(body, o).ok_or(MetaError::Short);
        let field64 = |o| u64_at(body, o).ok_or(MetaError::Short);
        let magic = field32(OFF_MAGIC)?;
        if magic != MAGIC {
            if magic.swap_bytes() == MAGIC {
                return Err(MetaError::BigEndian);
            }
            return Err(MetaError::Magic(magic));
        }
        let version = field32(OFF_VERSION)?;
        if version != VERSION {
            return Err(MetaError::Version(version));
        }
        let meta = Meta {
            page_size: field32(OFF_PAGE_SIZE)?,
            flags: field32(OFF_FLAGS)?,
            root: PageId(field64(OFF_ROOT)?),
            sequence: field64(OFF_SEQUENCE)?,
            freelist: PageId(field64(OFF_FREELIST)?),
            pgid: PageId(field64(OFF_PGID)?),
            txid: TxId(field64(OFF_TXID)?),
            checksum: field64(OFF_CHECKSUM)?,
        };
        let computed = fnv1a(&body[..OFF_CHECKSUM]);
        // bbolt <= 1.3.6 (etcd 3.4.23, 3.5.1) accepts a zero checksum; so do we.
        if meta.checksum != computed && meta.checksum != 0 {
            return Err(MetaError::Checksum {
                stored: meta.checksum,
                computed,
            });
        }
        Ok(meta)
    }

    /// Encode into the 64-byte meta struct, computing a fresh checksum.
    pub fn encode(&self) -> [u8; META_SIZE] {
        let mut b = [0u8; META_SIZE];
        b[OFF_MAGIC..OFF_MAGIC + 4].copy_from_slice(&MAGIC.to_le_bytes());
        b[OFF_VERSION..OFF_VERSION + 4].copy_from_slice(&VERSION.to_le_bytes());
        b[OFF_PAGE_SIZE..OFF_PAGE_SIZE + 4].copy_from_slice(&self.page_size.to_le_bytes());
        b[OFF_FLAGS..OFF_FLAGS + 4].copy_from_slice(&self.flags.to_le_bytes());
        b[OFF_ROOT..OFF_ROOT + 8].copy_from_slice(&self.root.0.to_le_bytes());
        b[OFF_SEQUENCE..OFF_SEQUENCE + 8].copy_from_slice(&self.sequence.to_le_bytes());
        b[OFF_FREELIST..OFF_FREELIST + 8].copy_from_slice(&self.freelist.0.to_le_bytes());
        b[OFF_PGID..OFF_PGID + 8].copy_from_slice(&self.pgid.0.to_le_bytes());
        b[OFF_TXID..OFF_TXID + 8].copy_from_slice(&self.txid.0.to_le_bytes());
        let sum = fnv1a(&b[..OFF_CHECKSUM]);
        b[OFF_CHECKSUM..].copy_from_slice(&sum.to_le_bytes());
        b
    }

    /// A whole meta page (header + meta, rest zero) for page `id` (0 or 1).
    pub fn encode_page(&self, id: u64) -> Vec<u8> {
        let mut page = vec![0u8; self.page_size as usize];
        PageHeader {
            id: PageId(id),
            flags: FLAG_META,
            count: 0,
            overflow: 0,
        }
        .encode(&mut page);
        page[PAGE_HEADER_SIZE..PAGE_HEADER_SIZE + META_SIZE].copy_from_slice(&self.encode());
        page
    }

    /// Field checks that bbolt leaves to chance: a page size we can use and page ids below
    /// the high-water mark.
    pub fn sanity(&self) -> Result<(), MetaError> {
        if !self.page_size.is_power_of_two()
            || !(MIN_PAGE_SIZE..=MAX_PAGE_SIZE).contains(&self.page_size)
        {
            return Err(MetaError::UnsupportedPageSize(self.page_size));
        }
        if self.pgid.0 < 3 {
            return Err(MetaError::HighWaterMarkTooLow(self.pgid));
        }
        if self.root.0 < 2 || self.root >= self.pgid {
            return Err(MetaError::RootOutside {
                root: self.root,
                hwm: self.pgid,
            });
        }
        if self.freelist != NO_FREELIST && (self.freelist.0 < 2 || self.freelist >= self.pgid) {
            return Err(MetaError::FreelistOutside {
                freelist: self.freelist,
                hwm: self.pgid,
            });
        }
        Ok(())
    }

    /// Bytes of the database proper (`Tx.Size()`): what a snapshot stream carries.
    pub fn db_size(&self) -> u64 {
        self.pgid.0.saturating_mul(u64::from(self.page_size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Meta {
        Meta {
            page_size: 4096,
            flags: 0,
            root: PageId(4),
            sequence: 0,
            freelist: NO_FREELIST,
            pgid: PageId(5),
            txid: TxId(10),
            checksum: 0,
        }
    }

    #[test]
    fn round_trip_and_known_checksum() {
        let bytes = sample().encode();
        let back = Meta::decode(&bytes).unwrap();
        // Checksum of formats-examples' snapshot meta 0 (root 4, pgid 5, txid 10).
        assert_eq!(back.checksum, 2399523709672736392);
        assert_eq!(
            Meta {
                checksum: 0,
                ..back
            },
            sample()
        );
    }

    #[test]
    fn flipped_and_truncated_metas_are_rejected() {
        let bytes = sample().encode();
        for i in 0..META_SIZE {
            let mut b = bytes;
            b[i] ^= 0x40;
            assert!(Meta::decode(&b).is_err(), "flip at {i} accepted");
        }
        for cut in 0..META_SIZE {
            assert_eq!(Meta::decode(&bytes[..cut]), Err(MetaError::Short));
        }
    }

    #[test]
    fn big_endian_magic_is_named() {
        let mut b = sample().encode();
        b[0..4].copy_from_slice(&MAGIC.to_be_bytes());
        assert_eq!(Meta::decode(&b), Err(MetaError::BigEndian));
        assert_eq!(
            MetaError::BigEndian.to_string(),
            "big-endian bbolt files are not supported"
        );
    }

    #[test]
    fn zero_checksum_is_accepted_like_bbolt_1_3_6() {
        let mut b = sample().encode();
        b[56..64].fill(0);
        assert!(Meta::decode(&b).is_ok());
    }
}
