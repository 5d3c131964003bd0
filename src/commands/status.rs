//! `etcdops status`: `etcdctl endpoint status` for every endpoint at once. An endpoint that
//! cannot be reached keeps its row, with the error in the ERRORS column, and makes the exit 1.

use serde::Serialize;

use crate::client::cluster::{resolve_targets, statuses, EndpointStatus};
use crate::client::{Connector, EndpointError, FailureKind, Target};
use crate::exit::Outcome;
use crate::output::Report;
use crate::units::{hex_id, humanize_bytes};

/// One endpoint's status. Numeric fields are absent when the endpoint could not be reached.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StatusRow {
    pub endpoint: String,
    /// Member ID as hex, as etcdctl's table shows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub db_size: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub db_size_in_use: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_leader: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_learner: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raft_term: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raft_index: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raft_applied_index: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    /// Errors the member itself reports (e.g. alarms).
    pub errors: Vec<String>,
    /// Why this endpoint could not be asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<FailureKind>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub rows: Vec<StatusRow>,
}

pub async fn run(
    connector: &Connector,
    given: Vec<Target>,
    cluster: bool,
) -> (StatusReport, Outcome) {
    let targets = resolve_targets(connector, given, cluster).await;
    let rows: Vec<StatusRow> = statuses(connector, &targets)
        .await
        .into_iter()
        .zip(&targets)
        .map(|(status, t)| match status {
            Ok(s) => row(t, &s),
            Err(e) => failed(t, e),
        })
        .collect();
    let bad = rows.iter().filter(|r| r.error.is_some()).count();
    let outcome = if bad == 0 {
        Outcome::Ok
    } else {
        Outcome::Bad(format!(
            "failed to get the status of {bad} of {} endpoints",
            rows.len()
        ))
    };
    (StatusReport { rows }, outcome)
}

fn row(target: &Target, s: &EndpointStatus) -> StatusRow {
    StatusRow {
        endpoint: target.endpoint.clone(),
        id: Some(hex_id(s.member_id)),
        member_id: Some(s.member_id),
        cluster_id: Some(hex_id(s.cluster_id)),
        version: Some(s.version.clone()),
        db_size: Some(s.db_size),
        db_size_in_use: Some(s.db_size_in_use),
        leader: Some(hex_id(s.leader)),
        is_leader: Some(s.leader == s.member_id),
        is_learner: Some(s.is_learner),
        raft_term: Some(s.raft_term),
        raft_index: Some(s.raft_index),
        raft_applied_index: Some(s.raft_applied_index),
        revision: Some(s.revision),
        errors: s.errors.clone(),
        error: None,
        error_kind: None,
    }
}

fn failed(target: &Target, e: EndpointError) -> StatusRow {
    StatusRow {
        endpoint: target.endpoint.clone(),
        error: Some(e.to_string()),
        error_kind: Some(e.kind),
        ..StatusRow::default()
    }
}

impl StatusRow {
    fn cells(&self) -> Vec<String> {
        let num = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
        let size = |v: Option<i64>| {
            v.map(|v| humanize_bytes(v.max(0) as u64))
                .unwrap_or_default()
        };
        let flag = |v: Option<bool>| v.map(|v| v.to_string()).unwrap_or_default();
        let mut errors = self.errors.clone();
        errors.extend(self.error.clone());
        vec![
            self.endpoint.clone(),
            self.id.clone().unwrap_or_default(),
            self.version.clone().unwrap_or_default(),
            size(self.db_size),
            size(self.db_size_in_use),
            flag(self.is_leader),
            flag(self.is_learner),
            num(self.raft_term),
            num(self.raft_index),
            num(self.raft_applied_index),
            errors.join(", "),
        ]
    }
}

impl Report for StatusReport {
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        let headers = vec![
            "endpoint",
            "id",
            "version",
            "db size",
            "in use",
            "is leader",
            "is learner",
            "raft term",
            "raft index",
            "raft applied index",
            "errors",
        ];
        (headers, self.rows.iter().map(StatusRow::cells).collect())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::to_value(&self.rows).unwrap_or_default()
    }

    fn simple(&self) -> Vec<String> {
        self.rows.iter().map(|r| r.cells().join(", ")).collect()
    }
}
