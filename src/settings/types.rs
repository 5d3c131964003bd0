//! The typed settings each command receives; clap's types never reach a command.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::cli::ScheduleKind;
use crate::manifest::Manifest;
use crate::remote::retention::Policy;
use crate::remote::s3::S3Settings;
use crate::remote::source::SourceSettings;
use crate::remote::Location;

/// Where a setting's value came from, for `-v`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Flag(&'static str),
    Env(&'static str),
    /// Where in the manifest, e.g. `line 12 of /etc/kubernetes/manifests/etcd.yaml`.
    Manifest(String),
    Default,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Flag(name) => write!(f, "flag --{name}"),
            Source::Env(name) => write!(f, "environment {name}"),
            Source::Manifest(at) => write!(f, "manifest, {at}"),
            Source::Default => f.write_str("default"),
        }
    }
}

/// A value together with where it came from.
#[derive(Debug, Clone)]
pub struct Sourced<T> {
    pub value: T,
    pub source: Source,
}

/// Everything an online command needs to reach etcd.
#[derive(Debug, Clone)]
pub struct ConnSettings {
    pub endpoints: Sourced<Vec<String>>,
    pub cacert: Option<Sourced<PathBuf>>,
    pub cert: Option<Sourced<PathBuf>>,
    pub key: Option<Sourced<PathBuf>>,
    pub insecure_skip_tls_verify: Sourced<bool>,
    pub user: Option<Sourced<(String, String)>>,
    pub dial_timeout: Sourced<Duration>,
    pub command_timeout: Sourced<Duration>,
}

impl ConnSettings {
    /// One line per setting, for `-v`.
    pub fn describe(&self) -> Vec<String> {
        fn path(p: &Option<Sourced<PathBuf>>) -> String {
            match p {
                Some(s) => format!("{} (from {})", s.value.display(), s.source),
                None => "none".to_string(),
            }
        }
        let user = match &self.user {
            Some(s) => format!("{} (from {})", s.value.0, s.source),
            None => "none".to_string(),
        };
        vec![
            format!(
                "endpoints: {} (from {})",
                self.endpoints.value.join(","),
                self.endpoints.source
            ),
            format!("cacert: {}", path(&self.cacert)),
            format!("cert: {}", path(&self.cert)),
            format!("key: {}", path(&self.key)),
            format!(
                "insecure-skip-tls-verify: {} (from {})",
                self.insecure_skip_tls_verify.value, self.insecure_skip_tls_verify.source
            ),
            format!("user: {user}"),
            format!(
                "dial-timeout: {:?} (from {})",
                self.dial_timeout.value, self.dial_timeout.source
            ),
            format!(
                "command-timeout: {:?} (from {})",
                self.command_timeout.value, self.command_timeout.source
            ),
        ]
    }

    /// The etcdctl flags that reach etcd the way these settings do (TLS files, skip-verify,
    /// the user name — never the password: etcdctl asks for it), shell-quoted, for command
    /// lines printed to the operator.
    pub fn etcdctl_flags(&self) -> String {
        let mut out = String::new();
        for (flag, v) in [
            ("cacert", &self.cacert),
            ("cert", &self.cert),
            ("key", &self.key),
        ] {
            if let Some(v) = v {
                let path = v.value.display().to_string();
                out.push_str(&format!(" --{flag}={}", crate::text::shell_quote(&path)));
            }
        }
        if self.insecure_skip_tls_verify.value {
            out.push_str(" --insecure-skip-tls-verify");
        }
        if let Some(u) = &self.user {
            out.push_str(&format!(" --user={}", crate::text::shell_quote(&u.value.0)));
        }
        out
    }

    /// Whether a scheme-less endpoint should be dialled with TLS: as etcdctl, when any TLS
    /// material or the skip-verify switch is configured.
    pub fn wants_tls(&self) -> bool {
        self.cacert.is_some()
            || self.cert.is_some()
            || self.key.is_some()
            || self.insecure_skip_tls_verify.value
    }
}

/// Where `snapshot save` writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaveDest {
    Stdout,
    File(PathBuf),
    /// A generated name (and a sidecar) in this directory.
    Dir(PathBuf),
    /// A generated name (and a sidecar) under this prefix (empty or ending in `/`).
    S3 {
        bucket: String,
        prefix: String,
    },
}

/// A directory or S3 prefix of saved snapshots (`ls`, `prune`, `save --keep`).
#[derive(Debug, Clone)]
pub struct StoreSettings {
    pub location: Location,
    pub s3: S3Settings,
}

