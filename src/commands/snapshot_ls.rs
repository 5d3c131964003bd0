//! `etcdops snapshot ls DIR/|s3://BUCKET/PREFIX/`: the snapshots etcdops saved there, oldest
//! first — name, time, size, revision, cluster ID and node (two clusters with a node `cp1` in
//! one prefix are told apart), verified (a sidecar that names the object and agrees with its
//! size), compressed, encrypted. Other files and objects are not listed.

use anyhow::Result;
use serde::Serialize;

use crate::output::Report;
use crate::remote::store::Store;
use crate::settings::StoreSettings;
use crate::text::escape;
use crate::timestamp::rfc3339;
use crate::units::humanize_bytes;

#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    pub name: String,
    pub url: String,
    pub time: String,
    pub size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    /// The cluster ID of the member that saved it (from the sidecar).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    pub verified: bool,
    /// Why it is not verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    pub compressed: bool,
    pub encrypted: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ListReport {
    pub location: String,
    pub snapshots: Vec<Listed>,
}

pub async fn run(settings: &StoreSettings) -> Result<ListReport> {
    let store = Store::open(&settings.location, &settings.s3).await?;
    let snapshots = store
        .backups()
        .await?
        .into_iter()
        .map(|b| Listed {
            url: store.url(&b.name),
            time: rfc3339(b.parsed.time),
            size: b.size,
            revision: b.meta.as_ref().ok().map(|m| m.revision),
            cluster_id: b.meta.as_ref().ok().map(|m| m.cluster_id.clone()),
            node: Some(b.parsed.node.clone()),
            verified: b.verified(),
            problem: b.meta.as_ref().err().cloned(),
            compressed: b.parsed.compressed,
            encrypted: b.parsed.encrypted,
            name: b.name,
        })
        .collect();
    Ok(ListReport {
        location: settings.location.to_string(),
        snapshots,
    })
}

fn yes(b: bool) -> String {
    if b { "yes" } else { "no" }.to_string()
}

impl Report for ListReport {
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        (
            vec![
                "NAME",
                "TIME",
                "SIZE",
                "REVISION",
                "CLUSTER",
                "NODE",
                "VERIFIED",
                "COMPRESSED",
                "ENCRYPTED",
            ],
            self.snapshots
                .iter()
                .map(|s| {
                    vec![
                        escape(&s.name),
                        s.time.clone(),
                        humanize_bytes(s.size),
                        s.revision
                            .map(|r| r.to_string())
                            .unwrap_or_else(|| "-".into()),
                        escape(s.cluster_id.as_deref().unwrap_or("-")),
                        escape(s.node.as_deref().unwrap_or("-")),
                        yes(s.verified),
                        yes(s.compressed),
                        yes(s.encrypted),
                    ]
                })
                .collect(),
        )
    }

    fn json(&self) -> serde_json::Value {
        crate::output::serialized(self)
    }

    fn simple(&self) -> Vec<String> {
        self.snapshots
            .iter()
            .map(|s| {
                format!(
                    "{}, {}, {}, {}, {}, {}, {}",
                    escape(&s.url),
                    s.time,
                    s.size,
                    s.revision
                        .map(|r| r.to_string())
                        .unwrap_or_else(|| "-".into()),
                    escape(s.cluster_id.as_deref().unwrap_or("-")),
                    escape(s.node.as_deref().unwrap_or("-")),
                    if s.verified { "verified" } else { "unverified" }
                )
            })
            .collect()
    }

    fn notes(&self) -> Vec<String> {
        let mut notes: Vec<String> = self
            .snapshots
            .iter()
            .filter_map(|s| {
                Some(format!(
                    "{} is not trusted: {}",
                    escape(&s.name),
                    escape(s.problem.as_ref()?)
                ))
            })
            .collect();
        if self.snapshots.is_empty() {
            notes.push(format!(
                "no snapshot saved by etcdops in {}",
                escape(&self.location)
            ));
        }
        notes
    }
}
