//! Chains in a store: a base snapshot (a generated snapshot with its sidecar) and the
//! revision-log segments `snapshot follow` wrote after it, each with a sidecar.
//!
//! ```text
//! etcd-cp1-20261207T031400Z.db.zst.age                  the base (as `snapshot save DEST` names it)
//! etcd-cp1-20261207T031400Z.log-<THROUGH>-<MILLIS>.seg.zst.age        a segment: revisions
//! etcd-cp1-20261207T031400Z.log-<THROUGH>-<MILLIS>.seg.zst.age.json   (AFTER, THROUGH], its sidecar
//! ```
//!
//! THROUGH is the last revision the segment completes (20 digits), MILLIS the Unix time in
//! milliseconds it was written (13 digits): names sort in log order. A segment is trusted only
//! with its sidecar, written after the object was read back. A chain is the base's segments in
//! order while each continues the one before: its AFTER is the last one's THROUGH (the base's
//! revision for the first), and its `previous_sha256` is the last one's object sha256 (the
//! base's for the first) — a hash chain. A segment that does not continue is left out and
//! said (`problems`), never hidden: the window ends at the last one that does.

use std::io::Read;

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::segment::{self, Record};
use crate::remote::codec::{self, Encoder, Encoding, Identities};
pub use crate::remote::meta::{parse_segment_name, segment_name, stem_of, SegmentName};
use crate::remote::meta::{MAX_SIDECAR, SIDECAR_SUFFIX};
use crate::remote::store::{Backup, Store};
use crate::units::hex;

/// Written into every segment sidecar.
pub const SEGMENT_FORMAT: &str = "etcdops-segment/1";

/// A segment's sidecar.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SegmentMeta {
    pub format: String,
    /// The segment's own name.
    pub name: String,
    /// The base snapshot's name, and the revision its bytes hold.
    pub base: String,
    pub base_revision: i64,
    /// The segment holds the revisions (after, through].
    pub after: i64,
    pub through: i64,
    pub events: u64,
    /// When the first event was received, Unix nanoseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_event_ns: Option<i64>,
    /// When the log was known complete through `through` (the progress notification).
    pub through_ns: i64,
    pub plain_sha256: String,
    pub plain_size: u64,
    pub object_sha256: String,
    pub object_size: u64,
    /// The object sha256 of the segment before (of the base, for the first).
    pub previous_sha256: String,
    pub cluster_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<String>,
    pub etcdops_version: String,
}

impl SegmentMeta {
    pub fn parse(bytes: &[u8], expected_name: &str) -> Result<SegmentMeta> {
        if bytes.len() > MAX_SIDECAR {
            bail!("the metadata is larger than 1 MiB");
        }
        let m: SegmentMeta =
            serde_json::from_slice(bytes).map_err(|e| anyhow!("the metadata is not valid: {e}"))?;
        if m.format != SEGMENT_FORMAT {
            bail!(
                "the metadata is format {:?}, not {SEGMENT_FORMAT}",
                m.format
            );
        }
        if m.name != expected_name {
            bail!("the metadata describes {:?}, not {expected_name:?}", m.name);
        }
        if m.after > m.through || m.base_revision > m.after {
            bail!(
                "the metadata's revisions are out of order (base {}, after {}, through {})",
                m.base_revision,
                m.after,
                m.through
            );
        }
        Ok(m)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }
}

/// One segment of a chain, as listed.
#[derive(Debug, Clone)]
pub struct Segment {
    pub name: String,
    pub size: u64,
    pub meta: SegmentMeta,
}

/// A base and the segments that continue it.
#[derive(Debug)]
pub struct Chain {
    pub base: Backup,
    /// The revision the base's bytes hold (from its segments' sidecars; the base sidecar's
    /// request revision when it has none).
    pub base_revision: i64,
    /// The base's save time, Unix nanoseconds.
    pub base_ns: i64,
    pub segments: Vec<Segment>,
    /// The segments of this base that are not part of the chain, each with why (a bad
    /// sidecar, a gap or a duplicate, a broken hash chain); the chain goes on past them only
    /// through a segment that continues the one before.
    pub problems: Vec<String>,
}

