//! `etcdops cert-expiry [PATH...]`: when every certificate of a control-plane node expires, and
//! whether it is wired right — what `kubeadm certs check-expiration` and a loop of
//! `openssl x509 -enddate` tell, plus key/certificate matching, signatures against the CA of the
//! same tree, and what live etcd endpoints actually serve.
//!
//! The table reads like kubeadm's: a short name per certificate (kubeadm's names for kubeadm's
//! paths), EXPIRES, RESIDUAL TIME (`364d`, `9y`), the CA that signed it and a STATUS naming every
//! problem; the CAs in a table of their own, once each (by fingerprint). Full paths with
//! `--wide` and in `-w json`.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Result};
use serde::Serialize;

use crate::client::{served_certificate, targets};
use crate::exit::Outcome;
use crate::output::{render_table, Report};
use crate::pki::{Cert, Scan, ScanError, Source};
use crate::settings::CertExpirySettings;
use crate::timestamp::rfc3339;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Ok,
    Warning,
    Expired,
    NotYetValid,
    /// A file the manifest names is not there.
    Missing,
}

/// One certificate as reported.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// kubeadm's name for it, or the file's stem.
    pub name: String,
    pub path: String,
    pub subject: String,
    pub issuer: String,
    pub not_before: String,
    pub not_after: String,
    pub days_left: i64,
    /// kubeadm's RESIDUAL TIME.
    pub residual: String,
    pub is_ca: bool,
    pub key: String,
    pub sans: Vec<String>,
    /// The CA of the scan that signed it (its name), else the issuer's common name.
    pub ca: String,
    pub fingerprint: String,
    pub status: Status,
    pub problems: Vec<String>,
    /// Where else the same certificate was found (CAs are listed once).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub also_at: Vec<String>,
    #[serde(skip)]
    words: Vec<&'static str>,
    #[serde(skip)]
    expires: String,
}

/// A file that could not be read as a certificate, or that the manifest names and is missing.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorRow {
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    pub error: String,
}

#[derive(Debug, Clone)]
pub struct CertReport {
    /// Leaves, soonest expiry first.
    pub leaves: Vec<Finding>,
    /// CAs, once each, soonest expiry first.
    pub cas: Vec<Finding>,
    pub errors: Vec<ErrorRow>,
    /// `--wide`: full paths in the tables.
    pub wide: bool,
}

/// Scan the paths and the manifest's certificate files, add what live endpoints serve, check
/// the wiring, and judge every certificate.
pub async fn run(s: &CertExpirySettings) -> Result<(CertReport, Outcome)> {
    let mut paths = s.paths.clone();
    let mut errors = Vec::new();
    if let Some(m) = &s.manifest {
        for p in m.certificate_files() {
            if p.exists() {
                paths.push(p);
            } else {
                errors.push(ErrorRow {
                    name: Some(file_name(&p)),
                    path: p.display().to_string(),
                    status: Some(Status::Missing),
                    error: format!("named by the manifest {} but missing", m.path.display()),
                });
            }
        }
    }
    let mut scan = Scan::paths(&paths);
    if let Some(conn) = &s.conn {
        for target in &targets(conn)? {
            match served_certificate(conn, target).await {
                Ok(der) => scan.served(&target.endpoint, der),
                Err(e) => scan.errors.push(ScanError {
                    path: target.endpoint.clone(),
                    error: e.to_string(),
                }),
            }
        }
    }
    scan.check_wiring();
    judge(scan, errors, s)
}

