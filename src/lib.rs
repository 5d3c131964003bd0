//! etcdops: one binary to keep etcd alive. `main.rs` parses arguments and calls [`run`]; this
//! crate resolves settings once, dispatches to a command, and renders its report.
//!
//! See docs/architecture.md for the module map and how a request flows through it.

pub mod bolt;
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
pub mod settings;
pub mod snap;
pub mod units;
pub mod wal;

use anyhow::{Context, Result};
use clap::CommandFactory;

use crate::cli::Cli;
use crate::client::{targets, Connector};
use crate::exit::Outcome;
use crate::settings::{ConnSettings, Job, ManifestView, Settings};

/// Run one invocation. `env` is the process environment (taken once, in `main`).
pub fn run(cli: Cli, env: Vec<(String, String)>) -> Result<Outcome> {
    let Settings {
        output: format,
        verbose,
        job,
    } = Settings::resolve(cli, env)?;
    match job {
        Job::Health { conn, cluster } => online(&conn, verbose, |connector, targets| async move {
            let (report, outcome) = commands::health::run(&connector, targets, cluster).await;
            output::emit(format, &report)?;
            Ok(outcome)
        }),
        Job::Status { conn, cluster } => online(&conn, verbose, |connector, targets| async move {
            let (report, outcome) = commands::status::run(&connector, targets, cluster).await;
            output::emit(format, &report)?;
            Ok(outcome)
        }),
        Job::Members { conn, hex } => online(&conn, verbose, |connector, targets| async move {
            let report = commands::members::run(&connector, &targets, hex).await?;
            output::emit(format, &report)?;
            Ok(Outcome::Ok)
        }),
        Job::SnapshotSave { conn, save } => {
            online(&conn, verbose, |connector, targets| async move {
                let report = commands::snapshot_save::run(&connector, targets, &save).await?;
                if save.to_stdout {
                    // stdout carries the snapshot itself; the report goes to stderr.
                    output::write_report(&mut std::io::stderr().lock(), format, &report)?;
                } else {
                    output::emit(format, &report)?;
                }
                Ok(Outcome::Ok)
            })
        }
        Job::SnapshotStatus(s) => {
            let (report, outcome) = commands::snapshot_status::run(&s)?;
            output::emit(format, &report)?;
            Ok(outcome)
        }
        Job::SnapshotRestore(s) => {
            let report = commands::snapshot_restore::run(&s)?;
            output::emit(format, &report)?;
            Ok(Outcome::Ok)
        }
        Job::CertExpiry(s) => {
            let (report, outcome) = runtime()?.block_on(commands::cert_expiry::run(&s))?;
            output::emit(format, &report)?;
            Ok(outcome)
        }
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
            clap_complete::generate(shell, &mut Cli::command(), "etcdops", &mut script);
            output::emit_text(&String::from_utf8_lossy(&script))?;
            Ok(Outcome::Ok)
        }
    }
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
