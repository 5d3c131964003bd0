//! Retention applied to a store: which saved snapshots go, and deleting them. The same code
//! for DIR/ and s3://; `snapshot prune` and `snapshot save --keep` both use it.
//!
//! Only snapshots with a valid sidecar are candidates; anything without one (an interrupted
//! save, another tool's file) is listed as skipped and never deleted. The newest verified
//! snapshot of each cluster and node is always kept.

use anyhow::Result;

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
    let backups = store.backups().await?;
    // Rules run over names; a name listed twice would be kept as one entry and deleted as the
    // other. The store's listing refuses repeats; this holds whatever store answered.
    let mut names = std::collections::HashSet::new();
    if let Some(b) = backups.iter().find(|b| !names.insert(b.name.as_str())) {
        anyhow::bail!(
            "{} is listed twice; nothing was deleted",
            crate::text::escape(&store.url(&b.name))
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
        for (&i, verdict) in members.iter().zip(decide(policy, &times)) {
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
    Ok(Plan { entries })
}

/// Delete what the plan deletes, going on past a refused delete. Each snapshot is deleted
/// sidecar first, so a refusal never leaves a sidecar naming nothing; should the object's own
/// delete be refused, its sidecar is written back, so that the next prune still sees it.
/// Returns the refusals.
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
