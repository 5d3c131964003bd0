//! Second stage of argument handling: the command line (clap's `Cli`), the environment
//! (`ETCDCTL_*`, `ETCDOPS_*`) and the etcd static-pod manifest are merged here, once, into the
//! typed settings of the one job this invocation does ([`Job`]). Precedence per setting:
//! flag > environment > manifest > built-in default. A flag and an environment variable that
//! disagree are not an error (unlike etcdctl): the flag wins, and `-v` says so.
//!
//! Commands receive these types and never see clap's. The manifest is read at most once, and
//! only when some setting still needs it. The environment is passed in, so that tests never
//! depend on the process environment.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::cli::{
    AlarmCommand, CertExpiryArgs, CertRenewArgs, CheckCommand, Cli, ClusterArgs, Command,
    EndpointCommand, GlobalArgs, ManifestReadArgs, MemberCommand, PruneArgs, ReadTimeout,
    RestoreArgs, S3BucketLookup, ScheduleCommand, ScheduleKind, SnapshotCommand, WriteOut,
};
use crate::etcd::members::DEFAULT_TOKEN;
use crate::manifest::Manifest;
use crate::output::OutputFormat;
use crate::remote::credentials::{profile_config, AwsEnv};
use crate::remote::retention::Policy;
use crate::remote::s3::{BucketLookup, S3Settings};
use crate::remote::source::SourceSettings;
use crate::remote::Location;
use crate::units::{parse_bool, parse_go_duration, parse_rfc3339};

