//! `etcdops compact [REVISION] [--physical]` (alias `compaction`): etcdctl's `compaction`,
//! with the current revision (from the first endpoint that answers) when none is given.

use anyhow::{anyhow, bail, Result};
use serde_json::{json, Value};

use crate::client::cluster::endpoint_status;
use crate::client::maintenance;
use crate::client::{Connector, Target};
use crate::output::Report;

#[derive(Debug, Clone)]
pub struct CompactReport {
    pub endpoint: String,
    pub revision: i64,
    pub physical: bool,
}

pub async fn run(
    connector: &Connector,
    targets: &[Target],
    revision: Option<i64>,
    physical: bool,
) -> Result<CompactReport> {
    let mut failures = Vec::new();
    for target in targets {
        let revision = match revision {
            Some(r) => r,
            None => match endpoint_status(connector, target).await {
                Ok(s) => s.revision,
                Err(e) => {
                    failures.push(format!("{}: {e}", target.endpoint));
                    continue;
                }
            },
        };
        return match maintenance::compact(connector, target, revision, physical).await {
            Ok(_) => Ok(CompactReport {
                endpoint: target.endpoint.clone(),
                revision,
                physical,
            }),
            Err(e) => Err(anyhow!(
                "{}: compacting to revision {revision}: {e}",
                target.endpoint
            )),
        };
    }
    bail!("could not reach any endpoint: {}", failures.join("; "))
}

impl Report for CompactReport {
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        (
            vec!["endpoint", "compacted revision", "physical"],
            vec![vec![
                self.endpoint.clone(),
                self.revision.to_string(),
                self.physical.to_string(),
            ]],
        )
    }

    fn json(&self) -> Value {
        json!({"revision": self.revision, "physical": self.physical, "endpoint": self.endpoint})
    }

    /// etcdctl's line.
    fn simple(&self) -> Vec<String> {
        vec![format!("compacted revision {}", self.revision)]
    }
}
