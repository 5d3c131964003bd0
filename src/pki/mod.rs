//! Certificates of a control-plane node: find them (PEM files and bundles, DER files,
//! kubeconfigs with embedded data or file references), describe them, and check how they are
//! wired (key beside a certificate matches it, a leaf verifies against a CA of the same tree and
//! does not outlive it).
//!
//! Does not: decide what is "ok" relative to a date (the command does), or talk to servers
//! (the command fetches served certificates and hands them in as [`Source::Served`]).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use base64::Engine;
use rustls::pki_types::PrivateKeyDer;
use serde_yaml_ng::Value;
use x509_parser::prelude::*;

/// Where a certificate came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A file (PEM, possibly one of several in a bundle, or DER).
    File {
        path: PathBuf,
        index: usize,
        of: usize,
    },
    /// A kubeconfig entry: `#ca` or `#client`, with the cluster or user name when there are
    /// several.
    Kubeconfig { path: PathBuf, entry: String },
    /// What a live endpoint served during a TLS handshake.
    Served { endpoint: String },
}

impl Source {
    pub fn display(&self) -> String {
        match self {
            Source::File { path, index, of } if *of > 1 => format!("{}[{index}]", path.display()),
            Source::File { path, .. } => path.display().to_string(),
            Source::Kubeconfig { path, entry } => format!("{}#{entry}", path.display()),
            Source::Served { endpoint } => format!("{endpoint} (served)"),
        }
    }
}

/// One parsed certificate and what we know about it.
#[derive(Debug, Clone)]
pub struct Cert {
    pub source: Source,
    pub der: Vec<u8>,
    pub subject: String,
    pub issuer: String,
    /// Raw DER of subject and issuer names, for matching a leaf to its CA.
    subject_raw: Vec<u8>,
    issuer_raw: Vec<u8>,
    pub not_before: i64,
    pub not_after: i64,
    pub is_ca: bool,
    pub key: String,
    pub sans: Vec<String>,
    /// The private key found beside the certificate, if any (PEM), to check it matches.
    key_file: Option<PathBuf>,
    embedded_key: Option<Vec<u8>>,
    /// Problems with how this certificate is wired.
    pub problems: Vec<String>,
}

/// A file that looked like it should hold certificates but could not be read.
#[derive(Debug, Clone)]
pub struct ScanError {
    pub path: String,
    pub error: String,
}

/// Everything found under the scanned paths.
#[derive(Debug, Default)]
pub struct Scan {
    pub certs: Vec<Cert>,
    pub errors: Vec<ScanError>,
}

/// How deep to follow directories (kubeadm's tree is two levels deep).
const MAX_DEPTH: usize = 16;

impl Scan {
    /// Scan files, directories (recursively) and kubeconfigs. A missing path given explicitly
    /// is the caller's to report; here it becomes an error row.
    pub fn paths(paths: &[PathBuf]) -> Scan {
        let mut scan = Scan::default();
        let mut seen = BTreeSet::new();
        for p in paths {
            scan.walk(p, 0, &mut seen);
        }
        scan
    }

