//! The command line as clap sees it: derive definitions only, no I/O and no defaults that depend
//! on the environment. `settings` turns these raw values into typed settings, so commands never
//! see a clap type.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Keep etcd alive: health, status and members over TLS, snapshots, restore, certificate expiry.
///
/// Connection settings come from flags, then ETCDCTL_* environment variables, then the etcd
/// static-pod manifest (/etc/kubernetes/manifests/etcd.yaml), then built-in defaults.
#[derive(Debug, Parser)]
#[command(
    name = "etcdops",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command accepts; the connection ones only matter to online commands.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Comma-separated etcd client URLs [env: ETCDCTL_ENDPOINTS]
    #[arg(long, global = true, value_name = "URLS")]
    pub endpoints: Option<String>,

    /// CA bundle that signed the server certificates [env: ETCDCTL_CACERT]
    #[arg(long, global = true, value_name = "FILE")]
    pub cacert: Option<PathBuf>,

    /// Client certificate (PEM) [env: ETCDCTL_CERT]
    #[arg(long, global = true, value_name = "FILE")]
    pub cert: Option<PathBuf>,

    /// Client private key (PEM) [env: ETCDCTL_KEY]
    #[arg(long, global = true, value_name = "FILE")]
    pub key: Option<PathBuf>,

    /// Accept any server certificate (encryption without authentication of the server)
    /// [env: ETCDCTL_INSECURE_SKIP_TLS_VERIFY]
    #[arg(long, global = true)]
    pub insecure_skip_tls_verify: bool,

    /// User name, or name:password [env: ETCDCTL_USER]
    #[arg(long, global = true, value_name = "NAME[:PASSWORD]")]
    pub user: Option<String>,

    /// Password of --user [env: ETCDCTL_PASSWORD]
    #[arg(long, global = true)]
    pub password: Option<String>,

    /// Time allowed to establish a connection, e.g. 2s, 500ms [default: 2s] [env: ETCDCTL_DIAL_TIMEOUT]
    #[arg(long, global = true, value_name = "DURATION")]
    pub dial_timeout: Option<String>,

    /// Time allowed for one request, e.g. 5s [default: 5s] [env: ETCDCTL_COMMAND_TIMEOUT]
    #[arg(long, global = true, value_name = "DURATION")]
    pub command_timeout: Option<String>,

    /// Print IDs as hex strings in JSON (member list), as etcdctl --hex does [env: ETCDCTL_HEX]
    #[arg(long, global = true)]
    pub hex: bool,

    /// Output format [default: table] [env: ETCDCTL_WRITE_OUT]
    #[arg(short = 'w', long, global = true, value_name = "FORMAT")]
    pub write_out: Option<WriteOut>,

    /// The etcd static-pod manifest to read settings from [env: ETCDOPS_MANIFEST]
    /// [default: /etc/kubernetes/manifests/etcd.yaml when it exists]
    #[arg(long, global = true, value_name = "PATH")]
    pub manifest: Option<PathBuf>,

    /// Say on stderr where each setting came from
    #[arg(short, long, global = true)]
    pub verbose: bool,
}

/// `-w`'s values (settings.rs turns them into `output::OutputFormat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WriteOut {
    Table,
    Json,
    Simple,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check that every endpoint commits a read and has no active alarm
    Health(HealthArgs),
    /// Show each endpoint's version, db size, leader and raft indexes
    Status(ClusterArgs),
    /// List the cluster's members
    Members,
    /// etcdctl spelling: `endpoint health` and `endpoint status`
    #[command(subcommand)]
    Endpoint(EndpointCommand),
    /// etcdctl spelling: `member list`
    #[command(subcommand)]
    Member(MemberCommand),
    /// Save, inspect and restore snapshots
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// List or disarm the cluster's alarms (NOSPACE, CORRUPT)
    #[command(subcommand)]
    Alarm(AlarmCommand),
    /// Compact the key-value history up to REVISION (default: the current revision)
    #[command(alias = "compaction")]
    Compact(CompactArgs),
    /// Defragment members one at a time, the leader last
    Defrag(DefragArgs),
    /// NOSPACE recovery: compact, defragment each member (leader last), disarm, verify
    RecoverSpace(RecoverSpaceArgs),
    /// Compare the members' key-value hashes at one revision
    #[command(subcommand)]
    Check(CheckCommand),
    /// Report when certificates expire (files, directories, kubeconfigs)
    CertExpiry(CertExpiryArgs),
    /// Show what the etcd static-pod manifest (or config file, or systemd unit) configures
    ManifestRead(ManifestReadArgs),
    /// Print a shell completion script
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// Use every member's client URLs from the member list instead of --endpoints alone
    #[arg(long)]
    pub cluster: bool,
}

#[derive(Debug, Args)]
pub struct HealthArgs {
    /// Use every member's client URLs from the member list instead of --endpoints alone
    #[arg(long)]
    pub cluster: bool,
    /// Wait up to this long for every endpoint to be healthy (e.g. after a restart)
    #[arg(long, value_name = "DURATION")]
    pub wait: Option<String>,
    /// With --wait: also wait until every member serves at least this revision
    #[arg(long, value_name = "N", requires = "wait")]
    pub expect_revision: Option<i64>,
}

#[derive(Debug, Subcommand)]
pub enum AlarmCommand {
    /// The active alarms
    List,
    /// Deactivate every active alarm
    Disarm,
}

