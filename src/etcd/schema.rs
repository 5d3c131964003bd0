//! etcd's backend schema: the top-level buckets, revision keys of the `key` bucket, and the
//! keys of the `meta` bucket. Mirrors etcd-io/etcd server/mvcc/buckets/bucket.go (3.5),
//! server/storage/schema (3.6), server/mvcc/revision.go.
//!
//! ```text
//! revision key (key bucket)      17 bytes: main u64 BE ‖ '_' ‖ sub u64 BE
//! tombstone                      18 bytes: the same ‖ 't'
//! meta/consistent_index, term    u64 BE
//! meta/scheduledCompactRev,
//! meta/finishedCompactRev        17-byte revision (sub 0)
//! meta/storageVersion (3.6)      ASCII "3.6.0"
//! ```

pub const BUCKET_KEY: &[u8] = b"key";
pub const BUCKET_META: &[u8] = b"meta";
pub const BUCKET_LEASE: &[u8] = b"lease";
pub const BUCKET_ALARM: &[u8] = b"alarm";
pub const BUCKET_CLUSTER: &[u8] = b"cluster";
pub const BUCKET_MEMBERS: &[u8] = b"members";
pub const BUCKET_MEMBERS_REMOVED: &[u8] = b"members_removed";
pub const BUCKET_AUTH: &[u8] = b"auth";
pub const BUCKET_AUTH_USERS: &[u8] = b"authUsers";
pub const BUCKET_AUTH_ROLES: &[u8] = b"authRoles";

pub const META_CONSISTENT_INDEX: &[u8] = b"consistent_index";
pub const META_TERM: &[u8] = b"term";
pub const META_CONF_STATE: &[u8] = b"confState";
pub const META_SCHEDULED_COMPACT: &[u8] = b"scheduledCompactRev";
pub const META_FINISHED_COMPACT: &[u8] = b"finishedCompactRev";
pub const META_STORAGE_VERSION: &[u8] = b"storageVersion";
pub const CLUSTER_VERSION: &[u8] = b"clusterVersion";

/// Length of a revision key; a tombstone has one more byte.
pub const REVISION_LEN: usize = 17;
const TOMBSTONE_MARK: u8 = b't';

/// A parsed `key`-bucket key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Revision {
    pub main: i64,
    pub sub: i64,
    pub tombstone: bool,
}

impl Revision {
    /// The main revision as etcd 3.4/3.5 read it: the first 8 bytes, big-endian, unchecked.
    pub fn main_of(key: &[u8]) -> Option<i64> {
        Some(i64::from_be_bytes(key.get(..8)?.try_into().ok()?))
    }

    /// Parse strictly, as etcd 3.6 does: 17 or 18 bytes, `_` separator, non-negative parts.
    pub fn parse(key: &[u8]) -> Option<Revision> {
        let tombstone = match key.len() {
            REVISION_LEN => false,
            18 if key[17] == TOMBSTONE_MARK => true,
            _ => return None,
        };
        if key[8] != b'_' {
            return None;
        }
        let main = i64::from_be_bytes(key[..8].try_into().ok()?);
        let sub = i64::from_be_bytes(key[9..17].try_into().ok()?);
        (main >= 0 && sub >= 0).then_some(Revision {
            main,
            sub,
            tombstone,
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut k = Vec::with_capacity(REVISION_LEN + 1);
        k.extend_from_slice(&self.main.to_be_bytes());
        k.push(b'_');
        k.extend_from_slice(&self.sub.to_be_bytes());
        if self.tombstone {
            k.push(TOMBSTONE_MARK);
        }
        k
    }
}

/// A u64 stored big-endian (consistent_index, term, authRevision).
pub fn be_u64(value: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(value.try_into().ok()?))
}

/// The user key (`mvccpb.KeyValue` field 1) of a `key`-bucket value, by a minimal protobuf
/// scan: etcd writes field 1 first, but any order is accepted.
pub fn kv_user_key(value: &[u8]) -> Option<&[u8]> {
    let mut i = 0;
    while i < value.len() {
        let (tag, n) = varint(&value[i..])?;
        i += n;
        match tag & 7 {
            0 => i += varint(&value[i..])?.1,
            1 => i += 8,
            2 => {
                let (len, n) = varint(&value[i..])?;
                let start = i + n;
                let end = start.checked_add(usize::try_from(len).ok()?)?;
                if tag >> 3 == 1 {
                    return value.get(start..end);
                }
                i = end;
            }
            5 => i += 4,
            _ => return None,
        }
    }
    None
}

/// Decode a protobuf varint; returns the value and its length.
pub fn varint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revision_keys() {
        let r = Revision {
            main: 6,
            sub: 0,
            tombstone: true,
        };
        let k = r.encode();
        assert_eq!(k.len(), 18);
        assert_eq!(Revision::parse(&k), Some(r));
        assert_eq!(Revision::main_of(&k), Some(6));
        assert_eq!(Revision::parse(&k[..16]), None);
        let mut bad = k.clone();
        bad[8] = b'x';
        assert_eq!(Revision::parse(&bad), None);
    }

    #[test]
    fn user_key_from_keyvalue() {
        // `put foo bar` at revision 2, as etcd 3.5.1 stores it (server/mvcc/kvstore_txn.go `put`).
        let v = [
            0x0a, 0x03, b'f', b'o', b'o', 0x10, 0x02, 0x18, 0x02, 0x20, 0x01, 0x2a, 0x03, b'b',
            b'a', b'r',
        ];
        assert_eq!(kv_user_key(&v), Some(&b"foo"[..]));
        assert_eq!(kv_user_key(&[0x0a, 0x05, b'a']), None);
        assert_eq!(kv_user_key(&[]), None);
    }
}
