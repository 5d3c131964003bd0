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

use crate::bolt::{Db, FileSource, ReadAt};
use crate::etcd::restore;
use crate::etcd::restore_membership::{decide, Decision, Inputs, Source};
use crate::etcd::schema;
use crate::etcd::status::{has_trailer, SnapshotStatus, TRAILER_LEN};
use crate::etcd::stored_members::{read_removed, read_stored, MemberSummary};
use crate::exit::Hinted;
use crate::fsutil::parent_dir;
use crate::manifest::edit::{plan_manifest_update, ManifestEdit};
use crate::output::Report;
use crate::release::{data_needs, Release};
use crate::remote::s3::BucketLookup;
use crate::remote::source;
use crate::remote::Location;
use crate::revlog::chain::{Point, Whose};
use crate::settings::RestoreSettings;
use crate::text::shell_quote;
use crate::units::hex_id;
use crate::{fsutil, snap, wal};

mod preflight;

/// The revision bump recommended for Kubernetes data (watch caches and informers must see
/// revisions move forward, never back).
pub const KUBERNETES_BUMP: u64 = 1_000_000_000;
/// Room needed beyond the database: the WAL segment plus slack for the new pages and `.snap`.
const EXTRA_SPACE: u64 = wal::SEGMENT_SIZE + (16 << 20);

/// The command that reproduces this restore on another member.
#[derive(Debug, Clone, Serialize)]
pub struct OtherMember {
    pub name: String,
    pub peer_urls: Vec<String>,
    pub command: String,
}

/// What a restore will do (dry run) or did.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    pub dry_run: bool,
    pub snapshot: String,
    pub data_dir: String,
    pub wal_dir: String,
    pub name: String,
    pub member_id: String,
    pub peer_urls: Vec<String>,
    pub cluster_id: String,
    /// Where the membership came from: `flag`, `this-node` or `snapshot`.
    pub membership_source: Source,
    /// `--initial-cluster` that every other member restores with.
    pub initial_cluster: String,
    pub initial_cluster_token: String,
    #[serde(serialize_with = "members_snake_case")]
    pub members: Vec<MemberSummary>,
    /// The snapshot's revision, and the one etcd starts at after a bump (absent in a dry run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bumped_revision: Option<i64>,
    #[serde(rename = "totalKey", skip_serializing_if = "Option::is_none")]
    pub total_key: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<&'static str>,
    /// The static-pod manifest pointed at the new data dir (`--update-manifest`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest_backup: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest_diff: Option<String>,
    /// The same restore for every other member (empty for a one-member cluster).
    pub other_members: Vec<OtherMember>,
    /// The oldest etcd release that runs the data (`3.6`), and why; absent when the snapshot
    /// names no version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub needs_etcd: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub needs_etcd_because: Option<String>,
    /// What the offline boot checks found matching in the restored dir (absent in a dry run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preflight: Option<String>,
    #[serde(skip)]
    pub notes: Vec<String>,
}

/// The members in this report's own field names (snake_case; `snapshot status` keeps etcd's).
fn members_snake_case<S: serde::Serializer>(
    members: &[MemberSummary],
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    use serde::Serialize;
    let v: Vec<serde_json::Value> = members
        .iter()
        .map(|m| {
            serde_json::json!({
                "id": m.id,
                "name": m.name,
                "peer_urls": m.peer_urls,
                "client_urls": m.client_urls,
                "is_learner": m.is_learner,
            })
        })
        .collect();
    v.serialize(s)
}

/// Everything decided before anything is written: the membership, the destination, the
/// input's trailer rule, the manifest edit.
struct Plan<'s> {
    opts: &'s RestoreSettings,
    decision: Decision,
    /// A separate WAL directory (not the default place inside the data dir).
    wal_dir: Option<PathBuf>,
    src: FileSource,
    trailer: bool,
    /// Made from a revision log here: no trailer to check.
    replayed: bool,
    edit: Option<ManifestEdit>,
    /// The release the data needs, and the key that says so.
    needs: Option<(Release, String)>,
    /// `meta/storageVersion` and `cluster/clusterVersion` as the snapshot has them.
    versions: (Option<String>, Option<String>),
    /// The release that will run the data, when known (`--etcd-version`, the manifest's image).
    target: Option<Release>,
    /// From a DIR/ or s3:// prefix: what the other members restore to get the same data.
    from_prefix: Option<FromPrefix>,
}

