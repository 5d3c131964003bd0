//! `etcdops recover-space [--dry-run] [--force]`: the NOSPACE recovery etcd's maintenance guide
//! prescribes, in its order: compact to the current revision (physically), defragment every
//! member one at a time with the leader last, disarm the alarms, then prove the cluster takes a
//! write again. `--dry-run` prints the plan with the etcdctl commands each step stands for.
//! Exit 0 only when no alarm is left and a write succeeds.

use anyhow::{anyhow, bail, Result};
use serde::Serialize;

use crate::client::cluster::{resolve_targets, statuses, EndpointStatus};
use crate::client::maintenance::{
    alarms, compact, defrag_one_by_one, defrag_order, disarm, quorum_refusal, write_check,
};
use crate::client::{Connector, Target};
use crate::exit::Outcome;
use crate::output::Report;
use crate::units::humanize_bytes;

/// One step, as planned or as it went.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub step: String,
    /// The etcdctl command it stands for.
    pub etcdctl: String,
    /// What happened (absent in a dry run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    pub ok: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct RecoverReport {
    pub dry_run: bool,
    pub revision: i64,
    pub steps: Vec<Step>,
    /// Bytes the defragmentation gave back, over all members.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub freed: Option<i64>,
}

pub async fn run(
    connector: &Connector,
    given: Vec<Target>,
    dry_run: bool,
    force: bool,
    etcdctl_flags: &str,
) -> Result<(RecoverReport, Outcome)> {
    let targets = resolve_targets(connector, given, true).await;
    let now = statuses(connector, &targets).await;
    let leader = now
        .iter()
        .zip(&targets)
        .find(|(s, _)| s.as_ref().is_ok_and(EndpointStatus::is_leader))
        .or_else(|| now.iter().zip(&targets).find(|(s, _)| s.is_ok()))
        .ok_or_else(|| anyhow!("no member answers; nothing can be recovered"))?;
    let (Ok(lead), lead_target) = leader else {
        bail!("no member answers; nothing can be recovered");
    };
    let revision = lead.revision;
    // The dry run refuses what the real run would refuse.
    if !force {
        if let Some(refusal) = quorum_refusal(&targets, &now) {
            bail!("{refusal}");
        }
    }
    let mut steps = plan(&targets, &now, lead_target, revision, etcdctl_flags);
    if dry_run {
        return Ok((
            RecoverReport {
                dry_run,
                revision,
                steps,
                freed: None,
            },
            Outcome::Ok,
        ));
    }
    let freed = execute(connector, &targets, &now, lead_target, revision, &mut steps).await;
    let outcome = if steps.iter().all(|s| s.ok) {
        Outcome::Ok
    } else {
        Outcome::Bad("space not recovered: see the steps above".into())
    };
    Ok((
        RecoverReport {
            dry_run,
            revision,
            steps,
            freed: Some(freed),
        },
        outcome,
    ))
}

/// The steps, in order, with the etcdctl commands they stand for.
fn plan(
    targets: &[Target],
    now: &[Result<EndpointStatus, crate::client::EndpointError>],
    leader: &Target,
    revision: i64,
    flags: &str,
) -> Vec<Step> {
    // Each command reaches etcd as this run does (`flags`: TLS files, user), so it runs as
    // printed.
    let ctl = |ep: &str| format!("etcdctl --endpoints={ep}{flags}");
    let step = |step: String, etcdctl: String| Step {
        step,
        etcdctl,
        result: None,
        ok: true,
    };
    let mut steps = vec![step(
        format!("compact the history up to revision {revision}"),
        format!("{} compact {revision} --physical", ctl(&leader.endpoint)),
    )];
    for i in defrag_order(now) {
        let t = &targets[i];
        let role = if now[i].as_ref().is_ok_and(EndpointStatus::is_leader) {
            "the leader, last"
        } else {
            "a follower"
        };
        steps.push(step(
            format!("defragment {} ({role})", t.endpoint),
            format!("{} defrag", ctl(&t.endpoint)),
        ));
    }
    steps.push(step(
        "disarm the alarms".into(),
        format!("{} alarm disarm", ctl(&leader.endpoint)),
    ));
    steps.push(step(
        "check: no alarm left, and a write succeeds".into(),
        format!(
            "{} alarm list && {} put etcdops/write-check ok && {} del etcdops/write-check",
            ctl(&leader.endpoint),
            ctl(&leader.endpoint),
            ctl(&leader.endpoint)
        ),
    ));
    steps
}

