//! The etcd static-pod manifest (kubeadm's `/etc/kubernetes/manifests/etcd.yaml`): which flags
//! the etcd container runs with, and how container paths map to host paths through
//! `volumeMounts` → `hostPath` volumes.
//!
//! Owns: the [`Manifest`] every command reads settings from, detected from the content: a
//! static pod (`pod.rs`), an etcd config file (`config.rs`) or a systemd unit (`unit.rs`,
//! with `words.rs` for its shell quoting); and the one edit etcdops makes, the data volume's
//! hostPath for a restore (`edit.rs`).

mod config;
pub mod edit;
mod pod;
pub mod release;
mod unit;
mod words;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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
    #[error("manifest {path} is {size} bytes; an etcd manifest is a few KB (at most {MAX_MANIFEST} bytes are read)")]
    TooLarge { path: PathBuf, size: u64 },
    #[error("manifest {path} nests flow collections {depth} deep; at most {MAX_NESTING} are read")]
    TooDeep { path: PathBuf, depth: usize },
    #[error("manifest {path}: no hostPath volume is mounted at the data dir {data_dir} (volumeMounts of the etcd container)")]
    DataDirNotMounted { path: PathBuf, data_dir: PathBuf },
    #[error("manifest {path}: the data dir is not on a volume")]
    DataDirNotOnVolume { path: PathBuf },
}

/// The largest manifest, config file or unit read (a real one is a few KB).
pub const MAX_MANIFEST: u64 = 1 << 20;
/// The deepest nesting of YAML flow collections (`{`, `[`) read; parsing deep nesting costs
/// quadratic time.
pub const MAX_NESTING: usize = 64;

/// Read a manifest, refusing sizes and nesting no etcd manifest has before parsing anything.
fn read_bounded(path: &Path) -> Result<String, ManifestError> {
    use std::io::Read;
    let read_err = |source| ManifestError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let mut text = String::new();
    file.take(MAX_MANIFEST + 1)
        .read_to_string(&mut text)
        .map_err(read_err)?;
    if text.len() as u64 > MAX_MANIFEST {
        let size = std::fs::metadata(path).map_or(MAX_MANIFEST + 1, |m| m.len());
        return Err(ManifestError::TooLarge {
            path: path.to_path_buf(),
            size,
        });
    }
    let depth = flow_depth(&text);
    if depth > MAX_NESTING {
        return Err(ManifestError::TooDeep {
            path: path.to_path_buf(),
            depth,
        });
    }
    Ok(text)
}

/// The deepest nesting of `{`/`[` outside quotes and comments (a cheap bound, not a parser).
fn flow_depth(text: &str) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    for line in text.lines() {
        let mut quote = None;
        for c in line.chars() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '\'' | '"') => quote = Some(c),
                (None, '#') => break,
                (None, '{' | '[') => {
                    depth += 1;
                    max = max.max(depth);
                }
                (None, '}' | ']') => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
    }
    max
}

/// What etcd's static pod says, with container paths already mapped to the host.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub path: PathBuf,
    pub kind: Kind,
    /// etcd's flags, without the leading dashes (`listen-client-urls` → value).
    pub flags: BTreeMap<String, String>,
    pub image: Option<String>,
    /// (mountPath, host path, volume name) from the etcd container's volumeMounts.
    mounts: Vec<(PathBuf, PathBuf, String)>,
    /// The file as read, for pointing at the line a setting came from.
    text: String,
}

/// What kind of file described etcd.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    StaticPod,
    ConfigFile,
    SystemdUnit,
}

impl Kind {
    /// The name shown in every output format (as in JSON).
    pub fn name(self) -> &'static str {
        match self {
            Kind::StaticPod => "static-pod",
            Kind::ConfigFile => "config-file",
            Kind::SystemdUnit => "systemd-unit",
        }
    }
}

/// TLS material an etcdctl-like client can use, as host paths.
#[derive(Debug, Clone, Default)]
pub struct ClientTls {
    pub cacert: Option<PathBuf>,
    pub client_pair: Option<(PathBuf, PathBuf)>,
    /// The pair is kubeadm's `healthcheck-client` beside the CA (not `--cert-file`).
    pub healthcheck: bool,
}

