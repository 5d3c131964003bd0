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
    #[arg(
        help_heading = "Connection to etcd (online commands)",
        long,
        global = true,
        value_name = "URLS"
    )]
    pub endpoints: Option<String>,

    /// CA bundle that signed the server certificates [env: ETCDCTL_CACERT]
    #[arg(
        help_heading = "Connection to etcd (online commands)",
        long,
        global = true,
        value_name = "FILE"
    )]
    pub cacert: Option<PathBuf>,

    /// Client certificate (PEM) [env: ETCDCTL_CERT]
    #[arg(
        help_heading = "Connection to etcd (online commands)",
        long,
        global = true,
        value_name = "FILE"
    )]
    pub cert: Option<PathBuf>,

    /// Client private key (PEM) [env: ETCDCTL_KEY]
    #[arg(
        help_heading = "Connection to etcd (online commands)",
        long,
        global = true,
        value_name = "FILE"
    )]
    pub key: Option<PathBuf>,

    /// Accept any server certificate (encryption without authentication of the server)
    /// [env: ETCDCTL_INSECURE_SKIP_TLS_VERIFY]
    #[arg(
        help_heading = "Connection to etcd (online commands)",
        long,
        global = true
    )]
    pub insecure_skip_tls_verify: bool,

    /// User name, or name:password [env: ETCDCTL_USER]
    #[arg(
        help_heading = "Connection to etcd (online commands)",
        long,
        global = true,
        value_name = "NAME[:PASSWORD]"
    )]
    pub user: Option<String>,

    /// Password of --user [env: ETCDCTL_PASSWORD]
    #[arg(
        help_heading = "Connection to etcd (online commands)",
        long,
        global = true
    )]
    pub password: Option<String>,

    /// Time allowed to establish a connection, e.g. 2s, 500ms [default: 2s] [env: ETCDCTL_DIAL_TIMEOUT]
    #[arg(
        help_heading = "Connection to etcd (online commands)",
        long,
        global = true,
        value_name = "DURATION"
    )]
    pub dial_timeout: Option<String>,

    /// Time allowed for one request, e.g. 5s [default: 5s] [env: ETCDCTL_COMMAND_TIMEOUT]
    #[arg(
        help_heading = "Connection to etcd (online commands)",
        long,
        global = true,
        value_name = "DURATION"
    )]
    pub command_timeout: Option<String>,

    /// Print IDs as hex strings in JSON (member list), as etcdctl --hex does [env: ETCDCTL_HEX]
    #[arg(help_heading = "Global options", long, global = true)]
    pub hex: bool,

    /// Output format [default: table] [env: ETCDCTL_WRITE_OUT]
    #[arg(
        help_heading = "Global options",
        short = 'w',
        long,
        global = true,
        value_name = "FORMAT"
    )]
    pub write_out: Option<WriteOut>,

    /// The etcd static-pod manifest to read settings from [env: ETCDOPS_MANIFEST]
    /// [default: /etc/kubernetes/manifests/etcd.yaml when it exists]
    #[arg(
        help_heading = "Global options",
        long,
        global = true,
        value_name = "PATH"
    )]
    pub manifest: Option<PathBuf>,

    /// Say on stderr where each setting came from
    #[arg(help_heading = "Global options", short, long, global = true)]
    pub verbose: bool,

    #[command(flatten)]
    pub s3: S3Args,
}

/// How to reach the object store behind s3:// locations (aws-cli's settings and variables).
#[derive(Debug, Clone, Args)]
pub struct S3Args {
    /// S3 endpoint for s3:// locations [default: AWS] [env: AWS_ENDPOINT_URL]
    #[arg(
        help_heading = "Object storage (s3:// locations)",
        long,
        global = true,
        value_name = "URL"
    )]
    pub s3_endpoint: Option<String>,
    /// Region to sign s3:// requests for [default: us-east-1] [env: AWS_REGION, AWS_DEFAULT_REGION]
    #[arg(
        help_heading = "Object storage (s3:// locations)",
        long,
        global = true,
        value_name = "REGION"
    )]
    pub s3_region: Option<String>,
    /// CA bundle that signed the object store's certificate [env: AWS_CA_BUNDLE, SSL_CERT_FILE]
    #[arg(
        help_heading = "Object storage (s3:// locations)",
        long,
        global = true,
        value_name = "FILE"
    )]
    pub s3_endpoint_ca: Option<PathBuf>,
    /// Do not check the object store's certificate (a warning is printed every time)
    #[arg(help_heading = "Object storage (s3:// locations)", long, global = true)]
    pub s3_skip_ssl_verify: bool,
    /// Bucket addressing: path (ENDPOINT/BUCKET), dns (BUCKET.ENDPOINT), or auto
    #[arg(
        help_heading = "Object storage (s3:// locations)",
        long,
        global = true,
        value_enum,
        value_name = "STYLE"
    )]
    pub s3_bucket_lookup: Option<S3BucketLookup>,
}

