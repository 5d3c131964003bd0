//! Flags over environment over manifest over defaults, resolved once per command.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use crate::cli::{
    AlarmCommand, CertExpiryArgs, CertRenewArgs, CheckCommand, ClusterArgs, Command,
    EndpointCommand, GlobalArgs, ManifestReadArgs, MemberCommand, PruneArgs, ReadTimeout,
    RestoreArgs, ScheduleCommand, ScheduleJob, ScheduleKind, SnapshotCommand, WriteOut,
};
use crate::etcd::stored_members::DEFAULT_TOKEN;
use crate::manifest::Manifest;
use crate::output::OutputFormat;
use crate::remote::retention::Policy;
use crate::remote::source::SourceSettings;
use crate::remote::Location;
use crate::timestamp::parse_rfc3339;
use crate::units::{parse_bool, parse_duration_days, parse_go_duration};

use super::*;

/// The manifest, found and read at most once.
pub(super) struct ManifestSource {
    /// `--manifest`, `ETCDOPS_MANIFEST`, or the kubeadm default when it exists.
    path: Option<PathBuf>,
    /// Which of them named it.
    named_by: &'static str,
    loaded: Option<Manifest>,
}

impl ManifestSource {
    pub(super) fn get(&mut self) -> Result<Option<&Manifest>> {
        if self.loaded.is_none() {
            if let Some(path) = &self.path {
                let loaded = Manifest::load(path).map_err(|e| {
                    let missing = !path.exists();
                    let error = anyhow::Error::from(e);
                    if !missing {
                        return error;
                    }
                    crate::exit::Hinted {
                        error,
                        hint: format!(
                            "{} names a manifest that is not there: point it at the etcd static-pod manifest, or give the connection with --endpoints, --cacert, --cert and --key (or ETCDCTL_ENDPOINTS, ETCDCTL_CACERT, ETCDCTL_CERT, ETCDCTL_KEY) instead",
                            self.named_by
                        ),
                    }
                    .into()
                })?;
                self.loaded = Some(loaded);
            }
        }
        Ok(self.loaded.as_ref())
    }

    /// The manifest a command needs: the one found, else one at `path_or_default`.
    pub(super) fn require(&mut self, path_or_default: PathBuf) -> Result<Manifest> {
        match self.get()? {
            Some(m) => Ok(m.clone()),
            None => Ok(Manifest::load(&path_or_default)?),
        }
    }
}

/// The inputs being merged: flags, environment, manifest.
pub(super) struct Resolver {
    pub(super) global: GlobalArgs,
    pub(super) env: Vec<(String, String)>,
    pub(super) manifest: ManifestSource,
}

impl Resolver {
    pub(super) fn new(
        global: GlobalArgs,
        env: Vec<(String, String)>,
        default_manifest: PathBuf,
    ) -> Resolver {
        let mut r = Resolver {
            global,
            env,
            manifest: ManifestSource {
                path: None,
                named_by: "",
                loaded: None,
            },
        };
        let (path, named_by) = match (r.global.manifest.clone(), r.env_var("ETCDOPS_MANIFEST")) {
            (Some(p), _) => (Some(p), "--manifest"),
            (None, Some(p)) => (Some(PathBuf::from(p)), "ETCDOPS_MANIFEST"),
            (None, None) => (
                default_manifest.exists().then_some(default_manifest),
                "the kubeadm default",
            ),
        };
        r.manifest.path = path;
        r.manifest.named_by = named_by;
        r
    }

