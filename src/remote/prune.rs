//! Retention applied to a store: which saved snapshots go, and deleting them. The same code
//! for DIR/ and s3://; `snapshot prune` and `snapshot save --keep` both use it.
//!
//! Only snapshots with a valid sidecar are candidates; anything without one (an interrupted
//! save, another tool's file) is listed as skipped and never deleted. The newest verified
//! snapshot of each cluster and node is always kept.

use anyhow::Result;

use super::meta;
use super::retention::{decide, Policy};
use super::store::{Backup, Store};

#[derive(Debug)]
pub enum Action {
    /// Kept by these rules.
    Keep(Vec<&'static str>),
    Delete,
    /// Not a candidate, and why.
    Skip(String),
}

#[derive(Debug)]
pub struct Entry {
    pub backup: Backup,
    pub action: Action,
}

#[derive(Debug)]
pub struct Plan {
    pub entries: Vec<Entry>,
    /// Revision-log segments that no kept base needs (their base is deleted, or gone).
    pub segments_deleted: Vec<String>,
    /// Segments of the bases kept.
    pub segments_kept: usize,
}

impl Plan {
    /// What the plan deletes: never a name that an entry keeps or skips.
    pub fn deleted(&self) -> impl Iterator<Item = &Backup> {
        let spared: std::collections::HashSet<&str> = self
            .entries
            .iter()
            .filter(|e| !matches!(e.action, Action::Delete))
            .map(|e| e.backup.name.as_str())
            .collect();
        self.entries
            .iter()
            .filter(move |e| {
                matches!(e.action, Action::Delete) && !spared.contains(e.backup.name.as_str())
            })
            .map(|e| &e.backup)
    }
}

/// Retention is decided per cluster and node (the sidecar's cluster ID, the name's node), so
/// that three control-plane nodes saving into one prefix each keep their own history. `protect`
/// (the snapshot `save --keep` just wrote) is always kept.
pub async fn plan(store: &Store, policy: &Policy, protect: Option<&str>) -> Result<Plan> {
    let objects = store.objects().await?;
    let backups = store.backups_in(&objects).await?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let mut plan = plan_of(backups, policy, protect, now, |name| store.url(name))?;
    segments_of(&mut plan, objects.iter().map(|(n, _)| n.as_str()));
    Ok(plan)
}

/// Which segments go: those whose base (by name) is not kept. A segment's sidecar without its
/// object (an interrupted prune) counts as the segment.
fn segments_of<'a>(plan: &mut Plan, objects: impl Iterator<Item = &'a str>) {
    let kept: std::collections::HashSet<String> = plan
        .entries
        .iter()
        .filter(|e| !matches!(e.action, Action::Delete))
        .filter_map(|e| meta::stem_of(&e.backup.name))
        .collect();
    let mut segments: Vec<String> = objects
        .map(|n| n.strip_suffix(meta::SIDECAR_SUFFIX).unwrap_or(n))
        .filter_map(|n| Some((n, meta::parse_segment_name(n)?)))
        .filter_map(|(n, seg)| {
            if kept.contains(&seg.stem) {
                plan.segments_kept += 1;
                None
            } else {
                Some(n.to_string())
            }
        })
        .collect();
    segments.sort();
    segments.dedup();
    plan.segments_deleted = segments;
}

