//! `etcdops snapshot put-back SOURCE --prefix P | --namespace NS [--to-revision R | --to-time T]
//! [--dry-run]`: undo a deletion without rolling the cluster back. The keys under P that SOURCE held (a
//! snapshot, or a revision log's point) and the live cluster does not hold now are written
//! back, create-only: each batch is one transaction whose every put is guarded by "create
//! revision = 0" (the key does not exist), so nothing written since is ever overwritten; a
//! batch whose guard fails (a key came back meanwhile) is redone key by key. Values go back
//! byte for byte (no trailing newline, unlike `etcdctl get --print-value-only | etcdctl put`);
//! leases do not (the lease of a deleted key is usually gone, and its TTL would have run):
//! such keys come back without one, and the report counts them.

use anyhow::{anyhow, Context, Result};
use etcd_client::{Compare, CompareOp, GetOptions, Txn, TxnOp};
use serde::Serialize;

use crate::bolt::{Db, FileSource};
use crate::client::{Connector, Target};
use crate::etcd::keyspace::{self, Kv, Query};
use crate::output::Report;
use crate::remote::source;
use crate::revlog::chain::{Point, Whose};
use crate::settings::PutBackSettings;
use crate::text::escape;

/// Keys per transaction (etcd's default --max-txn-ops is 128: a compare and a put each).
const BATCH_KEYS: usize = 64;
/// Bytes of values per transaction (etcd's default request limit is 1.5 MiB).
const BATCH_BYTES: usize = 1 << 20;

#[derive(Debug, Serialize)]
pub struct PutBackReport {
    pub source: String,
    /// The revision of SOURCE the keys were read at.
    pub revision: i64,
    pub prefix: String,
    pub dry_run: bool,
    /// Put back (or, in a dry run, to be).
    pub restored: Vec<String>,
    /// Held by SOURCE and live now: left as they are.
    pub skipped: Vec<String>,
    /// Of the restored, those that had a lease in SOURCE.
    pub without_lease: usize,
}

pub async fn run(
    connector: &Connector,
    targets: Vec<Target>,
    s: &PutBackSettings,
) -> Result<PutBackReport> {
    let settings = s.clone();
    let (tx, rx) = tokio::sync::oneshot::channel();
    // Reading SOURCE (a download, a replay) runs its own runtime: on a thread of its own.
    std::thread::spawn(move || {
        let _ = tx.send(wanted(&settings));
    });
    let (revision, kvs) = rx
        .await
        .map_err(|_| anyhow!("reading the source stopped"))??;
    let target = targets
        .first()
        .ok_or_else(|| anyhow!("no endpoint to write to"))?;
    let mut client = connector.connect(target).await?;
    let live = live_keys(&mut client, &s.prefix).await?;
    let mut report = PutBackReport {
        source: s.source.location.to_string(),
        revision,
        prefix: escape(&String::from_utf8_lossy(&s.prefix)),
        dry_run: s.dry_run,
        restored: Vec::new(),
        skipped: Vec::new(),
        without_lease: 0,
    };
    let (missing, present): (Vec<Kv>, Vec<Kv>) =
        kvs.into_iter().partition(|kv| !live.contains(&kv.key));
    report.skipped = present.iter().map(|kv| shown(&kv.key)).collect();
    if s.dry_run {
        report.without_lease = missing.iter().filter(|kv| kv.lease != 0).count();
        report.restored = missing.iter().map(|kv| shown(&kv.key)).collect();
        return Ok(report);
    }
    for batch in batches(&missing) {
        put_batch(&mut client, batch, &mut report).await?;
    }
    Ok(report)
}

fn shown(key: &[u8]) -> String {
    escape(&String::from_utf8_lossy(key))
}

/// The keys under the prefix in SOURCE, with their values, and the revision read at.
fn wanted(s: &PutBackSettings) -> Result<(i64, Vec<Kv>)> {
    let scratch = std::env::temp_dir();
    let (plain, at) = if s.source.location.is_prefix() {
        let whose = Whose {
            cluster: s.cluster_id.as_deref(),
            node: s.node.as_deref(),
        };
        let point = Point::of(s.to_revision, s.to_time_ns);
        let r = crate::revlog::point::restorable(&s.source, point, whose, &scratch)?;
        (r.snapshot, None)
    } else {
        (source::open(&s.source, &scratch)?, s.to_revision)
    };
    let file =
        FileSource::open(&plain.path).with_context(|| format!("reading {}", s.source.location))?;
    let mut db = Db::open(file).with_context(|| format!("snapshot {}", s.source.location))?;
    let query = Query {
        at,
        prefix: s.prefix.clone(),
        exact: false,
        values: true,
    };
    let ks = keyspace::read(&mut db, &query)
        .with_context(|| format!("snapshot {}", s.source.location))?;
    let kvs = match &s.namespace {
        None => ks.kvs,
        Some(ns) => ks
            .kvs
            .into_iter()
            .filter(|kv| in_namespace(&kv.key, ns))
            .collect(),
    };
    Ok((ks.revision, kvs))
}

