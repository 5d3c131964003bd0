//! The etcd static-pod manifest (kubeadm's `/etc/kubernetes/manifests/etcd.yaml`): which flags
//! the etcd container runs with, and how container paths map to host paths through
//! `volumeMounts` → `hostPath` volumes.
//!
//! Owns: parsing the pod YAML and etcd's command line (`--flag=value` and `--flag value`, in
//! `command` and/or `args`); for etcd outside Kubernetes, an etcd config file (`--config-file`
//! YAML, `client-transport-security` included) or a systemd unit (`ExecStart`, `Environment`),
//! detected from the content. Does not: edit the manifest.
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
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        if text
            .lines()
            .any(|l| l.trim_start().starts_with("ExecStart="))
            || text.contains("[Service]")
        {
            return Ok(Manifest::systemd(path, &text));
        }
        Manifest::parse(path, &text)
    }

    fn bare(path: &Path, text: &str, kind: Kind, flags: BTreeMap<String, String>) -> Manifest {
        Manifest {
            path: path.to_path_buf(),
            kind,
            flags,
            image: None,
            mounts: Vec::new(),
            text: text.to_string(),
        }
    }

    /// A systemd unit: `Environment=ETCD_*` settings, then the flags of `ExecStart` (flags win,
    /// as in etcd), and a `--config-file` it names.
    fn systemd(path: &Path, text: &str) -> Manifest {
        // Join continuation lines.
        let joined = text.replace("\\\n", " ");
        let mut flags = BTreeMap::new();
        let mut exec = Vec::new();
        for line in joined.lines().map(str::trim) {
            if let Some(env) = line.strip_prefix("Environment=") {
                for word in shell_words(env) {
                    if let Some((k, v)) = word.split_once('=') {
                        if let Some(name) = k.strip_prefix("ETCD_") {
                            flags
                                .insert(name.to_ascii_lowercase().replace('_', "-"), v.to_string());
                        }
                    }
                }
            } else if let Some(cmd) = line.strip_prefix("ExecStart=") {
                exec = shell_words(cmd.trim_start_matches(['-', '@', '+', '!']));
            }
        }
        flags.extend(parse_flags(&exec));
        let mut m = Manifest::bare(path, text, Kind::SystemdUnit, flags);
        if let Some(cfg) = m.flag("config-file").map(PathBuf::from) {
            if let Ok(cfg_text) = std::fs::read_to_string(&cfg) {
                if let Ok(Value::Mapping(map)) = serde_yaml_ng::from_str::<Value>(&cfg_text) {
                    for (k, v) in config_flags(&map) {
                        m.flags.entry(k).or_insert(v);
                    }
                }
            }
        }
        m
    }

    pub fn parse(path: &Path, text: &str) -> Result<Manifest, ManifestError> {
        let doc: Value = serde_yaml_ng::from_str(text).map_err(|source| ManifestError::Yaml {
            path: path.to_path_buf(),
            source,
        })?;
        let no_etcd = || ManifestError::NoEtcdContainer {
            path: path.to_path_buf(),
        };
        // An etcd config file: a mapping of etcd's own settings, no pod spec.
        if let Value::Mapping(map) = &doc {
            if doc.get("spec").is_none()
                && [
                    "data-dir",
                    "name",
                    "listen-client-urls",
                    "client-transport-security",
                ]
                .iter()
                .any(|k| map.contains_key(*k))
            {
                return Ok(Manifest::bare(
                    path,
                    text,
                    Kind::ConfigFile,
                    config_flags(map),
                ));
            }
        }
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
                    mounts.push((PathBuf::from(mount), host.clone(), name.to_string()));
                }
            }
        }
        // Longest mount path first, so nested mounts win.
        mounts.sort_by_key(|(m, ..)| std::cmp::Reverse(m.components().count()));

        Ok(Manifest {
            path: path.to_path_buf(),
            kind: Kind::StaticPod,
            flags,
            image,
            mounts,
            text: text.to_string(),
        })
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
    pub fn host_data_dir(&self) -> Result<(PathBuf, Option<String>), String> {
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
        Err(format!(
            "no hostPath volume is mounted at the data dir {} (volumeMounts of the etcd container)",
            dir.display()
        ))
    }

    /// The etcd version in the image tag (`registry.k8s.io/etcd:3.5.12-0` → `3.5.12`).
    pub fn image_version(&self) -> Option<String> {
        let tag = self.image.as_deref()?.rsplit_once(':')?.1;
        let v = tag.trim_start_matches('v').split(['-', '@']).next()?;
        v.split('.')
            .all(|p| p.parse::<u64>().is_ok())
            .then(|| v.to_string())
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

/// etcd flags from a config file: top-level keys as they are; `client-transport-security` and
/// `peer-transport-security` mapped to the flag names (`cert-file`, `peer-cert-file`, ...).
fn config_flags(map: &serde_yaml_ng::Mapping) -> BTreeMap<String, String> {
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

/// Split a command line as a shell would (quotes, backslashes), enough for unit files.
fn shell_words(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut has = false;
    let mut chars = s.chars();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                has = true;
            }
            (None, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                    has = true;
                }
            }
            (None, c) if c.is_whitespace() => {
                if has || !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                    has = false;
                }
            }
            (None, c) => cur.push(c),
        }
    }
    if has || !cur.is_empty() {
        words.push(cur);
    }
    words
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