/// What the restore found in the snapshot while building the data dir.
struct Restored {
    status: SnapshotStatus,
    bumped: Option<i64>,
    /// What the preflight found matching.
    preflight: String,
    /// Signals wait until the manifest points at the new data dir.
    committing: fsutil::Critical,
}

/// Plan, then (unless a dry run) restore and point the manifest at the new data dir.
pub fn run(opts: &RestoreSettings) -> Result<RestoreReport> {
    // A compressed, encrypted or remote snapshot is decoded beside the data dir first (same
    // file system, so the space check and the copy stay local).
    // What can be refused without the snapshot is refused before it is fetched or decoded.
    let destinations = check_destinations(opts)?;
    fsutil::interruption_leaves(Some(format!(
        "the snapshot {} is untouched and nothing was put in place at {}{}",
        crate::text::escape(&opts.file.display().to_string()),
        crate::text::escape(&opts.data_dir.display().to_string()),
        if opts.update_manifest {
            "; the manifest is as it was"
        } else {
            ""
        }
    )));
    let (plain, from_prefix) = open_source(opts)?;
    let mut plan = plan(opts, &plain, destinations)?;
    let from_log = from_prefix
        .as_ref()
        .map(|p| p.notes.clone())
        .unwrap_or_default();
    plan.from_prefix = from_prefix;
    let (mut report, committing) = if opts.dry_run {
        // The snapshot is read as the restore would read it: a dry run refuses what the run
        // would refuse, and knows whether the data is Kubernetes' (for the --bump-revision note).
        let checks = crate::etcd::status::Checks {
            integrity: true,
            hash: plan.trailer && !opts.skip_hash_check,
            user_keys: false,
        };
        let status = crate::etcd::status::status(&plan.src, checks)
            .with_context(|| format!("snapshot {}", opts.file.display()))?;
        if status.trailer == crate::etcd::status::Trailer::Mismatch {
            bail!(
                "snapshot {}: the sha256 trailer does not match the database",
                opts.file.display()
            );
        }
        (plan.report(None, status.kubernetes), None)
    } else {
        let trailer_verified = plain.trailer_verified;
        let restored = restore(&plan, plain.into_temp().map(|t| (t, trailer_verified)))?;
        let kubernetes = restored.status.kubernetes;
        (
            plan.report(Some(&restored), kubernetes),
            Some(restored.committing),
        )
    };
    if let Some(e) = &plan.edit {
        report.manifest = Some(e.path.display().to_string());
        if opts.dry_run {
            report.manifest_diff = Some(e.diff());
        } else {
            let backup = e.apply()?;
            report.notes.extend(e.next_steps(&backup));
            report.manifest_backup = Some(backup.display().to_string());
        }
    }
    report.notes.extend(from_log);
    // From here the restore is whole: an interruption no longer undoes anything.
    fsutil::interruption_leaves(None);
    drop(committing);
    Ok(report)
}

/// What a restore from a DIR/ or s3:// prefix restored.
struct FromPrefix {
    /// The revision a revision log was replayed to (`None`: its newest snapshot, `snapshot`).
    revision: Option<i64>,
    /// That snapshot's name in the prefix.
    snapshot: String,
    notes: Vec<String>,
}

/// SOURCE as a plain snapshot file: a file or object as it is, or a DIR/ or s3:// prefix's
/// revision log made into one at the point asked for (with the lines that say how).
fn open_source(opts: &RestoreSettings) -> Result<(source::PlainSnapshot, Option<FromPrefix>)> {
    let scratch = scratch_dir(&opts.data_dir);
    if !opts.source.location.is_prefix() {
        return Ok((source::open(&opts.source, &scratch)?, None));
    }
    let whose = Whose {
        cluster: opts.cluster_id.as_deref(),
        node: opts.node.as_deref(),
    };
    let point = Point::of(opts.to_revision, opts.to_time_ns);
    let r = crate::revlog::point::restorable(&opts.source, point, whose, &scratch)?;
    if r.segments == 0 {
        // No revision log there: the newest verified snapshot, restored as it is.
        let note = format!(
            "note: no revision log in {}: restoring its newest snapshot, {}",
            opts.source.location, r.base
        );
        let from = FromPrefix {
            revision: None,
            snapshot: r.base,
            notes: vec![note],
        };
        return Ok((r.snapshot, Some(from)));
    }
    let mut notes = vec![format!(
        "note: revision {} from the chain of {} (window {}): {} segments, {} changes replayed",
        r.revision, r.base, r.window, r.segments, r.replayed.events
    )];
    for why in &r.problems {
        notes.push(format!("note: left out of the chain: {why}"));
    }
    if r.replayed.detached > 0 {
        notes.push(format!("note: {} keys were written on leases the log never saw granted (granted and gone between two segments); they are kept, attached to no lease", r.replayed.detached));
    }
    notes.push("note: the log holds key changes, leases and compactions; users, roles and membership changes made after the base are not in it".to_string());
    let from = FromPrefix {
        revision: Some(r.revision),
        snapshot: r.base,
        notes,
    };
    Ok((r.snapshot, Some(from)))
}

