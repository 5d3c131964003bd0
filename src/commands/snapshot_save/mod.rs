//! `etcdops snapshot save FILE`: stream a consistent snapshot from exactly one endpoint through
//! `Maintenance.Snapshot` and write it as etcdctl does — the bbolt database followed by the
//! 32-byte sha256 trailer the server appends — but verified, atomic and never hanging.
//!
//! - The stream is hashed while it is written; a missing or wrong trailer is refused.
//! - The file is written to an exclusive temporary beside FILE (`fsutil::TempFile`: created with
//!   `O_EXCL` under an unpredictable name, mode 0600, never an existing file or a symlink),
//!   fsynced, read back with the `snapshot status` reader, renamed over FILE, and the directory
//!   is fsynced. Any failure or interruption (server gone, stall, SIGINT/SIGTERM, disk full)
//!   removes the temporary; an existing FILE is only ever replaced by a complete, verified
//!   snapshot. Two saves to one FILE each have their own temporary; the last to finish wins.
//! - With FILE `-` the bytes go to stdout; any failed write there (a closed pipe included) is
//!   an error, exit 2.
//! - A stall timeout (no bytes for a while) and an optional total timeout bound the stream.
//!
//! Mirrors etcd-io/etcd client/v3/snapshot/v3_snapshot.go `Save` (which checks only the trailer's
//! presence, not its value).

pub mod follow;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;

use tokio::signal::unix::{signal, SignalKind};

use crate::bolt::FileSource;
use crate::client::cluster::{
    endpoint_status, member_list, resolve_targets, statuses, EndpointStatus,
};
use crate::client::{Connector, Target};
use crate::etcd::status::{self as snapshot_status, Checks, TrailerCheck};
use crate::fsutil::{direct_writer, DirectFile, DirectWriter, TempFile};
use crate::output::{Progress, Report};
use crate::remote::codec::{parse_recipients, Digests, Encoder, Encoding};
use crate::remote::meta::{self, Metadata};
use crate::remote::multipart::{self, Multipart, Pending};
use crate::remote::prune;
use crate::remote::retention::Policy;
use crate::remote::s3::S3;
use crate::remote::store::Store;
use crate::settings::{SaveDest, SaveSettings};
use crate::timestamp::rfc3339;
use crate::units::{go_duration, hex, hex_id, humanize_bytes};

/// How long `--keep` may spend listing the destination and reading its sidecars: the listing
/// deadline of every command.
const KEEP_PLAN_DEADLINE: Duration = crate::remote::s3::LIST_DEADLINE;

/// What was saved.
#[derive(Debug, Clone, Serialize)]
pub struct SaveReport {
    pub file: String,
    pub endpoint: String,
    /// Member ID of the endpoint, hex.
    pub member_id: String,
    /// Why this endpoint: `only endpoint`, `leader`, or `highest raft index`.
    pub chosen_as: &'static str,
    /// Bytes written, trailer included.
    pub size: u64,
    pub sha256: &'static str,
    /// `zstd:LEVEL` when compressed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compression: Option<String>,
    /// Encrypted with age.
    pub encrypted: bool,
    /// Size of the stored object, when compressed or encrypted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_size: Option<u64>,
    /// Incomplete uploads of earlier, interrupted saves that this save aborted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub aborted_uploads: Vec<String>,
    /// Snapshots deleted by `--keep` after the save.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pruned: Vec<String>,
    /// Why `--keep` could not finish (the save itself is complete).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prune_failed: Option<String>,
    /// From reading the saved file back, as `snapshot status` reports them (plain files only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash: Option<u32>,
    #[serde(rename = "totalKey", skip_serializing_if = "Option::is_none")]
    pub total_key: Option<u64>,
    /// Why an s3:// (or compressed or encrypted) save could not read its snapshot back (no
    /// room in `$TMPDIR`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_back: Option<String>,
    /// The revision etcd would start at on this snapshot: the last key's, raised to the
    /// compaction marks (where `snapshot follow` starts its log).
    #[serde(skip)]
    pub boot_revision: Option<i64>,
    pub took: String,
}