/// Run the planned steps, saying each on stderr as it runs; returns the bytes freed.
async fn execute(
    connector: &Connector,
    targets: &[Target],
    now: &[Result<EndpointStatus, crate::client::EndpointError>],
    leader: &Target,
    revision: i64,
    steps: &mut [Step],
) -> i64 {
    let mut record = |i: usize, result: Result<String, String>| {
        let s = &mut steps[i];
        eprintln!(
            "etcdops: {}: {}",
            s.step,
            result.as_ref().unwrap_or_else(|e| e)
        );
        s.ok = result.is_ok();
        s.result = Some(result.unwrap_or_else(|e| e));
    };
    let compacted = compact(connector, leader, revision, true).await;
    let already = |e: &crate::client::EndpointError| e.message.contains("compacted");
    record(
        0,
        match compacted {
            Ok(_) => Ok("compacted".into()),
            Err(e) if already(&e) => Ok("already compacted".into()),
            Err(e) => Err(e.to_string()),
        },
    );
    let rows = defrag_one_by_one(connector, targets, now).await;
    let mut freed = 0;
    for (k, r) in rows.iter().enumerate() {
        if let (Some(b), Some(a)) = (r.before, r.after) {
            freed += b - a;
        }
        let size = |v: Option<i64>| {
            v.map(|b| humanize_bytes(b.max(0) as u64))
                .unwrap_or_default()
        };
        record(
            1 + k,
            match &r.error {
                None => Ok(format!("{} → {}", size(r.before), size(r.after))),
                Some(e) => Err(e.clone()),
            },
        );
    }
    let after_defrag = 1 + rows.len();
    record(
        after_defrag,
        match disarm(connector, leader).await {
            Ok((_, gone)) => Ok(format!("{} alarm(s) disarmed", gone.len())),
            Err(e) => Err(e.to_string()),
        },
    );
    let check = async {
        let (_, left) = alarms(connector, leader).await.map_err(|e| e.to_string())?;
        if !left.is_empty() {
            let names: Vec<&str> = left.iter().map(|a| a.name()).collect();
            return Err(format!("alarms still active: {}", names.join(" ")));
        }
        write_check(connector, leader)
            .await
            .map_err(|e| format!("the test write failed: {e}"))?;
        Ok("no alarm, and a write succeeded".to_string())
    };
    record(after_defrag + 1, check.await);
    freed
}

impl Report for RecoverReport {
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        let rows = self
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| {
                vec![
                    (i + 1).to_string(),
                    s.step.clone(),
                    s.result.clone().unwrap_or_else(|| "planned".into()),
                ]
            })
            .collect();
        (vec!["#", "step", "result"], rows)
    }

    fn details(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if self.dry_run {
            lines.push("the etcdctl commands this stands for, in order:".to_string());
            lines.extend(self.steps.iter().map(|s| format!("  {}", s.etcdctl)));
        }
        if let Some(f) = self.freed {
            lines.push(format!("freed: {}", humanize_bytes(f.max(0) as u64)));
        }
        lines
    }

    fn json(&self) -> serde_json::Value {
        crate::output::serialized(self)
    }

    fn simple(&self) -> Vec<String> {
        self.steps
            .iter()
            .map(|s| match &s.result {
                Some(r) => format!("{}, {r}", s.step),
                None => s.etcdctl.clone(),
            })
            .collect()
    }
}
