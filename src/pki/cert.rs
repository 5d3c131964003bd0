//! One X.509 certificate as etcdops describes it: names, validity, key type, SANs, and whether
//! the private key found with it belongs to it.

use std::path::PathBuf;

use rustls::pki_types::PrivateKeyDer;
use x509_parser::prelude::*;

use super::Source;

/// Why bytes are not a certificate we can describe.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    #[error("not a valid X.509 certificate: {0}")]
    NotX509(String),
}

/// One parsed certificate and what we know about it.
#[derive(Debug, Clone)]
pub struct Cert {
    pub source: Source,
    pub der: Vec<u8>,
    pub subject: String,
    pub issuer: String,
    /// Raw DER of subject and issuer names, for matching a leaf to its CA.
    pub(super) subject_raw: Vec<u8>,
    pub(super) issuer_raw: Vec<u8>,
    pub not_before: i64,
    pub not_after: i64,
    pub is_ca: bool,
    pub key: String,
    pub sans: Vec<String>,
    /// The private key found beside the certificate, if any (PEM), to check it matches.
    pub(super) key_file: Option<PathBuf>,
    pub(super) embedded_key: Option<Vec<u8>>,
    /// Problems with how this certificate is wired.
    pub problems: Vec<Wiring>,
    /// The CA of the scan whose key verified this certificate's signature.
    pub issued_by: Option<Source>,
}

impl Cert {
    /// The private key file found beside this certificate, if any.
    pub fn key_file(&self) -> Option<&std::path::Path> {
        self.key_file.as_deref()
    }

    /// SHA-256 of the DER, hex: what identifies one certificate wherever it is found.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        Sha256::digest(&self.der)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    pub fn parse(source: Source, der: Vec<u8>) -> Result<Cert, CertError> {
        let (_, x) = parse_x509_certificate(&der).map_err(|e| CertError::NotX509(e.to_string()))?;
        let validity = x.validity();
        let is_ca = x
            .basic_constraints()
            .ok()
            .flatten()
            .is_some_and(|bc| bc.value.ca);
        let sans = subject_alt_names(&x);
        let key = key_description(x.public_key());
        Ok(Cert {
            source,
            subject: cn(x.subject()),
            issuer: cn(x.issuer()),
            subject_raw: x.subject().as_raw().to_vec(),
            issuer_raw: x.issuer().as_raw().to_vec(),
            not_before: validity.not_before.timestamp(),
            not_after: validity.not_after.timestamp(),
            is_ca,
            key,
            sans,
            key_file: None,
            embedded_key: None,
            problems: Vec::new(),
            issued_by: None,
            der,
        })
    }

    /// Does the private key beside (or embedded with) this certificate belong to it?
    pub(super) fn key_problem(&self) -> Option<Wiring> {
        let (pem, from) = match (&self.key_file, &self.embedded_key) {
            (Some(path), _) => (super::read_pki_file(path).ok()?, path.display().to_string()),
            (None, Some(bytes)) => (bytes.clone(), "the embedded client key".to_string()),
            (None, None) => return None,
        };
        let key: PrivateKeyDer<'static> = match rustls_pemfile::private_key(&mut &pem[..]) {
            Ok(Some(k)) => k,
            _ => return Some(Wiring::KeyUnreadable(from)),
        };
        let signing = rustls::crypto::ring::sign::any_supported_type(&key).ok()?;
        let public = signing.public_key()?;
        let (_, x) = parse_x509_certificate(&self.der).ok()?;
        (public.as_ref() != x.public_key().raw).then_some(Wiring::KeyMismatch(from))
    }
}

fn key_description(spki: &SubjectPublicKeyInfo<'_>) -> String {
    if spki.algorithm.algorithm.to_id_string() == "1.3.101.112" {
        return "Ed25519".to_string();
    }
    match spki.parsed() {
        Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => format!("RSA {}", rsa.key_size()),
        Ok(x509_parser::public_key::PublicKey::EC(point)) => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|oid| match oid.to_id_string().as_str() {
                    "1.2.840.10045.3.1.7" => "P-256".to_string(),
                    "1.3.132.0.34" => "P-384".to_string(),
                    "1.3.132.0.35" => "P-521".to_string(),
                    other => other.to_string(),
                })
                .unwrap_or_else(|| format!("{} bits", point.key_size()));
            format!("ECDSA {curve}")
        }
        _ => spki.algorithm.algorithm.to_id_string(),
    }
}

/// The subject alternative names: DNS names, IP addresses, e-mail addresses and URIs.
pub fn subject_alt_names(x: &X509Certificate<'_>) -> Vec<String> {
    let mut sans = Vec::new();
    let Ok(Some(ext)) = x.subject_alternative_name() else {
        return sans;
    };
    for name in &ext.value.general_names {
        match name {
            GeneralName::DNSName(d) => sans.push(d.to_string()),
            GeneralName::IPAddress(ip) => sans.push(ip_text(ip)),
            GeneralName::RFC822Name(e) => sans.push(e.to_string()),
            GeneralName::URI(u) => sans.push(u.to_string()),
            _ => {}
        }
    }
    sans
}

fn ip_text(ip: &[u8]) -> String {
    if let Ok(v4) = <[u8; 4]>::try_from(ip) {
        std::net::Ipv4Addr::from(v4).to_string()
    } else if let Ok(v6) = <[u8; 16]>::try_from(ip) {
        std::net::Ipv6Addr::from(v6).to_string()
    } else {
        format!("{ip:?}")
    }
}

fn cn(name: &X509Name<'_>) -> String {
    name.iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| name.to_string())
}

/// What is wrong with how a certificate is wired.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Wiring {
    #[error(
        "the endpoint serves a different certificate than {0} on disk (renewed but not restarted?)"
    )]
    ServedDiffers(String),
    #[error("{0} is not a readable private key")]
    KeyUnreadable(String),
    #[error("private key {0} does not match this certificate")]
    KeyMismatch(String),
    #[error("issuer not found: no CA \"{0}\" in the scanned tree")]
    IssuerNotFound(String),
    #[error("signature does not verify against CA \"{issuer}\" ({at})")]
    WrongIssuer { issuer: String, at: String },
    #[error("outlives its CA {0}")]
    OutlivesCa(String),
}

impl Wiring {
    /// The word a status column shows for it.
    pub fn word(&self) -> &'static str {
        match self {
            Wiring::ServedDiffers(_) => "served differs",
            Wiring::KeyUnreadable(_) => "key unreadable",
            Wiring::KeyMismatch(_) => "key mismatch",
            Wiring::IssuerNotFound(_) => "issuer missing",
            Wiring::WrongIssuer { .. } => "wrong issuer",
            Wiring::OutlivesCa(_) => "outlives CA",
        }
    }
}