/// The checks that need no snapshot: the flags, the data and WAL dirs empty or missing, the
/// manifest edit possible. Returns the separate WAL dir and the edit.
fn check_destinations(opts: &RestoreSettings) -> Result<(Option<PathBuf>, Option<ManifestEdit>)> {
    if opts.bump_revision.is_some() != opts.mark_compacted {
        bail!("--bump-revision and --mark-compacted must be used together");
    }
    if opts.bump_revision == Some(0) {
        bail!("--bump-revision must be at least 1");
    }
    let data_dir = &opts.data_dir;
    ensure_empty_or_missing(data_dir, "--data-dir")?;
    // A --wal-dir that is the default place is the default (it lives inside the new data dir).
    let wal_dir = opts
        .wal_dir
        .clone()
        .filter(|w| *w != data_dir.join("member/wal"));
    if let Some(w) = &wal_dir {
        ensure_empty_or_missing(w, "--wal-dir")?;
    }
    // The manifest edit must be possible before anything is restored.
    let edit = match (&opts.manifest, opts.update_manifest) {
        (Some(m), true) => Some(plan_manifest_update(m, data_dir)?),
        _ => None,
    };
    Ok((wal_dir, edit))
}

/// Refuse everything that can be refused before anything is written, and decide the
/// membership (etcd/restore_membership.rs).
fn plan<'s>(
    opts: &'s RestoreSettings,
    snapshot: &source::PlainSnapshot,
    (wal_dir, edit): (Option<PathBuf>, Option<ManifestEdit>),
) -> Result<Plan<'s>> {
    let src = FileSource::open(&snapshot.path)
        .with_context(|| format!("reading {}", opts.file.display()))?;
    let trailer = has_trailer(src.size());
    if !trailer && !opts.skip_hash_check && !snapshot.replayed {
        bail!(
            "{} has no sha256 trailer (is it a raw member/snap/db?); pass --skip-hash-check to restore it without verification",
            opts.file.display()
        );
    }
    let what = || format!("snapshot {}", opts.file.display());
    let mut db = Db::open(&src).with_context(what)?;
    let text = |v: Option<Vec<u8>>| v.map(|b| String::from_utf8_lossy(&b).into_owned());
    let storage = text(
        db.get(schema::BUCKET_META, schema::META_STORAGE_VERSION)
            .with_context(what)?,
    );
    let cluster = text(
        db.get(schema::BUCKET_CLUSTER, schema::CLUSTER_VERSION)
            .with_context(what)?,
    );
    let target = target_release(opts);
    let needs = needs_release(target.as_ref(), storage.as_deref(), cluster.as_deref())?;
    let learners_trusted = storage.is_some();
    let mut notes = Vec::new();
    let stored = if opts.from_manifest() && opts.initial_cluster.is_none() {
        let mut stored = read_stored(&mut db).with_context(what)?;
        // Zombies: members etcd removed but 3.5 before 3.5.26 left in the members bucket.
        let removed = read_removed(&mut db).with_context(what)?;
        stored.retain(|m| {
            let zombie = removed.contains(&m.id);
            if zombie {
                notes.push(format!("note: the snapshot lists member {:x} both as a member and as removed (members_removed): a zombie etcd 3.5.26+ deletes; left out", m.id));
            }
            !zombie
        });
        stored
    } else {
        Vec::new()
    };
    if let Some(target) = downgrade_target(&mut db) {
        notes.push(format!("note: the snapshot's cluster has a downgrade to {} enabled (cluster/downgrade); the restored cluster keeps it", crate::text::escape(&target)));
    }
    drop(db);
    let decision = decide(&Inputs {
        name: &opts.name,
        advertise: &opts.initial_advertise_peer_urls,
        token: &opts.initial_cluster_token,
        flag: opts.initial_cluster.as_deref(),
        manifest: opts.manifest_cluster.as_deref(),
        from_manifest: opts.from_manifest(),
        snapshot: &stored,
        // Files of 3.6+ (which repaired the flags) have meta/storageVersion.
        learners_trusted,
    })?;
    let mut decision = decision;
    decision.notes.extend(notes);
    Ok(Plan {
        opts,
        decision,
        wal_dir,
        src,
        trailer,
        replayed: snapshot.replayed,
        edit,
        needs,
        versions: (storage, cluster),
        target: target.map(|(r, _)| r),
        from_prefix: None,
    })
}

