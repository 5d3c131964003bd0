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
use crate::output::{escape, Report};
use crate::pki::renew::{self, Ca, Renewed};
use crate::pki::{Scan, Source};
use crate::settings::CertRenewSettings;
use crate::units::rfc3339;

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
    // Scan the targets' directories for certificates, keys and CAs.
    let mut search = s.ca_search.clone();
    search.extend(s.targets.iter().cloned());
    let mut scan = Scan::paths(&search);
    scan.check_wiring();
    let find = |path: &Path| {
        scan.certs.iter().find(
            |c| matches!(&c.source, Source::File { path: p, index: 0, .. } if same_file(p, path)),
        )
    };

    // Plan every renewal before writing anything.
    let mut cas: Vec<Ca> = Vec::new();
    let ca_index = |cas: &mut Vec<Ca>, ca_cert: &Path, ca_key: &Path| -> Result<usize> {
        let name = ca_cert.display().to_string();
        if let Some(i) = cas.iter().position(|c| c.name == name) {
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
            s.now,
        )?;
        cas.push(ca);
        Ok(cas.len() - 1)
    };
    let mut planned = Vec::new();
    for path in &s.targets {
        let cert = find(path).ok_or_else(|| anyhow!("{}: not a certificate", path.display()))?;
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
            Some((c, k)) => ca_index(&mut cas, c, k)?,
            None => {
                let issuer = cert.issued_by.as_ref().ok_or_else(|| {
                    anyhow!(
                        "{}: its CA is not in {}; give it with --ca and --ca-key",
                        path.display(),
                        s.ca_search
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
                let ca_cert = scan
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
                ca_index(&mut cas, &ca_path.clone(), &ca_key)?
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
        let renewed = renew::renew(&name, &cert_pem, &key_pair, &cas[ca], s.now, s.days)?;
        planned.push(Planned {
            path: path.clone(),
            key,
            new_key,
            ca,
            old_der: cert.der.clone(),
            renewed,
        });
    }

    let mut rows: Vec<Row> = planned
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
        .collect();
    if s.dry_run {
        return Ok((
            RenewReport {
                rows,
                backup_dir: None,
                served: Vec::new(),
            },
            Outcome::Ok,
        ));
    }

    // One renewal at a time per directory: two interleaved --new-key runs could otherwise
    // leave one's key beside the other's certificate.
    let mut dirs: Vec<PathBuf> = planned
        .iter()
        .flat_map(|p| [&p.path, &p.key])
        .map(|f| crate::fsutil::parent_dir(f))
        .collect();
    dirs.sort();
    dirs.dedup();
    let _locks = dirs
        .iter()
        .map(|d| crate::fsutil::lock_dir(d, "cert-renew"))
        .collect::<Result<Vec<_>>>()?;
    // Back up, then replace each file atomically.
    let copies = backup(
        &s.backup_dir,
        planned.iter().flat_map(|p| [&p.path, &p.key]),
    )?;
    let backups = s.backup_dir.clone();
    replace_all(&planned, copies, &backups)?;

    // Check what is on disk now.
    let mut bad = Vec::new();
    for (p, row) in planned.iter().zip(rows.iter_mut()) {
        row.checks = check_written(p, &cas[p.ca]);
        if row.checks.iter().any(|c| c.starts_with("FAILED")) {
            bad.push(row.file.clone());
        }
    }
    let served = match &s.conn {
        Some(conn) => served_checks(conn, &planned).await,
        None => Vec::new(),
    };
    let outcome = if bad.is_empty()
        && !served
            .iter()
            .any(|l| l.contains("still serves the old") || l.contains("FAILED"))
    {
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
            backups.display()
        ))
    };
    Ok((
        RenewReport {
            rows,
            backup_dir: Some(backups.display().to_string()),
            served,
        },
        outcome,
    ))
}

/// Every new file is written and synced beside its old one before the first rename, so a full
/// disk, a refused write or a signal changes nothing (and leaves no backup: the copies are a
/// temporary until then). The backup then takes its name, and the renames follow: for each
/// certificate its new key (if any) and at once the certificate, the only moment a pair on
/// disk does not match. Should a rename fail, the files already replaced are put back from the
/// backup.
fn replace_all(planned: &[Planned], copies: crate::fsutil::TempDir, backups: &Path) -> Result<()> {
    let ready = prepare_all(planned)?;
    // A signal waits until every rename (or the rollback) is done.
    let _critical = crate::fsutil::Critical::enter();
    copies
        .commit_new(backups)
        .map_err(|e| backup_taken(backups).unwrap_or(e))?;
    let mut done: Vec<&Path> = Vec::new();
    for (dest, temp) in ready {
        if let Err(e) = temp.commit(dest) {
            // The rename may have happened before the failure (a directory sync): put `dest`
            // back too; restoring an unreplaced file rewrites the same bytes.
            done.push(dest);
            let undone = done
                .iter()
                .filter(|d| restore_from(backups, d).is_ok())
                .count();
            let state = if undone == done.len() {
                "every file is as it was".to_string()
            } else {
                format!("only {undone} of the {} files touched are back", done.len())
            };
            return Err(e.context(format!(
                "replacing {}: {state} (the old files are in {})",
                dest.display(),
                backups.display()
            )));
        }
        done.push(dest);
    }
    Ok(())
}

/// The new files, written beside their destinations, in rename order.
fn prepare_all(planned: &[Planned]) -> Result<Vec<(&Path, crate::fsutil::TempFile)>> {
    let meta = |p: &Path| std::fs::metadata(p).with_context(|| format!("reading {}", p.display()));
    let mut ready = Vec::new();
    for p in planned {
        if let Some(pem) = &p.new_key {
            let temp = crate::fsutil::prepare_secret(&p.key, pem.as_bytes(), &meta(&p.key)?)?;
            ready.push((p.key.as_path(), temp));
        }
        let like = meta(&p.path)?;
        let temp = crate::fsutil::prepare(&p.path, p.renewed.pem.as_bytes(), Some(&like))?;
        ready.push((p.path.as_path(), temp));
    }
    Ok(ready)
}

/// Put `file` back from its copy in the backup directory (nothing to do if it still holds the
/// old bytes: the rename that failed never happened).
fn restore_from(backups: &Path, file: &Path) -> Result<()> {
    let copy = backup_path(backups, file);
    let bytes =
        crate::pki::read_pki_file(&copy).with_context(|| format!("reading {}", copy.display()))?;
    if crate::pki::read_pki_file(file).is_ok_and(|now| now == bytes) {
        return Ok(());
    }
    let like = std::fs::metadata(&copy).with_context(|| format!("reading {}", copy.display()))?;
    crate::fsutil::write_atomic(file, &bytes, Some(&like))
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

/// Where `file` is copied in the backup directory `dir`: `dir/<its absolute path>`.
fn backup_path(dir: &Path, file: &Path) -> PathBuf {
    let abs = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
    dir.join(abs.strip_prefix("/").unwrap_or(&abs))
}

/// Copy each file to [`backup_path`] in a temporary directory beside `dir` (directories 0700,
/// files keep their owner and mode), which [`replace_all`] names `dir` just before the first
/// rename. `dir` must be new: a rerun never overwrites the copies an earlier run made.
fn backup<'a>(
    dir: &Path,
    files: impl Iterator<Item = &'a PathBuf>,
) -> Result<crate::fsutil::TempDir> {
    use std::os::unix::fs::DirBuilderExt;
    if let Some(e) = backup_taken(dir) {
        return Err(e);
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let copies = crate::fsutil::TempDir::beside(dir)
        .with_context(|| format!("creating the backup directory {}", dir.display()))?;
    // Every directory of the copy is synced before the backup takes its name.
    let mut dirs = std::collections::BTreeSet::new();
    for f in files {
        let dest = backup_path(copies.path(), f);
        let rel = dest
            .parent()
            .and_then(|p| p.strip_prefix(copies.path()).ok())
            .unwrap_or(Path::new(""));
        let parent = copies.create_within(rel)?;
        dirs.extend(
            parent
                .ancestors()
                .take(rel.components().count() + 1)
                .map(Path::to_path_buf),
        );
        let bytes =
            crate::pki::read_pki_file(f).with_context(|| format!("reading {}", f.display()))?;
        let like = std::fs::metadata(f).with_context(|| format!("reading {}", f.display()))?;
        crate::fsutil::write_atomic(&dest, &bytes, Some(&like))?;
    }
    for d in dirs.iter().rev() {
        crate::fsutil::sync_dir(d)?;
    }
    Ok(copies)
}

/// The refusal for a backup directory that exists already, if it does.
fn backup_taken(dir: &Path) -> Option<anyhow::Error> {
    dir.symlink_metadata().is_ok().then(|| {
        Hinted {
            error: anyhow!("the backup directory {} already exists", dir.display()),
            hint: "give a new --backup-dir: the copies of an earlier renewal are never overwritten"
                .to_string(),
        }
        .into()
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
        serde_json::to_value(self).unwrap_or_default()
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
