//! `snapshot status`'s walk over an etcd database in a bbolt file: etcdutl's HASH, REVISION,
//! TOTAL KEYS and TOTAL SIZE (and VERSION for 3.6 files), computed exactly as etcdutl does for
//! the version that wrote the file, plus the sha256 trailer, consistent index, compaction and
//! the members stored in the snapshot. Mirrors etcd-io/etcd etcdutl/snapshot/v3_snapshot.go
//! `Status` (3.5 and 3.6). Used by `snapshot status`, by `snapshot save` to read back what it
//! wrote, and by `snapshot restore` to check its input.
//!
//! One pass over the tree computes the hash and runs the integrity check; the sha256 trailer is
//! verified on a second thread at the same time.

use std::collections::HashSet;
use std::io::Read;
use std::sync::mpsc::{self, Receiver, SyncSender};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::schema::{self, Revision};
use super::stored_members::{MemberSummary, StoredMember};
use super::SnapshotError;
use crate::bolt::check::short_hex;
use crate::bolt::{Db, ReadAt, Visitor};

/// Length of the sha256 trailer `snapshot save` appends.
pub const TRAILER_LEN: u64 = 32;

/// Whether a file carries the sha256 trailer: etcd's rule, `size % 512 == 32`.
pub fn has_trailer(size: u64) -> bool {
    size % 512 == TRAILER_LEN
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Trailer {
    /// The trailer is the sha256 of the database bytes.
    Verified,
    /// The trailer does not match the database bytes.
    Mismatch,
    /// No trailer: a raw `member/snap/db`.
    Absent,
    /// Not checked (`--skip-hash-check`).
    Unchecked,
}

impl Trailer {
    pub fn describe(&self) -> &'static str {
        match self {
            Trailer::Verified => "verified",
            Trailer::Mismatch => "MISMATCH",
            Trailer::Absent => "absent — raw db file",
            Trailer::Unchecked => "not checked",
        }
    }
}

/// What `snapshot status` reports. The first five fields are etcdutl's.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotStatus {
    pub hash: u32,
    pub revision: i64,
    pub total_key: u64,
    pub total_size: u64,
    /// `meta/storageVersion` (etcd 3.6+), empty for files written by 3.4/3.5.
    pub version: String,
    /// The file has `meta/storageVersion`: written by etcd 3.6+, counted and shown as 3.6 does.
    #[serde(skip)]
    pub etcd_3_6: bool,
    /// etcdutl 3.5's total: every entry of every bucket.
    #[serde(rename = "totalKeyEtcdutl35")]
    pub total_key_etcdutl_3_5: u64,
    /// etcdutl 3.6's and 3.7's total: live user keys (the bump marker counts as one); computed
    /// for 3.6 files, or when asked.
    #[serde(rename = "totalKeyEtcdutl36", skip_serializing_if = "Option::is_none")]
    pub total_key_etcdutl_3_6: Option<u64>,
    /// Which etcdutl's total `total_key` is: `etcdutl-3.5` or `etcdutl-3.6`.
    pub rules: &'static str,
    pub trailer: Trailer,
    pub consistent_index: Option<u64>,
    pub term: Option<u64>,
    pub compact_revision: Option<i64>,
    pub scheduled_compact_revision: Option<i64>,
    pub cluster_version: Option<String>,
    pub members: Vec<MemberSummary>,
    pub removed_members: Vec<String>,
    /// The `key` bucket holds Kubernetes objects (`/registry/...`).
    pub kubernetes: bool,
    pub page_size: usize,
    pub txid: u64,
    pub file_size: u64,
    pub integrity_checked: bool,
}

/// The two ways etcdutl counts `totalKey` (3.7 counts as 3.6).
pub const RULES_3_5: &str = "etcdutl-3.5";
pub const RULES_3_6: &str = "etcdutl-3.6";

/// What to check besides computing the numbers.
#[derive(Debug, Clone, Copy)]
pub struct Checks {
    /// bbolt's structural check (key order, freelist, both metas valid).
    pub integrity: bool,
    /// Verify the sha256 trailer when there is one.
    pub hash: bool,
    /// Count the live user keys (etcdutl 3.6's total) for every file, not only 3.6 ones; it
    /// holds a 16-byte hash of every live key in memory.
    pub user_keys: bool,
}

