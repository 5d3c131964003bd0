//! A kubeadm static pod: the etcd container's command line (`command` and `args`, both flag
//! forms) and its hostPath mounts. Mirrors what kubeadm writes:
//! kubernetes/kubernetes cmd/kubeadm/app/phases/etcd/local.go.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde_yaml_ng::Value;

use super::{Kind, Manifest, ManifestError};

impl Manifest {
    /// Parse a static-pod manifest (or an etcd config file, recognised by its keys).
    pub fn parse(path: &Path, text: &str) -> Result<Manifest, ManifestError> {
        let doc: Value = serde_yaml_ng::from_str(text).map_err(|source| ManifestError::Yaml {
            path: path.to_path_buf(),
            source,
        })?;
        if let Some(m) = super::config::as_config_file(path, text, &doc) {
            return Ok(m);
        }
        let no_etcd = || ManifestError::NoEtcdContainer {
            path: path.to_path_buf(),
        };
        let spec = doc.get("spec").ok_or_else(no_etcd)?;
        let container = etcd_container(spec).ok_or_else(no_etcd)?;
        Ok(Manifest {
            path: path.to_path_buf(),
            kind: Kind::StaticPod,
            flags: parse_flags(&command_line(container)),
            image: container
                .get("image")
                .and_then(Value::as_str)
                .map(str::to_string),
            mounts: host_mounts(spec, container),
            text: text.to_string(),
        })
    }
}

/// The container running etcd: the one whose command starts with an `etcd` binary, else the
/// one named `etcd`.
fn etcd_container(spec: &Value) -> Option<&Value> {
    let containers = spec.get("containers").and_then(Value::as_sequence)?;
    containers
        .iter()
        .find(|c| command_line(c).first().is_some_and(|a| is_etcd_binary(a)))
        .or_else(|| {
            containers
                .iter()
                .find(|c| c.get("name").and_then(Value::as_str) == Some("etcd"))
        })
}

/// `(mountPath, host path, volume name)` of the container's hostPath mounts, longest mount
/// path first so that nested mounts win.
fn host_mounts(spec: &Value, container: &Value) -> Vec<(PathBuf, PathBuf, String)> {
    let mut host_of_volume = BTreeMap::new();
    for v in spec
        .get("volumes")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
    {
        let name = v.get("name").and_then(Value::as_str);
        let host = v
            .get("hostPath")
            .and_then(|h| h.get("path"))
            .and_then(Value::as_str);
        if let (Some(name), Some(host)) = (name, host) {
            host_of_volume.insert(name.to_string(), PathBuf::from(host));
        }
    }
    let mut mounts = Vec::new();
    for m in container
        .get("volumeMounts")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
    {
        let name = m.get("name").and_then(Value::as_str);
        let mount = m.get("mountPath").and_then(Value::as_str);
        if let (Some(name), Some(mount)) = (name, mount) {
            if let Some(host) = host_of_volume.get(name) {
                mounts.push((PathBuf::from(mount), host.clone(), name.to_string()));
            }
        }
    }
    mounts.sort_by_key(|(m, ..)| std::cmp::Reverse(m.components().count()));
    mounts
}

fn command_line(container: &Value) -> Vec<String> {
    let list = |key| {
        container
            .get(key)
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
            .filter_map(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                Value::Bool(b) => Some(b.to_string()),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    let mut all = list("command");
    all.extend(list("args"));
    all
}

fn is_etcd_binary(arg: &str) -> bool {
    Path::new(arg)
        .components()
        .next_back()
        .is_some_and(|c| matches!(c, Component::Normal(n) if n == "etcd"))
}

/// etcd's flags from its argv: `--a=b`, `--a b`, `-a=b`; a flag followed by another flag (or
/// nothing) is a boolean `true`. The binary name and stray words are skipped.
pub(super) fn parse_flags(argv: &[String]) -> BTreeMap<String, String> {
    let mut flags = BTreeMap::new();
    let mut i = 0;
    while i < argv.len() {
        let arg = argv[i].trim();
        i += 1;
        let Some(body) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            continue;
        };
        if body.is_empty() {
            continue;
        }
        match body.split_once('=') {
            Some((k, v)) => {
                flags.insert(k.to_string(), v.to_string());
            }
            None => {
                let value = match argv.get(i) {
                    Some(next) if !next.starts_with('-') => {
                        i += 1;
                        next.trim().to_string()
                    }
                    _ => "true".to_string(),
                };
                flags.insert(body.to_string(), value);
            }
        }
    }
    flags
}
