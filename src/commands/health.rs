//! `etcdops health`: what `etcdctl endpoint health` checks, for every endpoint at once.
//!
//! Healthy means: a linearizable read of key `health` succeeds (permission denied counts, since
//! it still went through consensus), and the member reports no active alarm (NOSPACE, CORRUPT).
//! etcdctl 3.4 skips the alarm step; we do it for every server version. Rows are in the order
//! the endpoints were given (etcdctl prints them in completion order).

use std::time::{Duration, Instant};

use etcd_client::{AlarmAction, AlarmType};
use serde::Serialize;

use crate::client::{is_permission_denied, Connector, EndpointError, FailureKind, Target};
use crate::exit::Outcome;
use crate::output::Report;
use crate::units::go_duration;

/// What to do about a NOSPACE alarm (the recovery etcd's maintenance guide gives).
const NOSPACE_RECOVERY: &str = "the database reached its quota (NOSPACE) and etcd accepts only reads and deletes: free space, then disarm — `etcdctl compact $(etcdctl endpoint status -w json | python3 -c 'import sys,json; print(json.load(sys.stdin)[0][\"Status\"][\"header\"][\"revision\"])')`, `etcdctl defrag` on each member one at a time (the leader last), `etcdctl alarm disarm`, then `etcdops health` again (or raise --quota-backend-bytes)";

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

pub async fn run(
    connector: &Connector,
    given: Vec<Target>,
    cluster: bool,
) -> (HealthReport, Outcome) {
    let targets = crate::client::cluster::resolve_targets(connector, given, cluster).await;
    let results = crate::client::cluster::each_target(connector, &targets, |c, t| async move {
        check(&c, &t).await
    })
    .await;
    let rows: Vec<HealthRow> = results
        .into_iter()
        .zip(&targets)
        .map(|(row, t)| {
            row.unwrap_or_else(|| {
                unhealthy(
                    t,
                    Duration::ZERO,
                    EndpointError::new(FailureKind::Server, "check aborted"),
                )
            })
        })
        .collect();
    let bad = rows.iter().filter(|r| !r.health).count();
    let mut outcome = if bad == 0 {
        Outcome::Ok
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

async fn check(connector: &Connector, target: &Target) -> HealthRow {
    let dial_start = Instant::now();
    let mut client = match connector.connect(target).await {
        Ok(c) => c,
        Err(e) => return unhealthy(target, dial_start.elapsed(), e),
    };
    let start = Instant::now();
    // The read and the alarm check share one --command-timeout deadline, as in etcdctl.
    let deadline = connector.command_timeout;
    let result = tokio::time::timeout(deadline, async {
        match client.get("health", None).await {
            Ok(_) => {}
            Err(e) if is_permission_denied(&e) => {}
            Err(e) => {
                let e = connector.explain(target, crate::client::classify_etcd(&e));
                return Err((start.elapsed(), e));
            }
        }
        let took = start.elapsed();
        let alarms = client
            .alarm(AlarmAction::Get, AlarmType::None, None)
            .await
            .map_err(|e| {
                let e = connector.explain(target, crate::client::classify_etcd(&e));
                (
                    took,
                    EndpointError::new(
                        e.kind,
                        format!("unable to fetch the alarm list: {}", e.message),
                    ),
                )
            })?;
        if alarms.alarms().is_empty() {
            return Ok(took);
        }
        let mut text = String::from("Active Alarm(s): ");
        for a in alarms.alarms() {
            text.push_str(match a.alarm() {
                AlarmType::Nospace => "NOSPACE ",
                AlarmType::Corrupt => "CORRUPT ",
                AlarmType::None => "UNKNOWN ",
            });
        }
        Err((
            took,
            EndpointError::new(FailureKind::Alarm, text.trim_end().to_string()),
        ))
    })
    .await;
    match result {
        Ok(Ok(took)) => HealthRow {
            endpoint: target.endpoint.clone(),
            health: true,
            took: go_duration(took),
            error: None,
            error_kind: None,
        },
        Ok(Err((took, e))) => unhealthy(target, took, e),
        Err(_) => unhealthy(
            target,
            start.elapsed(),
            EndpointError::timeout("health check", deadline),
        ),
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
