//! `etcdops cert-expiry [PATH...]`: when every certificate of a control-plane node expires, and
//! whether it is wired right — what `kubeadm certs check-expiration` and a loop of
//! `openssl x509 -enddate` tell, plus key/certificate matching, signatures against the CA of the
//! same tree, and what live etcd endpoints actually serve.

use anyhow::{bail, Result};
use serde::Serialize;

use crate::client::{served_certificate, targets};
use crate::exit::Outcome;
use crate::output::Report;
use crate::pki::{Cert, Scan, ScanError};
use crate::settings::CertExpirySettings;
use crate::units::rfc3339;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Ok,
    Warning,
    Expired,
    NotYetValid,
}

/// One certificate as reported.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub path: String,
    pub subject: String,
    pub issuer: String,
    pub not_before: String,
    pub not_after: String,
    pub days_left: i64,
    pub residual: String,
    pub is_ca: bool,
    pub key: String,
    pub sans: Vec<String>,
    pub status: Status,
    pub problems: Vec<String>,
}

/// A file that could not be read as a certificate.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorRow {
    pub path: String,
    pub error: String,
}

#[derive(Debug, Clone)]
pub struct CertReport {
    /// CAs first, then leaves; each soonest expiry first.
    pub findings: Vec<Finding>,
    pub errors: Vec<ErrorRow>,
}

/// Scan the paths and the manifest's certificate files, add what live endpoints serve, check
/// the wiring, and judge every certificate.
pub async fn run(s: &CertExpirySettings) -> Result<(CertReport, Outcome)> {
    let mut paths = s.paths.clone();
    if let Some(m) = &s.manifest {
        paths.extend(m.certificate_files().into_iter().filter(|p| p.exists()));
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
    judge(scan, s.now, s.warn_days)
}

/// Judge a scan at `now` (Unix seconds) with a warning window of `warn_days`.
fn judge(scan: Scan, now: i64, warn_days: i64) -> Result<(CertReport, Outcome)> {
    if scan.certs.is_empty() {
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
    certs.sort_by_key(|c| (!c.is_ca, c.not_after));
    let findings: Vec<Finding> = certs.iter().map(|c| finding(c, now, warn_days)).collect();
    let bad = findings
        .iter()
        .filter(|f| f.status != Status::Ok || !f.problems.is_empty())
        .count();
    let outcome = if bad == 0 {
        Outcome::Ok
    } else {
        Outcome::Bad(format!(
            "{bad} of {} certificates expired, not yet valid, expiring within {warn_days} days or miswired",
            findings.len()
        ))
    };
    let errors = scan
        .errors
        .into_iter()
        .map(|e| ErrorRow {
            path: e.path,
            error: e.error,
        })
        .collect();
    Ok((CertReport { findings, errors }, outcome))
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
        status,
        problems: c.problems.clone(),
    }
}

/// Time left as kubeadm shows it: `364d`, `11h`, `42m`; negative when expired.
fn residual(seconds: i64) -> String {
    let sign = if seconds < 0 { "-" } else { "" };
    let s = seconds.unsigned_abs();
    if s >= 86_400 {
        format!("{sign}{}d", s / 86_400)
    } else if s >= 3_600 {
        format!("{sign}{}h", s / 3_600)
    } else {
        format!("{sign}{}m", s / 60)
    }
}

impl Report for CertReport {
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        let mut rows: Vec<Vec<String>> = self
            .findings
            .iter()
            .map(|f| {
                vec![
                    f.path.clone(),
                    f.subject.clone(),
                    f.issuer.clone(),
                    f.not_after.clone(),
                    f.residual.clone(),
                    if f.is_ca { "CA" } else { "leaf" }.to_string(),
                    f.key.clone(),
                    status_word(f.status).to_string(),
                    f.problems.join("; "),
                ]
            })
            .collect();
        rows.extend(self.errors.iter().map(|e| {
            let mut r = vec![e.path.clone()];
            r.extend(std::iter::repeat_n(String::new(), 6));
            r.push("error".to_string());
            r.push(e.error.clone());
            r
        }));
        (
            vec![
                "certificate",
                "subject",
                "issuer",
                "expires",
                "residual time",
                "type",
                "key",
                "status",
                "problems",
            ],
            rows,
        )
    }

    fn json(&self) -> serde_json::Value {
        let mut items: Vec<serde_json::Value> = self
            .findings
            .iter()
            .filter_map(|f| serde_json::to_value(f).ok())
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
            .findings
            .iter()
            .map(|f| {
                format!(
                    "{}, {}, {}, {}{}",
                    f.path,
                    f.not_after,
                    f.residual,
                    status_word(f.status),
                    if f.problems.is_empty() {
                        String::new()
                    } else {
                        format!(", {}", f.problems.join("; "))
                    }
                )
            })
            .collect();
        lines.extend(
            self.errors
                .iter()
                .map(|e| format!("{}, error, {}", e.path, e.error)),
        );
        lines
    }
}

fn status_word(s: Status) -> &'static str {
    match s {
        Status::Ok => "ok",
        Status::Warning => "warning",
        Status::Expired => "expired",
        Status::NotYetValid => "not-yet-valid",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn residual_time() {
        assert_eq!(residual(364 * 86_400 + 5), "364d");
        assert_eq!(residual(11 * 3_600 + 59), "11h");
        assert_eq!(residual(125), "2m");
        assert_eq!(residual(-3 * 86_400), "-3d");
    }
}
