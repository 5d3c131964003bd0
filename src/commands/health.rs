//! `etcdops health`: what `etcdctl endpoint health` checks, for every endpoint at once.
//!
//! Healthy means: a linearizable read of key `health` succeeds (permission denied counts, since
//! it still went through consensus), and the member reports no active alarm (NOSPACE, CORRUPT).
//! etcdctl 3.4 skips the alarm step; we do it for every server version. Rows are in the order
//! the endpoints were given (etcdctl prints them in completion order). With `--wait` it probes
//! until every endpoint is healthy (and, with `--expect-revision`, serves that revision), or
//! the time is up; the last round is the report.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::client::cluster::{discover_members, each_target, endpoint_status, Discovered};
use crate::client::maintenance::probe;
use crate::client::{Connector, EndpointError, FailureKind, Target};
use crate::exit::Outcome;
use crate::output::Report;
use crate::units::go_duration;

/// What to do about a NOSPACE alarm (the recovery etcd's maintenance guide gives).
const NOSPACE_RECOVERY: &str = "the database reached its quota (NOSPACE) and etcd accepts only reads and deletes: run `etcdops recover-space` with the same connection flags (compact, defragment each member with the leader last, disarm, check a write); `etcdops recover-space --dry-run` prints the etcdctl commands it stands for";

#[derive(Debug, Clone, Serialize)]
pub struct HealthRow {
    pub endpoint: String,
    pub health: bool,
    pub took: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<FailureKind>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HealthReport {
    pub rows: Vec<HealthRow>,
}

/// What `--wait` waits for.
#[derive(Debug, Clone, Copy)]
pub struct Wait {
    pub limit: Duration,
    /// Also wait until every member serves at least this revision.
    pub revision: Option<i64>,
}

pub async fn run(
    connector: &Connector,
    given: Vec<Target>,
    cluster: bool,
    wait: Option<Wait>,
) -> (HealthReport, Outcome) {
    let start = Instant::now();
    // With --cluster the answer covers every member of the list: re-read while waiting (right
    // after a restore no member answers at first), and a member without client URLs is a row.
    let mut members: Option<Discovered> = None;
    let rows = loop {
        if cluster && (members.is_none() || wait.is_some()) {
            if let Ok(found) = discover_members(connector, &given).await {
                members = Some(found);
            }
        }
        let targets = members.as_ref().map_or(&given, |m| &m.targets);
        let mut rows = check_all(connector, targets, wait.and_then(|w| w.revision)).await;
        rows.extend(
            members
                .iter()
                .flat_map(|m| &m.unstarted)
                .map(|who| HealthRow {
                    endpoint: who.clone(),
                    health: false,
                    took: go_duration(Duration::ZERO),
                    error: Some("unstarted: the member has published no client URL".to_string()),
                    error_kind: Some(FailureKind::Unstarted),
                }),
        );
        // With --cluster, the given endpoints answering is not the answer until the list is
        // read: a member that restarts first may answer before it serves the list.
        let done = rows.iter().all(|r| r.health) && (!cluster || members.is_some());
        match wait {
            Some(w) if !done && start.elapsed() < w.limit => {
                tokio::time::sleep(Duration::from_millis(500)).await
            }
            _ => break rows,
        }
    };
    if cluster && members.is_none() {
        eprintln!("warning: could not read the member list; checked the given endpoints only");
    }
    let bad = rows.iter().filter(|r| !r.health).count();
    let mut outcome = if bad == 0 {
        Outcome::Ok
    } else if let Some(w) = wait {
        Outcome::Bad(format!(
            "unhealthy cluster: {bad} of {} endpoints still unhealthy after waiting {}",
            rows.len(),
            go_duration(w.limit)
        ))
    } else {
        Outcome::Bad(format!(
            "unhealthy cluster: {bad} of {} endpoints unhealthy",
            rows.len()
        ))
    };
    if rows
        .iter()
        .any(|r| r.error.as_deref().is_some_and(|e| e.contains("NOSPACE")))
    {
        outcome = outcome.hinted(NOSPACE_RECOVERY.to_string());
    }
    (HealthReport { rows }, outcome)
}

/// One round: every target probed concurrently (and its revision checked when asked).
async fn check_all(
    connector: &Connector,
    targets: &[Target],
    revision: Option<i64>,
) -> Vec<HealthRow> {
    each_target(connector, targets, move |c, t| async move {
        let start = Instant::now();
        let result = match probe(&c, &t).await {
            Ok(took) => match revision {
                Some(want) => at_revision(&c, &t, want).await.map(|_| took),
                None => Ok(took),
            },
            Err(e) => Err(e),
        };
        match result {
            Ok(took) => HealthRow {
                endpoint: t.endpoint.clone(),
                health: true,
                took: go_duration(took),
                error: None,
                error_kind: None,
            },
            Err(e) => unhealthy(&t, start.elapsed(), e),
        }
    })
    .await
    .into_iter()
    .zip(targets)
    .map(|(row, t)| {
        row.unwrap_or_else(|| {
            unhealthy(
                t,
                Duration::ZERO,
                EndpointError::new(FailureKind::Server, "check aborted"),
            )
        })
    })
    .collect()
}

/// `--expect-revision`: the member serves at least revision `want`.
async fn at_revision(
    connector: &Connector,
    target: &Target,
    want: i64,
) -> Result<(), EndpointError> {
    let s = endpoint_status(connector, target).await?;
    if s.revision >= want {
        Ok(())
    } else {
        Err(EndpointError::new(
            FailureKind::Server,
            format!("serves revision {}, not yet {want}", s.revision),
        ))
    }
}

fn unhealthy(target: &Target, took: Duration, e: EndpointError) -> HealthRow {
    HealthRow {
        endpoint: target.endpoint.clone(),
        health: false,
        took: go_duration(took),
        error: Some(e.to_string()),
        error_kind: Some(e.kind),
    }
}

impl Report for HealthReport {
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        let rows = self
            .rows
            .iter()
            .map(|r| {
                vec![
                    r.endpoint.clone(),
                    r.health.to_string(),
                    r.took.clone(),
                    r.error.clone().unwrap_or_default(),
                ]
            })
            .collect();
        (vec!["endpoint", "health", "took", "error"], rows)
    }

    fn json(&self) -> serde_json::Value {
        serde_json::to_value(&self.rows).unwrap_or_default()
    }

    fn simple(&self) -> Vec<String> {
        self.rows
            .iter()
            .map(|r| match &r.error {
                None => format!(
                    "{} is healthy: successfully committed proposal: took = {}",
                    r.endpoint, r.took
                ),
                Some(e) => format!(
                    "{} is unhealthy: failed to commit proposal: {e}",
                    r.endpoint
                ),
            })
            .collect()
    }
}