/// The manifest kubeadm writes for a stacked etcd.
pub const DEFAULT_MANIFEST: &str = "/etc/kubernetes/manifests/etcd.yaml";
const DEFAULT_ENDPOINT: &str = "127.0.0.1:2379";
const DEFAULT_DIAL_TIMEOUT: Duration = Duration::from_secs(2);
const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

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
                out.push_str(&format!(" --{flag}={}", crate::output::shell_quote(&path)));
            }
        }
        if self.insecure_skip_tls_verify.value {
            out.push_str(" --insecure-skip-tls-verify");
        }
        if let Some(u) = &self.user {
            out.push_str(&format!(
                " --user={}",
                crate::output::shell_quote(&u.value.0)
            ));
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

/// What this invocation does, with everything it needs resolved.
#[derive(Debug)]
pub struct Settings {
    pub output: OutputFormat,
    pub verbose: bool,
    pub job: Job,
}

/// One command's settings.
#[derive(Debug)]
pub enum Job {
    /// A command that talks to etcd, with the connection settings.
    Online {
        conn: Box<ConnSettings>,
        job: OnlineJob,
    },
    SnapshotStatus(SnapshotStatusSettings),
    SnapshotRestore(Box<RestoreSettings>),
    SnapshotVerify(VerifySettings),
    SnapshotKeys(KeysSettings),
    SnapshotGet(GetSettings),
    SnapshotDiff(DiffSettings),
    /// `snapshot ls DIR/|s3://…/`.
    SnapshotList(StoreSettings),
    SnapshotPrune(PruneSettings),
    SchedulePrint(ScheduleSettings),
    CertExpiry(Box<CertExpirySettings>),
    CertRenew(Box<CertRenewSettings>),
    ManifestRead(ManifestReadSettings),
    /// Handled by `lib.rs` itself: it needs clap's command definition.
    Completion(clap_complete::Shell),
}

/// The settings of a command that talks to etcd, besides the connection.
#[derive(Debug)]
pub enum OnlineJob {
    Health {
        cluster: bool,
        /// `--wait DURATION` and `--expect-revision N`.
        wait: Option<(Duration, Option<i64>)>,
    },
    Status {
        cluster: bool,
    },
    Members {
        hex: bool,
    },
    SnapshotSave(Box<SaveSettings>),
    AlarmList,
    AlarmDisarm,
    Compact {
        revision: Option<i64>,
        physical: bool,
    },
    Defrag {
        cluster: bool,
        force: bool,
    },
    RecoverSpace {
        dry_run: bool,
        force: bool,
    },
    CheckConsistency {
        cluster: bool,
        revision: Option<i64>,
    },
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
    pub every: Option<Duration>,
    pub on_calendar: Option<String>,
    pub image: String,
    pub dir: Option<PathBuf>,
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

impl Settings {
    /// Resolve the settings of the job `cli` asks for. `env` is the process environment (or a
    /// test's).
    pub fn resolve(cli: Cli, env: Vec<(String, String)>) -> Result<Settings> {
        let mut r = Resolver::new(cli.global, env, PathBuf::from(DEFAULT_MANIFEST));
        let output = r.output()?;
        let job = r.job(cli.command)?;
        Ok(Settings {
            output,
            verbose: r.global.verbose,
            job,
        })
    }
}

/// The manifest, found and read at most once.
struct ManifestSource {
    /// `--manifest`, `ETCDOPS_MANIFEST`, or the kubeadm default when it exists.
    path: Option<PathBuf>,
    loaded: Option<Manifest>,
}

impl ManifestSource {
    fn get(&mut self) -> Result<Option<&Manifest>> {
        if self.loaded.is_none() {
            if let Some(path) = &self.path {
                self.loaded = Some(Manifest::load(path)?);
            }
        }
        Ok(self.loaded.as_ref())
    }

    /// The manifest a command needs: the one found, else one at `path_or_default`.
    fn require(&mut self, path_or_default: PathBuf) -> Result<Manifest> {
        match self.get()? {
            Some(m) => Ok(m.clone()),
            None => Ok(Manifest::load(&path_or_default)?),
        }
    }
}

/// The inputs being merged: flags, environment, manifest.
struct Resolver {
    global: GlobalArgs,
    env: Vec<(String, String)>,
    manifest: ManifestSource,
}

impl Resolver {
    fn new(global: GlobalArgs, env: Vec<(String, String)>, default_manifest: PathBuf) -> Resolver {
        let mut r = Resolver {
            global,
            env,
            manifest: ManifestSource {
                path: None,
                loaded: None,
            },
        };
        r.manifest.path = r
            .global
            .manifest
            .clone()
            .or_else(|| r.env_var("ETCDOPS_MANIFEST").map(PathBuf::from))
            .or_else(|| default_manifest.exists().then_some(default_manifest));
        r
    }

    /// A non-empty environment variable (etcdctl ignores empty ones).
    fn env_var(&self, name: &str) -> Option<String> {
        self.env
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.clone())
    }

    /// The manifest path a command reads when it needs one: as found, else the kubeadm default
    /// even when it does not exist (so that the error names it).
    fn manifest_path_or_default(&self) -> PathBuf {
        self.manifest
            .path
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_MANIFEST))
    }

    fn output(&self) -> Result<OutputFormat> {
        Ok(
            match (self.global.write_out, self.env_var("ETCDCTL_WRITE_OUT")) {
                (Some(WriteOut::Table), _) => OutputFormat::Table,
                (Some(WriteOut::Json), _) => OutputFormat::Json,
                (Some(WriteOut::Simple), _) => OutputFormat::Simple,
                (None, Some(value)) => parse_output_format(&value)
                    .with_context(|| format!("environment ETCDCTL_WRITE_OUT={value:?}"))?,
                (None, None) => OutputFormat::Table,
            },
        )
    }

    fn job(&mut self, command: Command) -> Result<Job> {
        Ok(match command {
            Command::Snapshot(SnapshotCommand::Status {
                file,
                identity,
                skip_check,
                skip_hash_check,
                rules,
                read,
            }) => Job::SnapshotStatus(SnapshotStatusSettings {
                source: self.source(&file, identity, &read)?,
                rules,
                node_release: match rules {
                    crate::cli::StatusRules::Auto => self
                        .manifest
                        .get()
                        .ok()
                        .flatten()
                        .and_then(Manifest::image_release),
                    _ => None,
                },
                both_counts: self.output()? == OutputFormat::Json,
                integrity: !skip_check,
                hash: !skip_hash_check,
            }),
            Command::Snapshot(SnapshotCommand::Verify {
                source,
                identity,
                boot,
                etcd,
                read,
            }) => Job::SnapshotVerify(VerifySettings {
                source: self.source(&source, identity, &read)?,
                node_release: match boot {
                    // A manifest that cannot be read only means no preference.
                    true => self
                        .manifest
                        .get()
                        .ok()
                        .flatten()
                        .and_then(Manifest::image_release),
                    false => None,
                },
                boot: boot.then_some(etcd),
            }),
            Command::Snapshot(SnapshotCommand::Ls(a)) => {
                if Location::parse(&a.location)?.is_prefix() {
                    if a.prefix.is_some() || a.rev.is_some() || a.summary || a.keys_only || a.values
                    {
                        bail!("{}: --prefix, --rev, --keys-only, --values and --summary list the keys of one snapshot; this is a directory or prefix of snapshots", a.location);
                    }
                    Job::SnapshotList(self.store(&a.location, &a.read)?)
                } else {
                    Job::SnapshotKeys(KeysSettings {
                        source: self.source(&a.location, a.identity, &a.read)?,
                        prefix: a.prefix.unwrap_or_default().into_bytes(),
                        rev: a.rev,
                        keys_only: a.keys_only,
                        values: a.values,
                        summary: a.summary,
                    })
                }
            }
            Command::Snapshot(SnapshotCommand::Get(a)) => Job::SnapshotGet(GetSettings {
                source: self.source(&a.source, a.identity, &a.read)?,
                key: a.key.into_bytes(),
                rev: a.rev,
                print_value_only: a.print_value_only,
                decode: a.decode,
            }),
            Command::Snapshot(SnapshotCommand::Diff(a)) => Job::SnapshotDiff(DiffSettings {
                old: self.source(&a.old, a.identity.clone(), &a.read)?,
                new: self.source(&a.new, a.identity, &a.read)?,
                prefix: a.prefix.unwrap_or_default().into_bytes(),
                summary: a.summary,
            }),
            Command::Snapshot(SnapshotCommand::Prune(args)) => {
                Job::SnapshotPrune(self.prune(args)?)
            }
            Command::Schedule(ScheduleCommand::Print(a)) => Job::SchedulePrint(ScheduleSettings {
                password_given: self.password_given(&a.save_args),
                kind: a.kind,
                every: a
                    .every
                    .map(|e| parse_go_duration(&e).context("--every"))
                    .transpose()?,
                on_calendar: match (a.kind, a.on_calendar) {
                    (ScheduleKind::Cronjob, Some(_)) => {
                        bail!("--on-calendar is for systemd timers; a CronJob takes --every")
                    }
                    (_, c) => c,
                },
                image: a.image,
                dir: a.dir,
                save_args: a.save_args,
            }),
            Command::Snapshot(SnapshotCommand::Restore(args)) => {
                Job::SnapshotRestore(Box::new(self.restore(args)?))
            }
            Command::CertExpiry(args) => Job::CertExpiry(Box::new(self.cert_expiry(args)?)),
            Command::CertRenew(args) => Job::CertRenew(Box::new(self.cert_renew(args)?)),
            Command::ManifestRead(ManifestReadArgs { env, commands }) => {
                Job::ManifestRead(ManifestReadSettings {
                    path: self.manifest_path_or_default(),
                    view: if env {
                        ManifestView::Env
                    } else if commands {
                        ManifestView::Commands
                    } else {
                        ManifestView::Report
                    },
                })
            }
            Command::Completion { shell } => Job::Completion(shell),
            online => {
                let job = self.online_job(online)?;
                Job::Online {
                    conn: Box::new(self.connection()?),
                    job,
                }
            }
        })
    }

    /// The settings of a command that talks to etcd (the connection is resolved apart).
    fn online_job(&self, command: Command) -> Result<OnlineJob> {
        Ok(match command {
            Command::Health(a) | Command::Endpoint(EndpointCommand::Health(a)) => {
                OnlineJob::Health {
                    cluster: a.cluster,
                    wait: match a.wait {
                        Some(w) => {
                            Some((parse_go_duration(&w).context("--wait")?, a.expect_revision))
                        }
                        None => None,
                    },
                }
            }
            Command::Status(ClusterArgs { cluster })
            | Command::Endpoint(EndpointCommand::Status(ClusterArgs { cluster })) => {
                OnlineJob::Status { cluster }
            }
            Command::Members | Command::Member(MemberCommand::List) => OnlineJob::Members {
                hex: self.global.hex
                    || self
                        .env_var("ETCDCTL_HEX")
                        .is_some_and(|v| parse_bool(&v) == Some(true)),
            },
            Command::Snapshot(SnapshotCommand::Save {
                file,
                compress,
                encrypt_to,
                keep,
                cluster,
                stall_timeout,
                timeout,
            }) => {
                let dest = match Location::parse(&file)? {
                    _ if file == "-" => SaveDest::Stdout,
                    Location::S3 { bucket, key } => {
                        if !(key.is_empty() || key.ends_with('/')) {
                            bail!("snapshot save {file}: an s3:// destination is a prefix and gets a generated name; end it with '/' (s3://{bucket}/{key}/)");
                        }
                        SaveDest::S3 {
                            bucket,
                            prefix: key,
                        }
                    }
                    loc @ Location::Local(_) if loc.is_prefix() => {
                        SaveDest::Dir(PathBuf::from(&file))
                    }
                    Location::Local(path) => SaveDest::File(path),
                };
                for r in &encrypt_to {
                    crate::remote::codec::parse_recipients(r)?;
                }
                let keep = keep
                    .map(|k| Policy::parse(&k).map_err(anyhow::Error::msg))
                    .transpose()?;
                if keep.is_some() && !matches!(dest, SaveDest::Dir(_) | SaveDest::S3 { .. }) {
                    bail!("--keep prunes a directory or an s3:// prefix; give DEST as DIR/ or s3://BUCKET/PREFIX/");
                }
                OnlineJob::SnapshotSave(Box::new(SaveSettings {
                    stall_timeout: parse_go_duration(&stall_timeout).context("--stall-timeout")?,
                    timeout: timeout
                        .map(|t| parse_go_duration(&t).context("--timeout"))
                        .transpose()?,
                    compress: compress.map(|c| parse_compress(&c)).transpose()?,
                    encrypt_to,
                    keep,
                    s3: self.s3(None)?,
                    dest,
                    cluster,
                }))
            }
            Command::Alarm(AlarmCommand::List) => OnlineJob::AlarmList,
            Command::Alarm(AlarmCommand::Disarm) => OnlineJob::AlarmDisarm,
            Command::Compact(a) => OnlineJob::Compact {
                revision: a.revision,
                physical: a.physical,
            },
            Command::Defrag(a) => OnlineJob::Defrag {
                cluster: a.cluster,
                force: a.force,
            },
            Command::RecoverSpace(a) => OnlineJob::RecoverSpace {
                dry_run: a.dry_run,
                force: a.force,
            },
            Command::Check(CheckCommand::Consistency(a))
            | Command::Endpoint(EndpointCommand::Hashkv(a)) => OnlineJob::CheckConsistency {
                cluster: a.cluster,
                revision: a.rev,
            },
            other => bail!("{other:?} is not a command that talks to etcd"),
        })
    }

    /// `--s3-*` flags over `AWS_*` variables over `~/.aws/config` over defaults.
    /// How to reach the object store; `read`: the `--timeout` of a command that reads.
    fn s3(&self, read: Option<&ReadTimeout>) -> Result<S3Settings> {
        let g = &self.global.s3;
        let env = AwsEnv::from_vars(&self.env);
        let mut profile = profile_config(&env);
        let region = g
            .s3_region
            .clone()
            .or_else(|| self.env_var("AWS_REGION"))
            .or_else(|| self.env_var("AWS_DEFAULT_REGION"))
            .or_else(|| profile.remove("region"))
            .unwrap_or_else(|| "us-east-1".to_string());
        // As aws-cli, then OpenSSL's own variable; none of them: the system bundle.
        let ca = match (&g.s3_endpoint_ca, self.env_var("AWS_CA_BUNDLE")) {
            (Some(p), _) => Some((p.clone(), "flag --s3-endpoint-ca")),
            (None, Some(p)) => Some((PathBuf::from(p), "environment AWS_CA_BUNDLE")),
            (None, None) => self
                .env_var("SSL_CERT_FILE")
                .map(|p| (PathBuf::from(p), "environment SSL_CERT_FILE")),
        };
        // As aws-cli v2 and the AWS SDKs: a checksum on every upload unless told otherwise.
        let checksums = match self
            .env_var("AWS_REQUEST_CHECKSUM_CALCULATION")
            .map(|v| (v, "AWS_REQUEST_CHECKSUM_CALCULATION"))
            .or_else(|| {
                profile
                    .remove("request_checksum_calculation")
                    .map(|v| (v, "request_checksum_calculation in the AWS config file"))
            }) {
            None => true,
            Some((v, _)) if v.eq_ignore_ascii_case("when_supported") => true,
            Some((v, _)) if v.eq_ignore_ascii_case("when_required") => false,
            Some((v, from)) => bail!(
                "{from} is {:?}: it must be when_supported (a CRC32C checksum with every upload, the default) or when_required (none)",
                crate::output::escape(&v)
            ),
        };
        // As the AWS SDKs: attempts per request, the first included.
        let max_attempts = match self
            .env_var("AWS_MAX_ATTEMPTS")
            .map(|v| (v, "environment AWS_MAX_ATTEMPTS"))
            .or_else(|| {
                profile
                    .remove("max_attempts")
                    .map(|v| (v, "max_attempts in the AWS config file"))
            }) {
            None => crate::remote::s3::DEFAULT_MAX_ATTEMPTS,
            Some((v, from)) => match v.trim().parse::<u32>() {
                Ok(n @ 1..=20) => n,
                _ => bail!(
                    "{from} is {:?}: it must be a number of attempts from 1 to 20",
                    crate::output::escape(&v)
                ),
            },
        };
        Ok(S3Settings {
            endpoint: g
                .s3_endpoint
                .clone()
                .or_else(|| self.env_var("AWS_ENDPOINT_URL_S3"))
                .or_else(|| self.env_var("AWS_ENDPOINT_URL")),
            region,
            ca,
            skip_verify: g.s3_skip_ssl_verify,
            lookup: match g.s3_bucket_lookup {
                None | Some(S3BucketLookup::Auto) => BucketLookup::Auto,
                Some(S3BucketLookup::Path) => BucketLookup::Path,
                Some(S3BucketLookup::Dns) => BucketLookup::Dns,
            },
            env,
            checksums,
            max_attempts,
            timeout: read
                .map(|r| parse_go_duration(&r.timeout).context("--timeout"))
                .transpose()?,
        })
    }

    /// A password among the global flags or the arguments of a scheduled save.
    fn password_given(&self, save_args: &[String]) -> bool {
        let with_password = |user: &str| user.contains(':');
        if self.global.password.is_some() || self.global.user.as_deref().is_some_and(with_password)
        {
            return true;
        }
        save_args.iter().enumerate().any(|(i, a)| {
            a == "--password"
                || a.starts_with("--password=")
                || a.strip_prefix("--user=").is_some_and(with_password)
                || (a == "--user" && save_args.get(i + 1).is_some_and(|u| with_password(u)))
        })
    }

    fn source(
        &self,
        arg: &str,
        identities: Vec<PathBuf>,
        read: &ReadTimeout,
    ) -> Result<SourceSettings> {
        Ok(SourceSettings {
            location: Location::parse(arg)?,
            identities,
            s3: self.s3(Some(read))?,
        })
    }

    fn store(&self, arg: &str, read: &ReadTimeout) -> Result<StoreSettings> {
        let location = Location::parse(arg)?;
        if !location.is_prefix() {
            bail!("{arg}: not a directory or an s3:// prefix (end it with '/')");
        }
        Ok(StoreSettings {
            location,
            s3: self.s3(Some(read))?,
        })
    }

    fn prune(&self, a: PruneArgs) -> Result<PruneSettings> {
        let policy = Policy {
            last: a.keep_last,
            hourly: a.keep_hourly,
            daily: a.keep_daily,
            weekly: a.keep_weekly,
            monthly: a.keep_monthly,
        };
        if policy.is_empty() {
            bail!("snapshot prune needs at least one rule: --keep-last, --keep-hourly, --keep-daily, --keep-weekly or --keep-monthly");
        }
        Ok(PruneSettings {
            store: self.store(&a.location, &a.read)?,
            policy,
            dry_run: a.dry_run,
        })
    }

    fn restore(&mut self, args: RestoreArgs) -> Result<RestoreSettings> {
        let manifest = match (&args.from_manifest, args.update_manifest) {
            (Some(Some(path)), _) => Some(Manifest::load(path)?),
            (Some(None), _) | (None, true) => {
                Some(self.manifest.require(self.manifest_path_or_default())?)
            }
            (None, false) => None,
        };
        let from = |flag: &str| {
            manifest
                .as_ref()
                .and_then(|m| m.flag(flag))
                .map(str::to_string)
        };
        let name = args
            .name
            .or_else(|| from("name"))
            .unwrap_or_else(|| "default".into());
        let data_dir = match (args.data_dir, &manifest) {
            (Some(d), _) => d,
            (None, Some(m)) => crate::manifest::edit::sibling_data_dir(m)?,
            (None, None) => PathBuf::from(format!("{name}.etcd")),
        };
        Ok(RestoreSettings {
            source: self.source(&args.file, args.identity.clone(), &args.read)?,
            file: PathBuf::from(args.file),
            data_dir,
            wal_dir: args.wal_dir,
            initial_cluster: args.initial_cluster,
            manifest_cluster: from("initial-cluster"),
            initial_cluster_token: args
                .initial_cluster_token
                .or_else(|| from("initial-cluster-token"))
                .unwrap_or_else(|| DEFAULT_TOKEN.into()),
            initial_advertise_peer_urls: args
                .initial_advertise_peer_urls
                .or_else(|| from("initial-advertise-peer-urls"))
                .unwrap_or_else(|| "http://localhost:2380".into()),
            name,
            skip_hash_check: args.skip_hash_check,
            bump_revision: args.bump_revision,
            mark_compacted: args.mark_compacted,
            etcd_version: args
                .etcd_version
                .as_deref()
                .map(|v| {
                    crate::release::Release::parse(v).ok_or_else(|| {
                        anyhow::anyhow!(
                            "--etcd-version {v:?}: give a release such as 3.6 or 3.5.21"
                        )
                    })
                })
                .transpose()?,
            unused_manifest: match manifest {
                None => self.manifest.path.clone().filter(|p| p.is_file()),
                Some(_) => None,
            },
            manifest,
            update_manifest: args.update_manifest,
            dry_run: args.dry_run,
        })
    }

    /// Paths given: those. No paths: the manifest's server and peer certificates, the
    /// healthcheck client beside them and the apiserver's etcd client one directory up.
    fn cert_renew(&mut self, args: CertRenewArgs) -> Result<CertRenewSettings> {
        if !(1..=36500).contains(&args.days) {
            bail!("--days {}: give 1 to 36500", args.days);
        }
        let manifest = self.manifest.get()?.cloned();
        let mut ca_search: Vec<PathBuf> = Vec::new();
        let targets = if !args.paths.is_empty() {
            args.paths.clone()
        } else {
            let Some(m) = &manifest else {
                bail!("no certificates to renew: give their paths, or run on a kubeadm node (no etcd manifest at {})", self.manifest_path_or_default().display());
            };
            let mut t: Vec<PathBuf> = ["cert-file", "peer-cert-file"]
                .iter()
                .filter_map(|f| m.flag(f).map(PathBuf::from))
                .collect();
            if let Some(dir) = t.first().and_then(|p| p.parent()).map(|p| p.to_path_buf()) {
                for extra in [
                    dir.join("healthcheck-client.crt"),
                    dir.parent()
                        .map(|p| p.join("apiserver-etcd-client.crt"))
                        .unwrap_or_default(),
                ] {
                    if extra.is_file() {
                        t.push(extra);
                    }
                }
            }
            for f in ["trusted-ca-file", "peer-trusted-ca-file"] {
                if let Some(p) = m.flag(f) {
                    ca_search.push(PathBuf::from(p));
                }
            }
            t.dedup();
            t
        };
        for p in &targets {
            match crate::fsutil::open_regular(p) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    bail!("{}: no such certificate file", p.display())
                }
                Err(e) => bail!("{}: {e}", p.display()),
            }
            match p.parent() {
                Some(dir) if !dir.as_os_str().is_empty() => ca_search.push(dir.to_path_buf()),
                _ => ca_search.push(PathBuf::from(".")),
            }
        }
        let now = self.now()?;
        let conn = if manifest.is_some() || self.global.endpoints.is_some() {
            let conn = self.connection()?;
            (conn.endpoints.source != Source::Default).then_some(conn)
        } else {
            None
        };
        Ok(CertRenewSettings {
            targets,
            ca_search,
            ca: args.ca.zip(args.ca_key),
            days: args.days,
            new_key: args.new_key,
            dry_run: args.dry_run,
            backup_dir: args.backup_dir.unwrap_or_else(|| {
                PathBuf::from(format!(
                    "/var/backups/etcdops-certs-{}",
                    crate::units::compact_utc(now)
                ))
            }),
            conn,
            now,
        })
    }

    /// Paths given: only those, plus the manifest's files and live endpoints when `--manifest`
    /// or `--endpoints` is given too. No paths: kubeadm's tree and kubeconfigs, the manifest's
    /// files and the configured endpoints. `--no-manifest` leaves the manifest out entirely.
    fn cert_expiry(&mut self, args: CertExpiryArgs) -> Result<CertExpirySettings> {
        for p in &args.paths {
            if !p.exists() {
                bail!("{}: no such file or directory", p.display());
            }
        }
        let given = !args.paths.is_empty();
        let paths = if given {
            args.paths
        } else {
            crate::pki::default_paths()
        };
        if args.no_manifest {
            self.manifest.path = None;
        }
        let want_manifest = !args.no_manifest && (!given || self.global.manifest.is_some());
        let manifest = if want_manifest {
            self.manifest.get()?.cloned()
        } else {
            None
        };
        // Live endpoints, when they are configured (not the bare built-in default).
        let want_endpoints = !given || self.global.endpoints.is_some() || manifest.is_some();
        let conn = if want_endpoints {
            let conn = self.connection()?;
            (conn.endpoints.source != Source::Default).then_some(conn)
        } else {
            None
        };
        Ok(CertExpirySettings {
            paths,
            manifest,
            conn,
            now: self.now()?,
            warn_days: args.warn_days,
            wide: args.wide,
        })
    }

    /// "Now" in Unix seconds: the clock, or `ETCDOPS_NOW` (RFC 3339) so that expiry checks can
    /// be tested exactly. Read here and nowhere else.
    fn now(&self) -> Result<i64> {
        match self.env_var("ETCDOPS_NOW") {
            Some(v) => parse_rfc3339(&v)
                .with_context(|| format!("environment ETCDOPS_NOW={v:?} is not an RFC 3339 time")),
            None => Ok(std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0)),
        }
    }

    /// A flag, else the environment variable `env`, with where it came from.
    fn flag_or_env(
        &self,
        flag: Option<String>,
        flag_name: &'static str,
        env: &'static str,
    ) -> Option<Sourced<String>> {
        flag.map(|value| Sourced {
            value,
            source: Source::Flag(flag_name),
        })
        .or_else(|| {
            self.env_var(env).map(|value| Sourced {
                value,
                source: Source::Env(env),
            })
        })
    }

    /// The connection settings of online commands.
    fn connection(&mut self) -> Result<ConnSettings> {
        let g = self.global.clone();
        let path_of = |s: Sourced<String>| Sourced {
            value: PathBuf::from(s.value),
            source: s.source,
        };
        let mut tls = TlsFiles {
            cacert: self
                .flag_or_env(path_string(&g.cacert), "cacert", "ETCDCTL_CACERT")
                .map(path_of),
            cert: self
                .flag_or_env(path_string(&g.cert), "cert", "ETCDCTL_CERT")
                .map(path_of),
            key: self
                .flag_or_env(path_string(&g.key), "key", "ETCDCTL_KEY")
                .map(path_of),
        };
        let mut endpoints = self
            .flag_or_env(g.endpoints.clone(), "endpoints", "ETCDCTL_ENDPOINTS")
            .map(|s| Sourced {
                value: split_endpoints(&s.value),
                source: s.source,
            });
        // The manifest is read only when it can still contribute something.
        if endpoints.is_none() || !tls.complete() {
            if let Some(m) = self.manifest.get()? {
                fill_from_manifest(m, &mut endpoints, &mut tls);
            }
        }
        let endpoints = endpoints.unwrap_or(Sourced {
            value: vec![DEFAULT_ENDPOINT.to_string()],
            source: Source::Default,
        });
        if endpoints.value.is_empty() {
            bail!("no endpoints given ({} is empty)", endpoints.source);
        }
        Ok(ConnSettings {
            endpoints,
            cacert: tls.cacert,
            cert: tls.cert,
            key: tls.key,
            insecure_skip_tls_verify: self.insecure_skip_tls_verify()?,
            user: self.user()?,
            dial_timeout: self.duration(
                g.dial_timeout.clone(),
                "dial-timeout",
                "ETCDCTL_DIAL_TIMEOUT",
                DEFAULT_DIAL_TIMEOUT,
            )?,
            command_timeout: self.duration(
                g.command_timeout.clone(),
                "command-timeout",
                "ETCDCTL_COMMAND_TIMEOUT",
                DEFAULT_COMMAND_TIMEOUT,
            )?,
        })
    }

    fn insecure_skip_tls_verify(&self) -> Result<Sourced<bool>> {
        const ENV: &str = "ETCDCTL_INSECURE_SKIP_TLS_VERIFY";
        if self.global.insecure_skip_tls_verify {
            return Ok(Sourced {
                value: true,
                source: Source::Flag("insecure-skip-tls-verify"),
            });
        }
        match self.env_var(ENV) {
            Some(v) => Ok(Sourced {
                value: parse_bool(&v)
                    .with_context(|| format!("environment {ENV}={v:?} is not true or false"))?,
                source: Source::Env(ENV),
            }),
            None => Ok(Sourced {
                value: false,
                source: Source::Default,
            }),
        }
    }

    /// `--user NAME[:PASSWORD]` and `--password`, from flags or environment.
    fn user(&self) -> Result<Option<Sourced<(String, String)>>> {
        let g = &self.global;
        let user = self.flag_or_env(g.user.clone(), "user", "ETCDCTL_USER");
        let password = self.flag_or_env(g.password.clone(), "password", "ETCDCTL_PASSWORD");
        let Some(u) = user else {
            if let Some(p) = password {
                bail!("{} is set but no user is given (--user)", p.source);
            }
            return Ok(None);
        };
        let (name, inline) = match u.value.split_once(':') {
            Some((n, p)) => (n.to_string(), Some(p.to_string())),
            None => (u.value.clone(), None),
        };
        let password = match (password, inline) {
            (Some(p), _) => p.value,
            (None, Some(p)) => p,
            (None, None) => bail!(
                "{} names user {name:?} but no password is given (--password or name:password)",
                u.source
            ),
        };
        if name.is_empty() {
            bail!("{}: the user name is empty", u.source);
        }
        Ok(Some(Sourced {
            value: (name, password),
            source: u.source,
        }))
    }

    fn duration(
        &self,
        flag: Option<String>,
        flag_name: &'static str,
        env: &'static str,
        default: Duration,
    ) -> Result<Sourced<Duration>> {
        match self.flag_or_env(flag, flag_name, env) {
            Some(s) => Ok(Sourced {
                value: parse_go_duration(&s.value)
                    .with_context(|| format!("{} = {:?}", s.source, s.value))?,
                source: s.source,
            }),
            None => Ok(Sourced {
                value: default,
                source: Source::Default,
            }),
        }
    }
}

