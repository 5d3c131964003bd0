//! `etcdops status`: `etcdctl endpoint status` for every endpoint at once. An endpoint that
//! cannot be reached keeps its row, with the error in the ERRORS column, and makes the exit 1.
//!
//! `-w json` is etcdctl 3.5's document (`[{"Endpoint", "Status": StatusResponse}]`, numbers as
//! JSON numbers, zero fields left out as Go's `omitempty` does), plus our fields
//! (`memberIDHex`, `clusterIDHex`, `isLeader`) and, for an endpoint etcdctl would drop, a row
//! `{"Endpoint", "Error", "ErrorKind"}` without `Status`.

use serde_json::{json, Map, Value};

use crate::client::cluster::{resolve_targets, statuses, EndpointStatus};
use crate::client::maintenance::Header;
use crate::client::{Connector, EndpointError, Target};
use crate::exit::Outcome;
use crate::output::Report;
use crate::text::omit_empty;
use crate::units::{hex_id, humanize_bytes};

/// One endpoint's status, or why it could not be asked.
#[derive(Debug, Clone)]
pub struct StatusRow {
    pub endpoint: String,
    pub status: Result<EndpointStatus, EndpointError>,
}

#[derive(Debug, Clone)]
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
        .map(|(status, t)| StatusRow {
            endpoint: t.endpoint.clone(),
            status,
        })
        .collect();
    let bad = rows.iter().filter(|r| r.status.is_err()).count();
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

impl StatusRow {
    fn cells(&self) -> Vec<String> {
        let s = match &self.status {
            Ok(s) => s,
            Err(e) => {
                let mut cells = vec![self.endpoint.clone()];
                cells.extend(std::iter::repeat_n(String::new(), 9));
                cells.push(e.to_string());
                return cells;
            }
        };
        vec![
            self.endpoint.clone(),
            hex_id(s.member_id),
            s.version.clone(),
            humanize_bytes(s.db_size.max(0) as u64),
            humanize_bytes(s.db_size_in_use.max(0) as u64),
            s.is_leader().to_string(),
            s.is_learner.to_string(),
            s.raft_term.to_string(),
            s.raft_index.to_string(),
            s.raft_applied_index.to_string(),
            s.errors.join(", "),
        ]
    }

    /// etcdctl's `{"Endpoint", "Status"}` (or our error row), with our additions.
    fn json(&self) -> Value {
        let s = match &self.status {
            Ok(s) => s,
            Err(e) => {
                return json!({"Endpoint": self.endpoint, "Error": e.to_string(), "ErrorKind": e.kind})
            }
        };
        let header = Header {
            cluster_id: s.cluster_id,
            member_id: s.member_id,
            revision: s.revision,
            raft_term: s.header_raft_term,
        };
        let mut status = Map::new();
        status.insert("header".into(), header.to_json());
        status.insert("version".into(), json!(s.version));
        status.insert("dbSize".into(), json!(s.db_size));
        status.insert("leader".into(), json!(s.leader));
        status.insert("raftIndex".into(), json!(s.raft_index));
        status.insert("raftTerm".into(), json!(s.raft_term));
        status.insert("raftAppliedIndex".into(), json!(s.raft_applied_index));
        status.insert("errors".into(), json!(s.errors));
        status.insert("dbSizeInUse".into(), json!(s.db_size_in_use));
        status.insert("isLearner".into(), json!(s.is_learner));
        json!({
            "Endpoint": self.endpoint,
            "Status": omit_empty(status),
            "memberIDHex": hex_id(s.member_id),
            "clusterIDHex": hex_id(s.cluster_id),
            "isLeader": s.is_leader(),
        })
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

    fn json(&self) -> Value {
        Value::Array(self.rows.iter().map(StatusRow::json).collect())
    }

    fn simple(&self) -> Vec<String> {
        self.rows.iter().map(|r| r.cells().join(", ")).collect()
    }
}