/// Judge a scan at `s.now` with a warning window of `s.warn_days`.
fn judge(
    scan: Scan,
    mut errors: Vec<ErrorRow>,
    s: &CertExpirySettings,
) -> Result<(CertReport, Outcome)> {
    if scan.certs.is_empty() && errors.is_empty() {
        let why = scan
            .errors
            .iter()
            .map(|e| format!("{}: {}", e.path, e.error))
            .collect::<Vec<_>>()
            .join("; ");
        bail!(
            "no readable certificate found{}",
            if why.is_empty() {
                String::new()
            } else {
                format!(" ({why})")
            }
        );
    }
    let mut certs = scan.certs;
    certs.sort_by_key(|c| c.not_after);
    let findings: Vec<Finding> = certs
        .iter()
        .map(|c| finding(c, s.now, s.warn_days))
        .collect();
    // Leaves etcdops can renew: files with their key beside them, signed by a CA of the scan.
    let mut renewable: Vec<String> = certs
        .iter()
        .zip(&findings)
        .filter(|(c, f)| {
            !c.is_ca
                && matches!(f.status, Status::Warning | Status::Expired)
                && c.key_file().is_some()
                && c.issued_by.is_some()
                && matches!(c.source, crate::pki::Source::File { .. })
        })
        .map(|(_, f)| crate::text::shell_quote(&f.path))
        .collect();
    renewable.dedup();
    let (cas, leaves): (Vec<Finding>, Vec<Finding>) = findings.into_iter().partition(|f| f.is_ca);
    let cas = once_each(cas);
    errors.extend(scan.errors.into_iter().map(|e| ErrorRow {
        path: e.path,
        name: None,
        status: None,
        error: e.error,
    }));
    let bad = leaves
        .iter()
        .chain(&cas)
        .filter(|f| f.status != Status::Ok || !f.problems.is_empty())
        .count()
        + errors
            .iter()
            .filter(|e| e.status == Some(Status::Missing))
            .count();
    let outcome = if bad == 0 {
        Outcome::Ok
    } else {
        let outcome = Outcome::Bad(format!(
            "{bad} certificates expired, not yet valid, expiring within {} days, miswired or missing",
            s.warn_days
        ));
        if renewable.is_empty() {
            outcome
        } else {
            outcome.hinted(format!(
                "renew them with their CA: etcdops cert-renew {}",
                renewable.join(" ")
            ))
        }
    };
    let report = CertReport {
        leaves,
        cas,
        errors,
        wide: s.wide,
    };
    Ok((report, outcome))
}

/// One row per distinct CA (by fingerprint), listing where else it was found; a file is
/// preferred over a kubeconfig or an endpoint as the place shown.
fn once_each(cas: Vec<Finding>) -> Vec<Finding> {
    let mut by_print: BTreeMap<String, Vec<Finding>> = BTreeMap::new();
    for f in cas {
        by_print.entry(f.fingerprint.clone()).or_default().push(f);
    }
    let mut out: Vec<Finding> = by_print
        .into_values()
        .map(|mut same| {
            same.sort_by_key(|f| {
                (
                    f.path.contains('#') || f.path.contains("(served)"),
                    f.path.clone(),
                )
            });
            let mut first = same.remove(0);
            first.also_at = same.into_iter().map(|f| f.path).collect();
            first
        })
        .collect();
    out.sort_by(|a, b| (a.not_after.as_str(), &a.name).cmp(&(b.not_after.as_str(), &b.name)));
    out
}

fn finding(c: &Cert, now: i64, warn_days: i64) -> Finding {
    let left = c.not_after - now;
    let status = if now < c.not_before {
        Status::NotYetValid
    } else if left <= 0 {
        Status::Expired
    } else if left < warn_days.saturating_mul(86_400) {
        Status::Warning
    } else {
        Status::Ok
    };
    Finding {
        name: short_name(&c.source),
        path: c.source.display(),
        subject: c.subject.clone(),
        issuer: c.issuer.clone(),
        not_before: rfc3339(c.not_before),
        not_after: rfc3339(c.not_after),
        days_left: left.div_euclid(86_400),
        residual: residual(left),
        is_ca: c.is_ca,
        key: c.key.clone(),
        sans: c.sans.clone(),
        ca: c
            .issued_by
            .as_ref()
            .map(short_name)
            .unwrap_or_else(|| c.issuer.clone()),
        fingerprint: c.fingerprint(),
        status,
        problems: c.problems.iter().map(|p| p.to_string()).collect(),
        also_at: Vec::new(),
        words: c.problems.iter().map(|p| p.word()).collect(),
        expires: kubeadm_time(c.not_after),
    }
}

