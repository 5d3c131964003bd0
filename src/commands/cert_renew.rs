//! `etcdops cert-renew [PATH...]`: re-sign leaf certificates with the CA that issued them
//! (pki/renew.rs), keeping their key, subject, SANs and usages.
//!
//! 1. Plan: each certificate, its key beside it, and its CA — `--ca/--ca-key`, else the CA in
//!    the scanned directories whose key verifies the certificate, with its key beside it. A
//!    missing or mismatched CA key, or an expired CA, refuses the whole run before anything is
//!    written (exit 2).
//! 2. Write (not with `--dry-run`): the old certificates are copied into the backup directory
//!    (their absolute paths below it, 0700 directories), then each new certificate replaces the
//!    old one through an exclusive temporary, fsynced and renamed, with the old owner and mode.
//!    The key is not touched, so every file on disk is at all times a complete certificate that
//!    matches its key.
//! 3. Check what was written: the chain verifies, the key matches, the SANs are the old ones;
//!    and, when live endpoints are configured, a fresh handshake serves the renewed server
//!    certificate (etcd reads its files at every handshake).

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use x509_parser::prelude::*;

use crate::client::Target;
use crate::exit::{Hinted, Outcome};
use crate::output::Report;
use crate::pki::renew::{self, Ca, Renewed};
use crate::pki::{Scan, Source};
use crate::settings::CertRenewSettings;
use crate::text::escape;
use crate::timestamp::rfc3339;

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub file: String,
    pub subject: String,
    pub ca: String,
    pub old_not_after: String,
    pub new_not_after: String,
    /// Cut to the CA's not-after.
    pub capped: bool,
    /// Certificates after the first in the file (a chain's CA, a second leaf): kept as they
    /// were, not renewed.
    #[serde(skip_serializing_if = "is_zero")]
    pub kept_certificates: usize,
    pub sans: Vec<String>,
    /// `renewed`, or `would renew` in a dry run.
    pub action: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<String>,
    /// What the renewal changes besides the certificate, or leaves that should change.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Who must restart to use it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RenewReport {
    pub rows: Vec<Row>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup_dir: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub served: Vec<String>,
}

struct Planned {
    path: PathBuf,
    key: PathBuf,
    /// `--new-key`: the new key's PEM, written before the certificate.
    new_key: Option<String>,
    ca: usize,
    old_der: Vec<u8>,
    renewed: Renewed,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

fn read(path: &Path, what: &str) -> Result<String> {
    crate::fsutil::read_capped_text(path, crate::pki::MAX_PKI_FILE)
        .with_context(|| format!("reading {what} {} (it must be PEM text)", path.display()))
}

/// A certificate that is a symbolic link becomes a regular file (the rename replaces the link);
/// a key others may read is named, with the command that fixes it.
fn file_warnings(p: &Planned) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    if let Ok(target) = std::fs::read_link(&p.path) {
        out.push(format!(
            "a symbolic link to {}: it is replaced by a regular file holding the renewed certificate ({} itself is not changed)",
            escape(&target.display().to_string()),
            escape(&target.display().to_string())
        ));
    }
    let mode = std::fs::metadata(&p.key).map_or(0, |m| m.permissions().mode() & 0o777);
    if mode & 0o007 != 0 {
        let key = escape(&p.key.display().to_string());
        out.push(if p.new_key.is_some() {
            format!(
                "its key {key} was mode {mode:04o}, readable by every user; the new key is {:04o}",
                mode & 0o740
            )
        } else {
            format!(
                "its key {key} is readable by every user (mode {mode:04o}): run chmod 600 {key}"
            )
        });
    }
    out
}

/// Refuse a `--backup-dir` whose parent is a symbolic link: the copies of keys would land
/// wherever the link points.
fn check_backup_parent(dir: &Path) -> Result<()> {
    let parent = crate::fsutil::parent_dir(dir);
    if std::fs::symlink_metadata(&parent).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(Hinted {
            error: anyhow!(
                "--backup-dir {}: its parent {} is a symbolic link (copies of private keys would go wherever it points)",
                dir.display(),
                parent.display()
            ),
            hint: "give a --backup-dir under a real directory".to_string(),
        }
        .into());
    }
    Ok(())
}

