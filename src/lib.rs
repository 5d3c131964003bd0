//! etcdops: one binary to keep etcd alive. `main.rs` parses arguments and calls [`run`]; this
//! crate resolves settings once, dispatches to a command, and renders its report.
//!
//! See docs/architecture.md for the module map and how a request flows through it.

pub mod bolt;
pub mod buf;
pub mod cli;
pub mod client;
pub mod commands;
pub mod etcd;
pub mod exit;
pub mod fsutil;
pub mod manifest;
pub mod output;
pub mod pki;
pub mod proto;
pub mod regular;
pub mod release;
pub mod remote;
pub mod revlog;
pub mod settings;
pub mod snap;
pub mod text;
pub mod timestamp;
pub mod tls;
pub mod units;
pub mod wal;

use anyhow::{Context, Result};

use crate::cli::Cli;
use crate::client::{targets, Connector};
use crate::exit::Outcome;
use crate::output::{OutputFormat, Report};
use crate::settings::{ConnSettings, Job, ManifestView, OnlineJob, SaveDest, Settings};

/// Run one invocation. `env` is the process environment (taken once, in `main`).
pub fn run(cli: Cli, env: Vec<(String, String)>) -> Result<Outcome> {
    let Settings {
        output: format,
        verbose,
        job,
    } = Settings::resolve(cli, env)?;
    if !matches!(job, Job::Online { .. }) {
        // (A save, the one online job that writes, handles its own signals.)
        fsutil::remove_temporaries_on_signals()?;
        fsutil::catch_file_size_signal()?;
    }
    match job {
        Job::SnapshotStatus(s) => shown(format, commands::snapshot_status::run(&s)?),
        Job::SnapshotRestore(s) => {
            shown(format, (commands::snapshot_restore::run(&s)?, Outcome::Ok))
        }
        Job::SnapshotVerify(s) => shown(format, commands::snapshot_verify::run(&s)?),
        Job::SnapshotKeys(s) => shown(format, (commands::inspect::keys::run(&s)?, Outcome::Ok)),
        Job::SnapshotGet(s) => {
            let report = commands::inspect::get::run(&s)?;
            if report.keyspace.kvs.is_empty() {
                return Ok(Outcome::Bad(format!(
                    "key {} is not in the snapshot at revision {}",
                    crate::text::escape(&String::from_utf8_lossy(&s.key)),
                    report.keyspace.revision
                )));
            }
            if s.print_value_only {
                // etcdctl prints the value and a newline; byte for byte the same here.
                let mut bytes = report.value().to_vec();
                bytes.push(b'\n');
                output::emit_bytes(&bytes)?;
                Ok(Outcome::Ok)
            } else {
                shown(format, (report, Outcome::Ok))
            }
        }
        Job::SnapshotDiff(s) => shown(format, (commands::inspect::diff::run(&s)?, Outcome::Ok)),
        Job::SnapshotList(s) => shown(format, runtime()?.block_on(commands::snapshot_ls::run(&s))?),
        Job::SnapshotLog(s) => shown(
            format,
            (
                runtime()?.block_on(commands::inspect::log::run(&s))?,
                Outcome::Ok,
            ),
        ),
        Job::SnapshotPrune(s) => shown(
            format,
            runtime()?.block_on(commands::snapshot_prune::run(&s))?,
        ),
        Job::SchedulePrint(s) => {
            output::emit_text(&commands::schedule::run(&s, s.dir.as_deref())?)?;
            Ok(Outcome::Ok)
        }
        Job::CertRenew(s) => shown(format, runtime()?.block_on(commands::cert_renew::run(&s))?),
        Job::CertExpiry(s) => shown(format, runtime()?.block_on(commands::cert_expiry::run(&s))?),
        Job::ManifestRead(s) => {
            let report = commands::manifest_read::read(&s.path)?;
            match s.view {
                ManifestView::Env => output::emit_text(&report.env())?,
                ManifestView::Commands => output::emit_text(&report.commands())?,
                ManifestView::Report => output::emit(format, &report)?,
            }
            Ok(Outcome::Ok)
        }
        Job::Completion(shell) => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cli::command(&[]), "etcdops", &mut script);
            output::emit_text(&String::from_utf8_lossy(&script))?;
            Ok(Outcome::Ok)
        }
        Job::Online { conn, job } => run_online(&conn, job, format, verbose),
    }
}

