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

use anyhow::{bail, Context, Result};
use clap::CommandFactory;

use crate::cli::{Cli, ClusterArgs, Command, EndpointCommand, MemberCommand, SnapshotCommand};
use crate::client::{targets, Connector};
use crate::exit::Outcome;
use crate::settings::Settings;

/// Run one invocation. `env` is the process environment (taken once, in `main`).
pub fn run(cli: Cli, env: Vec<(String, String)>) -> Result<Outcome> {
    let settings = Settings::new(cli.global, env)?;
    match cli.command {
        Command::Health(args) | Command::Endpoint(EndpointCommand::Health(args)) => {
            online(&settings, |connector, targets| async move {
                let (report, outcome) =
                    commands::health::run(&connector, targets, args.cluster).await;
                output::emit(settings.output, &report)?;
                Ok(outcome)
            })
        }
        Command::Status(args) | Command::Endpoint(EndpointCommand::Status(args)) => {
            online(&settings, |connector, targets| async move {
                let ClusterArgs { cluster } = args;
                let (report, outcome) = commands::status::run(&connector, targets, cluster).await;
                output::emit(settings.output, &report)?;
                Ok(outcome)
            })
        }
        Command::Members | Command::Member(MemberCommand::List) => {
            online(&settings, |connector, targets| async move {
                let report = commands::members::run(&connector, &targets).await?;
                output::emit(settings.output, &report)?;
                Ok(Outcome::Ok)
            })
        }
        Command::Snapshot(SnapshotCommand::Save {
            file,
            cluster,
            stall_timeout,
            timeout,
        }) => {
            let opts = commands::snapshot_save::SaveOptions {
                stall_timeout: units::parse_go_duration(&stall_timeout)
                    .context("--stall-timeout")?,
                timeout: timeout
                    .map(|t| units::parse_go_duration(&t).context("--timeout"))
                    .transpose()?,
                to_stdout: file.as_os_str() == "-",
                file,
                cluster,
            };
            online(&settings, |connector, targets| async move {
                let report = commands::snapshot_save::run(&connector, targets, &opts).await?;
                if opts.to_stdout {
                    // stdout carries the snapshot itself; the report goes to stderr.
                    let mut err = std::io::stderr().lock();
                    output::write_report(&mut err, settings.output, &report)?;
                } else {
                    output::emit(settings.output, &report)?;
                }
                Ok(Outcome::Ok)
            })
        }
        Command::Snapshot(SnapshotCommand::Status {
            file,
            skip_check,
            skip_hash_check,
        }) => {
            let checks = etcd::status::Checks {
                integrity: !skip_check,
                hash: !skip_hash_check,
            };
            let (report, outcome) = commands::snapshot_status::run(&file, checks)?;
            output::emit(settings.output, &report)?;
            Ok(outcome)
        }
        Command::Snapshot(SnapshotCommand::Restore(args)) => restore(&settings, args),
        Command::CertExpiry(args) => cert_expiry(&settings, args),
        Command::ManifestRead(args) => {
            let path = settings.manifest_path_or_default();
            let report = commands::manifest_read::read(&path)?;
            if args.env {
                output::emit_text(&report.env())?;
            } else if args.commands {
                output::emit_text(&report.commands())?;
            } else {
                output::emit(settings.output, &report)?;
            }
            Ok(Outcome::Ok)
        }
        Command::Completion { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "etcdops", &mut script);
            output::emit_text(&String::from_utf8_lossy(&script))?;
            Ok(Outcome::Ok)
        }
    }
}

