//! `etcdops snapshot restore FILE`: build a data directory that a real etcd starts from, as
//! etcdutl 3.5 does (etcd-io/etcd etcdutl/snapshot/v3_snapshot.go `Restore`), but verified
//! first and built safely.
//!
//! 1. Validate the membership flags (before touching disk) and the destination (must not exist
//!    or be empty), check the trailer rule and the free space.
//! 2. In a dot-named temporary sibling of the data dir: copy the database (without its
//!    trailer) while hashing it, and at the same time run the integrity check on the input.
//! 3. Edit the copy with a copy-on-write commit: `members` = the new membership,
//!    `members_removed` emptied, `meta/consistent_index` = N and `meta/term` = 1, and with
//!    `--bump-revision B --mark-compacted` a marker revision `last + B` plus
//!    `meta/scheduledCompactRev` (as etcd 3.6 does).
//! 4. Write the WAL segment and the `.snap` file (byte-identical to etcdutl 3.5.1's), fsync
//!    files and directories, and rename the directory into place. Any failure removes the
//!    temporary directory; the input is only ever read.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::snapshot_status::{self, Checks, SnapshotStatus, TRAILER_LEN};
use crate::bolt::reader::bucket_root;
use crate::bolt::writer::{bucket_entries, Entry, Writer};
use crate::bolt::{BucketRoot, Db, FileSource, ReadAt};
use crate::etcd::members::{member_json, plan, Membership};
use crate::etcd::schema::{self, Revision};
use crate::output::{hex_id, Report};
use crate::{fsutil, snap, wal};

/// The revision bump recommended for Kubernetes data (watch caches and informers must see
/// revisions move forward, never back).
pub const KUBERNETES_BUMP: u64 = 1_000_000_000;
const COPY_CHUNK: usize = 1 << 20;
/// Room needed beyond the database: the WAL segment plus slack for the new pages and `.snap`.
const EXTRA_SPACE: u64 = wal::SEGMENT_SIZE + (16 << 20);

#[derive(Debug, Clone)]
pub struct RestoreOptions {
    pub file: PathBuf,
    pub data_dir: Option<PathBuf>,
    pub wal_dir: Option<PathBuf>,
    pub name: String,
    pub initial_cluster: Option<String>,
    pub initial_cluster_token: String,
    pub initial_advertise_peer_urls: String,
    pub skip_hash_check: bool,
    pub bump_revision: Option<u64>,
    pub mark_compacted: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct MemberLine {
    pub name: String,
    pub id: String,
    pub peer_urls: Vec<String>,
}

/// What was restored.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    pub snapshot: String,
    pub data_dir: String,
    pub wal_dir: String,
    pub name: String,
    pub member_id: String,
    pub cluster_id: String,
    pub members: Vec<MemberLine>,
    /// The snapshot's revision, and the one etcd starts at after a bump.
    pub revision: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bumped_revision: Option<i64>,
    #[serde(rename = "totalKey")]
    pub total_key: u64,
    pub hash: u32,
    pub sha256: &'static str,
    /// The same command for every other member (HA restores).
    pub other_members: Vec<String>,
    #[serde(skip)]
    pub notes: Vec<String>,
}