/// [`plan`] over a listing already read; `url` names a snapshot in the error.
fn plan_of(
    backups: Vec<Backup>,
    policy: &Policy,
    protect: Option<&str>,
    now: i64,
    url: impl Fn(&str) -> String,
) -> Result<Plan> {
    // Rules run over names; a name listed twice would be kept as one entry and deleted as the
    // other. The store's listing refuses repeats; this holds whatever store answered.
    let mut names = std::collections::HashSet::new();
    if let Some(b) = backups.iter().find(|b| !names.insert(b.name.as_str())) {
        anyhow::bail!(
            "{} is listed twice; nothing was deleted",
            crate::text::escape(&url(&b.name))
        );
    }
    let group = |b: &Backup| -> Option<(String, String)> {
        let meta = b.meta.as_ref().ok()?;
        Some((meta.cluster_id.clone(), b.parsed.node.clone()))
    };
    let mut groups: Vec<(String, String)> = backups.iter().filter_map(group).collect();
    groups.sort();
    groups.dedup();
    let mut actions: Vec<Option<Action>> = backups.iter().map(|_| None).collect();
    for g in &groups {
        let members: Vec<usize> = (0..backups.len())
            .filter(|&i| group(&backups[i]).as_ref() == Some(g))
            .collect();
        let times: Vec<i64> = members.iter().map(|&i| backups[i].parsed.time).collect();
        for (&i, verdict) in members.iter().zip(decide(policy, &times, now)) {
            actions[i] = Some(if protect == Some(backups[i].name.as_str()) {
                Action::Keep(vec!["just saved"])
            } else if verdict.reasons.is_empty() {
                Action::Delete
            } else {
                Action::Keep(verdict.reasons)
            });
        }
    }
    let entries = backups
        .into_iter()
        .zip(actions)
        .map(|(backup, action)| {
            // Every verified snapshot is in a group; the rest are skipped with the reason.
            let action = action.unwrap_or_else(|| {
                Action::Skip(backup.meta.as_ref().err().cloned().unwrap_or_default())
            });
            Entry { backup, action }
        })
        .collect();
    Ok(Plan {
        entries,
        segments_deleted: Vec::new(),
        segments_kept: 0,
    })
}

/// Delete what the plan deletes, going on past a refused delete. Each snapshot is deleted
/// sidecar first, so a refusal never leaves a sidecar naming nothing; should the object's own
/// delete be refused, its sidecar is written back, so that the next prune still sees it.
/// Returns the refusals.
/// Delete the bases the plan deletes, then the segments no kept base needs (each sidecar
/// first: an interruption leaves an object in no chain, never a sidecar naming nothing).
pub async fn apply(store: &Store, plan: &Plan) -> Vec<(String, anyhow::Error)> {
    let mut refused = Vec::new();
    for b in plan.deleted() {
        if let Err(e) = store.delete(&b.name).await {
            if let Ok(meta) = &b.meta {
                let _ = store.write_sidecar(&b.name, meta).await;
            }
            refused.push((b.name.clone(), e));
        }
    }
    for name in &plan.segments_deleted {
        if let Err(e) = store.delete(name).await {
            refused.push((name.clone(), e));
        }
    }
    refused
}

/// What to do when a prune (or `--keep`) fails.
pub const REFUSED_HINT: &str = "fix what the error names (s3:DeleteObject or s3:ListBucket permission, the directory's permissions, the network), then run `etcdops snapshot prune` with the same rules";