/// Render a command's report; its outcome decides the exit code.
fn shown(format: OutputFormat, (report, outcome): (impl Report, Outcome)) -> Result<Outcome> {
    output::emit(format, &report)?;
    Ok(outcome)
}

/// A job that talks to etcd.
fn run_online(
    conn: &ConnSettings,
    job: OnlineJob,
    format: OutputFormat,
    verbose: bool,
) -> Result<Outcome> {
    use commands::*;
    let etcdctl_flags = conn.etcdctl_flags();
    online(conn, verbose, |c, targets| async move {
        match job {
            OnlineJob::Health { cluster, wait } => {
                let wait = wait.map(|(limit, revision)| health::Wait { limit, revision });
                shown(format, health::run(&c, targets, cluster, wait).await)
            }
            OnlineJob::Status { cluster } => shown(format, status::run(&c, targets, cluster).await),
            OnlineJob::Members { hex } => shown(
                format,
                (members::run(&c, &targets, hex).await?, Outcome::Ok),
            ),
            OnlineJob::SnapshotSave(save) => {
                let report = snapshot_save::run(&c, targets, &save).await?;
                let outcome = match &report.prune_failed {
                    Some(why) => Outcome::Incomplete(
                        format!("the snapshot is saved and complete, but --keep failed: {why}"),
                        crate::remote::prune::REFUSED_HINT.to_string(),
                    ),
                    None => Outcome::Ok,
                };
                if save.dest == SaveDest::Stdout {
                    // stdout carries the snapshot itself; the report goes to stderr.
                    output::write_report(&mut std::io::stderr().lock(), format, &report)?;
                    Ok(outcome)
                } else {
                    shown(format, (report, outcome))
                }
            }
            OnlineJob::SnapshotFollow(follow) => shown(
                format,
                (
                    snapshot_save::follow::run(&c, targets, &follow).await?,
                    Outcome::Ok,
                ),
            ),
            OnlineJob::SnapshotPutBack(p) => {
                shown(format, (put_back::run(&c, targets, &p).await?, Outcome::Ok))
            }
            OnlineJob::AlarmList => shown(
                format,
                (alarm::run(&c, &targets, false).await?, Outcome::Ok),
            ),
            OnlineJob::AlarmDisarm => {
                shown(format, (alarm::run(&c, &targets, true).await?, Outcome::Ok))
            }
            OnlineJob::Compact { revision, physical } => shown(
                format,
                (
                    compact::run(&c, &targets, revision, physical).await?,
                    Outcome::Ok,
                ),
            ),
            OnlineJob::Defrag { cluster, force } => {
                shown(format, defrag::run(&c, targets, cluster, force).await?)
            }
            OnlineJob::RecoverSpace { dry_run, force } => shown(
                format,
                recover_space::run(&c, targets, dry_run, force, &etcdctl_flags).await?,
            ),
            OnlineJob::CheckConsistency { cluster, revision } => shown(
                format,
                check_consistency::run(&c, targets, cluster, revision).await?,
            ),
        }
    })
}

/// Load TLS material for the configured endpoints, then run `body` on a runtime.
fn online<F, Fut>(conn: &ConnSettings, verbose: bool, body: F) -> Result<Outcome>
where
    F: FnOnce(Connector, Vec<client::Target>) -> Fut,
    Fut: std::future::Future<Output = Result<Outcome>>,
{
    if verbose {
        for line in conn.describe() {
            eprintln!("etcdops: {line}");
        }
    }
    if conn.insecure_skip_tls_verify.value {
        eprintln!(
            "warning: {}: the servers' certificates are not checked; anyone between here and etcd can pose as it",
            conn.insecure_skip_tls_verify.source
        );
    }
    let targets = targets(conn)?;
    let connector = Connector::new(conn, &targets)?;
    let result = runtime()?.block_on(body(connector, targets));
    // Nothing was configured and nothing answered: say where we looked.
    if conn.endpoints.source != settings::Source::Default {
        return result;
    }
    let hint = format!(
        "no --endpoints, ETCDCTL_ENDPOINTS or etcd manifest was found (looked for {}); if it was moved out of the manifests directory, pass --manifest PATH",
        settings::DEFAULT_MANIFEST
    );
    match result {
        Ok(outcome) => Ok(outcome.hinted(hint)),
        Err(error) => Err(exit::Hinted { error, hint }.into()),
    }
}

/// One thread is plenty for a CLI that waits on a few sockets, and it keeps memory low.
fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}
