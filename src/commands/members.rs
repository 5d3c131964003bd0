//! `etcdops members`: `etcdctl member list`, asked of the first endpoint that answers.

use serde::Serialize;

use crate::client::{Connector, Target};
use crate::output::Report;
use crate::units::hex_id;

#[derive(Debug, Clone, Serialize)]
pub struct MemberRow {
    /// Member ID as hex (etcdctl's table spelling).
    pub id: String,
    /// The same ID as a number.
    pub member_id: u64,
    /// `started`, or `unstarted` for a member added but never started (it has no name yet).
    pub status: &'static str,
    pub name: String,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
    pub is_learner: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct MembersReport {
    /// The endpoint that answered.
    pub endpoint: String,
    pub cluster_id: String,
    pub members: Vec<MemberRow>,
}

pub async fn run(connector: &Connector, targets: &[Target]) -> anyhow::Result<MembersReport> {
    let mut failures = Vec::new();
    for target in targets {
        let attempt = async {
            let mut client = connector.connect(target).await?;
            connector.request("member list", client.member_list()).await
        };
        match attempt.await {
            Ok(list) => {
                let members = list
                    .members()
                    .iter()
                    .map(|m| MemberRow {
                        id: hex_id(m.id()),
                        member_id: m.id(),
                        status: if m.name().is_empty() {
                            "unstarted"
                        } else {
                            "started"
                        },
                        name: m.name().to_string(),
                        peer_urls: m.peer_urls().to_vec(),
                        client_urls: m.client_urls().to_vec(),
                        is_learner: m.is_learner(),
                    })
                    .collect();
                return Ok(MembersReport {
                    endpoint: target.endpoint.clone(),
                    cluster_id: hex_id(list.header().map(|h| h.cluster_id()).unwrap_or_default()),
                    members,
                });
            }
            Err(e) => failures.push(format!("{}: {e}", target.endpoint)),
        }
    }
    anyhow::bail!("could not list members: {}", failures.join("; "))
}

impl Report for MembersReport {
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        let rows = self
            .members
            .iter()
            .map(|m| {
                vec![
                    m.id.clone(),
                    m.status.to_string(),
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

    fn json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    fn simple(&self) -> Vec<String> {
        let (_, rows) = self.table();
        rows.into_iter().map(|r| r.join(", ")).collect()
    }
}
