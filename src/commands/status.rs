//! `etcdops status`: `etcdctl endpoint status` for every endpoint at once. An endpoint that
//! cannot be reached keeps its row, with the error in the ERRORS column, and makes the exit 1.

use serde::Serialize;

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
    let targets = super::resolve_targets(connector, given, cluster).await;
    let results = super::each_target(
        connector,
        &targets,
        |c, t| async move { query(&c, &t).await },
    )
    .await;
    let rows: Vec<StatusRow> = results
        .into_iter()
        .zip(&targets)
        .map(|(row, t)| {
            row.unwrap_or_else(|| {
                failed(
                    t,
                    EndpointError::new(FailureKind::Server, "status query aborted"),
                )
            })
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

async fn query(connector: &Connector, target: &Target) -> StatusRow {
    let status = async {
        let mut client = connector.connect(target).await?;
        connector.request("status", client.status()).await
    };
    match status.await {
        Err(e) => failed(target, e),
        Ok(s) => {
            let header = s.header();
            let member_id = header.map(|h| h.member_id()).unwrap_or_default();
            StatusRow {
                endpoint: target.endpoint.clone(),
                id: Some(hex_id(member_id)),
                member_id: Some(member_id),
                cluster_id: header.map(|h| hex_id(h.cluster_id())),
                version: Some(s.version().to_string()),
                db_size: Some(s.db_size()),
                db_size_in_use: Some(s.raft_used_db_size()),
                leader: Some(hex_id(s.leader())),
                is_leader: Some(s.leader() == member_id),
                is_learner: Some(s.is_learner()),
                raft_term: Some(s.raft_term()),
                raft_index: Some(s.raft_index()),
                raft_applied_index: Some(s.raft_applied_index()),
                revision: header.map(|h| h.revision()),
                errors: s.errors().to_vec(),
                error: None,
                error_kind: None,
            }
        }
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
