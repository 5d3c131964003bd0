//! Second stage of argument handling: the command line (clap's `Cli`), the environment
//! (`ETCDCTL_*`, `ETCDOPS_*`) and the etcd static-pod manifest are merged here, once, into the
//! typed settings of the one job this invocation does ([`Job`]). Precedence per setting:
//! flag > environment > manifest > built-in default. A flag and an environment variable that
//! disagree are not an error (unlike etcdctl): the flag wins, and `-v` says so.
//!
//! Commands receive these types and never see clap's. The manifest is read at most once, and
//! only when some setting still needs it. The environment is passed in, so that tests never
//! depend on the process environment.
//!
//! Rooms: `types` (what commands receive), `resolver` (flags over environment over
//! manifest, one command at a time), `connection` (how to reach etcd and the object store,
//! with what the manifest adds).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;

use crate::cli::Cli;
use crate::output::OutputFormat;

mod connection;
mod resolver;
mod types;

pub use types::*;

pub const DEFAULT_MANIFEST: &str = "/etc/kubernetes/manifests/etcd.yaml";
const DEFAULT_ENDPOINT: &str = "127.0.0.1:2379";
const DEFAULT_DIAL_TIMEOUT: Duration = Duration::from_secs(2);
const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

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
    SnapshotList(ListSettings),
    SnapshotPrune(PruneSettings),
    SnapshotLog(LogSettings),
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
    SnapshotFollow(Box<FollowSettings>),
    SnapshotPutBack(Box<PutBackSettings>),
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

impl Settings {
    /// Resolve the settings of the job `cli` asks for. `env` is the process environment (or a
    /// test's).
    pub fn resolve(cli: Cli, env: Vec<(String, String)>) -> Result<Settings> {
        let mut r = resolver::Resolver::new(cli.global, env, PathBuf::from(DEFAULT_MANIFEST));
        let output = r.output()?;
        let job = r.job(cli.command)?;
        Ok(Settings {
            output,
            verbose: r.global.verbose,
            job,
        })
    }
}

#[cfg(test)]
mod tests;