/// One line for the refusals [`apply`] returned, naming the first; `None` when there were none.
pub fn refusals(refused: &[(String, anyhow::Error)]) -> Option<String> {
    let (name, e) = refused.first()?;
    Some(format!(
        "deleting {} snapshot(s) failed, the first {}: {e:#}",
        refused.len(),
        crate::text::escape(name)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::meta::{generate, parse_name, Metadata, FORMAT};

    /// A verified snapshot of cluster 1 saved on `node` at `time`.
    fn backup(node: &str, time: i64) -> Backup {
        let name = generate(node, time, "");
        let meta = Metadata {
            format: FORMAT.into(),
            name: name.clone(),
            created: "1970-01-01T00:00:00Z".into(),
            db_sha256: "00".into(),
            db_size: 1,
            object_sha256: "00".into(),
            object_size: 1,
            revision: 5,
            etcd_version: "3.5.1".into(),
            cluster_id: "1".into(),
            member_id: "2".into(),
            members: vec![],
            compression: None,
            compression_level: None,
            encryption: None,
            recipients: vec![],
            etcdops_version: "0".into(),
        };
        Backup {
            parsed: parse_name(&name).unwrap(),
            name,
            size: 1,
            meta: Ok(meta),
        }
    }

    fn keep_last(n: usize) -> Policy {
        Policy {
            last: Some(n),
            ..Policy::default()
        }
    }

    fn url(name: &str) -> String {
        format!("s3://bkt/p/{name}")
    }

    fn deleted(plan: &Plan) -> Vec<String> {
        plan.deleted().map(|b| b.name.clone()).collect()
    }

    /// Five daily snapshots listed correctly: the rules delete the four older ones.
    #[test]
    fn a_listing_without_repeats_is_pruned_by_the_rules() {
        let backups: Vec<Backup> = (0..5).map(|d| backup("cp1", d * 86_400)).collect();
        let newest = backups[4].name.clone();
        let plan = plan_of(backups, &keep_last(1), None, 0, url).unwrap();
        let gone = deleted(&plan);
        assert_eq!(gone.len(), 4, "{gone:?}");
        assert!(!gone.contains(&newest));
    }

    /// The bug of issue 23: the newest name listed twice was kept as one entry and deleted as
    /// the other. `plan` refuses such a listing whatever the store answered.
    #[test]
    fn a_name_listed_twice_is_refused_before_any_rule_runs() {
        let mut backups: Vec<Backup> = (0..5).map(|d| backup("cp1", d * 86_400)).collect();
        let twice = backups[4].name.clone();
        backups.push(backup("cp1", 4 * 86_400));
        for protect in [None, Some(twice.as_str())] {
            let again: Vec<Backup> = backups
                .iter()
                .map(|b| backup(&b.parsed.node, b.parsed.time))
                .collect();
            let e = plan_of(again, &keep_last(1), protect, 0, url).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("{} is listed twice; nothing was deleted", url(&twice))
            );
        }
    }

    /// Even a plan holding one name as kept and as deleted never deletes it.
    #[test]
    fn a_kept_name_is_never_deleted() {
        let a = backup("cp1", 0);
        let b = backup("cp1", 86_400);
        let (a_name, b_name) = (a.name.clone(), b.name.clone());
        let plan = Plan {
            entries: vec![
                Entry {
                    backup: backup("cp1", 0),
                    action: Action::Keep(vec!["newest"]),
                },
                Entry {
                    backup: a,
                    action: Action::Delete,
                },
                Entry {
                    backup: b,
                    action: Action::Delete,
                },
                Entry {
                    backup: backup("cp1", 2 * 86_400),
                    action: Action::Skip("no sidecar".into()),
                },
                Entry {
                    backup: backup("cp1", 2 * 86_400),
                    action: Action::Delete,
                },
            ],
            segments_deleted: Vec::new(),
            segments_kept: 0,
        };
        assert_eq!(deleted(&plan), vec![b_name]);
        assert!(!deleted(&plan).contains(&a_name));
    }

    #[test]
    fn segments_go_only_with_their_base() {
        let (old, new) = (backup("cp1", 1_000), backup("cp1", 90_000));
        let (old_name, new_name) = (old.name.clone(), new.name.clone());
        let mut plan = plan_of(vec![old, new], &keep_last(1), None, 0, url).unwrap();
        let seg = |base: &str, through: i64| {
            meta::segment_name(&meta::stem_of(base).unwrap(), through, 1_000_000, "")
        };
        let (gone, kept) = (seg(&old_name, 7), seg(&new_name, 9));
        let orphan = seg(&generate("cp1", 500, ""), 3);
        let objects = [
            gone.clone(),
            format!("{gone}.json"),
            kept.clone(),
            format!("{kept}.json"),
            format!("{orphan}.json"),
            "unrelated.seg".to_string(),
        ];
        segments_of(&mut plan, objects.iter().map(String::as_str));
        assert_eq!(plan.segments_deleted, {
            let mut v = vec![gone, orphan];
            v.sort();
            v
        });
        assert_eq!(
            plan.segments_kept, 2,
            "the kept base's segment and its sidecar"
        );
    }
}
