//! `etcdops members`: `etcdctl member list`, asked of the first endpoint that answers.
//!
//! `-w json` is etcdctl 3.5's document: `{"header", "members": [{"ID", "name", "peerURLs",
//! "clientURLs", "isLearner"}]}` with IDs as JSON numbers and zero fields left out (Go's
//! `omitempty`); with `--hex` the IDs are hex strings and, as etcdctl spells it then, the
//! client URLs are `clientURLS`. We add `endpoint` (who answered) and each member's `status`.

use serde_json::{json, Map, Value};

use crate::client::cluster::member_list;
use crate::client::{Connector, Target};
use crate::output::Report;
use crate::text::omit_empty;
use crate::units::hex_id;

#[derive(Debug, Clone)]
pub struct MemberRow {
    pub id: u64,
    pub name: String,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
    pub is_learner: bool,
}

impl MemberRow {
    /// `started`, or `unstarted` for a member added but never started (it has no name yet).
    fn status(&self) -> &'static str {
        if self.name.is_empty() {
            "unstarted"
        } else {
            "started"
        }
    }
}

#[derive(Debug, Clone)]
pub struct MembersReport {
    /// The endpoint that answered.
    pub endpoint: String,
    pub cluster_id: u64,
    pub member_id: u64,
    pub raft_term: u64,
    pub members: Vec<MemberRow>,
    /// `--hex`: IDs as hex strings in JSON, as etcdctl prints them then.
    pub hex: bool,
}

pub async fn run(
    connector: &Connector,
    targets: &[Target],
    hex: bool,
) -> anyhow::Result<MembersReport> {
    let (target, list) = member_list(connector, targets)
        .await
        .map_err(|failures| anyhow::anyhow!("could not list members: {}", failures.join("; ")))?;
    let members = list
        .members()
        .iter()
        .map(|m| MemberRow {
            id: m.id(),
            name: m.name().to_string(),
            peer_urls: m.peer_urls().to_vec(),
            client_urls: m.client_urls().to_vec(),
            is_learner: m.is_learner(),
        })
        .collect();
    let header = list.header();
    Ok(MembersReport {
        endpoint: target.endpoint.clone(),
        cluster_id: header.map(|h| h.cluster_id()).unwrap_or_default(),
        member_id: header.map(|h| h.member_id()).unwrap_or_default(),
        raft_term: header.map(|h| h.raft_term()).unwrap_or_default(),
        members,
        hex,
    })
}

impl MembersReport {
    fn id(&self, id: u64) -> Value {
        if self.hex {
            json!(hex_id(id))
        } else {
            json!(id)
        }
    }
}

impl Report for MembersReport {
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        let rows = self
            .members
            .iter()
            .map(|m| {
                vec![
                    hex_id(m.id),
                    m.status().to_string(),
                    m.name.clone(),
                    m.peer_urls.join(","),
                    m.client_urls.join(","),
                    m.is_learner.to_string(),
                ]
            })
            .collect();
        (
            vec![
                "id",
                "status",
                "name",
                "peer addrs",
                "client addrs",
                "is learner",
            ],
            rows,
        )
    }

    fn json(&self) -> Value {
        let mut header = Map::new();
        header.insert("cluster_id".into(), self.id(self.cluster_id));
        header.insert("member_id".into(), self.id(self.member_id));
        header.insert("raft_term".into(), json!(self.raft_term));
        let client_key = if self.hex { "clientURLS" } else { "clientURLs" };
        let members: Vec<Value> = self
            .members
            .iter()
            .map(|m| {
                let mut o = Map::new();
                o.insert("ID".into(), self.id(m.id));
                o.insert("name".into(), json!(m.name));
                o.insert("peerURLs".into(), json!(m.peer_urls));
                o.insert(client_key.into(), json!(m.client_urls));
                o.insert("isLearner".into(), json!(m.is_learner));
                let mut v = omit_empty(o);
                v["status"] = json!(m.status());
                v
            })
            .collect();
        json!({"header": omit_empty(header), "members": members, "endpoint": self.endpoint})
    }

    fn simple(&self) -> Vec<String> {
        let (_, rows) = self.table();
        rows.into_iter().map(|r| r.join(", ")).collect()
    }
}