/// kubeadm's name for a certificate at kubeadm's path (`etcd/server.crt` → `etcd-server`,
/// `apiserver-etcd-client.crt`, `admin.conf`), the file's stem elsewhere.
fn short_name(source: &Source) -> String {
    match source {
        Source::File { path, index, of } => {
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let in_etcd_dir = path
                .parent()
                .and_then(Path::file_name)
                .is_some_and(|d| d == "etcd");
            let base = if in_etcd_dir && !stem.starts_with("etcd") {
                format!("etcd-{stem}")
            } else {
                stem
            };
            if *of > 1 {
                format!("{base}[{index}]")
            } else {
                base
            }
        }
        Source::Kubeconfig { path, entry } => {
            let file = file_name(path);
            if entry == "client" {
                file
            } else {
                format!("{file}#{entry}")
            }
        }
        Source::Served { endpoint } => format!("served by {endpoint}"),
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

/// Time left as kubeadm shows it (k8s.io/apimachinery duration.ShortHumanDuration): `45s`,
/// `42m`, `11h`, `364d`, `9y`; `<invalid>` once expired.
fn residual(seconds: i64) -> String {
    match seconds {
        s if s < -1 => "<invalid>".to_string(),
        s if s < 0 => "0s".to_string(),
        s if s < 60 => format!("{s}s"),
        s if s < 3_600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3_600),
        s if s < 365 * 86_400 => format!("{}d", s / 86_400),
        s => format!("{}y", s / (365 * 86_400)),
    }
}

/// kubeadm's EXPIRES: `Nov 28, 2027 03:00 UTC`.
fn kubeadm_time(unix: i64) -> String {
    let fmt =
        time::macros::format_description!("[month repr:short] [day], [year] [hour]:[minute] UTC");
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_else(|| rfc3339(unix))
}

impl Finding {
    /// Every problem, in a few words: `expired`, `expiring`, `key mismatch`, `wrong issuer`, ...
    fn status_words(&self) -> String {
        let mut words: Vec<&str> = match self.status {
            Status::Ok => Vec::new(),
            Status::Warning => vec!["expiring"],
            Status::Expired => vec!["expired"],
            Status::NotYetValid => vec!["not yet valid"],
            Status::Missing => vec!["missing"],
        };
        words.extend(&self.words);
        if words.is_empty() {
            "ok".to_string()
        } else {
            words.join(", ")
        }
    }

    /// The JSON `status`: the time verdict (`ok`, `warning`, `expired`, `not-yet-valid`,
    /// `missing`), except that a certificate whose only trouble is its wiring is never `ok`:
    /// it says what the table says, in kebab case (`key-mismatch`, `wrong-issuer`, ...).
    fn json_status(&self) -> String {
        match (self.status, self.words.first()) {
            (Status::Ok, Some(word)) => word.replace(' ', "-").to_lowercase(),
            (status, _) => serde_json::to_value(status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
        }
    }
}

impl CertReport {
    /// A table row: name, expiry, residual time, (the signing CA,) status, (the path).
    fn row(&self, f: &Finding, with_ca: bool) -> Vec<String> {
        let mut row = vec![f.name.clone(), f.expires.clone(), f.residual.clone()];
        if with_ca {
            row.push(f.ca.clone());
        }
        row.push(f.status_words());
        if self.wide {
            row.push(f.path.clone());
        }
        row
    }
}

impl Report for CertReport {
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        let mut headers = vec![
            "certificate",
            "expires",
            "residual time",
            "certificate authority",
            "status",
        ];
        if self.wide {
            headers.push("path");
        }
        let mut rows: Vec<Vec<String>> = self.leaves.iter().map(|f| self.row(f, true)).collect();
        rows.extend(self.errors.iter().map(|e| {
            let mut row = vec![
                e.name.clone().unwrap_or_else(|| e.path.clone()),
                String::new(),
                String::new(),
                String::new(),
                if e.status == Some(Status::Missing) {
                    "missing".to_string()
                } else {
                    "unreadable".to_string()
                },
            ];
            if self.wide {
                row.push(e.path.clone());
            }
            row
        }));
        (headers, rows)
    }

    /// The CA table, then each problem and error in full.
    fn details(&self) -> Vec<String> {
        let mut headers = vec![
            "certificate authority",
            "expires",
            "residual time",
            "status",
        ];
        if self.wide {
            headers.push("path");
        }
        let rows: Vec<Vec<String>> = self.cas.iter().map(|f| self.row(f, false)).collect();
        let mut lines: Vec<String> = if rows.is_empty() {
            Vec::new()
        } else {
            render_table(&headers, &rows)
                .lines()
                .map(str::to_string)
                .collect()
        };
        for f in self.leaves.iter().chain(&self.cas) {
            for p in &f.problems {
                lines.push(format!("{}: {p}", f.name));
            }
        }
        for e in &self.errors {
            lines.push(format!("{}: {}", e.path, e.error));
        }
        lines
    }

    fn json(&self) -> serde_json::Value {
        let mut items: Vec<serde_json::Value> = self
            .cas
            .iter()
            .chain(&self.leaves)
            .filter_map(|f| {
                let mut v = serde_json::to_value(f).ok()?;
                v["status"] = f.json_status().into();
                Some(v)
            })
            .collect();
        items.extend(
            self.errors
                .iter()
                .filter_map(|e| serde_json::to_value(e).ok()),
        );
        serde_json::Value::Array(items)
    }

    fn simple(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .cas
            .iter()
            .chain(&self.leaves)
            .map(|f| {
                format!(
                    "{}, {}, {}, {}",
                    f.name,
                    f.not_after,
                    f.residual,
                    f.status_words()
                )
            })
            .collect();
        lines.extend(self.errors.iter().map(|e| {
            let word = if e.status == Some(Status::Missing) {
                "missing"
            } else {
                "error"
            };
            format!("{}, {word}, {}", e.path, e.error)
        }));
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn residual_time_as_kubeadm_shows_it() {
        assert_eq!(residual(364 * 86_400 + 5), "364d");
        assert_eq!(residual(10 * 365 * 86_400 - 5), "9y");
        assert_eq!(residual(11 * 3_600 + 59), "11h");
        assert_eq!(residual(125), "2m");
        assert_eq!(residual(30), "30s");
        assert_eq!(residual(-3 * 86_400), "<invalid>");
        assert_eq!(kubeadm_time(1_795_316_501), "Nov 22, 2026 03:01 UTC");
    }

    #[test]
    fn kubeadm_names() {
        let file = |p: &str| Source::File {
            path: p.into(),
            index: 0,
            of: 1,
        };
        assert_eq!(
            short_name(&file("/etc/kubernetes/pki/etcd/server.crt")),
            "etcd-server"
        );
        assert_eq!(
            short_name(&file("/etc/kubernetes/pki/etcd/ca.crt")),
            "etcd-ca"
        );
        assert_eq!(
            short_name(&file("/etc/kubernetes/pki/apiserver-etcd-client.crt")),
            "apiserver-etcd-client"
        );
        assert_eq!(short_name(&file("/etc/etcd/etcd.pem")), "etcd");
        let kc = Source::Kubeconfig {
            path: "/etc/kubernetes/admin.conf".into(),
            entry: "client".into(),
        };
        assert_eq!(short_name(&kc), "admin.conf");
    }
}
