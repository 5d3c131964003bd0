//! The keyspace a snapshot holds, rebuilt offline from the MVCC `key` bucket the way etcd's
//! own restore rebuilds its index (etcd-io/etcd server/mvcc/kvstore.go `restore`): entries in
//! revision order, each a `mvccpb.KeyValue`, a tombstone (`t` suffix) ending a key's life.
//!
//! ```text
//! key bucket:  rev(main ‖ '_' ‖ sub) [‖ 't']  →  mvccpb.KeyValue
//! KeyValue:    1 key (bytes) · 2 create_revision · 3 mod_revision · 4 version (int64)
//!              5 value (bytes) · 6 lease (int64)
//! ```
//!
//! The state at revision N is, per user key, the last entry with main revision ≤ N, unless
//! that entry is a tombstone. The revision etcd serves after restoring the snapshot is the
//! larger of the last entry's main revision and the finished compaction (`meta`
//! `finishedCompactRev`); N must lie between the compaction and that revision.

use std::collections::BTreeMap;

use super::schema::{self, varint, Revision};
use crate::bolt::{BoltError, Db, ReadAt, Visitor};

/// One live key, as `etcdctl get -w json` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kv {
    pub key: Vec<u8>,
    pub create_revision: i64,
    pub mod_revision: i64,
    pub version: i64,
    pub lease: i64,
    /// Empty unless values were asked for.
    pub value: Vec<u8>,
    pub value_size: usize,
    /// crc32c of the value, to compare values without keeping them.
    pub value_crc: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyspaceError {
    #[error(transparent)]
    Bolt(#[from] BoltError),
    #[error("key bucket entry {0} is not a valid revision key")]
    BadRevision(String),
    #[error("the value at revision {main}.{sub} is not a readable mvccpb.KeyValue")]
    BadValue { main: i64, sub: i64 },
    #[error("revision {0} has been compacted away: the oldest readable revision is {1}")]
    Compacted(i64, i64),
    #[error("revision {0} is in the future: the snapshot ends at revision {1}")]
    Future(i64, i64),
    #[error("the key bucket's revisions are out of order at {0}")]
    OutOfOrder(String),
    /// What `snapshot status` refuses, every read path refuses: a page naming another page,
    /// keys out of order, a page neither reachable nor free.
    #[error("integrity check failed, {} found: {problems}", super::plural(problems.len(), "problem"))]
    Integrity { problems: crate::bolt::Problems },
}

/// What to read.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// `--rev N`; the latest when `None`.
    pub at: Option<i64>,
    /// Only keys starting with this.
    pub prefix: Vec<u8>,
    /// Only the key equal to `prefix` (`snapshot get`): other values are never held.
    pub exact: bool,
    /// Keep the values (otherwise only their sizes and checksums).
    pub values: bool,
}

impl Query {
    fn wants(&self, key: &[u8]) -> bool {
        if self.exact {
            key == self.prefix.as_slice()
        } else {
            key.starts_with(&self.prefix)
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Keyspace {
    /// Live keys in key order.
    pub kvs: Vec<Kv>,
    /// The revision the answer is at (etcd's header revision for a latest read).
    pub revision: i64,
    /// The revision etcd serves after restoring this snapshot.
    pub current: i64,
    /// The finished compaction, 0 when none.
    pub compacted: i64,
    /// Entries in the key bucket (all revisions, tombstones included).
    pub entries: u64,
}

/// Fields of a `mvccpb.KeyValue`, borrowed from the value.
pub struct Fields<'a> {
    pub key: &'a [u8],
    pub create_revision: i64,
    pub mod_revision: i64,
    pub version: i64,
    pub value: &'a [u8],
    pub lease: i64,
}

/// Decode a `mvccpb.KeyValue`; `None` when it is not one.
pub fn decode_kv(b: &[u8]) -> Option<Fields<'_>> {
    let mut f = Fields {
        key: &[],
        create_revision: 0,
        mod_revision: 0,
        version: 0,
        value: &[],
        lease: 0,
    };
    let mut i = 0;
    while i < b.len() {
        let (tag, n) = varint(b.get(i..)?)?;
        i += n;
        let field = tag >> 3;
        match tag & 7 {
            0 => {
                let (v, n) = varint(b.get(i..)?)?;
                i += n;
                let v = v as i64;
                match field {
                    2 => f.create_revision = v,
                    3 => f.mod_revision = v,
                    4 => f.version = v,
                    6 => f.lease = v,
                    _ => {}
                }
            }
            1 => i = i.checked_add(8)?,
            2 => {
                let (len, n) = varint(b.get(i..)?)?;
                let start = i + n;
                let end = start.checked_add(usize::try_from(len).ok()?)?;
                let bytes = b.get(start..end)?;
                match field {
                    1 => f.key = bytes,
                    5 => f.value = bytes,
                    _ => {}
                }
                i = end;
            }
            5 => i = i.checked_add(4)?,
            _ => return None,
        }
    }
    (i == b.len()).then_some(f)
}

/// The compaction etcd's restore starts from (`meta/finishedCompactRev`), 0 when none.
pub fn compacted<S: ReadAt>(db: &mut Db<S>) -> Result<i64, BoltError> {
    Ok(db
        .get(schema::BUCKET_META, schema::META_FINISHED_COMPACT)?
        .and_then(|v| Revision::main_of(&v))
        .unwrap_or(0))
}

struct Collect<'q> {
    query: &'q Query,
    live: BTreeMap<Vec<u8>, Kv>,
    last: Option<Revision>,
    entries: u64,
}

