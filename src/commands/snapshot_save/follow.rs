//! `etcdops snapshot follow DEST`: a base snapshot, then every change after it, so that a
//! restore reaches any revision (point-in-time recovery; docs/backups.md, "Revision log").
//!
//! - The chain: the newest chain of this cluster in DEST is continued from its last durable
//!   revision + 1; without one (or when `--base-every` says the base is old) a base is saved
//!   exactly as `snapshot save DEST` saves it, its revision read from its bytes (the status
//!   walk: the last key's revision, raised to the compaction marks), and an opening segment
//!   makes the chain exist at once. A chain never ends short of the base after it while its
//!   revisions can still be watched: a rollover carries the old chain up to the new base
//!   first, and a follower started again after it was stopped in the middle of one (or after
//!   `--base-every` went by) carries it then.
//! - The watch: the whole keyspace from that revision + 1. Every `--flush` (or when 16 MiB
//!   wait) the changes received make one segment, complete through the last one's revision
//!   (revlog::chain: encoded, read back, then its sidecar). An idle log asks for a progress
//!   notification and, when the store is still at the chain's revision, writes a segment every
//!   minute: "complete through R at time T".
//! - Leases and compactions, which watch events do not carry: each flush lists the leases
//!   (grants with their TTL before the events, ends after them) and probes the compaction
//!   revision.
//! - A lost connection, a leader change or a cancelled watch: the buffer is dropped and the
//!   watch starts again from the last durable revision + 1 (no gap, no duplicate). A start
//!   revision compacted away: said, and a new base starts a new chain.
//! - SIGINT/SIGTERM: what is not yet in a segment is dropped (the next run reads it again) and
//!   the command ends with exit 0 and its report.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use tokio::signal::unix::{signal, SignalKind};

use crate::client::watch::{self, Ended, KeyspaceWatch, Update};
use crate::client::{Connector, Target};
use crate::output::Report;
use crate::remote::meta::{Metadata, SIDECAR_SUFFIX};
use crate::remote::store::Store;
use crate::remote::Location;
use crate::revlog::chain::{self, ChainWriter};
use crate::revlog::segment::{Event, Record};
use crate::settings::{FollowSettings, SaveDest};
use crate::timestamp::now_ns;

/// A segment is written early when this much waits.
const MAX_BUFFER: usize = 16 << 20;
/// An idle log writes a progress-only segment this often.
const IDLE_MARK: Duration = Duration::from_secs(60);
/// The longest wait between two attempts after a failure.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What a follower did, when it stops.
#[derive(Debug, Clone, Serialize)]
pub struct FollowReport {
    pub dest: String,
    /// The base of the chain written last.
    pub base: String,
    pub chains_started: u32,
    pub segments: u64,
    pub events: u64,
    /// The last revision written into a segment.
    pub through: i64,
    pub stopped_by: String,
}

pub async fn run(
    connector: &Connector,
    given: Vec<Target>,
    opts: &FollowSettings,
) -> Result<FollowReport> {
    let mut sigint = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let store = Store::open(&location(&opts.save.dest)?, &opts.save.s3).await?;
    let mut follower = Follower {
        connector,
        given,
        opts,
        store,
        report: FollowReport {
            dest: dest_text(&opts.save.dest),
            base: String::new(),
            chains_started: 0,
            segments: 0,
            events: 0,
            through: 0,
            stopped_by: String::new(),
        },
    };
    let stopped = tokio::select! {
        r = follower.follow() => r,
        _ = sigint.recv() => Ok("SIGINT".to_string()),
        _ = sigterm.recv() => Ok("SIGTERM".to_string()),
    }?;
    let mut report = follower.report;
    report.stopped_by = stopped;
    Ok(report)
}