#[derive(Debug, Args)]
pub struct CompactArgs {
    /// Compact up to this revision [default: the current revision]
    pub revision: Option<i64>,
    /// Wait until the compacted history is removed from the backend
    #[arg(long)]
    pub physical: bool,
}

#[derive(Debug, Args)]
pub struct DefragArgs {
    /// Every member from the member list, not just --endpoints
    #[arg(long)]
    pub cluster: bool,
    /// Defragment even when a member is already down (quorum is at risk while it runs)
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct RecoverSpaceArgs {
    /// Print the plan and the etcdctl commands it stands for; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Defragment even when a member is already down
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Subcommand)]
pub enum CheckCommand {
    /// Every member's KV hash at one revision; exit 1 when they disagree
    Consistency(ConsistencyArgs),
}

#[derive(Debug, Args)]
pub struct ConsistencyArgs {
    /// Every member from the member list, not just --endpoints
    #[arg(long)]
    pub cluster: bool,
    /// The revision to hash at [default: the leader's current revision]
    #[arg(long, value_name = "N")]
    pub rev: Option<i64>,
}

#[derive(Debug, Subcommand)]
pub enum EndpointCommand {
    /// Same as `etcdops health`
    Health(HealthArgs),
    /// Same as `etcdops check consistency`
    Hashkv(ConsistencyArgs),
    /// Same as `etcdops status`
    Status(ClusterArgs),
}

#[derive(Debug, Subcommand)]
pub enum MemberCommand {
    /// Same as `etcdops members`
    List,
}

#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Stream a snapshot from one endpoint into FILE (verified, atomic)
    Save {
        /// Where to write the snapshot, or - for stdout
        file: PathBuf,
        /// Choose among every member's client URLs (leader first) instead of --endpoints alone
        #[arg(long)]
        cluster: bool,
        /// Abort when no data arrives for this long
        #[arg(long, default_value = "30s", value_name = "DURATION")]
        stall_timeout: String,
        /// Abort when the whole save takes longer than this [default: no limit]
        #[arg(long, value_name = "DURATION")]
        timeout: Option<String>,
    },
    /// Offline: hash, revision, total keys and size of a snapshot file
    Status {
        /// Snapshot file (or a member/snap/db)
        file: PathBuf,
        /// Skip bbolt's integrity check (key order, freelist, both meta pages)
        #[arg(long)]
        skip_check: bool,
        /// Do not verify the sha256 trailer
        #[arg(long)]
        skip_hash_check: bool,
    },
    /// Offline: build a data directory that etcd starts from
    Restore(RestoreArgs),
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// Snapshot file to restore
    pub file: PathBuf,
    /// Data directory to create [default: NAME.etcd; with --from-manifest a new sibling of
    /// the manifest's data dir]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Separate WAL directory
    #[arg(long, value_name = "DIR")]
    pub wal_dir: Option<PathBuf>,
    /// Name of this member [default: default, or the manifest's]
    #[arg(long)]
    pub name: Option<String>,
    /// Initial cluster configuration [default: NAME=INITIAL-ADVERTISE-PEER-URLS, or the
    /// manifest's]
    #[arg(long, value_name = "NAME=URL,...")]
    pub initial_cluster: Option<String>,
    /// Initial cluster token [default: etcd-cluster, or the manifest's]
    #[arg(long, value_name = "TOKEN")]
    pub initial_cluster_token: Option<String>,
    /// This member's peer URLs [default: http://localhost:2380, or the manifest's]
    #[arg(long, value_name = "URLS")]
    pub initial_advertise_peer_urls: Option<String>,
    /// Restore a raw db file that has no sha256 trailer
    #[arg(long)]
    pub skip_hash_check: bool,
    /// Start the restored cluster N revisions past the snapshot's last revision (needs
    /// --mark-compacted), so that watchers and caches see revisions move forward, never back
    #[arg(long, value_name = "N")]
    pub bump_revision: Option<u64>,
    /// Compact up to the bumped revision (needs --bump-revision): watchers of older
    /// revisions get "compacted" and resync instead of missing changes
    #[arg(long)]
    pub mark_compacted: bool,
    /// Take name, cluster, peer URLs and token from the etcd static-pod manifest (this node's
    /// when PATH is omitted: --manifest, ETCDOPS_MANIFEST or the kubeadm default)
    #[arg(long, value_name = "PATH", num_args = 0..=1)]
    pub from_manifest: Option<Option<PathBuf>>,
    /// After the restore, point the manifest's data volume at the new data dir (the old
    /// manifest is kept outside the manifests directory)
    #[arg(long)]
    pub update_manifest: bool,
    /// Print the plan (membership, cluster ID, data dir, manifest change) and write nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct ManifestReadArgs {
    /// Print `export ETCDCTL_*` lines for `eval "$(etcdops manifest-read --env)"`
    #[arg(long, conflicts_with = "commands")]
    pub env: bool,
    /// Print the etcdctl/etcdutl command lines for snapshot save and restore on this node
    #[arg(long)]
    pub commands: bool,
}

#[derive(Debug, Args)]
pub struct CertExpiryArgs {
    /// Certificate files, directories or kubeconfigs [default: /etc/kubernetes/pki and
    /// kubeconfigs, the manifest's files and the live endpoints]
    pub paths: Vec<PathBuf>,
    /// Certificates expiring within this many days are a warning
    #[arg(long, default_value_t = 30)]
    pub warn_days: i64,
    /// Show full paths in the tables
    #[arg(long)]
    pub wide: bool,
    /// Leave out the etcd manifest's certificate files (and its endpoint)
    #[arg(long)]
    pub no_manifest: bool,
}