impl Chain {
    /// The last revision a restore from this chain can reach.
    pub fn through(&self) -> i64 {
        self.segments
            .last()
            .map_or(self.base_revision, |s| s.meta.through)
    }

    /// When the chain was last known complete.
    pub fn through_ns(&self) -> i64 {
        self.segments
            .last()
            .map_or(self.base_ns, |s| s.meta.through_ns)
    }

    pub fn cluster_id(&self) -> &str {
        self.base
            .meta
            .as_ref()
            .map_or("", |m| m.cluster_id.as_str())
    }

    /// "REV (TIME) → REV (TIME)", for messages.
    pub fn window(&self) -> String {
        format!(
            "{} → {} ({} → {})",
            self.base_revision,
            self.through(),
            crate::timestamp::rfc3339_ns(self.base_ns),
            crate::timestamp::rfc3339_ns(self.through_ns())
        )
    }
}

/// Every chain in `store` whose base is verified, oldest base first.
pub async fn chains(store: &Store) -> Result<Vec<Chain>> {
    let objects = store.objects().await?;
    let backups = store.backups_in(&objects).await?;
    chains_in(store, &objects, backups).await
}

/// [`chains`] of a listing (and its snapshots) already read.
pub async fn chains_in(
    store: &Store,
    objects: &[(String, u64)],
    backups: Vec<Backup>,
) -> Result<Vec<Chain>> {
    let names: std::collections::HashSet<&str> = objects.iter().map(|(n, _)| n.as_str()).collect();
    let mut segments: Vec<(String, u64, SegmentName)> = objects
        .iter()
        .filter_map(|(n, size)| Some((n.clone(), *size, parse_segment_name(n)?)))
        .collect();
    segments.sort_by_key(|s| (s.2.through, s.2.millis));
    let sidecars: Vec<String> = segments
        .iter()
        .map(|(n, _, _)| format!("{n}{SIDECAR_SUFFIX}"))
        .filter(|s| names.contains(s.as_str()))
        .collect();
    let mut read = store.read_many(sidecars).await;
    let mut out = Vec::new();
    for base in backups.into_iter().filter(Backup::verified) {
        let Some(stem) = stem_of(&base.name) else {
            continue;
        };
        let mine = segments.iter().filter(|(_, _, n)| n.stem == stem);
        // A segment without its sidecar was never made visible (a flush interrupted between
        // the object and its sidecar): not part of any chain.
        let listed: Vec<(String, u64, Result<SegmentMeta>)> = mine
            .filter_map(|(name, size, _)| {
                let meta = match read.remove(&format!("{name}{SIDECAR_SUFFIX}"))? {
                    Ok(bytes) => SegmentMeta::parse(&bytes, name),
                    Err(e) => Err(e),
                };
                Some((name.clone(), *size, meta))
            })
            .collect();
        out.push(link(base, listed));
    }
    Ok(out)
}

