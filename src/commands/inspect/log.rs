//! `etcdops snapshot log DIR/|s3://…/ [KEY [--prefix]] [--since T] [--until T]`: the
//! history of keys from the revision log `snapshot follow` writes — revision, time received,
//! PUT or DELETE, value size — so that "restore to just before the delete at revision R" is
//! two commands. Segments are checked as a restore checks them (sidecar, sha256, records).

use anyhow::Result;
use serde::Serialize;

use crate::output::Report;
use crate::remote::codec::Identities;
use crate::remote::store::Store;
use crate::revlog::chain;
use crate::revlog::segment::{Change, Record};
use crate::settings::LogSettings;
use crate::text::escape;
use crate::timestamp::rfc3339_ns;

#[derive(Debug, Serialize)]
pub struct LoggedChange {
    pub revision: i64,
    pub sub: u32,
    pub time: String,
    pub op: &'static str,
    /// The key, escaped for a terminal (`key_base64` holds its bytes).
    pub key: String,
    pub key_base64: String,
    pub value_size: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease: Option<i64>,
}

#[derive(Debug, Serialize)]
pub struct LogReport {
    pub changes: Vec<LoggedChange>,
    /// The windows read: base → last revision of each chain.
    pub chains: Vec<String>,
}

pub async fn run(s: &LogSettings) -> Result<LogReport> {
    let store = Store::open(&s.source.location, &s.source.s3).await?;
    let ids = Identities::load(&s.source.identities)?;
    let chains = chain::chains(&store).await?;
    let mut changes = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for c in &chains {
        for seg in &c.segments {
            let m = &seg.meta;
            let before = s.since_ns.is_some_and(|t| m.through_ns < t);
            let after = s
                .until_ns
                .is_some_and(|t| m.first_event_ns.is_some_and(|f| f > t));
            if m.events == 0 || before || after {
                continue;
            }
            for r in chain::load(&store, seg, &ids).await? {
                let Record::Event(e) = r else { continue };
                let in_time = s.since_ns.is_none_or(|t| e.time_ns >= t)
                    && s.until_ns.is_none_or(|t| e.time_ns <= t);
                let matches = if s.prefix {
                    e.key.starts_with(&s.key)
                } else {
                    e.key == s.key
                };
                if !in_time || !matches || !seen.insert((e.main, e.sub)) {
                    continue;
                }
                changes.push(change(e));
            }
        }
    }
    changes.sort_by_key(|c| (c.revision, c.sub));
    Ok(LogReport {
        changes,
        chains: chains.iter().map(|c| c.window()).collect(),
    })
}

fn change(e: crate::revlog::segment::Event) -> LoggedChange {
    use base64::Engine;
    let (op, value_size, version, lease) = match &e.change {
        Change::Put {
            value,
            version,
            lease,
            ..
        } => (
            "PUT",
            value.len(),
            Some(*version),
            (*lease != 0).then_some(*lease),
        ),
        Change::Delete => ("DELETE", 0, None, None),
    };
    LoggedChange {
        revision: e.main,
        sub: e.sub,
        time: rfc3339_ns(e.time_ns),
        op,
        key: escape(&String::from_utf8_lossy(&e.key)),
        key_base64: base64::engine::general_purpose::STANDARD.encode(&e.key),
        value_size,
        version,
        lease,
    }
}

impl Report for LogReport {
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        let rows = self
            .changes
            .iter()
            .map(|c| {
                vec![
                    c.revision.to_string(),
                    c.time.clone(),
                    c.op.to_string(),
                    c.key.clone(),
                    c.value_size.to_string(),
                ]
            })
            .collect();
        (vec!["REVISION", "TIME", "OP", "KEY", "VALUE SIZE"], rows)
    }

    fn json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    fn simple(&self) -> Vec<String> {
        self.changes
            .iter()
            .map(|c| {
                format!(
                    "{} {} {} {} {}",
                    c.revision, c.time, c.op, c.key, c.value_size
                )
            })
            .collect()
    }

    fn notes(&self) -> Vec<String> {
        if self.chains.is_empty() {
            vec!["note: no revision log here (`etcdops snapshot follow` writes one)".to_string()]
        } else {
            Vec::new()
        }
    }
}