/// CA and client pair as far as flags and environment gave them.
struct TlsFiles {
    cacert: Option<Sourced<PathBuf>>,
    cert: Option<Sourced<PathBuf>>,
    key: Option<Sourced<PathBuf>>,
}

impl TlsFiles {
    fn complete(&self) -> bool {
        self.cacert.is_some() && self.cert.is_some() && self.key.is_some()
    }
}

/// What the manifest adds to the settings flags and environment left open: its loopback client
/// URL, its CA, and a client pair (from one place: never a flag cert with a manifest key).
fn fill_from_manifest(
    m: &Manifest,
    endpoints: &mut Option<Sourced<Vec<String>>>,
    tls: &mut TlsFiles,
) {
    let from = |flag: &str| Source::Manifest(m.line_of(flag));
    if endpoints.is_none() {
        if let Some(ep) = m.client_endpoint() {
            let listed = |flag: &str| {
                m.flag(flag)
                    .is_some_and(|v| v.split(',').any(|u| u.trim() == ep))
            };
            let flag = if listed("listen-client-urls") {
                "listen-client-urls"
            } else {
                "advertise-client-urls"
            };
            *endpoints = Some(Sourced {
                value: vec![ep],
                source: from(flag),
            });
        }
    }
    let found = m.client_tls();
    if tls.cacert.is_none() {
        tls.cacert = found.cacert.map(|p| Sourced {
            value: p,
            source: from("trusted-ca-file"),
        });
    }
    if tls.cert.is_none() && tls.key.is_none() {
        if let Some((c, k)) = found.client_pair {
            // kubeadm's healthcheck-client pair is not in the manifest: it is found beside the
            // CA the manifest names.
            let (cert_source, key_source) = if found.healthcheck {
                let beside = Source::Manifest(format!(
                    "kubeadm's healthcheck-client pair beside --trusted-ca-file ({})",
                    m.line_of("trusted-ca-file")
                ));
                (beside.clone(), beside)
            } else {
                (from("cert-file"), from("key-file"))
            };
            tls.cert = Some(Sourced {
                value: c,
                source: cert_source,
            });
            tls.key = Some(Sourced {
                value: k,
                source: key_source,
            });
        }
    }
}

