//! `etcdops check consistency [--cluster] [--rev N]` (alias `endpoint hashkv`): every member's
//! `HashKV` at one revision — the leader's current revision unless `--rev` — compared; exit 1
//! when they disagree or a member cannot answer. etcd refuses HashKV at exactly the compacted
//! revision (where the cluster stands right after `compact`); then each member hashes at its
//! current revision instead, and the answers count only if they are all at the same one.
//! `-w json` is etcdctl's `endpoint hashkv` document: `[{"Endpoint", "HashKV": {"header",
//! "hash", "compact_revision"}}]`.

use anyhow::Result;
use serde_json::{json, Map, Value};

use crate::client::cluster::{each_target, resolve_targets, statuses, EndpointStatus};
use crate::client::maintenance::{hash_kv, KvHash};
use crate::client::{Connector, EndpointError, FailureKind, Target};
use crate::exit::Outcome;
use crate::output::Report;
use crate::text::omit_empty;
use crate::units::hex_id;

#[derive(Debug, Clone)]
pub struct HashRow {
    pub endpoint: String,
    pub hash: Result<KvHash, EndpointError>,
}

#[derive(Debug, Clone)]
pub struct ConsistencyReport {
    /// The revision asked for (0: each member's current one, all found equal or not).
    pub revision: i64,
    pub rows: Vec<HashRow>,
}

pub async fn run(
    connector: &Connector,
    given: Vec<Target>,
    cluster: bool,
    rev: Option<i64>,
) -> Result<(ConsistencyReport, Outcome)> {
    let targets = resolve_targets(connector, given, cluster).await;
    let revision = match rev {
        Some(r) => r,
        None => leader_revision(&statuses(connector, &targets).await),
    };
    let mut rows = hash_all(connector, &targets, revision).await;
    let mut asked = revision;
    let compacted = |r: &HashRow| {
        r.hash
            .as_ref()
            .is_err_and(|e| e.message.contains("compacted"))
    };
    if rev.is_none() && rows.iter().any(compacted) {
        asked = 0;
        rows = hash_all(connector, &targets, 0).await;
    }
    let outcome = judge(&rows);
    Ok((
        ConsistencyReport {
            revision: asked,
            rows,
        },
        outcome,
    ))
}

/// The leader's current revision, else the highest any member reports (0 if none answers).
fn leader_revision(all: &[Result<EndpointStatus, EndpointError>]) -> i64 {
    let ok = all.iter().filter_map(|s| s.as_ref().ok());
    ok.clone()
        .find(|s| s.is_leader())
        .or_else(|| ok.max_by_key(|s| s.revision))
        .map_or(0, |s| s.revision)
}

async fn hash_all(connector: &Connector, targets: &[Target], revision: i64) -> Vec<HashRow> {
    each_target(connector, targets, move |c, t| async move {
        hash_kv(&c, &t, revision).await
    })
    .await
    .into_iter()
    .zip(targets)
    .map(|(h, t)| HashRow {
        endpoint: t.endpoint.clone(),
        hash: h.unwrap_or_else(|| Err(EndpointError::new(FailureKind::Server, "hashkv aborted"))),
    })
    .collect()
}

fn judge(rows: &[HashRow]) -> Outcome {
    let answers: Vec<&KvHash> = rows.iter().filter_map(|r| r.hash.as_ref().ok()).collect();
    let failed = rows.len() - answers.len();
    if failed > 0 {
        return Outcome::Bad(format!(
            "{failed} of {} members could not be hashed",
            rows.len()
        ));
    }
    let first = answers.first();
    let revisions_differ = answers
        .iter()
        .any(|a| first.is_some_and(|f| a.header.revision != f.header.revision));
    if revisions_differ {
        return Outcome::Bad(
            "the members are at different revisions (writes were in flight); run it again, or pass --rev".into(),
        );
    }
    if answers
        .iter()
        .any(|a| first.is_some_and(|f| a.hash != f.hash))
    {
        return Outcome::Bad(
            "the members' key-value hashes differ: the data is inconsistent".into(),
        );
    }
    Outcome::Ok
}

impl Report for ConsistencyReport {
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        let rows = self
            .rows
            .iter()
            .map(|r| match &r.hash {
                Ok(h) => vec![
                    r.endpoint.clone(),
                    hex_id(h.header.member_id),
                    h.header.revision.to_string(),
                    h.compact_revision.to_string(),
                    h.hash.to_string(),
                    String::new(),
                ],
                Err(e) => {
                    let mut row = vec![r.endpoint.clone()];
                    row.extend(std::iter::repeat_n(String::new(), 4));
                    row.push(e.to_string());
                    row
                }
            })
            .collect();
        (
            vec![
                "endpoint",
                "member",
                "revision",
                "compact revision",
                "hash",
                "error",
            ],
            rows,
        )
    }

    fn json(&self) -> Value {
        Value::Array(
            self.rows
                .iter()
                .map(|r| match &r.hash {
                    Ok(h) => {
                        let mut hk = Map::new();
                        hk.insert("header".into(), h.header.to_json());
                        hk.insert("hash".into(), json!(h.hash));
                        hk.insert("compact_revision".into(), json!(h.compact_revision));
                        json!({"Endpoint": r.endpoint, "HashKV": omit_empty(hk)})
                    }
                    Err(e) => {
                        json!({"Endpoint": r.endpoint, "Error": e.to_string(), "ErrorKind": e.kind})
                    }
                })
                .collect(),
        )
    }

    /// etcdctl's `endpoint hashkv` lines.
    fn simple(&self) -> Vec<String> {
        self.rows
            .iter()
            .map(|r| match &r.hash {
                Ok(h) => format!("{}, {}", r.endpoint, h.hash),
                Err(e) => format!("{}, error: {e}", r.endpoint),
            })
            .collect()
    }
}