    fn walk(&mut self, path: &Path, depth: usize, seen: &mut BTreeSet<PathBuf>) {
        let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        if !seen.insert(canonical) {
            return;
        }
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) => return self.error(path, e.to_string()),
        };
        if meta.is_dir() {
            if depth >= MAX_DEPTH {
                return;
            }
            let mut entries: Vec<PathBuf> = match std::fs::read_dir(path) {
                Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
                Err(e) => return self.error(path, e.to_string()),
            };
            entries.sort();
            for e in entries {
                // Do not follow directory symlinks (loops); files behind links are fine.
                let is_link_dir = std::fs::symlink_metadata(&e)
                    .map(|m| m.file_type().is_symlink())
                    .unwrap_or(false)
                    && e.is_dir();
                if !is_link_dir {
                    self.walk(&e, depth + 1, seen);
                }
            }
            return;
        }
        match std::fs::read(path) {
            Ok(bytes) => self.file(path, &bytes),
            Err(e) => self.error(path, e.to_string()),
        }
    }

    fn error(&mut self, path: &Path, error: String) {
        self.errors.push(ScanError {
            path: path.display().to_string(),
            error,
        });
    }

    /// Classify one file by content: PEM, kubeconfig, DER, or something else.
    pub fn file(&mut self, path: &Path, bytes: &[u8]) {
        if bytes.windows(11).any(|w| w == b"-----BEGIN ") {
            return self.pem_file(path, bytes);
        }
        if looks_like_kubeconfig(bytes) {
            return self.kubeconfig(path, bytes);
        }
        match parse_x509_certificate(bytes) {
            Ok(([], _)) => {
                let source = Source::File {
                    path: path.to_path_buf(),
                    index: 0,
                    of: 1,
                };
                match Cert::parse(source, bytes.to_vec()) {
                    Ok(c) => self.certs.push(c),
                    Err(e) => self.error(path, e),
                }
            }
            _ => self.error(path, "not a certificate, key or kubeconfig".to_string()),
        }
    }

    fn pem_file(&mut self, path: &Path, bytes: &[u8]) {
        let mut ders = Vec::new();
        for item in rustls_pemfile::read_all(&mut &bytes[..]) {
            match item {
                Ok(rustls_pemfile::Item::X509Certificate(der)) => ders.push(der.to_vec()),
                // Keys, CSRs, CRLs: recognised and skipped.
                Ok(_) => {}
                Err(e) => return self.error(path, format!("invalid PEM: {e:?}")),
            }
        }
        let of = ders.len();
        let key_file = sibling_key(path);
        for (index, der) in ders.into_iter().enumerate() {
            let source = Source::File {
                path: path.to_path_buf(),
                index,
                of,
            };
            match Cert::parse(source, der) {
                Ok(mut c) => {
                    // Only the first certificate of a file is the one its key belongs to.
                    if index == 0 {
                        c.key_file = key_file.clone();
                    }
                    self.certs.push(c)
                }
                Err(e) => self.error(path, e),
            }
        }
    }

    fn kubeconfig(&mut self, path: &Path, bytes: &[u8]) {
        let doc: Value = match serde_yaml_ng::from_slice(bytes) {
            Ok(d) => d,
            Err(e) => return self.error(path, format!("kubeconfig is not valid YAML: {e}")),
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut entries = Vec::new();
        let list = |key: &str| -> Vec<Value> {
            doc.get(key)
                .and_then(Value::as_sequence)
                .cloned()
                .unwrap_or_default()
        };
        let clusters = list("clusters");
        let users = list("users");
        for (kind, items, inner, data_key, file_key, key_data, key_file) in [
            (
                "ca",
                &clusters,
                "cluster",
                "certificate-authority-data",
                "certificate-authority",
                None,
                None,
            ),
            (
                "client",
                &users,
                "user",
                "client-certificate-data",
                "client-certificate",
                Some("client-key-data"),
                Some("client-key"),
            ),
        ] {
            for item in items.iter() {
                let name = item.get("name").and_then(Value::as_str).unwrap_or("");
                let Some(body) = item.get(inner) else {
                    continue;
                };
                let entry = if items.len() > 1 {
                    format!("{kind}:{name}")
                } else {
                    kind.to_string()
                };
                let field = |k: &str| body.get(k).and_then(Value::as_str);
                let pem = if let Some(data) = field(data_key) {
                    match base64::engine::general_purpose::STANDARD.decode(data.trim()) {
                        Ok(b) => b,
                        Err(e) => {
                            self.error(path, format!("{entry}: {data_key} is not base64: {e}"));
                            continue;
                        }
                    }
                } else if let Some(file) = field(file_key) {
                    let p = dir.join(file);
                    match std::fs::read(&p) {
                        Ok(b) => b,
                        Err(e) => {
                            self.error(path, format!("{entry}: {file_key} {}: {e}", p.display()));
                            continue;
                        }
                    }
                } else {
                    continue;
                };
                let key = key_data
                    .and_then(field)
                    .and_then(|d| {
                        base64::engine::general_purpose::STANDARD
                            .decode(d.trim())
                            .ok()
                    })
                    .or_else(|| {
                        key_file
                            .and_then(field)
                            .and_then(|f| std::fs::read(dir.join(f)).ok())
                    });
                entries.push((entry, pem, key));
            }
        }
        if entries.is_empty() {
            return self.error(path, "kubeconfig holds no certificate".to_string());
        }
        for (entry, pem, key) in entries {
            let ders: Vec<Vec<u8>> = rustls_pemfile::certs(&mut &pem[..])
                .filter_map(|c| c.ok().map(|c| c.to_vec()))
                .collect();
            if ders.is_empty() {
                self.error(path, format!("{entry}: no PEM certificate"));
                continue;
            }
            for der in ders.into_iter().take(1) {
                let source = Source::Kubeconfig {
                    path: path.to_path_buf(),
                    entry: entry.clone(),
                };
                match Cert::parse(source, der) {
                    Ok(mut c) => {
                        c.embedded_key = key.clone();
                        self.certs.push(c)
                    }
                    Err(e) => self.error(path, format!("{entry}: {e}")),
                }
            }
        }
    }

    /// Add what a live endpoint served.
    pub fn served(&mut self, endpoint: &str, der: Vec<u8>) {
        let source = Source::Served {
            endpoint: endpoint.to_string(),
        };
        match Cert::parse(source, der) {
            Ok(c) => self.certs.push(c),
            Err(e) => self.errors.push(ScanError {
                path: endpoint.to_string(),
                error: format!("served certificate: {e}"),
            }),
        }
    }

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
                    cert.problems.push(format!(
                        "the endpoint serves a different certificate than {} on disk (renewed but not restarted?)",
                        same_name.iter().map(|d| d.source.display()).collect::<Vec<_>>().join(", ")
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
                cert.problems.push(format!(
                    "issuer not found: no CA \"{}\" in the scanned tree",
                    cert.issuer
                ));
                continue;
            }
            match issuers.iter().find(|ca| verifies(&cert.der, &ca.der)) {
                None => cert.problems.push(format!(
                    "signature does not verify against CA \"{}\" ({})",
                    cert.issuer,
                    issuers
                        .iter()
                        .map(|ca| ca.source.display())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
                Some(ca) if cert.not_after > ca.not_after => cert
                    .problems
                    .push(format!("outlives its CA {}", ca.source.display())),
                Some(_) => {}
            }
        }
    }
}

/// `foo.crt` → `foo.key` beside it, when it exists.
fn sibling_key(path: &Path) -> Option<PathBuf> {
    let key = path.with_extension("key");
    (key != path && key.is_file()).then_some(key)
}

fn looks_like_kubeconfig(bytes: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return false;
    };
    text.contains("kind: Config") || (text.contains("clusters:") && text.contains("users:"))
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

fn cn(name: &X509Name<'_>) -> String {
    name.iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| name.to_string())
}

