//! `etcdops snapshot status FILE`: the walk of `etcd::status` on one file, rendered as etcdutl
//! renders it (table, json, simple) plus the facts etcdutl does not tell. A trailer mismatch on
//! a sound database is a printed status and exit 1.

use anyhow::{Context, Result};

use crate::bolt::FileSource;
use crate::cli::StatusRules;
use crate::etcd::status::{status, Checks, SnapshotStatus, Trailer, RULES_3_5, RULES_3_6};
use crate::exit::Outcome;
use crate::output::Report;
use crate::release::Release;
use crate::remote::source;
use crate::settings::SnapshotStatusSettings;
use crate::units::humanize_bytes;

pub fn run(settings: &SnapshotStatusSettings) -> Result<(SnapshotStatus, Outcome)> {
    // Compressed, encrypted and remote snapshots are decoded into a temporary first.
    let plain = source::open(&settings.source, &std::env::temp_dir())?;
    let shown = settings.source.location.to_string();
    let node_3_6 = settings
        .node_release
        .is_some_and(|r| r.minor_only() >= Release::new(3, 6, 0));
    let checks = Checks {
        integrity: settings.integrity,
        hash: settings.hash,
        user_keys: settings.both_counts
            || settings.rules == StatusRules::Etcdutl36
            || (settings.rules == StatusRules::Auto && node_3_6),
    };
    let src = FileSource::open(&plain.path).with_context(|| format!("reading {shown}"))?;
    let mut status = status(&src, checks).with_context(|| format!("snapshot {shown}"))?;
    let as_3_6 = match settings.rules {
        StatusRules::Etcdutl35 => false,
        StatusRules::Etcdutl36 => true,
        StatusRules::Auto => status.etcd_3_6 || node_3_6,
    };
    if let (true, Some(n)) = (as_3_6, status.total_key_etcdutl_3_6) {
        status.total_key = n;
    } else if !as_3_6 {
        status.total_key = status.total_key_etcdutl_3_5;
    }
    status.etcd_3_6 = as_3_6;
    status.rules = if as_3_6 { RULES_3_6 } else { RULES_3_5 };
    let outcome = match status.trailer {
        Trailer::Mismatch => Outcome::Bad(format!(
            "snapshot {shown} fails verification: its sha256 trailer does not match the database"
        )),
        _ => Outcome::Ok,
    };
    Ok((status, outcome))
}

/// etcdutl's columns.
fn etcdutl_cells(s: &SnapshotStatus) -> Vec<String> {
    let mut cells = vec![
        format!("{:x}", s.hash),
        s.revision.to_string(),
        s.total_key.to_string(),
        humanize_bytes(s.total_size),
    ];
    if s.etcd_3_6 {
        cells.push(s.version.clone());
    }
    cells
}

impl Report for SnapshotStatus {
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        let mut headers = vec!["hash", "revision", "total keys", "total size"];
        if self.etcd_3_6 {
            headers.push("version");
        }
        (headers, vec![etcdutl_cells(self)])
    }

    fn details(&self) -> Vec<String> {
        let opt = |v: Option<String>| v.unwrap_or_else(|| "-".to_string());
        let mut lines = vec![
            format!("sha256 trailer:      {}", self.trailer.describe()),
            format!(
                "integrity check:     {}",
                if self.integrity_checked {
                    "passed"
                } else {
                    "skipped"
                }
            ),
            format!(
                "consistent index:    {}",
                opt(self.consistent_index.map(|v| v.to_string()))
            ),
            format!(
                "raft term:           {}",
                opt(self.term.map(|v| v.to_string()))
            ),
            format!(
                "compacted revision:  {}",
                opt(self.compact_revision.map(|v| v.to_string()))
            ),
            format!("cluster version:     {}", opt(self.cluster_version.clone())),
            format!("members:             {}", self.members.len()),
        ];
        for m in &self.members {
            // etcd 3.5 stores no name for members that joined with `member add`, even once
            // started; such a member is known by its peer URL.
            let peers = m.peer_urls.join(",");
            let name = if !m.name.is_empty() {
                m.name.clone()
            } else if m.client_urls.is_empty() {
                format!("(no name stored; peer {peers})")
            } else {
                format!("(no name stored; client {})", m.client_urls.join(","))
            };
            lines.push(format!(
                "  {} {} peers={}{}",
                m.id,
                name,
                m.peer_urls.join(","),
                if m.is_learner { " learner" } else { "" }
            ));
        }
        lines
    }

    fn json(&self) -> serde_json::Value {
        crate::output::serialized(self)
    }

    fn simple(&self) -> Vec<String> {
        // With an empty 3.6 version this leaves a trailing separator, as etcdutl 3.6 does
        // (it joins every column, the empty one too).
        vec![etcdutl_cells(self).join(", ")]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// etcd 3.6 files show VERSION, and etcdutl 3.6 leaves a trailing separator when it is
    /// empty.
    #[test]
    fn etcd_3_6_columns() {
        let s = status(
            &include_bytes!("../../examples/k8s-small.db").to_vec(),
            Checks {
                integrity: false,
                hash: false,
                user_keys: false,
            },
        )
        .unwrap();
        let etcd_3_6 = SnapshotStatus {
            etcd_3_6: true,
            version: "3.6.0".into(),
            ..s.clone()
        };
        let size = humanize_bytes(s.total_size);
        assert_eq!(
            etcd_3_6.simple(),
            [format!("{:x}, 30, 325, {size}, 3.6.0", s.hash)]
        );
        assert_eq!(etcd_3_6.table().0.last(), Some(&"version"));
        let empty = SnapshotStatus {
            version: String::new(),
            ..etcd_3_6
        };
        assert_eq!(empty.simple(), [format!("{:x}, 30, 325, {size}, ", s.hash)]);
        assert_eq!(s.table().0.len(), 4);
    }
}