/// The chain of `base`: its listed segments while each continues the one before.
fn link(base: Backup, listed: Vec<(String, u64, Result<SegmentMeta>)>) -> Chain {
    let base_meta = base.meta.as_ref().ok();
    let base_ns = base_meta
        .and_then(|m| crate::timestamp::parse_rfc3339_ns(&m.created).ok())
        .unwrap_or(base.parsed.time.saturating_mul(1_000_000_000));
    let base_sha = base_meta
        .map(|m| m.object_sha256.clone())
        .unwrap_or_default();
    let base_revision = match listed.iter().find_map(|(_, _, m)| m.as_ref().ok()) {
        Some(m) => m.base_revision,
        None => base_meta.map_or(0, |m| m.revision),
    };
    let mut chain = Chain {
        base,
        base_revision,
        base_ns,
        segments: Vec::new(),
        problems: Vec::new(),
    };
    let (mut after, mut previous) = (base_revision, base_sha);
    for (name, size, meta) in listed {
        let problem = match &meta {
            Err(e) => Some(format!("{e:#}")),
            Ok(m) if m.base != chain.base.name => Some(format!("its metadata names the base {}", m.base)),
            Ok(m) if m.base_revision != base_revision => {
                Some(format!("its metadata says the base is at revision {}, not {base_revision}", m.base_revision))
            }
            Ok(m) if m.object_size != size => Some(format!("the object is {size} bytes, its metadata says {}", m.object_size)),
            Ok(m) if m.after < after => Some(format!("it repeats revisions {}..{} (a duplicate)", m.after + 1, after)),
            Ok(m) if m.after > after => Some(format!("revisions {}..{} are missing (a gap)", after + 1, m.after)),
            Ok(m) if m.previous_sha256 != previous => {
                Some("its previous_sha256 is not the sha256 of the segment before (the hash chain is broken)".to_string())
            }
            Ok(_) => None,
        };
        if let Some(p) = problem {
            chain.problems.push(format!("{name}: {p}"));
            continue;
        }
        let Ok(meta) = meta else { continue };
        after = meta.through;
        previous = meta.object_sha256.clone();
        chain.segments.push(Segment { name, size, meta });
    }
    chain
}

/// A point to restore to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    /// The newest point of the newest chain.
    Latest,
    Revision(i64),
    /// The last revision received at or before this Unix time (nanoseconds).
    Time(i64),
}

impl Point {
    /// `--to-revision` or `--to-time` (Unix nanoseconds); neither: the newest point.
    pub fn of(revision: Option<i64>, time_ns: Option<i64>) -> Point {
        match (revision, time_ns) {
            (Some(r), _) => Point::Revision(r),
            (None, Some(t)) => Point::Time(t),
            (None, None) => Point::Latest,
        }
    }
}

impl std::fmt::Display for Point {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Point::Latest => write!(f, "the newest point"),
            Point::Revision(r) => write!(f, "revision {r}"),
            Point::Time(t) => write!(f, "{}", crate::timestamp::rfc3339_ns(*t)),
        }
    }
}

/// Whose revision log, in a store that holds several: `--cluster-id` (needed when it holds
/// several clusters' logs) and `--node` (the chains of one control plane's follower).
#[derive(Debug, Clone, Copy, Default)]
pub struct Whose<'a> {
    pub cluster: Option<&'a str>,
    pub node: Option<&'a str>,
}

/// The chain that reaches `point` from the newest base (the shortest replay), and how many of
/// its segments the replay needs; refused with the restorable windows named.
pub fn pick<'a>(chains: &'a [Chain], point: Point, whose: Whose) -> Result<(&'a Chain, usize)> {
    let chains = of_one_node(of_one_cluster(chains, whose.cluster, point)?, whose.node)?;
    let reaches = |c: &Chain| match point {
        Point::Latest => true,
        Point::Revision(r) => c.base_revision <= r && r <= c.through(),
        Point::Time(t) => c.base_ns <= t && t <= c.through_ns(),
    };
    let best = match point {
        Point::Latest => chains
            .iter()
            .copied()
            .max_by_key(|c| (c.through_ns(), c.base_ns)),
        _ => chains
            .iter()
            .copied()
            .filter(|c| reaches(c))
            .max_by_key(|c| c.base_ns),
    };
    let Some(chain) = best else {
        let windows: Vec<String> = chains.iter().map(|c| c.window()).collect();
        bail!(
            "{point} is not restorable here: {}",
            if windows.is_empty() {
                "no chain (run `etcdops snapshot follow` to write one)".to_string()
            } else {
                format!("the restorable windows are {}", windows.join("; "))
            }
        );
    };
    let needed = match point {
        Point::Latest => chain.segments.len(),
        Point::Revision(r) => needed_by(chain, |m| m.through >= r),
        Point::Time(t) => needed_by(chain, |m| m.through_ns >= t),
    };
    Ok((chain, needed))
}

