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

use std::io::{BufWriter, IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::signal::unix::{signal, SignalKind};

use crate::bolt::FileSource;
use crate::client::cluster::{endpoint_status, resolve_targets, statuses, EndpointStatus};
use crate::client::{Connector, Target};
use crate::etcd::status::{self as snapshot_status, Checks, TRAILER_LEN};
use crate::fsutil::TempFile;
use crate::output::Report;
use crate::settings::SaveSettings;
use crate::units::{go_duration, hex_id, humanize_bytes};

const WRITE_BUFFER: usize = 1 << 20;

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
    /// From reading the saved file back, as `snapshot status` reports them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash: Option<u32>,
    #[serde(rename = "totalKey", skip_serializing_if = "Option::is_none")]
    pub total_key: Option<u64>,
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

    let save = async {
        let (target, member_id, chosen_as) = choose(connector, given, opts.cluster).await?;
        eprintln!(
            "etcdops: saving a snapshot from {} (member {}, {chosen_as})",
            target.endpoint,
            hex_id(member_id)
        );
        let start = Instant::now();
        let mut report = stream_to_file(connector, &target, opts).await?;
        report.member_id = hex_id(member_id);
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
    // Dropping the save future on a signal drops the partial file guard, which removes it.
    tokio::select! {
        result = bounded => result,
        _ = sigint.recv() => bail!("interrupted (SIGINT); no snapshot written"),
        _ = sigterm.recv() => bail!("terminated (SIGTERM); no snapshot written"),
    }
}

/// Exactly one endpoint: the only one given, else the healthy leader, else the healthy member
/// with the highest raft index.
async fn choose(
    connector: &Connector,
    given: Vec<Target>,
    cluster: bool,
) -> Result<(Target, u64, &'static str)> {
    let targets = resolve_targets(connector, given, cluster).await;
    if let [only] = targets.as_slice() {
        let status = endpoint_status(connector, only)
            .await
            .map_err(|e| anyhow!("{}: {e}", only.endpoint))?;
        return Ok((only.clone(), status.member_id, "only endpoint"));
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
        return Ok(((*t).clone(), s.member_id, "leader"));
    }
    if let Some((s, t)) = healthy.iter().max_by_key(|(s, _)| s.raft_index) {
        return Ok(((*t).clone(), s.member_id, "highest raft index"));
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

/// Where the bytes go: an exclusive temporary beside FILE (removed on drop unless committed),
/// or stdout.
enum Sink {
    File(BufWriter<TempFile>),
    Stdout(std::io::Stdout),
}

impl Sink {
    fn open(dest: &Path, to_stdout: bool) -> Result<Sink> {
        if to_stdout {
            return Ok(Sink::Stdout(std::io::stdout()));
        }
        if dest.is_dir() {
            bail!("{} is a directory", dest.display());
        }
        crate::fsutil::clean_stale(&crate::fsutil::parent_dir(dest));
        let tmp = TempFile::beside(dest, 0o600)?;
        // Batch the 32 KiB messages into fewer, larger writes.
        Ok(Sink::File(BufWriter::with_capacity(WRITE_BUFFER, tmp)))
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        match self {
            Sink::File(f) => f
                .write_all(bytes)
                .with_context(|| format!("writing {}", f.get_ref().path().display())),
            Sink::Stdout(out) => out.lock().write_all(bytes).map_err(stdout_failed),
        }
    }

    /// Flush what is buffered (the fsync comes with the commit).
    fn flush(&mut self) -> Result<()> {
        match self {
            Sink::File(f) => f
                .flush()
                .with_context(|| format!("writing {}", f.get_ref().path().display())),
            Sink::Stdout(out) => out.lock().flush().map_err(stdout_failed),
        }
    }

    /// The temporary holding the bytes, for reading back.
    fn temp_path(&self) -> Option<&Path> {
        match self {
            Sink::File(f) => Some(f.get_ref().path()),
            Sink::Stdout(_) => None,
        }
    }

    /// fsync the temporary, move it over `dest` and make the rename durable.
    fn commit(self, dest: &Path) -> Result<()> {
        match self {
            Sink::File(f) => {
                let tmp = f
                    .into_inner()
                    .map_err(|e| anyhow!("writing: {}", e.error()))?;
                tmp.commit(dest)
            }
            Sink::Stdout(_) => Ok(()),
        }
    }
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

/// Streams everything into the sink, hashing all but the last 32 bytes seen, so that at the
/// end the held-back bytes are the trailer to compare with.
struct TrailerCheck {
    hasher: Sha256,
    tail: Vec<u8>,
    total: u64,
}

impl TrailerCheck {
    fn new() -> TrailerCheck {
        TrailerCheck {
            hasher: Sha256::new(),
            tail: Vec::with_capacity(2 * TRAILER_LEN as usize),
            total: 0,
        }
    }

    fn feed(&mut self, blob: &[u8]) {
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

    fn verify(self) -> Result<()> {
        if !snapshot_status::has_trailer(self.total) {
            bail!(
                "the stream ended without a sha256 trailer ({} bytes received); the snapshot is incomplete",
                self.total
            );
        }
        if self.hasher.finalize().as_slice() != self.tail.as_slice() {
            bail!(
                "the sha256 trailer sent by the server does not match the {} bytes received",
                self.total - TRAILER_LEN
            );
        }
        Ok(())
    }
}

async fn stream_to_file(
    connector: &Connector,
    target: &Target,
    opts: &SaveSettings,
) -> Result<SaveReport> {
    let ep = &target.endpoint;
    let mut client = connector
        .connect(target)
        .await
        .map_err(|e| anyhow!("{ep}: {e}"))?;
    let mut stream = tokio::time::timeout(opts.stall_timeout, client.snapshot())
        .await
        .map_err(|_| {
            anyhow!(
                "{ep}: no answer to the snapshot request within {:?}",
                opts.stall_timeout
            )
        })?
        .map_err(|e| {
            anyhow!(
                "{ep}: {}",
                connector.explain(target, crate::client::classify_etcd(&e))
            )
        })?;
    let mut sink = Sink::open(&opts.file, opts.to_stdout)?;
    let mut check = TrailerCheck::new();
    let mut progress = Progress::new(std::io::stderr().is_terminal());
    loop {
        let message = tokio::time::timeout(opts.stall_timeout, stream.message())
            .await
            .map_err(|_| {
                anyhow!(
                    "{ep}: the snapshot stream stalled: no data for {:?} (--stall-timeout)",
                    opts.stall_timeout
                )
            })?
            .map_err(|e| {
                anyhow!(
                    "{ep}: the snapshot stream broke: {}",
                    connector.explain(target, crate::client::classify_etcd(&e))
                )
            })?;
        let Some(message) = message else { break };
        let blob = message.blob();
        sink.write(blob)?;
        check.feed(blob);
        progress.update(check.total, message.remaining_bytes(), blob.len());
    }
    progress.finish();
    let size = check.total;
    check.verify().map_err(|e| anyhow!("{ep}: {e}"))?;
    sink.flush()?;

    let mut report = SaveReport {
        file: opts.file.display().to_string(),
        endpoint: ep.clone(),
        member_id: String::new(),
        chosen_as: "",
        size,
        sha256: "verified",
        revision: None,
        hash: None,
        total_key: None,
        took: String::new(),
    };
    if let Some(part) = sink.temp_path() {
        // Read the file back before it replaces anything: it must be a database we can read.
        let src =
            FileSource::open(part).with_context(|| format!("reading back {}", part.display()))?;
        let checks = Checks {
            integrity: true,
            hash: false,
        };
        let status = snapshot_status::status(&src, checks)
            .with_context(|| format!("reading back {}", part.display()))?;
        report.revision = Some(status.revision);
        report.hash = Some(status.hash);
        report.total_key = Some(status.total_key);
    }
    sink.commit(&opts.file)?;
    Ok(report)
}

/// Bytes, rate and percent on stderr, only when it is a terminal.
struct Progress {
    enabled: bool,
    start: Instant,
    last: Instant,
    total: Option<u64>,
}

impl Progress {
    fn new(enabled: bool) -> Progress {
        let now = Instant::now();
        Progress {
            enabled,
            start: now,
            last: now,
            total: None,
        }
    }

    fn update(&mut self, received: u64, remaining: u64, blob: usize) {
        if !self.enabled {
            return;
        }
        // remaining_bytes counts what is left after this message, so the first message gives
        // the database size.
        let total = *self.total.get_or_insert(remaining + blob as u64);
        if self.last.elapsed() < Duration::from_millis(200) {
            return;
        }
        self.last = Instant::now();
        let secs = self.start.elapsed().as_secs_f64().max(1e-3);
        let pct = (received * 100).checked_div(total).unwrap_or(100).min(100);
        eprint!(
            "\r{} / {} ({pct}%), {}/s   ",
            humanize_bytes(received),
            humanize_bytes(total),
            humanize_bytes((received as f64 / secs) as u64)
        );
    }

    fn finish(&self) {
        if self.enabled && self.total.is_some() {
            eprintln!();
        }
    }
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
        serde_json::to_value(self).unwrap_or_default()
    }

    fn headline(&self) -> Vec<String> {
        vec![format!("Snapshot saved at {}", self.file)]
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
