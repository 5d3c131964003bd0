//! `etcdops manifest-read`: what the node's etcd configuration says — a kubeadm static-pod
//! manifest, an etcd config file or a systemd unit (`manifest::Manifest` detects which) —
//! with `--env` (exports for etcdctl) and `--commands` (the etcdctl/etcdutl command lines for
//! a snapshot save and restore on this node, every flag filled in).

use std::path::Path;

use anyhow::Result;
use serde::Serialize;

use crate::etcd::stored_members::DEFAULT_TOKEN;
use crate::manifest::{Kind, Manifest};
use crate::output::Report;
use crate::release::Release;
use crate::text::shell_quote;

#[derive(Debug, Clone, Serialize)]
pub struct ManifestReport {
    pub manifest: String,
    pub kind: Kind,
    pub name: String,
    pub data_dir: String,
    pub host_data_dir: String,
    /// The hostPath volume that holds the data dir (static pods).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_volume: Option<String>,
    pub endpoints: Vec<String>,
    pub cacert: Option<String>,
    pub cert: Option<String>,
    pub key: Option<String>,
    pub peer_cacert: Option<String>,
    pub peer_cert: Option<String>,
    pub peer_key: Option<String>,
    pub initial_cluster: Option<String>,
    pub initial_advertise_peer_urls: Option<String>,
    pub initial_cluster_token: String,
    pub initial_cluster_state: Option<String>,
    pub quota_backend_bytes: Option<String>,
    pub image: Option<String>,
    pub version: Option<String>,
    /// `--feature-gates`, parsed.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub feature_gates: std::collections::BTreeMap<String, bool>,
    /// Flags the image's release refuses or will refuse (manifest/release.rs).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

pub fn read(path: &Path) -> Result<ManifestReport> {
    let m = Manifest::load(path)?;
    let (host_data_dir, data_volume) = m.host_data_dir()?;
    let tls = m.client_tls();
    let host = |flag: &str| {
        m.flag(flag)
            .map(|p| m.host_path(Path::new(p)).display().to_string())
    };
    let show = |p: Option<std::path::PathBuf>| p.map(|p| p.display().to_string());
    let (cert, key) = match tls.client_pair {
        Some((c, k)) => (Some(c.display().to_string()), Some(k.display().to_string())),
        None => (None, None),
    };
    Ok(ManifestReport {
        manifest: path.display().to_string(),
        kind: m.kind,
        name: m.flag("name").unwrap_or("default").to_string(),
        data_dir: m.data_dir().display().to_string(),
        host_data_dir: host_data_dir.display().to_string(),
        data_volume,
        endpoints: m.client_endpoints(),
        cacert: show(tls.cacert),
        cert,
        key,
        peer_cacert: host("peer-trusted-ca-file"),
        peer_cert: host("peer-cert-file"),
        peer_key: host("peer-key-file"),
        initial_cluster: m.flag("initial-cluster").map(str::to_string),
        initial_advertise_peer_urls: m.flag("initial-advertise-peer-urls").map(str::to_string),
        initial_cluster_token: m
            .flag("initial-cluster-token")
            .unwrap_or(DEFAULT_TOKEN)
            .to_string(),
        initial_cluster_state: m.flag("initial-cluster-state").map(str::to_string),
        quota_backend_bytes: m.flag("quota-backend-bytes").map(str::to_string),
        version: m.image_version(),
        feature_gates: crate::manifest::release::feature_gates(&m),
        warnings: crate::manifest::release::warnings(&m),
        image: m.image,
    })
}

impl ManifestReport {
    /// `export` lines for `eval "$(etcdops manifest-read --env)"`.
    pub fn env(&self) -> String {
        let mut out = String::from("export ETCDCTL_API=3\n");
        let mut line = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                out.push_str(&format!("export {k}={}\n", shell_quote(v)));
            }
        };
        line("ETCDCTL_ENDPOINTS", &self.endpoints.first().cloned());
        line("ETCDCTL_CACERT", &self.cacert);
        line("ETCDCTL_CERT", &self.cert);
        line("ETCDCTL_KEY", &self.key);
        out
    }

    /// The etcdctl and etcdutl command lines for this node, every flag filled in.
    pub fn commands(&self) -> String {
        let backup = "/var/lib/etcd-backup.db";
        let restore_dir = format!("{}-restore", self.host_data_dir.trim_end_matches('/'));
        let mut tls = String::new();
        for (flag, v) in [
            ("cacert", &self.cacert),
            ("cert", &self.cert),
            ("key", &self.key),
        ] {
            if let Some(v) = v {
                tls.push_str(&format!(" --{flag}={}", shell_quote(v)));
            }
        }
        let endpoint = self
            .endpoints
            .first()
            .cloned()
            .unwrap_or_else(|| "https://127.0.0.1:2379".into());
        let mut restore = format!(
            "etcdutl snapshot restore {backup} --data-dir={} --name={}",
            shell_quote(&restore_dir),
            shell_quote(&self.name)
        );
        if let Some(ic) = &self.initial_cluster {
            restore.push_str(&format!(" --initial-cluster={}", shell_quote(ic)));
        }
        if let Some(p) = &self.initial_advertise_peer_urls {
            restore.push_str(&format!(
                " --initial-advertise-peer-urls={}",
                shell_quote(p)
            ));
        }
        restore.push_str(&format!(
            " --initial-cluster-token={}",
            shell_quote(&self.initial_cluster_token)
        ));
        // A kubeadm node holds Kubernetes data: watch caches and informers must see the
        // revision move forward. etcdutl bumps since 3.5.10.
        let bumps = self
            .version
            .as_deref()
            .and_then(Release::parse)
            .is_some_and(|r| r >= Release::new(3, 5, 10));
        if self.kind == Kind::StaticPod && bumps {
            restore.push_str(" --bump-revision=1000000000 --mark-compacted");
        }
        let mut out = format!(
            "# snapshot save (etcdctl)\nETCDCTL_API=3 etcdctl --endpoints={}{tls} snapshot save {backup}\n\
             # check it\netcdutl snapshot status {backup} -w table\n\
             # snapshot restore (etcdutl) into a new data dir\n{restore}\n",
            shell_quote(&endpoint)
        );
        match (&self.kind, &self.data_volume) {
            (Kind::StaticPod, Some(vol)) => out.push_str(&format!(
                "# then point the hostPath of volume {vol} in {} at {restore_dir}\n# (etcdops does it: etcdops snapshot restore {backup} --from-manifest {} --update-manifest)\n",
                self.manifest, self.manifest
            )),
            _ => out.push_str(&format!(
                "# then start etcd with --data-dir={restore_dir} (edit {})\n",
                self.manifest
            )),
        }
        out
    }
}