/// Compute the status of a snapshot or db held by `src`.
pub fn status<S: ReadAt>(src: &S, checks: Checks) -> Result<SnapshotStatus, SnapshotError> {
    let size = src.size();
    std::thread::scope(|scope| {
        let sha = (checks.hash && has_trailer(size)).then(|| scope.spawn(|| verify_trailer(src)));
        let numbers = compute(src, checks.integrity, checks.user_keys);
        let trailer = match sha {
            None if has_trailer(size) => Trailer::Unchecked,
            None => Trailer::Absent,
            Some(handle) => match handle.join() {
                Ok(Ok(true)) => Trailer::Verified,
                Ok(Ok(false)) => Trailer::Mismatch,
                Ok(Err(e)) => return Err(SnapshotError::Trailer(e)),
                Err(_) => return Err(SnapshotError::HashThread),
            },
        };
        let mut status = numbers?;
        status.trailer = trailer;
        status.file_size = size;
        Ok(status)
    })
}

/// Stream the database bytes through sha256 and compare with the trailer.
fn verify_trailer<S: ReadAt>(src: &S) -> std::io::Result<bool> {
    let db_len = src.size() - TRAILER_LEN;
    let mut trailer = [0u8; TRAILER_LEN as usize];
    src.read_exact_at(&mut trailer, db_len)?;
    let mut hasher = Sha256::new();
    let mut reader = ReadAtStream {
        src,
        pos: 0,
        end: db_len,
    };
    let mut buf = crate::buf::AlignedBuf::new(1 << 20);
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().as_slice() == trailer)
}

struct ReadAtStream<'a, S: ReadAt> {
    src: &'a S,
    pos: u64,
    end: u64,
}

impl<S: ReadAt> Read for ReadAtStream<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (self.end - self.pos).min(buf.len() as u64) as usize;
        self.src.read_exact_at(&mut buf[..n], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

fn compute<S: ReadAt>(
    src: &S,
    integrity: bool,
    user_keys: bool,
) -> Result<SnapshotStatus, SnapshotError> {
    let mut db = Db::open(src)?;
    let storage_version = db
        .get(schema::BUCKET_META, schema::META_STORAGE_VERSION)?
        .map(|v| semver(&v));
    let count_live = user_keys || storage_version.is_some();
    // The live-key set is kept on a second core: its inserts into a table larger than the
    // caches were a tenth of the walk.
    let (ops, todo) = mpsc::sync_channel(LIVE_BATCHES_AHEAD);
    std::thread::scope(|scope| {
        let counter = count_live.then(|| scope.spawn(move || count_live_keys(todo)));
        let mut visitor = StatusVisitor {
            crc: 0,
            total_key: 0,
            revision: 0,
            live: count_live.then(|| LiveKeys::new(ops)),
            live_count: None,
            meta: Vec::new(),
            members: Vec::new(),
            removed: Vec::new(),
            cluster_version: None,
            kubernetes: false,
        };
        let walked = if integrity {
            db.walk_checked(&mut visitor)
        } else {
            db.walk(&mut visitor, false)
        };
        // Hand over the last batch and hang up, so that the counter finishes.
        if let Some(live) = visitor.live.take() {
            live.finish();
        }
        if let Some(counter) = counter {
            visitor.live_count = Some(counter.join().map_err(|_| SnapshotError::LiveKeyThread)?);
        }
        let problems = walked?;
        if !problems.is_empty() {
            return Err(SnapshotError::Integrity { problems });
        }
        let meta = *db.meta();
        visitor.into_status(meta, db.page_size(), storage_version, integrity)
    })
}

impl StatusVisitor {
    /// The numbers and facts collected by the walk, as the status.
    fn into_status(
        self,
        meta: crate::bolt::Meta,
        page_size: usize,
        storage_version: Option<String>,
        integrity: bool,
    ) -> Result<SnapshotStatus, SnapshotError> {
        let meta_value = |key: &[u8]| {
            self.meta
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_slice())
        };
        let compact = |key: &[u8]| meta_value(key).and_then(Revision::main_of);
        let mut members = Vec::new();
        for (k, v) in &self.members {
            members.push(MemberSummary::from(&StoredMember::parse(k, v)?));
        }
        Ok(SnapshotStatus {
            hash: self.crc,
            revision: self.revision,
            total_key: match (self.live_count, storage_version.is_some()) {
                (Some(live), true) => live,
                _ => self.total_key,
            },
            total_key_etcdutl_3_5: self.total_key,
            total_key_etcdutl_3_6: self.live_count,
            rules: if storage_version.is_some() {
                RULES_3_6
            } else {
                RULES_3_5
            },
            total_size: meta.db_size(),
            etcd_3_6: storage_version.is_some(),
            version: storage_version.unwrap_or_default(),
            trailer: Trailer::Absent,
            consistent_index: meta_value(schema::META_CONSISTENT_INDEX).and_then(schema::be_u64),
            term: meta_value(schema::META_TERM).and_then(schema::be_u64),
            compact_revision: compact(schema::META_FINISHED_COMPACT),
            scheduled_compact_revision: compact(schema::META_SCHEDULED_COMPACT),
            cluster_version: self
                .cluster_version
                .as_ref()
                .map(|v| String::from_utf8_lossy(v).into_owned()),
            members,
            removed_members: self
                .removed
                .iter()
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .collect(),
            kubernetes: self.kubernetes,
            page_size,
            txid: meta.txid.0,
            file_size: 0,
            integrity_checked: integrity,
        })
    }
}