pub async fn run(
    connector: &Connector,
    given: Vec<Target>,
    opts: &SaveSettings,
) -> Result<SaveReport> {
    // Install the handlers before anything is written.
    let mut sigint = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    // A write past `ulimit -f` fails with EFBIG (and the temporary is removed) instead of
    // killing us.
    crate::fsutil::catch_file_size_signal()?;

    let pending = Pending::default();
    let started = Instant::now();
    let save = async {
        let (target, status, chosen_as) = choose(connector, given, opts.cluster).await?;
        eprintln!(
            "etcdops: saving a snapshot from {} (member {}, {chosen_as})",
            target.endpoint,
            hex_id(status.member_id)
        );
        let start = Instant::now();
        let origin = origin(connector, target, status).await;
        let mut report = match &opts.dest {
            SaveDest::S3 { .. } => save_s3(connector, &origin, opts, &pending).await?,
            _ => save_local(connector, &origin, opts).await?,
        };
        report.chosen_as = chosen_as;
        report.took = go_duration(start.elapsed());
        Ok::<_, anyhow::Error>(report)
    };
    let bounded = async {
        match opts.timeout {
            Some(limit) => tokio::time::timeout(limit, save)
                .await
                .map_err(|_| anyhow!("snapshot save did not finish within --timeout {limit:?}"))?,
            None => save.await,
        }
    };
    // Dropping the save future on a signal drops the partial file guard, which removes it; an
    // upload in progress is aborted.
    let result = tokio::select! {
        result = bounded => result,
        _ = sigint.recv() => Err(anyhow!("interrupted (SIGINT); no snapshot written")),
        _ = sigterm.recv() => Err(anyhow!("terminated (SIGTERM); no snapshot written")),
    };
    if result.is_err() {
        pending.abort().await;
    }
    if let (Ok(report), Some(path)) = (&result, &opts.metrics_file) {
        let metrics = [
            (
                "etcdops_snapshot_last_success_timestamp_seconds",
                "When the last snapshot save succeeded (Unix time).",
                crate::timestamp::now_ns() as f64 / 1e9,
            ),
            (
                "etcdops_snapshot_last_duration_seconds",
                "How long the last successful save took.",
                started.elapsed().as_secs_f64(),
            ),
            (
                "etcdops_snapshot_last_size_bytes",
                "Size of the last saved snapshot (database and trailer).",
                report.size as f64,
            ),
            (
                "etcdops_snapshot_last_revision",
                "Revision of the last saved snapshot (0 when it was not read back).",
                report.revision.unwrap_or(0) as f64,
            ),
        ];
        if let Err(e) = write_metrics(path, &metrics) {
            eprintln!("warning: the snapshot is saved, but {e:#}");
        }
    }
    result
}

/// A Prometheus textfile (node-exporter's textfile collector), replaced atomically, mode 0644:
/// it holds numbers only.
fn write_metrics(path: &Path, metrics: &[(&str, &str, f64)]) -> Result<()> {
    let mut text = String::new();
    for (name, help, value) in metrics {
        text.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n"
        ));
    }
    crate::fsutil::write_atomic_public(path, text.as_bytes())
        .with_context(|| format!("writing the metrics file {}", path.display()))
}

/// Exactly one endpoint: the only one given, else the healthy leader, else the healthy member
/// with the highest raft index.
async fn choose(
    connector: &Connector,
    given: Vec<Target>,
    cluster: bool,
) -> Result<(Target, EndpointStatus, &'static str)> {
    let targets = resolve_targets(connector, given, cluster).await;
    if let [only] = targets.as_slice() {
        let status = endpoint_status(connector, only)
            .await
            .map_err(|e| anyhow!("{}: {e}", only.endpoint))?;
        return Ok((only.clone(), status, "only endpoint"));
    }
    let answers = statuses(connector, &targets).await;
    let healthy: Vec<(&EndpointStatus, &Target)> = answers
        .iter()
        .zip(&targets)
        .filter_map(|(s, t)| {
            s.as_ref()
                .ok()
                .filter(|s| s.errors.is_empty())
                .map(|s| (s, t))
        })
        .collect();
    if let Some((s, t)) = healthy.iter().find(|(s, _)| s.is_leader()) {
        return Ok(((*t).clone(), (*s).clone(), "leader"));
    }
    if let Some((s, t)) = healthy.iter().max_by_key(|(s, _)| s.raft_index) {
        return Ok(((*t).clone(), (*s).clone(), "highest raft index"));
    }
    let reasons: Vec<String> = answers
        .iter()
        .zip(&targets)
        .map(|(s, t)| {
            let why = match s {
                Err(e) => e.to_string(),
                Ok(s) => s.errors.join(", "),
            };
            format!("{}: {why}", t.endpoint)
        })
        .collect();
    bail!(
        "no healthy endpoint to take a snapshot from ({})",
        reasons.join("; ")
    )
}

