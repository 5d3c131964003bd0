//! bbolt freelist page: the sorted ids of free (and pending) pages. Mirrors etcd-io/bbolt
//! `freelist.go` `read`/`write` (1.3.x) / `internal/freelist/shared.go` (1.4).
//!
//! ```text
//! page header, flags 0x10, count = number of ids
//! if count == 0xFFFF: body u64 0 holds the real count, ids follow from body offset 8
//! else:               ids start at body offset 0
//! ids: u64 little-endian, ascending
//! ```
//! etcd on Linux does not persist the freelist at all (`meta.freelist` = all ones); then the
//! free pages are the ones the tree does not reach.

use super::page::{u64_at, PageError, PageHeader, PageId, FLAG_FREELIST, PAGE_HEADER_SIZE};

const COUNT_OVERFLOW: u16 = 0xFFFF;

/// Decode the ids of a freelist page (`data` is the page's whole span).
pub fn decode(data: &[u8]) -> Result<Vec<PageId>, PageError> {
    let header = PageHeader::decode(data).ok_or(PageError::ShortHeader)?;
    if header.flags & FLAG_FREELIST == 0 {
        return Err(PageError::NotFreelist(header.flags));
    }
    let (count, start) = if header.count == COUNT_OVERFLOW {
        let n = u64_at(data, PAGE_HEADER_SIZE).ok_or(PageError::FreelistCountMissing)?;
        (n, PAGE_HEADER_SIZE + 8)
    } else {
        (u64::from(header.count), PAGE_HEADER_SIZE)
    };
    let bytes = count
        .checked_mul(8)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or(PageError::FreelistCountImpossible(count))?;
    let body = data
        .get(start..start.saturating_add(bytes))
        .ok_or(PageError::FreelistOverflow(count))?;
    Ok(body
        .chunks_exact(8)
        .filter_map(|c| c.try_into().ok().map(u64::from_le_bytes).map(PageId))
        .collect())
}

/// Encode a freelist page image of `pages` pages of `page_size` for `ids` (sorted).
pub fn encode(id: PageId, ids: &[PageId], page_size: usize) -> Vec<u8> {
    let overflowed = ids.len() >= COUNT_OVERFLOW as usize;
    let body = ids.len() * 8 + if overflowed { 8 } else { 0 };
    let pages = (PAGE_HEADER_SIZE + body) / page_size + 1;
    let mut page = vec![0u8; pages * page_size];
    PageHeader {
        id,
        flags: FLAG_FREELIST,
        count: if overflowed {
            COUNT_OVERFLOW
        } else {
            ids.len() as u16
        },
        overflow: (pages - 1) as u32,
    }
    .encode(&mut page);
    let mut off = PAGE_HEADER_SIZE;
    if overflowed {
        page[off..off + 8].copy_from_slice(&(ids.len() as u64).to_le_bytes());
        off += 8;
    }
    for id in ids {
        page[off..off + 8].copy_from_slice(&id.0.to_le_bytes());
        off += 8;
    }
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_small_and_overflowed_counts() {
        for n in [0usize, 3, 0xFFFE, 0xFFFF, 70_000] {
            let ids: Vec<PageId> = (0..n as u64).map(|i| PageId(i + 2)).collect();
            let page = encode(PageId(7), &ids, 4096);
            assert_eq!(decode(&page).unwrap(), ids, "n = {n}");
            let cut = &page[..page.len().min(PAGE_HEADER_SIZE + n * 4)];
            if n > 0 {
                assert!(decode(cut).is_err(), "truncated freelist of {n} accepted");
            }
        }
    }
}