impl Cert {
    pub fn parse(source: Source, der: Vec<u8>) -> Result<Cert, String> {
        let (_, x) = parse_x509_certificate(&der)
            .map_err(|e| format!("not a valid X.509 certificate: {e}"))?;
        let validity = x.validity();
        let is_ca = x
            .basic_constraints()
            .ok()
            .flatten()
            .is_some_and(|bc| bc.value.ca);
        let mut sans = Vec::new();
        if let Ok(Some(ext)) = x.subject_alternative_name() {
            for name in &ext.value.general_names {
                match name {
                    GeneralName::DNSName(d) => sans.push(d.to_string()),
                    GeneralName::IPAddress(ip) => sans.push(match ip.len() {
                        4 => std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*ip).unwrap_or_default())
                            .to_string(),
                        16 => {
                            std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*ip).unwrap_or_default())
                                .to_string()
                        }
                        _ => format!("{ip:?}"),
                    }),
                    GeneralName::RFC822Name(e) => sans.push(e.to_string()),
                    GeneralName::URI(u) => sans.push(u.to_string()),
                    _ => {}
                }
            }
        }
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
            der,
        })
    }

    /// Does the private key beside (or embedded with) this certificate belong to it?
    fn key_problem(&self) -> Option<String> {
        let (pem, from) = match (&self.key_file, &self.embedded_key) {
            (Some(path), _) => (std::fs::read(path).ok()?, path.display().to_string()),
            (None, Some(bytes)) => (bytes.clone(), "the embedded client key".to_string()),
            (None, None) => return None,
        };
        let key: PrivateKeyDer<'static> = match rustls_pemfile::private_key(&mut &pem[..]) {
            Ok(Some(k)) => k,
            _ => return Some(format!("{from} is not a readable private key")),
        };
        let signing = rustls::crypto::ring::sign::any_supported_type(&key).ok()?;
        let public = signing.public_key()?;
        let (_, x) = parse_x509_certificate(&self.der).ok()?;
        (public.as_ref() != x.public_key().raw)
            .then(|| format!("private key {from} does not match this certificate"))
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