impl Manifest {
    /// Read a static-pod manifest, an etcd config file or a systemd unit, by content.
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        let text = read_bounded(path)?;
        Manifest::from_text(path, &text)
    }

    /// [`Manifest::load`] of text already read (`path` only names it in messages).
    pub fn from_text(path: &Path, text: &str) -> Result<Manifest, ManifestError> {
        let mut m = if unit::is_unit(text) {
            Manifest::systemd(path, text)
        } else {
            Manifest::parse(path, text)?
        };
        m.follow_config_file();
        Ok(m)
    }

    /// With `--config-file` (or `ETCD_CONFIG_FILE`), etcd reads that file alone and ignores
    /// every other flag and `ETCD_*` variable (etcd-io/etcd v3.5.33 server/etcdmain/config.go
    /// 361-375, v3.6.14 168-182: "other configuration command line flags and environment
    /// variables will be ignored"): the settings are the file's. One that cannot be read
    /// leaves the command line's.
    fn follow_config_file(&mut self) {
        if self.kind == Kind::ConfigFile {
            return;
        }
        let Some(cfg) = self.flag("config-file").map(PathBuf::from) else {
            return;
        };
        let Ok(text) = read_bounded(&self.host_path(&cfg)) else {
            return;
        };
        if let Ok(serde_yaml_ng::Value::Mapping(map)) = serde_yaml_ng::from_str(&text) {
            let mut flags = config::config_flags(&map);
            flags.insert("config-file".to_string(), cfg.display().to_string());
            self.flags = flags;
        }
    }

    pub(super) fn bare(
        path: &Path,
        text: &str,
        kind: Kind,
        flags: BTreeMap<String, String>,
    ) -> Manifest {
        Manifest {
            path: path.to_path_buf(),
            kind,
            flags,
            image: None,
            mounts: Vec::new(),
            text: text.to_string(),
        }
    }

    /// The file as it was read.
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn flag(&self, name: &str) -> Option<&str> {
        self.flags.get(name).map(String::as_str)
    }

    /// A container path as seen from the host. Paths outside every hostPath mount are returned
    /// unchanged (kubeadm mounts the pki directory at the same path).
    pub fn host_path(&self, container_path: &Path) -> PathBuf {
        for (mount, host, _) in &self.mounts {
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
        self.client_endpoints().into_iter().next()
    }

    /// Every client URL: loopback ones of `--listen-client-urls` first, then the advertised
    /// ones, then the other listen URLs; no duplicates.
    pub fn client_endpoints(&self) -> Vec<String> {
        let listen = split_urls(self.flag("listen-client-urls"));
        let advertise = split_urls(self.flag("advertise-client-urls"));
        let mut out: Vec<String> = Vec::new();
        let ordered = listen
            .iter()
            .filter(|u| is_loopback_url(u))
            .chain(advertise.iter())
            .chain(listen.iter());
        for u in ordered {
            if !out.contains(u) {
                out.push(u.clone());
            }
        }
        out
    }

    /// The data directory inside the container (etcd's `--data-dir`, default `NAME.etcd`).
    pub fn data_dir(&self) -> PathBuf {
        self.flag("data-dir").map(PathBuf::from).unwrap_or_else(|| {
            PathBuf::from(format!("{}.etcd", self.flag("name").unwrap_or("default")))
        })
    }

    /// The host path and volume name that hold `--data-dir` (static pods); for config files and
    /// units the data dir is already a host path.
    pub fn host_data_dir(&self) -> Result<(PathBuf, Option<String>), ManifestError> {
        let dir = self.data_dir();
        if self.kind != Kind::StaticPod {
            return Ok((dir, None));
        }
        for (mount, host, name) in &self.mounts {
            if let Ok(rest) = dir.strip_prefix(mount) {
                let host = if rest.as_os_str().is_empty() {
                    host.clone()
                } else {
                    host.join(rest)
                };
                return Ok((host, Some(name.clone())));
            }
        }
        Err(ManifestError::DataDirNotMounted {
            path: self.path.clone(),
            data_dir: dir,
        })
    }

    /// The etcd version in the image tag (`registry.k8s.io/etcd:3.5.12-0` → `3.5.12`; a
    /// digest or a registry port is never taken for the tag).
    pub fn image_version(&self) -> Option<String> {
        self.image_release().map(|r| r.to_string())
    }

    /// The same, as a release.
    pub fn image_release(&self) -> Option<crate::release::Release> {
        crate::release::Release::from_image(self.image.as_deref()?)
    }

    /// "line N of FILE" for the first line that mentions `flag`, to say where a setting came
    /// from.
    pub fn line_of(&self, flag: &str) -> String {
        let needles = [
            format!("--{flag}"),
            format!("{flag}:"),
            format!("ETCD_{}", flag.to_ascii_uppercase().replace('-', "_")),
        ];
        match self
            .text
            .lines()
            .position(|l| needles.iter().any(|n| l.contains(n.as_str())))
        {
            Some(i) => format!("line {} of {}", i + 1, self.path.display()),
            None => self.path.display().to_string(),
        }
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
            healthcheck: healthcheck.is_some(),
            client_pair: healthcheck.or(server_pair),
        }
    }
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
    fn config_file_and_systemd_unit() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("etcd.conf.yml");
        std::fs::write(&cfg, "name: ext1\ndata-dir: /var/lib/etcd\nlisten-client-urls: https://10.0.0.5:2379,https://127.0.0.1:2379\ninitial-cluster-token: tok\nclient-transport-security:\n  cert-file: /etc/etcd/server.crt\n  key-file: /etc/etcd/server.key\n  trusted-ca-file: /etc/etcd/ca.crt\npeer-transport-security:\n  cert-file: /etc/etcd/peer.crt\n").unwrap();
        let m = Manifest::load(&cfg).unwrap();
        assert_eq!(m.kind, Kind::ConfigFile);
        assert_eq!(
            m.client_endpoint().as_deref(),
            Some("https://127.0.0.1:2379")
        );
        assert_eq!(m.flag("cert-file"), Some("/etc/etcd/server.crt"));
        assert_eq!(m.flag("peer-cert-file"), Some("/etc/etcd/peer.crt"));
        assert_eq!(m.host_data_dir().unwrap().0, PathBuf::from("/var/lib/etcd"));

        let unit = dir.path().join("etcd.service");
        std::fs::write(&unit, format!("[Unit]\nDescription=etcd\n[Service]\nEnvironment=\"ETCD_DATA_DIR=/srv/etcd\" ETCD_NAME=u1\nExecStart=/usr/local/bin/etcd \\\n  --listen-client-urls=https://127.0.0.1:2379 \\\n  --cert-file /etc/etcd/s.crt --key-file=/etc/etcd/s.key \\\n  --trusted-ca-file='/etc/etcd/ca file.crt' --config-file {}\n", cfg.display())).unwrap();
        let m = Manifest::load(&unit).unwrap();
        assert_eq!(m.kind, Kind::SystemdUnit);
        // etcd reads the config file alone: the unit's flags and ETCD_* are ignored.
        assert_eq!(m.flag("name"), Some("ext1"));
        assert_eq!(m.flag("data-dir"), Some("/var/lib/etcd"));
        assert_eq!(m.flag("cert-file"), Some("/etc/etcd/server.crt"));
        assert_eq!(m.flag("trusted-ca-file"), Some("/etc/etcd/ca.crt"));
        assert_eq!(m.flag("initial-cluster-token"), Some("tok"));
        // Without the file (or unreadable), the command line's.
        std::fs::remove_file(&cfg).unwrap();
        let m = Manifest::load(&unit).unwrap();
        assert_eq!(m.flag("name"), Some("u1"));
        assert_eq!(m.flag("cert-file"), Some("/etc/etcd/s.crt"));
        assert_eq!(m.flag("trusted-ca-file"), Some("/etc/etcd/ca file.crt"));
        assert!(
            m.line_of("cert-file").starts_with("line 7 of"),
            "{}",
            m.line_of("cert-file")
        );
    }

    #[test]
    fn hostile_sizes_and_nesting_are_refused_before_parsing() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("deep.yaml");
        std::fs::write(
            &deep,
            format!("a: {}{}", "[".repeat(100_000), "]".repeat(100_000)),
        )
        .unwrap();
        let start = std::time::Instant::now();
        let e = Manifest::load(&deep).unwrap_err();
        assert!(matches!(e, ManifestError::TooDeep { .. }), "{e}");
        assert!(start.elapsed() < std::time::Duration::from_secs(2));
        let big = dir.path().join("big.yaml");
        std::fs::write(&big, "- --x=1\n".repeat(300_000)).unwrap();
        let e = Manifest::load(&big).unwrap_err();
        assert!(matches!(e, ManifestError::TooLarge { .. }), "{e}");
        assert_eq!(flow_depth("a: {b: [1, '{[{'], c: \"]\"} # {{{"), 2);
    }

    #[test]
    fn loopback_detection() {
        assert!(is_loopback_url("https://127.0.0.1:2379"));
        assert!(is_loopback_url("http://localhost:2379"));
        assert!(is_loopback_url("https://[::1]:2379"));
        assert!(!is_loopback_url("https://10.1.1.1:2379"));
    }
}