/// `--timeout` of the commands that read snapshots: a bound on everything they read from
/// object storage.
#[derive(Debug, Clone, Args)]
pub struct ReadTimeout {
    /// Give up when reading from s3:// takes longer than this in all (every listing, request
    /// and download of the command)
    #[arg(long, default_value = "30m", value_name = "DURATION")]
    pub timeout: String,
}

/// `snapshot status --rules`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusRules {
    Auto,
    #[value(name = "etcdutl-3.5")]
    Etcdutl35,
    #[value(name = "etcdutl-3.6")]
    Etcdutl36,
}

/// `--s3-bucket-lookup`'s values (settings.rs maps them to the client's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum S3BucketLookup {
    Auto,
    Path,
    Dns,
}

/// `-w`'s values (settings.rs turns them into `output::OutputFormat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WriteOut {
    Table,
    Json,
    Simple,
}

#[derive(Debug, Subcommand)]
// Parsed once per run: the size of its largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
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
    /// Re-sign etcd leaf certificates with their CA (same key, SANs and usages), atomically,
    /// with a backup and a check that the cluster still talks
    CertRenew(CertRenewArgs),
    /// Show what the etcd static-pod manifest (or config file, or systemd unit) configures
    ManifestRead(ManifestReadArgs),
    /// Print a systemd service + timer or a Kubernetes CronJob that runs a snapshot save
    #[command(subcommand)]
    Schedule(ScheduleCommand),
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
    /// Stream a snapshot from one endpoint into FILE, DIR/ or s3://BUCKET/PREFIX/ (verified,
    /// atomic; DIR/ and s3:// get a generated name and a metadata sidecar)
    Save {
        /// FILE, - for stdout, DIR/, or s3://BUCKET[/PREFIX/]
        #[arg(value_name = "DEST")]
        file: String,
        /// Compress with zstd (standard frames: `zstd -d` opens them); LEVEL 1-19, default 3
        #[arg(long, value_name = "zstd[:LEVEL]")]
        compress: Option<String>,
        /// Encrypt with age to this recipient (age1..., ssh-ed25519 ..., ssh-rsa ..., or a file
        /// of them); repeat for several. Compression happens first
        #[arg(long, value_name = "RECIPIENT")]
        encrypt_to: Vec<String>,
        /// After a successful save to DIR/ or s3://, prune by these rules, e.g.
        /// last=3,daily=7,weekly=4,monthly=6 (see `snapshot prune`)
        #[arg(long, value_name = "RULES")]
        keep: Option<String>,
        /// Choose among every member's client URLs (leader first) instead of --endpoints alone
        #[arg(long)]
        cluster: bool,
        /// Abort when no data arrives for this long
        #[arg(long, default_value = "30s", value_name = "DURATION")]
        stall_timeout: String,
        /// Abort when the whole save takes longer than this [default: no limit]
        #[arg(long, value_name = "DURATION")]
        timeout: Option<String>,
        /// After a successful save, write its time, duration, size and revision to FILE in the
        /// Prometheus text format (for node-exporter's textfile collector)
        #[arg(long, value_name = "FILE")]
        metrics_file: Option<PathBuf>,
    },
    /// Keep a revision log beside the snapshots in DIR/ or s3://BUCKET/PREFIX/: a base
    /// snapshot, then every change as it happens, in segments (restore to any revision or time)
    Follow(FollowArgs),
    /// Offline: the history of a key or prefix in the revision log of DIR/ or s3:// (revision,
    /// time, PUT or DELETE, value size)
    Log(LogArgs),
    /// Write back the keys under a prefix that SOURCE held and the cluster no longer has
    /// (create-only: nothing that exists now is overwritten), e.g. a deleted namespace
    PutBack(PutBackArgs),
    /// Offline: hash, revision, total keys and size of a snapshot file
    Status {
        /// Snapshot file (or a member/snap/db), a .zst/.age file, or an s3:// object
        #[arg(value_name = "SOURCE")]
        file: String,
        /// age identity or unencrypted ssh private key, for encrypted snapshots
        #[arg(long, value_name = "FILE")]
        identity: Vec<PathBuf>,
        /// Skip bbolt's integrity check (key order, freelist, both meta pages)
        #[arg(long)]
        skip_check: bool,
        /// Do not verify the sha256 trailer
        #[arg(long)]
        skip_hash_check: bool,
        /// Whose total keys and columns: etcdutl-3.5 (every bucket entry), etcdutl-3.6 (live
        /// user keys and VERSION, as 3.7 too), or auto (3.6 for files etcd 3.6+ wrote or on a
        /// node whose manifest image is 3.6+, else 3.5)
        #[arg(long, value_enum, default_value = "auto", value_name = "RULES")]
        rules: StatusRules,
        #[command(flatten)]
        read: ReadTimeout,
    },
    /// Offline: build a data directory that etcd starts from
    Restore(RestoreArgs),
    /// Offline: check a snapshot (sidecar, sha256 trailer, bbolt integrity, etcd's schema), or
    /// with --chain a revision log; exit 1 when a check fails
    Verify {
        /// Snapshot file, a .zst/.age file, or an s3:// object
        #[arg(value_name = "SOURCE")]
        source: String,
        /// age identity or unencrypted ssh private key, for encrypted snapshots
        #[arg(long, value_name = "FILE")]
        identity: Vec<PathBuf>,
        /// Also restore it into a private temporary directory and start a real etcd on it
        #[arg(long)]
        boot: bool,
        /// The etcd binary for --boot [default: etcd in PATH, then /usr/local/bin/etcd]
        #[arg(long, value_name = "PATH", requires = "boot")]
        etcd: Option<PathBuf>,
        /// SOURCE is a DIR/ or s3:// prefix: check every revision-log chain there (sidecars,
        /// hash chain, every segment's sha256 and records, no revision missing or repeated)
        #[arg(long, conflicts_with = "boot")]
        chain: bool,
        #[command(flatten)]
        read: ReadTimeout,
    },
    /// The snapshots etcdops saved in DIR/ or s3://BUCKET/PREFIX/ (oldest first); or, for one
    /// snapshot, the live keys it holds
    Ls(LsArgs),
    /// Offline: one key's value in a snapshot
    Get(GetArgs),
    /// Offline: keys added, removed and changed between two snapshots
    Diff(DiffArgs),
    /// Delete saved snapshots that no retention rule keeps (each rule applies on its own)
    Prune(PruneArgs),
}