/// The chains of one cluster: the one named, or the only one there is (revisions of two
/// clusters are not comparable: a store holding several needs the choice made).
fn of_one_cluster<'a>(
    chains: &'a [Chain],
    cluster: Option<&str>,
    point: Point,
) -> Result<Vec<&'a Chain>> {
    // Without a log, the newest point is the newest snapshot.
    let any_log = chains.iter().any(|c| !c.segments.is_empty());
    let logged = chains
        .iter()
        .filter(move |c| !c.segments.is_empty() || (!any_log && point == Point::Latest));
    let mut ids: Vec<&str> = logged.clone().map(Chain::cluster_id).collect();
    ids.sort();
    ids.dedup();
    let wanted = match (cluster, ids.as_slice()) {
        (Some(id), _) => id.trim_start_matches("0x").to_ascii_lowercase(),
        (None, [] | [_]) => return Ok(logged.collect()),
        (None, several) => bail!(
            "this store holds the revision logs of {} clusters ({}): give --cluster-id",
            several.len(),
            several.join(", ")
        ),
    };
    let mine: Vec<&Chain> = logged
        .filter(|c| {
            c.cluster_id()
                .trim_start_matches("0x")
                .eq_ignore_ascii_case(&wanted)
        })
        .collect();
    if mine.is_empty() {
        bail!(
            "no revision log of cluster {wanted} here (there are: {})",
            ids.join(", ")
        );
    }
    Ok(mine)
}

/// The chains of `node`'s follower, when one is named (as generated names carry it).
fn of_one_node<'a>(chains: Vec<&'a Chain>, node: Option<&str>) -> Result<Vec<&'a Chain>> {
    let Some(node) = node else {
        return Ok(chains);
    };
    let wanted = crate::remote::meta::name_node(node);
    let mut nodes: Vec<&str> = chains.iter().map(|c| c.base.parsed.node.as_str()).collect();
    nodes.sort();
    nodes.dedup();
    let mine: Vec<&Chain> = chains
        .iter()
        .copied()
        .filter(|c| c.base.parsed.node == wanted)
        .collect();
    if mine.is_empty() {
        bail!(
            "no revision log of node {wanted} here (there are: {})",
            if nodes.is_empty() {
                "none".to_string()
            } else {
                nodes.join(", ")
            }
        );
    }
    Ok(mine)
}

/// The segments up to and including the first one `reaches` (all when none does).
fn needed_by(chain: &Chain, reaches: impl Fn(&SegmentMeta) -> bool) -> usize {
    chain
        .segments
        .iter()
        .position(|s| reaches(&s.meta))
        .map_or(chain.segments.len(), |i| i + 1)
}

/// A segment's records, read from the store and checked against its sidecar (object and plain
/// sha256 and sizes) and against itself (events inside (after, through], a last progress
/// record at `through`).
pub async fn load(store: &Store, seg: &Segment, ids: &Identities) -> Result<Vec<Record>> {
    let object = fetch(store, seg).await?;
    open(&store.url(&seg.name), seg, object, ids)
}

/// A segment's stored object, checked against its sidecar's sha256 and size.
pub async fn fetch(store: &Store, seg: &Segment) -> Result<Vec<u8>> {
    let m = &seg.meta;
    let object = store.read_object(&seg.name, m.object_size).await?;
    if hex(&Sha256::digest(&object)) != m.object_sha256 || object.len() as u64 != m.object_size {
        bail!(
            "{} does not match its metadata (changed or corrupted after it was written)",
            store.url(&seg.name)
        );
    }
    Ok(object)
}