/// `snapshot verify`.
#[derive(Debug, Clone)]
pub struct VerifySettings {
    pub source: SourceSettings,
    /// `--boot`, with `--etcd PATH` when given.
    pub boot: Option<Option<PathBuf>>,
    /// The release this node's manifest image names (`--boot` prefers a binary of its minor).
    pub node_release: Option<crate::release::Release>,
    /// `--chain`: SOURCE is a DIR/ or s3:// prefix whose revision-log chains are checked.
    pub chain: bool,
}

/// `snapshot ls SOURCE`: the keys of one snapshot.
#[derive(Debug, Clone)]
pub struct KeysSettings {
    pub source: SourceSettings,
    pub prefix: Vec<u8>,
    pub rev: Option<i64>,
    pub keys_only: bool,
    pub values: bool,
    pub summary: bool,
}

/// `snapshot get`.
#[derive(Debug, Clone)]
pub struct GetSettings {
    pub source: SourceSettings,
    pub key: Vec<u8>,
    pub rev: Option<i64>,
    pub print_value_only: bool,
    pub decode: bool,
}

/// `snapshot diff`.
#[derive(Debug, Clone)]
pub struct DiffSettings {
    pub old: SourceSettings,
    pub new: SourceSettings,
    pub prefix: Vec<u8>,
    pub summary: bool,
}

/// `snapshot prune`.
#[derive(Debug, Clone)]
pub struct PruneSettings {
    pub store: StoreSettings,
    pub policy: Policy,
    pub dry_run: bool,
}

/// `schedule print`.
#[derive(Debug, Clone)]
pub struct ScheduleSettings {
    /// A password among the global flags or the save's arguments: refused (it would be
    /// written in clear).
    pub password_given: bool,
    pub kind: ScheduleKind,
    /// `save` on a schedule, or `follow` all the time.
    pub job: crate::cli::ScheduleJob,
    pub every: Option<Duration>,
    pub on_calendar: Option<String>,
    pub image: String,
    pub dir: Option<PathBuf>,
    /// Where the scheduled save writes (the save's arguments, parsed).
    pub dest: SaveDest,
    /// `--s3-endpoint-ca` among the save's arguments: a CronJob mounts it from a ConfigMap.
    pub s3_endpoint_ca: Option<PathBuf>,
    /// `snapshot save`'s arguments, as given (without a leading `snapshot save`).
    pub save_args: Vec<String>,
}

/// `snapshot save`.
#[derive(Debug, Clone)]
pub struct SaveSettings {
    pub dest: SaveDest,
    /// zstd level, when compressing.
    pub compress: Option<i32>,
    /// age recipients as given (checked while resolving).
    pub encrypt_to: Vec<String>,
    /// `--keep`: prune the DIR/ or prefix after a successful save.
    pub keep: Option<Policy>,
    pub s3: S3Settings,
    /// Choose among every member's client URLs from the member list.
    pub cluster: bool,
    /// Abort when no bytes arrive for this long.
    pub stall_timeout: Duration,
    /// Abort when the whole save takes longer than this.
    pub timeout: Option<Duration>,
    /// `--metrics-file`: the Prometheus textfile written after each success.
    pub metrics_file: Option<PathBuf>,
}

/// `snapshot ls DIR/|s3://…/`.
#[derive(Debug, Clone)]
pub struct ListSettings {
    pub store: StoreSettings,
    /// `--max-age`: exit 1 when the newest verified point is older.
    pub max_age: Option<Duration>,
}

/// `snapshot follow`.
#[derive(Debug, Clone)]
pub struct FollowSettings {
    /// How bases are saved (DEST is a DIR/ or an s3:// prefix; no `--keep`).
    pub save: SaveSettings,
    pub flush: Duration,
    pub base_every: Option<Duration>,
}

/// `snapshot put-back`.
#[derive(Debug, Clone)]
pub struct PutBackSettings {
    pub source: SourceSettings,
    pub prefix: Vec<u8>,
    /// `--namespace`: only that namespace's Kubernetes objects.
    pub namespace: Option<String>,
    pub to_revision: Option<i64>,
    pub to_time_ns: Option<i64>,
    pub cluster_id: Option<String>,
    /// `--node`: whose follower's chains.
    pub node: Option<String>,
    pub dry_run: bool,
}

