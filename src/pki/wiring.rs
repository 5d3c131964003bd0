//! Wiring checks across a scan: a key beside a certificate matches it, a leaf's issuer is a
//! CA of the same tree whose key verifies its signature, a leaf does not outlive its CA, and a
//! live endpoint serves the certificate that is on disk.

use x509_parser::prelude::*;

use super::cert::{Cert, Wiring};
use super::{Scan, Source};

impl Scan {
    /// Wiring checks across the whole set: key matches, issuer found and signature verifies,
    /// leaf does not outlive its CA, a served certificate is the one on disk.
    pub fn check_wiring(&mut self) {
        let all = self.certs.clone();
        let on_disk: Vec<&Cert> = all
            .iter()
            .filter(|c| !matches!(c.source, Source::Served { .. }))
            .collect();
        let cas: Vec<&Cert> = on_disk.iter().copied().filter(|c| c.is_ca).collect();
        for cert in &mut self.certs {
            if matches!(cert.source, Source::Served { .. }) {
                let same_name: Vec<&&Cert> = on_disk
                    .iter()
                    .filter(|d| {
                        d.subject_raw == cert.subject_raw && d.issuer_raw == cert.issuer_raw
                    })
                    .collect();
                if !same_name.is_empty() && !same_name.iter().any(|d| d.der == cert.der) {
                    cert.problems.push(Wiring::ServedDiffers(
                        same_name
                            .iter()
                            .map(|d| d.source.display())
                            .collect::<Vec<_>>()
                            .join(", "),
                    ));
                }
            }
            if let Some(problem) = cert.key_problem() {
                cert.problems.push(problem);
            }
            // With no CA in the scan at all (a single leaf file was asked about), there is
            // nothing to verify against; that is not a wiring problem.
            let self_signed = cert.subject_raw == cert.issuer_raw;
            if self_signed || cas.is_empty() {
                continue;
            }
            let issuers: Vec<&&Cert> = cas
                .iter()
                .filter(|ca| ca.subject_raw == cert.issuer_raw)
                .collect();
            if issuers.is_empty() {
                cert.problems
                    .push(Wiring::IssuerNotFound(cert.issuer.clone()));
                continue;
            }
            match issuers.iter().find(|ca| verifies(&cert.der, &ca.der)) {
                None => cert.problems.push(Wiring::WrongIssuer {
                    issuer: cert.issuer.clone(),
                    at: issuers
                        .iter()
                        .map(|ca| ca.source.display())
                        .collect::<Vec<_>>()
                        .join(", "),
                }),
                Some(ca) => {
                    cert.issued_by = Some(ca.source.clone());
                    if cert.not_after > ca.not_after {
                        cert.problems.push(Wiring::OutlivesCa(ca.source.display()));
                    }
                }
            }
        }
    }
}

fn verifies(leaf_der: &[u8], ca_der: &[u8]) -> bool {
    let (Ok((_, leaf)), Ok((_, ca))) = (
        parse_x509_certificate(leaf_der),
        parse_x509_certificate(ca_der),
    ) else {
        return false;
    };
    leaf.verify_signature(Some(ca.public_key())).is_ok()
}