fn location(dest: &SaveDest) -> Result<Location> {
    Ok(match dest {
        SaveDest::Dir(d) => Location::Local(d.clone()),
        SaveDest::S3 { bucket, prefix } => Location::S3 {
            bucket: bucket.clone(),
            key: prefix.clone(),
        },
        _ => bail!("snapshot follow writes to a DIR/ or an s3:// prefix"),
    })
}

fn dest_text(dest: &SaveDest) -> String {
    match dest {
        SaveDest::Dir(d) => d.display().to_string(),
        SaveDest::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}"),
        _ => String::new(),
    }
}

struct Follower<'a> {
    connector: &'a Connector,
    given: Vec<Target>,
    opts: &'a FollowSettings,
    store: Store,
    report: FollowReport,
}

/// How one watch ended, for the loop that starts the next.
enum Next {
    /// Start again from the chain's last revision (after a failure, with a back-off).
    Resume(String),
    /// Start a new chain with a new base: the old one cannot go on.
    NewChain(String),
    /// `--base-every`: a new base, and the old chain carried up to it first (no revision
    /// falls between the two chains).
    Rollover,
    /// The chain reached the revision it was carried to.
    Reached,
}

impl Follower<'_> {
    /// Chains, one after another, until a signal ends the command.
    async fn follow(&mut self) -> Result<String> {
        let (mut writer, mut next) = self.open_chains().await?;
        let mut backoff = Duration::from_secs(1);
        loop {
            let started = Instant::now();
            let until = next.as_ref().map(|n| n.base_revision);
            match self.watch(&mut writer, until).await {
                Next::NewChain(why) => {
                    writer = match next.take() {
                        Some(n) => {
                            eprintln!(
                                "etcdops: follow: {why}; the chain of {} ends at revision {}, going on with the chain of {}",
                                writer.base, writer.through, n.base
                            );
                            n
                        }
                        None => {
                            eprintln!(
                                "etcdops: follow: {why}; starting a new chain with a new base"
                            );
                            self.new_chain().await
                        }
                    };
                    backoff = Duration::from_secs(1);
                }
                Next::Rollover => {
                    eprintln!(
                        "etcdops: follow: the base is older than --base-every; saving a new one"
                    );
                    next = Some(self.new_chain().await);
                }
                Next::Reached => {
                    if let Some(n) = next.take() {
                        writer = n;
                    }
                }
                Next::Resume(why) => {
                    if started.elapsed() > MAX_BACKOFF {
                        backoff = Duration::from_secs(1);
                    }
                    eprintln!(
                        "etcdops: follow: {why}; resuming from revision {} in {backoff:?}",
                        writer.through + 1
                    );
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// A new chain on a new base, retried with a back-off until it is saved (the follower runs
    /// unattended; only its first chain's failure ends it, so that a mistake is seen at once).
    async fn new_chain(&mut self) -> ChainWriter {
        let mut backoff = Duration::from_secs(1);
        loop {
            match self.open_chain().await {
                Ok(w) => return w,
                Err(e) => {
                    eprintln!("etcdops: follow: saving a new base: {e:#}; again in {backoff:?}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// The chains a follower starts with: the one to write now, and the one to go on with once
    /// it reaches that one's base (as a `--base-every` rollover does, so that no revision falls
    /// between two chains, even when a follower was stopped in the middle of one).
    ///
    /// - The newest chain of this cluster and node in DEST, continued; but first the chain
    ///   before it, when that one ends short of its base.
    /// - Its base older than `--base-every`: carried up to a new base.
    /// - None: a new chain on a new base.
    async fn open_chains(&mut self) -> Result<(ChainWriter, Option<ChainWriter>)> {
        let (cluster, node) = self.whose().await?;
        let chains = chain::chains(&self.store).await?;
        let mine: Vec<&chain::Chain> = chains
            .iter()
            .filter(|c| c.cluster_id() == cluster && c.base.parsed.node == node)
            .filter(|c| !c.segments.is_empty())
            .collect();
        // The newest base: the chain before it may have been carried past its last write.
        let Some(newest) = mine.iter().max_by_key(|c| (c.base_ns, c.through_ns())) else {
            return Ok((self.open_chain().await?, None));
        };
        for why in &newest.problems {
            eprintln!("etcdops: follow: note: left out of the chain: {why}");
        }
        let before = mine
            .iter()
            .filter(|p| p.base_revision < newest.base_revision)
            .max_by_key(|p| p.base_ns)
            .filter(|p| p.through() < newest.base_revision);
        let (carried, next) = if self.base_too_old(newest.base_ns) {
            (*newest, self.open_chain().await?)
        } else if let Some(p) = before {
            (*p, self.resume(newest)?)
        } else {
            eprintln!(
                "etcdops: follow: continuing the chain of {} from revision {}",
                newest.base.name,
                newest.through() + 1
            );
            self.report.base = newest.base.name.clone();
            return Ok((self.resume(newest)?, None));
        };
        eprintln!(
            "etcdops: follow: carrying the chain of {} from revision {} up to revision {}, the base of {}",
            carried.base.name,
            carried.through() + 1,
            next.base_revision,
            next.base
        );
        self.report.base = next.base.clone();
        Ok((self.resume(carried)?, Some(next)))
    }

    fn resume(&self, c: &chain::Chain) -> Result<ChainWriter> {
        let encoding = super::encoding(&self.opts.save)?;
        let recipients = encoding.recipients.iter().map(|r| r.text.clone()).collect();
        ChainWriter::resume(c, encoding, recipients)
    }

    /// A new chain on a new base.
    async fn open_chain(&mut self) -> Result<ChainWriter> {
        let encoding = super::encoding(&self.opts.save)?;
        let recipients = encoding.recipients.iter().map(|r| r.text.clone()).collect();
        let (name, meta, revision) = self.save_base().await?;
        let mut w = ChainWriter::start(
            &name,
            revision,
            &meta.object_sha256,
            &meta.cluster_id,
            encoding,
            recipients,
        )?;
        let opening = [Record::Progress {
            revision,
            time_ns: now_ns(),
        }];
        w.write(&self.store, opening.to_vec(), revision, now_ns())
            .await?;
        self.report.base = name;
        self.report.chains_started += 1;
        self.report.through = revision;
        Ok(w)
    }

    fn base_too_old(&self, base_ns: i64) -> bool {
        self.opts
            .base_every
            .is_some_and(|every| now_ns().saturating_sub(base_ns) > every.as_nanos() as i64)
    }

    /// The cluster ID (as sidecars write it) and the node name (as generated names have it)
    /// of the endpoint a save would use: a follower continues only its own node's chains, so
    /// that the followers of several control planes writing to one place never share a chain.
    async fn whose(&self) -> Result<(String, String)> {
        let (target, status, _) =
            super::choose(self.connector, self.given.clone(), self.opts.save.cluster).await?;
        let origin = super::origin(self.connector, target, status).await;
        let node = crate::remote::meta::name_node(&origin.node);
        Ok((crate::units::hex_id(origin.status.cluster_id), node))
    }

    /// Save a base as `snapshot save DEST` does; its revision from its bytes (the save's
    /// read-back: the last key's revision raised to the compaction marks).
    async fn save_base(&self) -> Result<(String, Metadata, i64)> {
        let saved = super::run(self.connector, self.given.clone(), &self.opts.save).await?;
        let name = saved
            .file
            .rsplit('/')
            .next()
            .unwrap_or(&saved.file)
            .to_string();
        let sidecar = self
            .store
            .read_small(&format!("{name}{SIDECAR_SUFFIX}"))
            .await?;
        let meta = Metadata::parse(&sidecar, &name)?;
        let Some(revision) = saved.boot_revision else {
            bail!(
                "the base {name} was saved but not read back ({}): the log must start at the revision its bytes hold",
                saved.read_back.as_deref().unwrap_or("no copy")
            );
        };
        Ok((name, meta, revision))
    }

    /// Watch from the chain's end and write segments until the watch ends (or, with `until`,
    /// until the chain reaches that revision).
    async fn watch(&mut self, writer: &mut ChainWriter, until: Option<i64>) -> Next {
        if until.is_some_and(|u| writer.through >= u) {
            return Next::Reached;
        }
        let target =
            match super::choose(self.connector, self.given.clone(), self.opts.save.cluster).await {
                Ok((t, _, _)) => t,
                Err(e) => return Next::Resume(format!("{e:#}")),
            };
        let mut client = match self.connector.connect(&target).await {
            Ok(c) => c,
            Err(e) => return Next::Resume(format!("{}: {e}", target.endpoint)),
        };
        let mut stream = match KeyspaceWatch::open(&mut client, writer.through + 1).await {
            Ok(s) => s,
            Err(e) => return ended(e),
        };
        let mut log = Pending::default();
        let mut tick = tokio::time::interval(self.opts.flush);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut asked = false;
        let mut last_write = Instant::now();
        loop {
            // Complete through a revision: the last change received (a revision's changes come
            // whole, in order, and every revision changes a key of the watched keyspace); or,
            // with nothing waiting, a progress notification at the chain's own revision.
            let through = tokio::select! {
                _ = tick.tick() => {
                    if !log.events.is_empty() {
                        Some(log.last_revision())
                    } else {
                        if !asked {
                            if let Err(e) = stream.request_progress().await {
                                return ended(e);
                            }
                            asked = true;
                        }
                        None
                    }
                }
                u = stream.next(now_ns) => match u {
                    Err(e) => return ended(e),
                    Ok(Update::Events(events)) => {
                        log.add(events);
                        (log.bytes > MAX_BUFFER).then(|| log.last_revision())
                    }
                    // A progress notification says only that the store is at `revision`: etcd
                    // before 3.5.8 and 3.4.24 answers a request at once, before a watcher that
                    // is still catching up has its changes (etcd-io/etcd#15220). With nothing
                    // waiting and the store at the chain's revision, the log is complete.
                    Ok(Update::Progress(revision)) => {
                        asked = false;
                        let idle = log.events.is_empty() && revision == writer.through;
                        (idle && last_write.elapsed() >= IDLE_MARK).then_some(revision)
                    }
                },
            };
            let Some(through) = through else { continue };
            if let Err(e) = self.flush(&mut client, writer, &mut log, through).await {
                return Next::Resume(format!("writing a segment: {e:#}"));
            }
            last_write = Instant::now();
            match until {
                Some(u) if writer.through >= u => return Next::Reached,
                Some(_) => {}
                None if self.base_ns(writer).is_some_and(|t| self.base_too_old(t)) => {
                    return Next::Rollover
                }
                None => {}
            }
        }
    }

    /// `--metrics-file`, after a segment: when the log was complete, its revision, how long
    /// the segment's first change waited, the counts.
    fn write_metrics(&self, meta: &crate::revlog::chain::SegmentMeta, time_ns: i64) {
        let Some(path) = &self.opts.save.metrics_file else {
            return;
        };
        let waited = meta.first_event_ns.map_or(0, |f| time_ns.saturating_sub(f));
        let metrics = [
            (
                "etcdops_follow_last_segment_timestamp_seconds",
                "When the revision log was last complete (Unix time).",
                time_ns as f64 / 1e9,
            ),
            (
                "etcdops_follow_revision",
                "The last revision in the revision log.",
                meta.through as f64,
            ),
            (
                "etcdops_follow_lag_seconds",
                "How long the oldest change of the last segment waited before it was stored.",
                waited as f64 / 1e9,
            ),
            (
                "etcdops_follow_segments_total",
                "Segments written since the follower started.",
                self.report.segments as f64,
            ),
            (
                "etcdops_follow_changes_total",
                "Changes logged since the follower started.",
                self.report.events as f64,
            ),
        ];
        if let Err(e) = super::write_metrics(path, &metrics) {
            eprintln!("etcdops: follow: warning: {e:#}");
        }
    }

    fn base_ns(&self, writer: &ChainWriter) -> Option<i64> {
        let n = crate::remote::meta::parse_name(&writer.base)?;
        Some(n.time.saturating_mul(1_000_000_000))
    }

    /// One segment: new leases, the events, ended leases, a moved compaction, then "complete
    /// through `revision`".
    async fn flush(
        &mut self,
        client: &mut etcd_client::Client,
        writer: &mut ChainWriter,
        log: &mut Pending,
        revision: i64,
    ) -> Result<()> {
        let (alive, granted) = watch::leases(client, &log.leases)
            .await
            .map_err(|e| anyhow!("listing leases: {e}"))?;
        let time_ns = now_ns();
        let mut records: Vec<Record> = granted
            .into_iter()
            .map(|(id, ttl)| Record::Lease { id, ttl, time_ns })
            .collect();
        let events = std::mem::take(&mut log.events);
        let count = events.len() as u64;
        records.extend(events.into_iter().map(Record::Event));
        records.extend(
            log.leases
                .difference(&alive)
                .map(|&id| Record::LeaseEnd { id, time_ns }),
        );
        let compacted = watch::compaction_revision(client, log.compacted, revision)
            .await
            .map_err(|e| anyhow!("reading the compaction revision: {e}"))?;
        if compacted > log.compacted {
            records.push(Record::Compacted {
                revision: compacted,
                time_ns,
            });
        }
        records.push(Record::Progress { revision, time_ns });
        let meta = writer
            .write(&self.store, records, revision, time_ns)
            .await?;
        log.leases = alive;
        log.compacted = compacted;
        log.bytes = 0;
        if count > 0 {
            eprintln!(
                "etcdops: follow: {}: revisions {}..{}, {count} changes",
                meta.name,
                meta.after + 1,
                meta.through
            );
        }
        self.report.segments += 1;
        self.report.events += count;
        self.report.through = revision;
        self.write_metrics(&meta, time_ns);
        Ok(())
    }
}

/// What waits for the next segment.
#[derive(Default)]
struct Pending {
    events: Vec<Event>,
    bytes: usize,
    /// The leases the log knows alive, and the compaction revision it last recorded.
    leases: BTreeSet<i64>,
    compacted: i64,
}

impl Pending {
    fn add(&mut self, events: Vec<Event>) {
        for e in &events {
            self.bytes += e.key.len()
                + match &e.change {
                    crate::revlog::segment::Change::Put { value, .. } => value.len(),
                    crate::revlog::segment::Change::Delete => 0,
                }
                + 40;
        }
        self.events.extend(events);
    }

    fn last_revision(&self) -> i64 {
        self.events.last().map_or(0, |e| e.main)
    }
}

fn ended(e: Ended) -> Next {
    match e {
        Ended::Compacted(c) => Next::NewChain(format!(
            "the cluster was compacted up to revision {c}, past the log's position: the changes in between are lost to it"
        )),
        Ended::Cancelled(why) => Next::Resume(why),
        Ended::Failed(e) => Next::Resume(e.to_string()),
    }
}

impl Report for FollowReport {
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        (
            vec![
                "DEST",
                "BASE",
                "THROUGH",
                "SEGMENTS",
                "CHANGES",
                "STOPPED BY",
            ],
            vec![vec![
                self.dest.clone(),
                self.base.clone(),
                self.through.to_string(),
                self.segments.to_string(),
                self.events.to_string(),
                self.stopped_by.clone(),
            ]],
        )
    }

    fn json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    fn simple(&self) -> Vec<String> {
        vec![format!(
            "followed into {}: complete through revision {} ({} segments, {} changes), stopped by {}",
            self.dest, self.through, self.segments, self.events, self.stopped_by
        )]
    }
}