fn path_string(p: &Option<PathBuf>) -> Option<String> {
    p.as_ref().map(|p| p.to_string_lossy().into_owned())
}

fn split_endpoints(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(str::to_string)
        .collect()
}

fn parse_output_format(s: &str) -> Result<OutputFormat> {
    match s {
        "table" => Ok(OutputFormat::Table),
        "json" => Ok(OutputFormat::Json),
        "simple" => Ok(OutputFormat::Simple),
        other => bail!("unsupported output format {other:?} (expected table, json or simple)"),
    }
}

/// `--compress zstd[:LEVEL]`.
fn parse_compress(spec: &str) -> Result<i32> {
    let (algo, level) = spec.split_once(':').unwrap_or((spec, ""));
    if algo != "zstd" {
        bail!("--compress {spec:?}: only zstd is supported (zstd or zstd:LEVEL)");
    }
    if level.is_empty() {
        return Ok(crate::remote::codec::DEFAULT_ZSTD_LEVEL);
    }
    match level.parse::<i32>() {
        Ok(l) if (1..=19).contains(&l) => Ok(l),
        _ => bail!("--compress {spec:?}: LEVEL must be 1 to 19"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn global() -> GlobalArgs {
        GlobalArgs {
            endpoints: None,
            cacert: None,
            cert: None,
            key: None,
            insecure_skip_tls_verify: false,
            user: None,
            password: None,
            dial_timeout: None,
            command_timeout: None,
            write_out: None,
            hex: false,
            manifest: None,
            verbose: false,
            s3: crate::cli::S3Args {
                s3_endpoint: None,
                s3_region: None,
                s3_endpoint_ca: None,
                s3_skip_ssl_verify: false,
                s3_bucket_lookup: None,
            },
        }
    }

    /// A resolver that never looks at the machine's real /etc/kubernetes.
    fn resolver(g: GlobalArgs, env: Vec<(String, String)>) -> Resolver {
        Resolver::new(g, env, PathBuf::from("/nonexistent/default/etcd.yaml"))
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn flag_beats_env_and_env_beats_default() {
        let mut g = global();
        g.endpoints = Some("https://a:1,https://b:2".into());
        g.cacert = Some(PathBuf::from("/flag/ca.crt"));
        let e = env(&[
            ("ETCDCTL_ENDPOINTS", "https://env:3"),
            ("ETCDCTL_CACERT", "/env/ca.crt"),
            ("ETCDCTL_CERT", "/env/c.crt"),
            ("ETCDCTL_KEY", "/env/c.key"),
            ("ETCDCTL_DIAL_TIMEOUT", "7s"),
            ("ETCDCTL_WRITE_OUT", "json"),
        ]);
        let mut r = resolver(g, e);
        assert_eq!(r.output().unwrap(), OutputFormat::Json);
        let c = r.connection().unwrap();
        assert_eq!(c.endpoints.value, vec!["https://a:1", "https://b:2"]);
        assert_eq!(c.endpoints.source, Source::Flag("endpoints"));
        assert_eq!(c.cacert.unwrap().value, PathBuf::from("/flag/ca.crt"));
        assert_eq!(c.cert.unwrap().source, Source::Env("ETCDCTL_CERT"));
        assert_eq!(c.dial_timeout.value, Duration::from_secs(7));
        assert_eq!(c.command_timeout.source, Source::Default);
    }

    #[test]
    fn defaults_without_anything() {
        let mut g = global();
        g.endpoints = Some("127.0.0.1:2379".into());
        let c = resolver(g, vec![]).connection().unwrap();
        assert_eq!(c.endpoints.value, vec!["127.0.0.1:2379"]);
        assert!(!c.wants_tls());
        assert_eq!(c.dial_timeout.value, DEFAULT_DIAL_TIMEOUT);
        assert_eq!(c.command_timeout.value, DEFAULT_COMMAND_TIMEOUT);
    }

    #[test]
    fn explicit_missing_manifest_is_an_error_naming_it() {
        let mut g = global();
        g.manifest = Some(PathBuf::from("/nonexistent/etcd.yaml"));
        let err = resolver(g, vec![]).connection().unwrap_err();
        assert!(
            format!("{err:#}").contains("/nonexistent/etcd.yaml"),
            "{err:#}"
        );
    }

    #[test]
    fn user_forms() {
        let mut g = global();
        g.endpoints = Some("x:1".into());
        g.user = Some("root:secret".into());
        let c = resolver(g, vec![]).connection().unwrap();
        assert_eq!(c.user.unwrap().value, ("root".into(), "secret".into()));

        let mut g = global();
        g.endpoints = Some("x:1".into());
        let e = env(&[("ETCDCTL_USER", "alice"), ("ETCDCTL_PASSWORD", "pw")]);
        let c = resolver(g, e).connection().unwrap();
        assert_eq!(c.user.unwrap().value, ("alice".into(), "pw".into()));

        let mut g = global();
        g.endpoints = Some("x:1".into());
        g.user = Some("bob".into());
        assert!(resolver(g, vec![]).connection().is_err());
    }

    #[test]
    fn bad_env_values_are_errors_naming_the_variable() {
        let e = env(&[("ETCDCTL_WRITE_OUT", "yaml")]);
        let err = resolver(global(), e).output().unwrap_err();
        assert!(format!("{err:#}").contains("ETCDCTL_WRITE_OUT"));

        let mut g = global();
        g.endpoints = Some("x:1".into());
        let e = env(&[("ETCDCTL_DIAL_TIMEOUT", "abc")]);
        let err = resolver(g, e).connection().unwrap_err();
        assert!(
            format!("{err:#}").contains("ETCDCTL_DIAL_TIMEOUT"),
            "{err:#}"
        );
    }
}
