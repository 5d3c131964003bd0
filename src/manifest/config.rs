//! An etcd config file (`--config-file` YAML): etcd's own settings as top-level keys, TLS
//! under `client-transport-security`/`peer-transport-security`. Mirrors etcd-io/etcd
//! server/embed/config.go `configYAML`.

use std::collections::BTreeMap;
use std::path::Path;

use serde_yaml_ng::Value;

use super::{Kind, Manifest};

/// Keys only an etcd config file has at the top level (a pod has `spec`).
const CONFIG_KEYS: [&str; 4] = [
    "data-dir",
    "name",
    "listen-client-urls",
    "client-transport-security",
];

/// `doc` as an etcd config file, if it is one.
pub(super) fn as_config_file(path: &Path, text: &str, doc: &Value) -> Option<Manifest> {
    let Value::Mapping(map) = doc else {
        return None;
    };
    if doc.get("spec").is_some() || !CONFIG_KEYS.iter().any(|k| map.contains_key(*k)) {
        return None;
    }
    Some(Manifest::bare(
        path,
        text,
        Kind::ConfigFile,
        config_flags(map),
    ))
}

/// etcd flags from a config file: top-level keys as they are; `client-transport-security` and
/// `peer-transport-security` mapped to the flag names (`cert-file`, `peer-cert-file`, ...).
pub(super) fn config_flags(map: &serde_yaml_ng::Mapping) -> BTreeMap<String, String> {
    let mut flags = BTreeMap::new();
    let scalar = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    for (k, v) in map {
        let Some(key) = k.as_str() else { continue };
        match (key, v) {
            ("client-transport-security" | "peer-transport-security", Value::Mapping(inner)) => {
                let prefix = if key.starts_with("peer") { "peer-" } else { "" };
                for (ik, iv) in inner {
                    if let (Some(ik), Some(iv)) = (ik.as_str(), scalar(iv)) {
                        flags.insert(format!("{prefix}{ik}"), iv);
                    }
                }
            }
            _ => {
                if let Some(v) = scalar(v) {
                    flags.insert(key.to_string(), v);
                }
            }
        }
    }
    flags
}
