//! `etcdops snapshot ls SOURCE`: the live keys of one snapshot, offline — at the latest
//! revision or `--rev N` — as etcdctl's `get "" --prefix` would list them from the restored
//! cluster; `--summary` groups them by Kubernetes resource and namespace, biggest first.

use std::collections::BTreeMap;

use anyhow::Result;
use serde_json::{json, Map, Value};

use super::kv_json;

use crate::etcd::keyspace::{kubernetes_place, Keyspace, Query};
use crate::output::Report;
use crate::settings::KeysSettings;
use crate::text::escape;
use crate::units::humanize_bytes;

pub struct KeysReport {
    pub keyspace: Keyspace,
    pub keys_only: bool,
    pub values: bool,
    pub summary: Option<Summary>,
}

/// Keys and bytes (key + value) per group.
#[derive(Debug, Default)]
pub struct Summary {
    pub resources: Vec<(String, u64, u64)>,
    pub namespaces: Vec<(String, u64, u64)>,
}

pub fn run(s: &KeysSettings) -> Result<KeysReport> {
    let keyspace = super::keyspace(
        &s.source,
        &Query {
            at: s.rev,
            prefix: s.prefix.clone(),
            exact: false,
            values: s.values,
        },
    )?;
    let summary = s.summary.then(|| summarize(&keyspace));
    Ok(KeysReport {
        keyspace,
        keys_only: s.keys_only,
        values: s.values,
        summary,
    })
}

fn summarize(ks: &Keyspace) -> Summary {
    let mut resources: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut namespaces: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for kv in &ks.kvs {
        let bytes = (kv.key.len() + kv.value_size) as u64;
        let (resource, namespace) = match kubernetes_place(&kv.key) {
            Some((r, ns)) => (r, ns.unwrap_or_else(|| "(cluster-scoped)".to_string())),
            None => ("(not Kubernetes)".to_string(), "(none)".to_string()),
        };
        for (map, k) in [(&mut resources, resource), (&mut namespaces, namespace)] {
            let e = map.entry(k).or_default();
            e.0 += 1;
            e.1 += bytes;
        }
    }
    let sorted = |m: BTreeMap<String, (u64, u64)>| {
        let mut v: Vec<(String, u64, u64)> = m.into_iter().map(|(k, (n, b))| (k, n, b)).collect();
        v.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
        v
    };
    Summary {
        resources: sorted(resources),
        namespaces: sorted(namespaces),
    }
}

impl Report for KeysReport {
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        if let Some(s) = &self.summary {
            let mut rows: Vec<Vec<String>> = s
                .resources
                .iter()
                .map(|(r, n, b)| {
                    vec![
                        "resource".into(),
                        escape(r),
                        n.to_string(),
                        humanize_bytes(*b),
                    ]
                })
                .collect();
            rows.extend(s.namespaces.iter().map(|(ns, n, b)| {
                vec![
                    "namespace".into(),
                    escape(ns),
                    n.to_string(),
                    humanize_bytes(*b),
                ]
            }));
            return (vec!["GROUP", "NAME", "KEYS", "BYTES"], rows);
        }
        if self.keys_only {
            return (
                vec!["KEY"],
                self.keyspace
                    .kvs
                    .iter()
                    .map(|kv| vec![escape(&String::from_utf8_lossy(&kv.key))])
                    .collect(),
            );
        }
        (
            vec![
                "KEY",
                "CREATE REV",
                "MOD REV",
                "VERSION",
                "LEASE",
                "VALUE SIZE",
            ],
            self.keyspace
                .kvs
                .iter()
                .map(|kv| {
                    vec![
                        escape(&String::from_utf8_lossy(&kv.key)),
                        kv.create_revision.to_string(),
                        kv.mod_revision.to_string(),
                        kv.version.to_string(),
                        if kv.lease == 0 {
                            String::new()
                        } else {
                            format!("{:x}", kv.lease)
                        },
                        kv.value_size.to_string(),
                    ]
                })
                .collect(),
        )
    }

    fn json(&self) -> Value {
        if let Some(s) = &self.summary {
            let list = |v: &[(String, u64, u64)], name: &str| -> Vec<Value> {
                v.iter()
                    .map(|(k, n, b)| json!({name: k, "keys": n, "bytes": b}))
                    .collect()
            };
            return json!({
                "revision": self.keyspace.revision,
                "resources": list(&s.resources, "resource"),
                "namespaces": list(&s.namespaces, "namespace"),
            });
        }
        let kvs: Vec<Value> = self
            .keyspace
            .kvs
            .iter()
            .map(|kv| kv_json(kv, self.values))
            .collect();
        let mut doc = Map::new();
        doc.insert("header".into(), json!({"revision": self.keyspace.revision}));
        if !kvs.is_empty() {
            doc.insert("count".into(), kvs.len().into());
            doc.insert("kvs".into(), kvs.into());
        }
        Value::Object(doc)
    }

    fn simple(&self) -> Vec<String> {
        if self.summary.is_some() {
            let (_, rows) = self.table();
            return rows.into_iter().map(|r| r.join(", ")).collect();
        }
        self.keyspace
            .kvs
            .iter()
            .map(|kv| escape(&String::from_utf8_lossy(&kv.key)))
            .collect()
    }

    fn notes(&self) -> Vec<String> {
        vec![format!(
            "{} keys at revision {} (the snapshot serves revision {}; compacted at {})",
            self.keyspace.kvs.len(),
            self.keyspace.revision,
            self.keyspace.current,
            self.keyspace.compacted
        )]
    }
}