pub async fn run(s: &CertRenewSettings) -> Result<(RenewReport, Outcome)> {
    check_backup_parent(&s.backup_dir)?;
    let (planned, cas) = Planner::new(s).plan()?;
    let rows = rows(s, &planned, &cas);
    if s.dry_run {
        let report = RenewReport {
            rows,
            backup_dir: None,
            served: Vec::new(),
        };
        return Ok((report, Outcome::Ok));
    }
    let _locks = lock_dirs(&planned)?;
    replace(&planned, &s.backup_dir)?;
    Ok(check(s, &planned, &cas, rows).await)
}

/// Finds each certificate's key and CA in the scanned directories, loading each CA once.
struct Planner<'s> {
    s: &'s CertRenewSettings,
    scan: Scan,
    cas: Vec<Ca>,
}

impl<'s> Planner<'s> {
    /// Scan the targets' directories (and the CA search path) for certificates, keys and CAs.
    fn new(s: &'s CertRenewSettings) -> Planner<'s> {
        let mut search = s.ca_search.clone();
        search.extend(s.targets.iter().cloned());
        let mut scan = Scan::paths(&search);
        scan.check_wiring();
        Planner {
            s,
            scan,
            cas: Vec::new(),
        }
    }

    /// Every renewal, planned before anything is written.
    fn plan(mut self) -> Result<(Vec<Planned>, Vec<Ca>)> {
        let planned = self
            .s
            .targets
            .iter()
            .map(|path| self.plan_one(path))
            .collect::<Result<Vec<_>>>()?;
        Ok((planned, self.cas))
    }

    fn plan_one(&mut self, path: &Path) -> Result<Planned> {
        let s = self.s;
        let cert = self
            .scan
            .certs
            .iter()
            .find(|c| matches!(&c.source, Source::File { path: p, index: 0, .. } if same_file(p, path)))
            .ok_or_else(|| anyhow!("{}: not a certificate", path.display()))?
            .clone();
        if cert.is_ca {
            bail!("{}: is a CA certificate; renewing a CA is out of scope (see its own expiry in cert-expiry): etcdops renews leaf certificates", path.display());
        }
        let key = cert.key_file().map(Path::to_path_buf).ok_or_else(|| {
            anyhow!(
                "{}: no private key beside it (x.crt → x.key, x.pem → x-key.pem)",
                path.display()
            )
        })?;
        let ca = match &s.ca {
            Some((c, k)) => self.ca_index(c, k)?,
            None => {
                let (ca_cert, ca_key) = self.issuer_of(path, &cert)?;
                self.ca_index(&ca_cert, &ca_key)?
            }
        };
        let name = path.display().to_string();
        let cert_pem = read(path, "certificate")?;
        let (key_pair, new_key) = if s.new_key {
            let (k, pem) = renew::new_key_like(&name, &cert.der)?;
            (k, Some(pem))
        } else {
            let k = renew::key_pair(&read(&key, "key")?, &key.display().to_string())?;
            let spki_matches = parse_x509_certificate(&cert.der)
                .is_ok_and(|(_, x)| x.public_key().raw == k.public_key_der());
            if !spki_matches {
                bail!(
                    "{}: its key {} does not belong to it; fix the pair first (or use --new-key)",
                    path.display(),
                    key.display()
                );
            }
            (k, None)
        };
        let renewed = renew::renew(&name, &cert_pem, &key_pair, &self.cas[ca], s.now, s.days)?;
        Ok(Planned {
            path: path.to_path_buf(),
            key,
            new_key,
            ca,
            old_der: cert.der.clone(),
            renewed,
        })
    }

    /// The CA certificate and key file of the certificate at `path`, found in the scan.
    fn issuer_of(&self, path: &Path, cert: &crate::pki::Cert) -> Result<(PathBuf, PathBuf)> {
        let issuer = cert.issued_by.as_ref().ok_or_else(|| {
            anyhow!(
                "{}: its CA is not in {}; give it with --ca and --ca-key",
                path.display(),
                self.s
                    .ca_search
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
        let Source::File { path: ca_path, .. } = issuer else {
            bail!(
                "{}: its CA is in a kubeconfig; give it with --ca and --ca-key",
                path.display()
            );
        };
        let ca_cert = self
            .scan
            .certs
            .iter()
            .find(|c| &c.source == issuer)
            .ok_or_else(|| anyhow!("{}: CA not found", path.display()))?;
        let ca_key = ca_cert.key_file().map(Path::to_path_buf).ok_or_else(|| {
            anyhow!(
                "the CA {} has no key beside it; give it with --ca-key",
                ca_path.display()
            )
        })?;
        Ok((ca_path.clone(), ca_key))
    }

    /// The index of the CA in `cas`, loaded (and checked) the first time it is named.
    fn ca_index(&mut self, ca_cert: &Path, ca_key: &Path) -> Result<usize> {
        let name = ca_cert.display().to_string();
        if let Some(i) = self.cas.iter().position(|c| c.name == name) {
            return Ok(i);
        }
        let ca = Ca::load(
            &name,
            &read(ca_cert, "CA certificate")?,
            &ca_key.display().to_string(),
            &read(ca_key, "CA key").map_err(|e| {
                anyhow!(
                    "{e:#}; the CA key must be beside the CA certificate, or given with --ca-key"
                )
            })?,
            self.s.now,
        )?;
        self.cas.push(ca);
        Ok(self.cas.len() - 1)
    }
}

/// One report row per planned renewal (its checks are added after the write).
fn rows(s: &CertRenewSettings, planned: &[Planned], cas: &[Ca]) -> Vec<Row> {
    planned
        .iter()
        .map(|p| {
            let (subject, sans, old_not_after) = describe(&p.old_der);
            Row {
                file: p.path.display().to_string(),
                subject,
                ca: cas[p.ca].name.clone(),
                old_not_after: rfc3339(old_not_after),
                new_not_after: rfc3339(p.renewed.not_after),
                capped: p.renewed.capped,
                kept_certificates: p.renewed.others,
                sans,
                action: if s.dry_run { "would renew" } else { "renewed" },
                checks: Vec::new(),
                warnings: file_warnings(p),
                restart: restart_for(&p.path),
            }
        })
        .collect()
}

/// One renewal at a time per directory: two interleaved --new-key runs could otherwise leave
/// one's key beside the other's certificate.
fn lock_dirs(planned: &[Planned]) -> Result<Vec<std::fs::File>> {
    let mut dirs: Vec<PathBuf> = planned
        .iter()
        .flat_map(|p| [&p.path, &p.key])
        .map(|f| crate::fsutil::parent_dir(f))
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs.iter()
        .map(|d| crate::fsutil::lock_dir(d, "cert-renew"))
        .collect()
}

/// Back up every certificate and key, then replace them as one step
/// ([`crate::fsutil::Replacement`]): for each certificate its new key (if any) and at once the
/// certificate, the only moment a pair on disk does not match.
fn replace(planned: &[Planned], backup_dir: &Path) -> Result<()> {
    let originals = planned
        .iter()
        .flat_map(|p| [p.path.as_path(), p.key.as_path()]);
    let mut replacement = crate::fsutil::Replacement::begin(
        backup_dir,
        "--backup-dir",
        originals,
        crate::pki::MAX_PKI_FILE,
    )?;
    let meta = |p: &Path| std::fs::metadata(p).with_context(|| format!("reading {}", p.display()));
    for p in planned {
        if let Some(pem) = &p.new_key {
            let temp = crate::fsutil::prepare_secret(&p.key, pem.as_bytes(), &meta(&p.key)?)?;
            replacement.stage(&p.key, temp);
        }
        let like = meta(&p.path)?;
        let temp = crate::fsutil::prepare(&p.path, p.renewed.pem.as_bytes(), Some(&like))?;
        replacement.stage(&p.path, temp);
    }
    replacement.commit()
}

/// Check what is on disk now, and what live endpoints serve: the report and its outcome.
async fn check(
    s: &CertRenewSettings,
    planned: &[Planned],
    cas: &[Ca],
    mut rows: Vec<Row>,
) -> (RenewReport, Outcome) {
    let mut bad = Vec::new();
    for (p, row) in planned.iter().zip(rows.iter_mut()) {
        row.checks = check_written(p, &cas[p.ca]);
        if row.checks.iter().any(|c| c.starts_with("FAILED")) {
            bad.push(row.file.clone());
        }
    }
    let served = match &s.conn {
        Some(conn) => served_checks(conn, planned).await,
        None => Vec::new(),
    };
    let served_bad = served
        .iter()
        .any(|l| l.contains("still serves the old") || l.contains("FAILED"));
    let outcome = if bad.is_empty() && !served_bad {
        Outcome::Ok
    } else {
        let what = if bad.is_empty() {
            "an endpoint failed its check after the renewal (see the served checks)".to_string()
        } else {
            format!(
                "renewed certificates failed their checks: {}",
                bad.join(", ")
            )
        };
        Outcome::Bad(format!(
            "{what}; the old files are in {}",
            s.backup_dir.display()
        ))
    };
    let report = RenewReport {
        rows,
        backup_dir: Some(s.backup_dir.display().to_string()),
        served,
    };
    (report, outcome)
}

fn same_file(a: &Path, b: &Path) -> bool {
    a == b
        || matches!((std::fs::canonicalize(a), std::fs::canonicalize(b)), (Ok(x), Ok(y)) if x == y)
}

/// Subject, SANs and not-after of a certificate.
fn describe(der: &[u8]) -> (String, Vec<String>, i64) {
    match parse_x509_certificate(der) {
        Ok((_, x)) => (
            x.subject().to_string(),
            sans(&x),
            x.validity().not_after.timestamp(),
        ),
        Err(_) => (String::new(), Vec::new(), 0),
    }
}

fn sans(x: &X509Certificate<'_>) -> Vec<String> {
    let mut out = crate::pki::subject_alt_names(x);
    out.sort();
    out
}

/// kube-apiserver reads its etcd client certificate when it starts; etcd re-reads its own
/// certificates at every handshake.
fn restart_for(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_string_lossy();
    name.starts_with("apiserver-etcd-client").then(|| {
        "kube-apiserver (it reads apiserver-etcd-client when it starts): move its manifest out of /etc/kubernetes/manifests and back".to_string()
    })
}

/// The renewed file on disk: chain, key, SANs.
fn check_written(p: &Planned, ca: &Ca) -> Vec<String> {
    let mut out = Vec::new();
    let on_disk = read(&p.path, "the renewed certificate")
        .ok()
        .and_then(|t| renew::first_cert(&t));
    let Some(der) = on_disk else {
        return vec!["FAILED: the renewed file cannot be read back".to_string()];
    };
    out.push(if ca.signed(&der) {
        "chain verifies".to_string()
    } else {
        "FAILED: the chain does not verify".to_string()
    });
    let key_ok = read(&p.key, "the key")
        .ok()
        .and_then(|k| renew::key_pair(&k, "key").ok())
        .zip(parse_x509_certificate(&der).ok())
        .is_some_and(|(k, (_, x))| k.public_key_der() == x.public_key().raw);
    out.push(if key_ok {
        "key matches".to_string()
    } else {
        "FAILED: the key does not match".to_string()
    });
    let (_, old_sans, _) = describe(&p.old_der);
    let (_, new_sans, _) = describe(&der);
    out.push(if old_sans == new_sans {
        "SANs unchanged".to_string()
    } else {
        "FAILED: the SANs changed".to_string()
    });
    out
}

/// A fresh handshake with every configured endpoint: which certificate does it serve now, and
/// does it still answer a request over the configured client certificate (health)?
async fn served_checks(conn: &crate::settings::ConnSettings, planned: &[Planned]) -> Vec<String> {
    let mut out = Vec::new();
    let mut targets: Vec<Target> = Vec::new();
    for ep in &conn.endpoints.value {
        match Target::parse(ep, conn.wants_tls()) {
            Ok(t) => targets.push(t),
            Err(e) => out.push(format!("{} FAILED: {e:#}", escape(ep))),
        }
    }
    match crate::client::Connector::new(conn, &targets) {
        Ok(connector) => {
            for t in &targets {
                match crate::client::cluster::endpoint_status(&connector, t).await {
                    Ok(st) if st.errors.is_empty() => out.push(format!(
                        "{} is healthy (revision {})",
                        t.endpoint, st.revision
                    )),
                    Ok(st) => out.push(format!(
                        "{} answers but reports: {} (still serves a working certificate)",
                        t.endpoint,
                        st.errors.join(", ")
                    )),
                    Err(e) => out.push(format!(
                        "{} FAILED health after the renewal: {e}",
                        t.endpoint
                    )),
                }
            }
        }
        Err(e) => out.push(format!("FAILED health after the renewal: {e:#}")),
    }
    for target in &targets {
        let ep = &target.endpoint;
        match crate::client::served_certificate(conn, target).await {
            Ok(der) => {
                if let Some(p) = planned.iter().find(|p| p.renewed.der == der) {
                    out.push(format!(
                        "{ep} serves the renewed {} (serial {})",
                        p.path.display(),
                        p.renewed.serial
                    ));
                } else if planned.iter().any(|p| p.old_der == der) {
                    out.push(format!("{ep} still serves the old certificate"));
                }
            }
            Err(e) => out.push(format!("{ep}: no handshake: {e}")),
        }
    }
    out
}

impl Report for RenewReport {
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        (
            vec![
                "FILE",
                "SUBJECT",
                "OLD NOT AFTER",
                "NEW NOT AFTER",
                "SANS",
                "ACTION",
            ],
            self.rows
                .iter()
                .map(|r| {
                    vec![
                        escape(&r.file),
                        escape(&r.subject),
                        r.old_not_after.clone(),
                        format!(
                            "{}{}",
                            r.new_not_after,
                            if r.capped {
                                " (capped at the CA's expiry)"
                            } else {
                                ""
                            }
                        ),
                        escape(&r.sans.join(", ")),
                        r.action.to_string(),
                    ]
                })
                .collect(),
        )
    }

    fn json(&self) -> serde_json::Value {
        crate::output::serialized(self)
    }

    fn simple(&self) -> Vec<String> {
        self.rows
            .iter()
            .map(|r| {
                format!(
                    "{} {}: {} -> {}",
                    r.action,
                    escape(&r.file),
                    r.old_not_after,
                    r.new_not_after
                )
            })
            .collect()
    }

    fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        for r in &self.rows {
            if r.capped {
                notes.push(format!(
                    "{}: not-after capped at the CA's expiry ({}); renew the CA ({}) to go further",
                    escape(&r.file),
                    r.new_not_after,
                    escape(&r.ca)
                ));
            }
            if r.kept_certificates > 0 {
                notes.push(format!(
                    "{}: only its first certificate is renewed; the {} after it (a chain's CA, another certificate) are kept as they were",
                    escape(&r.file),
                    r.kept_certificates
                ));
            }
            for c in r.checks.iter().chain(&r.warnings) {
                notes.push(format!("{}: {c}", escape(&r.file)));
            }
            if let Some(who) = &r.restart {
                notes.push(format!("{}: restart {who}", escape(&r.file)));
            }
        }
        if let Some(b) = &self.backup_dir {
            notes.push(format!("the old files are in {}", escape(b)));
        }
        notes.extend(self.served.iter().map(|s| escape(s)));
        notes
    }
}
