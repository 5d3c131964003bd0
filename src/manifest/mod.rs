//! The etcd static-pod manifest (kubeadm's `/etc/kubernetes/manifests/etcd.yaml`): which flags
//! the etcd container runs with, and how container paths map to host paths through
//! `volumeMounts` → `hostPath` volumes.
//!
//! Owns: parsing the pod YAML and etcd's command line (`--flag=value` and `--flag value`, in
//! `command` and/or `args`). Does not: edit the manifest, or read etcd config files and systemd
//! units (see the manifest issue).
//!
//! Mirrors what kubeadm writes: kubernetes/kubernetes cmd/kubeadm/app/phases/etcd/local.go.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde_yaml_ng::Value;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ManifestError {
    #[error("reading manifest {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("manifest {path} is not valid YAML")]
    Yaml {
        path: PathBuf,
        #[source]
        source: serde_yaml_ng::Error,
    },
    #[error("manifest {path} has no etcd container (spec.containers[] running etcd)")]
    NoEtcdContainer { path: PathBuf },
}

/// What etcd's static pod says, with container paths already mapped to the host.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub path: PathBuf,
    /// etcd's flags, in order, without the leading dashes (`listen-client-urls` → value).
    pub flags: BTreeMap<String, String>,
    pub image: Option<String>,
    /// (mountPath, host path) pairs from the etcd container's volumeMounts.
    mounts: Vec<(PathBuf, PathBuf)>,
}

/// TLS material an etcdctl-like client can use, as host paths.
#[derive(Debug, Clone, Default)]
pub struct ClientTls {
    pub cacert: Option<PathBuf>,
    pub client_pair: Option<(PathBuf, PathBuf)>,
}

impl Manifest {
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Manifest::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Manifest, ManifestError> {
        let doc: Value = serde_yaml_ng::from_str(text).map_err(|source| ManifestError::Yaml {
            path: path.to_path_buf(),
            source,
        })?;
        let no_etcd = || ManifestError::NoEtcdContainer {
            path: path.to_path_buf(),
        };
        let spec = doc.get("spec").ok_or_else(no_etcd)?;
        let containers = spec
            .get("containers")
            .and_then(Value::as_sequence)
            .ok_or_else(no_etcd)?;
        let container = containers
            .iter()
            .find(|c| command_line(c).first().is_some_and(|a| is_etcd_binary(a)))
            .or_else(|| {
                containers
                    .iter()
                    .find(|c| c.get("name").and_then(Value::as_str) == Some("etcd"))
            })
            .ok_or_else(no_etcd)?;

        let flags = parse_flags(&command_line(container));
        let image = container
            .get("image")
            .and_then(Value::as_str)
            .map(str::to_string);

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
                    mounts.push((PathBuf::from(mount), host.clone()));
                }
            }
        }
        // Longest mount path first, so nested mounts win.
        mounts.sort_by_key(|(m, _)| std::cmp::Reverse(m.components().count()));

        Ok(Manifest {
            path: path.to_path_buf(),
            flags,
            image,
            mounts,
        })
    }

    pub fn flag(&self, name: &str) -> Option<&str> {
        self.flags.get(name).map(String::as_str)
    }

    /// A container path as seen from the host. Paths outside every hostPath mount are returned
    /// unchanged (kubeadm mounts the pki directory at the same path).
    pub fn host_path(&self, container_path: &Path) -> PathBuf {
        for (mount, host) in &self.mounts {
            if let Ok(rest) = container_path.strip_prefix(mount) {
                return if rest.as_os_str().is_empty() {
                    host.clone()
                } else {
                    host.join(rest)
                };
            }
        }
        container_path.to_path_buf()
    }

    /// The client URL to dial: a loopback URL of `--listen-client-urls` when there is one
    /// (it is always reachable from the node), else the first advertised, else the first listen.
    pub fn client_endpoint(&self) -> Option<String> {
        let listen = split_urls(self.flag("listen-client-urls"));
        let advertise = split_urls(self.flag("advertise-client-urls"));
        listen
            .iter()
            .find(|u| is_loopback_url(u))
            .or_else(|| advertise.first())
            .or_else(|| listen.first())
            .cloned()
    }

    /// Every certificate file the manifest points etcd at, as host paths.
    pub fn certificate_files(&self) -> Vec<PathBuf> {
        [
            "trusted-ca-file",
            "cert-file",
            "peer-trusted-ca-file",
            "peer-cert-file",
        ]
        .iter()
        .filter_map(|f| self.flag(f))
        .map(|p| self.host_path(Path::new(p)))
        .collect()
    }

    /// CA and client certificate for talking to this etcd. kubeadm's `healthcheck-client`
    /// pair beside the CA is preferred (it is a client certificate by purpose); otherwise the
    /// server pair, which kubeadm issues for client auth too.
    pub fn client_tls(&self) -> ClientTls {
        let file = |flag| self.flag(flag).map(|p| self.host_path(Path::new(p)));
        let cacert = file("trusted-ca-file");
        let healthcheck = cacert.as_ref().and_then(|ca| {
            let dir = ca.parent()?;
            let cert = dir.join("healthcheck-client.crt");
            let key = dir.join("healthcheck-client.key");
            (cert.is_file() && key.is_file()).then_some((cert, key))
        });
        let server_pair = match (file("cert-file"), file("key-file")) {
            (Some(c), Some(k)) => Some((c, k)),
            _ => None,
        };
        ClientTls {
            cacert,
            client_pair: healthcheck.or(server_pair),
        }
    }
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
fn parse_flags(argv: &[String]) -> BTreeMap<String, String> {
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

fn split_urls(s: Option<&str>) -> Vec<String> {
    s.unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_string)
        .collect()
}