pub fn run(opts: &RestoreOptions) -> Result<RestoreReport> {
    // 1. Everything that can be refused is refused before anything is written.
    if opts.bump_revision.is_some() != opts.mark_compacted {
        bail!("--bump-revision and --mark-compacted must be used together");
    }
    if opts.bump_revision == Some(0) {
        bail!("--bump-revision must be at least 1");
    }
    let initial_cluster = opts
        .initial_cluster
        .clone()
        .unwrap_or_else(|| format!("{}={}", opts.name, opts.initial_advertise_peer_urls));
    let membership = plan(
        &opts.name,
        &initial_cluster,
        &opts.initial_cluster_token,
        &opts.initial_advertise_peer_urls,
    )
    .map_err(|e| anyhow!("{e}"))?;
    let data_dir = opts
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}.etcd", opts.name)));
    ensure_empty_or_missing(&data_dir, "--data-dir")?;
    // A --wal-dir that is the default place is the default (it lives inside the new data dir).
    let wal_dir_opt = opts
        .wal_dir
        .clone()
        .filter(|w| *w != data_dir.join("member/wal"));
    if let Some(w) = &wal_dir_opt {
        ensure_empty_or_missing(w, "--wal-dir")?;
    }

    let src =
        FileSource::open(&opts.file).with_context(|| format!("reading {}", opts.file.display()))?;
    let size = src.size();
    let trailer = snapshot_status::has_trailer(size);
    if !trailer && !opts.skip_hash_check {
        bail!(
            "{} has no sha256 trailer (is it a raw member/snap/db?); pass --skip-hash-check to restore it without verification",
            opts.file.display()
        );
    }
    let db_len = if trailer { size - TRAILER_LEN } else { size };
    let parent = parent_dir(&data_dir);
    check_space(&parent, db_len)?;

    // 2. Build in a temporary sibling directory.
    let tmp = TempDir::create(&parent, &data_dir)?;
    let wal_tmp = match &wal_dir_opt {
        Some(w) => Some(TempDir::create(&parent_dir(w), w)?),
        None => None,
    };
    let snap_dir = tmp.path.join("member/snap");
    let wal_dir_tmp = match &wal_tmp {
        Some(w) => w.path.clone(),
        None => tmp.path.join("member/wal"),
    };
    for d in [&snap_dir, &wal_dir_tmp] {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(d)
            .with_context(|| format!("creating {}", d.display()))?;
    }
    let db_path = snap_dir.join("db");
    let verify = trailer && !opts.skip_hash_check;
    let status = copy_and_check(&src, &opts.file, &db_path, db_len, verify)?;

    // 3. The database edits.
    let bumped = edit_db(&db_path, &membership, &status, opts.bump_revision)
        .with_context(|| format!("editing the restored database {}", db_path.display()))?;

    // 4. WAL, .snap, fsyncs, rename.
    write_file(
        &wal_dir_tmp.join(wal::FIRST_SEGMENT),
        &wal::restore_records(&membership, true),
        0o600,
        Some(wal::SEGMENT_SIZE),
    )?;
    write_file(
        &snap_dir.join(snap::file_name(&membership)),
        &snap::restore_snap(&membership),
        0o666,
        None,
    )?;
    for d in [&snap_dir, &wal_dir_tmp, &tmp.path.join("member"), &tmp.path] {
        fsutil::sync_dir(d)?;
    }
    let wal_dir = match (&wal_dir_opt, wal_tmp) {
        (Some(w), Some(wt)) => {
            wt.commit(w)?;
            w.clone()
        }
        _ => data_dir.join("member/wal"),
    };
    tmp.commit(&data_dir)?;

    Ok(report(
        opts,
        &initial_cluster,
        &data_dir,
        &wal_dir,
        &membership,
        &status,
        bumped,
    ))
}

fn ensure_empty_or_missing(dir: &Path, flag: &str) -> Result<()> {
    match fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                bail!(
                    "{flag} {} exists and is not empty (refusing to touch it)",
                    dir.display()
                );
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("{flag} {}", dir.display())),
    }
}