/// Point the hostPath of volume `volume` at `new` instead of `old`, changing nothing else: the
/// same bytes before and after the path value. Block and flow style are both handled; the
/// value must appear exactly once as a `path:` inside that volume's entry.
pub fn retarget_volume(text: &str, volume: &str, old: &str, new: &str) -> Result<String, String> {
    let (start, end) = volume_entry(text, volume)
        .ok_or_else(|| format!("no entry for volume {volume:?} under volumes:"))?;
    let entry = &text[start..end];
    let mut hits = Vec::new();
    let bytes = entry.as_bytes();
    let mut from = 0;
    while let Some(i) = entry[from..].find("path:") {
        let at = from + i;
        from = at + 5;
        // `path:` but not `mountPath:` or `hostPath:`.
        if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_') {
            continue;
        }
        let mut v = at + 5;
        while v < bytes.len() && bytes[v] == b' ' {
            v += 1;
        }
        let quote = bytes.get(v).copied().filter(|q| *q == b'"' || *q == b'\'');
        let value_start = v + usize::from(quote.is_some());
        if entry[value_start..].starts_with(old) {
            let after = bytes.get(value_start + old.len()).copied();
            let ends = match quote {
                Some(q) => after == Some(q),
                None => matches!(
                    after,
                    None | Some(b'\n' | b'\r' | b' ' | b',' | b'}' | b'#')
                ),
            };
            if ends {
                hits.push(start + value_start);
            }
        }
    }
    match hits.as_slice() {
        [one] => Ok(format!(
            "{}{new}{}",
            &text[..*one],
            &text[*one + old.len()..]
        )),
        [] => Err(format!("volume {volume:?} has no hostPath path {old:?}")),
        _ => Err(format!("volume {volume:?} names {old:?} more than once")),
    }
}

/// Byte range of the `volumes:` list item whose `name:` is `volume`.
fn volume_entry(text: &str, volume: &str) -> Option<(usize, usize)> {
    // The line holding the `volumes:` key; the list starts on the next line.
    let mut key_end = None;
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        at += line.len();
        if line.trim_start().starts_with("volumes:") {
            key_end = Some(at);
            break;
        }
    }
    let start = key_end?;
    // Items start with "- " at the list's indent; the section ends at a line indented less.
    let mut offsets = Vec::new();
    let mut pos = start;
    let mut item_indent = None;
    for line in text[start..].split_inclusive('\n') {
        let indent = line.len() - line.trim_start().len();
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            pos += line.len();
            continue;
        }
        match item_indent {
            None if trimmed.starts_with("- ") => item_indent = Some(indent),
            Some(ii) if indent < ii || (indent == ii && !trimmed.starts_with("- ")) => break,
            None => break,
            _ => {}
        }
        if Some(indent) == item_indent && trimmed.starts_with("- ") {
            offsets.push(pos);
        }
        pos += line.len();
    }
    offsets.push(pos);
    let named = |item: &str| {
        item.split(['\n', ',', '{', '}'])
            .map(|p| p.trim().trim_start_matches("- ").trim())
            .any(|p| {
                p.strip_prefix("name:")
                    .map(|v| v.trim().trim_matches(['"', '\'']) == volume)
                    .unwrap_or(false)
            })
    };
    offsets
        .windows(2)
        .map(|w| (w[0], w[1]))
        .find(|(a, b)| named(&text[*a..*b]))
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
    fn retarget_changes_only_the_host_path() {
        let new = retarget_volume(
            KUBEADM,
            "etcd-data",
            "/var/lib/etcd-restored",
            "/var/lib/etcd-new",
        )
        .unwrap();
        let changed: Vec<(&str, &str)> = KUBEADM
            .lines()
            .zip(new.lines())
            .filter(|(a, b)| a != b)
            .collect();
        assert_eq!(
            changed,
            [(
                "      path: /var/lib/etcd-restored",
                "      path: /var/lib/etcd-new"
            )]
        );
        let m = Manifest::parse(Path::new("x"), &new).unwrap();
        assert_eq!(
            m.host_data_dir().unwrap().0,
            PathBuf::from("/var/lib/etcd-new")
        );
        // Flow style, quoted, name after path.
        let flow = "spec:\n  volumes:\n  - {hostPath: {path: \"/data/etcd\", type: Directory}, name: etcd-data}\n  - {name: other, hostPath: {path: /data/etcd}}\n";
        let out = retarget_volume(flow, "etcd-data", "/data/etcd", "/data/new").unwrap();
        assert!(
            out.contains("{path: \"/data/new\", type")
                && out.contains("name: other, hostPath: {path: /data/etcd}}"),
            "{out}"
        );
        assert!(retarget_volume(KUBEADM, "missing", "/x", "/y").is_err());
        assert!(retarget_volume(KUBEADM, "etcd-data", "/not/there", "/y").is_err());
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
        assert_eq!(m.flag("name"), Some("u1"));
        assert_eq!(m.flag("data-dir"), Some("/srv/etcd"));
        assert_eq!(m.flag("cert-file"), Some("/etc/etcd/s.crt"));
        assert_eq!(m.flag("trusted-ca-file"), Some("/etc/etcd/ca file.crt"));
        assert_eq!(
            m.flag("initial-cluster-token"),
            Some("tok"),
            "from the config file it names"
        );
        assert!(
            m.line_of("cert-file").starts_with("line 7 of"),
            "{}",
            m.line_of("cert-file")
        );
    }

    #[test]
    fn loopback_detection() {
        assert!(is_loopback_url("https://127.0.0.1:2379"));
        assert!(is_loopback_url("http://localhost:2379"));
        assert!(is_loopback_url("https://[::1]:2379"));
        assert!(!is_loopback_url("https://10.1.1.1:2379"));
    }
}