fn is_loopback_url(url: &str) -> bool {
    let host = url.split("://").nth(1).unwrap_or(url);
    let host = host.split('/').next().unwrap_or(host);
    let host = match host.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBEADM: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: etcd
  namespace: kube-system
spec:
  containers:
  - command:
    - etcd
    - --advertise-client-urls=https://192.168.1.10:2379
    - --cert-file=/etc/kubernetes/pki/etcd/server.crt
    - --data-dir=/var/lib/etcd
    - --key-file=/etc/kubernetes/pki/etcd/server.key
    - --listen-client-urls=https://127.0.0.1:2379,https://192.168.1.10:2379
    - --name=cp1
    - --trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt
    image: registry.k8s.io/etcd:3.5.12-0
    name: etcd
    volumeMounts:
    - mountPath: /var/lib/etcd
      name: etcd-data
    - mountPath: /etc/kubernetes/pki/etcd
      name: etcd-certs
  volumes:
  - hostPath:
      path: /etc/kubernetes/pki/etcd
      type: DirectoryOrCreate
    name: etcd-certs
  - hostPath:
      path: /var/lib/etcd-restored
      type: DirectoryOrCreate
    name: etcd-data
"#;

    #[test]
    fn kubeadm_manifest() {
        let m = Manifest::parse(Path::new("etcd.yaml"), KUBEADM).unwrap();
        assert_eq!(m.flag("name"), Some("cp1"));
        assert_eq!(
            m.client_endpoint().as_deref(),
            Some("https://127.0.0.1:2379")
        );
        assert_eq!(
            m.host_path(Path::new("/var/lib/etcd")),
            PathBuf::from("/var/lib/etcd-restored")
        );
        assert_eq!(
            m.host_path(Path::new("/var/lib/etcd/member")),
            PathBuf::from("/var/lib/etcd-restored/member")
        );
        let tls = m.client_tls();
        assert_eq!(
            tls.cacert,
            Some(PathBuf::from("/etc/kubernetes/pki/etcd/ca.crt"))
        );
        assert_eq!(
            tls.client_pair,
            Some((
                PathBuf::from("/etc/kubernetes/pki/etcd/server.crt"),
                PathBuf::from("/etc/kubernetes/pki/etcd/server.key")
            ))
        );
        assert_eq!(m.image.as_deref(), Some("registry.k8s.io/etcd:3.5.12-0"));
    }

    #[test]
    fn split_flags_and_args() {
        let text = r#"
spec:
  containers:
  - name: main
    command: ["/usr/local/bin/etcd"]
    args: ["--name", "m1", "--listen-client-urls", "https://10.0.0.1:2379", "--debug"]
"#;
        let m = Manifest::parse(Path::new("x"), text).unwrap();
        assert_eq!(m.flag("name"), Some("m1"));
        assert_eq!(m.flag("debug"), Some("true"));
        assert_eq!(
            m.client_endpoint().as_deref(),
            Some("https://10.0.0.1:2379")
        );
    }

    #[test]
    fn bad_manifests() {
        let e = Manifest::parse(Path::new("m.yaml"), "a: [").unwrap_err();
        assert!(e.to_string().contains("not valid YAML"));
        let e =
            Manifest::parse(Path::new("m.yaml"), "spec: {containers: [{name: x}]}").unwrap_err();
        assert!(e.to_string().contains("no etcd container"), "{e}");
        let e = Manifest::load(Path::new("/nonexistent/m.yaml")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/m.yaml"));
    }

    #[test]
    fn loopback_detection() {
        assert!(is_loopback_url("https://127.0.0.1:2379"));
        assert!(is_loopback_url("http://localhost:2379"));
        assert!(is_loopback_url("https://[::1]:2379"));
        assert!(!is_loopback_url("https://10.1.1.1:2379"));
    }
}