impl Report for ManifestReport {
    fn notes(&self) -> Vec<String> {
        self.warnings
            .iter()
            .map(|w| format!("warning: {}", crate::text::escape(w)))
            .collect()
    }

    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        let opt = |v: &Option<String>| v.clone().unwrap_or_default();
        let rows = [
            ("manifest", self.manifest.clone()),
            ("kind", self.kind.name().to_string()),
            ("name", self.name.clone()),
            ("data dir", self.data_dir.clone()),
            ("host data dir", self.host_data_dir.clone()),
            ("endpoints", self.endpoints.join(",")),
            ("cacert", opt(&self.cacert)),
            ("cert", opt(&self.cert)),
            ("key", opt(&self.key)),
            ("peer cacert", opt(&self.peer_cacert)),
            ("peer cert", opt(&self.peer_cert)),
            ("peer key", opt(&self.peer_key)),
            ("initial cluster", opt(&self.initial_cluster)),
            (
                "initial advertise peer urls",
                opt(&self.initial_advertise_peer_urls),
            ),
            ("initial cluster token", self.initial_cluster_token.clone()),
            ("initial cluster state", opt(&self.initial_cluster_state)),
            ("quota backend bytes", opt(&self.quota_backend_bytes)),
            ("image", opt(&self.image)),
            ("version", opt(&self.version)),
            (
                "feature gates",
                self.feature_gates
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
        ];
        (
            vec!["field", "value"],
            rows.into_iter()
                .map(|(k, v)| vec![k.to_string(), v])
                .collect(),
        )
    }

    fn json(&self) -> serde_json::Value {
        crate::output::serialized(self)
    }

    fn simple(&self) -> Vec<String> {
        let (_, rows) = self.table();
        rows.into_iter()
            .map(|r| format!("{}: {}", r[0], r[1]))
            .collect()
    }
}