/// A failed write to stdout is the end of the snapshot for whoever reads it: exit 2 with one
/// line, also for a closed pipe (which elsewhere ends a command quietly), and never a success
/// line. The I/O error is kept as text so that main does not take it for a quiet broken pipe.
fn stdout_failed(e: std::io::Error) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        anyhow!("writing the snapshot to stdout: the reader closed the pipe before the snapshot was complete; nothing usable was written")
    } else {
        anyhow!("writing the snapshot to stdout: {e}; the snapshot is incomplete")
    }
}

/// The snapshot stream of one endpoint, with the stall timeout and errors in words.
struct SnapshotStream<'a> {
    connector: &'a Connector,
    target: &'a Target,
    stall: Duration,
    stream: etcd_client::SnapshotStreaming,
}

impl<'a> SnapshotStream<'a> {
    async fn open(
        connector: &'a Connector,
        target: &'a Target,
        stall: Duration,
    ) -> Result<SnapshotStream<'a>> {
        let ep = &target.endpoint;
        let mut client = connector
            .connect(target)
            .await
            .map_err(|e| anyhow!("{ep}: {e}"))?;
        let stream = tokio::time::timeout(stall, client.snapshot())
            .await
            .map_err(|_| anyhow!("{ep}: no answer to the snapshot request within {stall:?}"))?
            .map_err(|e| {
                anyhow!(
                    "{ep}: {}",
                    connector.explain(target, crate::client::classify_etcd(&e))
                )
            })?;
        Ok(SnapshotStream {
            connector,
            target,
            stall,
            stream,
        })
    }

    async fn next(&mut self) -> Result<Option<etcd_client::SnapshotResponse>> {
        let ep = &self.target.endpoint;
        tokio::time::timeout(self.stall, self.stream.message())
            .await
            .map_err(|_| {
                anyhow!(
                    "{ep}: the snapshot stream stalled: no data for {:?} (--stall-timeout)",
                    self.stall
                )
            })?
            .map_err(|e| {
                anyhow!(
                    "{ep}: the snapshot stream broke: {}",
                    self.connector
                        .explain(self.target, crate::client::classify_etcd(&e))
                )
            })
    }
}

impl SnapshotStream<'_> {
    /// The whole stream, every blob through `write`, with progress on a terminal; the trailer
    /// checked at the end.
    async fn receive(
        &mut self,
        mut write: impl FnMut(&[u8]) -> Result<()>,
    ) -> Result<TrailerCheck> {
        let mut check = TrailerCheck::new();
        let mut progress = Progress::on_terminal();
        while let Some(message) = self.next().await? {
            let blob = message.blob();
            write(blob)?;
            check.feed(blob);
            progress.update(
                check.total,
                check.total.saturating_add(message.remaining_bytes()),
            );
        }
        progress.finish();
        check
            .verify()
            .map_err(|e| anyhow!("{}: {e}", self.target.endpoint))?;
        Ok(check)
    }
}

/// Where the save started from: the endpoint, its status and the member list.
struct Origin {
    target: Target,
    status: EndpointStatus,
    members: Vec<meta::Member>,
    /// The member name of the endpoint (for generated names).
    node: String,
    /// Unix seconds when the save began.
    started: i64,
}