/// `snapshot log`.
#[derive(Debug, Clone)]
pub struct LogSettings {
    pub source: SourceSettings,
    /// The keys: one key, or a prefix (empty: every key).
    pub key: Vec<u8>,
    pub prefix: bool,
    pub since_ns: Option<i64>,
    pub until_ns: Option<i64>,
}

/// `snapshot status`.
#[derive(Debug, Clone)]
pub struct SnapshotStatusSettings {
    pub source: SourceSettings,
    /// `--rules`.
    pub rules: crate::cli::StatusRules,
    /// The release this node's manifest image names (`--rules auto` counts as its etcdutl).
    pub node_release: Option<crate::release::Release>,
    /// Count both ways (JSON shows both totals).
    pub both_counts: bool,
    /// bbolt's integrity check (key order, freelist, both metas).
    pub integrity: bool,
    /// Verify the sha256 trailer when there is one.
    pub hash: bool,
}

/// `snapshot restore`: flags over the manifest (`--from-manifest`) over etcdutl's defaults.
#[derive(Debug, Clone)]
pub struct RestoreSettings {
    /// SOURCE as given, for messages and the commands printed for other members.
    pub file: PathBuf,
    pub source: SourceSettings,
    /// `--data-dir`; with a manifest and no flag, a new sibling of its data dir.
    pub data_dir: PathBuf,
    pub wal_dir: Option<PathBuf>,
    pub name: String,
    /// `--initial-cluster` given on the command line.
    pub initial_cluster: Option<String>,
    /// The manifest's `--initial-cluster` (with `--from-manifest`).
    pub manifest_cluster: Option<String>,
    pub initial_cluster_token: String,
    pub initial_advertise_peer_urls: String,
    pub skip_hash_check: bool,
    pub bump_revision: Option<u64>,
    pub mark_compacted: bool,
    /// `--etcd-version`: the release that will run the restored data.
    pub etcd_version: Option<crate::release::Release>,
    /// `--from-manifest` (or `--update-manifest`, which implies it): the manifest read.
    pub manifest: Option<Manifest>,
    pub update_manifest: bool,
    pub dry_run: bool,
    /// Without `--from-manifest`: the manifest this node has, for a hint.
    pub unused_manifest: Option<PathBuf>,
    /// SOURCE is a DIR/ or s3:// prefix with a revision log: the point to restore to
    /// (`None`: the newest).
    pub to_revision: Option<i64>,
    /// `--to-time`, Unix nanoseconds.
    pub to_time_ns: Option<i64>,
    /// `--cluster-id`: whose revision log, when the store holds several.
    pub cluster_id: Option<String>,
    /// `--node`: whose follower's chains.
    pub node: Option<String>,
}

impl RestoreSettings {
    pub fn from_manifest(&self) -> bool {
        self.manifest.is_some()
    }
}

/// `cert-expiry`.
#[derive(Debug, Clone)]
pub struct CertExpirySettings {
    /// What to scan: the paths given, else kubeadm's tree and kubeconfigs.
    pub paths: Vec<PathBuf>,
    /// The manifest, whose certificate files are added to the scan.
    pub manifest: Option<Manifest>,
    /// Live endpoints whose served certificates are added, when endpoints are configured.
    pub conn: Option<ConnSettings>,
    /// Unix seconds: the clock, or `ETCDOPS_NOW` (RFC 3339).
    pub now: i64,
    pub warn_days: i64,
    /// `--wide`: full paths in the tables.
    pub wide: bool,
}

/// `cert-renew`.
#[derive(Debug, Clone)]
pub struct CertRenewSettings {
    /// The certificates to renew.
    pub targets: Vec<PathBuf>,
    /// Where to look for their CA (the targets' directories, the manifest's CA files).
    pub ca_search: Vec<PathBuf>,
    /// `--ca` and `--ca-key`.
    pub ca: Option<(PathBuf, PathBuf)>,
    pub days: i64,
    pub new_key: bool,
    pub dry_run: bool,
    pub backup_dir: PathBuf,
    /// Live endpoints to check the served certificate on, when configured.
    pub conn: Option<ConnSettings>,
    pub now: i64,
}

/// `manifest-read`.
#[derive(Debug, Clone)]
pub struct ManifestReadSettings {
    pub path: PathBuf,
    pub view: ManifestView,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestView {
    Report,
    /// `--env`: `export ETCDCTL_*` lines.
    Env,
    /// `--commands`: etcdctl/etcdutl command lines.
    Commands,
}