fn restore(settings: &Settings, args: cli::RestoreArgs) -> Result<Outcome> {
    use commands::snapshot_restore as r;
    let manifest = match (&args.from_manifest, args.update_manifest) {
        (Some(Some(path)), _) => Some(manifest::Manifest::load(path)?),
        (Some(None), _) | (None, true) => {
            let path = settings.manifest_path_or_default();
            Some(manifest::Manifest::load(&path)?)
        }
        (None, false) => None,
    };
    let from = |flag: &str| {
        manifest
            .as_ref()
            .and_then(|m| m.flag(flag))
            .map(str::to_string)
    };
    let mut data_dir = args.data_dir;
    if data_dir.is_none() {
        if let Some(m) = &manifest {
            data_dir = Some(manifest::edit::sibling_data_dir(m)?);
        }
    }
    let opts = r::RestoreOptions {
        file: args.file,
        data_dir,
        wal_dir: args.wal_dir,
        name: args
            .name
            .or_else(|| from("name"))
            .unwrap_or_else(|| "default".into()),
        initial_cluster: args.initial_cluster,
        from_manifest: manifest.is_some(),
        manifest_cluster: from("initial-cluster"),
        initial_cluster_token: args
            .initial_cluster_token
            .or_else(|| from("initial-cluster-token"))
            .unwrap_or_else(|| commands::manifest_read::DEFAULT_TOKEN.into()),
        initial_advertise_peer_urls: args
            .initial_advertise_peer_urls
            .or_else(|| from("initial-advertise-peer-urls"))
            .unwrap_or_else(|| "http://localhost:2380".into()),
        skip_hash_check: args.skip_hash_check,
        bump_revision: args.bump_revision,
        mark_compacted: args.mark_compacted,
        update_manifest: args.update_manifest,
    };
    // Everything is decided and checked (the manifest edit included) before anything is written.
    let plan = r::plan(&opts)?;
    let edit = match (&manifest, args.update_manifest) {
        (Some(m), true) => Some(manifest::edit::plan_manifest_update(m, &plan.data_dir)?),
        _ => None,
    };
    if args.dry_run {
        let mut report = plan.report(None);
        if let Some(e) = &edit {
            report.manifest = Some(e.path.display().to_string());
            report.manifest_diff = Some(e.diff());
        }
        output::emit(settings.output, &report)?;
        return Ok(Outcome::Ok);
    }
    let restored = r::run(&plan)?;
    let mut report = plan.report(Some(&restored));
    if let Some(e) = edit {
        let backup = e.apply()?;
        report.notes.extend(e.next_steps(&backup));
        report.manifest = Some(e.path.display().to_string());
        report.manifest_backup = Some(backup.display().to_string());
    }
    for note in &report.notes {
        eprintln!("{note}");
    }
    output::emit(settings.output, &report)?;
    Ok(Outcome::Ok)
}

fn cert_expiry(settings: &Settings, args: cli::CertExpiryArgs) -> Result<Outcome> {
    use commands::cert_expiry;
    let now = settings.now()?;
    for p in &args.paths {
        if !p.exists() {
            bail!("{}: no such file or directory", p.display());
        }
    }
    let mut paths = if args.paths.is_empty() {
        pki::default_paths()
    } else {
        args.paths
    };
    if let Some(path) = settings.manifest_path() {
        let manifest = manifest::Manifest::load(&path)?;
        paths.extend(
            manifest
                .certificate_files()
                .into_iter()
                .filter(|p| p.exists()),
        );
    }
    let mut scan = pki::Scan::paths(&paths);

    // Live endpoints, when they are configured (not the bare built-in default).
    let conn = settings.connection()?;
    if conn.endpoints.source != settings::Source::Default {
        let targets = targets(&conn)?;
        let runtime = runtime()?;
        for target in &targets {
            match runtime.block_on(client::served_certificate(&conn, target)) {
                Ok(der) => scan.served(&target.endpoint, der),
                Err(e) => scan.errors.push(pki::ScanError {
                    path: target.endpoint.clone(),
                    error: e.to_string(),
                }),
            }
        }
    }
    scan.check_wiring();
    let (report, outcome) = cert_expiry::judge(scan, now, args.warn_days)?;
    output::emit(settings.output, &report)?;
    Ok(outcome)
}

/// Resolve connection settings, load TLS material, then run `body` on a runtime.
fn online<F, Fut>(settings: &Settings, body: F) -> Result<Outcome>
where
    F: FnOnce(Connector, Vec<client::Target>) -> Fut,
    Fut: std::future::Future<Output = Result<Outcome>>,
{
    let conn = settings.connection()?;
    if settings.verbose {
        for line in conn.describe() {
            eprintln!("etcdops: {line}");
        }
    }
    let targets = targets(&conn)?;
    let connector = Connector::new(&conn, &targets)?;
    runtime()?.block_on(body(connector, targets))
}

/// One thread is plenty for a CLI that waits on a few sockets, and it keeps memory low.
fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}