#[derive(Debug, Args)]
pub struct FollowArgs {
    /// DIR/ or s3://BUCKET[/PREFIX/] (as for `snapshot save`)
    #[arg(value_name = "DEST")]
    pub dest: String,
    /// Write a segment this often (and when 16 MiB of changes wait)
    #[arg(long, default_value = "10s", value_name = "DURATION")]
    pub flush: String,
    /// Start a new chain with a new base snapshot this often, so that restores stay short
    /// [default: never]
    #[arg(long, value_name = "DURATION")]
    pub base_every: Option<String>,
    /// Compress bases and segments with zstd; LEVEL 1-19, default 3
    #[arg(long, value_name = "zstd[:LEVEL]")]
    pub compress: Option<String>,
    /// Encrypt bases and segments with age to this recipient; repeat for several
    #[arg(long, value_name = "RECIPIENT")]
    pub encrypt_to: Vec<String>,
    /// Choose among every member's client URLs (leader first) instead of --endpoints alone
    #[arg(long)]
    pub cluster: bool,
    /// Abort a base save when no data arrives for this long
    #[arg(long, default_value = "30s", value_name = "DURATION")]
    pub stall_timeout: String,
    /// After every segment, write the log's revision, time and lag to FILE in the Prometheus
    /// text format (node-exporter's textfile collector)
    #[arg(long, value_name = "FILE")]
    pub metrics_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PutBackArgs {
    /// A snapshot (file, .zst/.age, s3:// object), or DIR/ or s3://BUCKET/PREFIX/ with a
    /// revision log
    #[arg(value_name = "SOURCE")]
    pub source: String,
    /// The keys to put back: every key starting with this [default with --namespace:
    /// /registry/]
    #[arg(long, value_name = "P", required_unless_present = "namespace")]
    pub prefix: Option<String>,
    /// Only the Kubernetes objects of this namespace (/registry/RESOURCE/NS/NAME, and the
    /// namespace itself): what `kubectl delete namespace NS` deleted
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
    /// The keys as they were at this revision [default: the newest point]
    #[arg(long, value_name = "REVISION", conflicts_with = "to_time")]
    pub to_revision: Option<i64>,
    /// From a revision log: as they were at this time (RFC 3339)
    #[arg(long, value_name = "TIME")]
    pub to_time: Option<String>,
    /// From a revision log in a store that holds several clusters' logs: this cluster's
    #[arg(long, value_name = "ID")]
    pub cluster_id: Option<String>,
    /// From a revision log that several control planes' followers write: this node's chains
    /// (the NODE that `snapshot ls` shows)
    #[arg(long, value_name = "NAME")]
    pub node: Option<String>,
    /// Say what would be put back and what is skipped; write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// age identity or unencrypted ssh private key, for encrypted snapshots and segments
    #[arg(long, value_name = "FILE")]
    pub identity: Vec<PathBuf>,
    #[command(flatten)]
    pub read: ReadTimeout,
}

#[derive(Debug, Args)]
pub struct LogArgs {
    /// DIR/ or s3://BUCKET[/PREFIX/] holding a revision log
    #[arg(value_name = "SOURCE")]
    pub source: String,
    /// The key (as `etcdctl get KEY`); with --prefix every key starting with it [default:
    /// every key]
    #[arg(value_name = "KEY")]
    pub log_key: Option<String>,
    /// KEY is a prefix
    #[arg(long)]
    pub prefix: bool,
    /// Changes received at or after this time (RFC 3339)
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Changes received at or before this time (RFC 3339)
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// age identity or unencrypted ssh private key, for encrypted segments
    #[arg(long, value_name = "FILE")]
    pub identity: Vec<PathBuf>,
    #[command(flatten)]
    pub read: ReadTimeout,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// DIR/ or s3://BUCKET[/PREFIX/] (saved snapshots), or one snapshot (its keys)
    #[arg(value_name = "LOCATION|SOURCE")]
    pub location: String,
    /// Only keys starting with P
    #[arg(long, value_name = "P")]
    pub prefix: Option<String>,
    /// The keyspace at revision N instead of the latest
    #[arg(long, value_name = "N")]
    pub rev: Option<i64>,
    /// Keys only (the table's key column; JSON without values)
    #[arg(long)]
    pub keys_only: bool,
    /// Include the values in JSON (base64, as etcdctl)
    #[arg(long, conflicts_with = "keys_only")]
    pub values: bool,
    /// Count and bytes per Kubernetes resource and per namespace, the biggest first
    #[arg(long)]
    pub summary: bool,
    /// DIR/ or s3://: exit 1 when the newest verified point (a snapshot, or the revision log's
    /// last segment) is older than this, for a monitoring check
    #[arg(long, value_name = "DURATION")]
    pub max_age: Option<String>,
    /// age identity or unencrypted ssh private key, for encrypted snapshots
    #[arg(long, value_name = "FILE")]
    pub identity: Vec<PathBuf>,
    #[command(flatten)]
    pub read: ReadTimeout,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    /// Snapshot file, a .zst/.age file, or an s3:// object
    #[arg(value_name = "SOURCE")]
    pub source: String,
    /// The key whose value to print
    #[arg(id = "get_key", value_name = "KEY")]
    pub key: String,
    /// The value at revision N instead of the latest
    #[arg(long, value_name = "N")]
    pub rev: Option<i64>,
    /// Write the value's exact bytes and nothing else
    #[arg(long, conflicts_with = "decode")]
    pub print_value_only: bool,
    /// Show a Kubernetes object: kind, name, namespace (protobuf), pretty JSON, or what it is
    #[arg(long)]
    pub decode: bool,
    /// age identity or unencrypted ssh private key, for encrypted snapshots
    #[arg(long, value_name = "FILE")]
    pub identity: Vec<PathBuf>,
    #[command(flatten)]
    pub read: ReadTimeout,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The earlier snapshot (e.g. the backup you are about to restore): a file, .zst/.age, or
    /// an s3:// object
    #[arg(value_name = "OLD")]
    pub old: String,
    /// The later snapshot (e.g. one saved just now): what restoring OLD would lose is the
    /// difference
    #[arg(value_name = "NEW")]
    pub new: String,
    /// Only keys starting with P
    #[arg(long, value_name = "P")]
    pub prefix: Option<String>,
    /// Counts per Kubernetes resource instead of one line per key
    #[arg(long)]
    pub summary: bool,
    /// age identity or unencrypted ssh private key, for encrypted snapshots
    #[arg(long, value_name = "FILE")]
    pub identity: Vec<PathBuf>,
    #[command(flatten)]
    pub read: ReadTimeout,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// DIR/ or s3://BUCKET[/PREFIX/]
    #[arg(value_name = "LOCATION")]
    pub location: String,
    /// Keep the N newest snapshots
    #[arg(long, value_name = "N")]
    pub keep_last: Option<usize>,
    /// Keep the newest snapshot of each of the last H hours that have one
    #[arg(long, value_name = "H")]
    pub keep_hourly: Option<usize>,
    /// Keep the newest snapshot of each of the last D days that have one
    #[arg(long, value_name = "D")]
    pub keep_daily: Option<usize>,
    /// Keep the newest snapshot of each of the last W ISO weeks that have one
    #[arg(long, value_name = "W")]
    pub keep_weekly: Option<usize>,
    /// Keep the newest snapshot of each of the last M months that have one
    #[arg(long, value_name = "M")]
    pub keep_monthly: Option<usize>,
    /// Keep every point of the last D restorable: the snapshots of the window, the newest
    /// before it, and the revision-log segments of every kept base (e.g. 7d)
    #[arg(long, value_name = "D")]
    pub keep_within: Option<String>,
    /// Print what would be deleted and why the rest is kept; delete nothing
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub read: ReadTimeout,
}

#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Print the unit files or the CronJob manifest on stdout
    Print(SchedulePrintArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScheduleKind {
    /// etcdops-snapshot.service + etcdops-snapshot.timer
    Systemd,
    /// A Kubernetes CronJob for a kubeadm control plane
    Cronjob,
}

/// What a schedule runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScheduleJob {
    /// `snapshot save` on a schedule (a timer, a CronJob)
    Save,
    /// `snapshot follow`, always running (a service with Restart=always, a Deployment)
    Follow,
}

#[derive(Debug, Args)]
pub struct SchedulePrintArgs {
    #[arg(value_enum)]
    pub kind: ScheduleKind,
    /// What to run: snapshot save on a schedule, or snapshot follow all the time
    #[arg(value_enum, default_value = "save")]
    pub job: ScheduleJob,
    /// How often, e.g. 1h, 30m, 1d [default: 1h]
    #[arg(long, value_name = "DURATION", conflicts_with = "on_calendar")]
    pub every: Option<String>,
    /// A systemd OnCalendar= spec (systemd only), e.g. "*-*-* 02:00:00"
    #[arg(long, value_name = "SPEC")]
    pub on_calendar: Option<String>,
    /// Write the files into DIR (e.g. /etc/systemd/system) instead of printing them
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// The container image that holds etcdops (cronjob only): the project's release image,
    /// built from the Containerfile
    #[arg(long, value_name = "IMAGE", default_value = concat!("ghcr.io/etcdops/etcdops:", env!("CARGO_PKG_VERSION")))]
    pub image: String,
    /// The `snapshot save` (or `snapshot follow`) arguments, after --
    #[arg(last = true, required = true, value_name = "SAVE-ARGS")]
    pub save_args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// Snapshot file to restore, a .zst/.age file, an s3:// object, or DIR/ or
    /// s3://BUCKET/PREFIX/ with a revision log (the newest point, or --to-revision/--to-time)
    #[arg(value_name = "SOURCE", required_unless_present = "from_manifest")]
    pub file: Option<String>,
    /// From a revision log (SOURCE DIR/ or s3://…/): the keyspace as it was at this revision
    #[arg(long, value_name = "REVISION", conflicts_with = "to_time")]
    pub to_revision: Option<i64>,
    /// From a revision log: the last revision received at or before this time (RFC 3339,
    /// fractions of a second allowed)
    #[arg(long, value_name = "TIME")]
    pub to_time: Option<String>,
    /// From a revision log in a store that holds several clusters' logs: this cluster's (the
    /// ID `snapshot ls` shows)
    #[arg(long, value_name = "ID")]
    pub cluster_id: Option<String>,
    /// From a revision log that several control planes' followers write: this node's chains
    /// (the NODE that `snapshot ls` shows)
    #[arg(long, value_name = "NAME")]
    pub node: Option<String>,
    /// age identity or unencrypted ssh private key, for encrypted snapshots
    #[arg(long, value_name = "FILE")]
    pub identity: Vec<PathBuf>,
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
    /// The etcd release that will run the restored data (refused when the data needs a newer
    /// one) [default: the manifest's image tag with --from-manifest]
    #[arg(long, value_name = "X.Y[.Z]")]
    pub etcd_version: Option<String>,
    #[command(flatten)]
    pub read: ReadTimeout,
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
pub struct CertRenewArgs {
    /// Certificates to renew [default: the manifest's server and peer certificates, the
    /// healthcheck client beside them, and the apiserver's apiserver-etcd-client]
    pub paths: Vec<PathBuf>,
    /// The CA certificate to sign with [default: the one whose key verifies each certificate]
    #[arg(long, value_name = "CERT", requires = "ca_key")]
    pub ca: Option<PathBuf>,
    /// The CA's private key
    #[arg(long, value_name = "KEY", requires = "ca")]
    pub ca_key: Option<PathBuf>,
    /// Validity of the renewed certificates, in days (capped at the CA's expiry)
    #[arg(long, default_value_t = 365, value_name = "N")]
    pub days: i64,
    /// Generate a new key of the same algorithm and size for each certificate (default: keep
    /// the key, so nothing that pins it breaks and a crash can never leave a mismatched pair)
    #[arg(long)]
    pub new_key: bool,
    /// Print what would change (not-after before and after, SANs); write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Where the old files are copied [default: /var/backups/etcdops-certs-TIMESTAMP]
    #[arg(long, value_name = "DIR")]
    pub backup_dir: Option<PathBuf>,
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

/// The etcd connection flags: what an offline command's help leaves out.
const CONNECTION: [&str; 9] = [
    "endpoints",
    "cacert",
    "cert",
    "key",
    "insecure_skip_tls_verify",
    "user",
    "password",
    "dial_timeout",
    "command_timeout",
];
const OBJECT_STORAGE: [&str; 5] = [
    "s3_endpoint",
    "s3_region",
    "s3_endpoint_ca",
    "s3_skip_ssl_verify",
    "s3_bucket_lookup",
];
/// Commands that never talk to etcd (paths of subcommand names).
const OFFLINE: [&[&str]; 11] = [
    &["snapshot", "status"],
    &["snapshot", "log"],
    &["snapshot", "verify"],
    &["snapshot", "restore"],
    &["snapshot", "ls"],
    &["snapshot", "get"],
    &["snapshot", "diff"],
    &["snapshot", "prune"],
    &["schedule", "print"],
    &["manifest-read"],
    &["completion"],
];
/// Commands that never read or write object storage.
const NO_OBJECT_STORAGE: [&[&str]; 18] = [
    &["health"],
    &["status"],
    &["members"],
    &["endpoint", "health"],
    &["endpoint", "status"],
    &["endpoint", "hashkv"],
    &["member", "list"],
    &["alarm", "list"],
    &["alarm", "disarm"],
    &["compact"],
    &["defrag"],
    &["recover-space"],
    &["check", "consistency"],
    &["cert-expiry"],
    &["cert-renew"],
    &["manifest-read"],
    &["completion"],
    &["schedule", "print"],
];

/// The command line as parsed and as `--help` shows it, for `argv`: each command lists its own
/// flags first, then the global ones under their headings, and leaves out the groups it never
/// uses (an offline command shows no etcd connection flags; they are still accepted). Hiding
/// changes only the help, so the same parse results whichever groups are hidden.
pub fn command(argv: &[std::ffi::OsString]) -> clap::Command {
    use clap::CommandFactory;
    let words: Vec<&str> = argv
        .iter()
        .filter_map(|a| a.to_str())
        .filter(|a| !a.starts_with('-'))
        .collect();
    let names = |path: &[&str]| words.windows(path.len()).any(|w| w == path);
    let mut hidden: Vec<&str> = Vec::new();
    if OFFLINE.iter().any(|p| names(p)) {
        hidden.extend(CONNECTION);
    }
    if NO_OBJECT_STORAGE.iter().any(|p| names(p)) {
        hidden.extend(OBJECT_STORAGE);
    }
    let mut cmd = Cli::command();
    for id in hidden {
        cmd = cmd.mut_arg(id, |a| a.hide(true));
    }
    cmd
}
