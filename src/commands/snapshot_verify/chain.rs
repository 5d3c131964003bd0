//! `snapshot verify DIR/|s3://…/ --chain`: every revision-log chain there, checked as a restore
//! would use it and more — the sidecars and the hash chain (which segments continue which),
//! every segment read back against its sidecar and decoded, and the changes themselves: each
//! revision after the base present, none twice, sub-revisions numbered from 0 (a revision
//! missing inside a chain is a gap the follower should never leave). The revisions between two
//! chains, which no restore reaches one by one, are said without failing the check.

use anyhow::Result;

use super::{Check, VerifyReport};
use crate::exit::Outcome;
use crate::remote::codec::Identities;
use crate::remote::store::Store;
use crate::revlog::chain::{self, Chain};
use crate::revlog::segment::Record;
use crate::settings::VerifySettings;

pub fn run(settings: &VerifySettings) -> Result<(VerifyReport, Outcome)> {
    let shown = settings.source.location.to_string();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let checks = rt.block_on(checks(settings))?;
    let failed: Vec<&str> = checks.iter().filter(|c| !c.ok).map(|c| c.check).collect();
    let outcome = if checks.is_empty() {
        Outcome::Bad(format!("no revision log in {shown}"))
    } else if failed.is_empty() {
        Outcome::Ok
    } else {
        Outcome::Bad(format!(
            "the revision log in {shown} fails verification: {}",
            failed.join(", ")
        ))
    };
    Ok((
        VerifyReport {
            source: shown,
            checks,
        },
        outcome,
    ))
}

async fn checks(settings: &VerifySettings) -> Result<Vec<Check>> {
    let store = Store::open(&settings.source.location, &settings.source.s3).await?;
    let ids = Identities::load(&settings.source.identities)?;
    let chains = chain::chains(&store).await?;
    let mut out = Vec::new();
    let logged: Vec<&Chain> = chains
        .iter()
        .filter(|c| !c.segments.is_empty() || !c.problems.is_empty())
        .collect();
    for (i, c) in logged.iter().enumerate() {
        if let Some(p) = logged[..i]
            .iter()
            .rev()
            .find(|p| p.cluster_id() == c.cluster_id())
        {
            if c.base_revision - p.through() >= 2 {
                out.push(Check {
                    check: "between chains",
                    ok: true,
                    detail: format!(
                        "revisions {}..{} are in no chain: restores reach {} and {}",
                        p.through() + 1,
                        c.base_revision - 1,
                        p.base.name,
                        c.base.name
                    ),
                });
            }
        }
        out.push(Check {
            check: "chain",
            ok: c.problems.is_empty(),
            detail: if c.problems.is_empty() {
                format!(
                    "{}: {} segments, hash chain whole, revisions {}",
                    c.base.name,
                    c.segments.len(),
                    c.window()
                )
            } else {
                format!("{}: {}", c.base.name, c.problems.join("; "))
            },
        });
        out.push(changes_check(&store, c, &ids).await);
    }
    Ok(out)
}

/// Every segment of `c` read and decoded; the changes continuous from the base on.
async fn changes_check(store: &Store, c: &Chain, ids: &Identities) -> Check {
    // The last change seen: (revision, sub-revision); none yet at the base's revision.
    let mut last: (i64, Option<u32>) = (c.base_revision, None);
    let mut changes = 0u64;
    for seg in &c.segments {
        let records = match chain::load(store, seg, ids).await {
            Ok(r) => r,
            Err(e) => return failed(format!("{e:#}")),
        };
        for r in &records {
            let Record::Event(e) = r else { continue };
            let same = last.1.is_some_and(|s| e.main == last.0 && e.sub == s + 1);
            let next = e.main == last.0 + 1 && e.sub == 0;
            if !same && !next {
                let what = if (e.main, e.sub) <= (last.0, last.1.unwrap_or(0)) {
                    "a change logged twice"
                } else {
                    "changes missing"
                };
                return failed(format!(
                    "{}: {what}: revision {}.{} after revision {}.{}",
                    seg.name,
                    e.main,
                    e.sub,
                    last.0,
                    last.1.map_or("-".to_string(), |s| s.to_string())
                ));
            }
            last = (e.main, Some(e.sub));
            changes += 1;
        }
        if last.0 != seg.meta.through {
            return failed(format!(
                "{}: complete through revision {}, but its last change is at revision {}",
                seg.name, seg.meta.through, last.0
            ));
        }
    }
    Check {
        check: "segments",
        ok: true,
        detail: format!(
            "{}: {changes} changes, every revision from {} to {} once",
            c.base.name,
            c.base_revision + 1,
            c.through()
        ),
    }
}

fn failed(detail: String) -> Check {
    Check {
        check: "segments",
        ok: false,
        detail,
    }
}
