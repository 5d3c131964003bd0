//! What `snapshot follow` reads from etcd: the whole keyspace watched from a revision, with
//! progress notifications; the leases alive with their granted TTLs; the compaction revision.
//!
//! - Events come in revision order, a revision's changes together and in the order etcd
//!   stored them (etcd-io/etcd server/mvcc/watchable_store.go: one batch per revision, never
//!   split without `fragment`), so a change's sub-revision is its place among its revision's
//!   events — the key-bucket entry etcd wrote ([`Event::key_bucket_entry`]).
//! - A progress notification (a response without events that neither creates nor cancels a
//!   watch) carries the store's revision. It is not a completeness mark by itself: before
//!   3.5.8/3.4.24 etcd answers a progress request at once from `sws.watchStream.Rev()`, even
//!   while the watcher is still catching up (server/etcdserver/api/v3rpc/watch.go,
//!   `WatchRequest_ProgressRequest`; etcd-io/etcd#15220). The follower trusts the changes it
//!   has received instead (see commands/snapshot_save/follow.rs).
//! - A start revision that was compacted away ends the watch with its compaction revision.
//! - The compaction revision is found with count-only reads at past revisions: etcd refuses a
//!   read below it (server/mvcc/kvstore_txn.go `rangeKeys`: `rev < compactMainRev`), so a
//!   bisection between the last known one and now finds it in a few small requests.

use etcd_client::{Client, EventType, GetOptions, WatchOptions, WatchStream};

use super::{classify_etcd, EndpointError};
use crate::revlog::segment::{Change, Event};

/// One answer of the watch.
#[derive(Debug)]
pub enum Update {
    /// The changes of whole revisions, in order.
    Events(Vec<Event>),
    /// Every change up to this revision has been delivered.
    Progress(i64),
}

/// Why the watch ended.
#[derive(Debug)]
pub enum Ended {
    /// The start revision is gone: the cluster was compacted up to this revision.
    Compacted(i64),
    /// The server cancelled the watch (the reason it gave), or closed the stream.
    Cancelled(String),
    Failed(EndpointError),
}

/// The whole-keyspace watch.
pub struct KeyspaceWatch {
    stream: WatchStream,
    /// The revision and sub-revision of the last change delivered.
    last: (i64, u32),
}

impl KeyspaceWatch {
    /// Watch every key from `from` on, with progress notifications.
    pub async fn open(client: &mut Client, from: i64) -> Result<KeyspaceWatch, Ended> {
        let options = WatchOptions::new()
            .with_all_keys()
            .with_start_revision(from)
            .with_progress_notify();
        let stream = client
            .watch(vec![0u8], Some(options))
            .await
            .map_err(|e| Ended::Failed(classify_etcd(&e)))?;
        Ok(KeyspaceWatch {
            stream,
            last: (from - 1, 0),
        })
    }

    /// Ask for a progress notification (answered after every change up to the current
    /// revision has been sent).
    pub async fn request_progress(&mut self) -> Result<(), Ended> {
        self.stream
            .request_progress()
            .await
            .map_err(|e| Ended::Failed(classify_etcd(&e)))
    }

    /// The next answer; `received_ns` is stamped on its events.
    pub async fn next(&mut self, received_ns: impl Fn() -> i64) -> Result<Update, Ended> {
        loop {
            let resp = match self.stream.message().await {
                Ok(Some(resp)) => resp,
                Ok(None) => return Err(Ended::Cancelled("the server closed the watch".into())),
                Err(e) => return Err(Ended::Failed(classify_etcd(&e))),
            };
            if resp.compact_revision() > 0 {
                return Err(Ended::Compacted(resp.compact_revision()));
            }
            if resp.canceled() {
                let why = match resp.cancel_reason() {
                    "" => "the server cancelled the watch".to_string(),
                    r => format!("the server cancelled the watch: {r}"),
                };
                return Err(Ended::Cancelled(why));
            }
            if resp.events().is_empty() {
                if resp.created() {
                    continue;
                }
                let revision = resp.header().map_or(0, |h| h.revision());
                return Ok(Update::Progress(revision));
            }
            let now = received_ns();
            let mut out = Vec::with_capacity(resp.events().len());
            for e in resp.events() {
                let Some(kv) = e.kv() else { continue };
                let main = kv.mod_revision();
                let sub = if main == self.last.0 {
                    self.last.1 + 1
                } else {
                    0
                };
                self.last = (main, sub);
                let change = match e.event_type() {
                    EventType::Put => Change::Put {
                        create_revision: kv.create_revision(),
                        version: kv.version(),
                        lease: kv.lease(),
                        value: kv.value().to_vec(),
                    },
                    EventType::Delete => Change::Delete,
                };
                out.push(Event {
                    main,
                    sub,
                    time_ns: now,
                    key: kv.key().to_vec(),
                    change,
                });
            }
            return Ok(Update::Events(out));
        }
    }
}

/// The leases alive now, and of those not in `known` the granted TTL in seconds (a lease
/// that ends between the list and its lookup is left out).
pub async fn leases(
    client: &mut Client,
    known: &std::collections::BTreeSet<i64>,
) -> Result<(std::collections::BTreeSet<i64>, Vec<(i64, i64)>), EndpointError> {
    let alive: std::collections::BTreeSet<i64> = client
        .leases()
        .await
        .map_err(|e| classify_etcd(&e))?
        .leases()
        .iter()
        .map(|l| l.id())
        .collect();
    let mut granted = Vec::new();
    for &id in alive.difference(known) {
        let ttl = client
            .lease_time_to_live(id, None)
            .await
            .map_err(|e| classify_etcd(&e))?;
        if ttl.ttl() > 0 {
            granted.push((id, ttl.granted_ttl()));
        }
    }
    Ok((alive, granted))
}

/// The cluster's compaction revision, given one it is known to be at least (`floor`) and the
/// current revision: `floor` itself when nothing was compacted since.
pub async fn compaction_revision(
    client: &mut Client,
    floor: i64,
    current: i64,
) -> Result<i64, EndpointError> {
    let floor = floor.max(1);
    if floor >= current || !compacted_below(client, floor).await? {
        return Ok(floor);
    }
    // Reads fail below the compaction revision: lo fails, hi does not.
    let (mut lo, mut hi) = (floor, current);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if compacted_below(client, mid).await? {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(hi)
}

/// Whether a read at `revision` is refused as compacted.
async fn compacted_below(client: &mut Client, revision: i64) -> Result<bool, EndpointError> {
    let options = GetOptions::new()
        .with_revision(revision)
        .with_count_only()
        .with_limit(1);
    match client.get(vec![0u8], Some(options)).await {
        Ok(_) => Ok(false),
        Err(e)
            if e.to_string()
                .contains("required revision has been compacted") =>
        {
            Ok(true)
        }
        Err(e) => Err(classify_etcd(&e)),
    }
}
