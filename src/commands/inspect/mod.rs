//! The offline commands that read the keys of snapshots: `snapshot ls FILE` ([`keys`]),
//! `snapshot get` ([`get`]) and `snapshot diff` ([`diff`]). What they share is here: the
//! keyspace of a SOURCE, and one key in etcdctl's JSON shape.

use anyhow::{Context, Result};
use base64::Engine;
use serde_json::{Map, Value};

use crate::bolt::{Db, FileSource};
use crate::etcd::keyspace::{self, Keyspace, Kv, Query};
use crate::remote::source::{self, SourceSettings};

pub mod diff;
pub mod get;
pub mod keys;
pub mod log;

/// The keyspace of a SOURCE (decoded into a temporary first when needed).
fn keyspace(src: &SourceSettings, query: &Query) -> Result<Keyspace> {
    let plain = source::open(src, &std::env::temp_dir())?;
    let file =
        FileSource::open(&plain.path).with_context(|| format!("reading {}", src.location))?;
    let mut db = Db::open(file).with_context(|| format!("snapshot {}", src.location))?;
    keyspace::read(&mut db, query).with_context(|| format!("snapshot {}", src.location))
}

/// One key as etcdctl's JSON has it (proto3 zero values left out).
fn kv_json(kv: &Kv, with_value: bool) -> Value {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut m = Map::new();
    m.insert("key".into(), b64.encode(&kv.key).into());
    for (name, v) in [
        ("create_revision", kv.create_revision),
        ("mod_revision", kv.mod_revision),
        ("version", kv.version),
    ] {
        if v != 0 {
            m.insert(name.into(), v.into());
        }
    }
    if with_value && !kv.value.is_empty() {
        m.insert("value".into(), b64.encode(&kv.value).into());
    }
    if kv.lease != 0 {
        m.insert("lease".into(), kv.lease.into());
    }
    Value::Object(m)
}
