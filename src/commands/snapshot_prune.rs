//! `etcdops snapshot prune DIR/|s3://… --keep-…`: delete what no retention rule keeps, saying
//! which rule kept each of the rest (remote/prune.rs decides; this file reports).

use anyhow::Result;
use serde::Serialize;

use crate::exit::Outcome;
use crate::output::Report;
use crate::remote::prune::{self, Action};
use crate::remote::store::Store;
use crate::settings::PruneSettings;
use crate::text::escape;
use crate::timestamp::rfc3339;

#[derive(Debug, Clone, Serialize)]
pub struct PruneLine {
    pub name: String,
    pub time: String,
    /// `keep`, `delete` (`would delete` in a dry run, `refused` when the store refused it) or
    /// `skip`.
    pub action: &'static str,
    /// The rules that keep it, or why it is skipped.
    pub why: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PruneReport {
    pub location: String,
    pub dry_run: bool,
    pub snapshots: Vec<PruneLine>,
    /// Revision-log segments deleted (would be, in a dry run): no kept base needs them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub segments_deleted: Vec<String>,
    /// Segments of the kept bases (objects and sidecars).
    #[serde(skip_serializing_if = "is_zero")]
    pub segments_kept: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The report, and exit 2 with the refusals when a delete was refused (the rest went on).
pub async fn run(settings: &PruneSettings) -> Result<(PruneReport, Outcome)> {
    let store = Store::open(&settings.store.location, &settings.store.s3).await?;
    let plan = prune::plan(&store, &settings.policy, None).await?;
    let refused = if settings.dry_run {
        Vec::new()
    } else {
        prune::apply(&store, &plan).await
    };
    let snapshots = plan
        .entries
        .iter()
        .map(|e| {
            let (action, why) = match &e.action {
                Action::Keep(rules) => ("keep", rules.join(", ")),
                Action::Delete if settings.dry_run => ("would delete", "no rule keeps it".into()),
                Action::Delete => match refused.iter().find(|(n, _)| *n == e.backup.name) {
                    Some((_, err)) => ("refused", format!("{err:#}")),
                    None => ("delete", "no rule keeps it".into()),
                },
                Action::Skip(why) => ("skip", why.clone()),
            };
            PruneLine {
                name: e.backup.name.clone(),
                time: rfc3339(e.backup.parsed.time),
                action,
                why,
            }
        })
        .collect();
    let report = PruneReport {
        location: settings.store.location.to_string(),
        dry_run: settings.dry_run,
        snapshots,
        segments_deleted: plan.segments_deleted.clone(),
        segments_kept: plan.segments_kept,
    };
    let outcome = match prune::refusals(&refused) {
        Some(message) => Outcome::Incomplete(message, prune::REFUSED_HINT.to_string()),
        None => Outcome::Ok,
    };
    Ok((report, outcome))
}

impl Report for PruneReport {
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        (
            vec!["NAME", "TIME", "ACTION", "WHY"],
            self.snapshots
                .iter()
                .map(|s| {
                    vec![
                        escape(&s.name),
                        s.time.clone(),
                        s.action.to_string(),
                        escape(&s.why),
                    ]
                })
                .collect(),
        )
    }

    fn json(&self) -> serde_json::Value {
        crate::output::serialized(self)
    }

    fn details(&self) -> Vec<String> {
        self.segment_line().into_iter().collect()
    }

    fn simple(&self) -> Vec<String> {
        self.snapshots
            .iter()
            .map(|s| format!("{} {} ({})", s.action, escape(&s.name), escape(&s.why)))
            .chain(self.segment_line())
            .collect()
    }
}

impl PruneReport {
    /// What happened to the revision log's segments, when there are any.
    fn segment_line(&self) -> Option<String> {
        if self.segments_deleted.is_empty() && self.segments_kept == 0 {
            return None;
        }
        Some(format!(
            "revision log: {} {} segment files no kept base needs; {} kept with their bases",
            if self.dry_run {
                "would delete"
            } else {
                "deleted"
            },
            self.segments_deleted.len(),
            self.segments_kept
        ))
    }
}