/// The target of a downgrade left enabled in `cluster/downgrade` (JSON `{"target-version",
/// "enabled"}`, etcd 3.5+), if any.
fn downgrade_target<S: ReadAt>(db: &mut Db<S>) -> Option<String> {
    let raw = db.get(schema::BUCKET_CLUSTER, b"downgrade").ok()??;
    let v: serde_json::Value = serde_json::from_slice(&raw).ok()?;
    (v["enabled"] == true).then(|| v["target-version"].as_str().unwrap_or("").to_string())
}

/// The release that will run the restored data, when known (`--etcd-version`, else the
/// manifest's image tag), and where that came from.
fn target_release(opts: &RestoreSettings) -> Option<(Release, String)> {
    match (&opts.etcd_version, &opts.manifest) {
        (Some(v), _) => Some((*v, format!("--etcd-version {v}"))),
        (None, Some(m)) => m.image_release().map(|r| {
            let image = m.image.clone().unwrap_or_default();
            (
                r,
                format!("the manifest's image {}", crate::text::escape(&image)),
            )
        }),
        (None, None) => None,
    }
}

/// The release the snapshot's data needs (the newer of `meta/storageVersion` and
/// `cluster/clusterVersion`, src/release.rs), refused when the release that will run it is
/// known and older.
fn needs_release(
    target: Option<&(Release, String)>,
    storage: Option<&str>,
    cluster: Option<&str>,
) -> Result<Option<(Release, String)>> {
    let needs = data_needs(storage, cluster);
    if let (Some((need, why)), Some((target, from))) = (&needs, target) {
        if target.minor_only() < *need {
            return Err(Hinted {
                error: anyhow!(
                    "the snapshot needs etcd {} or later ({}), but etcd {target} will run it ({from}); etcd refuses data newer than itself",
                    need.short(),
                    crate::text::escape(why)
                ),
                hint: format!(
                    "restore it for etcd {} or later, or first move the snapshot's data down with the etcdutl of its release (`etcdutl migrate --data-dir DIR --target-version {}`) and save it again",
                    need.short(),
                    target.short()
                ),
            }
            .into());
        }
    }
    Ok(needs)
}

/// Build the data dir the plan describes, the way etcdutl's restore does: room, the database
/// placed and edited, WAL and .snap written, etcd's boot checks, then the commit. `decoded` is
/// the snapshot decoded into a temporary (and whether its trailer matched): it is moved into
/// place instead of copied when it is on the same file system.
fn restore(plan: &Plan, decoded: Option<(fsutil::TempFile, bool)>) -> Result<Restored> {
    // A write past `ulimit -f` must fail (and clean up), not kill us.
    crate::fsutil::catch_file_size_signal()?;
    let decoded = make_room(plan, decoded)?;
    let building = Building::beside(plan)?;
    let status = place_db(plan, decoded, &building.db_path())?;
    let bumped = restore::edit_db(
        &building.db_path(),
        &plan.decision.membership,
        &status,
        plan.opts.bump_revision,
    )
    .with_context(|| {
        format!(
            "editing the restored database {}",
            building.db_path().display()
        )
    })?;
    let preflight = building.write_wal_and_snap(plan)?;
    let committing = building.commit(plan)?;
    Ok(Restored {
        status,
        bumped,
        preflight,
        committing,
    })
}

/// The database's length without its trailer.
fn db_len(plan: &Plan) -> u64 {
    if plan.trailer {
        plan.src.size() - TRAILER_LEN
    } else {
        plan.src.size()
    }
}

