//! `etcdops defrag [--cluster] [--force]`: defragment members one at a time, the followers
//! first and the leader last, each only after the previous one answers again; unreachable
//! members are skipped and reported. With `--cluster`, refused when a member is already down
//! (one more out of service while it defragments could lose quorum), unless `--force`.

use anyhow::{bail, Result};
use serde_json::{json, Value};

use crate::client::cluster::{resolve_targets, statuses};
use crate::client::maintenance::{defrag_one_by_one, quorum_refusal, Defragmented};
use crate::client::{Connector, Target};
use crate::exit::Outcome;
use crate::output::Report;
use crate::units::{go_duration, hex_id, humanize_bytes};

#[derive(Debug, Clone)]
pub struct DefragReport {
    /// In the order they were defragmented.
    pub rows: Vec<Defragmented>,
}

pub async fn run(
    connector: &Connector,
    given: Vec<Target>,
    cluster: bool,
    force: bool,
) -> Result<(DefragReport, Outcome)> {
    let targets = resolve_targets(connector, given, cluster).await;
    let now = statuses(connector, &targets).await;
    if cluster && !force {
        if let Some(refusal) = quorum_refusal(&targets, &now) {
            bail!("{refusal}");
        }
    }
    let rows = defrag_one_by_one(connector, &targets, &now).await;
    Ok(judge(rows))
}

pub fn judge(rows: Vec<Defragmented>) -> (DefragReport, Outcome) {
    let bad = rows.iter().filter(|r| r.error.is_some()).count();
    let outcome = if bad == 0 {
        Outcome::Ok
    } else {
        Outcome::Bad(format!("{bad} of {} members not defragmented", rows.len()))
    };
    (DefragReport { rows }, outcome)
}

fn size(v: Option<i64>) -> String {
    v.map(|b| humanize_bytes(b.max(0) as u64))
        .unwrap_or_default()
}

impl Report for DefragReport {
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        let rows = self
            .rows
            .iter()
            .map(|r| {
                vec![
                    r.target.endpoint.clone(),
                    r.member_id.map(hex_id).unwrap_or_default(),
                    r.is_leader.to_string(),
                    size(r.before),
                    size(r.after),
                    r.took.map(go_duration).unwrap_or_default(),
                    r.error.clone().unwrap_or_else(|| "defragmented".into()),
                ]
            })
            .collect();
        (
            vec![
                "endpoint", "member", "leader", "before", "after", "took", "result",
            ],
            rows,
        )
    }

    fn json(&self) -> Value {
        Value::Array(
            self.rows
                .iter()
                .map(|r| {
                    json!({
                        "endpoint": r.target.endpoint,
                        "memberID": r.member_id,
                        "isLeader": r.is_leader,
                        "dbSizeBefore": r.before,
                        "dbSizeAfter": r.after,
                        "took": r.took.map(go_duration),
                        "error": r.error,
                    })
                })
                .collect(),
        )
    }

    /// etcdctl's lines.
    fn simple(&self) -> Vec<String> {
        self.rows
            .iter()
            .map(|r| match &r.error {
                None => format!("Finished defragmenting etcd member[{}]", r.target.endpoint),
                Some(e) => format!(
                    "Failed to defragment etcd member[{}] ({e})",
                    r.target.endpoint
                ),
            })
            .collect()
    }
}