impl Visitor for Collect<'_> {
    type Error = KeyspaceError;

    fn entry(
        &mut self,
        path: &[Vec<u8>],
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<(), KeyspaceError> {
        if path.len() != 1 || path[0] != schema::BUCKET_KEY {
            return Ok(());
        }
        let Some(value) = value else { return Ok(()) };
        let rev = Revision::parse(key)
            .ok_or_else(|| KeyspaceError::BadRevision(crate::bolt::check::short_hex(key)))?;
        if let Some(last) = self.last {
            if (rev.main, rev.sub) <= (last.main, last.sub) {
                return Err(KeyspaceError::OutOfOrder(format!(
                    "{}.{}",
                    rev.main, rev.sub
                )));
            }
        }
        self.last = Some(rev);
        self.entries += 1;
        let f = decode_kv(value).ok_or(KeyspaceError::BadValue {
            main: rev.main,
            sub: rev.sub,
        })?;
        // The marker `--bump-revision` writes (etcdutl 3.5.10+/3.6 and ours) is a zero-length
        // value at the bumped revision: it moves the revision, it is no key (etcd refuses empty
        // keys, and serves none). It stays in the history for good, so every later snapshot of
        // a bumped cluster has it.
        let marker = f.key.is_empty();
        if marker || self.query.at.is_some_and(|at| rev.main > at) || !self.query.wants(f.key) {
            return Ok(());
        }
        if rev.tombstone {
            self.live.remove(f.key);
        } else {
            self.live.insert(
                f.key.to_vec(),
                Kv {
                    key: f.key.to_vec(),
                    create_revision: f.create_revision,
                    mod_revision: f.mod_revision,
                    version: f.version,
                    lease: f.lease,
                    value: if self.query.values {
                        f.value.to_vec()
                    } else {
                        Vec::new()
                    },
                    value_size: f.value.len(),
                    value_crc: crc32c::crc32c(f.value),
                },
            );
        }
        Ok(())
    }
}

