//! `etcdops snapshot ls DIR/|s3://BUCKET/PREFIX/`: the snapshots etcdops saved there, oldest
//! first — name, time, size, revision, cluster ID and node (two clusters with a node `cp1` in
//! one prefix are told apart), verified (a sidecar that names the object and agrees with its
//! size), compressed, encrypted. Other files and objects are not listed.
//!
//! With a revision log (`snapshot follow`), each chain's restorable window too: base revision
//! → last revision, their times, segments, changes, what was left out of it, the revisions
//! between two chains that no restore reaches; and the recovery point (now − the newest
//! verified point). `--max-age` turns a stale recovery point into exit 1.

use anyhow::Result;
use serde::Serialize;

use crate::exit::Outcome;
use crate::output::Report;
use crate::remote::store::Store;
use crate::revlog::chain::{self, Chain};
use crate::settings::ListSettings;
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

/// One chain of a revision log.
#[derive(Debug, Clone, Serialize)]
pub struct ListedChain {
    pub base: String,
    pub cluster_id: String,
    /// The node whose follower writes it (from the base's name).
    pub node: String,
    pub base_revision: i64,
    pub last_revision: i64,
    pub from: String,
    pub to: String,
    pub segments: usize,
    pub changes: u64,
    /// Segments of this base left out of the chain, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    /// Revisions between the chain before (of the same cluster) and this one's base, which no
    /// restore reaches one by one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gap_before: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ListReport {
    pub location: String,
    pub snapshots: Vec<Listed>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub chains: Vec<ListedChain>,
    /// Seconds since the newest verified point (a snapshot, or a chain's last segment).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rpo_seconds: Option<f64>,
}

pub async fn run(settings: &ListSettings) -> Result<(ListReport, Outcome)> {
    let store = Store::open(&settings.store.location, &settings.store.s3).await?;
    let objects = store.objects().await?;
    let backups = store.backups_in(&objects).await?;
    let chains = chain::chains_in(&store, &objects, backups.clone()).await?;
    let snapshots: Vec<Listed> = backups
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
    let newest_ns = store_newest(&snapshots, &chains);
    let rpo_seconds = newest_ns.map(|t| (crate::timestamp::now_ns() - t) as f64 / 1e9);
    let outcome = match (settings.max_age, rpo_seconds) {
        (Some(max), Some(age)) if age > max.as_secs_f64() => Outcome::Bad(format!(
            "the newest verified point in {} is {:.0}s old, more than --max-age {}",
            settings.store.location,
            age,
            crate::units::go_duration(max)
        )),
        (Some(_), None) => {
            Outcome::Bad(format!("no verified point in {}", settings.store.location))
        }
        _ => Outcome::Ok,
    };
    let report = ListReport {
        location: settings.store.location.to_string(),
        snapshots,
        chains: listed_chains(&chains),
        rpo_seconds,
    };
    Ok((report, outcome))
}

/// The time of the newest verified point, Unix nanoseconds.
fn store_newest(snapshots: &[Listed], chains: &[Chain]) -> Option<i64> {
    let snapshot = snapshots
        .iter()
        .filter(|s| s.verified)
        .filter_map(|s| crate::timestamp::parse_rfc3339_ns(&s.time).ok())
        .max();
    let log = chains.iter().map(Chain::through_ns).max();
    snapshot.max(log)
}

fn listed_chains(chains: &[Chain]) -> Vec<ListedChain> {
    let mut out: Vec<ListedChain> = Vec::new();
    for (i, c) in chains.iter().enumerate() {
        if c.segments.is_empty() && c.problems.is_empty() {
            continue; // a snapshot, not a chain
        }
        let before = chains[..i]
            .iter()
            .rev()
            .find(|p| p.cluster_id() == c.cluster_id() && !p.segments.is_empty());
        let gap_before = before
            .filter(|p| c.base_revision - p.through() >= 2)
            .map(|p| format!("revisions {}..{}", p.through() + 1, c.base_revision - 1));
        out.push(ListedChain {
            base: c.base.name.clone(),
            cluster_id: c.cluster_id().to_string(),
            node: c.base.parsed.node.clone(),
            base_revision: c.base_revision,
            last_revision: c.through(),
            from: crate::timestamp::rfc3339_ns(c.base_ns),
            to: crate::timestamp::rfc3339_ns(c.through_ns()),
            segments: c.segments.len(),
            changes: c.segments.iter().map(|s| s.meta.events).sum(),
            problems: c.problems.clone(),
            gap_before,
        });
    }
    out
}

/// A chain's window, and what no restore reaches.
fn chain_lines(c: &ListedChain) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(gap) = &c.gap_before {
        lines.push(format!(
            "gap: {gap} are in no chain (the log stopped, or was compacted past); restores reach the chains either side"
        ));
    }
    lines.push(format!(
        "log: {} revisions {} → {} ({} → {}), {} segments, {} changes",
        escape(&c.base),
        c.base_revision,
        c.last_revision,
        c.from,
        c.to,
        c.segments,
        c.changes
    ));
    lines.extend(
        c.problems
            .iter()
            .map(|p| format!("left out: {}", escape(p))),
    );
    lines
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

    fn details(&self) -> Vec<String> {
        let mut lines: Vec<String> = self.chains.iter().flat_map(chain_lines).collect();
        if let Some(rpo) = self.rpo_seconds {
            lines.push(format!("recovery point: {rpo:.0}s ago"));
        }
        lines
    }

    fn simple(&self) -> Vec<String> {
        let chains = self.chains.iter().flat_map(chain_lines);
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
            .chain(chains)
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