fn parent_dir(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn check_space(dir: &Path, db_len: u64) -> Result<()> {
    let stat = rustix::fs::statvfs(dir)
        .with_context(|| format!("checking free space in {}", dir.display()))?;
    let free = stat.f_bavail.saturating_mul(stat.f_frsize);
    let need = db_len + EXTRA_SPACE;
    if free < need {
        bail!(
            "not enough free space in {}: the restore needs {} bytes, {} are available",
            dir.display(),
            need,
            free
        );
    }
    Ok(())
}

/// A dot-named directory beside the destination (kubelet and etcd ignore it), removed on drop
/// unless committed by renaming it onto the destination.
struct TempDir {
    path: PathBuf,
    armed: bool,
}

impl TempDir {
    fn create(parent: &Path, dest: &Path) -> Result<TempDir> {
        let base = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "restore".into());
        let prefix = format!(".{base}.etcdops-restore-");
        // Leftovers of restores that were killed (their process is gone) are removed.
        if let Ok(entries) = fs::read_dir(parent) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(pid) = name.strip_prefix(&prefix) {
                    if !Path::new("/proc").join(pid).exists() {
                        let _ = fs::remove_dir_all(e.path());
                    }
                }
            }
        }
        let path = parent.join(format!("{prefix}{}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        Ok(TempDir { path, armed: true })
    }

    fn commit(mut self, dest: &Path) -> Result<()> {
        // rename(2) replaces an empty directory, which --data-dir may be.
        fs::rename(&self.path, dest)
            .with_context(|| format!("renaming {} to {}", self.path.display(), dest.display()))?;
        self.armed = false;
        fsutil::sync_parent(dest)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if self.armed {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// Copy the database bytes to `dest` while hashing them (when `verify`), and run the integrity
/// check on the input at the same time. Nothing of the copy survives a failure (the temporary
/// directory is removed by the caller's guard).
fn copy_and_check(
    src: &FileSource,
    input: &Path,
    dest: &Path,
    db_len: u64,
    verify: bool,
) -> Result<SnapshotStatus> {
    let checks = Checks {
        integrity: true,
        hash: false,
    };
    let (copied, status) = std::thread::scope(|scope| {
        let copy = scope.spawn(|| copy_hashing(src, dest, db_len, verify));
        let status = snapshot_status::status(src, checks);
        let copied = copy
            .join()
            .unwrap_or_else(|_| Err(anyhow!("the copy thread failed")));
        (copied, status)
    });
    let status = status.with_context(|| format!("snapshot {}", input.display()))?;
    if let Some(digest) = copied? {
        let mut expected = [0u8; TRAILER_LEN as usize];
        src.read_exact_at(&mut expected, db_len)
            .with_context(|| format!("reading the sha256 trailer of {}", input.display()))?;
        if digest != expected {
            bail!(
                "snapshot {} fails verification: its sha256 trailer does not match the database (nothing was restored)",
                input.display()
            );
        }
    }
    Ok(status)
}

/// Copy `db_len` bytes of `src` to `dest`, hashing them when `verify`. Reading and hashing run
/// on this thread while another writes, so SHA-256 overlaps the disk instead of adding to it;
/// a few 1 MiB buffers go round between the two. The data is made durable by the commit that
/// follows (its first fsync covers the whole file).
fn copy_hashing(
    src: &FileSource,
    dest: &Path,
    db_len: u64,
    verify: bool,
) -> Result<Option<[u8; 32]>> {
    use std::sync::mpsc::sync_channel;
    const BUFFERS: usize = 4;
    let mut out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dest)
        .with_context(|| format!("creating {}", dest.display()))?;
    let (full_tx, full_rx) = sync_channel::<(Vec<u8>, usize)>(BUFFERS);
    let (empty_tx, empty_rx) = sync_channel::<Vec<u8>>(BUFFERS);
    for _ in 0..BUFFERS {
        let _ = empty_tx.send(vec![0u8; COPY_CHUNK]);
    }
    std::thread::scope(|scope| {
        let writer = scope.spawn(move || -> Result<()> {
            for (buf, n) in full_rx {
                out.write_all(&buf[..n])
                    .with_context(|| format!("writing {}", dest.display()))?;
                // The reader may be gone after an error; nothing to return the buffer to then.
                let _ = empty_tx.send(buf);
            }
            Ok(())
        });
        let mut hasher = verify.then(Sha256::new);
        let mut pos = 0u64;
        let read = (|| -> Result<()> {
            while pos < db_len {
                let Ok(mut buf) = empty_rx.recv() else {
                    // The writer stopped: its error is reported below.
                    return Ok(());
                };
                let n = (db_len - pos).min(COPY_CHUNK as u64) as usize;
                src.read_exact_at(&mut buf[..n], pos)
                    .context("reading the snapshot")?;
                if let Some(h) = hasher.as_mut() {
                    h.update(&buf[..n]);
                }
                if full_tx.send((buf, n)).is_err() {
                    return Ok(());
                }
                pos += n as u64;
            }
            Ok(())
        })();
        drop(full_tx);
        let written = writer
            .join()
            .unwrap_or_else(|_| Err(anyhow!("the writer thread failed")));
        read?;
        written?;
        Ok(hasher.map(|h| h.finalize().into()))
    })
}

/// Apply etcd 3.5's restore edits (and the optional revision bump). Returns the bumped
/// revision, if any.
fn edit_db(
    path: &Path,
    m: &Membership,
    status: &SnapshotStatus,
    bump: Option<u64>,
) -> Result<Option<i64>> {
    let mut db = Db::open_file(path)?;
    let meta = *db.meta();
    let root = db.root();
    let mut top = bucket_entries(&mut db, &root)?;
    let mut w = Writer::new(&meta);

    let member_entries: Vec<Entry> = m
        .members
        .iter()
        .map(|x| Entry {
            key: hex_id(x.id).into_bytes(),
            value: member_json(x).into_bytes(),
            bucket: false,
        })
        .collect();
    let mut members_sorted = member_entries;
    members_sorted.sort_by(|a, b| a.key.cmp(&b.key));

    let mut meta_entries = existing(&mut db, &top, schema::BUCKET_META)?;
    put(
        &mut meta_entries,
        schema::META_CONSISTENT_INDEX,
        &(m.members.len() as u64).to_be_bytes(),
    );
    put(&mut meta_entries, schema::META_TERM, &1u64.to_be_bytes());

    let bumped = bump.map(|b| {
        status
            .revision
            .saturating_add(i64::try_from(b).unwrap_or(i64::MAX))
    });
    let mut new_key_value = None;
    if let Some(rev) = bumped {
        let marker = Revision {
            main: rev,
            sub: 0,
            tombstone: false,
        }
        .encode();
        put(&mut meta_entries, schema::META_SCHEDULED_COMPACT, &marker);
        let entry = Entry {
            key: marker,
            value: Vec::new(),
            bucket: false,
        };
        new_key_value = Some(match top.iter().find(|e| e.key == schema::BUCKET_KEY) {
            Some(e) => {
                let r = bucket_root(&e.value).map_err(|r| anyhow!("key bucket: {r}"))?;
                w.append(&mut db, &r, entry, sequence(&e.value))?
            }
            None => w.bucket_value(&[entry], 0),
        });
    }

    let mut set_bucket = |name: &[u8], value: Vec<u8>| match top.iter_mut().find(|e| e.key == name)
    {
        Some(e) => e.value = value,
        None => top.push(Entry {
            key: name.to_vec(),
            value,
            bucket: true,
        }),
    };
    set_bucket(schema::BUCKET_MEMBERS, w.bucket_value(&members_sorted, 0));
    set_bucket(schema::BUCKET_MEMBERS_REMOVED, w.bucket_value(&[], 0));
    set_bucket(schema::BUCKET_META, w.bucket_value(&meta_entries, 0));
    if let Some(v) = new_key_value {
        set_bucket(schema::BUCKET_KEY, v);
    }
    if !top.iter().any(|e| e.key == schema::BUCKET_CLUSTER) {
        let empty = w.bucket_value(&[], 0);
        top.push(Entry {
            key: schema::BUCKET_CLUSTER.to_vec(),
            value: empty,
            bucket: true,
        });
    }
    top.sort_by(|a, b| a.key.cmp(&b.key));
    let new_root = w.tree(&top);
    drop(db);
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    w.commit(&file, &meta, new_root)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(bumped)
}

/// The entries of top-level bucket `name` (empty when it does not exist).
fn existing<S: ReadAt>(db: &mut Db<S>, top: &[Entry], name: &[u8]) -> Result<Vec<Entry>> {
    match top.iter().find(|e| e.key == name) {
        Some(e) => {
            let r: BucketRoot = bucket_root(&e.value)
                .map_err(|r| anyhow!("bucket {}: {r}", String::from_utf8_lossy(name)))?;
            Ok(bucket_entries(db, &r)?)
        }
        None => Ok(Vec::new()),
    }
}

/// Insert or replace `key` in sorted entries.
fn put(entries: &mut Vec<Entry>, key: &[u8], value: &[u8]) {
    match entries.binary_search_by(|e| e.key.as_slice().cmp(key)) {
        Ok(i) => entries[i].value = value.to_vec(),
        Err(i) => entries.insert(
            i,
            Entry {
                key: key.to_vec(),
                value: value.to_vec(),
                bucket: false,
            },
        ),
    }
}

fn sequence(bucket_value: &[u8]) -> u64 {
    bucket_value
        .get(8..16)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .unwrap_or(0)
}

fn write_file(path: &Path, bytes: &[u8], mode: u32, preallocate: Option<u64>) -> Result<()> {
    let mut f: File = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))?;
    if let Some(len) = preallocate {
        // Zeros past the records, as etcd's preallocated segment (sparse here).
        f.set_len(len)
            .with_context(|| format!("sizing {}", path.display()))?;
    }
    f.sync_all()
        .with_context(|| format!("syncing {}", path.display()))
}