/// A Kubernetes object of namespace `ns`, or the namespace object itself.
fn in_namespace(key: &[u8], ns: &str) -> bool {
    key == format!("/registry/namespaces/{ns}").as_bytes()
        || keyspace::kubernetes_place(key).is_some_and(|(_, n)| n.as_deref() == Some(ns))
}

/// The keys under `prefix` the cluster holds now.
async fn live_keys(
    client: &mut etcd_client::Client,
    prefix: &[u8],
) -> Result<std::collections::HashSet<Vec<u8>>> {
    let options = GetOptions::new().with_prefix().with_keys_only();
    let resp = client
        .get(prefix.to_vec(), Some(options))
        .await
        .map_err(|e| anyhow!("reading the live keys: {e}"))?;
    Ok(resp.kvs().iter().map(|kv| kv.key().to_vec()).collect())
}

/// Consecutive runs of at most [`BATCH_KEYS`] keys and about [`BATCH_BYTES`] bytes.
fn batches(kvs: &[Kv]) -> Vec<&[Kv]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, kv) in kvs.iter().enumerate() {
        let size = kv.key.len() + kv.value.len();
        if i > start && (i - start == BATCH_KEYS || bytes + size > BATCH_BYTES) {
            out.push(&kvs[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < kvs.len() {
        out.push(&kvs[start..]);
    }
    out
}

/// One create-only transaction for the batch; when a key exists by now, key by key.
async fn put_batch(
    client: &mut etcd_client::Client,
    batch: &[Kv],
    report: &mut PutBackReport,
) -> Result<()> {
    if create_only(client, batch).await? {
        for kv in batch {
            report.restored.push(shown(&kv.key));
            report.without_lease += usize::from(kv.lease != 0);
        }
        return Ok(());
    }
    for kv in batch {
        if create_only(client, std::slice::from_ref(kv)).await? {
            report.restored.push(shown(&kv.key));
            report.without_lease += usize::from(kv.lease != 0);
        } else {
            report.skipped.push(shown(&kv.key));
        }
    }
    Ok(())
}

/// Put every key of `kvs` if none of them exists; whether it did.
async fn create_only(client: &mut etcd_client::Client, kvs: &[Kv]) -> Result<bool> {
    let guards: Vec<Compare> = kvs
        .iter()
        .map(|kv| Compare::create_revision(kv.key.clone(), CompareOp::Equal, 0))
        .collect();
    let puts: Vec<TxnOp> = kvs
        .iter()
        .map(|kv| TxnOp::put(kv.key.clone(), kv.value.clone(), None))
        .collect();
    let resp = client
        .txn(Txn::new().when(guards).and_then(puts))
        .await
        .map_err(|e| anyhow!("writing the keys back: {e}"))?;
    Ok(resp.succeeded())
}

impl Report for PutBackReport {
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        let verb = if self.dry_run {
            "would put back"
        } else {
            "put back"
        };
        let rows = self
            .restored
            .iter()
            .map(|k| vec![k.clone(), verb.to_string()])
            .chain(
                self.skipped
                    .iter()
                    .map(|k| vec![k.clone(), "skipped: exists now".to_string()]),
            )
            .collect();
        (vec!["KEY", "ACTION"], rows)
    }

    fn json(&self) -> serde_json::Value {
        crate::output::serialized(self)
    }

    fn headline(&self) -> Vec<String> {
        vec![format!(
            "{} {} keys under {:?} from {} at revision {}; {} exist now and were left as they are",
            if self.dry_run {
                "would put back"
            } else {
                "put back"
            },
            self.restored.len(),
            self.prefix,
            self.source,
            self.revision,
            self.skipped.len()
        )]
    }

    fn simple(&self) -> Vec<String> {
        self.headline()
    }

    fn notes(&self) -> Vec<String> {
        if self.without_lease > 0 {
            vec![format!(
                "note: {} of them had a lease in the source; they are back without one",
                self.without_lease
            )]
        } else {
            Vec::new()
        }
    }
}