    /// A non-empty environment variable (etcdctl ignores empty ones).
    pub(super) fn env_var(&self, name: &str) -> Option<String> {
        self.env
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.clone())
    }

    /// The manifest path a command reads when it needs one: as found, else the kubeadm default
    /// even when it does not exist (so that the error names it).
    pub(super) fn manifest_path_or_default(&self) -> PathBuf {
        self.manifest
            .path
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_MANIFEST))
    }

    pub(super) fn output(&self) -> Result<OutputFormat> {
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

    pub(super) fn job(&mut self, command: Command) -> Result<Job> {
        Ok(match command {
            Command::Snapshot(cmd)
                if !matches!(
                    cmd,
                    SnapshotCommand::Save { .. }
                        | SnapshotCommand::Follow(_)
                        | SnapshotCommand::PutBack(_)
                ) =>
            {
                self.offline_snapshot(cmd)?
            }
            Command::Schedule(ScheduleCommand::Print(a)) => Job::SchedulePrint(self.schedule(a)?),
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

    /// The snapshot commands that read files and object stores, not etcd.
    pub(super) fn offline_snapshot(&mut self, command: SnapshotCommand) -> Result<Job> {
        Ok(match command {
            SnapshotCommand::Status {
                file,
                identity,
                skip_check,
                skip_hash_check,
                rules,
                read,
            } => Job::SnapshotStatus(SnapshotStatusSettings {
                source: self.source(&file, identity, &read)?,
                rules,
                node_release: match rules {
                    crate::cli::StatusRules::Auto => self.node_release(),
                    _ => None,
                },
                both_counts: self.output()? == OutputFormat::Json,
                integrity: !skip_check,
                hash: !skip_hash_check,
            }),
            verify @ SnapshotCommand::Verify { .. } => Job::SnapshotVerify(self.verify(verify)?),
            SnapshotCommand::Ls(a) => {
                if Location::parse(&a.location)?.is_prefix() {
                    if a.prefix.is_some() || a.rev.is_some() || a.summary || a.keys_only || a.values
                    {
                        bail!("{}: --prefix, --rev, --keys-only, --values and --summary list the keys of one snapshot; this is a directory or prefix of snapshots", a.location);
                    }
                    Job::SnapshotList(ListSettings {
                        store: self.store(&a.location, &a.read)?,
                        max_age: a
                            .max_age
                            .map(|d| parse_duration_days(&d).context("--max-age"))
                            .transpose()?,
                    })
                } else {
                    if a.max_age.is_some() {
                        bail!(
                            "{}: --max-age checks a directory or prefix of snapshots",
                            a.location
                        );
                    }
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
            SnapshotCommand::Get(a) => Job::SnapshotGet(GetSettings {
                source: self.source(&a.source, a.identity, &a.read)?,
                key: a.key.into_bytes(),
                rev: a.rev,
                print_value_only: a.print_value_only,
                decode: a.decode,
            }),
            SnapshotCommand::Diff(a) => Job::SnapshotDiff(DiffSettings {
                old: self.source(&a.old, a.identity.clone(), &a.read)?,
                new: self.source(&a.new, a.identity, &a.read)?,
                prefix: a.prefix.unwrap_or_default().into_bytes(),
                summary: a.summary,
            }),
            SnapshotCommand::Prune(args) => Job::SnapshotPrune(self.prune(args)?),
            SnapshotCommand::Restore(args) => Job::SnapshotRestore(Box::new(self.restore(args)?)),
            SnapshotCommand::Log(a) => Job::SnapshotLog(self.log(a)?),
            SnapshotCommand::Save { .. }
            | SnapshotCommand::Follow(_)
            | SnapshotCommand::PutBack(_) => {
                bail!("snapshot save, follow and put-back talk to etcd")
            }
        })
    }

    /// The release of etcd the node's manifest runs; a manifest that cannot be read only means
    /// no preference.
    pub(super) fn node_release(&mut self) -> Option<crate::release::Release> {
        self.manifest
            .get()
            .ok()
            .flatten()
            .and_then(Manifest::image_release)
    }

    /// `schedule print`.
    pub(super) fn schedule(
        &mut self,
        a: crate::cli::SchedulePrintArgs,
    ) -> Result<ScheduleSettings> {
        let given = given_globals(&self.global);
        // A password is refused by the command itself, with where to put it instead.
        if !given.is_empty() && !self.password_given(&[]) {
            return Err(crate::exit::Hinted {
                error: anyhow::anyhow!(
                    "schedule print: {} before -- would not reach the scheduled save",
                    given.join(", ")
                ),
                hint: "put the save's flags after --, with its destination: etcdops schedule print systemd -- --endpoints URL s3://BUCKET/PREFIX/".to_string(),
            }
            .into());
        }
        let (save_args, save) = parse_save_args(a.save_args, a.job)?;
        // Read as `snapshot save` (or follow) reads them, without this shell's environment or
        // manifest: what it would refuse is refused now, not at 3 a.m.
        let inner = Resolver::new(save.0, Vec::new(), PathBuf::from("/nonexistent"));
        let password_given = inner.password_given(&[]) || self.password_given(&[]);
        let s3_endpoint_ca = inner.global.s3.s3_endpoint_ca.clone();
        let dest = match save.1 {
            _ if password_given => SaveDest::Stdout,
            SnapshotCommand::Follow(f) => inner.follow(f)?.save.dest,
            save => inner.save(save)?.dest,
        };
        if a.job == ScheduleJob::Follow && (a.every.is_some() || a.on_calendar.is_some()) {
            bail!("schedule print {} follow: snapshot follow runs all the time; --every and --on-calendar are for save", match a.kind { ScheduleKind::Systemd => "systemd", ScheduleKind::Cronjob => "cronjob" });
        }
        Ok(ScheduleSettings {
            password_given,
            kind: a.kind,
            job: a.job,
            every: a.every.map(|e| parse_every(&e)).transpose()?,
            on_calendar: match (a.kind, a.on_calendar) {
                (ScheduleKind::Cronjob, Some(_)) => {
                    bail!("--on-calendar is for systemd timers; a CronJob takes --every")
                }
                (_, c) => c,
            },
            image: a.image,
            dir: a.dir,
            dest,
            s3_endpoint_ca,
            save_args,
        })
    }

    /// `snapshot save`: where to, how encoded, what to keep.
    pub(super) fn save(&self, command: SnapshotCommand) -> Result<SaveSettings> {
        let SnapshotCommand::Save {
            file,
            compress,
            encrypt_to,
            keep,
            cluster,
            stall_timeout,
            timeout,
            metrics_file,
        } = command
        else {
            bail!("not snapshot save");
        };
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
            loc @ Location::Local(_) if loc.is_prefix() => SaveDest::Dir(PathBuf::from(&file)),
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
        Ok(SaveSettings {
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
            metrics_file,
        })
    }

    /// `snapshot verify`: one snapshot, or with `--chain` the revision log of a prefix.
    pub(super) fn verify(&mut self, command: SnapshotCommand) -> Result<VerifySettings> {
        let SnapshotCommand::Verify {
            source,
            identity,
            boot,
            etcd,
            chain,
            read,
        } = command
        else {
            bail!("not snapshot verify");
        };
        let src = self.source(&source, identity, &read)?;
        if chain != src.location.is_prefix() {
            bail!("{source}: --chain checks the revision log of a DIR/ or s3://BUCKET/PREFIX/; a single snapshot is checked without it");
        }
        Ok(VerifySettings {
            source: src,
            node_release: boot.then(|| self.node_release()).flatten(),
            boot: boot.then_some(etcd),
            chain,
        })
    }

    /// `snapshot put-back`.
    pub(super) fn put_back(&self, a: crate::cli::PutBackArgs) -> Result<PutBackSettings> {
        let source = self.source(&a.source, a.identity, &a.read)?;
        if a.to_time.is_some() && !source.location.is_prefix() {
            bail!("{}: --to-time reads a revision log: give SOURCE as the DIR/ or s3://BUCKET/PREFIX/ that `snapshot follow` writes to", a.source);
        }
        Ok(PutBackSettings {
            source,
            prefix: a.prefix.unwrap_or_else(|| "/registry/".into()).into_bytes(),
            namespace: a.namespace,
            to_revision: a.to_revision,
            cluster_id: a.cluster_id,
            node: a.node,
            to_time_ns: a
                .to_time
                .map(|t| {
                    crate::timestamp::parse_rfc3339_ns(&t).with_context(|| {
                        format!(
                            "--to-time {t:?}: give an RFC 3339 time such as 2026-12-07T03:14:00Z"
                        )
                    })
                })
                .transpose()?,
            dry_run: a.dry_run,
        })
    }

    /// `snapshot log`.
    pub(super) fn log(&self, a: crate::cli::LogArgs) -> Result<LogSettings> {
        let source = self.source(&a.source, a.identity, &a.read)?;
        if !source.location.is_prefix() {
            bail!(
                "{}: not a directory or an s3:// prefix (end it with '/')",
                a.source
            );
        }
        let time = |t: Option<String>, flag: &str| {
            t.map(|t| {
                crate::timestamp::parse_rfc3339_ns(&t).with_context(|| {
                    format!("{flag} {t:?}: give an RFC 3339 time such as 2026-12-07T03:14:00Z")
                })
            })
            .transpose()
        };
        Ok(LogSettings {
            source,
            prefix: a.prefix || a.log_key.is_none(),
            key: a.log_key.unwrap_or_default().into_bytes(),
            since_ns: time(a.since, "--since")?,
            until_ns: time(a.until, "--until")?,
        })
    }

    /// `snapshot follow`: bases saved as `snapshot save DEST` saves them.
    pub(super) fn follow(&self, a: crate::cli::FollowArgs) -> Result<FollowSettings> {
        let save = self.save(SnapshotCommand::Save {
            file: a.dest.clone(),
            compress: a.compress,
            encrypt_to: a.encrypt_to,
            keep: None,
            cluster: a.cluster,
            stall_timeout: a.stall_timeout,
            timeout: None,
            metrics_file: a.metrics_file,
        })?;
        if !matches!(save.dest, SaveDest::Dir(_) | SaveDest::S3 { .. }) {
            bail!("snapshot follow {}: DEST is a directory (DIR/) or an s3:// prefix, where the base snapshots and the log's segments go", a.dest);
        }
        let flush = parse_go_duration(&a.flush).context("--flush")?;
        if flush < Duration::from_millis(100) {
            bail!("--flush {}: at least 100ms", a.flush);
        }
        Ok(FollowSettings {
            save,
            flush,
            base_every: a
                .base_every
                .map(|d| parse_duration_days(&d).context("--base-every"))
                .transpose()?,
        })
    }

    /// The settings of a command that talks to etcd (the connection is resolved apart).
    pub(super) fn online_job(&self, command: Command) -> Result<OnlineJob> {
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
            Command::Snapshot(save @ SnapshotCommand::Save { .. }) => {
                OnlineJob::SnapshotSave(Box::new(self.save(save)?))
            }
            Command::Snapshot(SnapshotCommand::Follow(a)) => {
                OnlineJob::SnapshotFollow(Box::new(self.follow(a)?))
            }
            Command::Snapshot(SnapshotCommand::PutBack(a)) => {
                OnlineJob::SnapshotPutBack(Box::new(self.put_back(a)?))
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

    /// A password among the global flags or the arguments of a scheduled save.
    pub(super) fn password_given(&self, save_args: &[String]) -> bool {
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

    pub(super) fn source(
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

    pub(super) fn store(&self, arg: &str, read: &ReadTimeout) -> Result<StoreSettings> {
        let location = Location::parse(arg)?;
        if !location.is_prefix() {
            bail!("{arg}: not a directory or an s3:// prefix (end it with '/')");
        }
        Ok(StoreSettings {
            location,
            s3: self.s3(Some(read))?,
        })
    }

    pub(super) fn prune(&self, a: PruneArgs) -> Result<PruneSettings> {
        let policy = Policy {
            last: a.keep_last,
            hourly: a.keep_hourly,
            daily: a.keep_daily,
            weekly: a.keep_weekly,
            monthly: a.keep_monthly,
            within: a
                .keep_within
                .map(|d| parse_duration_days(&d).context("--keep-within"))
                .transpose()?
                .map(|d| d.as_secs() as i64),
        };
        if policy.is_empty() {
            bail!("snapshot prune needs at least one rule: --keep-last, --keep-hourly, --keep-daily, --keep-weekly, --keep-monthly or --keep-within");
        }
        Ok(PruneSettings {
            store: self.store(&a.location, &a.read)?,
            policy,
            dry_run: a.dry_run,
        })
    }

    pub(super) fn restore(&mut self, mut args: RestoreArgs) -> Result<RestoreSettings> {
        let file = restore_source(&mut args)?;
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
        let source = self.source(&file, args.identity.clone(), &args.read)?;
        let to_time_ns = args
            .to_time
            .as_deref()
            .map(|t| {
                crate::timestamp::parse_rfc3339_ns(t).with_context(|| {
                    format!("--to-time {t:?}: give an RFC 3339 time such as 2026-12-07T03:14:00Z")
                })
            })
            .transpose()?;
        if (args.to_revision.is_some() || to_time_ns.is_some()) && !source.location.is_prefix() {
            bail!("{file}: --to-revision and --to-time restore from a revision log: give SOURCE as the DIR/ or s3://BUCKET/PREFIX/ that `snapshot follow` writes to");
        }
        Ok(RestoreSettings {
            source,
            to_revision: args.to_revision,
            to_time_ns,
            cluster_id: args.cluster_id.clone(),
            node: args.node.clone(),
            file: PathBuf::from(file),
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
    pub(super) fn cert_renew(&mut self, args: CertRenewArgs) -> Result<CertRenewSettings> {
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
                    crate::timestamp::compact_utc(now)
                ))
            }),
            conn,
            now,
        })
    }

    /// Paths given: only those, plus the manifest's files and live endpoints when `--manifest`
    /// or `--endpoints` is given too. No paths: kubeadm's tree and kubeconfigs, the manifest's
    /// files and the configured endpoints. `--no-manifest` leaves the manifest out entirely.
    pub(super) fn cert_expiry(&mut self, args: CertExpiryArgs) -> Result<CertExpirySettings> {
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
    pub(super) fn now(&self) -> Result<i64> {
        match self.env_var("ETCDOPS_NOW") {
            Some(v) => parse_rfc3339(&v)
                .with_context(|| format!("environment ETCDOPS_NOW={v:?} is not an RFC 3339 time")),
            None => Ok(std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0)),
        }
    }
}

pub(super) fn parse_output_format(s: &str) -> Result<OutputFormat> {
    match s {
        "table" => Ok(OutputFormat::Table),
        "json" => Ok(OutputFormat::Json),
        "simple" => Ok(OutputFormat::Simple),
        other => bail!("unsupported output format {other:?} (expected table, json or simple)"),
    }
}

/// `--compress zstd[:LEVEL]`.
pub(super) fn parse_compress(spec: &str) -> Result<i32> {
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

/// The global flags set on this command line (not `-v`), as they are spelled.
fn given_globals(g: &GlobalArgs) -> Vec<&'static str> {
    let s3 = &g.s3;
    [
        ("--endpoints", g.endpoints.is_some()),
        ("--cacert", g.cacert.is_some()),
        ("--cert", g.cert.is_some()),
        ("--key", g.key.is_some()),
        ("--insecure-skip-tls-verify", g.insecure_skip_tls_verify),
        ("--user", g.user.is_some()),
        ("--password", g.password.is_some()),
        ("--dial-timeout", g.dial_timeout.is_some()),
        ("--command-timeout", g.command_timeout.is_some()),
        ("--hex", g.hex),
        ("-w/--write-out", g.write_out.is_some()),
        ("--manifest", g.manifest.is_some()),
        ("--s3-endpoint", s3.s3_endpoint.is_some()),
        ("--s3-region", s3.s3_region.is_some()),
        ("--s3-endpoint-ca", s3.s3_endpoint_ca.is_some()),
        ("--s3-skip-ssl-verify", s3.s3_skip_ssl_verify),
        ("--s3-bucket-lookup", s3.s3_bucket_lookup.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, set)| set.then_some(name))
    .collect()
}

/// The arguments after `--` of `schedule print`, parsed exactly as `snapshot save` parses
/// them. A leading `snapshot save` (or `etcdops snapshot save`) is taken as the command
/// itself and dropped. Returns the arguments to write into the unit, and the parse.
fn parse_save_args(
    mut args: Vec<String>,
    job: ScheduleJob,
) -> Result<(Vec<String>, (GlobalArgs, SnapshotCommand))> {
    use clap::Parser;
    let verb = match job {
        ScheduleJob::Save => "save",
        ScheduleJob::Follow => "follow",
    };
    if args.first().is_some_and(|a| a == "etcdops") {
        args.remove(0);
    }
    if args.len() >= 2 && args[0] == "snapshot" && args[1] == verb {
        args.drain(..2);
    }
    let argv = ["etcdops", "snapshot", verb]
        .into_iter()
        .map(str::to_string)
        .chain(args.iter().cloned());
    let cli = crate::cli::Cli::try_parse_from(argv).map_err(|e| {
        let text = e.to_string();
        let first = text
            .lines()
            .next()
            .unwrap_or("")
            .trim_start_matches("error: ");
        anyhow::anyhow!(
            "schedule print: the arguments are not what `snapshot {verb}` takes: {first}"
        )
    })?;
    match cli.command {
        Command::Snapshot(c @ (SnapshotCommand::Save { .. } | SnapshotCommand::Follow(_))) => {
            Ok((args, (cli.global, c)))
        }
        _ => bail!("schedule print: the arguments must be those of `snapshot {verb}`"),
    }
}

/// `--every`: Go's durations (`30m`, `6h`), and whole days (`1d`, `7d`) as the help says.
fn parse_every(text: &str) -> Result<Duration> {
    parse_duration_days(text).with_context(|| format!("--every {text}"))
}

/// The snapshot a restore reads. `--from-manifest` takes an optional PATH, so in
/// `restore --from-manifest /backup/snap.db` the snapshot was taken as the manifest: without a
/// SOURCE, a PATH that is not a manifest (`.yaml`, `.yml`, `.json`, `.conf`, `.service`) is the
/// snapshot, and the manifest is this node's.
fn restore_source(args: &mut RestoreArgs) -> Result<String> {
    if let Some(file) = args.file.take() {
        return Ok(file);
    }
    let manifest_like = |p: &std::path::Path| {
        p.extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json" | "conf" | "service"))
    };
    match args.from_manifest.take() {
        Some(Some(path)) if !manifest_like(&path) => {
            args.from_manifest = Some(None);
            Ok(path.display().to_string())
        }
        other => {
            args.from_manifest = other;
            Err(crate::exit::Hinted {
                error: anyhow::anyhow!("snapshot restore: no SOURCE (the snapshot to restore) was given"),
                hint: "give the snapshot after the flags: etcdops snapshot restore --from-manifest [MANIFEST] SOURCE".to_string(),
            }
            .into())
        }
    }
}