/// A fetched object decoded (age, zstd) and read as records, checked against the sidecar's
/// plain sha256 and the segment's revisions.
pub fn open(what: &str, seg: &Segment, object: Vec<u8>, ids: &Identities) -> Result<Vec<Record>> {
    let bytes = plain_of(what, seg, std::io::Cursor::new(object), ids)?;
    if hex(&Sha256::digest(&bytes)) != seg.meta.plain_sha256 {
        bail!("{what} decodes to something its metadata does not describe");
    }
    records_of(what, seg, &bytes)
}

/// [`open`] of an object that [`fetch`] checked (and that stayed in our memory since): its
/// decoding is deterministic, so the plain sha256 (written from the same bytes the object
/// was made of) is not computed a second time.
pub fn open_fetched<R: Read + Send + 'static>(
    what: &str,
    seg: &Segment,
    object: R,
    ids: &Identities,
) -> Result<Vec<Record>> {
    let bytes = plain_of(what, seg, object, ids)?;
    records_of(what, seg, &bytes)
}

/// The plain bytes of a segment object, of the size its sidecar says.
fn plain_of<R: Read + Send + 'static>(
    what: &str,
    seg: &Segment,
    object: R,
    ids: &Identities,
) -> Result<Vec<u8>> {
    let size = seg.meta.plain_size;
    let (plain, _) = codec::unwrap_layers(object, ids, what)?;
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0).min(64 << 20));
    plain
        .take(size + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("decoding {what}"))?;
    if bytes.len() as u64 != size {
        bail!("{what} decodes to something its metadata does not describe");
    }
    Ok(bytes)
}

/// A segment's plain bytes as records, checked against its revisions: events inside
/// (after, through], a last progress record at `through`.
fn records_of(what: &str, seg: &Segment, bytes: &[u8]) -> Result<Vec<Record>> {
    let m = &seg.meta;
    let records = segment::decode(bytes).with_context(|| what.to_string())?;
    let mut last_progress = None;
    for r in &records {
        match r {
            Record::Event(e) if e.main <= m.after || e.main > m.through => bail!(
                "{what}: an event at revision {} outside its revisions ({}, {}]",
                e.main,
                m.after,
                m.through
            ),
            Record::Progress { revision, .. } => last_progress = Some(*revision),
            _ => {}
        }
    }
    if last_progress != Some(m.through) {
        bail!(
            "{what}: it does not end complete through revision {}",
            m.through
        );
    }
    Ok(records)
}

/// The records of the last segment a [`pick`] needs, up to `point`: those before the first
/// event past it (and the compactions at or below the last revision kept). `reached` is the
/// revision the segments before it reach.
pub fn cut_last(records: Vec<Record>, point: Point, mut reached: i64) -> Vec<Record> {
    if point == Point::Latest {
        return records;
    }
    let mut out = Vec::new();
    let mut stopped = false;
    for r in records {
        if !stopped {
            stopped = match (&r, point) {
                (Record::Event(e), Point::Revision(rev)) => e.main > rev,
                (Record::Event(e), Point::Time(t)) => e.time_ns > t,
                (Record::Progress { revision, .. }, Point::Revision(rev)) => *revision > rev,
                (Record::Progress { time_ns, .. }, Point::Time(t)) => *time_ns > t,
                _ => false,
            };
        }
        if !stopped {
            reached = revision_of(&r).unwrap_or(reached);
            out.push(r);
        } else if matches!(r, Record::Compacted { revision, .. } if revision <= reached) {
            out.push(r);
        }
    }
    out
}

fn revision_of(r: &Record) -> Option<i64> {
    match r {
        Record::Event(e) => Some(e.main),
        Record::Progress { revision, .. } => Some(*revision),
        _ => None,
    }
}

/// The revision the records reach: the last event's or progress record's.
pub fn reached(records: &[Record]) -> Option<i64> {
    records.iter().filter_map(revision_of).max()
}

/// Writes the segments of one chain: encodes, uploads, reads back, then writes the sidecar.
pub struct ChainWriter {
    pub base: String,
    pub base_revision: i64,
    stem: String,
    cluster_id: String,
    encoding: Encoding,
    compression: Option<String>,
    recipients: Vec<String>,
    /// The chain's last revision and object sha256.
    pub through: i64,
    previous: String,
}

