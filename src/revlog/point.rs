//! A point of a revision log made into a snapshot file: the chain that reaches it picked from
//! the sidecars (linked by their sha256s), the base decoded into a 0600 temporary, and each
//! segment it needs fetched, checked against its sidecar (object sha256 and size, then its
//! plain size and records) and replayed into it: a database `snapshot restore` restores as
//! any other, but without a sha256 trailer (its integrity is the segments' checked sha256s;
//! hashing the result again would only prove that we read back what we wrote).

use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};

use super::chain::Segment;
use super::chain::{self, Point, Whose};
use super::replay::{Replay, Replayed};
use crate::etcd::status::{has_trailer, TrailerCheck};
use crate::fsutil::TempFile;
use crate::remote::codec::Identities;
use crate::remote::source::{self, PlainSnapshot, SourceSettings};
use crate::remote::store::Store;

/// A point made into a snapshot file, and how.
pub struct Restorable {
    pub snapshot: PlainSnapshot,
    /// The base's name and the window of its chain.
    pub base: String,
    pub window: String,
    /// The base's segments left out of its chain, and why.
    pub problems: Vec<String>,
    pub segments: usize,
    pub replayed: Replayed,
    /// The revision the snapshot is at.
    pub revision: i64,
}

/// What the store says for `point`: the chain that reaches it and the segments it needs, as
/// their sidecars describe them (linked: each names the sha256 of the one before).
struct Needed {
    store: Arc<Store>,
    base: SourceSettings,
    base_name: String,
    base_revision: i64,
    window: String,
    problems: Vec<String>,
    segments: Vec<Segment>,
}

/// The snapshot of `point` in the revision log at `src` (a DIR/ or s3:// prefix) of `whose`
/// (needed when the store holds several), built in `scratch`.
///
/// Each segment is fetched and checked against its sidecar (object sha256 and size) on a
/// worker while the one before is replayed, so that reading and hashing overlap the replay;
/// memory holds two segments at a time, whatever the length of the log. Nothing is written
/// outside the scratch copy until every segment needed has been checked and replayed.
pub fn restorable(
    src: &SourceSettings,
    point: Point,
    whose: Whose,
    scratch: &Path,
) -> Result<Restorable> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let needed = rt.block_on(needed(src, point, whose))?;
    let fetch = |seg: &Segment| {
        let (store, seg) = (needed.store.clone(), seg.clone());
        rt.spawn(async move { chain::fetch(&store, &seg).await })
    };
    let mut next = needed.segments.first().map(fetch);
    let base = source::open(&needed.base, scratch)?;
    let temp = working_copy(base, scratch)?;
    let ids = Identities::load(&src.identities)?;
    let mut replay = Replay::new(temp.path());
    let mut reached = needed.base_revision;
    let n = needed.segments.len();
    for (i, seg) in needed.segments.iter().enumerate() {
        let Some(fetching) = next.take() else { break };
        let object = rt
            .block_on(fetching)
            .map_err(|e| anyhow!("fetching {}: {e}", seg.name))??;
        next = needed.segments.get(i + 1).map(fetch);
        let what = needed.store.url(&seg.name);
        let mut records = chain::open_fetched(&what, seg, std::io::Cursor::new(object), &ids)?;
        if i + 1 == n {
            records = chain::cut_last(records, point, reached);
        }
        reached = chain::reached(&records).unwrap_or(reached).max(reached);
        replay
            .apply(records)
            .with_context(|| format!("replaying {what} into {}", needed.base_name))?;
    }
    drop(rt);
    if let Point::Revision(r) = point {
        if reached != r {
            bail!("revision {r} is not in the log of {} (it reaches {reached}): a revision that changed nothing is never written; pick one that `etcdops snapshot log` lists", needed.base_name);
        }
    }
    Ok(Restorable {
        snapshot: PlainSnapshot::replayed(temp),
        base: needed.base_name,
        window: needed.window,
        problems: needed.problems,
        segments: n,
        replayed: replay.finish(),
        revision: reached,
    })
}

async fn needed(src: &SourceSettings, point: Point, whose: Whose<'_>) -> Result<Needed> {
    let store = Store::open(&src.location, &src.s3).await?;
    let chains = chain::chains(&store).await?;
    let (chain, n) = chain::pick(&chains, point, whose)?;
    Ok(Needed {
        base: SourceSettings {
            location: store.location_of(&chain.base.name),
            identities: src.identities.clone(),
            s3: src.s3.clone(),
        },
        base_name: chain.base.name.clone(),
        base_revision: chain.base_revision,
        window: chain.window(),
        problems: chain.problems.clone(),
        segments: chain.segments[..n].to_vec(),
        store: Arc::new(store),
    })
}

/// The base as a temporary of our own, its trailer checked and cut off (the replay changes
/// the database it describes).
fn working_copy(base: PlainSnapshot, scratch: &Path) -> Result<TempFile> {
    let verified = base.trailer_verified;
    let path = base.path.clone();
    let bad_trailer = |e: &dyn std::fmt::Display| anyhow!("the base {}: {e}", path.display());
    let mut temp = match base.into_temp() {
        // Decoded: its trailer was checked while it was written.
        Some(_) if !verified => return Err(bad_trailer(&"the sha256 trailer does not match")),
        Some(t) => t,
        // A plain file used where it is: copied, its trailer checked in the same pass.
        None => {
            let mut t = TempFile::beside(&scratch.join("etcdops-replay.db"), 0o600)?;
            let to = t.file().ok_or_else(|| anyhow!("the temporary is closed"))?;
            let mut check = TrailerCheck::new();
            let mut written = Ok(());
            read_all(&path, |b| {
                check.feed(b);
                if written.is_ok() {
                    written = to.write_all(b);
                }
            })?;
            written.with_context(|| format!("copying {}", path.display()))?;
            if !verified {
                check.verify().map_err(|e| bad_trailer(&e))?;
            }
            t
        }
    };
    // Synced once, whole, when the restore moves it into place.
    let file = temp
        .file()
        .ok_or_else(|| anyhow!("the temporary is closed"))?;
    let len = file.metadata()?.len();
    if !has_trailer(len) {
        bail!("the base {} has no sha256 trailer", path.display());
    }
    file.set_len(len - 32)?;
    Ok(temp)
}

/// Every byte of the regular file at `path`, in order (a temporary is opened for writing
/// only, so it is read through a path).
fn read_all(path: &Path, mut each: impl FnMut(&[u8])) -> Result<()> {
    let mut f =
        crate::fsutil::open_regular(path).with_context(|| format!("reading {}", path.display()))?;
    let mut buf = crate::buf::AlignedBuf::new(1 << 20);
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        each(&buf[..n]);
    }
}
