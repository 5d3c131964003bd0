//! Retention applied to a store: which saved snapshots go, and deleting them. The same code
//! for DIR/ and s3://; `snapshot prune` and `snapshot save --keep` both use it.
//!
//! Only snapshots with a valid sidecar are candidates; anything without one (an interrupted
//! save, another tool's file) is listed as skipped and never deleted. The newest verified
//! snapshot is always kept.

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
    pub fn deleted(&self) -> impl Iterator<Item = &Backup> {
        self.entries
            .iter()
            .filter(|e| matches!(e.action, Action::Delete))
            .map(|e| &e.backup)
    }
}

pub async fn plan(store: &Store, policy: &Policy) -> Result<Plan> {
    let backups = store.backups().await?;
    let times: Vec<i64> = backups
        .iter()
        .filter(|b| b.verified())
        .map(|b| b.parsed.time)
        .collect();
    let mut verdicts = decide(policy, &times).into_iter();
    let entries = backups
        .into_iter()
        .map(|backup| {
            let action = match &backup.meta {
                Err(why) => Action::Skip(why.clone()),
                Ok(_) => match verdicts.next() {
                    Some(v) if !v.reasons.is_empty() => Action::Keep(v.reasons),
                    _ => Action::Delete,
                },
            };
            Entry { backup, action }
        })
        .collect();
    Ok(Plan { entries })
}

pub async fn apply(store: &Store, plan: &Plan) -> Result<()> {
    for b in plan.deleted() {
        store.delete(&b.name).await?;
    }
    Ok(())
}