impl ChainWriter {
    /// A new chain on a base just saved (its sidecar's object sha256 starts the hash chain).
    pub fn start(
        base: &str,
        base_revision: i64,
        base_sha256: &str,
        cluster_id: &str,
        encoding: Encoding,
        recipients: Vec<String>,
    ) -> Result<ChainWriter> {
        let stem =
            stem_of(base).ok_or_else(|| anyhow!("{base} is not a generated snapshot name"))?;
        Ok(ChainWriter {
            base: base.to_string(),
            base_revision,
            stem,
            cluster_id: cluster_id.to_string(),
            compression: encoding.zstd_level.map(|l| format!("zstd:{l}")),
            encoding,
            recipients,
            through: base_revision,
            previous: base_sha256.to_string(),
        })
    }

    /// Continue `chain` where it ends.
    pub fn resume(
        chain: &Chain,
        encoding: Encoding,
        recipients: Vec<String>,
    ) -> Result<ChainWriter> {
        let base_sha = chain
            .base
            .meta
            .as_ref()
            .map(|m| m.object_sha256.clone())
            .map_err(|e| anyhow!("{e}"))?;
        let mut w = ChainWriter::start(
            &chain.base.name,
            chain.base_revision,
            &base_sha,
            chain.cluster_id(),
            encoding,
            recipients,
        )?;
        if let Some(last) = chain.segments.last() {
            w.through = last.meta.through;
            w.previous = last.meta.object_sha256.clone();
        }
        Ok(w)
    }