fn report(
    opts: &RestoreOptions,
    initial_cluster: &str,
    data_dir: &Path,
    wal_dir: &Path,
    m: &Membership,
    status: &SnapshotStatus,
    bumped: Option<i64>,
) -> RestoreReport {
    let members: Vec<MemberLine> = m
        .members
        .iter()
        .map(|x| MemberLine {
            name: x.name.clone(),
            id: hex_id(x.id),
            peer_urls: x.peer_urls.clone(),
        })
        .collect();
    let other_members = m
        .members
        .iter()
        .filter(|x| x.id != m.local)
        .map(|x| {
            let mut cmd = format!(
                "etcdops snapshot restore {} --name {} --initial-cluster {} --initial-cluster-token {} --initial-advertise-peer-urls {} --data-dir {}",
                opts.file.display(),
                x.name,
                initial_cluster,
                opts.initial_cluster_token,
                x.peer_urls.join(","),
                data_dir.display()
            );
            if opts.skip_hash_check {
                cmd.push_str(" --skip-hash-check");
            }
            if let Some(b) = opts.bump_revision {
                cmd.push_str(&format!(" --bump-revision {b} --mark-compacted"));
            }
            cmd
        })
        .collect();
    let mut notes = Vec::new();
    if status.kubernetes && bumped.is_none() {
        notes.push(format!(
            "note: this snapshot holds Kubernetes data; consider --bump-revision {KUBERNETES_BUMP} --mark-compacted so that watch caches and informers see revisions move forward instead of back"
        ));
    }
    RestoreReport {
        snapshot: opts.file.display().to_string(),
        data_dir: data_dir.display().to_string(),
        wal_dir: wal_dir.display().to_string(),
        name: opts.name.clone(),
        member_id: hex_id(m.local),
        cluster_id: hex_id(m.cluster_id),
        members,
        revision: status.revision,
        bumped_revision: bumped,
        total_key: status.total_key,
        hash: status.hash,
        sha256: if opts.skip_hash_check {
            "not checked"
        } else {
            "verified"
        },
        other_members,
        notes,
    }
}

