//! `etcdops snapshot get SOURCE KEY`: one key's value from a snapshot, offline. The value is
//! printed escaped (table/simple), base64 in JSON (etcdctl's shape), as its exact bytes with
//! `--print-value-only`, or decoded as a Kubernetes object with `--decode`.

use anyhow::Result;
use serde_json::{json, Value};

use crate::etcd::k8s::{self, Decoded};
use crate::etcd::keyspace::{Keyspace, Query};
use crate::output::Report;
use crate::settings::GetSettings;
use crate::text::escape;

use super::kv_json;

pub struct GetReport {
    pub keyspace: Keyspace,
    pub decode: bool,
}

pub fn run(s: &GetSettings) -> Result<GetReport> {
    let keyspace = super::keyspace(
        &s.source,
        &Query {
            at: s.rev,
            prefix: s.key.clone(),
            exact: true,
            values: true,
        },
    )?;
    Ok(GetReport {
        keyspace,
        decode: s.decode,
    })
}

impl GetReport {
    /// The value's bytes (`--print-value-only`), empty when the key is absent.
    pub fn value(&self) -> &[u8] {
        self.keyspace
            .kvs
            .first()
            .map(|kv| kv.value.as_slice())
            .unwrap_or(&[])
    }

    fn decoded(&self) -> Option<Decoded> {
        self.keyspace.kvs.first().map(|kv| k8s::decode(&kv.value))
    }
}

impl Report for GetReport {
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        (
            vec!["KEY", "MOD REV", "VALUE"],
            self.keyspace
                .kvs
                .iter()
                .map(|kv| {
                    let value = if self.decode {
                        k8s::decode(&kv.value).summary()
                    } else {
                        escape(&String::from_utf8_lossy(&kv.value))
                    };
                    vec![
                        escape(&String::from_utf8_lossy(&kv.key)),
                        kv.mod_revision.to_string(),
                        value,
                    ]
                })
                .collect(),
        )
    }

    fn json(&self) -> Value {
        let kvs: Vec<Value> = self
            .keyspace
            .kvs
            .iter()
            .map(|kv| {
                let mut v = kv_json(kv, true);
                // --decode in JSON too: etcdctl's fields, plus what the value decodes to.
                if self.decode {
                    let d = k8s::decode(&kv.value);
                    v["decoded"] = d.summary().into();
                    if let Decoded::Json { pretty, .. } = &d {
                        if let Ok(object) = serde_json::from_str::<Value>(pretty) {
                            v["object"] = object;
                        }
                    }
                }
                v
            })
            .collect();
        let mut doc = json!({"header": {"revision": self.keyspace.revision}});
        if !kvs.is_empty() {
            doc["count"] = kvs.len().into();
            doc["kvs"] = kvs.into();
        }
        doc
    }

    /// etcdctl's simple output: the key line, then the value line; `--decode` shows the object.
    fn simple(&self) -> Vec<String> {
        let Some(kv) = self.keyspace.kvs.first() else {
            return Vec::new();
        };
        let mut lines = vec![escape(&String::from_utf8_lossy(&kv.key))];
        match self.decoded().filter(|_| self.decode) {
            Some(Decoded::Json { pretty, .. }) => lines.extend(pretty.lines().map(escape)),
            Some(d) => lines.push(d.summary()),
            None => lines.push(escape(&String::from_utf8_lossy(&kv.value))),
        }
        lines
    }
}