    /// Write `records` (which end with a progress record at `through`) as the next segment.
    /// The records are encoded, hashed and compressed one by one, and the object is read back
    /// only after it left memory: about one copy of a segment is in memory at a time.
    pub async fn write(
        &mut self,
        store: &Store,
        records: Vec<Record>,
        through: i64,
        through_ns: i64,
    ) -> Result<SegmentMeta> {
        let events = records
            .iter()
            .filter(|r| matches!(r, Record::Event(_)))
            .count() as u64;
        let first_event_ns = records.iter().find_map(|r| match r {
            Record::Event(e) => Some(e.time_ns),
            _ => None,
        });
        // Streamed: each record is encoded, hashed and compressed as it is taken, so the
        // records shrink while the object grows.
        let mut enc = Encoder::new(Vec::new(), &self.encoding)?;
        let mut hasher = Sha256::new();
        let mut plain_size = 0u64;
        let mut chunk = segment::MAGIC.to_vec();
        for r in records {
            segment::push_record(&mut chunk, &r);
            drop(r);
            hasher.update(&chunk);
            plain_size += chunk.len() as u64;
            std::io::Write::write_all(&mut enc, &chunk).context("encoding a segment")?;
            chunk.clear();
        }
        let plain_sha = hasher.finalize();
        let (object, digests) = enc
            .finish(plain_sha.into(), plain_size)
            .context("encoding a segment")?;
        let object_sha = if self.encoding.is_plain() {
            plain_sha.into()
        } else {
            digests.object_sha256
        };
        let millis = crate::timestamp::now_ns() / 1_000_000;
        let name = segment_name(&self.stem, through, millis, self.encoding.suffix());
        let meta = SegmentMeta {
            format: SEGMENT_FORMAT.to_string(),
            name: name.clone(),
            base: self.base.clone(),
            base_revision: self.base_revision,
            after: self.through,
            through,
            events,
            first_event_ns,
            through_ns,
            plain_sha256: hex(&plain_sha),
            plain_size,
            object_sha256: hex(&object_sha),
            object_size: object.len() as u64,
            previous_sha256: self.previous.clone(),
            cluster_id: self.cluster_id.clone(),
            compression: self.compression.clone(),
            encryption: (!self.recipients.is_empty()).then(|| "age".to_string()),
            recipients: self.recipients.clone(),
            etcdops_version: env!("CARGO_PKG_VERSION").to_string(),
        };
        store.put_new(&name, object).await?;
        // Visible only whole: the object is read back before its sidecar names it.
        let back = store.read_object(&name, meta.object_size).await?;
        if hex(&Sha256::digest(&back)) != meta.object_sha256 {
            bail!(
                "{} reads back different from what was written",
                store.url(&name)
            );
        }
        store
            .put_new(&format!("{name}{SIDECAR_SUFFIX}"), meta.to_bytes())
            .await?;
        self.through = through;
        self.previous = meta.object_sha256.clone();
        Ok(meta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_round_trip_and_sort_in_log_order() {
        let stem = stem_of("etcd-cp-1-20261207T031400Z.db.zst.age").unwrap();
        assert_eq!(stem, "etcd-cp-1-20261207T031400Z");
        let a = segment_name(&stem, 1005, 1_796_000_000_000, ".zst");
        let b = segment_name(&stem, 12_000, 1_796_000_000_500, ".zst");
        assert!(a < b, "{a} {b}");
        assert_eq!(
            parse_segment_name(&a),
            Some(SegmentName {
                stem: stem.clone(),
                through: 1005,
                millis: 1_796_000_000_000
            })
        );
        assert_eq!(
            crate::remote::meta::parse_name(&a),
            None,
            "never taken for a snapshot"
        );
        for not_ours in [
            "etcd-cp-1-20261207T031400Z.log-1005-1796000000000.seg",
            "x.log-00000000000000001005-1796000000000.seg",
            "etcd-cp-1-20261207T031400Z.log-00000000000000001005-1796000000000.seg.gz",
        ] {
            assert_eq!(parse_segment_name(not_ours), None, "{not_ours}");
        }
    }

    fn progress(revision: i64, time_ns: i64) -> Record {
        Record::Progress { revision, time_ns }
    }

    fn event(main: i64, time_ns: i64) -> Record {
        Record::Event(segment::Event {
            main,
            sub: 0,
            time_ns,
            key: b"k".to_vec(),
            change: segment::Change::Delete,
        })
    }

    #[test]
    fn a_cut_stops_at_the_point_and_keeps_the_compactions_below_it() {
        let first = vec![event(11, 1), event(12, 2), progress(12, 3)];
        let last = vec![
            Record::Lease {
                id: 7,
                ttl: 60,
                time_ns: 9,
            },
            event(13, 4),
            event(14, 5),
            event(15, 6),
            Record::Compacted {
                revision: 13,
                time_ns: 9,
            },
            Record::Compacted {
                revision: 15,
                time_ns: 9,
            },
            progress(15, 9),
        ];
        let cut = |segments: Vec<Vec<Record>>, point: Point| -> Vec<Record> {
            let n = segments.len();
            let mut out: Vec<Record> = Vec::new();
            for (i, records) in segments.into_iter().enumerate() {
                let before = reached(&out).unwrap_or(0);
                if i + 1 < n {
                    out.extend(records);
                } else {
                    out.extend(cut_last(records, point, before));
                }
            }
            out
        };
        let at14 = cut(vec![first.clone(), last.clone()], Point::Revision(14));
        assert_eq!(reached(&at14), Some(14));
        assert!(at14.contains(&Record::Compacted {
            revision: 13,
            time_ns: 9
        }));
        assert!(!at14
            .iter()
            .any(|r| matches!(r, Record::Compacted { revision: 15, .. })));
        assert!(at14
            .iter()
            .any(|r| matches!(r, Record::Lease { id: 7, .. })));
        let at_time = cut(vec![first.clone(), last.clone()], Point::Time(4));
        assert_eq!(reached(&at_time), Some(13));
        let all = cut(vec![first, last], Point::Latest);
        assert_eq!(reached(&all), Some(15));
    }
}