/// etcd 3.6 re-prints the stored version through semver: `3.6.0`.
fn semver(v: &[u8]) -> String {
    let text = String::from_utf8_lossy(v);
    let parts: Vec<&str> = text.trim().splitn(3, '.').collect();
    match parts.as_slice() {
        [a, b, c] if [a, b, c].iter().all(|p| p.parse::<u64>().is_ok()) => format!("{a}.{b}.{c}"),
        _ => String::new(),
    }
}

/// Feeds etcdutl's CRC-32C: each top-level bucket's name, then each of its keys and values.
struct StatusVisitor {
    crc: u32,
    total_key: u64,
    revision: i64,
    /// 3.6 files: the user keys whose newest revision is not a tombstone.
    live: Option<LiveKeys>,
    /// What the live-key counter found, once the walk is over.
    live_count: Option<u64>,
    meta: Vec<(Vec<u8>, Vec<u8>)>,
    members: Vec<(Vec<u8>, Vec<u8>)>,
    removed: Vec<Vec<u8>>,
    cluster_version: Option<Vec<u8>>,
    kubernetes: bool,
}

impl Visitor for StatusVisitor {
    type Error = SnapshotError;
    fn entry(
        &mut self,
        path: &[Vec<u8>],
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<(), SnapshotError> {
        match path {
            [] => {
                if value.is_some() {
                    return Err(SnapshotError::PlainKeyInRoot(
                        String::from_utf8_lossy(key).into_owned(),
                    ));
                }
                self.crc = crc32c::crc32c_append(self.crc, key);
            }
            [bucket] => {
                self.crc = crc32c::crc32c_append(self.crc, key);
                if let Some(v) = value {
                    self.crc = crc32c::crc32c_append(self.crc, v);
                }
                self.total_key += 1;
                match bucket.as_slice() {
                    schema::BUCKET_KEY => {
                        self.revision = Revision::main_of(key)
                            .ok_or_else(|| SnapshotError::NotARevision(short_hex(key)))?;
                        if !self.kubernetes {
                            self.kubernetes = value
                                .and_then(schema::kv_user_key)
                                .is_some_and(|k| k.starts_with(b"/registry/"));
                        }
                        if let Some(live) = &mut self.live {
                            track_live(live, key, value.unwrap_or_default())?;
                        }
                    }
                    schema::BUCKET_META => self
                        .meta
                        .push((key.to_vec(), value.unwrap_or_default().to_vec())),
                    schema::BUCKET_MEMBERS => self
                        .members
                        .push((key.to_vec(), value.unwrap_or_default().to_vec())),
                    schema::BUCKET_MEMBERS_REMOVED => self.removed.push(key.to_vec()),
                    schema::BUCKET_CLUSTER if key == schema::CLUSTER_VERSION => {
                        self.cluster_version = value.map(<[u8]>::to_vec)
                    }
                    _ => {}
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// etcd 3.6's live-key count: a put adds its user key, a tombstone removes it.
fn track_live(live: &mut LiveKeys, key: &[u8], value: &[u8]) -> Result<(), SnapshotError> {
    let rev = Revision::parse(key).ok_or_else(|| SnapshotError::NotARevision(short_hex(key)))?;
    // A bump marker has an empty value; 3.6 counts it as one (empty) live key.
    let user_key = if value.is_empty() {
        &[][..]
    } else {
        schema::kv_user_key(value).ok_or(SnapshotError::NotAKeyValue(rev.main))?
    };
    if rev.tombstone {
        live.remove(user_key);
    } else {
        live.insert(user_key);
    }
    Ok(())
}

/// The user keys whose newest revision is a put, each as a 128-bit keyed hash: exact unless two
/// keys collide in two independently seeded 64-bit hashes at once, and flat in memory (16 bytes
/// a key; no copy of the key), where a set of the keys themselves costs SipHash, an allocation
/// per key and memory that grows with the keys (half of a 1 GB `--skip-hash-check` status went
/// there). The seeds are drawn per process, so keys crafted in a snapshot cannot be made to
/// collide. The walk hashes each key and sends the puts and tombstones in order, in batches,
/// to [`count_live_keys`] on another thread, which keeps the set.
struct LiveKeys {
    seeds: [u64; 2],
    batch: Vec<LiveOp>,
    to: SyncSender<Vec<LiveOp>>,
}

/// A key's id, and whether it was put (or deleted).
type LiveOp = (u128, bool);
const LIVE_BATCH: usize = 8192;
const LIVE_BATCHES_AHEAD: usize = 4;

impl LiveKeys {
    fn new(to: SyncSender<Vec<LiveOp>>) -> LiveKeys {
        use std::hash::{BuildHasher, Hasher};
        let seed = || std::hash::RandomState::new().build_hasher().finish() | 1;
        LiveKeys {
            seeds: [seed(), seed()],
            batch: Vec::with_capacity(LIVE_BATCH),
            to,
        }
    }

    fn id(&self, key: &[u8]) -> u128 {
        let [a, b] = self.seeds.map(|seed| mix(seed, key));
        (u128::from(a) << 64) | u128::from(b)
    }

    fn record(&mut self, key: &[u8], put: bool) {
        let id = self.id(key);
        self.batch.push((id, put));
        if self.batch.len() == LIVE_BATCH {
            let full = std::mem::replace(&mut self.batch, Vec::with_capacity(LIVE_BATCH));
            // The counter only stops when we hang up.
            let _ = self.to.send(full);
        }
    }

    fn insert(&mut self, key: &[u8]) {
        self.record(key, true);
    }

    fn remove(&mut self, key: &[u8]) {
        self.record(key, false);
    }

    /// Send what is left; the counter finishes once this is dropped.
    fn finish(self) {
        if !self.batch.is_empty() {
            let _ = self.to.send(self.batch);
        }
    }
}

/// Apply the puts and tombstones, in order, to a set of ids: its size at the end.
fn count_live_keys(ops: Receiver<Vec<LiveOp>>) -> u64 {
    let mut set: HashSet<u128, std::hash::BuildHasherDefault<Folded>> = HashSet::default();
    for batch in ops {
        for (id, put) in batch {
            if put {
                set.insert(id);
            } else {
                set.remove(&id);
            }
        }
    }
    set.len() as u64
}

/// rustc's FxHasher step over the key eight bytes at a time, the length first, then a final
/// avalanche so that every output bit depends on every input byte.
fn mix(seed: u64, key: &[u8]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let step = |h: u64, w: u64| (h.rotate_left(5) ^ w).wrapping_mul(K);
    let mut h = step(seed, key.len() as u64);
    let mut chunks = key.chunks_exact(8);
    for c in &mut chunks {
        h = step(
            h,
            u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]),
        );
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        h = step(h, u64::from_le_bytes(w));
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// The hash table's own hash of an id that is a hash already: its two halves folded.
#[derive(Default)]
struct Folded(u64);

impl std::hash::Hasher for Folded {
    fn write(&mut self, bytes: &[u8]) {
        for c in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..c.len()].copy_from_slice(c);
            self.0 ^= u64::from_le_bytes(w);
        }
    }

    fn write_u128(&mut self, v: u128) {
        self.0 ^= (v as u64) ^ ((v >> 64) as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Streams everything into the sink, hashing all but the last 32 bytes seen, so that at the
/// end the held-back bytes are the trailer to compare with.
pub struct TrailerCheck {
    hasher: Sha256,
    tail: Vec<u8>,
    pub total: u64,
}

impl TrailerCheck {
    pub fn new() -> TrailerCheck {
        TrailerCheck {
            hasher: Sha256::new(),
            tail: Vec::with_capacity(2 * TRAILER_LEN as usize),
            total: 0,
        }
    }

    pub fn feed(&mut self, blob: &[u8]) {
        const T: usize = TRAILER_LEN as usize;
        self.total += blob.len() as u64;
        if blob.len() >= T {
            self.hasher.update(&self.tail);
            let (body, last) = blob.split_at(blob.len() - T);
            self.hasher.update(body);
            self.tail.clear();
            self.tail.extend_from_slice(last);
        } else {
            self.tail.extend_from_slice(blob);
            if self.tail.len() > T {
                let extra = self.tail.len() - T;
                self.hasher.update(&self.tail[..extra]);
                self.tail.drain(..extra);
            }
        }
    }

    /// sha256 of everything fed (database and trailer): the plain file's hash, from the
    /// state already computed, without a second pass.
    pub fn file_sha256(&self) -> [u8; 32] {
        let mut whole = self.hasher.clone();
        whole.update(&self.tail);
        whole.finalize().into()
    }

    pub fn verify(&self) -> Result<(), TrailerError> {
        if !has_trailer(self.total) {
            return Err(TrailerError::Missing(self.total));
        }
        if self.hasher.clone().finalize().as_slice() != self.tail.as_slice() {
            return Err(TrailerError::Mismatch(self.total - TRAILER_LEN));
        }
        Ok(())
    }
}

impl Default for TrailerCheck {
    fn default() -> TrailerCheck {
        TrailerCheck::new()
    }
}

/// What [`TrailerCheck::verify`] found wrong.
#[derive(Debug, thiserror::Error)]
pub enum TrailerError {
    #[error("the stream ended without a sha256 trailer ({0} bytes received); the snapshot is incomplete")]
    Missing(u64),
    #[error("the sha256 trailer does not match the {0} bytes before it")]
    Mismatch(u64),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bolt::FileSource;

    const EXAMPLE: &[u8] = include_bytes!("../../examples/k8s-small.db");
    const CHECKS: Checks = Checks {
        integrity: true,
        hash: true,
        user_keys: false,
    };

    #[test]
    fn example_status_matches_etcdutl() {
        // etcdutl 3.5.1 snapshot status -w json examples/k8s-small.db (examples/README.md).
        let s = status(&EXAMPLE.to_vec(), CHECKS).unwrap();
        assert_eq!(format!("{:x}", s.hash), "6a106113");
        assert_eq!(s.revision, 30);
        assert_eq!(s.total_key, 325);
        assert_eq!(s.total_size, 61440);
        assert_eq!(s.trailer, Trailer::Verified);
        assert_eq!(s.members.len(), 1);
    }

    /// A 3.6 file (one with `meta/storageVersion`) counts live user keys and shows VERSION.
    /// The example holds 3 namespaces x 100 objects + 10 leases + 1 event - 5 deleted pods
    /// (examples/make-example.sh) = 306 live keys.
    #[test]
    fn storage_version_switches_to_etcd_3_6_rules() {
        use crate::bolt::reader::bucket_root;
        use crate::bolt::writer::Writer;
        use crate::bolt::{bucket_entries, Entry};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        std::fs::write(&path, &EXAMPLE[..EXAMPLE.len() - TRAILER_LEN as usize]).unwrap();
        let mut db = Db::open_file(&path).unwrap();
        let meta = *db.meta();
        let root = db.root();
        let mut top = bucket_entries(&mut db, &root).unwrap();
        let mut w = Writer::new(&meta);
        for e in top.iter_mut().filter(|e| e.key == schema::BUCKET_META) {
            let mut entries = bucket_entries(&mut db, &bucket_root(&e.value).unwrap()).unwrap();
            entries.push(Entry {
                key: schema::META_STORAGE_VERSION.to_vec(),
                value: b"3.6.0".to_vec(),
                bucket: false,
            });
            entries.sort_by(|a, b| a.key.cmp(&b.key));
            e.value = w.bucket_value(&entries, 0);
        }
        let new_root = w.tree(&top);
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        w.commit(&file, &meta, new_root).unwrap();

        let s = status(&FileSource::open(&path).unwrap(), CHECKS).unwrap();
        assert!(s.etcd_3_6);
        assert_eq!(s.version, "3.6.0");
        assert_eq!(s.total_key, 306);
        assert_eq!(s.revision, 30);
    }

    #[test]
    fn every_truncation_is_an_error_or_a_raw_db_never_a_panic() {
        let db_len = EXAMPLE.len() - TRAILER_LEN as usize;
        for cut in 0..EXAMPLE.len() {
            let r = status(&EXAMPLE[..cut].to_vec(), CHECKS);
            if cut < db_len {
                assert!(r.is_err(), "prefix of {cut} bytes accepted");
            }
        }
    }

    #[test]
    fn byte_flips_never_panic_and_are_caught() {
        // A small deterministic generator: the same flips on every run.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut caught = 0;
        for _ in 0..3000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let pos = (x % EXAMPLE.len() as u64) as usize;
            let mut bytes = EXAMPLE.to_vec();
            bytes[pos] ^= 1 << (x >> 60 & 7);
            match status(&bytes, CHECKS) {
                Err(_) => caught += 1,
                Ok(s) if s.trailer == Trailer::Mismatch => caught += 1,
                Ok(s) => panic!("flip at {pos} went unnoticed: {s:?}"),
            }
        }
        assert_eq!(caught, 3000);
    }

    mod trailer {
        use super::super::*;
        use sha2::{Digest, Sha256};

        fn stream(db: &[u8], chunks: &[usize]) -> TrailerCheck {
            let mut file = db.to_vec();
            file.extend_from_slice(&Sha256::digest(db));
            let mut check = TrailerCheck::new();
            let mut rest = file.as_slice();
            let mut i = 0;
            while !rest.is_empty() {
                let n = chunks[i % chunks.len()].min(rest.len());
                check.feed(&rest[..n]);
                rest = &rest[n..];
                i += 1;
            }
            check
        }

        #[test]
        fn trailer_is_found_whatever_the_chunking() {
            let db = vec![7u8; 4096 * 3];
            for chunks in [&[32768][..], &[1], &[31], &[32], &[33], &[5, 40, 1, 32]] {
                assert!(stream(&db, chunks).verify().is_ok(), "{chunks:?}");
            }
        }

        #[test]
        fn missing_or_wrong_trailer_is_refused() {
            let db = vec![7u8; 4096 * 3];
            let mut check = TrailerCheck::new();
            check.feed(&db);
            assert!(check
                .verify()
                .unwrap_err()
                .to_string()
                .contains("without a sha256 trailer"));
            let mut check = TrailerCheck::new();
            check.feed(&db);
            check.feed(&[0u8; 32]);
            assert!(check
                .verify()
                .unwrap_err()
                .to_string()
                .contains("does not match"));
        }
    }
}
