//! `etcdops snapshot verify SOURCE`: a checklist with one mark per check, exit 1 when any
//! fails. SOURCE is a local file (plain, `.zst`, `.age`) or an `s3://` object.
//!
//! Checks: the object against its sidecar (when there is one: sha256 and size of the object and
//! of the plain file), the etcd sha256 trailer, bbolt's integrity check, and that etcd's
//! buckets can be read (revision, keys, members).

use anyhow::Result;
use serde::Serialize;

use crate::bolt::{Db, FileSource};
use crate::etcd::keyspace::{self, Keyspace, KeyspaceError, Query};
use crate::etcd::status::{status, Checks, SnapshotStatus, Trailer};
use crate::exit::Outcome;
use crate::output::Report;
use crate::remote::meta::Metadata;
use crate::remote::source::{self, BadContent, PlainSnapshot};
use crate::settings::VerifySettings;

mod boot;
mod chain;

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub check: &'static str,
    pub ok: bool,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub source: String,
    pub checks: Vec<Check>,
}

pub fn run(settings: &VerifySettings) -> Result<(VerifyReport, Outcome)> {
    let shown = settings.source.location.to_string();
    if settings.chain {
        return chain::run(settings);
    }
    let checks = match source::open(&settings.source, &std::env::temp_dir()) {
        Ok(plain) => checks_of(settings, &plain)?,
        Err(e) => match e.downcast_ref::<BadContent>() {
            Some(bad) => vec![Check {
                check: "object",
                ok: false,
                detail: bad.0.clone(),
            }],
            None => return Err(e),
        },
    };
    let failed: Vec<&str> = checks.iter().filter(|c| !c.ok).map(|c| c.check).collect();
    let outcome = if failed.is_empty() {
        Outcome::Ok
    } else {
        Outcome::Bad(format!(
            "snapshot {shown} fails verification: {}",
            failed.join(", ")
        ))
    };
    let report = VerifyReport {
        source: shown,
        checks,
    };
    Ok((report, outcome))
}

/// The checks of a snapshot that decoded to the end: the decoding, the sidecar, the trailer,
/// bbolt's integrity, etcd's schema, and with `--boot` a real etcd.
fn checks_of(settings: &VerifySettings, plain: &PlainSnapshot) -> Result<Vec<Check>> {
    let mut checks: Vec<Check> = decode_check(plain).into_iter().collect();
    let src = FileSource::open(&plain.path)?;
    let checked = Checks {
        integrity: true,
        hash: true,
        user_keys: false,
    };
    let s = match status(&src, checked) {
        Ok(s) => s,
        Err(e) => {
            if let Some(meta) = &plain.meta {
                checks.insert(0, metadata_check(meta, None));
            }
            checks.push(Check {
                check: "bbolt integrity",
                ok: false,
                detail: format!("{e:#}"),
            });
            return Ok(checks);
        }
    };
    checks.push(trailer_check(&s));
    checks.push(Check {
        check: "bbolt integrity",
        ok: true,
        detail: "key order, page references, freelist and both meta pages".to_string(),
    });
    let mut db = Db::open(FileSource::open(&plain.path)?)?;
    let keyspace = keyspace::read(&mut db, &Query::default());
    if let Some(meta) = &plain.meta {
        checks.insert(0, metadata_check(meta, Some((&s, keyspace.as_ref().ok()))));
    }
    checks.push(schema_check(&s, &keyspace));
    if let (Some(etcd), Ok(ks)) = (&settings.boot, &keyspace) {
        let storage = Some(s.version.as_str()).filter(|v| !v.is_empty());
        let wanted = boot::Wanted {
            needs: crate::release::data_needs(storage, s.cluster_version.as_deref()),
            prefer: settings.node_release,
        };
        checks.push(boot::check(
            &plain.path,
            etcd.as_deref(),
            &wanted,
            ks.current,
            ks.kvs.len(),
        ));
    }
    Ok(checks)
}

/// What was undone to reach the plain snapshot, if anything.
fn decode_check(plain: &PlainSnapshot) -> Option<Check> {
    let layers = match (plain.layers.compressed, plain.layers.encrypted) {
        (false, false) => return None,
        (true, false) => "zstd",
        (false, true) => "age",
        (true, true) => "zstd, age",
    };
    Some(Check {
        check: "decode",
        ok: true,
        detail: format!("{layers}: decoded to the end"),
    })
}

fn trailer_check(s: &SnapshotStatus) -> Check {
    let (ok, detail) = match s.trailer {
        Trailer::Verified => (true, "matches the database".to_string()),
        Trailer::Mismatch => (false, "does not match the database".to_string()),
        _ => (
            false,
            "missing: not a snapshot from `snapshot save`".to_string(),
        ),
    };
    Check {
        check: "sha256 trailer",
        ok,
        detail,
    }
}