impl Report for RestoreReport {
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        let rows = self
            .members
            .iter()
            .map(|m| {
                vec![
                    m.id.clone(),
                    m.name.clone(),
                    m.peer_urls.join(","),
                    if m.name == self.name {
                        "this member"
                    } else {
                        ""
                    }
                    .to_string(),
                ]
            })
            .collect();
        (vec!["id", "name", "peer addrs", ""], rows)
    }

    fn details(&self) -> Vec<String> {
        let mut lines = vec![
            format!("restored {} into {}", self.snapshot, self.data_dir),
            format!("wal:               {}", self.wal_dir),
            format!("cluster id:        {}", self.cluster_id),
            format!(
                "revision:          {}{}",
                self.revision,
                self.bumped_revision
                    .map(|b| format!(" (bumped to {b}, compacted)"))
                    .unwrap_or_default()
            ),
            format!("keys:              {}", self.total_key),
            format!("sha256 trailer:    {}", self.sha256),
        ];
        if !self.other_members.is_empty() {
            lines.push("on each other member, run:".to_string());
            lines.extend(self.other_members.iter().map(|c| format!("  {c}")));
        }
        lines
    }

    fn json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    fn simple(&self) -> Vec<String> {
        vec![format!(
            "{}, {}, {}, {}, {}",
            self.data_dir, self.member_id, self.cluster_id, self.revision, self.total_key
        )]
    }
}

/// `--from-manifest` without `--data-dir`: a new sibling of the manifest's host data dir,
/// `/var/lib/etcd-restore-20261122T040000Z` for `/var/lib/etcd`.
pub fn sibling_data_dir(m: &crate::manifest::Manifest) -> Result<PathBuf> {
    let (host, _) = m
        .host_data_dir()
        .map_err(|e| anyhow!("manifest {}: {e}", m.path.display()))?;
    let stamp = utc_stamp();
    let base = host
        .as_os_str()
        .to_string_lossy()
        .trim_end_matches('/')
        .to_string();
    Ok(PathBuf::from(format!("{base}-restore-{stamp}")))
}

fn utc_stamp() -> String {
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    time::OffsetDateTime::now_utc()
        .format(&fmt)
        .unwrap_or_else(|_| std::process::id().to_string())
}

/// A planned change of the manifest's data volume (`--update-manifest`), checked before the
/// restore runs.
pub struct ManifestEdit {
    path: PathBuf,
    old_text: String,
    new_text: String,
}