impl Origin {
    fn metadata(&self, name: &str, digests: &Digests, encoding: &Encoding) -> Metadata {
        Metadata {
            format: meta::FORMAT.to_string(),
            name: name.to_string(),
            created: rfc3339(self.started),
            db_sha256: hex(&digests.plain_sha256),
            db_size: digests.plain_len,
            object_sha256: hex(&digests.object_sha256),
            object_size: digests.object_len,
            revision: self.status.revision,
            etcd_version: self.status.version.clone(),
            cluster_id: hex_id(self.status.cluster_id),
            member_id: hex_id(self.status.member_id),
            members: self.members.clone(),
            compression: encoding.zstd_level.map(|_| "zstd".to_string()),
            compression_level: encoding.zstd_level,
            encryption: (!encoding.recipients.is_empty()).then(|| "age".to_string()),
            recipients: encoding.recipients.iter().map(|r| r.text.clone()).collect(),
            etcdops_version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}

async fn origin(connector: &Connector, target: Target, status: EndpointStatus) -> Origin {
    let members = match member_list(connector, std::slice::from_ref(&target)).await {
        Ok((_, list)) => list
            .members()
            .iter()
            .map(|m| meta::Member {
                id: hex_id(m.id()),
                name: m.name().to_string(),
                peer_urls: m.peer_urls().to_vec(),
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    let own_id = hex_id(status.member_id);
    let node = members
        .iter()
        .find(|m| m.id == own_id && !m.name.is_empty())
        .map(|m| m.name.clone())
        .unwrap_or_else(|| format!("member-{own_id}"));
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    Origin {
        target,
        status,
        members,
        node,
        started,
    }
}

fn encoding(opts: &SaveSettings) -> Result<Encoding> {
    let mut recipients = Vec::new();
    for r in &opts.encrypt_to {
        recipients.extend(parse_recipients(r)?);
    }
    let most = crate::remote::codec::MAX_RECIPIENTS;
    if recipients.len() > most {
        bail!("--encrypt-to names {} recipients; at most {most} (a restore refuses larger age headers)", recipients.len());
    }
    Ok(Encoding {
        zstd_level: opts.compress,
        recipients,
    })
}

fn empty_report(file: String, origin: &Origin) -> SaveReport {
    SaveReport {
        file,
        endpoint: origin.target.endpoint.clone(),
        member_id: hex_id(origin.status.member_id),
        chosen_as: "",
        size: 0,
        sha256: "verified",
        revision: None,
        hash: None,
        total_key: None,
        compression: None,
        encrypted: false,
        object_size: None,
        aborted_uploads: Vec::new(),
        pruned: Vec::new(),
        prune_failed: None,
        read_back: None,
        boot_revision: None,
        took: String::new(),
    }
}

/// A generated name is never reused: a second save of one member within a second fails
/// instead of replacing the first.
fn taken(what: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("{what} already exists; nothing was replaced (another save of this member in the same second?)")
}

/// Where a local save writes: stdout, or a temporary that becomes FILE (or DIR/NAME), each
/// through the same encoding (a pipe of an "encrypted" backup must not carry the plain
/// snapshot).
enum Output {
    Stdout(Encoder<std::io::Stdout>),
    File {
        encoder: Encoder<DirectWriter>,
        dest: PathBuf,
        /// The generated name, for DIR/.
        name: Option<String>,
    },
}

impl Output {
    /// Refuse a directory or a generated name taken before a byte is requested.
    fn open(opts: &SaveSettings, origin: &Origin, encoding: &Encoding) -> Result<Output> {
        let (dest, name) = match &opts.dest {
            SaveDest::Stdout => {
                return Ok(Output::Stdout(Encoder::new(std::io::stdout(), encoding)?))
            }
            SaveDest::File(p) => (p.clone(), None),
            SaveDest::Dir(d) => {
                let name = meta::generate(&origin.node, origin.started, encoding.suffix());
                (d.join(&name), Some(name))
            }
            SaveDest::S3 { .. } => bail!("not a local destination"),
        };
        if dest.is_dir() {
            bail!(
                "{} is a directory (write DIR/ for a generated name inside it)",
                dest.display()
            );
        }
        if name.is_some() && dest.symlink_metadata().is_ok() {
            return Err(taken(dest.display()));
        }
        let temp = TempFile::beside(&dest, 0o600)?;
        let encoder = Encoder::new(direct_writer(temp), encoding)?;
        Ok(Output::File {
            encoder,
            dest,
            name,
        })
    }

    fn shown(&self) -> String {
        match self {
            Output::Stdout(_) => "-".to_string(),
            Output::File { dest, .. } => dest.display().to_string(),
        }
    }

    fn write(&mut self, blob: &[u8]) -> Result<()> {
        match self {
            Output::Stdout(out) => out.write_all(blob).map_err(stdout_failed),
            Output::File { encoder, dest, .. } => encoder
                .write_all(blob)
                .map_err(|e| write_failed(e, Some(dest))),
        }
    }
}

/// FILE, DIR/ or stdout: receive, finish the encoding, and for a file read it back, commit it
/// and (DIR/) write its sidecar and apply `--keep`.
async fn save_local(
    connector: &Connector,
    origin: &Origin,
    opts: &SaveSettings,
) -> Result<SaveReport> {
    let encoding = encoding(opts)?;
    let mut output = Output::open(opts, origin, &encoding)?;
    let mut report = empty_report(output.shown(), origin);
    let mut stream = SnapshotStream::open(connector, &origin.target, opts.stall_timeout).await?;
    // A compressed or encrypted file cannot be walked: its plain bytes are, from a copy.
    let mut spool = match (&output, encoding.is_plain()) {
        (Output::File { .. }, false) => Some(Spool::new()),
        _ => None,
    };
    let check = stream
        .receive(|blob| {
            if let Some(s) = &mut spool {
                s.write(blob);
            }
            output.write(blob)
        })
        .await?;
    report.size = check.total;
    let (encoder, dest, name) = match output {
        Output::Stdout(out) => {
            let (mut out, digests) = out
                .finish(check.file_sha256(), check.total)
                .map_err(stdout_failed)?;
            out.flush().map_err(stdout_failed)?;
            report.encoded(&encoding, &digests);
            return Ok(report);
        }
        Output::File {
            encoder,
            dest,
            name,
        } => (encoder, dest, name),
    };
    let (buffered, digests) = encoder
        .finish(check.file_sha256(), check.total)
        .map_err(|e| write_failed(e, Some(&dest)))?;
    let temp = buffered
        .into_inner()
        .map_err(|e| write_failed(e, Some(&dest)))?
        .into_temp();
    match spool {
        None => read_back(&temp, &mut report)?,
        Some(spool) => spool.read_back(&mut report)?,
    }
    report.encoded(&encoding, &digests);
    let (Some(name), SaveDest::Dir(dir)) = (name, &opts.dest) else {
        temp.commit(&dest)?;
        return Ok(report);
    };
    // The check before the stream, made certain: never replace a snapshot taken meanwhile.
    temp.commit_new(&dest)
        .map_err(|e| match dest.symlink_metadata() {
            Ok(_) => taken(dest.display()),
            Err(_) => e,
        })?;
    let store = Store::Dir(dir.clone());
    if let Err(e) = store
        .write_sidecar(&name, &origin.metadata(&name, &digests, &encoding))
        .await
    {
        // Without its sidecar the file is never trusted; do not leave it looking like one.
        let _ = std::fs::remove_file(&dest);
        return Err(e.context(format!("writing the metadata of {}", dest.display())));
    }
    if let Some(policy) = &opts.keep {
        prune_after_save(&store, policy, &name, &mut report).await;
    }
    Ok(report)
}

/// The plain snapshot of an S3 save, written to a 0600 temporary in `$TMPDIR` beside the
/// upload, so that it is read back (revision, hash, total keys, the integrity walk) as a file
/// save's is, before the object is completed. Without room for it (a full or read-only
/// `$TMPDIR`), the upload goes on without the read-back, and the report says so.
struct Spool {
    file: Option<DirectWriter>,
    /// Why there is no read-back.
    lost: Option<String>,
}

impl Spool {
    fn new() -> Spool {
        let at = std::env::temp_dir().join("etcdops-save.db");
        match TempFile::beside(&at, 0o600) {
            Ok(t) => Spool {
                file: Some(direct_writer(t)),
                lost: None,
            },
            Err(e) => Spool {
                file: None,
                lost: Some(format!("{e:#}")),
            },
        }
    }

    fn write(&mut self, blob: &[u8]) {
        if let Some(f) = &mut self.file {
            if let Err(e) = f.write_all(blob) {
                self.lost = Some(format!("writing the read-back copy in $TMPDIR: {e}"));
                self.file = None;
            }
        }
    }

    /// Walk the copy (and remove it); a database we cannot read is an error.
    fn read_back(self, report: &mut SaveReport) -> Result<()> {
        let temp = match self.file.map(|w| w.into_inner().map(DirectFile::into_temp)) {
            Some(Ok(temp)) => temp,
            Some(Err(e)) => {
                report.read_back = Some(format!("not read back: writing the copy in $TMPDIR: {e}"));
                return Ok(());
            }
            None => {
                report.read_back = self.lost.map(|why| format!("not read back: {why}"));
                return Ok(());
            }
        };
        read_back(&temp, report)
    }
}

/// Read the written file back before it replaces anything: it must be a database we can
/// read. Its revision, hash and key count go into the report.
fn read_back(temp: &TempFile, report: &mut SaveReport) -> Result<()> {
    let part = temp.path();
    let src = FileSource::open(part).with_context(|| format!("reading back {}", part.display()))?;
    let checks = Checks {
        integrity: true,
        hash: false,
        user_keys: false,
    };
    let status = snapshot_status::status(&src, checks)
        .with_context(|| format!("reading back {}", part.display()))?;
    report.revision = Some(status.revision);
    // An empty store is at revision 1 (etcd's first write is revision 2).
    report.boot_revision = [status.compact_revision, status.scheduled_compact_revision]
        .into_iter()
        .flatten()
        .chain([status.revision, 1])
        .max();
    report.hash = Some(status.hash);
    report.total_key = Some(status.total_key);
    Ok(())
}

impl SaveReport {
    /// One line per snapshot `--keep` deleted and per stale upload aborted.
    fn housekeeping(&self) -> Vec<String> {
        let pruned = self.pruned.iter().map(|p| format!("pruned {p}"));
        let aborted = self
            .aborted_uploads
            .iter()
            .map(|u| format!("aborted the incomplete upload {u}"));
        pruned.chain(aborted).collect()
    }

    /// What the encoding made of the snapshot: compression, encryption, the stored size.
    fn encoded(&mut self, encoding: &Encoding, digests: &Digests) {
        self.compression = encoding.zstd_level.map(|l| format!("zstd:{l}"));
        self.encrypted = !encoding.recipients.is_empty();
        self.object_size = (!encoding.is_plain()).then_some(digests.object_len);
    }
}

fn write_failed(e: std::io::Error, dest: Option<&Path>) -> anyhow::Error {
    match dest {
        Some(d) => anyhow!("writing {}: {e}", d.display()),
        None => anyhow!("writing: {e}"),
    }
}

/// `--keep` after a complete save: never deletes `saved`. A failure here does not undo the
/// save; it is reported beside it (exit 2). A save has no `--timeout` for its reads, so the
/// plan (the listing and every sidecar read) is bounded by [`KEEP_PLAN_DEADLINE`]; each delete
/// is bounded by its request timeout.
async fn prune_after_save(store: &Store, policy: &Policy, saved: &str, report: &mut SaveReport) {
    let planned = tokio::time::timeout(KEEP_PLAN_DEADLINE, prune::plan(store, policy, Some(saved)))
        .await
        .unwrap_or_else(|_| {
            Err(anyhow!(
                "listing {} and reading its sidecars did not finish within {}; nothing was deleted",
                crate::text::escape(&store.url("")),
                go_duration(KEEP_PLAN_DEADLINE)
            ))
        });
    let plan = match planned {
        Ok(plan) => plan,
        Err(e) => {
            report.prune_failed = Some(format!("{e:#}"));
            return;
        }
    };
    let refused = prune::apply(store, &plan).await;
    report.pruned = plan
        .deleted()
        .filter(|b| !refused.iter().any(|(n, _)| *n == b.name))
        .map(|b| store.url(&b.name))
        .collect();
    report.prune_failed = prune::refusals(&refused);
}

/// s3://BUCKET/PREFIX/: stream through sha256 (+ zstd, + age) into a multipart upload, complete
/// it only once the trailer is verified, then write the sidecar.
async fn save_s3(
    connector: &Connector,
    origin: &Origin,
    opts: &SaveSettings,
    pending: &Pending,
) -> Result<SaveReport> {
    let SaveDest::S3 { bucket, prefix } = &opts.dest else {
        bail!("not an s3:// destination");
    };
    let encoding = encoding(opts)?;
    let name = meta::generate(&origin.node, origin.started, encoding.suffix());
    let key = format!("{prefix}{name}");
    let s3 = Arc::new(S3::connect(&opts.s3).await?);
    s3.check_bucket(bucket).await?;
    if s3.list(bucket, &key).await?.iter().any(|o| o.key == key) {
        return Err(taken(format!("s3://{bucket}/{key}")));
    }
    let mut report = empty_report(format!("s3://{bucket}/{key}"), origin);
    report.aborted_uploads =
        multipart::abort_stale(&s3, bucket, prefix, &origin.node, origin.started).await;

    let mut stream = SnapshotStream::open(connector, &origin.target, opts.stall_timeout).await?;
    let mut upload = Multipart::start(s3.clone(), bucket, &key, pending).await?;
    let mut encoder = Encoder::new(upload.sink(), &encoding)?;
    let mut spool = Spool::new();
    let mut check = TrailerCheck::new();
    let mut progress = Progress::on_terminal();
    while let Some(message) = stream.next().await? {
        let blob = message.blob();
        encoder.write_all(blob).context("encoding the snapshot")?;
        spool.write(blob);
        check.feed(blob);
        progress.update(
            check.total,
            check.total.saturating_add(message.remaining_bytes()),
        );
        upload.send_ready().await?;
    }
    progress.finish();
    report.size = check.total;
    check
        .verify()
        .map_err(|e| anyhow!("{}: {e}", origin.target.endpoint))?;
    let (_, digests) = encoder
        .finish(check.file_sha256(), check.total)
        .context("encoding the snapshot")?;
    // Before the object is completed: it must be a database we can read, as a file save's is.
    spool.read_back(&mut report)?;
    let etag = upload.finish().await?;
    // The same connection: a second one would load the credentials again, and failing here
    // would leave the completed object without its sidecar.
    let store = Store::S3 {
        s3: s3.clone(),
        bucket: bucket.clone(),
        prefix: prefix.clone(),
    };
    publish_s3(&store, origin, &name, &etag, &digests, &encoding).await?;
    report.encoded(&encoding, &digests);
    report.object_size = Some(digests.object_len);
    report.revision = report.revision.or(Some(origin.status.revision));
    if let Some(policy) = &opts.keep {
        prune_after_save(&store, policy, &name, &mut report).await;
    }
    Ok(report)
}

/// Write the sidecar of a completed object, only if the object is ours: a save of this member
/// that began in the same second may have completed the same name meanwhile (the later save
/// wins the name and writes its own). Without its sidecar the object is never trusted: should
/// the sidecar fail, the object goes too.
async fn publish_s3(
    store: &Store,
    origin: &Origin,
    name: &str,
    etag: &str,
    digests: &Digests,
    encoding: &Encoding,
) -> Result<()> {
    let Store::S3 { s3, bucket, prefix } = store else {
        bail!("not an s3:// destination");
    };
    let key = format!("{prefix}{name}");
    let now_there = s3.list(bucket, &key).await?;
    let same = |a: &str| a.trim_matches('"') == etag.trim_matches('"');
    if !now_there.iter().any(|o| o.key == key && same(&o.etag)) {
        bail!("s3://{bucket}/{key} was completed by another save of this member in the same second after this one; that save's snapshot is kept");
    }
    if let Err(e) = store
        .write_sidecar(name, &origin.metadata(name, digests, encoding))
        .await
    {
        let _ = s3.delete_object(bucket, &key).await;
        return Err(e.context(format!("writing the metadata of s3://{bucket}/{key}")));
    }
    Ok(())
}

impl Report for SaveReport {
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        let opt = |v: Option<String>| v.unwrap_or_default();
        (
            vec![
                "file",
                "endpoint",
                "revision",
                "hash",
                "total keys",
                "size",
                "sha256",
                "took",
            ],
            vec![vec![
                self.file.clone(),
                self.endpoint.clone(),
                opt(self.revision.map(|r| r.to_string())),
                opt(self.hash.map(|h| format!("{h:x}"))),
                opt(self.total_key.map(|k| k.to_string())),
                humanize_bytes(self.size),
                self.sha256.to_string(),
                self.took.clone(),
            ]],
        )
    }

    fn json(&self) -> serde_json::Value {
        crate::output::serialized(self)
    }

    fn headline(&self) -> Vec<String> {
        vec![format!("Snapshot saved at {}", self.file)]
    }

    /// What `--keep` deleted and which stale uploads were aborted: a timer's journal sees
    /// only this output.
    fn details(&self) -> Vec<String> {
        self.housekeeping()
    }

    fn notes(&self) -> Vec<String> {
        self.read_back
            .iter()
            .map(|why| {
                format!("note: {why}; the upload itself is verified against its sha256 trailer")
            })
            .collect()
    }

    fn simple(&self) -> Vec<String> {
        let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        vec![
            format!("Snapshot saved at {}", self.file),
            format!(
                "{}, {}, {}, {}, {}, sha256 {}",
                self.endpoint,
                opt(self.revision.map(|r| r.to_string())),
                opt(self.hash.map(|h| format!("{h:x}"))),
                opt(self.total_key.map(|k| k.to_string())),
                humanize_bytes(self.size),
                self.sha256
            ),
        ]
        .into_iter()
        .chain(self.housekeeping())
        .collect()
    }
}