/// The sidecar against the snapshot it describes. Its sha256s and sizes matched already (or
/// nothing was returned); here its own facts: a revision the snapshot holds (the server's
/// revision when the save began: at least 1, at most the snapshot's), a cluster ID that is
/// one, and the member IDs of the snapshot's `members` bucket, the saving member among them.
/// The cluster ID itself cannot be derived from a snapshot (etcd hashes the bootstrap
/// members, which a grown cluster no longer lists).
fn metadata_check(meta: &Metadata, read: Option<(&SnapshotStatus, Option<&Keyspace>)>) -> Check {
    let id = |s: &str| u64::from_str_radix(s, 16).ok().filter(|&v| v != 0);
    let mut problems = Vec::new();
    if id(&meta.cluster_id).is_none() {
        problems.push(format!(
            "cluster ID {:?} is not an etcd cluster ID",
            meta.cluster_id
        ));
    }
    if meta.revision < 1 {
        problems.push(format!("revision {} is not a revision", meta.revision));
    }
    if let Some((s, ks)) = read {
        // An empty keyspace is at revision 1, as etcd serves it (its store starts there).
        if let Some(end) = ks
            .map(|ks| ks.current.max(1))
            .filter(|&e| meta.revision > e)
        {
            problems.push(format!(
                "it says revision {}; the snapshot ends at revision {end}",
                meta.revision
            ));
        }
        let ours: std::collections::BTreeSet<Option<u64>> =
            s.members.iter().map(|m| id(&m.id)).collect();
        let theirs: std::collections::BTreeSet<Option<u64>> =
            meta.members.iter().map(|m| id(&m.id)).collect();
        if !ours.contains(&id(&meta.member_id)) || id(&meta.member_id).is_none() {
            problems.push(format!(
                "member {:?} (the one saved from) is not a member in the snapshot",
                meta.member_id
            ));
        } else if ours != theirs {
            problems.push("its member list is not the snapshot's".to_string());
        }
    }
    let problems: Vec<String> = problems.iter().map(|p| crate::text::escape(p)).collect();
    Check {
        check: "metadata",
        ok: problems.is_empty(),
        detail: if problems.is_empty() {
            format!(
                "object and plain sha256 match {} (revision {}, cluster {}, etcd {})",
                crate::text::escape(&meta.name),
                meta.revision,
                crate::text::escape(&meta.cluster_id),
                crate::text::escape(&meta.etcd_version)
            )
        } else {
            format!(
                "the sha256s match, but the metadata is wrong: {}",
                problems.join("; ")
            )
        },
    }
}

/// etcd's schema: revision keys well formed and in order, every value a KeyValue, the
/// consistent index present (etcd 3.4 writes no term, so none is required), the compaction not past the current revision, members readable.
fn schema_check(s: &SnapshotStatus, keyspace: &Result<Keyspace, KeyspaceError>) -> Check {
    let mut problems = Vec::new();
    let mut facts = String::new();
    match keyspace {
        Err(e) => problems.push(e.to_string()),
        Ok(ks) => {
            if ks.compacted > ks.current {
                problems.push(format!(
                    "compacted revision {} is past the current revision {}",
                    ks.compacted, ks.current
                ));
            }
            facts = format!(
                "revision {}, {} live keys of {} entries, compacted at {}",
                ks.current,
                ks.kvs.len(),
                ks.entries,
                ks.compacted
            );
        }
    }
    if s.consistent_index.is_none() {
        problems.push("meta/consistent_index is missing".to_string());
    }
    if s.members.is_empty() {
        problems.push("no member can be read from the members bucket".to_string());
    }
    Check {
        check: "etcd schema",
        ok: problems.is_empty(),
        detail: if problems.is_empty() {
            facts
        } else {
            problems.join("; ")
        },
    }
}

impl Report for VerifyReport {
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        (
            vec!["", "check", "detail"],
            self.checks
                .iter()
                .map(|c| {
                    vec![
                        if c.ok { "✓" } else { "✗" }.to_string(),
                        c.check.to_string(),
                        c.detail.clone(),
                    ]
                })
                .collect(),
        )
    }

    fn json(&self) -> serde_json::Value {
        crate::output::serialized(self)
    }

    fn simple(&self) -> Vec<String> {
        self.checks
            .iter()
            .map(|c| {
                format!(
                    "{} {}: {}",
                    if c.ok { "ok" } else { "FAIL" },
                    c.check,
                    c.detail
                )
            })
            .collect()
    }
}