/// Read the live keyspace the query asks for. Without `at`, the latest.
pub fn read<S: ReadAt>(db: &mut Db<S>, query: &Query) -> Result<Keyspace, KeyspaceError> {
    let compacted = compacted(db)?;
    let mut c = Collect {
        query,
        live: BTreeMap::new(),
        last: None,
        entries: 0,
    };
    let problems = db.walk_checked(&mut c)?;
    if !problems.is_empty() {
        return Err(KeyspaceError::Integrity { problems });
    }
    let last = c.last.map(|r| r.main).unwrap_or(0);
    // An empty store is at revision 1, as etcd's mvcc store starts (newStore: currentRev 1).
    let current = last.max(compacted).max(1);
    let revision = match query.at {
        None => current,
        Some(n) if n > current => return Err(KeyspaceError::Future(n, current)),
        Some(n) if n < compacted => return Err(KeyspaceError::Compacted(n, compacted)),
        Some(n) => n,
    };
    Ok(Keyspace {
        kvs: c.live.into_values().collect(),
        revision,
        current,
        compacted,
        entries: c.entries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Message;

    /// Whatever `snapshot status` refuses as structurally corrupt, the keyspace reader of
    /// `ls`, `get` and `diff` refuses too: every page header of a snapshot real etcd wrote,
    /// with its id, flags, count and overflow changed in turn (a page naming another page gave
    /// "0 keys at revision 0" and exit 0 before).
    #[test]
    fn structural_corruption_that_status_refuses_is_refused_here_too() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/k8s-small.db");
        let good = std::fs::read(path).unwrap();
        let page = 4096;
        let checks = crate::etcd::status::Checks {
            integrity: true,
            hash: false,
            user_keys: false,
        };
        let (mut refused, mut both) = (0, 0);
        for p in 2..good.len() / page {
            let at = p * page;
            let edits: [(usize, Vec<u8>); 6] = [
                (0, ((p + 1) as u64).to_le_bytes().to_vec()),
                (0, 0u64.to_le_bytes().to_vec()),
                (8, vec![good[at + 8] ^ 0x03, good[at + 9]]),
                (
                    10,
                    (u16::from_le_bytes([good[at + 10], good[at + 11]]) + 1)
                        .to_le_bytes()
                        .to_vec(),
                ),
                (10, 0u16.to_le_bytes().to_vec()),
                (12, 1u32.to_le_bytes().to_vec()),
            ];
            for (offset, bytes) in edits {
                let mut bad = good.clone();
                bad[at + offset..at + offset + bytes.len()].copy_from_slice(&bytes);
                let status = crate::etcd::status::status(&bad, checks);
                if !matches!(status, Err(crate::etcd::SnapshotError::Integrity { .. })) {
                    continue;
                }
                refused += 1;
                let read_fails = Db::open(bad.clone())
                    .map_err(KeyspaceError::from)
                    .and_then(|mut db| read(&mut db, &Query::default()))
                    .is_err();
                assert!(
                    read_fails,
                    "page {p}, offset {offset}: status refuses, ls reads"
                );
                both += 1;
            }
        }
        assert!(refused >= 30, "only {refused} edits were refused by status");
        assert_eq!(both, refused);
    }

    #[test]
    fn key_values_decode_and_garbage_does_not() {
        let kv = Message::new()
            .bytes(1, b"/a")
            .uint(2, 5)
            .uint(3, 7)
            .uint(4, 2)
            .bytes(5, b"v")
            .uint(6, 9)
            .finish();
        let f = decode_kv(&kv).unwrap();
        assert_eq!(
            (
                f.key,
                f.create_revision,
                f.mod_revision,
                f.version,
                f.value,
                f.lease
            ),
            (&b"/a"[..], 5, 7, 2, &b"v"[..], 9)
        );
        for cut in 0..kv.len() {
            // Every truncation is refused or decodes without panicking.
            let _ = decode_kv(&kv[..cut]);
        }
        assert!(decode_kv(&[0x0b]).is_none());
        assert!(decode_kv(&[0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]).is_none());
    }
}

/// Where a Kubernetes key belongs: `/registry/<resource>/<namespace>/<name>`, or
/// `/registry/<resource>/<name>` for cluster-scoped resources; a first segment with a dot is an
/// API group (`/registry/<group>/<resource>/...`, as CRDs and aggregated APIs store them).
/// `None` for keys outside `/registry/`.
pub fn kubernetes_place(key: &[u8]) -> Option<(String, Option<String>)> {
    let rest = key.strip_prefix(b"/registry/")?;
    let rest = String::from_utf8_lossy(rest);
    let parts: Vec<&str> = rest.split('/').collect();
    let (resource, tail) = match parts.as_slice() {
        [group, resource, tail @ ..] if group.contains('.') => {
            (format!("{group}/{resource}"), tail)
        }
        [resource, tail @ ..] => (resource.to_string(), tail),
        [] => return None,
    };
    let namespace = match tail {
        [ns, _name, ..] => Some(ns.to_string()),
        _ => None,
    };
    Some((resource, namespace))
}

#[cfg(test)]
mod place_tests {
    use super::kubernetes_place;

    #[test]
    fn places() {
        let p = |k: &str| kubernetes_place(k.as_bytes());
        assert_eq!(
            p("/registry/pods/default/nginx"),
            Some(("pods".into(), Some("default".into())))
        );
        assert_eq!(
            p("/registry/namespaces/default"),
            Some(("namespaces".into(), None))
        );
        assert_eq!(
            p("/registry/cert-manager.io/certificates/ns1/c"),
            Some(("cert-manager.io/certificates".into(), Some("ns1".into())))
        );
        assert_eq!(
            p("/registry/apiregistration.k8s.io/apiservices/v1.apps"),
            Some(("apiregistration.k8s.io/apiservices".into(), None))
        );
        assert_eq!(p("/other/key"), None);
    }
}