/// Prepare `--update-manifest`: only a static-pod manifest whose data dir sits on a hostPath
/// volume can be pointed at the new directory, and the result must parse to the same pod with
/// only that path changed.
pub fn plan_manifest_update(
    m: &crate::manifest::Manifest,
    opts: &RestoreOptions,
) -> Result<ManifestEdit> {
    use crate::manifest::{retarget_volume, Kind, Manifest};
    if m.kind != Kind::StaticPod {
        bail!(
            "--update-manifest works on static-pod manifests; {} is a {:?} (edit its --data-dir by hand)",
            m.path.display(),
            m.kind
        );
    }
    let (old_host, volume) = m
        .host_data_dir()
        .map_err(|e| anyhow!("manifest {}: {e}", m.path.display()))?;
    let volume = volume.ok_or_else(|| {
        anyhow!(
            "manifest {}: the data dir is not on a volume",
            m.path.display()
        )
    })?;
    let data_dir = opts
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}.etcd", opts.name)));
    let new_dir = std::path::absolute(&data_dir)
        .with_context(|| format!("resolving {}", data_dir.display()))?;
    let new_text = retarget_volume(
        m.text(),
        &volume,
        &old_host.display().to_string(),
        &new_dir.display().to_string(),
    )
    .map_err(|e| anyhow!("manifest {}: {e}", m.path.display()))?;
    // Prove it: the edited manifest must describe the same etcd, on the new directory.
    let edited = Manifest::parse(&m.path, &new_text)?;
    if edited.flags != m.flags || edited.image != m.image {
        bail!(
            "manifest {}: the edit would change more than the data volume",
            m.path.display()
        );
    }
    match edited.host_data_dir() {
        Ok((dir, _)) if dir == new_dir => {}
        _ => bail!(
            "manifest {}: the edited manifest does not point at {}",
            m.path.display(),
            new_dir.display()
        ),
    }
    Ok(ManifestEdit {
        path: m.path.clone(),
        old_text: m.text().to_string(),
        new_text,
    })
}

impl ManifestEdit {
    /// A unified diff of the change (one hunk per changed line, with no context).
    pub fn diff(&self) -> String {
        let name = self.path.display();
        let mut out = format!("--- {name}\n+++ {name}\n");
        for (i, (a, b)) in self.old_text.lines().zip(self.new_text.lines()).enumerate() {
            if a != b {
                out.push_str(&format!("@@ -{n},1 +{n},1 @@\n-{a}\n+{b}\n", n = i + 1));
            }
        }
        out
    }

    /// Keep the old manifest outside the manifests directory (kubelet runs every file there),
    /// then replace it atomically through a dot-named temporary file. Returns the backup path.
    pub fn apply(&self) -> Result<PathBuf> {
        let dir = parent_dir(&self.path);
        let file_name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "etcd.yaml".into());
        let backup_dir = std::path::absolute(&dir)
            .ok()
            .and_then(|d| d.parent().map(Path::to_path_buf))
            .unwrap_or_else(std::env::temp_dir);
        let backup = backup_dir.join(format!("{file_name}.etcdops-backup-{}", utc_stamp()));
        write_synced(&backup, self.old_text.as_bytes())?;
        fsutil::sync_dir(&backup_dir)?;
        let tmp = dir.join(format!(".{file_name}.etcdops-{}", std::process::id()));
        let written = write_synced(&tmp, self.new_text.as_bytes())
            .and_then(|_| {
                fs::rename(&tmp, &self.path)
                    .with_context(|| format!("replacing {}", self.path.display()))
            })
            .and_then(|_| fsutil::sync_dir(&dir));
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written?;
        Ok(backup)
    }

    pub fn next_steps(&self, backup: &Path, opts: &RestoreOptions) -> Vec<String> {
        vec![
            format!(
                "updated {}: the etcd-data hostPath now points at the restored data dir (old manifest kept at {})",
                self.path.display(),
                backup.display()
            ),
            "next: kubelet restarts etcd from the updated manifest; check it with `etcdops health`".to_string(),
            "next: restart kube-apiserver, kube-controller-manager and kube-scheduler (move their manifests out of the manifests directory and back) so they drop their caches".to_string(),
            format!(
                "next (HA): copy {} to every other control-plane node and run there: etcdops snapshot restore {} --from-manifest --update-manifest",
                opts.file.display(),
                opts.file.display()
            ),
        ]
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))?;
    f.sync_all()
        .with_context(|| format!("syncing {}", path.display()))
}