/// Create the missing parents (0700, as etcdutl does) and check the free space; says of the
/// decoded temporary whether it can be moved into place (same file system).
fn make_room(
    plan: &Plan,
    decoded: Option<(fsutil::TempFile, bool)>,
) -> Result<Option<(fsutil::TempFile, bool, bool)>> {
    for d in std::iter::once(&plan.opts.data_dir).chain(&plan.wal_dir) {
        let parent = parent_dir(d);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let same_fs = |t: &fsutil::TempFile| {
        use std::os::unix::fs::MetadataExt;
        let dev = |p: &Path| fs::metadata(p).map(|m| m.dev()).ok();
        let here = dev(&parent_dir(&plan.opts.data_dir));
        here.is_some() && dev(&parent_dir(t.path())) == here
    };
    let decoded = decoded.map(|(t, ok)| {
        let adopt = same_fs(&t);
        (t, ok, adopt)
    });
    // A decoded temporary that is moved into place already holds its space.
    let adopting = decoded.as_ref().is_some_and(|(_, _, adopt)| *adopt);
    check_space(
        &parent_dir(&plan.opts.data_dir),
        if adopting { 0 } else { db_len(plan) },
    )?;
    Ok(decoded)
}

/// The database in place at `db_path`: the decoded temporary moved there, or the snapshot
/// copied with its trailer checked; its status (integrity checked) for the edits.
fn place_db(
    plan: &Plan,
    decoded: Option<(fsutil::TempFile, bool, bool)>,
    db_path: &Path,
) -> Result<SnapshotStatus> {
    let opts = &plan.opts;
    let verify = plan.trailer && !opts.skip_hash_check;
    let placed = match decoded {
        Some((temp, trailer_ok, true)) => {
            if verify && !trailer_ok {
                bail!(
                    "snapshot {}: the sha256 trailer does not match the database",
                    opts.file.display()
                );
            }
            adopt(temp, db_path, db_len(plan))
        }
        _ => {
            // Progress on a terminal, as a save shows it.
            let progress = std::sync::Mutex::new(crate::output::Progress::on_terminal());
            let total = db_len(plan);
            let copied = |done: u64| {
                if let Ok(mut p) = progress.lock() {
                    p.update(done, total);
                }
            };
            let copied = restore::copy_verified(&plan.src, db_path, total, verify, &copied);
            if let Ok(p) = progress.lock() {
                p.finish();
            }
            copied.map_err(Into::into)
        }
    };
    placed.with_context(|| format!("snapshot {}", opts.file.display()))
}

/// The new data dir (and WAL dir) under construction, in temporary sibling directories.
struct Building {
    data: fsutil::TempDir,
    wal: Option<fsutil::TempDir>,
    snap_dir: PathBuf,
    wal_dir: PathBuf,
}

impl Building {
    fn beside(plan: &Plan) -> Result<Building> {
        let data = fsutil::TempDir::beside(&plan.opts.data_dir)?;
        let wal = match &plan.wal_dir {
            Some(w) => Some(fsutil::TempDir::beside(w)?),
            None => None,
        };
        let snap_dir = data.create_within(Path::new("member/snap"))?;
        let wal_dir = match &wal {
            Some(w) => w.path().to_path_buf(),
            None => data.create_within(Path::new("member/wal"))?,
        };
        Ok(Building {
            data,
            wal,
            snap_dir,
            wal_dir,
        })
    }

    fn db_path(&self) -> PathBuf {
        self.snap_dir.join("db")
    }

    /// The first WAL segment and the .snap, then what etcd checks when it boots the data dir
    /// (nothing is put in place should that fail), then every directory fsynced.
    fn write_wal_and_snap(&self, plan: &Plan) -> Result<String> {
        let membership = &plan.decision.membership;
        let wal_file = self.wal_dir.join(wal::FIRST_SEGMENT);
        let snap_file = self.snap_dir.join(snap::file_name(membership));
        write_file(
            &wal_file,
            &wal::restore_records(membership, true),
            0o600,
            Some(wal::SEGMENT_SIZE),
        )?;
        write_file(&snap_file, &snap::restore_snap(membership), 0o666, None)?;
        let ids: Vec<u64> = membership.members.iter().map(|m| m.id).collect();
        let expect = preflight::Expect {
            members: &ids,
            storage_version: plan.versions.0.as_deref(),
            cluster_version: plan.versions.1.as_deref(),
            target: plan.target,
        };
        let checked =
            preflight::check(&self.db_path(), &wal_file, &snap_file, &expect).map_err(|p| {
                anyhow!(
                    "the restored data dir fails what etcd checks when it boots it, so nothing was put in place: {}",
                    p.join("; ")
                )
            })?;
        let member_dir = self.data.path().join("member");
        for d in [&self.snap_dir, &self.wal_dir, &member_dir, self.data.path()] {
            fsutil::sync_dir(d)?;
        }
        Ok(checked)
    }

    /// The WAL first: a data dir without its WAL would start as an empty member. Should the
    /// data dir then fail to go in place, the WAL is taken back out. From here to the manifest
    /// edit, SIGINT/SIGTERM wait (the caller drops the guard after the edit).
    fn commit(self, plan: &Plan) -> Result<fsutil::Critical> {
        let committing = fsutil::Critical::enter();
        let mut committed_wal = None;
        if let (Some(w), Some(wt)) = (&plan.wal_dir, self.wal) {
            let replaced = fs::symlink_metadata(w).ok().filter(|m| m.is_dir());
            wt.commit(w)?;
            committed_wal = Some((w, replaced));
        }
        if let Err(e) = self.data.commit(&plan.opts.data_dir) {
            if let Some((w, replaced)) = committed_wal {
                fsutil::undo_commit(w, replaced.as_ref());
            }
            return Err(e);
        }
        Ok(committing)
    }
}

/// Move a decoded snapshot into place as the database: cut its trailer, rename it (fsynced),
/// and walk it for the status (integrity checked) that the edits need.
fn adopt(mut temp: fsutil::TempFile, db_path: &Path, db_len: u64) -> Result<SnapshotStatus> {
    if let Some(f) = temp.file() {
        f.set_len(db_len)
            .with_context(|| format!("truncating {}", db_path.display()))?;
    }
    temp.commit(db_path)?;
    let src =
        FileSource::open(db_path).with_context(|| format!("reading {}", db_path.display()))?;
    Ok(crate::etcd::status::status(
        &src,
        crate::etcd::status::Checks {
            integrity: true,
            hash: false,
            user_keys: false,
        },
    )?)
}

/// The nearest existing directory at or above the data dir's parent.
fn scratch_dir(data_dir: &Path) -> PathBuf {
    let mut dir = std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
    while dir.pop() {
        if dir.is_dir() {
            return dir;
        }
    }
    std::env::temp_dir()
}

fn ensure_empty_or_missing(dir: &Path, flag: &str) -> Result<()> {
    // A symlink would be replaced by the rename, not followed: say so now, not at the end.
    if fs::symlink_metadata(dir).is_ok_and(|m| m.file_type().is_symlink()) {
        bail!(
            "{flag} {} is a symbolic link; pass the directory it points to",
            dir.display()
        );
    }
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

fn check_space(dir: &Path, db_len: u64) -> Result<()> {
    crate::fsutil::ensure_free_space(dir, db_len + EXTRA_SPACE, "the restore")
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

impl Plan<'_> {
    /// The report of this plan; `restored` is `None` for a dry run. `kubernetes`: the snapshot
    /// holds Kubernetes data.
    fn report(&self, restored: Option<&Restored>, kubernetes: bool) -> RestoreReport {
        let opts = &self.opts;
        let m = &self.decision.membership;
        let members: Vec<MemberSummary> = m.members.iter().map(MemberSummary::from).collect();
        let local = m.local_member();
        let mut notes = self.decision.notes.clone();
        if let Some(m) = &self.opts.unused_manifest {
            notes.push(format!(
                "hint: this node has an etcd manifest ({}): --from-manifest takes the name, peer URLs, token and a new data dir from it, and --update-manifest points etcd at the restore",
                m.display()
            ));
        }
        if m.members.len() > 1 {
            if self.opts.wal_dir.is_some() {
                notes.push("note: the commands for the other members do not carry --wal-dir; add it where a node keeps its WAL apart".to_string());
            }
            let elsewhere = |m: &crate::manifest::Manifest| {
                m.path != Path::new(crate::settings::DEFAULT_MANIFEST)
            };
            if self.opts.manifest.as_ref().is_some_and(elsewhere) {
                notes.push("note: on the other members, --from-manifest reads --manifest, ETCDOPS_MANIFEST or /etc/kubernetes/manifests/etcd.yaml; add --manifest PATH where etcd.yaml lives elsewhere".to_string());
            }
        }
        if kubernetes && self.opts.bump_revision.is_none() {
            notes.push(format!(
                "note: this snapshot holds Kubernetes data; consider --bump-revision {KUBERNETES_BUMP} --mark-compacted so that watch caches and informers see revisions move forward instead of back"
            ));
        }
        let wal_dir = self
            .wal_dir
            .clone()
            .unwrap_or_else(|| self.opts.data_dir.join("member/wal"));
        RestoreReport {
            dry_run: restored.is_none(),
            snapshot: opts.file.display().to_string(),
            data_dir: self.opts.data_dir.display().to_string(),
            wal_dir: wal_dir.display().to_string(),
            name: opts.name.clone(),
            member_id: hex_id(m.local),
            peer_urls: local.map(|l| l.peer_urls.clone()).unwrap_or_default(),
            cluster_id: hex_id(m.cluster_id),
            membership_source: self.decision.source,
            initial_cluster: self.decision.initial_cluster(),
            initial_cluster_token: opts.initial_cluster_token.clone(),
            members,
            revision: restored.map(|r| r.status.revision),
            bumped_revision: restored.and_then(|r| r.bumped),
            total_key: restored.map(|r| r.status.total_key),
            hash: restored.map(|r| r.status.hash),
            sha256: restored.map(|_| {
                if self.replayed {
                    "none: made from the revision log, each segment's sha256 checked"
                } else if opts.skip_hash_check {
                    "not checked"
                } else {
                    "verified"
                }
            }),
            manifest: None,
            manifest_backup: None,
            manifest_diff: None,
            other_members: self.other_members(),
            needs_etcd: self.needs.as_ref().map(|(r, _)| r.short()),
            needs_etcd_because: self.needs.as_ref().map(|(_, why)| crate::text::escape(why)),
            preflight: restored.map(|r| r.preflight.clone()),
            notes,
        }
    }

    /// One command per other member that restores the same membership there: the same
    /// snapshot (copied to the same path), the membership as an explicit --initial-cluster,
    /// the same token and revision bump, and nothing of this node's paths: with a manifest,
    /// that node's own manifest names its data dir; without one, etcd's default applies.
    fn other_members(&self) -> Vec<OtherMember> {
        let m = &self.decision.membership;
        if m.members.len() < 2 {
            return Vec::new();
        }
        let common = self.common_arguments();
        m.members
            .iter()
            .filter(|x| x.id != m.local)
            .map(|x| {
                let name = self
                    .decision
                    .shared_name(&x.peer_urls)
                    .unwrap_or(&x.name)
                    .to_string();
                let mut cmd = common.clone();
                if !self.opts.from_manifest() {
                    cmd.push(format!("--name={}", shell_quote(&name)));
                    cmd.push(format!(
                        "--initial-advertise-peer-urls={}",
                        shell_quote(&x.peer_urls.join(","))
                    ));
                }
                OtherMember {
                    name,
                    peer_urls: x.peer_urls.clone(),
                    command: cmd.join(" "),
                }
            })
            .collect()
    }

    /// SOURCE as the other members give it: absolute, a directory kept a directory, and a
    /// prefix without a log replaced by the very snapshot restored here (not whatever is newest
    /// when they restore).
    fn source_argument(&self) -> String {
        let opts = self.opts;
        let snapshot = match &opts.source.location {
            Location::S3 { .. } => opts.source.location.to_string(),
            Location::Local(_) => {
                let mut s = std::path::absolute(&opts.file)
                    .unwrap_or_else(|_| opts.file.clone())
                    .display()
                    .to_string();
                if opts.source.location.is_prefix() && !s.ends_with('/') {
                    s.push('/');
                }
                s
            }
        };
        match &self.from_prefix {
            Some(p) if p.revision.is_none() => format!("{snapshot}{}", p.snapshot),
            _ => snapshot,
        }
    }

    /// The words every other member's command shares.
    fn common_arguments(&self) -> Vec<String> {
        let opts = self.opts;
        let snapshot = self.source_argument();
        let mut cmd = vec![
            "etcdops".to_string(),
            "snapshot".into(),
            "restore".into(),
            shell_quote(&snapshot),
        ];
        if opts.source.location.is_remote() {
            // Where the object store is, as resolved here; credentials stay in each node's
            // environment.
            let s3 = &opts.source.s3;
            if let Some(e) = &s3.endpoint {
                cmd.push(format!("--s3-endpoint={}", shell_quote(e)));
            }
            if let Some((ca, _)) = &s3.ca {
                let ca = std::path::absolute(ca).unwrap_or_else(|_| ca.clone());
                cmd.push(format!(
                    "--s3-endpoint-ca={}",
                    shell_quote(&ca.display().to_string())
                ));
            }
            cmd.push(format!("--s3-region={}", shell_quote(&s3.region)));
            match s3.lookup {
                BucketLookup::Auto => {}
                BucketLookup::Path => cmd.push("--s3-bucket-lookup=path".into()),
                BucketLookup::Dns => cmd.push("--s3-bucket-lookup=dns".into()),
            }
            if s3.skip_verify {
                cmd.push("--s3-skip-ssl-verify".into());
            }
        }
        for id in &opts.source.identities {
            let id = std::path::absolute(id).unwrap_or_else(|_| id.clone());
            cmd.push(format!(
                "--identity={}",
                shell_quote(&id.display().to_string())
            ));
        }
        if opts.from_manifest() {
            cmd.push("--from-manifest".into());
            if opts.update_manifest {
                cmd.push("--update-manifest".into());
            }
        }
        cmd.push(format!(
            "--initial-cluster={}",
            shell_quote(&self.decision.initial_cluster())
        ));
        cmd.push(format!(
            "--initial-cluster-token={}",
            shell_quote(&opts.initial_cluster_token)
        ));
        if let Some(r) = self.from_prefix.as_ref().and_then(|p| p.revision) {
            cmd.push(format!("--to-revision={r}"));
            if let Some(id) = &opts.cluster_id {
                cmd.push(format!("--cluster-id={}", shell_quote(id)));
            }
            if let Some(node) = &opts.node {
                cmd.push(format!("--node={}", shell_quote(node)));
            }
        }
        if let Some(b) = opts.bump_revision {
            cmd.push(format!("--bump-revision={b}"));
            cmd.push("--mark-compacted".into());
        }
        if opts.skip_hash_check {
            cmd.push("--skip-hash-check".into());
        }
        cmd
    }
}

impl Report for RestoreReport {
    fn notes(&self) -> Vec<String> {
        self.notes.clone()
    }

    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        let rows = self
            .members
            .iter()
            .map(|m| {
                vec![
                    m.id.clone(),
                    m.name.clone(),
                    m.peer_urls.join(","),
                    if m.id == self.member_id {
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
        let source = match self.membership_source {
            Source::Flag => "--initial-cluster",
            Source::ThisNode => "this node alone",
            Source::Snapshot => "the snapshot's member list",
        };
        let mut lines = Vec::new();
        if self.dry_run {
            lines.push(format!(
                "plan (dry run, nothing written): restore {} into {}",
                self.snapshot, self.data_dir
            ));
        } else {
            lines.push(format!("restored {} into {}", self.snapshot, self.data_dir));
        }
        lines.extend([
            format!("wal:               {}", self.wal_dir),
            format!(
                "this member:       {} {} {}",
                self.name,
                self.member_id,
                self.peer_urls.join(",")
            ),
            format!(
                "membership:        {} member(s), from {source}",
                self.members.len()
            ),
            format!("cluster id:        {}", self.cluster_id),
            match (&self.needs_etcd, &self.needs_etcd_because) {
                (Some(v), Some(why)) => format!("needs:             etcd ≥ {v} ({why})"),
                _ => "needs:             any etcd 3.4+ (the snapshot names no version)".to_string(),
            },
            format!(
                "checked:           {}",
                self.preflight.as_deref().unwrap_or("(dry run)")
            ),
        ]);
        if let Some(rev) = self.revision {
            lines.push(format!(
                "revision:          {rev}{}",
                self.bumped_revision
                    .map(|b| format!(" (bumped to {b}, compacted)"))
                    .unwrap_or_default()
            ));
        }
        if let Some(k) = self.total_key {
            lines.push(format!("keys:              {k}"));
        }
        if let Some(s) = self.sha256 {
            lines.push(format!("sha256 trailer:    {s}"));
        }
        if let Some(m) = &self.manifest {
            lines.push(format!("manifest:          {m}"));
        }
        if let Some(b) = &self.manifest_backup {
            lines.push(format!("manifest backup:   {b}"));
        }
        if let Some(d) = &self.manifest_diff {
            lines.extend(d.lines().map(str::to_string));
        }
        if !self.other_members.is_empty() {
            lines.push(format!(
                "next (HA): copy {} to the same path on every other member and run there (the same membership everywhere, or the cluster splits; each must report cluster id {}):",
                self.snapshot, self.cluster_id
            ));
            for o in &self.other_members {
                lines.push(format!("  # on {} ({})", o.name, o.peer_urls.join(",")));
                lines.push(format!("  {}", o.command));
            }
        }
        lines
    }

    fn json(&self) -> serde_json::Value {
        crate::output::serialized(self)
    }

    fn simple(&self) -> Vec<String> {
        vec![format!(
            "{}, {}, {}, {}, {}",
            self.data_dir,
            self.member_id,
            self.cluster_id,
            self.revision.map(|r| r.to_string()).unwrap_or_default(),
            self.total_key.map(|k| k.to_string()).unwrap_or_default()
        )]
    }
}
