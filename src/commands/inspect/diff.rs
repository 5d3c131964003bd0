//! `etcdops snapshot diff OLD NEW`: the keys added, removed and changed (mod revision or value)
//! between two snapshots — "what do I lose if I restore OLD?". Both keyspaces are read without
//! their values (sizes and crc32c only), then merged in key order.

use std::collections::BTreeMap;

use anyhow::Result;
use serde::Serialize;
use serde_json::{json, Value};

use crate::etcd::keyspace::{kubernetes_place, Kv, Query};
use crate::output::Report;
use crate::settings::DiffSettings;
use crate::text::escape;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Added,
    Removed,
    Changed,
}

#[derive(Debug, Clone, Serialize)]
pub struct Line {
    pub change: Change,
    pub key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_mod_revision: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_mod_revision: Option<i64>,
}

pub struct DiffReport {
    pub old_revision: i64,
    pub new_revision: i64,
    pub lines: Vec<Line>,
    pub summary: bool,
}

pub fn run(s: &DiffSettings) -> Result<DiffReport> {
    let query = Query {
        at: None,
        prefix: s.prefix.clone(),
        exact: false,
        values: false,
    };
    let old = super::keyspace(&s.old, &query)?;
    let new = super::keyspace(&s.new, &query)?;
    let lines = merge(&old.kvs, &new.kvs);
    Ok(DiffReport {
        old_revision: old.revision,
        new_revision: new.revision,
        lines,
        summary: s.summary,
    })
}

/// Both lists are in key order.
fn merge(old: &[Kv], new: &[Kv]) -> Vec<Line> {
    let key = |kv: &Kv| String::from_utf8_lossy(&kv.key).into_owned();
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < old.len() || j < new.len() {
        let order = match (old.get(i), new.get(j)) {
            (Some(a), Some(b)) => a.key.cmp(&b.key),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match order {
            std::cmp::Ordering::Less => {
                out.push(Line {
                    change: Change::Removed,
                    key: key(&old[i]),
                    old_mod_revision: Some(old[i].mod_revision),
                    new_mod_revision: None,
                });
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(Line {
                    change: Change::Added,
                    key: key(&new[j]),
                    old_mod_revision: None,
                    new_mod_revision: Some(new[j].mod_revision),
                });
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                let (a, b) = (&old[i], &new[j]);
                if a.mod_revision != b.mod_revision
                    || a.value_crc != b.value_crc
                    || a.value_size != b.value_size
                {
                    out.push(Line {
                        change: Change::Changed,
                        key: key(a),
                        old_mod_revision: Some(a.mod_revision),
                        new_mod_revision: Some(b.mod_revision),
                    });
                }
                i += 1;
                j += 1;
            }
        }
    }
    out
}

impl DiffReport {
    /// (resource, added, removed, changed), most changes first.
    fn by_resource(&self) -> Vec<(String, u64, u64, u64)> {
        let mut m: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
        for l in &self.lines {
            let r = kubernetes_place(l.key.as_bytes())
                .map(|(r, _)| r)
                .unwrap_or_else(|| "(not Kubernetes)".to_string());
            let e = m.entry(r).or_default();
            match l.change {
                Change::Added => e.0 += 1,
                Change::Removed => e.1 += 1,
                Change::Changed => e.2 += 1,
            }
        }
        let mut v: Vec<_> = m.into_iter().map(|(k, (a, r, c))| (k, a, r, c)).collect();
        v.sort_by(|x, y| {
            (y.1 + y.2 + y.3)
                .cmp(&(x.1 + x.2 + x.3))
                .then(x.0.cmp(&y.0))
        });
        v
    }
}

impl Report for DiffReport {
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        if self.summary {
            return (
                vec!["RESOURCE", "ADDED", "REMOVED", "CHANGED"],
                self.by_resource()
                    .into_iter()
                    .map(|(r, a, d, c)| {
                        vec![escape(&r), a.to_string(), d.to_string(), c.to_string()]
                    })
                    .collect(),
            );
        }
        let rev = |r: Option<i64>| r.map(|r| r.to_string()).unwrap_or_default();
        (
            vec!["CHANGE", "KEY", "OLD MOD REV", "NEW MOD REV"],
            self.lines
                .iter()
                .map(|l| {
                    vec![
                        format!("{:?}", l.change).to_lowercase(),
                        escape(&l.key),
                        rev(l.old_mod_revision),
                        rev(l.new_mod_revision),
                    ]
                })
                .collect(),
        )
    }

    fn json(&self) -> Value {
        let count = |c: Change| self.lines.iter().filter(|l| l.change == c).count();
        let mut doc = json!({
            "old_revision": self.old_revision,
            "new_revision": self.new_revision,
            "added": count(Change::Added),
            "removed": count(Change::Removed),
            "changed": count(Change::Changed),
        });
        if self.summary {
            doc["resources"] = self
                .by_resource()
                .into_iter()
                .map(|(r, a, d, c)| json!({"resource": r, "added": a, "removed": d, "changed": c}))
                .collect();
        } else {
            doc["keys"] = serde_json::to_value(&self.lines).unwrap_or_default();
        }
        doc
    }

    fn simple(&self) -> Vec<String> {
        let (_, rows) = self.table();
        rows.into_iter().map(|r| r.join(", ")).collect()
    }

    fn notes(&self) -> Vec<String> {
        let count = |c: Change| self.lines.iter().filter(|l| l.change == c).count();
        vec![format!(
            "{} added, {} removed, {} changed from revision {} to {}",
            count(Change::Added),
            count(Change::Removed),
            count(Change::Changed),
            self.old_revision,
            self.new_revision
        )]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, rev: i64, crc: u32) -> Kv {
        Kv {
            key: key.as_bytes().to_vec(),
            create_revision: 1,
            mod_revision: rev,
            version: 1,
            lease: 0,
            value: Vec::new(),
            value_size: 1,
            value_crc: crc,
        }
    }

    #[test]
    fn merge_finds_each_kind() {
        let old = [kv("a", 1, 1), kv("b", 2, 2), kv("c", 3, 3)];
        let new = [kv("b", 2, 2), kv("c", 4, 9), kv("d", 5, 5)];
        let got: Vec<(Change, String)> = merge(&old, &new)
            .into_iter()
            .map(|l| (l.change, l.key))
            .collect();
        assert_eq!(
            got,
            vec![
                (Change::Removed, "a".into()),
                (Change::Changed, "c".into()),
                (Change::Added, "d".into())
            ]
        );
    }
}
